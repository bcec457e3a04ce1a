//! The durable outbox's sender: drains queued messages FIFO per
//! conversation, one in flight per conversation, with the same `cid` on
//! every attempt so the server's idempotency makes retries safe.
//!
//! Transient errors (`rate_limited`, `internal`) are retried on the same
//! session after `retry_after_ms` or a back-off; a lost session stops the
//! drain (the next session resumes it from the store); any other error is
//! permanent and marks the message `failed`.
//!
//! Relations (v1.1 edits, recalls, reactions, pins) ride the same queue;
//! their outcome is reported as [`ClientEvent::MessageUpdated`] of their
//! target (applied, or undone when refused), plus
//! [`ClientEvent::ConversationUpdated`] when a pin or recall changes the
//! conversation's pinned list or unread counts.

use crate::backoff::{Backoff, BackoffConfig, Jitter, TokenBucket};
use crate::conn::{RequestError, Transport};
use crate::events::ClientEvent;
use crate::store::{Store, StoreError};
use courier_proto::{Conv, ErrorCode, SendOk};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why a drain stopped early.
#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    /// The session is gone (or stalled); the next one resumes.
    #[error("session lost: {0}")]
    Session(RequestError),
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The server's ok did not parse.
    #[error("malformed send ok: {0}")]
    Protocol(String),
}

/// Shared pacing and reporting for the drains of one session.
pub struct Sender {
    /// The store holding the outbox.
    pub store: Arc<Store>,
    /// This user.
    pub me: String,
    /// Client-side pacing under the server's send rate.
    pub bucket: Mutex<TokenBucket>,
    /// Back-off for `internal` errors.
    pub backoff: BackoffConfig,
    /// Jitter for that back-off.
    pub jitter: Jitter,
    /// Where status changes are reported.
    pub emit: Box<dyn Fn(ClientEvent) + Send + Sync>,
    /// The server's `max_frame_bytes`: a larger request would only make it
    /// close the socket (1009), again on every retry.
    pub max_frame_bytes: usize,
}

/// Room left in a frame for the request id the session adds
/// (`"id":18446744073709551615,`).
const ID_ROOM: usize = 32;

impl Sender {
    /// A pin changes the conversation's pinned list, a recall its unread
    /// counts: report the conversation.
    fn conversation_changed(&self, kind: &str, conv: &Conv) -> Result<(), StoreError> {
        if matches!(kind, "pin" | "recall")
            && let Some(c) = self.store.conversation(&self.me, conv)?
        {
            (self.emit)(ClientEvent::ConversationUpdated { conversation: c });
        }
        Ok(())
    }

    async fn pace(&self) {
        loop {
            let wait = self.bucket.lock().unwrap_or_else(|e| e.into_inner()).try_take();
            match wait {
                Ok(()) => return,
                Err(d) => tokio::time::sleep(d).await,
            }
        }
    }

