//! Device listing (`gst::DeviceMonitor`) and the microphone test meter.

use gst::prelude::*;
use tokio::sync::mpsc;

use super::{add_linked, capsfilter, chains, make};
use crate::{Device, DeviceKind, MediaError};

fn kind_of(class: &str) -> Option<DeviceKind> {
    match class {
        "Audio/Source" => Some(DeviceKind::Mic),
        "Audio/Sink" => Some(DeviceKind::Speaker),
        "Video/Source" => Some(DeviceKind::Camera),
        _ => None,
    }
}

/// A stable id: the system's own name for the device where it has one
/// (PulseAudio `device.name`, ALSA/V4L2 paths), else its display name.
fn id_of(d: &gst::Device) -> String {
    let props = d.properties();
    let from = |k: &str| props.as_ref().and_then(|p| p.get::<String>(k).ok());
    from("device.name")
        .or_else(|| from("api.v4l2.path"))
        .or_else(|| from("device.path"))
        .or_else(|| from("api.alsa.path"))
        .unwrap_or_else(|| d.display_name().to_string())
}

fn monitor_devices() -> Vec<(Device, gst::Device)> {
    if super::init().is_err() {
        return Vec::new();
    }
    let monitor = gst::DeviceMonitor::new();
    for class in ["Audio/Source", "Audio/Sink", "Video/Source"] {
        let _ = monitor.add_filter(Some(class), None);
    }
    if monitor.start().is_err() {
        return Vec::new();
    }
    let found = monitor
        .devices()
        .into_iter()
        .filter_map(|d| {
            let class = d.device_class();
            let kind = ["Audio/Source", "Audio/Sink", "Video/Source"]
                .into_iter()
                .find(|c| class.split('/').take(2).collect::<Vec<_>>().join("/") == *c)
                .and_then(kind_of)?;
            Some((Device { id: id_of(&d), name: d.display_name().to_string(), kind }, d))
        })
        .collect();
    monitor.stop();
    found
}

/// The capture and playback devices. Empty headless; never panics.
pub fn devices() -> Vec<Device> {
    monitor_devices().into_iter().map(|(d, _)| d).collect()
}

/// The GStreamer device with this kind and id.
pub fn find(kind: DeviceKind, id: &str) -> Option<gst::Device> {
    monitor_devices().into_iter().find(|(d, _)| d.kind == kind && d.id == id).map(|(_, g)| g)
}

/// A mic test meter for Settings: levels (dBFS, about 10/s) of one
/// microphone until dropped.
pub struct MicTest {
    pipeline: gst::Pipeline,
}

impl MicTest {
    /// Opens the microphone (`None`: the default).
    ///
    /// # Errors
    /// [`MediaError::Device`] when there is no such microphone or it cannot
    /// be opened, [`MediaError::Unavailable`] without GStreamer.
    pub fn start(mic: Option<String>) -> Result<(MicTest, mpsc::UnboundedReceiver<f64>), MediaError> {
        super::init()?;
        let src = chains::device_element(DeviceKind::Mic, mic.as_deref())
            .ok_or_else(|| MediaError::Device("no microphone".into()))?;
        let pipeline = gst::Pipeline::new();
        let level = make("level")?;
        level.set_property("interval", 100_000_000u64);
        add_linked(
            pipeline.upcast_ref(),
            &[
                &src,
                &make("audioconvert")?,
                &capsfilter("audio/x-raw,channels=1")?,
                &level,
                &chains::fakesink()?,
            ],
        )?;
        let (tx, rx) = mpsc::unbounded_channel();
        let bus = pipeline.bus().ok_or_else(|| MediaError::Unavailable("bus".into()))?;
        bus.set_sync_handler(move |_, msg| {
            if let gst::MessageView::Element(e) = msg.view()
                && let Some(db) = e.structure().filter(|s| s.name() == "level").and_then(super::rms_db)
            {
                let _ = tx.send(db);
            }
            gst::BusSyncReply::Drop
        });
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| MediaError::Device("the microphone would not start".into()))?;
        Ok((MicTest { pipeline }, rx))
    }
}

impl Drop for MicTest {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
