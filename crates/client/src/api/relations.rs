//! Relations (protocol v1.1): edits, recalls, reactions and pins — checked
//! here before anything is queued, applied to their target at once (a
//! recall only once the server accepted it), sent through the outbox, and
//! undone when the server refuses them — and forwarding.

use super::json_obj;
use crate::client::{Client, ClientError, Result};
use crate::events::ClientEvent;
use crate::model::{MessageView, now_ms};
use crate::store::NewMessage;
use courier_proto::request::MAX_REACTION_KEY;
use courier_proto::{Conv, ErrBody, ErrorCode, Target, is_relation_kind};
use serde_json::{Map, Value, json};
use std::sync::atomic::Ordering;
use tokio::time::timeout;

impl Client {
    /// Replaces the text of an own `text` message (a v1.1 `edit`). The
    /// message shows the new text at once (pending) and the edit goes out
    /// through the outbox like any send; while connected this waits (up to
    /// the request timeout) for the server's verdict. Returns the message
    /// as it shows now.
    ///
    /// # Errors
    /// Checked here first: an unknown or recalled message, not a text, not
    /// this user's, the edit window of the last hello passed, an empty or
    /// too long text, a server without v1.1. Then the server's refusal —
    /// the message then shows its previous text again
    /// ([`ClientEvent::MessageUpdated`]).
    pub async fn edit(&self, conv: &Conv, mid: &str, text: &str) -> Result<MessageView> {
        self.require_v1_1("editing messages")?;
        if text.is_empty() {
            return Err(ClientError::Invalid("the new text is empty".into()));
        }
        let m = self.relation_target(conv, mid)?;
        if m.kind != "text" {
            return Err(ClientError::Invalid(format!(
                "only text messages can be edited, {mid} is a {}",
                m.kind
            )));
        }
        if m.from != self.inner.me {
            return Err(ClientError::Invalid("only your own messages can be edited".into()));
        }
        let limits = self.limits();
        if !self.within(&m, limits.edit_window_s) {
            return Err(ClientError::Invalid(format!(
                "message {mid} is too old to edit (the server allows {})",
                window(limits.edit_window_s)
            )));
        }
        let body = json_obj(json!({"target": mid, "text": text}));
        self.check_body_size(&body)?;
        self.relate(conv, "edit", body).await
    }

    /// Recalls a message for everyone (a v1.1 `recall`): an own message
    /// within the recall window, or — for a channel owner or admin — any
    /// message of the channel. Unlike the other relations it takes effect
    /// only once the server stored it, because it destroys local data: the
    /// text, the edits, the search index entry and the cached media.
    /// Queued through the outbox; while connected this waits (up to the
    /// request timeout) for the verdict. Returns the message as it shows
    /// now (recalled once the server accepted).
    ///
    /// # Errors
    /// Checked here first: an unknown or already recalled message; in a DM
    /// someone else's message or the recall window passed; a server
    /// without v1.1. Then the server's refusal (`forbidden` for a plain
    /// member recalling another's message, `conflict` past the window).
    pub async fn recall(&self, conv: &Conv, mid: &str) -> Result<MessageView> {
        self.require_v1_1("recalling messages")?;
        let m = self.relation_target(conv, mid)?;
        let window_s = self.limits().recall_window_s;
        // In a channel an owner/admin may recall anything at any time:
        // only the server knows the roles, so it decides there.
        if matches!(conv, Conv::Dm(..)) {
            if m.from != self.inner.me {
                return Err(ClientError::Invalid("only your own messages can be recalled in a chat".into()));
            }
            if !self.within(&m, window_s) {
                return Err(ClientError::Invalid(format!(
                    "message {mid} is too old to recall (the server allows {})",
                    window(window_s)
                )));
            }
        }
        self.relate(conv, "recall", json_obj(json!({"target": mid}))).await
    }

