//! Content messages: appends, history pages, the conversation list and the
//! read and receive cursors.

use super::SqliteStore;
use super::rows::{RawMsg, collect_msgs};
use super::tail::note_appended;
use super::writer::Command;
use crate::store::MessageStore;
use crate::store::shared::{
    UnreadParts, attach_reactions, content_span, from_sql_int, keep_most_recent, parse_conv, to_json,
    to_sql_int, unread_count,
};
use crate::store::{Appended, ConvSummary, Cursor, NewMessage, Page, QueuedAppend, StoreError, StoreResult};
use async_trait::async_trait;
use courier_proto::{Conv, Msg};
use rusqlite::{Connection, OptionalExtension, Row, params};
use std::cell::RefCell;
use std::collections::HashMap;

// ---------------------------------------------------------------------------
// Statements of the writer thread and the read pool

/// The message `from` stored with `cid`, as stored (no reactions).
pub(super) fn find_by_cid(c: &Connection, from: &str, cid: &str) -> StoreResult<Option<Msg>> {
    c.prepare_cached(concat!("SELECT ", msg_columns!(), " FROM messages WHERE sender = ?1 AND cid = ?2"))?
        .query_row(params![from, cid], RawMsg::from_row)
        .optional()?
        .map(RawMsg::into_msg)
        .transpose()
}

pub(super) fn append_message(c: &Connection, m: NewMessage) -> StoreResult<Appended> {
    match insert_message(c, m, None)? {
        Inserted::New(appended) => Ok(appended),
        Inserted::Duplicate(m) => original(c, &m),
    }
}

/// The answer to a resend: the message stored with its `(sender, cid)`.
pub(super) fn original(c: &Connection, m: &NewMessage) -> StoreResult<Appended> {
    match find_by_cid(c, &m.from, &m.cid)? {
        Some(msg) => Ok(Appended { msg, dup: true }),
        None => Err(StoreError::Unavailable(format!("no message stored with cid {} of {}", m.cid, m.from))),
    }
}

/// What [`insert_message`] did.
pub(super) enum Inserted {
    New(Appended),
    /// `(sender, cid)` is already stored: nothing was written, and the
    /// message is handed back.
    Duplicate(NewMessage),
}

