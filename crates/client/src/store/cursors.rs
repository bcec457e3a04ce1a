//! The per-conversation cursors: `synced_seq` (stored without gaps), the
//! read cursor and what the server knows of it and of the receive cursor,
//! and a DM peer's receipts, which move own messages to delivered and read.

use super::rows::{MSG_COLS, msg_from_row, view};
use super::{Result, Store};
use crate::model::MessageView;
use courier_proto::Conv;
use rusqlite::{Connection, OptionalExtension, params};

impl Store {
    /// Every seq up to the returned one is stored locally.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn synced_seq(&self, conv: &Conv) -> Result<u64> {
        self.with(|c| {
            Ok(c.prepare_cached("SELECT synced_seq FROM conversations WHERE conv = ?1")?
                .query_row([conv.to_string()], |r| r.get::<_, i64>(0))
                .optional()?
                .unwrap_or(0) as u64)
        })
    }

    /// Raises the local read cursor (clamped to what is stored). Returns the
    /// new cursor when it moved.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn set_read(&self, conv: &Conv, seq: Option<u64>) -> Result<Option<u64>> {
        self.with(|c| {
            let row: Option<(i64, i64)> = c
                .query_row(
                    "SELECT read_seq, synced_seq FROM conversations WHERE conv = ?1",
                    [conv.to_string()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((read, synced)) = row else {
                return Ok(None);
            };
            let target = seq.map(|s| (s as i64).min(synced)).unwrap_or(synced);
            if target <= read {
                return Ok(None);
            }
            c.execute(
                "UPDATE conversations SET read_seq = ?2 WHERE conv = ?1",
                params![conv.to_string(), target],
            )?;
            Ok(Some(target as u64))
        })
    }

    /// Read cursors the server does not know yet.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn reads_to_send(&self) -> Result<Vec<(Conv, u64)>> {
        self.cursor_list("SELECT conv, read_seq FROM conversations WHERE read_seq > read_sent_seq")
    }

    /// Receive cursors the server does not know yet, but none of a DM in
    /// which `me` has sent nothing: the server turns an `ack` into a
    /// receipt to the other member, and a receipt in a DM with someone this
    /// user never answered would tell a stranger when this user is online,
    /// which presence privacy hides from them (protocol §8). Such a DM's
    /// receive cursor goes with its read cursor once the user reads it (an
    /// act of theirs), and with the next ack once they write there.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn acks_to_send(&self, me: &str) -> Result<Vec<(Conv, u64)>> {
        self.cursor_list_with(
            "SELECT conv, synced_seq FROM conversations c \
             WHERE synced_seq > acked_seq AND synced_seq > read_sent_seq \
               AND (kind <> 'dm' OR peer = ?1 \
                    OR EXISTS (SELECT 1 FROM messages m WHERE m.conv = c.conv AND m.sender = ?1))",
            params![me],
        )
    }

    fn cursor_list(&self, sql: &str) -> Result<Vec<(Conv, u64)>> {
        self.cursor_list_with(sql, [])
    }

    fn cursor_list_with(&self, sql: &str, args: impl rusqlite::Params) -> Result<Vec<(Conv, u64)>> {
        self.with(|c| {
            let mut st = c.prepare_cached(sql)?;
            let rows = st.query_map(args, |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            let mut out = Vec::new();
            for r in rows {
                let (conv, seq) = r?;
                out.extend(Conv::parse(&conv).map(|c| (c, seq as u64)));
            }
            Ok(out)
        })
    }

    /// Records that the server has the read cursor `seq` (which also raises
    /// its receive cursor).
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn read_sent(&self, conv: &Conv, seq: u64) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE conversations SET read_sent_seq = max(read_sent_seq, ?2), acked_seq = max(acked_seq, ?2) WHERE conv = ?1",
                params![conv.to_string(), seq as i64],
            )?;
            Ok(())
        })
    }

    /// Records that the server has the receive cursor `seq`.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn acked(&self, conv: &Conv, seq: u64) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE conversations SET acked_seq = max(acked_seq, ?2) WHERE conv = ?1",
                params![conv.to_string(), seq as i64],
            )?;
            Ok(())
        })
    }

    /// This user read up to `seq` on another device.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn apply_read_elsewhere(&self, conv: &Conv, seq: u64) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE conversations SET read_seq = max(read_seq, ?2), read_sent_seq = max(read_sent_seq, ?2) WHERE conv = ?1",
                params![conv.to_string(), seq as i64],
            )?;
            Ok(())
        })
    }

    /// Applies a DM peer's receipt; returns own messages whose status moved.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn apply_receipt(
        &self,
        me: &str,
        conv: &Conv,
        recv: u64,
        read: u64,
        max_changed: u32,
    ) -> Result<Vec<MessageView>> {
        self.tx(|tx| {
            let before: Option<i64> = tx
                .query_row(
                    "SELECT min(peer_recv_seq, peer_read_seq) FROM conversations WHERE conv = ?1",
                    [conv.to_string()],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(low) = before else { return Ok(Vec::new()) };
            tx.execute(
                "UPDATE conversations SET peer_recv_seq = max(peer_recv_seq, ?2, ?3), peer_read_seq = max(peer_read_seq, ?3) WHERE conv = ?1",
                params![conv.to_string(), recv as i64, read as i64],
            )?;
            let sql = format!(
                "SELECT {MSG_COLS} FROM messages m JOIN conversations c ON c.conv = m.conv
                 WHERE m.conv = ?1 AND m.sender = ?2 AND m.seq > ?3 AND m.seq <= ?4 ORDER BY m.seq DESC LIMIT ?5"
            );
            let mut st = tx.prepare_cached(&sql)?;
            let raws = st
                .query_map(
                    params![conv.to_string(), me, low, recv.max(read) as i64, max_changed as i64],
                    msg_from_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            raws.into_iter().rev().map(view).collect()
        })
    }
}

/// Moves `synced_seq` over every contiguous stored seq after it.
pub(super) fn advance_synced(tx: &Connection, conv: &str) -> rusqlite::Result<u64> {
    let synced: i64 = tx
        .prepare_cached("SELECT synced_seq FROM conversations WHERE conv = ?1")?
        .query_row([conv], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let mut next = synced;
    {
        let mut st =
            tx.prepare_cached("SELECT seq FROM messages WHERE conv = ?1 AND seq > ?2 ORDER BY seq")?;
        let mut rows = st.query(params![conv, synced])?;
        while let Some(r) = rows.next()? {
            let s: i64 = r.get(0)?;
            if s != next + 1 {
                break;
            }
            next = s;
        }
    }
    if next != synced {
        tx.prepare_cached("UPDATE conversations SET synced_seq = ?2 WHERE conv = ?1")?
            .execute(params![conv, next])?;
    }
    Ok(next as u64)
}

#[cfg(test)]
mod tests {
    use crate::model::DeliveryStatus;
    use crate::store::test_support::{msg, open};
    use courier_proto::Conv;
    use rusqlite::params;

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

    /// A receipt of an `ack` tells the other member of a DM that this
    /// device is online; in a DM this user never wrote in (a stranger's
    /// messages), that is what presence privacy hides, so no ack goes out
    /// there until the user reads or writes.
    #[test]
    fn no_delivery_ack_in_a_dm_the_user_never_wrote_in() {
        let (_d, s) = open();
        let stranger = Conv::dm("alice", "mallory");
        let lobby = Conv::channel("lobby");
        let myself = Conv::dm("alice", "alice");
        s.apply_messages(
            "alice",
            &[
                msg(&stranger, 1, "mallory", "s1", "hi"),
                msg(&stranger, 2, "mallory", "s2", "are you there?"),
                msg(&lobby, 1, "bob", "l1", "morning"),
                msg(&myself, 1, "alice", "n1", "note"),
            ],
        )
        .unwrap();
        let mut acks = s.acks_to_send("alice").unwrap();
        acks.sort_by_key(|(c, _)| c.to_string());
        assert_eq!(acks, [(lobby.clone(), 1), (myself.clone(), 1)], "nothing acked to the stranger");
        for (c, seq) in &acks {
            s.acked(c, *seq).unwrap();
        }
        // Reading it is the user's act: the read cursor goes (and carries
        // the receive cursor with it).
        assert_eq!(s.set_read(&stranger, None).unwrap(), Some(2));
        assert_eq!(s.reads_to_send().unwrap(), [(stranger.clone(), 2)]);
        s.read_sent(&stranger, 2).unwrap();
        // Once the user has written there, deliveries are acked again.
        s.apply_messages("alice", &[msg(&stranger, 3, "alice", "a3", "who is this?")]).unwrap();
        s.apply_messages("alice", &[msg(&stranger, 4, "mallory", "s4", "an old friend")]).unwrap();
        assert_eq!(s.acks_to_send("alice").unwrap(), [(stranger.clone(), 4)]);
        // One index lookup, not a scan of the conversation.
        let plan: Vec<String> = s
            .with(|c| {
                let mut st = c.prepare(
                    "EXPLAIN QUERY PLAN SELECT 1 FROM messages m WHERE m.conv = ?1 AND m.sender = ?2",
                )?;
                let rows = st.query_map(params!["dm:alice:mallory", "alice"], |r| r.get::<_, String>(3))?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .unwrap();
        assert!(plan.iter().any(|p| p.contains("messages_by_sender")), "{plan:?}");
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
        assert!(s.acks_to_send("alice").unwrap().is_empty(), "read raises the receive cursor");
    }
}
