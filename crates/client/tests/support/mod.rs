//! Shared helpers of the client's integration tests: an in-process server
//! that can be stopped and restarted on the same port, clients with fast
//! reconnects, and condition waits with generous timeouts (they only fail a
//! test when something never happens; nothing here measures speed).

#![allow(dead_code)]

pub mod proxy;

use courier_client::backoff::BackoffConfig;
use courier_client::{Client, ClientConfig, ClientEvent};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::sync::broadcast;

/// The longest any condition may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A server on a fixed port that can go down and come back with its data.
pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub addr: SocketAddr,
    pub heartbeat_ms: u64,
    pub send_per_sec: Option<u32>,
    /// A smaller `history` page, to make gap filling take several pages.
    pub history_page: Option<u32>,
    server: Option<courier_server::Server>,
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

impl TestServer {
    /// A server that is not running yet, with a port reserved for it.
    pub fn new() -> TestServer {
        TestServer {
            dir: tempfile::tempdir().unwrap(),
            addr: free_port(),
            heartbeat_ms: 15_000,
            send_per_sec: None,
            history_page: None,
            server: None,
        }
    }

    /// A running server.
    pub async fn started() -> TestServer {
        let mut s = TestServer::new();
        s.start().await;
        s
    }

    /// Starts (or restarts) the server on its port with its data.
    pub async fn start(&mut self) {
        assert!(self.server.is_none());
        let mut cfg = courier_server::Config {
            listen: self.addr,
            data_dir: self.dir.path().to_path_buf(),
            dev_auth: true,
            heartbeat_ms: self.heartbeat_ms,
            ..Default::default()
        };
        if let Some(r) = self.send_per_sec {
            cfg.limits.send_per_sec = r;
            cfg.limits.send_burst = r;
        }
        if let Some(p) = self.history_page {
            cfg.limits.history_page = p;
        }
        let mut last = None;
        for _ in 0..50 {
            match courier_server::Server::start(cfg.clone()).await {
                Ok(s) => {
                    self.server = Some(s);
                    return;
                }
                // The port may linger briefly after a shutdown.
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("server did not start: {:?}", last);
    }

    /// Graceful shutdown (sessions closed 1001).
    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await.unwrap();
        }
    }

    /// The base URL clients are given.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }
}

/// Client configuration with quick reconnects for tests.
pub fn config(urls: Vec<String>, user: &str, device: &str, data: &Path) -> ClientConfig {
    let mut cfg = ClientConfig::new(urls, format!("dev:{user}"), data);
    cfg.device = device.into();
    cfg.backoff =
        BackoffConfig { base: Duration::from_millis(100), cap: Duration::from_secs(1), factor: 2.0 };
    cfg.request_timeout = Duration::from_secs(10);
    cfg
}

/// A started client for `user` on `url` with its own data dir.
pub fn client(url: &str, user: &str, device: &str, data: &Path) -> Client {
    let c = Client::open(config(vec![url.into()], user, device, data)).unwrap();
    c.start();
    c
}

/// Waits (re-checking after every client event) until `cond` holds.
pub async fn until(client: &Client, what: &str, mut cond: impl FnMut() -> bool) {
    let mut rx = client.subscribe();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if cond() {
            return;
        }
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => panic!("timed out waiting for: {what}"),
            Ok(Err(broadcast::error::RecvError::Closed)) => {
                panic!("client gone while waiting for: {what}")
            }
            Ok(_) => {}
        }
    }
}

/// Waits for an event matching `pred`.
pub async fn event(
    rx: &mut broadcast::Receiver<ClientEvent>,
    what: &str,
    pred: impl Fn(&ClientEvent) -> bool,
) -> ClientEvent {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => panic!("timed out waiting for event: {what}"),
            Ok(Ok(ev)) if pred(&ev) => return ev,
            Ok(Err(broadcast::error::RecvError::Closed)) => {
                panic!("client gone while waiting for: {what}")
            }
            Ok(_) => {}
        }
    }
}

/// Waits for the first sync, with the test's patience.
pub async fn synced(c: &Client) {
    tokio::time::timeout(PATIENCE, c.wait_synced()).await.expect("never synced").expect("sync failed");
}

/// Waits until the message `cid` settled, and checks the server stored it.
pub async fn settled(c: &Client, cid: &str) -> courier_client::MessageView {
    let m = tokio::time::timeout(PATIENCE, c.wait_settled(&[cid.to_owned()]))
        .await
        .expect("never settled")
        .unwrap()
        .remove(0);
    assert_eq!(m.status, courier_client::DeliveryStatus::Sent, "{m:?}");
    m
}

/// Alice and Bob (device `d`), each with a data dir and synced on `server`.
pub async fn alice_and_bob(server: &TestServer) -> (Client, Client, [tempfile::TempDir; 2]) {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let alice = client(&server.url(), "alice", "d", dirs[0].path());
    let bob = client(&server.url(), "bob", "d", dirs[1].path());
    synced(&alice).await;
    synced(&bob).await;
    (alice, bob, dirs)
}

/// (seq, cid, from, text) of every stored message of a conversation.
pub fn transcript(c: &Client, conv: &courier_proto::Conv) -> Vec<(Option<u64>, String, String, String)> {
    c.history(conv, None, u32::MAX)
        .unwrap()
        .into_iter()
        .map(|m| (m.seq, m.cid.clone(), m.from.clone(), m.text().unwrap_or("").to_owned()))
        .collect()
}
