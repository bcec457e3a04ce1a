//! One WebSocket connection: the `hello` handshake, then a loop that reads
//! requests, writes replies and queued events, pings, watches the token's
//! expiry, and closes with the right code when anything ends the session.
//!
//! Pipelining: a `send` does not hold the session while its commit is
//! fsynced. Once checked and queued for storage it waits in the session's
//! in-flight list (at most [`PIPELINE`]) and the loop reads the next
//! request, so one connection's rate is not bounded by commit latency and
//! a slow disk makes batches larger instead of stalling the sender. The
//! list is answered from its front only: sends are stored in the order
//! they arrived (their seqs follow it), delivered in it, and every reply,
//! of any request, goes out in request order. Any other request first
//! waits for the list to empty. Replies ready together are written with
//! the events queued for the session in one flush.
//!
//! Fairness: writes come before reads (a client that never stops sending
//! still receives), and the socket is read once after every write step (a
//! client that is always sent something is still heard: its requests, its
//! Pongs for the heartbeat).
//!
//! Memory: a session's task is what every idle connection costs, so it is
//! kept small. Its future holds only the socket, the session context and
//! one timer while it waits; the handshake, the farewell, and each request,
//! write and ping run in boxed futures that exist only while they run
//! (queued events a socket takes at once are written in place: `write`).
//! (Inlined, the largest of them would size every idle task: async state is
//! as big as its biggest await.) The functions below return `async move`
//! blocks rather than being `async fn`s: an `async fn` keeps its arguments
//! twice, once as captured and once as locals.

use crate::auth::AuthError;
use crate::clock::now_ms;
use crate::hub::SessionHandle;
use crate::ops::messages::{QueuedSend, Storing, queue_send, sent};
use crate::ops::{self, OpError, SessionCtx};
use crate::ratelimit::{AbuseWindow, Verdict};
use crate::state::{AppState, event_frame};
use crate::store::{Appended, StoreResult};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use courier_proto::{CloseCode, ErrBody, ErrorCode, Event, HelloOk, Reply, Request};
use futures_util::StreamExt;
use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::time::{Instant, sleep_until, timeout};
use write::{Now, write_now};

mod write;

/// Longest a single write may take before the peer counts as dead.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most queued frames written before the socket is flushed.
const WRITE_BATCH: usize = 64;
/// Most requests of one session taken up and not yet answered (sends
/// waiting for their commit, and replies queued behind them). Past it the
/// session reads no more requests until the oldest is answered.
pub const PIPELINE: usize = 256;
/// Ops that take a token from the user's bucket (protocol §8 v1.2), before
/// anything else is checked. Everything else (acks, reads, answers to
/// invitations, `renew`, `unwatch`) is free.
const METERED: [&str; 13] = [
    "send",
    "signal",
    "invite",
    "typing",
    "create_channel",
    "join",
    "leave",
    "add_member",
    "remove_member",
    "set_role",
    "set_profile",
    "watch",
    "ice",
];

/// Decrements the connection gauge when the connection ends, however it ends.
struct ConnGuard<'a>(&'a AppState);

impl Drop for ConnGuard<'_> {
    fn drop(&mut self) {
        self.0.metrics.connections.dec();
    }
}

/// Unregisters a session whose task ends without its farewell (a panic in
/// an op, or the task dropped): the session would otherwise stay in the
/// hub for the process's life, its user online to every watcher and its
/// device counted against the session cap. The rest of the farewell
/// (cluster release, call grace, presence) runs in a task of its own.
pub(crate) struct Unregister(Option<(Arc<AppState>, Arc<crate::hub::SessionHandle>)>);

impl Unregister {
    pub(crate) fn new(st: &Arc<AppState>, handle: &Arc<crate::hub::SessionHandle>) -> Self {
        Unregister(Some((st.clone(), handle.clone())))
    }

    /// The farewell takes over.
    pub(crate) fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for Unregister {
    fn drop(&mut self) {
        let Some((st, handle)) = self.0.take() else { return };
        handle.end();
        let watched = st.hub.watched_by(&handle);
        let change = st.hub.unregister(&handle, &watched);
        tracing::error!(user = %handle.user, "a session ended without its farewell; unregistered it");
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                st.session_closed(&handle).await;
                st.presence_changed(&handle.user, change).await;
            });
        }
    }
}

