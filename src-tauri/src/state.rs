//! The app's state: the profile, the current client, the embedded server
//! and the settings. Connecting (and the embedded server's discovery) lives
//! here; commands only look the client up.

use crate::credentials::{self, SecretStore};
use crate::error::CmdError;
use crate::profile::{self, EmbeddedRecord, Profile};
use crate::settings::{Account, ConnectConfig, Settings};
use courier_client::{Client, ClientConfig, ClientEvent, ConnState, token_user};
use courier_proto::Conv;
use courier_proto::ids::is_valid_user;
use courier_server::{Config, Server, StartError};
use std::net::{SocketAddr, TcpListener};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};

/// How long `connect` waits for the first session before returning.
pub const CONNECT_WAIT: Duration = Duration::from_secs(5);

/// The first port the embedded server tries.
pub const EMBEDDED_PORT: u16 = 7700;

/// Shared by every command (`State<'_, AppState>`).
pub struct AppState {
    /// The profile and its directories.
    pub profile: Profile,
    client: Mutex<Option<Client>>,
    account: Mutex<Option<Account>>,
    embedded: tokio::sync::Mutex<Option<Server>>,
    /// The task renewing the embedded account's token (ends with its client).
    renewer: Mutex<Option<tokio::task::AbortHandle>>,
    /// Told each signed-in account's media cache directory, the only files
    /// the webview may load through the asset protocol (set by the shell).
    media_scope: Mutex<Option<MediaScopeHook>>,
    /// Notifications held back by do-not-disturb (missed calls), shown
    /// when it ends.
    deferred_notes: Mutex<Vec<crate::notify::Note>>,
    /// Where tokens are kept (the OS keyring, else a private file); found on
    /// first use.
    secrets: std::sync::OnceLock<Box<dyn SecretStore>>,
    settings: Mutex<Settings>,
    /// The conversation on screen (from `set_active_conversation` / `mark_read`).
    active: Mutex<Option<Conv>>,
    /// The last deep link received (the UI can ask after a cold start).
    last_link: Mutex<Option<crate::deeplink::DeepLink>>,
    /// True once the start-up connect (if any) finished.
    booted: watch::Sender<bool>,
    /// New clients (with their event stream) for the event forwarder.
    feed: mpsc::UnboundedSender<Feed>,
    feed_rx: Mutex<Option<mpsc::UnboundedReceiver<Feed>>>,
}

/// Receives a media cache directory to open to the webview.
pub type MediaScopeHook = Box<dyn Fn(&std::path::Path) + Send + Sync>;

/// A client and its event stream, subscribed before it started.
pub type Feed = (Client, broadcast::Receiver<ClientEvent>);

impl AppState {
    /// The state for `profile`, with its persisted settings.
    pub fn new(profile: Profile) -> AppState {
        let (feed, feed_rx) = mpsc::unbounded_channel();
        let settings = profile::read_json(&profile.dir.join("settings.json")).unwrap_or_default();
        AppState {
            profile,
            client: Mutex::new(None),
            account: Mutex::new(None),
            embedded: tokio::sync::Mutex::new(None),
            renewer: Mutex::new(None),
            media_scope: Mutex::new(None),
            secrets: std::sync::OnceLock::new(),
            deferred_notes: Mutex::new(Vec::new()),
            settings: Mutex::new(settings),
            active: Mutex::new(None),
            last_link: Mutex::new(None),
            booted: watch::channel(false).0,
            feed,
            feed_rx: Mutex::new(Some(feed_rx)),
        }
    }

    /// Sets what is told each account's media cache directory (existing
    /// accounts' at once, then each new sign-in's).
    pub fn set_media_scope(&self, hook: MediaScopeHook) {
        for dir in self.profile.media_dirs() {
            hook(&dir);
        }
        *lock(&self.media_scope) = Some(hook);
    }

    /// The signed-in client.
    ///
    /// # Errors
    /// `not_signed_in` before `connect`.
    pub fn client(&self) -> Result<Client, CmdError> {
        lock(&self.client).clone().ok_or_else(|| CmdError::new("not_signed_in", "not signed in"))
    }

    /// The client, if signed in.
    pub fn client_opt(&self) -> Option<Client> {
        lock(&self.client).clone()
    }

    /// The stream of signed-in clients, for the event forwarder (once).
    pub fn take_feed(&self) -> Option<mpsc::UnboundedReceiver<Feed>> {
        lock(&self.feed_rx).take()
    }

    /// Waits for the start-up connect, then returns the account.
    pub async fn account(&self) -> Option<Account> {
        let mut rx = self.booted.subscribe();
        let _ = rx.wait_for(|b| *b).await;
        lock(&self.account).clone()
    }

    /// Marks the start-up connect as done.
    pub fn set_booted(&self) {
        self.booted.send_replace(true);
    }

    /// The settings.
    pub fn settings(&self) -> Settings {
        lock(&self.settings).clone()
    }

