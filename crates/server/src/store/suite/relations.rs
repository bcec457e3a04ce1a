//! Suite cases for relations (edits, reactions, pins, recalls): how they
//! change their target, the v1.2 reaction caps, and what a recall scrubs.

use super::{chan, channel, object, range, relate, relation, seqs, text, user};
use crate::store::{Appended, ConvSummary, MediaMeta, NewMessage, Page, RelationAppend, Store};
use courier_proto::{Conv, Msg};
use serde_json::{Map, json};

use std::sync::Arc;

/// The message with `mid` in a page.
fn find<'a>(page: &'a [Msg], mid: &str) -> &'a Msg {
    page.iter().find(|m| m.mid == mid).unwrap_or_else(|| panic!("{mid} is in the page"))
}

/// Edits, reactions and pins change their target's aggregates in history
/// (newest edit wins, a key with no users is gone, re-pinning keeps the
/// first pin), get their own seqs, and are refused, writing nothing, when
/// the target is unknown, a relation, or in another conversation.
pub async fn relations_update_their_targets_aggregates(store: Arc<dyn Store>) {
    let dm = Conv::dm("alice", "bob");
    let m1 = store.append(text("alice", user("bob"), "m1", "draft", 10)).await.unwrap().msg;
    let m2 = store.append(text("bob", user("alice"), "m2", "ok", 20)).await.unwrap().msg;
    let (a, b) = (user("bob"), user("alice"));
    let e1 =
        relate(&*store, "alice", a.clone(), "e1", "edit", json!({"target": m1.mid, "text": "v2"}), 50).await;
    relate(&*store, "alice", a.clone(), "e2", "edit", json!({"target": m1.mid, "text": "v3"}), 60).await;
    let thumbs = |on: bool| json!({"target": m1.mid, "key": "👍", "on": on});
    let party = |on: bool| json!({"target": m1.mid, "key": "🎉", "on": on});
    relate(&*store, "bob", b.clone(), "r1", "reaction", thumbs(true), 70).await;
    relate(&*store, "alice", a.clone(), "r2", "reaction", thumbs(true), 71).await;
    relate(&*store, "alice", a.clone(), "r3", "reaction", party(true), 72).await;
    relate(&*store, "bob", b.clone(), "r4", "reaction", thumbs(true), 73).await;
    relate(&*store, "alice", a.clone(), "r5", "reaction", party(false), 74).await;
    relate(&*store, "bob", b.clone(), "p1", "pin", json!({"target": m2.mid, "on": true}), 100).await;
    relate(&*store, "alice", a.clone(), "p2", "pin", json!({"target": m1.mid, "on": true}), 110).await;
    let last =
        relate(&*store, "bob", b.clone(), "p3", "pin", json!({"target": m2.mid, "on": true}), 120).await;
    assert_eq!(last.seq, 12, "every relation has its own seq");
    assert_eq!(last.body["target"], json!(m2.mid), "a relation is stored as sent");
    assert_eq!(store.conv_last(&dm).await.unwrap(), (12, 120));

    let (page, more) = store.history(&dm, Page::Latest, 100).await.unwrap();
    assert!(!more);
    assert_eq!(seqs(&page), range(1, 12));
    let got = find(&page, &m1.mid);
    assert_eq!(got.body, object(json!({"text": "v3"})), "the newest edit's text");
    assert_eq!(got.edited, Some(60), "the newest edit's ts");
    let reactions: Vec<(&str, Vec<&str>)> =
        got.reactions.iter().map(|(k, v)| (k.as_str(), v.iter().map(String::as_str).collect())).collect();
    assert_eq!(reactions, vec![("👍", vec!["bob", "alice"])], "users in reacting order; 🎉 has nobody");
    assert_eq!(got.pinned, Some(110));
    assert!(!got.recalled);
    let got2 = find(&page, &m2.mid);
    assert_eq!(
        (got2.pinned, got2.edited, got2.reactions.len()),
        (Some(100), None, 0),
        "re-pinning keeps the pin"
    );
    let edit = find(&page, &e1.mid);
    assert_eq!(edit.body, object(json!({"target": m1.mid, "text": "v2"})), "an edit keeps its own text");
    assert!(edit.edited.is_none() && edit.reactions.is_empty() && edit.pinned.is_none());
    assert_eq!(store.message(&dm, &m1.mid).await.unwrap().as_ref(), Some(got), "message() has aggregates");
    // Pages that start after the target still see nothing of it, and a
    // page holding the target sees reactions sent later.
    let (tail, _) = store.history(&dm, Page::After(1), 1).await.unwrap();
    assert_eq!(find(&tail, &m2.mid).pinned, Some(100));
    let (head, _) = store.history(&dm, Page::Before(2), 1).await.unwrap();
    assert_eq!(head[0].reactions["👍"], ["bob", "alice"]);

    let pins = |list: &[ConvSummary]| list.iter().find(|s| s.conv == dm).unwrap().pins.clone();
    assert_eq!(pins(&store.conversations("alice").await.unwrap()), [m2.mid.clone(), m1.mid.clone()]);
    relate(&*store, "alice", a.clone(), "p4", "pin", json!({"target": m2.mid, "on": false}), 130).await;
    assert_eq!(pins(&store.conversations("bob").await.unwrap()), vec![m1.mid.clone()], "oldest pin first");
    assert_eq!(store.message(&dm, &m2.mid).await.unwrap().unwrap().pinned, None);

    // Refusals write nothing.
    let before = store.conv_last(&dm).await.unwrap();
    for (cid, body) in [
        ("x1", json!({"target": "01NOSUCHMID", "key": "k", "on": true})),
        ("x2", json!({"target": e1.mid, "key": "k", "on": true})),
    ] {
        let (msg, rel) = relation("alice", a.clone(), cid, "reaction", body, 200);
        assert_eq!(store.append_relation(msg, rel).await.unwrap(), RelationAppend::NoTarget, "{cid}");
    }
    let elsewhere = store.append(text("alice", chan("lobby"), "l1", "hi", 5)).await.unwrap().msg;
    let (msg, rel) = relation("alice", a.clone(), "x3", "recall", json!({"target": elsewhere.mid}), 200);
    assert_eq!(
        store.append_relation(msg, rel).await.unwrap(),
        RelationAppend::NoTarget,
        "another conversation"
    );
    assert_eq!(store.conv_last(&dm).await.unwrap(), before);
    assert!(store.message_by_cid("alice", "x1").await.unwrap().is_none());
    assert_eq!(store.message_by_cid("alice", "e1").await.unwrap(), Some(e1));
}

