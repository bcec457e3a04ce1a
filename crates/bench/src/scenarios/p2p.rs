//! `p2p`: durable one-to-one messages. P sender/receiver pairs; each sender
//! sends to its receiver at an open-loop rate (R/P per second), so a server
//! that falls behind shows up as growing latency and a shortfall of acks,
//! not as a generator that politely slows down.
//!
//! Rates may be a ramp (`--rate 5000,10000,20000`): the steps reuse the same
//! sessions and the ramp stops at the first step the server does not keep
//! up with (acks in the window below 95 % of the target).
//!
//! One pacing task issues every sender's messages (a wake-up per tick, not
//! per sender), and acks are counted by a callback in the connection's
//! reader: the generator's own cost per message stays small next to the
//! server's. `--busy-disk-mib` runs `dd … conv=fsync` on the server's
//! filesystem during each window (the slow-disk case).

use super::{TICK, connect_all_in, due_phased, generator_cost, run_tag, server_cost, summarize_ramp};
use crate::stats::{Latency, Metrics, Report, now_ns, parse_text, stamp_text};
use crate::target::{Server, TargetOpts};
use crate::wire::{Client, Dest, Incoming, OnEvent};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Parameters of `p2p`.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct Args {
    /// Sender/receiver pairs.
    #[arg(long, default_value_t = 100)]
    pub pairs: usize,
    /// Target messages per second over all pairs; a comma list is a ramp.
    #[arg(long, value_delimiter = ',', default_value = "1000")]
    pub rate: Vec<f64>,
    /// Seconds per rate step.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Bytes of message text.
    #[arg(long, default_value_t = 100)]
    pub body_bytes: usize,
    /// Most unanswered sends per sender; beyond it sends are skipped and
    /// counted (the server is not keeping up).
    #[arg(long, default_value_t = 2000)]
    pub max_inflight: u64,
    /// Run every step even after one falls short.
    #[arg(long)]
    pub no_stop: bool,
    /// MiB another process (`dd if=/dev/zero … conv=fsync`) writes to the
    /// server's filesystem during each window; 0 for a quiet disk.
    #[arg(long, default_value_t = 0)]
    pub busy_disk_mib: u64,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    skipped: AtomicU64,
    acked: AtomicU64,
    acked_in_window: AtomicU64,
    errors: AtomicU64,
    delivered: AtomicU64,
    delivered_in_window: AtomicU64,
    /// `now_ns` at which the current window closes.
    window_end: AtomicU64,
}

struct Shared {
    c: Counters,
    ack: Latency,
    deliver: Latency,
}

/// Runs the scenario.
///
/// # Errors
/// When the server cannot be started or too few sessions connect.
pub async fn run(opts: &TargetOpts, args: &Args) -> anyhow::Result<Report> {
    let server = Server::start(opts, args.pairs * 2 + 100).await?;
    let result = measure(&server, args).await;
    server.stop().await;
    result
}

fn on_delivery(sh: &Arc<Shared>) -> OnEvent {
    let sh = sh.clone();
    Arc::new(move |ev| {
        if let Incoming::Msg { text, .. } = ev
            && let Some((t, _)) = parse_text(text)
        {
            sh.deliver.record_since(t);
            sh.c.delivered.fetch_add(1, Ordering::Relaxed);
            if now_ns() <= sh.c.window_end.load(Ordering::Relaxed) {
                sh.c.delivered_in_window.fetch_add(1, Ordering::Relaxed);
            }
        }
    })
}

async fn measure(server: &Server, args: &Args) -> anyhow::Result<Report> {
    let tag = run_tag();
    let sh =
        Arc::new(Shared { c: Counters::default(), ack: Latency::default(), deliver: Latency::default() });
    sh.c.window_end.store(u64::MAX, Ordering::Relaxed);
    // Users 2i send to 2i+1.
    let users: Vec<String> =
        (0..args.pairs * 2).map(|i| format!("p{tag}-{}{}", i / 2, ["a", "b"][i % 2])).collect();
    let (clients, _, err) =
        connect_all_in(server, &users, |i| format!("p{tag}-{}", i / 2), |_| on_delivery(&sh)).await;
    let mut senders = Vec::new();
    for (pair, c) in clients.chunks(2).enumerate() {
        if let [Some(_), Some(_)] = c {
            senders.push((pair, users[pair * 2 + 1].clone()));
        }
    }
    if senders.is_empty() {
        anyhow::bail!("no pair connected: {}", err.unwrap_or_default());
    }
    let clients: Vec<Option<Arc<Client>>> = clients.into_iter().map(|c| c.map(Arc::new)).collect();
    // Warm-up: one message per pair creates the conversations.
    let warm = senders.iter().map(|(pair, to)| {
        let c = clients[pair * 2].clone().expect("connected");
        c.send_text(Dest::User(to), &format!("w{tag}-{pair}"), "warm-up")
    });
    futures_util::future::join_all(warm).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut steps = Vec::new();
    let mut best_acked = 0.0f64;
    let mut notes = Vec::new();
    if let Some(e) = err {
        notes.push(format!("first connect error: {e}"));
    }
    let mut msg_no = 0u64;
    for &rate in &args.rate {
        let (m, kept_up) = step(server, args, &sh, &clients, &senders, rate, &mut msg_no).await;
        if kept_up && let Some(v) = m.get("acked_per_s").and_then(|v| v.as_f64()) {
            best_acked = best_acked.max(v);
        }
        steps.push((format!("{rate}"), m));
        if !kept_up && !args.no_stop {
            notes.push(format!("stopped the ramp at {rate}/s: the server did not keep up"));
            break;
        }
    }
    let mut summary = Metrics::default();
    summary.put("pairs", senders.len() as u64, "");
    summary.num("max_sustained_acked_per_s", best_acked, "msg/s");
    summarize_ramp(&mut summary, &steps);
    Ok(Report { scenario: "p2p", target: server.target.name(), params: json!(args), summary, steps, notes })
}

