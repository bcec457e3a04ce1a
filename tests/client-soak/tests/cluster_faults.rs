//! Cluster faults with real processes and real engines (issue 5, "Faults"):
//!
//! - `node_kill9_under_load_loses_and_duplicates_nothing_acknowledged`:
//!   three `courier-server` **processes** on one private PostgreSQL database
//!   and one private Redis, six `courier-client` clients spread over them
//!   (each given all three URLs for fail-over) exchanging DMs and channel
//!   messages under a steady load; one node gets a real `SIGKILL` mid-load.
//!   Its clients fail over to the others; at the end every acknowledged
//!   message is on the server once with its seq, and every member's local
//!   store holds every message of its conversations exactly once, in the
//!   server's order ([`check_invariants`]). Prints the recovery time: kill →
//!   every affected client connected again *and* synced.
//! - `postgres_outage_fails_sends_retryably_and_loses_nothing`: a
//!   **dedicated** PostgreSQL (the shared test instance of `pg_harness`
//!   cannot be stopped safely: other tests use it) is shut down during load
//!   and started again on the same port: sends fail with `internal`
//!   (retryable), `/healthz` answers 503 naming `postgres`, then 200 after
//!   the restart; the clients' outboxes retry and nothing acknowledged is
//!   lost or duplicated.
//!
//! The Redis-restart fault (resubscribe, gap filling) is
//! `redis_restart_resubscribes_and_gaps_fill_from_history` in the conformance
//! suite (`tests/tests/cluster.rs`).
//!
//! Needs, or prints "SKIPPED" and passes: `redis-server`, PostgreSQL
//! (`/usr/lib/postgresql/*/bin`), and the server binary built beside the
//! test binary (`target/<profile>/courier-server`). `cargo test -p
//! courier-soak` does **not** build that binary (a package's tests get
//! only its own binaries): run `cargo build -p courier-server` first, or
//! `cargo test --workspace`.

