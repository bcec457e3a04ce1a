//! [`ClientConfig`]: how to reach the server and where to keep the
//! account's data, with defaults for everything but the servers, the token
//! and the data directory.

use crate::backoff::BackoffConfig;
use std::path::PathBuf;
use std::time::Duration;

/// How to reach the server and where to keep the account's data.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Server base URLs (`ws://host:7700`); tried in order, failing over.
    pub servers: Vec<String>,
    /// The bearer token (`dev:<user>` on a dev server, else a JWT).
    pub token: String,
    /// A stable id of this device; a second session with the same id
    /// replaces the first (close 4003).
    pub device: String,
    /// The account's data directory (holds `courier.db` and `media/`).
    pub data_dir: PathBuf,
    /// Sent as `client` in `hello`.
    pub client_name: String,
    /// Reconnect back-off.
    pub backoff: BackoffConfig,
    /// Limit for dialing plus the WebSocket handshake.
    pub connect_timeout: Duration,
    /// Limit for one request's reply.
    pub request_timeout: Duration,
    /// A PEM file of extra trusted root certificates for `wss://` and
    /// `https://` (a self-hosted server with a private CA), on top of the
    /// built-in web roots.
    pub ca_file: Option<PathBuf>,
    /// The most bytes of downloaded media kept in `media/`: past it the
    /// files used longest ago go (a later view downloads them again).
    pub media_cache_max: u64,
}

/// The default [`ClientConfig::media_cache_max`]: 2 GiB.
pub const MEDIA_CACHE_MAX: u64 = 2 << 30;

impl ClientConfig {
    /// A configuration with defaults for everything else.
    pub fn new(servers: Vec<String>, token: impl Into<String>, data_dir: impl Into<PathBuf>) -> ClientConfig {
        ClientConfig {
            servers,
            token: token.into(),
            device: "default".into(),
            data_dir: data_dir.into(),
            client_name: concat!("courier-client/", env!("CARGO_PKG_VERSION")).into(),
            backoff: BackoffConfig::default(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(20),
            ca_file: None,
            media_cache_max: MEDIA_CACHE_MAX,
        }
    }
}
