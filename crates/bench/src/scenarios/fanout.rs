//! `fanout`: one channel of M members plus one sender posting at R
//! messages per second; every message is delivered M times. Measures
//! deliveries per second, the latency to each member and to the last
//! member of each message, and server CPU per delivery.

use super::{TICK, connect_all_in, due, generator_cost, run_tag, server_cost, summarize_ramp};
use crate::stats::{Latency, Metrics, Report, now_ns, parse_text, stamp_text};
use crate::target::{Server, TargetOpts};
use crate::wire::{Client, Dest, Incoming, OnEvent, ignore_events};
use anyhow::{Context as _, anyhow};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Parameters of `fanout`.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct Args {
    /// Channel members receiving (the sender is one more).
    #[arg(long, default_value_t = 1000)]
    pub members: usize,
    /// Messages per second posted to the channel; a comma list is a ramp.
    #[arg(long, value_delimiter = ',', default_value = "100")]
    pub rate: Vec<f64>,
    /// Seconds per rate step.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Bytes of message text.
    #[arg(long, default_value_t = 100)]
    pub body_bytes: usize,
    /// Run every step even after one falls short.
    #[arg(long)]
    pub no_stop: bool,
}

struct Shared {
    delivered: AtomicU64,
    delivered_in_window: AtomicU64,
    window_end: AtomicU64,
    /// Deliveries seen per message number (the last one records `last`).
    per_msg: Vec<AtomicU32>,
    members: u32,
    each: Latency,
    last: Latency,
}