/// What the v1.2 reaction caps read: distinct keys on one message, the
/// keys one user has on it, and whether the key (and the user's own) is on.
pub async fn reaction_tally_counts_keys_and_one_users_keys_on_one_message(store: Arc<dyn Store>) {
    let dm = Conv::dm("alice", "bob");
    let m1 = store.append(text("alice", user("bob"), "m1", "one", 10)).await.unwrap().msg;
    let m2 = store.append(text("alice", user("bob"), "m2", "two", 11)).await.unwrap().msg;
    let (a, b) = (user("bob"), user("alice"));
    let react = |mid: &str, key: &str, on: bool| json!({"target": mid, "key": key, "on": on});
    relate(&*store, "alice", a.clone(), "r1", "reaction", react(&m1.mid, "k1", true), 20).await;
    relate(&*store, "alice", a.clone(), "r2", "reaction", react(&m1.mid, "k2", true), 21).await;
    relate(&*store, "bob", b.clone(), "r3", "reaction", react(&m1.mid, "k2", true), 22).await;
    relate(&*store, "bob", b.clone(), "r4", "reaction", react(&m1.mid, "k3", true), 23).await;
    relate(&*store, "bob", b.clone(), "r5", "reaction", react(&m1.mid, "k3", false), 24).await;
    relate(&*store, "bob", b.clone(), "r6", "reaction", react(&m2.mid, "k9", true), 25).await;
    let t = store.reaction_tally(&dm, m1.seq, "alice", "k2").await.unwrap();
    assert_eq!((t.keys, t.user_keys, t.key_present, t.user_has_key), (2, 2, true, true), "{t:?}");
    let t = store.reaction_tally(&dm, m1.seq, "bob", "k1").await.unwrap();
    assert_eq!((t.keys, t.user_keys, t.key_present, t.user_has_key), (2, 1, true, false), "k3 is off: {t:?}");
    let t = store.reaction_tally(&dm, m1.seq, "carol", "k3").await.unwrap();
    assert_eq!((t.keys, t.user_keys, t.key_present, t.user_has_key), (2, 0, false, false), "{t:?}");
    let t = store.reaction_tally(&dm, m2.seq, "alice", "k1").await.unwrap();
    assert_eq!(
        (t.keys, t.user_keys, t.key_present, t.user_has_key),
        (1, 0, false, false),
        "per message: {t:?}"
    );
}

