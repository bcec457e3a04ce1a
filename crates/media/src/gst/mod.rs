//! The media engine over GStreamer `webrtcbin`: the only module that knows
//! GStreamer.
//!
//! - `session`: one webrtcbin session ([`session::Session`]): negotiation
//!   calls, mute, camera, stats, bandwidth adaptation.
//! - `chains`: the send and receive element chains (sources with device
//!   fallback, echo cancellation, encoders, decoders, sinks, frame taps).
//! - `stats`: reading webrtcbin's `get-stats` report.
//! - `devices`: `gst::DeviceMonitor` listing and the mic test.
//! - `swap`: switching a source or sink in a playing pipeline.
//! - `dtls`: the session's DTLS certificate (ECDSA, as every stack takes).
//! - `pt`: following an offer's payload type numbers when answering.
//! - `receive`: decoding what the peer sends (Opus and VP8 only, pictures
//!   of bounded size).

pub mod chains;
pub mod devices;
pub mod dtls;
pub mod pt;
pub mod receive;
pub mod session;
pub mod stats;
pub mod swap;

use gst::prelude::*;

use crate::MediaError;

/// Initialises GStreamer once and checks the elements every call needs.
pub fn init() -> Result<(), MediaError> {
    static CHECK: std::sync::OnceLock<Result<(), MediaError>> = std::sync::OnceLock::new();
    CHECK
        .get_or_init(|| {
            gst::init().map_err(|e| MediaError::Unavailable(format!("GStreamer: {e}")))?;
            let needed = [
                "webrtcbin", "nicesrc", "dtlssrtpenc", "opusenc", "opusdec", "rtpopuspay",
                "vp8enc", "vp8dec", "rtpvp8pay", "rtpopusdepay", "rtpvp8depay", "decodebin", "audiotestsrc", "videotestsrc",
                "audioconvert", "audioresample", "videoconvert", "videoscale", "level", "volume",
                "valve", "appsink", "appsrc",
            ];
            let missing: Vec<&str> =
                needed.into_iter().filter(|n| gst::ElementFactory::find(n).is_none()).collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(MediaError::Unavailable(format!(
                    "GStreamer elements missing: {} (install the GStreamer base, good and bad plug-ins and gstreamer1.0-nice)",
                    missing.join(", ")
                )))
            }
        })
        .clone()
}

/// Makes an element or says which one is missing.
pub fn make(factory: &str) -> Result<gst::Element, MediaError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| MediaError::Unavailable(format!("GStreamer element {factory} is missing")))
}

/// Makes a `capsfilter` from a caps string.
pub fn capsfilter(caps: &str) -> Result<gst::Element, MediaError> {
    let caps: gst::Caps = caps.parse().map_err(|_| MediaError::Unavailable(format!("bad caps {caps}")))?;
    gst::ElementFactory::make("capsfilter")
        .property("caps", &caps)
        .build()
        .map_err(|_| MediaError::Unavailable("GStreamer element capsfilter is missing".into()))
}

/// Adds elements to a bin and links them in order.
pub fn add_linked(bin: &gst::Bin, elements: &[&gst::Element]) -> Result<(), MediaError> {
    bin.add_many(elements.iter().copied()).map_err(|e| MediaError::Unavailable(format!("add: {e}")))?;
    gst::Element::link_many(elements.iter().copied())
        .map_err(|e| MediaError::Negotiation(format!("link: {e}")))?;
    for e in elements {
        let _ = e.sync_state_with_parent();
    }
    Ok(())
}

/// A level element's RMS (dB, first channel) floored at −100.
pub fn rms_db(s: &gst::StructureRef) -> Option<f64> {
    let rms = s.get::<gst::glib::ValueArray>("rms").ok()?;
    let v = rms.iter().filter_map(|v| v.get::<f64>().ok()).fold(f64::NEG_INFINITY, f64::max);
    Some(if v.is_finite() { v.max(-100.0) } else { -100.0 })
}
