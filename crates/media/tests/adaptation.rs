//! Video adapts to the network: with a third of the packets dropped inside
//! the test's namespace (nftables), the sender's VP8 target bitrate falls
//! while the call stays up and audio still gets through; once the loss
//! stops, the target climbs again.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use courier_media::{
    AudioSink, AudioSource, Call, CallEvent, CallOptions, CallState, MediaConfig, Role, VideoSource,
};
use tokio::sync::mpsc::UnboundedReceiver;

use support::{deliver, in_namespace, pipe, runtime};

const WAIT: Duration = Duration::from_secs(60);

fn media(hz: f64) -> MediaConfig {
    MediaConfig {
        ice_servers: Vec::new(),
        audio_in: AudioSource::Tone(hz),
        audio_out: AudioSink::Discard,
        video_in: VideoSource::Test,
        video: true,
        frames: None,
    }
}

fn nft(args: &[&str]) {
    let out = Command::new("nft").args(args).output().unwrap_or_else(|e| {
        panic!("`nft` (nftables) is needed to drop packets in the test's namespace; setup.sh --test installs it: {e}")
    });
    assert!(out.status.success(), "nft {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// Polls `call`'s target bitrate until `f` holds; returns it.
async fn target_until(call: &Call, what: &str, f: impl Fn(u32) -> bool) -> u32 {
    let deadline = Instant::now() + WAIT;
    loop {
        let s = call.stats().await;
        let kbps = s.video_target_kbps.expect("the camera sends");
        if f(kbps) {
            return kbps;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: target {kbps} kbit/s, {s:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Drains events; fails if the call ended.
fn still_up(rx: &mut UnboundedReceiver<CallEvent>) -> Option<f64> {
    let mut level = None;
    while let Ok(e) = rx.try_recv() {
        match e {
            CallEvent::State(CallState::Ended { reason, .. }) => panic!("the call ended: {reason:?}"),
            CallEvent::Levels { remote, .. } => level = Some(remote),
            _ => {}
        }
    }
    level
}

#[test]
fn the_video_bitrate_follows_packet_loss() {
    if !in_namespace("the_video_bitrate_follows_packet_loss") {
        return;
    }
    let rt = runtime();
    rt.block_on(scenario());
}

async fn scenario() {
    let (a_pipe, a_out) = pipe();
    let (b_pipe, b_out) = pipe();
    let (b, mut b_rx) =
        Call::start(CallOptions { iid: "bw".into(), role: Role::Callee, media: media(660.0) }, b_pipe)
            .unwrap();
    let (a, mut a_rx) =
        Call::start(CallOptions { iid: "bw".into(), role: Role::Caller, media: media(440.0) }, a_pipe)
            .unwrap();
    deliver(a_out, b.clone());
    deliver(b_out, a.clone());
    let deadline = Instant::now() + WAIT;
    while b.stats().await.video_frames_decoded < 30 {
        assert!(Instant::now() < deadline, "no video reached B");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // No loss: the target rises from its start (800 kbit/s).
    let clear = target_until(&a, "the target to rise without loss", |k| k > 1_000).await;
    still_up(&mut a_rx);

    // A third of the UDP packets dropped, both ways.
    nft(&["add", "table", "inet", "loss"]);
    nft(&["add", "chain", "inet", "loss", "out", "{ type filter hook output priority 0; }"]);
    nft(&[
        "add", "rule", "inet", "loss", "out", "meta", "l4proto", "udp", "numgen", "random", "mod", "3", "==",
        "0", "drop",
    ]);
    let t = Instant::now();
    let lossy = target_until(&a, "the target to fall under loss", |k| k * 2 <= clear).await;
    println!("target {clear} kbit/s → {lossy} kbit/s after {} ms of 33 % loss", t.elapsed().as_millis());
    still_up(&mut a_rx);
    still_up(&mut b_rx);
    let s = b.stats().await;
    assert!(s.loss_pct > 5.0, "B sees the loss: {s:?}");

    // The loss stops: the target climbs again.
    nft(&["delete", "table", "inet", "loss"]);
    let t = Instant::now();
    let back = target_until(&a, "the target to climb after the loss", |k| k >= lossy * 3 / 2).await;
    println!("target {lossy} → {back} kbit/s {} ms after the loss stopped", t.elapsed().as_millis());
    still_up(&mut a_rx);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let heard = still_up(&mut b_rx);
    assert!(heard.is_some_and(|db| db > -40.0), "B still hears A: {heard:?}");
    a.hangup();
    let _ = tokio::time::timeout(WAIT, b.ended()).await.expect("B ends");
}
