//! §5 channels: list, create, join, leave, add_member, members, member
//! events, privacy of private channels, persistence of membership.

use courier_conformance::*;
use courier_proto::{ChannelInfo, ErrorCode, MemberInfo, Role};
use serde_json::{Value, json};

fn is_member_ev<'a>(ch: &'a str, user: &'a str, joined: bool) -> impl Fn(&Value) -> bool + 'a {
    move |e| e["ev"] == "member" && e["channel"] == ch && e["user"] == user && e["joined"] == joined
}

/// Every public channel, walking the pages (v1.2).
async fn channel_list(c: &mut Client) -> Vec<ChannelInfo> {
    let mut all: Vec<ChannelInfo> = Vec::new();
    loop {
        let mut req = json!({"op":"channels"});
        if let Some(last) = all.last() {
            req["after"] = json!(last.channel);
        }
        let ok = c.ok(req).await;
        let page: Vec<ChannelInfo> =
            serde_json::from_value(ok["channels"].clone()).unwrap_or_else(|e| panic!("{e}: {ok}"));
        let done = page.is_empty() || ok["more"] != json!(true);
        all.extend(page);
        if done {
            return all;
        }
    }
}

#[tokio::test]
async fn default_channels_are_listed_public() {
    let h = Harness::new().await;
    let mut c = h.login(&h.user("lister")).await;
    let list = channel_list(&mut c).await;
    for name in ["lobby", "random", "tech"] {
        let ch = list.iter().find(|c| c.channel == name).unwrap_or_else(|| panic!("{name} listed: {list:?}"));
        assert!(!ch.private);
    }
    assert!(list.iter().all(|c| !c.private), "only public channels are listed: {list:?}");
}

#[tokio::test]
async fn create_channel_ok_conflict_and_listing() {
    let h = Harness::new().await;
    let mut c = h.login(&h.user("creator")).await;
    let (public, private) = (h.channel("pub"), h.channel("priv"));
    let ok = c
        .ok(json!({"op":"create_channel","channel":public,"title":"Pub","topic":"talk","private":false}))
        .await;
    assert_eq!(ok, json!({"conv":format!("ch:{public}"),"members":1}));
    let ok =
        c.ok(json!({"op":"create_channel","channel":private,"title":"Priv","topic":"","private":true})).await;
    assert_eq!(ok["conv"], json!(format!("ch:{private}")));
    assert_eq!(ok["members"], json!(1));

    let mut other = h.login(&h.user("someone")).await;
    for name in [&public, &private, &"lobby".to_string()] {
        other
            .expect_err(json!({"op":"create_channel","channel":name,"private":false}), ErrorCode::Conflict)
            .await;
    }
    let list = channel_list(&mut other).await;
    let p = list.iter().find(|c| c.channel == public).expect("new public channel listed");
    assert_eq!((p.title.as_str(), p.topic.as_str(), p.private, p.members), ("Pub", "talk", false, 1));
    assert!(list.iter().all(|c| c.channel != private), "private channel not listed to outsiders");
    // The creator is a member: the channel shows up in sync.
    let row = c.sync_row(&format!("ch:{private}")).await.expect("new channel in the creator's sync");
    assert_eq!((row["kind"].clone(), row["last_seq"].clone()), (json!("channel"), json!(0)), "{row}");
}

#[tokio::test]
async fn join_public_channel_and_member_events() {
    let h = Harness::new().await;
    let (a, b) = (h.user("join-a"), h.user("join-b"));
    let mut ca = h.login(&a).await;
    let mut cb = h.login(&b).await;
    let ch = h.channel("joinme");
    ca.ok(json!({"op":"create_channel","channel":ch,"private":false})).await;
    ca.say(&ch, "before b").await;
    let ok = cb.ok(json!({"op":"join","channel":ch})).await;
    assert_eq!(ok, json!({"conv":format!("ch:{ch}"),"last_seq":1,"members":2}));
    let ev = ca.event_where("member joined", is_member_ev(&ch, &b, true)).await;
    assert_eq!(ev, json!({"ev":"member","channel":ch,"user":b,"joined":true}));
    // New member reads history and receives new messages.
    assert_eq!(seqs(&cb.history(&format!("ch:{ch}"), json!({})).await), vec![1]);
    ca.say(&ch, "after b").await;
    cb.event_where("msg", |e| e["ev"] == "msg" && e["conv"] == format!("ch:{ch}")).await;
    // Default channels are joinable.
    let ok = cb.ok(json!({"op":"join","channel":"lobby"})).await;
    assert_eq!(ok["conv"], json!("ch:lobby"));
    assert!(ok["last_seq"].is_u64() && ok["members"].as_u64().unwrap() >= 1, "{ok}");
}

