use super::*;
use crate::model::{DeliveryStatus, MessageView};
use courier_proto::{Conv, Msg, SendOk, SyncConv, Target};
use serde_json::{Value, json};

fn msg(conv: &Conv, seq: u64, from: &str, cid: &str, text: &str) -> Msg {
    Msg {
        conv: conv.clone(),
        seq,
        mid: format!("m{seq}"),
        cid: cid.into(),
        from: from.into(),
        to: match conv {
            Conv::Dm(a, b) => Target::User(if a == from { b.clone() } else { a.clone() }),
            Conv::Channel(c) => Target::Channel(c.clone()),
        },
        kind: "text".into(),
        body: json!({"text": text}).as_object().unwrap().clone(),
        ts: 1000 + seq as i64,
        reply_to: None,
        edited: None,
        reactions: Default::default(),
        recalled: false,
        pinned: None,
    }
}

fn new_msg(conv: &Conv, cid: &str, text: &str) -> NewMessage {
    NewMessage {
        conv: conv.clone(),
        cid: cid.into(),
        from: "alice".into(),
        to: Target::User("bob".into()),
        kind: "text".into(),
        body: json!({"text": text}).as_object().unwrap().clone(),
        reply_to: None,
    }
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open_dir(dir.path()).unwrap();
    (dir, s)
}

fn seqs(s: &Store, conv: &Conv) -> Vec<Option<u64>> {
    s.all_messages(conv).unwrap().iter().map(|m| m.seq).collect()
}

#[test]
fn the_database_is_in_wal_mode_with_fts5() {
    let (_d, s) = open();
    let mode: String = s.with(|c| Ok(c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?)).unwrap();
    assert_eq!(mode, "wal");
    let v: u32 = s.with(|c| Ok(c.query_row("PRAGMA user_version", [], |r| r.get(0))?)).unwrap();
    assert_eq!(v, CURRENT_VERSION);
}

#[test]
fn messages_are_stored_once_in_seq_order_whatever_the_arrival_order() {
    let (_d, s) = open();
    let c = Conv::channel("lobby");
    s.apply_messages("alice", &[msg(&c, 3, "bob", "b3", "three")]).unwrap();
    assert_eq!(s.synced_seq(&c).unwrap(), 0, "a hole before 3");
    let a = s
        .apply_messages(
            "alice",
            &[
                msg(&c, 1, "bob", "b1", "one"),
                msg(&c, 2, "bob", "b2", "two"),
                msg(&c, 3, "bob", "b3", "three"),
            ],
        )
        .unwrap();
    assert_eq!(a.added.len(), 2);
    assert_eq!(s.synced_seq(&c).unwrap(), 3);
    let again = s.apply_messages("alice", &[msg(&c, 2, "bob", "b2", "two")]).unwrap();
    assert!(again.added.is_empty() && again.updated.is_empty());
    assert_eq!(seqs(&s, &c), [Some(1), Some(2), Some(3)]);
}

#[test]
fn an_own_pending_message_is_confirmed_by_history_and_leaves_the_outbox() {
    let (_d, s) = open();
    s.claim_user("alice").unwrap();
    let c = Conv::dm("alice", "bob");
    let pending = s.enqueue(&new_msg(&c, "c1", "hello")).unwrap();
    assert_eq!(pending.status, DeliveryStatus::Pending);
    assert_eq!(s.outbox_cids().unwrap(), ["c1"]);
    // The ok was lost, but history brings the stored copy back.
    let a = s.apply_messages("alice", &[msg(&c, 1, "alice", "c1", "hello")]).unwrap();
    assert_eq!(a.updated.len(), 1);
    assert!(s.outbox_cids().unwrap().is_empty());
    // The late ok changes nothing.
    let ok = SendOk { conv: c.clone(), seq: 1, mid: "m1".into(), ts: 1001, dup: true };
    s.mark_sent("alice", "c1", &ok).unwrap();
    let all = s.all_messages(&c).unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].status, DeliveryStatus::Sent);
}

#[test]
fn a_send_ok_ahead_of_missing_messages_does_not_hide_the_gap() {
    let (_d, s) = open();
    let c = Conv::dm("alice", "bob");
    s.enqueue(&new_msg(&c, "c1", "mine")).unwrap();
    s.mark_sent("alice", "c1", &SendOk { conv: c.clone(), seq: 2, mid: "m2".into(), ts: 2, dup: false })
        .unwrap();
    assert_eq!(s.synced_seq(&c).unwrap(), 0);
    s.apply_messages("alice", &[msg(&c, 1, "bob", "b1", "theirs")]).unwrap();
    assert_eq!(s.synced_seq(&c).unwrap(), 2);
}

