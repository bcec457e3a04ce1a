//! Relations (protocol §11, v1.1): edits, recalls, reactions, pins and
//! mentions, the windows `hello` announces, and what they add to
//! `history`, `sync` and media.
//!
//! Window tests start a server whose windows are a couple of seconds and
//! wait past them (a rule test, not a timing measurement). They skip
//! against `COURIER_TEST_URL`. Channel roles (who may pin or recall in a
//! channel) are in `channel_roles.rs`.

use courier_conformance::requests::*;
use courier_conformance::*;
use courier_proto::ErrorCode;
use serde_json::{Value, json};
use std::time::Duration;

// ---------------------------------------------------------------------------
// Helpers

/// The message `mid` in the latest history page of `conv`, as `c` reads it.
async fn in_history(c: &mut Client, conv: &str, mid: &str) -> Value {
    let page = c.history(conv, json!({})).await;
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mid"] == mid)
        .unwrap_or_else(|| panic!("{mid} in the history of {conv}: {page}"))
        .clone()
}

/// Waits until the server clock is `ms` past `ts` (the server stamps
/// messages; both run on this machine's clock).
async fn wait_past(ts: i64, ms: i64) {
    let left = ts + ms - now_ms();
    if left > 0 {
        tokio::time::sleep(Duration::from_millis(left as u64)).await;
    }
}

// ---------------------------------------------------------------------------
// hello

#[tokio::test]
async fn hello_announces_v1_1_and_its_windows() {
    let h = Harness::new().await;
    let c = h.login(&h.user("feat")).await;
    let ok = &c.hello_ok;
    assert!(ok["features"].as_array().is_some_and(|f| f.contains(&json!("v1.1"))), "{ok}");
    let limits = &ok["limits"];
    for w in ["edit_window_s", "recall_window_s"] {
        assert!(limits[w].as_u64().is_some_and(|s| s >= 1), "{w} announced: {ok}");
    }
    if !h.external {
        assert_eq!(
            (limits["edit_window_s"].clone(), limits["recall_window_s"].clone()),
            (json!(172800), json!(86400))
        );
    }
}

#[tokio::test]
async fn configured_windows_are_announced() {
    let Some(h) = Harness::with_config("configured_windows_are_announced", |c| {
        c.limits.edit_window_s = Some(7);
        c.limits.recall_window_s = Some(9);
    })
    .await
    else {
        return;
    };
    let c = h.login(&h.user("win")).await;
    assert_eq!(c.hello_ok["limits"]["edit_window_s"], json!(7), "{}", c.hello_ok);
    assert_eq!(c.hello_ok["limits"]["recall_window_s"], json!(9), "{}", c.hello_ok);
}

// ---------------------------------------------------------------------------
// Relation errors

#[tokio::test]
async fn malformed_relation_bodies_are_bad_requests() {
    let h = Harness::new().await;
    let (a, b) = (h.user("mal-a"), h.user("mal-b"));
    let mut ca = h.login(&a).await;
    let to = to_user(&b);
    let m = text(&mut ca, &to, "target").await;
    let bad = [
        ("edit", json!({"text": "x"})),
        ("edit", json!({"target": m})),
        ("edit", json!({"target": m, "text": ""})),
        ("recall", json!({})),
        ("recall", json!({"target": 42})),
        ("reaction", json!({"target": m, "on": true})),
        ("reaction", json!({"target": m, "key": "", "on": true})),
        ("reaction", json!({"target": m, "key": "x".repeat(33), "on": true})),
        ("reaction", json!({"target": m, "key": "👍", "on": "yes"})),
        ("reaction", json!({"target": m, "key": "👍"})),
        ("pin", json!({"target": m})),
        ("pin", json!({"target": m, "on": 1})),
        ("text", json!({"text": "hi", "mentions": "bob"})),
        ("text", json!({"text": "hi", "mentions": [1, 2]})),
    ];
    for (kind, body) in bad {
        refused(&mut ca, &to, kind, body, ErrorCode::BadRequest).await;
    }
    // 32 bytes is the longest key (8 four-byte characters).
    relate(&mut ca, &to, "reaction", json!({"target": m, "key": "😀".repeat(8), "on": true})).await;
    let row = ca.sync_row(&dm_conv(&a, &b)).await.unwrap();
    assert_eq!(row["last_seq"], json!(2), "nothing malformed was stored: {row}");
}

