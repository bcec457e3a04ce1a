//! Messages: appends (a gapless per-conversation `seq` from a locked counter
//! row), history pages, single messages, the conversation list with its
//! unread counts, and read/receive cursors.

use super::PostgresStore;
use super::batch::Queued;
use super::pool::{TRANSIENT_ATTEMPTS, is_transient, pg};
use super::rows::{col, cursor_from, msg_from_row, msgs_from_rows};
use crate::store::MessageStore;
use crate::store::shared::{
    UnreadParts, attach_reactions, closed, content_span, from_sql_int, keep_most_recent, parse_conv, to_json,
    to_sql_int, unread_count,
};
use crate::store::{Appended, ConvSummary, Cursor, NewMessage, Page, QueuedAppend, StoreError, StoreResult};
use async_trait::async_trait;
use courier_proto::{Conv, Msg};
use deadpool_postgres::{Object, Transaction};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use tokio::sync::oneshot;
use tokio_postgres::{IsolationLevel, Row};

/// The error for a batcher that no longer answers (its task ended).
fn gone() -> StoreError {
    StoreError::Unavailable("the PostgreSQL append batcher stopped".into())
}

pub(super) async fn find_by_cid(c: &Object, from: &str, cid: &str) -> StoreResult<Option<Msg>> {
    let stmt = c
        .prepare_cached(concat!("SELECT ", msg_columns!(), " FROM messages WHERE sender = $1 AND cid = $2"))
        .await
        .map_err(pg)?;
    c.query_opt(&stmt, &[&from, &cid]).await.map_err(pg)?.as_ref().map(msg_from_row).transpose()
}

async fn read_cursor(c: &Object, conv: &str, user: &str) -> StoreResult<Cursor> {
    let stmt = c
        .prepare_cached("SELECT recv_seq, read_seq FROM cursors WHERE conv = $1 AND user_id = $2")
        .await
        .map_err(pg)?;
    match c.query_opt(&stmt, &[&conv, &user]).await.map_err(pg)? {
        Some(r) => Ok(cursor_from(col(&r, 0)?, col(&r, 1)?)),
        None => Ok(Cursor::default()),
    }
}

/// Inside `tx`: the conversation's counters, the row, the DM listing and
/// the mentions. `None` when `(from, cid)` was committed by someone else
/// meanwhile (the caller rolls back, undoing the counter bump).
pub(super) async fn insert_message(
    tx: &Transaction<'_>,
    m: &NewMessage,
    conv: &str,
    rel_target: Option<&str>,
) -> Result<Option<Msg>, tokio_postgres::Error> {
    let bump = tx
        .prepare_cached(
            "INSERT INTO conversations AS c (conv, last_seq, last_ts, rel_count) VALUES ($1, 1, $2, $3) \
             ON CONFLICT (conv) DO UPDATE SET last_seq = c.last_seq + 1, last_ts = excluded.last_ts, \
                 rel_count = c.rel_count + excluded.rel_count \
             RETURNING last_seq, rel_count",
        )
        .await?;
    // Locks the counter row until this transaction ends.
    let row = tx.query_one(&bump, &[&conv, &m.ts, &i64::from(rel_target.is_some())]).await?;
    let (seq, rel_count): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
    let mid = ulid::Ulid::new().to_string();
    let insert = tx
        .prepare_cached(
            "INSERT INTO messages (conv, seq, mid, cid, sender, target, kind, body, reply_to, ts, rel_target, rel_count) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (sender, cid) DO NOTHING",
        )
        .await?;
    let (target, body) = (to_json(&m.to), to_json(&m.body));
    let inserted = tx
        .execute(
            &insert,
            &[
                &conv,
                &seq,
                &mid,
                &m.cid,
                &m.from,
                &target,
                &m.kind,
                &body,
                &m.reply_to,
                &m.ts,
                &rel_target,
                &rel_count,
            ],
        )
        .await?;
    if inserted == 0 {
        return Ok(None);
    }
    if let (1, Conv::Dm(a, b)) = (seq, &m.conv) {
        // The first message lists the DM for both parties (once for dm:a:a).
        let list = tx
            .prepare_cached(
                "INSERT INTO dm_members (user_id, conv, peer) VALUES ($1, $2, $3), ($3, $2, $1) \
                 ON CONFLICT DO NOTHING",
            )
            .await?;
        tx.execute(&list, &[a, &conv, b]).await?;
    }
    let mentioned: Vec<&str> = m.mentions.iter().map(String::as_str).filter(|u| *u != m.from).collect();
    if !mentioned.is_empty() {
        let mention = tx
            .prepare_cached(
                "INSERT INTO mentions (user_id, conv, seq) SELECT u, $2, $3 FROM unnest($1::text[]) AS u \
                 ON CONFLICT DO NOTHING",
            )
            .await?;
        tx.execute(&mention, &[&mentioned, &conv, &seq]).await?;
    }
    Ok(Some(stored_msg(m, seq, mid)))
}