#[test]
fn receipts_move_own_messages_to_delivered_and_read() {
    let (_d, s) = open();
    let c = Conv::dm("alice", "bob");
    for i in 1..=3 {
        s.apply_messages("alice", &[msg(&c, i, "alice", &format!("c{i}"), "x")]).unwrap();
    }
    let changed = s.apply_receipt("alice", &c, 3, 1, 100).unwrap();
    assert_eq!(changed.len(), 3);
    let st: Vec<_> = s.all_messages(&c).unwrap().iter().map(|m| m.status).collect();
    assert_eq!(st, [DeliveryStatus::Read, DeliveryStatus::Delivered, DeliveryStatus::Delivered]);
}

#[test]
fn unread_counts_and_read_cursors() {
    let (_d, s) = open();
    let c = Conv::channel("lobby");
    s.apply_messages(
        "alice",
        &[msg(&c, 1, "bob", "b1", "a"), msg(&c, 2, "alice", "a2", "b"), msg(&c, 3, "bob", "b3", "c")],
    )
    .unwrap();
    assert_eq!(s.conversation("alice", &c).unwrap().unwrap().unread, 2);
    assert_eq!(s.set_read(&c, None).unwrap(), Some(3));
    assert_eq!(s.conversation("alice", &c).unwrap().unwrap().unread, 0);
    assert_eq!(s.reads_to_send().unwrap(), [(c.clone(), 3)]);
    s.read_sent(&c, 3).unwrap();
    assert!(s.reads_to_send().unwrap().is_empty());
    assert!(s.acks_to_send().unwrap().is_empty(), "read raises the receive cursor");
}

#[test]
fn search_finds_words_and_prefixes_and_ignores_operators() {
    let (_d, s) = open();
    let c = Conv::channel("lobby");
    s.apply_messages(
        "alice",
        &[
            msg(&c, 1, "bob", "b1", "the quick brown fox"),
            msg(&c, 2, "bob", "b2", "lazy dogs sleep"),
            msg(&c, 3, "bob", "b3", "Quick: \"NEAR\" AND OR"),
        ],
    )
    .unwrap();
    let hits = |q: &str| s.search(q, 10).unwrap().iter().map(|m| m.seq.unwrap()).collect::<Vec<_>>();
    assert_eq!(hits("quick"), [3, 1]);
    assert_eq!(hits("quick bro"), [1]);
    assert_eq!(hits("do"), [2]);
    assert_eq!(hits("AND OR"), [3]);
    assert_eq!(hits("\"unbalanced"), Vec::<u64>::new());
    assert!(hits("   ").is_empty());
}

#[test]
fn enqueue_is_atomic_with_its_outbox_row() {
    let (_d, s) = open();
    let c = Conv::dm("alice", "bob");
    s.enqueue(&new_msg(&c, "c1", "one")).unwrap();
    // Same (sender, cid) again fails and leaves no orphan outbox row.
    assert!(s.enqueue(&new_msg(&c, "c1", "dup")).is_err());
    assert_eq!(s.outbox_cids().unwrap(), ["c1"]);
    assert_eq!(s.all_messages(&c).unwrap().len(), 1);
}

#[test]
fn a_newer_database_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE);
    {
        let s = Store::open(&path).unwrap();
        s.set_setting("user", "alice").unwrap();
        s.with(|c| Ok(c.pragma_update(None, "user_version", CURRENT_VERSION + 1)?)).unwrap();
    }
    match Store::open(&path) {
        Err(StoreError::TooNew { found, .. }) => assert_eq!(found, CURRENT_VERSION + 1),
        other => panic!("expected TooNew, got {:?}", other.map(|_| ())),
    }
    let c = Connection::open(&path).unwrap();
    let user: String = c.query_row("SELECT value FROM settings WHERE key='user'", [], |r| r.get(0)).unwrap();
    assert_eq!(user, "alice");
}

#[test]
fn a_corrupt_file_is_a_clear_error_and_is_not_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE);
    let junk = b"this is not a sqlite database, just some bytes that happen to be here".repeat(100);
    std::fs::write(&path, &junk).unwrap();
    let err = Store::open(&path).err().expect("must fail");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("left untouched"));
    assert_eq!(std::fs::read(&path).unwrap(), junk);
}

#[test]
fn another_account_is_refused() {
    let (_d, s) = open();
    s.claim_user("alice").unwrap();
    s.claim_user("alice").unwrap();
    assert!(matches!(s.claim_user("bob"), Err(StoreError::AccountMismatch { .. })));
}

