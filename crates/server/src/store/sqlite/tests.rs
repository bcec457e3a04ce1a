//! Tests of the SQLite engine itself: opening, durability (close, drop,
//! `kill -9`), group commit, and migrating every historical schema. The
//! shared behaviour suite runs here too.

use super::messages::append_message;
use super::schema::APPLICATION_ID;
use super::writer::{Command, QUEUE_DEPTH};
use super::*;
use crate::store::suite::{check_migrated_fixtures, invite as new_invite, text};
use crate::store::{
    ChannelStore, Cursor, InviteStore, MediaMeta, MessageStore, NewChannel, Page, Store, UserStore,
};
use courier_proto::{Conv, InviteState, Msg, Target};
use serde_json::{Map, Value};
use tempfile::TempDir;

/// A fresh store in its own temporary directory (removed with the store).
async fn fresh() -> Arc<dyn Store> {
    fresh_indexing(tail::Indexing::DEFAULT).await
}

/// [`fresh`], indexing the tail of newest messages as `how` says.
async fn fresh_indexing(how: tail::Indexing) -> Arc<dyn Store> {
    let dir = TempDir::new().expect("temp dir");
    let mut store =
        SqliteStore::open_with(dir.path(), READERS, WRITER_CACHE_KIB, how).expect("open a fresh store");
    store._temp_dir = Some(dir);
    Arc::new(store)
}

/// Indexing from `from_rows`, `step_rows` entries a step at least.
const fn indexing(from_rows: usize, step_rows: usize) -> tail::Indexing {
    tail::Indexing { from_rows, step_rows }
}

/// The suite's conversations are short: here they stay in the tail.
mod suite {
    crate::store_suite!(super::fresh());
}

/// Every batch indexes the tail: reads go through `message_order`.
mod suite_indexed {
    crate::store_suite!(super::fresh_indexing(super::tail::Indexing::EVERY_BATCH));
}

/// The whole tail is indexed every third message: reads join both halves.
mod suite_mixed {
    crate::store_suite!(super::fresh_indexing(super::indexing(3, usize::MAX)));
}

/// From two rows on, a step indexes the oldest conversation(s) and leaves
/// one row: some conversations indexed ahead of older rows of others.
mod suite_stepped {
    crate::store_suite!(super::fresh_indexing(super::indexing(2, 1)));
}

fn raw(dir: &Path) -> Connection {
    Connection::open(dir.join(DB_FILE)).expect("raw connection")
}

