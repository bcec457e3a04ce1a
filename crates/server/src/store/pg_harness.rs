//! A private PostgreSQL server for the tests of [`super::postgres`] and of
//! cluster mode (feature `test-engines`).
//!
//! The first test that asks starts one server per test binary: `initdb`
//! into a temporary directory, `postgres` on a free loopback port (run as
//! the `postgres` user when the tests run as root, since PostgreSQL refuses
//! root). Every test then gets its own fresh database (`CREATE DATABASE
//! t_<ulid>`), so tests run in parallel.
//!
//! No server outlives the test process: it is spawned from a thread that
//! lives exactly as long as the server, with `PR_SET_PDEATHSIG` = `SIGQUIT`
//! (PostgreSQL's immediate shutdown), so it is stopped however the test
//! process ends, `kill -9` included. On a normal exit an `atexit` hook also
//! waits for it to stop and removes its directory.
//!
//! When no PostgreSQL is installed (`/usr/lib/postgresql/*/bin/initdb`),
//! [`fresh_database`] prints "skipped: …" and returns `None`; the tests then
//! pass without checking anything. An installed server that fails to start
//! fails the tests.
//!
//! The server runs with `fsync=off`: these tests check semantics, not the
//! disk, and share a small machine.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

/// The running server.
struct Server {
    port: u16,
    pid: u32,
    /// Temporary directory holding the data directory, socket and log.
    root: PathBuf,
    /// Receives the server's exit status once it stops.
    exited: Mutex<mpsc::Receiver<Option<ExitStatus>>>,
}

/// `None` once we know PostgreSQL is not installed.
static SERVER: OnceLock<Option<Server>> = OnceLock::new();

/// The role every test connects as (`initdb -U`).
const ROLE: &str = "courier";

/// A connection URL for a new, empty database on the test server, or `None`
/// when PostgreSQL is not installed.
///
/// # Panics
/// When PostgreSQL is installed but the server cannot be started or the
/// database cannot be created: that is a broken test environment, not a
/// reason to skip.
pub async fn fresh_database() -> Option<String> {
    let server = tokio::task::spawn_blocking(|| SERVER.get_or_init(start).as_ref())
        .await
        .expect("starting the test PostgreSQL server");
    let Some(server) = server else {
        eprintln!("skipped: PostgreSQL not installed (no /usr/lib/postgresql/*/bin/initdb)");
        return None;
    };
    let name = format!("t_{}", ulid::Ulid::new().to_string().to_lowercase());
    let admin_url = format!("postgresql://{ROLE}@127.0.0.1:{}/postgres", server.port);
    let (admin, conn) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to the test server at {admin_url}: {e:?}"));
    let conn = tokio::spawn(conn);
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap_or_else(|e| panic!("creating test database {name}: {e:?}"));
    drop(admin);
    let _ = conn.await;
    Some(format!("postgresql://{ROLE}@127.0.0.1:{}/{name}", server.port))
}

/// The `bin` directory of the newest installed PostgreSQL.
fn find_bin() -> Option<PathBuf> {
    let versions = std::fs::read_dir("/usr/lib/postgresql").ok()?;
    versions
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version)
        .map(|(_, bin)| bin)
}

/// Uid and gid to run PostgreSQL as: the `postgres` user when we are root.
fn server_ids() -> Option<(u32, u32)> {
    // SAFETY: plain libc calls; getpwnam's result is read before any other
    // passwd lookup could overwrite it (only during start-up, in one thread).
    unsafe {
        if libc::geteuid() != 0 {
            return None;
        }
        let pw = libc::getpwnam(c"postgres".as_ptr());
        assert!(!pw.is_null(), "tests run as root, but there is no `postgres` user to run PostgreSQL as");
        Some(((*pw).pw_uid, (*pw).pw_gid))
    }
}

fn command(program: PathBuf, ids: Option<(u32, u32)>, cwd: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(cwd).stdin(Stdio::null());
    if let Some((uid, gid)) = ids {
        // std drops supplementary groups when root changes uid.
        cmd.uid(uid).gid(gid);
    }
    cmd
}