/// Every historical schema version, with data written the way that version
/// wrote it, opens and migrates to the current one without losing anything.
#[test]
fn every_historical_schema_version_migrates() {
    for version in 1..=CURRENT_VERSION {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        {
            let c = create_at_version(&path, version).unwrap();
            c.execute("INSERT INTO settings (key, value) VALUES ('user', 'alice')", []).unwrap();
            c.execute(
                "INSERT INTO conversations (conv, kind, channel, synced_seq, last_seq) VALUES ('ch:lobby', 'channel', 'lobby', 1, 1)",
                [],
            )
            .unwrap();
            c.execute(
                "INSERT INTO messages (conv, seq, mid, cid, sender, target, kind, body, ts, status, created)
                 VALUES ('ch:lobby', 1, 'm1', 'b1', 'bob', '{\"channel\":\"lobby\"}', 'text', '{\"text\":\"migrated greetings\"}', 5, 'received', 5)",
                [],
            )
            .unwrap();
            c.execute(
                "INSERT INTO messages (conv, seq, mid, cid, sender, target, kind, body, ts, status, created)
                 VALUES ('ch:lobby', NULL, NULL, 'a1', 'alice', '{\"channel\":\"lobby\"}', 'text', '{\"text\":\"queued before upgrade\"}', NULL, 'pending', 6)",
                [],
            )
            .unwrap();
            c.execute("INSERT INTO outbox (message_id, conv) VALUES (2, 'ch:lobby')", []).unwrap();
        }
        let s = Store::open(&path).unwrap_or_else(|e| panic!("version {version}: {e}"));
        let v: u32 = s.with(|c| Ok(c.query_row("PRAGMA user_version", [], |r| r.get(0))?)).unwrap();
        assert_eq!(v, CURRENT_VERSION, "from version {version}");
        let c = Conv::channel("lobby");
        assert_eq!(seqs(&s, &c), [Some(1), None], "from version {version}");
        assert_eq!(s.outbox_cids().unwrap(), ["a1"], "from version {version}");
        assert_eq!(s.search("greet", 5).unwrap().len(), 1, "search after migrating from {version}");
        assert_eq!(s.setting("user").unwrap().as_deref(), Some("alice"));
    }
}

#[test]
fn conversations_carry_the_newest_message_for_the_preview() {
    let (_d, s) = open();
    let c = Conv::dm("alice", "bob");
    s.apply_messages("alice", &[msg(&c, 1, "bob", "b1", "first"), msg(&c, 2, "bob", "b2", "second")])
        .unwrap();
    let conv = s.conversation("alice", &c).unwrap().unwrap();
    assert_eq!(conv.last_message.unwrap().text(), Some("second"));
    assert_eq!(conv.peer.as_deref(), Some("bob"));
    s.enqueue(&new_msg(&c, "c1", "typing away")).unwrap();
    let conv = s.conversation("alice", &c).unwrap().unwrap();
    assert_eq!(conv.last_message.unwrap().status, DeliveryStatus::Pending);
    assert!(s.conversation("alice", &Conv::channel("nowhere")).unwrap().is_none());
}

// ---- v1.1 relations ----------------------------------------------------

fn rel(conv: &Conv, seq: u64, from: &str, kind: &str, body: Value) -> Msg {
    Msg {
        kind: kind.into(),
        body: body.as_object().unwrap().clone(),
        ..msg(conv, seq, from, &format!("r{seq}"), "")
    }
}

fn by_mid(s: &Store, conv: &Conv, mid: &str) -> MessageView {
    s.message_by_mid(conv, mid).unwrap().unwrap()
}

fn hits(s: &Store, q: &str) -> Vec<String> {
    s.search(q, 10).unwrap().into_iter().map(|m| m.mid.unwrap()).collect()
}

fn fts_rows(s: &Store, q: &str) -> i64 {
    s.with(|c| {
        Ok(c.query_row("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH ?1", [q], |r| r.get(0))?)
    })
    .unwrap()
}

fn new_rel(conv: &Conv, cid: &str, kind: &str, body: Value) -> NewMessage {
    NewMessage { kind: kind.into(), body: body.as_object().unwrap().clone(), ..new_msg(conv, cid, "") }
}

