//! Call devices and call signals (protocol §12, v1.2): one device of each
//! party is in the call; `signal` to `{"call":iid}` reaches only the other
//! call device, in order, under the order rules (one `offer` from the
//! caller's device, nothing but `end` from the callee before it, nothing
//! after `end`); a call device that goes away is `gone` after the grace
//! unless the same device comes back; call signals have their own
//! allowance before the user's bucket.

use courier_conformance::*;
use courier_proto::ErrorCode;
use serde_json::{Value, json};
use std::time::Duration;

/// Long enough for the server's grace timer and a cluster hop.
const GONE_WAIT: Duration = Duration::from_secs(15);

fn sig(iid: &str, body: Value) -> Value {
    json!({"op":"signal","to":{"call":iid},"body":body})
}

fn offer(sdp: &str) -> Value {
    json!({"t":"offer","sdp":sdp})
}

fn candidate(n: usize) -> Value {
    json!({"t":"candidate","candidate":format!("candidate:{n} 1 UDP 2122252543 10.0.0.1 {} typ host", 40000 + n),"mid":"0"})
}

fn call_signal(iid: &str) -> impl Fn(&Value) -> bool + '_ {
    move |e| e["ev"] == "signal" && e["to"]["call"] == iid
}

fn invite_state<'a>(iid: &'a str, state: &'a str) -> impl Fn(&Value) -> bool + 'a {
    move |e| e["ev"] == "invite_state" && e["invite"]["iid"] == iid && e["invite"]["state"] == state
}

/// `caller` invites `callee.user`; returns the iid once `callee` rings.
async fn ring(caller: &mut Client, callee: &mut Client) -> String {
    let to = callee.user.clone();
    let ok = caller.ok(json!({"op":"invite","to":to,"content":{"video":false},"ttl_s":60})).await;
    assert_eq!(ok["call_device"], json!(true), "the inviting session is the caller's call device: {ok}");
    let iid = ok["invite"]["iid"].as_str().expect("an iid").to_owned();
    callee.event_where("the invite", |e| e["ev"] == "invite" && e["invite"]["iid"] == iid).await;
    iid
}

/// `callee` accepts; the ok names it the callee's call device.
async fn accept(callee: &mut Client, iid: &str) {
    let ok = callee.ok(json!({"op":"invite_answer","iid":iid,"accept":true})).await;
    assert_eq!(ok["call_device"], json!(true), "the accepting session is the callee's call device: {ok}");
}

/// A call between `a` and `b` (each signed in on one device), accepted and
/// offered: the iid.
async fn call(a: &mut Client, b: &mut Client) -> String {
    let iid = ring(a, b).await;
    accept(b, &iid).await;
    a.ok(sig(&iid, offer("v=0 first"))).await;
    b.event_where("the offer", call_signal(&iid)).await;
    iid
}

#[tokio::test]
async fn hello_announces_v1_2() {
    let h = Harness::new().await;
    let c = h.login(&h.user("feat")).await;
    let features = c.hello_ok["features"].as_array().expect("features");
    assert!(features.contains(&json!("v1.2")), "{}", c.hello_ok);
}

