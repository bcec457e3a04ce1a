//! The server under test: started by the harness as a separate process
//! (`courier-server`; `node` running the Socket.IO peer, with or without
//! its SQLite store; this binary's raw relay) or given as an address plus
//! an optional pid, and measured from `/proc/<pid>` alone — resident memory
//! (`VmRSS`, peak `VmHWM`) and CPU time (`utime + stime`).

use crate::wire::{Endpoint, Proto};
use anyhow::{Context as _, anyhow, bail};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// The servers the generator can drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// courier-server: every message stored durably (fsync) before its ok.
    Courier,
    /// The Socket.IO peer, keeping nothing (`bench/peers/socketio`).
    Socketio,
    /// The same peer storing each message in SQLite (better-sqlite3, WAL,
    /// synchronous=FULL) before its ack.
    SocketioDurable,
    /// The raw relay ([`crate::relay`]): forwards frames, parses and
    /// stores nothing. The floor of a WebSocket relay on this machine.
    Relay,
}

impl Target {
    /// The wire protocol it speaks.
    pub fn proto(self) -> Proto {
        match self {
            Target::Courier => Proto::Courier,
            Target::Socketio | Target::SocketioDurable => Proto::Socketio,
            Target::Relay => Proto::Relay,
        }
    }

    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Target::Courier => "courier",
            Target::Socketio => "socketio",
            Target::SocketioDurable => "socketio-durable",
            Target::Relay => "relay",
        }
    }
}

/// How to reach (or start) the server.
#[derive(Debug, Clone, clap::Args)]
pub struct TargetOpts {
    /// Which server to drive.
    #[arg(long, value_enum, default_value = "courier", global = true)]
    pub target: Target,
    /// An already running server (`ws://127.0.0.1:7700` or `127.0.0.1:7700`);
    /// without it the harness starts one for the run. Repeat it (or give a
    /// comma list) for the nodes of a cluster: clients are spread over
    /// them round robin (client i on node i mod n).
    #[arg(long, global = true, value_delimiter = ',')]
    pub url: Vec<String>,
    /// The pid of the server given by --url, to measure its memory and CPU;
    /// with several nodes, their pids (figures are summed over them).
    #[arg(long, global = true, value_delimiter = ',')]
    pub server_pid: Vec<u32>,
    /// The courier-server binary [default: next to this binary].
    #[arg(long, global = true)]
    pub server_bin: Option<PathBuf>,
    /// The Socket.IO peer's directory (with node_modules installed).
    #[arg(long, global = true)]
    pub peer_dir: Option<PathBuf>,
    /// The node executable for the Socket.IO peer.
    #[arg(long, global = true, default_value = "node")]
    pub node: String,
    /// Loopback source addresses to spread client sockets over (127.0.0.2…).
    #[arg(long, global = true, default_value_t = 200)]
    pub src_ips: u16,
}

impl TargetOpts {
    /// Options for a harness-started server of this kind.
    pub fn spawn(target: Target) -> TargetOpts {
        TargetOpts {
            target,
            url: Vec::new(),
            server_pid: Vec::new(),
            server_bin: None,
            peer_dir: None,
            node: "node".into(),
            src_ips: 200,
        }
    }
}

/// The default directory of the Socket.IO peer in this repository.
pub fn default_peer_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/peers/socketio")
}

/// One sample of a process's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcSample {
    /// Resident set size, KiB.
    pub rss_kib: u64,
    /// Peak resident set size, KiB.
    pub hwm_kib: u64,
    /// User + system CPU time, ns (kernel tick resolution, usually 10 ms).
    pub cpu_ns: u64,
    /// Time the process's live threads spent runnable but waiting for a
    /// CPU, ns (`/proc/<pid>/task/*/schedstat`): how much other load on the
    /// machine (the generator, other builds) held the server back.
    pub runq_wait_ns: u64,
}