#[test]
fn relations_apply_to_their_target_and_never_show_as_messages() {
    let (_d, s) = open();
    let c = Conv::channel("lobby");
    let a = s
        .apply_messages(
            "alice",
            &[
                msg(&c, 1, "bob", "b1", "first draft"),
                rel(&c, 2, "bob", "edit", json!({"target": "m1", "text": "final words"})),
                rel(&c, 3, "alice", "reaction", json!({"target": "m1", "key": "👍", "on": true})),
                rel(&c, 4, "carol", "pin", json!({"target": "m1", "on": true})),
            ],
        )
        .unwrap();
    assert_eq!(a.added.len(), 1, "relations are not added messages");
    assert_eq!(a.relations, 3);
    assert_eq!(a.pins, std::slice::from_ref(&c));
    assert_eq!(a.added[0].text(), Some("final words"), "the added message already shows its relations");
    assert_eq!(s.synced_seq(&c).unwrap(), 4, "relations fill seqs like any message");
    let page = s.history(&c, None, 50).unwrap();
    assert_eq!(page.len(), 1);
    let m = &page[0];
    assert_eq!(m.text(), Some("final words"));
    assert_eq!(m.edited, Some(1002));
    assert_eq!(m.reactions["👍"], ["alice"]);
    assert_eq!(m.pinned, Some(1004));
    assert!(!m.recalled);
    let conv = s.conversation("alice", &c).unwrap().unwrap();
    assert_eq!(conv.pins, ["m1"]);
    assert_eq!(conv.unread, 1, "only the content message is unread");
    assert_eq!(conv.last_message.unwrap().mid.as_deref(), Some("m1"));
    assert_eq!(hits(&s, "final"), ["m1"], "search finds the newest text");
    assert!(hits(&s, "draft").is_empty(), "and not the replaced one");
    assert_eq!(s.pinned(&c).unwrap().len(), 1);
}

#[test]
fn a_recall_removes_the_text_from_the_search_index_and_the_cached_media() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open_dir(dir.path()).unwrap();
    let c = Conv::dm("alice", "bob");
    let cached = dir.path().join("media").join("m_cat");
    std::fs::create_dir_all(cached.parent().unwrap()).unwrap();
    std::fs::write(&cached, b"meow").unwrap();
    s.put_media("m_cat", &cached, "image/png", 4).unwrap();
    let image = Msg {
        kind: "image".into(),
        body: json!({"media": "m_cat", "mime": "image/png", "name": "cat.png"}).as_object().unwrap().clone(),
        ..msg(&c, 2, "bob", "b2", "")
    };
    s.apply_messages(
        "alice",
        &[
            msg(&c, 1, "bob", "b1", "secret launch codes"),
            image,
            rel(&c, 3, "bob", "edit", json!({"target": "m1", "text": "secret launch codes v2"})),
        ],
    )
    .unwrap();
    assert_eq!(hits(&s, "secret"), ["m1"]);
    assert_eq!(hits(&s, "cat"), ["m2"]);
    let a = s
        .apply_messages(
            "alice",
            &[
                rel(&c, 4, "bob", "recall", json!({"target": "m1"})),
                rel(&c, 5, "bob", "recall", json!({"target": "m2"})),
            ],
        )
        .unwrap();
    assert_eq!(a.targets.len(), 2, "both targets are reported changed");
    assert!(a.added.is_empty());
    for mid in ["m1", "m2"] {
        let m = by_mid(&s, &c, mid);
        assert!(m.recalled);
        assert!(m.body.is_empty(), "{mid}: body dropped");
        assert_eq!(m.edited, None);
    }
    assert!(hits(&s, "secret").is_empty() && hits(&s, "cat").is_empty());
    assert_eq!(fts_rows(&s, "secret"), 0, "no index entry holds the text, not even the edit's");
    assert_eq!(fts_rows(&s, "launch"), 0);
    assert!(!cached.exists(), "the cached image is deleted");
    assert_eq!(s.media_path("m_cat").unwrap(), None);
    // Nothing of the text is left anywhere in the store.
    let left: i64 = s
        .with(|c| {
            Ok(c.query_row(
                "SELECT count(*) FROM messages WHERE body LIKE '%launch%' OR base_body LIKE '%launch%'",
                [],
                |r| r.get(0),
            )?)
        })
        .unwrap();
    assert_eq!(left, 0);
    assert_eq!(s.conversation("alice", &c).unwrap().unwrap().unread, 0, "recalled messages are not unread");
}

