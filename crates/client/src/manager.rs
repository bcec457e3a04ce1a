//! The connection manager: one task per client that keeps a session up.
//!
//! States `connecting → connected → reconnecting → …`, with exponential
//! back-off (cap + jitter, reset after a successful sync), fail-over across
//! the configured URLs, an immediate retry on
//! [`Client::network_changed`](crate::Client::network_changed), `stopped` on
//! close 4001/4003 or an `unauthenticated` hello, and a pause for
//! [`Client::renew_token`](crate::Client::renew_token) on 4002. Each session
//! runs three workers: the processor (sync, then pushed events and gap
//! fills), the outbox sender, and the cursor flusher (acks, reads).

use crate::backoff::{Backoff, BackoffConfig, TokenBucket};
use crate::conn::{RequestError, Session, SessionEnd};
use crate::events::{ClientEvent, ConnState};
use crate::model::now_ms;
use crate::outbox::{DrainError, Sender};
use crate::state::{Inner, lock};
use crate::store::StoreError;
use crate::sync;
use courier_proto::{CloseCode, Conv, ErrorCode, HelloOk, Limits};
use serde_json::json;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::{sleep, timeout};

/// How one connection attempt ended.
enum Outcome {
    /// Never got a session: dial or hello failed.
    Failed(String),
    /// A session ran and ended.
    Ended(SessionEnd, bool),
    /// A session ran and ended because the local store failed (what failed).
    LocalFailure(String),
    /// Authentication refused: stop.
    Refused(Option<u16>, String),
    /// The token expired (4002).
    TokenExpired,
    /// The application stopped the client.
    Shutdown,
}

/// Runs the manager until the application stops the client or the server
/// refuses it for good.
pub(crate) async fn run(inner: Arc<Inner>) {
    let mut backoff = Backoff::new(inner.cfg.backoff, inner.jitter.clone());
    let mut shutdown = inner.shutdown.subscribe();
    let mut idx = 0usize;
    let mut connected_once = false;
    loop {
        if *shutdown.borrow_and_update() {
            break;
        }
        inner.server.store(idx % inner.urls.len(), std::sync::atomic::Ordering::Relaxed);
        let url = inner.urls[idx % inner.urls.len()].clone();
        let st = if connected_once || backoff.attempts() > 0 {
            ConnState::Reconnecting
        } else {
            ConnState::Connecting
        };
        inner.set_state(st, Some(&url), None, None, None);
        let delay = match run_session(&inner, &url, &mut backoff).await {
            Outcome::Shutdown => break,
            Outcome::Refused(code, reason) => return stop(&inner, &url, code, reason),
            Outcome::TokenExpired => {
                if wait_for_token(&inner, &url, &mut shutdown).await {
                    continue;
                }
                break;
            }
            Outcome::Failed(reason) => {
                idx += 1;
                let d = backoff.next_delay();
                inner.set_state(ConnState::Reconnecting, Some(&url), Some(d), Some(reason), None);
                d
            }
            // The session itself was fine: no fail-over, but the back-off
            // grows (it is not reset by the sync that may have preceded the
            // failure), so a full disk or a read-only file is not hammered.
            Outcome::LocalFailure(reason) => {
                connected_once = true;
                let d = backoff.next_delay();
                inner.set_state(ConnState::Reconnecting, Some(&url), Some(d), Some(reason), None);
                d
            }
            Outcome::Ended(end, _synced) => {
                connected_once = true;
                if let Some(code) = end.code.filter(|c| !CloseCode::should_reconnect(*c)) {
                    let reason = if code == CloseCode::REPLACED {
                        "replaced by a newer session of this device".to_owned()
                    } else {
                        format!("authentication failed: {}", end.reason)
                    };
                    return stop(&inner, &url, Some(code), reason);
                }
                if end.code == Some(CloseCode::TOKEN_EXPIRED) {
                    if wait_for_token(&inner, &url, &mut shutdown).await {
                        continue;
                    }
                    break;
                }
                let d = backoff.next_delay();
                inner.set_state(ConnState::Reconnecting, Some(&url), Some(d), Some(end.reason), end.code);
                d
            }
        };
        tokio::select! {
            _ = sleep(delay) => {}
            _ = inner.network_wake.notified() => {}
            _ = shutdown.changed() => {}
        }
    }
    inner.set_state(ConnState::Disconnected, None, None, Some("stopped by the application".into()), None);
}

/// Gives up for good: records why and reports `stopped`.
fn stop(inner: &Inner, url: &str, code: Option<u16>, reason: String) {
    *lock(&inner.stop_reason) = Some((code, reason.clone()));
    inner.set_state(ConnState::Stopped, Some(url), None, Some(reason), code);
}

