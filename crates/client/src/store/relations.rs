//! Protocol v1.1 relations — `edit`, `recall`, `reaction`, `pin` — applied
//! to the content message they target.
//!
//! A relation is stored as a message (it has a seq, and gap filling needs
//! contiguous seqs) but is never shown as one. Its target keeps what it was
//! sent or served with (`base_body`; `base_agg`, the aggregates a v1.1
//! server serves in history, reflecting every relation up to `agg_seq`),
//! and what it shows (`body`, `edited`, `reactions`, `recalled`, `pinned`)
//! is always recomputed from that base plus the stored relation rows after
//! `agg_seq` in seq order, then this user's pending ones in the order
//! written. Deriving instead of patching makes applying idempotent and
//! independent of arrival order (a relation may arrive before its target
//! while a gap is filled), and reverts a refused optimistic relation by
//! recomputing without it.
//!
//! Folding every relation again for each new one is quadratic for a message
//! with thousands of reactions, so a target also records how far what it
//! shows is folded (`rel_seq`: every stored relation up to that seq, and no
//! pending one). Relations that arrive from the server after that point are
//! folded onto what it shows; anything else (a relation older than the fold
//! point, a pending one, a changed base) folds from the base again.
//!
//! A recall counts only once the server stored it (it destroys local data):
//! the target's body, its edits' texts and its cached media are dropped.

use super::Result;
use courier_proto::Msg;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The relation kinds as an SQL list, for `kind IN …` / `kind NOT IN …`.
/// Kept equal to [`courier_proto::request::RELATION_KINDS`] by a test.
pub(crate) const RELATION_KINDS_SQL: &str = "('edit', 'recall', 'reaction', 'pin')";

/// The aggregates of a content message: as served (`base_agg`) or as shown.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Aggregates {
    /// When the newest edit was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited: Option<i64>,
    /// Per key, the users with that reaction on, in the order they added it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reactions: BTreeMap<String, Vec<String>>,
    /// Recalled by its sender or a moderator.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recalled: bool,
    /// When it was pinned, while pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<i64>,
}

impl Aggregates {
    /// The aggregates a server sent with `m` (a v1.1 history page), as the
    /// `base_agg` JSON; `None` when there are none.
    pub(crate) fn served_json(m: &Msg) -> Result<Option<String>> {
        let a = Aggregates {
            edited: m.edited,
            reactions: m
                .reactions
                .iter()
                .filter(|(_, us)| !us.is_empty())
                .map(|(k, us)| (k.clone(), us.clone()))
                .collect(),
            recalled: m.recalled,
            pinned: m.pinned,
        };
        Ok(if a == Aggregates::default() { None } else { Some(serde_json::to_string(&a)?) })
    }

    fn react(&mut self, key: &str, user: &str, on: bool) {
        let users = self.reactions.entry(key.to_owned()).or_default();
        let at = users.iter().position(|u| u == user);
        match (on, at) {
            (true, None) => users.push(user.to_owned()),
            (false, Some(i)) => {
                users.remove(i);
            }
            _ => {}
        }
        if users.is_empty() {
            self.reactions.remove(key);
        }
    }
}

/// The reactions column: JSON, or NULL when there are none.
pub(crate) fn reactions_json(r: &BTreeMap<String, Vec<String>>) -> Result<Option<String>> {
    Ok(if r.is_empty() { None } else { Some(serde_json::to_string(r)?) })
}

/// The target row as stored.
struct Target {
    id: i64,
    sender: String,
    kind: String,
    base_body: Map<String, Value>,
    base_agg: Aggregates,
    agg_seq: i64,
    body: Map<String, Value>,
    shown: Aggregates,
    /// What it shows folds every stored relation up to this seq and no
    /// pending one (`None`: unknown, or a pending one is folded).
    rel_seq: Option<i64>,
}