#[test]
fn reactions_aggregate_per_key_by_each_users_latest_reaction() {
    let (_d, s) = open();
    let c = Conv::channel("lobby");
    let r =
        |seq, from, key, on| rel(&c, seq, from, "reaction", json!({"target": "m1", "key": key, "on": on}));
    s.apply_messages(
        "alice",
        &[
            msg(&c, 1, "bob", "b1", "lunch?"),
            r(2, "alice", "👍", true),
            r(3, "bob", "👍", true),
            r(4, "carol", "🎉", true),
            r(5, "alice", "👍", false),
            r(6, "dave", "👍", true),
            r(7, "carol", "🎉", false),
        ],
    )
    .unwrap();
    let m = by_mid(&s, &c, "m1");
    assert_eq!(m.reactions.len(), 1, "a key nobody has on is omitted: {:?}", m.reactions);
    assert_eq!(m.reactions["👍"], ["bob", "dave"]);
    let v = serde_json::to_value(&m).unwrap();
    assert_eq!(v["reactions"], json!({"👍": ["bob", "dave"]}));
    s.apply_messages("alice", &[r(8, "bob", "👍", false), r(9, "dave", "👍", false)]).unwrap();
    let v = serde_json::to_value(by_mid(&s, &c, "m1")).unwrap();
    assert!(v.get("reactions").is_none(), "no reactions: the field is left out");
}

#[test]
fn applying_relations_is_idempotent_and_independent_of_arrival_order() {
    let (_d, s) = open();
    let c = Conv::channel("lobby");
    let all = vec![
        msg(&c, 1, "bob", "b1", "hello"),
        rel(&c, 2, "bob", "edit", json!({"target": "m1", "text": "hello there"})),
        rel(&c, 3, "carol", "reaction", json!({"target": "m1", "key": "👋", "on": true})),
        rel(&c, 4, "carol", "pin", json!({"target": "m1", "on": true})),
        rel(&c, 5, "bob", "edit", json!({"target": "m1", "text": "hello there, all"})),
    ];
    // A live relation arrives first (the rest is a gap), then the gap page.
    s.apply_messages("alice", &all[4..]).unwrap();
    assert_eq!(s.message_by_mid(&c, "m1").unwrap(), None, "the target is not there yet");
    s.apply_messages("alice", &all).unwrap();
    let first = by_mid(&s, &c, "m1");
    assert_eq!(first.text(), Some("hello there, all"), "the newest edit by seq wins, not the last to arrive");
    // Everything again, in another order: nothing changes, nothing is reported.
    let mut again = all.clone();
    again.reverse();
    let a = s.apply_messages("alice", &again).unwrap();
    assert!(a.added.is_empty() && a.targets.is_empty() && a.updated.is_empty() && a.relations == 0);
    assert_eq!(by_mid(&s, &c, "m1"), first);
    // The same page from a v1.1 server (aggregates served) changes nothing either.
    let mut served = all.clone();
    served[0].body = json!({"text": "hello there, all"}).as_object().unwrap().clone();
    served[0].edited = Some(1005);
    served[0].reactions.insert("👋".into(), vec!["carol".into()]);
    served[0].pinned = Some(1004);
    let a = s.apply_page("alice", &served).unwrap();
    assert!(a.added.is_empty() && a.targets.is_empty());
    assert_eq!(by_mid(&s, &c, "m1"), first);
}

#[test]
fn served_aggregates_are_not_applied_twice_and_later_relations_apply_on_top() {
    let (_d, s) = open();
    let c = Conv::dm("alice", "bob");
    let r = |seq, on| rel(&c, seq, "bob", "reaction", json!({"target": "m1", "key": "👍", "on": on}));
    // A v1.1 page: the message as served reflects its relations (bob
    // toggled 👍 on, off, on), which are in the same page.
    let mut first = msg(&c, 1, "alice", "a1", "ship it");
    first.reactions.insert("👍".into(), vec!["bob".into()]);
    first.edited = Some(1003);
    first.body = json!({"text": "ship it!"}).as_object().unwrap().clone();
    let page = vec![
        first,
        r(2, true),
        rel(&c, 3, "alice", "edit", json!({"target": "m1", "text": "ship it!"})),
        r(4, false),
        r(5, true),
    ];
    let a = s.apply_page("alice", &page).unwrap();
    assert_eq!(a.added.len(), 1);
    let m = by_mid(&s, &c, "m1");
    assert_eq!((m.text(), m.edited), (Some("ship it!"), Some(1003)));
    assert_eq!(m.reactions["👍"], ["bob"]);
    // A later live reaction applies on top of the served state.
    let a = s.apply_messages("alice", &[r(6, false)]).unwrap();
    assert_eq!(a.targets.len(), 1);
    assert!(by_mid(&s, &c, "m1").reactions.is_empty());
    // A page whose served aggregates already include a relation of the
    // next page: applying that page again converges.
    let c2 = Conv::channel("lobby");
    let mut m = msg(&c2, 1, "bob", "b1", "poll");
    m.reactions.insert("🍕".into(), vec!["carol".into()]);
    s.apply_page("alice", &[m]).unwrap();
    s.apply_page(
        "alice",
        &[rel(&c2, 2, "carol", "reaction", json!({"target": "m1", "key": "🍕", "on": true}))],
    )
    .unwrap();
    assert_eq!(by_mid(&s, &c2, "m1").reactions["🍕"], ["carol"]);
}