#[allow(clippy::too_many_arguments)]
async fn step(
    server: &Server,
    args: &Args,
    sh: &Arc<Shared>,
    clients: &[Option<Arc<Client>>],
    senders: &[(usize, String)],
    rate: f64,
    msg_no: &mut u64,
) -> (Metrics, bool) {
    let c = &sh.c;
    for a in
        [&c.sent, &c.skipped, &c.acked, &c.acked_in_window, &c.errors, &c.delivered, &c.delivered_in_window]
    {
        a.store(0, Ordering::Relaxed);
    }
    sh.ack.reset();
    sh.deliver.reset();
    let duration = Duration::from_secs_f64(args.duration);
    let mut window = duration;
    let n = senders.len();
    let per_sender = rate / n as f64;
    let inflight: Vec<Arc<AtomicU64>> = (0..n).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let mut issued = vec![0u64; n];
    let mut writer = (args.busy_disk_mib > 0).then(|| super::BusyDisk::start(server, args.busy_disk_mib));
    // Scraped outside the CPU samples: the scrape is not the load's cost.
    let batches_before = server.batches().await;
    let before = server.sample();
    let gen_before = crate::target::sample_pid(std::process::id());
    let start = Instant::now();
    let start_ns = now_ns();
    c.window_end.store(start_ns + window.as_nanos() as u64, Ordering::Relaxed);
    let base_no = *msg_no;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let elapsed = start.elapsed().min(window);
        for (k, (pair, to)) in senders.iter().enumerate() {
            // Evenly interleaved with the other senders (phase k/n).
            let due = due_phased(per_sender, elapsed, k as f64 / n as f64);
            let client = clients[pair * 2].as_ref().expect("connected");
            while issued[k] < due {
                issued[k] += 1;
                if inflight[k].load(Ordering::Relaxed) >= args.max_inflight {
                    c.skipped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let no = base_no + issued[k] * n as u64 + k as u64;
                let text = stamp_text(no, args.body_bytes);
                c.sent.fetch_add(1, Ordering::Relaxed);
                inflight[k].fetch_add(1, Ordering::Relaxed);
                let (sh, inflight) = (sh.clone(), inflight[k].clone());
                let t0 = now_ns();
                let on_reply = Box::new(move |r: Result<&str, _>| {
                    inflight.fetch_sub(1, Ordering::Relaxed);
                    if r.is_err() {
                        sh.c.errors.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    let now = now_ns();
                    sh.ack.record_ns(now.saturating_sub(t0));
                    sh.c.acked.fetch_add(1, Ordering::Relaxed);
                    if now <= sh.c.window_end.load(Ordering::Relaxed) {
                        sh.c.acked_in_window.fetch_add(1, Ordering::Relaxed);
                    }
                });
                client.send_text_then(Dest::User(to), &format!("m{no}-{k}"), &text, on_reply);
            }
        }
        if elapsed >= window {
            // A busy-disk window stays open, at the same rate, until the
            // writer is done (see `BusyDisk::holds_window`).
            if !writer.as_mut().is_some_and(|w| w.holds_window(start.elapsed(), duration)) {
                break;
            }
            window = start.elapsed() + TICK;
            c.window_end.store(start_ns + window.as_nanos() as u64, Ordering::Relaxed);
        }
    }
    let issued_total: u64 = issued.iter().sum();
    *msg_no = base_no + (issued_total + 1) * n as u64 + n as u64;
    // Drain: wait for outstanding acks and deliveries (at most 10 s).
    let drain_deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < drain_deadline {
        let sent = c.sent.load(Ordering::Relaxed);
        let done = c.acked.load(Ordering::Relaxed) + c.errors.load(Ordering::Relaxed);
        if done >= sent && c.delivered.load(Ordering::Relaxed) >= c.acked.load(Ordering::Relaxed) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let wall = start.elapsed();
    let after = server.sample();
    let batches_after = server.batches().await;
    let secs = window.as_secs_f64();
    let acked_in_window = c.acked_in_window.load(Ordering::Relaxed);
    let acked = c.acked.load(Ordering::Relaxed);
    let kept_up = acked_in_window as f64 >= 0.95 * rate * secs && c.skipped.load(Ordering::Relaxed) == 0;
    let mut m = Metrics::default();
    m.num("target_per_s", rate, "msg/s")
        .put("senders", n as u64, "")
        .num("sent_per_s", c.sent.load(Ordering::Relaxed) as f64 / secs, "msg/s")
        .num("acked_per_s", acked_in_window as f64 / secs, "msg/s")
        .num("delivered_per_s", c.delivered_in_window.load(Ordering::Relaxed) as f64 / secs, "msg/s")
        .put("acked", acked, "")
        .put("delivered", c.delivered.load(Ordering::Relaxed), "")
        .put("errors", c.errors.load(Ordering::Relaxed), "")
        .put("skipped", c.skipped.load(Ordering::Relaxed), "")
        .put("kept_up", kept_up, "")
        .latency("ack", &sh.ack.summary())
        .latency("deliver", &sh.deliver.summary());
    server_cost(&mut m, before, after, wall, acked, "server_cpu_us_per_msg");
    crate::batches::record(&mut m, batches_before.as_ref(), batches_after.as_ref());
    generator_cost(&mut m, gen_before, wall, acked, "generator_cpu_us_per_msg");
    if let Some(w) = writer {
        w.stop(&mut m);
    }
    m.num("machine_load_1m", super::loadavg(), "");
    (m, kept_up)
}
