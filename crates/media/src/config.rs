//! What a call is started with: the role, the ICE servers and where media
//! comes from and goes to.

use std::path::PathBuf;

use courier_proto::IceServer;

/// Which side of the invitation this device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sent the invitation; sends the first offer and is the impolite peer.
    Caller,
    /// Accepted it; answers, and is the polite peer when offers cross.
    Callee,
}

/// Where outgoing audio comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum AudioSource {
    /// A microphone by [`Device::id`](crate::Device); `None` is the system default.
    /// Echo cancellation and noise suppression (`webrtcdsp`) run on this source only.
    Device(Option<String>),
    /// A sine tone of this many Hz (tests, bots).
    Tone(f64),
    /// A 16-bit PCM WAV file, looped.
    File(PathBuf),
    /// Nothing (digital silence is still sent so the peer's jitter buffer runs).
    Silence,
}

/// Where incoming audio goes.
#[derive(Debug, Clone, PartialEq)]
pub enum AudioSink {
    /// A speaker by [`Device::id`](crate::Device); `None` is the system default.
    Device(Option<String>),
    /// A 16-bit PCM WAV file (48 kHz mono), rewritten header on close.
    Record(PathBuf),
    /// Decode and meter, but play nowhere.
    Discard,
}

/// Where outgoing video comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum VideoSource {
    /// A camera by [`Device::id`](crate::Device); `None` is the system default.
    Device(Option<String>),
    /// A `videotestsrc` pattern, 640×480 at 30 fps.
    Test,
    /// No camera: the video m-line stays `recvonly`.
    None,
}

/// Decoded frames for a UI (see [`CallEvent::Frame`](crate::CallEvent)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameOptions {
    /// Frames are scaled down (aspect kept) to fit this box.
    pub max_width: u32,
    pub max_height: u32,
    /// At most this many frames a second per stream.
    pub fps: u32,
}

/// The media side of one call.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaConfig {
    /// From the `hello` ok (or the `ice` op); STUN and TURN.
    pub ice_servers: Vec<IceServer>,
    pub audio_in: AudioSource,
    pub audio_out: AudioSink,
    pub video_in: VideoSource,
    /// Send video from the start (the caller asked for video / the callee has its camera on).
    pub video: bool,
    /// Deliver decoded remote video (and the local self-view) as `CallEvent::Frame`;
    /// `None` only counts decoded frames.
    pub frames: Option<FrameOptions>,
}

impl Default for MediaConfig {
    /// Devices, audio only, no frames, no ICE servers.
    fn default() -> Self {
        MediaConfig {
            ice_servers: Vec::new(),
            audio_in: AudioSource::Device(None),
            audio_out: AudioSink::Device(None),
            video_in: VideoSource::Device(None),
            video: false,
            frames: None,
        }
    }
}

/// Everything [`Call::start`](crate::Call::start) needs.
#[derive(Debug, Clone, PartialEq)]
pub struct CallOptions {
    /// The invitation id; the call's signals go to `{"call":iid}`.
    pub iid: String,
    pub role: Role,
    pub media: MediaConfig,
}

/// The test switch (docs/calls.md): with `COURIER_TEST_MEDIA=1` in the
/// environment, a UI uses these sources instead of devices (Xvfb has none):
/// a 440 Hz tone, the test video pattern, and received audio decoded and
/// discarded. `None` when the switch is off. ICE servers, `video` and
/// `frames` are the caller's to set.
pub fn test_media_from_env() -> Option<MediaConfig> {
    let on = std::env::var("COURIER_TEST_MEDIA").is_ok_and(|v| v == "1");
    on.then(|| MediaConfig {
        audio_in: AudioSource::Tone(440.0),
        audio_out: AudioSink::Discard,
        video_in: VideoSource::Test,
        ..MediaConfig::default()
    })
}
