//! Relations (edit, recall, reaction, pin): storing one and executing the
//! effect [`crate::store::shared`] decided for its target; the v1.2
//! reaction caps and the cap on pins.

use super::SqliteStore;
use super::messages::{Inserted, find_by_cid, insert_message, original};
use crate::store::shared::{
    MentionScrub, RecallEffect, RelationEffect, RelationTarget, from_sql_int, to_sql_int,
};
use crate::store::{Appended, NewMessage, Relation, RelationAppend, StoreResult};
use crate::store::{ReactionTally, RelationCaps, RelationStore};
use async_trait::async_trait;
use courier_proto::Conv;
use rusqlite::{Connection, OptionalExtension, params};

/// The v1.2 reaction caps' view of one message: ?1 conv, ?2 target seq,
/// ?3 user, ?4 key (all reads of the reactions primary key).
pub(super) const REACTION_TALLY: &str = "SELECT \
    (SELECT count(DISTINCT key) FROM reactions WHERE conv = ?1 AND target_seq = ?2), \
    (SELECT count(*) FROM reactions WHERE conv = ?1 AND target_seq = ?2 AND user_id = ?3), \
    EXISTS (SELECT 1 FROM reactions WHERE conv = ?1 AND target_seq = ?2 AND key = ?4), \
    EXISTS (SELECT 1 FROM reactions WHERE conv = ?1 AND target_seq = ?2 AND key = ?4 AND user_id = ?3)";

/// Messages of conversation ?1 pinned besides message ?2 (by the partial
/// index of pinned messages).
const PINNED_OTHERS: &str =
    "SELECT count(*) FROM messages WHERE conv = ?1 AND pin_seq IS NOT NULL AND seq <> ?2";

pub(super) fn read_tally(
    c: &Connection,
    conv: &str,
    target_seq: i64,
    user: &str,
    key: &str,
) -> StoreResult<ReactionTally> {
    Ok(c.prepare_cached(REACTION_TALLY)?.query_row(params![conv, target_seq, user, key], |r| {
        Ok(ReactionTally {
            keys: from_sql_int(r.get(0)?),
            user_keys: from_sql_int(r.get(1)?),
            key_present: r.get(2)?,
            user_has_key: r.get(3)?,
        })
    })?)
}

pub(super) fn append_relation_message(
    c: &Connection,
    m: NewMessage,
    rel: Relation,
    caps: Option<RelationCaps>,
) -> StoreResult<RelationAppend> {
    if let Some(stored) = find_by_cid(c, &m.from, &m.cid)? {
        return Ok(RelationAppend::Stored(Appended { msg: stored, dup: true }));
    }
    let conv = m.conv.to_string();
    let target = c
        .prepare_cached(
            "SELECT seq, sender, kind, body, recalled FROM messages \
             WHERE mid = ?1 AND conv = ?2 AND rel_target IS NULL",
        )?
        .query_row(params![rel.target(), conv], |r| {
            Ok(RelationTarget {
                seq: r.get(0)?,
                sender: r.get(1)?,
                kind: r.get(2)?,
                body: r.get(3)?,
                recalled: r.get(4)?,
            })
        })
        .optional()?;
    let Some(target) = target else { return Ok(RelationAppend::NoTarget) };
    if target.recalled {
        return Ok(RelationAppend::Recalled);
    }
    if let (Relation::Reaction { key, on: true, .. }, Some(caps)) = (&rel, caps) {
        let tally = read_tally(c, &conv, target.seq, &m.from, key)?;
        if let Some(cap) = caps.refuses(tally) {
            return Ok(RelationAppend::Capped(cap));
        }
    }
    if let (Relation::Pin { on: true, .. }, Some(caps)) = (&rel, caps) {
        // The only writer: pins of one conversation cannot race past it.
        let others: i64 =
            c.prepare_cached(PINNED_OTHERS)?.query_row(params![conv, target.seq], |r| r.get(0))?;
        if let Some(cap) = caps.refuses_pin(from_sql_int(others)) {
            return Ok(RelationAppend::Capped(cap));
        }
    }
    // The resend check above already ran in this transaction.
    let appended = match insert_message(c, m, Some(rel.target()))? {
        Inserted::New(appended) => appended,
        Inserted::Duplicate(m) => return Ok(RelationAppend::Stored(original(c, &m)?)),
    };
    apply_effect(c, &conv, target.seq, RelationEffect::of(&rel, &target, &appended.msg))?;
    Ok(RelationAppend::Stored(appended))
}

