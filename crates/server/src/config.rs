//! Server configuration: one struct with defaults, read from an optional TOML
//! file and overridden by command-line flags and `COURIER_*` variables (the
//! binary does the overriding), then validated once at start-up.

use courier_proto::Limits;
use serde::{Deserialize, Deserializer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Everything a server needs to know. `Config::default()` is a working
/// loopback server with dev tokens and a `./courier-data` directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address for WebSocket and HTTP (one port serves both).
    pub listen: SocketAddr,
    /// Directory of the SQLite database.
    pub data_dir: PathBuf,
    /// HS256 secret for user tokens. Without one, only dev tokens work, and
    /// only on a loopback address.
    pub auth_secret: Option<String>,
    /// Bearer secret of `POST /v1/push`; without one the endpoint answers 401.
    pub admin_secret: Option<String>,
    /// Accept `dev:<user>` tokens. Turned on automatically when there is no
    /// auth secret and the listen address is loopback.
    pub dev_auth: bool,
    /// Most simultaneous TCP connections (HTTP and WebSocket together).
    pub max_connections: usize,
    /// Most connections from one IP address that have not completed `hello`
    /// (plain HTTP connections count until they close). Connections over
    /// it get a quick 503 and take no slot of `max_connections`.
    pub max_unauthenticated_per_ip: usize,
    /// Time a new connection (or an idle keep-alive connection) has to send
    /// a complete HTTP request head before it is closed.
    pub header_read_timeout_ms: u64,
    /// A plain HTTP connection on which nothing is read or written for this
    /// long is closed (a stalled body or an unread response). WebSocket
    /// sessions have their heartbeat instead.
    pub http_idle_timeout_ms: u64,
    /// Web origins (`scheme://host[:port]`) whose pages may open a WebSocket
    /// or call the HTTP API. A request with an `Origin` header not listed
    /// here gets 403; native clients send none.
    pub allowed_origins: Vec<String>,
    /// A second listener serving `/metrics` and `/healthz?detail` without
    /// the admin secret. Put it on a private interface.
    pub metrics_listen: Option<SocketAddr>,
    /// Server ping interval; a silent peer is dead after `2 × this + 5 s`.
    pub heartbeat_ms: u64,
    /// Time a new socket has to send `hello`.
    pub hello_timeout_ms: u64,
    /// Sign-ins (`hello`) of one user a node accepts in a row. Beyond them,
    /// see `hello_interval_ms`.
    pub hello_burst: u32,
    /// After `hello_burst` sign-ins, a node accepts one `hello` of a user per
    /// this many ms; one sooner gets `rate_limited` (with `retry_after_ms`)
    /// and close 4029, as a `hello` over the `sessions` cap does. Bounds a
    /// reconnect loop's work (a token check, two storage writes and a
    /// presence change per cycle). 0 turns it off.
    pub hello_interval_ms: u64,
    /// Limits announced to clients and enforced, including the v1.1 edit
    /// and recall windows (`limits.edit_window_s`, `limits.recall_window_s`).
    /// A `[limits]` table names only the limits it changes; the rest keep
    /// their defaults (see [`LimitsTable`]).
    #[serde(deserialize_with = "limits_table")]
    pub limits: Limits,
    /// Server admins: user ids that act as owner of every channel
    /// (including the default channels, which have no owner).
    pub admin_users: Vec<String>,
    /// Largest media upload.
    pub max_media_bytes: usize,
    /// Public channels that exist from the start.
    pub default_channels: Vec<String>,
    /// Frames queued for one session before it counts as a slow consumer
    /// and is closed with 1008.
    pub outbound_queue: usize,
    /// WebSocket read buffer per connection, and the most read from the
    /// socket at once. tungstenite's default (128 KiB) would cost gigabytes
    /// at 50 k connections, and every idle connection keeps this much; 1 KiB
    /// holds a typical request whole. Frames larger than this still work:
    /// the buffer grows for them and they take more reads.
    pub ws_read_buffer: usize,
    /// Bytes buffered before a WebSocket write is pushed to the socket
    /// (the session flushes after every burst anyway).
    pub ws_write_buffer: usize,
    /// Minimum interval between forwarded `typing` events per conversation
    /// and session.
    pub typing_interval_ms: u64,
    /// Presence changes of one user that reach watchers at once, in a row
    /// (a sign-in, a sign-out, ...). Beyond them, see `presence_interval_ms`.
    pub presence_burst: u32,
    /// After `presence_burst` changes, a user's presence reaches watchers
    /// at most once per this many ms, as one event with the user's state at
    /// that time (changes in between are coalesced, never the final one
    /// lost): a reconnect loop or a flapping network costs each watcher one
    /// event per interval. 0 turns the pacing off.
    pub presence_interval_ms: u64,
    /// Largest reply a session builds (protocol §8 v1.2: clients accept
    /// 16 MiB): a `history` page that would be larger comes back shorter
    /// with `more`, a `sync` drops its least recent conversations (see
    /// `ops::messages`). At most 16 MiB; at least twice `max_frame_bytes`
    /// and 16 KiB, so any one message fits.
    pub max_reply_bytes: usize,
    /// Cluster mode: PostgreSQL connection URL (storage for every node).
    /// Set together with `redis`, or neither.
    pub postgres: Option<String>,
    /// Cluster mode: Redis URL (cross-node fan-out and presence).
    pub redis: Option<String>,
    /// This node's id in a cluster; a random one when unset.
    pub node_id: Option<String>,
    /// A node that has not renewed its heartbeat for this long is dead: its
    /// users stop counting as online (within about 1⅓ × this).
    pub node_ttl_ms: u64,
    /// How often each cluster node looks for overdue invitations to expire
    /// (covering invitations whose node died).
    pub expiry_scan_ms: u64,
    /// Read-only SQLite connections: the most store reads running at once.
    /// Each has its own page cache and prepared statements.
    pub store_readers: usize,
    /// The SQLite writer's page cache in KiB (each reader's is at most
    /// SQLite's default, 2000 KiB, and never more than this).
    pub store_cache_kib: u32,
    /// Threads running sessions and requests (the async runtime's workers).
    /// 0: one per CPU, less one with the embedded SQLite engine, whose
    /// writer thread keeps a CPU busy under load (at least one). More
    /// workers than free CPUs cost CPU per message in wake-ups and task
    /// stealing between them (docs/benchmarks.md, issue 17).
    pub worker_threads: usize,
    /// v1.2: STUN/TURN servers announced in `ice_servers` (`stun:`, `turn:`
    /// or `turns:` URLs). TURN URLs need `turn_secret`.
    pub ice_urls: Vec<String>,
    /// v1.2: the coturn `use-auth-secret` shared secret (`static-auth-secret`
    /// in turnserver.conf) that signs TURN REST credentials.
    pub turn_secret: Option<String>,
    /// v1.2: how long TURN credentials are valid, in seconds (at least 12 h).
    pub turn_ttl_s: u64,
    /// v1.2: how long a call device may be away before its calls end with
    /// `gone` (a new session of the same device within it takes over).
    /// Protocol §12 says 30 s; tests shorten it.
    pub call_grace_ms: u64,
    /// Answer `GET /v1/local/proof?nonce=…` with [`crate::auth::local_proof`]:
    /// lets an app that shares `auth_secret` (the desktop app's embedded
    /// server) check that a loopback port is really that server before it
    /// sends a token there. Set by embedding code only, never from a file.
    #[serde(skip)]
    pub local_proof: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 7700)),
            data_dir: PathBuf::from("./courier-data"),
            auth_secret: None,
            admin_secret: None,
            dev_auth: false,
            max_connections: 10_000,
            max_unauthenticated_per_ip: 64,
            header_read_timeout_ms: 10_000,
            http_idle_timeout_ms: 30_000,
            allowed_origins: Vec::new(),
            metrics_listen: None,
            heartbeat_ms: 15_000,
            hello_timeout_ms: 10_000,
            hello_burst: 60,
            hello_interval_ms: 1000,
            limits: Limits::default(),
            admin_users: Vec::new(),
            max_media_bytes: 10 * 1024 * 1024,
            default_channels: vec!["lobby".into(), "random".into(), "tech".into()],
            outbound_queue: 1024,
            ws_read_buffer: 1024,
            ws_write_buffer: 16 * 1024,
            typing_interval_ms: 2000,
            presence_burst: 4,
            presence_interval_ms: 15_000,
            max_reply_bytes: MAX_REPLY_BYTES - (1 << 20),
            postgres: None,
            redis: None,
            node_id: None,
            node_ttl_ms: 10_000,
            expiry_scan_ms: 1000,
            store_readers: crate::store::sqlite::READERS,
            store_cache_kib: crate::store::sqlite::WRITER_CACHE_KIB,
            worker_threads: 0,
            ice_urls: Vec::new(),
            turn_secret: None,
            turn_ttl_s: crate::ice::DEFAULT_TURN_TTL_S,
            call_grace_ms: 30_000,
            local_proof: false,
        }
    }
}