#[tokio::test]
async fn a_target_must_be_a_content_message_of_the_same_conversation() {
    let h = Harness::new().await;
    let (a, b, c) = (h.user("tg-a"), h.user("tg-b"), h.user("tg-c"));
    let mut ca = h.login(&a).await;
    let (ab, ac) = (to_user(&b), to_user(&c));
    let here = text(&mut ca, &ab, "here").await;
    let elsewhere = text(&mut ca, &ac, "elsewhere").await;
    let reaction =
        mid(&relate(&mut ca, &ab, "reaction", json!({"target": here, "key": "k", "on": true})).await);
    for kind_body in [
        ("edit", json!({"target": elsewhere, "text": "x"})),
        ("recall", json!({"target": elsewhere})),
        ("reaction", json!({"target": elsewhere, "key": "k", "on": true})),
        ("pin", json!({"target": elsewhere, "on": true})),
        ("reaction", json!({"target": unique("01NOSUCH"), "key": "k", "on": true})),
    ] {
        refused(&mut ca, &ab, kind_body.0, kind_body.1, ErrorCode::NotFound).await;
    }
    // A relation is not a content message: relations cannot point at it.
    for kind_body in [
        ("edit", json!({"target": reaction, "text": "x"})),
        ("recall", json!({"target": reaction})),
        ("reaction", json!({"target": reaction, "key": "k", "on": true})),
        ("pin", json!({"target": reaction, "on": true})),
    ] {
        refused(&mut ca, &ab, kind_body.0, kind_body.1, ErrorCode::Forbidden).await;
    }
    let row = ca.sync_row(&dm_conv(&a, &b)).await.unwrap();
    assert_eq!(row["last_seq"], json!(2), "refusals store nothing: {row}");
}

// ---------------------------------------------------------------------------
// Edits

#[tokio::test]
async fn edits_are_the_senders_own_text_and_history_shows_the_newest() {
    let h = Harness::new().await;
    let (a, b) = (h.user("ed-a"), h.user("ed-b"));
    let mut ca = h.login(&a).await;
    let mut cb = h.login(&b).await;
    let (ab, ba) = (to_user(&b), to_user(&a));
    let conv = dm_conv(&a, &b);
    let m = text(&mut ca, &ab, "frist").await;
    let custom =
        mid(&ca.ok(json!({"op":"send","to":ab,"cid":unique("c"),"kind":"custom","body":{"x":1}})).await);
    refused(&mut cb, &ba, "edit", json!({"target": m, "text": "mine now"}), ErrorCode::Forbidden).await;
    refused(&mut ca, &ab, "edit", json!({"target": custom, "text": "x"}), ErrorCode::Forbidden).await;

    let e1 = relate(&mut ca, &ab, "edit", json!({"target": m, "text": "first"})).await;
    assert_eq!(e1["seq"], json!(3), "an edit gets its own seq: {e1}");
    let ev = cb.event_where("the edit, live", |e| is_msg_in(&conv)(e) && e["kind"] == "edit").await;
    assert_eq!(
        (ev["kind"].clone(), ev["body"].clone()),
        (json!("edit"), json!({"target": m, "text": "first"}))
    );
    let e2 = relate(&mut ca, &ab, "edit", json!({"target": m, "text": "first!"})).await;
    let got = in_history(&mut cb, &conv, &m).await;
    assert_eq!(got["body"], json!({"text": "first!"}), "the newest edit's text: {got}");
    assert_eq!(got["edited"], e2["ts"], "the newest edit's ts: {got}");
    let edit = in_history(&mut cb, &conv, &mid(&e1)).await;
    assert_eq!(edit["body"], json!({"target": m, "text": "first"}), "an edit is served as sent");
    assert!(edit.get("edited").is_none(), "{edit}");
    let plain = in_history(&mut cb, &conv, &custom).await;
    assert!(
        plain.get("edited").is_none() && plain.get("reactions").is_none() && plain.get("pinned").is_none()
    );
    assert!(plain.get("recalled").is_none(), "no aggregate fields on an untouched message: {plain}");
}

