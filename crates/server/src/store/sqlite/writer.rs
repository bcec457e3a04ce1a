//! The single writer thread and its group commit (see the engine docs in
//! [`super`]): the command queue, batches of savepointed jobs in one
//! transaction, the checkpointer, and how callers hand work to it.

use super::messages::forget_newest;
use super::tail::{Indexing, forget_pending, index_step, step_due};
use super::{MAX_BATCH, SqliteStore};
use crate::store::shared::closed;
use crate::store::{BatchHook, BatchTimes, StoreError, StoreResult};
use rusqlite::Connection;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Commands that may wait for the writer before senders are slowed down.
pub(super) const QUEUE_DEPTH: usize = 2 * MAX_BATCH;

/// Under load (the previous batch held at least [`GATHER_FROM`] writes) a
/// batch begins no sooner than this after the previous one began: commits
/// are larger and fewer (one fsync, and one copy of each page a commit
/// touches, for more messages) at the price of at most this much added
/// latency. Commits that take longer than this (fsync) see no wait at all.
const MIN_BATCH_INTERVAL: Duration = Duration::from_millis(2);

/// Writes in the previous batch from which the writer counts as loaded.
const GATHER_FROM: usize = 8;

/// How long the checkpointer lets commits accumulate before copying the WAL
/// back into the database (one checkpoint per interval under load, none idle).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// WAL frames (pages) from which the WAL is started over: after the
/// background checkpoint the writer copies back the few frames committed
/// meanwhile, so that its next transaction writes from the WAL's start
/// (see [`checkpointer_main`]). About 4 MiB of 4 KiB pages.
const REWIND_FROM_FRAMES: i64 = 1000;

/// How long the checkpointer's connection waits on a lock it finds held
/// (opening the database, a WAL recovery) before its call fails. Passive
/// checkpoints themselves never wait.
pub(super) const CHECKPOINT_WAIT: Duration = Duration::from_millis(250);

/// Counters of the writer thread, for metrics (average batch size =
/// `writes / batches`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriterStats {
    /// Batches run, each one transaction and one fsync.
    pub batches: u64,
    /// Commands executed in them, failed ones included.
    pub writes: u64,
}

impl SqliteStore {
    /// Runs `work` on the writer thread inside the next batch and returns
    /// its result once the batch is committed.
    pub(super) async fn write<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.submit(Command::write(work)).await
    }

    /// [`write`](Self::write) without a savepoint of its own (see
    /// [`Command::write_unisolated`]).
    pub(super) async fn write_unisolated<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.submit(Command::write_unisolated(work)).await
    }

    pub(super) async fn submit<T: Send + 'static>(
        &self,
        command: (Command, oneshot::Receiver<StoreResult<T>>),
    ) -> StoreResult<T> {
        self.enqueue(command).await.await
    }

    /// Queues a command behind every command queued before (waiting while
    /// the queue is full) and returns the wait for its answer: commands
    /// run, and are answered, in the order their `enqueue` completed.
    pub(super) async fn enqueue<T: Send + 'static>(
        &self,
        (command, reply): (Command, oneshot::Receiver<StoreResult<T>>),
    ) -> impl std::future::Future<Output = StoreResult<T>> + Send + 'static {
        let queued = if self.closed.load(Ordering::Acquire) {
            Err(closed())
        } else {
            self.commands.send(command).await.map_err(|_| gone(&self.closed))
        };
        let closed = self.closed.clone();
        async move {
            queued?;
            reply.await.map_err(|_| gone(&closed))?
        }
    }

    /// The error for a writer that no longer answers.
    pub(super) fn gone(&self) -> StoreError {
        gone(&self.closed)
    }
}

/// The error for a writer that no longer answers: closed, or stopped.
fn gone(closed_flag: &AtomicBool) -> StoreError {
    if closed_flag.load(Ordering::Acquire) {
        closed()
    } else {
        StoreError::Unavailable("the SQLite writer thread stopped".into())
    }
}