impl Config {
    /// A server sized for one person's desktop (the app's embedded server):
    /// one store reader and a 1 MiB page cache instead of four readers and
    /// 8 MiB, room for a few local connections, and shorter per-session
    /// queues. Limits, timeouts and everything else as [`Config::default`];
    /// the caller sets the address, data directory and secret.
    pub fn desktop() -> Config {
        Config {
            max_connections: 64,
            max_unauthenticated_per_ip: 16,
            outbound_queue: 256,
            store_readers: 1,
            store_cache_kib: 1024,
            ..Config::default()
        }
    }

    /// The runtime's worker threads: `worker_threads`, or when 0 one per
    /// CPU (`cpus`), less one for the SQLite writer when no PostgreSQL is
    /// configured, and at least one.
    pub fn runtime_workers(&self, cpus: usize) -> usize {
        match self.worker_threads {
            0 if self.postgres.is_none() => cpus.saturating_sub(1).max(1),
            0 => cpus.max(1),
            n => n,
        }
    }
}

/// The largest frame clients accept (protocol §8 v1.2), and so the most
/// `max_reply_bytes` may be.
pub const MAX_REPLY_BYTES: usize = 16 << 20;

/// The most async workers `worker_threads` may ask for (a typo such as
/// 100000 would otherwise fail at start with the OS's thread limit).
pub const MAX_WORKER_THREADS: usize = 1024;

