//! One simulated client connection, speaking Courier protocol v1,
//! Socket.IO, or the raw relay's bare minimum, behind one interface so
//! every scenario drives every target with the same load.
//!
//! A [`Client`] is one TCP connection and one reader task. A request's
//! frame is written to the socket by the caller, at once (a separate
//! WebSocket frame per request, as a real client sends it); only when the
//! socket is full does a flush task take over the rest. The reader takes
//! everything the socket has per wake-up into the connection's buffer and
//! handles every frame in it in place ([`crate::ws`]): replies are matched
//! to pending requests by id, pushed messages go to the scenario's
//! [`OnEvent`] callback. Dropping the client aborts the reader, which
//! closes the TCP socket without a WebSocket close frame (as a lost
//! network would).

use crate::conn::{Handshake, Writer};
use crate::frames;
pub use crate::frames::Dest;
use crate::socketio::{self, Packet};
use anyhow::{Context as _, anyhow, bail};
use courier_proto::{Event, Reply};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpSocket;
use tokio::sync::oneshot;
use tokio::task::AbortHandle;

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
    out: Arc<Writer>,
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

    /// Registers `waiter` under a fresh id and sends the frame `encode`
    /// makes for that id. On a closed connection the waiter fails at once.
    fn submit(&self, waiter: Waiter, encode: impl FnOnce(u64) -> String) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let text = encode(id);
        if self.closed.load(Ordering::Acquire) {
            return waiter.fail(ReqError::Closed);
        }
        self.pending.lock().expect("pending lock").insert(id, waiter);
        if !self.out.send(crate::ws::OP_TEXT, text.as_bytes())
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
    reader: AbortHandle,
    /// The user this session signed in as.
    pub user: String,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.reader.abort();
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
        let protocol = (ep.proto == Proto::Courier).then_some(courier_proto::SUBPROTOCOL);
        let mut ws = Handshake::upgrade(stream, ep.addr, path, protocol).await?;
        let token = format!("dev:{user}");
        match ep.proto {
            Proto::Courier => courier_hello(&mut ws, &token, None).await?,
            Proto::Relay => courier_hello(&mut ws, &token, Some(group)).await?,
            Proto::Socketio => socketio_hello(&mut ws, &token).await?,
        }
        let (rx, buf, out) = ws.into_parts();
        let shared = Arc::new(Shared {
            proto: ep.proto,
            out,
            next_id: AtomicU64::new(2),
            pending: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
        });
        let reader = tokio::spawn(read_loop(rx, buf, shared.clone(), on_event));
        Ok(Client { shared, reader: reader.abort_handle(), user: user.to_owned() })
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire) || self.shared.out.is_dead()
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

async fn courier_hello(ws: &mut Handshake, token: &str, group: Option<&str>) -> anyhow::Result<()> {
    let mut hello =
        json!({"op": "hello", "id": 1, "token": token, "device": "bench", "client": "courier-bench/0.1"});
    if let Some(g) = group {
        hello["group"] = g.into();
    }
    ws.send_text(&hello.to_string()).await?;
    loop {
        let text = ws.next_text().await?;
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

async fn socketio_hello(ws: &mut Handshake, token: &str) -> anyhow::Result<()> {
    loop {
        match socketio::decode(&ws.next_text().await?)? {
            Packet::Open => {
                ws.send_text(&socketio::connect(&json!({ "token": token }))).await?;
            }
            Packet::Ping => ws.send_text(socketio::PONG).await?,
            Packet::Connected => return Ok(()),
            Packet::ConnectError(e) => bail!("socket.io connect refused: {e}"),
            _ => {}
        }
    }
}

async fn read_loop(rx: tokio::net::tcp::OwnedReadHalf, buf: Vec<u8>, shared: Arc<Shared>, on_event: OnEvent) {
    let proto = shared.proto;
    crate::conn::read_loop(rx, buf, &shared.out.clone(), |text| match proto {
        Proto::Courier => courier_frame(text, &shared, &on_event),
        Proto::Socketio => socketio_frame(text, &shared, &on_event),
        Proto::Relay => relay_frame(text, &shared, &on_event),
    })
    .await;
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
            shared.out.send(crate::ws::OP_TEXT, socketio::PONG.as_bytes());
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