#[tokio::test]
async fn signals_reach_only_the_other_call_device() {
    let h = Harness::new().await;
    let (a, b) = (h.user("only-a"), h.user("only-b"));
    let mut a1 = h.login_device(&a, "a-phone").await;
    let mut a2 = h.login_device(&a, "a-laptop").await;
    let mut b1 = h.login_device(&b, "b-desk").await;
    let mut b2 = h.login_device(&b, "b-phone").await;
    let iid = ring(&mut a1, &mut b1).await;
    b2.event_where("the invite rings everywhere", |e| e["ev"] == "invite").await;
    accept(&mut b1, &iid).await;
    a1.event_where("accepted", invite_state(&iid, "accepted")).await;
    b2.event_where("answered elsewhere", invite_state(&iid, "accepted")).await;

    a1.ok(sig(&iid, offer("v=0 a1"))).await;
    let ev = b1.event_where("the offer at the callee's call device", call_signal(&iid)).await;
    assert_eq!((&ev["from"], &ev["body"]), (&json!(a), &offer("v=0 a1")), "{ev}");
    b1.ok(sig(&iid, json!({"t":"answer","sdp":"v=0 b1","x-ext":[1]}))).await;
    let ev = a1.event_where("the answer at the caller's call device", call_signal(&iid)).await;
    assert_eq!(ev["body"], json!({"t":"answer","sdp":"v=0 b1","x-ext":[1]}), "relayed unchanged: {ev}");

    // The parties' other devices are not in the call: they hear nothing and
    // may say nothing.
    for other in [&mut a2, &mut b2] {
        other.expect_no_event_where("a call signal at another device", call_signal(&iid)).await;
        other.expect_err(sig(&iid, candidate(1)), ErrorCode::Forbidden).await;
        other.expect_err(sig(&iid, json!({"t":"end","reason":"hangup"})), ErrorCode::Forbidden).await;
    }
    let mut eve = h.login(&h.user("only-eve")).await;
    eve.expect_err(sig(&iid, candidate(1)), ErrorCode::Forbidden).await;
    a1.expect_no_event_where("nothing from the refused devices", call_signal(&iid)).await;
    b1.expect_no_event_where("nothing from the refused devices", call_signal(&iid)).await;
}

#[tokio::test]
async fn signals_arrive_in_the_order_sent() {
    let h = Harness::new().await;
    let mut a = h.login(&h.user("order-a")).await;
    let mut b = h.login(&h.user("order-b")).await;
    let iid = call(&mut a, &mut b).await;
    // Senders do not wait for each ok.
    let ids: Vec<u64> = {
        let mut ids = Vec::new();
        for n in 0..40 {
            ids.push(a.send_request(sig(&iid, candidate(n))).await);
        }
        ids
    };
    for id in ids {
        let r = a.raw_reply(Some(id), WAIT).await.expect("a reply");
        assert!(r.get("ok").is_some(), "{r}");
    }
    for n in 0..40 {
        let ev = b.event_where("the next candidate", call_signal(&iid)).await;
        assert_eq!(ev["body"], candidate(n), "signal {n} in order");
    }
}

#[tokio::test]
async fn the_offer_comes_once_from_the_callers_device_and_the_callee_waits_for_it() {
    let h = Harness::new().await;
    let mut a = h.login(&h.user("offer-a")).await;
    let mut b = h.login(&h.user("offer-b")).await;
    let iid = ring(&mut a, &mut b).await;
    a.expect_err(sig(&iid, offer("too early")), ErrorCode::Forbidden).await;
    accept(&mut b, &iid).await;
    b.expect_err(sig(&iid, offer("from the callee")), ErrorCode::Forbidden).await;
    b.expect_err(sig(&iid, candidate(1)), ErrorCode::Forbidden).await;
    b.expect_err(sig(&iid, json!({"t":"media","audio":true,"video":false})), ErrorCode::Forbidden).await;
    a.ok(sig(&iid, offer("v=0"))).await;
    a.expect_err(sig(&iid, offer("again")), ErrorCode::Forbidden).await;
    b.ok(sig(&iid, json!({"t":"answer","sdp":"v=0"}))).await;
    b.ok(sig(&iid, candidate(2))).await;
    a.ok(sig(&iid, json!({"t":"renegotiate","sdp":"v=0 camera on"}))).await;
    let got: Vec<Value> = {
        let mut v = Vec::new();
        for _ in 0..2 {
            v.push(b.event_where("signals", call_signal(&iid)).await["body"]["t"].clone());
        }
        v
    };
    assert_eq!(got, [json!("offer"), json!("renegotiate")], "only the accepted ones");
}

