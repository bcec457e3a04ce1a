//! The append floor: what storing a message durably costs on this disk at
//! the least. Rows the size of Courier's messages (the same columns: conv,
//! seq, mid, cid, sender, target, kind, a `{"text":…}` body, ts) are
//! appended to one SQLite table keyed by (conv, seq), in WAL mode with
//! `synchronous=FULL`, by one writer thread that commits whatever has
//! queued since its last commit: one transaction and one fsync per batch
//! (group commit, as Courier's writer does). No other index, no other
//! table, no server around it.
//!
//! A step offers rows at a fixed rate (the same rates as the p2p steps, so
//! the batches are the size a server would see) or, at rate 0, as fast as
//! the writer takes them (the most rows per second this disk allows). The
//! cost is the writer thread's own CPU time (`CLOCK_THREAD_CPUTIME_ID`,
//! fsync and checkpoints included) per row; the latency is each row's, from
//! when it was offered to when its commit returned (the floor of a server's
//! send → ok). With `--busy-disk-mib` another process writes to the same
//! disk meanwhile (`dd … conv=fsync`, as `p2p --busy-disk-mib` does beside a
//! server): the disk's own floor when it is busy.

use crate::scenarios::BusyDisk;
use crate::stats::{Latency, Metrics, Report, stamp_text};
use anyhow::Context as _;
use rusqlite::Connection;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Parameters of `append-floor`.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct Args {
    /// Rows per second offered; a comma list is a set of steps; 0 offers
    /// rows as fast as the writer takes them.
    #[arg(long, value_delimiter = ',', default_value = "8000,10000,0")]
    pub rate: Vec<f64>,
    /// Seconds per step.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Bytes of message text (the body is `{"text":"…"}`).
    #[arg(long, default_value_t = 100)]
    pub body_bytes: usize,
    /// Most rows in one transaction.
    #[arg(long, default_value_t = 1000)]
    pub max_batch: usize,
    /// Folder for the database [default: a new temporary folder, on the
    /// filesystem where the harness puts a server's data].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// MiB that `dd … conv=fsync` writes beside the database while the
    /// steps run (0: none).
    #[arg(long, default_value_t = 0)]
    pub busy_disk_mib: u64,
}

/// One row, as Courier stores a text message.
struct Row {
    conv: String,
    seq: i64,
    mid: String,
    cid: String,
    sender: String,
    target: String,
    body: String,
    ts: i64,
    /// When the row was offered to the writer.
    offered: Instant,
}

const SCHEMA: &str = "CREATE TABLE messages (
    conv TEXT NOT NULL, seq INTEGER NOT NULL, mid TEXT NOT NULL, cid TEXT NOT NULL,
    sender TEXT NOT NULL, target TEXT NOT NULL, kind TEXT NOT NULL, body TEXT NOT NULL,
    ts INTEGER NOT NULL, PRIMARY KEY (conv, seq)) WITHOUT ROWID";

const INSERT: &str = "INSERT INTO messages (conv, seq, mid, cid, sender, target, kind, body, ts)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'text', ?7, ?8)";

/// Opens a fresh database the way a durable server does.
///
/// # Errors
/// When SQLite cannot open or set up the file.
pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

/// The row of message number `n` (200 DM conversations, as in `p2p`).
fn row(n: u64, body_bytes: usize) -> Row {
    let pair = n % 200;
    let (a, b) = (format!("p1a2b3c-{pair}a"), format!("p1a2b3c-{pair}b"));
    Row {
        conv: format!("dm:{a}:{b}"),
        seq: (n / 200 + 1) as i64,
        mid: format!("{n:026}"),
        cid: format!("m{n}-{pair}"),
        target: format!("{{\"user\":\"{b}\"}}"),
        sender: a,
        body: format!("{{\"text\":\"{}\"}}", stamp_text(n, body_bytes)),
        ts: 1_764_180_000_000 + n as i64,
        offered: Instant::now(),
    }
}

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into a local timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// What the writer did in one step.
struct Written {
    rows: u64,
    commits: u64,
    cpu_ns: u64,
    wall: Duration,
    commit: Latency,
    /// Each row: offered → its commit returned.
    row: Latency,
}

