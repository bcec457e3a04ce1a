//! Content appends on PostgreSQL in batches: one statement, one commit and
//! one fsync for every append queued while the previous batch was being
//! written, instead of a transaction of five round trips per message.
//!
//! Measured before this (docs/benchmarks.md, twenty-second round): one node
//! spent about 400 µs of its own CPU per message, and PostgreSQL as much
//! again, most of it waking each other for the round trips; 200 pairs could
//! not keep up with 2,000 msg/s.
//!
//! # How
//!
//! [`start`] spawns one task per store that takes what is queued (up to
//! [`MAX_BATCH`]) and writes it, one batch at a time, so appends queued on
//! this node are stored in the order they were queued (a session's pipelined
//! sends keep their order; see [`MessageStore::queue_append`]). A batch:
//!
//! 1. A repeated `(from, cid)` inside the batch waits for its first
//!    occurrence and is answered as its duplicate.
//! 2. One query finds the `(from, cid)` already stored: those are answered
//!    with the original, as [`MessageStore::append`] does.
//! 3. One statement ([`BATCH_INSERT`]) stores the rest: every conversation's
//!    counter row moves by its count (rows locked in `conv` order, so two
//!    nodes' batches cannot deadlock on them), the messages get the seqs in
//!    between in queue order, and the DM listings and mentions follow, as in
//!    [`insert_message`]. A single statement is its own transaction: it
//!    commits whole (`synchronous_commit=on`: durable when it returns) or
//!    not at all.
//! 4. If it fails for a reason of its own (typically a `(from, cid)` another
//!    node stored meanwhile: the unique key refuses the whole statement),
//!    nothing of it stays, and each append is then made alone, the way
//!    [`MessageStore::append`] always did, so one append's trouble is never
//!    another's. A lost connection fails the batch: the outcome of its commit
//!    is unknown, and the senders' retries with the same `cid` resolve it.
//!
//! [`MessageStore::queue_append`]: crate::store::MessageStore::queue_append
//! [`MessageStore::append`]: crate::store::MessageStore::append
//! [`insert_message`]: super::messages::insert_message

use super::messages::{append_alone, find_by_cids, stored_msg};
use super::pool::{TRANSIENT_ATTEMPTS, client_of, is_transient, pg};
use crate::store::shared::to_json;
use crate::store::{Appended, NewMessage, StoreError, StoreResult};
use courier_proto::{Conv, Msg};
use deadpool_postgres::Pool;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use tokio::sync::{mpsc, oneshot};

/// Appends written by one statement at most.
pub(super) const MAX_BATCH: usize = 256;

/// Appends that may wait for the batcher before senders are slowed down.
const QUEUE_DEPTH: usize = 4 * MAX_BATCH;

/// One queued append and where its outcome goes.
pub(super) struct Queued {
    pub(super) msg: NewMessage,
    pub(super) reply: oneshot::Sender<StoreResult<Appended>>,
}

/// Stores a batch of new content messages (see the module docs). Inputs in
/// queue order: `$1` conv, `$2` mid, `$3` cid, `$4` sender, `$5` target,
/// `$6` kind, `$7` body, `$8` reply_to, `$9` ts, `$10`/`$11` the two
/// parties of a DM (null for a channel); `$12`/`$13` the mentions as
/// (position in the batch, from 1; user). Returns `mid, seq` of each row.
const BATCH_INSERT: &str = "\
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                         $8::text[], $9::bigint[], $10::text[], $11::text[])
        WITH ORDINALITY AS t(conv, mid, cid, sender, target, kind, body, reply_to, ts, dm_a, dm_b, ord)
), counts AS (
    SELECT conv, count(*) AS n, max(ts) AS ts FROM input GROUP BY conv
), bumped AS (
    INSERT INTO conversations AS c (conv, last_seq, last_ts, rel_count)
    SELECT conv, n, ts, 0 FROM counts ORDER BY conv
    ON CONFLICT (conv) DO UPDATE SET last_seq = c.last_seq + excluded.last_seq, last_ts = excluded.last_ts
    RETURNING conv, last_seq, rel_count
), numbered AS (
    SELECT i.*, b.rel_count,
           b.last_seq - count(*) OVER (PARTITION BY i.conv) + row_number() OVER (PARTITION BY i.conv ORDER BY i.ord)
               AS seq
    FROM input i JOIN bumped b USING (conv)
), inserted AS (
    INSERT INTO messages (conv, seq, mid, cid, sender, target, kind, body, reply_to, ts, rel_target, rel_count)
    SELECT conv, seq, mid, cid, sender, target, kind, body, reply_to, ts, NULL, rel_count FROM numbered
    RETURNING mid, seq
), listed AS (
    INSERT INTO dm_members (user_id, conv, peer)
    SELECT v.u, n.conv, v.p FROM numbered n, LATERAL (VALUES (n.dm_a, n.dm_b), (n.dm_b, n.dm_a)) AS v(u, p)
    WHERE n.seq = 1 AND n.dm_a IS NOT NULL
    ON CONFLICT DO NOTHING
), mentioned AS (
    INSERT INTO mentions (user_id, conv, seq)
    SELECT m.u, n.conv, n.seq FROM unnest($12::bigint[], $13::text[]) AS m(ord, u) JOIN numbered n ON n.ord = m.ord
    ON CONFLICT DO NOTHING
)
SELECT mid, seq FROM inserted";