fn on_delivery(sh: &Arc<Shared>) -> OnEvent {
    let sh = sh.clone();
    Arc::new(move |ev| {
        let Incoming::Msg { text, .. } = ev else { return };
        let Some((t, no)) = parse_text(text) else { return };
        let now = now_ns();
        sh.each.record_ns(now.saturating_sub(t));
        sh.delivered.fetch_add(1, Ordering::Relaxed);
        if now <= sh.window_end.load(Ordering::Relaxed) {
            sh.delivered_in_window.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(c) = sh.per_msg.get(no as usize)
            && c.fetch_add(1, Ordering::Relaxed) + 1 == sh.members
        {
            sh.last.record_ns(now.saturating_sub(t));
        }
    })
}

/// Runs the scenario.
///
/// # Errors
/// When the server cannot be started or the channel cannot be set up.
pub async fn run(opts: &TargetOpts, args: &Args) -> anyhow::Result<Report> {
    let server = Server::start(opts, args.members + 100).await?;
    let result = measure(&server, args).await;
    server.stop().await;
    result
}

async fn measure(server: &Server, args: &Args) -> anyhow::Result<Report> {
    let tag = run_tag();
    let channel = format!("fan-{tag}");
    let capacity: f64 = args.rate.iter().map(|r| r * args.duration * 1.2 + 100.0).sum();
    let sh = Arc::new(Shared {
        delivered: AtomicU64::new(0),
        delivered_in_window: AtomicU64::new(0),
        window_end: AtomicU64::new(u64::MAX),
        per_msg: (0..capacity as usize).map(|_| AtomicU32::new(0)).collect(),
        members: args.members as u32,
        each: Latency::default(),
        last: Latency::default(),
    });
    let sender = Client::connect_in(
        &server.endpoint,
        &format!("f{tag}-sender"),
        &channel,
        server.src_ip(0),
        ignore_events(),
    )
    .await
    .context("sender")?;
    sender.create_channel(&channel).await.map_err(|e| anyhow!("create_channel: {e}"))?;
    let users: Vec<String> = (0..args.members).map(|i| format!("f{tag}-{i}")).collect();
    let (clients, _, err) = connect_all_in(server, &users, |_| channel.clone(), |_| on_delivery(&sh)).await;
    let members: Vec<Client> = clients.into_iter().flatten().collect();
    if members.len() < args.members {
        return Err(anyhow!(
            "{} of {} members connected: {}",
            members.len(),
            args.members,
            err.unwrap_or_default()
        ));
    }
    let joins = futures_util::future::join_all(members.iter().map(|c| c.join(&channel))).await;
    if let Some(Err(e)) = joins.into_iter().find(Result::is_err) {
        return Err(anyhow!("join: {e}"));
    }
    // Warm-up message 0 reaches everyone before measuring.
    let _ =
        sender.send_text(Dest::Channel(&channel), &format!("w{tag}"), &stamp_text(0, args.body_bytes)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while sh.delivered.load(Ordering::Relaxed) < args.members as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let sender = Arc::new(sender);
    let mut steps = Vec::new();
    let mut notes = Vec::new();
    let mut best = 0.0f64;
    let mut next_no = 1u64;
    for &rate in &args.rate {
        let (m, kept_up) = step(server, args, &sh, &sender, &channel, rate, &mut next_no).await;
        if kept_up {
            best = best.max(m.get("deliveries_per_s").and_then(|v| v.as_f64()).unwrap_or(0.0));
        }
        steps.push((format!("{rate}"), m));
        if !kept_up && !args.no_stop {
            notes.push(format!("stopped the ramp at {rate} msg/s: deliveries fell short"));
            break;
        }
    }
    let mut summary = Metrics::default();
    summary.put("members", args.members as u64, "");
    summary.num("max_sustained_deliveries_per_s", best, "deliveries/s");
    summarize_ramp(&mut summary, &steps);
    Ok(Report {
        scenario: "fanout",
        target: server.target.name(),
        params: json!(args),
        summary,
        steps,
        notes,
    })
}

async fn step(
    server: &Server,
    args: &Args,
    sh: &Arc<Shared>,
    sender: &Arc<Client>,
    channel: &str,
    rate: f64,
    next_no: &mut u64,
) -> (Metrics, bool) {
    sh.delivered.store(0, Ordering::Relaxed);
    sh.delivered_in_window.store(0, Ordering::Relaxed);
    sh.each.reset();
    sh.last.reset();
    let window = Duration::from_secs_f64(args.duration);
    let ack = Arc::new(Latency::default());
    let acked = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    // Scraped outside the CPU samples: the scrape is not the load's cost.
    let batches_before = server.batches().await;
    let before = server.sample();
    let gen_before = crate::target::sample_pid(std::process::id());
    let start = Instant::now();
    sh.window_end.store(now_ns() + window.as_nanos() as u64, Ordering::Relaxed);
    let mut issued = 0u64;
    let first_no = *next_no;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let elapsed = start.elapsed().min(window);
        while issued < due(rate, elapsed) {
            let no = first_no + issued;
            issued += 1;
            if no as usize >= sh.per_msg.len() {
                continue;
            }
            let (ack, acked, errors) = (ack.clone(), acked.clone(), errors.clone());
            let t0 = now_ns();
            let on_reply = Box::new(move |r: Result<&str, _>| match r {
                Ok(_) => {
                    ack.record_ns(now_ns().saturating_sub(t0));
                    acked.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            });
            let text = stamp_text(no, args.body_bytes);
            sender.send_text_then(Dest::Channel(channel), &format!("m{no}"), &text, on_reply);
        }
        if elapsed >= window {
            break;
        }
    }
    *next_no = first_no + issued;
    let expected = issued * args.members as u64;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline
        && (sh.delivered.load(Ordering::Relaxed) < expected
            || acked.load(Ordering::Relaxed) + errors.load(Ordering::Relaxed) < issued)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let wall = start.elapsed();
    let after = server.sample();
    let batches_after = server.batches().await;
    let secs = window.as_secs_f64();
    let delivered = sh.delivered.load(Ordering::Relaxed);
    let in_window = sh.delivered_in_window.load(Ordering::Relaxed);
    let target = rate * args.members as f64;
    let kept_up = in_window as f64 >= 0.95 * target * secs && delivered >= expected;
    let mut m = Metrics::default();
    m.num("target_msgs_per_s", rate, "msg/s")
        .num("target_deliveries_per_s", target, "deliveries/s")
        .num("deliveries_per_s", in_window as f64 / secs, "deliveries/s")
        .put("delivered", delivered, "")
        .put("expected", expected, "")
        .put("errors", errors.load(Ordering::Relaxed), "")
        .put("kept_up", kept_up, "")
        .latency("ack", &ack.summary())
        .latency("deliver", &sh.each.summary())
        .latency("last_member", &sh.last.summary());
    server_cost(&mut m, before, after, wall, delivered, "server_cpu_us_per_delivery");
    crate::batches::record(&mut m, batches_before.as_ref(), batches_after.as_ref());
    generator_cost(&mut m, gen_before, wall, delivered, "generator_cpu_us_per_delivery");
    m.num("machine_load_1m", super::loadavg(), "");
    (m, kept_up)
}
