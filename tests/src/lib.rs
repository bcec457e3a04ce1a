//! Test harness shared by the conformance suites.
//!
//! The suites speak only the wire protocol (requests are raw JSON written with
//! `serde_json::json!`), so they can be pointed at any server:
//!
//! - `COURIER_TEST_URL=ws://host:port` targets that server (`/v1/ws` is
//!   appended). Its secrets come from `COURIER_TEST_AUTH_SECRET` (HS256 JWT
//!   secret) and `COURIER_TEST_ADMIN_SECRET` (push API); with no auth secret
//!   the suite signs in with `dev:<user>` tokens.
//! - Without it, each test starts the reference server in-process on
//!   `127.0.0.1:0` with a fresh temporary data directory.
//!
//! Tests that need a server with non-default settings (short heartbeat, tiny
//! limits…) start their own with [`Harness::with_config`], which returns
//! `None` (and prints a note) when an external server is targeted.
//!
//! Every user id a test makes is unique ([`Harness::user`]), so tests run in
//! parallel and repeatedly against one external server without interfering.
//!
//! `COURIER_TEST_CLUSTER=1` runs the suite against three in-process cluster
//! nodes (private PostgreSQL and Redis), spreading connections over them;
//! [`Harness::cluster`] gives tests explicit nodes.
//!
//! Waits use generous timeouts ([`WAIT`]) that only matter when an expected
//! thing never happens; "nothing arrives" checks wait a short fixed time
//! ([`QUIET`]).

use courier_proto::{ErrBody, ErrorCode, Reply};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::{Bytes, Message};

pub mod requests;

pub use courier_server::Config;
use courier_server::Server;
pub use courier_server::cluster::redis_harness::TestRedis;
use courier_server::store::pg_harness;

/// How long to wait for something that must happen.
pub const WAIT: Duration = Duration::from_secs(5);
/// How long to wait when checking that something does *not* happen.
pub const QUIET: Duration = Duration::from_millis(300);

/// Auth secret of the in-process server.
const LOCAL_AUTH_SECRET: &str = "conformance-auth-secret-0123456789";
/// Admin secret of the in-process server.
const LOCAL_ADMIN_SECRET: &str = "conformance-admin-secret-0123456789";

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Seconds since the Unix epoch.
pub fn now_s() -> i64 {
    now_ms() / 1000
}

/// A string unique across tests, processes and runs: `<prefix>-<time><pid><n>`.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    format!("{prefix}-{:x}{:x}{:x}", nanos & 0xffff_ffff_ffff, std::process::id() & 0xffff, n)
}

/// Prints why a test does nothing in this setting.
pub fn skip(test: &str, why: &str) {
    eprintln!("SKIPPED {test}: {why}");
}

