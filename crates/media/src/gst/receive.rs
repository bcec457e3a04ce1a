//! What a peer's media may make this device decode, and how big.
//!
//! `decodebin` plugs whatever decoder the system has for a stream's caps
//! (H.264 through libav, or any other installed plug-in), and the caps
//! follow the peer's description. The receiving `decodebin`s go on only
//! with Opus and VP8 ([`restrict`]); any other stream is discarded
//! undecoded.
//!
//! A VP8 key frame says its picture size in its first ten bytes, up to
//! 16383×16383: libvpx allocates its frame buffers for that size (about
//! 400 MB a picture, several of them) before decoding anything. Key
//! frames larger than [`MAX_PICTURE_PIXELS`] (or wider or taller than
//! [`MAX_PICTURE_SIDE`]) are dropped before the decoder, with the frames
//! that depend on them, until a key frame of an acceptable size comes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use gst::prelude::*;

#[cfg(test)]
use super::make;

/// The largest remote picture decoded: 1920×1088 (Full HD in whole
/// macroblocks). Ours are at most 1280×720.
pub const MAX_PICTURE_PIXELS: u64 = 1920 * 1088;
/// The widest or tallest remote picture decoded.
pub const MAX_PICTURE_SIDE: u32 = 4096;

/// The picture size a VP8 frame declares, if it is a key frame
/// (RFC 6386 §9.1: a 3-byte tag whose lowest bit is 0, the start code
/// 9d 01 2a, then 14-bit width and height, little-endian).
pub fn vp8_keyframe_size(frame: &[u8]) -> Option<(u32, u32)> {
    if frame.len() < 10 || frame[0] & 1 != 0 || frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u32::from(u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff);
    let h = u32::from(u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff);
    Some((w, h))
}

/// Whether a picture of `w`×`h` may be decoded under a `max_pixels` bound.
pub fn fits(w: u32, h: u32, max_pixels: u64) -> bool {
    w <= MAX_PICTURE_SIDE && h <= MAX_PICTURE_SIDE && u64::from(w) * u64::from(h) <= max_pixels
}

/// Drops VP8 frames at `pad` (a depayloader's output: whole frames) from
/// a key frame over `max_pixels` until the next key frame within it.
/// `refused` is called once per oversized run with the declared size.
pub fn guard_vp8(pad: &gst::Pad, max_pixels: u64, refused: impl Fn(u32, u32) + Send + Sync + 'static) {
    let passing = Arc::new(AtomicBool::new(true));
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Some(buf) = info.buffer() else { return gst::PadProbeReturn::Ok };
        let mut head = [0u8; 10];
        let n = buf.copy_to_slice(0, &mut head).map_or_else(|e| e, |()| head.len());
        // A key frame too short to say its size is no key frame to decode.
        if n < head.len() && head[0] & 1 == 0 {
            return gst::PadProbeReturn::Drop;
        }
        if let Some((w, h)) = vp8_keyframe_size(&head[..n]) {
            let ok = fits(w, h, max_pixels);
            if !ok && passing.load(Ordering::Relaxed) {
                refused(w, h);
            }
            passing.store(ok, Ordering::Relaxed);
        }
        if passing.load(Ordering::Relaxed) { gst::PadProbeReturn::Ok } else { gst::PadProbeReturn::Drop }
    });
}

/// Whether `decodebin` may go on decoding a stream of `caps`: RTP carrying
/// Opus or VP8, Opus or VP8 themselves, and raw audio and video. Anything
/// else is exposed undecoded (and discarded by `chains::link_decoded`).
pub fn allowed(caps: &gst::CapsRef) -> bool {
    let Some(s) = caps.structure(0) else { return false };
    match s.name().as_str() {
        "application/x-rtp" => s
            .get::<&str>("encoding-name")
            .is_ok_and(|e| e.eq_ignore_ascii_case("OPUS") || e.eq_ignore_ascii_case("VP8")),
        "audio/x-opus" | "video/x-vp8" | "audio/x-raw" | "video/x-raw" => true,
        _ => false,
    }
}

