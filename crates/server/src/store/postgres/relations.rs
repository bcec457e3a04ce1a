//! Relations (edits, reactions, pins, recalls): one transaction locks the
//! target row, checks it and the v1.2 reaction caps, stores the relation and
//! executes the effect decided in `store/shared.rs`.

use super::PostgresStore;
use super::messages::{find_by_cid, insert_message};
use super::pool::{TRANSIENT_ATTEMPTS, is_transient, pg};
use crate::store::shared::{
    MentionScrub, RecallEffect, RelationEffect, RelationTarget, from_sql_int, to_sql_int,
};
use crate::store::{Appended, NewMessage, Relation, RelationAppend, StoreError, StoreResult};
use crate::store::{ReactionTally, RelationCaps, RelationStore};
use async_trait::async_trait;
use courier_proto::{Conv, Msg};
use deadpool_postgres::{Object, Transaction};

/// The v1.2 reaction caps' view of one message (reads of the reactions
/// primary key).
async fn read_tally<C: deadpool_postgres::GenericClient>(
    c: &C,
    conv: &str,
    target_seq: i64,
    user: &str,
    key: &str,
) -> Result<ReactionTally, tokio_postgres::Error> {
    let stmt = c
        .prepare_cached(
            "SELECT \
             (SELECT count(DISTINCT key) FROM reactions WHERE conv = $1 AND target_seq = $2), \
             (SELECT count(*) FROM reactions WHERE conv = $1 AND target_seq = $2 AND user_id = $3), \
             EXISTS (SELECT 1 FROM reactions WHERE conv = $1 AND target_seq = $2 AND key = $4), \
             EXISTS (SELECT 1 FROM reactions \
                     WHERE conv = $1 AND target_seq = $2 AND key = $4 AND user_id = $3)",
        )
        .await?;
    let r = c.query_one(&stmt, &[&conv, &target_seq, &user, &key]).await?;
    Ok(ReactionTally {
        keys: from_sql_int(r.try_get(0)?),
        user_keys: from_sql_int(r.try_get(1)?),
        key_present: r.try_get(2)?,
        user_has_key: r.try_get(3)?,
    })
}

/// [`RelationStore::append_relation`], with the reaction caps when given.
async fn append_relation_with(
    store: &PostgresStore,
    msg: NewMessage,
    rel: Relation,
    caps: Option<RelationCaps>,
) -> StoreResult<RelationAppend> {
    let mut c = store.client().await?;
    // The common retry needs no transaction and no lock.
    if let Some(original) = find_by_cid(&c, &msg.from, &msg.cid).await? {
        return Ok(RelationAppend::Stored(Appended { msg: original, dup: true }));
    }
    let conv = msg.conv.to_string();
    let mut attempt = 0;
    loop {
        attempt += 1;
        match try_append_relation(&mut c, &msg, &conv, &rel, caps).await {
            Ok(RelationTry::Stored(msg)) => {
                return Ok(RelationAppend::Stored(Appended { msg, dup: false }));
            }
            Ok(RelationTry::NoTarget) => return Ok(RelationAppend::NoTarget),
            Ok(RelationTry::Recalled) => return Ok(RelationAppend::Recalled),
            Ok(RelationTry::Capped(cap)) => return Ok(RelationAppend::Capped(cap)),
            Ok(RelationTry::Dup) => {
                return match find_by_cid(&c, &msg.from, &msg.cid).await? {
                    Some(original) => Ok(RelationAppend::Stored(Appended { msg: original, dup: true })),
                    None => Err(StoreError::Postgres(format!(
                        "({}, {}) conflicted with a message that is not there",
                        msg.from, msg.cid
                    ))),
                };
            }
            Err(e) if is_transient(&e) && attempt < TRANSIENT_ATTEMPTS => continue,
            Err(e) => return Err(pg(e)),
        }
    }
}