/// The first column of every row `sql` returns, as text.
fn strings(conn: &Connection, sql: &str) -> Vec<String> {
    conn.prepare(sql).unwrap().query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
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
        store.append(text("alice", Target::User("bob".into()), &format!("c{i}"), &body, i)).await.unwrap();
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

/// The same through the store under sustained commits: the background
/// checkpoint never catches up on its own, so without the writer's
/// catch-up the WAL only grows. Watched through the wal-index header (the
/// `-shm` file: `mxFrame`, the frames in use, at byte 16), which does not
/// checkpoint anything itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sustained_commits_start_the_wal_over() {
    let dir = TempDir::new().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let shm = dir.path().join("courier.db-shm");
    let frames_in_use = || {
        let header = std::fs::read(&shm).unwrap_or_default();
        header.get(16..20).map_or(0, |b| u32::from_ne_bytes(b.try_into().unwrap()))
    };
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for s in 0..8 {
        let (store, stop) = (store.clone(), stop.clone());
        senders.push(tokio::spawn(async move {
            let body = "x".repeat(2_000);
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let to = Target::User(format!("peer{s}"));
                store.append(text("alice", to, &format!("s{s}-{i}"), &body, i)).await.unwrap();
                i += 1;
            }
        }));
    }
    let (mut peak, mut started_over) = (0, false);
    // Without the catch-up this runs its 10 s, the WAL growing to several
    // hundred MB; with it the WAL starts over within a second.
    for _ in 0..500 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = frames_in_use();
        if peak > 1000 && now < peak / 2 {
            started_over = true;
            break;
        }
        peak = peak.max(now);
    }
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.await.unwrap();
    }
    assert!(started_over, "the WAL grew to {peak} frames and never started over");
    store.close().await.unwrap();
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
    sent.push(store.append(text("bob", Target::Channel("lobby".into()), "c0", "yo", 200)).await.unwrap().msg);
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
    let again = store.append(text("alice", Target::User("bob".into()), "c0", "again", 999)).await.unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_writes_share_one_commit_and_a_failing_one_poisons_nothing() {
    let dir = TempDir::new().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    store.create_invite(&new_invite("taken", "alice", "bob")).await.unwrap();
    let before = store.writer_stats();

    // Hold the writer inside a job so everything below queues up behind it.
    let (release, blocker_done) = store.hold_writer().await;

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
            let (cmd, rx) = Command::write(|_| -> StoreResult<()> { panic!("boom (expected by the test)") });
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
async fn queued_appends_take_seqs_in_queue_order_without_waiting_for_a_commit() {
    let dir = TempDir::new().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let (release, _) = store.hold_writer().await;
    let mut stored = Vec::new();
    for i in 0..5 {
        let m = text("alice", Target::User("bob".into()), &format!("q{i}"), "x", i);
        // Completes while the writer is held: queued, not committed.
        stored.push(store.queue_append(m).await);
    }
    assert_eq!(store.queued(), 5);
    release.send(()).unwrap();
    // Waited for newest first: the order is the queue's, not the waiters'.
    let mut seqs = Vec::new();
    for s in stored.into_iter().rev() {
        seqs.push(s.await.unwrap().msg.seq);
    }
    assert_eq!(seqs, [5, 4, 3, 2, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_without_savepoint_that_fails_takes_its_batch_with_it() {
    let dir = TempDir::new().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let (release, blocker_done) = store.hold_writer().await;

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
    let (release, _) = store.hold_writer().await;
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
        assert!(store.message(conv, mid).await.unwrap().is_some(), "acknowledged {mid} in {conv} was lost");
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
    // v4
    r#"
    INSERT INTO messages (conv, seq, mid, cid, sender, target, kind, body, reply_to, ts, rel_target, rel_count)
        VALUES ('ch:lobby', 2, 'L2', 'l2', 'alice', '{"channel":"lobby"}', 'text', '{"text":"v4"}', NULL, 61, NULL, 0);
    INSERT INTO cursors (conv, user_id, recv_seq, read_seq, own_after) VALUES ('ch:lobby', 'alice', 0, 0, 1);
    "#,
    // v5 (the messages table changed an index, not its rows: see
    // `the_v5_migration_keeps_every_message_row`)
    r#"
    INSERT INTO last_seen VALUES ('alice', 70);
    "#,
    // v6 (the (conv, seq) order moved to message_order, rows unchanged:
    // see `the_v5_and_v6_migrations_keep_every_message_row`)
    r#"
    INSERT INTO last_seen VALUES ('carol', 80);
    "#,
    // v7 (message_tail lists the tail: see
    // `the_v7_migration_lists_each_conversations_span_of_the_tail`)
    r#"
    INSERT INTO last_seen VALUES ('dave', 90);
    "#,
    // v8 (no row changes: see `a_v7_tail_is_indexed_a_conversation_at_a_time`)
    r#"
    INSERT INTO last_seen VALUES ('erin', 100);
    "#,
    // v9 (indexes only: see `recent_invitations_are_found_by_index`)
    r#"
    INSERT INTO last_seen VALUES ('finn', 110);
    "#,
    // v10 (a column filled from the rows: see
    // `the_v10_migration_marks_who_wrote_where`)
    r#"
    INSERT INTO last_seen VALUES ('gus', 120);
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
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().collect::<Result<_, _>>().unwrap()
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
        let store =
            SqliteStore::open(dir.path()).unwrap_or_else(|e| panic!("opening a v{version} database: {e}"));
        check_migrated_fixtures(&store, version).await;
        store.close().await.unwrap();
        drop(store);
        let conn = raw(dir.path());
        let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(v, SCHEMA_VERSION, "from v{version}");
        let fk = strings(&conn, "PRAGMA foreign_key_check");
        assert!(fk.is_empty(), "from v{version}: foreign key violations in {fk:?}");
        assert_eq!(
            schema_of(dir.path()),
            current,
            "schema migrated from v{version} differs from a fresh one"
        );
    }
}

/// Every column of every message, rowid included, in rowid order.
fn message_rows(conn: &Connection) -> Vec<Vec<rusqlite::types::Value>> {
    let mut stmt = conn
        .prepare(
            "SELECT id, conv, seq, mid, cid, sender, target, kind, body, reply_to, ts, rel_target, rel_count, \
             edited_text, edited_ts, recalled, pinned, pin_seq FROM messages ORDER BY id",
        )
        .unwrap();
    stmt.query_map([], |r| (0..18).map(|i| r.get(i)).collect()).unwrap().collect::<Result<_, _>>().unwrap()
}

/// Sync's recent invitations (free, asked at every connect) are found by
/// index, not by reading every invitation ever made (v9).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recent_invitations_are_found_by_index() {
    let dir = TempDir::new().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    store.close().await.unwrap();
    drop(store);
    let conn = raw(dir.path());
    let plan: Vec<String> = conn
        .prepare(
            "EXPLAIN QUERY PLAN SELECT iid FROM invites WHERE (sender = 'a' OR recipient = 'a') AND created >= 0 \
             ORDER BY created DESC, iid DESC LIMIT 100",
        )
        .unwrap()
        .query_map([], |r| r.get(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let plan = plan.join(" | ");
    assert!(!plan.contains("SCAN invites"), "{plan}");
    assert!(plan.contains("invites_by_sender") && plan.contains("invites_by_recipient"), "{plan}");
}

/// v10 marks every (conversation, user) with a content message of the
/// user's, and only those: relations (bob's edit, carol's pin and
/// reaction, ivy's reaction) do not count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_v10_migration_marks_who_wrote_where() {
    let dir = TempDir::new().unwrap();
    build_historical(dir.path(), 9);
    raw(dir.path())
        .execute_batch(
            "INSERT INTO conversations (conv) VALUES ('dm:hal:ivy');
             INSERT INTO messages (conv, seq, mid, cid, sender, target, kind, body, reply_to, ts, rel_target, rel_count)
                 VALUES ('dm:hal:ivy', 1, 'H1', 'h1', 'hal', '{\"user\":\"ivy\"}', 'text', '{}', NULL, 1, NULL, 0),
                        ('dm:hal:ivy', 2, 'H2', 'h2', 'ivy', '{\"user\":\"hal\"}', 'reaction',
                         '{\"target\":\"H1\",\"key\":\"x\",\"on\":true}', NULL, 2, 'H1', 1);",
        )
        .unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let shared = |viewer: &'static str, other: &'static str| {
        let store = &store;
        async move { store.shares_conversation(viewer, &[other.to_owned()]).await.unwrap().contains(other) }
    };
    assert!(shared("bob", "carol").await && shared("carol", "bob").await, "both wrote in dm:bob:carol");
    assert!(!shared("hal", "ivy").await, "ivy only reacted");
    store.close().await.unwrap();
    drop(store);
    let marked =
        strings(&raw(dir.path()), "SELECT conv || ' ' || user_id FROM cursors WHERE wrote = 1 ORDER BY 1");
    let expected = [
        "ch:lobby alice",
        "ch:lobby bob",
        "ch:team alice",
        "dm:alice:bob alice",
        "dm:alice:bob bob",
        "dm:bob:carol bob",
        "dm:bob:carol carol",
        "dm:hal:ivy hal",
    ];
    assert_eq!(marked, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_v5_and_v6_migrations_keep_every_message_row() {
    let dir = TempDir::new().unwrap();
    build_historical(dir.path(), 4);
    let before = message_rows(&raw(dir.path()));
    assert_eq!(before.len(), 10);
    let store = SqliteStore::open(dir.path()).unwrap();
    store.close().await.unwrap();
    drop(store);
    let conn = raw(dir.path());
    assert_eq!(message_rows(&conn), before, "every row, every column");
    // The idempotency key is indexed cid first, and finds a sender's cid.
    let plan: String = conn
        .query_row(
            "EXPLAIN QUERY PLAN SELECT mid FROM messages WHERE sender = 'alice' AND cid = 'c1'",
            [],
            |r| r.get(3),
        )
        .unwrap();
    assert!(plan.contains("(cid=? AND sender=?)"), "{plan}");
    // v6: every message is in message_order, in (conv, seq) order, and
    // the mark is the newest rowid: no tail.
    let order: Vec<(String, i64, i64)> = conn
        .prepare("SELECT conv, seq, id FROM message_order")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut expected: Vec<(String, i64, i64)> = before
        .iter()
        .map(|row| {
            use rusqlite::types::Value::{Integer, Text};
            match (&row[1], &row[2], &row[0]) {
                (Text(conv), Integer(seq), Integer(id)) => (conv.clone(), *seq, *id),
                other => panic!("unexpected row {other:?}"),
            }
        })
        .collect();
    expected.sort();
    assert_eq!(order, expected);
    let mark: i64 = conn.query_row("SELECT id FROM message_order_mark", [], |r| r.get(0)).unwrap();
    assert_eq!(mark, 10);
    // (conv, seq) is unique in message_order, as it was in the table.
    let taken = conn.execute("INSERT INTO message_order VALUES ('ch:lobby', 1, 99)", []).unwrap_err();
    assert_eq!(taken.sqlite_error_code(), Some(rusqlite::ErrorCode::ConstraintViolation));
    // The other constraints came along: mid and (sender, cid) are unique.
    let copy = |conv: &str, seq: i64, mid: &str, cid: &str| {
        conn.execute(
            "INSERT INTO messages (conv, seq, mid, cid, sender, target, kind, body, ts) \
             VALUES (?1, ?2, ?3, ?4, 'alice', '{}', 'text', '{}', 1)",
            rusqlite::params![conv, seq, mid, cid],
        )
    };
    for (conv, seq, mid, cid) in [("ch:lobby", 9, "M1", "x2"), ("ch:lobby", 9, "X3", "c1")] {
        let e = copy(conv, seq, mid, cid).unwrap_err();
        assert_eq!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::ConstraintViolation),
            "{conv} {seq} {mid} {cid}"
        );
    }
    assert_eq!(copy("ch:lobby", 9, "X4", "x4").unwrap(), 1);
}

/// The rows of `sql`, a query of a text and two integers.
fn triples(conn: &Connection, sql: &str) -> Vec<(String, i64, i64)> {
    conn.prepare(sql)
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// `(conv, first_id, newest_id)` of every row of `message_tail`.
fn tail_spans(conn: &Connection) -> Vec<(String, i64, i64)> {
    triples(conn, "SELECT conv, first_id, newest_id FROM message_tail ORDER BY conv")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_v7_migration_lists_each_conversations_span_of_the_tail() {
    let dir = TempDir::new().unwrap();
    build_historical(dir.path(), 6);
    // Messages a v6 build appended after its last indexing: rowids 11 to
    // 13, above the mark (10).
    raw(dir.path())
        .execute_batch(
            "INSERT INTO messages (conv, seq, mid, cid, sender, target, kind, body, ts) VALUES \
             ('dm:alice:bob', 3, 'M4', 'c4', 'alice', '{\"user\":\"bob\"}', 'text', '{\"text\":\"3\"}', 90), \
             ('ch:lobby', 3, 'L3', 'l3', 'bob', '{\"channel\":\"lobby\"}', 'text', '{\"text\":\"3\"}', 91), \
             ('dm:alice:bob', 4, 'M5', 'c5', 'bob', '{\"user\":\"alice\"}', 'text', '{\"text\":\"4\"}', 92);",
        )
        .unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    {
        let conn = raw(dir.path());
        assert_eq!(tail_spans(&conn), [("ch:lobby".to_owned(), 12, 12), ("dm:alice:bob".to_owned(), 11, 13)]);
    }
    // Reads find the tail through it, and appends go on after it.
    let dm = Conv::dm("alice", "bob");
    assert_eq!(store.conv_last(&dm).await.unwrap(), (4, 92));
    let (page, _) = store.history(&dm, Page::Latest, 10).await.unwrap();
    assert_eq!(page.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
    let next = store.append(text("alice", Target::User("bob".into()), "c9", "x", 93)).await.unwrap();
    assert_eq!(next.msg.seq, 5);
    let lobby = Conv::channel("lobby");
    assert_eq!(store.conv_last(&lobby).await.unwrap(), (3, 91));
    store.close().await.unwrap();
    drop(store);
    assert_eq!(
        tail_spans(&raw(dir.path())),
        [("ch:lobby".to_owned(), 12, 12), ("dm:alice:bob".to_owned(), 11, 14)]
    );
}

/// A resend addressed to a conversation without messages is recognised
/// before that conversation is listed: nothing at all is written for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resend_to_a_new_conversation_writes_nothing() {
    let dir = TempDir::new().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let first = store.append(text("alice", Target::User("bob".into()), "k1", "x", 1)).await.unwrap();
    let again = store.append(text("alice", Target::Channel("lobby".into()), "k1", "y", 2)).await.unwrap();
    assert!(again.dup);
    assert_eq!(again.msg, first.msg);
    store.close().await.unwrap();
    drop(store);
    let conn = raw(dir.path());
    let convs = strings(&conn, "SELECT conv FROM conversations");
    assert_eq!(convs, [Conv::dm("alice", "bob").to_string()]);
}

/// A new database `wal.db` in WAL mode in a temporary directory, and a
/// connection to it.
fn wal_database() -> (TempDir, Connection) {
    let dir = TempDir::new().unwrap();
    let conn = Connection::open(dir.path().join("wal.db")).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    (dir, conn)
}

/// Under steady commits a passive checkpoint never catches up with the
/// writer, so the WAL would only grow; after a large one the writer copies
/// back the rest itself and its next commit starts the WAL over. The
/// sequence below is that race made deterministic: a reader pins the
/// first commit while a second lands, so the background checkpoint copies
/// back only the first, and more commits land before the next step. No
/// step waits for the reader (a `RESTART` checkpoint would, holding the
/// writer's lock).
#[test]
fn a_large_wal_is_started_over_when_a_passive_checkpoint_cannot_catch_up() {
    use super::writer::{catch_up, passive_checkpoint};
    let (dir, writer) = wal_database();
    let path = dir.path().join("wal.db");
    writer.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    writer.execute("CREATE TABLE t (b BLOB)", []).unwrap();
    let write = |pages: usize| {
        writer.execute("INSERT INTO t VALUES (zeroblob(?1))", [pages * 4096]).unwrap();
    };
    let checkpointer = Connection::open(&path).unwrap();
    let reader = Connection::open(&path).unwrap();
    write(1200);
    reader.execute_batch("BEGIN; SELECT count(*) FROM t;").unwrap();
    write(1);
    let frames = passive_checkpoint(&checkpointer).unwrap();
    assert!(frames > 1200, "{frames}");
    // While the reader stays, the writer's catch-up cannot copy the last
    // commit back; it returns, and the WAL keeps growing.
    catch_up(&writer);
    write(1);
    assert!(passive_checkpoint(&checkpointer).unwrap() > frames, "the WAL started over under a reader");
    reader.execute_batch("COMMIT").unwrap();
    write(1);
    catch_up(&writer);
    write(1);
    let after = passive_checkpoint(&checkpointer).unwrap();
    assert!(
        after < 10,
        "the last commit was appended to a WAL of {after} frames instead of starting it over"
    );
}

/// The checkpointer sleeps through its interval without taking the
/// writer's per-commit signals (each one taken was a wake-up of its thread
/// for nothing), and still leaves as soon as the writer closes. An interval
/// of an hour makes both deterministic: nothing but the close can end it.
#[test]
fn the_checkpointer_sleeps_through_commits_and_leaves_when_the_writer_closes() {
    use super::writer::{checkpointer_main, stop_checkpointer};
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;
    let (dir, _writer) = wal_database();
    let conn = Connection::open(dir.path().join("wal.db")).unwrap();
    let (committed, commits) = std::sync::mpsc::sync_channel::<()>(1);
    let rewind = Arc::new(AtomicBool::new(false));
    let flag = rewind.clone();
    let checkpointer = std::thread::spawn(move || {
        checkpointer_main(&conn, &commits, &flag, Duration::from_secs(3600));
    });
    // The first commit starts the interval; 200 more land in it.
    committed.send(()).unwrap();
    let mut taken = 0;
    for _ in 0..200 {
        std::thread::sleep(Duration::from_micros(200));
        if committed.try_send(()).is_ok() {
            taken += 1;
        }
    }
    // The slot holds one signal; the thread took none of the others.
    assert!(taken <= 1, "the checkpointer was woken for {taken} commits during its interval");
    let (done, left) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        stop_checkpointer(committed, Some(checkpointer));
        let _ = done.send(());
    });
    // A guard against a hang (an hour's sleep), not a timing check.
    left.recv_timeout(Duration::from_secs(60))
        .expect("the checkpointer did not leave when the writer closed");
}

/// Waits until the writer has finished what it does after the batches
/// queued so far (indexing the tail): a no-op write queues behind it.
async fn settled(store: &SqliteStore) {
    store.write(|_| Ok(())).await.unwrap();
}

/// The seqs of a conversation's latest page.
async fn latest_seqs(store: &SqliteStore, conv: &Conv) -> Vec<u64> {
    let (page, _) = store.history(conv, Page::Latest, 100).await.unwrap();
    page.iter().map(|m| m.seq).collect()
}

/// The writer remembers each conversation's newest seq and the tail to
/// index from its own appends; an append rolled back to its savepoint must
/// not leave either ahead of the table: no gap in the seqs, and its rowid,
/// taken again by the next append, indexed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_rolled_back_to_its_savepoint_leaves_no_gap_and_no_entry() {
    let dir = TempDir::new().unwrap();
    let store = SqliteStore::open_with(dir.path(), 2, WRITER_CACHE_KIB, indexing(2, usize::MAX)).unwrap();
    let to_bob = || Target::User("bob".into());
    assert_eq!(store.append(text("alice", to_bob(), "c1", "one", 1)).await.unwrap().msg.seq, 1);
    let m = text("alice", to_bob(), "c2", "undone", 2);
    let undone = store
        .submit(Command::write(move |c| {
            append_message(c, m)?;
            Err::<(), _>(StoreError::Unavailable("fails after appending".into()))
        }))
        .await;
    assert!(undone.is_err());
    assert_eq!(store.append(text("alice", to_bob(), "c3", "two", 3)).await.unwrap().msg.seq, 2);
    settled(&store).await;
    let dm = Conv::dm("alice", "bob");
    assert_eq!(latest_seqs(&store, &dm).await, vec![1, 2]);
    let conn = raw(dir.path());
    assert_eq!(order_entries(&conn), vec![(dm.to_string(), 1, 1), (dm.to_string(), 2, 2)]);
    assert_eq!(mark_of(&conn), 2, "the step after the append indexed both rows");
    store.close().await.unwrap();
}

/// The tail is indexed once it holds `from_rows` messages, after the batch
/// that reaches it, and reads see one order across both halves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tail_is_indexed_in_bulk_and_reads_span_both_halves() {
    let dir = TempDir::new().unwrap();
    let store = SqliteStore::open_with(dir.path(), 2, WRITER_CACHE_KIB, indexing(4, usize::MAX)).unwrap();
    let mark = || -> i64 {
        raw(dir.path()).query_row("SELECT id FROM message_order_mark", [], |r| r.get(0)).unwrap()
    };
    let ordered = || -> i64 {
        raw(dir.path()).query_row("SELECT count(*) FROM message_order", [], |r| r.get(0)).unwrap()
    };
    let dm = Conv::dm("alice", "bob");
    for i in 1..=3 {
        store.append(text("alice", Target::User("bob".into()), &format!("a{i}"), "x", i)).await.unwrap();
    }
    settled(&store).await;
    assert_eq!((mark(), ordered()), (0, 0), "three rows stay in the tail");
    store.append(text("bob", Target::Channel("lobby".into()), "b1", "x", 4)).await.unwrap();
    settled(&store).await;
    assert_eq!((mark(), ordered()), (4, 4), "the fourth indexes all four");
    for i in 4..=6 {
        store.append(text("bob", Target::User("alice".into()), &format!("b{i}"), "x", i)).await.unwrap();
    }
    settled(&store).await;
    assert_eq!((mark(), ordered()), (4, 4));
    assert_eq!(latest_seqs(&store, &dm).await, vec![1, 2, 3, 4, 5, 6]);
    let (page, more) = store.history(&dm, Page::Before(6), 3).await.unwrap();
    assert_eq!((page.iter().map(|m| m.seq).collect::<Vec<_>>(), more), (vec![3, 4, 5], true));
    let (page, more) = store.history(&dm, Page::After(2), 2).await.unwrap();
    assert_eq!((page.iter().map(|m| m.seq).collect::<Vec<_>>(), more), (vec![3, 4], true));
    assert_eq!(store.conv_last(&dm).await.unwrap(), (6, 6));
    let list = store.conversations("alice").await.unwrap();
    assert_eq!(list.iter().find(|s| s.conv == dm).map(|s| s.last_seq), Some(6));
    store.close().await.unwrap();
}

/// Indexing the tail fails (here a conflicting entry): the batch's writes
/// still commit and read back, and the tail waits for a later batch.
/// (The writer indexes after answering a batch: see [`settled`].)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_tail_index_loses_no_write() {
    let dir = TempDir::new().unwrap();
    let store = SqliteStore::open_with(dir.path(), 2, WRITER_CACHE_KIB, indexing(2, usize::MAX)).unwrap();
    let dm = Conv::dm("alice", "bob");
    store.append(text("alice", Target::User("bob".into()), "a1", "x", 1)).await.unwrap();
    raw(dir.path()).execute("INSERT INTO message_order VALUES ('dm:alice:bob', 2, 77)", []).unwrap();
    let second = store.append(text("alice", Target::User("bob".into()), "a2", "y", 2)).await.unwrap();
    assert_eq!(second.msg.seq, 2);
    settled(&store).await;
    let mark: i64 = raw(dir.path()).query_row("SELECT id FROM message_order_mark", [], |r| r.get(0)).unwrap();
    assert_eq!(mark, 0, "the tail was not indexed");
    let (page, _) = store.history(&dm, Page::After(0), 10).await.unwrap();
    assert_eq!(page.iter().map(|m| m.body["text"].as_str().unwrap()).collect::<Vec<_>>(), ["x", "y"]);
    // Nothing of the failed attempt stayed open or half done: once the
    // conflict is gone, the next batch indexes the whole tail.
    raw(dir.path()).execute("DELETE FROM message_order WHERE id = 77", []).unwrap();
    store.append(text("alice", Target::User("bob".into()), "a3", "z", 3)).await.unwrap();
    settled(&store).await;
    let conn = raw(dir.path());
    let mark: i64 = conn.query_row("SELECT id FROM message_order_mark", [], |r| r.get(0)).unwrap();
    let ids = strings(&conn, "SELECT CAST(id AS TEXT) FROM message_order ORDER BY seq");
    assert_eq!((mark, ids), (3, vec!["1".to_string(), "2".to_string(), "3".to_string()]));
    store.close().await.unwrap();
}

