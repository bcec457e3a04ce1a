//! State-machine tests of the connection manager against a scripted fake
//! server over in-memory pipes, with tokio's clock paused: back-off timing,
//! fail-over, stop on auth failure/replacement, immediate retry on network
//! change, and half-open detection within `2 × heartbeat + 5 s`; and the
//! v1.1 relation flows (pushed relations update their target, a refused
//! optimistic reaction is undone, a recall waits for the ok, local checks).

use super::*;
use crate::backoff::BackoffConfig;
use crate::conn::{ConnError, ConnectFuture, WsStream, dead_after};
use futures_util::{SinkExt, StreamExt};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::DuplexStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

struct Fake {
    attempts: Mutex<Vec<(Instant, String)>>,
    accept: AtomicBool,
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

fn setup(
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

async fn next_request(ws: &mut WebSocketStream<DuplexStream>) -> Value {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("fake server: connection ended: {other:?}"),
        }
    }
}

async fn reply(ws: &mut WebSocketStream<DuplexStream>, req: &Value, ok: Value) {
    ws.send(Message::text(json!({"re": req["id"], "ok": ok}).to_string())).await.unwrap();
}

/// Plays hello (with `hb_ms`) and an empty sync.
async fn accept_session(ws: &mut WebSocketStream<DuplexStream>, hb_ms: u64) {
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

async fn wait_for(
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

fn is_state(ev: &ClientEvent, want: ConnState) -> bool {
    matches!(ev, ClientEvent::Connection { state, .. } if *state == want)
}

#[tokio::test(start_paused = true)]
async fn reconnect_delays_grow_to_the_cap_and_fail_over_between_urls() {
    let (_d, client, fake, _rx) = setup(&["ws://a:1", "ws://b:2"], false);
    let start = Instant::now();
    client.start();
    while lock(&fake.attempts).len() < 8 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    client.stop().await;
    let attempts = lock(&fake.attempts).clone();
    let gaps: Vec<u64> = attempts.windows(2).map(|w| (w[1].0 - w[0].0).as_millis() as u64).collect();
    // Jitter 0: half of 1, 2, 4, 8, 16, 16, 16 s.
    assert_eq!(gaps, [500, 1000, 2000, 4000, 8000, 8000, 8000]);
    assert_eq!(attempts[0].0, start);
    let urls: Vec<&str> = attempts.iter().map(|(_, u)| u.as_str()).collect();
    assert_eq!(urls[..4], ["ws://a:1/v1/ws", "ws://b:2/v1/ws", "ws://a:1/v1/ws", "ws://b:2/v1/ws"]);
    assert_eq!(client.state(), ConnState::Disconnected);
}

#[tokio::test(start_paused = true)]
async fn network_change_retries_at_once() {
    let (_d, client, fake, _rx) = setup(&["ws://a:1"], false);
    let mut events = client.subscribe();
    client.start();
    for _ in 0..4 {
        wait_for(&mut events, |e| matches!(e, ClientEvent::Connection { retry_in_ms: Some(_), .. })).await;
    }
    // Now waiting 4 s (half of 8 s). Tell it the network is back.
    let before = Instant::now();
    client.network_changed();
    while lock(&fake.attempts).len() < 5 {
        tokio::task::yield_now().await;
    }
    assert_eq!(lock(&fake.attempts)[4].0, before);
    client.stop().await;
}

#[tokio::test(start_paused = true)]
async fn backoff_resets_after_a_successful_session() {
    let (_d, client, fake, mut servers) = setup(&["ws://a:1"], false);
    let mut events = client.subscribe();
    client.start();
    for _ in 0..3 {
        wait_for(&mut events, |e| matches!(e, ClientEvent::Connection { retry_in_ms: Some(_), .. })).await;
    }
    fake.accept.store(true, Ordering::SeqCst);
    let mut ws = servers.recv().await.unwrap();
    accept_session(&mut ws, 15_000).await;
    wait_for(&mut events, |e| matches!(e, ClientEvent::SyncCompleted { .. })).await;
    ws.close(Some(CloseFrame { code: 1001u16.into(), reason: "restart".into() })).await.unwrap();
    let ev = wait_for(&mut events, |e| is_state(e, ConnState::Reconnecting)).await;
    let ClientEvent::Connection { retry_in_ms, close_code, .. } = ev else { unreachable!() };
    assert_eq!(close_code, Some(1001));
    assert_eq!(retry_in_ms, Some(500), "back to the first step");
    client.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_half_open_link_is_detected_within_twice_the_heartbeat_plus_5s() {
    let (_d, client, _fake, mut servers) = setup(&["ws://a:1"], true);
    let mut events = client.subscribe();
    client.start();
    let mut ws = servers.recv().await.unwrap();
    let hb = Duration::from_secs(10);
    accept_session(&mut ws, hb.as_millis() as u64).await;
    let last_server_frame = Instant::now();
    wait_for(&mut events, |e| matches!(e, ClientEvent::SyncCompleted { .. })).await;
    // The server goes silent without closing (it stops reading, so the
    // client's pings get no pongs).
    let ev = wait_for(&mut events, |e| is_state(e, ConnState::Reconnecting)).await;
    let silent = Instant::now() - last_server_frame;
    assert!(silent <= dead_after(hb), "detected after {silent:?}");
    assert!(silent >= hb * 2, "declared dead too early: {silent:?}");
    let ClientEvent::Connection { reason, .. } = ev else { unreachable!() };
    assert!(reason.unwrap().contains("heartbeat"));
    drop(ws);
    client.stop().await;
}

#[tokio::test(start_paused = true)]
async fn pongs_keep_a_quiet_session_alive() {
    let (_d, client, _fake, mut servers) = setup(&["ws://a:1"], true);
    let mut events = client.subscribe();
    client.start();
    let mut ws = servers.recv().await.unwrap();
    accept_session(&mut ws, 1000).await;
    wait_for(&mut events, |e| matches!(e, ClientEvent::SyncCompleted { .. })).await;
    // The server only reads (answering pings with pongs) for ten minutes.
    let reader = tokio::spawn(async move {
        let mut pings = 0;
        while let Some(Ok(m)) = ws.next().await {
            if matches!(m, Message::Ping(_)) {
                pings += 1;
            }
        }
        pings
    });
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(client.state(), ConnState::Connected);
    client.stop().await;
    let pings = reader.await.unwrap();
    assert!(pings >= 500, "client pinged {pings} times in 600 s at 1 s");
}

#[tokio::test(start_paused = true)]
async fn auth_failure_stops_without_retrying() {
    let (_d, client, fake, mut servers) = setup(&["ws://a:1"], true);
    client.start();
    let mut ws = servers.recv().await.unwrap();
    let hello = next_request(&mut ws).await;
    ws.send(Message::text(
        json!({"re": hello["id"], "err": {"code": "unauthenticated", "message": "bad token"}}).to_string(),
    ))
    .await
    .unwrap();
    ws.close(Some(CloseFrame { code: 4001u16.into(), reason: "auth".into() })).await.unwrap();
    assert_eq!(client.wait_state(|s| s == ConnState::Stopped).await, ConnState::Stopped);
    assert!(matches!(client.wait_synced().await, Err(ClientError::Stopped { code: Some(4001), .. })));
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(lock(&fake.attempts).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn replacement_by_the_same_device_stops() {
    let (_d, client, fake, mut servers) = setup(&["ws://a:1"], true);
    let mut events = client.subscribe();
    client.start();
    let mut ws = servers.recv().await.unwrap();
    accept_session(&mut ws, 15_000).await;
    wait_for(&mut events, |e| matches!(e, ClientEvent::SyncCompleted { .. })).await;
    ws.close(Some(CloseFrame { code: 4003u16.into(), reason: "replaced".into() })).await.unwrap();
    let ev = wait_for(&mut events, |e| is_state(e, ConnState::Stopped)).await;
    assert!(matches!(ev, ClientEvent::Connection { close_code: Some(4003), .. }));
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(lock(&fake.attempts).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn token_expiry_waits_for_a_new_token() {
    let (_d, client, fake, mut servers) = setup(&["ws://a:1"], true);
    let mut events = client.subscribe();
    client.start();
    let mut ws = servers.recv().await.unwrap();
    accept_session(&mut ws, 15_000).await;
    ws.send(Message::text(r#"{"ev":"token_expiring","exp":123}"#)).await.unwrap();
    wait_for(&mut events, |e| matches!(e, ClientEvent::TokenExpiring { exp: 123 })).await;
    ws.close(Some(CloseFrame { code: 4002u16.into(), reason: "expired".into() })).await.unwrap();
    wait_for(&mut events, |e| matches!(e, ClientEvent::TokenRequired)).await;
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(lock(&fake.attempts).len(), 1, "no reconnect with the expired token");
    client.renew_token("dev:alice").await.unwrap();
    let mut ws = servers.recv().await.unwrap();
    accept_session(&mut ws, 15_000).await;
    wait_for(&mut events, |e| matches!(e, ClientEvent::SyncCompleted { .. })).await;
    assert_eq!(lock(&fake.attempts).len(), 2);
    client.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_live_gap_triggers_a_history_fetch() {
    let (_d, client, _fake, mut servers) = setup(&["ws://a:1"], true);
    let mut events = client.subscribe();
    client.start();
    let mut ws = servers.recv().await.unwrap();
    accept_session(&mut ws, 15_000).await;
    wait_for(&mut events, |e| matches!(e, ClientEvent::SyncCompleted { .. })).await;
    let m = |seq: u64| {
        json!({"conv": "ch:lobby", "seq": seq, "mid": format!("m{seq}"), "cid": format!("b{seq}"), "from": "bob",
               "to": {"channel": "lobby"}, "kind": "text", "body": {"text": format!("t{seq}")}, "ts": seq})
    };
    let mut ev1 = m(1);
    ev1["ev"] = json!("msg");
    ws.send(Message::text(ev1.to_string())).await.unwrap();
    let mut ev4 = m(4);
    ev4["ev"] = json!("msg");
    ws.send(Message::text(ev4.to_string())).await.unwrap();
    // Seq 4 after 1: the client asks for what follows 1.
    let req = loop {
        let r = next_request(&mut ws).await;
        if r["op"] == "history" {
            break r;
        }
        reply(&mut ws, &r, json!({})).await; // acks
    };
    assert_eq!(req["conv"], "ch:lobby");
    assert_eq!(req["after"], 1);
    reply(&mut ws, &req, json!({"messages": [m(2), m(3), m(4)], "more": false})).await;
    let conv = Conv::channel("lobby");
    loop {
        if client.store().synced_seq(&conv).unwrap() == 4 {
            break;
        }
        wait_for(&mut events, |_| true).await;
    }
    let seqs: Vec<_> = client.history(&conv, None, 10).unwrap().iter().map(|m| m.seq.unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    client.stop().await;
}

#[tokio::test(start_paused = true)]
async fn dropping_the_last_handle_stops_the_manager() {
    let (_d, client, fake, _rx) = setup(&["ws://a:1"], false);
    let mut events = client.subscribe();
    let other = client.clone();
    client.start();
    drop(client);
    wait_for(&mut events, |e| matches!(e, ClientEvent::Connection { retry_in_ms: Some(_), .. })).await;
    drop(other);
    wait_for(&mut events, |e| is_state(e, ConnState::Disconnected)).await;
    let n = lock(&fake.attempts).len();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(lock(&fake.attempts).len(), n);
}

// ---- v1.1 relations against the scripted server ---------------------------

/// Plays hello (listing `features`) and an empty sync.
async fn accept_with_features(ws: &mut WebSocketStream<DuplexStream>, features: &[&str]) {
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
fn dm_event(seq: u64, from: &str, kind: &str, body: Value) -> Message {
    let to = if from == "alice" { "bob" } else { "alice" };
    Message::text(
        json!({"ev": "msg", "conv": "dm:alice:bob", "seq": seq, "mid": format!("m{seq}"), "cid": format!("c{seq}"),
               "from": from, "to": {"user": to}, "kind": kind, "body": body, "ts": 1_000 * seq})
        .to_string(),
    )
}

/// The next request of `op`, answering cursor updates (`ack`, `read`) on the way.
async fn next_op(ws: &mut WebSocketStream<DuplexStream>, op: &str) -> Value {
    loop {
        let r = next_request(ws).await;
        if r["op"] == op {
            return r;
        }
        assert!(matches!(r["op"].as_str(), Some("ack" | "read")), "unexpected request {r}");
        reply(ws, &r, json!({})).await;
    }
}

async fn v11_session()
-> (tempfile::TempDir, Client, WebSocketStream<DuplexStream>, broadcast::Receiver<ClientEvent>) {
    let (d, client, _fake, mut servers) = setup(&["ws://a:1"], true);
    let mut events = client.subscribe();
    client.start();
    let mut ws = servers.recv().await.unwrap();
    accept_with_features(&mut ws, &[FEATURE_V1_1]).await;
    wait_for(&mut events, |e| matches!(e, ClientEvent::SyncCompleted { .. })).await;
    ws.send(dm_event(1, "bob", "text", json!({"text": "cake at four"}))).await.unwrap();
    wait_for(&mut events, |e| matches!(e, ClientEvent::MessageAdded { .. })).await;
    (d, client, ws, events)
}

#[tokio::test(start_paused = true)]
async fn pushed_relations_update_their_target_and_are_never_added() {
    let (_d, client, mut ws, mut events) = v11_session().await;
    assert_eq!(client.features(), ["v1.1"]);
    ws.send(dm_event(2, "bob", "reaction", json!({"target": "m1", "key": "🎂", "on": true}))).await.unwrap();
    ws.send(dm_event(3, "bob", "edit", json!({"target": "m1", "text": "cake at five"}))).await.unwrap();
    ws.send(dm_event(4, "bob", "pin", json!({"target": "m1", "on": true}))).await.unwrap();
    ws.send(dm_event(5, "bob", "recall", json!({"target": "m1"}))).await.unwrap();
    let mut seen = Vec::new();
    loop {
        let ev = wait_for(&mut events, |_| true).await;
        match ev {
            ClientEvent::MessageAdded { message } => panic!("a relation was added as a message: {message:?}"),
            ClientEvent::MessageUpdated { message } => {
                assert_eq!(message.mid.as_deref(), Some("m1"), "updates name the target");
                let recalled = message.recalled;
                seen.push(message);
                if recalled {
                    break;
                }
            }
            _ => {}
        }
    }
    assert_eq!(seen[0].reactions["🎂"], ["bob"]);
    assert_eq!(seen[1].text(), Some("cake at five"));
    assert_eq!(seen[2].pinned, Some(4000));
    assert!(seen[3].body.is_empty() && seen[3].edited.is_none() && seen[3].pinned.is_none());
    let conv = client.store().conversation("alice", &Conv::dm("alice", "bob")).unwrap().unwrap();
    assert_eq!(conv.unread, 0);
    assert!(conv.pins.is_empty(), "a recall unpins");
    assert!(client.search("cake", 10).unwrap().is_empty());
    client.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_refused_optimistic_reaction_is_undone_and_reported() {
    let (_d, client, mut ws, mut events) = v11_session().await;
    let conv = Conv::dm("alice", "bob");
    let c = client.clone();
    let task = tokio::spawn(async move { c.react(&Conv::dm("alice", "bob"), "m1", "👍", true).await });
    let ev = wait_for(&mut events, |e| matches!(e, ClientEvent::MessageUpdated { .. })).await;
    let ClientEvent::MessageUpdated { message } = ev else { unreachable!() };
    assert_eq!(message.reactions["👍"], ["alice"], "shown before the server answers");
    let send = next_op(&mut ws, "send").await;
    assert_eq!(send["kind"], "reaction");
    assert_eq!(send["to"], json!({"user": "bob"}));
    assert_eq!(send["body"], json!({"target": "m1", "key": "👍", "on": true}));
    ws.send(Message::text(
        json!({"re": send["id"], "err": {"code": "conflict", "message": "the message was recalled"}})
            .to_string(),
    ))
    .await
    .unwrap();
    let ev = wait_for(&mut events, |e| matches!(e, ClientEvent::MessageUpdated { .. })).await;
    let ClientEvent::MessageUpdated { message } = ev else { unreachable!() };
    assert!(message.reactions.is_empty(), "undone");
    let err = task.await.unwrap().unwrap_err();
    assert!(matches!(&err, ClientError::Server(e) if e.code == ErrorCode::Conflict), "{err}");
    assert!(client.store().message_by_mid(&conv, "m1").unwrap().unwrap().reactions.is_empty());
    assert!(client.outbox().unwrap().is_empty());
    client.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_recall_waits_for_the_servers_ok_before_destroying_anything() {
    let (_d, client, mut ws, _events) = v11_session().await;
    ws.send(dm_event(2, "alice", "text", json!({"text": "wrong chat, sorry"}))).await.unwrap();
    let conv = Conv::dm("alice", "bob");
    while client.store().synced_seq(&conv).unwrap() < 2 {
        tokio::task::yield_now().await;
    }
    let c = client.clone();
    let task = tokio::spawn(async move { c.recall(&Conv::dm("alice", "bob"), "m2").await });
    let send = next_op(&mut ws, "send").await;
    assert_eq!((send["kind"].as_str(), send["body"].clone()), (Some("recall"), json!({"target": "m2"})));
    assert!(!client.store().message_by_mid(&conv, "m2").unwrap().unwrap().recalled, "not before the ok");
    assert_eq!(client.search("wrong", 5).unwrap().len(), 1);
    reply(&mut ws, &send, json!({"conv": "dm:alice:bob", "seq": 3, "mid": "m3", "ts": 3000, "dup": false}))
        .await;
    let m = task.await.unwrap().unwrap();
    assert!(m.recalled && m.body.is_empty());
    assert!(client.search("wrong", 5).unwrap().is_empty());
    // Someone else's message in a DM, or again: refused here, nothing sent.
    let err = client.recall(&conv, "m1").await.unwrap_err();
    assert!(matches!(err, ClientError::Invalid(_)), "{err}");
    assert!(client.recall(&conv, "m2").await.is_err());
    assert!(client.outbox().unwrap().is_empty());
    client.stop().await;
}

#[tokio::test(start_paused = true)]
async fn relations_are_refused_locally_when_the_server_lacks_v1_1() {
    let (_d, client, _fake, mut servers) = setup(&["ws://a:1"], true);
    let mut events = client.subscribe();
    client.start();
    let mut ws = servers.recv().await.unwrap();
    accept_with_features(&mut ws, &[]).await;
    wait_for(&mut events, |e| matches!(e, ClientEvent::SyncCompleted { .. })).await;
    ws.send(dm_event(1, "alice", "text", json!({"text": "hi"}))).await.unwrap();
    wait_for(&mut events, |e| matches!(e, ClientEvent::MessageAdded { .. })).await;
    let conv = Conv::dm("alice", "bob");
    let err = client.edit(&conv, "m1", "hello").await.unwrap_err();
    assert!(matches!(err, ClientError::Unsupported(_)), "{err}");
    assert!(matches!(client.pin(&conv, "m1", true).await, Err(ClientError::Unsupported(_))));
    assert!(client.outbox().unwrap().is_empty(), "nothing queued");
    // Forwarding is a client feature: it works with any server.
    let fwd = client.forward(&conv, "m1", &Target::Channel("lobby".into())).await.unwrap();
    assert_eq!(fwd.body["forwarded_from"], json!({"conv": "dm:alice:bob", "mid": "m1", "from": "alice"}));
    client.stop().await;
}

#[tokio::test(start_paused = true)]
async fn local_checks_give_clear_errors_before_anything_is_queued() {
    let (_d, client, mut ws, _events) = v11_session().await;
    let conv = Conv::dm("alice", "bob");
    let invalid = |r: Result<MessageView>| match r {
        Err(ClientError::Invalid(m)) => m,
        other => panic!("expected a local refusal, got {other:?}"),
    };
    assert!(invalid(client.edit(&conv, "m1", "mine now").await).contains("own"));
    assert!(invalid(client.edit(&conv, "m9", "x").await).contains("no message m9"));
    assert!(invalid(client.react(&conv, "m1", "", true).await).contains("1 to 32 bytes"));
    assert!(invalid(client.react(&conv, "m1", &"x".repeat(33), true).await).contains("1 to 32 bytes"));
    // An own message older than the edit window (by the server's clock).
    ws.send(dm_event(2, "alice", "text", json!({"text": "old"}))).await.unwrap();
    while client.store().synced_seq(&conv).unwrap() < 2 {
        tokio::task::yield_now().await;
    }
    // Window 172800 s from ts 2000 ms; the hello said server_time 0, so
    // pretend the server's clock is far ahead.
    client.inner.clock_offset.store(3_000_000_000 - now_ms(), Ordering::Relaxed);
    assert!(invalid(client.edit(&conv, "m2", "new").await).contains("too old"));
    assert!(invalid(client.recall(&conv, "m2").await).contains("too old"));
    let err = client.send(&Target::User("bob".into()), "reaction", Map::new(), None).unwrap_err();
    assert!(matches!(err, ClientError::Invalid(_)));
    let err =
        client.send_text_with(&Target::User("bob".into()), "hi", None, &["not a user".into()]).unwrap_err();
    assert!(matches!(err, ClientError::Invalid(_)));
    assert!(client.outbox().unwrap().is_empty());
    client.stop().await;
}

/// A token's `sub` becomes a directory name: only valid user ids pass, so a
/// forged `../../x` never walks out of the profile.
#[test]
fn token_user_accepts_only_valid_ids() {
    use base64::Engine;
    let jwt = |sub: &str| {
        let enc = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!("{}.{}.sig", enc(json!({"alg":"HS256"})), enc(json!({"sub": sub, "exp": 1})))
    };
    assert_eq!(token_user(&jwt("alice")).as_deref(), Some("alice"));
    for bad in ["../../x", "a/b", "..", ".", "", "a\\b", "x y", "/etc", "x\u{0}"] {
        assert_eq!(token_user(&jwt(bad)), None, "{bad:?}");
    }
    assert_eq!(token_user("dev:../x"), None);
    assert_eq!(token_user("dev:.."), None);
    assert_eq!(token_user("not-a-token"), None);
    assert_eq!(token_user("dev:bob").as_deref(), Some("bob"));
}

/// A peer's media id is checked exactly before it becomes a URL, a cache
/// file name or a store key: `m_<id>#.bat` (an executable extension) and
/// `m_<id>\\..\\..` (a walk out of the cache on Windows) are refused by the
/// client, and no file appears; forwarding such a file is refused too.
#[tokio::test(start_paused = true)]
async fn hostile_media_ids_are_refused_before_any_use() {
    let (d, client, mut ws, mut events) = v11_session().await;
    let ulid = "01J9ZS1A7PQ8R2XKJT3V4W5Y6H";
    for bad in [
        format!("m_{ulid}#.bat"),
        format!("m_{ulid}\\..\\.."),
        format!("m_{ulid}/../../x"),
        format!("m_{}", ulid.to_lowercase()),
        "../../etc/passwd".to_owned(),
        String::new(),
    ] {
        match client.download(&bad).await {
            Err(ClientError::Invalid(m)) => assert!(m.contains("media id"), "{bad:?}: {m}"),
            other => panic!("{bad:?}: expected a local refusal, got {other:?}"),
        }
    }
    let cache = client.data_dir().join("media");
    assert!(!cache.exists() || std::fs::read_dir(&cache).unwrap().next().is_none());
    ws.send(dm_event(
        2,
        "bob",
        "file",
        json!({"media": format!("m_{ulid}#.bat"), "name": "x.pdf", "size": 1}),
    ))
    .await
    .unwrap();
    wait_for(&mut events, |e| matches!(e, ClientEvent::MessageAdded { .. })).await;
    let to = Target::Channel("lobby".into());
    match client.forward(&Conv::dm("alice", "bob"), "m2", &to).await {
        Err(ClientError::Invalid(m)) => assert!(m.contains("invalid media id"), "{m}"),
        other => panic!("expected a local refusal, got {other:?}"),
    }
    drop(d);
}
