//! The [`Call`] handle and its driver task.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use tokio::sync::mpsc;

use crate::{CallEvent, CallOptions, CallSignal, CallStats, EndReason, MediaError};

/// How call signals leave this device. The CLI and the app implement it with
/// `courier_client::Client::call_signal(iid, signal)` (a `signal` to
/// `{"call":iid}`). Signals are sent in the order `send` is called; the call
/// does not wait for one to finish before starting the next send.
pub trait Signaler: Send + Sync + 'static {
    /// Sends one signal. An error is logged; the call goes on (the 30 s
    /// failure timer ends a call whose peer never hears it).
    fn send(&self, signal: CallSignal) -> BoxFuture<'static, Result<(), String>>;
}

/// One running call. Cheap to clone (an `Arc` inside). Dropping the last
/// clone hangs up.
#[derive(Clone)]
pub struct Call {
    _inner: Arc<()>,
}

impl Call {
    /// Starts the media session and the negotiation machine on the current
    /// tokio runtime. The caller sends the offer at once (the invitation is
    /// already accepted); the callee waits for it.
    ///
    /// # Errors
    /// [`MediaError::Unavailable`] when GStreamer or a needed element is
    /// missing. A missing device is not an error: it is a
    /// [`CallEvent::Warning`] and the call goes on without it.
    pub fn start(
        _opts: CallOptions,
        _signaler: Arc<dyn Signaler>,
    ) -> Result<(Call, mpsc::UnboundedReceiver<CallEvent>), MediaError> {
        Err(MediaError::Unavailable("not built yet".into()))
    }

    /// Feeds a call signal that arrived for this call (from the other call
    /// device, or the server's `gone`).
    pub fn on_signal(&self, _signal: CallSignal) {}

    /// Sends `end{hangup}` and closes the media.
    pub fn hangup(&self) {}

    /// Mutes or unmutes the microphone; sends `media{…}`.
    pub fn set_muted(&self, _muted: bool) {}

    /// Turns the camera on or off: a direction change by `renegotiate`
    /// (never a new m-line); sends `media{…}`.
    pub fn set_camera(&self, _on: bool) {}

    /// Switches devices mid-call; `None` leaves that one as it is.
    pub fn set_devices(&self, _mic: Option<String>, _camera: Option<String>, _speaker: Option<String>) {}

    /// The current counters.
    pub async fn stats(&self) -> CallStats {
        CallStats::default()
    }

    /// Waits for the end; returns the reason, whether the peer ended it, and
    /// the final stats.
    pub async fn ended(&self) -> (EndReason, bool, CallStats) {
        (EndReason::Failed, false, CallStats::default())
    }
}
