//! The Courier realtime server: protocol v1 over one WebSocket per session,
//! durable storage, call invitations, media and push, on one port.
//!
//! Layout:
//! - [`config`]: the configuration struct, file loading and validation.
//! - [`listener`]: TCP accept loop and HTTP/1 serving with the connection
//!   cap, the per-IP cap on unauthenticated connections and the header-read
//!   and idle timeouts.
//! - [`http`]: routes: `/healthz`, `/metrics`, `/v1/ws`, `/v1/media`,
//!   `/v1/push`, behind the `Host` and `Origin` checks.
//! - [`session`]: one WebSocket connection from `hello` to close.
//! - [`ops`]: request handlers, one module per family of ops.
//! - [`hub`]: live sessions, presence watchers, channel member cache, fan-out.
//! - [`presence`]: the per-user pace of presence events to watchers.
//! - [`calls`]: v1.2 call devices and the relay of call signals between them.
//! - [`state`]: what all connections share.
//! - [`store`]: the storage trait and its SQLite and PostgreSQL implementations.
//! - [`cluster`]: cluster mode: the bus that carries the hub's cross-node
//!   effects (Redis pub/sub and presence), absent on a single node.
//! - [`auth`], [`ratelimit`], [`metrics`], [`clock`]: the small parts.
//! - [`error`]: why a server did not start ([`StartError`]).
//!
//! Binaries stay thin: `main.rs` parses flags and calls [`Server::start`];
//! tests, the desktop app's embedded server and benchmarks call the same.

pub mod auth;
pub mod calls;
#[cfg(test)]
mod churn;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod direct;
pub mod error;
pub mod http;
pub mod hub;
pub mod ice;
pub mod listener;
pub mod metrics;
pub mod ops;
pub mod presence;
pub mod ratelimit;
pub mod session;
pub mod state;
pub mod store;

pub use config::{Config, ConfigError};
pub use error::StartError;

use listener::CappedListener;
use state::AppState;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use store::{NewChannel, Store, StoreError, postgres::PostgresStore, sqlite::SqliteStore};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running server. Call [`Server::shutdown`] to stop it cleanly; merely
/// dropping it stops accepting and closes sessions, but does not flush storage.
pub struct Server {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    state: Arc<AppState>,
    stop: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Validates the configuration, binds `config.listen`, opens the SQLite
    /// store in `config.data_dir` (or, in cluster mode, connects to
    /// PostgreSQL and Redis), and starts serving.
    ///
    /// # Errors
    /// [`StartError`]: an invalid configuration, an address in use or that
    /// cannot be bound, or a data directory whose database cannot be opened
    /// (each with a message that says what to change).
    pub async fn start(mut config: Config) -> Result<Server, StartError> {
        if config.validate()? {
            tracing::warn!(
                listen = %config.listen,
                "no auth secret: accepting dev tokens (`dev:<user>`), anyone can sign in as anyone; \
                 this is only allowed on loopback"
            );
        }
        let store: Arc<dyn Store> = match &config.postgres {
            Some(url) if config.is_cluster() => {
                let step = "connecting to PostgreSQL (--postgres / COURIER_POSTGRES)";
                Arc::new(PostgresStore::connect(url).await.map_err(StartError::store(step))?)
            }
            _ => {
                let step = format!("opening the database in {}", config.data_dir.display());
                Arc::new(
                    SqliteStore::open_sized(&config.data_dir, config.store_readers, config.store_cache_kib)
                        .map_err(StartError::store(step))?,
                )
            }
        };
        let listener = bind(config.listen).map_err(|e| StartError::bind(config.listen, "", e))?;
        Self::start_with(listener, config, store).await
    }

