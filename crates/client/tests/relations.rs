//! Protocol v1.1 against the real server, in-process on loopback: edits,
//! recalls, reactions and pins between devices, refused optimistic changes
//! undone, a device catching up on relations through paged history,
//! forwarding with media, mentions and channel roles.

mod support;

use courier_client::{Client, ClientError, ClientEvent, DeliveryStatus, MessageView};
use courier_proto::{Conv, ErrorCode, Role, Target};
use support::{TestServer, client, settled, synced, until};

/// Sends `text` and waits until the server stored it; returns its mid.
async fn sent(c: &Client, to: &Target, text: &str, mentions: &[&str]) -> String {
    let mentions: Vec<String> = mentions.iter().map(|m| m.to_string()).collect();
    let m = c.send_text_with(to, text, None, &mentions).unwrap();
    settled(c, &m.cid).await.mid.unwrap()
}

fn shown(c: &Client, conv: &Conv, mid: &str) -> Option<MessageView> {
    c.store().message_by_mid(conv, mid).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_reactions_pins_and_recalls_reach_the_other_side() {
    let mut server = TestServer::started().await;
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let alice = client(&server.url(), "alice", "d", a.path());
    let bob = client(&server.url(), "bob", "d", b.path());
    synced(&alice).await;
    synced(&bob).await;
    assert_eq!(alice.features(), ["v1.1", "v1.2"]);
    let conv = Conv::dm("alice", "bob");
    let mid = sent(&alice, &Target::User("bob".into()), "meet at noon", &[]).await;
    until(&bob, "bob has the message", || shown(&bob, &conv, &mid).is_some()).await;
    let mut bob_events = bob.subscribe();

    // Edit: the new text everywhere, in the search index too.
    let m = alice.edit(&conv, &mid, "meet at one").await.unwrap();
    assert_eq!((m.text(), m.edited.is_some()), (Some("meet at one"), true));
    let ev = support::event(&mut bob_events, "the edit reaches bob", |e| {
        matches!(e, ClientEvent::MessageUpdated { message } if message.mid.as_deref() == Some(mid.as_str()))
    })
    .await;
    let ClientEvent::MessageUpdated { message } = ev else { unreachable!() };
    assert_eq!(message.text(), Some("meet at one"));
    assert!(bob.search("noon", 10).unwrap().is_empty(), "the old text is not found");
    assert_eq!(bob.search("one", 10).unwrap()[0].mid.as_deref(), Some(mid.as_str()));

    // Reactions: on, then off.
    bob.react(&conv, &mid, "👍", true).await.unwrap();
    until(&alice, "alice sees bob's 👍", || {
        shown(&alice, &conv, &mid).unwrap().reactions.get("👍").is_some_and(|u| u == &["bob"])
    })
    .await;
    bob.react(&conv, &mid, "👍", false).await.unwrap();
    until(&alice, "bob's 👍 is gone", || shown(&alice, &conv, &mid).unwrap().reactions.is_empty()).await;

    // Pin: on the message and in the conversation's list, on both sides.
    alice.pin(&conv, &mid, true).await.unwrap();
    until(&bob, "bob sees the pin", || {
        bob.store().conversation("bob", &conv).unwrap().unwrap().pins == [mid.clone()]
    })
    .await;
    assert!(shown(&bob, &conv, &mid).unwrap().pinned.is_some());
    assert_eq!(bob.pinned(&conv).unwrap()[0].mid.as_deref(), Some(mid.as_str()));

    // Recall: gone from bob's view, index and unread count.
    assert_eq!(bob.store().conversation("bob", &conv).unwrap().unwrap().unread, 1);
    let m = alice.recall(&conv, &mid).await.unwrap();
    assert!(m.recalled && m.body.is_empty(), "applied once the server said ok");
    until(&bob, "bob sees the recall", || shown(&bob, &conv, &mid).unwrap().recalled).await;
    assert!(shown(&bob, &conv, &mid).unwrap().body.is_empty());
    assert!(bob.search("meet", 10).unwrap().is_empty());
    assert_eq!(bob.store().conversation("bob", &conv).unwrap().unwrap().unread, 0);
    // Relations never became messages on either side.
    for c in [&alice, &bob] {
        assert_eq!(c.history(&conv, None, 50).unwrap().len(), 1);
    }
    while let Ok(ev) = bob_events.try_recv() {
        if let ClientEvent::MessageAdded { message } = ev {
            panic!("bob was told about a new message: {message:?}");
        }
    }
    alice.stop().await;
    bob.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_pin_is_undone_and_roles_change_what_is_allowed() {
    let mut server = TestServer::started().await;
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let alice = client(&server.url(), "alice", "d", dirs[0].path());
    let bob = client(&server.url(), "bob", "d", dirs[1].path());
    let carol = client(&server.url(), "carol", "d", dirs[2].path());
    for c in [&alice, &bob, &carol] {
        synced(c).await;
    }
    let conv = alice.create_channel("team", "Team", "", false).await.unwrap();
    bob.join("team").await.unwrap();
    carol.join("team").await.unwrap();
    let mid = sent(&alice, &Target::Channel("team".into()), "release on friday", &[]).await;
    until(&bob, "bob has it", || shown(&bob, &conv, &mid).is_some()).await;

    // A plain member may not pin in a channel: shown at once, then undone.
    let mut events = bob.subscribe();
    let err = bob.pin(&conv, &mid, true).await.unwrap_err();
    assert!(matches!(&err, ClientError::Server(e) if e.code == ErrorCode::Forbidden), "{err}");
    assert_eq!(shown(&bob, &conv, &mid).unwrap().pinned, None);
    assert!(bob.store().conversation("bob", &conv).unwrap().unwrap().pins.is_empty());
    support::event(
        &mut events,
        "the optimistic pin",
        |e| matches!(e, ClientEvent::MessageUpdated { message } if message.pinned.is_some()),
    )
    .await;
    support::event(
        &mut events,
        "its undoing",
        |e| matches!(e, ClientEvent::MessageUpdated { message } if message.pinned.is_none()),
    )
    .await;

    // The owner makes bob an admin: now he may pin and remove members.
    let mut bob_events = bob.subscribe();
    alice.set_role("team", "bob", Role::Admin).await.unwrap();
    support::event(
        &mut bob_events,
        "bob learns his role",
        |e| matches!(e, ClientEvent::Member { user, role: Some(Role::Admin), .. } if user == "bob"),
    )
    .await;
    let roles: Vec<(String, Role)> =
        alice.members("team").await.unwrap().into_iter().map(|m| (m.user, m.role)).collect();
    assert!(roles.contains(&("alice".into(), Role::Owner)) && roles.contains(&("bob".into(), Role::Admin)));
    bob.pin(&conv, &mid, true).await.unwrap();
    until(&alice, "alice sees the pin", || {
        alice.store().conversation("alice", &conv).unwrap().unwrap().pins == [mid.clone()]
    })
    .await;

    let mut carol_events = carol.subscribe();
    bob.remove_member("team", "carol").await.unwrap();
    support::event(
        &mut carol_events,
        "carol is removed",
        |e| matches!(e, ClientEvent::Member { user, removed: true, .. } if user == "carol"),
    )
    .await;
    assert!(carol.conversations().unwrap().iter().all(|c| c.conv != conv), "the channel left carol's list");
    let err = carol.join("team").await.unwrap_err();
    assert!(matches!(&err, ClientError::Server(e) if e.code == ErrorCode::Forbidden), "{err}");
    // Bad input is refused before it reaches the server.
    assert!(matches!(alice.set_role("team", "not a user", Role::Admin).await, Err(ClientError::Invalid(_))));
    for c in [&alice, &bob, &carol] {
        c.stop().await;
    }
    server.stop().await;
}

/// Bob is away while alice edits, reacts, pins and recalls; his device
/// catches up through history pages of three messages, so relations and
/// the aggregates served with their targets straddle page boundaries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_was_away_catches_up_on_relations_page_by_page() {
    let mut server = TestServer::new();
    server.history_page = Some(3);
    server.start().await;
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let alice = client(&server.url(), "alice", "d", a.path());
    synced(&alice).await;
    let to = Target::User("bob".into());
    let conv = Conv::dm("alice", "bob");
    let m1 = sent(&alice, &to, "first version", &[]).await;
    let m2 = sent(&alice, &to, "lunch, @bob?", &["bob"]).await;
    let m3 = sent(&alice, &to, "the agenda", &[]).await;
    let m4 = sent(&alice, &to, "wrong window", &[]).await;
    alice.edit(&conv, &m1, "second version").await.unwrap();
    alice.react(&conv, &m2, "🍕", true).await.unwrap();
    alice.react(&conv, &m2, "🍕", false).await.unwrap();
    alice.react(&conv, &m2, "🍜", true).await.unwrap();
    alice.pin(&conv, &m3, true).await.unwrap();
    alice.recall(&conv, &m4).await.unwrap();
    alice.edit(&conv, &m1, "final version").await.unwrap();
    assert!(alice.outbox().unwrap().is_empty());

    let bob = client(&server.url(), "bob", "d", b.path());
    synced(&bob).await;
    let check = |bob: &Client, text: &str| {
        let page = bob.history(&conv, None, 50).unwrap();
        assert_eq!(page.len(), 4, "content messages only");
        assert_eq!(page[0].text(), Some(text));
        assert!(page[0].edited.is_some());
        assert_eq!(page[1].reactions.len(), 1);
        assert_eq!(page[1].reactions["🍜"], ["alice"]);
        assert!(page[2].pinned.is_some());
        assert!(page[3].recalled && page[3].body.is_empty());
        let c = bob.store().conversation("bob", &conv).unwrap().unwrap();
        assert_eq!(c.pins, std::slice::from_ref(&m3));
        assert_eq!((c.unread, c.mentions_unread), (3, 1), "recalled and relations do not count");
        assert!(bob.search("wrong", 5).unwrap().is_empty());
        assert!(bob.search("version", 5).unwrap().iter().all(|m| m.text() == Some(text)));
    };
    check(&bob, "final version");
    // What alice derived from her own relations is what the server served bob.
    let aggregates = |c: &Client| -> Vec<_> {
        c.history(&conv, None, 50)
            .unwrap()
            .into_iter()
            .map(|m| (m.mid, m.body, m.edited, m.reactions, m.recalled, m.pinned))
            .collect()
    };
    assert_eq!(aggregates(&alice), aggregates(&bob));

    // Away again; more changes; back: the gap fill applies them once.
    bob.stop().await;
    alice.edit(&conv, &m1, "really final version").await.unwrap();
    alice.pin(&conv, &m3, false).await.unwrap();
    alice.pin(&conv, &m3, true).await.unwrap();
    let bob = client(&server.url(), "bob", "d", b.path());
    synced(&bob).await;
    check(&bob, "really final version");
    assert_eq!(aggregates(&alice), aggregates(&bob));
    bob.mark_read(&conv, None).unwrap();
    let c = bob.store().conversation("bob", &conv).unwrap().unwrap();
    assert_eq!((c.unread, c.mentions_unread), (0, 0));
    alice.stop().await;
    bob.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_copies_the_body_and_its_media() {
    let mut server = TestServer::started().await;
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let alice = client(&server.url(), "alice", "d", dirs[0].path());
    let bob = client(&server.url(), "bob", "d", dirs[1].path());
    let carol = client(&server.url(), "carol", "d", dirs[2].path());
    for c in [&alice, &bob, &carol] {
        synced(c).await;
    }
    let ab = Conv::dm("alice", "bob");
    let bytes: Vec<u8> = (0..2048u32).map(|i| (i % 251) as u8).collect();
    let up = alice.upload(bytes.clone(), "image/png").await.unwrap();
    let img = alice.send_image(&Target::User("bob".into()), &up, "chart.png", 10, 10, None).unwrap();
    let img = settled(&alice, &img.cid).await.mid.unwrap();
    let txt = sent(&alice, &Target::User("bob".into()), "numbers for @carol", &["carol"]).await;
    until(&bob, "bob has both", || shown(&bob, &ab, &txt).is_some()).await;
    let bob_copy = bob.download(&up.media).await.unwrap();

    let to_carol = Target::User("carol".into());
    let f = bob.forward(&ab, &txt, &to_carol).await.unwrap();
    assert_eq!(f.status, DeliveryStatus::Sent);
    assert_eq!(f.text(), Some("numbers for @carol"));
    assert!(!f.body.contains_key("mentions"), "mentions belong to the original conversation");
    assert_eq!(
        f.body["forwarded_from"],
        serde_json::json!({"conv": "dm:alice:bob", "mid": txt, "from": "alice"})
    );
    let f = bob.forward(&ab, &img, &to_carol).await.unwrap();
    assert_eq!((f.kind.as_str(), f.body["media"].as_str()), ("image", Some(up.media.as_str())), "same media");
    let bc = Conv::dm("bob", "carol");
    let fmid = f.mid.clone().unwrap();
    until(&carol, "carol has the forwards", || shown(&carol, &bc, &fmid).is_some()).await;
    let carol_copy = carol.download(&up.media).await.unwrap();
    assert_eq!(std::fs::read(&carol_copy).unwrap(), bytes);

    // The original is recalled: bob's cached copy goes; forwarding carol's
    // copy still works (uploaded again from her cache if the server no
    // longer serves the media).
    alice.recall(&ab, &img).await.unwrap();
    until(&bob, "bob sees the recall", || shown(&bob, &ab, &img).unwrap().recalled).await;
    assert!(!bob_copy.exists(), "the recalled image's cached file is deleted");
    assert!(matches!(bob.forward(&ab, &img, &to_carol).await, Err(ClientError::Invalid(_))));
    let again = carol.forward(&bc, &fmid, &Target::User("alice".into())).await.unwrap();
    assert_eq!(again.status, DeliveryStatus::Sent);
    assert_eq!(again.body["forwarded_from"]["mid"], img, "the original source is kept");
    let media = again.body["media"].as_str().unwrap().to_owned();
    let alice_copy = alice.download(&media).await.unwrap();
    assert_eq!(std::fs::read(alice_copy).unwrap(), bytes);
    for c in [&alice, &bob, &carol] {
        c.stop().await;
    }
    server.stop().await;
}
