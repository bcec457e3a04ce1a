//! The application's handle: [`Client`], its errors, and its life cycle —
//! opening the account's store, starting and stopping the connection
//! manager (see [`crate::manager`]), the connection state, and waiting for
//! sync.
//!
//! What the client can do lives in [`crate::api`], one file per area.

use crate::backoff::{Jitter, random_jitter};
pub use crate::config::ClientConfig;
use crate::conn::{Connector, RequestError, TcpConnector, ws_url};
use crate::events::{ClientEvent, ConnState};
use crate::manager;
use crate::media;
use crate::model::{ConversationView, InviteView, MessageView, UploadedMedia, now_ms};
use crate::state::{Inner, lock};
use crate::store::{NewMessage, Store, StoreError};
use crate::sync;
use crate::tls::TlsConfig;
use courier_proto::ids::{is_valid_channel, is_valid_cid, is_valid_user};
use courier_proto::request::{MAX_MENTIONS, MAX_REACTION_KEY};
use courier_proto::{
    ChannelInfo, Conv, ErrBody, ErrorCode, FEATURE_V1_1, Invite, Limits, MemberInfo, Presence, Profile, Role,
    Target, is_relation_kind,
};
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::{broadcast, watch};
use tokio::time::timeout;

/// Errors of the client API.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The operation needs a live session and there is none.
    #[error("not connected to the server")]
    Offline,
    /// The server refused the request.
    #[error("server error {}: {}", .0.code, .0.message)]
    Server(Box<ErrBody>),
    /// The request got no reply in time.
    #[error("the server did not answer in time")]
    Timeout,
    /// The manager gave up (authentication refused, or replaced).
    #[error("connection stopped: {reason}")]
    Stopped {
        /// The close code, if the server sent one.
        code: Option<u16>,
        /// Why.
        reason: String,
    },
    /// A configuration value is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A user id, channel or conversation is malformed.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// The server replied with something this client cannot read.
    #[error("unexpected reply from the server: {0}")]
    Protocol(String),
    /// Media upload or download failed.
    #[error(transparent)]
    Media(#[from] media::MediaError),
    /// The server does not offer what was asked (e.g. edits on a server
    /// without protocol v1.1).
    #[error("not supported by this server: {0}")]
    Unsupported(String),
}

impl From<RequestError> for ClientError {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::Server(b) => ClientError::Server(b),
            RequestError::Disconnected => ClientError::Offline,
            RequestError::Timeout => ClientError::Timeout,
        }
    }
}

impl From<serde_json::Error> for ClientError {
    fn from(e: serde_json::Error) -> Self {
        ClientError::Protocol(e.to_string())
    }
}

type Result<T> = std::result::Result<T, ClientError>;

/// The user id a token is for, without verifying it: `dev:<user>`, or the
/// `sub` claim of a JWT. Only ids that are safe as a path component pass:
/// valid user ids (no `/`, `\`, spaces, ...) that are not `.` or `..`.
pub fn token_user(token: &str) -> Option<String> {
    use base64::Engine;
    // The user id becomes part of a directory name: never let a forged
    // token carry `../../x` or a bare `..` there.
    let safe = |u: &str| courier_proto::ids::is_valid_user(u) && !u.bytes().all(|b| b == b'.');
    if let Some(u) = token.strip_prefix("dev:") {
        return safe(u).then(|| u.to_owned());
    }
    let payload = token.split('.').nth(1)?;
    let bytes =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("sub")?.as_str().filter(|u| safe(u)).map(str::to_owned)
}
fn tls_config(cfg: &ClientConfig) -> Result<TlsConfig> {
    crate::tls::client_config(cfg.ca_file.as_deref()).map_err(|e| ClientError::Config(e.to_string()))
}
/// The handle the application holds: cheap to clone, all clones share one
/// connection, store and event stream. When the last clone is dropped the
/// connection manager shuts down (prefer [`Client::stop`], which waits).
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
    _owner: Arc<StopOnDrop>,
}