/// Why the loop ended.
enum End {
    /// Close the socket with this code.
    Close(u16, &'static str),
    /// The socket is gone already.
    Gone,
}

/// What the listener knows of a connection a session serves: its place in
/// its IP's count of connections not signed in, and its socket's wire.
pub type Conn = (crate::listener::PreHello, Arc<crate::direct::Wire>);

/// Serves one upgraded connection to its end.
#[expect(clippy::manual_async_fn, reason = "an async fn would keep the socket twice (module docs)")]
/// `conn` is what the listener knows of the connection: its place in its
/// IP's count of connections that have not signed in (given back right
/// after a successful `hello`), and its socket's wire, into which events
/// are written directly while the session is idle (see `hub`).
pub fn run(
    mut ws: WebSocket,
    st: Arc<AppState>,
    conn: Option<Conn>,
) -> impl Future<Output = ()> + Send + 'static {
    async move {
        st.metrics.connections.inc();
        let _guard = ConnGuard(&st);
        let Some(mut ses) = Box::pin(handshake(&mut ws, &st)).await else { return };
        let unwound = Unregister::new(&st, &ses.handle);
        if let Some((pre_hello, wire)) = conn {
            pre_hello.release();
            ses.handle.attach(wire);
            // The hello's answer is flushed: idle unless events are queued.
            ses.handle.settle();
        }
        st.metrics.sessions.inc();
        let mut inflight = VecDeque::new();
        let end = serve(&mut ws, &st, &mut ses, &mut inflight).await;
        // What was queued for storage is stored whatever became of the
        // socket; it is delivered as if the session were still there.
        Box::pin(settle(&st, &ses, inflight)).await;
        st.metrics.sessions.dec();
        // The farewell unregisters before its first await.
        unwound.disarm();
        Box::pin(farewell(&mut ws, &st, &ses, end)).await;
    }
}

/// Finishes the sends an ended session had in flight: each is delivered
/// once stored (the answers have nowhere to go).
async fn settle(st: &Arc<AppState>, ses: &SessionCtx, inflight: VecDeque<InFlight>) {
    for item in inflight {
        if let InFlight::Send { storing, .. } = item {
            let stored = storing.stored.await;
            let _ = sent(st, ses, stored, storing.started).await;
        }
    }
}

/// Unregisters an ended session, tells watchers, and closes the socket.
async fn farewell(ws: &mut WebSocket, st: &Arc<AppState>, ses: &SessionCtx, end: End) {
    let change = st.hub.unregister(&ses.handle, &ses.watched);
    st.session_closed(&ses.handle).await;
    st.presence_changed(&ses.user, change).await;
    if let End::Close(code, reason) = end {
        close(ws, code, reason).await;
    }
}

/// How long a closing session waits for the peer's close after its own.
const CLOSE_HANDSHAKE: Duration = Duration::from_secs(2);

