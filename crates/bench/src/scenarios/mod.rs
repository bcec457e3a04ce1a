//! The scenarios, one module each, and what they share: opening many
//! sessions at once, pacing an open-loop send rate, and server cost
//! figures from two process samples.

pub mod connect;
pub mod fanout;
pub mod mixed;
pub mod p2p;
pub mod pipeline;
pub mod storm;

use crate::stats::{Latency, Metrics};
use crate::target::{ProcSample, Server};
use crate::wire::{Client, OnEvent};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Sessions opened concurrently while connecting many clients.
pub const CONNECT_CONCURRENCY: usize = 256;

/// Opens one session per user, `CONNECT_CONCURRENCY` at a time. Returns the
/// clients that connected (in user order, `None` for failures), the
/// connect latencies and the first error seen.
pub async fn connect_all(
    server: &Server,
    users: &[String],
    on_event: impl Fn(usize) -> OnEvent,
) -> (Vec<Option<Client>>, Arc<Latency>, Option<String>) {
    connect_all_in(server, users, |i| users[i].clone(), on_event).await
}

/// Like [`connect_all`], with user `i` in the raw relay's group `group(i)`
/// (the connections its frames are forwarded to).
pub async fn connect_all_in(
    server: &Server,
    users: &[String],
    group: impl Fn(usize) -> String,
    on_event: impl Fn(usize) -> OnEvent,
) -> (Vec<Option<Client>>, Arc<Latency>, Option<String>) {
    let lat = Arc::new(Latency::default());
    let mut results: Vec<(usize, anyhow::Result<Client>)> =
        futures_util::stream::iter(users.iter().enumerate())
            .map(|(i, u)| {
                let (ep, lat, ev, src, group) =
                    (server.endpoint_for(i).clone(), lat.clone(), on_event(i), server.src_ip(i), group(i));
                async move {
                    let t0 = Instant::now();
                    let r = Client::connect_in(&ep, u, &group, src, ev).await;
                    if r.is_ok() {
                        lat.record(t0.elapsed());
                    }
                    (i, r)
                }
            })
            .buffer_unordered(CONNECT_CONCURRENCY)
            .collect()
            .await;
    results.sort_by_key(|(i, _)| *i);
    let mut first_err = None;
    let clients = results
        .into_iter()
        .map(|(_, r)| match r {
            Ok(c) => Some(c),
            Err(e) => {
                first_err.get_or_insert_with(|| format!("{e:#}"));
                None
            }
        })
        .collect();
    (clients, lat, first_err)
}

/// How many sends are due by `elapsed` at `rate` per second.
pub fn due(rate: f64, elapsed: Duration) -> u64 {
    due_phased(rate, elapsed, 0.0)
}

/// Like [`due`] for one of several senders sharing a rate: `phase` in
/// `[0, 1)` shifts this sender's schedule by that fraction of its interval,
/// so that n senders with phases k/n interleave evenly instead of all
/// firing at the same instants (a burst the size of the sender count).
pub fn due_phased(rate: f64, elapsed: Duration, phase: f64) -> u64 {
    (rate * elapsed.as_secs_f64() + phase).floor() as u64
}

/// Pacing tick of the open-loop senders.
pub const TICK: Duration = Duration::from_millis(2);

/// Adds the server's CPU and memory figures between two samples:
/// `server_cpu_s`, `server_cpu_util` (cores busy) and CPU µs per `per`
/// unit (`per_key`, e.g. `server_cpu_us_per_msg`).
pub fn server_cost(
    m: &mut Metrics,
    before: Option<ProcSample>,
    after: Option<ProcSample>,
    wall: Duration,
    per: u64,
    per_key: &str,
) {
    match (before, after) {
        (Some(b), Some(a)) => {
            let cpu = a.cpu_ns.saturating_sub(b.cpu_ns) as f64;
            m.num("server_cpu_s", cpu / 1e9, "s");
            m.num("server_cpu_util", cpu / wall.as_nanos().max(1) as f64, "cores");
            m.num(per_key, if per > 0 { cpu / 1e3 / per as f64 } else { f64::NAN }, "µs");
            m.put("server_rss_kib", a.rss_kib, "KiB");
            m.num("server_runq_wait_s", a.runq_wait_ns.saturating_sub(b.runq_wait_ns) as f64 / 1e9, "s");
        }
        _ => {
            m.put("server_cpu_s", serde_json::Value::Null, "s");
            m.put(per_key, serde_json::Value::Null, "µs");
        }
    }
}

/// The machine's 1-minute load average (other tenants' builds skew rates).
pub fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// The generator's own CPU use over a run (it shares the machine with the
/// server, so readers need it to judge the server's figures).
pub fn generator_cpu_util(before: Option<ProcSample>, wall: Duration) -> f64 {
    match (before, crate::target::sample_pid(std::process::id())) {
        (Some(b), Some(a)) => a.cpu_ns.saturating_sub(b.cpu_ns) as f64 / wall.as_nanos().max(1) as f64,
        _ => f64::NAN,
    }
}