/// `message_order` as `(conv, seq, id)`, in key order.
fn order_entries(conn: &Connection) -> Vec<(String, i64, i64)> {
    triples(conn, "SELECT conv, seq, id FROM message_order ORDER BY conv, seq")
}

fn mark_of(conn: &Connection) -> i64 {
    conn.query_row("SELECT id FROM message_order_mark", [], |r| r.get(0)).unwrap()
}

/// Once the tail holds `from_rows` rows, a step indexes whole
/// conversations, the one with the oldest row first, until it has
/// `step_rows` entries; the mark stops below the oldest row left, and
/// reads see each conversation whole either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tail_is_indexed_a_conversation_at_a_time_oldest_first() {
    let dir = TempDir::new().unwrap();
    let store = SqliteStore::open_with(dir.path(), 2, WRITER_CACHE_KIB, indexing(4, 2)).unwrap();
    let (dm, lobby, team) = (Conv::dm("alice", "bob"), Conv::channel("lobby"), Conv::channel("team"));
    let to_bob = || Target::User("bob".into());
    let to = |ch: &str| Target::Channel(ch.into());
    // Rowids 1 to 4: dm, lobby, dm, team.
    store.append(text("alice", to_bob(), "a1", "x", 1)).await.unwrap();
    store.append(text("bob", to("lobby"), "b1", "x", 2)).await.unwrap();
    store.append(text("alice", to_bob(), "a2", "x", 3)).await.unwrap();
    store.append(text("carol", to("team"), "t1", "x", 4)).await.unwrap();
    settled(&store).await;
    let key = |conv: &Conv, seq, id| (conv.to_string(), seq, id);
    let conn = raw(dir.path());
    // The DM has the oldest row: both of its rows are indexed; lobby's
    // row 2 is now the oldest left.
    assert_eq!(order_entries(&conn), vec![key(&dm, 1, 1), key(&dm, 2, 3)]);
    assert_eq!(mark_of(&conn), 1);
    assert_eq!(tail_spans(&conn), vec![(lobby.to_string(), 2, 2), (team.to_string(), 4, 4)]);
    // Row 5 (dm) starts the DM's tail again; row 6 (lobby) makes four.
    store.append(text("alice", to_bob(), "a3", "x", 5)).await.unwrap();
    store.append(text("bob", to("lobby"), "b2", "x", 6)).await.unwrap();
    settled(&store).await;
    assert_eq!(
        order_entries(&conn),
        vec![key(&lobby, 1, 2), key(&lobby, 2, 6), key(&dm, 1, 1), key(&dm, 2, 3)]
    );
    assert_eq!(mark_of(&conn), 3, "row 4 (team) is the oldest left");
    assert_eq!(tail_spans(&conn), vec![(team.to_string(), 4, 4), (dm.to_string(), 5, 5)]);
    for (conv, seqs) in [(&dm, vec![1, 2, 3]), (&lobby, vec![1, 2]), (&team, vec![1])] {
        assert_eq!(latest_seqs(&store, conv).await, seqs, "{conv}");
    }
    let (page, more) = store.history(&dm, Page::Before(3), 1).await.unwrap();
    assert_eq!((page.iter().map(|m| m.seq).collect::<Vec<_>>(), more), (vec![2], true));
    let (page, more) = store.history(&dm, Page::After(1), 5).await.unwrap();
    assert_eq!((page.iter().map(|m| m.seq).collect::<Vec<_>>(), more), (vec![2, 3], false));
    assert_eq!(store.conv_last(&lobby).await.unwrap(), (2, 6));
    // Bob read the DM up to seq 2 (indexed); seq 3 is in the tail.
    store.advance_cursor(&dm, "bob", Some(2), Some(2)).await.unwrap();
    let bob = store.conversations("bob").await.unwrap();
    let row = bob.iter().find(|s| s.conv == dm).unwrap();
    assert_eq!((row.last_seq, row.unread), (3, 1), "{row:?}");
    store.close().await.unwrap();
}