/// One relation row that applies on top of the base.
struct Relation {
    kind: String,
    sender: String,
    body: Map<String, Value>,
    /// The server's ts, or the local creation time for a pending one.
    at: i64,
    /// Its seq (`None` while pending).
    seq: Option<i64>,
}

fn load_target(c: &Connection, conv: &str, mid: &str) -> Result<Option<Target>> {
    let sql = format!(
        "SELECT id, sender, kind, coalesce(base_body, body), base_agg, coalesce(agg_seq, seq, 0),
                body, edited, reactions, recalled, pinned, rel_seq
         FROM messages WHERE conv = ?1 AND mid = ?2 AND kind NOT IN {RELATION_KINDS_SQL}"
    );
    type Row = (
        i64,
        String,
        String,
        String,
        Option<String>,
        i64,
        String,
        Option<i64>,
        Option<String>,
        bool,
        Option<i64>,
        Option<i64>,
    );
    let row: Option<Row> = c
        .prepare_cached(&sql)?
        .query_row(params![conv, mid], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
                r.get(9)?,
                r.get(10)?,
                r.get(11)?,
            ))
        })
        .optional()?;
    let Some((
        id,
        sender,
        kind,
        base_body,
        base_agg,
        agg_seq,
        body,
        edited,
        reactions,
        recalled,
        pinned,
        rel_seq,
    )) = row
    else {
        return Ok(None);
    };
    Ok(Some(Target {
        id,
        sender,
        kind,
        base_body: serde_json::from_str(&base_body)?,
        base_agg: base_agg.as_deref().map(serde_json::from_str).transpose()?.unwrap_or_default(),
        agg_seq,
        body: serde_json::from_str(&body)?,
        shown: Aggregates {
            edited,
            reactions: reactions.as_deref().map(serde_json::from_str).transpose()?.unwrap_or_default(),
            recalled,
            pinned,
        },
        rel_seq,
    }))
}

