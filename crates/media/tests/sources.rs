//! Sources and sinks around a call: missing devices are warnings (never a
//! crash), a WAV file is played looped, and decoded frames reach the owner
//! as packed I420.

mod support;

use std::time::{Duration, Instant};

use courier_media::{
    AudioSink, AudioSource, Call, CallEvent, CallOptions, CallSignal, CallState, DeviceKind, FrameOptions,
    MediaConfig, Role, VideoSource,
};
use tokio::time::timeout;

use support::{deliver, dominant, in_namespace, pipe, runtime as rt, wav_samples};

#[test]
fn missing_devices_are_warnings_and_the_call_still_offers() {
    rt().block_on(async {
        let have = courier_media::devices();
        let has = |k: DeviceKind| have.iter().any(|d| d.kind == k);
        let (signals, _rx) = pipe();
        let opts = CallOptions {
            iid: "i1".into(),
            role: Role::Caller,
            media: MediaConfig { video: true, ..MediaConfig::default() },
        };
        let (call, mut events) = Call::start(opts, signals.clone()).expect("a call starts without devices");
        let mut codes = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while signals.log.lock().unwrap().is_empty() && Instant::now() < deadline {
            if let Ok(Some(CallEvent::Warning { code, .. })) =
                timeout(Duration::from_millis(100), events.recv()).await
            {
                codes.push(code);
            }
        }
        while let Ok(e) = events.try_recv() {
            if let CallEvent::Warning { code, .. } = e {
                codes.push(code);
            }
        }
        for (kind, code) in [
            (DeviceKind::Mic, "no_microphone"),
            (DeviceKind::Camera, "no_camera"),
            (DeviceKind::Speaker, "no_speaker"),
        ] {
            if !has(kind) {
                assert!(codes.iter().any(|c| c == code), "no {code} warning in {codes:?}");
            }
        }
        let offer = signals.log.lock().unwrap().first().cloned();
        let Some(CallSignal::Offer { sdp, .. }) = offer else { panic!("no offer: {offer:?}") };
        let video = sdp.split("m=video").nth(1).expect("a video m-line");
        if !has(DeviceKind::Camera) {
            assert!(video.contains("a=recvonly"), "without a camera the video m-line is recvonly");
            call.set_camera(true);
            let w = timeout(Duration::from_secs(5), async {
                loop {
                    if let Some(CallEvent::Warning { code, .. }) = events.recv().await {
                        break code;
                    }
                }
            });
            assert_eq!(w.await.expect("a warning"), "no_camera");
        }
        // Switching to a device that is not there is a warning, not an end.
        call.set_devices(Some("no-such-mic".into()), None, None);
        let w = timeout(Duration::from_secs(5), async {
            loop {
                if let Some(CallEvent::Warning { code, message }) = events.recv().await {
                    break (code, message);
                }
            }
        });
        let (code, message) = w.await.expect("a warning");
        assert_eq!(code, "device");
        assert!(message.contains("no-such-mic"), "{message}");
        call.hangup();
        let (reason, by_peer, _) = call.ended().await;
        assert_eq!((reason, by_peer), (courier_media::EndReason::Hangup, false));
    });
}

/// Writes a 16-bit mono WAV of a sine.
fn tone_wav(path: &std::path::Path, hz: f64, rate: u32, secs: f64) {
    let n = (f64::from(rate) * secs) as usize;
    let data: Vec<u8> = (0..n)
        .flat_map(|i| {
            let v = 0.4 * (2.0 * std::f64::consts::PI * hz * i as f64 / f64::from(rate)).sin();
            ((v * 32767.0) as i16).to_le_bytes()
        })
        .collect();
    let mut f = Vec::new();
    f.extend_from_slice(b"RIFF");
    f.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    f.extend_from_slice(b"WAVEfmt \x10\0\0\0\x01\0\x01\0");
    f.extend_from_slice(&rate.to_le_bytes());
    f.extend_from_slice(&(rate * 2).to_le_bytes());
    f.extend_from_slice(b"\x02\0\x10\0data");
    f.extend_from_slice(&(data.len() as u32).to_le_bytes());
    f.extend_from_slice(&data);
    std::fs::write(path, f).unwrap();
}

