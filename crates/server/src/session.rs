//! One WebSocket connection: the `hello` handshake, then a loop that reads
//! requests, writes replies and queued events, pings, watches the token's
//! expiry, and closes with the right code when anything ends the session.
//!
//! Memory: a session's task is what every idle connection costs, so it is
//! kept small. Its future holds only the socket, the session context and
//! one timer while it waits; the handshake, the farewell, and each request,
//! write and ping run in boxed futures that exist only while they run.
//! (Inlined, the largest of them would size every idle task: async state is
//! as big as its biggest await.) The functions below return `async move`
//! blocks rather than being `async fn`s: an `async fn` keeps its arguments
//! twice, once as captured and once as locals.

use crate::auth::AuthError;
use crate::clock::now_ms;
use crate::hub::SessionHandle;
use crate::ops::{self, OpError, SessionCtx};
use crate::ratelimit::{AbuseWindow, Verdict};
use crate::state::{AppState, event_frame};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use courier_proto::{CloseCode, ErrBody, ErrorCode, Event, HelloOk, Reply, Request};
use futures_util::StreamExt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::time::{Instant, sleep_until, timeout};

/// Longest a single write may take before the peer counts as dead.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most queued frames written before the socket is flushed.
const WRITE_BATCH: usize = 64;
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

/// Why the loop ended.
enum End {
    /// Close the socket with this code.
    Close(u16, &'static str),
    /// The socket is gone already.
    Gone,
}

/// Serves one upgraded connection to its end.
#[expect(clippy::manual_async_fn, reason = "an async fn would keep the socket twice (module docs)")]
/// `pre_hello` is the connection's place in its IP's count of connections
/// that have not signed in (see `listener`); it is given back right after a
/// successful `hello`.
pub fn run(
    mut ws: WebSocket,
    st: Arc<AppState>,
    pre_hello: Option<crate::listener::PreHello>,
) -> impl Future<Output = ()> + Send + 'static {
    async move {
        st.metrics.connections.inc();
        let _guard = ConnGuard(&st);
        let Some(mut ses) = Box::pin(handshake(&mut ws, &st)).await else { return };
        if let Some(p) = pre_hello {
            p.release();
        }
        st.metrics.sessions.inc();
        let end = serve(&mut ws, &st, &mut ses).await;
        st.metrics.sessions.dec();
        Box::pin(farewell(&mut ws, &st, &ses, end)).await;
    }
}

/// Unregisters an ended session, tells watchers, and closes the socket.
async fn farewell(ws: &mut WebSocket, st: &AppState, ses: &SessionCtx, end: End) {
    let change = st.hub.unregister(&ses.handle, &ses.watched);
    st.session_closed(&ses.handle).await;
    st.presence_changed(&ses.user, change).await;
    if let End::Close(code, reason) = end {
        close(ws, code, reason).await;
    }
}

