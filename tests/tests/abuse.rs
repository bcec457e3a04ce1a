//! §8 v1.2 abuse limits: one rate bucket per user (shared by the user's
//! sessions, not refilled by a reconnect, covering every write), and the
//! caps refused with `limit_reached` + `err.limit`: distinct reaction keys
//! per message, reactions per user per message, channels created per user
//! per day, and live sessions per user.
//!
//! With `COURIER_TEST_CLUSTER=1` the harness spreads connections over three
//! nodes, so the shared bucket and the session cap are checked cluster-wide.

use courier_conformance::*;
use courier_proto::ErrorCode;
use serde_json::{Value, json};
use std::time::Duration;

/// Sends `reqs` one after another and returns the error code of each reply
/// (`None` for an ok).
async fn codes(c: &mut Client, reqs: impl IntoIterator<Item = Value>) -> Vec<Option<ErrorCode>> {
    let mut out = Vec::new();
    for req in reqs {
        out.push(c.request(req).await.err.map(|e| e.code));
    }
    out
}

fn typing(conv: &str) -> Value {
    json!({"op":"typing","conv":conv})
}

fn limited(codes: &[Option<ErrorCode>]) -> usize {
    codes.iter().filter(|c| **c == Some(ErrorCode::RateLimited)).count()
}

/// A text message from `c` to `to`, returning its `mid`.
async fn text(c: &mut Client, to: &str, body: &str) -> String {
    c.dm(to, body).await["mid"].as_str().expect("mid").to_owned()
}

fn reaction(to: &str, target: &str, key: &str, on: bool) -> Value {
    json!({"op":"send","to":{"user":to},"cid":unique("re"),"kind":"reaction","body":{"target":target,"key":key,"on":on}})
}

fn limit_of(e: &courier_proto::ErrBody) -> Option<&str> {
    e.limit.as_deref()
}

#[tokio::test]
async fn a_reconnect_does_not_refill_the_bucket() {
    let Some(h) = Harness::with_config("a_reconnect_does_not_refill_the_bucket", |c| {
        c.limits.send_per_sec = 1;
        c.limits.send_burst = 10;
    })
    .await
    else {
        return;
    };
    let (a, b) = (h.user("rc-a"), h.user("rc-b"));
    let conv = dm_conv(&a, &b);
    let mut c = h.login(&a).await;
    let first = codes(&mut c, (0..10).map(|_| typing(&conv))).await;
    assert_eq!(limited(&first), 0, "the burst is served: {first:?}");
    assert_eq!(c.request(typing(&conv)).await.err.map(|e| e.code), Some(ErrorCode::RateLimited));
    c.close().await;
    // A new session (another device) of the same user: the same, empty,
    // bucket. At 1 token/s at most a few refilled while reconnecting.
    let mut again = h.login(&a).await;
    let second = codes(&mut again, (0..10).map(|_| typing(&conv))).await;
    assert!(limited(&second) >= 5, "a reconnect refilled the bucket: {second:?}");
    // Another user's bucket is their own.
    let mut other = h.login(&b).await;
    let theirs = codes(&mut other, (0..10).map(|_| typing(&conv))).await;
    assert_eq!(limited(&theirs), 0, "{theirs:?}");
}

#[tokio::test]
async fn two_sessions_of_one_user_share_the_bucket() {
    let Some(h) = Harness::with_config("two_sessions_of_one_user_share_the_bucket", |c| {
        c.limits.send_per_sec = 1;
        c.limits.send_burst = 10;
    })
    .await
    else {
        return;
    };
    let (a, b) = (h.user("sh-a"), h.user("sh-b"));
    let conv = dm_conv(&a, &b);
    let mut s1 = h.login(&a).await;
    let mut s2 = h.login(&a).await;
    let one = codes(&mut s1, (0..10).map(|_| typing(&conv))).await;
    assert_eq!(limited(&one), 0, "{one:?}");
    // The second session finds the bucket the first one emptied.
    let two = codes(&mut s2, (0..10).map(|_| typing(&conv))).await;
    assert!(limited(&two) >= 5, "the sessions have a bucket each: {two:?}");
    // Refused requests are answered, not closed: both sessions live on.
    assert!(s1.is_alive().await && s2.is_alive().await);
}

/// A new session of `user` that has just found the user's bucket empty.
async fn drained(h: &Harness, user: &str, conv: &str) -> Client {
    let mut c = h.login(user).await;
    for _ in 0..200 {
        if c.request(typing(conv)).await.err.map(|e| e.code) == Some(ErrorCode::RateLimited) {
            return c;
        }
    }
    panic!("the bucket never ran dry");
}