/// The message `m` became, stored with `seq` and `mid`.
pub(super) fn stored_msg(m: &NewMessage, seq: i64, mid: String) -> Msg {
    Msg::new(
        m.conv.clone(),
        from_sql_int(seq),
        mid,
        m.cid.clone(),
        m.from.clone(),
        m.to.clone(),
        m.kind.clone(),
        m.body.clone(),
        m.ts,
        m.reply_to.clone(),
    )
}

/// One transaction of [`MessageStore::append`]. `None` when `(from, cid)` was
/// committed by someone else meanwhile.
async fn try_append(
    c: &mut Object,
    m: &NewMessage,
    conv: &str,
) -> Result<Option<Msg>, tokio_postgres::Error> {
    let tx = c.transaction().await?;
    match insert_message(&tx, m, conv, None).await? {
        Some(msg) => {
            tx.commit().await?;
            Ok(Some(msg))
        }
        None => {
            // Undo the counter bump; the original is committed (ON CONFLICT
            // waited for it) and readable once this transaction is gone.
            tx.rollback().await?;
            Ok(None)
        }
    }
}

/// [`MessageStore::append`] of one message in a transaction of its own:
/// what a batch falls back to when its statement is refused.
pub(super) async fn append_alone(c: &mut Object, msg: &NewMessage) -> StoreResult<Appended> {
    // The common retry needs no transaction and no lock.
    if let Some(original) = find_by_cid(c, &msg.from, &msg.cid).await? {
        return Ok(Appended { msg: original, dup: true });
    }
    let conv = msg.conv.to_string();
    let mut attempt = 0;
    loop {
        attempt += 1;
        match try_append(c, msg, &conv).await {
            Ok(Some(msg)) => return Ok(Appended { msg, dup: false }),
            Ok(None) => {
                return match find_by_cid(c, &msg.from, &msg.cid).await? {
                    Some(original) => Ok(Appended { msg: original, dup: true }),
                    None => Err(StoreError::Postgres(format!(
                        "({}, {}) conflicted with a message that is not there",
                        msg.from, msg.cid
                    ))),
                };
            }
            Err(e) if is_transient(&e) && attempt < TRANSIENT_ATTEMPTS => continue,
            // A failed COMMIT leaves the outcome unknown; a retry with
            // the same (from, cid) resolves it either way.
            Err(e) => return Err(pg(e)),
        }
    }
}

/// The stored messages among `msgs`' `(from, cid)`, in one query.
pub(super) async fn find_by_cids(
    c: &Object,
    msgs: &[&NewMessage],
) -> StoreResult<HashMap<(String, String), Msg>> {
    let stmt = c
        // One lookup of the unique index per key. The `LIMIT` keeps the
        // subquery from being flattened into a join: the cached plan, made
        // while the table was small, was then a hash join over a scan of the
        // whole table (3–5 ms a call at 30,000 messages).
        .prepare_cached(concat!(
            "SELECT m.* FROM unnest($1::text[], $2::text[]) AS k(sender, cid) CROSS JOIN LATERAL (SELECT ",
            msg_columns!(),
            " FROM messages WHERE sender = k.sender AND cid = k.cid LIMIT 1) AS m"
        ))
        .await
        .map_err(pg)?;
    let senders: Vec<&str> = msgs.iter().map(|m| m.from.as_str()).collect();
    let cids: Vec<&str> = msgs.iter().map(|m| m.cid.as_str()).collect();
    let rows = c.query(&stmt, &[&senders, &cids]).await.map_err(pg)?;
    rows.iter().map(|r| msg_from_row(r).map(|m| ((m.from.clone(), m.cid.clone()), m))).collect()
}