/// The writer: blocks for a first row, takes what else has queued (up to
/// `max_batch`), writes them in one transaction, commits; until the
/// producer hangs up.
fn write_rows(
    conn: &mut Connection,
    rx: &mpsc::Receiver<Row>,
    max_batch: usize,
) -> rusqlite::Result<Written> {
    let cpu0 = thread_cpu_ns();
    let t0 = Instant::now();
    let (commit, row) = (Latency::default(), Latency::default());
    let mut offered = Vec::with_capacity(max_batch);
    let (mut rows, mut commits) = (0u64, 0u64);
    let mut batch = Vec::with_capacity(max_batch);
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < max_batch
            && let Ok(r) = rx.try_recv()
        {
            batch.push(r);
        }
        let c0 = Instant::now();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(INSERT)?;
            for r in batch.drain(..) {
                offered.push(r.offered);
                stmt.execute(rusqlite::params![
                    r.conv, r.seq, r.mid, r.cid, r.sender, r.target, r.body, r.ts
                ])?;
                rows += 1;
            }
        }
        tx.commit()?;
        commit.record(c0.elapsed());
        for t in offered.drain(..) {
            row.record(t.elapsed());
        }
        commits += 1;
    }
    Ok(Written { rows, commits, cpu_ns: thread_cpu_ns() - cpu0, wall: t0.elapsed(), commit, row })
}