/// A conversation that stops early does not hold the mark back while a
/// busy one goes on: its row is the oldest, so the next step takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_conversation_does_not_hold_the_mark_back() {
    let dir = TempDir::new().unwrap();
    let store = SqliteStore::open_with(dir.path(), 2, WRITER_CACHE_KIB, indexing(8, 2)).unwrap();
    store.append(text("carol", Target::Channel("quiet".into()), "q", "x", 1)).await.unwrap();
    for i in 0..100 {
        store.append(text("alice", Target::User("bob".into()), &format!("a{i}"), "x", i)).await.unwrap();
    }
    settled(&store).await;
    let conn = raw(dir.path());
    let mark = mark_of(&conn);
    assert!(mark > 101 - 8, "the mark stays near the newest row: {mark}");
    let tail: i64 =
        conn.query_row("SELECT count(*) FROM messages WHERE id > ?1", [mark], |r| r.get(0)).unwrap();
    assert!(tail < 8, "{tail} rows above the mark");
    assert_eq!(latest_seqs(&store, &Conv::channel("quiet")).await, vec![1]);
    assert_eq!(latest_seqs(&store, &Conv::dm("alice", "bob")).await.len(), 100);
    store.close().await.unwrap();
}

/// The writer's copy of the tail starts unknown: after a restart it is
/// read back from the database (rows a previous run appended), and the
/// next step indexes them with the new ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_reads_the_tail_back() {
    let dir = TempDir::new().unwrap();
    let to_bob = || Target::User("bob".into());
    let store = SqliteStore::open_with(dir.path(), 2, WRITER_CACHE_KIB, indexing(100, 1)).unwrap();
    store.append(text("alice", to_bob(), "a1", "x", 1)).await.unwrap();
    store.append(text("bob", Target::Channel("lobby".into()), "b1", "x", 2)).await.unwrap();
    store.append(text("alice", to_bob(), "a2", "x", 3)).await.unwrap();
    store.close().await.unwrap();
    drop(store);
    let store = SqliteStore::open_with(dir.path(), 2, WRITER_CACHE_KIB, indexing(4, 1)).unwrap();
    store.append(text("carol", Target::Channel("team".into()), "t1", "x", 4)).await.unwrap();
    settled(&store).await;
    let conn = raw(dir.path());
    let dm = Conv::dm("alice", "bob").to_string();
    assert_eq!(order_entries(&conn), vec![(dm.clone(), 1, 1), (dm, 2, 3)]);
    assert_eq!(mark_of(&conn), 1);
    store.close().await.unwrap();
}