#[tokio::test]
async fn leave_stops_access_and_notifies_members() {
    let h = Harness::new().await;
    let (a, b) = (h.user("leave-a"), h.user("leave-b"));
    let mut ca = h.login(&a).await;
    let mut cb = h.login(&b).await;
    let ch = h.channel("leaving");
    ca.ok(json!({"op":"create_channel","channel":ch,"private":false})).await;
    cb.ok(json!({"op":"join","channel":ch})).await;
    cb.ok(json!({"op":"leave","channel":ch})).await;
    let ev = ca.event_where("member left", is_member_ev(&ch, &b, false)).await;
    assert_eq!(ev, json!({"ev":"member","channel":ch,"user":b,"joined":false}));
    cb.expect_err(
        json!({"op":"send","to":{"channel":ch},"cid":unique("l"),"kind":"text","body":{"text":"x"}}),
        ErrorCode::Forbidden,
    )
    .await;
    cb.expect_err(json!({"op":"history","conv":format!("ch:{ch}")}), ErrorCode::Forbidden).await;
    ca.say(&ch, "after leave").await;
    cb.expect_no_event_where("msg after leave", |e| e["ev"] == "msg").await;
    assert!(cb.sync_row(&format!("ch:{ch}")).await.is_none(), "left channel not in sync");
    let m = ca.ok(json!({"op":"members","channel":ch})).await;
    assert_eq!(m["count"], json!(1), "{m}");
}

#[tokio::test]
async fn sending_to_a_channel_requires_membership() {
    let h = Harness::new().await;
    let (a, b) = (h.user("nm-a"), h.user("nm-b"));
    let mut ca = h.login(&a).await;
    let mut cb = h.login(&b).await;
    let ch = h.channel("members-only");
    ca.ok(json!({"op":"create_channel","channel":ch,"private":false})).await;
    cb.expect_err(
        json!({"op":"send","to":{"channel":ch},"cid":unique("x"),"kind":"text","body":{"text":"hi"}}),
        ErrorCode::Forbidden,
    )
    .await;
    // Reading a public channel's history also needs membership.
    cb.expect_err(json!({"op":"history","conv":format!("ch:{ch}")}), ErrorCode::Forbidden).await;
    ca.expect_no_event_where("msg from a non-member", |e| e["ev"] == "msg").await;
    let r = ca.history(&format!("ch:{ch}"), json!({})).await;
    assert_eq!(seqs(&r), Vec::<u64>::new());
}

#[tokio::test]
async fn private_and_missing_channels_answer_identically_forbidden() {
    let h = Harness::new().await;
    let (owner, outsider, victim) = (h.user("po"), h.user("outsider"), h.user("pv"));
    let mut co = h.login(&owner).await;
    let mut cx = h.login(&outsider).await;
    let private = h.channel("hidden");
    let missing = h.channel("nosuch");
    co.ok(json!({"op":"create_channel","channel":private,"private":true})).await;
    co.say(&private, "classified").await;
    let mut answers = Vec::new();
    for ch in [&private, &missing] {
        let reqs = [
            json!({"op":"join","channel":ch}),
            json!({"op":"history","conv":format!("ch:{ch}")}),
            json!({"op":"members","channel":ch}),
            json!({"op":"send","to":{"channel":ch},"cid":unique("g"),"kind":"text","body":{"text":"hi"}}),
            json!({"op":"add_member","channel":ch,"user":victim}),
        ];
        let mut codes = Vec::new();
        for r in reqs {
            let e = cx.err(r.clone()).await;
            assert_eq!(e.code, ErrorCode::Forbidden, "{r}: {e:?}");
            codes.push(e.code);
        }
        answers.push(codes);
    }
    assert_eq!(answers[0], answers[1]);
    // None of it had an effect.
    let m = co.ok(json!({"op":"members","channel":private})).await;
    assert_eq!(m["count"], json!(1), "{m}");
    assert_eq!(seqs(&co.history(&format!("ch:{private}"), json!({})).await), vec![1]);
}

