//! A private Redis server for tests of cluster mode.
//!
//! Each [`TestRedis`] is its own `redis-server` on a free loopback port with
//! no persistence, bound to this process the same way as the test
//! PostgreSQL ([`crate::store::pg_harness`]): it gets `SIGKILL` when the
//! test process dies, and is killed when dropped. Tests can stop it and
//! start it again on the same port to simulate a Redis restart (all its
//! data is lost, as with a real restart without persistence).

use crate::store::pg_harness::spawn_bound_to_this_process;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running (or stopped) private Redis.
pub struct TestRedis {
    bin: PathBuf,
    port: u16,
    running: Option<(u32, mpsc::Receiver<Option<ExitStatus>>)>,
}

/// `redis-server` on `PATH` (or in `/usr/bin`), if installed.
pub fn find_redis() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
        .map(|d| d.join("redis-server"))
        .find(|p| p.is_file())
}

impl TestRedis {
    /// Starts a private Redis, or returns `None` (printing why) when
    /// `redis-server` is not installed.
    ///
    /// # Panics
    /// When it is installed but does not start.
    pub fn start() -> Option<TestRedis> {
        let Some(bin) = find_redis() else {
            eprintln!("skipped: redis-server not installed");
            return None;
        };
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let mut r = TestRedis { bin: bin.clone(), port, running: None };
            if r.try_start() {
                return Some(r);
            }
        }
        panic!("the test redis-server would not start");
    }

    fn try_start(&mut self) -> bool {
        let mut cmd = Command::new(&self.bin);
        cmd.args([
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        let (pid, exited) = spawn_bound_to_this_process(cmd, libc::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if exited.try_recv().is_ok() {
                return false;
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                self.running = Some((pid, exited));
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the test redis-server on port {} did not accept connections in 10 s", self.port);
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (`SIGKILL`), as a crash would.
    pub fn stop(&mut self) {
        if let Some((pid, exited)) = self.running.take() {
            // SAFETY: signalling our own child, which has not been reaped
            // (its waiting thread reports through `exited`).
            if exited.try_recv().is_err() {
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                let _ = exited.recv_timeout(Duration::from_secs(10));
            }
        }
    }

    /// Starts the server again on the same port (empty).
    ///
    /// # Panics
    /// When it does not start.
    pub fn start_again(&mut self) {
        self.stop();
        for _ in 0..50 {
            if self.try_start() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the test redis-server could not restart on port {}", self.port);
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