async fn close(ws: &mut WebSocket, code: u16, reason: &'static str) {
    let frame = CloseFrame { code, reason: Utf8Bytes::from_static(reason) };
    let _ = timeout(Duration::from_secs(2), ws.send(Message::Close(Some(frame)))).await;
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
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return None,
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
    st.session_opened(&identity.user, &device, change).await;
    let ok = HelloOk {
        user: identity.user.clone(),
        session: handle.id.to_string(),
        server_time: now_ms(),
        heartbeat_ms: st.config.heartbeat_ms,
        limits: st.config.limits,
        features: vec![courier_proto::FEATURE_V1_1.to_owned()],
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
    Outbox,
    Frame(Option<Result<Message, axum::Error>>),
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
        loop {
            // Timers first (a busy queue must not starve them), then queued
            // events before new requests: a client that never stops sending
            // must still receive what it is sent. (A hand-written poll: a
            // `select!` keeps more state in every idle task.)
            let wake = poll_fn(|cx| {
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Wake::Timer);
                }
                if handle.0.poll_work(cx).is_ready() {
                    return Poll::Ready(Wake::Outbox);
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
                Wake::Outbox => {
                    if let Some(end) = requested_close(st, &handle.0) {
                        return end;
                    }
                    Box::pin(write_queued(ws, st, &handle.0))
                }
                Wake::Frame(msg) => {
                    due.dead = Instant::now() + dead_after(st);
                    match msg {
                        None | Some(Ok(Message::Close(_))) => return End::Gone,
                        Some(Err(e)) => return read_error(&e),
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                        Some(Ok(Message::Binary(_))) => Box::pin(refuse_binary(ws, st)),
                        Some(Ok(Message::Text(t))) => {
                            st.metrics.frames_in.inc();
                            Box::pin(on_text(ws, st, ses, &mut bucket, t))
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

async fn refuse_binary(ws: &mut WebSocket, st: &AppState) -> Option<End> {
    let err = ErrBody::new(ErrorCode::BadRequest, "binary frames are not part of the protocol");
    if send_err(ws, st, None, &err).await { None } else { Some(End::Gone) }
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

/// Writes what is queued (up to a batch), then flushes once. A peer that
/// stopped reading blocks the write; a close request (slow consumer,
/// replacement) still ends it.
async fn write_queued(ws: &mut WebSocket, st: &AppState, handle: &SessionHandle) -> Option<End> {
    use futures_util::SinkExt;
    let work = async {
        let mut n = 0;
        while n < WRITE_BATCH {
            let Some(frame) = handle.pop() else { break };
            ws.feed(Message::Text(Utf8Bytes::from(&*frame))).await?;
            n += 1;
        }
        st.metrics.frames_out.inc_by(n as u64);
        ws.flush().await
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
    bucket: &mut Option<Box<AbuseWindow>>,
    text: Utf8Bytes,
) -> Option<End> {
    answer(ws, st, ses, bucket, text.as_str()).await.err()
}

/// Decodes, meters, dispatches and answers one request. `Err` ends the
/// session.
async fn answer(
    ws: &mut WebSocket,
    st: &Arc<AppState>,
    ses: &mut SessionCtx,
    bucket: &mut Option<Box<AbuseWindow>>,
    text: &str,
) -> Result<(), End> {
    let gone = |ok: bool| if ok { Ok(()) } else { Err(End::Gone) };
    let (id, req) = match Request::decode(text) {
        Ok(x) => x,
        Err(e) => {
            if e.op.as_deref().is_some_and(|op| METERED.contains(&op))
                && !meter(ws, st, &ses.user, bucket, e.id).await?
            {
                return Ok(());
            }
            let body = ErrBody::new(e.code, e.message);
            return gone(send_err(ws, st, e.id, &body).await);
        }
    };
    if METERED.contains(&req.op()) && !meter(ws, st, &ses.user, bucket, Some(id)).await? {
        return Ok(());
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
    st: &AppState,
    user: &str,
    bucket: &mut Option<Box<AbuseWindow>>,
    re: Option<u64>,
) -> Result<bool, End> {
    let limits = &st.config.limits;
    let window =
        bucket.get_or_insert_with(|| Box::new(AbuseWindow::new(limits.send_per_sec, limits.send_burst)));
    let verdict = st.meter(user).await;
    let abuse = window.record(verdict);
    let retry = match verdict {
        Verdict::Allowed => return Ok(true),
        Verdict::Limited(_) if abuse => Duration::from_secs(1),
        Verdict::Limited(d) => d,
    };
    let mut body = ErrBody::new(ErrorCode::RateLimited, "too many requests; slow down");
    body.retry_after_ms = Some(retry.as_millis().max(1) as u64);
    if !send_err(ws, st, re, &body).await {
        return Err(End::Gone);
    }
    if abuse { Err(End::Close(CloseCode::RATE_ABUSE, "rate limit abuse")) } else { Ok(false) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn future_size<F: Future>(
        _: fn(WebSocket, Arc<AppState>, Option<crate::listener::PreHello>) -> F,
    ) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every idle connection keeps this future; a large await inlined into
    /// the loop (a request handler, the handshake) would multiply its size.
    #[test]
    fn an_idle_session_task_stays_small() {
        let size = future_size(run);
        assert!(size <= 1024, "the session future grew to {size} bytes; box the large awaits");
    }
}