/// After close 4002: asks the application for a new token and waits for
/// [`Client::renew_token`](crate::Client::renew_token). False when the
/// application stops the client first.
async fn wait_for_token(inner: &Inner, url: &str, shutdown: &mut watch::Receiver<bool>) -> bool {
    inner.emit(ClientEvent::TokenRequired);
    inner.set_state(
        ConnState::Reconnecting,
        Some(url),
        None,
        Some("token expired; waiting for a new token".into()),
        Some(CloseCode::TOKEN_EXPIRED),
    );
    tokio::select! {
        _ = inner.token_wake.notified() => true,
        _ = shutdown.changed() => false,
    }
}

/// Dials `url`, says hello, and runs the session's workers until it ends.
async fn run_session(inner: &Arc<Inner>, url: &str, backoff: &mut Backoff) -> Outcome {
    let mut shutdown = inner.shutdown.subscribe();
    let ws = tokio::select! {
        r = timeout(inner.cfg.connect_timeout, inner.connector.connect(url)) => match r {
            Ok(Ok(ws)) => ws,
            Ok(Err(e)) => return Outcome::Failed(e.to_string()),
            Err(_) => return Outcome::Failed(format!("connecting to {url} timed out")),
        },
        _ = shutdown.changed() => return Outcome::Shutdown,
    };
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let (session, mut driver) = Session::start(ws, ev_tx, inner.cfg.request_timeout);
    let token = lock(&inner.token).clone();
    let hello = session.call(
        json!({"op": "hello", "token": token, "device": inner.cfg.device, "client": inner.cfg.client_name}),
    );
    let hello = tokio::select! {
        h = hello => h,
        _ = shutdown.changed() => { session.close(1000, "client stopping"); return Outcome::Shutdown; }
    };
    let hello: HelloOk = match hello {
        Ok(v) => match serde_json::from_value(v) {
            Ok(h) => h,
            Err(e) => {
                session.close(1000, "bad hello");
                return Outcome::Failed(format!("malformed hello ok: {e}"));
            }
        },
        Err(RequestError::Server(e)) if e.code == ErrorCode::Unauthenticated => {
            let end = timeout(Duration::from_secs(2), &mut driver).await.ok().and_then(|r| r.ok());
            let code = end.and_then(|e| e.code);
            if code == Some(CloseCode::TOKEN_EXPIRED) {
                return Outcome::TokenExpired;
            }
            return Outcome::Refused(
                code.or(Some(CloseCode::AUTH_FAILED)),
                format!("authentication refused: {}", e.message),
            );
        }
        Err(e) => {
            session.close(1000, "hello failed");
            let end = timeout(Duration::from_secs(2), &mut driver).await.ok().and_then(|r| r.ok());
            if let Some(end) = end.filter(|e| e.code.is_some()) {
                return Outcome::Ended(end, false);
            }
            return Outcome::Failed(format!("hello failed: {e}"));
        }
    };
    if hello.user != inner.me {
        session.close(1000, "wrong account");
        return Outcome::Refused(
            None,
            format!("the token is for {:?} but this client is for {:?}", hello.user, inner.me),
        );
    }
    session.set_heartbeat(Duration::from_millis(hello.heartbeat_ms));
    let limits = hello.limits;
    inner.clock_offset.store(hello.server_time - now_ms(), Ordering::Relaxed);
    *lock(&inner.hello) = Some(hello);
    *lock(&inner.store_failure) = None;
    *lock(&inner.session) = Some(session.clone());
    inner.set_state(ConnState::Connected, Some(url), None, None, None);

    let mut workers: JoinSet<()> = JoinSet::new();
    let (synced_tx, synced_rx) = oneshot::channel::<()>();
    workers.spawn(processor(inner.clone(), session.clone(), ev_rx, synced_tx));
    workers.spawn(outbox_worker(inner.clone(), session.clone(), synced_rx, limits));
    workers.spawn(cursor_worker(inner.clone(), session.clone()));

    let synced_before = *inner.synced.borrow();
    let end = tokio::select! {
        end = &mut driver => end.unwrap_or_else(|e| SessionEnd { code: None, reason: format!("session task failed: {e}") }),
        _ = shutdown.changed() => {
            session.close(1000, "client stopping");
            let _ = timeout(Duration::from_secs(3), &mut driver).await;
            *lock(&inner.session) = None;
            workers.shutdown().await;
            return Outcome::Shutdown;
        }
    };
    *lock(&inner.session) = None;
    workers.shutdown().await;
    if let Some(reason) = lock(&inner.store_failure).take() {
        return Outcome::LocalFailure(reason);
    }
    let synced = *inner.synced.borrow() != synced_before;
    if synced {
        backoff.reset();
    }
    Outcome::Ended(end, synced)
}