/// Restricts a receiving `decodebin` to Opus and VP8 ([`allowed`]) and
/// guards its VP8 depayloader's output ([`guard_vp8`]). `warn` hears of a
/// stream that is not decoded and of an oversized picture.
pub fn restrict(decodebin: &gst::Element, warn: impl Fn(String) + Send + Sync + Clone + 'static) {
    let w = warn.clone();
    decodebin.connect("autoplug-continue", false, move |values| {
        let caps = values.get(2).and_then(|v| v.get::<gst::Caps>().ok());
        let ok = caps.as_ref().is_some_and(|c| allowed(c));
        if !ok {
            w(format!("the peer sent a stream of {caps:?}: only Opus and VP8 are decoded; discarded"));
        }
        Some(ok.to_value())
    });
    let Some(bin) = decodebin.downcast_ref::<gst::Bin>() else { return };
    bin.connect_deep_element_added(move |_, _, el| {
        if el.factory().is_some_and(|f| f.name() == "rtpvp8depay")
            && let Some(out) = el.static_pad("src")
        {
            let warn = warn.clone();
            guard_vp8(&out, MAX_PICTURE_PIXELS, move |w, h| {
                warn(format!("the peer sent a {w}x{h} picture: pictures over 1920x1088 are not decoded"));
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn only_opus_and_vp8_are_decoded() {
        super::super::init().unwrap();
        let ok = |c: &str| allowed(&c.parse::<gst::Caps>().unwrap());
        assert!(ok(super::super::chains::OPUS_RTP) && ok(super::super::chains::VP8_RTP));
        assert!(ok("application/x-rtp,media=video,encoding-name=vp8,payload=97,clock-rate=90000"));
        assert!(ok("audio/x-opus") && ok("video/x-vp8") && ok("video/x-raw") && ok("audio/x-raw"));
        for other in [
            "application/x-rtp,media=video,encoding-name=H264,payload=102,clock-rate=90000",
            "application/x-rtp,media=video,encoding-name=VP9,payload=98,clock-rate=90000",
            "application/x-rtp,media=audio,encoding-name=PCMU,payload=0,clock-rate=8000",
            "application/x-rtp,media=video,payload=96,clock-rate=90000",
            "video/x-h264",
            "application/x-matroska",
        ] {
            assert!(!ok(other), "{other}");
        }
    }

    #[test]
    fn a_key_frame_says_its_size_in_ten_bytes() {
        let key = [0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01];
        assert_eq!(vp8_keyframe_size(&key), Some((640, 480)));
        let scaled = [0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(vp8_keyframe_size(&scaled), Some((16383, 16383)), "the scale bits are not size");
        let inter = [0x51, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01];
        assert_eq!(vp8_keyframe_size(&inter), None);
        assert_eq!(vp8_keyframe_size(&key[..9]), None);
        assert!(fits(1920, 1080, MAX_PICTURE_PIXELS) && fits(1280, 720, MAX_PICTURE_PIXELS));
        assert!(!fits(16383, 16383, MAX_PICTURE_PIXELS) && !fits(3840, 2160, MAX_PICTURE_PIXELS));
        assert!(!fits(8192, 2, MAX_PICTURE_PIXELS), "a side over 4096");
    }

    /// VP8 frames of `w`×`h` from vp8enc (the first a key frame).
    fn vp8_frames(w: u32, h: u32, n: u32) -> Vec<gst::Buffer> {
        super::super::init().unwrap();
        let desc = format!(
            "videotestsrc num-buffers={n} ! video/x-raw,width={w},height={h},framerate=30/1 ! vp8enc deadline=1 ! appsink name=out sync=false"
        );
        let p = gst::parse::launch(&desc).unwrap().downcast::<gst::Pipeline>().unwrap();
        let sink = p.by_name("out").unwrap().downcast::<gst_app::AppSink>().unwrap();
        p.set_state(gst::State::Playing).unwrap();
        let mut out = Vec::new();
        while let Ok(s) = sink.pull_sample() {
            out.push(s.buffer_owned().unwrap());
        }
        p.set_state(gst::State::Null).unwrap();
        out
    }

    /// Decodes `frames` through the guard with `max_pixels`: (pictures
    /// decoded, sizes refused).
    fn decoded(frames: Vec<gst::Buffer>, max_pixels: u64) -> (usize, Vec<(u32, u32)>) {
        let p = gst::Pipeline::new();
        let src = gst_app::AppSrc::builder()
            .caps(&gst::Caps::builder("video/x-vp8").build())
            .format(gst::Format::Time)
            .build();
        let dec = make("vp8dec").unwrap();
        let sink = gst_app::AppSink::builder().sync(false).build();
        p.add_many([src.upcast_ref(), &dec, sink.upcast_ref()]).unwrap();
        gst::Element::link_many([src.upcast_ref(), &dec, sink.upcast_ref()]).unwrap();
        let refused = Arc::new(Mutex::new(Vec::new()));
        let r = refused.clone();
        guard_vp8(&src.static_pad("src").unwrap(), max_pixels, move |w, h| r.lock().unwrap().push((w, h)));
        p.set_state(gst::State::Playing).unwrap();
        for f in frames {
            src.push_buffer(f).unwrap();
        }
        src.end_of_stream().unwrap();
        let mut n = 0;
        while sink.pull_sample().is_ok() {
            n += 1;
        }
        p.set_state(gst::State::Null).unwrap();
        let refused = refused.lock().unwrap().clone();
        (n, refused)
    }

    #[test]
    fn pictures_over_the_bound_never_reach_the_decoder() {
        let frames = vp8_frames(320, 240, 5);
        assert_eq!(decoded(frames.clone(), 320 * 240), (5, vec![]), "within the bound: decoded");
        assert_eq!(decoded(frames, 160 * 120), (0, vec![(320, 240)]), "over it: nothing decoded");
    }
}