/// Held only by [`Client`] handles (never by background tasks), so its drop
/// means the application let go of the client.
struct StopOnDrop(watch::Sender<bool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("me", &self.inner.me).field("state", &self.state()).finish()
    }
}
impl Client {
    /// Opens the account's local store and prepares the client; call
    /// [`Client::start`] to connect. Works offline: everything local
    /// (history, search, send into the outbox) is available at once.
    ///
    /// # Errors
    /// A bad URL, a token whose user cannot be determined, or a store that
    /// cannot be opened (corrupt, newer, another account).
    pub fn open(cfg: ClientConfig) -> Result<Client> {
        let tls = tls_config(&cfg)?;
        Client::open_parts(cfg, Arc::new(TcpConnector::with_tls(tls.clone())), random_jitter(), tls)
    }

    /// [`Client::open`] with an injected connector and jitter source (tests).
    ///
    /// # Errors
    /// As [`Client::open`].
    pub fn open_with(cfg: ClientConfig, connector: Arc<dyn Connector>, jitter: Jitter) -> Result<Client> {
        let tls = tls_config(&cfg)?;
        Client::open_parts(cfg, connector, jitter, tls)
    }

    fn open_parts(
        cfg: ClientConfig,
        connector: Arc<dyn Connector>,
        jitter: Jitter,
        tls: TlsConfig,
    ) -> Result<Client> {
        if cfg.servers.is_empty() {
            return Err(ClientError::Config("no server URL given".into()));
        }
        let urls = cfg
            .servers
            .iter()
            .map(|s| ws_url(s))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| ClientError::Config(e.to_string()))?;
        let store = Arc::new(Store::open_dir(&cfg.data_dir)?);
        let me = match token_user(&cfg.token) {
            Some(u) => {
                store.claim_user(&u)?;
                u
            }
            None => store.setting("user")?.ok_or_else(|| {
                ClientError::Config(
                    "cannot tell the user from the token; sign in once with a JWT or dev token".into(),
                )
            })?,
        };
        let inner = Arc::new(Inner::new(cfg, store, me, urls, connector, jitter, tls));
        Ok(Client { _owner: Arc::new(StopOnDrop(inner.shutdown.clone())), inner })
    }

    /// Starts the connection manager (no-op when running).
    pub fn start(&self) {
        let mut m = lock(&self.inner.manager);
        if m.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        self.inner.shutdown.send_replace(false);
        *lock(&self.inner.stop_reason) = None;
        *m = Some(tokio::spawn(manager::run(self.inner.clone())));
    }

    /// Closes the session (code 1000) and stops reconnecting. The outbox
    /// keeps whatever was not acknowledged.
    pub async fn stop(&self) {
        self.inner.shutdown.send_replace(true);
        let handle = lock(&self.inner.manager).take();
        if let Some(h) = handle {
            let _ = h.await;
        }
    }

    /// The user this client acts for.
    pub fn me(&self) -> &str {
        &self.inner.me
    }

    /// The local store (read access for tools and tests).
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Subscribes to the event stream. A receiver that falls more than 4096
    /// events behind gets `Lagged` and should reload from the store.
    pub fn subscribe(&self) -> broadcast::Receiver<ClientEvent> {
        self.inner.events.subscribe()
    }

    /// The connection state now.
    pub fn state(&self) -> ConnState {
        *self.inner.state.borrow()
    }

    /// Why the manager stopped (close code, reason), when it did.
    pub fn stop_reason(&self) -> Option<(Option<u16>, String)> {
        lock(&self.inner.stop_reason).clone()
    }

    /// Why the last connection attempt failed or the last session ended
    /// (e.g. an untrusted TLS certificate); `None` while connected.
    pub fn last_error(&self) -> Option<String> {
        lock(&self.inner.last_error).clone()
    }

    /// The server's limits (defaults before the first hello).
    pub fn limits(&self) -> Limits {
        self.inner.hello_limits()
    }

    /// The optional protocol features the server listed in the last
    /// `hello` (`["v1.1"]` for edits, recalls, reactions, pins, mentions
    /// and roles); empty before the first hello.
    pub fn features(&self) -> Vec<String> {
        lock(&self.inner.hello).as_ref().map(|h| h.features.clone()).unwrap_or_default()
    }

    /// Waits until a sync has completed since [`Client::open`], i.e. the
    /// store holds every message the server had at that point.
    ///
    /// # Errors
    /// [`ClientError::Stopped`] when the manager gives up first.
    pub async fn wait_synced(&self) -> Result<()> {
        let mut synced = self.inner.synced.subscribe();
        let mut state = self.inner.state.subscribe();
        loop {
            if *synced.borrow_and_update() > 0 {
                return Ok(());
            }
            if *state.borrow_and_update() == ConnState::Stopped {
                let (code, reason) = self.stop_reason().unwrap_or((None, "stopped".into()));
                return Err(ClientError::Stopped { code, reason });
            }
            tokio::select! {
                _ = synced.changed() => {}
                _ = state.changed() => {}
            }
        }
    }

    /// Waits until the session completes its next sync (after a reconnect,
    /// or one that is in progress).
    pub async fn wait_next_sync(&self) {
        let mut synced = self.inner.synced.subscribe();
        synced.borrow_and_update();
        let _ = synced.changed().await;
    }

    /// Waits until the state satisfies `pred`.
    pub async fn wait_state(&self, pred: impl Fn(ConnState) -> bool) -> ConnState {
        let mut state = self.inner.state.subscribe();
        loop {
            let s = *state.borrow_and_update();
            if pred(s) {
                return s;
            }
            if state.changed().await.is_err() {
                return s;
            }
        }
    }

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

    /// Tells the manager the network is back (or changed): a waiting
    /// reconnect is tried at once instead of after its back-off.
    pub fn network_changed(&self) {
        self.inner.network_wake.notify_waiters();
    }

    /// Hands the client a fresh token: sent as `renew` when connected, used
    /// for the next `hello` otherwise (also resumes after close 4002).
    ///
    /// # Errors
    /// The server refusing the renewal.
    pub async fn renew_token(&self, token: &str) -> Result<()> {
        *lock(&self.inner.token) = token.to_owned();
        // A permit, not a wake-up of current waiters only: the manager may
        // not be waiting yet when a renewal answers its `TokenRequired`.
        self.inner.token_wake.notify_one();
        if let Some(s) = self.inner.session() {
            s.call(json!({"op": "renew", "token": token})).await?;
        }
        Ok(())
    }

    async fn call(&self, op: Value) -> Result<Value> {
        let s = self.inner.session().ok_or(ClientError::Offline)?;
        Ok(s.call(op).await?)
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

    // ---- messages ----------------------------------------------------

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
        let m = self.inner.store.enqueue(&NewMessage {
            conv: conv.clone(),
            cid: ulid::Ulid::new().to_string(),
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

    /// A page of history from the local store (see [`Store::history`]).
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

    // ---- v1.1: edits, recalls, reactions, pins, forwarding ------------

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
        if serde_json::to_vec(&body).map_or(usize::MAX, |b| b.len()) > limits.max_body_bytes {
            return Err(ClientError::Invalid(format!(
                "the new text is too long (at most {} bytes)",
                limits.max_body_bytes
            )));
        }
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

    /// Makes sure `body.media` names media the server still has: when it
    /// answers 404 the cached copy (if any) is uploaded again and the body
    /// points at the new id. Unreachable: left as it is (the send queues).
    async fn keep_media_available(&self, kind: &str, body: &mut Map<String, Value>) -> Result<()> {
        let Some(id) = body.get("media").and_then(Value::as_str).map(str::to_owned) else {
            return Err(ClientError::Invalid(format!("this {kind} has no media id")));
        };
        // A peer's id is checked before it reaches a URL or the cache table.
        if !courier_proto::ids::is_valid_media_id(&id) {
            return Err(ClientError::Invalid(format!("this {kind} has an invalid media id")));
        }
        let token = lock(&self.inner.token).clone();
        match media::exists(&self.http_base(), &self.inner.tls, &token, &id).await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => {
                tracing::debug!(error = %e, "cannot check media {id}; forwarding it as it is");
                return Ok(());
            }
        }
        let cached = self.inner.store.media_path(&id)?.filter(|p| p.exists());
        let Some(path) = cached else {
            return Err(ClientError::Invalid(format!(
                "the {kind} of this message is no longer on the server and not cached on this device, \
                 so it cannot be forwarded"
            )));
        };
        let bytes = tokio::fs::read(&path).await.map_err(media::MediaError::from)?;
        let mime = body.get("mime").and_then(Value::as_str).unwrap_or("application/octet-stream").to_owned();
        let up = self.upload(bytes, &mime).await?;
        body.insert("media".into(), json!(up.media));
        body.insert("size".into(), json!(up.size));
        Ok(())
    }

    fn require_v1_1(&self, what: &str) -> Result<()> {
        // Before the first hello the server is unknown: queue, it decides.
        match lock(&self.inner.hello).as_ref() {
            Some(h) if !h.features.iter().any(|f| f == FEATURE_V1_1) => Err(ClientError::Unsupported(
                format!("{what} needs protocol v1.1, which this server does not offer"),
            )),
            _ => Ok(()),
        }
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

    // ---- channels ----------------------------------------------------

    /// Public channels, every page (v1.2 servers page them by name; a v1
    /// server answers everything at once without `more`).
    ///
    /// # Errors
    /// Offline, or the server's refusal.
    pub async fn channels(&self) -> Result<Vec<ChannelInfo>> {
        let mut all: Vec<ChannelInfo> = Vec::new();
        loop {
            let mut req = json!({"op": "channels"});
            if let Some(last) = all.last() {
                req["after"] = json!(last.channel);
            }
            let v = self.call(req).await?;
            let page: Vec<ChannelInfo> =
                serde_json::from_value(v.get("channels").cloned().unwrap_or_default())?;
            // A page that does not move forward ends the walk, whatever
            // `more` says: a confused server cannot loop the client.
            let advanced = page.last().is_some_and(|p| all.last().is_none_or(|l| p.channel > l.channel));
            all.extend(page);
            if !advanced || !more(&v) {
                return Ok(all);
            }
        }
    }

    /// Joins a public channel and fetches its history.
    ///
    /// # Errors
    /// Offline, or `forbidden` for a missing or private channel.
    pub async fn join(&self, channel: &str) -> Result<Conv> {
        let v = self.call(json!({"op": "join", "channel": channel})).await?;
        let conv = Conv::channel(channel);
        let last = v.get("last_seq").and_then(Value::as_u64).unwrap_or(0);
        self.inner.store.ensure_conversation(&self.inner.me, &conv, last)?;
        if let Some(s) = self.inner.session() {
            sync::fill(&*self.inner, &*s, &conv, Some(last))
                .await
                .map_err(|e| ClientError::Protocol(e.to_string()))?;
        }
        self.inner.emit_conversation(&conv);
        Ok(conv)
    }

    /// Leaves a channel (its messages stay in the local store).
    ///
    /// # Errors
    /// Offline, or the server's refusal.
    pub async fn leave(&self, channel: &str) -> Result<()> {
        self.call(json!({"op": "leave", "channel": channel})).await?;
        self.inner.store.forget_conversation(&Conv::channel(channel))?;
        Ok(())
    }

    /// Creates a channel; the caller becomes its first member.
    ///
    /// # Errors
    /// Offline, `conflict` when the name exists.
    pub async fn create_channel(
        &self,
        channel: &str,
        title: &str,
        topic: &str,
        private: bool,
    ) -> Result<Conv> {
        self.call(json!({"op": "create_channel", "channel": channel, "title": title, "topic": topic, "private": private}))
            .await?;
        let conv = Conv::channel(channel);
        self.inner.store.ensure_conversation(&self.inner.me, &conv, 0)?;
        self.inner.emit_conversation(&conv);
        Ok(conv)
    }

    /// Adds a user to a (private) channel.
    ///
    /// # Errors
    /// Offline, or the server's refusal.
    pub async fn add_member(&self, channel: &str, user: &str) -> Result<()> {
        self.call(json!({"op": "add_member", "channel": channel, "user": user})).await.map(drop)
    }

    /// Members of a channel (with their v1.1 roles).
    ///
    /// # Errors
    /// Offline, or the server's refusal.
    pub async fn members(&self, channel: &str) -> Result<Vec<MemberInfo>> {
        let mut all: Vec<MemberInfo> = Vec::new();
        loop {
            let after = all.last().map(|m| m.user.clone());
            let (page, more) = self.members_page(channel, after.as_deref(), None).await?;
            let advanced = page.last().is_some_and(|p| after.as_ref().is_none_or(|a| p.user > *a));
            all.extend(page);
            if !advanced || !more {
                return Ok(all);
            }
        }
    }

    /// One page of a channel's members (v1.2): user ids after `after`
    /// (exclusive), at most `limit` (the server's default and cap: 200),
    /// and whether more follow.
    ///
    /// # Errors
    /// Offline, or the server's refusal.
    pub async fn members_page(
        &self,
        channel: &str,
        after: Option<&str>,
        limit: Option<u32>,
    ) -> Result<(Vec<MemberInfo>, bool)> {
        let mut req = json!({"op": "members", "channel": channel});
        if let Some(a) = after {
            req["after"] = json!(a);
        }
        if let Some(l) = limit {
            req["limit"] = json!(l);
        }
        let v = self.call(req).await?;
        let page = serde_json::from_value(v.get("members").cloned().unwrap_or_default())?;
        Ok((page, more(&v)))
    }

    /// Sets a member's role in a channel (v1.1; the owner's alone —
    /// `Role::Owner` transfers ownership and makes the old owner an admin).
    /// Members learn it from a `member` event with the role.
    ///
    /// # Errors
    /// A malformed channel or user id, offline, a server without v1.1, or
    /// the server's refusal (`forbidden` when not the owner, `not_found`
    /// when the user is not a member).
    pub async fn set_role(&self, channel: &str, user: &str, role: Role) -> Result<()> {
        check_channel_user(channel, user)?;
        self.require_v1_1("channel roles")?;
        self.call(json!({"op": "set_role", "channel": channel, "user": user, "role": role})).await.map(drop)
    }

    /// Removes a member from a channel (v1.1: the owner may remove anyone
    /// else, an admin only plain members). The removed user cannot join a
    /// public channel again until an owner or admin adds them.
    ///
    /// # Errors
    /// A malformed channel or user id, offline, a server without v1.1, or
    /// the server's refusal (`forbidden`, `not_found` for a non-member).
    pub async fn remove_member(&self, channel: &str, user: &str) -> Result<()> {
        check_channel_user(channel, user)?;
        self.require_v1_1("removing members")?;
        self.call(json!({"op": "remove_member", "channel": channel, "user": user})).await.map(drop)
    }

    // ---- presence and profiles ---------------------------------------

    /// Starts watching users' presence; returns their current presence.
    ///
    /// # Errors
    /// Offline, or the server's refusal.
    pub async fn watch(&self, users: &[String]) -> Result<Vec<Presence>> {
        let v = self.call(json!({"op": "watch", "users": users})).await?;
        Ok(serde_json::from_value(v.get("presence").cloned().unwrap_or_default())?)
    }

    /// Stops watching users.
    ///
    /// # Errors
    /// Offline, or the server's refusal.
    pub async fn unwatch(&self, users: &[String]) -> Result<()> {
        self.call(json!({"op": "unwatch", "users": users})).await.map(drop)
    }

    /// Profiles of users: fetched from the server when connected (and
    /// cached), else from the cache.
    ///
    /// # Errors
    /// The server's refusal or store failure.
    pub async fn profiles(&self, users: &[String]) -> Result<Vec<Profile>> {
        match self.call(json!({"op": "profiles", "users": users})).await {
            Ok(v) => {
                let ps: Vec<Profile> =
                    serde_json::from_value(v.get("profiles").cloned().unwrap_or_default())?;
                self.inner.store.upsert_profiles(&ps)?;
                Ok(ps)
            }
            Err(ClientError::Offline | ClientError::Timeout) => Ok(self.inner.store.profiles(users)?),
            Err(e) => Err(e),
        }
    }

    /// Sets this user's profile.
    ///
    /// # Errors
    /// Offline, or the server's refusal.
    pub async fn set_profile(&self, name: &str, avatar: &str, status: &str) -> Result<()> {
        self.call(json!({"op": "set_profile", "name": name, "avatar": avatar, "status": status})).await?;
        let profile = Profile {
            user: self.inner.me.clone(),
            name: name.into(),
            avatar: avatar.into(),
            status: status.into(),
        };
        self.inner.store.upsert_profiles(std::slice::from_ref(&profile))?;
        // The server tells watchers, not the user's own sessions: this one
        // learns it here (the UI shows the new name without a reload).
        self.inner.emit(ClientEvent::Profile { profile });
        Ok(())
    }

    // ---- call invitations --------------------------------------------

    fn record_invite(&self, v: &Value) -> Result<Option<InviteView>> {
        let Some(inv) = v.get("invite") else {
            return Ok(None);
        };
        let inv: Invite = serde_json::from_value(inv.clone())?;
        self.inner.store.upsert_invite(&inv)?;
        let view = InviteView::new(inv, &self.inner.me, now_ms());
        self.inner.emit(ClientEvent::Invite { invite: view.clone() });
        Ok(Some(view))
    }

    fn invite_error(&self, e: ClientError) -> ClientError {
        if let ClientError::Server(b) = &e
            && let Some(inv) = &b.invite
        {
            let _ = self.inner.store.upsert_invite(inv);
            self.inner
                .emit(ClientEvent::Invite { invite: InviteView::new(inv.clone(), &self.inner.me, now_ms()) });
        }
        e
    }

    /// Invites `to` to a call (ringing for `ttl_s` seconds).
    ///
    /// # Errors
    /// Offline, or the server's refusal.
    pub async fn invite(&self, to: &str, content: Map<String, Value>, ttl_s: u32) -> Result<InviteView> {
        let v = self.call(json!({"op": "invite", "to": to, "content": content, "ttl_s": ttl_s})).await?;
        self.record_invite(&v)?.ok_or_else(|| ClientError::Protocol("invite ok without invite".into()))
    }

    /// Answers an incoming invitation.
    ///
    /// # Errors
    /// Offline, `invite_final` when it was answered elsewhere (the mirror is
    /// updated from the error), or another refusal.
    pub async fn answer(
        &self,
        iid: &str,
        accept: bool,
        response: Map<String, Value>,
    ) -> Result<Option<InviteView>> {
        let v = self
            .call(json!({"op": "invite_answer", "iid": iid, "accept": accept, "response": response}))
            .await
            .map_err(|e| self.invite_error(e))?;
        self.record_invite(&v)
    }

    /// Cancels an outgoing invitation.
    ///
    /// # Errors
    /// As [`Client::answer`].
    pub async fn cancel_invite(&self, iid: &str) -> Result<Option<InviteView>> {
        let v =
            self.call(json!({"op": "invite_cancel", "iid": iid})).await.map_err(|e| self.invite_error(e))?;
        self.record_invite(&v)
    }

    /// Invitations as mirrored locally, newest first.
    ///
    /// # Errors
    /// On store failure.
    pub fn invites(&self) -> Result<Vec<InviteView>> {
        Ok(self.inner.store.invites(&self.inner.me)?)
    }

    // ---- media -------------------------------------------------------

    fn http_base(&self) -> String {
        media::http_base(&self.inner.urls[0])
    }

    /// Uploads bytes as media (`POST /v1/media`).
    ///
    /// # Errors
    /// Network failure or a refusal (e.g. 413).
    pub async fn upload(&self, bytes: Vec<u8>, mime: &str) -> Result<UploadedMedia> {
        let token = lock(&self.inner.token).clone();
        Ok(media::upload(&self.http_base(), &self.inner.tls, &token, bytes, mime).await?)
    }

    /// The local file of a media id, downloaded once into the cache.
    ///
    /// # Errors
    /// Network failure or a refusal (e.g. 404).
    pub async fn download(&self, media_id: &str) -> Result<PathBuf> {
        if !courier_proto::ids::is_valid_media_id(media_id) {
            return Err(ClientError::Invalid(format!("not a valid media id: {media_id:?}")));
        }
        if let Some(p) = self.inner.store.media_path(media_id)?
            && p.exists()
        {
            return Ok(p);
        }
        let token = lock(&self.inner.token).clone();
        let dir = self.inner.cfg.data_dir.join("media");
        let (path, mime, size) =
            media::download(&self.http_base(), &self.inner.tls, &token, media_id, &dir).await?;
        self.inner.store.put_media(media_id, &path, &mime, size)?;
        Ok(path)
    }

    /// The data directory of this account.
    pub fn data_dir(&self) -> &Path {
        &self.inner.cfg.data_dir
    }
}

fn json_obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn check_channel_user(channel: &str, user: &str) -> Result<()> {
    if !is_valid_channel(channel) {
        return Err(ClientError::Invalid(format!("{channel:?} is not a channel name")));
    }
    if !is_valid_user(user) {
        return Err(ClientError::Invalid(format!("{user:?} is not a user id")));
    }
    Ok(())
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

/// A paged ok's `more` (absent, as from a v1 server: no more).
fn more(ok: &Value) -> bool {
    ok.get("more").and_then(Value::as_bool).unwrap_or(false)
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