#[cfg(test)]
impl SqliteStore {
    /// Parks the writer thread inside a job until `release` is sent (tests).
    /// Once it runs, its batch is sealed: whatever is queued next is the
    /// next batch. The receiver answers when the job's batch committed.
    pub(crate) async fn hold_writer(
        &self,
    ) -> (std::sync::mpsc::Sender<()>, oneshot::Receiver<StoreResult<()>>) {
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (running, started) = oneshot::channel::<()>();
        let (blocker, done) = Command::write(move |_| {
            running.send(()).expect("the test waits");
            // A dropped sender releases it too.
            let _ = held.recv();
            Ok(())
        });
        self.commands.try_send(blocker).expect("room in the queue");
        started.await.expect("the writer runs");
        (release, done)
    }

    /// Commands waiting for the writer (tests).
    pub(crate) fn queued(&self) -> usize {
        QUEUE_DEPTH - self.commands.capacity()
    }
}

// ---------------------------------------------------------------------------
// The writer thread

#[derive(Default)]
pub(super) struct Stats {
    pub(super) batches: AtomicU64,
    pub(super) writes: AtomicU64,
    /// Told the times of every batch that committed (metrics), once set.
    pub(super) on_batch: OnceLock<BatchHook>,
}

/// What the writer thread is asked to do.
pub(super) enum Command {
    /// Run one write in the next batch.
    Write(Box<dyn Job>),
    /// Finish what was queued before, checkpoint, close, and stop.
    Close(oneshot::Sender<StoreResult<()>>),
}

