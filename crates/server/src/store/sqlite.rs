//! The embedded engine: one SQLite file, `<data dir>/courier.db`.
//!
//! # Writes: one writer thread, group commit
//!
//! Every write is a closure sent over a bounded channel to a single
//! `std::thread` that owns the only read-write connection. The thread takes
//! the first queued command, drains whatever else is queued (up to
//! [`MAX_BATCH`]), runs them all inside one `BEGIN IMMEDIATE … COMMIT`, and
//! only then answers each caller through its oneshot. With
//! `synchronous=FULL` that is one fsync for the whole batch: under load the
//! cost of durability is shared by everyone who was waiting, and an
//! acknowledged write is on disk before the caller hears about it.
//!
//! Each command runs inside its own `SAVEPOINT`: a command that fails (or
//! panics) is rolled back to its savepoint and gets its own error, while the
//! rest of the batch commits. Message appends, the hot path, skip the
//! savepoint (it journals every page the append touches): they check
//! everything before their first change, so only an engine error can stop
//! one half way, and that fails the whole batch. Because there is exactly one writer,
//! per-conversation sequence numbers (newest seq + 1 inside the transaction)
//! are gapless without any further locking, and compare-and-set updates
//! (invitations) are plain conditional `UPDATE`s.
//!
//! # Reads: a small pool of read-only connections
//!
//! Reads run on [`READERS`] read-only connections through
//! `tokio::task::spawn_blocking`. WAL lets them proceed while the writer
//! commits. A writer replies only after `COMMIT`, so a caller that awaited a
//! write always reads it back.
//!
//! # Schema
//!
//! [`MIGRATIONS`] holds one SQL script per schema version; `PRAGMA
//! user_version` says how many have been applied. [`SqliteStore::open`]
//! applies the missing ones in one transaction and refuses a database written
//! by a newer build, or a file that is not a (Courier) SQLite database. It
//! never deletes or rewrites such a file.

use super::shared::{
    MentionScrub, RecallEffect, RelationEffect, RelationTarget, UnreadParts, apply_aggregates,
    attach_reactions, closed, content_span, first_media_id_since, from_sql_int, parse_conv, parse_object,
    parse_role, to_json, to_sql_int, unread_count,
};
use super::{
    Appended, ChannelRow, ConvSummary, Cursor, Departure, JoinOutcome, MediaMeta, NewChannel, NewMessage,
    Page, Relation, RelationAppend, StoreError, StoreResult, Transition, UploadQuota,
};
use super::{
    ChannelStore, InviteStore, MediaStore, MessageStore, ReactionCaps, ReactionTally, RelationStore,
    StoreAdmin, UserStore,
};
use async_trait::async_trait;
use courier_proto::{ChannelInfo, Conv, Invite, InviteState, Msg, Profile, Role, Target};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior, params};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::ops::Deref;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "courier.db";

/// Most commands committed together in one transaction.
pub const MAX_BATCH: usize = 512;

/// Read-only connections in the pool (the most reads running at once).
pub const READERS: usize = 4;

/// Commands that may wait for the writer before senders are slowed down.
const QUEUE_DEPTH: usize = 2 * MAX_BATCH;

/// How long a statement waits for a lock held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the checkpointer lets commits accumulate before copying the WAL
/// back into the database (one checkpoint per interval under load, none idle).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);
/// The writer's page cache (negative: KiB). Index pages of hot conversations
/// stay in memory instead of being read back for every insert. Not larger:
/// a commit after a page split scans the cache's whole hash table (SQLite
/// rekeys a page to a number past the end during the split, and ending the
/// transaction truncates the cache back), so the cost of every such commit
/// grows with the cache. 32 MiB kept up with 12-13.5k msg/s in the p2p
/// benchmark, 8 MiB with 14k at less CPU per message.
const WRITER_CACHE_KIB: i64 = 8 * 1024;
/// The WAL file is truncated back to this size after a checkpoint reset it.
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// Marks a file as Courier's (`PRAGMA application_id`, "CRR1").
const APPLICATION_ID: i64 = 0x4352_5231;

/// Schema scripts; entry `i` takes a database from `user_version` `i` to
/// `i + 1`. Append only: a released entry never changes, because databases
/// in the field were built from it.
/// Whether two users (?1, ?2) are members of one channel.
const SHARED_CHANNEL: &str = "SELECT 1 FROM channel_members x \
     JOIN channel_members y ON y.channel = x.channel AND y.user_id = ?2 WHERE x.user_id = ?1";
/// Whether a user (?2) has sent a content message in a conversation (?1).
const SENT_IN_CONV: &str = "SELECT 1 FROM messages WHERE conv = ?1 AND sender = ?2 AND rel_target IS NULL";

pub const MIGRATIONS: &[&str] = &[
    // v1
    r#"
    -- Everyone who ever signed in ("known" to call invitations).
    CREATE TABLE users (
        user_id    TEXT PRIMARY KEY,
        created    INTEGER NOT NULL,
        last_login INTEGER NOT NULL
    ) WITHOUT ROWID;

    -- Profile fields a user set; a NULL name shows as the user id.
    CREATE TABLE profiles (
        user_id TEXT PRIMARY KEY,
        name    TEXT,
        avatar  TEXT NOT NULL DEFAULT '',
        status  TEXT NOT NULL DEFAULT ''
    ) WITHOUT ROWID;

    -- When each user's last session ended.
    CREATE TABLE last_seen (
        user_id TEXT PRIMARY KEY,
        ts      INTEGER NOT NULL
    ) WITHOUT ROWID;

    -- One row per conversation with at least one message: the seq counter.
    CREATE TABLE conversations (
        conv     TEXT PRIMARY KEY,
        last_seq INTEGER NOT NULL,
        last_ts  INTEGER NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE messages (
        id       INTEGER PRIMARY KEY,
        conv     TEXT NOT NULL REFERENCES conversations (conv),
        seq      INTEGER NOT NULL,
        mid      TEXT NOT NULL UNIQUE,
        cid      TEXT NOT NULL,
        sender   TEXT NOT NULL,
        target   TEXT NOT NULL,   -- the Target as JSON: {"user":..} / {"channel":..}
        kind     TEXT NOT NULL,
        body     TEXT NOT NULL,   -- compact JSON object
        reply_to TEXT,
        ts       INTEGER NOT NULL,
        UNIQUE (conv, seq),
        UNIQUE (sender, cid)      -- idempotency, forever
    );

    -- The DMs each party sees in sync, written with the first message.
    CREATE TABLE dm_members (
        user_id TEXT NOT NULL,
        conv    TEXT NOT NULL REFERENCES conversations (conv),
        peer    TEXT NOT NULL,
        PRIMARY KEY (user_id, conv)
    ) WITHOUT ROWID;

    CREATE TABLE cursors (
        conv     TEXT NOT NULL,
        user_id  TEXT NOT NULL,
        recv_seq INTEGER NOT NULL,
        read_seq INTEGER NOT NULL,
        PRIMARY KEY (conv, user_id)
    ) WITHOUT ROWID;

    CREATE TABLE channels (
        name       TEXT PRIMARY KEY,
        title      TEXT NOT NULL,
        topic      TEXT NOT NULL,
        private    INTEGER NOT NULL,
        created_by TEXT,
        created    INTEGER NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE channel_members (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,   -- joining order
        channel TEXT NOT NULL REFERENCES channels (name),
        user_id TEXT NOT NULL,
        joined  INTEGER NOT NULL,
        UNIQUE (channel, user_id)
    );
    CREATE INDEX channel_members_by_user ON channel_members (user_id);

    CREATE TABLE invites (
        iid       TEXT PRIMARY KEY,
        sender    TEXT NOT NULL,
        recipient TEXT NOT NULL,
        room      TEXT NOT NULL,
        content   TEXT NOT NULL,  -- JSON object
        state     TEXT NOT NULL,
        created   INTEGER NOT NULL,
        expires   INTEGER NOT NULL,
        received  INTEGER NOT NULL,
        reason    TEXT,
        response  TEXT            -- JSON object
    );
    CREATE INDEX invites_pending_by_sender ON invites (sender) WHERE state = 'pending';
    CREATE INDEX invites_pending_by_recipient ON invites (recipient) WHERE state = 'pending';

    CREATE TABLE media (
        id      TEXT PRIMARY KEY,
        owner   TEXT NOT NULL,
        mime    TEXT NOT NULL,
        size    INTEGER NOT NULL,
        sha256  TEXT NOT NULL,
        created INTEGER NOT NULL
    ) WITHOUT ROWID;

    -- Bytes apart from the facts, so listing facts never pages blobs in.
    CREATE TABLE media_blobs (
        id    TEXT PRIMARY KEY REFERENCES media (id),
        bytes BLOB NOT NULL
    );
    "#,
    // v2: protocol v1.1 (edits, recalls, reactions, pins, mentions, roles)
    r#"
    -- Relation messages (edit, recall, reaction, pin) name their target;
    -- content messages carry what their relations did, so a history page
    -- never scans relations. All of it is written in the relation's
    -- transaction.
    ALTER TABLE messages ADD COLUMN rel_target TEXT;       -- relations: the target's mid
    -- Relation messages of the conversation up to and including this one
    -- (content messages up to seq n = n - this), for unread counts.
    ALTER TABLE messages ADD COLUMN rel_count INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN edited_text TEXT;      -- the newest edit's text
    ALTER TABLE messages ADD COLUMN edited_ts INTEGER;     -- and that edit's ts
    ALTER TABLE messages ADD COLUMN recalled INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN pinned INTEGER;        -- ts of the pin, while pinned
    ALTER TABLE messages ADD COLUMN pin_seq INTEGER;       -- seq of that pin: pinned-list order
    CREATE INDEX messages_edits ON messages (rel_target) WHERE kind = 'edit';
    CREATE INDEX messages_own_content ON messages (conv, sender, seq) WHERE rel_target IS NULL;
    CREATE INDEX messages_recalled ON messages (conv, seq) WHERE recalled = 1;
    CREATE INDEX messages_pinned ON messages (conv, pin_seq) WHERE pin_seq IS NOT NULL;

    -- Relation messages in the conversation.
    ALTER TABLE conversations ADD COLUMN rel_count INTEGER NOT NULL DEFAULT 0;

    -- Reactions that are on: one row per (target, key, user).
    CREATE TABLE reactions (
        conv       TEXT NOT NULL,
        target_seq INTEGER NOT NULL,
        key        TEXT NOT NULL,
        user_id    TEXT NOT NULL,
        seq        INTEGER NOT NULL,   -- the reaction that turned it on: order of users
        PRIMARY KEY (conv, target_seq, key, user_id)
    ) WITHOUT ROWID;

    -- Who a (not recalled) message mentions, for mentions_unread; never
    -- the message's own sender.
    CREATE TABLE mentions (
        user_id TEXT NOT NULL,
        conv    TEXT NOT NULL,
        seq     INTEGER NOT NULL,
        PRIMARY KEY (user_id, conv, seq)
    ) WITHOUT ROWID;

    -- Channel roles: the creator owns a channel (a v1 channel whose creator
    -- left goes to its longest-standing member; default channels have none).
    ALTER TABLE channel_members ADD COLUMN role TEXT NOT NULL DEFAULT 'member';
    UPDATE channel_members SET role = 'owner' WHERE id IN (
        SELECT coalesce(
            (SELECT m.id FROM channel_members m WHERE m.channel = c.name AND m.user_id = c.created_by),
            (SELECT min(m.id) FROM channel_members m WHERE m.channel = c.name))
        FROM channels c WHERE c.created_by IS NOT NULL);

    -- Users an owner or admin removed: they may not join again until an
    -- owner or admin adds them.
    CREATE TABLE channel_removals (
        channel TEXT NOT NULL REFERENCES channels (name),
        user_id TEXT NOT NULL,
        PRIMARY KEY (channel, user_id)
    ) WITHOUT ROWID;
    "#,
    // v3: a conversation's counters are read from its newest message
    r#"
    -- last_seq, last_ts and rel_count were rewritten with every message: one
    -- more scattered page in every commit. The newest row of the
    -- conversation holds the same values (seq, ts, rel_count; messages are
    -- never deleted), read through the (conv, seq) index. The table stays
    -- as the list of conversations the messages refer to.
    ALTER TABLE conversations DROP COLUMN last_seq;
    ALTER TABLE conversations DROP COLUMN last_ts;
    ALTER TABLE conversations DROP COLUMN rel_count;
    "#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Counters of the writer thread, for metrics (average batch size =
/// `writes / batches`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriterStats {
    /// Batches run, each one transaction and one fsync.
    pub batches: u64,
    /// Commands executed in them, failed ones included.
    pub writes: u64,
}

/// The SQLite implementation of [`Store`]. See the module docs for how
/// writes and reads are arranged.
///
/// Call [`StoreAdmin::close`] before exit: it waits for queued writes and
/// checkpoints the WAL. Merely dropping the store lets the writer thread
/// finish the queued writes in the background (nothing acknowledged is lost
/// either way: acknowledged means committed).
pub struct SqliteStore {
    path: PathBuf,
    commands: mpsc::Sender<Command>,
    readers: Arc<ReadPool>,
    closed: AtomicBool,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    stats: Arc<Stats>,
    /// Test stores live in a temporary directory removed with the store.
    #[cfg(test)]
    _temp_dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) `dir/courier.db`, migrates it to
    /// [`SCHEMA_VERSION`] and starts the writer thread.
    ///
    /// # Errors
    /// - [`StoreError::Io`] when `dir` cannot be created.
    /// - [`StoreError::Unusable`] when the file is not a SQLite database, is
    ///   corrupt, belongs to another application, or was written by a newer
    ///   build. The file is left exactly as it was.
    /// - [`StoreError::Sqlite`] for other engine failures (permissions,
    ///   locks held elsewhere past the busy timeout).
    pub fn open(dir: &Path) -> StoreResult<SqliteStore> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(DB_FILE);
        let unusable = |e: rusqlite::Error| unusable_if_damaged(&path, e);

        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        // The writer writes each commit's WAL frames in one system call
        // (store/walbuf.rs); without that VFS it still works, just slower.
        let mut conn = match super::walbuf::register() {
            Ok(()) => Connection::open_with_flags_and_vfs(&path, flags, super::walbuf::NAME),
            Err(e) => {
                tracing::warn!(error = %e, "the WAL write buffer is unavailable; using the default VFS");
                Connection::open_with_flags(&path, flags)
            }
        }
        .map_err(unusable)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(unusable)?;
        // Look before touching anything: these only read the header and
        // schema, so a foreign or damaged file fails here, unmodified.
        check_identity(&conn, &path).map_err(|e| match e {
            StoreError::Sqlite(e) => unusable(e),
            other => other,
        })?;

        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)).map_err(unusable)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(
                path = %path.display(),
                mode,
                "SQLite refused WAL mode; readers will wait for the writer"
            );
        }
        conn.pragma_update(None, "synchronous", "FULL").map_err(unusable)?;
        conn.pragma_update(None, "foreign_keys", true).map_err(unusable)?;
        migrate(&mut conn, &path)?;
        conn.set_prepared_statement_cache_capacity(64);
        // Checkpoints run on their own thread (below), not inside the
        // writer's commits: the single writer is the throughput bottleneck.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
        // Each write's savepoint journals the pages it touches: in memory,
        // not in a temporary file.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        let checkpoint_conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        checkpoint_conn.busy_timeout(BUSY_TIMEOUT)?;

        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let r = Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            r.busy_timeout(BUSY_TIMEOUT)?;
            r.set_prepared_statement_cache_capacity(64);
            readers.push(r);
        }

        let (commands, queue) = mpsc::channel(QUEUE_DEPTH);
        let stats = Arc::new(Stats::default());
        let writer = {
            let stats = stats.clone();
            std::thread::Builder::new()
                .name("courier-sqlite-writer".into())
                .spawn(move || writer_main(conn, checkpoint_conn, queue, &stats))?
        };
        Ok(SqliteStore {
            path,
            commands,
            readers: Arc::new(ReadPool {
                conns: Mutex::new(readers),
                permits: Arc::new(Semaphore::new(READERS)),
            }),
            closed: AtomicBool::new(false),
            writer: Mutex::new(Some(writer)),
            stats,
            #[cfg(test)]
            _temp_dir: None,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Counters of the writer thread so far.
    pub fn writer_stats(&self) -> WriterStats {
        WriterStats {
            batches: self.stats.batches.load(Ordering::Relaxed),
            writes: self.stats.writes.load(Ordering::Relaxed),
        }
    }

    /// Runs `work` on the writer thread inside the next batch and returns
    /// its result once the batch is committed.
    async fn write<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.submit(Command::write(work)).await
    }

    /// [`write`](Self::write) without a savepoint of its own (see
    /// [`Command::write_unisolated`]).
    async fn write_unisolated<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.submit(Command::write_unisolated(work)).await
    }

    async fn submit<T>(
        &self,
        (command, reply): (Command, oneshot::Receiver<StoreResult<T>>),
    ) -> StoreResult<T> {
        if self.closed.load(Ordering::Acquire) {
            return Err(closed());
        }
        self.commands.send(command).await.map_err(|_| self.gone())?;
        reply.await.map_err(|_| self.gone())?
    }

    /// Runs `work` on a pooled read-only connection off the async threads.
    async fn read<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        if self.closed.load(Ordering::Acquire) {
            return Err(closed());
        }
        let permit = self.readers.permits.clone().acquire_owned().await.map_err(|_| closed())?;
        let pool = self.readers.clone();
        let task = tokio::task::spawn_blocking(move || {
            let conn = pool.lease(permit);
            work(&conn)
        });
        match task.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => resume_unwind(e.into_panic()),
            Err(_) => Err(StoreError::Unavailable("the runtime is shutting down".into())),
        }
    }

    /// The error for a writer that no longer answers.
    fn gone(&self) -> StoreError {
        if self.closed.load(Ordering::Acquire) {
            closed()
        } else {
            StoreError::Unavailable("the SQLite writer thread stopped".into())
        }
    }
}