/// The v1.2 reaction caps are checked in the reaction's transaction: 16
/// concurrent reactions with distinct keys by one user store exactly
/// `per_user`, and other users together reach exactly `keys` distinct
/// keys. Refusals write nothing; a key already on, taking one off, and a
/// retry of a stored reaction always pass.
pub async fn reaction_caps_hold_under_concurrent_reactions(store: Arc<dyn Store>) {
    let dm = Conv::dm("alice", "bob");
    let caps = crate::store::RelationCaps { keys: 5, per_user: 3, pins: 100 };
    let target = store.append(text("alice", user("bob"), "t", "react", 10)).await.unwrap().msg;
    let react = |from: &str, cid: String, key: String, on: bool| {
        let to = if from == "alice" { user("bob") } else { user("alice") };
        relation(from, to, &cid, "reaction", json!({"target": target.mid, "key": key, "on": on}), 20)
    };
    let race = |from: &'static str, prefix: &'static str| {
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let store = store.clone();
                let (msg, rel) = react(from, format!("{prefix}{i}"), format!("{prefix}{i}"), true);
                tokio::spawn(async move { store.append_relation_capped(msg, rel, caps).await.unwrap() })
            })
            .collect();
        async move {
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        }
    };
    let alice = race("alice", "a").await;
    let stored = alice.iter().filter(|r| matches!(r, RelationAppend::Stored(_))).count();
    assert_eq!(stored, 3, "per_user under concurrency: {alice:?}");
    assert!(
        alice
            .iter()
            .all(|r| matches!(r, RelationAppend::Stored(_) | RelationAppend::Capped("reactions_per_user")))
    );
    let bob = race("bob", "b").await;
    let stored = bob.iter().filter(|r| matches!(r, RelationAppend::Stored(_))).count();
    assert_eq!(stored, 2, "the rest of `keys` under concurrency: {bob:?}");
    assert!(bob.contains(&RelationAppend::Capped("reaction_keys")), "{bob:?}");
    let t = store.reaction_tally(&dm, target.seq, "carol", "x").await.unwrap();
    assert_eq!((t.keys, t.user_keys), (5, 0));
    assert_eq!(store.conv_last(&dm).await.unwrap().0, 1 + 3 + 2, "refusals write nothing");
    // What always passes: a key already on, taking a key off, a retry.
    let on_key = |r: &[RelationAppend]| match r.iter().find(|r| matches!(r, RelationAppend::Stored(_))) {
        Some(RelationAppend::Stored(a)) => {
            (a.msg.cid.clone(), a.msg.body["key"].as_str().unwrap().to_owned())
        }
        _ => unreachable!(),
    };
    let (acid, akey) = on_key(&alice);
    let (msg, rel) = react("bob", "again".into(), akey.clone(), true);
    assert!(matches!(store.append_relation_capped(msg, rel, caps).await.unwrap(), RelationAppend::Stored(_)));
    let (msg, rel) = react("alice", acid.clone(), akey.clone(), true);
    match store.append_relation_capped(msg, rel, caps).await.unwrap() {
        RelationAppend::Stored(a) => assert!(a.dup, "a retry is its duplicate"),
        other => panic!("retry: {other:?}"),
    }
    let (msg, rel) = react("alice", "off".into(), "never-on".into(), false);
    assert!(matches!(store.append_relation_capped(msg, rel, caps).await.unwrap(), RelationAppend::Stored(_)));
}