    /// Replaces and persists the settings.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn set_settings(&self, s: Settings) -> Result<(), CmdError> {
        let s = s.bounded();
        profile::write_json(&self.profile.dir.join("settings.json"), &s)?;
        *lock(&self.settings) = s;
        Ok(())
    }

    /// Keeps a notification for when do-not-disturb ends (once per call;
    /// at most 50 kept).
    pub fn defer_note(&self, note: crate::notify::Note) {
        let mut notes = lock(&self.deferred_notes);
        if !notes.contains(&note) && notes.len() < 50 {
            notes.push(note);
        }
    }

    /// Replaces and persists the settings, and returns the notifications
    /// held back by do-not-disturb when this change ends it.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn change_settings(&self, s: Settings) -> Result<Vec<crate::notify::Note>, CmdError> {
        let quiet = |s: &Settings| s.do_not_disturb || !s.notifications;
        let was_quiet = quiet(&self.settings());
        let now_quiet = quiet(&s);
        let notifications = s.notifications;
        self.set_settings(s)?;
        let mut notes = lock(&self.deferred_notes);
        Ok(match (was_quiet, now_quiet, notifications) {
            (true, false, _) => std::mem::take(&mut *notes),
            (_, _, false) => {
                notes.clear();
                Vec::new()
            }
            _ => Vec::new(),
        })
    }

    /// The conversation on screen.
    pub fn active(&self) -> Option<Conv> {
        lock(&self.active).clone()
    }

    /// Sets the conversation on screen.
    pub fn set_active(&self, conv: Option<Conv>) {
        *lock(&self.active) = conv;
    }

    /// Records a deep link.
    pub fn set_last_link(&self, l: crate::deeplink::DeepLink) {
        *lock(&self.last_link) = Some(l);
    }

    /// The last deep link received.
    pub fn last_link(&self) -> Option<crate::deeplink::DeepLink> {
        lock(&self.last_link).clone()
    }

    /// The account to start with: `COURIER_SERVER` + `COURIER_USER` (or
    /// `COURIER_TOKEN`), `COURIER_EMBEDDED=1`, else `account.json`.
    pub fn startup_account(&self) -> (Option<ConnectConfig>, bool) {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if let Some(url) = env("COURIER_SERVER") {
            if let Some(user) = env("COURIER_USER") {
                return (Some(ConnectConfig::Dev { url, user }), false);
            }
            if let Some(token) = env("COURIER_TOKEN") {
                return (Some(ConnectConfig::Remote { url, token }), false);
            }
        }
        if env("COURIER_EMBEDDED").is_some_and(|v| v == "1") {
            return (Some(ConnectConfig::Embedded), true);
        }
        (self.saved_account().map(|a| a.server), true)
    }

    /// Signs in: resolves the server (starting or discovering the embedded
    /// one), opens the account's store, starts the connection manager and
    /// hands the client to the event forwarder. `persist` saves the account.
    ///
    /// # Errors
    /// Invalid configuration, a store that cannot be opened, or an embedded
    /// server that cannot start.
    pub async fn connect(
        &self,
        config: ConnectConfig,
        persist: bool,
        auto_profile: bool,
    ) -> Result<Account, CmdError> {
        let previous = lock(&self.account).clone();
        let mut fresh = false;
        let (url, token, user, key) = match &config {
            ConnectConfig::Embedded => {
                let url = self.embedded_url().await?;
                // Keep the user id of an earlier embedded sign-in.
                let user = match previous.as_ref().or(self.saved_account().as_ref()) {
                    Some(Account { user, server: ConnectConfig::Embedded }) => user.clone(),
                    _ => {
                        fresh = true;
                        random_user_id()
                    }
                };
                (url, self.embedded_token(&user)?, user, "embedded".to_owned())
            }
            ConnectConfig::Dev { url, user } => {
                if !is_valid_user(user) {
                    return Err(CmdError::new("invalid", format!("\"{user}\" is not a valid user id")));
                }
                (url.clone(), format!("dev:{user}"), user.clone(), url.clone())
            }
            ConnectConfig::Remote { url, token } => {
                let user = token_user(token).ok_or_else(|| {
                    CmdError::new(
                        "invalid",
                        "cannot tell the user from this token (expected a JWT or dev:<user>)",
                    )
                })?;
                (url.clone(), token.clone(), user, url.clone())
            }
        };
        let account_dir = self.profile.account_dir(&user, &key).map_err(|e| CmdError::new("invalid", e))?;
        if let Some(hook) = lock(&self.media_scope).as_ref() {
            hook(&Profile::media_dir(&account_dir));
        }
        let mut cfg = ClientConfig::new(vec![url], token, account_dir);
        cfg.device = format!("desktop-{}", self.profile.name);
        cfg.client_name = concat!("courier-desktop/", env!("CARGO_PKG_VERSION")).into();
        let client = Client::open(cfg)?;
        let events = client.subscribe();
        let embedded = matches!(config, ConnectConfig::Embedded);
        let renewal =
            embedded.then(|| renew_embedded_tokens(client.clone(), self.profile.root.join("server")));
        client.start();
        // Give the session a moment, so that what the UI does next (publish
        // the profile) goes out at once, and a refused sign-in is an error
        // here rather than a silent stop. Offline is fine: the account works
        // from its store and the manager keeps trying.
        let settled = tokio::time::timeout(
            CONNECT_WAIT,
            client.wait_state(|s| matches!(s, ConnState::Connected | ConnState::Stopped)),
        )
        .await;
        if settled == Ok(ConnState::Stopped) {
            let reason =
                client.stop_reason().map_or_else(|| "the server refused the sign-in".into(), |(_, r)| r);
            client.stop().await;
            return Err(CmdError::new("sign_in_refused", reason));
        }
        if let Some(old) = lock(&self.client).take() {
            tokio::spawn(async move { old.stop().await });
        }
        let account = Account { user, server: config };
        if persist {
            if matches!(account.server, ConnectConfig::Remote { .. }) {
                credentials::save_account(&self.profile, self.secrets(), &account)?;
            } else {
                // Nothing secret: no need to wake the OS keyring.
                profile::write_json(&self.profile.dir.join("account.json"), &account)?;
            }
        }
        *lock(&self.account) = Some(account.clone());
        *lock(&self.client) = Some(client.clone());
        let _ = self.feed.send((client.clone(), events));
        // Subscribed before the client started: no warning is missed.
        let renewer = renewal.map(|r| tokio::spawn(r).abort_handle());
        if let Some(old) = std::mem::replace(&mut *lock(&self.renewer), renewer) {
            old.abort();
        }
        if fresh {
            tokio::spawn(welcome(client, auto_profile));
        }
        Ok(account)
    }

    /// A fresh token for `user` on the embedded server, signed with the
    /// secret every profile of this OS user shares (see
    /// [`profile::embedded_secret`]).
    fn embedded_token(&self, user: &str) -> Result<String, CmdError> {
        mint_embedded_token(&self.profile.root.join("server"), user)
    }

    fn saved_account(&self) -> Option<Account> {
        let saved: Account = profile::read_json(&self.profile.dir.join("account.json"))?;
        match saved.server {
            // Only a remote account has a token (maybe still in the file, from
            // an older version: `load_account` moves it out).
            ConnectConfig::Remote { .. } => credentials::load_account(&self.profile, self.secrets()),
            _ => Some(saved),
        }
    }

    fn secrets(&self) -> &dyn SecretStore {
        self.secrets.get_or_init(|| credentials::store_for(&self.profile)).as_ref()
    }

    /// The embedded server's URL: ours if running, else another profile's
    /// (found through `<root>/embedded-server.json` and proving it holds
    /// the shared secret), else a new one started in-process on
    /// 127.0.0.1:7700 or the next free port, recorded in that file.
    async fn embedded_url(&self) -> Result<String, CmdError> {
        let mut slot = self.embedded.lock().await;
        if let Some(s) = slot.as_ref() {
            return Ok(format!("ws://{}", s.local_addr()));
        }
        let data_dir = self.profile.root.join("server");
        // Real auth, never dev tokens: any local process or web page can
        // reach a loopback port, and with `dev:` tokens it could be anyone.
        let secret = profile::embedded_secret(&data_dir).map_err(|e| {
            CmdError::new("embedded_server", format!("cannot read or create the local server's secret: {e}"))
        })?;
        let file = self.profile.embedded_file();
        // A record outlives a process that was killed, and its port may
        // since be anyone's: tokens go only to a server that proves it
        // holds the secret. (This profile's own record is always stale:
        // one process per profile.)
        if let Some(rec) = profile::read_record(&file)
            && rec.pid != std::process::id()
            && rec.profile != self.profile.name
            && proves_secret(rec.port, &secret).await
        {
            tracing::info!("using the embedded server of profile {} at {}", rec.profile, rec.url);
            return Ok(format!("ws://127.0.0.1:{}", rec.port));
        }
        // 7700, else the next free port (another app may take one between
        // the probe and the bind: then try the next), else any port.
        let ports =
            (EMBEDDED_PORT..EMBEDDED_PORT + 50).filter(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok());
        let server =
            start_on_first_free(ports.chain([0]), |port| embedded_config(port, &data_dir, &secret)).await?;
        let addr = server.local_addr();
        let url = format!("ws://{addr}");
        let rec = EmbeddedRecord {
            url: url.clone(),
            port: addr.port(),
            profile: self.profile.name.clone(),
            pid: std::process::id(),
        };
        if let Err(e) = profile::write_json(&file, &rec) {
            tracing::warn!("cannot record the embedded server: {e}");
        }
        tracing::info!("embedded server on {url}");
        *slot = Some(server);
        Ok(url)
    }

    /// Stops the client and the embedded server (removing its record).
    pub async fn shutdown(&self) {
        if let Some(r) = lock(&self.renewer).take() {
            r.abort();
        }
        let client = lock(&self.client).take();
        if let Some(c) = client {
            c.stop().await;
        }
        if let Some(s) = self.embedded.lock().await.take() {
            let file = self.profile.embedded_file();
            if profile::read_record(&file).is_some_and(|r| r.pid == std::process::id()) {
                let _ = std::fs::remove_file(file);
            }
            let _ = s.shutdown().await;
        }
    }

    /// The connection state as a `connection` event.
    pub fn connection_event(&self) -> Result<ClientEvent, CmdError> {
        let c = self.client()?;
        let (close_code, reason) = c.stop_reason().map(|(c, r)| (c, Some(r))).unwrap_or((None, None));
        Ok(ClientEvent::Connection { state: c.state(), url: None, retry_in_ms: None, reason, close_code })
    }
}