// ---------------------------------------------------------------------------
// Opening and migrating

/// Refuses files that are not SQLite, not Courier's, or from a newer build.
/// Reads only.
fn check_identity(conn: &Connection, path: &Path) -> StoreResult<()> {
    // Parsing the schema makes SQLite read and validate the header and page 1.
    let objects: i64 = conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let app: i64 = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
    if app != 0 && app != APPLICATION_ID {
        return Err(StoreError::Unusable(format!(
            "{} belongs to another application (application_id {app:#x}); it was left untouched",
            path.display()
        )));
    }
    if version < 0 {
        return Err(StoreError::Unusable(format!(
            "{} has an invalid schema version {version}; it was left untouched",
            path.display()
        )));
    }
    if version == 0 && objects > 0 {
        return Err(StoreError::Unusable(format!(
            "{} is a SQLite database that Courier did not create (it has tables but no \
             Courier schema version); it was left untouched",
            path.display()
        )));
    }
    if version > SCHEMA_VERSION {
        return Err(StoreError::Unusable(format!(
            "{} has schema version {version}, but this build of courier-server only knows \
             versions up to {SCHEMA_VERSION}; run a newer courier-server or restore a backup \
             (the file was left untouched)",
            path.display()
        )));
    }
    Ok(())
}

/// Applies the migrations the database lacks, all in one transaction.
fn migrate(conn: &mut Connection, path: &Path) -> StoreResult<()> {
    let unusable = |e: rusqlite::Error| unusable_if_damaged(path, e);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unusable)?;
    // Read again under the write lock: another process may have migrated.
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(unusable)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Unusable(format!(
            "{} has schema version {version}, newer than this build's {SCHEMA_VERSION}",
            path.display()
        )));
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    for (from, script) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(script).map_err(|e| {
            StoreError::Unusable(format!(
                "{}: migrating schema version {from} to {} failed: {e}",
                path.display(),
                from + 1
            ))
        })?;
    }
    tx.pragma_update(None, "application_id", APPLICATION_ID).map_err(unusable)?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(unusable)?;
    tx.commit().map_err(unusable)?;
    Ok(())
}

/// Turns "not a database" and "corrupt" into [`StoreError::Unusable`] naming
/// the file; other errors stay engine errors.
fn unusable_if_damaged(path: &Path, e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
    match e.sqlite_error_code() {
        Some(NotADatabase | DatabaseCorrupt) => StoreError::Unusable(format!(
            "{} is not a SQLite database or is corrupt ({e}); it was left untouched: \
             restore it from a backup or move it away",
            path.display()
        )),
        _ => StoreError::Sqlite(e),
    }
}

// ---------------------------------------------------------------------------
// The writer thread

#[derive(Default)]
struct Stats {
    batches: AtomicU64,
    writes: AtomicU64,
}

/// What the writer thread is asked to do.
enum Command {
    /// Run one write in the next batch.
    Write(Box<dyn Job>),
    /// Finish what was queued before, checkpoint, close, and stop.
    Close(oneshot::Sender<StoreResult<()>>),
}

impl Command {
    /// A write in its own savepoint: when it fails, only it is undone.
    fn write<T, F>(work: F) -> (Command, oneshot::Receiver<StoreResult<T>>)
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        Self::job(work, true)
    }

    /// A write without a savepoint, for the hot path (message appends): it
    /// must change nothing before it can fail for a reason of its own, so
    /// that only an engine error (disk full, I/O) can stop it half way. If
    /// it fails anyway, the whole batch is rolled back and fails with it.
    fn write_unisolated<T, F>(work: F) -> (Command, oneshot::Receiver<StoreResult<T>>)
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        Self::job(work, false)
    }

    fn job<T, F>(work: F, isolated: bool) -> (Command, oneshot::Receiver<StoreResult<T>>)
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        (Command::Write(Box::new(Pending { work: Some(work), result: None, reply, isolated })), rx)
    }
}

/// A write with its reply channel, type-erased so one queue carries all.
trait Job: Send {
    /// Executes the write (inside its savepoint when isolated); true on
    /// success.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Runs in a savepoint of its own (see [`Command::write_unisolated`]).
    fn isolated(&self) -> bool;
    /// Answers the caller once the batch's fate is known: `batch` is `Ok`
    /// when the transaction holding this write committed.
    fn finish(self: Box<Self>, batch: StoreResult<()>);
}

struct Pending<T, F> {
    work: Option<F>,
    result: Option<StoreResult<T>>,
    reply: oneshot::Sender<StoreResult<T>>,
    isolated: bool,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else { return false };
        let result = catch_unwind(AssertUnwindSafe(|| work(conn))).unwrap_or_else(|_| {
            Err(StoreError::Unavailable("the write panicked and was rolled back".into()))
        });
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn isolated(&self) -> bool {
        self.isolated
    }

    fn finish(self: Box<Self>, batch: StoreResult<()>) {
        let Pending { result, reply, .. } = *self;
        let result = match (result, batch) {
            // Its own failure is the better explanation, whatever the batch did.
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (_, Err(e)) => Err(e),
            (None, Ok(())) => Err(StoreError::Unavailable("the write was not executed".into())),
        };
        // The caller may have stopped waiting; the write stands regardless.
        let _ = reply.send(result);
    }
}

fn writer_main(
    conn: Connection,
    checkpoint_conn: Connection,
    mut queue: mpsc::Receiver<Command>,
    stats: &Stats,
) {
    // The checkpointer lives as long as this thread holds `committed`.
    let (committed, commits) = std::sync::mpsc::sync_channel::<()>(1);
    let checkpointer = std::thread::Builder::new()
        .name("courier-sqlite-checkpoint".into())
        .spawn(move || checkpointer_main(&checkpoint_conn, &commits));
    if let Err(e) = &checkpointer {
        // Without it the WAL would only be checkpointed at close: grow, not lose.
        tracing::error!(error = %e, "could not start the SQLite checkpointer thread");
        let _ = conn.pragma_update(None, "wal_autocheckpoint", 1000);
    }
    let mut checkpointer = checkpointer.ok();
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.blocking_recv() {
        let mut close = None;
        let mut next = Some(first);
        while let Some(command) = next {
            match command {
                Command::Write(job) => batch.push(job),
                Command::Close(reply) => {
                    close = Some(reply);
                    break;
                }
            }
            next = if batch.len() < MAX_BATCH { queue.try_recv().ok() } else { None };
        }
        if !batch.is_empty() {
            stats.writes.fetch_add(batch.len() as u64, Ordering::Relaxed);
            stats.batches.fetch_add(1, Ordering::Relaxed);
            run_batch(&conn, &mut batch);
            // Wake the checkpointer (a full slot means it is already due).
            let _ = committed.try_send(());
        }
        if let Some(reply) = close {
            // Stop the checkpointer first: the final checkpoint is ours.
            drop(committed);
            if let Some(t) = checkpointer.take() {
                let _ = t.join();
            }
            // Whatever was queued behind the close is refused, not run.
            queue.close();
            while let Ok(command) = queue.try_recv() {
                match command {
                    Command::Write(job) => job.finish(Err(closed())),
                    Command::Close(reply) => {
                        let _ = reply.send(Ok(()));
                    }
                }
            }
            let _ = reply.send(shut_down(conn));
            return;
        }
    }
    // Every handle was dropped without close(): dropping the connection
    // closes it (SQLite checkpoints when the last connection goes).
}