#[test]
fn unread_and_mentions_count_content_messages_of_others_only() {
    let (_d, s) = open();
    let c = Conv::channel("lobby");
    let mention = |seq, from: &str, who: Value| Msg {
        body: json!({"text": "hey", "mentions": who}).as_object().unwrap().clone(),
        ..msg(&c, seq, from, &format!("x{seq}"), "")
    };
    s.apply_messages(
        "alice",
        &[
            mention(1, "bob", json!(["alice"])),
            mention(2, "bob", json!(["carol"])),
            msg(&c, 3, "carol", "c3", "plain"),
            rel(&c, 4, "bob", "reaction", json!({"target": "m3", "key": "👀", "on": true})),
            rel(&c, 5, "bob", "edit", json!({"target": "m2", "text": "hey all"})),
            mention(6, "carol", json!(["alice", "bob"])),
            rel(&c, 7, "carol", "recall", json!({"target": "m6"})),
            mention(8, "alice", json!(["alice"])),
            rel(&c, 9, "dave", "pin", json!({"target": "m1", "on": true})),
        ],
    )
    .unwrap();
    let v = s.conversation("alice", &c).unwrap().unwrap();
    assert_eq!((v.unread, v.mentions_unread), (3, 1), "m1, m2, m3 unread; m1 mentions alice");
    s.set_read(&c, Some(1)).unwrap();
    let v = s.conversation("alice", &c).unwrap().unwrap();
    assert_eq!((v.unread, v.mentions_unread), (2, 0));
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["mentions_unread"], 0, "always serialized");
    assert_eq!(json["pins"], json!(["m1"]));
}

#[test]
fn an_optimistic_reaction_shows_at_once_and_is_undone_when_refused() {
    let (_d, s) = open();
    s.claim_user("alice").unwrap();
    let c = Conv::dm("alice", "bob");
    s.apply_messages("alice", &[msg(&c, 1, "bob", "b1", "cake?")]).unwrap();
    let row =
        s.enqueue(&new_rel(&c, "r1", "reaction", json!({"target": "m1", "key": "🍰", "on": true}))).unwrap();
    assert_eq!(row.status, DeliveryStatus::Pending);
    assert_eq!(by_mid(&s, &c, "m1").reactions["🍰"], ["alice"], "pending, shown at once");
    assert_eq!(s.history(&c, None, 10).unwrap().len(), 1, "the pending relation is not a message");
    assert_eq!(
        s.conversation("alice", &c).unwrap().unwrap().last_message.unwrap().mid.as_deref(),
        Some("m1")
    );
    let reverted = s.mark_failed("alice", "r1", "conflict: recalled").unwrap().unwrap();
    assert_eq!(reverted.mid.as_deref(), Some("m1"), "the target is returned, not the relation");
    assert!(reverted.reactions.is_empty(), "undone");
    let again = s.retry_failed("alice", "r1").unwrap().unwrap();
    assert_eq!(again.reactions["🍰"], ["alice"]);
    let ok = SendOk { conv: c.clone(), seq: 2, mid: "m2".into(), ts: 2002, dup: false };
    let sent = s.mark_sent("alice", "r1", &ok).unwrap().unwrap();
    assert_eq!(sent.reactions["🍰"], ["alice"]);
    assert_eq!(s.synced_seq(&c).unwrap(), 2);
    // An optimistic edit and pin, then the relation is deleted unsent.
    let c2 = Conv::channel("lobby");
    s.apply_messages("alice", &[msg(&c2, 1, "alice", "a1", "typo")]).unwrap();
    s.enqueue(&new_rel(&c2, "e1", "edit", json!({"target": "m1", "text": "fixed"}))).unwrap();
    s.enqueue(&new_rel(&c2, "p1", "pin", json!({"target": "m1", "on": true}))).unwrap();
    let m = by_mid(&s, &c2, "m1");
    assert_eq!(m.text(), Some("fixed"));
    assert!(m.edited.is_some() && m.pinned.is_some());
    assert_eq!(s.conversation("alice", &c2).unwrap().unwrap().pins, ["m1"]);
    assert_eq!(hits(&s, "fixed"), ["m1"]);
    s.mark_failed("alice", "e1", "conflict: too old").unwrap();
    assert!(s.delete_unsent("alice", "p1").unwrap());
    let m = by_mid(&s, &c2, "m1");
    assert_eq!((m.text(), m.edited, m.pinned), (Some("typo"), None, None));
    assert!(s.conversation("alice", &c2).unwrap().unwrap().pins.is_empty());
    assert_eq!(hits(&s, "typo"), ["m1"], "the search index follows the revert");
}