/// A recall scrubs its target for good: body, edits' texts, reactions,
/// pin, mentions and the media its sender uploaded; any later relation to
/// it is refused, but a retried relation still gets its original.
pub async fn a_recall_scrubs_its_target_for_good(store: Arc<dyn Store>) {
    let room = chan("room");
    let conv = Conv::channel("room");
    let media = |id: &str, owner: &str| MediaMeta {
        id: id.into(),
        owner: owner.into(),
        mime: "image/png".into(),
        size: 2,
        sha256: "00".into(),
        created: 1,
    };
    store.put_media(&media("m_alice", "alice"), vec![1, 2]).await.unwrap();
    store.put_media(&media("m_bob", "bob"), vec![3, 4]).await.unwrap();
    assert!(store.create_channel(channel("room", false, Some("alice"))).await.unwrap());
    assert!(store.add_member("room", "bob", 2).await.unwrap());
    let mut secret = text("alice", room.clone(), "t1", "secret", 10);
    secret.body.insert("mentions".into(), json!(["bob"]));
    secret.mentions = vec!["bob".into()];
    let t1 = store.append(secret).await.unwrap().msg;
    let e1 = relate(
        &*store,
        "alice",
        room.clone(),
        "e1",
        "edit",
        json!({"target": t1.mid, "text": "secret!"}),
        11,
    )
    .await;
    let r1 = relate(
        &*store,
        "bob",
        room.clone(),
        "r1",
        "reaction",
        json!({"target": t1.mid, "key": "k", "on": true}),
        12,
    )
    .await;
    relate(&*store, "bob", room.clone(), "p1", "pin", json!({"target": t1.mid, "on": true}), 13).await;
    let image = |cid: &str, m: &str| NewMessage {
        kind: "image".into(),
        body: object(json!({"media": m, "mime": "image/png"})),
        ..text("alice", room.clone(), cid, "-", 14)
    };
    let i1 = store.append(image("i1", "m_alice")).await.unwrap().msg;
    let i2 = store.append(image("i2", "m_bob")).await.unwrap().msg;
    let bob_row = |list: Vec<ConvSummary>| list.into_iter().find(|s| s.conv == conv).unwrap();
    let before = bob_row(store.conversations("bob").await.unwrap());
    assert_eq!((before.mentions_unread, before.pins.len()), (1, 1), "{before:?}");

    let recall = relate(&*store, "alice", room.clone(), "c1", "recall", json!({"target": t1.mid}), 20).await;
    let (page, _) = store.history(&conv, Page::Latest, 100).await.unwrap();
    let gone = find(&page, &t1.mid);
    assert!(gone.recalled);
    assert_eq!(gone.body, Map::new(), "no content");
    assert!(gone.edited.is_none() && gone.reactions.is_empty() && gone.pinned.is_none(), "{gone:?}");
    assert_eq!(
        find(&page, &e1.mid).body,
        object(json!({"target": t1.mid})),
        "its edits keep only the target"
    );
    assert_eq!(find(&page, &r1.mid).body["key"], "k", "reactions carry no content and stay as sent");
    assert_eq!(find(&page, &recall.mid).body, object(json!({"target": t1.mid})));
    assert_eq!(store.message(&conv, &t1.mid).await.unwrap().as_ref(), Some(gone));
    let after = bob_row(store.conversations("bob").await.unwrap());
    assert_eq!(
        (after.unread, after.mentions_unread, after.pins.len()),
        (before.unread - 1, 0, 0),
        "{after:?}"
    );
    // The retry of a relation made before the recall still gets its original.
    let (retry, rel) = relation(
        "bob",
        room.clone(),
        "r1",
        "reaction",
        json!({"target": t1.mid, "key": "k", "on": true}),
        30,
    );
    assert_eq!(
        store.append_relation(retry, rel).await.unwrap(),
        RelationAppend::Stored(Appended { msg: r1, dup: true })
    );
    // Anything new that points at it is refused and writes nothing.
    let last = store.conv_last(&conv).await.unwrap();
    for (cid, kind, body) in [
        ("n1", "reaction", json!({"target": t1.mid, "key": "k", "on": false})),
        ("n2", "pin", json!({"target": t1.mid, "on": true})),
        ("n3", "recall", json!({"target": t1.mid})),
        ("n4", "edit", json!({"target": t1.mid, "text": "back"})),
    ] {
        let (msg, rel) = relation("alice", room.clone(), cid, kind, body, 40);
        assert_eq!(store.append_relation(msg, rel).await.unwrap(), RelationAppend::Recalled, "{kind}");
    }
    assert_eq!(store.conv_last(&conv).await.unwrap(), last);

    // Media: the sender's own upload is gone, someone else's stays.
    relate(&*store, "alice", room.clone(), "c2", "recall", json!({"target": i1.mid}), 50).await;
    relate(&*store, "alice", room.clone(), "c3", "recall", json!({"target": i2.mid}), 51).await;
    assert_eq!(store.media("m_alice").await.unwrap(), None);
    assert_eq!(store.media("m_bob").await.unwrap().map(|(_, b)| b), Some(vec![3, 4]));
}

