//! Call records (protocol §12, v1.2): the `call` content kind. The server
//! writes one, as the caller, for an invitation that ends unanswered
//! (refused, canceled, expired); the caller writes one for an accepted
//! call; nobody else may, and nowhere else. A record is a content message:
//! it counts in `unread` and takes reactions and pins, not edits.

use courier_conformance::requests::*;
use courier_conformance::*;
use courier_proto::ErrorCode;
use serde_json::{Value, json};
use std::time::Duration;

/// Caller and callee, signed in.
async fn pair(h: &Harness, tag: &str) -> (Client, Client) {
    let caller = h.login(&h.user(&format!("{tag}-caller"))).await;
    let callee = h.login(&h.user(&format!("{tag}-callee"))).await;
    (caller, callee)
}

/// An invitation from `caller` to `callee` with `content`; its iid, once the
/// callee has it.
async fn invite(caller: &mut Client, callee: &mut Client, content: Value, ttl_s: u64) -> String {
    let ok = caller.ok(json!({"op":"invite","to":callee.user,"content":content,"ttl_s":ttl_s})).await;
    let iid = ok["invite"]["iid"].as_str().expect("an iid").to_owned();
    callee.event_where("invite", |e| e["ev"] == "invite" && e["invite"]["iid"] == iid).await;
    iid
}

fn is_record(iid: &str) -> impl Fn(&Value) -> bool + '_ {
    move |e| e["ev"] == "msg" && e["kind"] == "call" && e["body"]["iid"] == iid
}

/// Waits for the call record of `iid` at `c` and checks where it is and
/// who wrote it; returns its body.
async fn record_at(c: &mut Client, iid: &str, caller: &str, callee: &str, wait: Duration) -> Value {
    let ev = c.event_where_within("call record", wait, is_record(iid)).await;
    assert_eq!(ev["conv"], dm_conv(caller, callee), "{ev}");
    assert_eq!(ev["from"], caller, "from the caller: {ev}");
    assert_eq!(ev["cid"], format!("call-{iid}"), "{ev}");
    ev["body"].clone()
}

fn record(iid: &str, outcome: &str, duration_s: u64) -> Value {
    json!({"iid": iid, "video": false, "outcome": outcome, "duration_s": duration_s})
}

fn send_record(to: &Value, cid: String, body: Value) -> Value {
    json!({"op":"send","to":to,"cid":cid,"kind":"call","body":body})
}

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_refused_invitation_leaves_a_declined_record_in_the_dm() {
    let h = Harness::new().await;
    let (mut caller, mut callee) = pair(&h, "crd").await;
    let (a, b) = (caller.user.clone(), callee.user.clone());
    let iid = invite(&mut caller, &mut callee, json!({"video": true}), 60).await;
    callee.ok(json!({"op":"invite_answer","iid":iid,"accept":false})).await;
    let want = json!({"iid": iid, "video": true, "outcome": "declined", "duration_s": 0});
    assert_eq!(record_at(&mut caller, &iid, &a, &b, WAIT).await, want);
    assert_eq!(record_at(&mut callee, &iid, &a, &b, WAIT).await, want);
    let row = callee.sync_row(&dm_conv(&a, &b)).await.expect("the DM is in sync");
    assert_eq!(row["unread"], 1, "a call record counts as unread: {row}");
}

#[tokio::test]
async fn a_canceled_invitation_leaves_a_canceled_record() {
    let h = Harness::new().await;
    let (mut caller, mut callee) = pair(&h, "crc").await;
    let (a, b) = (caller.user.clone(), callee.user.clone());
    // `video` that is not a boolean counts as an audio call.
    let iid = invite(&mut caller, &mut callee, json!({"video": "yes"}), 60).await;
    caller.ok(json!({"op":"invite_cancel","iid":iid})).await;
    assert_eq!(record_at(&mut callee, &iid, &a, &b, WAIT).await, record(&iid, "canceled", 0));
    assert_eq!(record_at(&mut caller, &iid, &a, &b, WAIT).await, record(&iid, "canceled", 0));
}

#[tokio::test]
async fn an_expired_invitation_leaves_a_missed_record() {
    let h = Harness::new().await;
    let (mut caller, mut callee) = pair(&h, "crx").await;
    let (a, b) = (caller.user.clone(), callee.user.clone());
    let iid = invite(&mut caller, &mut callee, json!({}), 5).await;
    let wait = Duration::from_secs(20);
    assert_eq!(record_at(&mut callee, &iid, &a, &b, wait).await, record(&iid, "missed", 0));
    assert_eq!(record_at(&mut caller, &iid, &a, &b, wait).await, record(&iid, "missed", 0));
    let page = caller.history(&dm_conv(&a, &b), json!({})).await;
    let records = page["messages"].as_array().unwrap().iter().filter(|m| m["kind"] == "call").count();
    assert_eq!(records, 1, "written once: {page}");
}