/// Copies committed WAL frames back into the database file, at most once per
/// [`CHECKPOINT_EVERY`] while commits arrive, off the writer's thread (a
/// passive checkpoint never blocks the writer). Ends when the writer drops
/// its end of `commits`.
fn checkpointer_main(conn: &Connection, commits: &std::sync::mpsc::Receiver<()>) {
    use std::sync::mpsc::RecvTimeoutError;
    while commits.recv().is_ok() {
        // Let commits accumulate, but leave at once when the writer closes
        // (its final checkpoint empties the WAL).
        let due = std::time::Instant::now() + CHECKPOINT_EVERY;
        loop {
            match commits.recv_timeout(due.saturating_duration_since(std::time::Instant::now())) {
                Ok(()) => {}
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "background WAL checkpoint failed; will retry");
        }
    }
}

/// Checkpoints the WAL into the main file and closes the connection.
fn shut_down(conn: Connection) -> StoreResult<()> {
    let (busy, _log, _done): (i64, i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    if busy != 0 {
        // Not a durability problem: the WAL is durable and is replayed on open.
        tracing::warn!("WAL checkpoint at close was incomplete (a reader was still active)");
    }
    conn.close().map_err(|(_, e)| StoreError::Sqlite(e))
}

/// Executes `jobs` in one transaction, each in its own savepoint, commits,
/// then answers every caller. Leaves `jobs` empty.
fn run_batch(conn: &Connection, jobs: &mut Vec<Box<dyn Job>>) {
    // Jobs whose effects are in the open transaction, waiting for COMMIT.
    let mut ran: Vec<Box<dyn Job>> = Vec::with_capacity(jobs.len());
    for mut job in jobs.drain(..) {
        if conn.is_autocommit()
            && let Err(e) = exec(conn, "BEGIN IMMEDIATE")
        {
            job.finish(Err(replicate(&e)));
            continue;
        }
        let isolated = job.isolated();
        if isolated && let Err(e) = exec(conn, "SAVEPOINT job") {
            abandon(conn, &mut ran, &e);
            job.finish(Err(replicate(&e)));
            continue;
        }
        let ok = job.run(conn);
        // SQLite rolled the whole transaction back (I/O error, disk full…),
        // or a write without a savepoint failed and may have left part of
        // itself: nothing of this batch so far will be committed.
        if conn.is_autocommit() || (!isolated && !ok) {
            let lost = rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                Some("the write batch was rolled back by a failure of another write".into()),
            );
            abandon(conn, &mut ran, &lost);
            job.finish(Err(replicate(&lost)));
            continue;
        }
        if !isolated {
            ran.push(job);
            continue;
        }
        let settled = if ok {
            exec(conn, "RELEASE job")
        } else {
            exec(conn, "ROLLBACK TO job").and_then(|()| exec(conn, "RELEASE job"))
        };
        match settled {
            Ok(()) => ran.push(job),
            Err(e) => {
                abandon(conn, &mut ran, &e);
                job.finish(Err(replicate(&e)));
            }
        }
    }
    if ran.is_empty() {
        // Only failed writes (already rolled back to their savepoints).
        if !conn.is_autocommit() {
            let _ = exec(conn, "ROLLBACK");
        }
        return;
    }
    match exec(conn, "COMMIT") {
        Ok(()) => {
            for job in ran {
                job.finish(Ok(()));
            }
        }
        Err(e) => {
            if !conn.is_autocommit() {
                let _ = exec(conn, "ROLLBACK");
            }
            for job in ran {
                job.finish(Err(replicate(&e)));
            }
        }
    }
}

/// Gives up the open transaction: rolls it back (if SQLite has not already)
/// and fails the writes it held. The next write opens a fresh one.
fn abandon(conn: &Connection, ran: &mut Vec<Box<dyn Job>>, e: &rusqlite::Error) {
    if !conn.is_autocommit() {
        let _ = exec(conn, "ROLLBACK");
    }
    for job in ran.drain(..) {
        job.finish(Err(replicate(e)));
    }
}

fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

/// One engine error, handed to many callers.
fn replicate(e: &rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(code, msg) => {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(*code, msg.clone()))
        }
        other => StoreError::Unavailable(format!("write batch failed: {other}")),
    }
}

// ---------------------------------------------------------------------------
// The read pool

struct ReadPool {
    conns: Mutex<Vec<Connection>>,
    /// One permit per pooled connection; closed when the store closes.
    permits: Arc<Semaphore>,
}

impl ReadPool {
    fn lease(self: Arc<Self>, permit: OwnedSemaphorePermit) -> Lease {
        let conn = self
            .conns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .expect("a read permit always has a pooled connection");
        Lease { pool: self, conn: Some(conn), _permit: permit }
    }
}

/// A pooled connection, returned to the pool on drop (also on panic).
struct Lease {
    pool: Arc<ReadPool>,
    conn: Option<Connection>,
    _permit: OwnedSemaphorePermit,
}

impl Deref for Lease {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("present until drop")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // After close() the connection is simply dropped (closed).
        if let Some(conn) = self.conn.take()
            && !self.pool.permits.is_closed()
        {
            self.pool.conns.lock().unwrap_or_else(PoisonError::into_inner).push(conn);
        }
    }
}

// ---------------------------------------------------------------------------
// Row mapping

/// A message row as stored, before its JSON is parsed.
struct RawMsg {
    conv: String,
    seq: i64,
    mid: String,
    cid: String,
    from: String,
    to: String,
    kind: String,
    body: String,
    reply_to: Option<String>,
    ts: i64,
    edited_text: Option<String>,
    edited_ts: Option<i64>,
    recalled: bool,
    pinned: Option<i64>,
}

impl RawMsg {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<RawMsg> {
        Ok(RawMsg {
            conv: r.get(0)?,
            seq: r.get(1)?,
            mid: r.get(2)?,
            cid: r.get(3)?,
            from: r.get(4)?,
            to: r.get(5)?,
            kind: r.get(6)?,
            body: r.get(7)?,
            reply_to: r.get(8)?,
            ts: r.get(9)?,
            edited_text: r.get(10)?,
            edited_ts: r.get(11)?,
            recalled: r.get(12)?,
            pinned: r.get(13)?,
        })
    }

    /// The message with its aggregate columns applied (not its reactions).
    fn into_msg(self) -> StoreResult<Msg> {
        let to: Target = serde_json::from_str(&self.to).map_err(|e| {
            StoreError::Unusable(format!("stored target of message {} is invalid: {e}", self.mid))
        })?;
        let mut msg = Msg::new(
            parse_conv(&self.conv)?,
            from_sql_int(self.seq),
            self.mid,
            self.cid,
            self.from,
            to,
            self.kind,
            parse_object("message body", &self.body)?,
            self.ts,
            self.reply_to,
        );
        let edited = self.edited_text.zip(self.edited_ts);
        apply_aggregates(&mut msg, edited, self.recalled, self.pinned);
        Ok(msg)
    }
}

fn collect_msgs(rows: impl Iterator<Item = rusqlite::Result<RawMsg>>) -> StoreResult<Vec<Msg>> {
    rows.map(|raw| raw?.into_msg()).collect()
}

/// The columns [`RawInvite::from_row`] reads, in order.
macro_rules! invite_columns {
    () => {
        "iid, sender, recipient, room, content, state, created, expires, received, reason, response"
    };
}

struct RawInvite {
    iid: String,
    from: String,
    to: String,
    room: String,
    content: String,
    state: String,
    created: i64,
    expires: i64,
    received: bool,
    reason: Option<String>,
    response: Option<String>,
}

impl RawInvite {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<RawInvite> {
        Ok(RawInvite {
            iid: r.get(0)?,
            from: r.get(1)?,
            to: r.get(2)?,
            room: r.get(3)?,
            content: r.get(4)?,
            state: r.get(5)?,
            created: r.get(6)?,
            expires: r.get(7)?,
            received: r.get(8)?,
            reason: r.get(9)?,
            response: r.get(10)?,
        })
    }

    fn into_invite(self) -> StoreResult<Invite> {
        let state = InviteState::parse(&self.state).ok_or_else(|| {
            StoreError::Unusable(format!("stored state {:?} of invite {} is unknown", self.state, self.iid))
        })?;
        Ok(Invite {
            content: parse_object("invite content", &self.content)?,
            response: self.response.as_deref().map(|r| parse_object("invite response", r)).transpose()?,
            iid: self.iid,
            from: self.from,
            to: self.to,
            room: self.room,
            state,
            created: self.created,
            expires: self.expires,
            received: self.received,
            reason: self.reason,
        })
    }
}

fn collect_invites(rows: impl Iterator<Item = rusqlite::Result<RawInvite>>) -> StoreResult<Vec<Invite>> {
    rows.map(|raw| raw?.into_invite()).collect()
}

// ---------------------------------------------------------------------------
// Writes (run on the writer thread)

/// The message `from` stored with `cid`, as stored (no reactions).
fn find_by_cid(c: &Connection, from: &str, cid: &str) -> StoreResult<Option<Msg>> {
    c.prepare_cached(concat!("SELECT ", msg_columns!(), " FROM messages WHERE sender = ?1 AND cid = ?2"))?
        .query_row(params![from, cid], RawMsg::from_row)
        .optional()?
        .map(RawMsg::into_msg)
        .transpose()
}

fn append_message(c: &Connection, m: NewMessage) -> StoreResult<Appended> {
    if let Some(original) = find_by_cid(c, &m.from, &m.cid)? {
        return Ok(Appended { msg: original, dup: true });
    }
    insert_message(c, m, None)
}