/// The embedded server's configuration: the desktop sizing
/// ([`Config::desktop`]: one store reader, a small page cache, short
/// queues) on loopback `port`, with real auth by `secret`.
fn embedded_config(port: u16, data_dir: &std::path::Path, secret: &str) -> Config {
    Config {
        listen: SocketAddr::from(([127, 0, 0, 1], port)),
        data_dir: data_dir.to_path_buf(),
        auth_secret: Some(secret.to_owned()),
        dev_auth: false,
        local_proof: true,
        ..Config::desktop()
    }
}

/// Starts a server with `config(port)` on the first of `ports` that is not
/// in use (port 0, any free port, is never skipped).
async fn start_on_first_free(
    ports: impl IntoIterator<Item = u16>,
    config: impl Fn(u16) -> Config,
) -> Result<Server, CmdError> {
    for port in ports {
        match Server::start(config(port)).await {
            Ok(s) => return Ok(s),
            Err(StartError::AddrInUse { .. }) if port != 0 => continue,
            Err(e) => {
                return Err(CmdError::new("embedded_server", format!("the local server did not start: {e}")));
            }
        }
    }
    Err(CmdError::new("embedded_server", "no free port for the local server"))
}

/// A new account on the embedded server: join the default room (like the
/// original demo's fixed rooms) and, when nobody chose a profile (start-up
/// sign-in), publish a random nickname and avatar preset.
async fn welcome(client: Client, auto_profile: bool) {
    let up =
        tokio::time::timeout(Duration::from_secs(10), client.wait_state(|s| s == ConnState::Connected)).await;
    if up.is_err() {
        return;
    }
    if auto_profile {
        let (name, avatar) = random_profile(client.me());
        if let Err(e) = client.set_profile(&name, &avatar, "").await {
            tracing::warn!("cannot set the profile: {e}");
        }
    }
    if let Err(e) = client.join("lobby").await {
        tracing::info!("did not join #lobby: {e}");
    }
}

