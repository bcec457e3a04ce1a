//! State-machine tests of the connection manager against the scripted fake
//! server, with tokio's clock paused: back-off timing, fail-over, stop on
//! auth failure/replacement, immediate retry on network change, half-open
//! detection within `2 × heartbeat + 5 s`, token expiry, gap filling, and
//! shutdown when the last handle goes.

use crate::client::ClientError;
use crate::conn::dead_after;
use crate::events::{ClientEvent, ConnState};
use crate::fake_server::{
    accept_session, is_state, next_op, next_request, reply, setup, synced_session,
    synced_session_and_servers, wait_for,
};
use crate::model::now_ms;
use crate::state::lock;
use courier_proto::{Conv, InviteState, Limits, Target};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

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

#[tokio::test(start_paused = true)]
async fn a_message_that_does_not_decode_blocks_neither_the_sync_nor_the_outbox() {
    let (_d, client, _fake, mut servers) = setup(&["ws://a:1"], true);
    let mut events = client.subscribe();
    let queued = client.send_text(&Target::User("bob".into()), "still goes").unwrap();
    client.start();
    let mut ws = servers.recv().await.unwrap();
    let hello = next_request(&mut ws).await;
    reply(
        &mut ws,
        &hello,
        json!({"user": "alice", "session": "s1", "server_time": 0, "heartbeat_ms": 15_000, "limits": Limits::default()}),
    )
    .await;
    let conv = |c: &str, last: u64| json!({"conv": format!("ch:{c}"), "kind": "channel", "channel": c, "last_seq": last, "last_ts": 0, "read_seq": 0});
    let m = |c: &str, seq: u64| {
        json!({"conv": format!("ch:{c}"), "seq": seq, "mid": format!("m{c}{seq}"), "cid": format!("b{c}{seq}"),
               "from": "bob", "to": {"channel": c}, "kind": "text", "body": {"text": "hi"}, "ts": seq})
    };
    let sync = next_request(&mut ws).await;
    reply(&mut ws, &sync, json!({"conversations": [conv("lobby", 2), conv("tech", 1)], "invites": []})).await;
    let h = next_op(&mut ws, "history").await;
    assert_eq!(h["conv"], "ch:lobby");
    let mut float_ts = m("lobby", 1);
    float_ts["ts"] = json!(1.5);
    reply(&mut ws, &h, json!({"messages": [float_ts, m("lobby", 2)], "more": false})).await;
    let h = next_op(&mut ws, "history").await;
    assert_eq!(h["conv"], "ch:tech");
    reply(&mut ws, &h, json!({"messages": [m("tech", 1)], "more": false})).await;
    let send = next_op(&mut ws, "send").await;
    assert_eq!(send["cid"], queued.cid.as_str());
    reply(&mut ws, &send, json!({"conv": "dm:alice:bob", "seq": 1, "mid": "d1", "ts": 7, "dup": false}))
        .await;
    wait_for(
        &mut events,
        |e| matches!(e, ClientEvent::MessageUpdated { message } if message.mid.as_deref() == Some("d1")),
    )
    .await;
    assert!(client.outbox().unwrap().is_empty());
    assert_eq!(client.store().synced_seq(&Conv::channel("lobby")).unwrap(), 2);
    assert_eq!(client.store().synced_seq(&Conv::channel("tech")).unwrap(), 1);
    assert_eq!(client.state(), ConnState::Connected);
    client.stop().await;
}

#[tokio::test(start_paused = true)]
async fn invites_expire_by_the_servers_clock_not_a_fast_local_one() {
    let (_d, client, _fake, mut servers) = setup(&["ws://a:1"], true);
    let mut events = client.subscribe();
    client.start();
    let mut ws = servers.recv().await.unwrap();
    // This machine's clock is two minutes fast.
    let server_time = now_ms() - 120_000;
    let invite = |iid: &str| {
        json!({"iid": iid, "from": "bob", "to": "alice", "room": format!("call-{iid}"), "content": {},
               "state": "pending", "created": server_time, "expires": server_time + 60_000, "received": false})
    };
    let hello = next_request(&mut ws).await;
    reply(
        &mut ws,
        &hello,
        json!({"user": "alice", "session": "s1", "server_time": server_time, "heartbeat_ms": 15_000,
               "limits": Limits::default()}),
    )
    .await;
    let sync = next_request(&mut ws).await;
    reply(&mut ws, &sync, json!({"conversations": [], "invites": [invite("i1")]})).await;
    let ev = wait_for(&mut events, |e| matches!(e, ClientEvent::Invite { .. })).await;
    assert!(matches!(ev, ClientEvent::Invite { invite } if invite.ringing), "from sync");
    ws.send(Message::text(json!({"ev": "invite", "invite": invite("i2")}).to_string())).await.unwrap();
    let ev = wait_for(&mut events, |e| matches!(e, ClientEvent::Invite { .. })).await;
    assert!(matches!(ev, ClientEvent::Invite { invite } if invite.ringing), "live");
    let mut ringing: Vec<_> =
        client.invites().unwrap().into_iter().filter(|v| v.ringing).map(|v| v.invite.iid).collect();
    ringing.sort();
    assert_eq!(ringing, ["i1", "i2"], "as listed");
    let server = async {
        let req = next_op(&mut ws, "invite").await;
        let mut out = invite("i3");
        (out["from"], out["to"]) = (json!("alice"), json!("bob"));
        reply(&mut ws, &req, json!({"invite": out})).await;
    };
    let (placed, ()) = tokio::join!(client.invite("bob", Default::default(), 60), server);
    assert_eq!(placed.unwrap().invite.state, InviteState::Pending, "an outgoing call is not expired at once");
    client.stop().await;
}