#[tokio::test]
async fn every_write_is_metered_and_reads_stay_free() {
    let Some(h) = Harness::with_config("every_write_is_metered_and_reads_stay_free", |c| {
        c.limits.send_per_sec = 1;
        c.limits.send_burst = 20;
    })
    .await
    else {
        return;
    };
    let (a, b) = (h.user("mt-a"), h.user("mt-b"));
    h.register(&b).await;
    let ch = h.channel("mt");
    let conv = dm_conv(&a, &b);
    let mut s = h.login(&a).await;
    s.ok(json!({"op":"create_channel","channel":ch,"private":false})).await;
    s.ok(json!({"op":"send","to":{"user":b},"cid":unique("m"),"kind":"text","body":{"text":"hi"}})).await;
    let metered = [
        json!({"op":"create_channel","channel":h.channel("mt2"),"private":false}),
        json!({"op":"join","channel":"lobby"}),
        json!({"op":"leave","channel":ch}),
        json!({"op":"add_member","channel":ch,"user":b}),
        json!({"op":"remove_member","channel":ch,"user":b}),
        json!({"op":"set_role","channel":ch,"user":b,"role":"admin"}),
        json!({"op":"set_profile","name":"Mallory"}),
        json!({"op":"watch","users":[b]}),
    ];
    // Each op right after another session of the user emptied the bucket
    // (tried again if a token refilled in between: 1 per second).
    for req in metered {
        let shown = req.to_string();
        let mut refused = None;
        for _ in 0..5 {
            let drain = drained(&h, &a, &conv).await;
            let r = s.request(req.clone()).await;
            drain.close().await;
            if let Some(e) = r.err.filter(|e| e.code == ErrorCode::RateLimited) {
                refused = Some(e);
                break;
            }
        }
        let e = refused.unwrap_or_else(|| panic!("{shown} is not metered"));
        assert!(e.retry_after_ms.is_some_and(|ms| ms > 0), "{shown}: {e:?}");
    }
    // Free while the bucket is empty: acks, reads of every kind, renew,
    // unwatch, and answers to invitations (unknown ones: not_found).
    let _drain = drained(&h, &a, &conv).await;
    let free = [
        json!({"op":"ack","conv":conv,"seq":1}),
        json!({"op":"read","conv":conv,"seq":1}),
        json!({"op":"history","conv":conv}),
        json!({"op":"sync"}),
        json!({"op":"channels"}),
        json!({"op":"members","channel":ch}),
        json!({"op":"profiles","users":[b]}),
        json!({"op":"unwatch","users":[b]}),
        json!({"op":"renew","token":h.token(&a)}),
    ];
    for req in free {
        s.ok(req).await;
    }
    s.expect_err(json!({"op":"invite_cancel","iid":"nope"}), ErrorCode::NotFound).await;
    s.expect_err(json!({"op":"invite_answer","iid":"nope","accept":false}), ErrorCode::NotFound).await;
    assert!(s.is_alive().await, "refusals are answered; the session lives on");
}

#[tokio::test]
async fn reaction_caps_refuse_with_limit_reached_and_taking_off_always_works() {
    let Some(h) = Harness::with_config("reaction_caps", |c| {
        c.limits.reaction_keys = Some(3);
        c.limits.reactions_per_user = Some(2);
        c.limits.send_per_sec = 1000;
        c.limits.send_burst = 1000;
    })
    .await
    else {
        return;
    };
    let (a, b) = (h.user("rx-a"), h.user("rx-b"));
    let mut ca = h.login(&a).await;
    let mut cb = h.login(&b).await;
    assert_eq!(ca.hello_ok["limits"]["reaction_keys"], json!(3), "{}", ca.hello_ok);
    assert_eq!(ca.hello_ok["limits"]["reactions_per_user"], json!(2), "{}", ca.hello_ok);
    let mid = text(&mut ca, &b, "react to me").await;

    ca.ok(reaction(&b, &mid, "k1", true)).await;
    ca.ok(reaction(&b, &mid, "k2", true)).await;
    let e = ca.expect_err(reaction(&b, &mid, "k3", true), ErrorCode::LimitReached).await;
    assert_eq!(limit_of(&e), Some("reactions_per_user"), "{e:?}");
    // A key alice has on already is no new reaction.
    ca.ok(reaction(&b, &mid, "k1", true)).await;

    cb.ok(reaction(&a, &mid, "k3", true)).await;
    let e = cb.expect_err(reaction(&a, &mid, "k4", true), ErrorCode::LimitReached).await;
    assert_eq!(limit_of(&e), Some("reaction_keys"), "{e:?}");
    // An existing key adds no distinct key.
    cb.ok(reaction(&a, &mid, "k1", true)).await;

    // At both caps, taking reactions off works, also of keys never on.
    cb.ok(reaction(&a, &mid, "k4", false)).await;
    ca.ok(reaction(&b, &mid, "k2", false)).await;
    // ... and frees room under the caps.
    ca.ok(reaction(&b, &mid, "k3", true)).await;

    let hist = ca.history(&dm_conv(&a, &b), json!({})).await;
    let target = hist["messages"].as_array().unwrap().iter().find(|m| m["mid"] == json!(mid)).unwrap();
    let keys = target["reactions"].as_object().expect("reactions aggregate");
    assert!(keys.len() <= 3, "{target}");
    assert_eq!(target["reactions"]["k1"], json!([a, b]), "{target}");
    assert_eq!(target["reactions"]["k3"], json!([b, a]), "{target}");
}