/// Sends the close frame, then completes the closing handshake: what the
/// peer still sends (a flood, for an abuser) is read and dropped until its
/// close or [`CLOSE_HANDSHAKE`]. Dropping a socket with unread input makes
/// the kernel reset the connection, and a reset can destroy the close frame
/// (and its code) before the peer reads it.
async fn close(ws: &mut WebSocket, code: u16, reason: &'static str) {
    let frame = CloseFrame { code, reason: Utf8Bytes::from_static(reason) };
    if !matches!(timeout(CLOSE_HANDSHAKE, ws.send(Message::Close(Some(frame)))).await, Ok(Ok(()))) {
        return;
    }
    let _ = timeout(CLOSE_HANDSHAKE, async {
        while let Some(Ok(m)) = ws.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

async fn send_text(ws: &mut WebSocket, st: &AppState, text: String) -> bool {
    st.metrics.frames_out.inc();
    matches!(timeout(WRITE_TIMEOUT, ws.send(Message::Text(text.into()))).await, Ok(Ok(())))
}

async fn send_err(ws: &mut WebSocket, st: &AppState, re: Option<u64>, err: &ErrBody) -> bool {
    st.metrics.error(err.code);
    send_text(ws, st, Reply::err_json(re, err)).await
}

/// Waits for `hello`, authenticates, registers the session. `None` when the
/// connection ended (the reason was already sent).
async fn handshake(ws: &mut WebSocket, st: &Arc<AppState>) -> Option<SessionCtx> {
    let deadline = Instant::now() + Duration::from_millis(st.config.hello_timeout_ms);
    let text = loop {
        match timeout(deadline.saturating_duration_since(Instant::now()), ws.recv()).await {
            Err(_) => {
                close(ws, CloseCode::AUTH_FAILED, "no hello in time").await;
                return None;
            }
            Ok(Some(Err(e))) => {
                // An oversized first frame gets 1009 like any other (§8).
                if let End::Close(code, reason) = read_error(&e) {
                    close(ws, code, reason).await;
                }
                return None;
            }
            Ok(None | Some(Ok(Message::Close(_)))) => return None,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(Message::Text(t)))) => break Some(t),
            Ok(Some(Ok(Message::Binary(_)))) => break None,
        }
    };
    st.metrics.frames_in.inc();
    let decoded = text.as_ref().map(|t| Request::decode(t.as_str()));
    let (id, token, device) = match decoded {
        Some(Ok((id, Request::Hello { token, device, .. }))) => (id, token, device),
        other => {
            let re = match other {
                Some(Ok((id, _))) => Some(id),
                Some(Err(e)) => e.id,
                None => None,
            };
            let body = ErrBody::new(ErrorCode::Unauthenticated, "the first frame must be a valid hello");
            send_err(ws, st, re, &body).await;
            close(ws, CloseCode::AUTH_FAILED, "hello required").await;
            return None;
        }
    };
    let identity = match st.auth.verify(&token) {
        Ok(i) => i,
        Err(e) => {
            let code =
                if e == AuthError::Expired { CloseCode::TOKEN_EXPIRED } else { CloseCode::AUTH_FAILED };
            send_err(ws, st, Some(id), &ErrBody::new(ErrorCode::Unauthenticated, e.to_string())).await;
            close(
                ws,
                code,
                if code == CloseCode::TOKEN_EXPIRED { "token expired" } else { "authentication failed" },
            )
            .await;
            return None;
        }
    };
    if let Verdict::Limited(wait) = st.pace_hello(&identity.user).await {
        let mut body = ErrBody::new(ErrorCode::RateLimited, "this user signs in too often; retry later");
        body.retry_after_ms = Some(wait.as_millis().max(1) as u64);
        send_err(ws, st, Some(id), &body).await;
        close(ws, CloseCode::RATE_ABUSE, "too many sign-ins").await;
        return None;
    }
    if let Err(e) = st.store.touch_user(&identity.user, now_ms()).await {
        let err: OpError = e.into();
        send_err(ws, st, Some(id), &err.0).await;
        close(ws, 1011, "storage unavailable").await;
        return None;
    }
    let handle = st.hub.new_session(&identity.user, &device, st.config.outbound_queue);
    let Some(change) = st.register_session(&handle).await else {
        let cap = st.session_cap();
        let body = ErrBody::limit(
            "sessions",
            format!("at most {cap} live sessions per user; close one (or reuse its device id) first"),
        );
        send_err(ws, st, Some(id), &body).await;
        close(ws, CloseCode::RATE_ABUSE, "too many sessions").await;
        return None;
    };
    st.session_opened(&identity.user, &device, &handle.id, change).await;
    let ok = HelloOk {
        user: identity.user.clone(),
        session: handle.id.to_string(),
        server_time: now_ms(),
        heartbeat_ms: st.config.heartbeat_ms,
        limits: st.config.limits,
        features: vec![courier_proto::FEATURE_V1_1.to_owned(), courier_proto::FEATURE_V1_2.to_owned()],
        ice_servers: crate::ice::servers_now(&st.config, &identity.user),
    };
    let ses = SessionCtx {
        user: handle.user.clone(),
        handle,
        token_exp: identity.exp,
        exp_changed: false,
        watched: Default::default(),
        typing_last: Default::default(),
    };
    if !send_text(ws, st, Reply::ok_json(id, &ok)).await {
        ses.handle.end();
        st.hub.unregister(&ses.handle, &ses.watched);
        st.session_closed(&ses.handle).await;
        return None;
    }
    st.presence_changed(&identity.user, change).await;
    Some(ses)
}

/// How long before the token's expiry `token_expiring` is sent.
const EXPIRY_WARNING: Duration = Duration::from_secs(60);

/// The instant at which the token expires (seconds since the epoch).
fn expiry_instant(exp: Option<i64>) -> Option<Instant> {
    let ms = exp?.saturating_mul(1000).saturating_sub(now_ms());
    Some(Instant::now() + Duration::from_millis(ms.max(0) as u64))
}

/// Everything a session waits for besides the socket and its queue. One
/// timer serves them all, armed for the earliest.
struct Deadlines {
    /// Next ping.
    ping: Instant,
    /// The peer is dead if it sends nothing before this. Moving it later
    /// leaves the timer alone: waking early just re-arms it.
    dead: Instant,
    /// When the token expires (`None`: never).
    expire: Option<Instant>,
    /// `token_expiring` was sent for this token.
    warned: bool,
}

impl Deadlines {
    fn set_expiry(&mut self, exp: Option<i64>) {
        self.expire = expiry_instant(exp);
        self.warned = false;
    }

    /// When to send `token_expiring` (`None`: sent already, or never). A
    /// token with less than a minute left is warned about at once.
    fn warn(&self) -> Option<Instant> {
        let expire = self.expire.filter(|_| !self.warned)?;
        Some(expire.checked_sub(EXPIRY_WARNING).unwrap_or_else(Instant::now))
    }

    /// The earliest deadline.
    fn next(&self) -> Instant {
        [self.warn(), self.expire].into_iter().flatten().fold(self.ping.min(self.dead), Instant::min)
    }
}

/// The server's ping interval.
fn heartbeat(st: &AppState) -> Duration {
    Duration::from_millis(st.config.heartbeat_ms)
}

/// How long a silent peer lives.
fn dead_after(st: &AppState) -> Duration {
    heartbeat(st) * 2 + Duration::from_secs(5)
}

/// What woke the loop.
enum Wake {
    Timer,
    /// The oldest request in flight can be answered, or events are queued.
    Write,
    Frame(Option<Result<Message, axum::Error>>),
}

/// A request taken up and not yet answered, in the session's in-flight
/// list (see the module docs).
enum InFlight {
    /// A reply, waiting for the requests before it.
    Reply(String),
    /// A `send` queued for storage.
    Send {
        /// The request id.
        id: u64,
        storing: Storing,
        /// The storage outcome, once known (boxed: a stored message is large).
        outcome: Option<Box<StoreResult<Appended>>>,
    },
}

impl InFlight {
    /// Ready when it can be answered (a send: once its commit is known).
    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> Poll<()> {
        match self {
            InFlight::Reply(_) | InFlight::Send { outcome: Some(_), .. } => Poll::Ready(()),
            InFlight::Send { storing, outcome, .. } => storing.stored.as_mut().poll(cx).map(|stored| {
                *outcome = Some(Box::new(stored));
            }),
        }
    }

    /// Its reply; a stored send is delivered first.
    async fn answer(self, st: &Arc<AppState>, ses: &SessionCtx) -> String {
        match self {
            InFlight::Reply(text) => text,
            InFlight::Send { id, storing, outcome } => {
                let stored = match outcome {
                    Some(stored) => *stored,
                    None => storing.stored.await,
                };
                match sent(st, ses, stored, storing.started).await {
                    Ok(ok) => Reply::ok_json(id, &ok),
                    Err(OpError(body)) => {
                        st.metrics.error(body.code);
                        Reply::err_json(Some(id), &body)
                    }
                }
            }
        }
    }
}

/// A step that writes to the socket; `Some` ends the session.
type Io<'a> = Pin<Box<dyn Future<Output = Option<End>> + Send + 'a>>;

/// Ends the session's queue when the loop ends, however it ends (even by a
/// panic): what is queued is dropped and nothing more is taken.
struct EndQueue(Arc<SessionHandle>);

impl Drop for EndQueue {
    fn drop(&mut self) {
        self.0.end();
    }
}

#[expect(clippy::manual_async_fn, reason = "an async fn would keep its arguments twice (module docs)")]
fn serve<'a>(
    ws: &'a mut WebSocket,
    st: &'a Arc<AppState>,
    ses: &'a mut SessionCtx,
    inflight: &'a mut VecDeque<InFlight>,
) -> impl Future<Output = End> + Send + 'a {
    async move {
        let now = Instant::now();
        let mut due = Deadlines {
            ping: now + heartbeat(st),
            dead: now + dead_after(st),
            expire: expiry_instant(ses.token_exp),
            warned: false,
        };
        let timer = sleep_until(due.next());
        tokio::pin!(timer);
        // Built on first use: most sessions never send a metered op.
        let mut bucket: Option<Box<AbuseWindow>> = None;
        let handle = EndQueue(ses.handle.clone());
        // Shutdown asks every registered session to close (see
        // `Server::start_with`); this catches one registered just after.
        if *st.shutdown.borrow() || st.shutdown.has_changed().is_err() {
            return End::Close(CloseCode::GOING_AWAY, "server shutting down");
        }
        // After each write step the socket is read once before the next
        // write, so a queue that never empties (a busy channel, a slow
        // link) cannot keep the session from reading requests and Pongs.
        let mut read_owed = false;
        loop {
            // Timers first (a busy queue must not starve them), then the
            // read owed after a write, then answers and queued events
            // before new requests: a client that never stops sending must
            // still receive what it is sent, and one that is always sent
            // something must still be heard. New requests only while the
            // in-flight list has room. (A hand-written poll: a `select!`
            // keeps more state in every idle task.)
            let wake = poll_fn(|cx| {
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Wake::Timer);
                }
                let room = inflight.len() < PIPELINE;
                if std::mem::take(&mut read_owed)
                    && room
                    && let Poll::Ready(msg) = ws.poll_next_unpin(cx)
                {
                    return Poll::Ready(Wake::Frame(msg));
                }
                let answerable = inflight.front_mut().is_some_and(|f| f.poll_ready(cx).is_ready());
                if answerable || handle.0.poll_work(cx).is_ready() {
                    return Poll::Ready(Wake::Write);
                }
                if !room {
                    return Poll::Pending;
                }
                ws.poll_next_unpin(cx).map(Wake::Frame)
            });
            // At most one step per wake-up, boxed (see the module docs). The
            // wake-up is a temporary of this statement, so it is not kept
            // while the step runs.
            let step: Io<'_> = match wake.await {
                Wake::Timer => {
                    if let Some(end) = requested_close(st, &handle.0) {
                        return end;
                    }
                    let now = Instant::now();
                    if now >= due.dead {
                        return End::Close(CloseCode::HEARTBEAT_TIMEOUT, "heartbeat timeout");
                    }
                    if due.expire.is_some_and(|t| now >= t) {
                        return End::Close(CloseCode::TOKEN_EXPIRED, "token expired");
                    }
                    if due.warn().is_some_and(|t| now >= t) {
                        due.warned = true;
                        let exp = ses.token_exp.unwrap_or_default();
                        handle.0.push(&event_frame(&Event::TokenExpiring { exp }));
                    }
                    let ping = now >= due.ping;
                    if ping {
                        due.ping = now + heartbeat(st);
                    }
                    timer.as_mut().reset(due.next());
                    if !ping {
                        continue;
                    }
                    Box::pin(send_ping(ws))
                }
                Wake::Write => {
                    if let Some(end) = requested_close(st, &handle.0) {
                        return end;
                    }
                    read_owed = true;
                    // Only queued events and a socket that takes them now:
                    // written in place, without a boxed step.
                    if inflight.is_empty() {
                        match poll_fn(|cx| Poll::Ready(write_now(ws, st, &handle.0, cx))).await {
                            Now::Written => continue,
                            Now::Gone => return End::Gone,
                            Now::Blocked => {}
                        }
                    }
                    Box::pin(write_out(ws, st, ses, inflight, false))
                }
                Wake::Frame(msg) => {
                    due.dead = Instant::now() + dead_after(st);
                    match msg {
                        None | Some(Ok(Message::Close(_))) => return End::Gone,
                        Some(Err(e)) => return read_error(&e),
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                        Some(Ok(Message::Binary(_))) => Box::pin(refuse_binary(ws, st, inflight)),
                        Some(Ok(Message::Text(t))) => {
                            st.metrics.frames_in.inc();
                            Box::pin(on_text(ws, st, ses, inflight, &mut bucket, t))
                        }
                    }
                }
            };
            if let Some(end) = step.await {
                return end;
            }
            if ses.exp_changed {
                ses.exp_changed = false;
                due.set_expiry(ses.token_exp);
                timer.as_mut().reset(due.next());
            }
        }
    }
}

