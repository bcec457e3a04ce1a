//! The outbox: own messages queued until the server stores them — queuing
//! (durably, with a relation applied at once as pending), the per-conversation
//! queue heads the sender works from, and the outcome of each attempt (sent,
//! failed, retried, deleted unsent).

use super::conversations::{bump_last, ensure_conv, has_left};
use super::cursors::advance_synced;
use super::relations;
use super::rows::message_by_id;
use super::{Result, Store, StoreError};
use crate::model::{MessageView, now_ms};
use courier_proto::{Conv, SendOk, Target, is_relation_kind};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde_json::{Map, Value};
use std::path::PathBuf;

/// A message about to be queued by [`Store::enqueue`].
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// The conversation it belongs to.
    pub conv: Conv,
    /// Client message id (fresh ULID).
    pub cid: String,
    /// The sender (this user).
    pub from: String,
    /// The target as addressed.
    pub to: Target,
    /// Message kind.
    pub kind: String,
    /// Body.
    pub body: Map<String, Value>,
    /// Optional reply target.
    pub reply_to: Option<String>,
}

/// The oldest unsent message of a conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxItem {
    /// Outbox row id (FIFO order).
    pub id: i64,
    /// How many times it was tried.
    pub attempts: u32,
    /// The message.
    pub message: MessageView,
}

impl Store {
    /// Queues a message: the message row (`pending`) and its outbox row in
    /// one transaction. A relation (`edit`, `reaction`, `pin`) applies to
    /// its target at once, as pending; a `recall` only once the server
    /// stored it.
    ///
    /// # Errors
    /// [`StoreError::LeftChannel`] for a channel the user left (see
    /// [`Store::forget_conversation`]); SQLite failure (e.g. a cid reused by
    /// the same sender).
    pub fn enqueue(&self, m: &NewMessage) -> Result<MessageView> {
        Ok(self.enqueue_many(std::slice::from_ref(m))?.remove(0))
    }

    /// Queues several messages in one durable transaction (one fsync), in
    /// order: all or none.
    ///
    /// # Errors
    /// As [`Store::enqueue`].
    pub fn enqueue_many(&self, msgs: &[NewMessage]) -> Result<Vec<MessageView>> {
        self.durable_tx(|tx| msgs.iter().map(|m| enqueue_one(tx, m)).collect())
    }