/// Offers rows at `rate` per second (0: as fast as taken) for `window`,
/// and on while `busy` holds the window open (`BusyDisk::holds_window`);
/// gives the writer back.
fn produce(
    tx: mpsc::SyncSender<Row>,
    rate: f64,
    window: Duration,
    body_bytes: usize,
    first: u64,
    mut busy: Option<BusyDisk>,
) -> Option<BusyDisk> {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < window || busy.as_mut().is_some_and(|b| b.holds_window(start.elapsed(), window)) {
        let due = if rate > 0.0 { (rate * start.elapsed().as_secs_f64()) as u64 } else { n + 64 };
        while n < due {
            if tx.send(row(first + n, body_bytes)).is_err() {
                return busy;
            }
            n += 1;
        }
        if rate > 0.0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    busy
}

fn step(
    conn: &mut Connection,
    args: &Args,
    rate: f64,
    first: u64,
    busy: Option<BusyDisk>,
) -> anyhow::Result<(Metrics, u64)> {
    let window = Duration::from_secs_f64(args.duration);
    let (tx, rx) = mpsc::sync_channel(args.max_batch * 4);
    let body_bytes = args.body_bytes;
    let producer = std::thread::spawn(move || produce(tx, rate, window, body_bytes, first, busy));
    let w = write_rows(conn, &rx, args.max_batch)?;
    let busy = producer.join().map_err(|_| anyhow::anyhow!("producer panicked"))?;
    let rows_per_s = w.rows as f64 / w.wall.as_secs_f64();
    let mut m = Metrics::default();
    m.num("target_rows_per_s", rate, "rows/s")
        .num("rows_per_s", rows_per_s, "rows/s")
        .put("rows", w.rows, "")
        .put("commits", w.commits, "")
        .num("rows_per_commit", w.rows as f64 / w.commits.max(1) as f64, "")
        .latency("commit", &w.commit.summary())
        .latency("row", &w.row.summary())
        .num("writer_cpu_us_per_row", w.cpu_ns as f64 / 1e3 / w.rows.max(1) as f64, "µs")
        .num("writer_cpu_util", w.cpu_ns as f64 / w.wall.as_nanos().max(1) as f64, "cores")
        .put("kept_up", rate == 0.0 || rows_per_s >= 0.95 * rate, "")
        .num("machine_load_1m", crate::scenarios::loadavg(), "");
    if let Some(busy) = busy {
        busy.stop(&mut m);
    }
    Ok((m, w.rows))
}

/// Runs every step on one database (rows accumulate, as in a server).
///
/// # Errors
/// When the folder or the database cannot be set up or written.
pub fn run(args: &Args) -> anyhow::Result<Report> {
    let tmp;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::Builder::new().prefix("courier-bench-").tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let path = dir.join(format!("append-floor-{}.db", crate::scenarios::run_tag()));
    let mut conn = open(&path).with_context(|| format!("opening {}", path.display()))?;
    let mut steps = Vec::new();
    let mut first = 0u64;
    for &rate in &args.rate {
        let busy = (args.busy_disk_mib > 0).then(|| BusyDisk::start_in(&dir, args.busy_disk_mib));
        let (m, rows) = step(&mut conn, args, rate, first, busy)?;
        first += rows;
        steps.push((if rate > 0.0 { format!("{rate}") } else { "max".into() }, m));
    }
    drop(conn);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let mut summary = Metrics::default();
    if let Some((_, max)) = steps.iter().find(|(l, _)| l == "max") {
        summary.put("max_rows_per_s", max.get("rows_per_s").cloned().unwrap_or_default(), "rows/s");
    }
    for (label, m) in &steps {
        if label != "max" {
            let us = m.get("writer_cpu_us_per_row").cloned().unwrap_or_default();
            summary.put(&format!("writer_cpu_us_per_row_at_{label}"), us, "µs");
        }
    }
    Ok(Report {
        scenario: "append-floor",
        target: "sqlite",
        params: json!(args),
        summary,
        steps,
        notes: vec![format!("database on the filesystem of {}", dir.display())],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_offered_row_is_stored_in_batches() {
        let dir = tempfile::tempdir().unwrap();
        let args = Args {
            rate: vec![2000.0, 0.0],
            duration: 0.3,
            body_bytes: 100,
            max_batch: 50,
            dir: Some(dir.path().to_path_buf()),
            busy_disk_mib: 0,
        };
        let mut conn = open(&dir.path().join("t.db")).unwrap();
        let (m, rows) = step(&mut conn, &args, 2000.0, 0, None).unwrap();
        let stored: u64 = conn.query_row("SELECT count(*) FROM messages", [], |r| r.get(0)).unwrap();
        assert_eq!(stored, rows);
        assert!(rows > 0);
        let commits = m.get("commits").and_then(|v| v.as_u64()).unwrap();
        assert!(commits >= 1 && commits <= rows, "{commits} commits for {rows} rows");
        // The row is the size of Courier's: a ~100-byte text in its body.
        let len: i64 = conn.query_row("SELECT length(body) FROM messages LIMIT 1", [], |r| r.get(0)).unwrap();
        assert_eq!(len, 100 + r#"{"text":""}"#.len() as i64);
        let r = run(&args).unwrap();
        assert_eq!(r.steps.len(), 2);
        assert!(r.summary.get("max_rows_per_s").and_then(|v| v.as_f64()).unwrap() > 0.0);
        // Every row's own latency (offered → committed) is measured.
        let (_, step) = &r.steps[0];
        assert!(step.get("row_p99_ms").and_then(|v| v.as_f64()).is_some(), "{step:?}");
        assert!(step.get("busy_disk_started").is_none(), "no writer was asked for");
    }

    #[test]
    fn a_busy_disk_run_writes_beside_the_database_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let args = Args {
            rate: vec![500.0],
            // Far shorter than writing and syncing the writer's 128 MiB: the
            // window stays open until the writer is done.
            duration: 0.01,
            body_bytes: 100,
            max_batch: 50,
            dir: Some(dir.path().to_path_buf()),
            busy_disk_mib: 128,
        };
        let r = run(&args).unwrap();
        let (_, step) = &r.steps[0];
        assert_eq!(step.get("busy_disk_started").and_then(|v| v.as_bool()), Some(true), "{step:?}");
        assert_eq!(step.get("busy_disk_written_mib").and_then(|v| v.as_u64()), Some(128), "{step:?}");
        assert_eq!(step.get("busy_disk_finished").and_then(|v| v.as_bool()), Some(true), "{step:?}");
        assert!(step.get("rows").and_then(|v| v.as_u64()).unwrap() > 0);
        // Neither dd's file nor the database is left behind.
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}