/// A nickname from the user id's animal (`otter-4821` → `Swift Otter`) and
/// an avatar preset `avatar:<0..12>`.
pub fn random_profile(user: &str) -> (String, String) {
    use rand::Rng;
    const ADJ: &[&str] =
        &["Swift", "Quiet", "Bright", "Calm", "Brave", "Lucky", "Clever", "Gentle", "Merry", "Bold"];
    let mut rng = rand::rng();
    let animal = user.split('-').next().unwrap_or(user);
    let mut cap = animal.chars();
    let animal: String = cap.next().map(|c| c.to_uppercase().chain(cap).collect()).unwrap_or_default();
    (
        format!("{} {animal}", ADJ[rng.random_range(0..ADJ.len())]),
        format!("avatar:{}", rng.random_range(0..12)),
    )
}

/// How long a token minted for the embedded server lives. Short: it is
/// renewed automatically ([`renew_embedded_tokens`]).
pub const EMBEDDED_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// Signs a token for `user` with the embedded server's secret in `dir`.
fn mint_embedded_token(dir: &std::path::Path, user: &str) -> Result<String, CmdError> {
    let secret = profile::embedded_secret(dir).map_err(|e| {
        CmdError::new("embedded_server", format!("cannot read the local server's secret: {e}"))
    })?;
    courier_server::auth::mint_token(&secret, user, EMBEDDED_TOKEN_TTL, None)
        .map_err(|e| CmdError::new("invalid", e))
}

