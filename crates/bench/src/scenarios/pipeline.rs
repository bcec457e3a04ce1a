//! `pipeline`: one session pipelining its sends, as a bot or a bridge
//! does. One sender sends to one receiver at an open-loop rate without
//! waiting for each ok, so the rate that connection reaches is bounded by
//! how the server treats a session's queued requests, not by a round trip.
//! Checks that the oks come back in send order and that the seqs they carry
//! rise in send order (the order a client relies on); counts every
//! violation.

use super::{TICK, connect_all_in, due, generator_cost, run_tag, server_cost, summarize_ramp};
use crate::frames::u64_after;
use crate::stats::{Latency, Metrics, Report, now_ns, parse_text, stamp_text};
use crate::target::{Server, TargetOpts};
use crate::wire::{Client, Dest, Incoming, OnEvent};
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Parameters of `pipeline`.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct Args {
    /// Messages per second from the one session; a comma list is a ramp.
    #[arg(long, value_delimiter = ',', default_value = "500,1000,2000,4000")]
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

/// What the oks said about order, in send order.
#[derive(Default)]
struct Order {
    /// Send number of the last ok seen.
    last_no: Option<u64>,
    /// Highest seq carried by an ok so far.
    max_seq: u64,
    oks_out_of_order: u64,
    seqs_out_of_order: u64,
}

struct Shared {
    acked: AtomicU64,
    acked_in_window: AtomicU64,
    errors: AtomicU64,
    delivered: AtomicU64,
    window_end: AtomicU64,
    order: Mutex<Order>,
    ack: Latency,
    deliver: Latency,
}

/// Runs the scenario.
///
/// # Errors
/// When the server cannot be started or the two sessions cannot connect.
pub async fn run(opts: &TargetOpts, args: &Args) -> anyhow::Result<Report> {
    let server = Server::start(opts, 100).await?;
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
            sh.delivered.fetch_add(1, Ordering::Relaxed);
        }
    })
}

async fn measure(server: &Server, args: &Args) -> anyhow::Result<Report> {
    let tag = run_tag();
    let sh = Arc::new(Shared {
        acked: AtomicU64::new(0),
        acked_in_window: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        window_end: AtomicU64::new(u64::MAX),
        order: Mutex::new(Order::default()),
        ack: Latency::default(),
        deliver: Latency::default(),
    });
    let users = vec![format!("q{tag}-bot"), format!("q{tag}-peer")];
    let (clients, _, err) = connect_all_in(server, &users, |_| format!("q{tag}"), |_| on_delivery(&sh)).await;
    let mut clients = clients.into_iter();
    let (Some(Some(sender)), Some(Some(_receiver))) = (clients.next(), clients.next()) else {
        anyhow::bail!("the two sessions did not connect: {}", err.unwrap_or_default());
    };
    let _ = sender.send_text(Dest::User(&users[1]), &format!("w{tag}"), "warm-up").await;
    let mut steps = Vec::new();
    let mut notes = Vec::new();
    let mut best = 0.0f64;
    let mut next_no = 0u64;
    for &rate in &args.rate {
        let (m, kept_up) = step(server, args, &sh, &sender, &users[1], rate, &mut next_no).await;
        if kept_up {
            best = best.max(m.get("acked_per_s").and_then(|v| v.as_f64()).unwrap_or(0.0));
        }
        steps.push((format!("{rate}"), m));
        if !kept_up && !args.no_stop {
            notes.push(format!("stopped the ramp at {rate}/s: the session did not keep up"));
            break;
        }
    }
    let order = sh.order.lock().expect("order lock");
    let mut summary = Metrics::default();
    summary.num("max_sustained_acked_per_s", best, "msg/s");
    summary.put("in_order", order.oks_out_of_order == 0 && order.seqs_out_of_order == 0, "");
    summarize_ramp(&mut summary, &steps);
    Ok(Report {
        scenario: "pipeline",
        target: server.target.name(),
        params: json!(args),
        summary,
        steps,
        notes,
    })
}

/// Notes one ok: send number `no`, the seq it carries (0: none, as from
/// the raw relay).
fn note_order(order: &Mutex<Order>, no: u64, seq: u64) {
    let mut o = order.lock().expect("order lock");
    if o.last_no.is_some_and(|last| no < last) {
        o.oks_out_of_order += 1;
    }
    if seq > 0 {
        if seq <= o.max_seq {
            o.seqs_out_of_order += 1;
        }
        o.max_seq = o.max_seq.max(seq);
    }
    o.last_no = Some(o.last_no.map_or(no, |last| last.max(no)));
}

