//! Two real calls in one process, connected by an in-memory signalling pipe,
//! inside a network namespace this test makes: ICE, DTLS-SRTP, Opus and VP8
//! end to end. Each side sends a different tone and records what it hears.

mod support;

use std::time::{Duration, Instant};

use courier_media::{Call, CallEvent, CallOptions, CallSignal, CallState, CallStats, EndReason, Role};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::timeout;

use support::{deliver, dominant, in_namespace, pipe, runtime, tone_call_media as media, wav_samples};

const WAIT: Duration = Duration::from_secs(30);

/// Events of one call, remembered as they pass.
struct Watch {
    rx: UnboundedReceiver<CallEvent>,
    state: Option<CallState>,
    remote_db: f64,
    remote_media: Option<(bool, bool)>,
}

impl Watch {
    fn new(rx: UnboundedReceiver<CallEvent>) -> Watch {
        Watch { rx, state: None, remote_db: -100.0, remote_media: None }
    }

    /// Reads events until `f` holds (or fails after [`WAIT`]).
    async fn until(&mut self, what: &str, mut f: impl FnMut(&Watch) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !f(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, self.rx.recv()).await {
                Ok(Some(e)) => match e {
                    CallEvent::State(s) => self.state = Some(s),
                    CallEvent::Levels { remote, .. } => self.remote_db = remote,
                    CallEvent::RemoteMedia { audio, video } => self.remote_media = Some((audio, video)),
                    CallEvent::Warning { code, message } => println!("warning: {code}: {message}"),
                    _ => {}
                },
                Ok(None) => panic!("events ended while waiting for {what}"),
                Err(_) => panic!("timed out waiting for {what}"),
            }
        }
    }
}

/// Video frames decoded per second over `over`.
async fn fps(call: &Call, over: Duration) -> f64 {
    let a = call.stats().await.video_frames_decoded;
    let t = Instant::now();
    tokio::time::sleep(over).await;
    let b = call.stats().await.video_frames_decoded;
    (b - a) as f64 / t.elapsed().as_secs_f64()
}

/// The lowest decode rate over 2 s windows within [`WAIT`], stopping at the
/// first under 1/s: once a camera is off decoding stops, though a loaded
/// machine may take a while to work off what it had queued.
async fn lowest_fps(call: &Call) -> f64 {
    let deadline = Instant::now() + WAIT;
    let mut low = f64::MAX;
    while low >= 1.0 && Instant::now() < deadline {
        low = low.min(fps(call, Duration::from_secs(2)).await);
    }
    low
}

/// The best rate over 3 s windows within [`WAIT`]: the rate video reaches,
/// not a timing bound (the machine's 2 cores are shared with other work).
async fn best_fps(call: &Call, want: f64) -> f64 {
    let deadline = Instant::now() + WAIT;
    let mut best = 0.0f64;
    while best < want && Instant::now() < deadline {
        best = best.max(fps(call, Duration::from_secs(3)).await);
    }
    best
}