#[tokio::test]
async fn edit_and_recall_windows_run_from_the_target() {
    let Some(h) = Harness::with_config("edit_and_recall_windows_run_from_the_target", |c| {
        c.limits.edit_window_s = Some(2);
        c.limits.recall_window_s = Some(2);
    })
    .await
    else {
        return;
    };
    let (a, b, o) = (h.user("wi-a"), h.user("wi-b"), h.user("wi-owner"));
    let mut ca = h.login(&a).await;
    let mut cb = h.login(&b).await;
    let mut co = h.login(&o).await;
    let ab = to_user(&b);
    let m = ca.dm(&b, "typo").await;
    let ts = m["ts"].as_i64().unwrap();
    let m = mid(&m);
    let fixed = unique("edit");
    let edit = json!({"op":"send","to":ab,"cid":fixed,"kind":"edit","body":{"target":m,"text":"fixed"}});
    let first = ca.ok(edit.clone()).await;
    assert_eq!(first["dup"], json!(false));
    let ch = channel(&h, &mut co, &mut [&mut ca]).await;
    let to_ch = to_channel(&ch);
    let in_ch = ca.say(&ch, "in the channel").await;
    let latest = in_ch["ts"].as_i64().unwrap().max(ts);
    let in_ch = mid(&in_ch);

    wait_past(latest, 2300).await;
    // The windows ran from the message's ts; the edit did not restart them.
    refused(&mut ca, &ab, "edit", json!({"target": m, "text": "again"}), ErrorCode::Conflict).await;
    refused(&mut ca, &ab, "recall", json!({"target": m}), ErrorCode::Conflict).await;
    refused(&mut ca, &to_ch, "recall", json!({"target": in_ch}), ErrorCode::Conflict).await;
    // A retry of the accepted edit is still its duplicate, not a conflict.
    let again = ca.ok(edit).await;
    assert_eq!(again["dup"], json!(true), "{again}");
    assert_eq!((again["seq"].clone(), again["mid"].clone()), (first["seq"].clone(), first["mid"].clone()));
    // Reactions and pins have no window; the channel owner recalls any time.
    relate(&mut cb, &to_user(&a), "reaction", json!({"target": m, "key": "k", "on": true})).await;
    relate(&mut cb, &to_user(&a), "pin", json!({"target": m, "on": true})).await;
    relate(&mut co, &to_ch, "recall", json!({"target": in_ch})).await;
    assert_eq!(in_history(&mut co, &format!("ch:{ch}"), &in_ch).await["recalled"], json!(true));
}

// ---------------------------------------------------------------------------
// Recalls

#[tokio::test]
async fn recall_rules_in_dms_and_channels() {
    let h = Harness::new().await;
    let (o, adm, m1, m2) = (h.user("rc-own"), h.user("rc-adm"), h.user("rc-m1"), h.user("rc-m2"));
    let mut co = h.login(&o).await;
    let mut cadm = h.login(&adm).await;
    let mut c1 = h.login(&m1).await;
    let mut c2 = h.login(&m2).await;
    // DM: only the sender.
    let dm = text(&mut c1, &to_user(&m2), "dm").await;
    refused(&mut c2, &to_user(&m1), "recall", json!({"target": dm}), ErrorCode::Forbidden).await;
    relate(&mut c1, &to_user(&m2), "recall", json!({"target": dm})).await;
    // Channel: the sender, or an owner or admin; not another member.
    let ch = channel(&h, &mut co, &mut [&mut cadm, &mut c1, &mut c2]).await;
    set_role(&mut co, &ch, &adm, "admin").await.expect_ok();
    let to = to_channel(&ch);
    let by1 = [text(&mut c1, &to, "a").await, text(&mut c1, &to, "b").await, text(&mut c1, &to, "c").await];
    let by_owner = text(&mut co, &to, "owner's").await;
    refused(&mut c2, &to, "recall", json!({"target": by1[0]}), ErrorCode::Forbidden).await;
    refused(&mut c1, &to, "recall", json!({"target": by_owner}), ErrorCode::Forbidden).await;
    relate(&mut c1, &to, "recall", json!({"target": by1[0]})).await;
    relate(&mut cadm, &to, "recall", json!({"target": by1[1]})).await;
    relate(&mut co, &to, "recall", json!({"target": by1[2]})).await;
    relate(&mut cadm, &to, "recall", json!({"target": by_owner})).await;
    let conv = format!("ch:{ch}");
    for m in by1.iter().chain([&by_owner]) {
        assert_eq!(in_history(&mut c2, &conv, m).await["recalled"], json!(true), "{m}");
    }
}

