//! Smoke test: every scenario runs for about a second at a tiny size
//! against an in-process Courier server and reports sane figures (work was
//! done, latencies are finite). It says nothing about speed.
//!
//! The Socket.IO comparison runs too when the peer's `node_modules` is
//! installed (`npm ci` in `bench/peers/socketio`); otherwise it is skipped
//! with a printed note. So does the peer with its SQLite store, and the
//! raw relay (in process) for the scenarios it can carry.

use courier_bench::scenarios::{connect, fanout, mixed, p2p, pipeline, storm};
use courier_bench::stats::Report;
use courier_bench::target::{Target, TargetOpts, default_peer_dir};
use courier_bench::wire::SLOW_PARSES;
use serde_json::Value;
use std::sync::atomic::Ordering;

async fn start_courier() -> (courier_server::Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let defaults = courier_server::Config::default();
    let cfg = courier_server::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("data"),
        dev_auth: true,
        limits: courier_proto::Limits { send_per_sec: 100_000, send_burst: 100_000, ..defaults.limits },
        ..defaults
    };
    let server = courier_server::Server::start(cfg).await.unwrap();
    (server, dir)
}

fn attach(server: &courier_server::Server) -> TargetOpts {
    TargetOpts {
        url: vec![server.ws_url()],
        // In-process: the "server" figures include the generator, which is
        // fine for a smoke test.
        server_pid: vec![std::process::id()],
        ..TargetOpts::spawn(Target::Courier)
    }
}

fn num(r: &Report, key: &str) -> f64 {
    match r.summary.get(key) {
        Some(Value::Number(n)) => n.as_f64().unwrap(),
        other => panic!("{key} is {other:?} in\n{}", r.to_table()),
    }
}

fn assert_positive(r: &Report, keys: &[&str]) {
    for k in keys {
        let v = num(r, k);
        assert!(v.is_finite() && v > 0.0, "{k} = {v} in\n{}", r.to_table());
    }
    // The JSON form is one object with the same figures.
    let j = r.to_json();
    assert_eq!(j["scenario"], r.scenario);
    assert!(j["summary"].is_object());
}

/// The scenarios every target carries, the raw relay included: p2p,
/// fan-out, one session pipelining. The generator's scanner must
/// recognise every reply and message (no frame parsed in full).
async fn message_scenarios(opts: &TargetOpts) {
    let args = p2p::Args {
        pairs: 3,
        rate: vec![60.0],
        duration: 1.0,
        body_bytes: 64,
        max_inflight: 1000,
        no_stop: false,
        busy_disk_mib: 0,
    };
    let r = p2p::run(opts, &args).await.unwrap();
    assert_positive(
        &r,
        &[
            "acked",
            "delivered",
            "acked_per_s",
            "ack_p99_ms",
            "deliver_p50_ms",
            "deliver_p99_ms",
            "generator_cpu_us_per_msg",
        ],
    );
    assert_eq!(num(&r, "errors"), 0.0);
    assert_eq!(num(&r, "delivered"), num(&r, "acked"), "{}", r.to_table());

    let args = fanout::Args { members: 5, rate: vec![20.0], duration: 1.0, body_bytes: 64, no_stop: false };
    let r = fanout::run(opts, &args).await.unwrap();
    assert_positive(&r, &["delivered", "deliveries_per_s", "deliver_p99_ms", "last_member_p99_ms"]);
    assert_eq!(num(&r, "delivered"), num(&r, "expected"), "{}", r.to_table());

    let args = pipeline::Args { rate: vec![100.0], duration: 1.0, body_bytes: 64, no_stop: false };
    let r = pipeline::run(opts, &args).await.unwrap();
    assert_positive(&r, &["acked", "acked_per_s", "ack_p99_ms"]);
    assert_eq!(r.summary.get("in_order"), Some(&Value::Bool(true)), "{}", r.to_table());
    assert_eq!(num(&r, "seqs_out_of_order"), 0.0, "{}", r.to_table());
    assert_eq!(SLOW_PARSES.load(Ordering::Relaxed), 0, "frames the scanner missed");
}

async fn all_scenarios(opts: &TargetOpts) {
    let r = connect::run(opts, &connect::Args { n: 20, hold: 0.2 }).await.unwrap();
    assert_eq!(num(&r, "sessions"), 20.0, "{}", r.to_table());
    assert_positive(&r, &["connect_rate", "connect_p50_ms", "connect_p99_ms"]);

    message_scenarios(opts).await;

    let r = storm::run(opts, &storm::Args { n: 10, timeout: 20.0 }).await.unwrap();
    assert_eq!(num(&r, "resynced"), 10.0, "{}", r.to_table());
    assert_positive(&r, &["time_to_all_synced_s", "resync_p50_ms"]);

    let args = mixed::Args { users: 10, channels: 2, rate: 100.0, duration: 1.0, body_bytes: 64 };
    let r = mixed::run(opts, &args).await.unwrap();
    assert_positive(&r, &["completed_ops_per_s", "msg_deliveries", "send_ack_p99_ms"]);
    assert_eq!(num(&r, "errors"), 0.0, "{}", r.to_table());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_against_courier() {
    let (server, _dir) = start_courier().await;
    all_scenarios(&attach(&server)).await;
    server.shutdown().await.unwrap();
}

fn peer_installed(module: &str) -> bool {
    let peer = default_peer_dir();
    let node_ok = std::process::Command::new("node").arg("-v").output().is_ok_and(|o| o.status.success());
    if !peer.join("node_modules").join(module).exists() || !node_ok {
        println!(
            "note: Socket.IO smoke skipped: run `npm ci` in {} (and have node) to include it",
            peer.display()
        );
        return false;
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_against_the_socketio_peer() {
    if peer_installed("socket.io") {
        all_scenarios(&TargetOpts::spawn(Target::Socketio)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_scenarios_run_against_the_durable_socketio_peer() {
    if peer_installed("better-sqlite3") {
        message_scenarios(&TargetOpts::spawn(Target::SocketioDurable)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_scenarios_run_against_the_raw_relay() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    tokio::spawn(courier_bench::relay::serve(listener));
    let opts = TargetOpts {
        url: vec![url],
        server_pid: vec![std::process::id()],
        ..TargetOpts::spawn(Target::Relay)
    };
    message_scenarios(&opts).await;
}