/// What one transaction of [`RelationStore::append_relation`] did.
#[allow(clippy::large_enum_variant)] // returned once per call, never kept in bulk
enum RelationTry {
    Stored(Msg),
    Dup,
    NoTarget,
    Recalled,
    Capped(&'static str),
}

/// One transaction of [`RelationStore::append_relation`]: locks the target row
/// (so a concurrent recall and this relation take turns), checks it,
/// stores the relation and applies it.
async fn try_append_relation(
    c: &mut Object,
    m: &NewMessage,
    conv: &str,
    rel: &Relation,
    caps: Option<RelationCaps>,
) -> Result<RelationTry, tokio_postgres::Error> {
    let tx = c.transaction().await?;
    let lock = tx
        .prepare_cached(
            "SELECT seq, sender, kind, body, recalled FROM messages \
             WHERE mid = $1 AND conv = $2 AND rel_target IS NULL FOR UPDATE",
        )
        .await?;
    let Some(target) = tx.query_opt(&lock, &[&rel.target(), &conv]).await? else {
        tx.rollback().await?;
        return Ok(RelationTry::NoTarget);
    };
    let target = RelationTarget {
        seq: target.try_get(0)?,
        sender: target.try_get(1)?,
        kind: target.try_get(2)?,
        body: target.try_get(3)?,
        recalled: target.try_get(4)?,
    };
    if target.recalled {
        tx.rollback().await?;
        return Ok(RelationTry::Recalled);
    }
    // The target row is locked: relations to it take turns, so the caps
    // hold under concurrency.
    if let (Relation::Reaction { key, on: true, .. }, Some(caps)) = (rel, caps) {
        let tally = read_tally(&tx, conv, target.seq, &m.from, key).await?;
        if let Some(cap) = caps.refuses(tally) {
            tx.rollback().await?;
            return Ok(RelationTry::Capped(cap));
        }
    }
    if let (Relation::Pin { on: true, .. }, Some(caps)) = (rel, caps) {
        // Pins of one conversation take turns on its row (locked after the
        // target's, as every relation's insert does), so the cap holds
        // under concurrency.
        let turn = tx.prepare_cached("SELECT 1 FROM conversations WHERE conv = $1 FOR UPDATE").await?;
        tx.query_opt(&turn, &[&conv]).await?;
        let others = tx
            .prepare_cached(
                "SELECT count(*) FROM messages WHERE conv = $1 AND pin_seq IS NOT NULL AND seq <> $2",
            )
            .await?;
        let others: i64 = tx.query_one(&others, &[&conv, &target.seq]).await?.try_get(0)?;
        if let Some(cap) = caps.refuses_pin(from_sql_int(others)) {
            tx.rollback().await?;
            return Ok(RelationTry::Capped(cap));
        }
    }
    let Some(msg) = insert_message(&tx, m, conv, Some(rel.target())).await? else {
        tx.rollback().await?;
        return Ok(RelationTry::Dup);
    };
    apply_effect(&tx, conv, target.seq, RelationEffect::of(rel, &target, &msg)).await?;
    tx.commit().await?;
    Ok(RelationTry::Stored(msg))
}

/// Executes what a relation does to its target (`conv`, `seq`) inside the
/// relation's transaction.
async fn apply_effect(
    tx: &Transaction<'_>,
    conv: &str,
    seq: i64,
    effect: RelationEffect,
) -> Result<(), tokio_postgres::Error> {
    match effect {
        RelationEffect::SetEdited { text, ts } => {
            let stmt = tx
                .prepare_cached(
                    "UPDATE messages SET edited_text = $3, edited_ts = $4 WHERE conv = $1 AND seq = $2",
                )
                .await?;
            tx.execute(&stmt, &[&conv, &seq, &text, &ts]).await?;
        }
        RelationEffect::AddReaction { key, user, seq: at } => {
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO reactions (conv, target_seq, key, user_id, seq) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT DO NOTHING",
                )
                .await?;
            tx.execute(&stmt, &[&conv, &seq, &key, &user, &at]).await?;
        }
        RelationEffect::RemoveReaction { key, user } => {
            let stmt = tx
                .prepare_cached(
                    "DELETE FROM reactions WHERE conv = $1 AND target_seq = $2 AND key = $3 AND user_id = $4",
                )
                .await?;
            tx.execute(&stmt, &[&conv, &seq, &key, &user]).await?;
        }
        RelationEffect::Pin { ts, seq: at } => {
            let stmt = tx
                .prepare_cached(
                    "UPDATE messages SET pinned = coalesce(pinned, $3), pin_seq = coalesce(pin_seq, $4) \
                     WHERE conv = $1 AND seq = $2",
                )
                .await?;
            tx.execute(&stmt, &[&conv, &seq, &ts, &at]).await?;
        }
        RelationEffect::Unpin => {
            let stmt = tx
                .prepare_cached(
                    "UPDATE messages SET pinned = NULL, pin_seq = NULL WHERE conv = $1 AND seq = $2",
                )
                .await?;
            tx.execute(&stmt, &[&conv, &seq]).await?;
        }
        RelationEffect::Recall(scrub) => recall(tx, conv, seq, &scrub).await?,
    }
    Ok(())
}