#[tokio::test]
async fn reaction_caps_hold_against_concurrent_sessions() {
    let Some(h) = Harness::with_config("reaction_caps_concurrent", |c| {
        c.limits.reaction_keys = Some(50);
        c.limits.reactions_per_user = Some(2);
        c.limits.send_per_sec = 1000;
        c.limits.send_burst = 1000;
    })
    .await
    else {
        return;
    };
    let (a, b) = (h.user("rxc-a"), h.user("rxc-b"));
    let mut cb = h.login(&b).await;
    let mid = text(&mut cb, &a, "react to me").await;
    let mut sessions = Vec::new();
    for _ in 0..4 {
        sessions.push(h.login(&a).await);
    }
    // Every session fires four reactions with distinct keys at once.
    let mut pending = Vec::new();
    for (s, c) in sessions.iter_mut().enumerate() {
        let mut ids = Vec::new();
        for k in 0..4 {
            ids.push(c.send_request(reaction(&b, &mid, &format!("k{s}-{k}"), true)).await);
        }
        pending.push(ids);
    }
    let mut stored = 0;
    for (c, ids) in sessions.iter_mut().zip(pending) {
        for id in ids {
            let r = decode_reply(&c.raw_reply(Some(id), WAIT).await.expect("reply"));
            match r.err {
                None => stored += 1,
                Some(e) => {
                    assert_eq!((e.code, limit_of(&e)), (ErrorCode::LimitReached, Some("reactions_per_user")))
                }
            }
        }
    }
    assert_eq!(stored, 2, "exactly reactions_per_user reactions were stored");
    let hist = cb.history(&dm_conv(&a, &b), json!({})).await;
    let target = hist["messages"].as_array().unwrap().iter().find(|m| m["mid"] == json!(mid)).unwrap();
    assert_eq!(target["reactions"].as_object().map_or(0, |r| r.len()), 2, "{target}");
}

#[tokio::test]
async fn channels_created_per_user_per_day_are_capped() {
    let Some(h) = Harness::with_config("channels_created_cap", |c| c.limits.channels_created = Some(2)).await
    else {
        return;
    };
    let (a, b) = (h.user("cc-a"), h.user("cc-b"));
    let mut ca = h.login(&a).await;
    assert_eq!(ca.hello_ok["limits"]["channels_created"], json!(2), "{}", ca.hello_ok);
    ca.ok(json!({"op":"create_channel","channel":h.channel("c1"),"private":false})).await;
    ca.ok(json!({"op":"create_channel","channel":h.channel("c2"),"private":true})).await;
    let third = h.channel("c3");
    let e = ca
        .expect_err(json!({"op":"create_channel","channel":third,"private":false}), ErrorCode::LimitReached)
        .await;
    assert_eq!(limit_of(&e), Some("channels_created"), "{e:?}");
    // Nothing was created, and a new session does not reset the count.
    ca.close().await;
    let mut again = h.login(&a).await;
    again
        .expect_err(json!({"op":"create_channel","channel":third,"private":false}), ErrorCode::LimitReached)
        .await;
    // The cap is per user.
    let mut cb = h.login(&b).await;
    cb.ok(json!({"op":"create_channel","channel":third,"private":false})).await;
}

/// Opens a connection and says hello as `user` on `device`: the hello
/// reply, and the client.
async fn hello(h: &Harness, user: &str, device: &str) -> (courier_proto::Reply, Client) {
    let mut c = h.connect().await;
    let r = c.hello(&h.token(user), device).await;
    (r, c)
}

