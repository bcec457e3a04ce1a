//! `mixed`: a chat-like mix at a target rate of operations per second over
//! U users in C channels: 40 % direct messages, 25 % channel messages, 15 %
//! typing, 15 % read receipts, 5 % presence watches (every user also
//! watches a few others from the start, so sign-ins fan presence out).
//! Reports whether the target held: at least 95 % of the target completed
//! inside the window, no errors.

use super::{TICK, connect_all, due, generator_cpu_util, run_tag, server_cost};
use crate::stats::{Latency, Metrics, Report, now_ns, parse_text, stamp_text};
use crate::target::{Server, TargetOpts};
use crate::wire::{Client, Dest, Incoming, OnEvent};
use rand::Rng;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Parameters of `mixed`.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct Args {
    /// Users, one session each.
    #[arg(long, default_value_t = 500)]
    pub users: usize,
    /// Channels; each user is in two.
    #[arg(long, default_value_t = 10)]
    pub channels: usize,
    /// Target operations per second.
    #[arg(long, default_value_t = 2000.0)]
    pub rate: f64,
    /// Seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Bytes of message text.
    #[arg(long, default_value_t = 100)]
    pub body_bytes: usize,
}

#[derive(Default)]
struct Shared {
    done_in_window: AtomicU64,
    done: AtomicU64,
    delivered: AtomicU64,
    other_events: AtomicU64,
    window_end: AtomicU64,
    send_ack: Latency,
    other_ack: Latency,
    deliver: Latency,
    errors: Mutex<BTreeMap<String, u64>>,
}

fn on_event(sh: &Arc<Shared>) -> OnEvent {
    let sh = sh.clone();
    Arc::new(move |ev| match ev {
        Incoming::Msg { text, .. } => {
            if let Some((t, _)) = parse_text(text) {
                sh.deliver.record_since(t);
                sh.delivered.fetch_add(1, Ordering::Relaxed);
            }
        }
        Incoming::Other => {
            sh.other_events.fetch_add(1, Ordering::Relaxed);
        }
    })
}

fn dm_conv(a: &str, b: &str) -> String {
    if a.as_bytes() <= b.as_bytes() { format!("dm:{a}:{b}") } else { format!("dm:{b}:{a}") }
}

/// Runs the scenario.
///
/// # Errors
/// When the server cannot be started or sessions cannot be set up.
pub async fn run(opts: &TargetOpts, args: &Args) -> anyhow::Result<Report> {
    let server = Server::start(opts, args.users + 100).await?;
    let result = measure(&server, args).await;
    server.stop().await;
    result
}

