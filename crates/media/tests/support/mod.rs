//! Helpers for the two-peer tests: a network namespace to run in, an
//! in-memory signalling pipe between two calls, and tone analysis.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use courier_media::{
    AudioSink, AudioSource, BoxFuture, Call, CallSignal, MediaConfig, Signaler, VideoSource,
};
use tokio::sync::mpsc;

const NS_ENV: &str = "COURIER_MEDIA_NETNS";

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The runtime a test's calls run on: two workers, as on the app's machines.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Runs the named test again inside a new network namespace with a veth
/// pair (10.77.0.1 / 10.77.0.2) and `lo` up, and returns `false`; returns
/// `true` when already inside it. libnice ignores loopback, so ICE needs
/// real interfaces, and nothing in the namespace can reach another host.
///
/// Fails (never skips) when the namespace cannot be made: the suite runs as
/// root with `unshare` and `ip` (util-linux, iproute2).
pub fn in_namespace(test: &str) -> bool {
    if std::env::var(NS_ENV).is_ok() {
        return true;
    }
    // One call test at a time: each runs real pipelines (VP8 at 30 fps) and
    // the suite's tests would otherwise share 2 cores five ways.
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let uid = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string())
    });
    assert_eq!(
        uid.as_deref(),
        Some("0"),
        "the two-peer call tests must run as root: they make a network namespace with `unshare -n` and a veth pair"
    );
    let exe = std::env::current_exe().expect("test binary path");
    let script = "ip link set lo up && ip link add v0 type veth peer name v1 && \
                  ip addr add 10.77.0.1/24 dev v0 && ip addr add 10.77.0.2/24 dev v1 && \
                  ip link set v0 up && ip link set v1 up && \
                  exec \"$0\" --exact \"$1\" --include-ignored --nocapture --test-threads=1";
    let status = Command::new("unshare")
        .args(["-n", "--", "sh", "-c", script])
        .arg(&exe)
        .arg(test)
        .env(NS_ENV, "1")
        .status()
        .unwrap_or_else(|e| panic!("cannot run `unshare -n` (util-linux) for the namespace: {e}"));
    assert!(status.success(), "the test inside the network namespace failed: {status}");
    false
}

/// One direction of the in-memory signalling channel; every signal is also
/// kept in a log for assertions.
pub struct Pipe {
    tx: mpsc::UnboundedSender<CallSignal>,
    pub log: Arc<Mutex<Vec<CallSignal>>>,
    /// While `Some`, signals wait here (to make two offers cross).
    held: Mutex<Option<Vec<CallSignal>>>,
}

impl Pipe {
    /// Holds back what is sent from now on.
    pub fn hold(&self) {
        *self.held.lock().unwrap() = Some(Vec::new());
    }

    /// Lets the held signals go, in order.
    pub fn release(&self) {
        for s in self.held.lock().unwrap().take().unwrap_or_default() {
            let _ = self.tx.send(s);
        }
    }
}

impl Signaler for Pipe {
    fn send(&self, signal: CallSignal) -> BoxFuture<'static, Result<(), String>> {
        self.log.lock().unwrap().push(signal.clone());
        let r = match self.held.lock().unwrap().as_mut() {
            Some(held) => {
                held.push(signal);
                Ok(())
            }
            None => self.tx.send(signal).map_err(|e| e.to_string()),
        };
        Box::pin(async move { r })
    }
}

/// A pipe and the receiving end to wire to the other call with [`deliver`].
pub fn pipe() -> (Arc<Pipe>, mpsc::UnboundedReceiver<CallSignal>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Arc::new(Pipe { tx, log: Arc::default(), held: Mutex::new(None) }), rx)
}

/// Feeds everything from `rx` to `call` (as the server would relay it).
pub fn deliver(mut rx: mpsc::UnboundedReceiver<CallSignal>, call: Call) {
    tokio::spawn(async move {
        while let Some(s) = rx.recv().await {
            call.on_signal(s);
        }
    });
}

/// Mono 16-bit samples of a WAV file written by the recorder (44-byte header).
pub fn wav_samples(path: &Path) -> Vec<f64> {
    let bytes = std::fs::read(path).expect("recording exists");
    assert!(bytes.len() > 44 && &bytes[0..4] == b"RIFF", "{} is not a WAV file", path.display());
    bytes[44..].chunks_exact(2).map(|b| f64::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0).collect()
}

/// The power of one frequency in a block (Goertzel).
fn goertzel(x: &[f64], rate: f64, hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / rate;
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for v in x {
        let s = v + c * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - c * s1 * s2
}

/// The loudest half second of a recording: (dominant frequency in Hz by a
/// 10 Hz scan of 100–4000 Hz, its RMS level in dBFS).
pub fn dominant(samples: &[f64], rate: f64) -> (f64, f64) {
    let block = (rate / 2.0) as usize;
    assert!(samples.len() >= block, "recording too short: {} samples", samples.len());
    let rms = |b: &[f64]| (b.iter().map(|v| v * v).sum::<f64>() / b.len() as f64).sqrt();
    let loudest = samples.chunks_exact(block).max_by(|a, b| rms(a).total_cmp(&rms(b))).expect("a block");
    let db = 20.0 * rms(loudest).max(1e-9).log10();
    let hz = (10..=400)
        .map(|i| f64::from(i) * 10.0)
        .max_by(|a, b| goertzel(loudest, rate, *a).total_cmp(&goertzel(loudest, rate, *b)))
        .expect("a frequency");
    (hz, db)
}

#[test]
fn goertzel_finds_a_tone_and_its_level() {
    let rate = 48_000.0;
    let x: Vec<f64> =
        (0..48_000).map(|i| 0.5 * (2.0 * std::f64::consts::PI * 660.0 * f64::from(i) / rate).sin()).collect();
    let (hz, db) = dominant(&x, rate);
    assert_eq!(hz, 660.0);
    assert!((db - (-9.03)).abs() < 0.1, "{db}");
}

/// A call that sends a `hz` tone and the test pattern, and records what it hears.
pub fn tone_call_media(hz: f64, record: std::path::PathBuf) -> MediaConfig {
    MediaConfig {
        ice_servers: Vec::new(),
        audio_in: AudioSource::Tone(hz),
        audio_out: AudioSink::Record(record),
        video_in: VideoSource::Test,
        video: true,
        frames: None,
    }
}
