//! Conversation rows: created on first use, updated from the `sync` ok,
//! forgotten on leave (and kept from coming back until the user is a
//! member again), and listed with their unread and mention counts,
//! draft, pins and newest message for the preview.

use super::relations::{self, RELATION_KINDS_SQL};
use super::rows::message_by_id;
use super::{Result, Store};
use crate::model::ConversationView;
use courier_proto::{Conv, SyncConv};
use rusqlite::{Connection, OptionalExtension, params};

impl Store {
    /// Records a conversation row of the `sync` ok. With `v1_1` (the server
    /// lists the feature) its `pins` become the conversation's pinned list
    /// as of its `last_seq`.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn apply_sync_conv(&self, me: &str, s: &SyncConv, v1_1: bool) -> Result<()> {
        self.tx(|tx| {
            let conv = s.conv.to_string();
            member_again(tx, &s.conv)?;
            ensure_conv(tx, &s.conv, me)?;
            tx.execute(
                "UPDATE conversations SET
                    last_seq = max(last_seq, ?2), last_ts = max(last_ts, ?3),
                    read_seq = max(read_seq, ?4), read_sent_seq = max(read_sent_seq, ?4),
                    peer_read_seq = max(peer_read_seq, ?5), peer_recv_seq = max(peer_recv_seq, ?6)
                 WHERE conv = ?1",
                params![
                    conv,
                    s.last_seq as i64,
                    s.last_ts,
                    s.read_seq as i64,
                    s.peer_read_seq.unwrap_or(0) as i64,
                    s.peer_recv_seq.unwrap_or(0) as i64
                ],
            )?;
            if v1_1 {
                tx.execute(
                    "UPDATE conversations SET pins = ?2, pins_seq = ?3 WHERE conv = ?1",
                    params![conv, serde_json::to_string(&s.pins)?, s.last_seq as i64],
                )?;
            }
            Ok(())
        })
    }

    /// Adds a conversation the user just joined or created.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn ensure_conversation(&self, me: &str, conv: &Conv, last_seq: u64) -> Result<()> {
        self.tx(|tx| {
            member_again(tx, conv)?;
            ensure_conv(tx, conv, me)?;
            tx.execute(
                "UPDATE conversations SET last_seq = max(last_seq, ?2) WHERE conv = ?1",
                params![conv.to_string(), last_seq as i64],
            )?;
            Ok(())
        })
    }

    /// Forgets a channel the user left or was removed from (its messages
    /// stay searchable). Messages that arrive for it afterwards are not
    /// stored and do not bring it back, until the user is a member again
    /// ([`Store::ensure_conversation`], or `sync` listing it).
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn forget_conversation(&self, conv: &Conv) -> Result<()> {
        self.tx(|tx| {
            tx.execute("DELETE FROM conversations WHERE conv = ?1", [conv.to_string()])?;
            if matches!(conv, Conv::Channel(_)) {
                tx.execute("INSERT OR IGNORE INTO left_channels (conv) VALUES (?1)", [conv.to_string()])?;
            }
            Ok(())
        })
    }

    /// Whether `conv` is a channel the user left (see
    /// [`Store::forget_conversation`]).
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn has_left(&self, conv: &Conv) -> Result<bool> {
        self.with(|c| Ok(has_left(c, &conv.to_string())?))
    }

    /// The channel conversations held locally.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn channels_held(&self) -> Result<Vec<Conv>> {
        self.with(|c| {
            let mut st = c.prepare_cached("SELECT conv FROM conversations WHERE kind = 'channel'")?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            let mut out = Vec::new();
            for r in rows {
                out.extend(Conv::parse(&r?));
            }
            Ok(out)
        })
    }

    /// Every conversation with its unread count, most recent first.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn conversations(&self, me: &str) -> Result<Vec<ConversationView>> {
        self.conversations_where(me, None)
    }

    fn conversations_where(&self, me: &str, only: Option<&Conv>) -> Result<Vec<ConversationView>> {
        self.with(|c| {
            // Unread: content messages of others after the read cursor,
            // not recalled; of those, the ones that mention this user.
            let unread = format!(
                "FROM messages m WHERE m.conv = c.conv AND m.seq > c.read_seq AND m.sender <> ?1
                   AND m.recalled = 0 AND m.kind NOT IN {RELATION_KINDS_SQL}"
            );
            let mut st = c.prepare_cached(&format!(
                "SELECT c.conv, c.kind, c.peer, c.channel, c.last_seq, c.last_ts, c.synced_seq, c.read_seq,
                        (SELECT count(*) {unread}),
                        c.peer_read_seq, c.peer_recv_seq, d.text,
                        (SELECT count(*) {unread}
                           AND EXISTS (SELECT 1 FROM json_each(m.body, '$.mentions') j WHERE j.value = ?1))
                 FROM conversations c LEFT JOIN drafts d ON d.conv = c.conv
                 WHERE ?2 IS NULL OR c.conv = ?2
                 ORDER BY c.last_ts DESC, c.conv"
            ))?;
            let rows = st.query_map(params![me, only.map(Conv::to_string)], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get::<_, i64>(4)?,
                    r.get(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, i64>(7)?,
                    r.get::<_, i64>(8)?,
                    r.get::<_, i64>(9)?,
                    r.get::<_, i64>(10)?,
                    r.get(11)?,
                    r.get::<_, i64>(12)?,
                ))
            })?;
            let rows = rows.collect::<rusqlite::Result<Vec<_>>>()?;
            let mut last = c.prepare_cached(&format!(
                "SELECT id FROM messages WHERE conv = ?1 AND kind NOT IN {RELATION_KINDS_SQL}
                 ORDER BY seq IS NULL DESC, seq DESC, id DESC LIMIT 1"
            ))?;
            let mut out = Vec::new();
            for row in rows {
                let (
                    conv,
                    kind,
                    peer,
                    channel,
                    last_seq,
                    last_ts,
                    synced,
                    read,
                    unread,
                    pr,
                    pv,
                    draft,
                    mentions,
                ) = row;
                let last_id: Option<i64> = last.query_row([&conv], |r| r.get(0)).optional()?;
                let last_message = last_id.map(|id| message_by_id(c, id)).transpose()?;
                let pins = relations::pins(c, &conv)?;
                let Some(conv) = Conv::parse(&conv) else { continue };
                out.push(ConversationView {
                    conv,
                    kind,
                    peer,
                    channel,
                    last_seq: last_seq as u64,
                    last_ts,
                    synced_seq: synced as u64,
                    read_seq: read as u64,
                    unread: unread as u64,
                    mentions_unread: mentions as u64,
                    pins,
                    peer_read_seq: pr as u64,
                    peer_recv_seq: pv as u64,
                    draft,
                    last_message,
                });
            }
            Ok(out)
        })
    }

    /// One conversation.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn conversation(&self, me: &str, conv: &Conv) -> Result<Option<ConversationView>> {
        Ok(self.conversations_where(me, Some(conv))?.pop())
    }
}