#[tokio::test]
async fn live_sessions_per_user_are_capped_and_replacements_never_count() {
    let Some(h) = Harness::with_config("sessions_cap", |c| c.limits.sessions = Some(2)).await else {
        return;
    };
    let (a, b) = (h.user("ss-a"), h.user("ss-b"));
    let d1 = h.login_device(&a, "d1").await;
    assert_eq!(d1.hello_ok["limits"]["sessions"], json!(2), "{}", d1.hello_ok);
    let mut d2 = h.login_device(&a, "d2").await;
    // A third device: limit_reached, then close 4029.
    let (r, mut d3) = hello(&h, &a, "d3").await;
    let e = r.err.clone().unwrap_or_else(|| panic!("a third session was admitted: {r:?}"));
    assert_eq!(e.code, ErrorCode::LimitReached, "{e:?}");
    assert_eq!(limit_of(&e), Some("sessions"), "{e:?}");
    assert_eq!(d3.expect_close().await, 4029);
    // A replacement of a device (4003 for the old session) is no new one.
    let mut d1 = d1;
    let d1b = h.login_device(&a, "d1").await;
    assert_eq!(d1.expect_close().await, 4003);
    assert!(d2.is_alive().await);
    // Another user is not affected.
    let _other = h.login_device(&b, "d3").await;
    // When a session ends, a new device fits again (the count is released
    // as the session closes; give it a moment).
    d2.close().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (r, c) = hello(&h, &a, "d3").await;
        if r.ok.is_some() {
            drop(c);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "a freed session slot was never reused: {r:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(d1b);
}

/// Sign-ins are paced per user (`hello_burst`, then one per
/// `hello_interval_ms`, on each node): a reconnect loop past the burst gets
/// `rate_limited` with `retry_after_ms` and close 4029, like a `hello` over
/// the sessions cap; another user signs in as usual.
#[tokio::test]
async fn a_user_signing_in_in_a_loop_is_refused_with_rate_limited_and_4029() {
    let Some(h) = Harness::with_config("hello_pace", |c| {
        c.hello_burst = 1;
        c.hello_interval_ms = 3_600_000;
    })
    .await
    else {
        return;
    };
    let (a, b) = (h.user("hp-a"), h.user("hp-b"));
    // With COURIER_TEST_CLUSTER=1 the connections go to three nodes in
    // turn: the pace is the user's across the cluster, so the second is
    // refused there too (paced per node, the fourth would be).
    let mut refused = None;
    for n in 0..4 {
        let (r, c) = hello(&h, &a, "phone").await;
        if let Some(e) = r.err {
            refused = Some((n, e, c));
            break;
        }
        c.close().await;
    }
    let (n, e, mut c) = refused.expect("a user signing in again and again is refused at some point");
    assert_eq!(n, 1, "the first sign-in is let in, the second refused (on whichever node)");
    assert_eq!(e.code, ErrorCode::RateLimited, "{e:?}");
    assert!(e.retry_after_ms.is_some_and(|ms| ms > 0), "says when to come back: {e:?}");
    assert_eq!(c.expect_close().await, 4029);
    let _other = h.login(&b).await;
}

/// The 4029 abuse close stays per SESSION: a session flooding at ~10× the
/// rate is closed, while a quiet session of the same user that meets the
/// same empty bucket is refused with `rate_limited` and lives on.
#[tokio::test]
async fn flooding_closes_only_the_flooding_session() {
    let Some(h) = Harness::with_config("flooding_closes_only_the_flooding_session", |c| {
        c.limits.send_per_sec = 2;
        c.limits.send_burst = 2;
    })
    .await
    else {
        return;
    };
    let (a, b) = (h.user("fl-a"), h.user("fl-b"));
    let conv = dm_conv(&a, &b);
    let mut quiet = h.login(&a).await;
    let mut flood = h.login(&a).await;
    let frame = json!({"op":"typing","id":1,"conv":conv}).to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while flood.close_seen().is_none() && tokio::time::Instant::now() < deadline {
        for _ in 0..5 {
            let _ = flood.try_send_text(frame.clone()).await;
        }
        let _ = flood.next_event(Duration::from_millis(10)).await;
    }
    assert_eq!(flood.close_seen(), Some(Some(4029)), "flooding closes with 4029");
    // Right after: the user's other session asks a few times at an honest
    // pace, finds the bucket the flood emptied, and is not closed.
    let asked = codes(&mut quiet, (0..3).map(|_| typing(&conv))).await;
    assert!(limited(&asked) >= 1, "the flood did not drain the shared bucket: {asked:?}");
    assert!(quiet.is_alive().await, "the quiet session was closed with the flooding one");
    assert_eq!(quiet.close_seen(), None);
}
