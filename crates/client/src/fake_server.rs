//! A scripted fake server for the unit tests of the client handle: a
//! [`Connector`] over in-memory pipes whose server ends the test drives
//! request by request, with tokio's clock paused.

use crate::backoff::BackoffConfig;
use crate::client::{Client, ClientConfig};
use crate::conn::{ConnError, ConnectFuture, Connector, WsStream};
use crate::events::{ClientEvent, ConnState};
use crate::state::lock;
use courier_proto::{FEATURE_V1_1, Limits};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::DuplexStream;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

/// A [`Connector`] that records every attempt and, while `accept` is set,
/// hands the server end of an in-memory pipe to the test.
pub(crate) struct Fake {
    /// When and where each connection attempt went.
    pub(crate) attempts: Mutex<Vec<(Instant, String)>>,
    /// Whether attempts succeed.
    pub(crate) accept: AtomicBool,
    servers: mpsc::UnboundedSender<WebSocketStream<DuplexStream>>,
}

impl Connector for Fake {
    fn connect<'a>(&'a self, url: &'a str) -> ConnectFuture<'a> {
        Box::pin(async move {
            lock(&self.attempts).push((Instant::now(), url.to_owned()));
            if !self.accept.load(Ordering::SeqCst) {
                return Err(ConnError::Unreachable(url.into(), std::io::Error::other("refused")));
            }
            let (a, b) = tokio::io::duplex(1 << 20);
            let servers = self.servers.clone();
            tokio::spawn(async move {
                if let Ok(ws) = tokio_tungstenite::accept_async(b).await {
                    let _ = servers.send(ws);
                }
            });
            let io: Box<dyn crate::conn::Io> = Box::new(a);
            let (ws, _) = tokio_tungstenite::client_async("ws://fake/v1/ws", io)
                .await
                .map_err(|e| ConnError::Handshake(url.into(), e.to_string()))?;
            let ws: WsStream = ws;
            Ok(ws)
        })
    }
}

/// A client for `alice` on `urls` with exact back-off (1 s, doubling, capped
/// at 16 s, no jitter), not started; the receiver yields each accepted
/// connection's server end.
pub(crate) fn setup(
    urls: &[&str],
    accept: bool,
) -> (tempfile::TempDir, Client, Arc<Fake>, mpsc::UnboundedReceiver<WebSocketStream<DuplexStream>>) {
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let fake = Arc::new(Fake { attempts: Mutex::default(), accept: AtomicBool::new(accept), servers: tx });
    let mut cfg = ClientConfig::new(urls.iter().map(|s| s.to_string()).collect(), "dev:alice", dir.path());
    cfg.backoff = BackoffConfig { base: Duration::from_secs(1), cap: Duration::from_secs(16), factor: 2.0 };
    let client = Client::open_with(cfg, fake.clone(), Arc::new(|| 0.0)).unwrap();
    (dir, client, fake, rx)
}

/// The next request the client sent.
pub(crate) async fn next_request(ws: &mut WebSocketStream<DuplexStream>) -> Value {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("fake server: connection ended: {other:?}"),
        }
    }
}

/// Answers `req` with `ok`.
pub(crate) async fn reply(ws: &mut WebSocketStream<DuplexStream>, req: &Value, ok: Value) {
    ws.send(Message::text(json!({"re": req["id"], "ok": ok}).to_string())).await.unwrap();
}

/// Plays hello (with `hb_ms`) and an empty sync.
pub(crate) async fn accept_session(ws: &mut WebSocketStream<DuplexStream>, hb_ms: u64) {
    let hello = next_request(ws).await;
    assert_eq!(hello["op"], "hello");
    assert_eq!(hello["token"], "dev:alice");
    reply(
        ws,
        &hello,
        json!({"user": "alice", "session": "s1", "server_time": 0, "heartbeat_ms": hb_ms, "limits": Limits::default()}),
    )
    .await;
    let sync = next_request(ws).await;
    assert_eq!(sync["op"], "sync");
    reply(ws, &sync, json!({"conversations": [], "invites": []})).await;
}