/// Reads `/proc/<pid>/status` and `/proc/<pid>/stat`.
pub fn sample_pid(pid: u32) -> Option<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let runq_wait_ns = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|dir| {
            dir.flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
                .filter_map(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
                .sum()
        })
        .unwrap_or(0);
    Some(ProcSample {
        rss_kib: kib("VmRSS:")?,
        hwm_kib: kib("VmHWM:")?,
        cpu_ns: ticks * 1_000_000_000 / hz,
        runq_wait_ns,
    })
}

/// Raises this process's open-file soft limit to its hard limit (children
/// inherit it). Returns the new soft limit.
pub fn raise_fd_limit() -> u64 {
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return 0;
        }
        r.rlim_cur = r.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur
    }
}

/// A server to load: its endpoint, and its pid when it can be measured.
pub struct Server {
    /// Which server it is (its name in reports).
    pub target: Target,
    /// Where clients connect (the first node, with several `--url`s).
    pub endpoint: Endpoint,
    /// Every node's endpoint (just `endpoint` for one server).
    pub endpoints: Vec<Endpoint>,
    /// The server process, when known (the first of `pids`).
    pub pid: Option<u32>,
    /// Every known server process; [`Server::sample`] sums over them.
    pub pids: Vec<u32>,
    /// Loopback source addresses for clients.
    pub src_ips: u16,
    /// A started Courier server's metrics address.
    pub metrics: Option<SocketAddr>,
    child: Option<Child>,
    dir: Option<tempfile::TempDir>,
}

/// How many times a server is started on fresh ports when one it was given
/// turned out taken.
const START_ATTEMPTS: u32 = 3;

/// What a server's log says when a port it was given is taken: Courier's
/// own message, and the Node (`EADDRINUSE`) and Rust (`AddrInUse`) errors.
const PORT_TAKEN: &[&str] = &["address is already in use", "EADDRINUSE", "Address already in use"];

impl Server {
    /// Starts the server described by `opts` (or attaches to `--url`).
    /// A started Courier server runs with rate limits lifted and room for
    /// `max_connections`.
    ///
    /// # Errors
    /// When the binary or the peer is missing or the server does not come up.
    pub async fn start(opts: &TargetOpts, max_connections: usize) -> anyhow::Result<Server> {
        if !opts.url.is_empty() {
            let mut endpoints = Vec::new();
            for url in &opts.url {
                let hostport = url.trim_start_matches("ws://").split('/').next().unwrap_or_default();
                let addr: SocketAddr =
                    hostport.parse().with_context(|| format!("--url {url}: want ws://IP:PORT"))?;
                endpoints.push(Endpoint { proto: opts.target.proto(), addr });
            }
            return Ok(Server {
                target: opts.target,
                endpoint: endpoints[0].clone(),
                endpoints,
                pid: opts.server_pid.first().copied(),
                pids: opts.server_pid.clone(),
                src_ips: opts.src_ips,
                metrics: None,
                child: None,
                dir: None,
            });
        }
        // The ports are picked free, then bound by the server a moment
        // later: a load generator's outgoing connection (or anyone else) may
        // take one meanwhile. Then the server says so and exits; pick again.
        let mut attempt = 1;
        loop {
            match Self::spawn(opts, max_connections).await {
                Err(e) if attempt < START_ATTEMPTS && port_taken(&e) => {
                    eprintln!(
                        "courier-bench: a port picked for the server was taken meanwhile; picking others"
                    );
                    attempt += 1;
                }
                started => return started,
            }
        }
    }

