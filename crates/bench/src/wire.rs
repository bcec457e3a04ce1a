//! One simulated client connection, speaking either Courier protocol v1 or
//! Socket.IO, behind one interface so every scenario drives both targets
//! with the same load.
//!
//! A [`Client`] owns two tasks: a writer that batches queued frames into one
//! flush, and a reader that matches replies to pending requests by id and
//! hands pushed messages to the scenario's [`OnEvent`] callback. Dropping
//! the client aborts both tasks, which closes the TCP socket without a
//! WebSocket close frame (as a lost network would).

use crate::socketio::{self, Packet};
use anyhow::{Context as _, anyhow, bail};
use courier_proto::{Event, Reply};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Which protocol a target speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// Courier protocol v1 (`/v1/ws`, subprotocol `courier.v1`).
    Courier,
    /// Socket.IO v5 over Engine.IO v4 WebSocket transport.
    Socketio,
}

impl Proto {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Courier => "courier",
            Proto::Socketio => "socketio",
        }
    }
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The protocol.
    pub proto: Proto,
    /// The server's TCP address.
    pub addr: SocketAddr,
}

/// Where a message goes.
#[derive(Debug, Clone, Copy)]
pub enum Dest<'a> {
    /// A direct message to a user.
    User(&'a str),
    /// A channel message.
    Channel(&'a str),
}

impl Dest<'_> {
    fn json(self) -> Value {
        match self {
            Dest::User(u) => json!({ "user": u }),
            Dest::Channel(c) => json!({ "channel": c }),
        }
    }
}

/// A pushed frame, reduced to what scenarios measure.
#[derive(Debug)]
pub enum Incoming<'a> {
    /// A chat message: its conversation, seq and text.
    Msg { conv: &'a str, seq: u64, text: &'a str },
    /// Any other event (typing, receipt, presence, …).
    Other,
}

/// Called by a connection's reader task for every pushed frame.
pub type OnEvent = Arc<dyn Fn(Incoming<'_>) + Send + Sync>;

/// A callback that ignores everything.
pub fn ignore_events() -> OnEvent {
    Arc::new(|_| {})
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReqError {
    /// The server answered with an error code.
    Server(String),
    /// The connection closed before the answer came.
    Closed,
}

impl std::fmt::Display for ReqError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReqError::Server(c) => write!(f, "server error `{c}`"),
            ReqError::Closed => f.write_str("connection closed"),
        }
    }
}

type Pending = Mutex<HashMap<u64, oneshot::Sender<Result<Value, ReqError>>>>;

struct Shared {
    proto: Proto,
    out: mpsc::UnboundedSender<Message>,
    next_id: AtomicU64,
    pending: Pending,
    closed: AtomicBool,
}

impl Shared {
    fn fail_all(&self) {
        self.closed.store(true, Ordering::Release);
        // Dropping the senders wakes every waiter with `Closed`.
        self.pending.lock().expect("pending lock").clear();
    }
}

/// One live connection with an authenticated session.
pub struct Client {
    shared: Arc<Shared>,
    tasks: [AbortHandle; 2],
    /// The user this session signed in as.
    pub user: String,
}

impl Drop for Client {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The answer to a request, once it comes (a future).
pub struct PendingReply(Option<oneshot::Receiver<Result<Value, ReqError>>>);

impl Future for PendingReply {
    type Output = Result<Value, ReqError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        match &mut self.0 {
            None => std::task::Poll::Ready(Err(ReqError::Closed)),
            Some(rx) => std::pin::Pin::new(rx).poll(cx).map(|r| r.unwrap_or(Err(ReqError::Closed))),
        }
    }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Read buffer per client socket: tungstenite's 128 KiB default would cost
/// the generator gigabytes at 10 k connections.
const READ_BUFFER: usize = 8 * 1024;
/// Longest the handshake (TCP + upgrade + hello) may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

impl Client {
    /// Connects from `src` (a loopback address, so that many source
    /// addresses spread the ephemeral ports), upgrades, and signs in as
    /// `user` with a dev token. Returns once the session is established.
    ///
    /// # Errors
    /// When the TCP connect, the upgrade or the sign-in fails or times out.
    pub async fn connect(
        ep: &Endpoint,
        user: &str,
        src: Ipv4Addr,
        on_event: OnEvent,
    ) -> anyhow::Result<Client> {
        tokio::time::timeout(HANDSHAKE_TIMEOUT, Self::connect_inner(ep, user, src, on_event))
            .await
            .map_err(|_| anyhow!("handshake timed out"))?
    }