fn sdp_lines(signal: &CallSignal) -> Vec<String> {
    match signal {
        CallSignal::Offer { sdp, .. }
        | CallSignal::Answer { sdp, .. }
        | CallSignal::Renegotiate { sdp, .. } => sdp.lines().map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

fn media_sections(lines: &[String]) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    for l in lines {
        if l.starts_with("m=") {
            out.push(Vec::new());
        }
        if let Some(m) = out.last_mut() {
            m.push(l.clone());
        }
    }
    out
}

fn direction(section: &[String]) -> &str {
    ["a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive"]
        .into_iter()
        .find(|d| section.iter().any(|l| l == d))
        .unwrap_or("none")
}

#[test]
fn two_calls_talk_see_mute_renegotiate_restart_and_hang_up() {
    if !in_namespace("two_calls_talk_see_mute_renegotiate_restart_and_hang_up") {
        return;
    }
    let rt = runtime();
    rt.block_on(scenario());
}

async fn scenario() {
    let dir = std::env::temp_dir().join(format!("courier-media-two-peers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (a_wav, b_wav) = (dir.join("a-hears.wav"), dir.join("b-hears.wav"));
    let (a_pipe, a_out) = pipe();
    let (b_pipe, b_out) = pipe();
    let t0 = Instant::now();
    let (b, b_rx) = Call::start(
        CallOptions { iid: "i1".into(), role: Role::Callee, media: media(660.0, b_wav.clone()) },
        b_pipe.clone(),
    )
    .expect("callee starts");
    let (a, a_rx) = Call::start(
        CallOptions { iid: "i1".into(), role: Role::Caller, media: media(440.0, a_wav.clone()) },
        a_pipe.clone(),
    )
    .expect("caller starts");
    deliver(a_out, b.clone());
    deliver(b_out, a.clone());
    let (mut aw, mut bw) = (Watch::new(a_rx), Watch::new(b_rx));

    // Connected, and B hears A: the time from accept to first audio.
    aw.until("A connected", |w| w.state == Some(CallState::Connected)).await;
    bw.until("B hears A", |w| w.state == Some(CallState::Connected) && w.remote_db > -40.0).await;
    let first_audio = t0.elapsed();
    aw.until("A hears B", |w| w.remote_db > -40.0).await;
    println!("accept -> first audio: {} ms", first_audio.as_millis());

    // The SDP profile of §12.
    let offer = a_pipe.log.lock().unwrap()[0].clone();
    assert!(matches!(offer, CallSignal::Offer { .. }), "the caller's first signal is the offer: {offer:?}");
    let lines = sdp_lines(&offer);
    let sections = media_sections(&lines);
    assert_eq!(sections.len(), 2, "exactly two m-lines, no data channel");
    assert!(sections[0][0].starts_with("m=audio 9 ") && sections[1][0].starts_with("m=video 9 "));
    assert!(lines.iter().any(|l| l.starts_with("a=group:BUNDLE")));
    assert!(lines.iter().any(|l| l.eq_ignore_ascii_case("a=rtpmap:111 OPUS/48000/2")));
    assert!(lines.iter().any(|l| l.eq_ignore_ascii_case("a=rtpmap:96 VP8/90000")));
    assert!(sections.iter().all(|s| s.iter().any(|l| l == "a=rtcp-mux")));
    assert!(sections.iter().all(|s| s.iter().any(|l| l == "a=setup:actpass")));
    let answer =
        b_pipe.log.lock().unwrap().iter().find(|s| matches!(s, CallSignal::Answer { .. })).cloned().unwrap();
    assert!(sdp_lines(&answer).iter().any(|l| l == "a=setup:active"), "answers are DTLS active");
    let sent = a_pipe.log.lock().unwrap().clone();
    let c = sent.iter().find_map(|s| match s {
        CallSignal::Candidate { candidate, mid, .. } if !candidate.is_empty() => {
            Some((candidate.clone(), mid.clone()))
        }
        _ => None,
    });
    let (candidate, mid) = c.expect("trickled candidates");
    assert!(candidate.starts_with("candidate:"), "{candidate}");
    assert!(mid.is_some(), "candidates carry their mid");

    // Video both ways.
    let (fa, fb) = (best_fps(&a, 15.0).await, best_fps(&b, 15.0).await);
    println!("frames decoded/s: A {fa:.1}, B {fb:.1}");
    assert!(fa >= 15.0 && fb >= 15.0, "video frames decoded/s: A {fa:.1}, B {fb:.1}");

    // Mute stops what B hears; unmute brings it back; B sees A's media state.
    a.set_muted(true);
    bw.until("B's level drops when A mutes", |w| w.remote_db < -70.0).await;
    bw.until("B told A is muted", |w| w.remote_media.is_some_and(|(audio, _)| !audio)).await;
    a.set_muted(false);
    bw.until("B hears A again", |w| w.remote_db > -40.0).await;

    // Camera off: a renegotiate turns A's video m-line recvonly; B stops decoding.
    let before = a_pipe.log.lock().unwrap().len();
    a.set_camera(false);
    bw.until("B told A's camera is off", |w| w.remote_media.is_some_and(|(_, video)| !video)).await;
    let reneg = async |from: usize| {
        let deadline = Instant::now() + WAIT;
        loop {
            let found = a_pipe.log.lock().unwrap()[from..]
                .iter()
                .find(|s| matches!(s, CallSignal::Renegotiate { .. }))
                .cloned();
            if found.is_some() || Instant::now() > deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let r = reneg(before).await.expect("camera off renegotiates");
    let secs = media_sections(&sdp_lines(&r));
    assert_eq!(secs.len(), 2, "never adds an m-line");
    assert_eq!(direction(&secs[1]), "a=recvonly");
    let still = lowest_fps(&b).await;
    assert!(still < 1.0, "B still decodes {still:.1} frames/s with A's camera off");
    let before = a_pipe.log.lock().unwrap().len();
    a.set_camera(true);
    bw.until("B told A's camera is on", |w| w.remote_media.is_some_and(|(_, video)| video)).await;
    let r = reneg(before).await.expect("camera on renegotiates");
    assert_eq!(direction(&media_sections(&sdp_lines(&r))[1]), "a=sendrecv");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let back = best_fps(&b, 15.0).await;
    assert!(back >= 15.0, "B decodes {back:.1} frames/s after A's camera is back");

    // ICE restart: new credentials go out, the call keeps going.
    let before = a_pipe.log.lock().unwrap().len();
    let old_ufrag = ufrag(&offer);
    a.restart_ice();
    let restart = reneg(before).await.expect("an ICE restart renegotiates");
    assert_ne!(ufrag(&restart), old_ufrag, "an ICE restart has a new ufrag");
    let got = b.stats().await.packets_received;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stats_b = b.stats().await;
    assert!(stats_b.packets_received > got + 50, "media flows after the restart");
    bw.until("B still hears A after the restart", |w| w.remote_db > -40.0).await;
    assert_eq!(bw.state, Some(CallState::Connected));
    // The new path's RTT comes with the first RTCP receiver report after
    // the restart, which rtpbin sends at a random point of its interval
    // (seconds): it is waited for, not sampled once.
    let stats_a = timeout(WAIT, async {
        loop {
            let s = a.stats().await;
            if s.rtt_ms.is_some() {
                break s;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("A measures the new path's round trip");
    print_stats("A", &stats_a);
    assert_eq!(stats_a.candidate_type.as_deref(), Some("host"));
    assert!(stats_a.bytes_sent > 0 && stats_a.bytes_received > 0);
    assert!(stats_a.connected_ms.is_some() && stats_a.ice_state != "new");
    print_stats("B", &stats_b);

    // Hang-up on A ends both.
    a.hangup();
    let (ra, pa, _) = timeout(WAIT, a.ended()).await.expect("A ends");
    let (rb, pb, _) = timeout(WAIT, b.ended()).await.expect("B ends");
    assert_eq!((ra, pa), (EndReason::Hangup, false));
    assert_eq!((rb, pb), (EndReason::Hangup, true));

    // Each recording holds the other side's tone at a sane level.
    let (hz_a, db_a) = dominant(&wav_samples(&a_wav), 48_000.0);
    let (hz_b, db_b) = dominant(&wav_samples(&b_wav), 48_000.0);
    println!("A hears {hz_a} Hz at {db_a:.1} dBFS; B hears {hz_b} Hz at {db_b:.1} dBFS");
    assert!((hz_a - 660.0).abs() <= 10.0 && db_a > -30.0, "A heard {hz_a} Hz at {db_a:.1} dBFS");
    assert!((hz_b - 440.0).abs() <= 10.0 && db_b > -30.0, "B heard {hz_b} Hz at {db_b:.1} dBFS");
    let _ = std::fs::remove_dir_all(&dir);
}

fn ufrag(s: &CallSignal) -> Option<String> {
    sdp_lines(s).iter().find_map(|l| l.strip_prefix("a=ice-ufrag:").map(str::to_string))
}

fn print_stats(who: &str, s: &CallStats) {
    println!(
        "{who}: ice {} via {:?}, rtt {:?} ms, sent {} pkts / {} B, received {} pkts / {} B, lost {} ({:.1} %), level {:?}, frames decoded {} sent {}, connected {:?} ms",
        s.ice_state,
        s.candidate_type,
        s.rtt_ms,
        s.packets_sent,
        s.bytes_sent,
        s.packets_received,
        s.bytes_received,
        s.packets_lost,
        s.loss_pct,
        s.audio_level_dbfs,
        s.video_frames_decoded,
        s.video_frames_sent,
        s.connected_ms
    );
}

fn renegotiations(log: &std::sync::Mutex<Vec<CallSignal>>) -> usize {
    log.lock().unwrap().iter().filter(|s| matches!(s, CallSignal::Renegotiate { .. })).count()
}

async fn until_count(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn crossing_renegotiations_the_callee_yields_and_both_changes_land() {
    if !in_namespace("crossing_renegotiations_the_callee_yields_and_both_changes_land") {
        return;
    }
    let rt = runtime();
    rt.block_on(async {
        let dir = std::env::temp_dir().join(format!("courier-media-glare-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a_pipe, a_out) = pipe();
        let (b_pipe, b_out) = pipe();
        let (b, b_rx) = Call::start(
            CallOptions { iid: "g".into(), role: Role::Callee, media: media(660.0, dir.join("b.wav")) },
            b_pipe.clone(),
        )
        .unwrap();
        let (a, a_rx) = Call::start(
            CallOptions { iid: "g".into(), role: Role::Caller, media: media(440.0, dir.join("a.wav")) },
            a_pipe.clone(),
        )
        .unwrap();
        deliver(a_out, b.clone());
        deliver(b_out, a.clone());
        let (mut aw, mut bw) = (Watch::new(a_rx), Watch::new(b_rx));
        aw.until("A connected", |w| w.state == Some(CallState::Connected)).await;
        bw.until("B connected", |w| w.state == Some(CallState::Connected)).await;

        // Both turn their cameras off while neither hears the other: the offers cross.
        a_pipe.hold();
        b_pipe.hold();
        a.set_camera(false);
        b.set_camera(false);
        until_count("both renegotiate", || {
            renegotiations(&a_pipe.log) == 1 && renegotiations(&b_pipe.log) == 1
        })
        .await;
        a_pipe.release();
        b_pipe.release();
        // The caller ignored B's offer; B dropped its own, answered A, then offered again.
        until_count("B offers again after answering", || renegotiations(&b_pipe.log) == 2).await;
        let answers = |log: &std::sync::Mutex<Vec<CallSignal>>| {
            log.lock().unwrap().iter().filter(|s| matches!(s, CallSignal::Answer { .. })).count()
        };
        until_count("A answers B's second offer", || answers(&a_pipe.log) == 1).await;
        assert_eq!(answers(&b_pipe.log), 2, "B answered the first offer and A's crossing one");
        aw.until("A told B's camera is off", |w| w.remote_media.is_some_and(|(_, v)| !v)).await;
        bw.until("B told A's camera is off", |w| w.remote_media.is_some_and(|(_, v)| !v)).await;
        // Neither side decodes video now, and the call goes on.
        let (fa, fb) = (lowest_fps(&a).await, lowest_fps(&b).await);
        assert!(fa < 1.0 && fb < 1.0, "video still decoded with both cameras off: A {fa:.1}, B {fb:.1}");
        bw.until("B still hears A", |w| w.remote_db > -40.0).await;
        aw.until("A still hears B", |w| w.remote_db > -40.0).await;
        b.hangup();
        let (reason, by_peer, _) = timeout(WAIT, a.ended()).await.expect("A ends");
        assert_eq!((reason, by_peer), (EndReason::Hangup, true));
        let _ = std::fs::remove_dir_all(&dir);
    });
}
