//! A scriptable fault-injecting TCP proxy for weak-network tests.
//!
//! It sits between clients and a server (it knows nothing about WebSocket:
//! it moves bytes) and can, per direction and per connection:
//!
//! - add **latency with jitter** through a delay line (chunks keep their
//!   order and overlap in flight, like a real link, so latency does not cap
//!   throughput),
//! - cap **bandwidth** (bytes per second, each direction of each connection),
//! - emulate **loss** the way TCP shows it to applications: a chunk that is
//!   "lost" arrives late (a retransmission stall) and holds back everything
//!   behind it (`stall`),
//! - **reset** connections at random (per chunk) or after a random lifetime
//!   (a flapping link), with a real RST,
//! - **blackhole** the link: bytes stop moving, nothing is closed, new
//!   connections are accepted but never reach the server (until healed,
//!   when held bytes flow again, as TCP retransmission would deliver them),
//! - **half-close** live connections: the server sees end-of-stream while
//!   the client sees nothing at all (a half-open link only heartbeats can
//!   detect),
//! - **split** every chunk into pieces of 1..=n bytes written separately, so
//!   WebSocket frames (and their headers) arrive cut at odd boundaries.
//!
//! Faults are changed at any time with [`Proxy::set_faults`] (live
//! connections pick them up per chunk), so a test scripts a scenario
//! (degrade, flap, heal) and checks invariants once the link is healed.
//! [`Stats`] counts what was injected, so a test can show faults happened.
//! Everything is seeded: a scenario replays the same fault draws.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;

/// What goes wrong. All ranges are inclusive `(min, max)`; zeros mean off.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// One-way delay added to every chunk (ms); the spread is the jitter.
    pub latency_ms: (u64, u64),
    /// Bytes per second per direction per connection; 0 for unlimited.
    pub bandwidth_bps: u64,
    /// Probability that a chunk is "lost" and only arrives after a stall.
    pub stall: f64,
    /// Length of such a stall (ms).
    pub stall_ms: (u64, u64),
    /// Probability that a chunk resets its connection instead.
    pub reset: f64,
    /// Lifetime of a connection before it is reset (ms); `(0, 0)`: forever.
    /// Drawn per connection: `(1000, 5000)` is a link flapping every 1–5 s.
    pub life_ms: (u64, u64),
    /// Bytes stop moving (and new connections hang) while set.
    pub blackhole: bool,
    /// Write each chunk as pieces of at most this many bytes (0: whole).
    pub split_max: usize,
}

impl Faults {
    /// A healthy link.
    pub fn none() -> Faults {
        Faults::default()
    }

    /// A 3G-like link: `rtt_ms` round trip with ±20 % jitter, `bps` cap, and
    /// `loss` of chunks stalled 200–1000 ms (a retransmission as TCP shows it).
    pub fn mobile(rtt_ms: u64, bps: u64, loss: f64) -> Faults {
        let one_way = rtt_ms / 2;
        Faults {
            latency_ms: (one_way * 8 / 10, one_way * 12 / 10),
            bandwidth_bps: bps,
            stall: loss,
            stall_ms: (200, 1000),
            ..Faults::default()
        }
    }

    /// A link that drops every connection after 1–5 s (`min_ms..=max_ms`).
    pub fn flapping(min_ms: u64, max_ms: u64) -> Faults {
        Faults { life_ms: (min_ms, max_ms), ..Faults::default() }
    }
}

/// Counters of what the proxy did.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Connections reset (random, lifetime or [`Proxy::reset_all`]).
    pub resets: AtomicU64,
    /// Chunks held back by an emulated loss.
    pub stalls: AtomicU64,
    /// Connections half-closed by [`Proxy::half_close_all`].
    pub half_closes: AtomicU64,
    /// Chunks written in more than one piece.
    pub splits: AtomicU64,
    /// Bytes forwarded client → server.
    pub bytes_up: AtomicU64,
    /// Bytes forwarded server → client.
    pub bytes_down: AtomicU64,
}

impl Stats {
    /// A one-line summary for test output.
    pub fn summary(&self) -> String {
        format!(
            "connections={} resets={} stalls={} half_closes={} splits={} bytes_up={} bytes_down={}",
            self.connections.load(Ordering::Relaxed),
            self.resets.load(Ordering::Relaxed),
            self.stalls.load(Ordering::Relaxed),
            self.half_closes.load(Ordering::Relaxed),
            self.splits.load(Ordering::Relaxed),
            self.bytes_up.load(Ordering::Relaxed),
            self.bytes_down.load(Ordering::Relaxed),
        )
    }
}

/// One-off actions on every live connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    Reset,
    HalfClose,
}