#[tokio::test]
async fn add_member_to_a_private_channel() {
    let h = Harness::new().await;
    let (a, b, c) = (h.user("am-a"), h.user("am-b"), h.user("am-c"));
    let mut ca = h.login(&a).await;
    let mut cb = h.login(&b).await;
    let ch = h.channel("team");
    let conv = format!("ch:{ch}");
    ca.ok(json!({"op":"create_channel","channel":ch,"title":"Team","private":true})).await;
    ca.ok(json!({"op":"add_member","channel":ch,"user":b})).await;
    assert!(cb.sync_row(&conv).await.is_some(), "added member has the channel in sync");
    // Any member may add a user, also one that has never signed in.
    cb.ok(json!({"op":"add_member","channel":ch,"user":c})).await;
    ca.event_where("member c", is_member_ev(&ch, &c, true)).await;
    ca.say(&ch, "welcome c").await;
    // c signs in later: the channel and its messages are there.
    let mut cc = h.login(&c).await;
    let row = cc.sync_row(&conv).await.expect("private channel in the added user's sync");
    assert_eq!(
        (row["kind"].clone(), row["channel"].clone(), row["last_seq"].clone()),
        (json!("channel"), json!(ch), json!(1))
    );
    assert_eq!(seqs(&cc.history(&conv, json!({})).await), vec![1]);
    cc.say(&ch, "hi all").await;
    let m = cc.ok(json!({"op":"members","channel":ch})).await;
    assert_eq!(m["count"], json!(3));
}

#[tokio::test]
async fn members_lists_online_flags() {
    let h = Harness::new().await;
    let (a, b, c) = (h.user("mo-a"), h.user("mo-b"), h.user("mo-c"));
    let mut ca = h.login(&a).await;
    let ch = h.channel("onl");
    ca.ok(json!({"op":"create_channel","channel":ch,"private":false})).await;
    let mut cb = h.login(&b).await;
    cb.ok(json!({"op":"join","channel":ch})).await;
    cb.close().await;
    let ok = ca.ok(json!({"op":"members","channel":ch})).await;
    assert_eq!(ok["count"], json!(2), "{ok}");
    let mut rows: Vec<MemberInfo> =
        serde_json::from_value(ok["members"].clone()).unwrap_or_else(|e| panic!("{e}: {ok}"));
    rows.sort_by(|x, y| x.user.cmp(&y.user));
    let mut want = vec![
        MemberInfo { user: a.clone(), online: true, role: Role::Owner },
        MemberInfo { user: b.clone(), online: false, role: Role::Member },
    ];
    want.sort_by(|x, y| x.user.cmp(&y.user));
    // b's disconnect may take a moment to register.
    if rows != want {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let ok = ca.ok(json!({"op":"members","channel":ch})).await;
        rows = serde_json::from_value(ok["members"].clone()).unwrap();
        rows.sort_by(|x, y| x.user.cmp(&y.user));
    }
    assert_eq!(rows, want);
    // Public channel members are visible to non-members.
    let mut cc = h.login(&c).await;
    let ok = cc.ok(json!({"op":"members","channel":ch})).await;
    assert_eq!(ok["count"], json!(2));
}

#[tokio::test]
async fn offline_member_gets_channel_messages_on_next_sync() {
    let h = Harness::new().await;
    let (a, b) = (h.user("pm-a"), h.user("pm-b"));
    let mut ca = h.login(&a).await;
    let ch = h.channel("persist");
    ca.ok(json!({"op":"create_channel","channel":ch,"private":false})).await;
    let mut cb = h.login(&b).await;
    cb.ok(json!({"op":"join","channel":ch})).await;
    cb.close().await;
    for i in 0..3 {
        ca.say(&ch, &format!("{i}")).await;
    }
    let mut cb = h.login(&b).await;
    let conv = format!("ch:{ch}");
    let row = cb.sync_row(&conv).await.expect("membership persists across sessions");
    assert_eq!(row["last_seq"], json!(3));
    assert_eq!(seqs(&cb.history(&conv, json!({"after":0})).await), vec![1, 2, 3]);
}