/// Writes a new message: the conversation's counters, the row, the DM
/// listing and the mentions. `rel_target` is the target of a relation.
fn insert_message(c: &Connection, m: NewMessage, rel_target: Option<&str>) -> StoreResult<Appended> {
    let conv = m.conv.to_string();
    // The conversation's counters are its newest row's: read through the
    // (conv, seq) index, not kept in a second row that every message would
    // rewrite (one more scattered page per commit).
    let (last_seq, last_rel) = newest(c, &conv)?.map_or((0, 0), |n| (n.seq, n.rel_count));
    if last_seq == 0 {
        c.prepare_cached("INSERT INTO conversations (conv) VALUES (?1) ON CONFLICT DO NOTHING")?
            .execute([&conv])?;
    }
    let seq = last_seq + 1;
    let rel_count = last_rel + i64::from(rel_target.is_some());
    let mid = ulid::Ulid::new().to_string();
    c.prepare_cached(
        "INSERT INTO messages (conv, seq, mid, cid, sender, target, kind, body, reply_to, ts, rel_target, rel_count) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
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
    if let (1, Conv::Dm(a, b)) = (seq, &m.conv) {
        // The first message lists the DM for both parties (once for dm:a:a).
        let mut list = c.prepare_cached(
            "INSERT INTO dm_members (user_id, conv, peer) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        )?;
        list.execute(params![a, conv, b])?;
        list.execute(params![b, conv, a])?;
    }
    let mut mention = c.prepare_cached(
        "INSERT INTO mentions (user_id, conv, seq) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
    )?;
    for user in m.mentions.iter().filter(|u| **u != m.from) {
        mention.execute(params![user, conv, seq])?;
    }
    Ok(Appended {
        msg: Msg::new(m.conv, from_sql_int(seq), mid, m.cid, m.from, m.to, m.kind, m.body, m.ts, m.reply_to),
        dup: false,
    })
}

/// The v1.2 reaction caps' view of one message: ?1 conv, ?2 target seq,
/// ?3 user, ?4 key (all reads of the reactions primary key).
const REACTION_TALLY: &str = "SELECT \
    (SELECT count(DISTINCT key) FROM reactions WHERE conv = ?1 AND target_seq = ?2), \
    (SELECT count(*) FROM reactions WHERE conv = ?1 AND target_seq = ?2 AND user_id = ?3), \
    EXISTS (SELECT 1 FROM reactions WHERE conv = ?1 AND target_seq = ?2 AND key = ?4), \
    EXISTS (SELECT 1 FROM reactions WHERE conv = ?1 AND target_seq = ?2 AND key = ?4 AND user_id = ?3)";

fn read_tally(
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

fn append_relation_message(
    c: &Connection,
    m: NewMessage,
    rel: Relation,
    caps: Option<ReactionCaps>,
) -> StoreResult<RelationAppend> {
    if let Some(original) = find_by_cid(c, &m.from, &m.cid)? {
        return Ok(RelationAppend::Stored(Appended { msg: original, dup: true }));
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
    let appended = insert_message(c, m, Some(rel.target()))?;
    apply_effect(c, &conv, target.seq, RelationEffect::of(&rel, &target, &appended.msg))?;
    Ok(RelationAppend::Stored(appended))
}

/// Executes what a relation does to its target (`conv`, `seq`).
fn apply_effect(c: &Connection, conv: &str, seq: i64, effect: RelationEffect) -> StoreResult<()> {
    match effect {
        RelationEffect::SetEdited { text, ts } => {
            c.prepare_cached(
                "UPDATE messages SET edited_text = ?3, edited_ts = ?4 WHERE conv = ?1 AND seq = ?2",
            )?
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
            c.prepare_cached(
                "UPDATE messages SET pinned = coalesce(pinned, ?3), pin_seq = coalesce(pin_seq, ?4) \
                 WHERE conv = ?1 AND seq = ?2",
            )?
            .execute(params![conv, seq, ts, at])?;
        }
        RelationEffect::Unpin => {
            c.prepare_cached(
                "UPDATE messages SET pinned = NULL, pin_seq = NULL WHERE conv = ?1 AND seq = ?2",
            )?
            .execute(params![conv, seq])?;
        }
        RelationEffect::Recall(scrub) => recall(c, conv, seq, &scrub)?,
    }
    Ok(())
}

/// Scrubs a recalled message (`conv`, `seq`): its body, aggregates,
/// reactions, and what `scrub` names (its edits' texts, mentions, media).
fn recall(c: &Connection, conv: &str, seq: i64, scrub: &RecallEffect) -> StoreResult<()> {
    c.prepare_cached(
        "UPDATE messages SET body = '{}', recalled = 1, edited_text = NULL, edited_ts = NULL, \
             pinned = NULL, pin_seq = NULL \
         WHERE conv = ?1 AND seq = ?2",
    )?
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
            c.prepare_cached("DELETE FROM media_blobs WHERE id = ?1")?.execute([&media.id])?;
            c.prepare_cached("DELETE FROM media WHERE id = ?1")?.execute([&media.id])?;
        }
    }
    Ok(())
}

/// Attaches the reactions of the content messages of `page` (one range read).
fn load_reactions(c: &Connection, conv: &str, page: &mut [Msg]) -> StoreResult<()> {
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

fn read_cursor(c: &Connection, conv: &str, user: &str) -> StoreResult<Cursor> {
    let cursor = c
        .prepare_cached("SELECT recv_seq, read_seq FROM cursors WHERE conv = ?1 AND user_id = ?2")?
        .query_row(params![conv, user], |r| {
            Ok(Cursor { recv_seq: from_sql_int(r.get(0)?), read_seq: from_sql_int(r.get(1)?) })
        })
        .optional()?;
    Ok(cursor.unwrap_or_default())
}

/// A conversation's newest message: its counters are the conversation's.
struct Newest {
    seq: i64,
    ts: i64,
    /// Relation messages up to and including it: all of the conversation's.
    rel_count: i64,
}

fn newest(c: &Connection, conv: &str) -> rusqlite::Result<Option<Newest>> {
    c.prepare_cached("SELECT seq, ts, rel_count FROM messages WHERE conv = ?1 ORDER BY seq DESC LIMIT 1")?
        .query_row([conv], |r| Ok(Newest { seq: r.get(0)?, ts: r.get(1)?, rel_count: r.get(2)? }))
        .optional()
}

fn read_last(c: &Connection, conv: &str) -> StoreResult<(u64, i64)> {
    Ok(newest(c, conv)?.map_or((0, 0), |n| (from_sql_int(n.seq), n.ts)))
}

fn advance(
    c: &Connection,
    conv: &str,
    user: &str,
    recv: Option<u64>,
    read: Option<u64>,
) -> StoreResult<Cursor> {
    let (last, _) = read_last(c, conv)?;
    let now = read_cursor(c, conv, user)?;
    let clamp = |v: Option<u64>| v.unwrap_or(0).min(last);
    let read_seq = now.read_seq.max(clamp(read));
    let recv_seq = now.recv_seq.max(clamp(recv)).max(read_seq);
    let next = Cursor { recv_seq, read_seq };
    if next != now {
        c.prepare_cached(
            "INSERT INTO cursors (conv, user_id, recv_seq, read_seq) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (conv, user_id) DO UPDATE SET recv_seq = excluded.recv_seq, read_seq = excluded.read_seq",
        )?
        .execute(params![conv, user, to_sql_int(recv_seq), to_sql_int(read_seq)])?;
    }
    Ok(next)
}

fn insert_channel(c: &Connection, ch: NewChannel) -> StoreResult<bool> {
    let created = c
        .prepare_cached(
            "INSERT INTO channels (name, title, topic, private, created_by, created) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (name) DO NOTHING",
        )?
        .execute(params![ch.name, ch.title, ch.topic, ch.private, ch.creator, ch.now])?;
    if created == 0 {
        return Ok(false);
    }
    if let Some(creator) = &ch.creator {
        c.prepare_cached(
            "INSERT INTO channel_members (channel, user_id, joined, role) VALUES (?1, ?2, ?3, 'owner')",
        )?
        .execute(params![ch.name, creator, ch.now])?;
    }
    Ok(true)
}

fn insert_member(c: &Connection, channel: &str, user: &str, now: i64) -> StoreResult<bool> {
    let added = c
        .prepare_cached(
            "INSERT INTO channel_members (channel, user_id, joined) VALUES (?1, ?2, ?3) \
             ON CONFLICT (channel, user_id) DO NOTHING",
        )?
        .execute(params![channel, user, now])?;
    Ok(added == 1)
}

fn read_role(c: &Connection, channel: &str, user: &str) -> StoreResult<Option<Role>> {
    c.prepare_cached("SELECT role FROM channel_members WHERE channel = ?1 AND user_id = ?2")?
        .query_row(params![channel, user], |r| r.get::<_, String>(0))
        .optional()?
        .map(|r| parse_role(&r))
        .transpose()
}

fn join(c: &Connection, channel: &str, user: &str, now: i64) -> StoreResult<JoinOutcome> {
    let blocked = c
        .prepare_cached("SELECT 1 FROM channel_removals WHERE channel = ?1 AND user_id = ?2")?
        .exists(params![channel, user])?;
    Ok(if blocked {
        JoinOutcome::Blocked
    } else if insert_member(c, channel, user, now)? {
        JoinOutcome::Joined
    } else {
        JoinOutcome::AlreadyMember
    })
}

fn depart(c: &Connection, channel: &str, user: &str, block_rejoin: bool) -> StoreResult<Option<Departure>> {
    let Some(role) = read_role(c, channel, user)? else { return Ok(None) };
    c.prepare_cached("DELETE FROM channel_members WHERE channel = ?1 AND user_id = ?2")?
        .execute(params![channel, user])?;
    if block_rejoin {
        c.prepare_cached(
            "INSERT INTO channel_removals (channel, user_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        )?
        .execute(params![channel, user])?;
    }
    let mut departure = Departure::default();
    if role == Role::Owner {
        // The longest-standing admin, else the longest-standing member.
        departure.new_owner = c
            .prepare_cached(
                "UPDATE channel_members SET role = 'owner' WHERE id = ( \
                     SELECT id FROM channel_members WHERE channel = ?1 \
                     ORDER BY role = 'admin' DESC, id LIMIT 1) \
                 AND NOT EXISTS (SELECT 1 FROM channel_members WHERE channel = ?1 AND role = 'owner') \
                 RETURNING user_id",
            )?
            .query_row([channel], |r| r.get(0))
            .optional()?;
    }
    Ok(Some(departure))
}

fn change_role(
    c: &Connection,
    channel: &str,
    user: &str,
    role: Role,
) -> StoreResult<Option<Vec<(String, Role)>>> {
    let Some(now) = read_role(c, channel, user)? else { return Ok(None) };
    let mut changed = Vec::new();
    if now != role {
        c.prepare_cached("UPDATE channel_members SET role = ?3 WHERE channel = ?1 AND user_id = ?2")?
            .execute(params![channel, user, role.as_str()])?;
        changed.push((user.to_owned(), role));
    }
    if role == Role::Owner {
        let mut stmt = c.prepare_cached(
            "UPDATE channel_members SET role = 'admin' WHERE channel = ?1 AND role = 'owner' AND user_id <> ?2 \
             RETURNING user_id",
        )?;
        let demoted = stmt.query_map(params![channel, user], |r| r.get::<_, String>(0))?;
        for old in demoted {
            changed.push((old?, Role::Admin));
        }
    }
    Ok(Some(changed))
}

fn read_invite(c: &Connection, iid: &str) -> StoreResult<Option<Invite>> {
    c.prepare_cached(concat!("SELECT ", invite_columns!(), " FROM invites WHERE iid = ?1"))?
        .query_row([iid], RawInvite::from_row)
        .optional()?
        .map(RawInvite::into_invite)
        .transpose()
}

// ---------------------------------------------------------------------------
// The trait

/// Inserts an object's facts and bytes.
fn insert_media(c: &Connection, meta: &MediaMeta, bytes: Vec<u8>) -> StoreResult<()> {
    c.prepare_cached(
        "INSERT INTO media (id, owner, mime, size, sha256, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        meta.id,
        meta.owner,
        meta.mime,
        to_sql_int(meta.size),
        meta.sha256,
        meta.created
    ])?;
    c.prepare_cached("INSERT INTO media_blobs (id, bytes) VALUES (?1, ?2)")?
        .execute(params![meta.id, bytes])?;
    Ok(())
}

/// Bytes `owner` uploaded at or after `since`. The id range reads only
/// recent uploads (ids are `m_` + a ULID of the upload time); `created`
/// decides.
fn media_bytes_since(c: &Connection, owner: &str, since: i64) -> StoreResult<u64> {
    let n: i64 = c
        .prepare_cached(
            "SELECT coalesce(sum(size), 0) FROM media WHERE id >= ?1 AND owner = ?2 AND created >= ?3",
        )?
        .query_row(params![first_media_id_since(since), owner, since], |r| r.get(0))?;
    Ok(from_sql_int(n))
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn touch_user(&self, user: &str, now: i64) -> StoreResult<()> {
        let user = user.to_owned();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO users (user_id, created, last_login) VALUES (?1, ?2, ?2) \
                 ON CONFLICT (user_id) DO UPDATE SET last_login = max(last_login, excluded.last_login)",
            )?
            .execute(params![user, now])?;
            Ok(())
        })
        .await
    }

    async fn user_exists(&self, user: &str) -> StoreResult<bool> {
        let user = user.to_owned();
        self.read(move |c| Ok(c.prepare_cached("SELECT 1 FROM users WHERE user_id = ?1")?.exists([user])?))
            .await
    }

    async fn set_last_seen(&self, user: &str, ts: i64) -> StoreResult<()> {
        let user = user.to_owned();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO last_seen (user_id, ts) VALUES (?1, ?2) \
                 ON CONFLICT (user_id) DO UPDATE SET ts = excluded.ts",
            )?
            .execute(params![user, ts])?;
            Ok(())
        })
        .await
    }

    async fn last_seen(&self, users: &[String]) -> StoreResult<HashMap<String, i64>> {
        let users = users.to_vec();
        self.read(move |c| {
            let tx = c.unchecked_transaction()?;
            let mut stmt = tx.prepare_cached("SELECT ts FROM last_seen WHERE user_id = ?1")?;
            let mut seen = HashMap::new();
            for user in users {
                if let Some(ts) = stmt.query_row([&user], |r| r.get(0)).optional()? {
                    seen.insert(user, ts);
                }
            }
            Ok(seen)
        })
        .await
    }

    async fn set_profile(
        &self,
        user: &str,
        name: Option<&str>,
        avatar: Option<&str>,
        status: Option<&str>,
    ) -> StoreResult<Profile> {
        let user = user.to_owned();
        let (name, avatar, status) =
            (name.map(str::to_owned), avatar.map(str::to_owned), status.map(str::to_owned));
        self.write(move |c| {
            let profile = c
                .prepare_cached(
                    "INSERT INTO profiles (user_id, name, avatar, status) \
                     VALUES (?1, ?2, coalesce(?3, ''), coalesce(?4, '')) \
                     ON CONFLICT (user_id) DO UPDATE SET name = coalesce(?2, name), \
                         avatar = coalesce(?3, avatar), status = coalesce(?4, status) \
                     RETURNING coalesce(name, user_id), avatar, status",
                )?
                .query_row(params![user, name, avatar, status], |r| {
                    Ok(Profile { user: user.clone(), name: r.get(0)?, avatar: r.get(1)?, status: r.get(2)? })
                })?;
            Ok(profile)
        })
        .await
    }

    async fn profiles(&self, users: &[String]) -> StoreResult<Vec<Profile>> {
        let users = users.to_vec();
        self.read(move |c| {
            let tx = c.unchecked_transaction()?;
            let mut stmt = tx.prepare_cached(
                "SELECT coalesce(p.name, u.user_id), coalesce(p.avatar, ''), coalesce(p.status, '') \
                 FROM users u LEFT JOIN profiles p ON p.user_id = u.user_id WHERE u.user_id = ?1",
            )?;
            let mut out = Vec::with_capacity(users.len());
            for user in users {
                let found = stmt.query_row([&user], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).optional()?;
                if let Some((name, avatar, status)) = found {
                    out.push(Profile { user, name, avatar, status });
                }
            }
            Ok(out)
        })
        .await
    }
}