/// Scrubs a recalled message (`conv`, `seq`) inside the relation's
/// transaction: its body, aggregates, reactions, and what `scrub` names
/// (its edits' texts, mentions, media).
async fn recall(
    tx: &Transaction<'_>,
    conv: &str,
    seq: i64,
    scrub: &RecallEffect,
) -> Result<(), tokio_postgres::Error> {
    let stmt = tx
        .prepare_cached(
            "UPDATE messages SET body = '{}', recalled = true, edited_text = NULL, edited_ts = NULL, \
                 pinned = NULL, pin_seq = NULL \
             WHERE conv = $1 AND seq = $2",
        )
        .await?;
    tx.execute(&stmt, &[&conv, &seq]).await?;
    let stmt = tx
        .prepare_cached("UPDATE messages SET body = $3 WHERE rel_target = $2 AND kind = 'edit' AND conv = $1")
        .await?;
    tx.execute(&stmt, &[&conv, &scrub.target, &scrub.edit_body]).await?;
    let stmt = tx.prepare_cached("DELETE FROM reactions WHERE conv = $1 AND target_seq = $2").await?;
    tx.execute(&stmt, &[&conv, &seq]).await?;
    match &scrub.mentions {
        MentionScrub::Users(users) if users.is_empty() => {}
        MentionScrub::Users(users) => {
            let stmt = tx
                .prepare_cached("DELETE FROM mentions WHERE user_id = ANY($1) AND conv = $2 AND seq = $3")
                .await?;
            tx.execute(&stmt, &[users, &conv, &seq]).await?;
        }
        MentionScrub::All => {
            let stmt = tx.prepare_cached("DELETE FROM mentions WHERE conv = $1 AND seq = $2").await?;
            tx.execute(&stmt, &[&conv, &seq]).await?;
        }
    }
    if let Some(media) = &scrub.media {
        let owned = tx.prepare_cached("SELECT 1 FROM media WHERE id = $1 AND owner = $2").await?;
        if tx.query_opt(&owned, &[&media.id, &media.owner]).await?.is_some() {
            // The bytes go (the media answers 404); the facts stay, so the
            // upload still counts toward its owner's daily quota.
            let blob = tx.prepare_cached("DELETE FROM media_blobs WHERE id = $1").await?;
            tx.execute(&blob, &[&media.id]).await?;
        }
    }
    Ok(())
}

#[async_trait]
impl RelationStore for PostgresStore {
    async fn append_relation(&self, msg: NewMessage, rel: Relation) -> StoreResult<RelationAppend> {
        append_relation_with(self, msg, rel, None).await
    }

    async fn append_relation_capped(
        &self,
        msg: NewMessage,
        rel: Relation,
        caps: RelationCaps,
    ) -> StoreResult<RelationAppend> {
        append_relation_with(self, msg, rel, Some(caps)).await
    }

    async fn reaction_tally(
        &self,
        conv: &Conv,
        target_seq: u64,
        user: &str,
        key: &str,
    ) -> StoreResult<ReactionTally> {
        let c = self.client().await?;
        read_tally(&c, &conv.to_string(), to_sql_int(target_seq), user, key).await.map_err(pg)
    }
}