/// base64url without padding (for hand-made JWTs).
pub fn b64url(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Signs an HS256 JWT with `sub`, `exp` (seconds) and `name`.
pub fn mint_jwt(secret: &str, sub: &str, exp: i64) -> String {
    let claims = json!({"sub": sub, "exp": exp, "name": format!("Test {sub}")});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("jwt encodes")
}

/// A server under test: external (`COURIER_TEST_URL`) or in-process.
pub struct Harness {
    /// `host:port` of the server.
    pub addr: String,
    /// `ws://host:port/v1/ws`.
    pub ws_url: String,
    /// HS256 secret for user tokens, when known.
    pub auth_secret: Option<String>,
    /// Secret for `POST /v1/push`, when known.
    pub admin_secret: Option<String>,
    /// Whether the server was given by `COURIER_TEST_URL`.
    pub external: bool,
    server: Option<Server>,
    _dir: Option<tempfile::TempDir>,
    /// With `COURIER_TEST_CLUSTER=1`: the other nodes of the cluster this
    /// harness spreads its connections over (round robin, `(addr, ws_url)`).
    spread: Vec<(String, String)>,
    others: Vec<Server>,
    next: AtomicU64,
    _redis: Option<TestRedis>,
}

impl Harness {
    /// A harness for a server that is already running at `addr`
    /// (`host:port`), signing in with `dev:<user>` tokens.
    pub fn at(addr: &str) -> Harness {
        Self::external(addr.to_owned(), format!("ws://{addr}/v1/ws"), None, None)
    }

    /// A harness for a server this process did not start.
    fn external(
        addr: String,
        ws_url: String,
        auth_secret: Option<String>,
        admin_secret: Option<String>,
    ) -> Harness {
        Harness {
            addr,
            ws_url,
            auth_secret,
            admin_secret,
            external: true,
            server: None,
            _dir: None,
            spread: Vec::new(),
            others: Vec::new(),
            next: AtomicU64::new(0),
            _redis: None,
        }
    }

    /// The server under test: `COURIER_TEST_URL` or a fresh in-process one.
    pub async fn new() -> Harness {
        if let Ok(url) = std::env::var("COURIER_TEST_URL") {
            let base = url.trim_end_matches('/').to_owned();
            let addr = base
                .strip_prefix("ws://")
                .expect("COURIER_TEST_URL must be ws://host:port")
                .split('/')
                .next()
                .unwrap()
                .to_owned();
            let secret = |k: &str| std::env::var(k).ok().filter(|s| !s.is_empty());
            return Self::external(
                addr,
                format!("{base}/v1/ws"),
                secret("COURIER_TEST_AUTH_SECRET"),
                secret("COURIER_TEST_ADMIN_SECRET"),
            );
        }
        Self::start(|_| {}).await
    }

    /// An in-process server with a changed configuration, or `None` (with a
    /// printed note) when the suite targets an external server.
    pub async fn with_config(test: &str, f: impl FnOnce(&mut Config)) -> Option<Harness> {
        if std::env::var("COURIER_TEST_URL").is_ok() {
            skip(test, "needs a server with a custom configuration (COURIER_TEST_URL is set)");
            return None;
        }
        Some(Self::start(f).await)
    }

    async fn start(f: impl FnOnce(&mut Config)) -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cfg = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_path_buf(),
            auth_secret: Some(LOCAL_AUTH_SECRET.into()),
            admin_secret: Some(LOCAL_ADMIN_SECRET.into()),
            dev_auth: true,
            ..Config::default()
        };
        f(&mut cfg);
        if std::env::var_os("COURIER_TEST_CLUSTER").is_some_and(|v| v == "1") && cfg.redis.is_none() {
            return Self::start_spread(cfg, dir).await;
        }
        let server = Server::start(cfg).await.expect("reference server starts");
        let addr = server.local_addr().to_string();
        Harness {
            ws_url: format!("ws://{addr}/v1/ws"),
            addr,
            auth_secret: Some(LOCAL_AUTH_SECRET.into()),
            admin_secret: Some(LOCAL_ADMIN_SECRET.into()),
            external: false,
            server: Some(server),
            _dir: Some(dir),
            spread: Vec::new(),
            others: Vec::new(),
            next: AtomicU64::new(0),
            _redis: None,
        }
    }

    /// `COURIER_TEST_CLUSTER=1`: the whole suite against three cluster
    /// nodes, each new connection going to the next node, so the two ends
    /// of a case sit on different nodes. HTTP goes to the first node.
    async fn start_spread(cfg: Config, dir: tempfile::TempDir) -> Harness {
        let redis = tokio::task::spawn_blocking(TestRedis::start)
            .await
            .expect("starting redis")
            .expect("COURIER_TEST_CLUSTER=1 needs redis-server installed");
        let db =
            pg_harness::fresh_database().await.expect("COURIER_TEST_CLUSTER=1 needs PostgreSQL installed");
        let mut servers = Vec::new();
        for i in 0..3 {
            let mut c = cfg.clone();
            c.postgres = Some(db.clone());
            c.redis = Some(redis.url());
            c.node_id = Some(format!("node{i}"));
            c.node_ttl_ms = 1500;
            c.expiry_scan_ms = 200;
            servers.push(Server::start(c).await.expect("cluster node starts"));
        }
        let spread: Vec<(String, String)> = servers
            .iter()
            .map(|s| (s.local_addr().to_string(), format!("ws://{}/v1/ws", s.local_addr())))
            .collect();
        let first = servers.remove(0);
        Harness {
            addr: spread[0].0.clone(),
            ws_url: spread[0].1.clone(),
            auth_secret: Some(LOCAL_AUTH_SECRET.into()),
            admin_secret: Some(LOCAL_ADMIN_SECRET.into()),
            external: false,
            server: Some(first),
            _dir: Some(dir),
            spread,
            others: servers,
            next: AtomicU64::new(0),
            _redis: Some(redis),
        }
    }

    /// Gracefully shuts the in-process server down (sessions get 1001).
    pub async fn shutdown_server(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await.expect("graceful shutdown");
        }
        for s in self.others.drain(..) {
            s.shutdown().await.expect("graceful shutdown");
        }
    }

    /// Stops the in-process server the way a killed node looks to the rest
    /// of a cluster: no goodbye in Redis (its sockets still close).
    pub async fn kill_server(&mut self) {
        if let Some(s) = self.server.take() {
            s.kill().await.expect("kill");
        }
    }

    /// `n` in-process cluster nodes on one private PostgreSQL database and
    /// one private Redis, or `None` (with a printed note) when either engine
    /// is not installed or an external server is targeted. Each node is a
    /// [`Harness`] of its own; sign the two ends of a case in on different
    /// nodes.
    pub async fn cluster(test: &str, n: usize) -> Option<Cluster> {
        Self::cluster_with(test, n, |_| {}).await
    }

    /// Like [`Harness::cluster`], with a configuration change for every node.
    pub async fn cluster_with(test: &str, n: usize, f: impl Fn(&mut Config)) -> Option<Cluster> {
        if std::env::var("COURIER_TEST_URL").is_ok() {
            skip(test, "starts its own cluster (COURIER_TEST_URL is set)");
            return None;
        }
        let Some(redis) = tokio::task::spawn_blocking(TestRedis::start).await.expect("starting redis") else {
            skip(test, "redis-server is not installed (apt-get install redis-server)");
            return None;
        };
        let Some(db) = pg_harness::fresh_database().await else {
            skip(test, "PostgreSQL is not installed (apt-get install postgresql)");
            return None;
        };
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let node = Self::start(|c| {
                c.postgres = Some(db.clone());
                c.redis = Some(redis.url());
                c.node_id = Some(format!("node{i}"));
                c.node_ttl_ms = 1500;
                c.expiry_scan_ms = 200;
                f(c);
            })
            .await;
            nodes.push(node);
        }
        Some(Cluster { nodes, redis, db_url: db })
    }

    /// A harness that reaches the same server (or cluster) through another
    /// address, such as a load balancer or proxy in front of it.
    pub fn through(&self, addr: &str) -> Harness {
        Harness {
            addr: addr.to_owned(),
            ws_url: format!("ws://{addr}/v1/ws"),
            auth_secret: self.auth_secret.clone(),
            admin_secret: self.admin_secret.clone(),
            external: true,
            server: None,
            _dir: None,
            spread: Vec::new(),
            others: Vec::new(),
            next: AtomicU64::new(0),
            _redis: None,
        }
    }

    /// A fresh user id for this test: `<name>-<unique suffix>`.
    pub fn user(&self, name: &str) -> String {
        unique(name)
    }

    /// A fresh channel name.
    pub fn channel(&self, name: &str) -> String {
        unique(name)
    }

    /// A valid token for `user`: a JWT valid for an hour when the secret is
    /// known, else `dev:<user>`.
    pub fn token(&self, user: &str) -> String {
        match &self.auth_secret {
            Some(s) => mint_jwt(s, user, now_s() + 3600),
            None => format!("dev:{user}"),
        }
    }

    /// A JWT for `user` expiring at `exp` (seconds), if the secret is known.
    pub fn jwt(&self, user: &str, exp: i64) -> Option<String> {
        self.auth_secret.as_deref().map(|s| mint_jwt(s, user, exp))
    }

    /// A WebSocket connection offering `courier.v1`, not yet signed in.
    pub async fn connect(&self) -> Client {
        self.try_connect().await.expect("websocket connects")
    }

    /// Like [`Harness::connect`], reporting failure instead of panicking.
    pub async fn try_connect(&self) -> anyhow::Result<Client> {
        let (addr, ws_url) = if self.spread.is_empty() {
            (&self.addr, &self.ws_url)
        } else {
            let (a, u) = &self.spread[self.next.fetch_add(1, Ordering::Relaxed) as usize % self.spread.len()];
            (a, u)
        };
        let mut req = ws_url.as_str().into_client_request()?;
        req.headers_mut().insert("Sec-WebSocket-Protocol", courier_proto::SUBPROTOCOL.parse().unwrap());
        let tcp = tokio::time::timeout(WAIT, TcpStream::connect(addr)).await??;
        tcp.set_nodelay(true)?;
        let (ws, resp) = tokio::time::timeout(WAIT, tokio_tungstenite::client_async(req, tcp)).await??;
        let proto = resp.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok());
        anyhow::ensure!(
            proto == Some(courier_proto::SUBPROTOCOL),
            "server did not select subprotocol courier.v1 (got {proto:?})"
        );
        Ok(Client::new(ws))
    }

    /// Connects and signs in as `user` on a fresh device.
    pub async fn login(&self, user: &str) -> Client {
        self.login_device(user, &unique("dev")).await
    }

    /// Connects and signs in as `user` on `device`.
    pub async fn login_device(&self, user: &str, device: &str) -> Client {
        let mut c = self.connect().await;
        let r = c.hello(&self.token(user), device).await;
        let ok = r.expect_ok().clone();
        assert_eq!(ok["user"], json!(user), "hello ok names the user: {ok}");
        c.user = user.to_owned();
        c.device = device.to_owned();
        c.hello_ok = ok;
        c
    }

    /// Signs `user` in once and disconnects, so the server knows the user
    /// (needed before inviting them).
    pub async fn register(&self, user: &str) {
        let c = self.login(user).await;
        c.close().await;
    }

    /// One HTTP/1.1 request to the server.
    pub async fn http(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpResponse {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", self.addr);
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() || method == "POST" || method == "PUT" {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut raw = head.into_bytes();
        raw.extend_from_slice(body);
        self.http_raw(&raw).await
    }

    /// Sends raw bytes as an HTTP request and reads one response.
    pub async fn http_raw(&self, raw: &[u8]) -> HttpResponse {
        let fut = async {
            let mut s = TcpStream::connect(&self.addr).await?;
            s.write_all(raw).await?;
            read_http_response(&mut s).await
        };
        tokio::time::timeout(Duration::from_secs(15), fut)
            .await
            .expect("HTTP response in time")
            .expect("HTTP exchange")
    }

    /// Like [`Harness::http_raw`], but `None` instead of panicking when the
    /// server is not there (yet).
    pub async fn http_raw_try(&self, raw: &[u8]) -> Option<HttpResponse> {
        let mut s = TcpStream::connect(&self.addr).await.ok()?;
        s.write_all(raw).await.ok()?;
        read_http_response(&mut s).await.ok()
    }

    /// `POST /v1/media` with a bearer token.
    pub async fn upload(&self, token: &str, mime: &str, data: &[u8]) -> HttpResponse {
        let auth = format!("Bearer {token}");
        self.http("POST", "/v1/media", &[("Authorization", &auth), ("Content-Type", mime)], data).await
    }

    /// `POST /v1/push` with the given bearer (None: no Authorization header).
    pub async fn push(&self, bearer: Option<&str>, body: &Value) -> HttpResponse {
        let data = serde_json::to_vec(body).unwrap();
        let auth = bearer.map(|b| format!("Bearer {b}"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("Authorization", a));
        }
        self.http("POST", "/v1/push", &headers, &data).await
    }
}

/// In-process cluster nodes sharing one PostgreSQL database and one Redis.
pub struct Cluster {
    /// The nodes; a killed node's harness stays (its server is gone).
    pub nodes: Vec<Harness>,
    /// The private Redis (stop / start it again to simulate a restart).
    pub redis: TestRedis,
    /// The database every node uses.
    pub db_url: String,
}

impl Cluster {
    /// Node `i`.
    pub fn node(&self, i: usize) -> &Harness {
        &self.nodes[i]
    }

    /// Shuts every remaining node down gracefully.
    pub async fn shutdown(mut self) {
        for n in &mut self.nodes {
            n.shutdown_server().await;
        }
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The (de-chunked) body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A header's value by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("HTTP {} body is not JSON ({e}): {}", self.status, String::from_utf8_lossy(&self.body))
        })
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn read_http_response(s: &mut TcpStream) -> anyhow::Result<HttpResponse> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 16384];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = s.read(&mut tmp).await?;
        anyhow::ensure!(n > 0, "connection closed before HTTP headers: {:?}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let mut rest = buf[head_end..].to_vec();
    let body = if let Some(len) = get("content-length") {
        let len: usize = len.parse()?;
        while rest.len() < len {
            let n = s.read(&mut tmp).await?;
            anyhow::ensure!(n > 0, "connection closed inside HTTP body");
            rest.extend_from_slice(&tmp[..n]);
        }
        rest.truncate(len);
        rest
    } else if get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        let mut body = Vec::new();
        loop {
            // Make sure a full chunk-size line is buffered.
            let line_end = loop {
                if let Some(p) = rest.windows(2).position(|w| w == b"\r\n") {
                    break p;
                }
                let n = s.read(&mut tmp).await?;
                anyhow::ensure!(n > 0, "connection closed inside chunked body");
                rest.extend_from_slice(&tmp[..n]);
            };
            let size_str = String::from_utf8_lossy(&rest[..line_end]).into_owned();
            let size = usize::from_str_radix(size_str.split(';').next().unwrap().trim(), 16)?;
            rest.drain(..line_end + 2);
            if size == 0 {
                break;
            }
            while rest.len() < size + 2 {
                let n = s.read(&mut tmp).await?;
                anyhow::ensure!(n > 0, "connection closed inside chunk");
                rest.extend_from_slice(&tmp[..n]);
            }
            body.extend_from_slice(&rest[..size]);
            rest.drain(..size + 2);
        }
        body
    } else if status == 101 || status == 204 || status == 304 {
        Vec::new()
    } else {
        loop {
            let n = s.read(&mut tmp).await?;
            if n == 0 {
                break;
            }
            rest.extend_from_slice(&tmp[..n]);
        }
        rest
    };
    Ok(HttpResponse { status, headers, body })
}