    /// Starts serving on an already bound listener with a given store (the
    /// configuration must already be validated). When the configuration
    /// names Redis, the node joins that cluster.
    ///
    /// # Errors
    /// [`StartError`] when the default channels or pending invitations
    /// cannot be loaded, the metrics address cannot be bound, or Redis
    /// cannot be reached.
    pub async fn start_with(
        listener: TcpListener,
        config: Config,
        store: Arc<dyn Store>,
    ) -> Result<Server, StartError> {
        let addr = listener.local_addr().map_err(StartError::Listener)?;
        let now = clock::now_ms();
        for name in &config.default_channels {
            let mut title = name.clone();
            if let Some(first) = title.get_mut(0..1) {
                first.make_ascii_uppercase();
            }
            store
                .create_channel(NewChannel {
                    name: name.clone(),
                    title,
                    topic: String::new(),
                    private: false,
                    creator: None,
                    now,
                })
                .await
                .map_err(StartError::store("creating default channels"))?;
        }
        let (stop, stop_rx) = watch::channel(false);
        let metrics = Arc::new(metrics::Metrics::new());
        if store.observe_batches(metrics.store_batch_hook()) {
            metrics.register_store_batches();
        }
        let hub = Arc::new(hub::Hub::default());
        let redis: Option<Arc<cluster::redis::RedisBus>> = match &config.redis {
            Some(url) => {
                let node = config.node_id.clone().unwrap_or_else(|| format!("node-{}", ulid::Ulid::new()));
                let ttl = Duration::from_millis(config.node_ttl_ms);
                metrics.register_cluster();
                let bus = cluster::redis::RedisBus::start(
                    url,
                    node,
                    ttl,
                    Duration::from_millis(config.call_grace_ms),
                    hub.clone(),
                    store.clone(),
                    metrics.clone(),
                )
                .await
                .map_err(StartError::Redis)?;
                Some(Arc::new(bus))
            }
            None => None,
        };
        let book: Arc<dyn calls::CallBook> = match &redis {
            Some(r) => r.clone(),
            None => Arc::new(calls::local::LocalBook::new(hub.clone())),
        };
        let bus = redis.map(|r| r as Arc<dyn cluster::Bus>);
        let state = Arc::new_cyclic(|me| AppState {
            calls: calls::Calls::new(book, me.clone()),
            auth: auth::Authenticator::new(config.auth_secret.as_deref(), config.dev_auth),
            hub,
            bus,
            metrics: metrics.clone(),
            shutdown: stop_rx.clone(),
            timers: Default::default(),
            store,
            config,
        });
        // Shutdown (or dropping the `Server`) asks every session to close,
        // from one task: a wait on the signal in every session's task would
        // cost each idle connection its size.
        let (closing, mut stopping) = (state.clone(), stop_rx.clone());
        tokio::spawn(async move {
            let _ = stopping.wait_for(|stopped| *stopped).await;
            closing.close_all(courier_proto::CloseCode::GOING_AWAY, "server shutting down");
        });
        for invite in
            state.store.pending_invites().await.map_err(StartError::store("loading pending invitations"))?
        {
            state.schedule_expiry(&invite);
        }
        if state.bus.is_some() {
            state.scan_expiries(Duration::from_millis(state.config.expiry_scan_ms));
            calls::scan_departures(&state, Duration::from_millis(state.config.expiry_scan_ms));
        }
        let c = &state.config;
        let timeouts = listener::Timeouts {
            header_read: Duration::from_millis(c.header_read_timeout_ms),
            idle: Duration::from_millis(c.http_idle_timeout_ms),
        };
        let cap =
            |l| CappedListener::new(l, c.max_connections, c.max_unauthenticated_per_ip, metrics.clone());
        let metrics_addr = match c.metrics_listen {
            Some(at) => {
                let l = bind(at).map_err(|e| StartError::bind(at, " (--metrics-listen)", e))?;
                let bound = l.local_addr().map_err(StartError::Listener)?;
                let app = http::metrics_router(state.clone());
                tokio::spawn(listener::serve(cap(l), app, timeouts, stop_rx.clone()));
                tracing::info!(addr = %bound, "metrics listening (no auth: keep this address private)");
                Some(bound)
            }
            None => None,
        };
        let listener = cap(listener);
        let app = http::router(state.clone());
        let task = tokio::spawn(listener::serve(listener, app, timeouts, stop_rx));
        tracing::info!(%addr, "courier server listening");
        Ok(Server { addr, metrics_addr, state, stop, task })
    }

    /// The bound address (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound address of the `--metrics-listen` listener, if any.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The WebSocket URL of this server, e.g. `ws://127.0.0.1:7700/v1/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}{}", self.addr, courier_proto::WS_PATH)
    }

    /// Stops accepting, closes every session with 1001, waits briefly for
    /// them to go, and flushes storage.
    ///
    /// # Errors
    /// When storage cannot be flushed.
    pub async fn shutdown(self) -> Result<(), StoreError> {
        self.stop_serving(false).await
    }

    /// Stops the way a killed process looks to the rest of a cluster: the
    /// node leaves no goodbye in Redis (its users stay "online" until its
    /// heartbeat lapses and another node reaps it). Its sockets still close
    /// (1001), since they live in this process. For failure tests.
    ///
    /// # Errors
    /// When storage cannot be flushed.
    pub async fn kill(self) -> Result<(), StoreError> {
        self.stop_serving(true).await
    }

    async fn stop_serving(self, crash: bool) -> Result<(), StoreError> {
        if crash && let Some(bus) = &self.state.bus {
            bus.shutdown(true).await;
        }
        let _ = self.stop.send(true);
        self.state.close_all(courier_proto::CloseCode::GOING_AWAY, "server shutting down");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.state.metrics.connections.get() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
        self.state.timers.lock().expect("timers lock").abort_all();
        if let Some(bus) = &self.state.bus {
            bus.shutdown(false).await;
        }
        self.state.store.close().await?;
        tracing::info!("courier server stopped");
        Ok(())
    }
}

