//! Messages: sending (queued in the durable outbox, also offline), retry
//! and delete of unsent ones, waiting for their verdict, the local history,
//! search and conversation list, read cursors, drafts, typing and signals.

use super::json_obj;
use crate::client::{Client, ClientError, Result};
use crate::events::ClientEvent;
use crate::model::{ConversationView, MessageView, UploadedMedia};
use crate::store::NewMessage;
use courier_proto::ids::{is_valid_cid, is_valid_user};
use courier_proto::request::MAX_MENTIONS;
use courier_proto::{Conv, Target, is_relation_kind};
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

impl Client {
    /// Waits until none of `cids` is pending any more; returns their
    /// messages as they are then (sent, or failed).
    ///
    /// # Errors
    /// On store failure.
    pub async fn wait_settled(&self, cids: &[String]) -> Result<Vec<MessageView>> {
        let mut rx = self.subscribe();
        loop {
            let mut out = Vec::new();
            for cid in cids {
                if let Some(m) = self.inner.store.message_by_cid(&self.inner.me, cid)? {
                    out.push(m);
                }
            }
            if out.iter().all(|m| m.status != crate::DeliveryStatus::Pending) {
                return Ok(out);
            }
            match rx.recv().await {
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return Ok(out),
            }
        }
    }

    /// Cids still in the outbox, oldest first.
    ///
    /// # Errors
    /// On store failure.
    pub fn outbox(&self) -> Result<Vec<String>> {
        Ok(self.inner.store.outbox_cids()?)
    }

    /// The conversation a message to `to` belongs to.
    ///
    /// # Errors
    /// A malformed target or a call target.
    pub fn conv_of(&self, to: &Target) -> Result<Conv> {
        if !to.is_valid() {
            return Err(ClientError::Invalid(format!("bad target {to:?}")));
        }
        to.conv(&self.inner.me).ok_or_else(|| ClientError::Invalid("messages cannot go to a call".into()))
    }