/// Starts the batcher of a store's appends; it ends when every sender of
/// the returned queue is dropped.
pub(super) fn start(pool: Pool, closed: Arc<AtomicBool>) -> mpsc::Sender<Queued> {
    let (queue, mut taken) = mpsc::channel::<Queued>(QUEUE_DEPTH);
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while taken.recv_many(&mut batch, MAX_BATCH).await > 0 {
            write_batch(&pool, &closed, &mut batch).await;
        }
    });
    queue
}

/// Writes `batch` and answers every append in it; leaves it empty.
async fn write_batch(pool: &Pool, closed: &AtomicBool, batch: &mut Vec<Queued>) {
    // 1. Repeats inside the batch follow their first occurrence.
    let (leaders, followers) = split_repeats(batch.drain(..), |q| (q.msg.from.clone(), q.msg.cid.clone()));
    let msgs: Vec<&NewMessage> = leaders.iter().map(|q| &q.msg).collect();
    let outcomes = store_batch(pool, closed, &msgs).await;
    for (leader, follower) in followers {
        let answer = match &outcomes[leader] {
            Ok(a) => Ok(Appended { msg: a.msg.clone(), dup: true }),
            Err(e) => Err(copy(e)),
        };
        let _ = follower.reply.send(answer);
    }
    for (q, outcome) in leaders.into_iter().zip(outcomes) {
        // The sender may have stopped waiting; the append stands regardless.
        let _ = q.reply.send(outcome);
    }
}

/// Splits `items` into leaders (the first of each key, in order) and
/// followers (a later item with a key already seen, with its leader's
/// index), so that a repeat inside one batch is answered as its first
/// occurrence's duplicate instead of being inserted twice.
fn split_repeats<T, K: Eq + std::hash::Hash>(
    items: impl ExactSizeIterator<Item = T>,
    key: impl Fn(&T) -> K,
) -> (Vec<T>, Vec<(usize, T)>) {
    use std::collections::hash_map::Entry;
    let mut first: HashMap<K, usize> = HashMap::with_capacity(items.len());
    let mut leaders = Vec::with_capacity(items.len());
    let mut followers = Vec::new();
    for item in items {
        match first.entry(key(&item)) {
            Entry::Occupied(e) => followers.push((*e.get(), item)),
            Entry::Vacant(e) => {
                e.insert(leaders.len());
                leaders.push(item);
            }
        }
    }
    (leaders, followers)
}

/// The outcome of each of `msgs` (distinct `(from, cid)`), in order.
async fn store_batch(pool: &Pool, closed: &AtomicBool, msgs: &[&NewMessage]) -> Vec<StoreResult<Appended>> {
    let fail_all = |e: StoreError| msgs.iter().map(|_| Err(copy(&e))).collect();
    let mut c = match client_of(pool, closed).await {
        Ok(c) => c,
        Err(e) => return fail_all(e),
    };
    // 2. What is stored already is answered with the original.
    let mut stored = match find_by_cids(&c, msgs).await {
        Ok(found) => found,
        Err(e) => return fail_all(e),
    };
    let new: Vec<&NewMessage> =
        msgs.iter().copied().filter(|m| !stored.contains_key(&(m.from.clone(), m.cid.clone()))).collect();
    // 3. The rest in one statement.
    let mut attempt = 0;
    let written = loop {
        attempt += 1;
        match insert_batch(&c, &new).await {
            Ok(w) => break Some(w),
            Err(e) if is_transient(&e) && attempt < TRANSIENT_ATTEMPTS => {}
            Err(e) => match pg(e) {
                gone @ StoreError::Unavailable(_) => return fail_all(gone),
                // 4. Refused as a whole: each alone.
                _ => break None,
            },
        }
    };
    let mut written = written.map(|w| w.into_iter());
    let mut out = Vec::with_capacity(msgs.len());
    for m in msgs {
        if let Some(original) = stored.remove(&(m.from.clone(), m.cid.clone())) {
            out.push(Ok(Appended { msg: original, dup: true }));
            continue;
        }
        out.push(match written.as_mut().map(|w| w.next().expect("one message per new append")) {
            Some(msg) if msg.seq > 0 => Ok(Appended { msg, dup: false }),
            Some(msg) => Err(StoreError::Postgres(format!("the batch stored no row for mid {}", msg.mid))),
            None => append_alone(&mut c, m).await,
        });
    }
    out
}