#[tokio::test]
async fn the_callee_may_end_before_the_offer_and_nothing_passes_after_an_end() {
    let h = Harness::new().await;
    let mut a = h.login(&h.user("end-a")).await;
    let mut b = h.login(&h.user("end-b")).await;
    let iid = ring(&mut a, &mut b).await;
    accept(&mut b, &iid).await;
    b.ok(sig(&iid, json!({"t":"end","reason":"hangup"}))).await;
    let ev = a.event_where("the end", call_signal(&iid)).await;
    assert_eq!(ev["body"], json!({"t":"end","reason":"hangup"}));
    a.expect_err(sig(&iid, offer("after the end")), ErrorCode::Forbidden).await;
    b.expect_err(sig(&iid, json!({"t":"end","reason":"hangup"})), ErrorCode::Forbidden).await;

    // Also after an offer, from the caller's side.
    let iid = call(&mut a, &mut b).await;
    a.ok(sig(&iid, json!({"t":"end","reason":"failed"}))).await;
    b.event_where("the end", |e| call_signal(&iid)(e) && e["body"]["t"] == "end").await;
    a.expect_err(sig(&iid, candidate(9)), ErrorCode::Forbidden).await;
    b.expect_err(sig(&iid, candidate(9)), ErrorCode::Forbidden).await;
}

/// A server whose call devices have a short grace.
async fn short_grace(test: &str, ms: u64) -> Option<Harness> {
    Harness::with_config(test, |c| c.call_grace_ms = ms).await
}

#[tokio::test]
async fn a_call_device_that_stays_away_is_gone_after_the_grace() {
    let Some(h) = short_grace("a_call_device_that_stays_away_is_gone_after_the_grace", 800).await else {
        return;
    };
    let mut a = h.login(&h.user("gone-a")).await;
    let mut b = h.login(&h.user("gone-b")).await;
    let b_user = b.user.clone();
    let iid = call(&mut a, &mut b).await;
    b.close().await;
    let ev = a.event_where_within("gone", GONE_WAIT, call_signal(&iid)).await;
    assert_eq!(ev["from"], json!(b_user), "from the departed user: {ev}");
    assert_eq!(ev["body"], json!({"t":"end","reason":"gone"}), "{ev}");
    assert!(ev["ts"].as_i64().is_some(), "{ev}");
    a.expect_err(sig(&iid, candidate(1)), ErrorCode::Forbidden).await;
}

#[tokio::test]
async fn the_same_device_back_within_the_grace_inherits_the_call() {
    let grace = Duration::from_millis(1500);
    let test = "the_same_device_back_within_the_grace_inherits_the_call";
    let Some(h) = short_grace(test, grace.as_millis() as u64).await else { return };
    let (a_user, b_user) = (h.user("inherit-a"), h.user("inherit-b"));
    let mut a = h.login_device(&a_user, "a-phone").await;
    let mut b = h.login_device(&b_user, "b-desk").await;
    let iid = call(&mut a, &mut b).await;
    b.close().await;
    // (In the cluster run the new session lands on another node.)
    let mut b = h.login_device(&b_user, "b-desk").await;
    b.ok(sig(&iid, json!({"t":"answer","sdp":"v=0 back"}))).await;
    a.event_where("the answer from the returning device", call_signal(&iid)).await;
    // The grace of the old session runs out: nobody is gone.
    a.expect_no_event_within("gone", grace * 3, call_signal(&iid)).await;
    a.ok(sig(&iid, candidate(3))).await;
    assert_eq!(b.event_where("still in the call", call_signal(&iid)).await["body"], candidate(3));
    // Another device of the callee does not inherit anything.
    let mut other = h.login_device(&b_user, "b-other").await;
    other.expect_err(sig(&iid, candidate(4)), ErrorCode::Forbidden).await;
}

#[tokio::test]
async fn a_pending_invite_is_canceled_when_its_caller_device_is_gone() {
    let test = "a_pending_invite_is_canceled_when_its_caller_device_is_gone";
    let Some(h) = short_grace(test, 800).await else { return };
    let a_user = h.user("pend-a");
    let mut a = h.login_device(&a_user, "a-phone").await;
    let mut a_other = h.login_device(&a_user, "a-laptop").await;
    let mut b = h.login(&h.user("pend-b")).await;
    let iid = ring(&mut a, &mut b).await;
    a.close().await;
    b.event_where_within("canceled", GONE_WAIT, invite_state(&iid, "canceled")).await;
    a_other.event_where_within("canceled", GONE_WAIT, invite_state(&iid, "canceled")).await;
    let err = b.err(json!({"op":"invite_answer","iid":iid,"accept":true})).await;
    assert_eq!(err.code, ErrorCode::InviteFinal, "{err:?}");
}

