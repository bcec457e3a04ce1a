//! The parties of a call test: in-process courier-server nodes (single, or
//! two cluster nodes on a private Redis and PostgreSQL), coturn, and
//! `courier-cli` processes with their output.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

/// The longest a CLI process may run before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(150);

/// A running in-process server (or cluster node) and its data.
pub struct Node {
    pub server: courier_server::Server,
    _dir: tempfile::TempDir,
}

impl Node {
    /// A single-node server with dev sign-in, changed by `f`.
    pub async fn start(f: impl FnOnce(&mut courier_server::Config)) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = courier_server::Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_path_buf(),
            dev_auth: true,
            ..Default::default()
        };
        f(&mut cfg);
        let server = courier_server::Server::start(cfg).await.expect("the test server starts");
        Node { server, _dir: dir }
    }

    /// `n` cluster nodes on one private Redis and one fresh PostgreSQL
    /// database (as the conformance cluster harness starts them).
    pub async fn cluster(n: usize) -> (Vec<Node>, courier_server::cluster::redis_harness::TestRedis) {
        let redis = tokio::task::spawn_blocking(courier_server::cluster::redis_harness::TestRedis::start)
            .await
            .unwrap()
            .expect("the cluster call test needs redis-server (scripts/setup.sh --test installs it)");
        let db = courier_server::store::pg_harness::fresh_database()
            .await
            .expect("the cluster call test needs PostgreSQL (scripts/setup.sh --test installs it)");
        let mut nodes = Vec::new();
        for i in 0..n {
            nodes.push(
                Node::start(|c| {
                    c.postgres = Some(db.clone());
                    c.redis = Some(redis.url());
                    c.node_id = Some(format!("node{i}"));
                    c.node_ttl_ms = 1500;
                    c.expiry_scan_ms = 200;
                })
                .await,
            );
        }
        (nodes, redis)
    }

    /// The base URL the CLI is given.
    pub fn url(&self) -> String {
        format!("ws://{}", self.server.local_addr())
    }
}

/// A private coturn (Debian `turnserver`) with the TURN REST shared
/// secret, listening and relaying on the namespace's TURN address.
pub struct Coturn {
    child: std::process::Child,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Coturn {
    pub fn start(ip: &str, port: u16, secret: &str) -> Coturn {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("turn.log");
        let child = std::process::Command::new("turnserver")
            .args(["-n", "--listening-ip", ip, "--relay-ip", ip, "--listening-port", &port.to_string()])
            .args(["--use-auth-secret", "--static-auth-secret", secret, "--realm", "courier.test"])
            .args(["--no-tls", "--no-dtls", "--no-cli", "--min-port", "49152", "--max-port", "49400"])
            .args(["--simple-log", "--log-file"])
            .arg(&log)
            .arg("--pidfile")
            .arg(dir.path().join("turn.pid"))
            .arg("--userdb")
            .arg(dir.path().join("turndb"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the relay test needs coturn's `turnserver` (scripts/setup.sh --test installs it)");
        let mut c = Coturn { child, log, _dir: dir };
        for _ in 0..200 {
            if std::fs::read_to_string(&c.log).is_ok_and(|l| l.contains("Total General servers")) {
                return c;
            }
            if let Ok(Some(status)) = c.child.try_wait() {
                panic!("turnserver exited at start ({status}): {}", c.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("turnserver did not come up: {}", c.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `courier-cli` as `user` on `url`, with its own data folder.
pub fn cli(url: &str, user: &str, data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_courier-cli"));
    c.env("COURIER_SERVER", url)
        .env("COURIER_TOKEN", format!("dev:{user}"))
        .env("COURIER_DATA", data)
        .env_remove("COURIER_ICE_POLICY")
        .env_remove("COURIER_ICE_RELAY_ONLY")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

/// A CLI process whose output is being collected.
pub struct Running {
    name: String,
    child: Child,
    stdout: JoinHandle<String>,
    stderr: JoinHandle<String>,
}

/// A finished CLI process.
#[derive(Debug)]
pub struct Done {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Done {
    /// The JSON report of the last call printed (`--json`).
    pub fn report(&self) -> Value {
        let line = self.stdout.lines().rev().find(|l| l.starts_with('{'));
        serde_json::from_str(line.unwrap_or_else(|| panic!("no JSON report in {self:?}"))).unwrap()
    }
}

/// Starts `cmd args`; with `ready`, waits until that line shows on stderr.
pub async fn spawn(name: &str, mut cmd: Command, args: &[&str], ready: Option<&str>) -> Running {
    let mut child = cmd.args(args).spawn().expect("courier-cli starts");
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut early = String::new();
    if let Some(ready) = ready {
        let seen = tokio::time::timeout(PATIENCE, async {
            let mut line = String::new();
            loop {
                line.clear();
                if err.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return false;
                }
                eprint!("[{name}] {line}");
                early.push_str(&line);
                if line.contains(ready) {
                    return true;
                }
            }
        })
        .await;
        assert_eq!(seen, Ok(true), "{name} never printed {ready:?}:\n{early}");
    }
    let mut out = child.stdout.take().unwrap();
    let stdout = tokio::spawn(async move {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s).await;
        s
    });
    let tag = name.to_owned();
    let stderr = tokio::spawn(async move {
        let mut s = early;
        let mut line = String::new();
        while err.read_line(&mut line).await.unwrap_or(0) > 0 {
            eprint!("[{tag}] {line}");
            s.push_str(&line);
            line.clear();
        }
        s
    });
    Running { name: name.to_owned(), child, stdout, stderr }
}

impl Running {
    /// Sends the process SIGTERM (as a service manager stops it).
    pub fn terminate(&self) {
        let pid = self.child.id().expect("still running").to_string();
        let ok = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(ok.success(), "kill -TERM {pid}");
    }

    /// Waits for the process to exit.
    pub async fn done(mut self) -> Done {
        let status = match tokio::time::timeout(PATIENCE, self.child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => {
                // Where it is stuck, for the log: every thread's stack (gdb, if there is one).
                let pid = self.child.id().map(|p| p.to_string()).unwrap_or_default();
                let stacks = std::process::Command::new("gdb")
                    .args(["-p", &pid, "-batch", "-ex", "thread apply all bt 25"])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_else(|e| format!("(no gdb: {e})"));
                let _ = self.child.start_kill();
                panic!("{} hung; its threads:\n{stacks}", self.name)
            }
        };
        let done = Done {
            code: status.code().unwrap_or(-1),
            stdout: self.stdout.await.unwrap(),
            stderr: self.stderr.await.unwrap(),
        };
        eprintln!("[{}] exit {} stdout:\n{}", self.name, done.code, done.stdout);
        done
    }
}

/// Runs `cmd args` to the end.
pub async fn run(name: &str, cmd: Command, args: &[&str]) -> Done {
    spawn(name, cmd, args, None).await.done().await
}

/// The call record of invitation `iid` in `user`'s local history with
/// `peer` (after `history` synced it).
pub async fn call_record(url: &str, user: &str, data: &Path, peer: &str, iid: &str) -> Value {
    let out =
        run(&format!("{user} history"), cli(url, user, data), &["history", &format!("@{peer}"), "--json"])
            .await;
    assert_eq!(out.code, 0, "{user}'s history: {out:?}");
    out.stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|m| m["kind"] == "call" && m["body"]["iid"] == iid)
        .unwrap_or_else(|| panic!("no call record of {iid} in {user}'s history:\n{}", out.stdout))
}