/// The generator's own CPU time since `before`, in µs per `per` unit of
/// work, under `per_key` (e.g. `generator_cpu_us_per_msg`); also
/// `generator_cpu_util` over `wall` and the frames it had to parse in full.
pub fn generator_cost(m: &mut Metrics, before: Option<ProcSample>, wall: Duration, per: u64, per_key: &str) {
    let cpu = match (before, crate::target::sample_pid(std::process::id())) {
        (Some(b), Some(a)) => a.cpu_ns.saturating_sub(b.cpu_ns) as f64,
        _ => f64::NAN,
    };
    m.num("generator_cpu_util", cpu / wall.as_nanos().max(1) as f64, "cores");
    m.num(per_key, if per > 0 { cpu / 1e3 / per as f64 } else { f64::NAN }, "µs");
    m.put("generator_slow_parses", crate::wire::SLOW_PARSES.load(std::sync::atomic::Ordering::Relaxed), "");
}

/// A fresh name suffix so repeated runs against one server do not collide.
pub fn run_tag() -> String {
    format!("{:06x}", rand::random::<u32>() & 0xff_ffff)
}

/// Fills a ramp's summary from its steps: the figures of the last step that
/// kept up (the sustained rate), or of the last step when none did.
pub fn summarize_ramp(summary: &mut Metrics, steps: &[(String, Metrics)]) {
    let kept_up = |m: &Metrics| m.get("kept_up") == Some(&serde_json::json!(true));
    if let Some((_, last_ok)) = steps.iter().rev().find(|(_, m)| kept_up(m)) {
        summary.0.extend(last_ok.0.iter().filter(|x| x.key != "kept_up").cloned());
    } else if let Some((_, last)) = steps.last() {
        summary.0.extend(last.0.iter().cloned());
    }
}

/// How much longer than its set duration a busy-disk window waits for
/// the writer to finish.
pub const BUSY_DISK_GRACE: Duration = Duration::from_secs(60);

/// Another process writing heavily to the server's disk while a window is
/// measured: `dd if=/dev/zero of=<file> bs=1M count=<mib> conv=fsync` on
/// the filesystem of the server's data (or this machine's temp folder for
/// a server the harness did not start). The append floor runs the same
/// writer beside its own database (`append-floor --busy-disk-mib`), so a
/// server's latency on a busy disk can be read against the disk's own.
pub struct BusyDisk {
    child: Option<std::process::Child>,
    file: std::path::PathBuf,
    started: Instant,
}

impl BusyDisk {
    /// Starts the writer on the server's disk.
    pub fn start(server: &Server, mib: u64) -> BusyDisk {
        BusyDisk::start_in(&server.data_dir().unwrap_or_else(std::env::temp_dir), mib)
    }

    /// Starts the writer in `dir`.
    pub fn start_in(dir: &std::path::Path, mib: u64) -> BusyDisk {
        let file = dir.join(format!("busy-disk-{}.bin", run_tag()));
        let child = std::process::Command::new("dd")
            .arg("if=/dev/zero")
            .arg(format!("of={}", file.display()))
            .arg("bs=1M")
            .arg(format!("count={mib}"))
            .arg("conv=fsync")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok();
        BusyDisk { child, file, started: Instant::now() }
    }

    /// Whether the writer is done (its final fsync returned).
    pub fn finished(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    /// Whether a busy-disk window that has run `elapsed` (at least its
    /// set duration) stays open: until the writer is done, so that every
    /// such window, the append floor's and each server's, holds the
    /// writer's final flush (on a fast disk `dd` may still be filling the
    /// page cache when a fixed window ends, and the flush is the part that
    /// stalls other fsyncs), but at most [`BUSY_DISK_GRACE`] longer.
    pub fn holds_window(&mut self, elapsed: Duration, duration: Duration) -> bool {
        elapsed < duration + BUSY_DISK_GRACE && self.child.is_some() && !self.finished()
    }

    /// Stops the writer (if it is still going) and removes its file;
    /// records how much it wrote and whether it finished (its fsync
    /// returned) within the window.
    pub fn stop(mut self, m: &mut Metrics) {
        let finished_s = match self.child.as_mut() {
            Some(c) => match c.try_wait() {
                Ok(Some(_)) => Some(self.started.elapsed().as_secs_f64()),
                _ => None,
            },
            None => None,
        };
        let started = self.child.is_some();
        self.end();
        let written = std::fs::metadata(&self.file).map_or(0, |md| md.len() >> 20);
        let _ = std::fs::remove_file(&self.file);
        m.put("busy_disk_started", started, "").put("busy_disk_written_mib", written, "MiB").put(
            "busy_disk_finished",
            finished_s.is_some(),
            "",
        );
    }

    /// Kills the writer if it still runs and reaps it.
    fn end(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for BusyDisk {
    /// A measurement that fails half-way must not leave `dd` filling the disk.
    fn drop(&mut self) {
        if self.child.is_some() {
            self.end();
            let _ = std::fs::remove_file(&self.file);
        }
    }
}