#[tokio::test]
async fn a_recall_hides_content_edits_and_aggregates_for_good() {
    let h = Harness::new().await;
    let (a, b) = (h.user("hide-a"), h.user("hide-b"));
    let mut ca = h.login(&a).await;
    let mut cb = h.login(&b).await;
    let (ab, ba) = (to_user(&b), to_user(&a));
    let conv = dm_conv(&a, &b);
    let secret = ca
        .ok(json!({"op":"send","to":ab,"cid":unique("s"),"kind":"text",
                   "body":{"text":"the secret","mentions":[b]}}))
        .await;
    let secret = mid(&secret);
    let edit = mid(&relate(&mut ca, &ab, "edit", json!({"target": secret, "text": "the secret, v2"})).await);
    let reaction = unique("react");
    let react = json!({"op":"send","to":ba,"cid":reaction,"kind":"reaction",
                       "body":{"target":secret,"key":"👀","on":true}});
    let reacted = cb.ok(react.clone()).await;
    relate(&mut cb, &ba, "pin", json!({"target": secret, "on": true})).await;
    let row = cb.sync_row(&conv).await.unwrap();
    assert_eq!((row["pins"].clone(), row["mentions_unread"].clone()), (json!([secret]), json!(1)), "{row}");

    relate(&mut ca, &ab, "recall", json!({"target": secret})).await;
    let gone = in_history(&mut cb, &conv, &secret).await;
    assert_eq!(gone["recalled"], json!(true), "{gone}");
    assert_eq!(gone["body"], json!({}), "{gone}");
    for k in ["edited", "reactions", "pinned"] {
        assert!(gone.get(k).is_none(), "a recalled message carries no {k}: {gone}");
    }
    assert_eq!(
        in_history(&mut cb, &conv, &edit).await["body"],
        json!({"target": secret}),
        "edits keep only the target"
    );
    let page = cb.history(&conv, json!({"after": 0})).await.to_string();
    assert!(!page.contains("the secret"), "the recalled text is never served again: {page}");
    let row = cb.sync_row(&conv).await.unwrap();
    assert_eq!((row["pins"].clone(), row["mentions_unread"].clone()), (json!([]), json!(0)), "{row}");
    // Anything new pointing at it is a conflict, whoever sends it...
    refused(&mut ca, &ab, "recall", json!({"target": secret}), ErrorCode::Conflict).await;
    refused(&mut ca, &ab, "edit", json!({"target": secret, "text": "back"}), ErrorCode::Conflict).await;
    refused(&mut cb, &ba, "reaction", json!({"target": secret, "key": "k", "on": true}), ErrorCode::Conflict)
        .await;
    refused(&mut cb, &ba, "pin", json!({"target": secret, "on": false}), ErrorCode::Conflict).await;
    // ...but a retry of a relation sent before the recall is its duplicate.
    let again = cb.ok(react).await;
    assert_eq!(
        (again["dup"].clone(), again["seq"].clone()),
        (json!(true), reacted["seq"].clone()),
        "{again}"
    );
}

#[tokio::test]
async fn recalled_media_answers_404() {
    let h = Harness::new().await;
    let (a, b) = (h.user("med-a"), h.user("med-b"));
    let mut ca = h.login(&a).await;
    let (media, sent) = ca.dm_image(&h, &b, b"\x89PNG not really").await;
    let path = format!("/v1/media/{media}");
    let get = |user: &str| (format!("Bearer {}", h.token(user)), path.clone());
    let (auth, p) = get(&b);
    assert_eq!(h.http("GET", &p, &[("Authorization", &auth)], b"").await.status, 200);
    relate(&mut ca, &to_user(&b), "recall", json!({"target": mid(&sent)})).await;
    for user in [&b, &a] {
        let (auth, p) = get(user);
        let r = h.http("GET", &p, &[("Authorization", &auth)], b"").await;
        assert_eq!(r.status, 404, "recalled media for {user}: {}", r.text());
    }
}

// ---------------------------------------------------------------------------
// Reactions and pins