async fn measure(server: &Server, args: &Args) -> anyhow::Result<Report> {
    let tag = run_tag();
    let sh = Arc::new(Shared { window_end: AtomicU64::new(u64::MAX), ..Shared::default() });
    let users: Vec<String> = (0..args.users).map(|i| format!("x{tag}-{i}")).collect();
    let channels: Vec<String> = (0..args.channels.max(1)).map(|i| format!("mix-{tag}-{i}")).collect();
    let (clients, _, err) = connect_all(server, &users, |_| on_event(&sh)).await;
    if clients.iter().any(Option::is_none) {
        anyhow::bail!("not every user connected: {}", err.unwrap_or_default());
    }
    let clients: Vec<Arc<Client>> = clients.into_iter().flatten().map(Arc::new).collect();
    let nc = channels.len();
    for (i, ch) in channels.iter().enumerate() {
        clients[i % clients.len()]
            .create_channel(ch)
            .await
            .map_err(|e| anyhow::anyhow!("create_channel: {e}"))?;
    }
    let member_of = |u: usize| [u % nc, (u + 1) % nc];
    let joins = clients.iter().enumerate().flat_map(|(u, c)| member_of(u).map(|k| c.join(&channels[k])));
    futures_util::future::join_all(joins).await;
    let watches = clients.iter().enumerate().map(|(u, c)| {
        let w: Vec<String> = (1..=3).map(|d| users[(u + d) % users.len()].clone()).collect();
        c.watch(&w)
    });
    futures_util::future::join_all(watches).await;

    let window = Duration::from_secs_f64(args.duration);
    let before = server.sample();
    let gen_before = crate::target::sample_pid(std::process::id());
    let start = Instant::now();
    sh.window_end.store(now_ns() + window.as_nanos() as u64, Ordering::Relaxed);
    let mut issued = 0u64;
    let mut counts = [0u64; 5];
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut rng = rand::rng();
    loop {
        tick.tick().await;
        let elapsed = start.elapsed().min(window);
        while issued < due(args.rate, elapsed) {
            issued += 1;
            let u = rng.random_range(0..clients.len());
            let peer = (u + rng.random_range(1..clients.len().max(2))) % clients.len();
            let ch = &channels[member_of(u)[rng.random_range(0..2)]];
            let c = &clients[u];
            let roll = rng.random_range(0..100);
            let (kind, fut) = match roll {
                0..40 => {
                    let text = stamp_text(issued, args.body_bytes);
                    (0, c.send_text(Dest::User(&users[peer]), &format!("d{issued}"), &text))
                }
                40..65 => {
                    let text = stamp_text(issued, args.body_bytes);
                    (1, c.send_text(Dest::Channel(ch), &format!("c{issued}"), &text))
                }
                65..80 => {
                    let conv =
                        if roll % 2 == 0 { dm_conv(&users[u], &users[peer]) } else { format!("ch:{ch}") };
                    (2, c.typing(&conv))
                }
                80..95 => {
                    let conv =
                        if roll % 2 == 0 { dm_conv(&users[u], &users[peer]) } else { format!("ch:{ch}") };
                    (3, c.read(&conv, 1 << 40))
                }
                _ => (4, c.watch(std::slice::from_ref(&users[peer]))),
            };
            counts[kind] += 1;
            let sh = sh.clone();
            let t0 = Instant::now();
            tokio::spawn(async move {
                let r = fut.await;
                let lat = if kind <= 1 { &sh.send_ack } else { &sh.other_ack };
                match r {
                    Ok(_) => {
                        lat.record(t0.elapsed());
                        sh.done.fetch_add(1, Ordering::Relaxed);
                        if now_ns() <= sh.window_end.load(Ordering::Relaxed) {
                            sh.done_in_window.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(e) => {
                        *sh.errors.lock().expect("errors lock").entry(e.to_string()).or_default() += 1;
                    }
                }
            });
        }
        if elapsed >= window {
            break;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let errs: u64 = sh.errors.lock().expect("errors lock").values().sum();
        if sh.done.load(Ordering::Relaxed) + errs >= issued {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let wall = start.elapsed();
    let after = server.sample();
    let gen_util = generator_cpu_util(gen_before, wall);
    let secs = window.as_secs_f64();
    let in_window = sh.done_in_window.load(Ordering::Relaxed);
    let errors = sh.errors.lock().expect("errors lock").clone();
    let error_total: u64 = errors.values().sum();
    let held = in_window as f64 >= 0.95 * args.rate * secs && error_total == 0;
    let mut m = Metrics::default();
    m.num("target_ops_per_s", args.rate, "ops/s")
        .num("completed_ops_per_s", in_window as f64 / secs, "ops/s")
        .put("held", held, "")
        .put("issued", issued, "")
        .put("errors", error_total, "")
        .put("dm_sends", counts[0], "")
        .put("channel_sends", counts[1], "")
        .put("typing", counts[2], "")
        .put("reads", counts[3], "")
        .put("watches", counts[4], "")
        .put("msg_deliveries", sh.delivered.load(Ordering::Relaxed), "")
        .put("other_events", sh.other_events.load(Ordering::Relaxed), "")
        .latency("send_ack", &sh.send_ack.summary())
        .latency("other_ack", &sh.other_ack.summary())
        .latency("deliver", &sh.deliver.summary());
    server_cost(&mut m, before, after, wall, sh.done.load(Ordering::Relaxed), "server_cpu_us_per_op");
    m.num("generator_cpu_util", gen_util, "cores").num("machine_load_1m", super::loadavg(), "");
    let mut notes: Vec<String> = errors.iter().map(|(k, v)| format!("{v} × {k}")).collect();
    if let Some(e) = err {
        notes.push(e);
    }
    Ok(Report {
        scenario: "mixed",
        target: server.target.name(),
        params: json!(args),
        summary: m,
        steps: Vec::new(),
        notes,
    })
}