    /// Conversations that have queued messages, oldest queue head first.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn outbox_convs(&self) -> Result<Vec<Conv>> {
        self.with(|c| {
            let mut st =
                c.prepare_cached("SELECT conv, min(id) AS first FROM outbox GROUP BY conv ORDER BY first")?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            let mut out = Vec::new();
            for r in rows {
                out.extend(Conv::parse(&r?));
            }
            Ok(out)
        })
    }

    /// The oldest queued message of `conv`.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn outbox_head(&self, conv: &Conv) -> Result<Option<OutboxItem>> {
        self.with(|c| {
            let head: Option<(i64, i64, u32)> = c
                .prepare_cached(
                    "SELECT id, message_id, attempts FROM outbox WHERE conv = ?1 ORDER BY id LIMIT 1",
                )?
                .query_row([conv.to_string()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?;
            match head {
                None => Ok(None),
                Some((id, mid, attempts)) => {
                    Ok(Some(OutboxItem { id, attempts, message: message_by_id(c, mid)? }))
                }
            }
        })
    }

    /// Cids of every queued message, oldest first.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn outbox_cids(&self) -> Result<Vec<String>> {
        self.with(|c| {
            let mut st = c.prepare_cached(
                "SELECT m.cid FROM outbox o JOIN messages m ON m.id = o.message_id ORDER BY o.id",
            )?;
            let rows = st.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
        })
    }

    /// Records a failed attempt of an outbox row.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn note_attempt(&self, outbox_id: i64, error: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
                params![outbox_id, error],
            )?;
            Ok(())
        })
    }

    /// Marks the message `cid` of `from` as stored by the server, removes
    /// its outbox row and advances the conversation's cursors. Returns the
    /// message as it is now — for a relation, its target (recomputed; a
    /// recall takes effect here).
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn mark_sent(&self, from: &str, cid: &str, ok: &SendOk) -> Result<Option<MessageView>> {
        self.tx_files(|tx, files| {
            let id: Option<i64> = tx
                .query_row(
                    "SELECT id FROM messages WHERE sender = ?1 AND cid = ?2",
                    params![from, cid],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(id) = id else { return Ok(None) };
            let conv = ok.conv.to_string();
            // The same (conv, seq) may already be held by a copy that history
            // brought in under this cid; that copy is the same message.
            let taken: Option<i64> = tx
                .query_row(
                    "SELECT id FROM messages WHERE conv = ?1 AND seq = ?2",
                    params![conv, ok.seq as i64],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(other) = taken.filter(|o| *o != id) {
                tx.execute("DELETE FROM messages WHERE id = ?1", [id])?;
                return affected(tx, other, files);
            }
            tx.execute(
                "UPDATE messages SET seq = ?2, mid = ?3, ts = ?4, status = 'sent', error = NULL,
                    agg_seq = CASE WHEN base_body IS NULL THEN NULL ELSE coalesce(agg_seq, ?2) END
                 WHERE id = ?1",
                params![id, ok.seq as i64, ok.mid, ok.ts],
            )?;
            tx.execute("DELETE FROM outbox WHERE message_id = ?1", [id])?;
            bump_last(tx, &conv, ok.seq, ok.ts)?;
            advance_synced(tx, &conv)?;
            affected(tx, id, files)
        })
    }

    /// Marks a queued message `failed` (a permanent error) and takes it out
    /// of the outbox. Returns the message as it is now — for a relation, its
    /// target, recomputed without it (the optimistic change is undone).
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn mark_failed(&self, from: &str, cid: &str, error: &str) -> Result<Option<MessageView>> {
        self.tx_files(|tx, files| {
            let id: Option<i64> = tx
                .query_row(
                    "SELECT id FROM messages WHERE sender = ?1 AND cid = ?2 AND status = 'pending'",
                    params![from, cid],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(id) = id else { return Ok(None) };
            tx.execute(
                "UPDATE messages SET status = 'failed', error = ?2 WHERE id = ?1",
                params![id, error],
            )?;
            tx.execute("DELETE FROM outbox WHERE message_id = ?1", [id])?;
            affected(tx, id, files)
        })
    }

    /// Puts a failed message back into the outbox (same cid). Returns it —
    /// for a relation, its target with the relation applied again.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn retry_failed(&self, from: &str, cid: &str) -> Result<Option<MessageView>> {
        self.durable_tx(|tx| {
            let row: Option<(i64, String)> = tx
                .query_row(
                    "SELECT id, conv FROM messages WHERE sender = ?1 AND cid = ?2 AND status = 'failed'",
                    params![from, cid],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((id, conv)) = row else { return Ok(None) };
            tx.execute("UPDATE messages SET status = 'pending', error = NULL WHERE id = ?1", [id])?;
            tx.execute("INSERT INTO outbox (message_id, conv) VALUES (?1, ?2)", params![id, conv])?;
            affected(tx, id, &mut Vec::new())
        })
    }

    /// Deletes an own message that the server never stored (pending or
    /// failed). Returns whether one was deleted.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn delete_unsent(&self, from: &str, cid: &str) -> Result<bool> {
        self.tx_files(|tx, files| {
            let row: Option<(String, Option<String>)> = tx
                .query_row(
                    "SELECT conv, rel_target FROM messages WHERE sender = ?1 AND cid = ?2 AND seq IS NULL",
                    params![from, cid],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((conv, target)) = row else { return Ok(false) };
            tx.execute(
                "DELETE FROM messages WHERE sender = ?1 AND cid = ?2 AND seq IS NULL",
                params![from, cid],
            )?;
            if let Some(mid) = target {
                relations::recompute(tx, &conv, &mid, files)?;
            }
            Ok(true)
        })
    }
}

fn enqueue_one(tx: &Transaction<'_>, m: &NewMessage) -> Result<MessageView> {
    // Checked in the transaction that would write it: nothing of a refused
    // message is kept, and the left mark stays until the user joins again.
    if has_left(tx, &m.conv.to_string())? {
        return Err(StoreError::LeftChannel { conv: m.conv.clone() });
    }
    ensure_conv(tx, &m.conv, &m.from)?;
    let relation = is_relation_kind(&m.kind);
    let target = if relation { m.body.get("target").and_then(Value::as_str) } else { None };
    let body = serde_json::to_string(&m.body)?;
    tx.execute(
        "INSERT INTO messages (conv, seq, mid, cid, sender, target, kind, body, ts, reply_to, status, created,
                               rel_target, base_body)
         VALUES (?1, NULL, NULL, ?2, ?3, ?4, ?5, ?6, NULL, ?7, 'pending', ?8, ?9, ?10)",
        params![
            m.conv.to_string(),
            m.cid,
            m.from,
            serde_json::to_string(&m.to)?,
            m.kind,
            body,
            m.reply_to,
            now_ms(),
            target,
            (!relation).then_some(&body),
        ],
    )?;
    let id = tx.last_insert_rowid();
    tx.execute("INSERT INTO outbox (message_id, conv) VALUES (?1, ?2)", params![id, m.conv.to_string()])?;
    if let Some(mid) = target {
        // Optimistic: shows at once (a pending recall is skipped).
        relations::recompute(tx, &m.conv.to_string(), mid, &mut Vec::new())?;
    }
    message_by_id(tx, id)
}

/// The content message a change of row `id` shows on: the row itself, or
/// for a relation its target, recomputed (`None` while the target is not
/// stored).
fn affected(tx: &Connection, id: i64, files: &mut Vec<PathBuf>) -> Result<Option<MessageView>> {
    let (conv, kind, target): (String, String, Option<String>) = tx
        .prepare_cached("SELECT conv, kind, rel_target FROM messages WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    if !is_relation_kind(&kind) {
        return Ok(Some(message_by_id(tx, id)?));
    }
    let Some(mid) = target else { return Ok(None) };
    relations::recompute(tx, &conv, &mid, files)?.map(|r| message_by_id(tx, r.id)).transpose()
}

#[cfg(test)]
mod tests {
    use crate::store::test_support::{msg, new_msg, open};
    use courier_proto::{Conv, SendOk};

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
}