/// Attaches the reactions of the content messages of `page` (one range read).
async fn load_reactions(c: &Object, conv: &str, page: &mut [Msg]) -> StoreResult<()> {
    let Some((first, last)) = content_span(page) else { return Ok(()) };
    let stmt = c
        .prepare_cached(
            "SELECT target_seq, key, user_id FROM reactions \
             WHERE conv = $1 AND target_seq BETWEEN $2 AND $3 ORDER BY target_seq, seq",
        )
        .await
        .map_err(pg)?;
    let rows = c.query(&stmt, &[&conv, &to_sql_int(first), &to_sql_int(last)]).await.map_err(pg)?;
    let rows = rows
        .iter()
        .map(|r| Ok((from_sql_int(col(r, 0)?), col(r, 1)?, col(r, 2)?)))
        .collect::<StoreResult<Vec<_>>>()?;
    attach_reactions(page, rows);
    Ok(())
}

#[async_trait]
impl MessageStore for PostgresStore {
    async fn append(&self, msg: NewMessage) -> StoreResult<Appended> {
        self.queue_append(msg).await.await
    }

    /// Queued for this store's batcher ([`super::batch`]): appends queued
    /// on this node are stored in queue order, and the returned future
    /// completes once the append's batch committed. (An append queued on
    /// another node may be committed first.)
    async fn queue_append(&self, msg: NewMessage) -> QueuedAppend {
        let (reply, stored) = oneshot::channel();
        let queued = if self.closed.load(Ordering::Acquire) {
            Err(closed())
        } else {
            self.appends.send(Queued { msg, reply }).await.map_err(|_| gone())
        };
        Box::pin(async move {
            queued?;
            stored.await.map_err(|_| gone())?
        })
    }

    async fn history(&self, conv: &Conv, page: Page, limit: u32) -> StoreResult<(Vec<Msg>, bool)> {
        let c = self.client().await?;
        let conv = conv.to_string();
        let limit = limit.max(1);
        // One row beyond the page tells whether more exist in that direction.
        let fetch = i64::from(limit) + 1;
        let limit = limit as usize;
        let (rows, newest_first) = match page {
            Page::Latest => {
                let stmt = c
                    .prepare_cached(concat!(
                        "SELECT ",
                        msg_columns!(),
                        " FROM messages WHERE conv = $1 ORDER BY seq DESC LIMIT $2"
                    ))
                    .await
                    .map_err(pg)?;
                (c.query(&stmt, &[&conv, &fetch]).await.map_err(pg)?, true)
            }
            Page::After(after) => {
                let stmt = c
                    .prepare_cached(concat!(
                        "SELECT ",
                        msg_columns!(),
                        " FROM messages WHERE conv = $1 AND seq > $3 ORDER BY seq ASC LIMIT $2"
                    ))
                    .await
                    .map_err(pg)?;
                (c.query(&stmt, &[&conv, &fetch, &to_sql_int(after)]).await.map_err(pg)?, false)
            }
            Page::Before(before) => {
                let stmt = c
                    .prepare_cached(concat!(
                        "SELECT ",
                        msg_columns!(),
                        " FROM messages WHERE conv = $1 AND seq < $3 ORDER BY seq DESC LIMIT $2"
                    ))
                    .await
                    .map_err(pg)?;
                (c.query(&stmt, &[&conv, &fetch, &to_sql_int(before)]).await.map_err(pg)?, true)
            }
        };
        let mut msgs = msgs_from_rows(&rows)?;
        let more = msgs.len() > limit;
        msgs.truncate(limit);
        if newest_first {
            msgs.reverse();
        }
        // A relation committed between the two reads only makes the
        // aggregates newer than the page, which they may be anyway.
        load_reactions(&c, &conv, &mut msgs).await?;
        Ok((msgs, more))
    }