/// Executes what a relation does to its target (`conv`, `seq`).
pub(super) fn apply_effect(c: &Connection, conv: &str, seq: i64, effect: RelationEffect) -> StoreResult<()> {
    match effect {
        RelationEffect::SetEdited { text, ts } => {
            c.prepare_cached(concat!(
                "UPDATE messages SET edited_text = ?3, edited_ts = ?4 WHERE id = ",
                id_at!("?1", "?2")
            ))?
            .execute(params![conv, seq, text, ts])?;
        }
        RelationEffect::AddReaction { key, user, seq: at } => {
            c.prepare_cached(
                "INSERT INTO reactions (conv, target_seq, key, user_id, seq) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![conv, seq, key, user, at])?;
        }
        RelationEffect::RemoveReaction { key, user } => {
            c.prepare_cached(
                "DELETE FROM reactions WHERE conv = ?1 AND target_seq = ?2 AND key = ?3 AND user_id = ?4",
            )?
            .execute(params![conv, seq, key, user])?;
        }
        RelationEffect::Pin { ts, seq: at } => {
            c.prepare_cached(concat!(
                "UPDATE messages SET pinned = coalesce(pinned, ?3), pin_seq = coalesce(pin_seq, ?4) WHERE id = ",
                id_at!("?1", "?2")
            ))?
            .execute(params![conv, seq, ts, at])?;
        }
        RelationEffect::Unpin => {
            c.prepare_cached(concat!(
                "UPDATE messages SET pinned = NULL, pin_seq = NULL WHERE id = ",
                id_at!("?1", "?2")
            ))?
            .execute(params![conv, seq])?;
        }
        RelationEffect::Recall(scrub) => recall(c, conv, seq, &scrub)?,
    }
    Ok(())
}

/// Scrubs a recalled message (`conv`, `seq`): its body, aggregates,
/// reactions, and what `scrub` names (its edits' texts, mentions, media).
pub(super) fn recall(c: &Connection, conv: &str, seq: i64, scrub: &RecallEffect) -> StoreResult<()> {
    c.prepare_cached(concat!(
        "UPDATE messages SET body = '{}', recalled = 1, edited_text = NULL, edited_ts = NULL, \
             pinned = NULL, pin_seq = NULL WHERE id = ",
        id_at!("?1", "?2")
    ))?
    .execute(params![conv, seq])?;
    c.prepare_cached("UPDATE messages SET body = ?3 WHERE rel_target = ?2 AND kind = 'edit' AND conv = ?1")?
        .execute(params![conv, scrub.target, scrub.edit_body])?;
    c.prepare_cached("DELETE FROM reactions WHERE conv = ?1 AND target_seq = ?2")?
        .execute(params![conv, seq])?;
    match &scrub.mentions {
        MentionScrub::Users(users) => {
            let mut unmention =
                c.prepare_cached("DELETE FROM mentions WHERE user_id = ?1 AND conv = ?2 AND seq = ?3")?;
            for user in users {
                unmention.execute(params![user, conv, seq])?;
            }
        }
        MentionScrub::All => {
            c.prepare_cached("DELETE FROM mentions WHERE conv = ?1 AND seq = ?2")?
                .execute(params![conv, seq])?;
        }
    }
    if let Some(media) = &scrub.media {
        let owned = c
            .prepare_cached("SELECT 1 FROM media WHERE id = ?1 AND owner = ?2")?
            .exists(params![media.id, media.owner])?;
        if owned {
            // The bytes go (the media answers 404); the facts stay, so the
            // upload still counts toward its owner's daily quota.
            c.prepare_cached("DELETE FROM media_blobs WHERE id = ?1")?.execute([&media.id])?;
        }
    }
    Ok(())
}

#[async_trait]
impl RelationStore for SqliteStore {
    async fn append_relation(&self, msg: NewMessage, rel: Relation) -> StoreResult<RelationAppend> {
        self.write(move |c| append_relation_message(c, msg, rel, None)).await
    }

    async fn append_relation_capped(
        &self,
        msg: NewMessage,
        rel: Relation,
        caps: RelationCaps,
    ) -> StoreResult<RelationAppend> {
        self.write(move |c| append_relation_message(c, msg, rel, Some(caps))).await
    }

    async fn reaction_tally(
        &self,
        conv: &Conv,
        target_seq: u64,
        user: &str,
        key: &str,
    ) -> StoreResult<ReactionTally> {
        let (conv, user, key) = (conv.to_string(), user.to_owned(), key.to_owned());
        self.read(move |c| read_tally(c, &conv, to_sql_int(target_seq), &user, &key)).await
    }
}