    /// Starts the server process once, on ports picked now.
    async fn spawn(opts: &TargetOpts, max_connections: usize) -> anyhow::Result<Server> {
        let dir = tempfile::Builder::new().prefix("courier-bench-").tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut metrics = None;
        let log = std::fs::File::create(dir.path().join("server.log"))?;
        let mut cmd = match opts.target {
            Target::Courier => {
                let bin = match &opts.server_bin {
                    Some(b) => b.clone(),
                    None => default_server_bin()?,
                };
                let config = dir.path().join("server.toml");
                let at = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
                metrics = Some(at);
                std::fs::write(&config, courier_config(addr, at, &dir.path().join("data"), max_connections))?;
                let mut c = Command::new(bin);
                c.arg("--config").arg(&config).env("RUST_LOG", "warn");
                c
            }
            Target::Socketio | Target::SocketioDurable => {
                let peer = opts.peer_dir.clone().unwrap_or_else(default_peer_dir);
                let module = if opts.target == Target::Socketio { "socket.io" } else { "better-sqlite3" };
                if !peer.join("node_modules").join(module).exists() {
                    bail!("the Socket.IO peer is not installed: run `npm ci` in {}", peer.display());
                }
                let mut c = Command::new(&opts.node);
                c.arg(peer.join("server.js")).env("PORT", port.to_string()).env("HOST", "127.0.0.1");
                if opts.target == Target::SocketioDurable {
                    c.env("DATA_DIR", dir.path().join("data"));
                }
                c
            }
            Target::Relay => {
                let mut c = Command::new(std::env::current_exe()?);
                c.arg("relay").arg("--listen").arg(addr.to_string());
                c
            }
        };
        cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log).kill_on_drop(true);
        let child = cmd.spawn().context("starting the server process")?;
        let pid = child.id();
        let endpoint = Endpoint { proto: opts.target.proto(), addr };
        let mut server = Server {
            target: opts.target,
            endpoint: endpoint.clone(),
            endpoints: vec![endpoint],
            pid,
            pids: pid.into_iter().collect(),
            src_ips: opts.src_ips,
            metrics,
            child: Some(child),
            dir: Some(dir),
        };
        server.wait_ready().await?;
        Ok(server)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if tokio::net::TcpStream::connect(self.endpoint.addr).await.is_ok() {
                return Ok(());
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                bail!("server exited with {status} before listening:\n{}", self.log());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("server not listening on {} after 30 s:\n{}", self.endpoint.addr, self.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The directory of a started server's data (the filesystem its disk
    /// writes go to); `None` for an external server.
    pub fn data_dir(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.path().to_path_buf())
    }

    /// The started server's log (empty for an external server).
    pub fn log(&self) -> String {
        self.dir
            .as_ref()
            .and_then(|d| std::fs::read_to_string(d.path().join("server.log")).ok())
            .unwrap_or_default()
    }

    /// A sample of the server process, when its pid is known; with several
    /// nodes, their counters summed (memory and CPU of the whole cluster).
    pub fn sample(&self) -> Option<ProcSample> {
        let mut samples = self.pids.iter().map(|&p| sample_pid(p));
        let first = samples.next()??;
        samples.try_fold(first, |acc, s| {
            let s = s?;
            Some(ProcSample {
                rss_kib: acc.rss_kib + s.rss_kib,
                hwm_kib: acc.hwm_kib + s.hwm_kib,
                cpu_ns: acc.cpu_ns + s.cpu_ns,
                runq_wait_ns: acc.runq_wait_ns + s.runq_wait_ns,
            })
        })
    }

    /// The write batches so far of a started Courier server (see
    /// [`crate::batches`]); `None` for other servers.
    pub async fn batches(&self) -> Option<crate::batches::Snapshot> {
        crate::batches::Snapshot::scrape(self.metrics?).await
    }

    /// The endpoint for the `i`-th client: nodes round robin.
    pub fn endpoint_for(&self, i: usize) -> &Endpoint {
        &self.endpoints[i % self.endpoints.len()]
    }

    /// The `i`-th client's source address: 127.0.0.2 … 127.0.0.(1+src_ips).
    pub fn src_ip(&self, i: usize) -> std::net::Ipv4Addr {
        let n = usize::from(self.src_ips.clamp(1, 250));
        std::net::Ipv4Addr::new(127, 0, 0, 2 + (i % n) as u8)
    }

    /// Stops a started server (SIGTERM, then kill after 10 s).
    pub async fn stop(mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                // SAFETY: signalling our own child.
                unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            }
            if tokio::time::timeout(Duration::from_secs(10), child.wait()).await.is_err() {
                let _ = child.kill().await;
            }
        }
    }
}

