//! The figures in docs/calls.md, measured on this machine. Not a test (it
//! asserts nothing beyond the calls working); run it with
//! `cargo test -p courier-media --test measure -- --ignored --nocapture`.
//! Both calls run in this one process, so per-call CPU is half the total.

mod support;

use std::time::{Duration, Instant};

use courier_media::{
    AudioSink, AudioSource, Call, CallEvent, CallOptions, CallState, FrameOptions, MediaConfig, Role,
    VideoSource,
};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::timeout;

use support::{deliver, in_namespace, pipe, runtime};

/// utime + stime of this process, in seconds.
fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `after` starts at field 3.
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn rss_mb() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: f64 = s
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    kb / 1024.0
}

fn cfg(hz: f64, video: bool, frames: Option<FrameOptions>) -> MediaConfig {
    MediaConfig {
        ice_servers: Vec::new(),
        audio_in: AudioSource::Tone(hz),
        audio_out: AudioSink::Discard,
        video_in: if video { VideoSource::Test } else { VideoSource::None },
        video,
        frames,
    }
}

/// Starts a pair; returns them once B hears A, with the time that took.
async fn pair(
    a_cfg: MediaConfig,
    b_cfg: MediaConfig,
) -> (Call, Call, UnboundedReceiver<CallEvent>, Duration) {
    let (a_pipe, a_out) = pipe();
    let (b_pipe, b_out) = pipe();
    let t0 = Instant::now();
    let (b, mut b_rx) =
        Call::start(CallOptions { iid: "m".into(), role: Role::Callee, media: b_cfg }, b_pipe).unwrap();
    let (a, _a_rx) =
        Call::start(CallOptions { iid: "m".into(), role: Role::Caller, media: a_cfg }, a_pipe).unwrap();
    deliver(a_out, b.clone());
    deliver(b_out, a.clone());
    let mut connected = false;
    let first_audio = loop {
        match timeout(Duration::from_secs(30), b_rx.recv()).await.expect("B hears A in 30 s").expect("events")
        {
            CallEvent::State(CallState::Connected) => connected = true,
            CallEvent::Levels { remote, .. } if connected && remote > -40.0 => break t0.elapsed(),
            _ => {}
        }
    };
    (a, b, b_rx, first_audio)
}

async fn window(name: &str, a: &Call, b: &Call, b_rx: &mut UnboundedReceiver<CallEvent>, secs: u64) -> f64 {
    while b_rx.try_recv().is_ok() {}
    let (sa, sb) = (a.stats().await, b.stats().await);
    let (c0, t0) = (cpu_s(), Instant::now());
    let mut frames = 0u64;
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        if let Ok(Some(CallEvent::Frame { .. })) = timeout(Duration::from_millis(200), b_rx.recv()).await {
            frames += 1;
        }
    }
    let (cpu, dt) = (cpu_s() - c0, t0.elapsed().as_secs_f64());
    let (ea, eb) = (a.stats().await, b.stats().await);
    println!(
        "{name}: CPU {:.1} % of one core per call, RSS {:.0} MB (process, both calls), A→B {:.1} kB/s, B→A {:.1} kB/s, B decoded {:.1} frames/s, frames delivered to B's owner {:.1}/s",
        cpu / dt * 100.0 / 2.0,
        rss_mb(),
        (ea.bytes_sent - sa.bytes_sent) as f64 / dt / 1000.0,
        (eb.bytes_sent - sb.bytes_sent) as f64 / dt / 1000.0,
        (eb.video_frames_decoded - sb.video_frames_decoded) as f64 / dt,
        frames as f64 / dt,
    );
    cpu / dt
}

#[test]
#[ignore = "a measurement, run by hand for docs/calls.md"]
fn measure() {
    if !in_namespace("measure") {
        return;
    }
    let rt = runtime();
    rt.block_on(async {
        println!("idle process: RSS {:.0} MB", rss_mb());
        let mut firsts = Vec::new();
        for _ in 0..3 {
            let (a, b, mut rx, first) = pair(cfg(440.0, false, None), cfg(660.0, false, None)).await;
            firsts.push(first.as_millis());
            if firsts.len() == 3 {
                window("audio only", &a, &b, &mut rx, 15).await;
            }
            a.hangup();
            b.ended().await;
        }
        println!("start -> first audio heard (ms): {firsts:?}");
        let (a, b, mut rx, _) = pair(cfg(440.0, true, None), cfg(660.0, true, None)).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let without = window("audio + 640x480 video", &a, &b, &mut rx, 15).await;
        a.hangup();
        b.ended().await;
        let full = FrameOptions { max_width: 640, max_height: 480, fps: 30 };
        let (a, b, mut rx, _) = pair(cfg(440.0, true, None), cfg(660.0, true, Some(full))).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let with = window(
            "audio + 640x480 video + I420 frames to B's owner (remote + self-view)",
            &a,
            &b,
            &mut rx,
            15,
        )
        .await;
        println!("frame delivery: {:.1} % of one core more for the process", (with - without) * 100.0);
        a.hangup();
        b.ended().await;
    });
}