/// A running proxy; dropping it stops accepting (live connections end
/// when their peers go).
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// What was injected so far.
    pub stats: Arc<Stats>,
    faults: watch::Sender<Faults>,
    upstream: Arc<Mutex<SocketAddr>>,
    commands: broadcast::Sender<Command>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on a loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr, faults: Faults, seed: u64) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = watch::channel(faults);
        let (commands, _) = broadcast::channel(16);
        let stats = Arc::new(Stats::default());
        let upstream = Arc::new(Mutex::new(upstream));
        let (st, up, cmds) = (stats.clone(), upstream.clone(), commands.clone());
        let task = tokio::spawn(async move {
            let mut n = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            loop {
                let Ok((client, _)) = listener.accept().await else { return };
                n = n.wrapping_add(1);
                st.connections.fetch_add(1, Ordering::Relaxed);
                let target = *up.lock().unwrap();
                tokio::spawn(serve(client, target, rx.clone(), st.clone(), cmds.subscribe(), n));
            }
        });
        Proxy { addr, stats, faults: tx, upstream, commands, task }
    }

    /// Replaces the faults; live connections pick them up per chunk.
    pub fn set_faults(&self, f: Faults) {
        self.faults.send_replace(f);
    }

    /// Heals the link (no faults).
    pub fn heal(&self) {
        self.set_faults(Faults::none());
    }

    /// Points new connections at another server address (a restarted
    /// server on a new port).
    pub fn set_upstream(&self, upstream: SocketAddr) {
        *self.upstream.lock().unwrap() = upstream;
    }

    /// Resets every live connection now.
    pub fn reset_all(&self) {
        let _ = self.commands.send(Command::Reset);
    }

    /// Half-closes every live connection: the server side gets end of
    /// stream, the client side stays open and hears nothing more.
    pub fn half_close_all(&self) {
        let _ = self.commands.send(Command::HalfClose);
    }

    /// `ws://<proxy>` for clients.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[allow(deprecated)]
fn set_linger_zero(s: &TcpStream) {
    // Closing a socket with linger 0 sends RST instead of FIN.
    let _ = s.set_linger(Some(Duration::ZERO));
}

fn draw(rng: &mut StdRng, (lo, hi): (u64, u64)) -> u64 {
    if hi <= lo { lo } else { rng.random_range(lo..=hi) }
}

/// Waits until the flag is set (forever if its sender is gone).
async fn raised(flag: &mut watch::Receiver<bool>) {
    if flag.wait_for(|v| *v).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// How one direction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// End of stream was passed on (or swallowed by a half-close).
    Eof,
    /// A fault reset the connection, or a socket failed.
    Reset,
}

