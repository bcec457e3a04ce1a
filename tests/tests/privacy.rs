//! §8 v1.2 presence privacy: a user's presence and `last_seen` show only
//! to users who share a conversation with them (a channel both are in, or
//! their DM once each has written in it). Everyone else sees them offline
//! without `last_seen`, in `watch` oks, `presence` events and `members`
//! rows, and a watcher whose view changes is told with a `presence` event.

use courier_conformance::*;
use serde_json::{Value, json};

fn presence_of<'a>(user: &'a str, online: bool) -> impl Fn(&Value) -> bool + 'a {
    move |e| e["ev"] == "presence" && e["user"] == user && e["online"] == online
}

fn any_presence_of(user: &str) -> impl Fn(&Value) -> bool + '_ {
    move |e| e["ev"] == "presence" && e["user"] == user
}

/// The single row of a one-user `watch` ok.
async fn watch_row(c: &mut Client, user: &str) -> Value {
    let ok = c.ok(json!({"op":"watch","users":[user]})).await;
    ok["presence"][0].clone()
}

#[tokio::test]
async fn strangers_see_nobody_online_and_get_no_presence_events() {
    let h = Harness::new().await;
    let (w, b) = (h.user("pv-stranger"), h.user("pv-target"));
    let cb = h.login(&b).await;
    // b was seen before: a last_seen exists that a stranger must not learn.
    cb.close().await;
    let mut cb = h.login(&b).await;
    let mut cw = h.login(&w).await;
    assert_eq!(watch_row(&mut cw, &b).await, json!({"user":b,"online":false}), "no online, no last_seen");
    cb.ok(json!({"op":"set_profile","status":"still public"})).await;
    cw.event_where("profiles stay public", |e| e["ev"] == "profile" && e["user"] == b).await;
    cb.close().await;
    cw.expect_no_event_where("no presence event for a stranger", any_presence_of(&b)).await;
    let _cb = h.login(&b).await;
    cw.expect_no_event_where("no presence event for a stranger", any_presence_of(&b)).await;
    // One's own presence is always visible.
    assert_eq!(watch_row(&mut cw, &w).await["online"], json!(true));
}

#[tokio::test]
async fn a_shared_channel_reveals_presence_and_leaving_hides_it_again() {
    let h = Harness::new().await;
    let (w, b) = (h.user("pv-w"), h.user("pv-b"));
    let mut cw = h.login(&w).await;
    let mut cb = h.login(&b).await;
    assert_eq!(watch_row(&mut cw, &b).await["online"], json!(false));
    let ch = h.channel("pv-room");
    cb.ok(json!({"op":"create_channel","channel":ch,"private":false})).await;
    // w joins b's channel: w's view of b changes, without a new watch.
    cw.ok(json!({"op":"join","channel":ch})).await;
    let ev = cw.event_where("b shows online once shared", presence_of(&b, true)).await;
    assert!(ev.get("last_seen").is_none(), "{ev}");
    assert_eq!(watch_row(&mut cw, &b).await["online"], json!(true));
    cb.close().await;
    let ev = cw.event_where("b's offline reaches a co-member", presence_of(&b, false)).await;
    assert!(ev["last_seen"].as_i64().is_some(), "co-members see last_seen: {ev}");
    let mut cb = h.login(&b).await;
    cw.event_where("and b's return", presence_of(&b, true)).await;
    // b leaves: w's view turns to offline without last_seen, and stays so.
    cb.ok(json!({"op":"leave","channel":ch})).await;
    let ev = cw.event_where("hidden again", presence_of(&b, false)).await;
    assert_eq!(ev, json!({"ev":"presence","user":b,"online":false}), "no last_seen: {ev}");
    cb.close().await;
    cw.expect_no_event_where("no presence after the channel is no longer shared", any_presence_of(&b)).await;
    assert_eq!(watch_row(&mut cw, &b).await, json!({"user":b,"online":false}));
}

