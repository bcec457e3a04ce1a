//! `reconnect-storm`: N synced sessions lose their connections at the same
//! instant (the generator drops every socket, as a network blip would) and
//! come back with the Courier client's own back-off (`courier-client`'s
//! [`Backoff`]: 0.5 s doubling to 30 s, equal jitter), each doing what a
//! client does on reconnect: sign in, then `sync`. Measures the time until
//! every session is synced again and the server's peak memory meanwhile.

use super::{connect_all, run_tag};
use crate::stats::{Latency, Metrics, Report};
use crate::target::{Server, TargetOpts};
use crate::wire::{Client, ignore_events};
use courier_client::backoff::{Backoff, BackoffConfig, random_jitter};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Parameters of `reconnect-storm`.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct Args {
    /// Sessions dropped at once.
    #[arg(long, default_value_t = 1000)]
    pub n: usize,
    /// Give up waiting for the last session after this many seconds.
    #[arg(long, default_value_t = 120.0)]
    pub timeout: f64,
}

/// Runs the scenario.
///
/// # Errors
/// When the server cannot be started or too few sessions connect at first.
pub async fn run(opts: &TargetOpts, args: &Args) -> anyhow::Result<Report> {
    let server = Server::start(opts, args.n + 100).await?;
    let result = measure(&server, args).await;
    server.stop().await;
    result
}

async fn measure(server: &Server, args: &Args) -> anyhow::Result<Report> {
    let tag = run_tag();
    let users: Vec<String> = (0..args.n).map(|i| format!("s{tag}-{i}")).collect();
    let (clients, _, err) = connect_all(server, &users, |_| ignore_events()).await;
    let first: Vec<Client> = clients.into_iter().flatten().collect();
    if first.len() < args.n {
        anyhow::bail!("{} of {} sessions connected first: {}", first.len(), args.n, err.unwrap_or_default());
    }
    futures_util::future::join_all(first.iter().map(|c| c.sync())).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = server.sample();

    // Sample the server's memory while the storm lasts.
    let peak_rss = Arc::new(AtomicU64::new(before.map_or(0, |s| s.rss_kib)));
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (peak, on, pid) = (peak_rss.clone(), sampling.clone(), server.pid);
        tokio::spawn(async move {
            while on.load(Ordering::Relaxed) {
                if let Some(s) = pid.and_then(crate::target::sample_pid) {
                    peak.fetch_max(s.rss_kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    let attempts = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let resync = Arc::new(Latency::default());
    let t_drop = Instant::now();
    drop(first);
    let give_up = Duration::from_secs_f64(args.timeout);
    let tasks: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(i, user)| {
            let (ep, src, user) = (server.endpoint.clone(), server.src_ip(i), user.clone());
            let (attempts, failures, resync) = (attempts.clone(), failures.clone(), resync.clone());
            tokio::spawn(async move {
                let mut backoff = Backoff::new(BackoffConfig::default(), random_jitter());
                loop {
                    tokio::time::sleep(backoff.next_delay()).await;
                    if t_drop.elapsed() > give_up {
                        return None;
                    }
                    attempts.fetch_add(1, Ordering::Relaxed);
                    let synced = match Client::connect(&ep, &user, src, ignore_events()).await {
                        Ok(c) => c.sync().await.is_ok().then_some(c),
                        Err(_) => None,
                    };
                    match synced {
                        Some(c) => {
                            let took = t_drop.elapsed();
                            resync.record(took);
                            return Some((c, took));
                        }
                        None => {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    let mut back = Vec::new();
    let mut all_synced = Duration::ZERO;
    for t in tasks {
        if let Ok(Some((c, took))) = t.await {
            all_synced = all_synced.max(took);
            back.push(c);
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    let after = server.sample();

    let mut m = Metrics::default();
    m.put("sessions", args.n as u64, "")
        .put("resynced", back.len() as u64, "")
        .num("time_to_all_synced_s", all_synced.as_secs_f64(), "s")
        .latency("resync", &resync.summary())
        .put("attempts", attempts.load(Ordering::Relaxed), "")
        .put("failed_attempts", failures.load(Ordering::Relaxed), "")
        .num("machine_load_1m", super::loadavg(), "");
    match (before, after) {
        (Some(b), Some(a)) => {
            let peak = peak_rss.load(Ordering::Relaxed).max(a.rss_kib);
            m.put("server_rss_before_kib", b.rss_kib, "KiB")
                .put("server_peak_rss_kib", peak, "KiB")
                .put("server_rss_after_kib", a.rss_kib, "KiB")
                .num("server_cpu_s", a.cpu_ns.saturating_sub(b.cpu_ns) as f64 / 1e9, "s")
                .num(
                    "server_cpu_us_per_resync",
                    a.cpu_ns.saturating_sub(b.cpu_ns) as f64 / 1e3 / back.len().max(1) as f64,
                    "µs",
                );
        }
        _ => {
            m.put("server_peak_rss_kib", serde_json::Value::Null, "KiB");
        }
    }
    let mut notes = vec![
        "sessions dropped by the generator (sockets closed at once); back-off of courier-client".to_owned(),
    ];
    if back.len() < args.n {
        notes.push(format!("{} sessions not synced within {} s", args.n - back.len(), args.timeout));
    }
    Ok(Report {
        scenario: "reconnect-storm",
        target: server.target.name(),
        params: json!(args),
        summary: m,
        steps: Vec::new(),
        notes,
    })
}