#[async_trait]
impl MessageStore for SqliteStore {
    async fn append(&self, msg: NewMessage) -> StoreResult<Appended> {
        // Checks (idempotency) come before the first change, and the
        // inserts can only fail on an engine error: no savepoint needed.
        self.write_unisolated(move |c| append_message(c, msg)).await
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
            let (mut msgs, newest_first) = match page {
                Page::Latest => {
                    let mut stmt = c.prepare_cached(concat!(
                        "SELECT ",
                        msg_columns!(),
                        " FROM messages WHERE conv = ?1 ORDER BY seq DESC LIMIT ?2"
                    ))?;
                    (collect_msgs(stmt.query_map(params![conv, fetch], RawMsg::from_row)?)?, true)
                }
                Page::After(after) => {
                    let mut stmt = c.prepare_cached(concat!(
                        "SELECT ",
                        msg_columns!(),
                        " FROM messages WHERE conv = ?1 AND seq > ?3 ORDER BY seq ASC LIMIT ?2"
                    ))?;
                    let rows = stmt.query_map(params![conv, fetch, to_sql_int(after)], RawMsg::from_row)?;
                    (collect_msgs(rows)?, false)
                }
                Page::Before(before) => {
                    let mut stmt = c.prepare_cached(concat!(
                        "SELECT ",
                        msg_columns!(),
                        " FROM messages WHERE conv = ?1 AND seq < ?3 ORDER BY seq DESC LIMIT ?2"
                    ))?;
                    let rows = stmt.query_map(params![conv, fetch, to_sql_int(before)], RawMsg::from_row)?;
                    (collect_msgs(rows)?, true)
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

    async fn conversations(&self, user: &str) -> StoreResult<Vec<ConvSummary>> {
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
                unread_columns!("d.conv", "d.user_id", "x.recalled = 1"),
                ", peer.recv_seq, peer.read_seq \
                 FROM dm_members d \
                 JOIN messages c ON c.id = (SELECT id FROM messages WHERE conv = d.conv ORDER BY seq DESC LIMIT 1) \
                 LEFT JOIN cursors mine ON mine.conv = d.conv AND mine.user_id = d.user_id \
                 LEFT JOIN cursors peer ON peer.conv = d.conv AND peer.user_id = d.peer \
                 WHERE d.user_id = ?1"
            ))?;
            let rows = dms.query_map([&user], |r| {
                let peer = cursor(r.get(10)?, r.get(11)?);
                Ok((r.get::<_, String>(0)?, ConvSummary { peer_cursor: Some(peer), ..summary(r)? }))
            })?;
            for row in rows {
                let (conv, s) = row?;
                out.push(ConvSummary { conv: parse_conv(&conv)?, ..s });
            }
            let mut channels = tx.prepare_cached(concat!(
                "SELECT m.channel, c.seq, c.ts, mine.recv_seq, mine.read_seq, ",
                unread_columns!("'ch:' || m.channel", "m.user_id", "x.recalled = 1"),
                " FROM channel_members m \
                 LEFT JOIN messages c ON c.id = \
                     (SELECT id FROM messages WHERE conv = 'ch:' || m.channel ORDER BY seq DESC LIMIT 1) \
                 LEFT JOIN cursors mine ON mine.conv = 'ch:' || m.channel AND mine.user_id = m.user_id \
                 WHERE m.user_id = ?1"
            ))?;
            let rows = channels.query_map([&user], |r| {
                Ok(ConvSummary { conv: Conv::channel(&r.get::<_, String>(0)?), ..summary(r)? })
            })?;
            for row in rows {
                out.push(row?);
            }
            out.sort_by(|a, b| a.conv.cmp(&b.conv));
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
            Ok(out)
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

#[async_trait]
impl RelationStore for SqliteStore {
    async fn append_relation(&self, msg: NewMessage, rel: Relation) -> StoreResult<RelationAppend> {
        self.write(move |c| append_relation_message(c, msg, rel, None)).await
    }

    async fn append_relation_capped(
        &self,
        msg: NewMessage,
        rel: Relation,
        caps: ReactionCaps,
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

#[async_trait]
impl ChannelStore for SqliteStore {
    async fn create_channel(&self, ch: NewChannel) -> StoreResult<bool> {
        self.write(move |c| insert_channel(c, ch)).await
    }

    async fn channel(&self, name: &str) -> StoreResult<Option<ChannelRow>> {
        let name = name.to_owned();
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT name, title, topic, private, created_by, created FROM channels WHERE name = ?1",
            )?
            .query_row([name], |r| {
                Ok(ChannelRow {
                    name: r.get(0)?,
                    title: r.get(1)?,
                    topic: r.get(2)?,
                    private: r.get(3)?,
                    created_by: r.get(4)?,
                    created: r.get(5)?,
                })
            })
            .optional()?)
        })
        .await
    }

    async fn public_channels(&self) -> StoreResult<Vec<ChannelInfo>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT c.name, c.title, c.topic, c.private, \
                     (SELECT count(*) FROM channel_members m WHERE m.channel = c.name) \
                 FROM channels c WHERE c.private = 0 ORDER BY c.name",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(ChannelInfo {
                    channel: r.get(0)?,
                    title: r.get(1)?,
                    topic: r.get(2)?,
                    private: r.get(3)?,
                    members: from_sql_int(r.get(4)?),
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn add_member(&self, channel: &str, user: &str, now: i64) -> StoreResult<bool> {
        let (channel, user) = (channel.to_owned(), user.to_owned());
        self.write(move |c| {
            c.prepare_cached("DELETE FROM channel_removals WHERE channel = ?1 AND user_id = ?2")?
                .execute(params![channel, user])?;
            insert_member(c, &channel, &user, now)
        })
        .await
    }

    async fn join_channel(&self, channel: &str, user: &str, now: i64) -> StoreResult<JoinOutcome> {
        let (channel, user) = (channel.to_owned(), user.to_owned());
        self.write(move |c| join(c, &channel, &user, now)).await
    }

    async fn remove_member(
        &self,
        channel: &str,
        user: &str,
        block_rejoin: bool,
    ) -> StoreResult<Option<Departure>> {
        let (channel, user) = (channel.to_owned(), user.to_owned());
        self.write(move |c| depart(c, &channel, &user, block_rejoin)).await
    }

    async fn is_member(&self, channel: &str, user: &str) -> StoreResult<bool> {
        let (channel, user) = (channel.to_owned(), user.to_owned());
        self.read(move |c| {
            Ok(c.prepare_cached("SELECT 1 FROM channel_members WHERE channel = ?1 AND user_id = ?2")?
                .exists(params![channel, user])?)
        })
        .await
    }

    async fn members(&self, channel: &str) -> StoreResult<Vec<String>> {
        let channel = channel.to_owned();
        self.read(move |c| {
            let mut stmt =
                c.prepare_cached("SELECT user_id FROM channel_members WHERE channel = ?1 ORDER BY id")?;
            let rows = stmt.query_map([channel], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn member_roles(&self, channel: &str) -> StoreResult<Vec<(String, Role)>> {
        let channel = channel.to_owned();
        self.read(move |c| {
            let mut stmt =
                c.prepare_cached("SELECT user_id, role FROM channel_members WHERE channel = ?1 ORDER BY id")?;
            let rows = stmt.query_map([channel], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            rows.map(|row| {
                let (user, role) = row?;
                Ok((user, parse_role(&role)?))
            })
            .collect()
        })
        .await
    }

    async fn public_channels_page(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<(Vec<ChannelInfo>, bool)> {
        let after = after.map(str::to_owned);
        self.read(move |c| {
            // One row more than asked says whether another page follows.
            let mut stmt = c.prepare_cached(
                "SELECT c.name, c.title, c.topic, c.private, \
                     (SELECT count(*) FROM channel_members m WHERE m.channel = c.name) \
                 FROM channels c WHERE c.private = 0 AND (?1 IS NULL OR c.name > ?1) \
                 ORDER BY c.name LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![after, i64::from(limit) + 1], |r| {
                Ok(ChannelInfo {
                    channel: r.get(0)?,
                    title: r.get(1)?,
                    topic: r.get(2)?,
                    private: r.get(3)?,
                    members: from_sql_int(r.get(4)?),
                })
            })?;
            let mut page: Vec<ChannelInfo> = rows.collect::<rusqlite::Result<_>>()?;
            let more = page.len() > limit as usize;
            page.truncate(limit as usize);
            Ok((page, more))
        })
        .await
    }

    async fn member_roles_page(
        &self,
        channel: &str,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<(Vec<(String, Role)>, bool)> {
        let (channel, after) = (channel.to_owned(), after.map(str::to_owned));
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT user_id, role FROM channel_members \
                 WHERE channel = ?1 AND (?2 IS NULL OR user_id > ?2) ORDER BY user_id LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![channel, after, i64::from(limit) + 1], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?;
            let mut page = rows
                .map(|row| {
                    let (user, role) = row?;
                    Ok((user, parse_role(&role)?))
                })
                .collect::<StoreResult<Vec<_>>>()?;
            let more = page.len() > limit as usize;
            page.truncate(limit as usize);
            Ok((page, more))
        })
        .await
    }

    async fn shares_conversation(&self, viewer: &str, others: &[String]) -> StoreResult<HashSet<String>> {
        let (viewer, others) = (viewer.to_owned(), others.to_vec());
        self.read(move |c| {
            let tx = c.unchecked_transaction()?;
            let mut channel = tx.prepare_cached(SHARED_CHANNEL)?;
            let mut sent = tx.prepare_cached(SENT_IN_CONV)?;
            let mut shared = HashSet::new();
            for other in others {
                let yes = other == viewer || channel.exists(params![viewer, other])? || {
                    let conv = Conv::dm(&viewer, &other).to_string();
                    sent.exists(params![conv, viewer])? && sent.exists(params![conv, other])?
                };
                if yes {
                    shared.insert(other);
                }
            }
            Ok(shared)
        })
        .await
    }

    async fn role(&self, channel: &str, user: &str) -> StoreResult<Option<Role>> {
        let (channel, user) = (channel.to_owned(), user.to_owned());
        self.read(move |c| read_role(c, &channel, &user)).await
    }

    async fn channels_created_since(&self, user: &str, since: i64) -> StoreResult<u64> {
        let user = user.to_owned();
        self.read(move |c| {
            let n: i64 = c
                .prepare_cached("SELECT count(*) FROM channels WHERE created_by = ?1 AND created >= ?2")?
                .query_row(params![user, since], |r| r.get(0))?;
            Ok(from_sql_int(n))
        })
        .await
    }

    async fn set_role(
        &self,
        channel: &str,
        user: &str,
        role: Role,
    ) -> StoreResult<Option<Vec<(String, Role)>>> {
        let (channel, user) = (channel.to_owned(), user.to_owned());
        self.write(move |c| change_role(c, &channel, &user, role)).await
    }
}

#[async_trait]
impl InviteStore for SqliteStore {
    async fn create_invite(&self, invite: &Invite) -> StoreResult<()> {
        let invite = invite.clone();
        self.write(move |c| {
            c.prepare_cached(concat!(
                "INSERT INTO invites (",
                invite_columns!(),
                ") \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            ))?
            .execute(params![
                invite.iid,
                invite.from,
                invite.to,
                invite.room,
                to_json(&invite.content),
                invite.state.as_str(),
                invite.created,
                invite.expires,
                invite.received,
                invite.reason,
                invite.response.as_ref().map(to_json),
            ])?;
            Ok(())
        })
        .await
    }

    async fn invite(&self, iid: &str) -> StoreResult<Option<Invite>> {
        let iid = iid.to_owned();
        self.read(move |c| read_invite(c, &iid)).await
    }

    async fn transition_invite(
        &self,
        iid: &str,
        to: InviteState,
        response: Option<Map<String, Value>>,
    ) -> StoreResult<Transition> {
        debug_assert!(to.is_final(), "invitations only move from pending to a final state");
        let iid = iid.to_owned();
        self.write(move |c| {
            let moved = c
                .prepare_cached(concat!(
                    "UPDATE invites SET state = ?2, response = coalesce(?3, response) \
                     WHERE iid = ?1 AND state = 'pending' RETURNING ",
                    invite_columns!()
                ))?
                .query_row(params![iid, to.as_str(), response.as_ref().map(to_json)], RawInvite::from_row)
                .optional()?;
            if let Some(moved) = moved {
                return Ok(Transition::Done(moved.into_invite()?));
            }
            Ok(match read_invite(c, &iid)? {
                Some(final_state) => Transition::AlreadyFinal(final_state),
                None => Transition::NotFound,
            })
        })
        .await
    }

    async fn mark_invite_received(&self, iid: &str) -> StoreResult<Option<Invite>> {
        let iid = iid.to_owned();
        self.write(move |c| {
            c.prepare_cached(concat!(
                "UPDATE invites SET received = 1 WHERE iid = ?1 AND state = 'pending' AND received = 0 RETURNING ",
                invite_columns!()
            ))?
            .query_row([iid], RawInvite::from_row)
            .optional()?
            .map(RawInvite::into_invite)
            .transpose()
        })
        .await
    }

    async fn pending_invites_for(&self, user: &str) -> StoreResult<Vec<Invite>> {
        let user = user.to_owned();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(concat!(
                "SELECT ", invite_columns!(),
                " FROM invites WHERE state = 'pending' AND (sender = ?1 OR recipient = ?1) ORDER BY created, iid"
            ))?;
            collect_invites(stmt.query_map([user], RawInvite::from_row)?)
        })
        .await
    }

    async fn recent_invites_for(&self, user: &str, since: i64) -> StoreResult<Vec<Invite>> {
        let user = user.to_owned();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(concat!(
                "SELECT ",
                invite_columns!(),
                " FROM invites WHERE (sender = ?1 OR recipient = ?1) AND created >= ?2 ORDER BY created, iid"
            ))?;
            collect_invites(stmt.query_map(rusqlite::params![user, since], RawInvite::from_row)?)
        })
        .await
    }

    async fn pending_invites(&self) -> StoreResult<Vec<Invite>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(concat!(
                "SELECT ",
                invite_columns!(),
                " FROM invites WHERE state = 'pending' ORDER BY created, iid"
            ))?;
            collect_invites(stmt.query_map([], RawInvite::from_row)?)
        })
        .await
    }
}

