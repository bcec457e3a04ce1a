//! Fixtures shared by the store's unit tests: a fresh store, server
//! messages and relations as a history page would carry them, own messages
//! to queue, and short reads of what the store shows.

use super::{NewMessage, Store};
use crate::model::MessageView;
use courier_proto::{Conv, Msg, Target};
use serde_json::{Value, json};

/// A text message of `conv` as the server sends it.
pub(super) fn msg(conv: &Conv, seq: u64, from: &str, cid: &str, text: &str) -> Msg {
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

/// A text message alice is about to queue for bob.
pub(super) fn new_msg(conv: &Conv, cid: &str, text: &str) -> NewMessage {
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

/// A fresh store in a temporary directory (kept alive by the guard).
pub(super) fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open_dir(dir.path()).unwrap();
    (dir, s)
}

/// The seqs of the content messages of `conv` in order (`None`: not sent yet).
pub(super) fn seqs(s: &Store, conv: &Conv) -> Vec<Option<u64>> {
    s.all_messages(conv).unwrap().iter().map(|m| m.seq).collect()
}

/// A relation (`edit`, `recall`, `reaction`, `pin`) as the server sends it.
pub(super) fn rel(conv: &Conv, seq: u64, from: &str, kind: &str, body: Value) -> Msg {
    Msg {
        kind: kind.into(),
        body: body.as_object().unwrap().clone(),
        ..msg(conv, seq, from, &format!("r{seq}"), "")
    }
}

/// A stored message by server id; it must exist.
pub(super) fn by_mid(s: &Store, conv: &Conv, mid: &str) -> MessageView {
    s.message_by_mid(conv, mid).unwrap().unwrap()
}

/// The mids that a search for `q` finds, newest first.
pub(super) fn hits(s: &Store, q: &str) -> Vec<String> {
    s.search(q, 10).unwrap().into_iter().map(|m| m.mid.unwrap()).collect()
}

/// How many rows of the full-text index match `q` (whatever they belong to).
pub(super) fn fts_rows(s: &Store, q: &str) -> i64 {
    s.with(|c| {
        Ok(c.query_row("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH ?1", [q], |r| r.get(0))?)
    })
    .unwrap()
}

/// A relation alice is about to queue.
pub(super) fn new_rel(conv: &Conv, cid: &str, kind: &str, body: Value) -> NewMessage {
    NewMessage { kind: kind.into(), body: body.as_object().unwrap().clone(), ..new_msg(conv, cid, "") }
}
