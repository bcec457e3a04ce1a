//! A call survives a network change: mid-call, every address either peer
//! had is taken away and new ones appear (as when a laptop moves from one
//! Wi-Fi to another). An ICE restart alone cannot come back from that:
//! libnice keeps the candidates it gathered at the start, all on addresses
//! that no longer exist. The engine restarts the transport instead (a new
//! ICE agent that gathers on today's addresses, a new DTLS association),
//! and the call goes on: connected again, each side hears the other's tone,
//! and the recordings go on in the same files.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use courier_media::{Call, CallEvent, CallOptions, CallSignal, CallState, EndReason, Role};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::timeout;

use support::{deliver, dominant, in_namespace, pipe, runtime, tone_call_media as media, wav_samples};

/// Long enough for ICE to notice the loss and for the restart (which must
/// itself finish inside the engine's 30 s reconnect window).
const WAIT: Duration = Duration::from_secs(60);

struct Watch {
    rx: UnboundedReceiver<CallEvent>,
    states: Vec<CallState>,
    remote_db: f64,
}

impl Watch {
    async fn until(&mut self, what: &str, mut f: impl FnMut(&Watch) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !f(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, self.rx.recv()).await {
                Ok(Some(CallEvent::State(s))) => self.states.push(s),
                Ok(Some(CallEvent::Levels { remote, .. })) => self.remote_db = remote,
                Ok(Some(CallEvent::Warning { code, message })) => println!("warning: {code}: {message}"),
                Ok(Some(_)) => {}
                Ok(None) => panic!("events ended while waiting for {what}"),
                Err(_) => panic!("timed out waiting for {what} (states so far: {:?})", self.states),
            }
        }
    }

    fn last(&self) -> Option<CallState> {
        self.states.last().copied()
    }
}

fn ip(args: &str) {
    let out = Command::new("ip").args(args.split(' ')).output().expect("`ip` (iproute2)");
    assert!(out.status.success(), "ip {args}: {}", String::from_utf8_lossy(&out.stderr));
}

fn sdp_of(s: &CallSignal) -> Option<&str> {
    match s {
        CallSignal::Offer { sdp, .. }
        | CallSignal::Answer { sdp, .. }
        | CallSignal::Renegotiate { sdp, .. } => Some(sdp),
        _ => None,
    }
}

fn fingerprint(sdp: &str) -> Option<&str> {
    sdp.lines().find_map(|l| l.strip_prefix("a=fingerprint:"))
}

/// Host candidates' addresses in what `log` sent from `from` on.
fn candidate_addresses(log: &[CallSignal]) -> Vec<String> {
    log.iter()
        .filter_map(|s| match s {
            CallSignal::Candidate { candidate, .. } => candidate.split(' ').nth(4).map(str::to_string),
            _ => None,
        })
        .collect()
}

#[test]
fn a_call_survives_a_change_of_every_address() {
    if !in_namespace("a_call_survives_a_change_of_every_address") {
        return;
    }
    let rt = runtime();
    rt.block_on(scenario());
}

