//! The application's handle: [`Client`], its errors, and its life cycle —
//! opening the account's store, starting and stopping the connection
//! manager (see `manager`), the connection state, and waiting for
//! sync.
//!
//! What the client can do lives in `api`, one file per area.

use crate::backoff::{Jitter, random_jitter};
pub use crate::config::ClientConfig;
use crate::conn::{Connector, RequestError, TcpConnector, ws_url};
use crate::events::{ClientEvent, ConnState};
use crate::manager;
use crate::media;
use crate::state::{Inner, lock};
use crate::store::{Store, StoreError};
use crate::tls::TlsConfig;
use courier_proto::{ErrBody, Limits};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use tokio::sync::{broadcast, watch};

/// Errors of the client API.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The local store failed.
    #[error(transparent)]
    Store(StoreError),
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

impl From<StoreError> for ClientError {
    /// A send to a channel the user left is the caller's mistake, not a
    /// failing store.
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::LeftChannel { .. } => ClientError::Invalid(e.to_string()),
            e => ClientError::Store(e),
        }
    }
}

impl From<serde_json::Error> for ClientError {
    fn from(e: serde_json::Error) -> Self {
        ClientError::Protocol(e.to_string())
    }
}

/// The result of the client API.
pub(crate) type Result<T> = std::result::Result<T, ClientError>;

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
    /// (e.g. an untrusted TLS certificate, or "the local database <file>
    /// failed: …" when the store failed during the session); `None` while
    /// connected.
    pub fn last_error(&self) -> Option<String> {
        lock(&self.inner.last_error).clone()
    }

    /// The server's clock now (ms): this device's clock corrected by the
    /// offset measured at the last hello. Invitation deadlines and edit
    /// windows are judged by it.
    pub fn server_now(&self) -> i64 {
        self.inner.server_now()
    }

    /// The server's limits (defaults before the first hello).
    pub fn limits(&self) -> Limits {
        self.inner.hello_limits()
    }

    /// The optional protocol features the server listed in the last
    /// `hello` (`"v1.1"` for edits, recalls, reactions, pins, mentions
    /// and roles; `"v1.2"` for call devices, call signals and call
    /// records); empty before the first hello.
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

    /// The data directory of this account.
    pub fn data_dir(&self) -> &Path {
        &self.inner.cfg.data_dir
    }
}

#[cfg(test)]
mod tests {
    use super::token_user;
    use serde_json::{Value, json};

    /// A token's `sub` becomes a directory name: only valid user ids pass, so a
    /// forged `../../x` never walks out of the profile.
    #[test]
    fn token_user_accepts_only_valid_ids() {
        use base64::Engine;
        let jwt = |sub: &str| {
            let enc = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
            format!("{}.{}.sig", enc(json!({"alg":"HS256"})), enc(json!({"sub": sub, "exp": 1})))
        };
        assert_eq!(token_user(&jwt("alice")).as_deref(), Some("alice"));
        for bad in ["../../x", "a/b", "..", ".", "", "a\\b", "x y", "/etc", "x\u{0}"] {
            assert_eq!(token_user(&jwt(bad)), None, "{bad:?}");
        }
        assert_eq!(token_user("dev:../x"), None);
        assert_eq!(token_user("dev:.."), None);
        assert_eq!(token_user("not-a-token"), None);
        assert_eq!(token_user("dev:bob").as_deref(), Some("bob"));
    }
}