/// Helpers on a decoded reply.
pub trait ReplyExt {
    /// The `ok` object; panics (showing the error) on an error reply.
    fn expect_ok(&self) -> &Value;
    /// The error; panics on an ok reply or a different code.
    fn expect_err(&self, code: ErrorCode) -> &ErrBody;
    /// The error code, if an error.
    fn code(&self) -> Option<ErrorCode>;
}

impl ReplyExt for Reply {
    fn expect_ok(&self) -> &Value {
        match (&self.ok, &self.err) {
            (Some(ok), None) => ok,
            _ => panic!("expected an ok reply, got {self:?}"),
        }
    }

    fn expect_err(&self, code: ErrorCode) -> &ErrBody {
        match (&self.ok, &self.err) {
            (None, Some(e)) if e.code == code => e,
            _ => panic!("expected error `{code}`, got {self:?}"),
        }
    }

    fn code(&self) -> Option<ErrorCode> {
        self.err.as_ref().map(|e| e.code)
    }
}

/// Decodes a reply frame, panicking with the raw frame when it does not match
/// the contract's reply shape.
pub fn decode_reply(v: &Value) -> Reply {
    let r: Reply = serde_json::from_value(v.clone())
        .unwrap_or_else(|e| panic!("reply does not have the contract shape ({e}): {v}"));
    assert!(r.ok.is_some() != r.err.is_some(), "a reply has exactly one of ok/err: {v}");
    r
}