#[tokio::test]
async fn reactions_from_any_member_aggregate_per_key() {
    let h = Harness::new().await;
    let (o, b, c, d) = (h.user("re-o"), h.user("re-b"), h.user("re-c"), h.user("re-d"));
    let mut co = h.login(&o).await;
    let mut cb = h.login(&b).await;
    let mut cc = h.login(&c).await;
    let mut cd = h.login(&d).await;
    let ch = channel(&h, &mut co, &mut [&mut cb, &mut cc]).await;
    let to = to_channel(&ch);
    let conv = format!("ch:{ch}");
    let m = text(&mut co, &to, "vote").await;
    let key = |k: &str, on: bool| json!({"target": m, "key": k, "on": on});
    relate(&mut cc, &to, "reaction", key("👍", true)).await;
    relate(&mut cb, &to, "reaction", key("👍", true)).await;
    relate(&mut co, &to, "reaction", key("🎉", true)).await;
    relate(&mut cc, &to, "reaction", key("👍", true)).await; // already on: no change
    relate(&mut co, &to, "reaction", key("🎉", false)).await;
    relate(&mut cb, &to, "reaction", key("🤔", true)).await;
    refused(&mut cd, &to, "reaction", key("👍", true), ErrorCode::Forbidden).await; // not a member
    let got = in_history(&mut cb, &conv, &m).await;
    assert_eq!(
        got["reactions"],
        json!({"👍": [c, b], "🤔": [b]}),
        "users in reacting order, 🎉 omitted: {got}"
    );
    relate(&mut cb, &to, "reaction", key("🤔", false)).await;
    relate(&mut cb, &to, "reaction", key("👍", false)).await;
    relate(&mut cc, &to, "reaction", key("👍", false)).await;
    let got = in_history(&mut co, &conv, &m).await;
    assert!(got.get("reactions").is_none(), "no reactions left, no field: {got}");
}

#[tokio::test]
async fn pins_by_dm_parties_and_channel_moderators_listed_oldest_first() {
    let h = Harness::new().await;
    let (a, b) = (h.user("pin-a"), h.user("pin-b"));
    let mut ca = h.login(&a).await;
    let mut cb = h.login(&b).await;
    let (ab, ba) = (to_user(&b), to_user(&a));
    let conv = dm_conv(&a, &b);
    let m1 = text(&mut ca, &ab, "one").await;
    let m2 = text(&mut cb, &ba, "two").await;
    let p = relate(&mut cb, &ba, "pin", json!({"target": m2, "on": true})).await;
    relate(&mut ca, &ab, "pin", json!({"target": m1, "on": true})).await;
    relate(&mut cb, &ba, "pin", json!({"target": m2, "on": true})).await; // again: keeps its place
    assert_eq!(in_history(&mut ca, &conv, &m2).await["pinned"], p["ts"]);
    assert_eq!(ca.sync_row(&conv).await.unwrap()["pins"], json!([m2, m1]), "oldest pin first");
    relate(&mut ca, &ab, "pin", json!({"target": m2, "on": false})).await;
    assert_eq!(cb.sync_row(&conv).await.unwrap()["pins"], json!([m1]));
    assert!(in_history(&mut cb, &conv, &m2).await.get("pinned").is_none());

    // Channels: owner and admins only.
    let (o, adm) = (h.user("pin-o"), h.user("pin-adm"));
    let mut co = h.login(&o).await;
    let mut cadm = h.login(&adm).await;
    let ch = channel(&h, &mut co, &mut [&mut cadm, &mut ca]).await;
    set_role(&mut co, &ch, &adm, "admin").await.expect_ok();
    let to = to_channel(&ch);
    let m = text(&mut ca, &to, "pin me").await;
    refused(&mut ca, &to, "pin", json!({"target": m, "on": true}), ErrorCode::Forbidden).await;
    relate(&mut cadm, &to, "pin", json!({"target": m, "on": true})).await;
    relate(&mut co, &to, "pin", json!({"target": m, "on": false})).await;
    refused(&mut ca, &to, "pin", json!({"target": m, "on": false}), ErrorCode::Forbidden).await;
    assert_eq!(ca.sync_row(&format!("ch:{ch}")).await.unwrap()["pins"], json!([]));
}

