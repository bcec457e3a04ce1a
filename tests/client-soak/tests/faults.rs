//! The fault proxy itself, and the protocol and client core through it:
//! frames cut at odd boundaries, a blackholed link that heals, a half-open
//! link only heartbeats can detect, a bandwidth cap. Each test checks what
//! a user would notice (every message once, in order), never speed.
//!
//! The netem variant of these scenarios (veth pair between network
//! namespaces with kernel loss/delay/duplication/reordering) is
//! [`netem_path_where_the_kernel_has_it`]: it skips with a note here.

use courier_client::ConnState;
use courier_conformance::{Harness, dm_conv, unique};
use courier_proto::Target;
use courier_soak::proxy::{Faults, Proxy};
use courier_soak::scenario::{Expected, LocalView, check_invariants, fast_client, settle};
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::Duration;

fn proxy_addr(p: &Proxy) -> String {
    p.addr.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_split_into_one_to_three_byte_pieces_still_arrive_whole_and_in_order() {
    let h = Harness::new().await;
    let upstream = h.addr.parse().unwrap();
    let proxy = Proxy::start(upstream, Faults::none(), 7).await;
    let via = h.through(&proxy_addr(&proxy));
    let (a, b) = (h.user("alice"), h.user("bob"));
    let mut alice = via.login(&a).await;
    let mut bob = via.login(&b).await;
    // Split only after the HTTP upgrade: tungstenite's client handshake
    // refuses a response that trickles in as ~100 tiny segments ("Attack
    // attempt detected"), a limit of the client library, not of the link.
    proxy.set_faults(Faults { split_max: 3, ..Faults::none() });
    for i in 0..40 {
        // Lengths cross the 7-bit/16-bit payload-length encoding edge (125/126).
        let text = format!("{i}:{}", "é".repeat(i * 7));
        let ok = alice.dm(&b, &text).await;
        assert_eq!(ok["seq"], json!(i + 1));
    }
    for i in 0..40 {
        let m = bob.event("msg").await;
        assert_eq!(m["seq"], json!(i + 1), "in order");
        assert_eq!(m["body"]["text"], json!(format!("{i}:{}", "é".repeat(i * 7))));
    }
    bob.expect_no_event_where("a duplicate", |e| e["ev"] == "msg").await;
    assert!(proxy.stats.splits.load(Ordering::Relaxed) > 40, "{}", proxy.stats.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackholed_link_holds_bytes_without_closing_and_delivers_them_when_healed() {
    let h = Harness::new().await;
    let proxy = Proxy::start(h.addr.parse().unwrap(), Faults::none(), 11).await;
    let via = h.through(&proxy_addr(&proxy));
    let (a, b) = (h.user("alice"), h.user("bob"));
    let mut alice = via.login(&a).await;
    let mut bob = h.login(&b).await; // bob on a healthy link
    proxy.set_faults(Faults { blackhole: true, ..Faults::none() });
    let id = alice
        .send_request(
            json!({"op":"send","to":{"user":b},"cid":"held-1","kind":"text","body":{"text":"held"}}),
        )
        .await;
    // Nothing moves and nothing closes while the hole lasts.
    assert!(alice.raw_reply(Some(id), Duration::from_millis(800)).await.is_none());
    assert!(alice.close_seen().is_none(), "a blackhole closes nothing");
    bob.expect_no_event_within("the held message", Duration::from_millis(300), |e| e["ev"] == "msg").await;
    proxy.heal();
    let reply = alice.raw_reply(Some(id), Duration::from_secs(10)).await.expect("reply after healing");
    assert_eq!(reply["ok"]["seq"], json!(1), "{reply}");
    let m = bob.event("msg").await;
    assert_eq!(m["cid"], json!("held-1"));
    bob.expect_no_event_where("a duplicate", |e| e["ev"] == "msg").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_link_is_detected_by_heartbeats_and_the_client_resends_once() {
    let Some(h) = Harness::with_config("half_open", |c| c.heartbeat_ms = 1000).await else { return };
    let proxy = Proxy::start(h.addr.parse().unwrap(), Faults::none(), 13).await;
    let (a, b) = (unique("alice"), unique("bob"));
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let alice = fast_client(&proxy.url(), &a, "d1", da.path());
    let bob = fast_client(&format!("ws://{}", h.addr), &b, "d1", db.path());
    for c in [&alice, &bob] {
        tokio::time::timeout(Duration::from_secs(60), c.wait_synced()).await.expect("synced").unwrap();
    }
    let mut states = alice.subscribe();
    // The server hears end-of-stream; alice hears nothing at all.
    proxy.half_close_all();
    let m = alice.send_text(&Target::User(b.clone()), "sent into a half-open link").unwrap();
    // Alice must notice by herself (no close ever reaches her) and reconnect.
    let saw_drop = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if let Ok(courier_client::ClientEvent::Connection { state: ConnState::Reconnecting, .. }) =
                states.recv().await
            {
                return;
            }
        }
    })
    .await;
    assert!(saw_drop.is_ok(), "the client never noticed the half-open link");
    let mut exp = Expected::default();
    exp.members.insert(dm_conv(&a, &b), vec![a.clone(), b.clone()]);
    let stores = [(a.clone(), alice.store()), (b.clone(), bob.store())];
    settle(&h, &exp, &stores, Duration::from_secs(60)).await;
    let views: Vec<LocalView> =
        stores.iter().map(|(u, s)| LocalView::read(s, u, &[dm_conv(&a, &b)])).collect();
    for v in &views {
        v.add_acked(&mut exp);
    }
    assert!(exp.acked.contains_key(&(a.clone(), m.cid.clone())), "the message was acknowledged");
    let report = check_invariants(&h, &exp, &views).await;
    report.assert_ok("half_open", json!({"proxy": proxy.stats.summary()}));
    assert_eq!(report.messages, 1, "exactly one message: {report}");
    alice.stop().await;
    bob.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bandwidth_cap_slows_a_transfer_but_loses_nothing() {
    let h = Harness::new().await;
    let proxy =
        Proxy::start(h.addr.parse().unwrap(), Faults { bandwidth_bps: 40_000, ..Faults::none() }, 17).await;
    let via = h.through(&proxy_addr(&proxy));
    let (a, b) = (h.user("alice"), h.user("bob"));
    let mut alice = via.login(&a).await;
    let mut bob = h.login(&b).await;
    let big = "x".repeat(20_000);
    let started = std::time::Instant::now();
    for i in 0..4 {
        alice.dm(&b, &format!("{i}{big}")).await;
    }
    // A lower bound only: 80 KB cannot cross a 40 KB/s link in under ~2 s.
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "the cap was not applied: {:?}",
        started.elapsed()
    );
    for i in 0..4 {
        let m = bob.event("msg").await;
        assert_eq!(m["body"]["text"], json!(format!("{i}{big}")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_mid_frame_never_half_apply_a_request() {
    // Every chunk has a 20 % chance of resetting its connection: requests
    // are cut mid-frame. Whatever the server received whole it applied
    // once; retrying by cid never duplicates. Its ~500 sign-ins in seconds,
    // with no back-off between them, are more than a server lets one user
    // make (`hello_burst`, then one a second): the pacing is off here, what
    // is tested is what a reset mid-frame does.
    let Some(h) =
        Harness::with_config("resets_mid_frame_never_half_apply_a_request", |c| c.hello_interval_ms = 0)
            .await
    else {
        return;
    };
    let proxy =
        Proxy::start(h.addr.parse().unwrap(), Faults { reset: 0.2, split_max: 5, ..Faults::none() }, 19)
            .await;
    let via = h.through(&proxy_addr(&proxy));
    let (a, b) = (h.user("alice"), h.user("bob"));
    h.register(&b).await;
    let mut acked = Vec::new();
    for i in 0..30 {
        let cid = format!("r-{i}");
        // Retry the same cid until it is acknowledged.
        for _attempt in 0..200 {
            let Ok(mut c) = via.try_connect().await else { continue };
            let hello = json!({"op":"hello","id":1,"token":format!("dev:{a}"),"device":"d"});
            if !c.try_send_text(hello.to_string()).await
                || c.raw_reply(Some(1), Duration::from_secs(5)).await.is_none_or(|r| r.get("ok").is_none())
            {
                continue;
            }
            let send =
                json!({"op":"send","id":2,"to":{"user":b},"cid":cid,"kind":"text","body":{"text":cid}});
            if !c.try_send_text(send.to_string()).await {
                continue;
            }
            if let Some(r) = c.raw_reply(Some(2), Duration::from_secs(5)).await
                && r.get("ok").is_some()
            {
                acked.push((cid.clone(), r["ok"]["seq"].as_u64().unwrap()));
                break;
            }
        }
    }
    assert_eq!(acked.len(), 30, "every message acknowledged eventually ({})", proxy.stats.summary());
    let mut bob = h.login(&b).await;
    let hist = bob.history(&dm_conv(&a, &b), json!({"after":0})).await;
    let cids: Vec<&str> =
        hist["messages"].as_array().unwrap().iter().map(|m| m["cid"].as_str().unwrap()).collect();
    let want: Vec<String> = (0..30).map(|i| format!("r-{i}")).collect();
    assert_eq!(cids, want, "each once, in order");
    assert!(proxy.stats.resets.load(Ordering::Relaxed) > 0, "{}", proxy.stats.summary());
}

#[test]
fn netem_path_where_the_kernel_has_it() {
    // The same scenarios with kernel-level loss, delay, duplication and
    // reordering over a veth pair between two network namespaces need root,
    // `ip netns` and the sch_netem qdisc.
    let root =
        std::process::Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
    let netem = std::path::Path::new("/sys/module/sch_netem").exists()
        || std::process::Command::new("modprobe")
            .args(["-n", "sch_netem"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
    if !root || !netem {
        courier_conformance::skip(
            "netem_path_where_the_kernel_has_it",
            &format!(
                "needs root and the kernel's sch_netem (root: {root}, sch_netem: {netem}); \
                 loss, delay, resets and stalls are covered in user space by the fault proxy"
            ),
        );
        return;
    }
    // TODO(issue 7): on a machine with netem, run the soak scenarios with
    // the server in one namespace and clients in another
    // (`tc qdisc add dev veth1 root netem delay 150ms 30ms loss 2% duplicate 1% reorder 5%`).
    courier_conformance::skip(
        "netem_path_where_the_kernel_has_it",
        "netem present but the namespace runner is not written yet",
    );
}