/// What one read from the socket produced.
enum Incoming {
    Frame,
    Closed(Option<u16>),
    Timeout,
}

/// One WebSocket session speaking the protocol.
pub struct Client {
    ws: WebSocketStream<TcpStream>,
    next_id: u64,
    events: VecDeque<Value>,
    replies: Vec<Value>,
    closed: Option<Option<u16>>,
    /// WebSocket Pings received so far.
    pub pings: u64,
    /// WebSocket Pongs received so far.
    pub pongs: u64,
    /// The signed-in user (after a successful [`Harness::login`]).
    pub user: String,
    /// The device id used in `hello`.
    pub device: String,
    /// The `hello` ok.
    pub hello_ok: Value,
}

impl Client {
    fn new(ws: WebSocketStream<TcpStream>) -> Client {
        Client {
            ws,
            next_id: 1,
            events: VecDeque::new(),
            replies: Vec::new(),
            closed: None,
            pings: 0,
            pongs: 0,
            user: String::new(),
            device: String::new(),
            hello_ok: Value::Null,
        }
    }

    /// Sends `hello`.
    pub async fn hello(&mut self, token: &str, device: &str) -> Reply {
        self.request(json!({"op":"hello","token":token,"device":device,"client":"courier-conformance/0.1"}))
            .await
    }