/// Sync, then pushed events in order. Any failure closes the session so the
/// manager reconnects and syncs again: the store never misses a message.
async fn processor(
    inner: Arc<Inner>,
    session: Arc<Session>,
    mut events: mpsc::UnboundedReceiver<courier_proto::Event>,
    synced: oneshot::Sender<()>,
) {
    let result = async {
        let (conversations, fetched) = sync::full_sync(&*inner, &*session).await?;
        sync::flush_cursors(&*inner, &*session).await?;
        inner.synced.send_modify(|g| *g += 1);
        inner.emit(ClientEvent::SyncCompleted { conversations, fetched });
        let _ = synced.send(());
        while let Some(ev) = events.recv().await {
            sync::handle_event(&*inner, &*session, ev).await?;
        }
        Ok::<(), sync::SyncError>(())
    }
    .await;
    match result {
        Ok(()) => {}
        Err(sync::SyncError::Store(e)) => local_failure(&inner, &session, &e),
        Err(e) => {
            tracing::debug!(error = %e, "processor stopped");
            if !matches!(e, sync::SyncError::Request(RequestError::Disconnected)) {
                session.close(1000, "resync needed");
            }
        }
    }
}

/// Ends the session on a local store failure (a full disk, a read-only or
/// corrupt file), recording it so that the manager reports the database and
/// what went wrong, and backs off, instead of a bare "resync needed" and a
/// reconnect at once after each sync. The next session syncs again, so
/// nothing the server holds is missed once the store works again.
fn local_failure(inner: &Inner, session: &Session, e: &StoreError) {
    let detail = match e {
        // SQLite's words, and what its extended code says when that adds
        // something (which write or read of the file failed).
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, msg)) => {
            let what = rusqlite::ffi::code_to_str(f.extended_code);
            match msg {
                Some(m) if !m.eq_ignore_ascii_case(what) => format!("{m} ({what})"),
                Some(m) => m.clone(),
                None => what.to_owned(),
            }
        }
        StoreError::Sqlite(e) => e.to_string(),
        other => other.to_string(),
    };
    let reason = format!("the local database {} failed: {detail}", inner.store.path().display());
    tracing::error!("{reason}");
    lock(&inner.store_failure).get_or_insert(reason);
    session.close(1000, "local database failed");
}

/// After the sync: drains the outbox, one drain per conversation at a time,
/// paced under the server's send rate.
async fn outbox_worker(
    inner: Arc<Inner>,
    session: Arc<Session>,
    synced: oneshot::Receiver<()>,
    limits: Limits,
) {
    if synced.await.is_err() {
        return;
    }
    let emitter = inner.clone();
    let sender = Arc::new(Sender {
        store: inner.store.clone(),
        me: inner.me.clone(),
        bucket: Mutex::new(TokenBucket::new(limits.send_per_sec, (limits.send_burst / 2).max(1))),
        backoff: BackoffConfig::default(),
        jitter: inner.jitter.clone(),
        emit: Box::new(move |e| emitter.emit(e)),
        max_frame_bytes: limits.max_frame_bytes,
    });
    let mut active: HashSet<Conv> = HashSet::new();
    let mut drains: JoinSet<(Conv, std::result::Result<(), DrainError>)> = JoinSet::new();
    loop {
        match inner.store.outbox_convs() {
            Ok(convs) => {
                for conv in convs {
                    if active.insert(conv.clone()) {
                        let (sender, session) = (sender.clone(), session.clone());
                        drains.spawn(async move {
                            let r = sender.drain(&session, &conv).await;
                            (conv, r)
                        });
                    }
                }
            }
            Err(e) => return local_failure(&inner, &session, &e),
        }
        tokio::select! {
            _ = inner.outbox_wake.notified() => {}
            Some(done) = drains.join_next() => {
                let Ok((conv, r)) = done else { continue };
                active.remove(&conv);
                match r {
                    Ok(()) => {}
                    Err(DrainError::Session(RequestError::Disconnected)) => return,
                    Err(DrainError::Store(e)) => return local_failure(&inner, &session, &e),
                    Err(e) => {
                        tracing::debug!(error = %e, "outbox drain stopped");
                        session.close(1000, "outbox stalled");
                        return;
                    }
                }
            }
        }
    }
}

/// Sends receive and read cursors when they move, batched.
async fn cursor_worker(inner: Arc<Inner>, session: Arc<Session>) {
    loop {
        inner.ack_wake.notified().await;
        // Batch: one ack per conversation for a burst of messages.
        sleep(Duration::from_millis(50)).await;
        if let Err(e) = sync::flush_cursors(&*inner, &*session).await {
            if let sync::SyncError::Store(e) = e {
                local_failure(&inner, &session, &e);
            } else if !matches!(e, sync::SyncError::Request(RequestError::Disconnected)) {
                session.close(1000, "cursor flush failed");
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests;
