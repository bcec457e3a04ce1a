//! What a running call reports: its state, levels, stats, frames and
//! device warnings; and the devices a machine has.

use bytes::Bytes;
use courier_proto::call::EndReason;

/// Where a call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    /// Negotiating, ICE not connected yet.
    Connecting,
    /// ICE (and DTLS) connected: media flows.
    Connected,
    /// ICE was lost; an ICE restart is under way.
    Reconnecting,
    /// Over. `by_peer`: the other side (or the server's `gone`) ended it.
    Ended { reason: EndReason, by_peer: bool },
}

/// A snapshot of the call's transport and media counters.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct CallStats {
    /// "new" | "checking" | "connected" | "completed" | "failed" | "disconnected" | "closed".
    pub ice_state: String,
    /// Local candidate type of the selected pair: host | srflx | prflx | relay.
    pub candidate_type: Option<String>,
    pub rtt_ms: Option<f64>,
    /// RTP packets and payload bytes, audio and video together.
    pub packets_sent: u64,
    pub packets_received: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// As the receiver reports it (may be negative with duplicates).
    pub packets_lost: i64,
    pub loss_pct: f64,
    /// Level of what we hear (remote), recent RMS in dBFS.
    pub audio_level_dbfs: Option<f64>,
    pub video_frames_decoded: u64,
    pub video_frames_sent: u64,
    /// Milliseconds since ICE first connected.
    pub connected_ms: Option<u64>,
    /// The VP8 encoder's target bitrate (kbit/s) while the camera sends:
    /// what the loss-based rate control has settled on.
    pub video_target_kbps: Option<u32>,
}

/// Everything a call tells its owner, in order, on the channel
/// [`Call::start`](crate::Call::start) returns.
#[derive(Debug, Clone, PartialEq)]
pub enum CallEvent {
    State(CallState),
    /// The peer's mute/camera state (from its `media` signal).
    RemoteMedia {
        audio: bool,
        video: bool,
    },
    /// Levels in dBFS (about 10/s): what we send (mic) and what we hear.
    /// Silence is −100.
    Levels {
        local: f64,
        remote: f64,
    },
    /// About every second while the call runs.
    Stats(CallStats),
    /// A decoded frame (only with `MediaConfig.frames`): packed I420,
    /// [`crate::picture::i420_len`]`(width, height)` bytes.
    /// `remote: false` is the self-view.
    Frame {
        remote: bool,
        width: u32,
        height: u32,
        i420: Bytes,
    },
    /// A problem that does not end the call; `code` is one of [`warning`].
    Warning {
        code: String,
        message: String,
    },
}

/// The codes of [`CallEvent::Warning`] (a UI words the first three itself
/// and shows the message of the others).
pub mod warning {
    /// No camera: the call is audio only.
    pub const NO_CAMERA: &str = "no_camera";
    /// No microphone: the call is listen only.
    pub const NO_MICROPHONE: &str = "no_microphone";
    /// No speaker: received audio is not played.
    pub const NO_SPEAKER: &str = "no_speaker";
    /// Any other device problem (a file that cannot be played or recorded,
    /// a device that cannot be switched to).
    pub const DEVICE: &str = "device";
    /// The media engine reported an error (the call may still recover).
    pub const MEDIA: &str = "media";
}

/// What a device is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    Mic,
    Camera,
    Speaker,
}

/// One capture or playback device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Stable within a session: pass it back in `AudioSource::Device` etc.
    pub id: String,
    /// For people.
    pub name: String,
    pub kind: DeviceKind,
}