    /// Sends a text frame as is.
    pub async fn send_text(&mut self, text: impl Into<String>) {
        let t: String = text.into();
        self.ws.send(Message::text(t)).await.expect("send text frame");
    }

    /// Sends a text frame, reporting failure (the socket may be closed).
    pub async fn try_send_text(&mut self, text: impl Into<String>) -> bool {
        let t: String = text.into();
        self.ws.send(Message::text(t)).await.is_ok()
    }

    /// Sends a WebSocket Ping.
    pub async fn ping(&mut self) {
        self.ws.send(Message::Ping(Bytes::from_static(b"courier"))).await.expect("send ping");
    }

    /// Sends a binary frame.
    pub async fn send_binary(&mut self, data: Vec<u8>) {
        self.ws.send(Message::Binary(Bytes::from(data))).await.expect("send binary frame");
    }

    /// Sends a request without waiting; an `id` is assigned when absent.
    /// Returns the id.
    pub async fn send_request(&mut self, mut req: Value) -> u64 {
        let id = match req.get("id").and_then(Value::as_u64) {
            Some(id) => {
                self.next_id = self.next_id.max(id + 1);
                id
            }
            None => {
                let id = self.next_id;
                self.next_id += 1;
                req.as_object_mut().expect("request is a JSON object").insert("id".into(), json!(id));
                id
            }
        };
        self.send_text(req.to_string()).await;
        id
    }