/// The next event matching `pred` (panics after an hour of paused time).
pub(crate) async fn wait_for(
    rx: &mut broadcast::Receiver<ClientEvent>,
    pred: impl Fn(&ClientEvent) -> bool,
) -> ClientEvent {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(3600), rx.recv())
            .await
            .expect("event never came")
            .unwrap();
        if pred(&ev) {
            return ev;
        }
    }
}

/// Whether `ev` reports the connection state `want`.
pub(crate) fn is_state(ev: &ClientEvent, want: ConnState) -> bool {
    matches!(ev, ClientEvent::Connection { state, .. } if *state == want)
}

/// Plays hello (listing `features`) and an empty sync.
pub(crate) async fn accept_with_features(ws: &mut WebSocketStream<DuplexStream>, features: &[&str]) {
    let hello = next_request(ws).await;
    assert_eq!(hello["op"], "hello");
    reply(
        ws,
        &hello,
        json!({"user": "alice", "session": "s1", "server_time": 0, "heartbeat_ms": 15_000,
               "limits": Limits::default(), "features": features}),
    )
    .await;
    let sync = next_request(ws).await;
    reply(ws, &sync, json!({"conversations": [], "invites": []})).await;
}

/// A `msg` event of `kind` in `dm:alice:bob`.
pub(crate) fn dm_event(seq: u64, from: &str, kind: &str, body: Value) -> Message {
    let to = if from == "alice" { "bob" } else { "alice" };
    Message::text(
        json!({"ev": "msg", "conv": "dm:alice:bob", "seq": seq, "mid": format!("m{seq}"), "cid": format!("c{seq}"),
               "from": from, "to": {"user": to}, "kind": kind, "body": body, "ts": 1_000 * seq})
        .to_string(),
    )
}

/// The next request of `op`, answering cursor updates (`ack`, `read`) on the way.
pub(crate) async fn next_op(ws: &mut WebSocketStream<DuplexStream>, op: &str) -> Value {
    loop {
        let r = next_request(ws).await;
        if r["op"] == op {
            return r;
        }
        assert!(matches!(r["op"].as_str(), Some("ack" | "read")), "unexpected request {r}");
        reply(ws, &r, json!({})).await;
    }
}

/// A started client that has synced (nothing) with a server listing
/// `features`.
pub(crate) async fn synced_session(
    features: &[&str],
) -> (tempfile::TempDir, Client, WebSocketStream<DuplexStream>, broadcast::Receiver<ClientEvent>) {
    let (d, client, ws, events, _servers) = synced_session_and_servers(features).await;
    (d, client, ws, events)
}

/// The server end of each later connection of a client.
pub(crate) type Servers = mpsc::UnboundedReceiver<WebSocketStream<DuplexStream>>;

/// [`synced_session`], and the server ends of the client's reconnections.
pub(crate) async fn synced_session_and_servers(
    features: &[&str],
) -> (tempfile::TempDir, Client, WebSocketStream<DuplexStream>, broadcast::Receiver<ClientEvent>, Servers) {
    let (d, client, _fake, mut servers) = setup(&["ws://a:1"], true);
    let mut events = client.subscribe();
    client.start();
    let mut ws = servers.recv().await.unwrap();
    accept_with_features(&mut ws, features).await;
    wait_for(&mut events, |e| matches!(e, ClientEvent::SyncCompleted { .. })).await;
    (d, client, ws, events, servers)
}

/// A started client in session with a v1.1 server, holding bob's `m1`
/// ("cake at four") in `dm:alice:bob`.
pub(crate) async fn v11_session()
-> (tempfile::TempDir, Client, WebSocketStream<DuplexStream>, broadcast::Receiver<ClientEvent>) {
    let (d, client, mut ws, mut events) = synced_session(&[FEATURE_V1_1]).await;
    ws.send(dm_event(1, "bob", "text", json!({"text": "cake at four"}))).await.unwrap();
    wait_for(&mut events, |e| matches!(e, ClientEvent::MessageAdded { .. })).await;
    (d, client, ws, events)
}