    /// Sends every queued message of `conv`, oldest first, until the queue is
    /// empty.
    ///
    /// # Errors
    /// When the session is lost or the store fails; the remaining messages
    /// stay queued.
    pub async fn drain<T: Transport>(&self, transport: &T, conv: &Conv) -> Result<(), DrainError> {
        let mut backoff = Backoff::new(self.backoff, self.jitter.clone());
        while let Some(item) = self.store.outbox_head(conv)? {
            let m = &item.message;
            self.pace().await;
            let mut op = json!({"op": "send", "to": m.to, "cid": m.cid, "kind": m.kind, "body": m.body});
            if let Some(r) = &m.reply_to {
                op["reply_to"] = json!(r);
            }
            let len = serde_json::to_vec(&op).map_or(usize::MAX, |b| b.len()).saturating_add(ID_ROOM);
            if len > self.max_frame_bytes {
                // Queued before the server's limits were known (or they
                // shrank): it can never be sent. Failed, and the queue moves on.
                let why = format!(
                    "too_large: {len} bytes, the server takes frames of at most {}",
                    self.max_frame_bytes
                );
                if let Some(view) = self.store.mark_failed(&self.me, &m.cid, &why)? {
                    (self.emit)(ClientEvent::MessageUpdated { message: view });
                }
                self.conversation_changed(&m.kind, conv)?;
                continue;
            }
            match transport.request(op).await {
                Ok(v) => {
                    let ok: SendOk =
                        serde_json::from_value(v).map_err(|e| DrainError::Protocol(e.to_string()))?;
                    if let Some(view) = self.store.mark_sent(&self.me, &m.cid, &ok)? {
                        (self.emit)(ClientEvent::MessageUpdated { message: view });
                    }
                    self.conversation_changed(&m.kind, conv)?;
                    backoff.reset();
                }
                Err(RequestError::Server(e)) if e.code == ErrorCode::RateLimited => {
                    self.store.note_attempt(item.id, e.code.as_str())?;
                    self.bucket.lock().unwrap_or_else(|e| e.into_inner()).drain();
                    tokio::time::sleep(Duration::from_millis(e.retry_after_ms.unwrap_or(1000).max(1))).await;
                }
                Err(RequestError::Server(e)) if e.code.is_retryable() => {
                    self.store.note_attempt(item.id, e.code.as_str())?;
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Err(RequestError::Server(e)) => {
                    let why = format!("{}: {}", e.code, e.message);
                    if let Some(view) = self.store.mark_failed(&self.me, &m.cid, &why)? {
                        (self.emit)(ClientEvent::MessageUpdated { message: view });
                    }
                    self.conversation_changed(&m.kind, conv)?;
                }
                Err(other) => {
                    self.store.note_attempt(item.id, &other.to_string())?;
                    return Err(DrainError::Session(other));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewMessage;
    use courier_proto::{ErrBody, Target};
    use serde_json::Value;
    use std::collections::VecDeque;
    use tokio::time::Instant;

    /// Answers `send` from a script and records when each request came.
    struct Scripted {
        script: Mutex<VecDeque<Result<(), RequestError>>>,
        seen: Mutex<Vec<(Instant, String)>>,
        seq: Mutex<u64>,
    }

    impl Scripted {
        fn new(script: Vec<Result<(), RequestError>>) -> Arc<Scripted> {
            Arc::new(Scripted {
                script: Mutex::new(script.into()),
                seen: Mutex::default(),
                seq: Mutex::new(0),
            })
        }
    }

    impl Transport for Scripted {
        async fn request(&self, op: Value) -> Result<Value, RequestError> {
            let cid = op["cid"].as_str().unwrap().to_owned();
            self.seen.lock().unwrap().push((Instant::now(), cid));
            match self.script.lock().unwrap().pop_front().unwrap_or(Ok(())) {
                Ok(()) => {
                    let mut seq = self.seq.lock().unwrap();
                    *seq += 1;
                    Ok(
                        json!({"conv": "dm:alice:bob", "seq": *seq, "mid": format!("m{seq}"), "ts": 1, "dup": false}),
                    )
                }
                Err(e) => Err(e),
            }
        }
    }

    fn err(code: ErrorCode, retry: Option<u64>) -> Result<(), RequestError> {
        let mut e = ErrBody::new(code, "x");
        e.retry_after_ms = retry;
        Err(RequestError::Server(Box::new(e)))
    }

    fn setup(n: usize) -> (tempfile::TempDir, Sender, Conv, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open_dir(dir.path()).unwrap());
        let conv = Conv::dm("alice", "bob");
        let mut cids = Vec::new();
        for i in 0..n {
            let cid = format!("c{i}");
            store
                .enqueue(&NewMessage {
                    conv: conv.clone(),
                    cid: cid.clone(),
                    from: "alice".into(),
                    to: Target::User("bob".into()),
                    kind: "text".into(),
                    body: json!({"text": format!("t{i}")}).as_object().unwrap().clone(),
                    reply_to: None,
                })
                .unwrap();
            cids.push(cid);
        }
        let sender = Sender {
            store,
            me: "alice".into(),
            bucket: Mutex::new(TokenBucket::new(1000, 1000)),
            backoff: BackoffConfig { base: Duration::from_secs(1), cap: Duration::from_secs(8), factor: 2.0 },
            jitter: Arc::new(|| 0.0),
            emit: Box::new(|_| {}),
            max_frame_bytes: 65_536,
        };
        (dir, sender, conv, cids)
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limited_waits_retry_after_and_keeps_the_cid() {
        let (_d, sender, conv, _) = setup(2);
        let t = Scripted::new(vec![err(ErrorCode::RateLimited, Some(1500)), Ok(()), Ok(())]);
        let start = Instant::now();
        sender.drain(&t, &conv).await.unwrap();
        let seen = t.seen.lock().unwrap().clone();
        let cids: Vec<&str> = seen.iter().map(|(_, c)| c.as_str()).collect();
        assert_eq!(cids, ["c0", "c0", "c1"]);
        assert_eq!(seen[1].0 - start, Duration::from_millis(1500));
        let msgs = sender.store.all_messages(&conv).unwrap();
        assert_eq!(msgs.iter().map(|m| m.seq).collect::<Vec<_>>(), [Some(1), Some(2)]);
        assert!(sender.store.outbox_cids().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn internal_errors_back_off_exponentially() {
        let (_d, sender, conv, _) = setup(1);
        let internal = || err(ErrorCode::Internal, None);
        let t = Scripted::new(vec![internal(), internal(), internal(), Ok(())]);
        let start = Instant::now();
        sender.drain(&t, &conv).await.unwrap();
        let at: Vec<Duration> = t.seen.lock().unwrap().iter().map(|(i, _)| *i - start).collect();
        // jitter 0 → half of 1 s, 2 s, 4 s.
        assert_eq!(
            at,
            [
                Duration::ZERO,
                Duration::from_millis(500),
                Duration::from_millis(1500),
                Duration::from_millis(3500)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_fail_the_message_and_move_on() {
        let (_d, sender, conv, _) = setup(2);
        let t = Scripted::new(vec![err(ErrorCode::TooLarge, None), Ok(())]);
        sender.drain(&t, &conv).await.unwrap();
        let msgs = sender.store.all_messages(&conv).unwrap();
        let failed = msgs.iter().find(|m| m.cid == "c0").unwrap();
        assert_eq!(failed.status, crate::DeliveryStatus::Failed);
        assert!(failed.error.as_deref().unwrap().starts_with("too_large"));
        assert_eq!(msgs.iter().find(|m| m.cid == "c1").unwrap().seq, Some(1));
        // The user retries: same cid goes out again.
        sender.store.retry_failed("alice", "c0").unwrap().unwrap();
        sender.drain(&t, &conv).await.unwrap();
        assert_eq!(t.seen.lock().unwrap().last().unwrap().1, "c0");
        assert_eq!(sender.store.message_by_cid("alice", "c0").unwrap().unwrap().seq, Some(2));
    }

    /// A message too large for the server's frames (queued before its
    /// limits were known) would only get the socket closed, on every
    /// retry: it fails here, unsent, and the queue moves on.
    #[tokio::test(start_paused = true)]
    async fn a_message_larger_than_a_frame_fails_unsent_and_the_queue_moves_on() {
        let (_d, mut sender, conv, _) = setup(2);
        sender.max_frame_bytes = 150;
        let big = NewMessage {
            conv: conv.clone(),
            cid: "big".into(),
            from: "alice".into(),
            to: Target::User("bob".into()),
            kind: "text".into(),
            body: json!({"text": "x".repeat(200)}).as_object().unwrap().clone(),
            reply_to: None,
        };
        sender.store.enqueue(&big).unwrap();
        let t = Scripted::new(vec![]);
        sender.drain(&t, &conv).await.unwrap();
        let seen: Vec<String> = t.seen.lock().unwrap().iter().map(|(_, c)| c.clone()).collect();
        assert_eq!(seen, ["c0", "c1"], "the large one never went out");
        let failed = sender.store.message_by_cid("alice", "big").unwrap().unwrap();
        assert_eq!(failed.status, crate::DeliveryStatus::Failed);
        assert!(failed.error.as_deref().unwrap().starts_with("too_large"), "{:?}", failed.error);
        assert!(sender.store.outbox_cids().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_session_keeps_the_message_queued() {
        let (_d, sender, conv, _) = setup(2);
        let t = Scripted::new(vec![Ok(()), Err(RequestError::Disconnected)]);
        assert!(matches!(
            sender.drain(&t, &conv).await,
            Err(DrainError::Session(RequestError::Disconnected))
        ));
        assert_eq!(sender.store.outbox_cids().unwrap(), ["c1"]);
        let t2 = Scripted::new(vec![]);
        sender.drain(&t2, &conv).await.unwrap();
        assert_eq!(t2.seen.lock().unwrap()[0].1, "c1");
        assert!(sender.store.outbox_cids().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn pacing_spreads_a_burst_over_the_rate() {
        let (_d, mut sender, conv, _) = setup(5);
        sender.bucket = Mutex::new(TokenBucket::new(10, 2));
        let t = Scripted::new(vec![]);
        let start = Instant::now();
        sender.drain(&t, &conv).await.unwrap();
        let at: Vec<u128> = t.seen.lock().unwrap().iter().map(|(i, _)| (*i - start).as_millis()).collect();
        assert_eq!(at, [0, 0, 100, 200, 300]);
    }
}