#[test]
fn a_wav_file_is_played_looped_and_frames_arrive_as_i420() {
    if !in_namespace("a_wav_file_is_played_looped_and_frames_arrive_as_rgba") {
        return;
    }
    rt().block_on(async {
        let dir = std::env::temp_dir().join(format!("courier-media-sources-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (play, heard) = (dir.join("play.wav"), dir.join("heard.wav"));
        // A 16 kHz file of 0.3 s: resampled, and looped many times over the call.
        tone_wav(&play, 550.0, 16_000, 0.3);
        let frames = FrameOptions { max_width: 320, max_height: 240, fps: 15 };
        let media = |audio_in, audio_out, frames| MediaConfig {
            ice_servers: Vec::new(),
            audio_in,
            audio_out,
            video_in: VideoSource::Test,
            video: true,
            frames,
        };
        let (a_pipe, a_out) = pipe();
        let (b_pipe, b_out) = pipe();
        let (b, mut b_rx) = Call::start(
            CallOptions {
                iid: "i2".into(),
                role: Role::Callee,
                media: media(AudioSource::Silence, AudioSink::Record(heard.clone()), Some(frames)),
            },
            b_pipe,
        )
        .unwrap();
        let (a, _a_rx) = Call::start(
            CallOptions {
                iid: "i2".into(),
                role: Role::Caller,
                media: media(AudioSource::File(play.clone()), AudioSink::Discard, None),
            },
            a_pipe,
        )
        .unwrap();
        deliver(a_out, b.clone());
        deliver(b_out, a.clone());
        let (mut remote, mut local, mut connected) = (0, 0, false);
        let deadline = Instant::now() + Duration::from_secs(30);
        while (remote < 30 || local < 30 || !connected) && Instant::now() < deadline {
            match timeout(Duration::from_secs(1), b_rx.recv()).await {
                Ok(Some(CallEvent::Frame { remote: r, width, height, i420 })) => {
                    assert!(width <= 320 && height <= 240 && width > 0 && height > 0, "{width}x{height}");
                    assert_eq!(i420.len(), courier_media::picture::i420_len(width, height));
                    if r { remote += 1 } else { local += 1 }
                }
                Ok(Some(CallEvent::State(CallState::Connected))) => connected = true,
                _ => {}
            }
        }
        assert!(
            connected && remote >= 30 && local >= 30,
            "connected {connected}, frames remote {remote}, self-view {local}"
        );
        // An owner that stops reading holds at most 3 frames per stream: the
        // rest are skipped, not queued.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut queued = 0;
        while let Ok(e) = b_rx.try_recv() {
            if matches!(e, CallEvent::Frame { .. }) {
                queued += 1;
            }
        }
        assert!((1..=6).contains(&queued), "{queued} frames queued for an owner that stopped reading");
        tokio::time::sleep(Duration::from_secs(2)).await;
        a.hangup();
        b.ended().await;
        let (hz, db) = dominant(&wav_samples(&heard), 48_000.0);
        assert!((hz - 550.0).abs() <= 10.0 && db > -30.0, "heard {hz} Hz at {db:.1} dBFS");
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// A caller whose camera is the test pattern (on from the start or not),
/// with frames for its owner.
fn test_camera_call(iid: &str, video: bool, frames: FrameOptions) -> CallOptions {
    CallOptions {
        iid: iid.into(),
        role: Role::Caller,
        media: MediaConfig {
            video_in: VideoSource::Test,
            video,
            frames: Some(frames),
            ..MediaConfig::default()
        },
    }
}

/// Self-view frames that arrive within `wait`.
async fn self_view_frames(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<CallEvent>,
    wait: Duration,
) -> usize {
    let (mut n, end) = (0, Instant::now() + wait);
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match timeout(left, events.recv()).await {
            Ok(Some(CallEvent::Frame { remote: false, .. })) => n += 1,
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    n
}

#[test]
fn an_audio_call_keeps_the_camera_closed_until_it_is_turned_on() {
    rt().block_on(async {
        let (signals, _rx) = pipe();
        let opts = test_camera_call("i3", false, FrameOptions { max_width: 160, max_height: 120, fps: 15 });
        let (call, mut events) = Call::start(opts, signals).expect("a call starts");
        assert_eq!(
            self_view_frames(&mut events, Duration::from_secs(3)).await,
            0,
            "no picture while the camera is off"
        );
        call.set_camera(true);
        let mut on = 0;
        let deadline = Instant::now() + Duration::from_secs(20);
        while on < 5 && Instant::now() < deadline {
            on += self_view_frames(&mut events, Duration::from_millis(500)).await;
        }
        assert!(on >= 5, "the camera turned on gives a self-view ({on} frames)");
        call.set_camera(false);
        let _ = self_view_frames(&mut events, Duration::from_secs(1)).await;
        assert_eq!(self_view_frames(&mut events, Duration::from_secs(2)).await, 0, "off again: no picture");
        call.hangup();
    });
}

/// A box GStreamer fills with a picture whose rows it pads (chroma 50 wide,
/// stride 52): the tap packs the planes, each sample where it belongs. The
/// test pattern is a white ball on black, so every chroma sample is
/// neutral and the luma stays in video range: a plane read at a wrong
/// offset or stride shows up as luma among the chroma.
#[test]
fn padded_planes_are_packed_without_their_padding() {
    rt().block_on(async {
        let (signals, _rx) = pipe();
        let opts = test_camera_call("i5", true, FrameOptions { max_width: 100, max_height: 75, fps: 15 });
        let (call, mut events) = Call::start(opts, signals).expect("a call starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut checked = 0;
        while checked < 3 && Instant::now() < deadline {
            let Ok(Some(CallEvent::Frame { remote: false, width, height, i420 })) =
                timeout(Duration::from_secs(1), events.recv()).await
            else {
                continue;
            };
            assert_eq!((width, height), (100, 75));
            assert_eq!(i420.len(), courier_media::picture::i420_len(width, height));
            let (y, uv) = i420.split_at((width * height) as usize);
            assert!(y.iter().all(|&v| (12..=240).contains(&v)), "luma in video range");
            assert!(y.iter().any(|&v| v > 128), "the ball is in the picture");
            let off = uv.iter().filter(|&&v| v.abs_diff(128) > 8).count();
            assert_eq!(off, 0, "every chroma sample neutral ({off} of {} are not)", uv.len());
            checked += 1;
        }
        assert_eq!(checked, 3, "self-view pictures arrived");
        call.hangup();
    });
}

/// A signaler whose sends take a while (a slow link to the server).
struct SlowSignaler(std::sync::Arc<std::sync::Mutex<Vec<CallSignal>>>);

impl courier_media::Signaler for SlowSignaler {
    fn send(&self, signal: CallSignal) -> courier_media::BoxFuture<'static, Result<(), String>> {
        let log = self.0.clone();
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            log.lock().unwrap().push(signal);
            Ok(())
        })
    }
}

#[test]
fn ended_returns_once_the_end_has_been_sent() {
    rt().block_on(async {
        let sent = std::sync::Arc::default();
        let signaler = std::sync::Arc::new(SlowSignaler(std::sync::Arc::clone(&sent)));
        let opts = CallOptions { iid: "i4".into(), role: Role::Caller, media: MediaConfig::default() };
        let (call, _events) = Call::start(opts, signaler).expect("a call starts");
        call.hangup();
        call.ended().await;
        let sent = sent.lock().unwrap();
        assert!(
            matches!(sent.last(), Some(CallSignal::End { .. })),
            "a process may exit right after ended(): the end must be out ({sent:?})"
        );
    });
}