    async fn message(&self, conv: &Conv, mid: &str) -> StoreResult<Option<Msg>> {
        let c = self.client().await?;
        let conv = conv.to_string();
        let stmt = c
            .prepare_cached(concat!("SELECT ", msg_columns!(), " FROM messages WHERE mid = $1 AND conv = $2"))
            .await
            .map_err(pg)?;
        let Some(row) = c.query_opt(&stmt, &[&mid, &conv]).await.map_err(pg)? else { return Ok(None) };
        let mut one = [msg_from_row(&row)?];
        load_reactions(&c, &conv, &mut one).await?;
        let [msg] = one;
        Ok(Some(msg))
    }

    async fn message_by_cid(&self, from: &str, cid: &str) -> StoreResult<Option<Msg>> {
        let c = self.client().await?;
        find_by_cid(&c, from, cid).await
    }

    async fn conv_last(&self, conv: &Conv) -> StoreResult<(u64, i64)> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached("SELECT last_seq, last_ts FROM conversations WHERE conv = $1")
            .await
            .map_err(pg)?;
        match c.query_opt(&stmt, &[&conv.to_string()]).await.map_err(pg)? {
            Some(r) => Ok((from_sql_int(col(&r, 0)?), col(&r, 1)?)),
            None => Ok((0, 0)),
        }
    }

    async fn recent_conversations(&self, user: &str, limit: u32) -> StoreResult<(Vec<ConvSummary>, bool)> {
        let mut c = self.client().await?;
        // One snapshot for both lists and the pins.
        let tx = c
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(pg)?;
        let dms = tx
            .prepare_cached(concat!(
                "SELECT d.conv, c.last_seq, c.last_ts, mine.recv_seq, mine.read_seq, ",
                unread_columns!(
                    "d.conv",
                    "d.user_id",
                    "x.recalled",
                    own_content_after!("d.conv", "d.user_id")
                ),
                ", peer.recv_seq, peer.read_seq \
                 FROM (SELECT d.conv, d.user_id, d.peer FROM dm_members d \
                       JOIN conversations c ON c.conv = d.conv \
                       WHERE d.user_id = $1 ORDER BY c.last_ts DESC LIMIT $2) d \
                 JOIN conversations c ON c.conv = d.conv \
                 LEFT JOIN cursors mine ON mine.conv = d.conv AND mine.user_id = d.user_id \
                 LEFT JOIN cursors peer ON peer.conv = d.conv AND peer.user_id = d.peer"
            ))
            .await
            .map_err(pg)?;
        let channels = tx
            .prepare_cached(concat!(
                "SELECT m.channel, c.last_seq, c.last_ts, mine.recv_seq, mine.read_seq, ",
                unread_columns!(
                    "'ch:' || m.channel",
                    "m.user_id",
                    "x.recalled",
                    own_content_after!("'ch:' || m.channel", "m.user_id")
                ),
                " FROM (SELECT m.channel, m.user_id FROM channel_members m \
                       LEFT JOIN conversations c ON c.conv = 'ch:' || m.channel \
                       WHERE m.user_id = $1 ORDER BY coalesce(c.last_ts, 0) DESC LIMIT $2) m \
                 LEFT JOIN conversations c ON c.conv = 'ch:' || m.channel \
                 LEFT JOIN cursors mine ON mine.conv = 'ch:' || m.channel AND mine.user_id = m.user_id"
            ))
            .await
            .map_err(pg)?;
        // One more than asked for: whether there were more.
        let fetch = i64::from(limit) + 1;
        let dm_rows = tx.query(&dms, &[&user, &fetch]).await.map_err(pg)?;
        let channel_rows = tx.query(&channels, &[&user, &fetch]).await.map_err(pg)?;

        // Columns 1-4 of each list, then `unread_columns!` from 5 on.
        let summary = |r: &Row, conv: Conv, peer_cursor: Option<Cursor>| -> StoreResult<ConvSummary> {
            let cursor = cursor_from(col(r, 3)?, col(r, 4)?);
            let last_seq = from_sql_int(col::<Option<i64>>(r, 1)?.unwrap_or(0));
            let parts = UnreadParts {
                last_seq,
                rel_total: from_sql_int(col::<Option<i64>>(r, 5)?.unwrap_or(0)),
                read_seq: cursor.read_seq,
                rel_at_read: from_sql_int(col(r, 6)?),
                own_after: from_sql_int(col(r, 7)?),
                recalled_after: from_sql_int(col(r, 8)?),
            };
            Ok(ConvSummary {
                conv,
                last_seq,
                last_ts: col::<Option<i64>>(r, 2)?.unwrap_or(0),
                cursor,
                peer_cursor,
                unread: unread_count(parts),
                mentions_unread: from_sql_int(col(r, 9)?),
                pins: Vec::new(),
            })
        };
        let mut out = Vec::with_capacity(dm_rows.len() + channel_rows.len());
        for r in &dm_rows {
            let peer = cursor_from(col(r, 10)?, col(r, 11)?);
            out.push(summary(r, parse_conv(&col::<String>(r, 0)?)?, Some(peer))?);
        }
        for r in &channel_rows {
            out.push(summary(r, Conv::channel(&col::<String>(r, 0)?), None)?);
        }
        let more = keep_most_recent(&mut out, limit);
        let convs: Vec<String> = out.iter().map(|s| s.conv.to_string()).collect();
        let pins = tx
            .prepare_cached(
                "SELECT conv, mid FROM messages WHERE pin_seq IS NOT NULL AND conv = ANY($1) ORDER BY conv, pin_seq",
            )
            .await
            .map_err(pg)?;
        let pin_rows = tx.query(&pins, &[&convs]).await.map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        for r in &pin_rows {
            let conv = parse_conv(&col::<String>(r, 0)?)?;
            if let Ok(i) = out.binary_search_by(|s| s.conv.cmp(&conv)) {
                out[i].pins.push(col(r, 1)?);
            }
        }
        Ok((out, more))
    }

    async fn advance_cursor(
        &self,
        conv: &Conv,
        user: &str,
        recv: Option<u64>,
        read: Option<u64>,
    ) -> StoreResult<Cursor> {
        let c = self.client().await?;
        let conv = conv.to_string();
        // One statement: clamp to last_seq, then move forward only. The
        // upsert row-locks the cursor, so concurrent advances (from any
        // node) combine to the maximum. Nothing is written when nothing
        // would change.
        let stmt = c
            .prepare_cached(
                "WITH last AS (SELECT coalesce((SELECT last_seq FROM conversations WHERE conv = $1), 0) AS seq), \
                      want AS (SELECT least($4::bigint, seq) AS read, \
                                      greatest(least($3::bigint, seq), least($4::bigint, seq)) AS recv \
                               FROM last) \
                 INSERT INTO cursors AS cur (conv, user_id, recv_seq, read_seq) \
                 SELECT $1, $2, want.recv, want.read FROM want WHERE want.recv > 0 \
                 ON CONFLICT (conv, user_id) DO UPDATE SET \
                     read_seq = greatest(cur.read_seq, excluded.read_seq), \
                     recv_seq = greatest(cur.recv_seq, excluded.recv_seq, cur.read_seq) \
                 WHERE excluded.read_seq > cur.read_seq OR excluded.recv_seq > cur.recv_seq \
                 RETURNING recv_seq, read_seq",
            )
            .await
            .map_err(pg)?;
        let (recv, read) = (to_sql_int(recv.unwrap_or(0)), to_sql_int(read.unwrap_or(0)));
        match c.query_opt(&stmt, &[&conv, &user, &recv, &read]).await.map_err(pg)? {
            Some(r) => Ok(cursor_from(col(&r, 0)?, col(&r, 1)?)),
            // Unchanged: the stored cursor is the answer.
            None => read_cursor(&c, &conv, user).await,
        }
    }

    async fn cursor(&self, conv: &Conv, user: &str) -> StoreResult<Cursor> {
        let c = self.client().await?;
        read_cursor(&c, &conv.to_string(), user).await
    }
}