/// Keeps an embedded-server client signed in: when the server warns that
/// the token expires (`token_expiring`) or closed the session for it
/// (4002), mints a fresh one and hands it over. Subscribes at once (call it
/// before the client starts, so that no event is missed); the future runs
/// until aborted.
fn renew_embedded_tokens(
    client: Client,
    secret_dir: std::path::PathBuf,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut rx = client.subscribe();
    async move {
        loop {
            match rx.recv().await {
                // After a lag the warning may be among the lost events:
                // renewing once too often is harmless.
                Ok(ClientEvent::TokenExpiring { .. } | ClientEvent::TokenRequired)
                | Err(broadcast::error::RecvError::Lagged(_)) => {
                    match mint_embedded_token(&secret_dir, client.me()) {
                        Ok(token) => {
                            if let Err(e) = client.renew_token(&token).await {
                                tracing::warn!("token renewal refused: {e}");
                            }
                        }
                        Err(e) => tracing::error!("cannot renew the token: {}", e.message),
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    }
}

/// Whether the server on loopback `port` holds `secret`: it answers a
/// fresh nonce with [`courier_server::auth::local_proof`] (an embedded
/// server, `local_proof` on). Anything else (nothing there, another
/// program, a wrong or late answer) is false.
async fn proves_secret(port: u16, secret: &str) -> bool {
    use rand::Rng;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let nonce: String = rand::rng().sample_iter(rand::distr::Alphanumeric).take(48).map(char::from).collect();
    let Some(expected) = courier_server::auth::local_proof(secret, &nonce) else { return false };
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).await?;
        let req = format!(
            "GET /v1/local/proof?nonce={nonce} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await?;
        let mut answer = Vec::new();
        s.take(4096).read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let Ok(Ok(answer)) = tokio::time::timeout(Duration::from_secs(2), exchange).await else { return false };
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split_once("\r\n\r\n")
        .is_some_and(|(head, body)| head.starts_with("HTTP/1.1 200 ") && body == expected)
}

/// A friendly random user id for the embedded server, e.g. `otter-4821`.
pub fn random_user_id() -> String {
    use rand::Rng;
    const ANIMALS: &[&str] = &[
        "otter", "fox", "panda", "koala", "lynx", "heron", "puffin", "badger", "falcon", "gecko", "marmot",
        "orca", "quokka", "raven", "seal", "tapir", "walrus", "yak", "zebra", "ibis",
    ];
    let mut rng = rand::rng();
    format!("{}-{:04}", ANIMALS[rng.random_range(0..ANIMALS.len())], rng.random_range(0..10_000))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_server_is_sized_for_a_desktop() {
        let dir = std::path::Path::new("/tmp/x");
        let secret = "s".repeat(32);
        let mut c = embedded_config(7701, dir, &secret);
        let d = Config::desktop();
        assert_eq!((c.store_readers, c.store_cache_kib), (d.store_readers, d.store_cache_kib));
        assert_eq!((c.max_connections, c.outbound_queue), (d.max_connections, d.outbound_queue));
        assert!(c.store_readers < Config::default().store_readers);
        assert_eq!(c.listen, SocketAddr::from(([127, 0, 0, 1], 7701)));
        assert_eq!(
            (c.data_dir.as_path(), c.auth_secret.as_deref(), c.dev_auth),
            (dir, Some(secret.as_str()), false)
        );
        assert!(!c.validate().unwrap(), "real auth, no dev tokens");
    }

    #[test]
    fn random_ids_are_valid() {
        for _ in 0..100 {
            let u = random_user_id();
            assert!(is_valid_user(&u));
            let (name, avatar) = random_profile(&u);
            assert!(name.len() > 3 && name.chars().next().unwrap().is_uppercase(), "{name}");
            assert!(avatar.starts_with("avatar:"));
        }
    }

    /// A port taken between the probe and the bind is skipped for the
    /// next one; when every port is taken the error says so.
    #[tokio::test]
    async fn the_embedded_server_moves_past_a_busy_port() {
        let dir = tempfile::tempdir().unwrap();
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let busy = taken.local_addr().unwrap().port();
        let config = |port| Config {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            data_dir: dir.path().into(),
            ..Config::default()
        };
        let server = start_on_first_free([busy, 0], config).await.unwrap();
        assert_ne!(server.local_addr().port(), busy);
        server.shutdown().await.unwrap();
        let e = start_on_first_free([busy], config).await.err().expect("no free port");
        assert!(e.message.contains("no free port"), "{e:?}");
    }

    /// Whatever the webview sends, the settings stored (in memory and on
    /// disk) keep a short recent-emoji list.
    #[test]
    fn stored_settings_are_bounded() {
        let root = tempfile::tempdir().unwrap();
        let a = AppState::new(Profile::at(root.path().into(), "a".into()));
        let flood =
            Settings { recent_emoji: (0..10_000).map(|i| format!("e{i}")).collect(), ..Settings::default() };
        a.set_settings(flood).unwrap();
        assert_eq!(a.settings().recent_emoji.len(), crate::settings::RECENT_EMOJI_MAX);
        let again = AppState::new(Profile::at(root.path().into(), "a".into()));
        assert_eq!(again.settings().recent_emoji.len(), crate::settings::RECENT_EMOJI_MAX);
    }

    /// A record left by a process that was killed names a port someone
    /// else may now hold: a listener there that cannot prove the secret is
    /// sent nothing but the nonce, and the app starts its own server.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_recorded_port_that_cannot_prove_the_secret_gets_no_token() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let root = tempfile::tempdir().unwrap();
        let squatter = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = squatter.local_addr().unwrap().port();
        let heard = std::sync::Arc::new(Mutex::new(Vec::<u8>::new()));
        let log = heard.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = squatter.accept().await {
                let mut buf = vec![0; 65_536];
                let n = tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await;
                if let Ok(Ok(n)) = n {
                    lock(&log).extend_from_slice(&buf[..n]);
                }
                let fake = format!("HTTP/1.1 200 OK\r\nContent-Length: 64\r\n\r\n{}", "0".repeat(64));
                let _ = s.write_all(fake.as_bytes()).await;
            }
        });
        let stale =
            EmbeddedRecord { url: format!("ws://127.0.0.1:{port}"), port, profile: "a".into(), pid: 1 };
        profile::write_json(&root.path().join("embedded-server.json"), &stale).unwrap();
        let b = AppState::new(Profile::at(root.path().into(), "b".into()));
        let acc = b.connect(ConnectConfig::Embedded, true, false).await.unwrap();
        assert!(is_valid_user(&acc.user));
        let own = b.embedded.lock().await.as_ref().map(|s| s.local_addr().port());
        assert!(own.is_some_and(|p| p != port), "b started its own server");
        let heard = String::from_utf8_lossy(&lock(&heard)).into_owned();
        assert!(heard.starts_with("GET /v1/local/proof?nonce="), "only the proof was asked: {heard}");
        assert!(!heard.contains("eyJ") && !heard.contains("hello"), "no token went there: {heard}");
        b.shutdown().await;
    }

    /// The embedded server starts, is recorded for other profiles, and a
    /// second profile signs in on it instead of starting its own.
    #[tokio::test(flavor = "multi_thread")]
    async fn second_profile_finds_the_embedded_server() {
        let root = tempfile::tempdir().unwrap();
        let a = AppState::new(Profile::at(root.path().into(), "a".into()));
        let acc = a.connect(ConnectConfig::Embedded, true, true).await.unwrap();
        assert!(is_valid_user(&acc.user));
        let rec = profile::read_record(&root.path().join("embedded-server.json")).unwrap();
        assert_eq!(rec.profile, "a");
        // The same process would reuse its own server; pretend to be another one.
        let mut fake = rec.clone();
        fake.pid = 0;
        profile::write_json(&root.path().join("embedded-server.json"), &fake).unwrap();
        let b = AppState::new(Profile::at(root.path().into(), "b".into()));
        assert_eq!(b.embedded_url().await.unwrap(), rec.url);
        assert!(b.embedded.lock().await.is_none(), "b started no server of its own");
        // Sign-in persisted; the same user comes back on reconnect.
        let again = a.connect(ConnectConfig::Embedded, true, true).await.unwrap();
        assert_eq!(again.user, acc.user);
        let c = a.client().unwrap();
        c.wait_synced().await.unwrap();
        // b signs in there with a token it minted from the shared secret,
        // and chats with a.
        let acc_b = b.connect(ConnectConfig::Embedded, true, false).await.unwrap();
        assert_ne!(acc_b.user, acc.user);
        let cb = b.client().unwrap();
        assert_eq!(cb.state(), ConnState::Connected);
        let to_a = courier_proto::Target::User(acc.user.clone());
        cb.send_text(&to_a, "hi a, from profile b").unwrap();
        let conv = c.conv_of(&courier_proto::Target::User(acc_b.user.clone())).unwrap();
        let got =
            async {
                loop {
                    if c.history(&conv, None, 10).unwrap().iter().any(|m| {
                        serde_json::Value::Object(m.body.clone()).to_string().contains("from profile b")
                    }) {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            };
        tokio::time::timeout(Duration::from_secs(10), got).await.expect("a gets b's message");
        // Nothing secret in b's account file: its token is minted, not kept.
        let text = std::fs::read_to_string(root.path().join("b/account.json")).unwrap();
        assert!(!text.contains("eyJ"), "{text}");
        b.shutdown().await;
        a.shutdown().await;
    }

    /// A remote account's token is saved outside account.json and comes
    /// back at the next start; an embedded account saves no token at all.
    #[tokio::test(flavor = "multi_thread")]
    async fn saved_accounts_keep_tokens_out_of_account_json() {
        let root = tempfile::tempdir().unwrap();
        let p = Profile::at(root.path().into(), "a".into());
        let file = || Box::new(credentials::FileStore::new(p.dir.join("credentials.json")));
        let a = AppState::new(p.clone());
        let _ = a.secrets.set(file());
        let acc = a.connect(ConnectConfig::Embedded, true, false).await.unwrap();
        let url = format!("ws://{}", a.embedded.lock().await.as_ref().unwrap().local_addr());
        let text = std::fs::read_to_string(p.dir.join("account.json")).unwrap();
        assert!(text.contains(&acc.user) && !text.contains("token"), "{text}");
        let secret = profile::embedded_secret(&root.path().join("server")).unwrap();
        let token =
            courier_server::auth::mint_token(&secret, "erin-1", Duration::from_secs(600), None).unwrap();
        let remote = ConnectConfig::Remote { url, token: token.clone() };
        a.connect(remote.clone(), true, false).await.unwrap();
        let text = std::fs::read_to_string(p.dir.join("account.json")).unwrap();
        assert!(!text.contains(&token), "{text}");
        let again = AppState::new(p.clone());
        let _ = again.secrets.set(file());
        assert_eq!(again.startup_account().0, Some(remote));
        a.shutdown().await;
    }

    /// A web page cannot drive the embedded server: an upgrade carrying any
    /// `Origin`, or a `Host` that is not loopback (DNS rebinding), gets 403;
    /// a native client (no `Origin`) gets through to the upgrade.
    #[tokio::test(flavor = "multi_thread")]
    async fn embedded_server_refuses_web_pages() {
        use std::io::{Read, Write};
        let root = tempfile::tempdir().unwrap();
        let a = AppState::new(Profile::at(root.path().into(), "a".into()));
        a.connect(ConnectConfig::Embedded, false, false).await.unwrap();
        let addr = a.embedded.lock().await.as_ref().unwrap().local_addr();
        let status = move |host: String, origin: Option<&'static str>| {
            tokio::task::spawn_blocking(move || {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let origin = origin.map(|o| format!("Origin: {o}\r\n")).unwrap_or_default();
                write!(
                    s,
                    "GET /v1/ws HTTP/1.1\r\nHost: {host}\r\n{origin}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Protocol: courier.v1\r\n\
                     Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
                )
                .unwrap();
                let mut buf = [0u8; 12];
                s.read_exact(&mut buf).unwrap();
                String::from_utf8_lossy(&buf[9..12]).into_owned()
            })
        };
        let here = addr.to_string();
        assert_eq!(status(here.clone(), None).await.unwrap(), "101", "a native client");
        for origin in ["http://evil.example", "null", "http://127.0.0.1:1420", "tauri://localhost"] {
            assert_eq!(status(here.clone(), Some(origin)).await.unwrap(), "403", "{origin}");
        }
        assert_eq!(status(format!("evil.example:{}", addr.port()), None).await.unwrap(), "403", "rebinding");
        a.shutdown().await;
    }

    /// The asset protocol is opened to each account's media cache only:
    /// never the profile directory with settings.json, account.json, the
    /// databases, or the data root with the server's secret.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_webview_sees_only_media_caches() {
        let root = tempfile::tempdir().unwrap();
        let a = AppState::new(Profile::at(root.path().into(), "a".into()));
        let seen = std::sync::Arc::new(Mutex::new(Vec::<std::path::PathBuf>::new()));
        let rec = seen.clone();
        a.set_media_scope(Box::new(move |d| lock(&rec).push(d.to_owned())));
        let acc = a.connect(ConnectConfig::Embedded, true, false).await.unwrap();
        let a2 = AppState::new(Profile::at(root.path().into(), "a".into()));
        let rec = seen.clone();
        a2.set_media_scope(Box::new(move |d| lock(&rec).push(d.to_owned())));
        let dirs = lock(&seen).clone();
        let media = root.path().join(format!("a/accounts/{}@embedded/media", acc.user));
        assert_eq!(dirs, vec![media.clone(), media], "at sign-in, then for the existing account at start-up");
        for secret in ["a/account.json", "a/settings.json", "server/secret", "embedded-server.json"] {
            let p = root.path().join(secret);
            assert!(!dirs.iter().any(|d| p.starts_with(d)), "{secret} is reachable");
        }
        a.shutdown().await;
    }

    /// An account's token that ran out while the app was away (the first
    /// `hello` gets 4002) is replaced at once by a freshly minted one.
    #[tokio::test(flavor = "multi_thread")]
    async fn an_expired_embedded_token_is_replaced() {
        let root = tempfile::tempdir().unwrap();
        let a = AppState::new(Profile::at(root.path().into(), "a".into()));
        a.connect(ConnectConfig::Embedded, false, false).await.unwrap();
        let url = format!("ws://{}", a.embedded.lock().await.as_ref().unwrap().local_addr());
        let dir = root.path().join("server");
        let secret = profile::embedded_secret(&dir).unwrap();
        let short =
            courier_server::auth::mint_token(&secret, "dave-1", Duration::from_secs(1), None).unwrap();
        // Let it lapse (whole seconds: `exp` has a one-second resolution).
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let store = tempfile::tempdir().unwrap();
        let client = Client::open(ClientConfig::new(vec![url], short, store.path())).unwrap();
        let renewer = tokio::spawn(renew_embedded_tokens(client.clone(), dir));
        client.start();
        tokio::time::timeout(Duration::from_secs(15), client.wait_state(|s| s == ConnState::Connected))
            .await
            .expect("signed in with a renewed token");
        renewer.abort();
        client.stop().await;
        a.shutdown().await;
    }

    /// The embedded server checks tokens against the shared secret: one
    /// minted with it signs in (also from a second profile), one signed
    /// with anything else is refused.
    #[tokio::test(flavor = "multi_thread")]
    async fn embedded_server_takes_only_tokens_signed_with_its_secret() {
        let root = tempfile::tempdir().unwrap();
        let a = AppState::new(Profile::at(root.path().into(), "a".into()));
        a.connect(ConnectConfig::Embedded, true, false).await.unwrap();
        let url = format!("ws://{}", a.embedded.lock().await.as_ref().unwrap().local_addr());
        let secret = std::fs::read_to_string(root.path().join("server/secret")).unwrap();
        let b = AppState::new(Profile::at(root.path().into(), "b".into()));
        let good = courier_server::auth::mint_token(&secret, "bob-1", Duration::from_secs(60), None).unwrap();
        b.connect(ConnectConfig::Remote { url: url.clone(), token: good }, false, false).await.unwrap();
        let forged =
            courier_server::auth::mint_token(&"x".repeat(64), "bob-1", Duration::from_secs(60), None)
                .unwrap();
        let bad = b.connect(ConnectConfig::Remote { url, token: forged }, false, false).await;
        assert_eq!(bad.unwrap_err().code, "sign_in_refused");
        b.shutdown().await;
        a.shutdown().await;
    }

    /// A session whose token runs out is kept alive by the renewal task:
    /// the server warns at once about a 2 s token, the task hands over a
    /// fresh one, and the session outlives the first token. Without the
    /// renewal the server closes it with 4002 and the core asks for a token.
    #[tokio::test(flavor = "multi_thread")]
    async fn embedded_tokens_are_renewed_before_they_expire() {
        let root = tempfile::tempdir().unwrap();
        let a = AppState::new(Profile::at(root.path().into(), "a".into()));
        a.connect(ConnectConfig::Embedded, false, false).await.unwrap();
        let url = format!("ws://{}", a.embedded.lock().await.as_ref().unwrap().local_addr());
        let dir = root.path().join("server");
        let secret = profile::embedded_secret(&dir).unwrap();
        let short =
            courier_server::auth::mint_token(&secret, "carol-1", Duration::from_secs(2), None).unwrap();
        let store = tempfile::tempdir().unwrap();
        let client = Client::open(ClientConfig::new(vec![url], short, store.path())).unwrap();
        let mut events = client.subscribe();
        let renewer = tokio::spawn(renew_embedded_tokens(client.clone(), dir));
        client.start();
        tokio::time::timeout(Duration::from_secs(10), client.wait_state(|s| s == ConnState::Connected))
            .await
            .unwrap();
        let watch = async {
            loop {
                if let Ok(ClientEvent::TokenRequired) = events.recv().await {
                    return;
                }
            }
        };
        // Past the first token's expiry: no 4002 came.
        assert!(tokio::time::timeout(Duration::from_secs(4), watch).await.is_err(), "the token lapsed");
        assert_eq!(client.state(), ConnState::Connected);
        renewer.abort();
        client.stop().await;
        a.shutdown().await;
    }

    /// What the event forwarder gets: each sign-in hands over the client with
    /// an event stream subscribed before it started, and the events are the
    /// core's `ClientEvent`s whose JSON (`{"type": …}`) goes to the webview.
    #[tokio::test(flavor = "multi_thread")]
    async fn sign_in_feeds_the_forwarder() {
        let root = tempfile::tempdir().unwrap();
        let a = AppState::new(Profile::at(root.path().into(), "a".into()));
        let mut feed = a.take_feed().unwrap();
        assert!(a.take_feed().is_none(), "one forwarder");
        assert_eq!(a.client().unwrap_err().code, "not_signed_in");
        a.connect(ConnectConfig::Embedded, false, false).await.unwrap();
        let (client, mut rx) = feed.recv().await.unwrap();
        // The first event is the connection manager's own, not missed.
        let first = serde_json::to_value(rx.recv().await.unwrap()).unwrap();
        assert_eq!(first["type"], "connection", "{first}");
        let m = client
            .send(
                &courier_proto::Target::User("zed".into()),
                "text",
                serde_json::json!({"text": "hi"}).as_object().unwrap().clone(),
                None,
            )
            .unwrap();
        loop {
            let ev = serde_json::to_value(rx.recv().await.unwrap()).unwrap();
            if ev["type"] == "message_added" {
                assert_eq!(ev["message"]["cid"], m.cid);
                assert_eq!(ev["message"]["body"]["text"], "hi");
                break;
            }
        }
        assert_eq!(serde_json::to_value(a.connection_event().unwrap()).unwrap()["type"], "connection");
        // connect() returned with a live session: requests work at once.
        a.client().unwrap().set_profile("Zed", "avatar:1", "").await.unwrap();
        // A refused sign-in is an error, and the signed-in client stays.
        let url = format!("ws://{}", a.embedded.lock().await.as_ref().unwrap().local_addr());
        // A JWT for `mallory` with a made-up signature: the server refuses it.
        let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJtYWxsb3J5IiwiZXhwIjo5OTk5OTk5OTk5fQ.c2lnbmF0dXJl";
        let bad =
            a.connect(ConnectConfig::Remote { url: url.clone(), token: token.into() }, false, false).await;
        assert_eq!(bad.unwrap_err().code, "sign_in_refused");
        // The embedded server takes no dev tokens: a local process or web
        // page cannot be anyone with `dev:<user>`.
        let me = a.client().unwrap().me().to_owned();
        let bad = a
            .connect(ConnectConfig::Remote { url: url.clone(), token: format!("dev:{me}") }, false, false)
            .await;
        assert_eq!(bad.unwrap_err().code, "sign_in_refused", "dev tokens are refused");
        let bad = a.connect(ConnectConfig::Remote { url, token: "dev:bad user".into() }, false, false).await;
        assert_eq!(bad.unwrap_err().code, "invalid");
        assert_eq!(a.client().unwrap().me(), client.me());
        a.shutdown().await;
    }
}
