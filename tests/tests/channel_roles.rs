//! Channel roles (protocol §11, v1.1): the creator owns a channel, the
//! owner sets roles, removal follows the role ladder, the owner's leaving
//! hands the channel over, and server admins act as owner everywhere.
//!
//! Server-admin tests configure an admin and skip against
//! `COURIER_TEST_URL`.

use courier_conformance::requests::*;
use courier_conformance::*;
use courier_proto::{ErrorCode, MemberInfo, Reply, Role};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------
// Helpers

/// Matches a `member` event giving `user` the role `role` in `ch`.
fn is_role_ev<'a>(ch: &'a str, user: &'a str, role: &'a str) -> impl Fn(&Value) -> bool + 'a {
    move |e| e["ev"] == "member" && e["channel"] == ch && e["user"] == user && e["role"] == role
}

/// The `members` rows of a channel, by user.
async fn roles(c: &mut Client, ch: &str) -> Vec<(String, Role)> {
    let ok = c.ok(json!({"op":"members","channel":ch})).await;
    let rows: Vec<MemberInfo> =
        serde_json::from_value(ok["members"].clone()).unwrap_or_else(|e| panic!("{e}: {ok}"));
    sorted(rows.into_iter().map(|m| (m.user, m.role)).collect())
}

/// Rows by user id (roles are not ordered).
fn sorted(mut v: Vec<(String, Role)>) -> Vec<(String, Role)> {
    v.sort_by(|x, y| x.0.cmp(&y.0));
    v
}

/// Asks for `user` to be removed from `ch`.
async fn remove(c: &mut Client, ch: &str, user: &str) -> Reply {
    c.request(json!({"op":"remove_member","channel":ch,"user":user})).await
}

// ---------------------------------------------------------------------------
// Roles

#[tokio::test]
async fn the_creator_owns_a_channel_and_members_rows_carry_roles() {
    let h = Harness::new().await;
    let (o, b) = (h.user("own-o"), h.user("own-b"));
    let mut co = h.login(&o).await;
    let mut cb = h.login(&b).await;
    let ch = channel(&h, &mut co, &mut [&mut cb]).await;
    assert_eq!(roles(&mut cb, &ch).await, sorted(vec![(o.clone(), Role::Owner), (b.clone(), Role::Member)]));
    // A default channel has no owner.
    cb.ok(json!({"op":"join","channel":"lobby"})).await;
    let lobby = roles(&mut cb, "lobby").await;
    assert!(lobby.iter().all(|(_, r)| *r != Role::Owner), "{lobby:?}");
    assert!(lobby.contains(&(b.clone(), Role::Member)));
    // Plain members may neither set roles nor remove anyone there.
    let other = lobby.iter().find(|(u, _)| *u != b).map(|(u, _)| u.clone()).unwrap_or_else(|| o.clone());
    set_role(&mut cb, "lobby", &b, "admin").await.expect_err(ErrorCode::Forbidden);
    remove(&mut cb, "lobby", &other).await.expect_err(ErrorCode::Forbidden);
}

#[tokio::test]
async fn only_the_owner_sets_roles_and_setting_owner_transfers() {
    let h = Harness::new().await;
    let (o, b, c) = (h.user("sr-o"), h.user("sr-b"), h.user("sr-c"));
    let mut co = h.login(&o).await;
    let mut cb = h.login(&b).await;
    let mut cc = h.login(&c).await;
    let ch = channel(&h, &mut co, &mut [&mut cb, &mut cc]).await;
    cc.clear_events();
    set_role(&mut cb, &ch, &c, "admin").await.expect_err(ErrorCode::Forbidden);
    let ok = set_role(&mut co, &ch, &b, "admin").await;
    assert_eq!(ok.expect_ok()["role"], json!("admin"));
    let ev = cc.event_where("b became admin", is_role_ev(&ch, &b, "admin")).await;
    assert_eq!(ev, json!({"ev":"member","channel":ch,"user":b,"joined":true,"role":"admin"}));
    // An admin is not the owner.
    set_role(&mut cb, &ch, &c, "admin").await.expect_err(ErrorCode::Forbidden);
    set_role(&mut co, &ch, &h.user("stranger"), "admin").await.expect_err(ErrorCode::NotFound);
    set_role(&mut co, &ch, &o, "member").await.expect_err(ErrorCode::Conflict);
    co.expect_err(json!({"op":"set_role","channel":ch,"user":b,"role":"king"}), ErrorCode::BadRequest).await;
    set_role(&mut co, &ch, &b, "member").await.expect_ok();
    cc.event_where("b is a member again", is_role_ev(&ch, &b, "member")).await;
    assert_eq!(
        roles(&mut cc, &ch).await,
        sorted(vec![(o.clone(), Role::Owner), (b.clone(), Role::Member), (c.clone(), Role::Member)])
    );
    // Transfer: c owns it, o becomes admin.
    set_role(&mut co, &ch, &c, "owner").await.expect_ok();
    cb.event_where("c is owner", is_role_ev(&ch, &c, "owner")).await;
    cb.event_where("o is admin", is_role_ev(&ch, &o, "admin")).await;
    assert_eq!(
        roles(&mut cb, &ch).await,
        sorted(vec![(o.clone(), Role::Admin), (b.clone(), Role::Member), (c.clone(), Role::Owner)])
    );
    set_role(&mut co, &ch, &b, "admin").await.expect_err(ErrorCode::Forbidden);
    set_role(&mut cc, &ch, &b, "admin").await.expect_ok();
}

