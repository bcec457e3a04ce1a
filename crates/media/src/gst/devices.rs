//! Device listing (`gst::DeviceMonitor`) and the microphone test meter.

use tokio::sync::mpsc;

use crate::{Device, MediaError};

/// The capture and playback devices. Empty headless; never panics.
pub fn devices() -> Vec<Device> {
    Vec::new()
}

/// A mic test meter for Settings: levels (dBFS, about 10/s) of one
/// microphone until dropped.
pub struct MicTest {
    _p: (),
}

impl MicTest {
    /// Opens the microphone (`None`: the default).
    ///
    /// # Errors
    /// [`MediaError::Device`] when it cannot be opened,
    /// [`MediaError::Unavailable`] without GStreamer.
    pub fn start(_mic: Option<String>) -> Result<(MicTest, mpsc::UnboundedReceiver<f64>), MediaError> {
        Err(MediaError::Unavailable("not built yet".into()))
    }
}