#[tokio::test]
async fn a_busy_device_refuses_with_busy() {
    let h = Harness::new().await;
    let mut a = h.login(&h.user("busy-a")).await;
    let mut b = h.login(&h.user("busy-b")).await;
    let iid = ring(&mut a, &mut b).await;
    let ok = b.ok(json!({"op":"invite_answer","iid":iid,"accept":false,"response":{"busy":true}})).await;
    assert_eq!(ok["invite"]["state"], "refused", "{ok}");
    assert!(ok.get("call_device").is_none(), "a refusal makes no call device: {ok}");
    let ev = a.event_where("refused", invite_state(&iid, "refused")).await;
    assert_eq!(ev["invite"]["response"], json!({"busy":true}), "{ev}");
    a.expect_err(sig(&iid, offer("v=0")), ErrorCode::Forbidden).await;
}

#[tokio::test]
async fn a_call_to_oneself_is_answered_from_another_device() {
    let h = Harness::new().await;
    let me = h.user("self");
    let mut phone = h.login_device(&me, "phone").await;
    let mut laptop = h.login_device(&me, "laptop").await;
    let ok = phone.ok(json!({"op":"invite","to":me,"content":{},"ttl_s":60})).await;
    let iid = ok["invite"]["iid"].as_str().unwrap().to_owned();
    laptop.event_where("the invite", |e| e["ev"] == "invite" && e["invite"]["iid"] == iid).await;
    phone.expect_err(json!({"op":"invite_answer","iid":iid,"accept":true}), ErrorCode::Forbidden).await;
    accept(&mut laptop, &iid).await;
    phone.ok(sig(&iid, offer("v=0 self"))).await;
    let ev = laptop.event_where("the offer at the other device", call_signal(&iid)).await;
    assert_eq!(ev["body"], offer("v=0 self"));
    phone.expect_no_event_where("no echo to the sender", call_signal(&iid)).await;
}

#[tokio::test]
async fn call_signals_have_their_own_allowance_before_the_users_bucket() {
    let burst = 30;
    let test = "call_signals_have_their_own_allowance_before_the_users_bucket";
    let Some(h) = Harness::with_config(test, |c| {
        c.limits.send_per_sec = 1;
        c.limits.send_burst = burst;
    })
    .await
    else {
        return;
    };
    let mut a = h.login(&h.user("allow-a")).await;
    let mut b = h.login(&h.user("allow-b")).await;
    // The invite takes one token; the offer is the first allowance signal.
    let iid = call(&mut a, &mut b).await;
    for n in 1..200 {
        let r = a.request(sig(&iid, candidate(n))).await;
        assert!(r.ok.is_some(), "signal {n} of 200 is within the allowance: {r:?}");
    }
    // Past the allowance, signals take from the user's bucket, which the
    // 200 left untouched (less the invite): at least burst - 1 more go.
    let mut more = 0;
    loop {
        let r = a.request(sig(&iid, candidate(1000 + more))).await;
        match r.err {
            None => more += 1,
            Some(e) => {
                assert_eq!(e.code, ErrorCode::RateLimited, "{e:?}");
                break;
            }
        }
        assert!(more < 400, "signals past the allowance are metered");
    }
    assert!(more >= burst as usize - 1, "the bucket carried {more} signals past the allowance");
    // A device outside the call pays from the (now empty) bucket at once.
    let mut other = h.login(&a.user.clone()).await;
    let e = other.err(sig(&iid, candidate(1))).await;
    assert!(matches!(e.code, ErrorCode::RateLimited | ErrorCode::Forbidden), "{e:?}");
}