/// The close another task asked for, if any, as the loop's end.
fn requested_close(st: &AppState, handle: &SessionHandle) -> Option<End> {
    let (code, reason) = handle.close_request()?;
    if code == CloseCode::POLICY {
        st.metrics.slow_consumers.inc();
    }
    Some(End::Close(code, reason))
}

async fn send_ping(ws: &mut WebSocket) -> Option<End> {
    match timeout(WRITE_TIMEOUT, ws.send(Message::Ping(Default::default()))).await {
        Ok(Ok(())) => None,
        _ => Some(End::Gone),
    }
}

async fn refuse_binary(ws: &mut WebSocket, st: &AppState, inflight: &mut VecDeque<InFlight>) -> Option<End> {
    let err = ErrBody::new(ErrorCode::BadRequest, "binary frames are not part of the protocol");
    if reply_err(ws, st, inflight, None, &err).await { None } else { Some(End::Gone) }
}

/// Sends a reply now, or queues it behind the requests still in flight, so
/// that replies keep request order. False when the socket is gone.
async fn reply(ws: &mut WebSocket, st: &AppState, inflight: &mut VecDeque<InFlight>, text: String) -> bool {
    if inflight.is_empty() {
        send_text(ws, st, text).await
    } else {
        inflight.push_back(InFlight::Reply(text));
        true
    }
}