    /// Turns this user's reaction `key` (e.g. "👍", 1–32 bytes) on a
    /// message on or off (a v1.1 `reaction`). Shown at once (pending), sent
    /// through the outbox, undone if the server refuses it; a reaction that
    /// is already in the asked state sends nothing. While connected this
    /// waits (up to the request timeout) for the verdict. Returns the
    /// message as it shows now.
    ///
    /// # Errors
    /// A key of 0 or more than 32 bytes, an unknown or recalled message, a
    /// server without v1.1, or the server's refusal.
    pub async fn react(&self, conv: &Conv, mid: &str, key: &str, on: bool) -> Result<MessageView> {
        self.require_v1_1("reactions")?;
        if key.is_empty() || key.len() > MAX_REACTION_KEY {
            return Err(ClientError::Invalid(format!(
                "a reaction key has 1 to {MAX_REACTION_KEY} bytes, {key:?} has {}",
                key.len()
            )));
        }
        let m = self.relation_target(conv, mid)?;
        if m.reactions.get(key).is_some_and(|us| us.contains(&self.inner.me)) == on {
            return Ok(m);
        }
        self.relate(conv, "reaction", json_obj(json!({"target": mid, "key": key, "on": on}))).await
    }

    /// Pins a message in its conversation, or unpins it (a v1.1 `pin`; in
    /// a channel only owners and admins may). Shown at once (pending) in
    /// the message and the conversation's `pins`, sent through the outbox,
    /// undone if the server refuses it; nothing is sent when it is already
    /// in the asked state. While connected this waits (up to the request
    /// timeout) for the verdict. Returns the message as it shows now.
    ///
    /// # Errors
    /// An unknown or recalled message, a server without v1.1, or the
    /// server's refusal (`forbidden` for a plain channel member).
    pub async fn pin(&self, conv: &Conv, mid: &str, on: bool) -> Result<MessageView> {
        self.require_v1_1("pinning messages")?;
        let m = self.relation_target(conv, mid)?;
        if m.pinned.is_some() == on {
            return Ok(m);
        }
        self.relate(conv, "pin", json_obj(json!({"target": mid, "on": on}))).await
    }

    /// The pinned messages of a conversation held locally, oldest pin first.
    ///
    /// # Errors
    /// On store failure.
    pub fn pinned(&self, conv: &Conv) -> Result<Vec<MessageView>> {
        Ok(self.inner.store.pinned(conv)?)
    }

    /// The content message `mid` of `conv` if this device holds it (not a
    /// relation): the UI names the author of a forward only when the
    /// original it points at is here and was sent by that author.
    ///
    /// # Errors
    /// On store failure.
    pub fn message(&self, conv: &Conv, mid: &str) -> Result<Option<MessageView>> {
        Ok(self.inner.store.message_by_mid(conv, mid)?.filter(|m| !is_relation_kind(&m.kind)))
    }

    /// Forwards a message to `to`: a new send of the same kind with a copy
    /// of its body (as it shows now, without its mentions) marked
    /// `forwarded_from: {conv, mid, from}` (kept from the original when
    /// forwarding a forward). Images and files keep their media id; when
    /// the server no longer has the media but this device has it cached,
    /// it is uploaded again. Queued like any send; while connected this
    /// waits (up to the request timeout) for the verdict. Returns the new
    /// message.
    ///
    /// # Errors
    /// An unknown or recalled message, a bad target, media that is gone
    /// from the server and not cached here, or the server's refusal.
    pub async fn forward(&self, conv: &Conv, mid: &str, to: &Target) -> Result<MessageView> {
        let m =
            self.inner.store.message_by_mid(conv, mid)?.filter(|m| !is_relation_kind(&m.kind)).ok_or_else(
                || ClientError::Invalid(format!("no message {mid} in {conv} in the local store")),
            )?;
        if m.recalled {
            return Err(ClientError::Invalid(format!("message {mid} was recalled and cannot be forwarded")));
        }
        self.conv_of(to)?;
        let mut body = m.body.clone();
        body.remove("mentions");
        if !body.contains_key("forwarded_from") {
            body.insert("forwarded_from".into(), json!({"conv": conv, "mid": mid, "from": m.from}));
        }
        let has_media = matches!(m.kind.as_str(), "image" | "file");
        if has_media {
            self.keep_media_available(&m.kind, &mut body).await?;
        }
        let sent = self.send(to, &m.kind, body, None)?;
        match self.verdict(&sent.cid).await {
            Err(ClientError::Server(e)) if has_media && e.code == ErrorCode::NotFound => {
                return Err(ClientError::Invalid(format!(
                    "the {} of this message is gone from the server ({}), so it cannot be forwarded",
                    m.kind, e.message
                )));
            }
            other => other?,
        }
        Ok(self.inner.store.message_by_cid(&self.inner.me, &sent.cid)?.unwrap_or(sent))
    }