use courier_client::{ClientEvent, ConnState};
use courier_conformance::{Harness, TestRedis, dm_conv, skip, unique};
use courier_proto::{ErrorCode, Target};
use courier_soak::scenario::{Expected, LocalView, ServerProc, check_invariants, locate_bin, settle};
use serde_json::json;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Cluster settings shared by the node processes (rate limits lifted so the
/// load is never refused; a node that dies stops counting after 1.5 s).
fn node_config(postgres: &str, redis: &str, node_id: &str) -> String {
    format!(
        "postgres = \"{postgres}\"\nredis = \"{redis}\"\nnode_id = \"{node_id}\"\nnode_ttl_ms = 1500\n\
         expiry_scan_ms = 200\n[limits]\nmax_frame_bytes = 65536\nmax_body_bytes = 32768\n\
         send_per_sec = 100000\nsend_burst = 100000\nhistory_page = 200\n"
    )
}

/// A client on `urls` (its home node first, then the others for fail-over)
/// with a quick back-off.
fn cluster_client(urls: Vec<String>, user: &str, dir: &Path) -> courier_client::Client {
    let mut cfg = courier_client::ClientConfig::new(urls, format!("dev:{user}"), dir);
    cfg.device = "d1".into();
    cfg.backoff = courier_client::backoff::BackoffConfig {
        base: Duration::from_millis(100),
        cap: Duration::from_secs(1),
        factor: 2.0,
    };
    cfg.request_timeout = Duration::from_secs(10);
    let c = courier_client::Client::open(cfg).expect("client store opens");
    c.start();
    c
}

async fn synced(c: &courier_client::Client) {
    tokio::time::timeout(Duration::from_secs(60), c.wait_synced())
        .await
        .expect("synced in 60 s")
        .expect("not stopped");
}

/// Waits (on events subscribed before the fault) until the client lost its
/// session, got one again and finished the sync after it; returns when.
async fn reconnected_and_synced(mut rx: tokio::sync::broadcast::Receiver<ClientEvent>) -> Instant {
    use tokio::sync::broadcast::error::RecvError;
    let (mut dropped, mut connected) = (false, false);
    loop {
        match rx.recv().await {
            Ok(ClientEvent::Connection { state, .. }) => match state {
                ConnState::Reconnecting | ConnState::Connecting => (dropped, connected) = (true, false),
                ConnState::Connected if dropped => connected = true,
                ConnState::Stopped => panic!("the client stopped"),
                _ => {}
            },
            Ok(ClientEvent::SyncCompleted { .. }) if connected => return Instant::now(),
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => panic!("the client's event stream closed"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_kill9_under_load_loses_and_duplicates_nothing_acknowledged() {
    let test = "node_kill9_under_load_loses_and_duplicates_nothing_acknowledged";
    if locate_bin("courier-server").is_none() {
        skip(test, "target/<profile>/courier-server is not built (run `cargo build -p courier-server`)");
        return;
    }
    let Some(redis) = tokio::task::spawn_blocking(TestRedis::start).await.unwrap() else {
        skip(test, "redis-server is not installed");
        return;
    };
    let Some(db) = courier_server::store::pg_harness::fresh_database().await else {
        skip(test, "PostgreSQL is not installed");
        return;
    };
    let mut nodes = Vec::new();
    for i in 0..3 {
        let node = ServerProc::start(test, &node_config(&db, &redis.url(), &format!("node{i}"))).await;
        nodes.push(node.expect("binary located above"));
    }
    let urls: Vec<String> = nodes.iter().map(ServerProc::url).collect();

    // Six users, user i at home on node i % 3 (fail-over to the next ones).
    let users: Vec<String> = (0..6).map(|i| unique(&format!("u{i}"))).collect();
    let dirs: Vec<tempfile::TempDir> = (0..6).map(|_| tempfile::tempdir().unwrap()).collect();
    let clients: Vec<Arc<courier_client::Client>> = (0..6)
        .map(|i| {
            let mine = (0..3).map(|k| urls[(i + k) % 3].clone()).collect();
            Arc::new(cluster_client(mine, &users[i], dirs[i].path()))
        })
        .collect();
    for c in &clients {
        synced(c).await;
    }
    let ch = unique("room");
    clients[0].create_channel(&ch, "", "", false).await.expect("channel created");
    for c in &clients[1..] {
        c.join(&ch).await.expect("joined");
    }
    // DMs in a ring (u_i → u_{i+1}) and everyone in the channel.
    let mut exp = Expected::default();
    exp.members.insert(format!("ch:{ch}"), users.clone());
    for i in 0..6 {
        let (a, b) = (&users[i], &users[(i + 1) % 6]);
        exp.members.insert(dm_conv(a, b), vec![a.clone(), b.clone()]);
    }
    let convs: Vec<String> = exp.members.keys().cloned().collect();

    // Steady load: each client queues a message every 100 ms, alternating
    // its DM and the channel (60 msg/s over the cluster).
    let load_for = Duration::from_secs(8);
    let running = Arc::new(AtomicBool::new(true));
    let mut load = Vec::new();
    for i in 0..6 {
        let (c, to, ch, running) =
            (clients[i].clone(), users[(i + 1) % 6].clone(), ch.clone(), running.clone());
        load.push(tokio::spawn(async move {
            let mut n = 0u64;
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            while running.load(Ordering::Relaxed) {
                tick.tick().await;
                let target =
                    if n.is_multiple_of(2) { Target::User(to.clone()) } else { Target::Channel(ch.clone()) };
                c.send_text(&target, &format!("{i}-{n}")).expect("queued");
                n += 1;
            }
            n
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Node 0 holds users 0 and 3. SIGKILL it mid-load.
    let affected = [0usize, 3];
    let waits: Vec<_> =
        affected.iter().map(|&i| tokio::spawn(reconnected_and_synced(clients[i].subscribe()))).collect();
    let killed = Instant::now();
    nodes[0].kill9();
    let mut recovery = Duration::ZERO;
    for w in waits {
        let at = tokio::time::timeout(Duration::from_secs(30), w)
            .await
            .expect("every affected client reconnected and synced within 30 s")
            .unwrap();
        recovery = recovery.max(at - killed);
    }
    println!("CLUSTER-FIGURES node kill -9 → all affected clients connected and synced: {recovery:?}");
    let rest = load_for.saturating_sub(killed.elapsed() + Duration::from_secs(3));
    tokio::time::sleep(rest).await;
    running.store(false, Ordering::Relaxed);
    let mut queued = 0;
    for l in load {
        queued += l.await.unwrap();
    }

    // Settle against a surviving node, then check every invariant.
    let h = Harness::at(&nodes[1].addr());
    let stores: Vec<(String, &courier_client::Store)> =
        users.iter().cloned().zip(clients.iter().map(|c| c.store())).collect();
    let settled = settle(&h, &exp, &stores, Duration::from_secs(60)).await;
    assert!(settled, "clients never settled (outboxes drained, stores synced)");
    let views: Vec<LocalView> = stores.iter().map(|(u, s)| LocalView::read(s, u, &convs)).collect();
    for v in &views {
        v.add_acked(&mut exp);
    }
    let report = check_invariants(&h, &exp, &views).await;
    report.assert_ok(test, json!({"recovery_ms": recovery.as_millis() as u64, "queued": queued}));
    assert_eq!(report.acked, queued, "every queued message was acknowledged in the end: {report}");
    assert_eq!(report.messages, queued, "the server holds exactly the queued messages: {report}");
    for c in &clients {
        c.stop().await;
    }
    drop(nodes);
}

/// A PostgreSQL of this test's own, which it can stop and start again on
/// the same port and data directory.
struct DedicatedPg {
    bin: PathBuf,
    root: tempfile::TempDir,
    port: u16,
    ids: Option<(u32, u32)>,
    /// The postmaster's pid and where its waiting thread reports its exit.
    child: Option<(u32, std::sync::mpsc::Receiver<Option<std::process::ExitStatus>>)>,
}

impl DedicatedPg {
    fn find_bin() -> Option<PathBuf> {
        let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .flatten()
            .filter_map(|e| {
                let v: u32 = e.file_name().to_str()?.parse().ok()?;
                let bin = e.path().join("bin");
                bin.join("initdb").is_file().then_some((v, bin))
            })
            .collect();
        found.sort();
        found.pop().map(|(_, b)| b)
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        cmd.current_dir(self.root.path()).stdin(Stdio::null());
        if let Some((uid, gid)) = self.ids {
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    /// `initdb` and start; `None` when PostgreSQL is not installed.
    fn start() -> Option<DedicatedPg> {
        let bin = Self::find_bin()?;
        // PostgreSQL refuses to run as root: run it as `postgres` then.
        // SAFETY: plain libc lookups, read at once.
        let ids = unsafe {
            if libc::geteuid() == 0 {
                let pw = libc::getpwnam(c"postgres".as_ptr());
                assert!(!pw.is_null(), "running as root without a `postgres` user");
                Some(((*pw).pw_uid, (*pw).pw_gid))
            } else {
                None
            }
        };
        let root = tempfile::Builder::new().prefix("courier-pg-outage-").tempdir().unwrap();
        if let Some((uid, gid)) = ids {
            std::os::unix::fs::chown(root.path(), Some(uid), Some(gid)).unwrap();
        }
        let port = courier_soak::scenario::free_port();
        let mut pg = DedicatedPg { bin, root, port, ids, child: None };
        let out = pg
            .command("initdb")
            .arg("-D")
            .arg(pg.root.path().join("data"))
            .args(["-A", "trust", "-U", "courier", "-E", "UTF8", "--no-locale", "--no-sync"])
            .output()
            .expect("initdb runs");
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        pg.run();
        Some(pg)
    }

    /// Starts the server and waits until it accepts connections.
    fn run(&mut self) {
        assert!(self.child.is_none());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.path().join("pg.log"))
            .unwrap();
        let mut cmd = self.command("postgres");
        cmd.arg("-D")
            .arg(self.root.path().join("data"))
            .arg("-k")
            .arg(self.root.path())
            .args(["-p", &self.port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        // Spawned from a thread that lives exactly as long as the server,
        // with the parent-death signal armed: the server stops however the
        // test process ends (the same scheme as the shared test PostgreSQL).
        let parent = std::process::id();
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT);
                if libc::getppid() as u32 != parent {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
        let (started_tx, started) = std::sync::mpsc::channel();
        let (exited_tx, exited) = std::sync::mpsc::channel();
        std::thread::spawn(move || match cmd.spawn() {
            Ok(mut child) => {
                let _ = started_tx.send(Ok(child.id()));
                let _ = exited_tx.send(child.wait().ok());
            }
            Err(e) => {
                let _ = started_tx.send(Err(e));
            }
        });
        let pid = started.recv().unwrap().expect("postgres starts");
        self.child = Some((pid, exited));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args([
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "courier",
                    "-d",
                    "postgres",
                ])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            if let Some((_, exited)) = &self.child
                && let Ok(st) = exited.try_recv()
            {
                panic!("postgres exited ({st:?}): {}", self.log());
            }
            assert!(Instant::now() < deadline, "postgres not ready in 60 s: {}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("pg.log")).unwrap_or_default()
    }

    /// Fast shutdown (SIGINT: sessions cut, clean stop) and wait for it.
    fn stop(&mut self, signal: libc::c_int) {
        if let Some((pid, exited)) = self.child.take()
            && exited.try_recv().is_err()
        {
            // SAFETY: signalling our own child, not yet reaped (its waiting
            // thread reports through `exited`).
            unsafe { libc::kill(pid as i32, signal) };
            if exited.recv_timeout(Duration::from_secs(20)).is_err() {
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                let _ = exited.recv_timeout(Duration::from_secs(5));
            }
        }
    }

    fn url(&self, db: &str) -> String {
        format!("postgresql://courier@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for DedicatedPg {
    fn drop(&mut self) {
        self.stop(libc::SIGQUIT);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_fails_sends_retryably_and_loses_nothing() {
    let test = "postgres_outage_fails_sends_retryably_and_loses_nothing";
    if std::env::var("COURIER_TEST_URL").is_ok() {
        skip(test, "starts its own cluster (COURIER_TEST_URL is set)");
        return;
    }
    let Some(redis) = tokio::task::spawn_blocking(TestRedis::start).await.unwrap() else {
        skip(test, "redis-server is not installed");
        return;
    };
    let Some(mut pg) = tokio::task::block_in_place(DedicatedPg::start) else {
        skip(test, "PostgreSQL is not installed");
        return;
    };
    let mut nodes = Vec::new();
    for i in 0..2 {
        let node = Harness::with_config(test, |c| {
            c.postgres = Some(pg.url("postgres"));
            c.redis = Some(redis.url());
            c.node_id = Some(format!("pg-outage-{i}"));
            c.node_ttl_ms = 1500;
            c.limits.send_per_sec = 100_000;
            c.limits.send_burst = 100_000;
        })
        .await
        .expect("COURIER_TEST_URL checked above");
        nodes.push(node);
    }
    let urls: Vec<String> = nodes.iter().map(|n| format!("ws://{}", n.addr)).collect();
    let (a, b) = (unique("alice"), unique("bob"));
    let (da, dbd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let alice = Arc::new(cluster_client(urls.clone(), &a, da.path()));
    let bob = Arc::new(cluster_client(urls.iter().rev().cloned().collect(), &b, dbd.path()));
    synced(&alice).await;
    synced(&bob).await;
    let mut raw = nodes[0].login(&unique("carol")).await;

    // Steady load both ways, every 100 ms, through the outage.
    let running = Arc::new(AtomicBool::new(true));
    let mut load = Vec::new();
    for (c, to) in [(alice.clone(), b.clone()), (bob.clone(), a.clone())] {
        let running = running.clone();
        load.push(tokio::spawn(async move {
            let mut n = 0u64;
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            while running.load(Ordering::Relaxed) {
                tick.tick().await;
                c.send_text(&Target::User(to.clone()), &format!("m{n}")).expect("queued");
                n += 1;
            }
            n
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let r = nodes[0].http("GET", "/healthz", &[], b"").await;
    assert_eq!(r.status, 200, "{}", r.text());

    tokio::task::block_in_place(|| pg.stop(libc::SIGINT));
    let down = Instant::now();
    // A send now fails with the retryable `internal`, promptly.
    let err = raw
        .err(json!({"op":"send","to":{"user":a},"cid":"during-outage","kind":"text","body":{"text":"x"}}))
        .await;
    assert_eq!(err.code, ErrorCode::Internal, "{err:?}");
    assert!(err.code.is_retryable());
    println!(
        "send during the PostgreSQL outage: {:?} {:?} ({:?} after the stop)",
        err.code,
        err.message,
        down.elapsed()
    );
    for n in &nodes {
        let r = n.http("GET", "/healthz", &[], b"").await;
        assert_eq!(r.status, 503, "healthz drains a node without PostgreSQL: {}", r.text());
        assert_eq!(r.json()["failing"], json!(["postgres"]), "{}", r.text());
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let queued_meanwhile = alice.outbox().unwrap().len() + bob.outbox().unwrap().len();
    assert!(queued_meanwhile > 0, "the outboxes hold the sends of the outage");

    tokio::task::block_in_place(|| pg.run());
    let up = Instant::now();
    for n in &nodes {
        loop {
            let r = n.http("GET", "/healthz", &[], b"").await;
            if r.status == 200 {
                break;
            }
            assert!(
                up.elapsed() < Duration::from_secs(30),
                "healthz not 200 30 s after PostgreSQL came back: {}",
                r.text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    println!("CLUSTER-FIGURES PostgreSQL back → /healthz 200 on every node: {:?}", up.elapsed());
    // The retried request by the same cid succeeds once.
    let ok = raw
        .ok(json!({"op":"send","to":{"user":a},"cid":"during-outage","kind":"text","body":{"text":"x"}}))
        .await;
    assert!(ok["seq"].as_u64().is_some(), "{ok}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    running.store(false, Ordering::Relaxed);
    let mut queued = 0;
    for l in load {
        queued += l.await.unwrap();
    }

    let mut exp = Expected::default();
    let conv = dm_conv(&a, &b);
    exp.members.insert(conv.clone(), vec![a.clone(), b.clone()]);
    let h = Harness::at(&nodes[1].addr);
    let stores = [(a.clone(), alice.store()), (b.clone(), bob.store())];
    assert!(settle(&h, &exp, &stores, Duration::from_secs(60)).await, "outboxes drained and stores synced");
    let views: Vec<LocalView> =
        stores.iter().map(|(u, s)| LocalView::read(s, u, std::slice::from_ref(&conv))).collect();
    for v in &views {
        v.add_acked(&mut exp);
    }
    let report = check_invariants(&h, &exp, &views).await;
    report.assert_ok(test, json!({"queued_during_outage": queued_meanwhile}));
    assert_eq!(report.acked, queued, "every queued message acknowledged after recovery: {report}");
    assert_eq!(report.messages, queued, "none lost, none duplicated: {report}");
    alice.stop().await;
    bob.stop().await;
    drop(raw);
    for mut n in nodes {
        n.shutdown_server().await;
    }
    drop(pg);
}
