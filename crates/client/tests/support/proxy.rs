//! A fault-injecting TCP proxy for weak-network tests: added latency,
//! stalls that keep the connection open but move no bytes (a half-open
//! link), and abrupt resets (RST). Faults can be changed at any time,
//! e.g. healed at the end of a test.

#![allow(dead_code)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What goes wrong, per forwarded chunk (one `read` of up to 16 KiB).
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Probability that a chunk resets the whole connection instead.
    pub reset: f64,
    /// Probability that a chunk is held back for a stall.
    pub stall: f64,
    /// Stall length range (ms); stalls longer than the peers' liveness
    /// bound make them declare the link dead.
    pub stall_ms: (u64, u64),
    /// Added delay per chunk range (ms).
    pub latency_ms: (u64, u64),
    /// Mean lifetime of a connection before an unprovoked reset (ms); 0
    /// for none.
    pub mean_life_ms: u64,
}

/// Counters of injected faults, so a test can show the faults happened.
#[derive(Debug, Default)]
pub struct Stats {
    pub connections: AtomicU64,
    pub resets: AtomicU64,
    pub stalls: AtomicU64,
}

/// A running proxy.
pub struct Proxy {
    pub addr: SocketAddr,
    faults: watch::Sender<Faults>,
    pub stats: Arc<Stats>,
    seed: Arc<Mutex<u64>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on a loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr, faults: Faults, seed: u64) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = watch::channel(faults);
        let stats = Arc::new(Stats::default());
        let seed = Arc::new(Mutex::new(seed));
        let (st, sd) = (stats.clone(), seed.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let n = {
                    let mut s = sd.lock().unwrap();
                    *s += 1;
                    *s
                };
                st.connections.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(serve(client, upstream, rx.clone(), st.clone(), n));
            }
        });
        Proxy { addr, faults: tx, stats, seed, task }
    }

    /// Replaces the faults (existing connections pick them up per chunk).
    pub fn set_faults(&self, f: Faults) {
        self.faults.send_replace(f);
    }

    /// The URL clients use to go through the proxy.
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
fn rst(s: &TcpStream) {
    let _ = s.set_linger(Some(Duration::ZERO));
}

async fn serve(
    client: TcpStream,
    upstream: SocketAddr,
    faults: watch::Receiver<Faults>,
    stats: Arc<Stats>,
    seed: u64,
) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    rst(&client);
    rst(&server);
    let life = {
        let f = faults.borrow().clone();
        if f.mean_life_ms == 0 {
            None
        } else {
            let mut rng = StdRng::seed_from_u64(seed);
            let u: f64 = rng.random_range(0.0001..1.0);
            Some(Duration::from_millis((-(u.ln()) * f.mean_life_ms as f64) as u64))
        }
    };
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let up = pump(cr, sw, faults.clone(), stats.clone(), seed * 2);
    let down = pump(sr, cw, faults, stats.clone(), seed * 2 + 1);
    let lifetime = async {
        match life {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    // The first direction to end (or reset) ends both: dropping the halves
    // with linger 0 sends RST to both peers.
    tokio::select! {
        _ = up => {}
        _ = down => {}
        _ = lifetime => { stats.resets.fetch_add(1, Ordering::Relaxed); }
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    faults: watch::Receiver<Faults>,
    stats: Arc<Stats>,
    seed: u64,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let f = faults.borrow().clone();
        if f.reset > 0.0 && rng.random_bool(f.reset.min(1.0)) {
            stats.resets.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if f.stall > 0.0 && rng.random_bool(f.stall.min(1.0)) {
            stats.stalls.fetch_add(1, Ordering::Relaxed);
            let ms = rng.random_range(f.stall_ms.0..=f.stall_ms.1.max(f.stall_ms.0));
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if f.latency_ms.1 > 0 {
            let ms = rng.random_range(f.latency_ms.0..=f.latency_ms.1);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