/// A step commits without its own fsync; every batch after it still
/// commits with `synchronous=FULL` (an ok means the commit is on disk).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_after_a_step_still_sync_their_commits() {
    let dir = TempDir::new().unwrap();
    let store = SqliteStore::open_with(dir.path(), 2, WRITER_CACHE_KIB, tail::Indexing::EVERY_BATCH).unwrap();
    store.append(text("alice", Target::User("bob".into()), "c1", "one", 1)).await.unwrap();
    settled(&store).await;
    assert_eq!(mark_of(&raw(dir.path())), 1, "a step ran");
    let synchronous = store
        .write(|c| Ok(c.pragma_query_value(None, "synchronous", |r| r.get::<_, i64>(0))?))
        .await
        .unwrap();
    assert_eq!(synchronous, 2, "FULL");
    store.close().await.unwrap();
}

/// A v7 database's tail (rows above the mark, listed in `message_tail`) is
/// read by the v8 writer and indexed a conversation at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v7_tail_is_indexed_a_conversation_at_a_time() {
    let dir = TempDir::new().unwrap();
    build_historical(dir.path(), 7);
    {
        // What a v7 build appended after its last bulk step: rowids 11 to
        // 13 above the mark (10), listed in message_tail.
        let conn = raw(dir.path());
        conn.execute_batch(
            r#"
            INSERT INTO messages (conv, seq, mid, cid, sender, target, kind, body, reply_to, ts, rel_target, rel_count)
            VALUES ('ch:team', 2, 'T2', 't2', 'alice', '{"channel":"team"}', 'text', '{"text":"a"}', NULL, 90, NULL, 0),
                   ('ch:lobby', 3, 'L3', 'l3', 'bob', '{"channel":"lobby"}', 'text', '{"text":"b"}', NULL, 91, NULL, 0),
                   ('ch:team', 3, 'T3', 't3', 'alice', '{"channel":"team"}', 'text', '{"text":"c"}', NULL, 92, NULL, 0);
            INSERT INTO message_tail VALUES ('ch:team', 11, 13), ('ch:lobby', 12, 12);
            -- Carol has read up to N4 (seq 4), after two relations.
            INSERT INTO cursors (conv, user_id, recv_seq, read_seq, own_after) VALUES ('dm:bob:carol', 'carol', 4, 4, 0)
                ON CONFLICT (conv, user_id) DO UPDATE SET recv_seq = 4, read_seq = 4;
            "#,
        )
        .unwrap();
        assert_eq!(mark_of(&conn), 10);
    }
    let store = SqliteStore::open_with(dir.path(), 2, WRITER_CACHE_KIB, indexing(4, 1)).unwrap();
    store.append(text("bob", Target::Channel("lobby".into()), "l4", "d", 93)).await.unwrap();
    settled(&store).await;
    let conn = raw(dir.path());
    // Team has the oldest row (11): its rows 11 and 13 are indexed; the
    // lobby's 12 and 14 wait, and the mark stops below 12.
    let team: Vec<_> = order_entries(&conn).into_iter().filter(|(c, _, _)| c == "ch:team").collect();
    assert_eq!(team, vec![("ch:team".into(), 1, 9), ("ch:team".into(), 2, 11), ("ch:team".into(), 3, 13)]);
    assert_eq!(mark_of(&conn), 11);
    assert_eq!(tail_spans(&conn), vec![("ch:lobby".to_string(), 12, 14)]);
    assert_eq!(latest_seqs(&store, &Conv::channel("team")).await, vec![1, 2, 3]);
    assert_eq!(latest_seqs(&store, &Conv::channel("lobby")).await, vec![1, 2, 3, 4]);
    // The migration kept each cursor's relation count at its read_seq.
    let read_rel: i64 = conn
        .query_row(
            "SELECT read_rel FROM cursors WHERE conv = 'dm:bob:carol' AND user_id = 'carol'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(read_rel, 2);
    store.close().await.unwrap();
}

