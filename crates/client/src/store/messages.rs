//! Reading messages: history pages (content only, with own unsent messages
//! after the newest page), single messages by cid or server id, and the
//! pinned messages of a conversation.

use super::relations::{self, RELATION_KINDS_SQL};
use super::rows::{MSG_COLS, message_by_id, msg_from_row, view};
use super::{Result, Store};
use crate::model::MessageView;
use courier_proto::Conv;
use rusqlite::{OptionalExtension, params};

impl Store {
    /// A page of a conversation from the local store, ascending: the
    /// `limit` newest messages with seq below `before` (all when `None`),
    /// followed — on the newest page — by own messages not yet stored by the
    /// server, in the order they were written. Content messages only:
    /// relations (edits, recalls, reactions, pins) show on their targets.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn history(&self, conv: &Conv, before: Option<u64>, limit: u32) -> Result<Vec<MessageView>> {
        self.with(|c| {
            let sql = format!(
                "SELECT {MSG_COLS} FROM messages m JOIN conversations c ON c.conv = m.conv
                 WHERE m.conv = ?1 AND m.seq IS NOT NULL AND m.seq < ?2 AND m.kind NOT IN {RELATION_KINDS_SQL}
                 ORDER BY m.seq DESC LIMIT ?3"
            );
            let before_v = before.map(|b| b as i64).unwrap_or(i64::MAX);
            let mut st = c.prepare_cached(&sql)?;
            let raws = st
                .query_map(params![conv.to_string(), before_v, limit as i64], msg_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut out = raws.into_iter().rev().map(view).collect::<Result<Vec<_>>>()?;
            if before.is_none() {
                let sql = format!(
                    "SELECT {MSG_COLS} FROM messages m JOIN conversations c ON c.conv = m.conv
                     WHERE m.conv = ?1 AND m.seq IS NULL AND m.kind NOT IN {RELATION_KINDS_SQL} ORDER BY m.id"
                );
                let mut st = c.prepare_cached(&sql)?;
                for raw in st.query_map([conv.to_string()], msg_from_row)? {
                    out.push(view(raw?)?);
                }
            }
            Ok(out)
        })
    }

    /// Every stored message of a conversation in seq order (tests, export).
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn all_messages(&self, conv: &Conv) -> Result<Vec<MessageView>> {
        self.history(conv, None, u32::MAX)
    }

    /// An own message by cid.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn message_by_cid(&self, from: &str, cid: &str) -> Result<Option<MessageView>> {
        self.with(|c| {
            let id: Option<i64> = c
                .query_row(
                    "SELECT id FROM messages WHERE sender = ?1 AND cid = ?2",
                    params![from, cid],
                    |r| r.get(0),
                )
                .optional()?;
            id.map(|id| message_by_id(c, id)).transpose()
        })
    }

    /// A stored message of `conv` by its server id (content or relation).
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn message_by_mid(&self, conv: &Conv, mid: &str) -> Result<Option<MessageView>> {
        self.with(|c| {
            let id: Option<i64> = c
                .prepare_cached("SELECT id FROM messages WHERE conv = ?1 AND mid = ?2")?
                .query_row(params![conv.to_string(), mid], |r| r.get(0))
                .optional()?;
            id.map(|id| message_by_id(c, id)).transpose()
        })
    }

    /// The pinned messages of a conversation that are stored locally,
    /// oldest pin first.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn pinned(&self, conv: &Conv) -> Result<Vec<MessageView>> {
        self.with(|c| {
            let conv = conv.to_string();
            let sql = format!(
                "SELECT id FROM messages WHERE conv = ?1 AND mid = ?2 AND kind NOT IN {RELATION_KINDS_SQL}"
            );
            let mut st = c.prepare_cached(&sql)?;
            let mut out = Vec::new();
            for mid in relations::pins(c, &conv)? {
                if let Some(id) = st.query_row(params![conv, mid], |r| r.get::<_, i64>(0)).optional()? {
                    out.push(message_by_id(c, id)?);
                }
            }
            Ok(out)
        })
    }
}
