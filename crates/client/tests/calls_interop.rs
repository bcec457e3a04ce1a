//! Calls between `courier-cli` and an independent WebRTC implementation:
//! aiortc (Python), driven by `tests/interop/aiortc_peer.py`, which speaks
//! the Courier protocol itself and does the media side as §12 describes.
//! Each side sends a tone and records the other; the test asserts the
//! dominant frequency and level of both recordings.
//!
//! The peer runs in the venv `scripts/setup.sh --test` creates
//! (`$HOME/.cache/courier-venv`, or `$COURIER_VENV`); without it
//! the test fails and says so: nothing is skipped.

mod calls_support;

use calls_support::netns::isolated;
use calls_support::peers::{Node, cli, run, spawn};
use calls_support::tone::assert_hears;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::process::Command;

/// What the aiortc peer prints once it listens.
const READY: &str = "waiting for calls";

/// The peer's script in the repository.
fn peer_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/aiortc_peer.py")
}

/// The interpreter of the interop venv, checked to import aiortc.
fn python() -> PathBuf {
    let venv = std::env::var_os("COURIER_VENV").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").expect("HOME is set");
        Path::new(&home).join(".cache/courier-venv")
    });
    let py = venv.join("bin/python");
    let probe = std::process::Command::new(&py).args(["-c", "import aiortc, websockets, av"]).output();
    match probe {
        Ok(o) if o.status.success() => py,
        Ok(o) => panic!(
            "the interop peer's python ({}) cannot import aiortc: {}\nrun scripts/setup.sh --test",
            py.display(),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!("no interop python at {} ({e}): run scripts/setup.sh --test", py.display()),
    }
}