#[async_trait]
impl MediaStore for SqliteStore {
    async fn put_media(&self, meta: &MediaMeta, bytes: Vec<u8>) -> StoreResult<()> {
        let meta = meta.clone();
        self.write(move |c| insert_media(c, &meta, bytes)).await
    }

    async fn put_media_within(
        &self,
        meta: &MediaMeta,
        bytes: Vec<u8>,
        quota: UploadQuota,
    ) -> StoreResult<Option<u64>> {
        let meta = meta.clone();
        // The single writer serialises check and insert.
        self.write(move |c| {
            let used = media_bytes_since(c, &meta.owner, quota.since)?;
            if used.saturating_add(meta.size) > quota.bytes {
                return Ok(Some(used));
            }
            insert_media(c, &meta, bytes)?;
            Ok(None)
        })
        .await
    }

    async fn media_bytes_since(&self, owner: &str, since: i64) -> StoreResult<u64> {
        let owner = owner.to_owned();
        self.read(move |c| media_bytes_since(c, &owner, since)).await
    }

    async fn media_meta(&self, id: &str) -> StoreResult<Option<MediaMeta>> {
        let id = id.to_owned();
        self.read(move |c| {
            Ok(c.prepare_cached("SELECT id, owner, mime, size, sha256, created FROM media WHERE id = ?1")?
                .query_row([id], |r| {
                    Ok(MediaMeta {
                        id: r.get(0)?,
                        owner: r.get(1)?,
                        mime: r.get(2)?,
                        size: from_sql_int(r.get(3)?),
                        sha256: r.get(4)?,
                        created: r.get(5)?,
                    })
                })
                .optional()?)
        })
        .await
    }

    async fn media_chunk(&self, id: &str, offset: u64, len: usize) -> StoreResult<Option<Vec<u8>>> {
        let id = id.to_owned();
        self.read(move |c| {
            let rowid: Option<i64> = c
                .prepare_cached("SELECT rowid FROM media_blobs WHERE id = ?1")?
                .query_row([id], |r| r.get(0))
                .optional()?;
            let Some(rowid) = rowid else { return Ok(None) };
            // Incremental blob I/O reads only the pages of this range.
            let blob = c.blob_open(rusqlite::MAIN_DB, "media_blobs", "bytes", rowid, true)?;
            let size = blob.len() as u64;
            let start = offset.min(size);
            let take = (size - start).min(len as u64) as usize;
            let mut buf = vec![0u8; take];
            blob.read_at_exact(&mut buf, start as usize)?;
            Ok(Some(buf))
        })
        .await
    }
}

#[async_trait]
impl StoreAdmin for SqliteStore {
    async fn message_count(&self) -> StoreResult<u64> {
        // Messages are never deleted and rowids are assigned max + 1, so the
        // newest rowid is the row count, without scanning every message.
        self.read(|c| {
            let n: i64 =
                c.prepare_cached("SELECT coalesce(max(id), 0) FROM messages")?.query_row([], |r| r.get(0))?;
            Ok(from_sql_int(n))
        })
        .await
    }