    /// Sends a request and waits for its reply; events arriving meanwhile
    /// are kept for [`Client::event`].
    pub async fn request(&mut self, req: Value) -> Reply {
        let shown = req.to_string();
        let id = self.send_request(req).await;
        let raw = self
            .raw_reply(Some(id), Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("no reply to {shown} (closed: {:?})", self.closed));
        decode_reply(&raw)
    }

    /// Sends a request and returns its ok object (panics on an error).
    pub async fn ok(&mut self, req: Value) -> Value {
        let shown = req.to_string();
        let r = self.request(req).await;
        match (&r.ok, &r.err) {
            (Some(ok), None) => ok.clone(),
            _ => panic!("{} expected ok for {shown}, got {r:?}", self.user),
        }
    }

    /// Sends a request and returns its error (panics on an ok).
    pub async fn err(&mut self, req: Value) -> ErrBody {
        let shown = req.to_string();
        let r = self.request(req).await;
        match r.err {
            Some(e) => e,
            None => panic!("{} expected an error for {shown}, got ok {:?}", self.user, r.ok),
        }
    }

    /// Sends a request and asserts the error code.
    pub async fn expect_err(&mut self, req: Value, code: ErrorCode) -> ErrBody {
        let shown = req.to_string();
        let e = self.err(req).await;
        assert_eq!(e.code, code, "error code for {shown}: {e:?}");
        e
    }