/// Creates the row of `conv` (as seen by `me`) unless it exists.
pub(super) fn ensure_conv(tx: &Connection, conv: &Conv, me: &str) -> rusqlite::Result<()> {
    let (kind, peer, channel) = match conv {
        Conv::Dm(..) => ("dm", conv.peer_of(me).map(str::to_owned), None),
        Conv::Channel(c) => ("channel", None, Some(c.clone())),
    };
    tx.prepare_cached(
        "INSERT OR IGNORE INTO conversations (conv, kind, peer, channel) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![conv.to_string(), kind, peer, channel])?;
    Ok(())
}

/// Whether the conversation `conv` is a channel the user left.
pub(super) fn has_left(c: &Connection, conv: &str) -> rusqlite::Result<bool> {
    c.prepare_cached("SELECT 1 FROM left_channels WHERE conv = ?1")?.exists([conv])
}

/// The user is a member of `conv` (again): messages for it count once more.
fn member_again(tx: &Connection, conv: &Conv) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM left_channels WHERE conv = ?1")?.execute([conv.to_string()])?;
    Ok(())
}

/// Raises the conversation's newest seq and time to a stored message's.
pub(super) fn bump_last(tx: &Connection, conv: &str, seq: u64, ts: i64) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE conversations SET last_seq = max(last_seq, ?2), last_ts = max(last_ts, ?3) WHERE conv = ?1",
    )?
    .execute(params![conv, seq as i64, ts])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::model::DeliveryStatus;
    use crate::store::test_support::{msg, new_msg, open, rel};
    use courier_proto::{Conv, Msg};
    use serde_json::{Value, json};

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
}