/// A conversation holds at most `limits.pins` pinned messages (an
/// extension: every sync row lists them); unpinning frees a place.
#[tokio::test]
async fn pins_are_capped_per_conversation() {
    let Some(h) = Harness::with_config("pins_are_capped_per_conversation", |c| c.limits.pins = Some(2)).await
    else {
        return;
    };
    let (a, b) = (h.user("pincap-a"), h.user("pincap-b"));
    let mut ca = h.login(&a).await;
    assert_eq!(ca.hello_ok["limits"]["pins"], json!(2), "{}", ca.hello_ok);
    let ab = to_user(&b);
    let mut mids = Vec::new();
    for t in ["one", "two", "three"] {
        mids.push(text(&mut ca, &ab, t).await);
    }
    relate(&mut ca, &ab, "pin", json!({"target": mids[0], "on": true})).await;
    relate(&mut ca, &ab, "pin", json!({"target": mids[1], "on": true})).await;
    let r = send_kind(&mut ca, &ab, "pin", json!({"target": mids[2], "on": true})).await;
    let e = r.err.unwrap_or_else(|| panic!("a third pin: {:?}", r.ok));
    assert_eq!((e.code, e.limit.as_deref()), (ErrorCode::LimitReached, Some("pins")), "{e:?}");
    relate(&mut ca, &ab, "pin", json!({"target": mids[0], "on": false})).await;
    relate(&mut ca, &ab, "pin", json!({"target": mids[2], "on": true})).await;
    assert_eq!(ca.sync_row(&dm_conv(&a, &b)).await.unwrap()["pins"], json!([mids[1], mids[2]]));
}

// ---------------------------------------------------------------------------
// Sync counters and mentions

#[tokio::test]
async fn sync_counts_unread_and_mentions_unread() {
    let h = Harness::new().await;
    let (a, b) = (h.user("un-a"), h.user("un-b"));
    let mut ca = h.login(&a).await;
    let mut cb = h.login(&b).await;
    let (ab, ba) = (to_user(&b), to_user(&a));
    let conv = dm_conv(&a, &b);
    let mention = |t: &str| json!({"op":"send","to":ab,"cid":unique("m"),"kind":"text","body":{"text":t,"mentions":[b]}});
    let m1 = mid(&ca.ok(mention("@b one")).await);
    text(&mut cb, &ba, "mine").await;
    let m2 = text(&mut ca, &ab, "two").await;
    let m3 = mid(&ca.ok(mention("@b three")).await);
    relate(&mut ca, &ab, "edit", json!({"target": m1, "text": "@b one!"})).await;
    relate(&mut ca, &ab, "reaction", json!({"target": m2, "key": "k", "on": true})).await;
    relate(&mut ca, &ab, "pin", json!({"target": m2, "on": true})).await;
    let row = cb.sync_row(&conv).await.unwrap();
    assert_eq!((row["unread"].clone(), row["mentions_unread"].clone()), (json!(3), json!(2)), "{row}");
    let row = ca.sync_row(&conv).await.unwrap();
    assert_eq!((row["unread"].clone(), row["mentions_unread"].clone()), (json!(1), json!(0)), "{row}");
    cb.ok(json!({"op":"read","conv":conv,"seq":2})).await;
    let row = cb.sync_row(&conv).await.unwrap();
    assert_eq!((row["unread"].clone(), row["mentions_unread"].clone()), (json!(2), json!(1)), "{row}");
    relate(&mut ca, &ab, "recall", json!({"target": m3})).await;
    let row = cb.sync_row(&conv).await.unwrap();
    assert_eq!((row["unread"].clone(), row["mentions_unread"].clone()), (json!(1), json!(0)), "{row}");
    let last = row["last_seq"].clone();
    cb.ok(json!({"op":"read","conv":conv,"seq":last})).await;
    let row = cb.sync_row(&conv).await.unwrap();
    assert_eq!((row["unread"].clone(), row["mentions_unread"].clone()), (json!(0), json!(0)), "{row}");
}

