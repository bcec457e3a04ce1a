//! One WebSocket connection: the `hello` handshake, then a loop that reads
//! requests, writes replies and queued events, pings, watches the token's
//! expiry, and closes with the right code when anything ends the session.

use crate::auth::AuthError;
use crate::clock::now_ms;
use crate::hub::SessionHandle;
use crate::ops::{self, OpError, SessionCtx};
use crate::ratelimit::{TokenBucket, Verdict};
use crate::state::{AppState, event_frame};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use courier_proto::{CloseCode, ErrBody, ErrorCode, Event, HelloOk, Reply, Request};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until, timeout};

/// Longest a single write may take before the peer counts as dead.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most queued frames written before the socket is flushed.
const WRITE_BATCH: usize = 64;
/// Ops that take a token from the session's bucket.
const METERED: [&str; 4] = ["send", "signal", "invite", "typing"];

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
pub async fn run(mut ws: WebSocket, st: Arc<AppState>) {
    st.metrics.connections.inc();
    let _guard = ConnGuard(&st);
    let Some((mut ses, rx)) = handshake(&mut ws, &st).await else { return };
    st.metrics.sessions.inc();
    let end = serve(&mut ws, &st, &mut ses, rx).await;
    st.metrics.sessions.dec();
    let change = st.hub.unregister(&ses.handle, &ses.watched);
    st.presence_changed(&ses.user, change).await;
    if let End::Close(code, reason) = end {
        close(&mut ws, code, reason).await;
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
async fn handshake(ws: &mut WebSocket, st: &Arc<AppState>) -> Option<(SessionCtx, mpsc::Receiver<Arc<str>>)> {
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
    let (handle, rx) = st.hub.new_session(&identity.user, &device, st.config.outbound_queue);
    let change = st.hub.register(&handle);
    st.session_opened(&identity.user, &device, change).await;
    let ok = HelloOk {
        user: identity.user.clone(),
        session: handle.id.clone(),
        server_time: now_ms(),
        heartbeat_ms: st.config.heartbeat_ms,
        limits: st.config.limits,
        features: vec![courier_proto::FEATURE_V1_1.to_owned()],
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
        st.hub.unregister(&ses.handle, &ses.watched);
        return None;
    }
    st.presence_changed(&identity.user, change).await;
    Some((ses, rx))
}

/// Instants at which to warn about and enforce token expiry.
fn expiry_instants(exp: Option<i64>) -> (Option<Instant>, Option<Instant>) {
    let Some(exp) = exp else { return (None, None) };
    let now = now_ms();
    let at = |ms: i64| Instant::now() + Duration::from_millis((ms - now).max(0) as u64);
    (Some(at(exp * 1000 - 60_000)), Some(at(exp * 1000)))
}

const FAR: Duration = Duration::from_secs(86_400 * 365);

async fn serve(
    ws: &mut WebSocket,
    st: &Arc<AppState>,
    ses: &mut SessionCtx,
    mut rx: mpsc::Receiver<Arc<str>>,
) -> End {
    let hb = Duration::from_millis(st.config.heartbeat_ms);
    let dead_after = hb * 2 + Duration::from_secs(5);
    let mut ping = tokio::time::interval_at(Instant::now() + hb, hb);
    let dead = sleep_until(Instant::now() + dead_after);
    tokio::pin!(dead);
    let (warn_at, exp_at) = expiry_instants(ses.token_exp);
    let warn = sleep_until(warn_at.unwrap_or_else(|| Instant::now() + FAR));
    let expire = sleep_until(exp_at.unwrap_or_else(|| Instant::now() + FAR));
    tokio::pin!(warn, expire);
    let mut warned = warn_at.is_none();
    let mut expiring = exp_at.is_some();
    let mut bucket = TokenBucket::new(st.config.limits.send_per_sec, st.config.limits.send_burst);
    let mut shutdown = st.shutdown.clone();
    let handle: Arc<SessionHandle> = ses.handle.clone();
    if *shutdown.borrow() {
        return End::Close(CloseCode::GOING_AWAY, "server shutting down");
    }
    loop {
        tokio::select! {
            biased;
            (code, reason) = handle.close_requested() => {
                if code == CloseCode::POLICY {
                    st.metrics.slow_consumers.inc();
                }
                return End::Close(code, reason);
            }
            _ = shutdown.changed() => return End::Close(CloseCode::GOING_AWAY, "server shutting down"),
            () = &mut dead => return End::Close(CloseCode::HEARTBEAT_TIMEOUT, "heartbeat timeout"),
            () = &mut expire, if expiring => return End::Close(CloseCode::TOKEN_EXPIRED, "token expired"),
            () = &mut warn, if !warned => {
                warned = true;
                let exp = ses.token_exp.unwrap_or_default();
                handle.push(&event_frame(&Event::TokenExpiring { exp }));
            }
            // Queued events before new requests: a client that never stops
            // sending must still receive what it is sent.
            Some(frame) = rx.recv() => {
                // A peer that stopped reading blocks this write; a close
                // request (slow consumer, replacement) must still end it.
                tokio::select! {
                    written = write_queued(ws, st, frame, &mut rx) => if !written {
                        return End::Gone;
                    },
                    (code, reason) = handle.close_requested() => {
                        if code == CloseCode::POLICY {
                            st.metrics.slow_consumers.inc();
                        }
                        return End::Close(code, reason);
                    }
                }
            }
            msg = ws.recv() => {
                dead.as_mut().reset(Instant::now() + dead_after);
                match msg {
                    None | Some(Ok(Message::Close(_))) => return End::Gone,
                    Some(Err(e)) => return read_error(&e),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Binary(_))) => {
                        let err = ErrBody::new(ErrorCode::BadRequest, "binary frames are not part of the protocol");
                        if !send_err(ws, st, None, &err).await {
                            return End::Gone;
                        }
                    }
                    Some(Ok(Message::Text(t))) => {
                        st.metrics.frames_in.inc();
                        match on_text(ws, st, ses, &mut bucket, t.as_str()).await {
                            Ok(()) => {}
                            Err(end) => return end,
                        }
                        if ses.exp_changed {
                            ses.exp_changed = false;
                            let (w, e) = expiry_instants(ses.token_exp);
                            warned = w.is_none();
                            expiring = e.is_some();
                            warn.as_mut().reset(w.unwrap_or_else(|| Instant::now() + FAR));
                            expire.as_mut().reset(e.unwrap_or_else(|| Instant::now() + FAR));
                        }
                    }
                }
            }
            _ = ping.tick() => {
                if timeout(WRITE_TIMEOUT, ws.send(Message::Ping(Default::default()))).await.map_or(true, |r| r.is_err()) {
                    return End::Gone;
                }
            }
        }
    }
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

/// Writes a queued frame and whatever else is queued (up to a batch), then
/// flushes once.
async fn write_queued(
    ws: &mut WebSocket,
    st: &AppState,
    first: Arc<str>,
    rx: &mut mpsc::Receiver<Arc<str>>,
) -> bool {
    use futures_util::SinkExt;
    let work = async {
        ws.feed(Message::Text(Utf8Bytes::from(&*first))).await?;
        let mut n = 1;
        while n < WRITE_BATCH {
            let Ok(next) = rx.try_recv() else { break };
            ws.feed(Message::Text(Utf8Bytes::from(&*next))).await?;
            n += 1;
        }
        st.metrics.frames_out.inc_by(n as u64);
        ws.flush().await
    };
    matches!(timeout(WRITE_TIMEOUT, work).await, Ok(Ok(())))
}

/// Handles one text frame. `Err` ends the session.
async fn on_text(
    ws: &mut WebSocket,
    st: &Arc<AppState>,
    ses: &mut SessionCtx,
    bucket: &mut TokenBucket,
    text: &str,
) -> Result<(), End> {
    let gone = |ok: bool| if ok { Ok(()) } else { Err(End::Gone) };
    let (id, req) = match Request::decode(text) {
        Ok(x) => x,
        Err(e) => {
            if e.op.as_deref().is_some_and(|op| METERED.contains(&op)) && !meter(ws, st, bucket, e.id).await?
            {
                return Ok(());
            }
            let body = ErrBody::new(e.code, e.message);
            return gone(send_err(ws, st, e.id, &body).await);
        }
    };
    if METERED.contains(&req.op()) && !meter(ws, st, bucket, Some(id)).await? {
        return Ok(());
    }
    // Boxed: the handlers' futures are large, and inlined they would be
    // allocated with every idle session's task instead of per request.
    match Box::pin(ops::dispatch(st, ses, req)).await {
        Ok(ok) => gone(send_text(ws, st, Reply::ok_json(id, &ok)).await),
        Err(OpError(body)) => gone(send_err(ws, st, Some(id), &body).await),
    }
}

/// Takes a token. `Ok(true)`: go ahead; `Ok(false)`: refused with
/// `rate_limited` (already answered); `Err`: end the session (4029 on abuse).
async fn meter(
    ws: &mut WebSocket,
    st: &AppState,
    bucket: &mut TokenBucket,
    re: Option<u64>,
) -> Result<bool, End> {
    let (retry, abuse) = match bucket.take() {
        Verdict::Allowed => return Ok(true),
        Verdict::Limited(d) => (d, false),
        Verdict::Abuse => (Duration::from_secs(1), true),
    };
    let mut body = ErrBody::new(ErrorCode::RateLimited, "too many requests; slow down");
    body.retry_after_ms = Some(retry.as_millis().max(1) as u64);
    if !send_err(ws, st, re, &body).await {
        return Err(End::Gone);
    }
    if abuse { Err(End::Close(CloseCode::RATE_ABUSE, "rate limit abuse")) } else { Ok(false) }
}