#[test]
fn a_recall_applies_only_once_the_server_stored_it() {
    let (_d, s) = open();
    s.claim_user("alice").unwrap();
    let c = Conv::dm("alice", "bob");
    s.apply_messages("alice", &[msg(&c, 1, "alice", "a1", "oops wrong chat")]).unwrap();
    s.enqueue(&new_rel(&c, "x1", "recall", json!({"target": "m1"}))).unwrap();
    assert!(!by_mid(&s, &c, "m1").recalled, "pending: nothing destroyed yet");
    assert_eq!(hits(&s, "oops"), ["m1"]);
    let ok = SendOk { conv: c.clone(), seq: 2, mid: "m2".into(), ts: 2002, dup: false };
    let m = s.mark_sent("alice", "x1", &ok).unwrap().unwrap();
    assert!(m.recalled && m.body.is_empty());
    assert!(hits(&s, "oops").is_empty());
}

#[test]
fn pins_follow_the_v1_1_sync_list_then_later_pin_messages() {
    let (_d, s) = open();
    let c = Conv::channel("lobby");
    s.apply_messages(
        "alice",
        &[
            msg(&c, 1, "bob", "b1", "rules"),
            msg(&c, 2, "bob", "b2", "faq"),
            rel(&c, 3, "bob", "pin", json!({"target": "m1", "on": true})),
        ],
    )
    .unwrap();
    assert_eq!(s.conversation("alice", &c).unwrap().unwrap().pins, ["m1"]);
    // The server's list as of seq 3 wins over what was derived before.
    let row = SyncConv {
        conv: c.clone(),
        kind: "channel".into(),
        peer: None,
        channel: Some("lobby".into()),
        last_seq: 3,
        last_ts: 1003,
        read_seq: 0,
        peer_read_seq: None,
        peer_recv_seq: None,
        unread: 2,
        mentions_unread: 0,
        pins: vec!["m2".into(), "m1".into()],
    };
    s.apply_sync_conv("alice", &row, false).unwrap();
    assert_eq!(s.conversation("alice", &c).unwrap().unwrap().pins, ["m1"], "a v1 server's rows say nothing");
    s.apply_sync_conv("alice", &row, true).unwrap();
    assert_eq!(s.conversation("alice", &c).unwrap().unwrap().pins, ["m2", "m1"]);
    s.apply_messages("alice", &[rel(&c, 4, "bob", "pin", json!({"target": "m2", "on": false}))]).unwrap();
    assert_eq!(s.conversation("alice", &c).unwrap().unwrap().pins, ["m1"]);
    assert_eq!(s.pinned(&c).unwrap().iter().map(|m| m.mid.clone().unwrap()).collect::<Vec<_>>(), ["m1"]);
    // Pinning a pinned message keeps the first pin and its place.
    s.apply_messages(
        "alice",
        &[
            rel(&c, 5, "bob", "pin", json!({"target": "m2", "on": true})),
            rel(&c, 6, "carol", "pin", json!({"target": "m1", "on": true})),
        ],
    )
    .unwrap();
    assert_eq!(s.conversation("alice", &c).unwrap().unwrap().pins, ["m1", "m2"]);
    assert_eq!(by_mid(&s, &c, "m1").pinned, Some(1003));
    // A recall unpins.
    s.apply_messages("alice", &[rel(&c, 7, "bob", "recall", json!({"target": "m1"}))]).unwrap();
    assert_eq!(s.conversation("alice", &c).unwrap().unwrap().pins, ["m2"]);
    assert_eq!(by_mid(&s, &c, "m1").pinned, None);
}

