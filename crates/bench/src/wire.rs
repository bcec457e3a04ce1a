//! One simulated client connection, speaking Courier protocol v1,
//! Socket.IO, or the raw relay's bare minimum, behind one interface so
//! every scenario drives every target with the same load.
//!
//! A [`Client`] owns two tasks: a writer that batches queued frames into one
//! flush, and a reader that matches replies to pending requests by id and
//! hands pushed messages to the scenario's [`OnEvent`] callback. Dropping
//! the client aborts both tasks, which closes the TCP socket without a
//! WebSocket close frame (as a lost network would).

use crate::frames;
pub use crate::frames::Dest;
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// Courier protocol v1 (`/v1/ws`, subprotocol `courier.v1`).
    Courier,
    /// Socket.IO v5 over Engine.IO v4 WebSocket transport.
    Socketio,
    /// The raw relay ([`crate::relay`]): Courier's `hello`, then every frame
    /// forwarded to the connection's group and echoed back as its ack.
    Relay,
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The protocol.
    pub proto: Proto,
    /// The server's TCP address.
    pub addr: SocketAddr,
}

fn send_frame(proto: Proto, id: u64, to: Dest<'_>, cid: &str, text: &str) -> String {
    match proto {
        Proto::Courier | Proto::Relay => frames::courier_send(id, to, cid, text),
        Proto::Socketio => frames::socketio_send(id, to, cid, text),
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

/// Called by a connection's reader task with the reply to one request:
/// the reply frame's text (for the raw relay, the echoed request), or why
/// there is none.
pub type OnReply = Box<dyn FnOnce(Result<&str, ReqError>) + Send>;

/// A callback that ignores everything.
pub fn ignore_events() -> OnEvent {
    Arc::new(|_| {})
}

/// Frames the generator had to parse in full because the scan did not
/// recognise them (the hot path should keep this at zero).
pub static SLOW_PARSES: AtomicU64 = AtomicU64::new(0);

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

/// Who waits for a reply: a future ([`PendingReply`]) or a callback run by
/// the reader task (no task, no wake-up per request).
enum Waiter {
    Future(oneshot::Sender<Result<Value, ReqError>>),
    Callback(OnReply),
}

impl Waiter {
    fn fail(self, e: ReqError) {
        match self {
            Waiter::Future(tx) => {
                let _ = tx.send(Err(e));
            }
            Waiter::Callback(cb) => cb(Err(e)),
        }
    }
}

type Pending = Mutex<HashMap<u64, Waiter>>;

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
        let waiters: Vec<Waiter> =
            self.pending.lock().expect("pending lock").drain().map(|(_, w)| w).collect();
        for w in waiters {
            w.fail(ReqError::Closed);
        }
    }

    /// Registers `waiter` under a fresh id and queues the frame `encode`
    /// makes for that id. On a closed connection the waiter fails at once.
    fn submit(&self, waiter: Waiter, encode: impl FnOnce(u64) -> String) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let text = encode(id);
        if self.closed.load(Ordering::Acquire) {
            return waiter.fail(ReqError::Closed);
        }
        self.pending.lock().expect("pending lock").insert(id, waiter);
        if self.out.send(Message::text(text)).is_err()
            && let Some(w) = self.pending.lock().expect("pending lock").remove(&id)
        {
            w.fail(ReqError::Closed);
        }
    }

    fn take(&self, id: u64) -> Option<Waiter> {
        self.pending.lock().expect("pending lock").remove(&id)
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
pub enum PendingReply {
    /// Waiting for the reader task.
    Waiting(oneshot::Receiver<Result<Value, ReqError>>),
    /// Known already (the relay answers its set-up requests itself).
    Ready(Option<Result<Value, ReqError>>),
}

impl Future for PendingReply {
    type Output = Result<Value, ReqError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        match &mut *self {
            PendingReply::Ready(r) => std::task::Poll::Ready(r.take().unwrap_or(Err(ReqError::Closed))),
            PendingReply::Waiting(rx) => {
                std::pin::Pin::new(rx).poll(cx).map(|r| r.unwrap_or(Err(ReqError::Closed)))
            }
        }
    }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Read buffer per client socket: tungstenite's 128 KiB default would cost
/// the generator gigabytes at 10 k connections, and every read clears the
/// free part of it; frames here are a few hundred bytes.
const READ_BUFFER: usize = 2 * 1024;
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
        Self::connect_in(ep, user, user, src, on_event).await
    }

    /// Like [`Client::connect`], naming the raw relay's `group` (the
    /// connections a frame is forwarded to); other targets ignore it.
    ///
    /// # Errors
    /// As [`Client::connect`].
    pub async fn connect_in(
        ep: &Endpoint,
        user: &str,
        group: &str,
        src: Ipv4Addr,
        on_event: OnEvent,
    ) -> anyhow::Result<Client> {
        tokio::time::timeout(HANDSHAKE_TIMEOUT, Self::connect_inner(ep, user, group, src, on_event))
            .await
            .map_err(|_| anyhow!("handshake timed out"))?
    }

    async fn connect_inner(
        ep: &Endpoint,
        user: &str,
        group: &str,
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
            Proto::Relay => crate::relay::WS_PATH,
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
            Proto::Courier => courier_hello(&mut ws, &token, None).await?,
            Proto::Relay => courier_hello(&mut ws, &token, Some(group)).await?,
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
    /// flight on one connection. The raw relay has no ops but `send`: it
    /// answers the others here, at once, without a frame.
    ///
    /// # Errors
    /// The server's error code, or [`ReqError::Closed`].
    pub fn request(&self, op: &str, args: Value) -> PendingReply {
        if self.shared.proto == Proto::Relay && op != "send" {
            return PendingReply::Ready(Some(Ok(Value::Null)));
        }
        let (tx, rx) = oneshot::channel();
        let proto = self.shared.proto;
        self.shared.submit(Waiter::Future(tx), |id| match proto {
            Proto::Courier | Proto::Relay => {
                let mut m = match args {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                m.insert("op".into(), op.into());
                m.insert("id".into(), id.into());
                Value::Object(m).to_string()
            }
            Proto::Socketio => socketio::event_with_ack(id, op, &args),
        });
        PendingReply::Waiting(rx)
    }

    /// A text message; `text` carries the generator's timestamp.
    pub fn send_text(&self, to: Dest<'_>, cid: &str, text: &str) -> PendingReply {
        let (tx, rx) = oneshot::channel();
        self.shared.submit(Waiter::Future(tx), |id| send_frame(self.shared.proto, id, to, cid, text));
        PendingReply::Waiting(rx)
    }

    /// A text message whose reply goes to `on_reply`, run by the reader
    /// task: the generator's hot path (the frame is written without a
    /// JSON value, the reply is not parsed, no task waits for it).
    pub fn send_text_then(&self, to: Dest<'_>, cid: &str, text: &str, on_reply: OnReply) {
        self.shared.submit(Waiter::Callback(on_reply), |id| send_frame(self.shared.proto, id, to, cid, text));
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

async fn courier_hello(ws: &mut Ws, token: &str, group: Option<&str>) -> anyhow::Result<()> {
    let mut hello =
        json!({"op": "hello", "id": 1, "token": token, "device": "bench", "client": "courier-bench/0.1"});
    if let Some(g) = group {
        hello["group"] = g.into();
    }
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
            Proto::Relay => relay_frame(text.as_str(), &shared, &on_event),
        }
    }
    shared.fail_all();
}

/// Hands a reply to its waiter: a callback gets the frame as it is, a
/// future the parsed value (`parse` runs only then).
fn complete(
    shared: &Shared,
    id: u64,
    frame: &str,
    result: Result<(), ReqError>,
    parse: impl FnOnce() -> Value,
) {
    match (shared.take(id), result) {
        (None, _) => {}
        (Some(Waiter::Callback(cb)), Ok(())) => cb(Ok(frame)),
        (Some(Waiter::Future(tx)), Ok(())) => {
            let _ = tx.send(Ok(parse()));
        }
        (Some(w), Err(e)) => w.fail(e),
    }
}

/// A Courier frame: scanned ([`frames`]); a frame in another shape is
/// decoded with the protocol crate's types, [`Event`] or [`Reply`].
fn courier_frame(text: &str, shared: &Shared, on_event: &OnEvent) {
    if let Some((id, outcome)) = frames::scan_reply(text) {
        let result = match outcome {
            frames::Outcome::Ok => Ok(()),
            frames::Outcome::Err => Err(courier_err(text)),
        };
        let ok_value = || serde_json::from_str::<Reply>(text).ok().and_then(|r| r.ok).unwrap_or(Value::Null);
        return complete(shared, id, text, result, ok_value);
    }
    if let Some(m) = frames::scan_msg(text) {
        return on_event(Incoming::Msg { conv: m.conv, seq: m.seq, text: m.text });
    }
    if text.starts_with("{\"ev\"") && !text.starts_with("{\"ev\":\"msg\"") {
        return on_event(Incoming::Other);
    }
    SLOW_PARSES.fetch_add(1, Ordering::Relaxed);
    if text.contains("\"ev\"") {
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
    let result = match &reply.err {
        Some(e) => Err(ReqError::Server(e.code.as_str().to_owned())),
        None => Ok(()),
    };
    complete(shared, id, text, result, || reply.ok.unwrap_or(Value::Null));
}

fn courier_err(text: &str) -> ReqError {
    let code = serde_json::from_str::<Reply>(text)
        .ok()
        .and_then(|r| r.err)
        .map_or_else(|| "unknown".to_owned(), |e| e.code.as_str().to_owned());
    ReqError::Server(code)
}

/// A frame from the raw relay: the echo of a request this connection sent
/// (its ack), else a frame another member of the group sent (a delivery).
fn relay_frame(text: &str, shared: &Shared, on_event: &OnEvent) {
    let parsed;
    let (id, body_text) = match frames::scan_relayed_send(text) {
        Some(found) => found,
        None => {
            SLOW_PARSES.fetch_add(1, Ordering::Relaxed);
            parsed = serde_json::from_str::<Value>(text).unwrap_or_default();
            let Some(id) = parsed["id"].as_u64() else { return on_event(Incoming::Other) };
            (id, parsed.pointer("/body/text").and_then(Value::as_str).unwrap_or_default())
        }
    };
    match shared.take(id) {
        Some(Waiter::Callback(cb)) => cb(Ok(text)),
        Some(Waiter::Future(tx)) => {
            let _ = tx.send(Ok(Value::Null));
        }
        None => on_event(Incoming::Msg { conv: "", seq: 0, text: body_text }),
    }
}

fn socketio_frame(text: &str, shared: &Shared, on_event: &OnEvent) {
    if let Some((id, outcome)) = frames::scan_socketio_ack(text) {
        let decoded = || socketio::decode(text).ok();
        let result = match outcome {
            frames::Outcome::Ok => Ok(()),
            frames::Outcome::Err => Err(match decoded() {
                Some(Packet::Ack(_, arg)) => ReqError::Server(
                    arg.pointer("/err/code").and_then(Value::as_str).unwrap_or("unknown").to_owned(),
                ),
                _ => ReqError::Server("unknown".into()),
            }),
        };
        let ok_value = || match decoded() {
            Some(Packet::Ack(_, arg)) => arg.get("ok").cloned().unwrap_or(Value::Null),
            _ => Value::Null,
        };
        return complete(shared, id, text, result, ok_value);
    }
    if let Some(m) = frames::scan_msg(text) {
        return on_event(Incoming::Msg { conv: m.conv, seq: m.seq, text: m.text });
    }
    match socketio::decode(text) {
        Ok(Packet::Ping) => {
            let _ = shared.out.send(Message::text(socketio::PONG));
        }
        Ok(Packet::Ack(id, arg)) => {
            SLOW_PARSES.fetch_add(1, Ordering::Relaxed);
            let result = match arg.get("err") {
                Some(e) => Err(ReqError::Server(
                    e.get("code").and_then(Value::as_str).unwrap_or("unknown").to_owned(),
                )),
                None => Ok(()),
            };
            complete(shared, id, text, result, || arg.get("ok").cloned().unwrap_or(Value::Null));
        }
        Ok(Packet::Event(name, arg)) if name == "msg" => {
            SLOW_PARSES.fetch_add(1, Ordering::Relaxed);
            let conv = arg.get("conv").and_then(Value::as_str).unwrap_or_default();
            let seq = arg.get("seq").and_then(Value::as_u64).unwrap_or_default();
            let text = arg.pointer("/body/text").and_then(Value::as_str).unwrap_or_default();
            on_event(Incoming::Msg { conv, seq, text });
        }
        Ok(_) => on_event(Incoming::Other),
        Err(_) => {}
    }
}
