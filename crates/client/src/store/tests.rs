use super::*;
use courier_proto::SendOk;
use serde_json::json;

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