    /// Queues a message of any kind: written with its outbox row in one
    /// transaction, returned at once (also offline) as `pending`. The sender
    /// delivers it whenever connected; [`ClientEvent::MessageUpdated`]
    /// reports `sent` or `failed`.
    ///
    /// # Errors
    /// A bad target, an empty text, a malformed `reply_to`, a relation kind
    /// (those go through [`Client::edit`], [`Client::recall`],
    /// [`Client::react`] and [`Client::pin`]), or store failure.
    pub fn send(
        &self,
        to: &Target,
        kind: &str,
        body: Map<String, Value>,
        reply_to: Option<String>,
    ) -> Result<MessageView> {
        let conv = self.conv_of(to)?;
        if kind == "text" && body.get("text").and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(ClientError::Invalid("a text message needs non-empty text".into()));
        }
        if is_relation_kind(kind) {
            return Err(ClientError::Invalid(format!(
                "a `{kind}` is sent with Client::edit, recall, react or pin, which check and apply it"
            )));
        }
        if let Some(r) = reply_to.as_deref().filter(|r| !is_valid_cid(r)) {
            return Err(ClientError::Invalid(format!("reply_to {r:?} is not a message id")));
        }
        self.enqueue_as(conv, to, ulid::Ulid::new().to_string(), kind, body, reply_to)
    }

    /// Refuses a body larger than the server accepts (`max_body_bytes`, as
    /// compact JSON): queued, it could never be sent.
    pub(crate) fn check_body_size(&self, body: &Map<String, Value>) -> Result<()> {
        let max = self.limits().max_body_bytes;
        let len = serde_json::to_vec(body).map_or(usize::MAX, |b| b.len());
        if len > max {
            return Err(ClientError::Invalid(format!(
                "the message is too long: {len} bytes, the server takes at most {max}"
            )));
        }
        Ok(())
    }

    /// Queues a checked message under `cid` and wakes the sender.
    pub(crate) fn enqueue_as(
        &self,
        conv: Conv,
        to: &Target,
        cid: String,
        kind: &str,
        body: Map<String, Value>,
        reply_to: Option<String>,
    ) -> Result<MessageView> {
        self.check_body_size(&body)?;
        let m = self.inner.store.enqueue(&NewMessage {
            conv: conv.clone(),
            cid,
            from: self.inner.me.clone(),
            to: to.clone(),
            kind: kind.to_owned(),
            body,
            reply_to,
        })?;
        self.inner.emit(ClientEvent::MessageAdded { message: m.clone() });
        self.inner.emit_conversation(&conv);
        self.inner.outbox_wake.notify_one();
        Ok(m)
    }

    /// Queues a text message (see [`Client::send_text_with`] for replies
    /// and mentions).
    ///
    /// # Errors
    /// As [`Client::send`].
    pub fn send_text(&self, to: &Target, text: &str) -> Result<MessageView> {
        self.send_text_with(to, text, None, &[])
    }

    /// Queues a text message replying to `reply_to` (a mid of the same
    /// conversation) and mentioning `mentions` (user ids, v1.1: kept in
    /// `body.mentions`; the server drops those who are not members, and
    /// the mentioned are notified even in a muted conversation).
    ///
    /// # Errors
    /// A mention that is not a user id, more than 50 mentions, or as
    /// [`Client::send`].
    pub fn send_text_with(
        &self,
        to: &Target,
        text: &str,
        reply_to: Option<&str>,
        mentions: &[String],
    ) -> Result<MessageView> {
        let mut body = json_obj(json!({"text": text}));
        let mut named: Vec<&str> = Vec::new();
        for u in mentions {
            if !is_valid_user(u) {
                return Err(ClientError::Invalid(format!("cannot mention {u:?}: not a user id")));
            }
            if !named.contains(&u.as_str()) {
                named.push(u);
            }
        }
        if named.len() > MAX_MENTIONS {
            return Err(ClientError::Invalid(format!(
                "at most {MAX_MENTIONS} users can be mentioned at once"
            )));
        }
        if !named.is_empty() {
            body.insert("mentions".into(), json!(named));
        }
        self.send(to, "text", body, reply_to.map(str::to_owned))
    }

    /// Queues several text messages to one target in one durable
    /// transaction (all or none), delivered in this order.
    ///
    /// # Errors
    /// As [`Client::send`].
    pub fn send_texts(&self, to: &Target, texts: &[String]) -> Result<Vec<MessageView>> {
        let conv = self.conv_of(to)?;
        if texts.iter().any(String::is_empty) {
            return Err(ClientError::Invalid("a text message needs non-empty text".into()));
        }
        let batch: Vec<NewMessage> = texts
            .iter()
            .map(|t| NewMessage {
                conv: conv.clone(),
                cid: ulid::Ulid::new().to_string(),
                from: self.inner.me.clone(),
                to: to.clone(),
                kind: "text".into(),
                body: json_obj(json!({"text": t})),
                reply_to: None,
            })
            .collect();
        for m in &batch {
            self.check_body_size(&m.body)?;
        }
        let views = self.inner.store.enqueue_many(&batch)?;
        for m in &views {
            self.inner.emit(ClientEvent::MessageAdded { message: m.clone() });
        }
        self.inner.emit_conversation(&conv);
        self.inner.outbox_wake.notify_one();
        Ok(views)
    }

    /// Queues an application-defined message (`custom`).
    ///
    /// # Errors
    /// As [`Client::send`].
    pub fn send_custom(&self, to: &Target, body: Map<String, Value>) -> Result<MessageView> {
        self.send(to, "custom", body, None)
    }

    /// Queues an image already uploaded with [`Client::upload`].
    ///
    /// # Errors
    /// As [`Client::send`].
    pub fn send_image(
        &self,
        to: &Target,
        media: &UploadedMedia,
        name: &str,
        width: u32,
        height: u32,
        reply_to: Option<&str>,
    ) -> Result<MessageView> {
        let body = json!({"media": media.media, "mime": media.mime, "size": media.size, "name": name,
                          "width": width, "height": height});
        self.send(to, "image", json_obj(body), reply_to.map(str::to_owned))
    }

    /// Queues a file already uploaded with [`Client::upload`].
    ///
    /// # Errors
    /// As [`Client::send`].
    pub fn send_file(
        &self,
        to: &Target,
        media: &UploadedMedia,
        name: &str,
        reply_to: Option<&str>,
    ) -> Result<MessageView> {
        let body = json!({"media": media.media, "mime": media.mime, "size": media.size, "name": name});
        self.send(to, "file", json_obj(body), reply_to.map(str::to_owned))
    }

    /// Puts a `failed` message back into the outbox (same cid).
    ///
    /// # Errors
    /// [`ClientError::Invalid`] when no failed message has this cid.
    pub fn retry(&self, cid: &str) -> Result<MessageView> {
        let m = self
            .inner
            .store
            .retry_failed(&self.inner.me, cid)?
            .ok_or_else(|| ClientError::Invalid(format!("no failed message {cid}")))?;
        self.inner.emit(ClientEvent::MessageUpdated { message: m.clone() });
        self.inner.outbox_wake.notify_one();
        Ok(m)
    }

    /// Deletes an own message the server never stored (pending or failed).
    /// A pending one already in flight may still arrive.
    ///
    /// # Errors
    /// On store failure.
    pub fn delete_unsent(&self, cid: &str) -> Result<bool> {
        Ok(self.inner.store.delete_unsent(&self.inner.me, cid)?)
    }

    /// A page of history from the local store (see [`Store::history`](crate::Store::history)).
    ///
    /// # Errors
    /// On store failure.
    pub fn history(&self, conv: &Conv, before: Option<u64>, limit: u32) -> Result<Vec<MessageView>> {
        Ok(self.inner.store.history(conv, before, limit)?)
    }

    /// Local full-text search, newest first.
    ///
    /// # Errors
    /// On store failure.
    pub fn search(&self, query: &str, limit: u32) -> Result<Vec<MessageView>> {
        Ok(self.inner.store.search(query, limit)?)
    }

    /// Conversations with unread counts, most recent first.
    ///
    /// # Errors
    /// On store failure.
    pub fn conversations(&self) -> Result<Vec<ConversationView>> {
        Ok(self.inner.store.conversations(&self.inner.me)?)
    }

    /// Marks a conversation read up to `seq` (everything stored when
    /// `None`). The server learns it now, or after the next connect.
    ///
    /// # Errors
    /// On store failure.
    pub fn mark_read(&self, conv: &Conv, seq: Option<u64>) -> Result<()> {
        if self.inner.store.set_read(conv, seq)?.is_some() {
            self.inner.emit_conversation(conv);
            self.inner.ack_wake.notify_one();
        }
        Ok(())
    }

    /// Saves the draft of a conversation (empty clears it).
    ///
    /// # Errors
    /// On store failure.
    pub fn set_draft(&self, conv: &Conv, text: &str) -> Result<()> {
        self.inner.store.set_draft(conv, text)?;
        self.inner.emit_conversation(conv);
        Ok(())
    }

    /// Tells the other members this user is typing (online only; the
    /// server forwards at most one per 2 s).
    ///
    /// # Errors
    /// Offline, or the server's refusal.
    pub async fn typing(&self, conv: &Conv) -> Result<()> {
        self.call(json!({"op": "typing", "conv": conv})).await.map(drop)
    }

    /// Sends an ephemeral signal (not stored).
    ///
    /// # Errors
    /// Offline, or the server's refusal.
    pub async fn signal(&self, to: &Target, body: Map<String, Value>) -> Result<()> {
        self.call(json!({"op": "signal", "to": to, "body": body})).await.map(drop)
    }
}