/// The checkpointer's connection starts the writeback of what it copies as
/// it copies it (store/sqlite/paced.rs); the WAL and every other
/// connection keep the default VFS's files.
#[cfg(target_os = "linux")]
#[test]
fn the_checkpointer_connection_paces_the_database_file() {
    let dir = TempDir::new().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let conn = open_checkpointer(store.path()).unwrap();
    assert_eq!(super::paced::paced_files(&conn), (true, false), "(database, WAL) paced");
    assert_eq!(super::paced::paced_files(&raw(dir.path())), (false, false));
}

/// VM instructions (in hundreds) `work` runs on the writer's connection,
/// counted by SQLite's progress handler: work, not time.
async fn writer_work<T: Send + 'static>(
    store: &SqliteStore,
    work: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
) -> (T, u64) {
    store
        .write(move |c| {
            let ticks = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let count = ticks.clone();
            c.progress_handler(
                100,
                Some(move || {
                    count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    false
                }),
            );
            let out = work(c);
            c.progress_handler(0, None::<fn() -> bool>);
            Ok((out?, ticks.load(std::sync::atomic::Ordering::Relaxed)))
        })
        .await
        .unwrap()
}

/// `user`'s unread count of `conv` in their conversation list.
async fn unread_of(store: &SqliteStore, user: &str, conv: &Conv) -> u64 {
    let list = store.conversations(user).await.unwrap();
    list.into_iter().find(|s| s.conv == *conv).expect("listed").unread
}