    async fn connect_inner(
        ep: &Endpoint,
        user: &str,
        src: Ipv4Addr,
        on_event: OnEvent,
    ) -> anyhow::Result<Client> {
        let sock = TcpSocket::new_v4()?;
        sock.bind(SocketAddr::V4(SocketAddrV4::new(src, 0))).with_context(|| format!("bind {src}"))?;
        let stream = sock.connect(ep.addr).await.with_context(|| format!("connect {}", ep.addr))?;
        stream.set_nodelay(true)?;
        let path = match ep.proto {
            Proto::Courier => courier_proto::WS_PATH,
            Proto::Socketio => socketio::WS_PATH,
        };
        let mut req = format!("ws://{}{}", ep.addr, path).into_client_request()?;
        if ep.proto == Proto::Courier {
            req.headers_mut().insert("Sec-WebSocket-Protocol", courier_proto::SUBPROTOCOL.parse()?);
        }
        let cfg = WebSocketConfig::default().read_buffer_size(READ_BUFFER).write_buffer_size(0);
        let (mut ws, _) =
            tokio_tungstenite::client_async_with_config(req, MaybeTlsStream::Plain(stream), Some(cfg))
                .await?;
        let token = format!("dev:{user}");
        match ep.proto {
            Proto::Courier => courier_hello(&mut ws, &token).await?,
            Proto::Socketio => socketio_hello(&mut ws, &token).await?,
        }
        let (sink, stream) = ws.split();
        let (out, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            proto: ep.proto,
            out,
            next_id: AtomicU64::new(2),
            pending: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
        });
        let writer = tokio::spawn(write_loop(sink, rx, shared.clone()));
        let reader = tokio::spawn(read_loop(stream, shared.clone(), on_event));
        Ok(Client { shared, tasks: [writer.abort_handle(), reader.abort_handle()], user: user.to_owned() })
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Sends one request (`op` with the fields of `args`) and waits for its
    /// answer. The frame is queued at once, so several requests may be in
    /// flight on one connection.
    ///
    /// # Errors
    /// The server's error code, or [`ReqError::Closed`].
    pub fn request(&self, op: &str, args: Value) -> PendingReply {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let text = match self.shared.proto {
            Proto::Courier => {
                let mut m = match args {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                m.insert("op".into(), op.into());
                m.insert("id".into(), id.into());
                Value::Object(m).to_string()
            }
            Proto::Socketio => socketio::event_with_ack(id, op, &args),
        };
        let queued = !self.is_closed() && {
            self.shared.pending.lock().expect("pending lock").insert(id, tx);
            self.shared.out.send(Message::text(text)).is_ok()
        };
        PendingReply(queued.then_some(rx))
    }

    /// A text message; `text` carries the generator's timestamp.
    pub fn send_text(&self, to: Dest<'_>, cid: &str, text: &str) -> PendingReply {
        self.request("send", json!({"to": to.json(), "cid": cid, "kind": "text", "body": {"text": text}}))
    }

    /// Creates a public channel (the caller becomes its first member).
    pub fn create_channel(&self, name: &str) -> PendingReply {
        self.request("create_channel", json!({"channel": name, "title": name, "private": false}))
    }

    /// Joins a public channel.
    pub fn join(&self, name: &str) -> PendingReply {
        self.request("join", json!({"channel": name}))
    }

    /// Typing notice in a conversation.
    pub fn typing(&self, conv: &str) -> PendingReply {
        self.request("typing", json!({"conv": conv}))
    }

    /// Read receipt up to `seq` (clamped by the server to the last message).
    pub fn read(&self, conv: &str, seq: u64) -> PendingReply {
        self.request("read", json!({"conv": conv, "seq": seq}))
    }

    /// Watches users' presence.
    pub fn watch(&self, users: &[String]) -> PendingReply {
        self.request("watch", json!({"users": users}))
    }

    /// Lists the user's conversations (what a reconnecting client does first).
    pub fn sync(&self) -> PendingReply {
        self.request("sync", json!({}))
    }
}

async fn next_text(ws: &mut Ws) -> anyhow::Result<String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(t.as_str().to_owned()),
            Some(Ok(Message::Close(c))) => bail!("closed during handshake: {c:?}"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => bail!("closed during handshake"),
        }
    }
}