/// The relations of `mid` stored after seq `after`, in seq order, then,
/// unless `stored_only`, this user's pending ones (but a recall) in the
/// order written.
fn load_relations(
    c: &Connection,
    conv: &str,
    mid: &str,
    after: i64,
    stored_only: bool,
) -> Result<Vec<Relation>> {
    let mut st = c.prepare_cached(if stored_only {
        "SELECT kind, sender, body, coalesce(ts, created), seq FROM messages
         WHERE conv = ?1 AND rel_target = ?2 AND seq > ?3
         ORDER BY seq"
    } else {
        "SELECT kind, sender, body, coalesce(ts, created), seq FROM messages
         WHERE conv = ?1 AND rel_target = ?2
           AND (seq > ?3 OR (seq IS NULL AND status = 'pending' AND kind <> 'recall'))
         ORDER BY seq IS NULL, seq, id"
    })?;
    let rows = st
        .query_map(params![conv, mid, after], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Option<i64>>(4)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    #[cfg(test)]
    tests::FOLDED.with(|n| n.set(n.get() + rows.len()));
    rows.into_iter()
        .map(|(kind, sender, body, at, seq)| {
            Ok(Relation { kind, sender, body: serde_json::from_str(&body)?, at, seq })
        })
        .collect()
}

/// What a recompute found.
pub(crate) struct Recomputed {
    /// The target's row id.
    pub id: i64,
    /// Whether what it shows changed.
    pub changed: bool,
}

/// Recomputes what the content message `mid` of `conv` shows from its base
/// and its relation rows, writing it when it changed. Cached media files
/// that a recall makes obsolete are added to `files` (for deletion after
/// the transaction commits). `None` when the target is not stored (yet).
///
/// # Errors
/// On SQLite failure or malformed stored JSON.
pub(crate) fn recompute(
    tx: &Connection,
    conv: &str,
    mid: &str,
    files: &mut Vec<PathBuf>,
) -> Result<Option<Recomputed>> {
    recompute_since(tx, conv, mid, None, files)
}

/// [`recompute`] after relation rows of seq `since` and later were stored
/// (and nothing else changed): when what the target shows is folded up to
/// before `since`, only the relations after that point are folded onto it.
/// `None` (or a fold point at or after `since`) folds everything again.
///
/// # Errors
/// As [`recompute`].
pub(crate) fn recompute_since(
    tx: &Connection,
    conv: &str,
    mid: &str,
    since: Option<i64>,
    files: &mut Vec<PathBuf>,
) -> Result<Option<Recomputed>> {
    let Some(t) = load_target(tx, conv, mid)? else {
        return Ok(None);
    };
    let folded = t.rel_seq.filter(|r| since.is_some_and(|s| s > *r));
    // From what it shows (its body holds the newest edit so far), or from
    // its base.
    let (mut agg, start_body, after, relations) = match folded {
        Some(r) => (t.shown.clone(), &t.body, r, load_relations(tx, conv, mid, r, true)?),
        None => {
            (t.base_agg.clone(), &t.base_body, t.agg_seq, load_relations(tx, conv, mid, t.agg_seq, false)?)
        }
    };
    let mut rel_seq = Some(after);
    let mut text: Option<String> = None;
    for r in relations {
        rel_seq = match (rel_seq, r.seq) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
        let on = r.body.get("on").and_then(Value::as_bool);
        match r.kind.as_str() {
            // Only the sender may edit, and only text (the server enforces
            // it; this keeps a misbehaving peer's edit from showing).
            "edit" if t.kind == "text" && r.sender == t.sender => {
                if let Some(s) = r.body.get("text").and_then(Value::as_str).filter(|s| !s.is_empty()) {
                    text = Some(s.to_owned());
                    agg.edited = Some(r.at);
                }
            }
            "recall" => agg.recalled = true,
            "reaction" => {
                if let (Some(key), Some(on)) = (r.body.get("key").and_then(Value::as_str), on) {
                    agg.react(key, &r.sender, on);
                }
            }
            // Pinning a pinned message keeps the first pin (and its place).
            "pin" => match on {
                Some(true) => agg.pinned = agg.pinned.or(Some(r.at)),
                Some(false) => agg.pinned = None,
                None => {}
            },
            _ => {}
        }
    }
    // A recall takes everything: text, edits, reactions and the pin.
    let body = if agg.recalled {
        agg.edited = None;
        agg.reactions.clear();
        agg.pinned = None;
        Map::new()
    } else {
        let mut b = start_body.clone();
        if let Some(s) = text {
            b.insert("text".into(), Value::String(s));
        }
        b
    };
    let changed = body != t.body || agg != t.shown;
    if rel_seq != t.rel_seq {
        tx.prepare_cached("UPDATE messages SET rel_seq = ?2 WHERE id = ?1")?
            .execute(params![t.id, rel_seq])?;
    }
    if changed {
        tx.prepare_cached(
            "UPDATE messages SET body = ?2, edited = ?3, reactions = ?4, recalled = ?5, pinned = ?6 WHERE id = ?1",
        )?
        .execute(params![
            t.id,
            serde_json::to_string(&body)?,
            agg.edited,
            reactions_json(&agg.reactions)?,
            agg.recalled,
            agg.pinned
        ])?;
    }
    if agg.recalled && !t.base_body.is_empty() {
        forget_recalled(tx, conv, mid, &t, files)?;
    }
    Ok(Some(Recomputed { id: t.id, changed }))
}

/// Drops what a recall takes away for good: the original body, the texts
/// of the edits, and the cached media file.
fn forget_recalled(
    tx: &Connection,
    conv: &str,
    mid: &str,
    t: &Target,
    files: &mut Vec<PathBuf>,
) -> Result<()> {
    if let Some(media) = t.base_body.get("media").and_then(Value::as_str) {
        let path: Option<String> = tx
            .query_row("SELECT path FROM media_cache WHERE media = ?1", [media], |r| r.get(0))
            .optional()?;
        files.extend(path.map(PathBuf::from));
        tx.execute("DELETE FROM media_cache WHERE media = ?1", [media])?;
    }
    let base = Aggregates { recalled: true, ..Aggregates::default() };
    tx.execute(
        "UPDATE messages SET base_body = '{}', base_agg = ?2 WHERE id = ?1",
        params![t.id, serde_json::to_string(&base)?],
    )?;
    tx.execute(
        "UPDATE messages SET body = json_object('target', rel_target)
         WHERE conv = ?1 AND rel_target = ?2 AND kind = 'edit'",
        params![conv, mid],
    )?;
    Ok(())
}

/// Whether any relation row points at `mid` of `conv`.
pub(crate) fn has_relations(c: &Connection, conv: &str, mid: &str) -> Result<bool> {
    Ok(c.prepare_cached("SELECT 1 FROM messages WHERE conv = ?1 AND rel_target = ?2 LIMIT 1")?
        .query_row(params![conv, mid], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Recomputes every target that has relation rows (after a migration that
/// found relation messages stored by an older client).
///
/// # Errors
/// As [`recompute`].
pub(crate) fn recompute_all(tx: &Connection, files: &mut Vec<PathBuf>) -> Result<()> {
    let targets: Vec<(String, String)> = tx
        .prepare("SELECT DISTINCT conv, rel_target FROM messages WHERE rel_target IS NOT NULL")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (conv, mid) in targets {
        recompute(tx, &conv, &mid, files)?;
    }
    Ok(())
}

/// The pinned mids of a conversation, oldest pin first: the list of the
/// last v1.1 sync, then the pin rows after it (and this user's pending
/// ones) applied in order; a recall unpins.
///
/// # Errors
/// On SQLite failure or malformed stored JSON.
pub(crate) fn pins(c: &Connection, conv: &str) -> Result<Vec<String>> {
    let (list, after): (Option<String>, i64) = c
        .prepare_cached("SELECT pins, pins_seq FROM conversations WHERE conv = ?1")?
        .query_row([conv], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .unwrap_or((None, 0));
    let mut pins: Vec<String> = list.as_deref().map(serde_json::from_str).transpose()?.unwrap_or_default();
    let mut st = c.prepare_cached(
        "SELECT kind, rel_target, body FROM messages
         WHERE conv = ?1 AND kind IN ('pin', 'recall') AND rel_target IS NOT NULL
           AND (seq > ?2 OR (seq IS NULL AND status = 'pending' AND kind = 'pin'))
         ORDER BY seq IS NULL, seq, id",
    )?;
    let rows = st
        .query_map(params![conv, after], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for (kind, mid, body) in rows {
        let body: Map<String, Value> = serde_json::from_str(&body)?;
        match (kind.as_str(), body.get("on").and_then(Value::as_bool)) {
            ("pin", Some(true)) if !pins.contains(&mid) => pins.push(mid),
            ("pin", Some(false)) | ("recall", _) => pins.retain(|p| *p != mid),
            _ => {}
        }
    }
    Ok(pins)
}

#[cfg(test)]
mod tests {
    use crate::model::DeliveryStatus;
    use crate::model::MessageView;
    use crate::store::Store;
    use crate::store::rows::message_by_id;
    use crate::store::test_support::{by_mid, fts_rows, hits, msg, new_rel, open, rel};
    use courier_proto::{Conv, Msg, SendOk, SyncConv};
    use serde_json::json;
    use std::cell::Cell;

    thread_local! {
        /// Relation rows read to fold them, on this thread.
        pub(super) static FOLDED: Cell<usize> = const { Cell::new(0) };
    }

    /// What `m1` of `lobby` shows, and what a fold of every relation from
    /// its base would show (computed in a transaction rolled back).
    fn shown_and_refolded(s: &Store) -> (MessageView, MessageView) {
        let c = Conv::channel("lobby");
        let shown = by_mid(s, &c, "m1");
        let refolded = s
            .with(|conn| {
                let tx = conn.transaction()?;
                let r = super::recompute(&tx, "ch:lobby", "m1", &mut Vec::new())?.unwrap();
                message_by_id(&tx, r.id)
            })
            .unwrap();
        (shown, refolded)
    }

    #[test]
    fn folding_new_relations_shows_what_folding_every_relation_again_shows() {
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};
        let users = ["alice", "bob", "carol", "dave"];
        for seed in 0..12 {
            let mut rng = StdRng::seed_from_u64(seed);
            let (_d, s) = open();
            let c = Conv::channel("lobby");
            s.apply_messages("alice", &[msg(&c, 1, "bob", "b1", "popular")]).unwrap();
            // The server's relations of m1: mostly reactions switched on and
            // off by several users (alice's own among them), some edits and pins.
            let rels: Vec<Msg> = (2..150u64)
                .map(|seq| {
                    let user = users[rng.random_range(0..users.len())];
                    match rng.random_range(0..20) {
                        0 => rel(&c, seq, "bob", "edit", json!({"target": "m1", "text": format!("v{seq}")})),
                        1 => rel(&c, seq, user, "pin", json!({"target": "m1", "on": rng.random_bool(0.5)})),
                        _ => {
                            let key = ["👍", "🎉"][rng.random_range(0..2)];
                            let on = rng.random_bool(0.6);
                            rel(&c, seq, user, "reaction", json!({"target": "m1", "key": key, "on": on}))
                        }
                    }
                })
                .collect();
            let (mut at, mut queued, mut late, mut failed) = (0, 0, Vec::new(), 0);
            while at < rels.len() {
                // Alice's own relations are queued (pending) a while before
                // the server's copy comes back; some of hers are refused.
                while queued < rels.len() && queued < at + 8 {
                    let r = &rels[queued];
                    if r.from == "alice" {
                        let body = serde_json::Value::Object(r.body.clone());
                        s.enqueue(&new_rel(&c, &r.cid, &r.kind, body)).unwrap();
                    }
                    queued += 1;
                }
                if rng.random_bool(0.05) {
                    let cid = format!("f{failed}");
                    failed += 1;
                    s.enqueue(&new_rel(
                        &c,
                        &cid,
                        "reaction",
                        json!({"target": "m1", "key": "👍", "on": true}),
                    ))
                    .unwrap();
                    s.mark_failed("alice", &cid, "refused").unwrap();
                }
                let n = rng.random_range(1..4).min(rels.len() - at);
                let batch = &rels[at..at + n];
                at += n;
                // Some pages come late, after newer relations (a gap filled).
                if rng.random_bool(0.15) {
                    late.extend_from_slice(batch);
                } else {
                    s.apply_messages("alice", batch).unwrap();
                }
                if !late.is_empty() && rng.random_bool(0.2) {
                    s.apply_messages("alice", &std::mem::take(&mut late)).unwrap();
                }
                let (shown, refolded) = shown_and_refolded(&s);
                assert_eq!(shown, refolded, "seed {seed}, after seq {}", rels[at - 1].seq);
            }
            s.apply_messages("alice", &late).unwrap();
            let (shown, refolded) = shown_and_refolded(&s);
            assert_eq!(shown, refolded, "seed {seed}, at the end");
        }
    }

    #[test]
    fn each_new_reaction_reads_only_the_relations_after_the_fold_point() {
        let (_d, s) = open();
        let c = Conv::channel("lobby");
        s.apply_messages("alice", &[msg(&c, 1, "bob", "b1", "popular")]).unwrap();
        FOLDED.with(|n| n.set(0));
        for seq in 2..=501u64 {
            let user = ["bob", "carol", "dave"][seq as usize % 3];
            let r = rel(&c, seq, user, "reaction", json!({"target": "m1", "key": "👍", "on": seq % 2 == 0}));
            s.apply_messages("alice", &[r]).unwrap();
        }
        // Folding everything again for each would read 1 + 2 + … + 500.
        assert_eq!(FOLDED.with(Cell::get), 500, "one row per reaction");
        // And SQLite finds them by the index, not by scanning the others.
        let plan: Vec<String> = s
            .with(|c| {
                let mut st = c.prepare(
                    "EXPLAIN QUERY PLAN SELECT kind FROM messages
                     WHERE conv = 'ch:lobby' AND rel_target = 'm1' AND seq > 400 ORDER BY seq",
                )?;
                let rows = st.query_map([], |r| r.get::<_, String>(3))?;
                Ok(rows.collect::<rusqlite::Result<_>>()?)
            })
            .unwrap();
        assert_eq!(
            plan,
            ["SEARCH messages USING INDEX messages_by_target (conv=? AND rel_target=? AND seq>?)"]
        );
        let (shown, refolded) = shown_and_refolded(&s);
        assert_eq!(shown, refolded);
    }

    /// A measurement, not a test: run with
    /// `cargo test -p courier-client --lib reactions_5000 -- --ignored --nocapture`.
    #[test]
    #[ignore = "measurement; run explicitly"]
    fn reactions_5000_arriving_one_by_one() {
        let (_d, s) = open();
        let c = Conv::channel("lobby");
        s.apply_messages("alice", &[msg(&c, 1, "bob", "b1", "popular")]).unwrap();
        let users = ["bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan"];
        let keys = ["👍", "🎉", "❤️"];
        let t = std::time::Instant::now();
        for seq in 2..5002u64 {
            let (user, key) = (users[seq as usize % users.len()], keys[(seq as usize / 8) % keys.len()]);
            let on = seq % 3 != 0;
            let r = rel(&c, seq, user, "reaction", json!({"target": "m1", "key": key, "on": on}));
            s.apply_messages("alice", &[r]).unwrap();
            if seq % 1000 == 1 {
                println!("{:>5} reactions: {:.2?}", seq - 1, t.elapsed());
            }
        }
        println!("5000 reactions applied one by one in {:.2?}", t.elapsed());
        println!("{:?}", by_mid(&s, &c, "m1").reactions);
    }

    #[test]
    fn the_sql_list_names_every_relation_kind() {
        let listed: Vec<&str> = super::RELATION_KINDS_SQL
            .trim_matches(['(', ')'])
            .split(", ")
            .map(|k| k.trim_matches('\''))
            .collect();
        assert_eq!(listed, courier_proto::request::RELATION_KINDS);
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
            body: json!({"media": "m_cat", "mime": "image/png", "name": "cat.png"})
                .as_object()
                .unwrap()
                .clone(),
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
        assert_eq!(
            s.conversation("alice", &c).unwrap().unwrap().unread,
            0,
            "recalled messages are not unread"
        );
    }

    #[test]
    fn reactions_aggregate_per_key_by_each_users_latest_reaction() {
        let (_d, s) = open();
        let c = Conv::channel("lobby");
        let r = |seq, from, key, on| {
            rel(&c, seq, from, "reaction", json!({"target": "m1", "key": key, "on": on}))
        };
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
        assert_eq!(
            first.text(),
            Some("hello there, all"),
            "the newest edit by seq wins, not the last to arrive"
        );
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
    fn an_optimistic_reaction_shows_at_once_and_is_undone_when_refused() {
        let (_d, s) = open();
        s.claim_user("alice").unwrap();
        let c = Conv::dm("alice", "bob");
        s.apply_messages("alice", &[msg(&c, 1, "bob", "b1", "cake?")]).unwrap();
        let row = s
            .enqueue(&new_rel(&c, "r1", "reaction", json!({"target": "m1", "key": "🍰", "on": true})))
            .unwrap();
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
        assert_eq!(
            s.conversation("alice", &c).unwrap().unwrap().pins,
            ["m1"],
            "a v1 server's rows say nothing"
        );
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
}