/// `read` is free (§8), and runs on the writer every send waits for: a
/// read cursor moved one message at a time must read only the messages it
/// passes, not the rest of the conversation each step (it did: a member
/// stepping through a long conversation held up everyone's sends). The
/// unread counters stay exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_cursor_moved_one_message_at_a_time_reads_only_what_it_passes() {
    let dir = TempDir::new().unwrap();
    let store = SqliteStore::open_with(dir.path(), 2, WRITER_CACHE_KIB, tail::Indexing::DEFAULT).unwrap();
    const N: i64 = 20_000;
    // Every third message is bob's own: his unread count must skip them.
    store
        .write(|c| {
            for i in 1..=N {
                let (from, to) = if i % 3 == 0 { ("bob", "alice") } else { ("alice", "bob") };
                append_message(c, text(from, Target::User(to.into()), &format!("c{i}"), "x", i))?;
            }
            Ok(())
        })
        .await
        .unwrap();
    settled(&store).await;
    let dm = Conv::dm("alice", "bob").to_string();
    let step = |seq: u64| {
        let dm = dm.clone();
        move |c: &Connection| messages::advance(c, &dm, "bob", None, Some(seq))
    };
    let mut most = 0;
    for seq in 1..=30 {
        let (cursor, work) = writer_work(&store, step(seq)).await;
        assert_eq!(cursor.read_seq, seq);
        most = most.max(work);
    }
    // A pass over the 20,000 messages is some hundred thousand instructions;
    // a step of one message, a few hundred.
    assert!(most < 100, "one step of the read cursor ran {most}00 VM instructions");
    // 20,000 − 30 read, of which bob's own: 6,666 − 10.
    assert_eq!(
        unread_of(&store, "bob", &Conv::dm("alice", "bob")).await,
        (N as u64 - 30) - (N as u64 / 3 - 10)
    );
    writer_work(&store, step(12_345)).await;
    assert_eq!(
        unread_of(&store, "bob", &Conv::dm("alice", "bob")).await,
        (N as u64 - 12_345) - (N as u64 / 3 - 12_345 / 3)
    );
    writer_work(&store, step(N as u64)).await;
    assert_eq!(unread_of(&store, "bob", &Conv::dm("alice", "bob")).await, 0);
    store.close().await.unwrap();
}

