//! An answerer whose media is already running takes another stack's payload
//! numbers without deadlocking webrtcbin (see [`Gate`]).

use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::*;
use crate::config::{AudioSink, AudioSource, VideoSource};

fn media() -> MediaConfig {
    MediaConfig {
        ice_servers: Vec::new(),
        audio_in: AudioSource::Tone(440.0),
        audio_out: AudioSink::Discard,
        video_in: VideoSource::Test,
        video: true,
        frames: None,
    }
}

/// Waits for the session's next description (offer or answer).
fn description(rx: &mut mpsc::UnboundedReceiver<EngineEvent>, wait: Duration) -> Option<String> {
    let end = Instant::now() + wait;
    while Instant::now() < end {
        match rx.try_recv() {
            Ok(EngineEvent::Description { sdp, .. }) => return Some(sdp),
            Ok(EngineEvent::Error(e)) => panic!("session error: {e}"),
            Ok(_) => {}
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    None
}

/// Renumbers one payload type everywhere an SDP names it (m-line format
/// lists and `a=rtpmap/fmtp/rtcp-fb` attributes).
fn renumber(sdp: &str, from: u32, to: u32) -> String {
    let (from, to) = (from.to_string(), to.to_string());
    sdp.split("\r\n")
        .map(|line| {
            if line.starts_with("m=") {
                line.split(' ').map(|t| if t == from { to.as_str() } else { t }).collect::<Vec<_>>().join(" ")
            } else if let Some((attr, rest)) = line.split_once(':')
                && ["a=rtpmap", "a=fmtp", "a=rtcp-fb"].contains(&attr)
                && let Some((pt, tail)) = rest.split_once(' ')
                && pt == from
            {
                format!("{attr}:{to} {tail}")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// Counts the buffers our audio chain has pushed toward webrtcbin's input
/// (counted upstream of the gate, so with or without it).
fn count_sent(session: &Session) -> Arc<AtomicUsize> {
    let n = Arc::new(AtomicUsize::new(0));
    let filter = session.webrtc.static_pad("sink_0").and_then(|p| p.peer()).and_then(|p| p.parent_element());
    let sink = filter.and_then(|f| f.static_pad("sink")).expect("the audio chain's last element");
    let c = n.clone();
    sink.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        c.fetch_add(1, Ordering::Relaxed);
        gst::PadProbeReturn::Ok
    });
    n
}

fn answer_a_renumbered_offer(gated: bool, wait: Duration) -> Option<String> {
    crate::gst::init().unwrap();
    let (otx, mut orx) = mpsc::unbounded_channel();
    let (atx, mut arx) = mpsc::unbounded_channel();
    let (ctx, _crx) = mpsc::unbounded_channel();
    let offerer = Session::start(&media(), false, otx.clone(), ctx.clone()).unwrap();
    let answerer = Session::start(&media(), false, atx.clone(), ctx).unwrap();
    if !gated {
        // Media let in before the offer: no gate, and no DTLS check either
        // (which also keeps media out of webrtcbin until the handshake).
        answerer.gate.open();
        answerer.check.pass_unchecked();
    }
    // The answerer's media is running and has reached its last element
    // before the offer comes (the case that deadlocked). Without the gate
    // one buffer gets that far: webrtcbin holds it, and the chain stalls.
    let sent = count_sent(&answerer);
    let end = Instant::now() + Duration::from_secs(20);
    while sent.load(Ordering::Relaxed) == 0 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(sent.load(Ordering::Relaxed) > 0, "the answerer's audio never ran");
    std::thread::sleep(Duration::from_millis(200));

    offerer.create_offer(&otx, false);
    let offer = description(&mut orx, Duration::from_secs(20)).expect("an offer");
    // Another stack's numbers (aiortc's: Opus 96, VP8 97).
    let offer = renumber(&renumber(&offer, super::super::pt::VP8_PT, 97), super::super::pt::OPUS_PT, 96);
    assert_eq!(super::super::pt::offered(&offer), (Some(96), Some(97)));
    // On its own thread: a deadlocked apply never returns.
    let answerer = Arc::new(answerer);
    let a = answerer.clone();
    std::thread::spawn(move || a.apply_offer(&atx, &offer));
    let answer = description(&mut arx, wait);
    if answer.is_some() {
        answerer.close();
    }
    offerer.close();
    answer
}

#[test]
fn a_running_answerer_takes_another_stacks_payload_numbers() {
    let answer = answer_a_renumbered_offer(true, Duration::from_secs(30))
        .expect("an answer (none: webrtcbin deadlocked)");
    assert_eq!(super::super::pt::offered(&answer), (Some(96), Some(97)), "{answer}");
    assert!(answer.contains("a=rtpmap:96 OPUS/48000/2"), "{answer}");
}

/// The test above fails without the gate: the same offer, media let in
/// early, gets no answer (webrtcbin 1.22; the deadlocked session is
/// leaked). Should a later GStreamer answer here, the gate can go.
#[test]
fn without_the_gate_the_same_answerer_deadlocks() {
    let answer = answer_a_renumbered_offer(false, Duration::from_secs(10));
    assert!(answer.is_none(), "answered without the gate: webrtcbin no longer holds the stream lock");
}