#[tokio::test(start_paused = true)]
async fn invite_returns_the_stored_invitation_when_its_state_came_first() {
    let (_d, client, mut ws, mut events) = synced_session(&[]).await;
    let invite = json!({"iid": "i1", "from": "alice", "to": "bob", "room": "call-i1", "content": {},
                        "state": "pending", "created": 0, "expires": i64::MAX, "received": false});
    let server = async {
        let req = next_op(&mut ws, "invite").await;
        // On a cluster bob's node may report the delivery before the ok.
        let mut received = invite.clone();
        received["received"] = json!(true);
        ws.send(Message::text(json!({"ev": "invite_state", "invite": received}).to_string())).await.unwrap();
        wait_for(&mut events, |e| matches!(e, ClientEvent::Invite { invite } if invite.invite.received))
            .await;
        reply(&mut ws, &req, json!({"invite": invite})).await;
    };
    let (placed, ()) = tokio::join!(client.invite("bob", Default::default(), 60), server);
    assert!(placed.unwrap().invite.received);
    assert!(client.invites().unwrap()[0].invite.received);
    client.stop().await;
}

/// The server relays this device's own answer before the answer's ok (the
/// caller's node is quick): the relayed state already says it was answered
/// here, so a UI never shows "answered on another device" for it.
#[tokio::test(start_paused = true)]
async fn an_own_answer_relayed_before_its_ok_reads_as_answered_here() {
    let (_d, client, mut ws, mut events) = synced_session(&[]).await;
    let invite = |iid: &str, state: &str| {
        json!({"iid": iid, "from": "bob", "to": "alice", "room": format!("call-{iid}"), "content": {},
               "state": state, "created": 0, "expires": i64::MAX, "received": true})
    };
    for (iid, accept, state) in [("i1", false, "refused"), ("i2", true, "accepted")] {
        ws.send(Message::text(json!({"ev": "invite", "invite": invite(iid, "pending")}).to_string()))
            .await
            .unwrap();
        wait_for(&mut events, |e| matches!(e, ClientEvent::Invite { invite } if invite.ringing)).await;
        let server = async {
            let req = next_op(&mut ws, "invite_answer").await;
            ws.send(Message::text(json!({"ev": "invite_state", "invite": invite(iid, state)}).to_string()))
                .await
                .unwrap();
            let ev =
                wait_for(&mut events, |e| matches!(e, ClientEvent::Invite { invite } if !invite.ringing))
                    .await;
            reply(&mut ws, &req, json!({"invite": invite(iid, state)})).await;
            ev
        };
        let (answered, relayed) = tokio::join!(client.answer(iid, accept, Default::default()), server);
        let ClientEvent::Invite { invite: relayed } = relayed else { unreachable!() };
        assert!(relayed.answered_here, "{iid}: the relayed {state} is this device's answer");
        assert!(answered.unwrap().unwrap().answered_here, "{iid}: and so is the ok's");
    }
    // Another device's answer, relayed while none is in flight here.
    ws.send(Message::text(json!({"ev": "invite", "invite": invite("i3", "pending")}).to_string()))
        .await
        .unwrap();
    wait_for(&mut events, |e| matches!(e, ClientEvent::Invite { invite } if invite.ringing)).await;
    ws.send(Message::text(json!({"ev": "invite_state", "invite": invite("i3", "refused")}).to_string()))
        .await
        .unwrap();
    let ev = wait_for(&mut events, |e| matches!(e, ClientEvent::Invite { invite } if !invite.ringing)).await;
    assert!(matches!(ev, ClientEvent::Invite { invite } if !invite.answered_here), "answered elsewhere");
    assert!(lock(&client.inner.answering).is_empty(), "answers done are forgotten");
    client.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_failing_local_database_is_reported_as_such_and_backed_off() {
    let (_d, client, mut ws, mut events, mut servers) = synced_session_and_servers(&[]).await;
    // The file turns read-only under the running client (as after a
    // remount), then the disk is full.
    client.store().with_transaction(|tx| tx.execute_batch("PRAGMA query_only = ON")).unwrap();
    let db = client.store().path().display().to_string();
    let mut delays = Vec::new();
    for (round, says) in
        ["attempt to write a readonly database", "database or disk is full"].into_iter().enumerate()
    {
        if round == 1 {
            let full = "PRAGMA query_only = OFF; PRAGMA max_page_count = 1;";
            client.store().with_transaction(|tx| tx.execute_batch(full)).unwrap();
        }
        // Never stored, so seq 1 each time (no gap to fill); large enough to need new pages.
        let m = json!({"ev": "msg", "conv": "ch:lobby", "seq": 1, "mid": "m1", "cid": "b1", "from": "bob",
                       "to": {"channel": "lobby"}, "kind": "text", "body": {"text": "hi ".repeat(50_000)},
                       "ts": 1});
        ws.send(Message::text(m.to_string())).await.unwrap();
        let ev = wait_for(&mut events, |e| is_state(e, ConnState::Reconnecting)).await;
        let ClientEvent::Connection { reason, retry_in_ms, .. } = ev else { unreachable!() };
        let reason = reason.unwrap();
        assert!(reason.contains(&format!("local database {db}")), "{reason}");
        assert!(reason.contains(says), "{reason}");
        assert_eq!(client.last_error().as_deref(), Some(reason.as_str()));
        delays.push(retry_in_ms.unwrap());
        ws = servers.recv().await.unwrap();
        accept_session(&mut ws, 15_000).await;
        wait_for(&mut events, |e| matches!(e, ClientEvent::SyncCompleted { .. })).await;
    }
    assert_eq!(delays, [500, 1000], "backs off although each session synced");
    client.stop().await;
}
