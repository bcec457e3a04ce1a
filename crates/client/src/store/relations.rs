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
}

/// One relation row that applies on top of the base.
struct Relation {
    kind: String,
    sender: String,
    body: Map<String, Value>,
    /// The server's ts, or the local creation time for a pending one.
    at: i64,
}

fn load_target(c: &Connection, conv: &str, mid: &str) -> Result<Option<Target>> {
    let sql = format!(
        "SELECT id, sender, kind, coalesce(base_body, body), base_agg, coalesce(agg_seq, seq, 0),
                body, edited, reactions, recalled, pinned
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
            ))
        })
        .optional()?;
    let Some((id, sender, kind, base_body, base_agg, agg_seq, body, edited, reactions, recalled, pinned)) =
        row
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
    }))
}

fn load_relations(c: &Connection, conv: &str, mid: &str, after: i64) -> Result<Vec<Relation>> {
    let mut st = c.prepare_cached(
        "SELECT kind, sender, body, coalesce(ts, created) FROM messages
         WHERE conv = ?1 AND rel_target = ?2
           AND (seq > ?3 OR (seq IS NULL AND status = 'pending' AND kind <> 'recall'))
         ORDER BY seq IS NULL, seq, id",
    )?;
    let rows = st
        .query_map(params![conv, mid, after], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, i64>(3)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|(kind, sender, body, at)| Ok(Relation { kind, sender, body: serde_json::from_str(&body)?, at }))
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
    let Some(t) = load_target(tx, conv, mid)? else {
        return Ok(None);
    };
    let mut agg = t.base_agg.clone();
    let mut text: Option<String> = None;
    for r in load_relations(tx, conv, mid, t.agg_seq)? {
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
        let mut b = t.base_body.clone();
        if let Some(s) = text {
            b.insert("text".into(), Value::String(s));
        }
        b
    };
    let changed = body != t.body || agg != t.shown;
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
    #[test]
    fn the_sql_list_names_every_relation_kind() {
        let listed: Vec<&str> = super::RELATION_KINDS_SQL
            .trim_matches(['(', ')'])
            .split(", ")
            .map(|k| k.trim_matches('\''))
            .collect();
        assert_eq!(listed, courier_proto::request::RELATION_KINDS);
    }
}