async fn step(
    server: &Server,
    args: &Args,
    sh: &Arc<Shared>,
    sender: &Client,
    to: &str,
    rate: f64,
    next_no: &mut u64,
) -> (Metrics, bool) {
    for a in [&sh.acked, &sh.acked_in_window, &sh.errors, &sh.delivered] {
        a.store(0, Ordering::Relaxed);
    }
    let (ooo_before, seq_before) = {
        let o = sh.order.lock().expect("order lock");
        (o.oks_out_of_order, o.seqs_out_of_order)
    };
    sh.ack.reset();
    sh.deliver.reset();
    let window = Duration::from_secs_f64(args.duration);
    // Scraped outside the CPU samples: the scrape is not the load's cost.
    let batches_before = server.batches().await;
    let before = server.sample();
    let gen_before = crate::target::sample_pid(std::process::id());
    let start = Instant::now();
    sh.window_end.store(now_ns() + window.as_nanos() as u64, Ordering::Relaxed);
    let first_no = *next_no;
    let mut issued = 0u64;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let elapsed = start.elapsed().min(window);
        while issued < due(rate, elapsed) {
            let no = first_no + issued;
            issued += 1;
            let sh2 = sh.clone();
            let t0 = now_ns();
            let on_reply = Box::new(move |r: Result<&str, _>| {
                let Ok(frame) = r else {
                    sh2.errors.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                let now = now_ns();
                sh2.ack.record_ns(now.saturating_sub(t0));
                sh2.acked.fetch_add(1, Ordering::Relaxed);
                if now <= sh2.window_end.load(Ordering::Relaxed) {
                    sh2.acked_in_window.fetch_add(1, Ordering::Relaxed);
                }
                note_order(&sh2.order, no, u64_after(frame, "\"seq\":").unwrap_or(0));
            });
            let text = stamp_text(no, args.body_bytes);
            sender.send_text_then(Dest::User(to), &format!("b{no}"), &text, on_reply);
        }
        if elapsed >= window {
            break;
        }
    }
    *next_no = first_no + issued;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline
        && (sh.acked.load(Ordering::Relaxed) + sh.errors.load(Ordering::Relaxed) < issued
            || sh.delivered.load(Ordering::Relaxed) < sh.acked.load(Ordering::Relaxed))
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let wall = start.elapsed();
    let after = server.sample();
    let batches_after = server.batches().await;
    let secs = window.as_secs_f64();
    let in_window = sh.acked_in_window.load(Ordering::Relaxed);
    let acked = sh.acked.load(Ordering::Relaxed);
    let (ooo, seq_ooo) = {
        let o = sh.order.lock().expect("order lock");
        (o.oks_out_of_order - ooo_before, o.seqs_out_of_order - seq_before)
    };
    let kept_up = in_window as f64 >= 0.95 * rate * secs;
    let mut m = Metrics::default();
    m.num("target_per_s", rate, "msg/s")
        .num("acked_per_s", in_window as f64 / secs, "msg/s")
        .put("issued", issued, "")
        .put("acked", acked, "")
        .put("delivered", sh.delivered.load(Ordering::Relaxed), "")
        .put("errors", sh.errors.load(Ordering::Relaxed), "")
        .put("oks_out_of_order", ooo, "")
        .put("seqs_out_of_order", seq_ooo, "")
        .put("kept_up", kept_up, "")
        .latency("ack", &sh.ack.summary())
        .latency("deliver", &sh.deliver.summary());
    server_cost(&mut m, before, after, wall, acked, "server_cpu_us_per_msg");
    crate::batches::record(&mut m, batches_before.as_ref(), batches_after.as_ref());
    generator_cost(&mut m, gen_before, wall, acked, "generator_cpu_us_per_msg");
    m.num("machine_load_1m", super::loadavg(), "");
    (m, kept_up)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_violations_are_counted() {
        let o = Mutex::new(Order::default());
        for (no, seq) in [(0, 5), (1, 6), (3, 8), (2, 7), (4, 8)] {
            note_order(&o, no, seq);
        }
        let o = o.lock().unwrap();
        // ok 2 came after ok 3; seq 7 after 8, and 8 twice.
        assert_eq!((o.oks_out_of_order, o.seqs_out_of_order), (1, 2));
    }
}