    async fn close(&self) -> StoreResult<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // Readers go first so the writer holds the last connection and its
        // checkpoint can empty the WAL.
        self.readers.permits.close();
        self.readers.conns.lock().unwrap_or_else(PoisonError::into_inner).clear();
        let (reply, done) = oneshot::channel();
        let result = match self.commands.send(Command::Close(reply)).await {
            Ok(()) => done.await.unwrap_or_else(|_| Err(self.gone())),
            Err(_) => Err(StoreError::Unavailable("the SQLite writer thread stopped".into())),
        };
        let writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(writer) = writer {
            // It has answered; this only waits for the thread to end.
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::suite::{check_migrated_fixtures, invite as new_invite, text};
    use tempfile::TempDir;

    /// A fresh store in its own temporary directory (removed with the store).
    async fn fresh() -> Arc<dyn Store> {
        let dir = TempDir::new().expect("temp dir");
        let mut store = SqliteStore::open(dir.path()).expect("open a fresh store");
        store._temp_dir = Some(dir);
        Arc::new(store)
    }

    mod suite {
        crate::store_suite!(super::fresh());
    }

    fn raw(dir: &Path) -> Connection {
        Connection::open(dir.join(DB_FILE)).expect("raw connection")
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn expect_unusable(result: StoreResult<SqliteStore>) -> String {
        match result {
            Err(StoreError::Unusable(msg)) => msg,
            Err(other) => panic!("expected Unusable, got {other:?}"),
            Ok(_) => panic!("expected Unusable, the store opened"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn open_creates_the_directory_and_sets_the_pragmas() {
        let dir = TempDir::new().unwrap();
        let nested = dir.path().join("a/b");
        let store = SqliteStore::open(&nested).unwrap();
        assert_eq!(store.path(), nested.join(DB_FILE));
        let (journal, sync, fk): (String, i64, i64) = store
            .write(|c| {
                Ok((
                    c.pragma_query_value(None, "journal_mode", |r| r.get(0))?,
                    c.pragma_query_value(None, "synchronous", |r| r.get(0))?,
                    c.pragma_query_value(None, "foreign_keys", |r| r.get(0))?,
                ))
            })
            .await
            .unwrap();
        assert_eq!(journal, "wal");
        assert_eq!(sync, 2, "synchronous=FULL");
        assert_eq!(fk, 1);
        let version: i64 = raw(&nested).pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        store.close().await.unwrap();
    }

    /// Writes something into every table through the trait.
    #[tokio::test]
    async fn commits_reach_the_database_file_without_a_close() {
        // The writer never checkpoints (wal_autocheckpoint = 0); the
        // background checkpointer must copy the WAL into the main file.
        let dir = TempDir::new().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let db = dir.path().join(DB_FILE);
        let before = std::fs::metadata(&db).unwrap().len();
        for i in 0..300 {
            let body = format!("message {i} {}", "x".repeat(400));
            store
                .append(text("alice", Target::User("bob".into()), &format!("c{i}"), &body, i))
                .await
                .unwrap();
        }
        let mut grown = false;
        for _ in 0..200 {
            if std::fs::metadata(&db).unwrap().len() > before + 100_000 {
                grown = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(grown, "the database file never received the committed pages (no checkpoint ran)");
        store.close().await.unwrap();
        assert_eq!(std::fs::metadata(dir.path().join("courier.db-wal")).map(|m| m.len()).unwrap_or(0), 0);
    }

    async fn populate(store: &dyn Store) -> Vec<Msg> {
        store.touch_user("alice", 10).await.unwrap();
        store.touch_user("bob", 11).await.unwrap();
        store.set_profile("alice", Some("Alice"), Some("avatar:2"), Some("here")).await.unwrap();
        store.set_last_seen("bob", 99).await.unwrap();
        let mut sent = Vec::new();
        for i in 0..5 {
            let m = text("alice", Target::User("bob".into()), &format!("c{i}"), &format!("hi {i}"), 100 + i);
            sent.push(store.append(m).await.unwrap().msg);
        }
        let lobby = NewChannel {
            name: "lobby".into(),
            title: "Lobby".into(),
            topic: "all".into(),
            private: false,
            creator: Some("alice".into()),
            now: 5,
        };
        assert!(store.create_channel(lobby).await.unwrap());
        assert!(store.add_member("lobby", "bob", 6).await.unwrap());
        sent.push(
            store.append(text("bob", Target::Channel("lobby".into()), "c0", "yo", 200)).await.unwrap().msg,
        );
        store.advance_cursor(&Conv::dm("alice", "bob"), "bob", Some(5), Some(3)).await.unwrap();
        store.create_invite(&new_invite("i1", "alice", "bob")).await.unwrap();
        store.create_invite(&new_invite("i2", "bob", "alice")).await.unwrap();
        store.mark_invite_received("i1").await.unwrap().unwrap();
        let mut resp = Map::new();
        resp.insert("sdp".into(), Value::String("x".into()));
        store.transition_invite("i2", InviteState::Accepted, Some(resp)).await.unwrap();
        let meta = MediaMeta {
            id: "m_1".into(),
            owner: "alice".into(),
            mime: "image/png".into(),
            size: 3,
            sha256: "abc".into(),
            created: 7,
        };
        store.put_media(&meta, vec![1, 2, 3]).await.unwrap();
        sent
    }

    /// Checks that everything [`populate`] wrote is readable.
    async fn check_populated(store: &dyn Store, sent: &[Msg]) {
        assert!(store.user_exists("alice").await.unwrap());
        assert!(store.user_exists("bob").await.unwrap());
        let profiles = store.profiles(&["alice".into()]).await.unwrap();
        assert_eq!(profiles[0].name, "Alice");
        assert_eq!(profiles[0].avatar, "avatar:2");
        assert_eq!(store.last_seen(&["bob".into()]).await.unwrap()["bob"], 99);
        let dm = Conv::dm("alice", "bob");
        let (page, more) = store.history(&dm, Page::Latest, 100).await.unwrap();
        assert!(!more);
        assert_eq!(page, sent[..5]);
        let (page, _) = store.history(&Conv::channel("lobby"), Page::Latest, 100).await.unwrap();
        assert_eq!(page, sent[5..]);
        assert_eq!(store.members("lobby").await.unwrap(), ["alice", "bob"]);
        assert_eq!(store.cursor(&dm, "bob").await.unwrap(), Cursor { recv_seq: 5, read_seq: 3 });
        let i1 = store.invite("i1").await.unwrap().unwrap();
        assert!(i1.received);
        assert_eq!(i1.state, InviteState::Pending);
        let i2 = store.invite("i2").await.unwrap().unwrap();
        assert_eq!(i2.state, InviteState::Accepted);
        assert_eq!(i2.response.unwrap()["sdp"], "x");
        assert_eq!(store.media("m_1").await.unwrap().unwrap().1, [1, 2, 3]);
        assert_eq!(store.message_count().await.unwrap(), sent.len() as u64);
        let bob = store.conversations("bob").await.unwrap();
        assert_eq!(bob.len(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn everything_survives_close_and_reopen() {
        let dir = TempDir::new().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let sent = populate(&store).await;
        store.close().await.unwrap();
        drop(store);
        // close() checkpointed: the WAL is empty (or gone).
        let wal = dir.path().join(format!("{DB_FILE}-wal"));
        assert!(!wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0);

        let store = SqliteStore::open(dir.path()).unwrap();
        check_populated(&store, &sent).await;
        // Counters continue and idempotency holds across restarts.
        let again =
            store.append(text("alice", Target::User("bob".into()), "c0", "again", 999)).await.unwrap();
        assert!(again.dup);
        assert_eq!(again.msg, sent[0]);
        let next = store.append(text("alice", Target::User("bob".into()), "c-new", "n", 999)).await.unwrap();
        assert_eq!(next.msg.seq, 6);
        store.close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn everything_survives_drop_without_close() {
        let dir = TempDir::new().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let sent = populate(&store).await;
        drop(store);
        let store = SqliteStore::open(dir.path()).unwrap();
        check_populated(&store, &sent).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn acknowledged_appends_racing_a_close_are_all_stored_and_nothing_else() {
        let dir = TempDir::new().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let conv = Conv::channel("race");
        let (progress, mut progressed) = mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for t in 0..8 {
            let (store, progress) = (store.clone(), progress.clone());
            tasks.push(tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0.. {
                    let m = text(&format!("u{t}"), Target::Channel("race".into()), &format!("c{i}"), "x", i);
                    match store.append(m).await {
                        Ok(a) => {
                            acked.push(a.msg);
                            let _ = progress.send(());
                        }
                        Err(StoreError::Unavailable(_)) => break,
                        Err(e) => panic!("unexpected error {e:?}"),
                    }
                }
                acked
            }));
        }
        drop(progress);
        // Close while the appenders are mid-flight.
        for _ in 0..200 {
            progressed.recv().await.unwrap();
        }
        store.close().await.unwrap();
        let mut acked: Vec<Msg> = Vec::new();
        for t in tasks {
            acked.extend(t.await.unwrap());
        }
        acked.sort_by_key(|m| m.seq);
        assert!(acked.len() >= 200);

        let reopened = SqliteStore::open(dir.path()).unwrap();
        let (stored, more) = reopened.history(&conv, Page::After(0), 100_000).await.unwrap();
        assert!(!more);
        // Every acknowledged write is there, gapless, and nothing that was
        // refused slipped in.
        assert_eq!(stored, acked);
        let seqs: Vec<u64> = stored.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, (1..=stored.len() as u64).collect::<Vec<_>>());
        let rows: i64 = raw(dir.path()).query_row("SELECT count(*) FROM messages", [], |r| r.get(0)).unwrap();
        assert_eq!(reopened.message_count().await.unwrap(), rows as u64);
    }

    /// Parks the writer thread inside a job until `release` is sent. Once
    /// it runs, its batch is sealed: whatever is queued next is the next
    /// batch. The receiver answers when the job's batch committed.
    async fn hold_writer(
        store: &SqliteStore,
    ) -> (std::sync::mpsc::Sender<()>, oneshot::Receiver<StoreResult<()>>) {
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (running, started) = oneshot::channel::<()>();
        let (blocker, done) = Command::write(move |_| {
            running.send(()).unwrap();
            held.recv().unwrap();
            Ok(())
        });
        store.commands.try_send(blocker).unwrap();
        started.await.unwrap();
        (release, done)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queued_writes_share_one_commit_and_a_failing_one_poisons_nothing() {
        let dir = TempDir::new().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        store.create_invite(&new_invite("taken", "alice", "bob")).await.unwrap();
        let before = store.writer_stats();

        // Hold the writer inside a job so everything below queues up behind it.
        let (release, blocker_done) = hold_writer(&store).await;

        let mut appends = Vec::new();
        let mut failing = Vec::new();
        for i in 0..20 {
            let m = text("alice", Target::User("bob".into()), &format!("c{i}"), "x", i);
            let (cmd, rx) = Command::write(move |c| append_message(c, m));
            store.commands.try_send(cmd).unwrap();
            appends.push(rx);
            if i == 10 {
                // A write that changes something and then fails: its change
                // must vanish, the others must commit.
                let (cmd, rx) = Command::write(|c| {
                    c.execute("INSERT INTO users (user_id, created, last_login) VALUES ('ghost', 0, 0)", [])?;
                    c.execute("INSERT INTO invites (iid, sender, recipient, room, content, state, created, expires, received) VALUES ('taken', 'x', 'y', 'r', '{}', 'pending', 0, 0, 0)", [])?;
                    Ok(())
                });
                store.commands.try_send(cmd).unwrap();
                failing.push(rx);
                // And one that panics.
                let (cmd, rx) =
                    Command::write(|_| -> StoreResult<()> { panic!("boom (expected by the test)") });
                store.commands.try_send(cmd).unwrap();
                failing.push(rx);
            }
        }
        release.send(()).unwrap();
        blocker_done.await.unwrap().unwrap();

        let mut seqs = Vec::new();
        for rx in appends {
            seqs.push(rx.await.unwrap().expect("appends commit").msg.seq);
        }
        let constraint = failing.remove(0).await.unwrap();
        assert!(matches!(constraint, Err(StoreError::Sqlite(_))), "{constraint:?}");
        let panicked = failing.remove(0).await.unwrap();
        assert!(matches!(panicked, Err(StoreError::Unavailable(_))), "{panicked:?}");
        assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
        assert!(!store.user_exists("ghost").await.unwrap(), "the failed write was rolled back");
        assert_eq!(store.message_count().await.unwrap(), 20);
        let after = store.writer_stats();
        assert_eq!(after.batches - before.batches, 2, "the blocker's batch, then one for all 22 queued");
        assert_eq!(after.writes - before.writes, 23);
    }

    /// Writer cost of durable appends: 200 DMs, 400 senders with one send
    /// in flight each (like courier-bench p2p). Prints; asserts nothing
    /// about speed. `cargo test --release -p courier-server --lib
    /// append_cost -- --ignored --nocapture`
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "measurement; prints the writer's cost per append"]
    async fn append_cost() {
        let dir = TempDir::new().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let thread_cpu = || {
            // utime + stime of the writer thread, in clock ticks (10 ms).
            let mut total = 0_u64;
            for task in std::fs::read_dir("/proc/self/task").unwrap() {
                let stat = std::fs::read_to_string(task.unwrap().path().join("stat")).unwrap();
                if stat.contains("(courier-sqlite-") {
                    let after = &stat[stat.rfind(')').unwrap() + 2..];
                    let f: Vec<&str> = after.split(' ').collect();
                    total += f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
                }
            }
            total
        };
        let run = |round: usize, per_sender: usize| {
            let store = store.clone();
            async move {
                let mut tasks = Vec::new();
                for s in 0..400 {
                    let store = store.clone();
                    tasks.push(tokio::spawn(async move {
                        let (me, peer) = (format!("u{s}"), format!("u{}", s ^ 1));
                        for i in 0..per_sender {
                            let cid = format!("r{round}-{i}");
                            let m = text(&me, Target::User(peer.clone()), &cid, &"x".repeat(100), i as i64);
                            store.append(m).await.unwrap();
                        }
                    }));
                }
                for t in tasks {
                    t.await.unwrap();
                }
            }
        };
        run(0, 50).await;
        for round in 1..=3 {
            let (cpu0, stats0, t0) = (thread_cpu(), store.writer_stats(), std::time::Instant::now());
            run(round, 100).await;
            let (cpu, stats, wall) = (thread_cpu() - cpu0, store.writer_stats(), t0.elapsed());
            let n = (stats.writes - stats0.writes) as f64;
            println!(
                "round {round}: {n} appends in {wall:.2?} ({:.0}/s), SQLite threads {:.1} µs CPU per append, {:.1} appends per batch",
                n / wall.as_secs_f64(),
                cpu as f64 * 10_000.0 / n,
                n / (stats.batches - stats0.batches) as f64,
            );
        }
        store.close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_without_savepoint_that_fails_takes_its_batch_with_it() {
        let dir = TempDir::new().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let (release, blocker_done) = hold_writer(&store).await;

        let append = |i: usize| {
            let m = text("alice", Target::User("bob".into()), &format!("c{i}"), "x", i as i64);
            Command::write_unisolated(move |c| append_message(c, m))
        };
        let mut before = Vec::new();
        for i in 0..3 {
            let (cmd, rx) = append(i);
            store.commands.try_send(cmd).unwrap();
            before.push(rx);
        }
        // Changes something, then fails: nothing can undo just its part.
        let (cmd, failing) = Command::write_unisolated(|c| -> StoreResult<()> {
            c.execute("INSERT INTO users (user_id, created, last_login) VALUES ('ghost', 0, 0)", [])?;
            Err(StoreError::Unavailable("failed half way (expected by the test)".into()))
        });
        store.commands.try_send(cmd).unwrap();
        let mut after = Vec::new();
        for i in 3..5 {
            let (cmd, rx) = append(i);
            store.commands.try_send(cmd).unwrap();
            after.push(rx);
        }
        release.send(()).unwrap();
        blocker_done.await.unwrap().unwrap();

        let own = failing.await.unwrap().unwrap_err();
        assert!(own.to_string().contains("half way"), "its own error: {own}");
        for rx in before {
            let e = rx.await.unwrap().unwrap_err();
            assert!(e.to_string().contains("rolled back"), "{e}");
        }
        let seqs: Vec<u64> = futures_util::future::join_all(after)
            .await
            .into_iter()
            .map(|r| r.unwrap().unwrap().msg.seq)
            .collect();
        assert_eq!(seqs, [1, 2], "the writes after it commit in a fresh transaction");
        assert!(!store.user_exists("ghost").await.unwrap(), "its half was rolled back");
        assert_eq!(store.message_count().await.unwrap(), 2);
        // The rolled-back appends can be retried with the same cids.
        let again = store.append(text("alice", Target::User("bob".into()), "c0", "x", 9)).await.unwrap();
        assert_eq!((again.dup, again.msg.seq), (false, 3));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn close_runs_the_writes_queued_before_it() {
        let dir = TempDir::new().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let (release, _) = hold_writer(&store).await;
        let mut queued = Vec::new();
        for i in 0..10 {
            let m = text("alice", Target::User("bob".into()), &format!("c{i}"), "x", i);
            let (cmd, rx) = Command::write(move |c| append_message(c, m));
            store.commands.try_send(cmd).unwrap();
            queued.push(rx);
        }
        let closing = tokio::spawn({
            let store = store.clone();
            async move { store.close().await }
        });
        // Wait (without sleeping) until the close request sits behind them.
        while store.commands.capacity() > QUEUE_DEPTH - queued.len() - 1 {
            tokio::task::yield_now().await;
        }
        release.send(()).unwrap();
        closing.await.unwrap().unwrap();
        for (i, rx) in queued.into_iter().enumerate() {
            assert_eq!(rx.await.unwrap().expect("queued before close").msg.seq, i as u64 + 1);
        }
        let reopened = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(reopened.message_count().await.unwrap(), 10);
    }

    const CRASH_CHILD: &str = "COURIER_SQLITE_CRASH_CHILD";

    /// The child half of the kill -9 test: appends forever from 4 tasks and
    /// prints each acknowledgement.
    async fn append_and_report_until_killed(dir: &Path) -> ! {
        let store = Arc::new(SqliteStore::open(dir).unwrap());
        for t in 0..4 {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0.. {
                    let to =
                        if t % 2 == 0 { Target::User("bob".into()) } else { Target::Channel("lobby".into()) };
                    let a = store.append(text(&format!("u{t}"), to, &format!("c{i}"), "x", i)).await.unwrap();
                    use std::io::Write;
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ack {} {}", a.msg.conv, a.msg.mid).unwrap();
                    out.flush().unwrap();
                }
            });
        }
        std::future::pending().await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn acknowledged_appends_survive_kill_9() {
        if let Some(dir) = std::env::var_os(CRASH_CHILD) {
            append_and_report_until_killed(Path::new(&dir)).await;
        }
        use tokio::io::AsyncBufReadExt;
        let dir = TempDir::new().unwrap();
        let module = module_path!().split_once("::").map_or(module_path!(), |(_, rest)| rest);
        let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", &format!("{module}::acknowledged_appends_survive_kill_9"), "--nocapture"])
            .env(CRASH_CHILD, dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut acked = Vec::new();
        while acked.len() < 400 {
            let line = lines.next_line().await.unwrap().expect("the child stopped before it was killed");
            if let Some(ack) = line.strip_prefix("ack ") {
                let (conv, mid) = ack.split_once(' ').unwrap();
                acked.push((Conv::parse(conv).unwrap(), mid.to_owned()));
            }
        }
        child.kill().await.unwrap(); // SIGKILL while it is still appending

        let store = SqliteStore::open(dir.path()).unwrap();
        for (conv, mid) in &acked {
            assert!(
                store.message(conv, mid).await.unwrap().is_some(),
                "acknowledged {mid} in {conv} was lost"
            );
        }
        for conv in [Conv::channel("lobby"), Conv::dm("bob", "u0"), Conv::dm("bob", "u2")] {
            let (msgs, _) = store.history(&conv, Page::After(0), u32::MAX).await.unwrap();
            let seqs: Vec<u64> = msgs.iter().map(|m| m.seq).collect();
            assert_eq!(seqs, (1..=msgs.len() as u64).collect::<Vec<_>>(), "{conv} has gaps after the crash");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_file_that_is_not_a_database_is_unusable_and_left_alone() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join(DB_FILE);
        let junk: Vec<u8> = b"this is not a database, it is a shopping list\n".repeat(200);
        std::fs::write(&path, &junk).unwrap();
        let msg = expect_unusable(SqliteStore::open(dir.path()));
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert_eq!(std::fs::read(&path).unwrap(), junk);
        assert_eq!(files_in(dir.path()), [DB_FILE]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_corrupt_database_is_unusable_and_left_alone() {
        let dir = TempDir::new().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        populate(&store).await;
        store.close().await.unwrap();
        drop(store);
        // Scribble over the schema table on page 1 (after the 100-byte header).
        let path = dir.path().join(DB_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        for b in &mut bytes[100..1024] {
            *b = 0xA5;
        }
        std::fs::write(&path, &bytes).unwrap();
        let msg = expect_unusable(SqliteStore::open(dir.path()));
        assert!(msg.contains("corrupt"), "{msg}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_database_from_a_newer_build_is_refused_and_left_alone() {
        let dir = TempDir::new().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        store.close().await.unwrap();
        drop(store);
        raw(dir.path()).pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
        let path = dir.path().join(DB_FILE);
        let bytes = std::fs::read(&path).unwrap();
        let msg = expect_unusable(SqliteStore::open(dir.path()));
        assert!(msg.contains(&format!("schema version {}", SCHEMA_VERSION + 1)), "{msg}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn another_applications_database_is_refused() {
        let dir = TempDir::new().unwrap();
        raw(dir.path()).execute_batch("CREATE TABLE recipes (name TEXT);").unwrap();
        let msg = expect_unusable(SqliteStore::open(dir.path()));
        assert!(msg.contains("did not create"), "{msg}");
        let tables: i64 =
            raw(dir.path()).query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0)).unwrap();
        assert_eq!(tables, 1, "nothing was added to the foreign database");
    }

    /// Rows written with each historical schema, by raw SQL as that version
    /// of the code would have stored them. Entry `i` is data for schema
    /// version `i + 1`; add one with every migration.
    const FIXTURES: &[&str] = &[
        // v1
        r#"
        INSERT INTO users VALUES ('alice', 1, 2), ('bob', 1, 3);
        INSERT INTO profiles VALUES ('alice', 'Alice', 'avatar:1', 'hi');
        INSERT INTO last_seen VALUES ('bob', 50);
        INSERT INTO conversations VALUES ('dm:alice:bob', 2, 20), ('ch:lobby', 1, 30);
        INSERT INTO messages (conv, seq, mid, cid, sender, target, kind, body, reply_to, ts) VALUES
            ('dm:alice:bob', 1, 'M1', 'c1', 'alice', '{"user":"bob"}', 'text', '{"text":"one"}', NULL, 10),
            ('dm:alice:bob', 2, 'M2', 'c2', 'bob', '{"user":"alice"}', 'text', '{"text":"two"}', 'M1', 20),
            ('ch:lobby', 1, 'M3', 'c1', 'bob', '{"channel":"lobby"}', 'custom', '{"k":[1,2]}', NULL, 30);
        INSERT INTO dm_members VALUES ('alice', 'dm:alice:bob', 'bob'), ('bob', 'dm:alice:bob', 'alice');
        INSERT INTO cursors VALUES ('dm:alice:bob', 'bob', 2, 1);
        INSERT INTO channels VALUES ('lobby', 'Lobby', '', 0, NULL, 1);
        INSERT INTO channels VALUES ('team', 'Team', '', 1, 'alice', 2), ('gone', 'Gone', '', 0, 'carol', 3);
        INSERT INTO channel_members (channel, user_id, joined) VALUES ('lobby', 'bob', 5), ('lobby', 'alice', 6);
        INSERT INTO channel_members (channel, user_id, joined) VALUES
            ('team', 'bob', 7), ('team', 'alice', 8), ('gone', 'dave', 9), ('gone', 'erin', 10);
        INSERT INTO invites VALUES ('i1', 'alice', 'bob', 'call-i1', '{"a":1}', 'pending', 100, 200, 1, NULL, NULL);
        INSERT INTO media VALUES ('m_1', 'alice', 'text/plain', 2, 'ff', 9);
        INSERT INTO media_blobs VALUES ('m_1', x'6869');
        "#,
        // v2
        r#"
        INSERT INTO conversations (conv, last_seq, last_ts, rel_count) VALUES ('dm:bob:carol', 5, 44, 3);
        INSERT INTO messages (conv, seq, mid, cid, sender, target, kind, body, reply_to, ts,
                              rel_target, rel_count, edited_text, edited_ts, recalled, pinned, pin_seq) VALUES
            ('dm:bob:carol', 1, 'N1', 'n1', 'bob', '{"user":"carol"}', 'text',
             '{"text":"hey @carol","mentions":["carol"]}', NULL, 40, NULL, 0, 'hi @carol', 42, 0, 43, 4),
            ('dm:bob:carol', 2, 'N2', 'n2', 'carol', '{"user":"bob"}', 'text', '{"text":"yo"}', NULL, 41,
             NULL, 0, NULL, NULL, 0, NULL, NULL),
            ('dm:bob:carol', 3, 'N3', 'n3', 'bob', '{"user":"carol"}', 'edit', '{"target":"N1","text":"hi @carol"}',
             NULL, 42, 'N1', 1, NULL, NULL, 0, NULL, NULL),
            ('dm:bob:carol', 4, 'N4', 'n4', 'carol', '{"user":"bob"}', 'pin', '{"target":"N1","on":true}', NULL, 43,
             'N1', 2, NULL, NULL, 0, NULL, NULL),
            ('dm:bob:carol', 5, 'N5', 'n5', 'carol', '{"user":"bob"}', 'reaction',
             '{"target":"N1","key":"👍","on":true}', NULL, 44, 'N1', 3, NULL, NULL, 0, NULL, NULL);
        INSERT INTO dm_members VALUES ('bob', 'dm:bob:carol', 'carol'), ('carol', 'dm:bob:carol', 'bob');
        INSERT INTO reactions VALUES ('dm:bob:carol', 1, '👍', 'carol', 5);
        INSERT INTO mentions VALUES ('carol', 'dm:bob:carol', 1);
        INSERT INTO channel_removals VALUES ('team', 'zed');
        "#,
        // v3
        r#"
        INSERT INTO conversations (conv) VALUES ('ch:team');
        INSERT INTO messages (conv, seq, mid, cid, sender, target, kind, body, reply_to, ts, rel_target, rel_count)
            VALUES ('ch:team', 1, 'T1', 't1', 'alice', '{"channel":"team"}', 'text', '{"text":"v3"}', NULL, 60, NULL, 0);
        "#,
    ];

    /// Builds a database at schema `version` holding the fixtures of every
    /// version up to it, as an older build would have left it.
    fn build_historical(dir: &Path, version: usize) {
        let mut conn = raw(dir);
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        let tx = conn.transaction().unwrap();
        for v in 0..version {
            tx.execute_batch(MIGRATIONS[v]).unwrap();
            tx.execute_batch(FIXTURES[v]).unwrap();
        }
        if version > 0 {
            tx.pragma_update(None, "application_id", APPLICATION_ID).unwrap();
        }
        tx.pragma_update(None, "user_version", version as i64).unwrap();
        tx.commit().unwrap();
    }

    fn schema_of(dir: &Path) -> Vec<(String, String, Option<String>)> {
        let conn = raw(dir);
        let mut stmt = conn
            .prepare("SELECT type, name, sql FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY name")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn every_migration_has_a_fixture() {
        assert_eq!(FIXTURES.len(), MIGRATIONS.len());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_historical_schema_migrates_to_the_current_one() {
        let fresh_dir = TempDir::new().unwrap();
        SqliteStore::open(fresh_dir.path()).unwrap().close().await.unwrap();
        let current = schema_of(fresh_dir.path());

        for version in 0..=MIGRATIONS.len() {
            let dir = TempDir::new().unwrap();
            build_historical(dir.path(), version);
            let store = SqliteStore::open(dir.path())
                .unwrap_or_else(|e| panic!("opening a v{version} database: {e}"));
            check_migrated_fixtures(&store, version).await;
            store.close().await.unwrap();
            drop(store);
            let conn = raw(dir.path());
            let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
            assert_eq!(v, SCHEMA_VERSION, "from v{version}");
            let fk: Vec<String> = conn
                .prepare("PRAGMA foreign_key_check")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(fk.is_empty(), "from v{version}: foreign key violations in {fk:?}");
            assert_eq!(
                schema_of(dir.path()),
                current,
                "schema migrated from v{version} differs from a fresh one"
            );
        }
    }
}