/// Writes a new message: the conversation's counters, the row, the DM
/// listing and the mentions, unless `(sender, cid)` is already stored, in
/// which case nothing is written. `rel_target` is the target of a relation.
pub(super) fn insert_message(
    c: &Connection,
    m: NewMessage,
    rel_target: Option<&str>,
) -> StoreResult<Inserted> {
    let conv = m.conv.to_string();
    // The conversation's counters are its newest row's, not kept in a
    // second row that every message would rewrite (one more scattered page
    // per commit); the writer remembers them from its own appends.
    let (last_seq, last_rel) = newest_known(c, &conv)?.map_or((0, 0), |n| (n.seq, n.rel_count));
    if last_seq == 0 {
        // Listing a new conversation is a change: a resend (of a message
        // stored elsewhere) is recognised before it.
        if find_by_cid(c, &m.from, &m.cid)?.is_some() {
            return Ok(Inserted::Duplicate(m));
        }
        c.prepare_cached("INSERT INTO conversations (conv) VALUES (?1) ON CONFLICT DO NOTHING")?
            .execute([&conv])?;
    }
    let seq = last_seq + 1;
    let rel_count = last_rel + i64::from(rel_target.is_some());
    let mid = ulid::Ulid::new().to_string();
    // The (cid, sender) index finds a resend while inserting: no lookup
    // before every append.
    let inserted = c
        .prepare_cached(
            "INSERT INTO messages (conv, seq, mid, cid, sender, target, kind, body, reply_to, ts, rel_target, \
             rel_count) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
             ON CONFLICT (cid, sender) DO NOTHING",
        )?
        .execute(params![
            conv,
            seq,
            mid,
            m.cid,
            m.from,
            to_json(&m.to),
            m.kind,
            to_json(&m.body),
            m.reply_to,
            m.ts,
            rel_target,
            rel_count
        ])?;
    if inserted == 0 {
        return Ok(Inserted::Duplicate(m));
    }
    let id = c.last_insert_rowid();
    remember_newest(&conv, Newest { seq, ts: m.ts, rel_count });
    // The conversation's span of the tail (a few pages, rewritten by every
    // commit, against one scattered page per conversation for an index).
    c.prepare_cached(
        "INSERT INTO message_tail (conv, first_id, newest_id) VALUES (?1, ?2, ?2) \
         ON CONFLICT (conv) DO UPDATE SET newest_id = excluded.newest_id",
    )?
    .execute(params![conv, id])?;
    note_appended(&conv, seq, id);
    if let (1, Conv::Dm(a, b)) = (seq, &m.conv) {
        // The first message lists the DM for both parties (once for dm:a:a).
        let mut list = c.prepare_cached(
            "INSERT INTO dm_members (user_id, conv, peer) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        )?;
        list.execute(params![a, conv, b])?;
        list.execute(params![b, conv, a])?;
    }
    if rel_target.is_none() {
        // The sender's own content after their read cursor (schema v4), and
        // that they wrote here (v10).
        c.prepare_cached(
            "INSERT INTO cursors (conv, user_id, recv_seq, read_seq, own_after, wrote) VALUES (?1, ?2, 0, 0, 1, 1) \
             ON CONFLICT (conv, user_id) DO UPDATE SET own_after = own_after + 1, wrote = 1",
        )?
        .execute(params![conv, m.from])?;
    }
    let mut mention = c.prepare_cached(
        "INSERT INTO mentions (user_id, conv, seq) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
    )?;
    for user in m.mentions.iter().filter(|u| **u != m.from) {
        mention.execute(params![user, conv, seq])?;
    }
    Ok(Inserted::New(Appended {
        msg: Msg::new(m.conv, from_sql_int(seq), mid, m.cid, m.from, m.to, m.kind, m.body, m.ts, m.reply_to),
        dup: false,
    }))
}

/// Attaches the reactions of the content messages of `page` (one range read).
pub(super) fn load_reactions(c: &Connection, conv: &str, page: &mut [Msg]) -> StoreResult<()> {
    let Some((first, last)) = content_span(page) else { return Ok(()) };
    let mut stmt = c.prepare_cached(
        "SELECT target_seq, key, user_id FROM reactions \
         WHERE conv = ?1 AND target_seq BETWEEN ?2 AND ?3 ORDER BY target_seq, seq",
    )?;
    let rows = stmt
        .query_map(params![conv, to_sql_int(first), to_sql_int(last)], |r| {
            Ok((from_sql_int(r.get(0)?), r.get(1)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    attach_reactions(page, rows);
    Ok(())
}

pub(super) fn read_cursor(c: &Connection, conv: &str, user: &str) -> StoreResult<Cursor> {
    let cursor = c
        .prepare_cached("SELECT recv_seq, read_seq FROM cursors WHERE conv = ?1 AND user_id = ?2")?
        .query_row(params![conv, user], |r| {
            Ok(Cursor { recv_seq: from_sql_int(r.get(0)?), read_seq: from_sql_int(r.get(1)?) })
        })
        .optional()?;
    Ok(cursor.unwrap_or_default())
}

thread_local! {
    /// The writer thread's copy of each conversation's newest counters, as
    /// of its own appends: a page read of the tail saved per append. Only
    /// the writer appends, so it is exact while every change is kept; the
    /// writer forgets it all whenever a write or a batch is rolled back
    /// ([`forget_newest`]). Empty on every other thread.
    static NEWEST: RefCell<HashMap<String, Newest>> = RefCell::new(HashMap::new());
}

/// Conversations [`NEWEST`] holds at most (about 64 bytes each).
const NEWEST_CAP: usize = 100_000;

fn remember_newest(conv: &str, n: Newest) {
    NEWEST.with(|known| {
        let mut known = known.borrow_mut();
        if known.len() >= NEWEST_CAP && !known.contains_key(conv) {
            known.clear();
        }
        known.insert(conv.to_owned(), n);
    });
}

/// [`newest`] for the writer thread: from its copy when it has one, else
/// read (and remembered: a rollback of this transaction forgets it again).
/// Never on a reader: their copy would not follow the writer's appends.
fn newest_known(c: &Connection, conv: &str) -> rusqlite::Result<Option<Newest>> {
    if let Some(n) = NEWEST.with(|known| known.borrow().get(conv).copied()) {
        return Ok(Some(n));
    }
    let read = newest(c, conv)?;
    if let Some(n) = read {
        remember_newest(conv, n);
    }
    Ok(read)
}

/// Drops the writer's copy of the conversations' counters: some write of
/// the open transaction was rolled back.
pub(super) fn forget_newest() {
    NEWEST.with(|known| known.borrow_mut().clear());
}

/// A conversation's newest message: its counters are the conversation's.
#[derive(Clone, Copy)]
pub(super) struct Newest {
    seq: i64,
    ts: i64,
    /// Relation messages up to and including it: all of the conversation's.
    rel_count: i64,
}

pub(super) fn newest(c: &Connection, conv: &str) -> rusqlite::Result<Option<Newest>> {
    c.prepare_cached(concat!("SELECT seq, ts, rel_count FROM messages WHERE id = ", newest_id!("?1")))?
        .query_row([conv], |r| Ok(Newest { seq: r.get(0)?, ts: r.get(1)?, rel_count: r.get(2)? }))
        .optional()
}

pub(super) fn read_last(c: &Connection, conv: &str) -> StoreResult<(u64, i64)> {
    Ok(newest(c, conv)?.map_or((0, 0), |n| (from_sql_int(n.seq), n.ts)))
}

pub(super) fn advance(
    c: &Connection,
    conv: &str,
    user: &str,
    recv: Option<u64>,
    read: Option<u64>,
) -> StoreResult<Cursor> {
    // On the writer thread (a write).
    let newest = newest_known(c, conv)?;
    let last = newest.map_or(0, |n| from_sql_int(n.seq));
    let now = read_cursor(c, conv, user)?;
    let clamp = |v: Option<u64>| v.unwrap_or(0).min(last);
    let read_seq = now.read_seq.max(clamp(read));
    let recv_seq = now.recv_seq.max(clamp(recv)).max(read_seq);
    let next = Cursor { recv_seq, read_seq };
    if next != now {
        // A moved read cursor counts the user's own content after it again,
        // and keeps the relation count of the message it is at (schema v8:
        // the conversation list reads it here instead of finding that
        // message, which may be anywhere in the conversation's tail).
        let (own_after, read_rel): (Option<i64>, Option<i64>) = if read_seq == now.read_seq {
            (None, None)
        } else if read_seq >= last {
            // Read to the end: nothing of the user's own after it.
            (Some(0), Some(newest.map_or(0, |n| n.rel_count)))
        } else {
            // Only the messages the cursor passes: the user's own content
            // among them is no longer after it. (A pass from the new cursor
            // to the end instead made every step of a cursor moved one
            // message at a time read the rest of the conversation, on the
            // writer every send waits for.) `own_after` only ever grows by
            // the user's own appends, all after the cursor, so this stays
            // exact.
            let (passed, read_rel): (i64, Option<i64>) = c
                .prepare_cached(concat!(
                    "SELECT coalesce(sum(sender = ?3 AND rel_target IS NULL), 0), \
                     max(CASE WHEN seq = ?4 THEN rel_count END) FROM messages WHERE id IN (",
                    conv_ids!("?1", "BETWEEN ?2 AND ?4"),
                    ")"
                ))?
                .query_row(params![conv, to_sql_int(now.read_seq + 1), user, to_sql_int(read_seq)], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
            let before: i64 = c
                .prepare_cached("SELECT own_after FROM cursors WHERE conv = ?1 AND user_id = ?2")?
                .query_row(params![conv, user], |r| r.get(0))
                .optional()?
                .unwrap_or(0);
            (Some((before - passed).max(0)), read_rel)
        };
        c.prepare_cached(
            "INSERT INTO cursors (conv, user_id, recv_seq, read_seq, own_after, read_rel) \
             VALUES (?1, ?2, ?3, ?4, coalesce(?5, 0), coalesce(?6, 0)) \
             ON CONFLICT (conv, user_id) DO UPDATE SET recv_seq = excluded.recv_seq, \
             read_seq = excluded.read_seq, own_after = coalesce(?5, own_after), \
             read_rel = coalesce(?6, read_rel)",
        )?
        .execute(params![
            conv,
            user,
            to_sql_int(recv_seq),
            to_sql_int(read_seq),
            own_after,
            read_rel
        ])?;
    }
    Ok(next)
}

/// Conversation ?1's messages in the tail with `$cond` (SQL text).
macro_rules! tail_rows {
    ($cond:literal) => {
        concat!("SELECT ", msg_columns!(), " FROM messages WHERE ", tail_span!("?1"), " AND conv = ?1", $cond)
    };
}

/// Up to ?2 of conversation ?1's indexed messages with `$cond`, the
/// nearest first in `$dir` (`ASC` from the oldest, `DESC` from the newest).
macro_rules! indexed_rows {
    ($cond:literal, $dir:literal) => {
        concat!(
            "SELECT ",
            msg_columns!(),
            " FROM messages WHERE id IN (SELECT id FROM message_order WHERE conv = ?1",
            $cond,
            " ORDER BY seq ",
            $dir,
            " LIMIT ?2) ORDER BY seq ",
            $dir
        )
    };
}

/// The messages a page statement reads.
fn page_rows(c: &Connection, sql: &str, p: impl rusqlite::Params) -> StoreResult<Vec<Msg>> {
    let mut stmt = c.prepare_cached(sql)?;
    collect_msgs(stmt.query_map(p, RawMsg::from_row)?)
}

#[async_trait]
impl MessageStore for SqliteStore {
    async fn append(&self, msg: NewMessage) -> StoreResult<Appended> {
        // A resend is found before the first change (or by the insert,
        // which then changes nothing), and the inserts can only fail on an
        // engine error: no savepoint needed.
        self.write_unisolated(move |c| append_message(c, msg)).await
    }

    async fn queue_append(&self, msg: NewMessage) -> QueuedAppend {
        // The writer runs its queue in order, so a seq is taken in the
        // order the appends were queued.
        Box::pin(self.enqueue(Command::write_unisolated(move |c| append_message(c, msg))).await)
    }

    async fn history(&self, conv: &Conv, page: Page, limit: u32) -> StoreResult<(Vec<Msg>, bool)> {
        let conv = conv.to_string();
        let limit = limit.max(1);
        // One row beyond the page tells whether more exist in that direction.
        let fetch = i64::from(limit) + 1;
        let limit = limit as usize;
        self.read(move |c| {
            // One snapshot for the page and its reactions.
            let c = &c.unchecked_transaction()?;
            // The tail holds the conversation's newest messages and the
            // indexed part the older ones: newest first, the tail comes
            // first; oldest first, the indexed part does.
            let fetch_more = |got: usize| fetch - got as i64;
            let (mut msgs, newest_first) = match page {
                Page::Latest => {
                    let mut msgs = page_rows(
                        c,
                        concat!(tail_rows!(""), " ORDER BY id DESC LIMIT ?2"),
                        params![conv, fetch],
                    )?;
                    if fetch_more(msgs.len()) > 0 {
                        let sql = indexed_rows!("", "DESC");
                        msgs.extend(page_rows(c, sql, params![conv, fetch_more(msgs.len())])?);
                    }
                    (msgs, true)
                }
                Page::Before(before) => {
                    let before = to_sql_int(before);
                    let sql = concat!(tail_rows!(" AND seq < ?3"), " ORDER BY id DESC LIMIT ?2");
                    let mut msgs = page_rows(c, sql, params![conv, fetch, before])?;
                    if fetch_more(msgs.len()) > 0 {
                        let sql = indexed_rows!(" AND seq < ?3", "DESC");
                        msgs.extend(page_rows(c, sql, params![conv, fetch_more(msgs.len()), before])?);
                    }
                    (msgs, true)
                }
                Page::After(after) => {
                    let after = to_sql_int(after);
                    let sql = indexed_rows!(" AND seq > ?3", "ASC");
                    let mut msgs = page_rows(c, sql, params![conv, fetch, after])?;
                    if fetch_more(msgs.len()) > 0 {
                        let sql = concat!(tail_rows!(" AND seq > ?3"), " ORDER BY id ASC LIMIT ?2");
                        msgs.extend(page_rows(c, sql, params![conv, fetch_more(msgs.len()), after])?);
                    }
                    (msgs, false)
                }
            };
            let more = msgs.len() > limit;
            msgs.truncate(limit);
            if newest_first {
                msgs.reverse();
            }
            load_reactions(c, &conv, &mut msgs)?;
            Ok((msgs, more))
        })
        .await
    }

    async fn message(&self, conv: &Conv, mid: &str) -> StoreResult<Option<Msg>> {
        let (conv, mid) = (conv.to_string(), mid.to_owned());
        self.read(move |c| {
            let c = &c.unchecked_transaction()?;
            let found = c
                .prepare_cached(concat!(
                    "SELECT ",
                    msg_columns!(),
                    " FROM messages WHERE mid = ?1 AND conv = ?2"
                ))?
                .query_row(params![mid, conv], RawMsg::from_row)
                .optional()?;
            let Some(raw) = found else { return Ok(None) };
            let mut one = [raw.into_msg()?];
            load_reactions(c, &conv, &mut one)?;
            let [msg] = one;
            Ok(Some(msg))
        })
        .await
    }

    async fn message_by_cid(&self, from: &str, cid: &str) -> StoreResult<Option<Msg>> {
        let (from, cid) = (from.to_owned(), cid.to_owned());
        self.read(move |c| find_by_cid(c, &from, &cid)).await
    }

    async fn conv_last(&self, conv: &Conv) -> StoreResult<(u64, i64)> {
        let conv = conv.to_string();
        self.read(move |c| read_last(c, &conv)).await
    }

    async fn recent_conversations(&self, user: &str, limit: u32) -> StoreResult<(Vec<ConvSummary>, bool)> {
        let user = user.to_owned();
        self.read(move |c| {
            let tx = c.unchecked_transaction()?;
            let cursor = |recv: Option<i64>, read: Option<i64>| Cursor {
                recv_seq: from_sql_int(recv.unwrap_or(0)),
                read_seq: from_sql_int(read.unwrap_or(0)),
            };
            // Columns 1-4 of each list, then `unread_columns!` from 5 on.
            let summary = |r: &Row<'_>| -> rusqlite::Result<ConvSummary> {
                let mine = cursor(r.get(3)?, r.get(4)?);
                let last_seq = from_sql_int(r.get::<_, Option<i64>>(1)?.unwrap_or(0));
                let parts = UnreadParts {
                    last_seq,
                    rel_total: from_sql_int(r.get::<_, Option<i64>>(5)?.unwrap_or(0)),
                    read_seq: mine.read_seq,
                    rel_at_read: from_sql_int(r.get(6)?),
                    own_after: from_sql_int(r.get(7)?),
                    recalled_after: from_sql_int(r.get(8)?),
                };
                Ok(ConvSummary {
                    // Set by the caller from column 0.
                    conv: Conv::channel(""),
                    last_seq,
                    last_ts: r.get::<_, Option<i64>>(2)?.unwrap_or(0),
                    cursor: mine,
                    peer_cursor: None,
                    unread: unread_count(parts),
                    mentions_unread: from_sql_int(r.get(9)?),
                    pins: Vec::new(),
                })
            };
            let mut out = Vec::new();
            let mut dms = tx.prepare_cached(concat!(
                "SELECT d.conv, c.seq, c.ts, mine.recv_seq, mine.read_seq, ",
                unread_columns!(
                    "d.conv",
                    "d.user_id",
                    "x.recalled = 1",
                    "coalesce(mine.own_after, 0)",
                    "mine.read_rel"
                ),
                ", peer.recv_seq, peer.read_seq \
                 FROM (SELECT d.conv, d.user_id, d.peer FROM dm_members d JOIN messages c ON c.id = ",
                newest_id!("d.conv"),
                " WHERE d.user_id = ?1 ORDER BY c.ts DESC LIMIT ?2) d \
                 JOIN messages c ON c.id = ",
                newest_id!("d.conv"),
                " LEFT JOIN cursors mine ON mine.conv = d.conv AND mine.user_id = d.user_id \
                 LEFT JOIN cursors peer ON peer.conv = d.conv AND peer.user_id = d.peer"
            ))?;
            let rows = dms.query_map(params![user, i64::from(limit) + 1], |r| {
                let peer = cursor(r.get(10)?, r.get(11)?);
                Ok((r.get::<_, String>(0)?, ConvSummary { peer_cursor: Some(peer), ..summary(r)? }))
            })?;
            for row in rows {
                let (conv, s) = row?;
                out.push(ConvSummary { conv: parse_conv(&conv)?, ..s });
            }
            let mut channels = tx.prepare_cached(concat!(
                "SELECT m.channel, c.seq, c.ts, mine.recv_seq, mine.read_seq, ",
                unread_columns!(
                    "'ch:' || m.channel",
                    "m.user_id",
                    "x.recalled = 1",
                    "coalesce(mine.own_after, 0)",
                    "mine.read_rel"
                ),
                " FROM (SELECT m.channel, m.user_id FROM channel_members m LEFT JOIN messages c ON c.id = ",
                newest_id!("('ch:' || m.channel)"),
                " WHERE m.user_id = ?1 ORDER BY coalesce(c.ts, 0) DESC LIMIT ?2) m \
                 LEFT JOIN messages c ON c.id = ",
                newest_id!("('ch:' || m.channel)"),
                " LEFT JOIN cursors mine ON mine.conv = 'ch:' || m.channel AND mine.user_id = m.user_id"
            ))?;
            let rows = channels.query_map(params![user, i64::from(limit) + 1], |r| {
                Ok(ConvSummary { conv: Conv::channel(&r.get::<_, String>(0)?), ..summary(r)? })
            })?;
            for row in rows {
                out.push(row?);
            }
            let more = keep_most_recent(&mut out, limit);
            let mut pins = tx.prepare_cached(
                "SELECT conv, mid FROM messages WHERE pin_seq IS NOT NULL AND conv IN ( \
                     SELECT conv FROM dm_members WHERE user_id = ?1 \
                     UNION ALL SELECT 'ch:' || channel FROM channel_members WHERE user_id = ?1) \
                 ORDER BY conv, pin_seq",
            )?;
            let rows = pins.query_map([&user], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            for row in rows {
                let (conv, mid) = row?;
                let conv = parse_conv(&conv)?;
                if let Ok(i) = out.binary_search_by(|s| s.conv.cmp(&conv)) {
                    out[i].pins.push(mid);
                }
            }
            Ok((out, more))
        })
        .await
    }

    async fn advance_cursor(
        &self,
        conv: &Conv,
        user: &str,
        recv: Option<u64>,
        read: Option<u64>,
    ) -> StoreResult<Cursor> {
        let (conv, user) = (conv.to_string(), user.to_owned());
        self.write(move |c| advance(c, &conv, &user, recv, read)).await
    }

    async fn cursor(&self, conv: &Conv, user: &str) -> StoreResult<Cursor> {
        let (conv, user) = (conv.to_string(), user.to_owned());
        self.read(move |c| read_cursor(c, &conv, &user)).await
    }
}