/// [`reply`] with an error.
async fn reply_err(
    ws: &mut WebSocket,
    st: &AppState,
    inflight: &mut VecDeque<InFlight>,
    re: Option<u64>,
    err: &ErrBody,
) -> bool {
    st.metrics.error(err.code);
    reply(ws, st, inflight, Reply::err_json(re, err)).await
}

/// A read error: an oversized frame gets 1009, anything else means the
/// socket is gone.
fn read_error(e: &axum::Error) -> End {
    use tokio_tungstenite::tungstenite::Error as WsError;
    use tokio_tungstenite::tungstenite::error::CapacityError;
    let inner = std::error::Error::source(e).and_then(|s| s.downcast_ref::<WsError>());
    match inner {
        Some(WsError::Capacity(CapacityError::MessageTooLong { .. })) => {
            End::Close(CloseCode::TOO_BIG, "frame larger than max_frame_bytes")
        }
        Some(WsError::Capacity(_)) => End::Close(CloseCode::TOO_BIG, "frame too large"),
        _ => {
            tracing::debug!(error = %e, "websocket read failed");
            End::Gone
        }
    }
}

/// Writes the answers at the front of the in-flight list that are ready
/// (`all`: every one, waiting for each) and what is queued for the session
/// (up to a batch), then flushes once. A peer that stopped reading blocks
/// the write; a close request (slow consumer, replacement) still ends it.
async fn write_out(
    ws: &mut WebSocket,
    st: &Arc<AppState>,
    ses: &SessionCtx,
    inflight: &mut VecDeque<InFlight>,
    all: bool,
) -> Option<End> {
    use futures_util::SinkExt;
    let mut answers = Vec::new();
    while let Some(front) = inflight.front_mut() {
        if !all && poll_fn(|cx| Poll::Ready(front.poll_ready(cx).is_pending())).await {
            break;
        }
        let item = inflight.pop_front().expect("a front");
        answers.push(item.answer(st, ses).await);
    }
    let handle = &ses.handle;
    let work = async {
        let mut n = answers.len();
        for text in answers {
            ws.feed(Message::Text(text.into())).await?;
        }
        for _ in 0..WRITE_BATCH {
            let Some(frame) = handle.pop() else { break };
            ws.feed(Message::Text(frame)).await?;
            n += 1;
        }
        st.metrics.frames_out.inc_by(n as u64);
        ws.flush().await?;
        handle.settle();
        Ok::<(), axum::Error>(())
    };
    tokio::select! {
        written = timeout(WRITE_TIMEOUT, work) => match written {
            Ok(Ok(())) => None,
            _ => Some(End::Gone),
        },
        _ = handle.close_requested() => requested_close(st, handle),
    }
}

/// Handles one text frame. `Some` ends the session.
async fn on_text(
    ws: &mut WebSocket,
    st: &Arc<AppState>,
    ses: &mut SessionCtx,
    inflight: &mut VecDeque<InFlight>,
    bucket: &mut Option<Box<AbuseWindow>>,
    text: Utf8Bytes,
) -> Option<End> {
    answer(ws, st, ses, inflight, bucket, text.as_str()).await.err()
}