/// The aiortc peer as `user` on `url`, with `args`.
fn aiortc(py: &Path, url: &str, user: &str, args: &[&str]) -> Command {
    let mut c = Command::new(py);
    c.arg(peer_script())
        .args(["--server", url, "--user", user])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

#[test]
fn courier_cli_calls_an_aiortc_peer_and_each_hears_the_others_tone() {
    let py = python();
    isolated("courier_cli_calls_an_aiortc_peer_and_each_hears_the_others_tone", || async move {
        let node = Node::start(|_| {}).await;
        let dir = tempfile::tempdir().unwrap();
        let url = node.url();
        let (a_wav, b_wav) = (dir.path().join("alice-heard.wav"), dir.path().join("bob-heard.wav"));
        let bob_args =
            ["--video", "--send-video", "--tone", "660", "--record", b_wav.to_str().unwrap(), "--for", "60"];
        let bob = spawn("aiortc bob", aiortc(&py, &url, "bob", &bob_args), &[], Some(READY)).await;
        let alice_args = [
            "call",
            "@bob",
            "--video",
            "--tone",
            "440",
            "--record",
            a_wav.to_str().unwrap(),
            "--for",
            "5",
            "--json",
        ];
        let alice = run("alice", cli(&url, "alice", &dir.path().join("alice")), &alice_args).await;
        let bob = bob.done().await;
        assert_eq!(alice.code, 0, "courier-cli's call to aiortc connected: {alice:?}");
        assert_eq!(bob.code, 0, "the aiortc peer connected: {bob:?}");
        let (ra, rb) = (alice.report(), bob.report());
        assert_eq!(ra["outcome"], "connected", "{ra}");
        assert!(matches!(ra["ice_state"].as_str(), Some("connected" | "completed")), "{ra}");
        assert_eq!(ra["end_reason"], "hangup", "{ra}");
        assert_eq!(rb["outcome"], "connected", "{rb}");
        assert_eq!(rb["iid"], ra["iid"]);
        assert_eq!(rb["ended_by_peer"], true, "courier-cli hung up after --for: {rb}");
        assert!(ra["packets_received"].as_u64() > Some(0), "{ra}");
        // A video call: aiortc, answering, decodes courier-cli's VP8.
        let frames = rb["video_frames_received"].as_u64().unwrap_or(0);
        assert!(frames >= 25, "aiortc decoded {frames} of courier-cli's video frames in a 5 s call: {rb}");
        assert_eq!(rb["video_size"], serde_json::json!([640, 480]), "{rb}");
        // …and courier-cli decodes aiortc's (its own encoder, its own numbers).
        let decoded = ra["video_frames_decoded"].as_u64().unwrap_or(0);
        assert!(decoded >= 25, "courier-cli decoded {decoded} of aiortc's video frames: {ra}");
        let heard_by_alice = assert_hears(&a_wav, 660.0, "courier-cli (from aiortc)");
        let heard_by_bob = assert_hears(&b_wav, 440.0, "aiortc (from courier-cli)");
        eprintln!(
            "measured: courier-cli heard {heard_by_alice:?}; aiortc heard {heard_by_bob:?}; video frames decoded: aiortc {frames}, courier-cli {decoded}"
        );
        node.server.shutdown().await.unwrap();
    });
}

/// aiortc offers Opus as 96 and VP8 as 97 (we offer 111 and 96); webrtcbin
/// 1.22 matches an offer by caps *including the payload type*, so the
/// answerer takes the offer's numbers first (`gst::pt`), or it would answer
/// audio `recvonly` and video `inactive` and send nothing. The call asks for
/// video, so courier-cli's VP8 goes out under aiortc's number too, and aiortc
/// decodes it. aiortc puts its video m-line first (`--video-first`, as an
/// app that adds its camera before its microphone), the reverse of ours.
#[test]
fn an_aiortc_peer_calls_courier_cli_and_each_hears_the_others_tone() {
    let py = python();
    isolated("an_aiortc_peer_calls_courier_cli_and_each_hears_the_others_tone", || async move {
        let node = Node::start(|_| {}).await;
        let dir = tempfile::tempdir().unwrap();
        let url = node.url();
        let (a_wav, b_wav) = (dir.path().join("alice-heard.wav"), dir.path().join("bob-heard.wav"));
        let b_wav_s = b_wav.to_str().unwrap();
        let bob_args =
            ["answer-calls", "--accept", "--tone", "660", "--record", b_wav_s, "--for", "60", "--json"];
        let bob = spawn("bob", cli(&url, "bob", &dir.path().join("bob")), &bob_args, Some(READY)).await;
        let a_wav_s = a_wav.to_str().unwrap();
        let alice_args = [
            "--call",
            "bob",
            "--video",
            "--send-video",
            "--video-first",
            "--tone",
            "440",
            "--record",
            a_wav_s,
            "--for",
            "5",
            "--dump-sdp",
        ];
        let alice = run("aiortc alice", aiortc(&py, &url, "alice", &alice_args), &[]).await;
        let bob = bob.done().await;
        assert_eq!(alice.code, 0, "the aiortc caller connected: {alice:?}");
        assert_eq!(bob.code, 0, "courier-cli answered aiortc's call: {bob:?}");
        let (ra, rb) = (alice.report(), bob.report());
        assert_eq!(ra["outcome"], "connected", "{ra}");
        assert_eq!(ra["end_reason"], "hangup", "{ra}");
        assert_eq!(rb["outcome"], "connected", "{rb}");
        assert!(matches!(rb["ice_state"].as_str(), Some("connected" | "completed")), "{rb}");
        assert_eq!(rb["iid"], ra["iid"]);
        assert_eq!(rb["ended_by_peer"], true, "aiortc hung up after --for: {rb}");
        let heard_by_alice = assert_hears(&a_wav, 660.0, "aiortc (from courier-cli)");
        let heard_by_bob = assert_hears(&b_wav, 440.0, "courier-cli (from aiortc)");
        let frames = ra["video_frames_received"].as_u64().unwrap_or(0);
        assert!(frames >= 25, "aiortc decoded {frames} of courier-cli's video frames in a 5 s call: {ra}");
        assert_eq!(ra["video_size"], serde_json::json!([640, 480]), "{ra}");
        let decoded = rb["video_frames_decoded"].as_u64().unwrap_or(0);
        assert!(decoded >= 25, "courier-cli decoded {decoded} of aiortc's video frames: {rb}");
        eprintln!(
            "measured: aiortc heard {heard_by_alice:?}; courier-cli heard {heard_by_bob:?}; aiortc decoded {frames} video frames, courier-cli {decoded}"
        );
        node.server.shutdown().await.unwrap();
    });
}