/// Runs [`BATCH_INSERT`] for `new` and returns their messages, in order.
async fn insert_batch(
    c: &deadpool_postgres::Object,
    new: &[&NewMessage],
) -> Result<Vec<Msg>, tokio_postgres::Error> {
    if new.is_empty() {
        return Ok(Vec::new());
    }
    let n = new.len();
    let mut conv = Vec::with_capacity(n);
    let mut mid = Vec::with_capacity(n);
    let (mut cid, mut sender, mut target, mut kind, mut body) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut reply_to, mut ts, mut dm_a, mut dm_b) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut mention_ord, mut mention_user) = (Vec::new(), Vec::new());
    for (i, m) in new.iter().enumerate() {
        conv.push(m.conv.to_string());
        mid.push(ulid::Ulid::new().to_string());
        cid.push(m.cid.as_str());
        sender.push(m.from.as_str());
        target.push(to_json(&m.to));
        kind.push(m.kind.as_str());
        body.push(to_json(&m.body));
        reply_to.push(m.reply_to.as_deref());
        ts.push(m.ts);
        let (a, b) = match &m.conv {
            Conv::Dm(a, b) => (Some(a.as_str()), Some(b.as_str())),
            _ => (None, None),
        };
        dm_a.push(a);
        dm_b.push(b);
        for u in m.mentions.iter().filter(|u| **u != m.from) {
            mention_ord.push(i as i64 + 1);
            mention_user.push(u.as_str());
        }
    }
    let stmt = c.prepare_cached(BATCH_INSERT).await?;
    let rows = c
        .query(
            &stmt,
            &[
                &conv,
                &mid,
                &cid,
                &sender,
                &target,
                &kind,
                &body,
                &reply_to,
                &ts,
                &dm_a,
                &dm_b,
                &mention_ord,
                &mention_user,
            ],
        )
        .await?;
    let mut seqs: HashMap<String, i64> = HashMap::with_capacity(rows.len());
    for r in &rows {
        seqs.insert(r.try_get(0)?, r.try_get(1)?);
    }
    Ok(new
        .iter()
        .zip(mid)
        .map(|(m, mid)| {
            // 0 (never a seq) when no row came back: reported by the caller.
            let seq = seqs.get(&mid).copied().unwrap_or_default();
            stored_msg(m, seq, mid)
        })
        .collect())
}

/// The same failure for another caller (`StoreError` holds sources that
/// cannot be cloned; PostgreSQL's are strings).
fn copy(e: &StoreError) -> StoreError {
    match e {
        StoreError::Postgres(s) => StoreError::Postgres(s.clone()),
        StoreError::Unusable(s) => StoreError::Unusable(s.clone()),
        StoreError::Unavailable(s) => StoreError::Unavailable(s.clone()),
        other => StoreError::Unavailable(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::split_repeats;

    #[test]
    fn repeats_inside_a_batch_follow_their_first_occurrence() {
        // (sender, cid, which copy)
        let batch =
            vec![("al", "1", 'a'), ("bo", "1", 'b'), ("al", "1", 'c'), ("al", "2", 'd'), ("bo", "1", 'e')];
        let (leaders, followers) = split_repeats(batch.into_iter(), |&(from, cid, _)| (from, cid));
        let leaders: Vec<char> = leaders.iter().map(|l| l.2).collect();
        let followers: Vec<(usize, char)> = followers.iter().map(|&(i, f)| (i, f.2)).collect();
        assert_eq!(leaders, ['a', 'b', 'd'], "the first of each (sender, cid), in queue order");
        assert_eq!(followers, [(0, 'c'), (1, 'e')], "each repeat names its first occurrence");
    }
}