#[tokio::test]
async fn a_dm_reveals_presence_once_both_have_written() {
    let h = Harness::new().await;
    let (w, b) = (h.user("pv-dm-w"), h.user("pv-dm-b"));
    let mut cw = h.login(&w).await;
    let mut cb = h.login(&b).await;
    cw.ok(json!({"op":"watch","users":[b]})).await;
    cb.ok(json!({"op":"watch","users":[w]})).await;
    // Writing to someone is not enough: they have not answered.
    cw.dm(&b, "hello, stranger").await;
    cw.expect_no_event_where("a one-sided DM reveals nothing", any_presence_of(&b)).await;
    assert_eq!(watch_row(&mut cw, &b).await["online"], json!(false));
    assert_eq!(watch_row(&mut cb, &w).await["online"], json!(false), "nor to the recipient");
    // The answer makes it a conversation: both views change.
    cb.dm(&w, "hi!").await;
    cw.event_where("b visible to w after b answered", presence_of(&b, true)).await;
    cb.event_where("w visible to b after b answered", presence_of(&w, true)).await;
    assert_eq!(watch_row(&mut cw, &b).await["online"], json!(true));
}

#[tokio::test]
async fn an_answer_written_for_a_user_reveals_presence_like_one_they_sent() {
    let h = Harness::new().await;
    let Some(admin) = h.admin_secret.clone() else {
        return skip(
            "an_answer_written_for_a_user_reveals_presence_like_one_they_sent",
            "admin secret unknown",
        );
    };
    let (w, b) = (h.user("pv-push-w"), h.user("pv-push-b"));
    let mut cw = h.login(&w).await;
    let mut cb = h.login(&b).await;
    cw.ok(json!({"op":"watch","users":[b]})).await;
    cb.ok(json!({"op":"watch","users":[w]})).await;
    cw.dm(&b, "are you there?").await;
    cw.expect_no_event_where("a one-sided DM reveals nothing", any_presence_of(&b)).await;
    // b's answer is written by a back end on b's behalf (the push API), as
    // the server writes call records.
    let body = json!({"from":b,"to":{"user":w},"cid":unique("pv-push"),"kind":"text","body":{"text":"yes"}});
    let r = h.push(Some(&admin), &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    cw.event_where("b visible to w once b's answer is stored", presence_of(&b, true)).await;
    cb.event_where("w visible to b", presence_of(&w, true)).await;
    assert_eq!(watch_row(&mut cw, &b).await["online"], json!(true));
}

#[tokio::test]
async fn members_rows_show_presence_only_to_those_who_share_a_conversation() {
    let h = Harness::new().await;
    let (a, b, v) = (h.user("pv-m-a"), h.user("pv-m-b"), h.user("pv-m-visitor"));
    let mut ca = h.login(&a).await;
    let ch = h.channel("pv-public");
    ca.ok(json!({"op":"create_channel","channel":ch,"private":false})).await;
    let mut cb = h.login(&b).await;
    cb.ok(json!({"op":"join","channel":ch})).await;
    let online = |ok: &Value, u: &str| {
        ok["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["user"] == u)
            .unwrap_or_else(|| panic!("{u}: {ok}"))["online"]
            .clone()
    };
    // A member sees the others' presence.
    let ok = ca.ok(json!({"op":"members","channel":ch})).await;
    assert_eq!((online(&ok, &a), online(&ok, &b)), (json!(true), json!(true)), "{ok}");
    // A visitor of the public channel sees the list, but nobody online ...
    let mut cv = h.login(&v).await;
    let ok = cv.ok(json!({"op":"members","channel":ch})).await;
    assert_eq!(ok["count"], json!(2));
    assert_eq!((online(&ok, &a), online(&ok, &b)), (json!(false), json!(false)), "{ok}");
    // ... except whom it shares another conversation with.
    cv.dm(&a, "hi a").await;
    ca.dm(&v, "hi v").await;
    let ok = cv.ok(json!({"op":"members","channel":ch})).await;
    assert_eq!((online(&ok, &a), online(&ok, &b)), (json!(true), json!(false)), "{ok}");
}