async fn serve(
    client: TcpStream,
    upstream: SocketAddr,
    mut faults: watch::Receiver<Faults>,
    stats: Arc<Stats>,
    mut commands: broadcast::Receiver<Command>,
    seed: u64,
) {
    // A blackholed link does not even complete the server leg.
    while faults.borrow().blackhole {
        if faults.changed().await.is_err() {
            return;
        }
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        set_linger_zero(&client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let mut rng = StdRng::seed_from_u64(seed);
    let life = draw(&mut rng, faults.borrow().life_ms);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let (kill_tx, kill_rx) = watch::channel(false);
    let (half_tx, half_rx) = watch::channel(false);
    let up = direction(
        cr,
        sw,
        faults.clone(),
        stats.clone(),
        seed.wrapping_mul(2),
        true,
        half_rx.clone(),
        kill_rx.clone(),
    );
    let down =
        direction(sr, cw, faults.clone(), stats.clone(), seed.wrapping_mul(2) + 1, false, half_rx, kill_rx);
    tokio::pin!(up, down);
    let lifetime = async {
        if life == 0 {
            std::future::pending::<()>().await
        } else {
            tokio::time::sleep(Duration::from_millis(life)).await
        }
    };
    tokio::pin!(lifetime);
    let (mut up_end, mut down_end) = (None, None);
    let mut commands_open = true;
    while up_end.is_none() || down_end.is_none() {
        tokio::select! {
            r = &mut up, if up_end.is_none() => {
                up_end = Some(r);
                // A reset, or the client leaving a half-closed connection,
                // ends the whole thing.
                if r == End::Reset || *half_tx.borrow() { let _ = kill_tx.send(true); }
            }
            r = &mut down, if down_end.is_none() => {
                down_end = Some(r);
                if r == End::Reset { let _ = kill_tx.send(true); }
            }
            _ = &mut lifetime, if !*kill_tx.borrow() => {
                stats.resets.fetch_add(1, Ordering::Relaxed);
                let _ = kill_tx.send(true);
            }
            c = commands.recv(), if commands_open => match c {
                Ok(Command::Reset) => {
                    stats.resets.fetch_add(1, Ordering::Relaxed);
                    let _ = kill_tx.send(true);
                }
                Ok(Command::HalfClose) => {
                    stats.half_closes.fetch_add(1, Ordering::Relaxed);
                    let _ = half_tx.send(true);
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => commands_open = false,
            },
        }
    }
}

/// Moves bytes one way through a delay line: a reader stamps each chunk
/// with its release time and a writer waits for it, so latency does not
/// limit throughput but order is kept.
#[allow(clippy::too_many_arguments)]
async fn direction(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    faults: watch::Receiver<Faults>,
    stats: Arc<Stats>,
    seed: u64,
    upward: bool,
    mut halted: watch::Receiver<bool>,
    mut kill: watch::Receiver<bool>,
) -> End {
    let (tx, mut rx) = mpsc::channel::<Option<(Instant, Vec<u8>)>>(64);
    let end = {
        let from = &mut from;
        let to = &mut to;
        let reader_faults = faults.clone();
        let reader_stats = stats.clone();
        let reader = async move {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut last_release = Instant::now();
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = match from.read(&mut buf).await {
                    Ok(0) => {
                        let _ = tx.send(None).await;
                        return End::Eof;
                    }
                    Err(_) => return End::Reset,
                    Ok(n) => n,
                };
                let f = reader_faults.borrow().clone();
                if f.reset > 0.0 && rng.random_bool(f.reset.min(1.0)) {
                    reader_stats.resets.fetch_add(1, Ordering::Relaxed);
                    return End::Reset;
                }
                let mut delay = draw(&mut rng, f.latency_ms);
                if f.stall > 0.0 && rng.random_bool(f.stall.min(1.0)) {
                    reader_stats.stalls.fetch_add(1, Ordering::Relaxed);
                    delay += draw(&mut rng, f.stall_ms);
                }
                // In order: never released before the chunk ahead of it.
                let release = (Instant::now() + Duration::from_millis(delay)).max(last_release);
                last_release = release;
                if tx.send(Some((release, buf[..n].to_vec()))).await.is_err() {
                    return End::Reset;
                }
            }
        };
        let writer = async move {
            let mut rng = StdRng::seed_from_u64(seed ^ 0x5555);
            let mut faults = faults;
            loop {
                let item = tokio::select! {
                    i = rx.recv() => i,
                    _ = raised(&mut halted) => None,
                };
                if *halted.borrow() {
                    // Half-closed: the server gets end of stream, the client
                    // nothing; whatever still comes is swallowed.
                    if upward {
                        let _ = to.shutdown().await;
                        while let Some(Some(_)) = rx.recv().await {}
                        return End::Eof;
                    }
                    // Toward the client: swallow everything, and keep the
                    // socket open (dropping it would send a FIN) until the
                    // client gives up and the connection is torn down.
                    while let Some(Some(_)) = rx.recv().await {}
                    std::future::pending::<()>().await;
                }
                let Some(Some((release, bytes))) = item else {
                    let _ = to.shutdown().await;
                    return End::Eof;
                };
                tokio::time::sleep_until(release).await;
                // Blackhole: hold the bytes (TCP would retransmit them later).
                while faults.borrow().blackhole {
                    if faults.changed().await.is_err() {
                        return End::Reset;
                    }
                }
                let f = faults.borrow().clone();
                let mut pieces: Vec<&[u8]> = Vec::new();
                if f.split_max > 0 && bytes.len() > 1 {
                    let mut rest = &bytes[..];
                    while !rest.is_empty() {
                        let k = rng.random_range(1..=f.split_max.min(rest.len()));
                        pieces.push(&rest[..k]);
                        rest = &rest[k..];
                    }
                    if pieces.len() > 1 {
                        stats.splits.fetch_add(1, Ordering::Relaxed);
                    }
                } else {
                    pieces.push(&bytes[..]);
                }
                for p in pieces {
                    if to.write_all(p).await.is_err() {
                        return End::Reset;
                    }
                    if f.split_max > 0 {
                        let _ = to.flush().await;
                        tokio::task::yield_now().await;
                    }
                }
                let counter = if upward { &stats.bytes_up } else { &stats.bytes_down };
                counter.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                if let Some(nanos) = (bytes.len() as u64 * 1_000_000_000).checked_div(f.bandwidth_bps) {
                    tokio::time::sleep(Duration::from_nanos(nanos)).await;
                }
            }
        };
        tokio::pin!(reader, writer);
        let mut reading = true;
        loop {
            tokio::select! {
                r = &mut reader, if reading => {
                    reading = false;
                    if r == End::Reset { break End::Reset; }
                }
                w = &mut writer => break w,
                _ = raised(&mut kill) => break End::Reset,
            }
        }
    };
    if end == End::Reset {
        set_linger_zero(from.as_ref());
        set_linger_zero(to.as_ref());
    }
    end
}