    /// Waits for the reply frame with `re == id` (`None`: `re: null`),
    /// as raw JSON. `None` when the socket closed or time ran out.
    pub async fn raw_reply(&mut self, id: Option<u64>, timeout: Duration) -> Option<Value> {
        let want = match id {
            Some(i) => json!(i),
            None => Value::Null,
        };
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(p) = self.replies.iter().position(|r| r.get("re") == Some(&want)) {
                return Some(self.replies.remove(p));
            }
            if self.closed.is_some() {
                return None;
            }
            match self.read_one(deadline).await {
                Incoming::Frame => {}
                Incoming::Closed(_) | Incoming::Timeout => {
                    if let Some(p) = self.replies.iter().position(|r| r.get("re") == Some(&want)) {
                        return Some(self.replies.remove(p));
                    }
                    return None;
                }
            }
        }
    }

    /// The first reply frame (whatever its `re`) within `timeout`, raw.
    pub async fn next_reply(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if !self.replies.is_empty() {
                return Some(self.replies.remove(0));
            }
            match self.read_one(deadline).await {
                Incoming::Frame => {}
                _ => return (!self.replies.is_empty()).then(|| self.replies.remove(0)),
            }
        }
    }

    /// Reads one frame (or times out at `deadline`), sorting it into the
    /// event or reply buffers.
    async fn read_one(&mut self, deadline: tokio::time::Instant) -> Incoming {
        if let Some(code) = self.closed {
            return Incoming::Closed(code);
        }
        let msg = match tokio::time::timeout_at(deadline, self.ws.next()).await {
            Err(_) => return Incoming::Timeout,
            Ok(m) => m,
        };
        match msg {
            None | Some(Err(_)) => {
                self.closed = Some(None);
                Incoming::Closed(None)
            }
            Some(Ok(Message::Close(frame))) => {
                let code = frame.map(|f| u16::from(f.code));
                self.closed = Some(code);
                Incoming::Closed(code)
            }
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str())
                    .unwrap_or_else(|e| panic!("server sent a text frame that is not JSON ({e}): {t}"));
                assert!(v.is_object(), "server frame is a JSON object: {v}");
                if v.get("ev").is_some() {
                    self.events.push_back(v);
                } else {
                    assert!(v.get("re").is_some(), "server frame is neither a reply nor an event: {v}");
                    self.replies.push(v);
                }
                Incoming::Frame
            }
            Some(Ok(Message::Binary(b))) => panic!("server sent a binary frame ({} bytes)", b.len()),
            Some(Ok(Message::Ping(_))) => {
                self.pings += 1;
                Incoming::Frame
            }
            Some(Ok(Message::Pong(_))) => {
                self.pongs += 1;
                Incoming::Frame
            }
            Some(Ok(_)) => Incoming::Frame,
        }
    }

    /// The next event of any kind within `timeout`.
    pub async fn next_event(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(e) = self.events.pop_front() {
                return Some(e);
            }
            match self.read_one(deadline).await {
                Incoming::Frame => {}
                _ => return self.events.pop_front(),
            }
        }
    }

    /// Waits (up to [`WAIT`]) for an event matching `pred`; other events stay
    /// buffered. Panics with `what` when none comes.
    pub async fn event_where(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.event_where_within(what, WAIT, pred).await
    }

    /// Like [`Client::event_where`] with an explicit timeout.
    pub async fn event_where_within(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        match self.try_event_where(timeout, &pred).await {
            Some(e) => e,
            None => panic!(
                "{} ({}): expected event {what} within {timeout:?}; buffered events: {:?}; closed: {:?}",
                self.user, self.device, self.events, self.closed
            ),
        }
    }

    /// An event matching `pred` within `timeout`, if one comes.
    pub async fn try_event_where(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut scanned = 0;
        loop {
            if let Some(p) = self.events.iter().skip(scanned).position(&pred) {
                return self.events.remove(scanned + p);
            }
            scanned = self.events.len();
            match self.read_one(deadline).await {
                Incoming::Frame => {}
                _ => {
                    return self.events.iter().position(&pred).and_then(|p| self.events.remove(p));
                }
            }
        }
    }

    /// Waits for an event named `ev` (`{"ev": ev}`) within [`WAIT`].
    pub async fn event(&mut self, ev: &str) -> Value {
        self.event_where(ev, |e| e["ev"] == ev).await
    }

    /// Asserts no event matching `pred` arrives within [`QUIET`] (or is buffered).
    pub async fn expect_no_event_where(&mut self, what: &str, pred: impl Fn(&Value) -> bool) {
        self.expect_no_event_within(what, QUIET, pred).await
    }

    /// Asserts no event matching `pred` arrives within `dur` (or is buffered).
    pub async fn expect_no_event_within(&mut self, what: &str, dur: Duration, pred: impl Fn(&Value) -> bool) {
        if let Some(e) = self.try_event_where(dur, &pred).await {
            panic!("{} ({}): unexpected event ({what}): {e}", self.user, self.device);
        }
    }

    /// Asserts no event at all arrives within `dur` (or is buffered).
    pub async fn expect_no_event(&mut self, dur: Duration) {
        self.expect_no_event_within("any", dur, |_| true).await
    }

    /// Drops buffered events.
    pub fn clear_events(&mut self) {
        self.events.clear();
    }

    /// Buffered events (for inspection).
    pub fn buffered_events(&self) -> &VecDeque<Value> {
        &self.events
    }

    /// Waits up to `timeout` for the server to close; returns the close code
    /// (`None` if the connection ended without a close frame). Panics when the
    /// connection stays open.
    pub async fn closed_within(&mut self, timeout: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.read_one(deadline).await {
                Incoming::Frame => {}
                Incoming::Closed(code) => return code,
                Incoming::Timeout => panic!(
                    "{} ({}): expected the server to close the connection within {timeout:?}",
                    self.user, self.device
                ),
            }
        }
    }

    /// Waits (up to [`WAIT`]) for a close frame and returns its code.
    pub async fn expect_close(&mut self) -> u16 {
        self.expect_close_within(WAIT).await
    }

    /// Waits up to `timeout` for a close frame and returns its code.
    pub async fn expect_close_within(&mut self, timeout: Duration) -> u16 {
        match self.closed_within(timeout).await {
            Some(c) => c,
            None => panic!("{}: connection ended without a close frame (no close code)", self.user),
        }
    }

    /// Whether the connection is still usable: a `sync` round-trip works.
    pub async fn is_alive(&mut self) -> bool {
        let id = self.next_id;
        self.next_id += 1;
        if !self.try_send_text(json!({"op":"sync","id":id}).to_string()).await {
            return false;
        }
        self.raw_reply(Some(id), WAIT).await.is_some()
    }

    /// Whether the server has closed this connection (as seen so far).
    pub fn close_seen(&self) -> Option<Option<u16>> {
        self.closed
    }

    /// Closes the connection normally and waits for the close handshake.
    pub async fn close(mut self) {
        let _ = self
            .ws
            .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: WsCloseCode::Normal,
                reason: "bye".into(),
            }))
            .await;
        let deadline = tokio::time::Instant::now() + WAIT;
        while let Ok(Some(Ok(_))) = tokio::time::timeout_at(deadline, self.ws.next()).await {}
    }

    /// Stops speaking WebSocket: the socket is only read raw from now on, so
    /// no Pong (or anything) is sent again.
    pub fn into_silent(self) -> SilentSocket {
        SilentSocket { tcp: self.ws.into_inner(), buf: Vec::new() }
    }

    /// Sends `send` to a target with a fresh cid; returns the ok.
    pub async fn send_msg(&mut self, to: Value, text: &str) -> Value {
        self.ok(json!({"op":"send","to":to,"cid":unique("c"),"kind":"text","body":{"text":text}})).await
    }

    /// Sends a text DM to `user`; returns the ok.
    pub async fn dm(&mut self, user: &str, text: &str) -> Value {
        self.send_msg(json!({"user":user}), text).await
    }

    /// Uploads a PNG-typed `bytes` as this client's user and sends it to
    /// `user` as an image; returns the media id and the send's ok.
    pub async fn dm_image(&mut self, h: &Harness, user: &str, bytes: &[u8]) -> (String, Value) {
        let r = h.upload(&h.token(&self.user), "image/png", bytes).await;
        assert_eq!(r.status, 201, "{}", r.text());
        let media = r.json()["media"].as_str().expect("a media id").to_owned();
        let ok = self
            .ok(json!({"op":"send","to":{"user":user},"cid":unique("img"),"kind":"image",
                       "body":{"media":media,"mime":"image/png","width":1,"height":1}}))
            .await;
        (media, ok)
    }

    /// Sends a text message to `channel`; returns the ok.
    pub async fn say(&mut self, channel: &str, text: &str) -> Value {
        self.send_msg(json!({"channel":channel}), text).await
    }

    /// The `sync` ok.
    pub async fn sync(&mut self) -> Value {
        self.ok(json!({"op":"sync"})).await
    }

    /// The `sync` row of `conv`, if listed.
    pub async fn sync_row(&mut self, conv: &str) -> Option<Value> {
        let s = self.sync().await;
        s["conversations"]
            .as_array()
            .unwrap_or_else(|| panic!("sync ok has a conversations array: {s}"))
            .iter()
            .find(|c| c["conv"] == conv)
            .cloned()
    }

    /// The `history` ok for `conv` with extra fields.
    pub async fn history(&mut self, conv: &str, extra: Value) -> Value {
        let mut req = json!({"op":"history","conv":conv});
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            req[k] = v;
        }
        self.ok(req).await
    }
}