    /// The content message a relation may point at.
    fn relation_target(&self, conv: &Conv, mid: &str) -> Result<MessageView> {
        let m =
            self.inner.store.message_by_mid(conv, mid)?.ok_or_else(|| {
                ClientError::Invalid(format!("no message {mid} in {conv} in the local store"))
            })?;
        if is_relation_kind(&m.kind) {
            return Err(ClientError::Invalid(format!("{mid} is an {}, not a message", m.kind)));
        }
        if m.recalled {
            return Err(ClientError::Invalid(format!("message {mid} was recalled")));
        }
        Ok(m)
    }

    /// Whether `m` is younger than `window_s` by the server's clock.
    fn within(&self, m: &MessageView, window_s: Option<u64>) -> bool {
        let now = now_ms() + self.inner.clock_offset.load(Ordering::Relaxed);
        match (window_s, m.ts) {
            (Some(w), Some(ts)) => now <= ts.saturating_add((w as i64).saturating_mul(1000)),
            _ => true,
        }
    }

    /// Queues a relation to `body.target` (applied at once unless it is a
    /// recall), reports the target, and waits for the verdict.
    async fn relate(&self, conv: &Conv, kind: &str, body: Map<String, Value>) -> Result<MessageView> {
        let mid = body.get("target").and_then(Value::as_str).unwrap_or_default().to_owned();
        let to = match conv {
            Conv::Dm(..) => Target::User(
                conv.peer_of(&self.inner.me)
                    .ok_or_else(|| ClientError::Invalid(format!("{conv} is not a conversation of yours")))?
                    .to_owned(),
            ),
            Conv::Channel(c) => Target::Channel(c.clone()),
        };
        let row = self.inner.store.enqueue(&NewMessage {
            conv: conv.clone(),
            cid: ulid::Ulid::new().to_string(),
            from: self.inner.me.clone(),
            to,
            kind: kind.to_owned(),
            body,
            reply_to: None,
        })?;
        let target = self.inner.store.message_by_mid(conv, &mid)?;
        if kind != "recall"
            && let Some(t) = &target
        {
            self.inner.emit(ClientEvent::MessageUpdated { message: t.clone() });
        }
        if kind == "pin" {
            self.inner.emit_conversation(conv);
        }
        self.inner.outbox_wake.notify_one();
        self.verdict(&row.cid).await?;
        self.inner
            .store
            .message_by_mid(conv, &mid)?
            .or(target)
            .ok_or_else(|| ClientError::Invalid(format!("no message {mid} in {conv}")))
    }

    /// While connected, waits (up to the request timeout) until the queued
    /// message `cid` is sent or refused; the refusal is the error. Offline,
    /// or no verdict in time: `Ok` — it stays queued and goes out later.
    async fn verdict(&self, cid: &str) -> Result<()> {
        if self.inner.session().is_none() {
            return Ok(());
        }
        let Ok(settled) = timeout(self.inner.cfg.request_timeout, self.wait_settled(&[cid.to_owned()])).await
        else {
            return Ok(());
        };
        match settled?.first() {
            Some(m) if m.status == crate::DeliveryStatus::Failed => {
                Err(refusal(m.error.as_deref().unwrap_or("refused by the server")))
            }
            _ => Ok(()),
        }
    }
}

/// A window in words, for error messages.
fn window(s: Option<u64>) -> String {
    match s {
        Some(s) if s % 3600 == 0 => format!("{} h", s / 3600),
        Some(s) if s % 60 == 0 => format!("{} min", s / 60),
        Some(s) => format!("{s} s"),
        None => "no limit".into(),
    }
}

/// The server's refusal of a queued message, from the error the outbox
/// recorded (`"<code>: <message>"`).
fn refusal(recorded: &str) -> ClientError {
    let (code, message) = recorded.split_once(": ").unwrap_or(("", recorded));
    match serde_json::from_value::<ErrorCode>(json!(code)) {
        Ok(code) => ClientError::Server(Box::new(ErrBody::new(code, message))),
        Err(_) => ClientError::Protocol(format!("refused: {recorded}")),
    }
}
