//! Messages from the server — live events and history pages — applied in
//! one transaction: duplicates skipped, own pending sends confirmed, the rest
//! inserted, relations applied to their targets, and the contiguous
//! `synced_seq` advanced.

use super::conversations::{bump_last, ensure_conv, has_left};
use super::cursors::advance_synced;
use super::relations::{self, Aggregates, Recomputed};
use super::rows::message_by_id;
use super::{Result, Store};
use crate::model::{MessageView, now_ms};
use courier_proto::{Conv, Msg, is_relation_kind};
use rusqlite::{OptionalExtension, params};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// What applying a batch of server messages changed.
#[derive(Debug, Default)]
pub struct Applied {
    /// Content messages that were not in the store before (relations are
    /// never listed: they show only through their target).
    pub added: Vec<MessageView>,
    /// Own pending content messages that the batch confirmed.
    pub updated: Vec<MessageView>,
    /// Content messages held before whose edits, recall, reactions or pin
    /// changed because of relations in the batch.
    pub targets: Vec<MessageView>,
    /// How many relation messages were stored.
    pub relations: usize,
    /// Conversations whose pinned list may have changed.
    pub pins: Vec<Conv>,
}

impl Store {
    /// Applies messages from the server (live events, or history pages of a
    /// server without v1.1 aggregates) in one transaction: skips those
    /// already held (by conv+seq) and those of channels the user left,
    /// confirms own pending ones (by sender+cid), inserts the rest, applies
    /// relations to their targets, and advances each conversation's
    /// contiguous `synced_seq`.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn apply_messages(&self, me: &str, msgs: &[Msg]) -> Result<Applied> {
        self.apply_batch(me, msgs, false)
    }

    /// Applies a `history` page of a v1.1 server: like
    /// [`Store::apply_messages`], but the aggregates served with each content
    /// message (edits, recall, reactions, pin) are taken as reflecting every
    /// relation up to the newest seq of the page, so relation messages of
    /// the page are not applied on top of them again.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn apply_page(&self, me: &str, msgs: &[Msg]) -> Result<Applied> {
        self.apply_batch(me, msgs, true)
    }

    fn apply_batch(&self, me: &str, msgs: &[Msg], served_aggregates: bool) -> Result<Applied> {
        self.tx_files(|tx, files| {
            let mut applied = Applied::default();
            let mut touched: Vec<String> = Vec::new();
            // Up to which seq the aggregates served with a message reflect
            // the relations: the page's newest seq, or the message itself.
            let mut horizon: HashMap<String, u64> = HashMap::new();
            if served_aggregates {
                for m in msgs {
                    let h = horizon.entry(m.conv.to_string()).or_default();
                    *h = (*h).max(m.seq);
                }
            }
            let (mut added, mut confirmed) = (Vec::new(), Vec::new());
            // Targets to recompute, with the lowest seq of the relations
            // just stored for each (`None`: fold everything again).
            let mut targets: BTreeMap<(String, String), Option<i64>> = BTreeMap::new();
            fn refold(targets: &mut BTreeMap<(String, String), Option<i64>>, conv: &str, mid: &str, since: Option<i64>) {
                let at = targets.entry((conv.to_owned(), mid.to_owned())).or_insert(since);
                *at = at.zip(since).map(|(a, b)| a.min(b));
            }
            let mut pins: BTreeSet<String> = BTreeSet::new();
            // Channels the user left: a late message must not bring one back.
            let mut left: HashSet<String> = HashSet::new();
            for m in msgs {
                let conv = m.conv.to_string();
                if left.contains(&conv) {
                    continue;
                }
                if !touched.contains(&conv) {
                    if has_left(tx, &conv)? {
                        left.insert(conv);
                        continue;
                    }
                    ensure_conv(tx, &m.conv, me)?;
                    touched.push(conv.clone());
                }
                let held: Option<i64> = tx
                    .prepare_cached("SELECT id FROM messages WHERE conv = ?1 AND seq = ?2")?
                    .query_row(params![conv, m.seq as i64], |r| r.get(0))
                    .optional()?;
                if held.is_some() {
                    continue;
                }
                let relation = is_relation_kind(&m.kind);
                let agg_seq = horizon.get(&conv).copied().unwrap_or(m.seq).max(m.seq) as i64;
                let base_agg = if relation { None } else { Aggregates::served_json(m)? };
                let own: Option<i64> = tx
                    .prepare_cached("SELECT id FROM messages WHERE sender = ?1 AND cid = ?2")?
                    .query_row(params![m.from, m.cid], |r| r.get(0))
                    .optional()?;
                if let Some(id) = own {
                    tx.execute(
                        "UPDATE messages SET seq = ?2, mid = ?3, ts = ?4, status = 'sent', error = NULL WHERE id = ?1",
                        params![id, m.seq as i64, m.mid, m.ts],
                    )?;
                    if !relation {
                        // As served: a v1.1 page shows it edited or recalled.
                        tx.execute(
                            "UPDATE messages SET base_body = ?2, base_agg = ?3, agg_seq = ?4 WHERE id = ?1",
                            params![id, serde_json::to_string(&m.body)?, base_agg, agg_seq],
                        )?;
                        // Served aggregates, or relations already held.
                        refold(&mut targets, &conv, &m.mid, None);
                        confirmed.push(id);
                    }
                    tx.execute("DELETE FROM outbox WHERE message_id = ?1", [id])?;
                } else {
                    let status = if m.from == me { "sent" } else { "received" };
                    let body = serde_json::to_string(&m.body)?;
                    tx.prepare_cached(
                        "INSERT INTO messages (conv, seq, mid, cid, sender, target, kind, body, ts, reply_to, status, created,
                                               rel_target, base_body, base_agg, agg_seq, edited, reactions, recalled, pinned)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
                    )?
                    .execute(params![
                        conv,
                        m.seq as i64,
                        m.mid,
                        m.cid,
                        m.from,
                        serde_json::to_string(&m.to)?,
                        m.kind,
                        body,
                        m.ts,
                        m.reply_to,
                        status,
                        now_ms(),
                        m.target(),
                        (!relation).then_some(&body),
                        base_agg,
                        (!relation).then_some(agg_seq),
                        if relation { None } else { m.edited },
                        if relation { None } else { relations::reactions_json(&m.reactions)? },
                        !relation && m.recalled,
                        if relation { None } else { m.pinned },
                    ])?;
                    let id = tx.last_insert_rowid();
                    if !relation {
                        if m.recalled || relations::has_relations(tx, &conv, &m.mid)? {
                            refold(&mut targets, &conv, &m.mid, None);
                        }
                        added.push(id);
                    }
                }
                if relation {
                    applied.relations += 1;
                    if let Some(t) = m.target() {
                        refold(&mut targets, &conv, t, Some(m.seq as i64));
                    }
                    if m.kind == "pin" {
                        pins.insert(conv.clone());
                    }
                }
                bump_last(tx, &conv, m.seq, m.ts)?;
            }
            for conv in &touched {
                advance_synced(tx, conv)?;
            }
            let fresh: HashSet<i64> = added.iter().chain(&confirmed).copied().collect();
            for ((conv, mid), since) in targets {
                if let Some(Recomputed { id, changed: true }) =
                    relations::recompute_since(tx, &conv, &mid, since, files)?
                    && !fresh.contains(&id)
                {
                    applied.targets.push(message_by_id(tx, id)?);
                }
            }
            applied.added = added.into_iter().map(|id| message_by_id(tx, id)).collect::<Result<_>>()?;
            applied.updated = confirmed.into_iter().map(|id| message_by_id(tx, id)).collect::<Result<_>>()?;
            applied.pins = pins.iter().filter_map(|c| Conv::parse(c)).collect();
            Ok(applied)
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::model::DeliveryStatus;
    use crate::store::test_support::{by_mid, hits, msg, new_msg, open, rel, seqs};
    use courier_proto::{Conv, SendOk};
    use serde_json::json;

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
}