/// The `dm:<a>:<b>` conversation id of two users.
pub fn dm_conv(a: &str, b: &str) -> String {
    if a.as_bytes() <= b.as_bytes() { format!("dm:{a}:{b}") } else { format!("dm:{b}:{a}") }
}

/// The seqs of a `history` ok's messages.
pub fn seqs(history_ok: &Value) -> Vec<u64> {
    history_ok["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("history ok has a messages array: {history_ok}"))
        .iter()
        .map(|m| m["seq"].as_u64().unwrap_or_else(|| panic!("message has a u64 seq: {m}")))
        .collect()
}

/// A socket that no longer answers anything (for heartbeat tests).
pub struct SilentSocket {
    tcp: TcpStream,
    buf: Vec<u8>,
}

impl SilentSocket {
    /// Reads server frames without answering until a Close frame arrives
    /// (returns its code) or the connection ends (`None`). Panics when the
    /// connection stays open longer than `timeout`.
    pub async fn close_code_within(&mut self, timeout: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut tmp = [0u8; 8192];
        loop {
            // Parse complete frames in the buffer (server frames are unmasked).
            while self.buf.len() >= 2 {
                let opcode = self.buf[0] & 0x0f;
                let len7 = (self.buf[1] & 0x7f) as usize;
                let (len, hdr) = match len7 {
                    126 if self.buf.len() >= 4 => {
                        (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
                    }
                    127 if self.buf.len() >= 10 => {
                        (u64::from_be_bytes(self.buf[2..10].try_into().unwrap()) as usize, 10)
                    }
                    126 | 127 => break,
                    n => (n, 2),
                };
                if self.buf.len() < hdr + len {
                    break;
                }
                if opcode == 0x8 {
                    let p = &self.buf[hdr..hdr + len];
                    return if p.len() >= 2 { Some(u16::from_be_bytes([p[0], p[1]])) } else { None };
                }
                self.buf.drain(..hdr + len);
            }
            let n = match tokio::time::timeout_at(deadline, self.tcp.read(&mut tmp)).await {
                Err(_) => panic!("expected the server to close a silent connection within {timeout:?}"),
                Ok(Err(_)) | Ok(Ok(0)) => return None,
                Ok(Ok(n)) => n,
            };
            self.buf.extend_from_slice(&tmp[..n]);
        }
    }
}
