//! The client core against the real server, in-process on loopback:
//! delivery across server downtime and restarts, two devices of one user,
//! and five clients behind a fault-injecting proxy.

mod support;

use courier_client::{Client, ClientError, ConnState, DeliveryStatus};
use courier_proto::{Conv, Target};
use std::collections::HashSet;
use support::proxy::{Faults, Proxy};
use support::{TestServer, client, synced, transcript, until};

fn lobby() -> Conv {
    Conv::channel("lobby")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_sent_while_the_server_is_down_are_delivered_once_it_starts() {
    let mut server = TestServer::new();
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let alice = client(&server.url(), "alice", "d1", a_dir.path());
    let to_bob = Target::User("bob".into());
    let mut cids = Vec::new();
    for i in 0..5 {
        let m = alice.send_text(&to_bob, &format!("offline {i}")).unwrap();
        assert_eq!(m.status, DeliveryStatus::Pending);
        cids.push(m.cid);
    }
    alice.wait_state(|s| s == ConnState::Reconnecting).await;
    assert_eq!(alice.outbox().unwrap(), cids);

    server.start().await;
    let settled = tokio::time::timeout(support::PATIENCE, alice.wait_settled(&cids)).await.unwrap().unwrap();
    assert!(settled.iter().all(|m| m.status == DeliveryStatus::Sent));
    assert_eq!(settled.iter().map(|m| m.seq.unwrap()).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);

    let bob = client(&server.url(), "bob", "d1", b_dir.path());
    synced(&bob).await;
    let conv = Conv::dm("alice", "bob");
    let texts: Vec<String> = transcript(&bob, &conv).into_iter().map(|t| t.3).collect();
    assert_eq!(texts, (0..5).map(|i| format!("offline {i}")).collect::<Vec<_>>());
    assert_eq!(transcript(&alice, &conv), transcript(&bob, &conv));
    alice.stop().await;
    bob.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_during_a_burst_loses_nothing_and_duplicates_nothing() {
    let mut server = TestServer::new();
    server.send_per_sec = Some(200);
    server.start().await;
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let alice = client(&server.url(), "alice", "d1", a_dir.path());
    let bob = client(&server.url(), "bob", "d1", b_dir.path());
    synced(&alice).await;
    synced(&bob).await;
    alice.join("lobby").await.unwrap();
    bob.join("lobby").await.unwrap();

    let to = Target::Channel("lobby".into());
    let n = 200;
    let cids: Vec<String> =
        (0..n).map(|i| alice.send_text(&to, &format!("burst {i}")).unwrap().cid).collect();
    // Restart once part of the burst is through.
    until(&alice, "40 messages acknowledged", || alice.outbox().unwrap().len() <= n - 40).await;
    server.stop().await;
    server.start().await;

    tokio::time::timeout(support::PATIENCE, alice.wait_settled(&cids)).await.unwrap().unwrap();
    let last = alice.store().conversation("alice", &lobby()).unwrap().unwrap().last_seq;
    until(&bob, "bob caught up", || bob.store().synced_seq(&lobby()).unwrap() >= last).await;
    let a = transcript(&alice, &lobby());
    let b = transcript(&bob, &lobby());
    assert_eq!(a, b);
    let texts: Vec<&str> = b.iter().filter(|t| t.2 == "alice").map(|t| t.3.as_str()).collect();
    let expected: Vec<String> = (0..n).map(|i| format!("burst {i}")).collect();
    assert_eq!(texts, expected, "every message once, in the order sent");
    let seqs: Vec<u64> = b.iter().map(|t| t.0.unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    alice.stop().await;
    bob.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_of_one_user_stay_consistent() {
    let mut server = TestServer::started().await;
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let phone = client(&server.url(), "alice", "phone", dirs[0].path());
    let laptop = client(&server.url(), "alice", "laptop", dirs[1].path());
    let bob = client(&server.url(), "bob", "d1", dirs[2].path());
    for c in [&phone, &laptop, &bob] {
        synced(c).await;
    }
    let conv = Conv::dm("alice", "bob");
    // Sent on one device, it appears on the other as an own sent message.
    let m = phone.send_text(&Target::User("bob".into()), "from my phone").unwrap();
    until(&laptop, "laptop sees the phone's message", || {
        laptop
            .store()
            .message_by_cid("alice", &m.cid)
            .unwrap()
            .is_some_and(|m| m.status == DeliveryStatus::Sent)
    })
    .await;
    // Bob answers; both devices get it, unread on both.
    bob.send_text(&Target::User("alice".into()), "hi alice").unwrap();
    for d in [&phone, &laptop] {
        until(d, "bob's answer arrives", || d.store().synced_seq(&conv).unwrap() == 2).await;
        assert_eq!(d.store().conversation("alice", &conv).unwrap().unwrap().unread, 1);
    }
    // Read on the laptop → read on the phone; bob sees the receipt.
    laptop.mark_read(&conv, None).unwrap();
    until(&phone, "read state reaches the phone", || {
        phone.store().conversation("alice", &conv).unwrap().unwrap().unread == 0
    })
    .await;
    until(&bob, "bob's message shows read", || {
        bob.history(&conv, None, 10)
            .unwrap()
            .iter()
            .any(|m| m.from == "bob" && m.status == DeliveryStatus::Read)
    })
    .await;
    // Bob read it too: the phone's message shows read on both devices.
    bob.mark_read(&conv, None).unwrap();
    for d in [&phone, &laptop] {
        until(d, "own message read by bob", || {
            d.store()
                .message_by_cid("alice", &m.cid)
                .unwrap()
                .is_some_and(|m| m.status == DeliveryStatus::Read)
        })
        .await;
    }
    assert_eq!(transcript(&phone, &conv), transcript(&laptop, &conv));
    for c in [&phone, &laptop, &bob] {
        c.stop().await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_session_of_the_same_device_stops_the_first() {
    let mut server = TestServer::started().await;
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = client(&server.url(), "alice", "same", d1.path());
    synced(&first).await;
    let second = client(&server.url(), "alice", "same", d2.path());
    synced(&second).await;
    first.wait_state(|s| s == ConnState::Stopped).await;
    assert_eq!(first.stop_reason().unwrap().0, Some(4003));
    assert_eq!(second.state(), ConnState::Connected);
    second.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_stops_the_client() {
    let mut server = TestServer::started().await;
    let d = tempfile::tempdir().unwrap();
    let mut cfg = support::config(vec![server.url()], "x", "d", d.path());
    cfg.token = "not-a-valid-token.eyJzdWIiOiJtYWxsb3J5In0.sig".into();
    let c = Client::open(cfg).unwrap();
    c.start();
    let err = tokio::time::timeout(support::PATIENCE, c.wait_synced()).await.unwrap().unwrap_err();
    assert!(matches!(err, courier_client::ClientError::Stopped { .. }), "{err}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_errors_fail_the_message_and_the_queue_moves_on() {
    let mut server = TestServer::started().await;
    let d = tempfile::tempdir().unwrap();
    let alice = client(&server.url(), "alice", "d", d.path());
    synced(&alice).await;
    // Not a member of #tech: forbidden.
    let forbidden = alice.send_text(&Target::Channel("tech".into()), "hello?").unwrap();
    // Larger than the server takes (max_body_bytes 32 KiB; 70 KB would not
    // even fit a frame, and the server would close the socket on every
    // retry): refused here, nothing queued.
    for len in [40_000, 70_000] {
        let refused = alice.send_text(&Target::User("bob".into()), &"x".repeat(len));
        assert!(matches!(&refused, Err(ClientError::Invalid(m)) if m.contains("too long")), "{refused:?}");
    }
    let fine = alice.send_text(&Target::User("bob".into()), "fine").unwrap();
    let all = [forbidden.cid.clone(), fine.cid.clone()];
    let settled = tokio::time::timeout(support::PATIENCE, alice.wait_settled(&all)).await.unwrap().unwrap();
    let status: Vec<_> = settled.iter().map(|m| m.status).collect();
    assert_eq!(status, [DeliveryStatus::Failed, DeliveryStatus::Sent]);
    assert!(settled[0].error.as_deref().unwrap().starts_with("forbidden"));
    let bob = alice.history(&Conv::dm("alice", "bob"), None, 10).unwrap();
    assert_eq!(bob.iter().map(|m| m.body["text"].as_str().unwrap()).collect::<Vec<_>>(), ["fine"]);
    // Join, then retry the failed one with the same cid.
    alice.join("tech").await.unwrap();
    alice.retry(&forbidden.cid).unwrap();
    let r = tokio::time::timeout(support::PATIENCE, alice.wait_settled(std::slice::from_ref(&forbidden.cid)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r[0].status, DeliveryStatus::Sent);
    alice.stop().await;
    server.stop().await;
}

/// Five clients, each behind its own fault-injecting proxy (resets, stalls
/// longer than the liveness bound, latency), exchange 500 messages in
/// #lobby. Afterwards every store holds the same 500 messages in the same
/// order, exactly once, and each sender's messages in the order sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_clients_through_a_faulty_network_converge_exactly_once() {
    let mut server = TestServer::new();
    server.heartbeat_ms = 1000; // dead after 7 s of silence
    server.start().await;
    let users = ["u0", "u1", "u2", "u3", "u4"];
    let per_user = 100;
    let dirs: Vec<_> = users.iter().map(|_| tempfile::tempdir().unwrap()).collect();
    let mut proxies = Vec::new();
    let mut clients = Vec::new();
    for (i, u) in users.iter().enumerate() {
        let p = Proxy::start(server.addr, Faults::default(), 1000 * i as u64).await;
        let c = client(&p.url(), u, "d", dirs[i].path());
        proxies.push(p);
        clients.push(c);
    }
    for c in &clients {
        synced(c).await;
        c.join("lobby").await.unwrap();
    }
    let chaos =
        Faults { reset: 0.01, stall: 0.01, stall_ms: (200, 9000), latency_ms: (0, 30), mean_life_ms: 4000 };
    for p in &proxies {
        p.set_faults(chaos.clone());
    }
    // Everyone sends concurrently, in small bursts.
    let to = Target::Channel("lobby".into());
    let mut all_cids = Vec::new();
    for round in 0..10 {
        for (i, c) in clients.iter().enumerate() {
            for k in 0..per_user / 10 {
                let n = round * (per_user / 10) + k;
                all_cids.push(c.send_text(&to, &format!("{} #{n}", users[i])).unwrap().cid);
            }
        }
        tokio::task::yield_now().await;
    }
    for c in &clients {
        let mine: Vec<String> = c.outbox().unwrap();
        let settled = tokio::time::timeout(std::time::Duration::from_secs(120), c.wait_settled(&mine))
            .await
            .expect("outbox never drained under faults")
            .unwrap();
        assert!(settled.iter().all(|m| m.status == DeliveryStatus::Sent));
    }
    // The network heals; everyone catches up.
    for p in &proxies {
        p.set_faults(Faults::default());
    }
    let total = (users.len() * per_user) as u64;
    for c in &clients {
        until(c, "client holds all 500 messages", || c.store().synced_seq(&lobby()).unwrap() >= total).await;
    }
    let reference = transcript(&clients[0], &lobby());
    assert_eq!(reference.len() as u64, total);
    let cids: HashSet<&String> = reference.iter().map(|t| &t.1).collect();
    assert_eq!(cids.len() as u64, total, "no message twice");
    assert_eq!(cids, all_cids.iter().collect::<HashSet<_>>(), "every message sent is there");
    for (i, c) in clients.iter().enumerate().skip(1) {
        assert_eq!(transcript(c, &lobby()), reference, "client {i} differs");
    }
    for u in users {
        let mine: Vec<&str> = reference.iter().filter(|t| t.2 == u).map(|t| t.3.as_str()).collect();
        let expected: Vec<String> = (0..per_user).map(|n| format!("{u} #{n}")).collect();
        assert_eq!(mine, expected, "{u}'s messages in the order sent");
    }
    let resets: u64 = proxies.iter().map(|p| p.stats.resets.load(std::sync::atomic::Ordering::Relaxed)).sum();
    let stalls: u64 = proxies.iter().map(|p| p.stats.stalls.load(std::sync::atomic::Ordering::Relaxed)).sum();
    eprintln!("faults injected: {resets} resets, {stalls} stalls");
    assert!(resets > 0 && stalls > 0, "the proxy injected no faults");
    for c in &clients {
        c.stop().await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_invitations_are_mirrored_on_both_sides() {
    use courier_client::ClientEvent;
    use courier_proto::InviteState;
    let mut server = TestServer::started().await;
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let alice = client(&server.url(), "alice", "d", dirs[0].path());
    let bob_phone = client(&server.url(), "bob", "phone", dirs[1].path());
    let bob_laptop = client(&server.url(), "bob", "laptop", dirs[2].path());
    for c in [&alice, &bob_phone, &bob_laptop] {
        synced(c).await;
    }
    let mut phone_events = bob_phone.subscribe();
    let mut laptop_events = bob_laptop.subscribe();
    let inv = alice.invite("bob", serde_json::Map::new(), 60).await.unwrap();
    assert_eq!(inv.invite.state, InviteState::Pending);
    assert!(!inv.incoming && !inv.ringing);
    let iid = inv.invite.iid.clone();
    for ev in [&mut phone_events, &mut laptop_events] {
        support::event(
            ev,
            "bob's devices ring",
            |e| matches!(e, ClientEvent::Invite { invite } if invite.invite.iid == iid && invite.ringing),
        )
        .await;
    }
    let answered = bob_phone.answer(&iid, true, serde_json::Map::new()).await.unwrap();
    assert_eq!(
        answered.as_ref().map(|v| (v.invite.state, v.answered_here)),
        Some((InviteState::Accepted, true))
    );
    // The phone's own event says so too (a UI shows "accepted", not "answered elsewhere").
    support::event(
        &mut phone_events,
        "answered here",
        |e| matches!(e, ClientEvent::Invite { invite } if invite.invite.iid == iid && invite.answered_here),
    )
    .await;
    // The laptop stops ringing; its late answer is refused with the final state.
    support::event(&mut laptop_events, "answered elsewhere", |e| {
        matches!(e, ClientEvent::Invite { invite } if invite.invite.iid == iid && invite.invite.state == InviteState::Accepted && !invite.ringing && !invite.answered_here)
    })
    .await;
    let late = bob_laptop.answer(&iid, false, serde_json::Map::new()).await.unwrap_err();
    assert!(
        matches!(&late, courier_client::ClientError::Server(e) if e.code == courier_proto::ErrorCode::InviteFinal),
        "{late}"
    );
    until(&alice, "alice sees accepted", || {
        alice
            .invites()
            .unwrap()
            .iter()
            .any(|i| i.invite.iid == iid && i.invite.state == InviteState::Accepted)
    })
    .await;
    for c in [&alice, &bob_phone, &bob_laptop] {
        c.stop().await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_goes_to_the_server_the_session_failed_over_to() {
    let mut server = TestServer::started().await;
    let a = tempfile::tempdir().unwrap();
    // The first URL answers nothing (a port just freed); the client moves on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let urls = vec![format!("ws://{dead}"), server.url()];
    let alice = Client::open(support::config(urls, "alice", "d", a.path())).unwrap();
    alice.start();
    synced(&alice).await;
    let media = alice.upload(vec![7; 1000], "image/png").await.expect("uploaded to the live server");
    let path = alice.download(&media.media).await.expect("downloaded from it");
    assert_eq!(std::fs::read(path).unwrap(), vec![7; 1000]);
    alice.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_upload_send_and_download_into_the_cache() {
    let mut server = TestServer::started().await;
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let alice = client(&server.url(), "alice", "d", a.path());
    let bob = client(&server.url(), "bob", "d", b.path());
    synced(&alice).await;
    synced(&bob).await;
    let bytes: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    let media = alice.upload(bytes.clone(), "image/png").await.unwrap();
    assert_eq!(media.size, bytes.len() as u64);
    let m = alice.send_image(&Target::User("bob".into()), &media, "cat.png", 640, 480, None).unwrap();
    alice.wait_settled(std::slice::from_ref(&m.cid)).await.unwrap();
    let conv = Conv::dm("alice", "bob");
    until(&bob, "bob gets the image", || bob.store().synced_seq(&conv).unwrap() == 1).await;
    let got = &bob.history(&conv, None, 1).unwrap()[0];
    assert_eq!(got.kind, "image");
    let id = got.body["media"].as_str().unwrap();
    let path = bob.download(id).await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    assert!(path.starts_with(b.path()));
    // Second time from the cache, even with the server gone.
    server.stop().await;
    assert_eq!(bob.download(id).await.unwrap(), path);
    assert_eq!(bob.search("cat", 5).unwrap().len(), 1, "file names are searchable");
    alice.stop().await;
    bob.stop().await;
}

/// A peer's many files: the cache keeps at most its bytes, the files used
/// last, and one evicted comes back on the next view.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_media_cache_stays_within_its_bytes() {
    let mut server = TestServer::started().await;
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let alice = client(&server.url(), "alice", "d", a.path());
    let mut cfg = support::config(vec![server.url()], "bob", "d", b.path());
    cfg.media_cache_max = 25_000;
    let bob = Client::open(cfg).unwrap();
    bob.start();
    synced(&alice).await;
    let mut ids = Vec::new();
    for i in 0..6u8 {
        ids.push(alice.upload(vec![i; 10_000], "application/octet-stream").await.unwrap().media);
    }
    let cached = || -> Vec<usize> {
        (0..ids.len()).filter(|&i| bob.store().media_path(&ids[i]).unwrap().is_some()).collect()
    };
    let on_disk = || std::fs::read_dir(b.path().join("media")).unwrap().count();
    // Views a few ms apart: the cache orders its files by the ms of last use.
    let view = |i: usize| {
        let (bob, id) = (&bob, ids[i].clone());
        async move {
            tokio::time::sleep(std::time::Duration::from_millis(3)).await;
            bob.download(&id).await.unwrap()
        }
    };
    for i in 0..3 {
        view(i).await;
    }
    assert_eq!((cached(), on_disk()), (vec![1, 2], 2), "30,000 bytes against 25,000: the first went");
    view(1).await;
    view(3).await;
    assert_eq!(cached(), [1, 3], "1 was used after 2, so 2 went");
    view(4).await;
    view(5).await;
    assert_eq!((cached(), on_disk()), (vec![4, 5], 2));
    let again = view(0).await;
    assert_eq!(std::fs::read(again).unwrap(), vec![0; 10_000], "an evicted file is fetched again");
    assert_eq!(cached(), [0, 5]);
    alice.stop().await;
    bob.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_presence_and_profiles_reach_the_other_side() {
    use courier_client::ClientEvent;
    let mut server = TestServer::started().await;
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let alice = client(&server.url(), "alice", "d", a.path());
    let bob = client(&server.url(), "bob", "d", b.path());
    synced(&alice).await;
    synced(&bob).await;
    // Presence shows only between users who share a conversation (v1.2):
    // before the DM has a message from each, bob looks offline to alice.
    let hidden = alice.watch(&["bob".into()]).await.unwrap();
    assert!(hidden.iter().any(|p| p.user == "bob" && !p.online && p.last_seen.is_none()), "{hidden:?}");
    let mut events = alice.subscribe();
    let hi = alice.send_text(&Target::User("bob".into()), "hi bob").unwrap();
    alice.wait_settled(std::slice::from_ref(&hi.cid)).await.unwrap();
    let back = bob.send_text(&Target::User("alice".into()), "hi alice").unwrap();
    bob.wait_settled(std::slice::from_ref(&back.cid)).await.unwrap();
    // Now they talk: alice is told at once, and a new watch shows it too.
    support::event(
        &mut events,
        "bob online once they share the DM",
        |e| matches!(e, ClientEvent::Presence { user, online: true, .. } if user == "bob"),
    )
    .await;
    let now = alice.watch(&["bob".into()]).await.unwrap();
    assert!(now.iter().any(|p| p.user == "bob" && p.online));
    bob.typing(&Conv::dm("alice", "bob")).await.unwrap();
    support::event(
        &mut events,
        "bob is typing",
        |e| matches!(e, ClientEvent::Typing { user, .. } if user == "bob"),
    )
    .await;
    let mut bobs_events = bob.subscribe();
    bob.set_profile("Bob B.", "avatar:3", "on call").await.unwrap();
    // Bob's own app learns it too (the server only tells watchers).
    support::event(
        &mut bobs_events,
        "bob's own profile",
        |e| matches!(e, ClientEvent::Profile { profile } if profile.user == "bob" && profile.name == "Bob B."),
    )
    .await;
    support::event(
        &mut events,
        "bob's profile",
        |e| matches!(e, ClientEvent::Profile { profile } if profile.name == "Bob B."),
    )
    .await;
    let cached = alice.store().profiles(&["bob".into()]).unwrap();
    assert_eq!(cached[0].status, "on call");
    bob.stop().await;
    support::event(
        &mut events,
        "bob went offline",
        |e| matches!(e, ClientEvent::Presence { user, online: false, .. } if user == "bob"),
    )
    .await;
    alice.stop().await;
    server.stop().await;
}