#[tokio::test]
async fn mentions_are_kept_only_for_members() {
    let h = Harness::new().await;
    let (o, b, x) = (h.user("mn-o"), h.user("mn-b"), h.user("mn-out"));
    let mut co = h.login(&o).await;
    let mut cb = h.login(&b).await;
    let mut cx = h.login(&x).await;
    let ch = channel(&h, &mut co, &mut [&mut cb]).await;
    let conv = format!("ch:{ch}");
    let body = json!({"text":"hi all","mentions":[b, x, "not a user id", b, o]});
    let ok =
        co.ok(json!({"op":"send","to":{"channel":ch},"cid":unique("m"),"kind":"text","body":body})).await;
    let ev = cb.event_where("mentioning msg", is_msg_in(&conv)).await;
    assert_eq!(ev["body"], json!({"text":"hi all","mentions":[b, o]}), "delivered with members only");
    assert_eq!(
        in_history(&mut cb, &conv, &mid(&ok)).await["body"]["mentions"],
        json!([b, o]),
        "stored the same"
    );
    let row = cb.sync_row(&conv).await.unwrap();
    assert_eq!(row["mentions_unread"], json!(1), "{row}");
    let row = co.sync_row(&conv).await.unwrap();
    assert_eq!(row["mentions_unread"], json!(0), "mentioning oneself does not count: {row}");
    // Nobody left: the key goes.
    let body = json!({"text":"psst","mentions":[x]});
    let ok =
        co.ok(json!({"op":"send","to":{"channel":ch},"cid":unique("m"),"kind":"text","body":body})).await;
    assert_eq!(in_history(&mut cb, &conv, &mid(&ok)).await["body"], json!({"text":"psst"}));
    // A DM's members are its two parties.
    let body = json!({"text":"dm","mentions":[x, b]});
    let ok = co.ok(json!({"op":"send","to":{"user":x},"cid":unique("m"),"kind":"text","body":body})).await;
    assert_eq!(in_history(&mut cx, &dm_conv(&o, &x), &mid(&ok)).await["body"]["mentions"], json!([x]));
}

#[tokio::test]
async fn relations_are_delivered_and_caught_up_like_any_message() {
    let h = Harness::new().await;
    let (a, b) = (h.user("cu-a"), h.user("cu-b"));
    h.register(&b).await;
    let mut ca = h.login(&a).await;
    let mut ca2 = h.login(&a).await;
    let ab = to_user(&b);
    let conv = dm_conv(&a, &b);
    let m = text(&mut ca, &ab, "hello").await;
    let e = relate(&mut ca, &ab, "edit", json!({"target": m, "text": "hello!"})).await;
    let r = relate(&mut ca, &ab, "reaction", json!({"target": m, "key": "👋", "on": true})).await;
    // The sender's other device gets them live, in order.
    for (want, kind) in [(&e, "edit"), (&r, "reaction")] {
        let ev = ca2.event_where(kind, |ev| ev["ev"] == "msg" && ev["kind"] == kind).await;
        assert_eq!((ev["seq"].clone(), ev["from"].clone()), (want["seq"].clone(), json!(a)));
    }
    // The offline peer catches up with sync and history.
    let mut cb = h.login(&b).await;
    let row = cb.sync_row(&conv).await.unwrap();
    assert_eq!((row["last_seq"].clone(), row["unread"].clone()), (json!(3), json!(1)), "{row}");
    let page = cb.history(&conv, json!({"after": 0})).await;
    assert_eq!(seqs(&page), vec![1, 2, 3]);
    let kinds: Vec<&str> =
        page["messages"].as_array().unwrap().iter().map(|m| m["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["text", "edit", "reaction"]);
    let first = &page["messages"][0];
    assert_eq!(
        (first["body"]["text"].clone(), first["reactions"].clone()),
        (json!("hello!"), json!({"👋": [a]}))
    );
}

#[tokio::test]
async fn a_retried_relation_is_a_dup_and_delivers_nothing_again() {
    let h = Harness::new().await;
    let (a, b) = (h.user("dup-a"), h.user("dup-b"));
    let mut ca = h.login(&a).await;
    let mut cb = h.login(&b).await;
    let conv = dm_conv(&a, &b);
    let m = text(&mut ca, &to_user(&b), "x").await;
    let req = json!({"op":"send","to":{"user":b},"cid":unique("r"),"kind":"reaction",
                     "body":{"target":m,"key":"k","on":true}});
    let first = ca.ok(req.clone()).await;
    cb.event_where("reaction", |e| e["ev"] == "msg" && e["kind"] == "reaction").await;
    cb.clear_events();
    let again = ca.ok(req).await;
    assert_eq!(again["dup"], json!(true));
    assert_eq!((again["seq"].clone(), again["mid"].clone()), (first["seq"].clone(), first["mid"].clone()));
    cb.expect_no_event_where("a second delivery", is_msg_in(&conv)).await;
    assert_eq!(cb.sync_row(&conv).await.unwrap()["last_seq"], json!(2));
}
