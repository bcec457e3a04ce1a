//! The media engine over GStreamer `webrtcbin`: the only module that knows
//! GStreamer.

pub mod devices;