/// Whether a start failed because a port picked for the server was taken.
fn port_taken(e: &anyhow::Error) -> bool {
    let text = format!("{e:#}");
    PORT_TAKEN.iter().any(|m| text.contains(m))
}

fn default_server_bin() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent().map(Path::to_path_buf);
    while let Some(d) = dir {
        let bin = d.join("courier-server");
        if bin.exists() {
            return Ok(bin);
        }
        dir = d.parent().filter(|p| p.ends_with("debug") || p.ends_with("release")).map(Path::to_path_buf);
    }
    Err(anyhow!("courier-server not found next to {}; build it or pass --server-bin", exe.display()))
}

/// A server configuration for benchmarks: dev tokens, rate limits lifted.
pub fn courier_config(addr: SocketAddr, metrics: SocketAddr, data: &Path, max_connections: usize) -> String {
    format!(
        "listen = \"{addr}\"\nmetrics_listen = \"{metrics}\"\ndata_dir = \"{}\"\ndev_auth = true\nmax_connections = {max_connections}\n\
         max_unauthenticated_per_ip = {max_connections}\n\
         [limits]\nmax_frame_bytes = 65536\nmax_body_bytes = 32768\nsend_per_sec = 1000000\n\
         send_burst = 1000000\nhistory_page = 200\n",
        data.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for `courier-server`: says `message` and exits on its
    /// first `fails` starts, then listens where its config says; counts its
    /// starts in `starts`.
    fn fake_server(dir: &Path, fails: u32, message: &str) -> PathBuf {
        let bin = dir.join("fake-server");
        let starts = dir.join("starts");
        let script = format!(
            "#!/bin/sh\nn=$(($(cat {starts} 2>/dev/null || echo 0) + 1)); echo $n > {starts}\n\
             if [ $n -le {fails} ]; then echo '{message}' >&2; exit 1; fi\n\
             port=$(sed -n 's/^listen = \"127.0.0.1:\\([0-9]*\\)\"/\\1/p' \"$2\")\n\
             exec python3 -m http.server \"$port\" --bind 127.0.0.1\n",
            starts = starts.display()
        );
        std::fs::write(&bin, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        bin
    }

    fn starts(dir: &Path) -> u32 {
        std::fs::read_to_string(dir.join("starts")).unwrap().trim().parse().unwrap()
    }

    /// A port taken between its pick and the server's bind costs a retry on
    /// other ports, not the run (the issue-17 run of stop 34 lost a latency
    /// run that way).
    #[tokio::test]
    async fn a_server_whose_port_was_taken_is_started_again_on_other_ports() {
        let dir = tempfile::tempdir().unwrap();
        let taken = "courier-server: cannot listen on 127.0.0.1:44977 (--metrics-listen): \
                     the address is already in use (another server holds it)";
        let mut opts = TargetOpts::spawn(Target::Courier);
        opts.server_bin = Some(fake_server(dir.path(), 2, taken));
        let server = Server::start(&opts, 10).await.unwrap();
        assert_eq!(starts(dir.path()), 3);
        assert!(tokio::net::TcpStream::connect(server.endpoint.addr).await.is_ok());

        // Taken every time: the error comes back after the last attempt.
        let dir = tempfile::tempdir().unwrap();
        opts.server_bin = Some(fake_server(dir.path(), 99, taken));
        let e = Server::start(&opts, 10).await.err().expect("never listens");
        assert!(port_taken(&e), "{e:#}");
        assert_eq!(starts(dir.path()), START_ATTEMPTS);

        // Any other failure is not retried.
        let dir = tempfile::tempdir().unwrap();
        opts.server_bin = Some(fake_server(dir.path(), 99, "courier-server: bad config"));
        let e = Server::start(&opts, 10).await.err().expect("never listens");
        assert!(format!("{e:#}").contains("bad config"), "{e:#}");
        assert_eq!(starts(dir.path()), 1);
    }

    #[test]
    fn samples_this_process() {
        let s = sample_pid(std::process::id()).unwrap();
        assert!(s.rss_kib > 0 && s.hwm_kib >= s.rss_kib);
    }
}
