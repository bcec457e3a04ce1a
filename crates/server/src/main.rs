//! `courier-server`: parses flags, sets up logging, and runs the library's
//! [`courier_server::Server`] until SIGTERM or Ctrl-C.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use courier_server::Config;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// The Courier realtime chat server (protocol v1: WebSocket at /v1/ws,
/// HTTP /healthz, /metrics, /v1/media, /v1/push on the same port).
///
/// With no --auth-secret on a loopback address the server accepts dev tokens
/// (`dev:<user>`); with none on any other address it refuses to start, as it
/// does for --dev-auth beyond loopback and for secrets under 32 bytes
/// (`courier-server secret` prints a good one).
#[derive(Parser, Debug)]
#[command(name = "courier-server", version, about, long_about = None)]
struct Cli {
    /// Address to listen on [default: 127.0.0.1:7700]
    #[arg(long, env = "COURIER_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Data directory (SQLite database) [default: ./courier-data]
    #[arg(long, env = "COURIER_DATA", value_name = "DIR")]
    data: Option<PathBuf>,
    /// HS256 secret that signs user tokens
    #[arg(long, env = "COURIER_AUTH_SECRET", value_name = "S", hide_env_values = true)]
    auth_secret: Option<String>,
    /// Bearer secret for POST /v1/push (server-side push from back ends)
    #[arg(long, env = "COURIER_ADMIN_SECRET", value_name = "S", hide_env_values = true)]
    admin_secret: Option<String>,
    /// Also accept `dev:<user>` tokens (development only)
    #[arg(long)]
    dev_auth: bool,
    /// Most simultaneous connections [default: 10000]
    #[arg(long, env = "COURIER_MAX_CONNECTIONS", value_name = "N")]
    max_connections: Option<usize>,
    /// Most connections per IP address that have not signed in [default: 64]
    #[arg(long, env = "COURIER_MAX_UNAUTHENTICATED_PER_IP", value_name = "N")]
    max_unauthenticated_per_ip: Option<usize>,
    /// Milliseconds a connection has to send a complete request head (at most 10000) [default: 10000]
    #[arg(long, env = "COURIER_HEADER_READ_TIMEOUT_MS", value_name = "MS")]
    header_read_timeout_ms: Option<u64>,
    /// Milliseconds a plain HTTP connection may stay without traffic [default: 30000]
    #[arg(long, env = "COURIER_HTTP_IDLE_TIMEOUT_MS", value_name = "MS")]
    http_idle_timeout_ms: Option<u64>,
    /// A web origin (scheme://host[:port]) allowed to connect (repeatable; the
    /// environment variable takes a comma-separated list). Requests from any
    /// other origin get 403; native clients send no Origin.
    #[arg(
        long = "allowed-origin",
        env = "COURIER_ALLOWED_ORIGINS",
        value_name = "ORIGIN",
        value_delimiter = ','
    )]
    allowed_origins: Vec<String>,
    /// Serve /metrics and /healthz?detail without the admin secret on this
    /// extra address (put it on a private interface)
    #[arg(long, env = "COURIER_METRICS_LISTEN", value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// Cluster mode: PostgreSQL URL for storage (needs --redis too)
    #[arg(long, env = "COURIER_POSTGRES", value_name = "URL", hide_env_values = true)]
    postgres: Option<String>,
    /// Cluster mode: Redis URL for cross-node fan-out and presence (needs --postgres too)
    #[arg(long, env = "COURIER_REDIS", value_name = "URL", hide_env_values = true)]
    redis: Option<String>,
    /// This node's id in a cluster [default: random]
    #[arg(long, env = "COURIER_NODE_ID", value_name = "ID")]
    node_id: Option<String>,
    /// Seconds after a message during which its sender may edit it [default: 172800]
    #[arg(long, env = "COURIER_EDIT_WINDOW_S", value_name = "N")]
    edit_window_s: Option<u64>,
    /// Seconds after a message during which its sender may recall it [default: 86400]
    #[arg(long, env = "COURIER_RECALL_WINDOW_S", value_name = "N")]
    recall_window_s: Option<u64>,
    /// A server admin: acts as owner of every channel (repeatable; the
    /// environment variable takes a comma-separated list)
    #[arg(long = "admin-user", env = "COURIER_ADMIN_USERS", value_name = "USER", value_delimiter = ',')]
    admin_users: Vec<String>,
    /// A STUN or TURN server for calls (stun:, turn: or turns: URL; repeatable;
    /// the environment variable takes a comma-separated list). TURN URLs need
    /// --turn-secret.
    #[arg(long = "ice-url", env = "COURIER_ICE_URLS", value_name = "URL", value_delimiter = ',')]
    ice_urls: Vec<String>,
    /// The TURN server's shared secret (coturn `use-auth-secret` /
    /// `static-auth-secret`) that signs TURN credentials
    #[arg(long, env = "COURIER_TURN_SECRET", value_name = "S", hide_env_values = true)]
    turn_secret: Option<String>,
    /// How long TURN credentials are valid (at least 12h) [default: 24h]
    #[arg(long, env = "COURIER_TURN_TTL", value_name = "DURATION", value_parser = humantime::parse_duration)]
    turn_ttl: Option<std::time::Duration>,
    /// TOML configuration file; flags and environment variables override it
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print a fresh random 256-bit secret (for --auth-secret or --admin-secret)
    Secret,
    /// Print a signed user token (HS256 JWT) for --user
    Token {
        /// The secret the server was started with (--auth-secret)
        #[arg(long, env = "COURIER_AUTH_SECRET", hide_env_values = true)]
        secret: String,
        /// The user id the token signs in as
        #[arg(long)]
        user: String,
        /// How long the token is valid (e.g. 30m, 1h, 7d)
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: std::time::Duration,
        /// Display name claim
        #[arg(long)]
        name: Option<String>,
    },
}