#[tokio::test]
async fn call_devices_on_different_nodes_signal_and_inherit_across_nodes() {
    let test = "call_devices_on_different_nodes_signal_and_inherit_across_nodes";
    let Some(c) = Harness::cluster_with(test, 3, |cfg| cfg.call_grace_ms = 1500).await else { return };
    let (a_user, b_user) = (c.node(0).user("x-a"), c.node(1).user("x-b"));
    let mut a = c.node(0).login_device(&a_user, "a-phone").await;
    let mut a_other = c.node(2).login_device(&a_user, "a-laptop").await;
    let mut b = c.node(1).login_device(&b_user, "b-desk").await;
    let mut b_other = c.node(2).login_device(&b_user, "b-phone").await;
    let iid = call(&mut a, &mut b).await;
    b.ok(sig(&iid, json!({"t":"answer","sdp":"v=0 node1"}))).await;
    a.event_where("the answer from node 1", call_signal(&iid)).await;
    for n in 0..20 {
        a.send_request(sig(&iid, candidate(n))).await;
    }
    for n in 0..20 {
        assert_eq!(b.event_where("in order across nodes", call_signal(&iid)).await["body"], candidate(n));
    }
    for other in [&mut a_other, &mut b_other] {
        other.expect_no_event_where("a call signal on node 2", call_signal(&iid)).await;
    }
    // The callee's device moves from node 1 to node 2; the grace timer
    // runs out on node 1, which must see the device back on node 2.
    b.close().await;
    let mut b = c.node(2).login_device(&b_user, "b-desk").await;
    a.expect_no_event_within("gone", Duration::from_millis(4500), call_signal(&iid)).await;
    a.ok(sig(&iid, candidate(99))).await;
    assert_eq!(b.event_where("the inherited role on node 2", call_signal(&iid)).await["body"], candidate(99));
    b_other.expect_no_event_where("still not the other device", call_signal(&iid)).await;
    // Now it stays away: the caller on node 0 hears `gone` from node 2.
    b.close().await;
    let ev = a.event_where_within("gone", GONE_WAIT, call_signal(&iid)).await;
    assert_eq!(ev["body"], json!({"t":"end","reason":"gone"}), "{ev}");
    c.shutdown().await;
}

#[tokio::test]
async fn another_node_ends_the_call_when_the_node_timing_the_grace_dies() {
    let test = "another_node_ends_the_call_when_the_node_timing_the_grace_dies";
    let Some(mut c) = Harness::cluster_with(test, 2, |cfg| cfg.call_grace_ms = 3000).await else { return };
    let (a_user, b_user) = (c.node(0).user("die-a"), c.node(1).user("die-b"));
    let mut a = c.node(0).login_device(&a_user, "a-phone").await;
    let mut b = c.node(1).login_device(&b_user, "b-desk").await;
    // Presence shows between users who share a conversation; node 1 tells
    // watchers a session went offline only after it marked its device
    // departed.
    let ch = c.node(0).channel("die");
    a.ok(json!({"op":"create_channel","channel":ch,"private":true})).await;
    a.ok(json!({"op":"add_member","channel":ch,"user":b_user})).await;
    a.ok(json!({"op":"watch","users":[b_user]})).await;
    let iid = call(&mut a, &mut b).await;
    b.close().await;
    a.event_where("b offline", |e| e["ev"] == "presence" && e["user"] == b_user && e["online"] == false)
        .await;
    // Node 1 dies with the grace timer; node 0 finds the departure overdue.
    c.nodes[1].kill_server().await;
    let ev = a.event_where_within("gone from node 0's scan", GONE_WAIT, call_signal(&iid)).await;
    assert_eq!(ev["body"], json!({"t":"end","reason":"gone"}), "{ev}");
    c.shutdown().await;
}

#[tokio::test]
async fn a_call_device_whose_node_dies_is_gone_once_the_node_is_reaped() {
    let test = "a_call_device_whose_node_dies_is_gone_once_the_node_is_reaped";
    let Some(mut c) = Harness::cluster_with(test, 2, |cfg| cfg.call_grace_ms = 1000).await else { return };
    let (a_user, b_user) = (c.node(0).user("crash-a"), c.node(1).user("crash-b"));
    let mut a = c.node(0).login_device(&a_user, "a-phone").await;
    let mut b = c.node(1).login_device(&b_user, "b-desk").await;
    let iid = call(&mut a, &mut b).await;
    // Node 1 dies with the callee's session on it and writes nothing more;
    // node 0 reaps it when its heartbeat lapses, then the grace runs.
    c.nodes[1].kill_server().await;
    let ev = a.event_where_within("gone after the reap", GONE_WAIT, call_signal(&iid)).await;
    assert_eq!(ev["from"], json!(b_user), "{ev}");
    assert_eq!(ev["body"], json!({"t":"end","reason":"gone"}), "{ev}");
    c.shutdown().await;
}
