//! The tail: messages not yet in `message_order`, and how the writer moves
//! them there, a few conversations at a time.
//!
//! # What holds (schema v8)
//!
//! - A conversation's messages not in `message_order` are exactly its rows
//!   from `message_tail.first_id` on (none when it has no row there): a
//!   conversation is indexed whole or not at all, so its tail is the newest
//!   part of it, and a reader finds it as a range of rowids.
//! - Every row at or below `message_order_mark` is in `message_order`. Rows
//!   above it may be too (conversations indexed ahead of older ones): the
//!   mark is one below the oldest row still to index.
//!
//! (Up to schema v7 the mark split the table in two: everything above it
//! was the tail, indexed in one step of every row once there were 512. A v7
//! database satisfies both rules, so the v8 migration changes no row; the
//! version only keeps a v7 build, whose bulk step would find rows above the
//! mark already indexed, from opening it.)
//!
//! # Why per conversation
//!
//! An index entry costs the page its `(conv, seq)` key falls in. The bulk
//! step of 512 rows over 200 busy conversations wrote about 200 scattered
//! pages for two or three entries each, and one such step ran every 50 ms
//! at 10k msg/s: it doubled the p99 send → deliver (docs/benchmarks.md,
//! issue 17). Here the tail grows to [`Indexing::from_rows`] and each step
//! then indexes the conversations whose oldest pending row is oldest, every
//! row of each, until it has [`Indexing::step_rows`] entries and the tail
//! is below the threshold again. A busy conversation's entries arrive a few
//! dozen at a time and share their pages; a step is short, and the oldest
//! rows always go first, so no conversation's span of the tail grows
//! without bound.
//!
//! # The writer's copy
//!
//! The writer keeps the rows to index in memory ([`PENDING`]): a step
//! inserts from it without reading the tail back. It is filled from the
//! database when unknown (at start, and after any rollback forgot it), by
//! one scan of the rows above the mark, and from then on by the writer's
//! own appends.

use rusqlite::{Connection, params};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

/// When and how much of the tail the writer indexes (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Indexing {
    /// Rows in the tail from which a step runs after a batch.
    pub(super) from_rows: usize,
    /// Entries a step writes at least: whole conversations, oldest first.
    pub(super) step_rows: usize,
}

impl Indexing {
    /// What the server runs with. Thresholds of 1,024 and 2,048 rows with
    /// steps of 128 did worse at 10k msg/s over 200 pairs (issue 17,
    /// eighteenth round).
    pub(super) const DEFAULT: Indexing = Indexing { from_rows: 4096, step_rows: 256 };
    /// Everything, after every batch (tests: reads through `message_order`).
    #[cfg(test)]
    pub(super) const EVERY_BATCH: Indexing = Indexing { from_rows: 1, step_rows: usize::MAX };
}

/// The rows the writer has yet to index, by conversation.
#[derive(Default)]
struct Pending {
    /// Whether this is the database's tail: false until read, and after a
    /// rollback ([`forget_pending`]).
    known: bool,
    /// Each conversation's `(seq, id)` to index, in seq order.
    convs: HashMap<String, Vec<(i64, i64)>>,
    /// The conversations of `convs` by their first (lowest) rowid there.
    oldest: BTreeMap<i64, String>,
    /// Rows in `convs`.
    rows: usize,
}

impl Pending {
    fn push(&mut self, conv: &str, seq: i64, id: i64) {
        self.rows += 1;
        if let Some(rows) = self.convs.get_mut(conv) {
            rows.push((seq, id));
        } else {
            self.convs.insert(conv.to_owned(), vec![(seq, id)]);
            self.oldest.insert(id, conv.to_owned());
        }
    }

    /// Reads the tail: each conversation's rows from its `first_id` on.
    fn load(c: &Connection) -> rusqlite::Result<Pending> {
        let mut pending = Pending { known: true, ..Pending::default() };
        let mut rows = c.prepare_cached(
            "SELECT m.conv, m.seq, m.id FROM messages m JOIN message_tail t ON t.conv = m.conv \
             WHERE m.id > (SELECT id FROM message_order_mark) AND m.id >= t.first_id ORDER BY m.id",
        )?;
        let mut rows = rows.query([])?;
        while let Some(r) = rows.next()? {
            pending.push(&r.get::<_, String>(0)?, r.get(1)?, r.get(2)?);
        }
        Ok(pending)
    }
}

thread_local! {
    /// The writer thread's copy of the tail (see the module docs). Empty
    /// and unknown on every other thread.
    static PENDING: RefCell<Pending> = RefCell::new(Pending::default());
}

/// Notes the writer's append of row `id`, message `seq` of `conv`, in the
/// open transaction (a rollback forgets it with the rest).
pub(super) fn note_appended(conv: &str, seq: i64, id: i64) {
    PENDING.with(|p| {
        let mut p = p.borrow_mut();
        if p.known {
            p.push(conv, seq, id);
        }
    });
}

/// Forgets the writer's copy of the tail: some write of the open
/// transaction was rolled back. The next step reads it again.
pub(super) fn forget_pending() {
    PENDING.with(|p| *p.borrow_mut() = Pending::default());
}

/// Whether a step is due: `how.from_rows` rows to index (may read the tail).
pub(super) fn step_due(c: &Connection, how: Indexing) -> rusqlite::Result<bool> {
    PENDING.with(|p| {
        let mut p = p.borrow_mut();
        if !p.known {
            *p = Pending::load(c)?;
        }
        Ok(p.rows >= how.from_rows.max(1))
    })
}

/// One step, in the caller's transaction: indexes the conversations whose
/// first row to index is oldest, all their rows each, until it has
/// `how.step_rows` entries and fewer than `how.from_rows` rows are left;
/// entries in `(conv, seq)` order. Moves the mark to one below the oldest
/// row left. True if it indexed anything. On an error the caller rolls
/// back and forgets the copy ([`forget_pending`]).
pub(super) fn index_step(c: &Connection, how: Indexing) -> rusqlite::Result<bool> {
    if !step_due(c, how)? {
        return Ok(false);
    }
    let (mut taken, left) = PENDING.with(|p| {
        let mut p = p.borrow_mut();
        let mut taken = Vec::new();
        let mut entries = 0;
        while entries < how.step_rows || p.rows - entries >= how.from_rows {
            let Some((_, conv)) = p.oldest.pop_first() else { break };
            let rows = p.convs.remove(&conv).unwrap_or_default();
            entries += rows.len();
            taken.push((conv, rows));
        }
        p.rows -= entries;
        (taken, p.oldest.first_key_value().map(|(first, _)| *first))
    });
    taken.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut insert = c.prepare_cached("INSERT INTO message_order (conv, seq, id) VALUES (?1, ?2, ?3)")?;
    for (conv, rows) in &taken {
        for (seq, id) in rows {
            insert.execute(params![conv, seq, id])?;
        }
    }
    let mut listed = c.prepare_cached("DELETE FROM message_tail WHERE conv = ?1")?;
    for (conv, _) in &taken {
        listed.execute([conv])?;
    }
    let mark = match left {
        Some(first) => first - 1,
        None => c.prepare_cached("SELECT coalesce(max(id), 0) FROM messages")?.query_row([], |r| r.get(0))?,
    };
    c.prepare_cached("UPDATE message_order_mark SET id = ?1")?.execute([mark])?;
    Ok(!taken.is_empty())
}
