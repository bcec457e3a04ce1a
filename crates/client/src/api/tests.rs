//! The v1.1 relation flows against the scripted fake server (pushed
//! relations update their target, a refused optimistic reaction is undone,
//! a recall waits for the ok, local checks come first), and hostile media
//! ids refused before any use.

use crate::client::{ClientError, Result};
use crate::events::ClientEvent;
use crate::fake_server::{accept_with_features, dm_event, next_op, reply, setup, v11_session, wait_for};
use crate::model::{MessageView, now_ms};
use courier_proto::{Conv, ErrorCode, Target};
use futures_util::SinkExt;
use serde_json::{Map, json};
use std::sync::atomic::Ordering;
use tokio_tungstenite::tungstenite::Message;

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
    // A forward's original is looked up among content messages only: a
    // relation's mid never stands for a message someone wrote.
    let dm = Conv::dm("alice", "bob");
    assert_eq!(client.message(&dm, "m1").unwrap().map(|m| m.from), Some("bob".to_owned()));
    assert_eq!(client.message(&dm, "m2").unwrap(), None, "m2 is bob's reaction");
    assert_eq!(client.message(&dm, "m9").unwrap(), None);
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

#[tokio::test(start_paused = true)]
async fn a_send_to_a_channel_left_is_refused_until_joined_again() {
    let (_d, client, mut ws, _events) = crate::fake_server::synced_session(&[]).await;
    let lobby = Conv::channel("lobby");
    let to = Target::Channel("lobby".into());
    let server = async {
        let req = next_op(&mut ws, "join").await;
        reply(&mut ws, &req, json!({"last_seq": 0})).await;
        let req = next_op(&mut ws, "leave").await;
        reply(&mut ws, &req, json!({})).await;
    };
    let (joined, ()) =
        tokio::join!(async { (client.join("lobby").await, client.leave("lobby").await) }, server);
    assert!(joined.0.is_ok() && joined.1.is_ok());
    let err = client.send_text(&to, "still there?").unwrap_err();
    assert!(matches!(&err, ClientError::Invalid(m) if m.contains("join it again")), "{err}");
    assert!(client.outbox().unwrap().is_empty(), "nothing queued");
    assert_eq!(client.store().conversation("alice", &lobby).unwrap(), None, "not brought back");
    assert!(client.store().has_left(&lobby).unwrap(), "still left: late messages stay out");
    let server = async {
        let req = next_op(&mut ws, "join").await;
        reply(&mut ws, &req, json!({"last_seq": 0})).await;
    };
    let (joined, ()) = tokio::join!(client.join("lobby"), server);
    joined.unwrap();
    assert!(!client.store().has_left(&lobby).unwrap(), "joining again clears the mark");
    let sent = client.send_text(&to, "back").unwrap();
    assert_eq!(client.outbox().unwrap(), [sent.cid]);
    assert!(client.store().conversation("alice", &lobby).unwrap().is_some());
    client.stop().await;
}
