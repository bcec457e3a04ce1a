//! Request helpers shared by the relation and channel-role suites: a
//! message of any kind expecting ok or a given error, a text message, a
//! public channel with members, a role change, and event matchers.

use crate::{Client, Harness, unique};
use courier_proto::{ErrorCode, Reply};
use serde_json::{Value, json};

/// Sends a message of `kind` with `body` to `to` under a fresh cid.
pub async fn send_kind(c: &mut Client, to: &Value, kind: &str, body: Value) -> Reply {
    c.request(json!({"op":"send","to":to,"cid":unique("rel"),"kind":kind,"body":body})).await
}

/// Like [`send_kind`], expecting an ok (returned).
pub async fn relate(c: &mut Client, to: &Value, kind: &str, body: Value) -> Value {
    let r = send_kind(c, to, kind, body.clone()).await;
    match (&r.ok, &r.err) {
        (Some(ok), None) => ok.clone(),
        _ => panic!("{}: {kind} {body} expected ok, got {r:?}", c.user),
    }
}

/// Like [`send_kind`], expecting the error `code`.
pub async fn refused(c: &mut Client, to: &Value, kind: &str, body: Value, code: ErrorCode) {
    let r = send_kind(c, to, kind, body.clone()).await;
    match &r.err {
        Some(e) => assert_eq!(e.code, code, "{}: {kind} {body}: {e:?}", c.user),
        None => panic!("{}: {kind} {body} expected `{code}`, got ok {:?}", c.user, r.ok),
    }
}

/// A text message to `to`; returns its mid.
pub async fn text(c: &mut Client, to: &Value, t: &str) -> String {
    mid(&c.send_msg(to.clone(), t).await)
}

/// The mid of a send reply.
pub fn mid(ok: &Value) -> String {
    ok["mid"].as_str().unwrap_or_else(|| panic!("send ok has a mid: {ok}")).to_owned()
}

/// A `to` naming a DM with `u`.
pub fn to_user(u: &str) -> Value {
    json!({"user": u})
}

/// A `to` naming channel `c`.
pub fn to_channel(c: &str) -> Value {
    json!({"channel": c})
}

/// Matches a `member` event for `user` in channel `ch`.
pub fn is_member_ev<'a>(ch: &'a str, user: &'a str) -> impl Fn(&Value) -> bool + 'a {
    move |e| e["ev"] == "member" && e["channel"] == ch && e["user"] == user
}

/// Matches a `msg` event in conversation `conv`.
pub fn is_msg_in(conv: &str) -> impl Fn(&Value) -> bool + '_ {
    move |e| e["ev"] == "msg" && e["conv"] == conv
}

/// A public channel created by `owner` and joined by `others` in order,
/// each join seen by the owner before the next (so every member cache of a
/// cluster has it).
pub async fn channel(h: &Harness, owner: &mut Client, others: &mut [&mut Client]) -> String {
    let ch = h.channel("rel");
    owner.ok(json!({"op":"create_channel","channel":ch,"private":false})).await;
    for c in others.iter_mut() {
        c.ok(json!({"op":"join","channel":ch})).await;
        owner.event_where("join", is_member_ev(&ch, &c.user)).await;
    }
    owner.clear_events();
    ch
}

/// Asks for `user`'s role in `ch` to become `role`.
pub async fn set_role(c: &mut Client, ch: &str, user: &str, role: &str) -> Reply {
    c.request(json!({"op":"set_role","channel":ch,"user":user,"role":role})).await
}