/// Presence privacy asks whether both parties of a DM wrote in it: one
/// lookup each (schema v10), not a pass over a long DM that one of them
/// never answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whether_someone_wrote_in_a_long_dm_is_one_lookup() {
    let dir = TempDir::new().unwrap();
    let store = SqliteStore::open_with(dir.path(), 2, WRITER_CACHE_KIB, tail::Indexing::DEFAULT).unwrap();
    store
        .write(|c| {
            for i in 1..=20_000 {
                append_message(c, text("mallory", Target::User("alice".into()), &format!("c{i}"), "x", i))?;
            }
            Ok(())
        })
        .await
        .unwrap();
    settled(&store).await;
    let (wrote, work) = writer_work(&store, |c| {
        let mut sent = c.prepare(channels::SENT_IN_CONV)?;
        let dm = Conv::dm("alice", "mallory").to_string();
        Ok((sent.exists(rusqlite::params![dm, "mallory"])?, sent.exists(rusqlite::params![dm, "alice"])?))
    })
    .await;
    assert_eq!(wrote, (true, false));
    assert!(work < 20, "asking ran {work}00 VM instructions");
    let shared = store.shares_conversation("mallory", &["alice".to_owned()]).await.unwrap();
    assert!(shared.is_empty(), "alice never answered: {shared:?}");
    store.append(text("alice", Target::User("mallory".into()), "a1", "hi", 20_001)).await.unwrap();
    let shared = store.shares_conversation("mallory", &["alice".to_owned()]).await.unwrap();
    assert!(shared.contains("alice"));
    store.close().await.unwrap();
}
