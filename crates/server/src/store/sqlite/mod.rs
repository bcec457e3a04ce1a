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
//! acknowledged write is on disk before the caller hears about it. Under
//! load a batch also waits until a short interval has passed since the
//! previous one began, so that commits grow instead of multiplying.
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
//! # A conversation's order: indexed in steps
//!
//! A message's place in its conversation, `(conv, seq)`, is not indexed by
//! the append that stores it: that put one scattered index page per
//! conversation into every commit. Each conversation's newest messages (the
//! tail) are read straight from the table, as a range of rowids that
//! `message_tail` gives in one lookup (schema v7); once the tail holds a
//! few thousand rows, the writer moves whole conversations of it into
//! `message_order`, oldest first, a few hundred entries per step, in a
//! transaction of its own after a batch (schema v8, [`tail`]). The writer
//! keeps each conversation's newest counters and the rows to index in
//! memory, and forgets both whenever a write is rolled back.
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
//!
//! # Layout
//!
//! This file holds [`SqliteStore`] and opening it; `schema` the migrations,
//! `writer` the writer thread and its batching, `readers` the read pool,
//! `walbuf` and `paced` the VFSs of the writer's and the checkpointer's
//! connections (one write per commit's WAL frames; a checkpoint's writeback
//! started as it writes), `rows` the row mapping, and one file per domain (`users`, `messages`,
//! `relations`, `channels`, `invites`, `media`) its trait impl and SQL.

#[macro_use]
mod rows;
mod channels;
mod invites;
mod media;
mod messages;
#[cfg(target_os = "linux")]
mod paced;
mod readers;
mod relations;
mod schema;
mod tail;
#[cfg(test)]
mod tests;
mod users;
mod walbuf;
mod writer;

pub use schema::{MIGRATIONS, SCHEMA_VERSION};
pub use writer::WriterStats;

use readers::ReadPool;
use schema::{check_identity, migrate, unusable_if_damaged};
use writer::{Command, QUEUE_DEPTH, Stats, writer_main};

use crate::store::shared::from_sql_int;
use crate::store::{BatchHook, StoreAdmin};
use crate::store::{StoreError, StoreResult};
use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "courier.db";

/// Most commands committed together in one transaction.
pub const MAX_BATCH: usize = 512;

/// Read-only connections in the pool (the most reads running at once).
pub const READERS: usize = 4;

/// How long a statement waits for a lock held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// The writer's page cache (negative: KiB). Index pages of hot conversations
/// stay in memory instead of being read back for every insert. Not larger:
/// a commit after a page split scans the cache's whole hash table (SQLite
/// rekeys a page to a number past the end during the split, and ending the
/// transaction truncates the cache back), so the cost of every such commit
/// grows with the cache. 32 MiB kept up with 12-13.5k msg/s in the p2p
/// benchmark, 8 MiB with 14k at less CPU per message.
pub const WRITER_CACHE_KIB: u32 = 8 * 1024;
/// SQLite's default page cache (KiB), the most a reader gets.
const READER_CACHE_KIB: u32 = 2000;
/// The WAL file is truncated back to this size after a checkpoint reset it.
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// The SQLite implementation of [`Store`](crate::store::Store). See the
/// module docs for how writes and reads are arranged.
///
/// Call [`StoreAdmin::close`] before exit: it waits for queued writes and
/// checkpoints the WAL. Merely dropping the store lets the writer thread
/// finish the queued writes in the background (nothing acknowledged is lost
/// either way: acknowledged means committed).
pub struct SqliteStore {
    path: PathBuf,
    commands: mpsc::Sender<Command>,
    readers: Arc<ReadPool>,
    /// Set by `close`; shared with the waits of queued writes.
    closed: Arc<AtomicBool>,
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
        Self::open_sized(dir, READERS, WRITER_CACHE_KIB)
    }

    /// [`open`](Self::open) with `readers` read connections and a writer
    /// page cache of `cache_kib` KiB (readers get at most SQLite's default
    /// 2000 KiB, and no more than `cache_kib`): `Config::store_readers` and
    /// `Config::store_cache_kib`.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_sized(dir: &Path, readers: usize, cache_kib: u32) -> StoreResult<SqliteStore> {
        Self::open_with(dir, readers, cache_kib, tail::Indexing::DEFAULT)
    }

    /// [`open_sized`](Self::open_sized), indexing the tail of newest
    /// messages as `indexing` says (tests: every batch, or in small steps).
    pub(super) fn open_with(
        dir: &Path,
        readers: usize,
        cache_kib: u32,
        indexing: tail::Indexing,
    ) -> StoreResult<SqliteStore> {
        let n_readers = readers.max(1);
        std::fs::create_dir_all(dir)?;
        let path = dir.join(DB_FILE);
        let unusable = |e: rusqlite::Error| unusable_if_damaged(&path, e);

        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        // The writer writes each commit's WAL frames in one system call
        // (store/walbuf.rs); without that VFS it still works, just slower.
        let mut conn = match walbuf::register() {
            Ok(()) => Connection::open_with_flags_and_vfs(&path, flags, walbuf::NAME),
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
        conn.pragma_update(None, "cache_size", -i64::from(cache_kib))?;
        // Each write's savepoint journals the pages it touches: in memory,
        // not in a temporary file.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        let checkpoint_conn = open_checkpointer(&path)?;
        checkpoint_conn.busy_timeout(writer::CHECKPOINT_WAIT)?;

        let mut readers = Vec::with_capacity(n_readers);
        for _ in 0..n_readers {
            let r = Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            r.busy_timeout(BUSY_TIMEOUT)?;
            r.set_prepared_statement_cache_capacity(64);
            if cache_kib < READER_CACHE_KIB {
                r.pragma_update(None, "cache_size", -i64::from(cache_kib))?;
            }
            readers.push(r);
        }

        let (commands, queue) = mpsc::channel(QUEUE_DEPTH);
        let stats = Arc::new(Stats::default());
        let writer = {
            let stats = stats.clone();
            std::thread::Builder::new()
                .name("courier-sqlite-writer".into())
                .spawn(move || writer_main(conn, checkpoint_conn, queue, &stats, indexing))?
        };
        Ok(SqliteStore {
            path,
            commands,
            readers: Arc::new(ReadPool {
                conns: Mutex::new(readers),
                permits: Arc::new(Semaphore::new(n_readers)),
            }),
            closed: Arc::new(AtomicBool::new(false)),
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
}

/// The checkpointer's connection. On Linux its writes to the database file
/// start their writeback as they are made ([`paced`]), so that a checkpoint
/// does not hold the writer's fsyncs up behind its own; elsewhere, or if
/// that VFS cannot be registered, the default VFS (same results, only
/// without the head start).
fn open_checkpointer(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    #[cfg(target_os = "linux")]
    match paced::register() {
        Ok(()) => return Connection::open_with_flags_and_vfs(path, flags, paced::NAME),
        Err(e) => {
            tracing::warn!(error = %e, "the paced checkpoint VFS is unavailable; using the default VFS")
        }
    }
    Connection::open_with_flags(path, flags)
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

    fn observe_batches(&self, hook: BatchHook) -> bool {
        // A second hook is dropped: the first one's metrics keep counting.
        let _ = self.stats.on_batch.set(hook);
        true
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