#[tokio::test]
async fn the_caller_writes_the_record_of_an_accepted_call_once() {
    let h = Harness::new().await;
    let (mut caller, mut callee) = pair(&h, "cra").await;
    let (a, b) = (caller.user.clone(), callee.user.clone());
    let iid = invite(&mut caller, &mut callee, json!({"video": false}), 60).await;
    callee.ok(json!({"op":"invite_answer","iid":iid,"accept":true})).await;
    let body = record(&iid, "completed", 192);
    let ok = caller.ok(send_record(&to_user(&b), format!("call-{iid}"), body.clone())).await;
    assert_eq!(ok["dup"], false, "{ok}");
    assert_eq!(record_at(&mut callee, &iid, &a, &b, WAIT).await, body);
    let again = caller.ok(send_record(&to_user(&b), format!("call-{iid}"), body)).await;
    assert_eq!((again["dup"].clone(), again["mid"].clone()), (json!(true), ok["mid"].clone()), "{again}");
}

#[tokio::test]
async fn only_the_caller_writes_a_record_in_the_dm_under_its_cid() {
    let h = Harness::new().await;
    let (mut caller, mut callee) = pair(&h, "crr").await;
    let (a, b) = (caller.user.clone(), callee.user.clone());
    let carol = h.user("crr-carol");
    let _carol_phone = h.login_device(&carol, "phone").await;
    let mut carol_laptop = h.login_device(&carol, "laptop").await;
    let iid = invite(&mut caller, &mut callee, json!({}), 60).await;
    callee.ok(json!({"op":"invite_answer","iid":iid,"accept":true})).await;
    let cid = || format!("call-{iid}");
    let good = record(&iid, "completed", 3);

    let e = callee.expect_err(send_record(&to_user(&a), cid(), good.clone()), ErrorCode::Forbidden).await;
    assert!(e.message.contains("caller"), "the callee: {e:?}");
    caller.expect_err(send_record(&to_user(&carol), cid(), good.clone()), ErrorCode::Forbidden).await;
    let ch = h.channel("crr");
    caller.ok(json!({"op":"create_channel","channel":ch,"private":false})).await;
    caller.expect_err(send_record(&to_channel(&ch), cid(), good.clone()), ErrorCode::Forbidden).await;
    caller.expect_err(send_record(&to_user(&b), unique("c"), good.clone()), ErrorCode::BadRequest).await;
    let bad_outcome = record(&iid, "hung_up", 3);
    caller.expect_err(send_record(&to_user(&b), cid(), bad_outcome), ErrorCode::BadRequest).await;
    let unknown = unique("NOPE");
    let body = record(&unknown, "completed", 3);
    caller.expect_err(send_record(&to_user(&b), format!("call-{unknown}"), body), ErrorCode::NotFound).await;
    // A third user (on a second device) with the right iid and cid.
    carol_laptop.expect_err(send_record(&to_user(&a), cid(), good.clone()), ErrorCode::NotFound).await;
    carol_laptop.expect_err(send_record(&to_user(&b), cid(), good.clone()), ErrorCode::NotFound).await;

    callee.expect_no_event_where("a refused record", is_record(&iid)).await;
    caller.ok(send_record(&to_user(&b), cid(), good)).await;
}

#[tokio::test]
async fn a_record_takes_reactions_pins_and_the_callers_recall_but_no_edit() {
    let h = Harness::new().await;
    let (mut caller, mut callee) = pair(&h, "cre").await;
    let (a, b) = (caller.user.clone(), callee.user.clone());
    let iid = invite(&mut caller, &mut callee, json!({}), 60).await;
    callee.ok(json!({"op":"invite_answer","iid":iid,"accept":false})).await;
    let ev = callee.event_where_within("call record", WAIT, is_record(&iid)).await;
    let m = ev["mid"].as_str().unwrap().to_owned();
    refused(&mut caller, &to_user(&b), "edit", json!({"target": m, "text": "no"}), ErrorCode::Forbidden)
        .await;
    relate(&mut callee, &to_user(&a), "reaction", json!({"target": m, "key": "👍", "on": true})).await;
    relate(&mut callee, &to_user(&a), "pin", json!({"target": m, "on": true})).await;
    let row = caller.sync_row(&dm_conv(&a, &b)).await.expect("the DM is in sync");
    assert_eq!(row["pins"], json!([m]), "{row}");
    refused(&mut callee, &to_user(&a), "recall", json!({"target": m}), ErrorCode::Forbidden).await;
    relate(&mut caller, &to_user(&b), "recall", json!({"target": m})).await;
}