/// Shortest auth or admin secret accepted (a 256-bit key).
pub const MIN_SECRET_BYTES: usize = 32;

/// A configuration the server refuses to start with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No way to authenticate users safely on a public address.
    #[error(
        "refusing to listen on {0} without --auth-secret: dev tokens (anyone can be anyone) are \
         only allowed on a loopback address. Set --auth-secret / COURIER_AUTH_SECRET, or listen \
         on 127.0.0.1."
    )]
    NoSecretOnPublicAddress(SocketAddr),
    /// Dev tokens asked for on an address beyond loopback.
    #[error(
        "refusing --dev-auth on {0}: dev tokens let anyone sign in as anyone, so they are only \
         allowed on a loopback address. Drop --dev-auth (sign users in with tokens from \
         `courier-server token`), or listen on 127.0.0.1."
    )]
    DevAuthOnPublicAddress(SocketAddr),
    /// A secret too short to resist guessing.
    #[error(
        "the {which} is {len} bytes long; at least {MIN_SECRET_BYTES} are required. \
         Generate one with `courier-server secret`."
    )]
    ShortSecret {
        /// `auth secret`, `admin secret` or `TURN secret`.
        which: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// A value out of range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// The `--config` file could not be read or parsed.
    #[error("config file {path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

impl Config {
    /// Reads a TOML file; fields it does not name keep their defaults.
    ///
    /// # Errors
    /// [`ConfigError::File`] when the file cannot be read or parsed.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::File { path: path.into(), message: e.to_string() })?;
        toml::from_str(&text).map_err(|e| ConfigError::File { path: path.into(), message: e.to_string() })
    }

    /// Checks the configuration and settles dev authentication: with no auth
    /// secret on a loopback address dev tokens are turned on (and the returned
    /// flag says a warning is due); with none elsewhere the server refuses.
    ///
    /// # Errors
    /// [`ConfigError`] describing what to change.
    pub fn validate(&mut self) -> Result<bool, ConfigError> {
        let loopback = self.listen.ip().is_loopback();
        if self.auth_secret.as_deref().is_some_and(str::is_empty) {
            self.auth_secret = None;
        }
        if self.admin_secret.as_deref().is_some_and(str::is_empty) {
            self.admin_secret = None;
        }
        if self.auth_secret.is_none() && !loopback {
            return Err(ConfigError::NoSecretOnPublicAddress(self.listen));
        }
        if self.dev_auth && !loopback {
            return Err(ConfigError::DevAuthOnPublicAddress(self.listen));
        }
        for (which, secret) in [("auth secret", &self.auth_secret), ("admin secret", &self.admin_secret)] {
            if let Some(s) = secret
                && s.len() < MIN_SECRET_BYTES
            {
                return Err(ConfigError::ShortSecret { which, len: s.len() });
            }
        }
        self.allowed_origins = self
            .allowed_origins
            .iter()
            .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
            .filter(|o| !o.is_empty())
            .collect();
        if let Some(bad) = self.allowed_origins.iter().find(|o| !is_origin(o)) {
            return Err(ConfigError::Invalid(format!(
                "allowed origin `{bad}` is not an origin: write scheme://host[:port], e.g. https://chat.example.com"
            )));
        }
        let implied_dev = self.auth_secret.is_none() && !self.dev_auth;
        if implied_dev {
            self.dev_auth = true;
        }
        // A `Config` built in code may leave the windows (v1.1) and the caps
        // (v1.2) out; a file's `[limits]` table has them already (`limits_table`).
        let reference = Limits::default();
        self.limits.edit_window_s = self.limits.edit_window_s.or(reference.edit_window_s);
        self.limits.recall_window_s = self.limits.recall_window_s.or(reference.recall_window_s);
        self.limits.reaction_keys = self.limits.reaction_keys.or(reference.reaction_keys);
        self.limits.reactions_per_user = self.limits.reactions_per_user.or(reference.reactions_per_user);
        self.limits.channels_created = self.limits.channels_created.or(reference.channels_created);
        self.limits.sessions = self.limits.sessions.or(reference.sessions);
        self.limits.upload_bytes_day = self.limits.upload_bytes_day.or(reference.upload_bytes_day);
        self.limits.pending_invites = self.limits.pending_invites.or(reference.pending_invites);
        self.limits.pins = self.limits.pins.or(reference.pins);
        let l = &self.limits;
        let checks = [
            (self.max_connections >= 1, "max_connections must be at least 1"),
            (self.heartbeat_ms >= 100, "heartbeat_ms must be at least 100"),
            (self.hello_timeout_ms >= 100, "hello_timeout_ms must be at least 100"),
            (self.max_unauthenticated_per_ip >= 1, "max_unauthenticated_per_ip must be at least 1"),
            (
                (100..=10_000).contains(&self.header_read_timeout_ms),
                "header_read_timeout_ms must be between 100 and 10000",
            ),
            (self.http_idle_timeout_ms >= 100, "http_idle_timeout_ms must be at least 100"),
            (l.max_frame_bytes >= 1024, "limits.max_frame_bytes must be at least 1024"),
            (
                l.max_body_bytes >= 16 && l.max_body_bytes < l.max_frame_bytes,
                "limits.max_body_bytes must be at least 16 and below max_frame_bytes",
            ),
            (l.send_per_sec >= 1 && l.send_burst >= 1, "send_per_sec and send_burst must be at least 1"),
            (l.history_page >= 1, "limits.history_page must be at least 1"),
            (
                self.max_reply_bytes <= MAX_REPLY_BYTES
                    && self.max_reply_bytes >= 2 * l.max_frame_bytes + (16 << 10),
                "max_reply_bytes must be at most 16 MiB and at least 2 × limits.max_frame_bytes + 16 KiB",
            ),
            (self.outbound_queue >= 16, "outbound_queue must be at least 16"),
            (self.ws_read_buffer >= 512, "ws_read_buffer must be at least 512"),
            (self.store_readers >= 1, "store_readers must be at least 1"),
            (
                (1..=1000).contains(&self.presence_burst) && self.presence_interval_ms <= 3_600_000,
                "presence_burst must be between 1 and 1000 and presence_interval_ms at most 3600000 (0: off)",
            ),
            (
                (1..=1000).contains(&self.hello_burst) && self.hello_interval_ms <= 3_600_000,
                "hello_burst must be between 1 and 1000 and hello_interval_ms at most 3600000 (0: off)",
            ),
            (
                self.worker_threads <= MAX_WORKER_THREADS,
                "worker_threads must be at most 1024 (0: one per CPU)",
            ),
            (self.store_cache_kib >= 64, "store_cache_kib must be at least 64"),
            (
                l.edit_window_s.is_some_and(|s| s >= 1) && l.recall_window_s.is_some_and(|s| s >= 1),
                "limits.edit_window_s and limits.recall_window_s must be at least 1 (seconds)",
            ),
            (
                [
                    l.reaction_keys,
                    l.reactions_per_user,
                    l.channels_created,
                    l.sessions,
                    l.pending_invites,
                    l.pins,
                ]
                .iter()
                .all(|c| c.is_some_and(|n| n >= 1)),
                "limits.reaction_keys, reactions_per_user, channels_created, sessions, pending_invites and \
                 pins must be at least 1",
            ),
        ];
        for (ok, why) in checks {
            if !ok {
                return Err(ConfigError::Invalid(why.into()));
            }
        }
        if let Some(bad) = self.default_channels.iter().find(|c| !courier_proto::ids::is_valid_channel(c)) {
            return Err(ConfigError::Invalid(format!("default channel `{bad}` is not a valid name")));
        }
        if let Some(bad) = self.admin_users.iter().find(|u| !courier_proto::ids::is_valid_user(u)) {
            return Err(ConfigError::Invalid(format!(
                "admin user `{bad}` is not a valid user id: use 1-64 of A-Z a-z 0-9 _ . -"
            )));
        }
        self.validate_cluster()?;
        crate::ice::validate(self)?;
        Ok(implied_dev)
    }

    /// Whether a request's `Origin` header value may use this server: listed
    /// in `allowed_origins` (compared without case).
    pub fn origin_allowed(&self, origin: &str) -> bool {
        let origin = origin.trim().trim_end_matches('/');
        self.allowed_origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }

    /// Whether `user` is a server admin (acts as owner of every channel).
    pub fn is_server_admin(&self, user: &str) -> bool {
        self.admin_users.iter().any(|a| a == user)
    }

    /// Whether this is a cluster node (PostgreSQL and Redis configured).
    pub fn is_cluster(&self) -> bool {
        self.postgres.is_some() && self.redis.is_some()
    }

    fn validate_cluster(&mut self) -> Result<(), ConfigError> {
        for v in [&mut self.postgres, &mut self.redis, &mut self.node_id] {
            if v.as_deref().is_some_and(|s| s.trim().is_empty()) {
                *v = None;
            }
        }
        match (&self.postgres, &self.redis) {
            (None, None) => return Ok(()),
            (Some(_), Some(_)) => {}
            (Some(_), None) => {
                return Err(ConfigError::Invalid(
                    "--postgres needs --redis too (COURIER_REDIS): a cluster keeps messages in PostgreSQL \
                     and fans out over Redis. Give both, or neither for a single node on SQLite."
                        .into(),
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::Invalid(
                    "--redis needs --postgres too (COURIER_POSTGRES): a cluster keeps messages in PostgreSQL \
                     and fans out over Redis. Give both, or neither for a single node on SQLite."
                        .into(),
                ));
            }
        }
        if self.node_ttl_ms < 300 {
            return Err(ConfigError::Invalid("node_ttl_ms must be at least 300".into()));
        }
        if self.expiry_scan_ms < 50 {
            return Err(ConfigError::Invalid("expiry_scan_ms must be at least 50".into()));
        }
        match &self.node_id {
            Some(id) if !courier_proto::ids::is_valid_user(id) => Err(ConfigError::Invalid(format!(
                "--node-id `{id}` is not valid: use 1-64 of A-Z a-z 0-9 _ . -"
            ))),
            Some(_) => Ok(()),
            None => {
                self.node_id = Some(format!("node-{}", ulid::Ulid::new().to_string().to_lowercase()));
                Ok(())
            }
        }
    }
}

/// `scheme://host[:port]` with nothing after it.
fn is_origin(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once("://") else { return false };
    !scheme.is_empty()
        && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        && !rest.is_empty()
        && !rest.contains(['/', '?', '#', '@', ' '])
}

/// The `[limits]` table of a configuration file: any subset of
/// [`Limits`], the rest at their defaults (a table of only `sessions = 8`
/// is a whole configuration). A key it does not know is an error, so a
/// misspelt limit is not silently left at its default. The wire type
/// itself ignores unknown fields, as the protocol asks of clients. A limit
/// added to [`Limits`] does not compile until it is added here too
/// (`limits_table` builds the whole struct, with no `..` rest).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsTable {
    max_frame_bytes: Option<usize>,
    max_body_bytes: Option<usize>,
    send_per_sec: Option<u32>,
    send_burst: Option<u32>,
    history_page: Option<u32>,
    edit_window_s: Option<u64>,
    recall_window_s: Option<u64>,
    reaction_keys: Option<u32>,
    reactions_per_user: Option<u32>,
    channels_created: Option<u32>,
    sessions: Option<u32>,
    upload_bytes_day: Option<u64>,
    pending_invites: Option<u32>,
    pins: Option<u32>,
}

