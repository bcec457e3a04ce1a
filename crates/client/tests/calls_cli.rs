//! Real calls between `courier-cli` processes (`call`, `answer-calls`)
//! through a courier-server started here: what each side hears (dominant
//! frequency and level of the other's tone), video frame rate, a relay-only
//! call through coturn, a call across two cluster nodes, the call records
//! in both histories, and the exit codes of declined, unanswered and
//! server-less calls.
//!
//! Every case runs in a network namespace it creates (see `netns`); the
//! WAV analysis has its own tests at the bottom.

mod calls_support;

use calls_support::netns::{TURN_IP, isolated};
use calls_support::peers::{Coturn, Node, call_record, cli, run, spawn};
use calls_support::tone::{self, assert_hears};
use serde_json::Value;
use std::path::Path;

/// What `answer-calls` prints once it listens.
const READY: &str = "waiting for calls";

/// One call: bob answers (tone 660 Hz, recording), alice calls (tone
/// 440 Hz, recording) for `secs`; both must exit 0. Returns both reports.
async fn tone_call(
    (alice_url, bob_url): (&str, &str),
    dir: &Path,
    secs: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (Value, Value) {
    let (a, b) = (dir.join("alice"), dir.join("bob"));
    let (a_wav, b_wav) = (dir.join("alice-heard.wav"), dir.join("bob-heard.wav"));
    let mut bob_cmd = cli(bob_url, "bob", &b);
    let mut alice_cmd = cli(alice_url, "alice", &a);
    for (k, v) in env {
        bob_cmd.env(k, v);
        alice_cmd.env(k, v);
    }
    let b_wav_s = b_wav.to_str().unwrap();
    let bob_args =
        ["answer-calls", "--accept", "--tone", "660", "--record", b_wav_s, "--for", "60", "--json"];
    let bob = spawn("bob", bob_cmd, &bob_args, Some(READY)).await;
    let mut args =
        vec!["call", "@bob", "--tone", "440", "--record", a_wav.to_str().unwrap(), "--for", secs, "--json"];
    args.extend_from_slice(extra);
    let alice = run("alice", alice_cmd, &args).await;
    let bob = bob.done().await;
    assert_eq!(alice.code, 0, "the caller's call connected: {alice:?}");
    assert_eq!(bob.code, 0, "the callee's call connected: {bob:?}");
    let (ra, rb) = (alice.report(), bob.report());
    assert_eq!(ra["outcome"], "connected", "{ra}");
    assert_eq!(rb["outcome"], "connected", "{rb}");
    assert_eq!(ra["iid"], rb["iid"]);
    assert_eq!(ra["end_reason"], "hangup");
    assert_eq!(rb["ended_by_peer"], true, "the caller hung up after --for: {rb}");
    for r in [&ra, &rb] {
        assert!(r["packets_received"].as_u64() > Some(0) && r["bytes_sent"].as_u64() > Some(0), "{r}");
    }
    assert_hears(&a_wav, 660.0, "alice");
    assert_hears(&b_wav, 440.0, "bob");
    (ra, rb)
}

/// Both histories hold the caller's `completed` record of the call.
async fn assert_records(alice_url: &str, bob_url: &str, dir: &Path, report: &Value) {
    let iid = report["iid"].as_str().unwrap();
    for (url, user, peer) in [(alice_url, "alice", "bob"), (bob_url, "bob", "alice")] {
        let m = call_record(url, user, &dir.join(user), peer, iid).await;
        assert_eq!(m["from"], "alice", "{m}");
        assert_eq!(m["body"]["outcome"], "completed", "{m}");
        assert_eq!(m["body"]["video"], report["video"], "{m}");
        assert!(m["body"]["duration_s"].as_u64() >= Some(1), "{m}");
    }
}

#[test]
fn two_cli_peers_hear_each_others_tone_and_both_histories_show_the_call() {
    isolated("two_cli_peers_hear_each_others_tone_and_both_histories_show_the_call", || async {
        let node = Node::start(|_| {}).await;
        let dir = tempfile::tempdir().unwrap();
        let url = node.url();
        let (ra, rb) = tone_call((&url, &url), dir.path(), "5", &[], &[]).await;
        assert_eq!(ra["candidate_type"], "host", "nothing but host candidates exist here: {ra}");
        assert!(ra["rtt_ms"].as_f64().is_some(), "{ra}");
        assert!(rb["audio_level_dbfs"].as_f64() > Some(-40.0), "bob heard alice: {rb}");
        assert_eq!(ra["video_frames_decoded"], 0);
        assert_records(&url, &url, dir.path(), &ra).await;
        eprintln!(
            "measured: accept→first audio {} ms (caller) / {} ms (callee); CPU {} ms / {} ms over {} s; \
             {} B/s received by the caller",
            ra["accept_to_first_audio_ms"],
            rb["accept_to_first_audio_ms"],
            ra["cpu_ms"],
            rb["cpu_ms"],
            ra["duration_s"],
            ra["bytes_received_per_s"]
        );
        node.server.shutdown().await.unwrap();
    });
}

#[test]
fn video_calls_decode_at_least_15_frames_a_second_each_way() {
    isolated("video_calls_decode_at_least_15_frames_a_second_each_way", || async {
        let node = Node::start(|_| {}).await;
        let dir = tempfile::tempdir().unwrap();
        let url = node.url();
        let (ra, rb) = tone_call((&url, &url), dir.path(), "8", &["--video"], &[]).await;
        for (who, r) in [("alice", &ra), ("bob", &rb)] {
            assert_eq!(r["video"], true, "{r}");
            let fps = r["video_fps_decoded"].as_f64().unwrap();
            assert!(fps >= 15.0, "{who} decoded {fps} frames/s: {r}");
        }
        assert_records(&url, &url, dir.path(), &ra).await;
        eprintln!(
            "measured (640x480 video): CPU {} ms / {} ms over {} s; {} B/s received by the caller",
            ra["cpu_ms"], rb["cpu_ms"], ra["duration_s"], ra["bytes_received_per_s"]
        );
        node.server.shutdown().await.unwrap();
    });
}

#[test]
fn a_relay_only_call_goes_through_coturn_with_rest_credentials() {
    isolated("a_relay_only_call_goes_through_coturn_with_rest_credentials", || async {
        let secret = "calls-test-secret-of-at-least-32-bytes";
        let turn = Coturn::start(TURN_IP, 3478, secret);
        let node = Node::start(|c| {
            c.ice_urls = vec![format!("turn:{TURN_IP}:3478?transport=udp")];
            c.turn_secret = Some(secret.into());
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let url = node.url();
        let (ra, rb) =
            tone_call((&url, &url), dir.path(), "4", &[], &[("COURIER_ICE_POLICY", "relay")]).await;
        assert_eq!(ra["candidate_type"], "relay", "{ra}\ncoturn:\n{}", turn.log_text());
        assert_eq!(rb["candidate_type"], "relay", "{rb}\ncoturn:\n{}", turn.log_text());
        node.server.shutdown().await.unwrap();
    });
}

#[test]
fn a_call_crosses_two_cluster_nodes() {
    isolated("a_call_crosses_two_cluster_nodes", || async {
        let (nodes, _redis) = Node::cluster(2).await;
        let dir = tempfile::tempdir().unwrap();
        let (a_url, b_url) = (nodes[0].url(), nodes[1].url());
        let (ra, _) = tone_call((&a_url, &b_url), dir.path(), "4", &[], &[]).await;
        assert_records(&a_url, &b_url, dir.path(), &ra).await;
        for n in nodes {
            n.server.shutdown().await.unwrap();
        }
    });
}

#[test]
fn stopping_answer_calls_mid_call_hangs_up_cleanly() {
    isolated("stopping_answer_calls_mid_call_hangs_up_cleanly", || async {
        let node = Node::start(|_| {}).await;
        let dir = tempfile::tempdir().unwrap();
        let url = node.url();
        let heard = dir.path().join("bob-heard.wav");
        // No --for on either side: the call runs until bob's bot is stopped.
        let bob_args = ["answer-calls", "--tone", "660", "--record", heard.to_str().unwrap(), "--json"];
        let bob = spawn("bob", cli(&url, "bob", &dir.path().join("bob")), &bob_args, Some(READY)).await;
        let alice_args = ["call", "@bob", "--tone", "440", "--json"];
        let alice =
            spawn("alice", cli(&url, "alice", &dir.path().join("alice")), &alice_args, Some("connected"))
                .await;
        // Let bob record a few seconds (the analysis takes the middle second).
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        bob.terminate();
        let (bob, alice) = (bob.done().await, alice.done().await);
        assert_eq!(bob.code, 0, "the bot's last call connected: {bob:?}");
        assert_eq!(alice.code, 0, "{alice:?}");
        let (rb, ra) = (bob.report(), alice.report());
        assert_eq!(
            (rb["end_reason"].as_str(), rb["ended_by_peer"].as_bool()),
            (Some("hangup"), Some(false)),
            "{rb}"
        );
        assert_eq!(ra["ended_by_peer"], true, "the caller heard the hang-up: {ra}");
        assert_hears(&heard, 440.0, "bob (stopped mid-call)");
        node.server.shutdown().await.unwrap();
    });
}

#[test]
fn declined_unanswered_and_serverless_calls_have_their_own_exit_codes() {
    isolated("declined_unanswered_and_serverless_calls_have_their_own_exit_codes", || async {
        let node = Node::start(|_| {}).await;
        let dir = tempfile::tempdir().unwrap();
        let url = node.url();
        let (a, b, c) = (dir.path().join("alice"), dir.path().join("bob"), dir.path().join("carol"));

        let bob =
            spawn("bob", cli(&url, "bob", &b), &["answer-calls", "--decline", "--calls", "1"], Some(READY))
                .await;
        let alice = run("alice", cli(&url, "alice", &a), &["call", "@bob", "--json"]).await;
        let bob = bob.done().await;
        assert_eq!(alice.code, 6, "declined: {alice:?}");
        assert_eq!(alice.report()["outcome"], "declined");
        assert_eq!(bob.code, 6, "the decliner reports the call it declined: {bob:?}");

        // carol exists (signed in once) but never answers.
        assert_eq!(run("carol", cli(&url, "carol", &c), &["whoami"]).await.code, 0);
        let alice = run("alice", cli(&url, "alice", &a), &["call", "@carol", "--ring", "5", "--json"]).await;
        assert_eq!(alice.code, 7, "no answer: {alice:?}");
        assert_eq!(alice.report()["outcome"], "no_answer");
        let iid = alice.report()["iid"].as_str().unwrap().to_owned();
        let missed = call_record(&url, "alice", &a, "carol", &iid).await;
        assert_eq!(missed["body"]["outcome"], "missed", "the server records the missed call: {missed}");

        let gone = format!("ws://{}", node.server.local_addr());
        node.server.shutdown().await.unwrap();
        let alice = run("alice", cli(&gone, "alice", &a), &["call", "@bob", "--json"]).await;
        assert_eq!(alice.code, 5, "no server: {alice:?}");
        assert_eq!(alice.report()["outcome"], "no_server");

        let alice = run("alice", cli(&gone, "alice", &a), &["call", "@bob", "--tone", "5"]).await;
        assert_eq!(alice.code, 2, "usage: {alice:?}");
    });
}

// The analysis the call tests rely on must itself tell tones apart.

fn sine(hz: f64, amp: f64, secs: f64, rate: u32) -> Vec<f64> {
    (0..(secs * f64::from(rate)) as usize)
        .map(|i| amp * (2.0 * std::f64::consts::PI * hz * i as f64 / f64::from(rate)).sin())
        .collect()
}

#[test]
fn the_analysis_finds_a_tone_its_level_and_rejects_silence_and_mixtures() {
    let rate = 48_000;
    let mut x = sine(440.0, 0.35, 3.0, rate);
    let mut seed = 7u64;
    for v in &mut x {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        *v += ((seed >> 33) as f64 / f64::from(u32::MAX) - 0.25) * 0.02;
    }
    let pcm = tone::read_wav(&tone::wav_bytes(&x, rate)).unwrap();
    let a = tone::analyse(&pcm);
    assert_eq!(a.peak_hz, 440.0, "{a:?}");
    assert!((a.peak_dbfs - (-12.1)).abs() < 0.5, "0.35 amplitude is about −12 dBFS RMS: {a:?}");
    assert!(a.share > 0.9, "{a:?}");

    let silent = tone::analyse(&tone::read_wav(&tone::wav_bytes(&vec![0.0; 96_000], rate)).unwrap());
    assert!(silent.peak_dbfs < -100.0, "{silent:?}");

    let mix: Vec<f64> =
        sine(440.0, 0.3, 2.0, rate).iter().zip(sine(660.0, 0.3, 2.0, rate)).map(|(p, q)| p + q).collect();
    let m = tone::analyse(&tone::read_wav(&tone::wav_bytes(&mix, rate)).unwrap());
    assert!(m.share < 0.6, "two equal tones: neither dominates: {m:?}");

    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("660.wav");
    std::fs::write(&f, tone::wav_bytes(&sine(660.0, 0.3, 2.0, rate), rate)).unwrap();
    assert_hears(&f, 660.0, "self-test");
    let wrong = std::panic::catch_unwind(|| assert_hears(&f, 440.0, "self-test"));
    assert!(wrong.is_err(), "a 660 Hz recording does not pass for 440 Hz");
    assert!(tone::read_wav(b"RIFF....WAVEjunk").is_err());
}
