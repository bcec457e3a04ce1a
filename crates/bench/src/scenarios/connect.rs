//! `connect`: N authenticated idle sessions. Measures how fast they open
//! and what they cost the server in resident memory and CPU while idle.
//!
//! Memory per session is `(RSS with N sessions − RSS before the first) / N`,
//! sampled after the sessions have settled, so allocator slack and the
//! store's caches warmed by sign-in are included, as they would be in
//! production.

use super::{connect_all, generator_cpu_util, run_tag};
use crate::stats::{Metrics, Report};
use crate::target::{Server, TargetOpts};
use crate::wire::ignore_events;
use serde_json::json;
use std::time::{Duration, Instant};

/// Parameters of `connect`.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct Args {
    /// Sessions to open.
    #[arg(long, default_value_t = 1000)]
    pub n: usize,
    /// Seconds to hold the idle sessions (idle CPU is measured over it).
    #[arg(long, default_value_t = 5.0)]
    pub hold: f64,
}

/// Runs the scenario.
///
/// # Errors
/// When the server cannot be started.
pub async fn run(opts: &TargetOpts, args: &Args) -> anyhow::Result<Report> {
    let server = Server::start(opts, args.n + 100).await?;
    let result = measure(&server, args).await;
    server.stop().await;
    result
}

async fn measure(server: &Server, args: &Args) -> anyhow::Result<Report> {
    let tag = run_tag();
    let users: Vec<String> = (0..args.n).map(|i| format!("c{tag}-{i}")).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = server.sample();
    let gen_before = crate::target::sample_pid(std::process::id());
    let t0 = Instant::now();
    let (clients, lat, err) = connect_all(server, &users, |_| ignore_events()).await;
    let connect_wall = t0.elapsed();
    let connected = clients.iter().flatten().count();
    let gen_util = generator_cpu_util(gen_before, connect_wall);
    let after_connect = server.sample();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let settled = server.sample();
    tokio::time::sleep(Duration::from_secs_f64(args.hold)).await;
    let held = server.sample();
    let alive = clients.iter().flatten().filter(|c| !c.is_closed()).count();

    let mut m = Metrics::default();
    m.put("sessions", connected as u64, "")
        .put("failed", (args.n - connected) as u64, "")
        .put("alive_after_hold", alive as u64, "")
        .num("connect_rate", connected as f64 / connect_wall.as_secs_f64(), "sessions/s")
        .latency("connect", &lat.summary())
        .num("generator_cpu_util", gen_util, "cores")
        .num("machine_load_1m", super::loadavg(), "");
    match (before, after_connect, settled, held) {
        (Some(b), Some(ac), Some(s), Some(h)) => {
            let n = connected.max(1) as f64;
            m.put("server_rss_before_kib", b.rss_kib, "KiB")
                .put("server_rss_kib", s.rss_kib, "KiB")
                .num("server_rss_per_session_kib", s.rss_kib.saturating_sub(b.rss_kib) as f64 / n, "KiB")
                .num(
                    "server_rss_per_session_bytes",
                    s.rss_kib.saturating_sub(b.rss_kib) as f64 * 1024.0 / n,
                    "B",
                )
                .put("server_peak_rss_kib", h.hwm_kib, "KiB")
                .num("server_cpu_us_per_connect", ac.cpu_ns.saturating_sub(b.cpu_ns) as f64 / 1e3 / n, "µs")
                .num(
                    "server_idle_cpu_util",
                    h.cpu_ns.saturating_sub(s.cpu_ns) as f64 / (args.hold * 1e9),
                    "cores",
                );
        }
        _ => {
            m.put("server_rss_per_session_kib", serde_json::Value::Null, "KiB");
        }
    }
    let mut notes = Vec::new();
    if let Some(e) = err {
        notes.push(format!("first connect error: {e}"));
    }
    if server.pid.is_none() {
        notes.push("no server pid: memory and CPU not measured (pass --server-pid)".into());
    }
    drop(clients);
    Ok(Report {
        scenario: "connect",
        target: server.target.name(),
        params: json!(args),
        summary: m,
        steps: Vec::new(),
        notes,
    })
}