/// Decodes, meters, dispatches and answers one request (a `send` is
/// queued for storage and answered later, in order). `Err` ends the
/// session.
async fn answer(
    ws: &mut WebSocket,
    st: &Arc<AppState>,
    ses: &mut SessionCtx,
    inflight: &mut VecDeque<InFlight>,
    bucket: &mut Option<Box<AbuseWindow>>,
    text: &str,
) -> Result<(), End> {
    let gone = |ok: bool| if ok { Ok(()) } else { Err(End::Gone) };
    let (id, req) = match Request::decode(text) {
        Ok(x) => x,
        Err(e) => {
            if e.op.as_deref().is_some_and(|op| METERED.contains(&op))
                && !meter(ws, st, ses, inflight, bucket, e.id).await?
            {
                return Ok(());
            }
            let body = ErrBody::new(e.code, e.message);
            return gone(reply_err(ws, st, inflight, e.id, &body).await);
        }
    };
    if METERED.contains(&req.op())
        && !crate::calls::within_allowance(st, ses, &req).await
        && !meter(ws, st, ses, inflight, bucket, Some(id)).await?
    {
        return Ok(());
    }
    let req = match req {
        Request::Send(send) => {
            return match Box::pin(queue_send(st, ses, send)).await {
                Ok(QueuedSend::Storing(storing)) => {
                    inflight.push_back(InFlight::Send { id, storing, outcome: None });
                    Ok(())
                }
                Ok(QueuedSend::Answered(ok)) => gone(reply(ws, st, inflight, Reply::ok_json(id, &ok)).await),
                Err(OpError(body)) => gone(reply_err(ws, st, inflight, Some(id), &body).await),
            };
        }
        other => other,
    };
    // Anything else runs once every earlier request is answered.
    if !inflight.is_empty()
        && let Some(end) = Box::pin(write_out(ws, st, ses, inflight, true)).await
    {
        return Err(end);
    }
    // Boxed: the handlers' futures are large, and only some requests
    // need them.
    match Box::pin(ops::dispatch(st, ses, req)).await {
        Ok(ok) => gone(send_text(ws, st, Reply::ok_json(id, &ok)).await),
        Err(OpError(body)) => gone(send_err(ws, st, Some(id), &body).await),
    }
}

