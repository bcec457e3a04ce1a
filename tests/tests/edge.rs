//! The server's edge (protocol §1, §8, §9 v1.2 and the issue-13 defences):
//! `Origin` and `Host` checks, unsafe configurations refused, the admin
//! secret on `/metrics`, connection floods (header-read and idle timeouts,
//! the per-IP cap on connections that have not signed in), and the upload
//! quota and metering.
//!
//! Checks that hold for any server run against `COURIER_TEST_URL` too; the
//! rest start their own in-process server and skip there.

use courier_conformance::*;
use courier_proto::ErrorCode;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A WebSocket upgrade request for `/v1/ws` with the given extra headers
/// (and `Host`, unless `host` is `None`).
fn upgrade(host: Option<&str>, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut r = String::from("GET /v1/ws HTTP/1.1\r\n");
    if let Some(h) = host {
        r.push_str(&format!("Host: {h}\r\n"));
    }
    r.push_str(
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: courier.v1\r\n",
    );
    for (k, v) in extra {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    r.into_bytes()
}

/// A simple request with `Connection: close`.
fn get(path: &str, host: Option<&str>, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut r = format!("GET {path} HTTP/1.1\r\nConnection: close\r\n");
    if let Some(h) = host {
        r.push_str(&format!("Host: {h}\r\n"));
    }
    for (k, v) in extra {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    r.into_bytes()
}

fn port(h: &Harness) -> &str {
    h.addr.rsplit_once(':').map(|(_, p)| p).unwrap_or("80")
}

/// Asserts a 403 with a contract-shaped `forbidden` body.
fn forbidden(r: &HttpResponse, what: &str) {
    assert_eq!(r.status, 403, "{what}: {} {}", r.status, r.text());
    let v = r.json();
    assert_eq!(v["re"], Value::Null, "{what}: {v}");
    assert_eq!(v["err"]["code"], json!("forbidden"), "{what}: {v}");
}

// ---------- Origin and Host ----------

#[tokio::test]
async fn an_upgrade_from_an_unlisted_origin_is_403_and_native_clients_pass() {
    let h = Harness::new().await;
    let host = h.addr.clone();
    for origin in ["https://evil.example", "null", "http://localhost:1234"] {
        let r = h.http_raw(&upgrade(Some(&host), &[("Origin", origin)])).await;
        forbidden(&r, &format!("upgrade from {origin}"));
    }
    // The HTTP API too: a page may not upload or read media.
    let auth = format!("Bearer {}", h.token(&h.user("origin")));
    let r = h
        .http("POST", "/v1/media", &[("Authorization", &auth), ("Origin", "https://evil.example")], b"x")
        .await;
    forbidden(&r, "upload from a page");
    // No Origin (native clients): upgraded.
    let r = h.http_raw(&upgrade(Some(&host), &[])).await;
    assert_eq!(r.status, 101, "{:?}", r.headers);
    h.login(&h.user("native")).await;
}

#[tokio::test]
async fn a_listed_origin_may_connect() {
    let Some(h) = Harness::with_config("a_listed_origin_may_connect", |c| {
        c.allowed_origins = vec!["https://chat.example.com".into(), "http://localhost:5173".into()];
    })
    .await
    else {
        return;
    };
    let host = h.addr.clone();
    for origin in ["https://chat.example.com", "http://localhost:5173", "HTTPS://CHAT.EXAMPLE.COM"] {
        let r = h.http_raw(&upgrade(Some(&host), &[("Origin", origin)])).await;
        assert_eq!(r.status, 101, "{origin}: {:?} {}", r.headers, r.text());
    }
    for origin in ["https://chat.example.com.evil.net", "http://chat.example.com", "http://localhost:5174"] {
        forbidden(&h.http_raw(&upgrade(Some(&host), &[("Origin", origin)])).await, origin);
    }
}

#[tokio::test]
async fn a_loopback_server_answers_only_to_loopback_names() {
    let h = Harness::new().await;
    let ip: Option<IpAddr> = h.addr.parse::<SocketAddr>().ok().map(|a| a.ip());
    if !ip.is_some_and(|ip| ip.is_loopback()) {
        return skip("a_loopback_server_answers_only_to_loopback_names", "the server is not on loopback");
    }
    let p = port(&h).to_owned();
    // DNS rebinding: a page whose name resolves to 127.0.0.1.
    for host in [format!("evil.example:{p}"), "evil.example".into(), format!("localhost.evil.example:{p}")] {
        forbidden(&h.http_raw(&upgrade(Some(&host), &[])).await, &format!("upgrade to Host {host}"));
        let auth = format!("Bearer {}", h.token(&h.user("rebind")));
        let r = h.http_raw(&get("/v1/media/m_x", Some(&host), &[("Authorization", &auth)])).await;
        forbidden(&r, &format!("media to Host {host}"));
    }
    forbidden(&h.http_raw(&upgrade(None, &[])).await, "upgrade without a Host");
    // An absolute URI naming another host.
    let r = h.http_raw(format!("GET http://evil.example:{p}/v1/ws HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\nConnection: close\r\n\r\n").as_bytes()).await;
    forbidden(&r, "absolute URI to another host");
    for host in
        [format!("127.0.0.1:{p}"), format!("localhost:{p}"), format!("LocalHost:{p}"), "localhost".into()]
    {
        let r = h.http_raw(&upgrade(Some(&host), &[])).await;
        assert_eq!(r.status, 101, "Host {host}: {:?} {}", r.headers, r.text());
    }
    // A load balancer's probe by any name still works.
    let r = h.http_raw(&get("/healthz", Some("evil.example"), &[])).await;
    assert_eq!((r.status, r.json()), (200, json!({"ok": true})));
}

// ---------- unsafe starts ----------

fn config_in(dir: &tempfile::TempDir) -> Config {
    Config { listen: "127.0.0.1:0".parse().unwrap(), data_dir: dir.path().into(), ..Config::default() }
}

#[tokio::test]
async fn unsafe_configurations_refuse_to_start_and_say_why() {
    if std::env::var("COURIER_TEST_URL").is_ok() {
        return skip("unsafe_configurations_refuse_to_start_and_say_why", "starts its own servers");
    }
    let dir = tempfile::tempdir().unwrap();
    let long = "k".repeat(32);
    let cases: [(&str, Config, &str); 4] = [
        (
            "dev tokens beyond loopback, even with a secret",
            Config {
                listen: "0.0.0.0:0".parse().unwrap(),
                dev_auth: true,
                auth_secret: Some(long.clone()),
                ..config_in(&dir)
            },
            "--dev-auth",
        ),
        (
            "the README's old example secret",
            Config { auth_secret: Some("change-me".into()), ..config_in(&dir) },
            "courier-server secret",
        ),
        (
            "a 31-byte auth secret",
            Config { auth_secret: Some("x".repeat(31)), ..config_in(&dir) },
            "at least 32",
        ),
        (
            "a short admin secret",
            Config { admin_secret: Some("admin".into()), ..config_in(&dir) },
            "admin secret",
        ),
    ];
    for (what, config, says) in cases {
        match courier_server::Server::start(config).await {
            Ok(s) => panic!("{what}: the server started on {}", s.local_addr()),
            Err(e) => {
                assert!(format!("{e:#}").contains(says), "{what}: the refusal should say {says:?}: {e:#}")
            }
        }
    }
    let ok = Config { auth_secret: Some(long.clone()), admin_secret: Some(long), ..config_in(&dir) };
    courier_server::Server::start(ok).await.expect("32-byte secrets are fine").shutdown().await.unwrap();
}

// ---------- /metrics and detailed health ----------

#[tokio::test]
async fn metrics_and_detailed_health_need_the_admin_secret() {
    let h = Harness::new().await;
    for path in ["/metrics", "/healthz?detail=1"] {
        let r = h.http("GET", path, &[], b"").await;
        assert_eq!(r.status, 401, "{path} without the admin secret: {}", r.text());
        assert_eq!(r.json()["err"]["code"], json!("unauthenticated"));
        let r =
            h.http("GET", path, &[("Authorization", "Bearer not-the-admin-secret-0123456789")], b"").await;
        assert_eq!(r.status, 401, "{path} with a wrong secret");
        let user = format!("Bearer {}", h.token(&h.user("nosy")));
        assert_eq!(
            h.http("GET", path, &[("Authorization", &user)], b"").await.status,
            401,
            "{path} as a user"
        );
    }
    let r = h.http("GET", "/healthz", &[], b"").await;
    assert_eq!((r.status, r.json()), (200, json!({"ok": true})), "plain health stays public");
    let Some(admin) = h.admin_secret.clone() else {
        return skip("metrics_and_detailed_health_need_the_admin_secret", "admin secret unknown");
    };
    let auth = format!("Bearer {admin}");
    for path in ["/metrics", "/healthz?detail=1"] {
        let r = h.http("GET", path, &[("Authorization", &auth)], b"").await;
        assert_eq!(r.status, 200, "{path} with the admin secret: {}", r.text());
    }
}

#[tokio::test]
async fn a_metrics_address_serves_metrics_without_the_secret() {
    if std::env::var("COURIER_TEST_URL").is_ok() {
        return skip("a_metrics_address_serves_metrics_without_the_secret", "starts its own server");
    }
    let dir = tempfile::tempdir().unwrap();
    let config = Config { metrics_listen: Some("127.0.0.1:0".parse().unwrap()), ..config_in(&dir) };
    let server = courier_server::Server::start(config).await.unwrap();
    let main = Harness::at(&server.local_addr().to_string());
    let metrics = Harness::at(&server.metrics_addr().expect("a metrics address").to_string());
    // No admin secret configured: the main port never serves metrics.
    assert_eq!(main.http("GET", "/metrics", &[], b"").await.status, 401);
    let r = metrics.http("GET", "/metrics", &[], b"").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("courier_connections"), "{}", r.text());
    assert_eq!(metrics.http("GET", "/healthz?detail", &[], b"").await.status, 200);
    // Nothing else lives there.
    assert_eq!(metrics.http("GET", "/v1/media/m_x", &[], b"").await.status, 404);
    server.shutdown().await.unwrap();
}

/// The desktop app's embedded server proves it holds the auth secret
/// before the app sends it a token (a stale port may be someone else's);
/// any other server has no such endpoint, and a web page cannot ask.
#[tokio::test]
async fn only_an_embedded_server_proves_its_secret_and_only_to_native_clients() {
    if std::env::var("COURIER_TEST_URL").is_ok() {
        return skip(
            "only_an_embedded_server_proves_its_secret_and_only_to_native_clients",
            "starts its own server",
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let secret = "s".repeat(40);
    let nonce = "n0nce".repeat(8);
    let path = format!("/v1/local/proof?nonce={nonce}");
    let embedded = Config { auth_secret: Some(secret.clone()), local_proof: true, ..config_in(&dir) };
    let server = courier_server::Server::start(embedded).await.unwrap();
    let h = Harness::at(&server.local_addr().to_string());
    let r = h.http("GET", &path, &[], b"").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(Some(r.text()), courier_server::auth::local_proof(&secret, &nonce));
    assert_eq!(h.http("GET", "/v1/local/proof?nonce=short", &[], b"").await.status, 400);
    let page = h.http("GET", &path, &[("Origin", "https://evil.example")], b"").await;
    assert_eq!(page.status, 403, "a web page may not ask");
    server.shutdown().await.unwrap();
    let plain = Config { auth_secret: Some(secret), ..config_in(&dir) };
    let server = courier_server::Server::start(plain).await.unwrap();
    let h = Harness::at(&server.local_addr().to_string());
    assert_eq!(h.http("GET", &path, &[], b"").await.status, 404, "not on a server that was not asked to");
    server.shutdown().await.unwrap();
}

// ---------- connection floods ----------

/// Connects from `from` (a loopback address) to `to`.
async fn connect_from(from: IpAddr, to: &str) -> std::io::Result<TcpStream> {
    let to: SocketAddr = to.parse().expect("host:port");
    let sock = TcpSocket::new_v4()?;
    sock.bind(SocketAddr::new(from, 0))?;
    tokio::time::timeout(WAIT, sock.connect(to)).await.map_err(|_| std::io::ErrorKind::TimedOut)?
}

/// Connects from `from`, upgrades and signs in as `user`: the session once
/// the `hello` ok arrives.
async fn sign_in_from(h: &Harness, from: IpAddr, user: &str) -> anyhow::Result<WsSession> {
    let tcp = connect_from(from, &h.addr).await?;
    let mut req = h.ws_url.as_str().into_client_request()?;
    req.headers_mut().insert("Sec-WebSocket-Protocol", "courier.v1".parse().unwrap());
    let (mut ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::client_async(req, tcp)).await??;
    let hello = json!({"op":"hello","id":1,"token":h.token(user),"device":unique("d")});
    ws.send(Message::text(hello.to_string())).await?;
    loop {
        let Some(msg) = tokio::time::timeout(WAIT, ws.next()).await? else { anyhow::bail!("closed") };
        if let Message::Text(t) = msg? {
            let v: Value = serde_json::from_str(t.as_str())?;
            anyhow::ensure!(v.get("ok").is_some(), "hello refused: {v}");
            return Ok(ws);
        }
    }
}

type WsSession = tokio_tungstenite::WebSocketStream<TcpStream>;

/// Whether the server closed `s` (EOF or reset) within `within`; a 503
/// refusal counts as closed.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 512];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

fn localhost(n: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, n])
}

#[tokio::test]
async fn silent_sockets_are_closed_by_the_header_timeout_then_clients_get_in() {
    let Some(h) = Harness::with_config("header_timeout", |c| {
        c.max_connections = 6;
        c.header_read_timeout_ms = 1500;
        // The idle timeout would close them too: out of the way here.
        c.http_idle_timeout_ms = 600_000;
    })
    .await
    else {
        return;
    };
    // The whole global cap, from six addresses (the per-IP cap is not what
    // is tested here), each socket silent or with half a request head.
    let mut silent = Vec::new();
    for i in 0..6u8 {
        let mut s = connect_from(localhost(10 + i), &h.addr).await.unwrap();
        if i % 2 == 1 {
            s.write_all(b"GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\n").await.unwrap();
        }
        silent.push(s);
    }
    // The cap is full for now (a connect either fails or is refused)...
    assert!(sign_in_from(&h, localhost(20), &h.user("early")).await.is_err(), "the cap was not full");
    // ...until the header timeout closes the silent sockets.
    for (i, s) in silent.iter_mut().enumerate() {
        assert!(closed_within(s, Duration::from_secs(15)).await, "silent socket {i} was never closed");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sign_in_from(&h, localhost(20), &h.user("late")).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "no client got in after the silent sockets closed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_stalled_request_and_an_idle_keep_alive_are_closed() {
    let Some(h) = Harness::with_config("idle_timeout", |c| {
        c.http_idle_timeout_ms = 700;
        c.header_read_timeout_ms = 10_000;
    })
    .await
    else {
        return;
    };
    // A complete head, then a body that never comes (slowloris on the body).
    let mut s = TcpStream::connect(&h.addr).await.unwrap();
    let auth = format!("Bearer {}", h.token(&h.user("stall")));
    let head = format!(
        "POST /v1/media HTTP/1.1\r\nHost: {}\r\nAuthorization: {auth}\r\nContent-Type: image/png\r\n\
         Content-Length: 100000\r\n\r\npartial",
        h.addr
    );
    s.write_all(head.as_bytes()).await.unwrap();
    assert!(closed_within(&mut s, Duration::from_secs(8)).await, "a stalled upload kept its connection");
}

#[tokio::test]
async fn a_keep_alive_connection_must_send_its_next_request_in_time() {
    let Some(h) = Harness::with_config("keep_alive_timeout", |c| {
        c.header_read_timeout_ms = 700;
        c.http_idle_timeout_ms = 600_000;
    })
    .await
    else {
        return;
    };
    let mut s = TcpStream::connect(&h.addr).await.unwrap();
    s.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", h.addr).as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(WAIT, s.read(&mut buf)).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "first response");
    assert!(closed_within(&mut s, Duration::from_secs(8)).await, "an idle keep-alive connection stayed open");
}

#[tokio::test]
async fn one_address_cannot_fill_the_cap_with_connections_that_never_sign_in() {
    let Some(h) = Harness::with_config("per_ip_cap", |c| {
        c.max_connections = 10;
        c.max_unauthenticated_per_ip = 4;
        c.hello_timeout_ms = 60_000;
    })
    .await
    else {
        return;
    };
    // 20 WebSockets from 127.0.0.1 that never say hello: 4 get in.
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..20 {
        match tokio::time::timeout(WAIT, h.try_connect()).await {
            Ok(Ok(c)) => held.push(c),
            _ => refused += 1,
        }
    }
    assert_eq!(held.len(), 4, "connections admitted from one address without hello ({refused} refused)");
    // The refused ones took no slot of the global cap: another address
    // still signs in, more than once.
    let mut others = Vec::new();
    for i in 0..3 {
        let ws = sign_in_from(&h, localhost(2), &h.user("other")).await;
        others.push(ws.unwrap_or_else(|e| panic!("client {i} from 127.0.0.2 could not sign in: {e:#}")));
    }
    // Closing the hello-less sockets gives their places back.
    drop(held);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sign_in_from(&h, localhost(1), &h.user("back")).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "closed connections never gave their places back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_session_gives_its_place_back_after_hello() {
    let Some(h) = Harness::with_config("per_ip_release", |c| c.max_unauthenticated_per_ip = 2).await else {
        return;
    };
    // Six signed-in sessions from one address, over a per-IP cap of two.
    let mut sessions = Vec::new();
    for i in 0..6 {
        let ws = sign_in_from(&h, localhost(1), &h.user("many")).await;
        sessions.push(ws.unwrap_or_else(|e| panic!("session {i} could not sign in: {e:#}")));
    }
    // Two hello-less sockets still fit beside them.
    let _a = h.connect().await;
    let _b = h.connect().await;
    assert!(h.try_connect().await.is_err(), "a third hello-less connection was admitted");
}

// ---------- uploads: quota and metering ----------

#[tokio::test]
async fn uploads_stop_at_the_daily_quota() {
    let Some(h) = Harness::with_config("upload_quota", |c| {
        c.limits.upload_bytes_day = Some(10_000);
        c.max_media_bytes = 8000;
    })
    .await
    else {
        return;
    };
    let (a, b) = (h.user("quota-a"), h.user("quota-b"));
    let tok = h.token(&a);
    assert_eq!(h.upload(&tok, "image/png", &[1; 6000]).await.status, 201);
    let r = h.upload(&tok, "image/png", &[2; 5000]).await;
    assert_eq!(r.status, 429, "over the quota: {}", r.text());
    let v = r.json();
    assert_eq!(v["err"]["code"], json!("limit_reached"), "{v}");
    assert_eq!(v["err"]["limit"], json!("upload_bytes_day"), "{v}");
    // Chunked (no Content-Length): counted once read.
    let auth = format!("Bearer {tok}");
    let raw = format!(
        "POST /v1/media HTTP/1.1\r\nHost: {}\r\nAuthorization: {auth}\r\nContent-Type: image/png\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n1388\r\n{}\r\n0\r\n\r\n",
        h.addr,
        "x".repeat(5000)
    );
    let r = h.http_raw(raw.as_bytes()).await;
    assert_eq!(
        (r.status, r.json()["err"]["limit"].clone()),
        (429, json!("upload_bytes_day")),
        "{}",
        r.text()
    );
    // What is left still fits; others have their own quota.
    assert_eq!(h.upload(&tok, "image/png", &[3; 4000]).await.status, 201);
    assert_eq!(h.upload(&tok, "image/png", &[4; 1]).await.status, 429);
    assert_eq!(h.upload(&h.token(&b), "image/png", &[5; 8000]).await.status, 201);
}

#[tokio::test]
async fn a_recalled_upload_still_counts_toward_the_daily_quota() {
    let Some(h) = Harness::with_config("upload_quota_recall", |c| {
        c.limits.upload_bytes_day = Some(10_000);
        c.max_media_bytes = 8000;
    })
    .await
    else {
        return;
    };
    let (a, b) = (h.user("quota-r-a"), h.user("quota-r-b"));
    let tok = h.token(&a);
    let mut ca = h.login(&a).await;
    let (media, sent) = ca.dm_image(&h, &b, &[1; 6000]).await;
    ca.ok(json!({"op":"send","to":{"user":b},"cid":unique("rc"),"kind":"recall",
                 "body":{"target":sent["mid"]}}))
        .await;
    let auth = format!("Bearer {tok}");
    assert_eq!(
        h.http("GET", &format!("/v1/media/{media}"), &[("Authorization", &auth)], b"").await.status,
        404
    );
    // Recalling gives back no quota: uploading, sending and recalling in a
    // loop must not lift the daily bound.
    let r = h.upload(&tok, "image/png", &[2; 5000]).await;
    assert_eq!(r.status, 429, "the recalled upload still counts: {}", r.text());
    assert_eq!(h.upload(&tok, "image/png", &[3; 4000]).await.status, 201, "what is left still fits");
}

#[tokio::test]
async fn uploads_take_tokens_from_the_users_bucket() {
    let Some(h) = Harness::with_config("upload_metering", |c| {
        c.limits.send_per_sec = 1;
        c.limits.send_burst = 2;
    })
    .await
    else {
        return;
    };
    let u = h.user("meter");
    let tok = h.token(&u);
    // Signed in first (hello is free), so the send below follows at once.
    let mut c = h.login(&u).await;
    let statuses = [
        h.upload(&tok, "image/png", b"1").await,
        h.upload(&tok, "image/png", b"2").await,
        h.upload(&tok, "image/png", b"3").await,
    ];
    assert_eq!(statuses[0].status, 201);
    let r = statuses.iter().find(|r| r.status == 429).expect("the third upload in a burst of two is refused");
    let v = r.json();
    assert_eq!(v["err"]["code"], json!("rate_limited"), "{v}");
    assert!(v["err"]["retry_after_ms"].as_u64().is_some_and(|ms| ms >= 1), "{v}");
    assert!(
        r.header("retry-after").and_then(|s| s.parse::<u64>().ok()).is_some_and(|s| s >= 1),
        "{:?}",
        r.headers
    );
    // The bucket is the user's: a WebSocket send right after is limited too.
    let e =
        c.err(json!({"op":"send","to":{"user":u},"cid":unique("c"),"kind":"text","body":{"text":"x"}})).await;
    assert_eq!(e.code, ErrorCode::RateLimited, "{e:?}");
}