fn limits_table<'de, D: Deserializer<'de>>(d: D) -> Result<Limits, D::Error> {
    let t = LimitsTable::deserialize(d)?;
    let l = Limits::default();
    Ok(Limits {
        max_frame_bytes: t.max_frame_bytes.unwrap_or(l.max_frame_bytes),
        max_body_bytes: t.max_body_bytes.unwrap_or(l.max_body_bytes),
        send_per_sec: t.send_per_sec.unwrap_or(l.send_per_sec),
        send_burst: t.send_burst.unwrap_or(l.send_burst),
        history_page: t.history_page.unwrap_or(l.history_page),
        edit_window_s: t.edit_window_s.or(l.edit_window_s),
        recall_window_s: t.recall_window_s.or(l.recall_window_s),
        reaction_keys: t.reaction_keys.or(l.reaction_keys),
        reactions_per_user: t.reactions_per_user.or(l.reactions_per_user),
        channels_created: t.channels_created.or(l.channels_created),
        sessions: t.sessions.or(l.sessions),
        upload_bytes_day: t.upload_bytes_day.or(l.upload_bytes_day),
        pending_invites: t.pending_invites.or(l.pending_invites),
        pins: t.pins.or(l.pins),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_without_secret_means_dev_tokens() {
        let mut c = Config::default();
        assert!(c.validate().unwrap());
        assert!(c.dev_auth);
    }

    #[test]
    fn public_address_without_secret_is_refused() {
        let mut c = Config { listen: "0.0.0.0:7700".parse().unwrap(), ..Config::default() };
        let e = c.validate().unwrap_err();
        assert!(e.to_string().contains("--auth-secret"), "{e}");
        c.auth_secret = Some("s".repeat(32));
        assert!(!c.validate().unwrap());
        assert!(!c.dev_auth);
    }

    #[test]
    fn dev_auth_beyond_loopback_is_refused_even_with_a_secret() {
        let secret = Some("k".repeat(32));
        let mut c = Config {
            listen: "0.0.0.0:7700".parse().unwrap(),
            dev_auth: true,
            auth_secret: secret.clone(),
            ..Config::default()
        };
        let e = c.validate().unwrap_err();
        assert!(matches!(e, ConfigError::DevAuthOnPublicAddress(_)), "{e}");
        assert!(e.to_string().contains("--dev-auth"), "{e}");
        let mut c = Config {
            listen: "[::1]:7700".parse().unwrap(),
            dev_auth: true,
            auth_secret: secret,
            ..Config::default()
        };
        c.validate().unwrap();
    }

    #[test]
    fn short_secrets_are_refused() {
        let mut c = Config { auth_secret: Some("change-me".into()), ..Config::default() };
        let e = c.validate().unwrap_err();
        assert!(matches!(e, ConfigError::ShortSecret { which: "auth secret", len: 9 }), "{e}");
        assert!(e.to_string().contains("courier-server secret"), "{e}");
        let mut c = Config { admin_secret: Some("x".repeat(31)), ..Config::default() };
        assert!(matches!(c.validate().unwrap_err(), ConfigError::ShortSecret { which: "admin secret", .. }));
        let mut c = Config {
            auth_secret: Some("x".repeat(32)),
            admin_secret: Some("y".repeat(32)),
            ..Config::default()
        };
        c.validate().unwrap();
    }

    #[test]
    fn origins_are_normalised_and_checked() {
        let mut c = Config { allowed_origins: vec!["HTTPS://Chat.Example.com/".into()], ..Config::default() };
        c.validate().unwrap();
        assert!(c.origin_allowed("https://chat.example.com"));
        assert!(!c.origin_allowed("https://chat.example.com.evil.net"));
        assert!(!c.origin_allowed("null"));
        for bad in ["chat.example.com", "https://x/path", "https://"] {
            let mut c = Config { allowed_origins: vec![bad.into()], ..Config::default() };
            assert!(c.validate().unwrap_err().to_string().contains("allowed origin"), "{bad}");
        }
    }

    #[test]
    fn header_timeout_is_at_most_ten_seconds() {
        let mut c = Config { header_read_timeout_ms: 10_001, ..Config::default() };
        assert!(c.validate().unwrap_err().to_string().contains("header_read_timeout_ms"));
        let mut c = Config::default();
        c.validate().unwrap();
        assert_eq!((c.header_read_timeout_ms, c.max_unauthenticated_per_ip), (10_000, 64));
        assert_eq!(c.limits.upload_bytes_day, Some(courier_proto::event::DEFAULT_UPLOAD_BYTES_DAY));
    }

    #[test]
    fn toml_overrides_only_what_it_names() {
        let c: Config = toml::from_str("heartbeat_ms = 500\n[limits]\nmax_frame_bytes = 4096\nmax_body_bytes = 1024\nsend_per_sec = 5\nsend_burst = 5\nhistory_page = 10\n").unwrap();
        assert_eq!(c.heartbeat_ms, 500);
        assert_eq!(c.limits.history_page, 10);
        assert_eq!(c.max_connections, 10_000);
        assert!(toml::from_str::<Config>("hartbeat_ms = 1").is_err());
    }

    #[test]
    fn a_limits_table_names_only_what_it_changes_and_no_unknown_key() {
        let mut c: Config = toml::from_str("[limits]\nsessions = 8\n").unwrap();
        c.validate().unwrap();
        assert_eq!(c.limits, Limits { sessions: Some(8), ..Limits::default() });
        let c: Config = toml::from_str("[limits]\nsend_per_sec = 100\nhistory_page = 50\n").unwrap();
        assert_eq!((c.limits.send_per_sec, c.limits.history_page, c.limits.send_burst), (100, 50, 50));
        let e = toml::from_str::<Config>("[limits]\nsend_per_second = 100\n").unwrap_err().to_string();
        assert!(e.contains("send_per_second"), "{e}");
        assert!(toml::from_str::<Config>("[limits]\nsessions = \"eight\"\n").is_err());
        let mut c: Config = toml::from_str("[limits]\npending_invites = 0\n").unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("pending_invites"));
    }

    #[test]
    fn windows_default_when_a_limits_table_lacks_them_and_admins_are_checked() {
        let mut c: Config = toml::from_str(
            "admin_users = [\"root\"]\n[limits]\nmax_frame_bytes = 4096\nmax_body_bytes = 1024\n\
             send_per_sec = 5\nsend_burst = 5\nhistory_page = 10\n",
        )
        .unwrap();
        assert_eq!(c.limits.edit_window_s, Some(172_800), "a v1 [limits] table gets the window");
        c.validate().unwrap();
        assert_eq!((c.limits.edit_window_s, c.limits.recall_window_s), (Some(172_800), Some(86_400)));
        assert!(c.is_server_admin("root") && !c.is_server_admin("rooty"));
        c.limits.recall_window_s = Some(0);
        assert!(c.validate().unwrap_err().to_string().contains("recall_window_s"));
        let mut c = Config { admin_users: vec!["no spaces".into()], ..Config::default() };
        assert!(c.validate().unwrap_err().to_string().contains("admin user"));
    }

    #[test]
    fn the_sqlite_writer_gets_a_cpu_of_its_own_unless_told_otherwise() {
        let mut c = Config::default();
        assert_eq!([1, 2, 8].map(|cpus| c.runtime_workers(cpus)), [1, 1, 7]);
        c.postgres = Some("postgres://db".into());
        assert_eq!([1, 2, 8].map(|cpus| c.runtime_workers(cpus)), [1, 2, 8]);
        c.worker_threads = 3;
        assert_eq!(c.runtime_workers(8), 3);
        let mut c = Config { worker_threads: MAX_WORKER_THREADS, ..Config::default() };
        c.validate().unwrap();
        c.worker_threads = 100_000;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("worker_threads must be at most 1024"), "{e}");
    }

    #[test]
    fn the_desktop_preset_is_small_and_valid() {
        let mut c = Config::desktop();
        c.validate().unwrap();
        assert_eq!((c.store_readers, c.store_cache_kib), (1, 1024));
        assert_eq!((c.max_connections, c.max_unauthenticated_per_ip, c.outbound_queue), (64, 16, 256));
        let d = Config::default();
        assert_eq!((d.store_readers, d.store_cache_kib), (4, 8 * 1024), "the server's defaults stay");
        assert_eq!((d.max_connections, d.outbound_queue), (10_000, 1024));
        assert_eq!(c.limits, d.limits, "a desktop server enforces the same limits");
        assert_eq!(c.default_channels, d.default_channels);
        c.store_readers = 0;
        assert!(c.validate().unwrap_err().to_string().contains("store_readers"));
    }

    #[test]
    fn cluster_needs_both_engines_and_gets_a_node_id() {
        let mut c = Config { postgres: Some("postgresql://x/y".into()), ..Config::default() };
        assert!(c.validate().unwrap_err().to_string().contains("--redis"));
        let mut c = Config { redis: Some("redis://127.0.0.1/".into()), ..Config::default() };
        assert!(c.validate().unwrap_err().to_string().contains("--postgres"));
        let mut c = Config { postgres: Some("p".into()), redis: Some("r".into()), ..Config::default() };
        c.validate().unwrap();
        assert!(c.is_cluster());
        assert!(c.node_id.as_deref().is_some_and(|id| id.starts_with("node-")));
        c.node_id = Some("bad id".into());
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.validate().unwrap();
        assert!(!c.is_cluster() && c.node_id.is_none(), "a single node stays a single node");
    }
}