/// Takes a token from the user's bucket and counts the attempt in this
/// session's abuse window. `Ok(true)`: go ahead; `Ok(false)`: refused with
/// `rate_limited` (already answered); `Err`: end the session (4029 on
/// abuse: only this session, the user's others carry on).
async fn meter(
    ws: &mut WebSocket,
    st: &Arc<AppState>,
    ses: &SessionCtx,
    inflight: &mut VecDeque<InFlight>,
    bucket: &mut Option<Box<AbuseWindow>>,
    re: Option<u64>,
) -> Result<bool, End> {
    let limits = &st.config.limits;
    let window =
        bucket.get_or_insert_with(|| Box::new(AbuseWindow::new(limits.send_per_sec, limits.send_burst)));
    let verdict = st.meter(&ses.user).await;
    let abuse = window.record(verdict);
    let retry = match verdict {
        Verdict::Allowed => return Ok(true),
        Verdict::Limited(_) if abuse => Duration::from_secs(1),
        Verdict::Limited(d) => d,
    };
    let mut body = ErrBody::new(ErrorCode::RateLimited, "too many requests; slow down");
    body.retry_after_ms = Some(retry.as_millis().max(1) as u64);
    if !reply_err(ws, st, inflight, re, &body).await {
        return Err(End::Gone);
    }
    if !abuse {
        return Ok(false);
    }
    // The refusal goes out, after the answers before it, before the close.
    if let Some(end) = Box::pin(write_out(ws, st, ses, inflight, true)).await {
        return Err(end);
    }
    Err(End::Close(CloseCode::RATE_ABUSE, "rate limit abuse"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn future_size<F: Future>(_: fn(WebSocket, Arc<AppState>, Option<Conn>) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// A session task that panics (or is dropped) before its farewell is
    /// unregistered all the same: nothing of it stays in the hub, and its
    /// watchers hear that its user went offline.
    #[tokio::test]
    async fn a_session_that_panics_is_unregistered() {
        let (server, _store, _dir) = server().await;
        let st = server.state.clone();
        let watcher = st.hub.new_session("alice", "d", 64);
        st.hub.register(&watcher);
        st.hub.watch(&watcher, [("bob", true)]);
        let bob = st.hub.new_session("bob", "d", 64);
        st.hub.register(&bob);
        st.hub.watch(&bob, [("alice", true), ("carol", true)]);
        let (st2, bob2) = (st.clone(), bob.clone());
        let task = tokio::spawn(async move {
            let _unwound = Unregister::new(&st2, &bob2);
            panic!("an op went wrong");
        });
        assert!(task.await.unwrap_err().is_panic());
        assert_eq!(st.hub.user_sessions("bob"), 0, "the session left the hub");
        assert!(st.hub.watched_by(&bob).is_empty(), "and its watches");
        assert!(!bob.push(&Arc::from("x")), "its queue is ended");
        let offline = timeout(Duration::from_secs(10), async {
            loop {
                while let Some(f) = watcher.pop() {
                    let v: Value = serde_json::from_str(f.as_str()).unwrap();
                    if v["ev"] == "presence" && v["user"] == "bob" && v["online"] == false {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        offline.await.expect("bob's watchers hear he went offline");
    }

    /// Every idle connection keeps this future; a large await inlined into
    /// the loop (a request handler, the handshake) would multiply its size.
    #[test]
    fn an_idle_session_task_stays_small() {
        let size = future_size(run);
        assert!(size <= 1024, "the session future grew to {size} bytes; box the large awaits");
    }

    use crate::store::sqlite::SqliteStore;
    use futures_util::SinkExt;
    use serde_json::{Value, json};
    use tokio_tungstenite::tungstenite::Message as WsMessage;

    type Socket =
        tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

    /// A server on a SQLite store the test can hold still.
    async fn server() -> (crate::Server, Arc<SqliteStore>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::config::Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_path_buf(),
            dev_auth: true,
            ..Default::default()
        };
        config.validate().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = crate::Server::start_with(listener, config, store.clone()).await.unwrap();
        (server, store, dir)
    }

    async fn login(server: &crate::Server, user: &str) -> Socket {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = server.ws_url().into_client_request().unwrap();
        req.headers_mut().insert("sec-websocket-protocol", "courier.v1".parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let hello = json!({"id":1,"op":"hello","token":format!("dev:{user}"),"device":"d"});
        ws.send(WsMessage::text(hello.to_string())).await.unwrap();
        let ok = next_frame(&mut ws, |f| f.get("re").is_some()).await;
        assert!(ok.get("ok").is_some(), "{ok}");
        ws
    }

    /// The next frame that `wanted` accepts (others are skipped).
    async fn next_frame(ws: &mut Socket, wanted: impl Fn(&Value) -> bool) -> Value {
        loop {
            let msg = timeout(Duration::from_secs(10), ws.next()).await.expect("a frame in time");
            let Some(Ok(WsMessage::Text(t))) = msg else { panic!("the socket ended: {msg:?}") };
            let frame: Value = serde_json::from_str(&t).unwrap();
            if wanted(&frame) {
                return frame;
            }
        }
    }

    fn send_to(id: u64, to: Value, cid: &str) -> WsMessage {
        let req = json!({"id":id,"op":"send","to":to,"cid":cid,"kind":"text","body":{"text":cid}});
        WsMessage::text(req.to_string())
    }

    /// Queues event `n` (32 KiB of padding) for `user`'s one session.
    fn padded_events_to<'a>(server: &'a crate::Server, user: &'static str) -> impl Fn(usize) + 'a {
        let pad = "x".repeat(32 * 1024);
        move |n| {
            let frame: Arc<str> = Arc::from(json!({"ev":"t","n":n,"pad":pad}).to_string());
            assert_eq!(server.state.hub.send_to_users([user], &frame, None), 1, "frame {n} queued");
        }
    }

    /// Waits (at most 10 s: a failure, not a measurement) until `done`.
    async fn until(what: &str, done: impl Fn() -> bool) {
        let give_up = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < give_up, "never happened: {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sends_wait_for_their_commit_together_and_are_answered_in_request_order() {
        let (server, store, _dir) = server().await;
        let mut ws = login(&server, "alice").await;
        let (release, _) = store.hold_writer().await;
        let bob = json!({"user":"bob"});
        for frame in [
            send_to(10, bob.clone(), "a"),
            send_to(11, json!({"channel":"nowhere"}), "x"),
            send_to(12, bob.clone(), "b"),
            send_to(13, bob.clone(), "c"),
            WsMessage::text(json!({"id":14,"op":"history","conv":"dm:alice:bob"}).to_string()),
        ] {
            ws.send(frame).await.unwrap();
        }
        // All three were taken up while the first still waits for its
        // commit (a session serving one request at a time queues one).
        until("three appends queued behind the held writer", || store.queued() == 3).await;
        release.send(()).unwrap();
        let mut replies = Vec::new();
        for _ in 0..5 {
            replies.push(next_frame(&mut ws, |f| f.get("re").is_some()).await);
        }
        let ids: Vec<u64> = replies.iter().map(|r| r["re"].as_u64().unwrap()).collect();
        assert_eq!(ids, [10, 11, 12, 13, 14], "replies in request order: {replies:?}");
        let seqs: Vec<&Value> = [0, 2, 3].iter().map(|&i| &replies[i]["ok"]["seq"]).collect();
        assert_eq!(seqs, [1, 2, 3], "seqs in send order: {replies:?}");
        assert_eq!(replies[1]["err"]["code"], "forbidden");
        let texts: Vec<&Value> =
            replies[4]["ok"]["messages"].as_array().unwrap().iter().map(|m| &m["body"]["text"]).collect();
        assert_eq!(texts, ["a", "b", "c"], "a later read sees every earlier send");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sends_in_flight_when_the_socket_ends_are_still_delivered() {
        let (server, store, _dir) = server().await;
        let mut bob = login(&server, "bob").await;
        let mut alice = login(&server, "alice").await;
        let (release, _) = store.hold_writer().await;
        for (id, cid) in [(10, "a"), (11, "b")] {
            alice.send(send_to(id, json!({"user":"bob"}), cid)).await.unwrap();
        }
        until("both appends queued", || store.queued() == 2).await;
        drop(alice);
        release.send(()).unwrap();
        for want in ["a", "b"] {
            let ev = next_frame(&mut bob, |f| f["ev"] == "msg").await;
            assert_eq!(ev["body"]["text"], want, "{ev}");
        }
    }

    /// Events written in place by the loop and those that wait in the
    /// queue while the socket is full (taken up by the boxed write) keep
    /// their order, none lost or doubled, across every switch between them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn events_keep_their_order_when_the_socket_fills_and_drains() {
        let (server, _store, _dir) = server().await;
        let mut bob = login(&server, "bob").await;
        if cfg!(target_os = "linux") {
            // Until its hello is flushed the session is not idle, and the
            // first frames would all be queued: only those written before
            // the socket fills can be written directly (while the reader
            // keeps 800 frames unread, more than the socket holds, the queue
            // never empties).
            let handle = server.state.hub.all_sessions().into_iter().find(|s| &*s.user == "bob").unwrap();
            until("bob's session is idle after its hello", || handle.is_idle()).await;
        }
        let push = padded_events_to(&server, "bob");
        // 25 MiB unread: more than the loopback buffers hold, fewer frames
        // than the outbound queue.
        const FIRST: usize = 800;
        const ALL: usize = 1600;
        for n in 0..FIRST {
            push(n);
        }
        // Then one more per frame read, so the queue drains and refills
        // while the socket goes from full to empty.
        let mut pushed = FIRST;
        for want in 0..ALL {
            let ev = next_frame(&mut bob, |f| f["ev"] == "t").await;
            assert_eq!(ev["n"], want, "frames in order");
            if pushed < ALL {
                push(pushed);
                pushed += 1;
            }
        }
        // Both ways were taken: written by the pusher while bob's session
        // was idle, and queued for its task while it was not (Linux).
        let direct = server.state.metrics.frames_direct.get();
        if cfg!(target_os = "linux") {
            assert!(direct > 0 && direct < ALL as u64, "{direct} of {ALL} frames written directly");
        }
    }

    /// A session whose queue never empties (a busy channel on a slow link)
    /// still reads: its requests are answered and its Pongs heard while
    /// the events keep coming. Before, writes always came first and such a
    /// session read nothing until the heartbeat deadline closed it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_session_that_is_always_sent_something_still_reads_its_requests() {
        let (server, _store, _dir) = server().await;
        let mut bob = login(&server, "bob").await;
        let push = padded_events_to(&server, "bob");
        // 25 MiB unread, more than the loopback buffers hold: the queue
        // stays full while one more is pushed for each frame read.
        const UNREAD: usize = 800;
        const MORE: usize = 4000;
        for n in 0..UNREAD {
            push(n);
        }
        let history = json!({"id":7,"op":"history","conv":"dm:bob:carol"});
        bob.send(WsMessage::text(history.to_string())).await.unwrap();
        let mut pushed = UNREAD;
        let reply = loop {
            let frame = next_frame(&mut bob, |_| true).await;
            if frame.get("re").is_some() {
                break frame;
            }
            assert!(pushed < UNREAD + MORE, "no answer while {MORE} more events were written");
            push(pushed);
            pushed += 1;
        };
        assert_eq!(reply["re"], 7, "{reply}");
        assert!(reply.get("ok").is_some(), "{reply}");
    }

    /// An idle session's events are written into its socket by whoever
    /// pushes them (no task woken), whole and in order; once its task takes
    /// an event from the queue it is not idle until that is flushed.
    #[cfg(target_os = "linux")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_idle_sessions_events_are_written_straight_into_its_socket() {
        let (server, _store, _dir) = server().await;
        let mut bob = login(&server, "bob").await;
        let hub = &server.state.hub;
        let handle = hub.all_sessions().into_iter().find(|s| &*s.user == "bob").unwrap();
        until("bob's session is idle after its hello", || handle.is_idle()).await;
        let before = server.state.metrics.frames_direct.get();
        for n in 0..3 {
            let frame: Arc<str> = Arc::from(json!({"ev":"t","n":n}).to_string());
            assert_eq!(hub.send_to_users(["bob"], &frame, None), 1);
        }
        assert_eq!(server.state.metrics.frames_direct.get() - before, 3, "written by the pusher");
        assert!(handle.is_idle(), "nothing was queued");
        for want in 0..3 {
            assert_eq!(next_frame(&mut bob, |f| f["ev"] == "t").await["n"], want);
        }
        // The session's own replies still come through its WebSocket.
        bob.send(WsMessage::text(json!({"id":5,"op":"history","conv":"dm:bob:carol"}).to_string()))
            .await
            .unwrap();
        let reply = next_frame(&mut bob, |f| f.get("re").is_some()).await;
        assert_eq!(reply["re"], 5, "{reply}");
    }
}
