//! Call media for Courier: one WebRTC session per accepted call, run in the
//! Rust process (never in the webview), and the negotiation rules of
//! protocol §12.
//!
//! # Layout
//! - [`config`]: what a call starts with ([`CallOptions`], sources and sinks).
//! - [`event`]: what it reports ([`CallEvent`], [`CallStats`], [`Device`]).
//! - [`machine`]: the sans-IO negotiation machine (offer/answer, glare,
//!   candidate buffering, ICE restart, the 30 s failure timer).
//! - `call`: the [`Call`] driver: a tokio task that feeds the machine from
//!   signals, commands and engine events, and carries out its actions.
//! - `gst`: the media engine over GStreamer `webrtcbin` (the only module that
//!   knows GStreamer), device listing and the mic test.
//! - [`screen`]: what a peer's signals may make this device do (the shape
//!   of descriptions, which candidates it sends checks to, how many).
//! - [`picture`]: the decoded pictures a UI gets (packed I420) and their
//!   scaling.
//! - `wav`: the 16-bit PCM WAV reader and writer for file sources and
//!   recordings.
//!
//! The whole design is described in docs/calls.md.

mod call;
pub mod config;
pub mod event;
mod gst;
pub mod machine;
pub mod picture;
pub mod screen;
mod wav;

pub use call::{Call, Signaler};
pub use config::{
    AudioSink, AudioSource, CallOptions, FrameOptions, MediaConfig, Role, VideoSource, test_media_from_env,
};
pub use courier_proto::call::{CallSignal, EndReason};
pub use event::{CallEvent, CallState, CallStats, Device, DeviceKind, warning};
pub use futures_util::future::BoxFuture;
pub use gst::devices::{MicTest, devices};

/// Why media could not start or went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// GStreamer, or one of the elements a call needs, is not installed.
    #[error("media unavailable: {0}")]
    Unavailable(String),
    /// A device could not be opened.
    #[error("device: {0}")]
    Device(String),
    /// The session descriptions could not be applied or created.
    #[error("negotiation: {0}")]
    Negotiation(String),
    /// The call is over.
    #[error("call closed")]
    Closed,
}
