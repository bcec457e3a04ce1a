//! §6 presence (watch/unwatch, presence events) and profiles.

use courier_conformance::*;
use courier_proto::{ErrorCode, Presence, Profile};
use serde_json::{Value, json};

fn presence_of<'a>(user: &'a str, online: bool) -> impl Fn(&Value) -> bool + 'a {
    move |e| e["ev"] == "presence" && e["user"] == user && e["online"] == online
}

/// Puts `c`'s user and `others` in a private channel together: presence
/// shows only between users who share a conversation (v1.2).
async fn share(h: &Harness, c: &mut Client, others: &[&str]) {
    let ch = h.channel("share");
    c.ok(json!({"op":"create_channel","channel":ch,"private":true})).await;
    for u in others {
        c.ok(json!({"op":"add_member","channel":ch,"user":u})).await;
    }
}

#[tokio::test]
async fn watch_reports_presence_and_changes() {
    let h = Harness::new().await;
    let (w, b, never) = (h.user("watcher"), h.user("watched"), h.user("never"));
    let mut cw = h.login(&w).await;
    share(&h, &mut cw, &[&b, &never]).await;
    let ok = cw.ok(json!({"op":"watch","users":[b, never]})).await;
    let rows: Vec<Presence> =
        serde_json::from_value(ok["presence"].clone()).unwrap_or_else(|e| panic!("{e}: {ok}"));
    for u in [&b, &never] {
        let r = rows.iter().find(|r| &r.user == u).unwrap_or_else(|| panic!("row for {u}: {ok}"));
        assert!(!r.online, "{u} offline: {ok}");
    }

    let cb = h.login(&b).await;
    let ev = cw.event_where("online", presence_of(&b, true)).await;
    assert_eq!(ev["online"], json!(true));
    let ok = cw.ok(json!({"op":"watch","users":[b]})).await;
    assert_eq!(ok["presence"][0]["online"], json!(true), "{ok}");

    cb.close().await;
    let ev = cw.event_where("offline", presence_of(&b, false)).await;
    let seen = ev["last_seen"].as_i64().unwrap_or_else(|| panic!("offline presence has last_seen: {ev}"));
    assert!(seen > 1_600_000_000_000, "last_seen in ms: {ev}");
}

/// A user named many times in one `watch` is checked and answered once
/// (one token was up to 500 privacy checks and a 500-row answer).
#[tokio::test]
async fn a_user_named_many_times_in_one_watch_is_answered_once() {
    let h = Harness::new().await;
    let (w, b) = (h.user("w-dup"), h.user("dup"));
    let mut cw = h.login(&w).await;
    share(&h, &mut cw, &[&b]).await;
    let named: Vec<&str> = std::iter::repeat_n(b.as_str(), 400).chain([w.as_str(), b.as_str()]).collect();
    let ok = cw.ok(json!({"op":"watch","users":named})).await;
    let users: Vec<&str> =
        ok["presence"].as_array().unwrap().iter().map(|r| r["user"].as_str().unwrap()).collect();
    assert_eq!(users, [b.as_str(), w.as_str()], "{ok}");
}

#[tokio::test]
async fn online_while_any_session_lives() {
    let h = Harness::new().await;
    let (w, b) = (h.user("w2"), h.user("multi"));
    let mut cw = h.login(&w).await;
    share(&h, &mut cw, &[&b]).await;
    cw.ok(json!({"op":"watch","users":[b]})).await;
    let b1 = h.login(&b).await;
    cw.event_where("online", presence_of(&b, true)).await;
    let b2 = h.login(&b).await;
    cw.expect_no_event_where("presence for a second session", |e| e["ev"] == "presence" && e["user"] == b)
        .await;
    b1.close().await;
    cw.expect_no_event_where("offline while a session lives", presence_of(&b, false)).await;
    b2.close().await;
    cw.event_where("offline after the last session", presence_of(&b, false)).await;
}

#[tokio::test]
async fn unwatch_stops_presence_events() {
    let h = Harness::new().await;
    let (w, b) = (h.user("w3"), h.user("unw"));
    let mut cw = h.login(&w).await;
    share(&h, &mut cw, &[&b]).await;
    cw.ok(json!({"op":"watch","users":[b]})).await;
    cw.ok(json!({"op":"unwatch","users":[b]})).await;
    let cb = h.login(&b).await;
    cw.expect_no_event_where("presence after unwatch", |e| e["ev"] == "presence").await;
    cb.close().await;
    cw.expect_no_event_where("presence after unwatch", |e| e["ev"] == "presence").await;
}

#[tokio::test]
async fn profiles_set_read_and_pushed_to_watchers() {
    let h = Harness::new().await;
    let (a, w) = (h.user("prof"), h.user("fan"));
    let mut ca = h.login(&a).await;
    let mut cw = h.login(&w).await;
    cw.ok(json!({"op":"watch","users":[a]})).await;
    ca.ok(json!({"op":"set_profile","name":"Alice A.","avatar":"avatar:3","status":"in a meeting"})).await;
    let ev = cw.event_where("profile", |e| e["ev"] == "profile" && e["user"] == a).await;
    let p: Profile = serde_json::from_value(ev.clone()).unwrap_or_else(|e| panic!("{e}: {ev}"));
    assert_eq!(
        (p.name.as_str(), p.avatar.as_str(), p.status.as_str()),
        ("Alice A.", "avatar:3", "in a meeting")
    );
    let ok = cw.ok(json!({"op":"profiles","users":[a]})).await;
    let ps: Vec<Profile> =
        serde_json::from_value(ok["profiles"].clone()).unwrap_or_else(|e| panic!("{e}: {ok}"));
    assert_eq!(
        ps,
        vec![Profile {
            user: a.clone(),
            name: "Alice A.".into(),
            avatar: "avatar:3".into(),
            status: "in a meeting".into()
        }]
    );

    // A media id is a valid avatar.
    let up = h.upload(&h.token(&a), "image/png", b"avatar bytes").await;
    assert_eq!(up.status, 201, "{}", up.text());
    let media = up.json()["media"].as_str().unwrap().to_owned();
    ca.ok(json!({"op":"set_profile","avatar":media})).await;
    let ev = cw.event_where("profile 2", |e| e["ev"] == "profile" && e["avatar"] == media).await;
    assert_eq!(ev["name"], json!("Alice A."), "fields not given stay: {ev}");
}

#[tokio::test]
async fn set_profile_validates_fields() {
    let h = Harness::new().await;
    let mut c = h.login(&h.user("val")).await;
    for bad in [
        json!({"op":"set_profile","name":"n".repeat(65)}),
        json!({"op":"set_profile","status":"s".repeat(141)}),
        json!({"op":"set_profile","avatar":"https://evil.example/x.png"}),
    ] {
        c.expect_err(bad, ErrorCode::BadRequest).await;
    }
    // Limits are in characters, not bytes.
    c.ok(json!({"op":"set_profile","name":"é".repeat(64),"status":"ü".repeat(140)})).await;
}

#[tokio::test]
async fn profiles_of_unknown_users_do_not_fail() {
    let h = Harness::new().await;
    let mut c = h.login(&h.user("pq")).await;
    let ok = c.ok(json!({"op":"profiles","users":[h.user("ghost")]})).await;
    assert!(ok["profiles"].is_array(), "{ok}");
}