#[tokio::test]
async fn remove_member_follows_the_role_ladder() {
    let h = Harness::new().await;
    let (o, a1, a2, m1, m2) =
        (h.user("rl-o"), h.user("rl-a1"), h.user("rl-a2"), h.user("rl-m1"), h.user("rl-m2"));
    let mut co = h.login(&o).await;
    let mut c1 = h.login(&a1).await;
    let mut c2 = h.login(&a2).await;
    let mut cm1 = h.login(&m1).await;
    let mut cm2 = h.login(&m2).await;
    let ch = channel(&h, &mut co, &mut [&mut c1, &mut c2, &mut cm1, &mut cm2]).await;
    for a in [&a1, &a2] {
        set_role(&mut co, &ch, a, "admin").await.expect_ok();
    }
    remove(&mut cm1, &ch, &m2).await.expect_err(ErrorCode::Forbidden);
    remove(&mut c1, &ch, &a2).await.expect_err(ErrorCode::Forbidden);
    remove(&mut c1, &ch, &o).await.expect_err(ErrorCode::Forbidden);
    remove(&mut c1, &ch, &h.user("nobody")).await.expect_err(ErrorCode::NotFound);
    remove(&mut co, &ch, &o).await.expect_err(ErrorCode::BadRequest);
    remove(&mut c1, &ch, &m1).await.expect_ok();
    remove(&mut co, &ch, &a2).await.expect_ok();
    remove(&mut co, &ch, &m1).await.expect_err(ErrorCode::NotFound);
    assert_eq!(
        roles(&mut co, &ch).await,
        sorted(vec![(o.clone(), Role::Owner), (a1, Role::Admin), (m2, Role::Member)])
    );
}

#[tokio::test]
async fn a_removed_member_loses_access_at_once_and_rejoins_only_when_added_back() {
    let h = Harness::new().await;
    let (o, b, c, adm) = (h.user("rm-o"), h.user("rm-b"), h.user("rm-c"), h.user("rm-adm"));
    let mut co = h.login(&o).await;
    let mut cb = h.login(&b).await;
    let mut cc = h.login(&c).await;
    let mut cadm = h.login(&adm).await;
    let ch = channel(&h, &mut co, &mut [&mut cadm, &mut cc, &mut cb]).await;
    set_role(&mut co, &ch, &adm, "admin").await.expect_ok();
    let conv = format!("ch:{ch}");
    cc.say(&ch, "before").await;
    cb.event_where("msg before", is_msg_in(&conv)).await;
    let sent_before =
        json!({"op":"send","to":{"channel":ch},"cid":unique("b"),"kind":"text","body":{"text":"mine"}});
    let original = cb.ok(sent_before.clone()).await;

    remove(&mut cadm, &ch, &b).await.expect_ok();
    let removed = json!({"ev":"member","channel":ch,"user":b,"joined":false,"removed":true});
    let left = |e: &Value| is_member_ev(&ch, &b)(e) && e["joined"] == false;
    assert_eq!(cb.event_where("removed", left).await, removed);
    cb.clear_events();
    assert_eq!(cc.event_where("b removed", left).await, removed);
    // Once c's node knows (the event says so), c's messages no longer reach b.
    cc.say(&ch, "after").await;
    cb.expect_no_event_where("msg after removal", is_msg_in(&conv)).await;
    cb.expect_err(json!({"op":"history","conv":conv}), ErrorCode::Forbidden).await;
    refused(&mut cb, &to_channel(&ch), "text", json!({"text":"let me in"}), ErrorCode::Forbidden).await;
    // Its outbox retrying a message stored before the removal learns it was sent.
    let again = cb.ok(sent_before).await;
    assert_eq!(
        (again["dup"].clone(), again["seq"].clone()),
        (json!(true), original["seq"].clone()),
        "{again}"
    );
    assert!(cb.sync_row(&conv).await.is_none(), "not in the removed user's sync");
    cb.expect_err(json!({"op":"join","channel":ch}), ErrorCode::Forbidden).await;
    // A plain member cannot bring them back; an owner or admin can.
    cc.expect_err(json!({"op":"add_member","channel":ch,"user":b}), ErrorCode::Forbidden).await;
    cb.expect_err(json!({"op":"join","channel":ch}), ErrorCode::Forbidden).await;
    cadm.ok(json!({"op":"add_member","channel":ch,"user":b})).await;
    cb.event_where("added back", |e| is_member_ev(&ch, &b)(e) && e["joined"] == true).await;
    assert_eq!(seqs(&cb.history(&conv, json!({})).await), vec![1, 2, 3]);
    cb.say(&ch, "back").await;
    // Leaving blocks nothing.
    cb.ok(json!({"op":"leave","channel":ch})).await;
    cb.ok(json!({"op":"join","channel":ch})).await;
}