/// A recall succeeds even when its target's stored body cannot be read
/// back (a damaged row; here a body nested past the JSON parser's depth
/// limit, the one way to store one through the API): the target is still
/// scrubbed, and its mentions no longer count, though which users it named
/// cannot be read. The protocol's promise is that recalled content is never
/// served again, so the recall must not fail on the content it removes.
pub async fn a_recall_of_an_unreadable_body_still_scrubs_it(store: Arc<dyn Store>) {
    let room = chan("room");
    let conv = Conv::channel("room");
    assert!(store.create_channel(channel("room", false, Some("alice"))).await.unwrap());
    assert!(store.add_member("room", "bob", 2).await.unwrap());
    let mut deep = json!("bottom");
    for _ in 0..200 {
        deep = json!([deep]);
    }
    let mut damaged = text("alice", room.clone(), "t1", "secret", 10);
    damaged.body.insert("mentions".into(), json!(["bob"]));
    damaged.body.insert("deep".into(), deep);
    damaged.mentions = vec!["bob".into()];
    let t1 = store.append(damaged).await.unwrap().msg;
    let bob_row = |list: Vec<ConvSummary>| list.into_iter().find(|s| s.conv == conv).unwrap();
    let before = bob_row(store.conversations("bob").await.unwrap());
    assert_eq!((before.unread, before.mentions_unread), (1, 1), "{before:?}");

    relate(&*store, "alice", room.clone(), "c1", "recall", json!({"target": t1.mid}), 20).await;
    let gone = store.message(&conv, &t1.mid).await.unwrap().expect("the target stays listed");
    assert!(gone.recalled, "{gone:?}");
    assert_eq!(gone.body, Map::new(), "no content");
    let after = bob_row(store.conversations("bob").await.unwrap());
    assert_eq!((after.unread, after.mentions_unread), (0, 0), "{after:?}");
}

