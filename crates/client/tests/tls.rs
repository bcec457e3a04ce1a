//! `wss://` and `https://` against the real server behind a TLS-terminating
//! proxy whose self-signed certificate is made at test time: trusted via
//! `ClientConfig::ca_file` / `--ca-file` it works end to end (messages and
//! media); without it the client reports a certificate error and keeps
//! retrying, without panicking.

mod support;

use courier_client::{Client, ClientEvent, ConnState};
use courier_proto::{Conv, Target};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use support::{TestServer, synced, until};
use tokio::net::{TcpListener, TcpStream};

/// A TLS terminator in front of `upstream` (plain TCP), for `localhost`.
struct TlsProxy {
    addr: SocketAddr,
    /// The proxy's self-signed certificate, PEM.
    cert_pem: String,
    /// TLS handshakes that failed (e.g. the client rejected the certificate).
    failed_handshakes: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl TlsProxy {
    async fn start(upstream: SocketAddr) -> TlsProxy {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert_pem = ck.cert.pem();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![ck.cert.der().clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let failed_handshakes = Arc::new(AtomicU64::new(0));
        let failed = failed_handshakes.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let (acceptor, failed) = (acceptor.clone(), failed.clone());
                tokio::spawn(async move {
                    let mut tls = match acceptor.accept(tcp).await {
                        Ok(s) => s,
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    };
                    let Ok(mut up) = TcpStream::connect(upstream).await else { return };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                });
            }
        });
        TlsProxy { addr, cert_pem, failed_handshakes, task }
    }

    /// The base URL clients are given (`localhost`, the name in the cert).
    fn url(&self) -> String {
        format!("wss://localhost:{}", self.addr.port())
    }

    fn write_ca(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, &self.cert_pem).unwrap();
        path
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn tls_client(url: &str, user: &str, data: &Path, ca: Option<&Path>) -> Client {
    let mut cfg = support::config(vec![url.into()], user, "d", data);
    cfg.ca_file = ca.map(Path::to_path_buf);
    let c = Client::open(cfg).unwrap();
    c.start();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_and_https_work_with_the_private_ca() {
    let mut server = TestServer::started().await;
    let proxy = TlsProxy::start(server.addr).await;
    let (a, b, certs) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ca = proxy.write_ca(certs.path());
    let alice = tls_client(&proxy.url(), "alice", a.path(), Some(&ca));
    let bob = tls_client(&proxy.url(), "bob", b.path(), Some(&ca));
    synced(&alice).await;
    synced(&bob).await;
    assert_eq!(alice.state(), ConnState::Connected);

    // A message each way over wss.
    let conv = Conv::dm("alice", "bob");
    let m = alice.send_text(&Target::User("bob".into()), "hello over TLS").unwrap();
    alice.wait_settled(std::slice::from_ref(&m.cid)).await.unwrap();
    until(&bob, "bob gets alice's message", || bob.store().synced_seq(&conv).unwrap() >= 1).await;
    let r = bob.send_text(&Target::User("alice".into()), "hello back").unwrap();
    bob.wait_settled(std::slice::from_ref(&r.cid)).await.unwrap();
    until(&alice, "alice gets bob's reply", || alice.store().synced_seq(&conv).unwrap() >= 2).await;
    let texts: Vec<String> = support::transcript(&alice, &conv).into_iter().map(|t| t.3).collect();
    assert_eq!(texts, ["hello over TLS", "hello back"]);
    assert_eq!(support::transcript(&alice, &conv), support::transcript(&bob, &conv));

    // Media over https (the http base is derived from the wss URL).
    let bytes: Vec<u8> = (0..70_000u32).map(|i| (i % 241) as u8).collect();
    let media = alice.upload(bytes.clone(), "image/png").await.unwrap();
    assert_eq!(media.size, bytes.len() as u64);
    let path = bob.download(&media.media).await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    assert_eq!(proxy.failed_handshakes.load(Ordering::Relaxed), 0);

    alice.stop().await;
    bob.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_ca_the_certificate_is_refused_clearly() {
    let mut server = TestServer::started().await;
    let proxy = TlsProxy::start(server.addr).await;
    let a = tempfile::tempdir().unwrap();
    let alice = Client::open(support::config(vec![proxy.url()], "alice", "d", a.path())).unwrap();
    let mut events = alice.subscribe();
    alice.start();
    let ev = support::event(&mut events, "a failed attempt", |e| {
        matches!(e, ClientEvent::Connection { state: ConnState::Reconnecting, reason: Some(_), .. })
    })
    .await;
    let ClientEvent::Connection { reason: Some(reason), .. } = ev else { unreachable!() };
    assert!(reason.contains("TLS") && reason.contains("certificate"), "{reason}");
    assert!(reason.contains("--ca-file"), "the error says how to fix it: {reason}");
    assert_ne!(alice.state(), ConnState::Connected);
    let last = alice.last_error().unwrap();
    assert!(last.contains("certificate"), "{last}");

    // Media is refused the same way.
    let err = alice.upload(vec![1, 2, 3], "image/png").await.unwrap_err().to_string();
    assert!(err.contains("certificate"), "{err}");
    eprintln!("session error: {reason}\nmedia error: {err}");
    // The proxy saw the client abort the handshakes (recorded asynchronously).
    let deadline = tokio::time::Instant::now() + support::PATIENCE;
    while proxy.failed_handshakes.load(Ordering::Relaxed) < 2 {
        assert!(tokio::time::Instant::now() < deadline, "the proxy never saw a refused handshake");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // Still retrying, not stopped, not panicked.
    assert_ne!(alice.state(), ConnState::Stopped);
    alice.stop().await;
    assert_eq!(alice.state(), ConnState::Disconnected);
    server.stop().await;
}

async fn cli(url: &str, token: &str, data: &Path, ca: Option<&Path>, args: &[&str]) -> (i32, String, String) {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_courier-cli"));
    c.env("COURIER_SERVER", url)
        .env("COURIER_TOKEN", token)
        .env("COURIER_DATA", data)
        .env_remove("RUST_LOG")
        .env_remove("COURIER_CA_FILE")
        .kill_on_drop(true);
    if let Some(ca) = ca {
        c.arg("--ca-file").arg(ca);
    }
    let out =
        tokio::time::timeout(support::PATIENCE, c.args(args).output()).await.expect("cli hung").unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    eprintln!("courier-cli {args:?} → {:?}\n{stdout}{stderr}", out.status.code());
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_takes_ca_file() {
    let mut server = TestServer::started().await;
    let proxy = TlsProxy::start(server.addr).await;
    let (a, certs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ca = proxy.write_ca(certs.path());
    let url = proxy.url();

    let (code, _, err) = cli(&url, "dev:alice", a.path(), None, &["sync", "--wait", "2"]).await;
    assert_eq!(code, 5, "unreachable without the CA");
    assert!(err.contains("certificate"), "{err}");

    let (code, out, _) =
        cli(&url, "dev:alice", a.path(), Some(&ca), &["send", "@bob", "via cli over TLS", "--wait", "30"])
            .await;
    assert_eq!(code, 0);
    let (code, out2, _) = cli(&url, "dev:alice", a.path(), Some(&ca), &["history", "@bob"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out2.contains("via cli over TLS"), "{out2}");
    server.stop().await;
}