async fn scenario() {
    let dir = std::env::temp_dir().join(format!("courier-media-netchange-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (a_wav, b_wav) = (dir.join("a-hears.wav"), dir.join("b-hears.wav"));
    let (a_pipe, a_out) = pipe();
    let (b_pipe, b_out) = pipe();
    let (b, b_rx) = Call::start(
        CallOptions { iid: "n1".into(), role: Role::Callee, media: media(660.0, b_wav.clone()) },
        b_pipe.clone(),
    )
    .expect("callee starts");
    let (a, a_rx) = Call::start(
        CallOptions { iid: "n1".into(), role: Role::Caller, media: media(440.0, a_wav.clone()) },
        a_pipe.clone(),
    )
    .expect("caller starts");
    deliver(a_out, b.clone());
    deliver(b_out, a.clone());
    let mut aw = Watch { rx: a_rx, states: Vec::new(), remote_db: -100.0 };
    let mut bw = Watch { rx: b_rx, states: Vec::new(), remote_db: -100.0 };
    aw.until("A connected and hears B", |w| w.last() == Some(CallState::Connected) && w.remote_db > -40.0)
        .await;
    bw.until("B connected and hears A", |w| w.last() == Some(CallState::Connected) && w.remote_db > -40.0)
        .await;
    let before_a = candidate_addresses(&a_pipe.log.lock().unwrap());
    assert!(before_a.iter().any(|a| a.starts_with("10.77.0.")), "{before_a:?}");
    // Five seconds of call first, so the recording before the change is
    // longer than what follows it (a recording started over would be shorter).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let sent_before = a_pipe.log.lock().unwrap().len();
    let got_before = b.stats().await.packets_received;
    let recorded_before = wav_samples(&b_wav).len();

    // The network changes: every address goes (IPv6 link-local ones too),
    // new ones come.
    let t = Instant::now();
    ip("addr flush dev v0");
    ip("addr flush dev v1");
    ip("addr add 10.77.1.1/24 dev v0");
    ip("addr add 10.77.1.2/24 dev v1");

    aw.until("A notices the loss", |w| w.states.contains(&CallState::Reconnecting)).await;
    println!("loss noticed after {} ms", t.elapsed().as_millis());
    aw.until("A connected again", |w| w.last() == Some(CallState::Connected)).await;
    bw.until("B connected again", |w| {
        w.states.contains(&CallState::Reconnecting) && w.last() == Some(CallState::Connected)
    })
    .await;
    println!("connected again after {} ms", t.elapsed().as_millis());

    // It came back through a new transport, on the new addresses.
    let after: Vec<CallSignal> = a_pipe.log.lock().unwrap()[sent_before..].to_vec();
    let old_fp = a_pipe.log.lock().unwrap().iter().find_map(sdp_of).and_then(fingerprint).map(str::to_string);
    let restart = after.iter().find(|s| matches!(s, CallSignal::Renegotiate { .. })).expect("a renegotiate");
    assert!(matches!(restart, CallSignal::Renegotiate { transport_restart: true, .. }), "{restart:?}");
    assert_ne!(sdp_of(restart).and_then(fingerprint), old_fp.as_deref(), "a new DTLS association");
    let new_addrs = candidate_addresses(&after);
    assert!(
        new_addrs.iter().any(|a| a.starts_with("10.77.1.")),
        "gathered on the new addresses: {new_addrs:?}"
    );
    assert!(new_addrs.iter().all(|a| !a.starts_with("10.77.0.")), "nothing on the old ones: {new_addrs:?}");

    // Media flows both ways again, and the counters went on from before.
    bw.remote_db = -100.0;
    aw.remote_db = -100.0;
    bw.until("B hears A after the change", |w| w.remote_db > -40.0).await;
    aw.until("A hears B after the change", |w| w.remote_db > -40.0).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stats_b = b.stats().await;
    assert!(stats_b.packets_received > got_before + 50, "{} then {}", got_before, stats_b.packets_received);
    assert!(stats_b.video_frames_decoded > 0);

    a.hangup();
    let (ra, _, _) = timeout(WAIT, a.ended()).await.expect("A ends");
    let (rb, by_peer, _) = timeout(WAIT, b.ended()).await.expect("B ends");
    assert_eq!((ra, rb, by_peer), (EndReason::Hangup, EndReason::Hangup, true));

    // One recording per side, from before and after the change.
    let heard_b = wav_samples(&b_wav);
    let (hz, db) = dominant(&heard_b, 48_000.0);
    assert!((hz - 440.0).abs() <= 10.0 && db > -30.0, "B heard {hz} Hz at {db:.1} dBFS");
    let (hz, db) = dominant(&wav_samples(&a_wav), 48_000.0);
    assert!((hz - 660.0).abs() <= 10.0 && db > -30.0, "A heard {hz} Hz at {db:.1} dBFS");
    assert!(
        heard_b.len() >= recorded_before + 48_000,
        "the recording goes on in the same file: {recorded_before} samples before the change, {} at the end",
        heard_b.len()
    );
    let tail = &heard_b[heard_b.len() - 24_000..];
    let (hz, db) = dominant(tail, 48_000.0);
    assert!(
        (hz - 440.0).abs() <= 10.0 && db > -30.0,
        "the recording goes on after the change: {hz} Hz {db:.1} dBFS"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