/// 20 rounds of 8 reactions racing a recall of their target: each reaction
/// is stored before the recall or refused; afterwards the target carries
/// no reaction and the conversation holds exactly what was accepted.
pub async fn relations_racing_a_recall_are_before_it_or_refused(store: Arc<dyn Store>) {
    let conv = Conv::channel("race");
    for round in 0..20 {
        let t = store.append(text("alice", chan("race"), &format!("t{round}"), "x", 1)).await.unwrap().msg;
        let mut tasks = Vec::new();
        for i in 0..9 {
            let (store, mid) = (store.clone(), t.mid.clone());
            tasks.push(tokio::spawn(async move {
                let (msg, rel) = if i == 4 {
                    relation("alice", chan("race"), &format!("c{round}"), "recall", json!({"target": mid}), 2)
                } else {
                    let body = json!({"target": mid, "key": "k", "on": true});
                    relation(&format!("u{i}"), chan("race"), &format!("r{round}"), "reaction", body, 2)
                };
                store.append_relation(msg, rel).await.unwrap()
            }));
        }
        let mut recall_seq = 0;
        let mut reactions = Vec::new();
        for (i, task) in tasks.into_iter().enumerate() {
            match task.await.unwrap() {
                RelationAppend::Stored(a) if i == 4 => recall_seq = a.msg.seq,
                RelationAppend::Stored(a) => reactions.push(a.msg.seq),
                RelationAppend::Recalled => assert_ne!(i, 4, "the recall itself is never refused"),
                RelationAppend::NoTarget => panic!("the target exists"),
                RelationAppend::Capped(cap) => panic!("uncapped, yet {cap}"),
            }
        }
        assert!(recall_seq > 0);
        assert!(reactions.iter().all(|s| *s < recall_seq), "round {round}: a reaction after the recall");
        let got = store.message(&conv, &t.mid).await.unwrap().unwrap();
        assert!(got.recalled && got.reactions.is_empty(), "round {round}: {got:?}");
        assert_eq!(store.conv_last(&conv).await.unwrap().0, recall_seq.max(t.seq), "round {round}");
    }
    let (all, _) = store.history(&conv, Page::After(0), 1000).await.unwrap();
    assert_eq!(seqs(&all), range(1, all.len() as u64), "gapless");
}

/// A conversation holds at most `pins` pinned messages, checked in the
/// pin's transaction: 12 concurrent pins of distinct messages under a cap
/// of 4 store exactly 4. A message pinned already may be pinned again,
/// unpinning always works and frees a place.
pub async fn pins_are_capped_per_conversation_under_concurrency(store: Arc<dyn Store>) {
    let dm = Conv::dm("alice", "bob");
    let caps = crate::store::RelationCaps { keys: 50, per_user: 20, pins: 4 };
    let mut targets = Vec::new();
    for i in 0..12 {
        targets
            .push(store.append(text("alice", user("bob"), &format!("t{i}"), "x", 10)).await.unwrap().msg.mid);
    }
    let pin = |cid: String, target: &str, on: bool| {
        relation("bob", user("alice"), &cid, "pin", json!({"target": target, "on": on}), 20)
    };
    let tasks: Vec<_> = targets
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let store = store.clone();
            let (msg, rel) = pin(format!("p{i}"), t, true);
            tokio::spawn(async move { store.append_relation_capped(msg, rel, caps).await.unwrap() })
        })
        .collect();
    let mut pinned = Vec::new();
    for (t, task) in targets.iter().zip(tasks) {
        match task.await.unwrap() {
            RelationAppend::Stored(_) => pinned.push(t.clone()),
            RelationAppend::Capped(cap) => assert_eq!(cap, "pins"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(pinned.len(), 4, "the cap under concurrency: {pinned:?}");
    let seq_before = store.conv_last(&dm).await.unwrap().0;
    assert_eq!(seq_before, 12 + 4, "refusals write nothing");
    let rows = store.conversations("alice").await.unwrap();
    assert_eq!(rows.iter().find(|r| r.conv == dm).unwrap().pins.len(), 4);
    // A pinned message again: no new place taken.
    let (msg, rel) = pin("again".into(), &pinned[0], true);
    assert!(matches!(store.append_relation_capped(msg, rel, caps).await.unwrap(), RelationAppend::Stored(_)));
    let free = targets.iter().find(|t| !pinned.contains(t)).unwrap().clone();
    let (msg, rel) = pin("over".into(), &free, true);
    assert_eq!(store.append_relation_capped(msg, rel, caps).await.unwrap(), RelationAppend::Capped("pins"));
    let (msg, rel) = pin("off".into(), &pinned[1], false);
    assert!(matches!(store.append_relation_capped(msg, rel, caps).await.unwrap(), RelationAppend::Stored(_)));
    let (msg, rel) = pin("now".into(), &free, true);
    assert!(matches!(store.append_relation_capped(msg, rel, caps).await.unwrap(), RelationAppend::Stored(_)));
}