#[tokio::test]
async fn the_owner_leaving_hands_over_to_an_admin_else_the_longest_standing_member() {
    let h = Harness::new().await;
    let (o, m1, m2, a) = (h.user("su-o"), h.user("su-m1"), h.user("su-m2"), h.user("su-a"));
    let mut co = h.login(&o).await;
    let mut c1 = h.login(&m1).await;
    let mut c2 = h.login(&m2).await;
    let mut ca = h.login(&a).await;
    let ch = channel(&h, &mut co, &mut [&mut c1, &mut c2, &mut ca]).await;
    set_role(&mut co, &ch, &a, "admin").await.expect_ok();
    co.ok(json!({"op":"leave","channel":ch})).await;
    c1.event_where("admin became owner", is_role_ev(&ch, &a, "owner")).await;
    assert_eq!(
        roles(&mut c1, &ch).await,
        sorted(vec![(m1.clone(), Role::Member), (m2.clone(), Role::Member), (a.clone(), Role::Owner)])
    );
    ca.ok(json!({"op":"leave","channel":ch})).await;
    c2.event_where("first member became owner", is_role_ev(&ch, &m1, "owner")).await;
    assert_eq!(
        roles(&mut c2, &ch).await,
        sorted(vec![(m1.clone(), Role::Owner), (m2.clone(), Role::Member)])
    );
    set_role(&mut c1, &ch, &m2, "admin").await.expect_ok();
}

#[tokio::test]
async fn server_admins_act_as_owner_of_every_channel() {
    let root = unique("root");
    let admins = vec![root.clone()];
    let Some(h) =
        Harness::with_config("server_admins_act_as_owner_of_every_channel", |c| c.admin_users = admins).await
    else {
        return;
    };
    let (o, b) = (h.user("sa-o"), h.user("sa-b"));
    let mut cr = h.login(&root).await;
    let mut co = h.login(&o).await;
    let mut cb = h.login(&b).await;
    // A private channel root is not in: visible to root, and root manages it.
    let ch = h.channel("sa");
    co.ok(json!({"op":"create_channel","channel":ch,"private":true})).await;
    co.ok(json!({"op":"add_member","channel":ch,"user":b})).await;
    assert_eq!(roles(&mut cr, &ch).await, sorted(vec![(o.clone(), Role::Owner), (b.clone(), Role::Member)]));
    set_role(&mut cr, &ch, &b, "admin").await.expect_ok();
    set_role(&mut cr, &ch, &b, "owner").await.expect_ok();
    assert_eq!(roles(&mut co, &ch).await, sorted(vec![(o.clone(), Role::Admin), (b.clone(), Role::Owner)]));
    remove(&mut cr, &ch, &o).await.expect_ok();
    cr.ok(json!({"op":"add_member","channel":ch,"user":root})).await;
    // A default channel (no owner): root sets roles, pins, recalls, removes.
    for c in [&mut cb, &mut cr, &mut co] {
        c.ok(json!({"op":"join","channel":"lobby"})).await;
    }
    set_role(&mut cr, "lobby", &b, "admin").await.expect_ok();
    assert!(roles(&mut co, "lobby").await.contains(&(b.clone(), Role::Admin)));
    let spam = text(&mut co, &to_channel("lobby"), "spam").await;
    relate(&mut cr, &to_channel("lobby"), "pin", json!({"target": spam, "on": true})).await;
    relate(&mut cr, &to_channel("lobby"), "recall", json!({"target": spam})).await;
    remove(&mut cr, "lobby", &o).await.expect_ok();
    co.expect_err(json!({"op":"join","channel":"lobby"}), ErrorCode::Forbidden).await;
    // Other users have no such powers.
    set_role(&mut co, "lobby", &root, "member").await.expect_err(ErrorCode::Forbidden);
}
