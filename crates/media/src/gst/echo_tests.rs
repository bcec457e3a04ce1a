//! Echo cancellation as a call sets it up: what the speaker plays passes an
//! echo probe, comes back into the microphone (attenuated, as a room would
//! return it) mixed with the person's own voice, and the voice processing
//! must take the echo out and leave the voice. No device exists here, so
//! the room is a mixer: the far end is a 440 Hz tone, the near end 1 kHz.

use std::sync::{Arc, Mutex};

use gst::prelude::*;

use super::*;

const RATE: f64 = 48_000.0;

fn tone(hz: f64, volume: f64) -> gst::Element {
    let e = make("audiotestsrc").unwrap();
    e.set_property("is-live", true);
    e.set_property_from_str("wave", "sine");
    e.set_property("freq", hz);
    e.set_property("volume", volume);
    e
}

/// The level (dBFS) of one frequency in a block (Goertzel).
fn level_at(x: &[f64], hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / RATE;
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for v in x {
        let s = v + c * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = (s1 * s1 + s2 * s2 - c * s1 * s2) * 2.0 / (x.len() as f64 * x.len() as f64);
    10.0 * (power / 2.0).max(1e-12).log10()
}

/// Runs the room for `secs` and returns the far-end (echo) and near-end
/// (voice) levels in dBFS over the last 2 s of what the microphone chain
/// lets through. `cancel`: the echo probe is given to the voice processing.
fn room(cancel: bool, secs: u64) -> (f64, f64) {
    super::super::init().unwrap();
    let pipeline = gst::Pipeline::new();
    let bin: &gst::Bin = pipeline.upcast_ref();
    let probe = probe_name();
    // The far end, played: probe, then a clocked "speaker".
    let tee = make("tee").unwrap();
    let speaker = make("fakesink").unwrap();
    speaker.set_property("sync", true);
    let far = [
        tone(440.0, 0.5),
        make("audioconvert").unwrap(),
        capsfilter(PCM).unwrap(),
        echo_probe(&probe).unwrap(),
    ];
    add_linked(bin, &[&far[0], &far[1], &far[2], &far[3], &tee]).unwrap();
    let q1 = make("queue").unwrap();
    add_linked(bin, &[&q1, &speaker]).unwrap();
    tee.link(&q1).unwrap();
    // The room: the echo comes back at a quarter of its level, plus the voice.
    let mixer = make("audiomixer").unwrap();
    let (q2, echo) = (make("queue").unwrap(), make("volume").unwrap());
    echo.set_property("volume", 0.25f64);
    add_linked(bin, &[&q2, &echo, &mixer]).unwrap();
    tee.link(&q2).unwrap();
    let voice = [tone(1000.0, 0.1), make("audioconvert").unwrap(), capsfilter(PCM).unwrap()];
    add_linked(bin, &[&voice[0], &voice[1], &voice[2]]).unwrap();
    voice[2].link(&mixer).unwrap();
    // The microphone chain.
    let dsp = voice_processing(cancel.then_some(probe.as_str())).unwrap();
    let sink = gst_app::AppSink::builder().sync(false).build();
    let got: Arc<Mutex<Vec<f64>>> = Arc::default();
    let g = got.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                if let Some(buf) = sample.buffer() {
                    let map = buf.map_readable().map_err(|_| gst::FlowError::Error)?;
                    let mut g = g.lock().unwrap();
                    g.extend(
                        map.chunks_exact(2).map(|b| f64::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0),
                    );
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    let mic = [capsfilter(PCM).unwrap(), dsp, make("audioconvert").unwrap(), capsfilter(PCM).unwrap()];
    add_linked(bin, &[&mic[0], &mic[1], &mic[2], &mic[3], sink.upcast_ref()]).unwrap();
    mixer.link(&mic[0]).unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    std::thread::sleep(std::time::Duration::from_secs(secs));
    pipeline.set_state(gst::State::Null).unwrap();
    let x = got.lock().unwrap();
    assert!(x.len() as f64 >= RATE * 3.0, "the microphone chain produced {} samples in {secs} s", x.len());
    let tail = &x[x.len() - 2 * RATE as usize..];
    (level_at(tail, 440.0), level_at(tail, 1000.0))
}

#[test]
fn the_echo_of_what_the_speaker_plays_is_taken_out_of_the_microphone() {
    let (echo_off, voice_off) = room(false, 8);
    let (echo_on, voice_on) = room(true, 8);
    println!(
        "echo {echo_off:.1} → {echo_on:.1} dBFS ({:.1} dB less); voice {voice_off:.1} → {voice_on:.1} dBFS",
        echo_off - echo_on
    );
    assert!(echo_off > -40.0, "without cancellation the echo is heard: {echo_off:.1} dBFS");
    assert!(echo_off - echo_on >= 15.0, "the echo is cut by {:.1} dB only", echo_off - echo_on);
    assert!(voice_on > -40.0, "the voice stays: {voice_on:.1} dBFS");
}