#[test]
fn only_the_sender_can_edit_and_only_text() {
    let (_d, s) = open();
    let c = Conv::channel("lobby");
    let file = Msg {
        kind: "file".into(),
        body: json!({"media": "m_f", "name": "report.pdf"}).as_object().unwrap().clone(),
        ..msg(&c, 2, "bob", "b2", "")
    };
    s.apply_messages(
        "alice",
        &[
            msg(&c, 1, "bob", "b1", "original"),
            file,
            rel(&c, 3, "mallory", "edit", json!({"target": "m1", "text": "forged"})),
            rel(&c, 4, "bob", "edit", json!({"target": "m2", "text": "renamed"})),
        ],
    )
    .unwrap();
    assert_eq!(by_mid(&s, &c, "m1").text(), Some("original"));
    assert_eq!(by_mid(&s, &c, "m2").text(), Some("report.pdf"));
}

/// A version-2 store of a client that talked to a v1.1 server holds
/// relation messages as plain messages; after migrating they apply to
/// their targets and leave the message list and the search index.
#[test]
fn a_version_2_store_with_relation_messages_migrates_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE);
    {
        let c = create_at_version(&path, 2).unwrap();
        c.execute_batch(
            r#"
            INSERT INTO settings (key, value) VALUES ('user', 'alice');
            INSERT INTO conversations (conv, kind, channel, synced_seq, last_seq) VALUES ('ch:lobby', 'channel', 'lobby', 4, 4);
            INSERT INTO messages (conv, seq, mid, cid, sender, target, kind, body, ts, status, created) VALUES
              ('ch:lobby', 1, 'm1', 'b1', 'bob', '{"channel":"lobby"}', 'text', '{"text":"draft words"}', 5, 'received', 5),
              ('ch:lobby', 2, 'm2', 'b2', 'bob', '{"channel":"lobby"}', 'edit', '{"target":"m1","text":"polished words"}', 6, 'received', 6),
              ('ch:lobby', 3, 'm3', 'c3', 'carol', '{"channel":"lobby"}', 'reaction', '{"target":"m1","key":"👍","on":true}', 7, 'received', 7),
              ('ch:lobby', 4, 'm4', 'b4', 'bob', '{"channel":"lobby"}', 'text', '{"text":"bye"}', 8, 'received', 8);
            "#,
        )
        .unwrap();
    }
    let s = Store::open(&path).unwrap();
    let c = Conv::channel("lobby");
    assert_eq!(seqs(&s, &c), [Some(1), Some(4)], "relations left the message list");
    let m = by_mid(&s, &c, "m1");
    assert_eq!((m.text(), m.edited), (Some("polished words"), Some(6)));
    assert_eq!(m.reactions["👍"], ["carol"]);
    assert_eq!(hits(&s, "polished"), ["m1"]);
    assert!(hits(&s, "draft").is_empty());
    assert_eq!(fts_rows(&s, "polished"), 1, "the edit itself is not indexed");
    assert_eq!(s.conversation("alice", &c).unwrap().unwrap().unread, 2);
}

#[test]
fn an_own_message_confirmed_by_a_v1_1_page_shows_what_the_server_serves() {
    let (_d, s) = open();
    s.claim_user("alice").unwrap();
    let c = Conv::dm("alice", "bob");
    s.enqueue(&new_msg(&c, "c1", "first words")).unwrap();
    // The ok was lost; meanwhile another device of alice edited it.
    let mut served = msg(&c, 1, "alice", "c1", "better words");
    served.edited = Some(1002);
    let page = [served, rel(&c, 2, "alice", "edit", json!({"target": "m1", "text": "better words"}))];
    let a = s.apply_page("alice", &page).unwrap();
    assert_eq!(a.updated.len(), 1);
    let m = by_mid(&s, &c, "m1");
    assert_eq!((m.text(), m.edited, m.status), (Some("better words"), Some(1002), DeliveryStatus::Sent));
    assert_eq!(hits(&s, "better"), ["m1"]);
    assert!(hits(&s, "first").is_empty());
    assert!(s.outbox_cids().unwrap().is_empty());
}

/// A peer's file name is shown made safe: no bidi override that makes
/// `gpj.exe` read as `exe.jpg`, no path, no hidden-file dot.
#[test]
fn peer_file_names_are_shown_made_safe() {
    let (_d, s) = open();
    let c = Conv::channel("lobby");
    let file = |seq: u64, name: &str| Msg {
        kind: "file".into(),
        body: json!({"media": "m_f", "name": name}).as_object().unwrap().clone(),
        ..msg(&c, seq, "mallory", &format!("f{seq}"), "")
    };
    s.apply_messages("alice", &[file(1, "photo\u{202E}gpj.exe"), file(2, "../../.bashrc")]).unwrap();
    assert_eq!(by_mid(&s, &c, "m1").body["name"], "photogpj.exe");
    assert_eq!(by_mid(&s, &c, "m2").body["name"], "_.._.bashrc");
}