/// Binds with a deep accept backlog: connect bursts (a reconnect storm after
/// a restart) must queue, not drop SYNs into the client's 1 s retry.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket =
        if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    /// A port another socket listens on is `AddrInUse` (the desktop app
    /// moves to the next port on it), with the address in the message.
    #[tokio::test]
    async fn a_busy_port_is_addr_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let busy = taken.local_addr().unwrap();
        let config = Config { listen: busy, data_dir: dir.path().into(), ..Config::default() };
        match Server::start(config).await {
            Err(e @ StartError::AddrInUse { addr, flag: "" }) => {
                assert_eq!(addr, busy);
                assert!(e.to_string().contains(&busy.to_string()), "{e}");
            }
            Err(other) => panic!("expected AddrInUse, got {other:?}"),
            Ok(s) => panic!("started on a busy port: {}", s.local_addr()),
        }
        let other_dir = tempfile::tempdir().unwrap();
        let metrics = Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics_listen: Some(busy),
            data_dir: other_dir.path().into(),
            ..Config::default()
        };
        match Server::start(metrics).await {
            Err(StartError::AddrInUse { addr, flag }) => {
                assert_eq!((addr, flag), (busy, " (--metrics-listen)"));
            }
            Err(other) => panic!("expected AddrInUse, got {other:?}"),
            Ok(s) => panic!("started with a busy metrics port: {}", s.local_addr()),
        }
    }

    /// A refused configuration is `Config`, not a bind or store failure.
    #[tokio::test]
    async fn a_refused_configuration_is_config() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: dir.path().into(),
            auth_secret: Some("short".into()),
            ..Config::default()
        };
        let e = Server::start(config).await.err().expect("a short secret is refused");
        assert!(matches!(e, StartError::Config(ConfigError::ShortSecret { .. })), "{e:?}");
    }

    /// The embedded store's write batches show on `/metrics`: every
    /// committed batch is counted in both histograms, its commit within its
    /// batch time.
    #[tokio::test]
    async fn write_batches_are_timed_on_metrics() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            data_dir: dir.path().into(),
            ..Config::default()
        };
        let server = Server::start(config).await.unwrap();
        let scrape = || async {
            let mut s = tokio::net::TcpStream::connect(server.metrics_addr().unwrap()).await.unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut text = String::new();
            s.read_to_string(&mut text).await.unwrap();
            let sample = |name: &str| -> f64 {
                let line = text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| {
                    panic!("no {name} in:\n{text}");
                });
                line.rsplit_once(' ').unwrap().1.parse().unwrap()
            };
            [
                sample("courier_store_batch_seconds_count"),
                sample("courier_store_commit_seconds_count"),
                sample("courier_store_batch_seconds_sum"),
                sample("courier_store_commit_seconds_sum"),
            ]
        };
        let before = scrape().await;
        let mut req = server.ws_url().into_client_request().unwrap();
        req.headers_mut().insert("Sec-WebSocket-Protocol", courier_proto::SUBPROTOCOL.parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let hello = r#"{"id":1,"op":"hello","token":"dev:alice","device":"d1"}"#;
        ws.send(Message::text(hello)).await.unwrap();
        for n in 2..5 {
            let send = format!(
                r#"{{"id":{n},"op":"send","to":{{"user":"bob"}},"cid":"c{n}","kind":"text","body":{{"text":"hi"}}}}"#
            );
            ws.send(Message::text(send)).await.unwrap();
        }
        // The three oks (each sent after its batch committed); a generous
        // bound turns a missing ok into a failure, not a hang.
        let oks = async {
            let mut oks = 0;
            while oks < 3 {
                let reply = ws.next().await.unwrap().unwrap();
                let frame: serde_json::Value = serde_json::from_str(reply.to_text().unwrap()).unwrap();
                if frame["re"].as_u64().is_some_and(|re| re >= 2) {
                    assert!(frame.get("ok").is_some(), "{frame}");
                    oks += 1;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), oks).await.expect("three oks");
        let after = scrape().await;
        let batches = after[0] - before[0];
        assert!(batches >= 1.0, "no batch counted: {before:?} -> {after:?}");
        assert_eq!(after[1] - before[1], batches, "one commit per committed batch");
        assert!(after[2] > 0.0 && after[3] > 0.0, "times recorded: {after:?}");
        assert!(after[3] <= after[2], "a commit is part of its batch: {after:?}");
    }

    /// Sessions stop waiting on the shutdown signal themselves (one task
    /// closes them all), so the drop path is checked here.
    #[tokio::test]
    async fn dropping_the_server_closes_sessions_with_1001() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: dir.path().into(),
            ..Config::default()
        };
        let server = Server::start(config).await.unwrap();
        let mut req = server.ws_url().into_client_request().unwrap();
        req.headers_mut().insert("Sec-WebSocket-Protocol", courier_proto::SUBPROTOCOL.parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let hello = r#"{"id":1,"op":"hello","token":"dev:alice","device":"d1"}"#;
        ws.send(Message::text(hello)).await.unwrap();
        let reply = ws.next().await.unwrap().unwrap();
        assert!(reply.to_text().unwrap().contains("\"ok\""), "{reply:?}");
        drop(server);
        let closed = async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
                    Some(Ok(_)) => continue,
                    other => panic!("no close frame: {other:?}"),
                }
            }
        };
        // Without the close the session would live on (the client answers
        // pings): a generous bound turns that hang into a failure.
        let code =
            tokio::time::timeout(Duration::from_secs(30), closed).await.expect("the session was not closed");
        assert_eq!(code, Some(courier_proto::CloseCode::GOING_AWAY));
    }
}