/// Initializes and starts the server; `None` when PostgreSQL is absent.
fn start() -> Option<Server> {
    let bin = find_bin()?;
    let ids = server_ids();
    let root = tempfile::Builder::new()
        .prefix("courier-pg-")
        .tempdir()
        .expect("a temporary directory for the test server")
        .keep();
    if let Some((uid, gid)) = ids {
        std::os::unix::fs::chown(&root, Some(uid), Some(gid)).expect("handing the directory to postgres");
    }
    let data = root.join("data");
    let init = command(bin.join("initdb"), ids, &root)
        .arg("-D")
        .arg(&data)
        .args(["-A", "trust", "-U", ROLE, "-E", "UTF8", "--no-locale", "--no-sync"])
        .output()
        .expect("running initdb");
    assert!(
        init.status.success(),
        "initdb failed ({}):\n{}\n{}",
        init.status,
        String::from_utf8_lossy(&init.stdout),
        String::from_utf8_lossy(&init.stderr)
    );

    // A free port can be taken before the server binds it: try a few.
    let mut last_log = String::new();
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log_path = root.join(format!("postgres-{port}.log"));
        let log = std::fs::File::create(&log_path).expect("the server log");
        let mut cmd = command(bin.join("postgres"), ids, &root);
        cmd.arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(&root)
            .args(["-p", &port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "max_connections=300"])
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .stdout(log.try_clone().expect("the server log"))
            .stderr(log);
        let (pid, exited) = spawn_bound_to_this_process(cmd, libc::SIGQUIT);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(status) = exited.try_recv() {
                last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
                eprintln!("test PostgreSQL on port {port} stopped ({status:?}); retrying on another port");
                break;
            }
            let ready = Command::new(bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string(), "-U", ROLE, "-d", "postgres"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                // SAFETY: registering a plain extern "C" fn.
                unsafe { libc::atexit(stop_at_exit) };
                return Some(Server { port, pid, root, exited: Mutex::new(exited) });
            }
            assert!(
                Instant::now() < deadline,
                "the test PostgreSQL did not become ready in 60 s; log:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("the test PostgreSQL server would not start; last log:\n{last_log}");
}

/// Spawns `cmd` from a dedicated thread that waits for it, with the
/// parent-death signal set. The signal fires when the spawning *thread*
/// ends, so that thread must live as long as the child: it does, blocked in
/// `wait`, until the child stops or the process exits.
pub(crate) fn spawn_bound_to_this_process(
    mut cmd: Command,
    death_signal: libc::c_int,
) -> (u32, mpsc::Receiver<Option<ExitStatus>>) {
    let (started_tx, started) = mpsc::channel();
    let (exited_tx, exited) = mpsc::channel();
    let parent = std::process::id();
    // SAFETY: only async-signal-safe calls (prctl, getppid) and no
    // allocation between fork and exec. std runs this after setuid, which
    // would otherwise clear the death signal.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, death_signal) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before the signal was armed.
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    std::thread::Builder::new()
        .name("test-postgres".into())
        .spawn(move || match cmd.spawn() {
            Ok(mut child) => {
                let _ = started_tx.send(Ok(child.id()));
                let _ = exited_tx.send(child.wait().ok());
            }
            Err(e) => {
                let _ = started_tx.send(Err(e));
            }
        })
        .expect("a thread for the test server");
    let pid = started.recv().expect("the spawning thread answers").expect("spawning postgres");
    (pid, exited)
}

/// On a normal exit: immediate shutdown, wait for it, remove the files.
extern "C" fn stop_at_exit() {
    let Some(Some(server)) = SERVER.get() else { return };
    let Ok(pid) = i32::try_from(server.pid) else { return };
    let exited = server.exited.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if exited.try_recv().is_ok() {
        // Already stopped (and reaped): its pid may belong to someone else now.
        let _ = std::fs::remove_dir_all(&server.root);
        return;
    }
    // SAFETY: signalling our own child, still running a moment ago.
    unsafe { libc::kill(pid, libc::SIGQUIT) };
    if exited.recv_timeout(Duration::from_secs(10)).is_err() {
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let _ = exited.recv_timeout(Duration::from_secs(5));
    }
    let _ = std::fs::remove_dir_all(&server.root);
}