async fn courier_hello(ws: &mut Ws, token: &str) -> anyhow::Result<()> {
    let hello =
        json!({"op": "hello", "id": 1, "token": token, "device": "bench", "client": "courier-bench/0.1"});
    ws.send(Message::text(hello.to_string())).await?;
    loop {
        let text = next_text(ws).await?;
        if text.starts_with("{\"ev\"") {
            continue;
        }
        let reply: Reply = serde_json::from_str(&text).with_context(|| format!("hello reply: {text}"))?;
        if reply.re != Some(1) {
            continue;
        }
        return match reply.err {
            Some(e) => Err(anyhow!("hello refused: {} {}", e.code, e.message)),
            None => Ok(()),
        };
    }
}

async fn socketio_hello(ws: &mut Ws, token: &str) -> anyhow::Result<()> {
    loop {
        match socketio::decode(&next_text(ws).await?)? {
            Packet::Open => {
                ws.send(Message::text(socketio::connect(&json!({ "token": token })))).await?;
            }
            Packet::Ping => ws.send(Message::text(socketio::PONG)).await?,
            Packet::Connected => return Ok(()),
            Packet::ConnectError(e) => bail!("socket.io connect refused: {e}"),
            _ => {}
        }
    }
}

async fn write_loop(
    mut sink: futures_util::stream::SplitSink<Ws, Message>,
    mut rx: mpsc::UnboundedReceiver<Message>,
    shared: Arc<Shared>,
) {
    while let Some(first) = rx.recv().await {
        let mut ok = sink.feed(first).await.is_ok();
        while ok {
            match rx.try_recv() {
                Ok(m) => ok = sink.feed(m).await.is_ok(),
                Err(_) => break,
            }
        }
        if !ok || sink.flush().await.is_err() {
            break;
        }
    }
    shared.fail_all();
}

async fn read_loop(
    mut stream: futures_util::stream::SplitStream<Ws>,
    shared: Arc<Shared>,
    on_event: OnEvent,
) {
    while let Some(Ok(msg)) = stream.next().await {
        let Message::Text(text) = msg else {
            if matches!(msg, Message::Close(_)) {
                break;
            }
            continue;
        };
        match shared.proto {
            Proto::Courier => courier_frame(text.as_str(), &shared, &on_event),
            Proto::Socketio => socketio_frame(text.as_str(), &shared, &on_event),
        }
    }
    shared.fail_all();
}

fn complete(shared: &Shared, id: u64, result: Result<Value, ReqError>) {
    if let Some(tx) = shared.pending.lock().expect("pending lock").remove(&id) {
        let _ = tx.send(result);
    }
}

/// Decodes a Courier frame with the protocol crate's types: events as
/// [`Event`], replies as [`Reply`] (one parse each).
fn courier_frame(text: &str, shared: &Shared, on_event: &OnEvent) {
    if text.starts_with("{\"ev\"") {
        match serde_json::from_str::<Event>(text) {
            Ok(Event::Msg(m)) => {
                let body_text = m.body.get("text").and_then(Value::as_str).unwrap_or_default();
                let conv = m.conv.to_string();
                on_event(Incoming::Msg { conv: &conv, seq: m.seq, text: body_text });
            }
            _ => on_event(Incoming::Other),
        }
        return;
    }
    let Ok(reply) = serde_json::from_str::<Reply>(text) else { return };
    let Some(id) = reply.re else { return };
    let result = match reply.err {
        Some(e) => Err(ReqError::Server(e.code.as_str().to_owned())),
        None => Ok(reply.ok.unwrap_or(Value::Null)),
    };
    complete(shared, id, result);
}

fn socketio_frame(text: &str, shared: &Shared, on_event: &OnEvent) {
    match socketio::decode(text) {
        Ok(Packet::Ping) => {
            let _ = shared.out.send(Message::text(socketio::PONG));
        }
        Ok(Packet::Ack(id, arg)) => {
            let result = match arg.get("err") {
                Some(e) => Err(ReqError::Server(
                    e.get("code").and_then(Value::as_str).unwrap_or("unknown").to_owned(),
                )),
                None => Ok(arg.get("ok").cloned().unwrap_or(Value::Null)),
            };
            complete(shared, id, result);
        }
        Ok(Packet::Event(name, arg)) if name == "msg" => {
            let conv = arg.get("conv").and_then(Value::as_str).unwrap_or_default();
            let seq = arg.get("seq").and_then(Value::as_u64).unwrap_or_default();
            let text = arg.pointer("/body/text").and_then(Value::as_str).unwrap_or_default();
            on_event(Incoming::Msg { conv, seq, text });
        }
        Ok(_) => on_event(Incoming::Other),
        Err(_) => {}
    }
}