impl Command {
    /// A write in its own savepoint: when it fails, only it is undone.
    pub(super) fn write<T, F>(work: F) -> (Command, oneshot::Receiver<StoreResult<T>>)
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
    pub(super) fn write_unisolated<T, F>(work: F) -> (Command, oneshot::Receiver<StoreResult<T>>)
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
pub(super) trait Job: Send {
    /// Executes the write (inside its savepoint when isolated); true on
    /// success.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Runs in a savepoint of its own (see [`Command::write_unisolated`]).
    fn isolated(&self) -> bool;
    /// Answers the caller once the batch's fate is known: `batch` is `Ok`
    /// when the transaction holding this write committed.
    fn finish(self: Box<Self>, batch: StoreResult<()>);
}

pub(super) struct Pending<T, F> {
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

/// `indexing`: when a batch is followed by a step of the tail's indexing
/// ([`index_step`]).
pub(super) fn writer_main(
    conn: Connection,
    checkpoint_conn: Connection,
    mut queue: mpsc::Receiver<Command>,
    stats: &Stats,
    indexing: Indexing,
) {
    // The checkpointer lives as long as this thread holds `committed`.
    let (committed, commits) = std::sync::mpsc::sync_channel::<()>(1);
    let rewind = Arc::new(AtomicBool::new(false));
    let checkpointer = {
        let rewind = rewind.clone();
        std::thread::Builder::new()
            .name("courier-sqlite-checkpoint".into())
            .spawn(move || checkpointer_main(&checkpoint_conn, &commits, &rewind, CHECKPOINT_EVERY))
    };
    if let Err(e) = &checkpointer {
        // Without it the WAL would only be checkpointed at close: grow, not lose.
        tracing::error!(error = %e, "could not start the SQLite checkpointer thread");
        let _ = conn.pragma_update(None, "wal_autocheckpoint", 1000);
    }
    let mut checkpointer = checkpointer.ok();
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    // When the previous batch began and how many writes it held.
    let mut previous: Option<(Instant, usize)> = None;
    let mut index_failures = RepeatedFailure::default();
    while let Some(first) = queue.blocking_recv() {
        if let Some((began, writes)) = previous
            && writes >= GATHER_FROM
        {
            // Under load: let the batch fill for the rest of the interval.
            std::thread::sleep(MIN_BATCH_INTERVAL.saturating_sub(began.elapsed()));
        }
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
            previous = Some((Instant::now(), batch.len()));
            stats.writes.fetch_add(batch.len() as u64, Ordering::Relaxed);
            stats.batches.fetch_add(1, Ordering::Relaxed);
            let began = Instant::now();
            if let Some(commit) = run_batch(&conn, &mut batch)
                && let Some(hook) = stats.on_batch.get()
            {
                hook(BatchTimes { batch: began.elapsed(), commit });
            }
            // After the batch's callers have their answers, in the time
            // the next batch would wait for anyway under load.
            index_failures.report(index_tail_alone(&conn, indexing));
            if rewind.swap(false, Ordering::AcqRel) {
                catch_up(&conn);
            }
            // Wake the checkpointer (a full slot means it is already due).
            let _ = committed.try_send(());
        }
        if let Some(reply) = close {
            // Stop the checkpointer first: the final checkpoint is ours.
            stop_checkpointer(committed, checkpointer.take());
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
///
/// A passive checkpoint alone never lets the WAL start over while commits
/// keep coming: the writer rewinds it only when a transaction begins with
/// every frame already copied back, and by the time a checkpoint ends the
/// writer has appended more. Under sustained load the WAL then grows
/// without bound (620 MB in a 10 s run at 10k msg/s) and every commit
/// extends the file, which costs block allocation and more to sync than
/// overwriting blocks already allocated. So when the WAL holds more than
/// [`REWIND_FROM_FRAMES`], this sets `rewind`, and the writer, after its
/// next commit, copies back what this thread's checkpoint left (frames
/// committed while it ran) on its own connection ([`catch_up`]); its next
/// transaction then begins with every frame copied back and writes from
/// the WAL's start. A second pass here first copies what landed during the
/// first, so the writer's share is at most a commit or two. The file keeps
/// its size (`journal_size_limit`), so later commits overwrite it in place.
///
/// (A `RESTART` checkpoint from this thread did the same until issue 17's
/// sixth round, but it holds the write lock while it waits for readers to
/// leave the WAL: every commit waited with it, 1–22 ms five times a second
/// at 10k msg/s, the largest part of the p99 send → deliver. The writer's
/// own passive checkpoint waits for nobody: a reader still on an old
/// snapshot only means this rewind waits for the next checkpoint. At 10k
/// msg/s over 200 pairs, p99 send → deliver 10.4–11.3 → 6.3–6.7 ms;
/// docs/benchmarks.md, server levers.)
///
/// While an interval runs this thread sleeps without taking the commits'
/// signals: the one that started the interval's successor waits in the
/// channel's single slot, and the writer's `try_send` of every later
/// commit finds the slot full and wakes nobody. (Waiting on the channel
/// instead woke this thread once per commit, about 500 times a second at
/// 10k msg/s, to do nothing.) The writer unparks it when it closes.
pub(super) fn checkpointer_main(
    conn: &Connection,
    commits: &std::sync::mpsc::Receiver<()>,
    rewind: &AtomicBool,
    every: Duration,
) {
    while commits.recv().is_ok() {
        // Let commits accumulate, but leave at once when the writer closes
        // (its final checkpoint empties the WAL).
        // A commit's signal taken here is covered by this checkpoint.
        let due = Instant::now() + every;
        loop {
            if writer_gone(commits) {
                return;
            }
            let now = Instant::now();
            if now >= due {
                break;
            }
            std::thread::park_timeout(due - now);
        }
        // A second pass copies what was committed during the first (a few
        // commits' pages), so that little is left for the writer's catch-up.
        match passive_checkpoint(conn).and_then(|frames| Ok((frames, passive_checkpoint(conn)?))) {
            Ok((frames, _)) if frames > REWIND_FROM_FRAMES => rewind.store(true, Ordering::Release),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "background WAL checkpoint failed; will retry"),
        }
    }
}

/// Ends [`checkpointer_main`] (the writer closes): drops the writer's end of
/// its channel, wakes it from the interval it may be sleeping through, and
/// waits for it.
pub(super) fn stop_checkpointer(
    committed: std::sync::mpsc::SyncSender<()>,
    checkpointer: Option<std::thread::JoinHandle<()>>,
) {
    drop(committed);
    if let Some(t) = checkpointer {
        t.thread().unpark();
        let _ = t.join();
    }
}

/// Takes a signal left in `commits`; true once the writer has dropped its end.
fn writer_gone(commits: &std::sync::mpsc::Receiver<()>) -> bool {
    use std::sync::mpsc::TryRecvError;
    loop {
        match commits.try_recv() {
            Ok(()) => {}
            Err(TryRecvError::Empty) => return false,
            Err(TryRecvError::Disconnected) => return true,
        }
    }
}

/// Copies back what no reader still needs; returns the frames in the WAL.
pub(super) fn passive_checkpoint(conn: &Connection) -> rusqlite::Result<i64> {
    // (busy, frames in the WAL, frames copied back)
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
}

/// The writer's share of a rewind (see [`checkpointer_main`]): copies back
/// the frames the background checkpoint left, so that the next transaction
/// can start the WAL over.
pub(super) fn catch_up(conn: &Connection) {
    if let Err(e) = passive_checkpoint(conn) {
        // The WAL only grows until the next rewind.
        tracing::warn!(error = %e, "the writer's WAL catch-up checkpoint failed; will retry");
    }
}

/// Checkpoints the WAL into the main file and closes the connection.
pub(super) fn shut_down(conn: Connection) -> StoreResult<()> {
    let (busy, _log, _done): (i64, i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    if busy != 0 {
        // Not a durability problem: the WAL is durable and is replayed on open.
        tracing::warn!("WAL checkpoint at close was incomplete (a reader was still active)");
    }
    conn.close().map_err(|(_, e)| StoreError::Sqlite(e))
}

/// Executes `jobs` in one transaction, each in its own savepoint, commits,
/// then answers every caller. Leaves `jobs` empty. Returns how long the
/// `COMMIT` took when one succeeded.
pub(super) fn run_batch(conn: &Connection, jobs: &mut Vec<Box<dyn Job>>) -> Option<Duration> {
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
            forget_copies();
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
        return None;
    }
    let committing = Instant::now();
    match exec(conn, "COMMIT") {
        Ok(()) => {
            let took = committing.elapsed();
            for job in ran {
                job.finish(Ok(()));
            }
            Some(took)
        }
        Err(e) => {
            forget_copies();
            if !conn.is_autocommit() {
                let _ = exec(conn, "ROLLBACK");
            }
            for job in ran {
                job.finish(Err(replicate(&e)));
            }
            None
        }
    }
}

/// Indexes a step of the tail ([`index_step`]) in a transaction of its own
/// once one is due: a batch's writes never wait for it (the bulk step of
/// schema v7 took 1.3 ms and made its commit's fsync 1.3 ms longer when it
/// ran inside the batch). Its commit is not synced on its own: the entries
/// are derived from rows already durable, WAL recovery keeps it whole or
/// not at all, and the next batch's fsync covers it. A failure is undone;
/// the tail waits for the next batch.
fn index_tail_alone(conn: &Connection, how: Indexing) -> rusqlite::Result<()> {
    let indexed = step_due(conn, how).and_then(|due| {
        if !due {
            return Ok(());
        }
        exec(conn, "PRAGMA synchronous = NORMAL")?;
        let stepped = exec(conn, "BEGIN IMMEDIATE").and_then(|()| {
            let done = index_step(conn, how)?;
            exec(conn, if done { "COMMIT" } else { "ROLLBACK" })
        });
        if !conn.is_autocommit() {
            let _ = exec(conn, "ROLLBACK");
        }
        // Every other transaction's ok still means its commit is fsynced: a
        // writer that cannot promise that stops (the store then refuses
        // writes) rather than acknowledge unsynced commits.
        if let Err(e) = exec(conn, "PRAGMA synchronous = FULL") {
            panic!("could not restore synchronous=FULL on the SQLite writer: {e}");
        }
        stepped
    });
    if indexed.is_err() {
        forget_pending();
        if !conn.is_autocommit() {
            let _ = exec(conn, "ROLLBACK");
        }
    }
    indexed
}

/// Drops the writer's in-memory copies of what the database holds (each
/// conversation's newest counters, the tail to index): some write of the
/// open transaction was rolled back.
fn forget_copies() {
    forget_newest();
    forget_pending();
}

/// How often a failure that repeats with every batch is logged.
const REPEAT_WARNING_EVERY: Duration = Duration::from_secs(60);

/// Failures of an attempt the writer repeats after every batch: logged
/// when they begin, then at most once per [`REPEAT_WARNING_EVERY`] with
/// the number since (under load a batch ends every few milliseconds), and
/// once more when an attempt succeeds again.
#[derive(Default)]
struct RepeatedFailure {
    /// Failures in a row, and when the last warning was logged.
    failing: Option<(u64, Instant)>,
}

impl RepeatedFailure {
    /// A failure at `now`: `Some(failures so far)` when it is to be logged.
    fn failed(&mut self, now: Instant) -> Option<u64> {
        match &mut self.failing {
            None => {
                self.failing = Some((1, now));
                Some(1)
            }
            Some((count, logged)) => {
                *count += 1;
                if now.duration_since(*logged) < REPEAT_WARNING_EVERY {
                    return None;
                }
                *logged = now;
                Some(*count)
            }
        }
    }

    /// A success: `Some(failures before it)` if it ends a run of them.
    fn succeeded(&mut self) -> Option<u64> {
        self.failing.take().map(|(count, _)| count)
    }

    fn report(&mut self, result: rusqlite::Result<()>) {
        match result {
            Ok(()) => {
                if let Some(failures) = self.succeeded() {
                    tracing::info!(failures, "indexing the newest messages works again");
                }
            }
            Err(e) => {
                if let Some(failures) = self.failed(Instant::now()) {
                    tracing::warn!(
                        error = %e,
                        failures,
                        "indexing the newest messages failed; every batch tries again (reads still find them)"
                    );
                }
            }
        }
    }
}

/// Gives up the open transaction: rolls it back (if SQLite has not already)
/// and fails the writes it held. The next write opens a fresh one.
pub(super) fn abandon(conn: &Connection, ran: &mut Vec<Box<dyn Job>>, e: &rusqlite::Error) {
    forget_copies();
    if !conn.is_autocommit() {
        let _ = exec(conn, "ROLLBACK");
    }
    for job in ran.drain(..) {
        job.finish(Err(replicate(e)));
    }
}

pub(super) fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

/// One engine error, handed to many callers.
pub(super) fn replicate(e: &rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(code, msg) => {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(*code, msg.clone()))
        }
        other => StoreError::Unavailable(format!("write batch failed: {other}")),
    }
}

#[cfg(test)]
mod repeated_failure_tests {
    use super::{REPEAT_WARNING_EVERY, RepeatedFailure};
    use std::time::{Duration, Instant};

    #[test]
    fn a_failure_repeated_by_every_batch_is_logged_once_a_minute_and_its_end_once() {
        let mut f = RepeatedFailure::default();
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        assert_eq!(f.failed(t0), Some(1), "the first is logged");
        // A batch every 2 ms for just under a minute: none logged.
        let quiet = (1..30_000).filter_map(|i| f.failed(ms(2 * i))).count();
        assert_eq!(quiet, 0);
        assert_eq!(f.failed(t0 + REPEAT_WARNING_EVERY), Some(30_001), "then once a minute, with the count");
        assert_eq!(f.failed(t0 + REPEAT_WARNING_EVERY + Duration::from_millis(2)), None);
        assert_eq!(f.succeeded(), Some(30_002), "the end of the run is logged with its length");
        assert_eq!(f.succeeded(), None, "a success after a success is not");
        assert_eq!(f.failed(ms(200_000)), Some(1), "a new run is logged at once");
    }
}