fn config_from(cli: Cli) -> anyhow::Result<Config> {
    let mut config = match &cli.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(v) = cli.listen {
        config.listen = v;
    }
    if let Some(v) = cli.data {
        config.data_dir = v;
    }
    if cli.auth_secret.is_some() {
        config.auth_secret = cli.auth_secret;
    }
    if cli.admin_secret.is_some() {
        config.admin_secret = cli.admin_secret;
    }
    config.dev_auth |= cli.dev_auth;
    if let Some(v) = cli.max_connections {
        config.max_connections = v;
    }
    if let Some(v) = cli.max_unauthenticated_per_ip {
        config.max_unauthenticated_per_ip = v;
    }
    if let Some(v) = cli.header_read_timeout_ms {
        config.header_read_timeout_ms = v;
    }
    if let Some(v) = cli.http_idle_timeout_ms {
        config.http_idle_timeout_ms = v;
    }
    if !cli.allowed_origins.is_empty() {
        config.allowed_origins = cli.allowed_origins;
    }
    if cli.metrics_listen.is_some() {
        config.metrics_listen = cli.metrics_listen;
    }
    if cli.postgres.is_some() {
        config.postgres = cli.postgres;
    }
    if cli.redis.is_some() {
        config.redis = cli.redis;
    }
    if cli.node_id.is_some() {
        config.node_id = cli.node_id;
    }
    if cli.edit_window_s.is_some() {
        config.limits.edit_window_s = cli.edit_window_s;
    }
    if cli.recall_window_s.is_some() {
        config.limits.recall_window_s = cli.recall_window_s;
    }
    if !cli.ice_urls.is_empty() {
        config.ice_urls = cli.ice_urls;
    }
    if cli.turn_secret.is_some() {
        config.turn_secret = cli.turn_secret;
    }
    if let Some(ttl) = cli.turn_ttl {
        config.turn_ttl_s = ttl.as_secs();
    }
    if !cli.admin_users.is_empty() {
        config.admin_users = cli.admin_users.into_iter().map(|u| u.trim().to_owned()).collect();
    }
    Ok(config)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let server = courier_server::Server::start(config).await?;
    shutdown_signal().await;
    tracing::info!("shutting down: closing sessions with 1001");
    server.shutdown().await.context("shutdown")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Secret) = &cli.command {
        println!("{}", courier_server::auth::new_secret());
        return ExitCode::SUCCESS;
    }
    if let Some(Command::Token { secret, user, ttl, name }) = &cli.command {
        return match courier_server::auth::mint_token(secret, user, *ttl, name.as_deref()) {
            Ok(t) => {
                println!("{t}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("courier-server token: {e}");
                ExitCode::from(2)
            }
        };
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = config_from(cli).and_then(|config| {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.runtime_workers(cpus))
            .enable_all()
            .build()?
            .block_on(serve(config))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("courier-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}
