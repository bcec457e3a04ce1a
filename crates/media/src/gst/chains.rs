//! The element chains around webrtcbin: sources (with device fallback),
//! echo cancellation, encoders and payloaders on the send side; the audio
//! output (meter, echo probe, device / WAV / discard) and the video taps on
//! the receive side.

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use gst::prelude::*;
use tokio::sync::mpsc::UnboundedSender;

use super::{add_linked, capsfilter, make};
use crate::{
    AudioSink, AudioSource, CallEvent, DeviceKind, FrameOptions, MediaError, VideoSource, picture, warning,
    wav,
};

/// The RTP caps webrtcbin is fed with (and offers): Opus/48000/2 and VP8.
pub const OPUS_RTP: &str = "application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000,\
     encoding-params=(string)2,minptime=(string)10,useinbandfec=(string)1";
pub const VP8_RTP: &str = "application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000";
/// The raw audio format inside a session: what webrtcdsp, the echo probe and
/// the recorder agree on.
const PCM: &str = "audio/x-raw,format=S16LE,rate=48000,channels=1,layout=interleaved";
/// The start and the bounds of the VP8 target bitrate (bits/s).
pub const VIDEO_START_BPS: u32 = 800_000;
pub const VIDEO_MIN_BPS: u32 = 150_000;
pub const VIDEO_MAX_BPS: u32 = 2_500_000;

/// Counters the streaming threads update and the session reads.
#[derive(Default)]
pub struct Meters {
    pub frames_decoded: AtomicU64,
    pub frames_sent: AtomicU64,
    /// f64 bits of the last local / remote RMS (dBFS); NaN until measured.
    pub local_db: AtomicU64,
    pub remote_db: AtomicU64,
}

impl Meters {
    pub fn new() -> Arc<Meters> {
        let m = Meters::default();
        m.local_db.store(f64::NAN.to_bits(), Ordering::Relaxed);
        m.remote_db.store(f64::NAN.to_bits(), Ordering::Relaxed);
        Arc::new(m)
    }

    pub fn level(slot: &AtomicU64) -> Option<f64> {
        let v = f64::from_bits(slot.load(Ordering::Relaxed));
        (!v.is_nan()).then_some(v)
    }
}

/// A device problem worth telling the user about.
pub type Warn = (String, String);

fn warn(code: &str, message: &str) -> Warn {
    (code.to_string(), message.to_string())
}

/// An element that opened: `NULL → READY` is where capture and playback
/// elements open their device, so a missing device shows up here, not mid-call.
fn opens(e: &gst::Element) -> bool {
    let ok = e.set_state(gst::State::Ready).is_ok();
    let _ = e.set_state(gst::State::Null);
    ok
}

/// The element for a device by id (or the default one of its kind), if it opens.
pub fn device_element(kind: DeviceKind, id: Option<&str>) -> Option<gst::Element> {
    if let Some(id) = id {
        let dev = super::devices::find(kind, id)?;
        let e = dev.create_element(None).ok()?;
        return opens(&e).then_some(e);
    }
    let candidates: &[&str] = match kind {
        DeviceKind::Mic => &["pulsesrc", "alsasrc"],
        DeviceKind::Speaker => &["pulsesink", "alsasink"],
        DeviceKind::Camera => &["v4l2src"],
    };
    candidates.iter().find_map(|f| {
        let e = gst::ElementFactory::make(f).build().ok()?;
        opens(&e).then_some(e)
    })
}

/// The outgoing audio chain, ending in Opus RTP. Returns its first and last
/// elements and the mute `volume`.
pub struct AudioSend {
    pub last: gst::Element,
    pub volume: gst::Element,
    /// With a device source: the source and the element after it (to switch mics).
    pub source: Option<(gst::Element, gst::Element)>,
}

static PROBES: AtomicUsize = AtomicUsize::new(0);

/// A name for an echo probe that no other session in this process uses
/// (webrtcdsp finds its probe by name, process-wide).
pub fn probe_name() -> String {
    format!("courier-echo-probe-{}", PROBES.fetch_add(1, Ordering::Relaxed))
}

/// Builds the send audio chain into `bin`. `probe`: the echo probe's name
/// when received audio plays on a device (echo is possible only then).
pub fn audio_send(
    bin: &gst::Bin,
    src: &AudioSource,
    probe: Option<&str>,
    warns: &mut Vec<Warn>,
) -> Result<AudioSend, MediaError> {
    let mut chain: Vec<gst::Element> = Vec::new();
    let mut device = false;
    match src {
        AudioSource::Device(id) => match device_element(DeviceKind::Mic, id.as_deref()) {
            Some(e) => {
                device = true;
                chain.push(e);
            }
            None => {
                warns.push(warn(warning::NO_MICROPHONE, "no microphone: listen only"));
                chain.push(silence()?);
            }
        },
        AudioSource::Tone(hz) => {
            let e = make("audiotestsrc")?;
            e.set_property("is-live", true);
            e.set_property_from_str("wave", "sine");
            e.set_property("freq", *hz);
            e.set_property("volume", 0.5f64);
            chain.push(e);
        }
        AudioSource::File(path) => chain.extend(file_source(path, warns)?),
        AudioSource::Silence => chain.push(silence()?),
    }
    chain.push(make("audioconvert")?);
    chain.push(make("audioresample")?);
    chain.push(capsfilter(PCM)?);
    if device && gst::ElementFactory::find("webrtcdsp").is_some() {
        chain.push(voice_processing(probe)?);
    }
    let volume = make("volume")?;
    let level = make("level")?;
    level.set_property("name", "level-local");
    level.set_property("interval", 100_000_000u64);
    let opus = make("opusenc")?;
    opus.set_property("bitrate", 32_000i32);
    opus.set_property("inband-fec", true);
    let pay = make("rtpopuspay")?;
    pay.set_property("pt", super::pt::OPUS_PT);
    chain.extend([volume.clone(), level, make("audioconvert")?, opus, pay, capsfilter(OPUS_RTP)?]);
    let refs: Vec<&gst::Element> = chain.iter().collect();
    add_linked(bin, &refs)?;
    let source = matches!(src, AudioSource::Device(_)).then(|| (chain[0].clone(), chain[1].clone()));
    Ok(AudioSend { last: chain.last().cloned().expect("non-empty"), volume, source })
}

/// The microphone's voice processing (`webrtcdsp`): echo cancellation
/// against what the echo probe named `probe` saw played (echo is possible
/// only when received audio plays on a device), noise suppression, gain
/// control and the high-pass filter either way. Delay-agnostic: the delay
/// between a speaker and a microphone is not known in advance.
pub fn voice_processing(probe: Option<&str>) -> Result<gst::Element, MediaError> {
    let dsp = make("webrtcdsp")?;
    dsp.set_property("echo-cancel", probe.is_some());
    if let Some(p) = probe {
        dsp.set_property("probe", p);
        dsp.set_property("delay-agnostic", true);
        dsp.set_property("extended-filter", true);
    }
    dsp.set_property("noise-suppression", true);
    Ok(dsp)
}

/// The echo probe on the playback path, for [`voice_processing`].
pub fn echo_probe(name: &str) -> Result<gst::Element, MediaError> {
    let e = make("webrtcechoprobe")?;
    e.set_property("name", name);
    Ok(e)
}

fn silence() -> Result<gst::Element, MediaError> {
    let e = make("audiotestsrc")?;
    e.set_property("is-live", true);
    e.set_property_from_str("wave", "silence");
    Ok(e)
}

/// A looped WAV file: decoded once, pushed through `appsrc` at real time.
fn file_source(path: &Path, warns: &mut Vec<Warn>) -> Result<Vec<gst::Element>, MediaError> {
    let pcm = match wav::read(path) {
        Ok(p) if !p.samples.is_empty() => p,
        Ok(_) | Err(_) => {
            warns.push(warn(warning::DEVICE, &format!("cannot play {}: sending silence", path.display())));
            return Ok(vec![silence()?]);
        }
    };
    let caps = gst::Caps::builder("audio/x-raw")
        .field("format", "S16LE")
        .field("rate", pcm.rate as i32)
        .field("channels", i32::from(pcm.channels))
        .field("layout", "interleaved")
        .build();
    let src = gst_app::AppSrc::builder()
        .caps(&caps)
        .format(gst::Format::Time)
        .is_live(true)
        .do_timestamp(true)
        .block(true)
        .max_bytes(pcm.rate as u64 / 5 * u64::from(pcm.channels) * 2)
        .build();
    // 20 ms chunks, looped; `clocksync` after the source paces them.
    let chunk = (pcm.rate as usize / 50) * usize::from(pcm.channels);
    let weak = src.downgrade();
    std::thread::Builder::new()
        .name("courier-wav-src".into())
        .spawn(move || {
            let mut at = 0usize;
            while let Some(src) = weak.upgrade() {
                let mut out = Vec::with_capacity(chunk * 2);
                for i in 0..chunk {
                    out.extend_from_slice(&pcm.samples[(at + i) % pcm.samples.len()].to_le_bytes());
                }
                at = (at + chunk) % pcm.samples.len();
                if src.push_buffer(gst::Buffer::from_mut_slice(out)).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| MediaError::Unavailable(format!("thread: {e}")))?;
    let sync = make("clocksync")?;
    Ok(vec![src.upcast(), sync])
}

/// The outgoing video chain, ending in VP8 RTP; `None` without a camera.
pub struct VideoSend {
    pub last: gst::Element,
    pub valve: gst::Element,
    pub encoder: gst::Element,
    /// With a camera: the source and the element after it (to switch cameras).
    pub source: Option<(gst::Element, gst::Element)>,
    /// The source it started with (a camera or the test pattern).
    pub src: gst::Element,
}

/// Starts or stops a video source inside a running pipeline: stopped, it is
/// held in NULL (a camera is closed, its light off) while the rest plays.
pub fn run_source(src: &gst::Element, on: bool) {
    if on {
        src.set_locked_state(false);
        if src.sync_state_with_parent().is_err() {
            tracing::warn!("the video source would not start again");
        }
    } else {
        src.set_locked_state(true);
        let _ = src.set_state(gst::State::Null);
    }
}

pub fn video_send(
    bin: &gst::Bin,
    src: &VideoSource,
    meters: &Arc<Meters>,
    frames: Option<(FrameOptions, UnboundedSender<CallEvent>)>,
    warns: &mut Vec<Warn>,
) -> Result<Option<VideoSend>, MediaError> {
    let source = match src {
        VideoSource::None => return Ok(None),
        VideoSource::Test => {
            let e = make("videotestsrc")?;
            e.set_property("is-live", true);
            e.set_property_from_str("pattern", "ball");
            vec![e, capsfilter("video/x-raw,width=640,height=480,framerate=30/1")?]
        }
        VideoSource::Device(id) => match device_element(DeviceKind::Camera, id.as_deref()) {
            Some(e) => vec![e],
            None => {
                warns.push(warn(warning::NO_CAMERA, "no camera: audio only"));
                return Ok(None);
            }
        },
    };
    let mut chain = source;
    let src_elem = chain[0].clone();
    let tee = make("tee")?;
    // The valve sits before the tee: with the camera off neither the
    // encoder nor the self-view gets a frame (and the source is stopped).
    let valve = make("valve")?;
    chain.extend([
        valve.clone(),
        make("videoconvert")?,
        make("videoscale")?,
        // Up to 720p, 30 fps; a bigger camera is scaled down.
        capsfilter("video/x-raw,width=[16,1280],height=[16,720],framerate=[0/1,30/1]")?,
        tee.clone(),
    ]);
    let encoder = make("vp8enc")?;
    encoder.set_property("deadline", 1i64);
    encoder.set_property("cpu-used", 12i32);
    encoder.set_property("target-bitrate", VIDEO_START_BPS as i32);
    encoder.set_property_from_str("end-usage", "cbr");
    encoder.set_property("keyframe-max-dist", 60i32);
    encoder.set_property_from_str("error-resilient", "default");
    // One thread: libvpx synchronises VP8 encoder threads by spinning, which
    // took ~60 % of both cores in a 640x480 call here (docs/calls.md).
    encoder.set_property("threads", 1i32);
    let pay = make("rtpvp8pay")?;
    pay.set_property("pt", super::pt::VP8_PT);
    pay.set_property_from_str("picture-id-mode", "15-bit");
    let queue = make("queue")?;
    chain.extend([queue, make("videoconvert")?, encoder.clone(), pay, capsfilter(VP8_RTP)?]);
    let refs: Vec<&gst::Element> = chain.iter().collect();
    add_linked(bin, &refs)?;
    let m = meters.clone();
    if let Some(pad) = encoder.static_pad("src") {
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            m.frames_sent.fetch_add(1, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
    }
    if let Some((opts, tx)) = frames {
        let tap = frame_tap(bin, false, opts, tx)?;
        link_from_tee(&tee, &tap)?;
    }
    let source = matches!(src, VideoSource::Device(_)).then(|| (chain[0].clone(), chain[1].clone()));
    Ok(Some(VideoSend {
        last: chain.last().cloned().expect("non-empty"),
        valve,
        encoder,
        source,
        src: src_elem,
    }))
}

fn link_from_tee(tee: &gst::Element, first: &gst::Element) -> Result<(), MediaError> {
    let src = tee.request_pad_simple("src_%u").ok_or_else(|| MediaError::Negotiation("tee".into()))?;
    let sink = first.static_pad("sink").ok_or_else(|| MediaError::Negotiation("tap".into()))?;
    src.link(&sink).map(|_| ()).map_err(|e| MediaError::Negotiation(format!("tee link: {e}")))
}

/// Frames handed to the owner and not yet dropped by it; past this, new
/// frames are skipped so a slow UI never piles frames up in memory.
const MAX_FRAMES_IN_FLIGHT: usize = 3;

/// Frame memory that counts itself in flight until its last `Bytes` drops.
struct Tracked<T> {
    data: T,
    count: Arc<AtomicUsize>,
}

impl<T> Tracked<T> {
    fn new(data: T, count: &Arc<AtomicUsize>) -> Tracked<T> {
        count.fetch_add(1, Ordering::AcqRel);
        Tracked { data, count: count.clone() }
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Tracked<T> {
    fn as_ref(&self) -> &[u8] {
        self.data.as_ref()
    }
}

impl<T> Drop for Tracked<T> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A branch that delivers packed I420 frames ([`crate::picture`]) as
/// [`CallEvent::Frame`]; returns its first element (a queue, so it never
/// stalls the branch it hangs from).
pub fn frame_tap(
    bin: &gst::Bin,
    remote: bool,
    opts: FrameOptions,
    tx: UnboundedSender<CallEvent>,
) -> Result<gst::Element, MediaError> {
    let queue = make("queue")?;
    queue.set_property("max-size-buffers", 2u32);
    queue.set_property_from_str("leaky", "downstream");
    // At most `fps` frames a second, dropped before conversion (a probe,
    // not videorate: decoded WebRTC frames carry no durations).
    let every = std::time::Duration::from_secs(1) / opts.fps.max(1);
    let last: Mutex<Option<std::time::Instant>> = Mutex::new(None);
    if let Some(pad) = queue.static_pad("src") {
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            let now = std::time::Instant::now();
            let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
            // 20 % slack so jitter does not halve a rate equal to the source's.
            if last.is_some_and(|t| now.duration_since(t) < every.mul_f64(0.8)) {
                return gst::PadProbeReturn::Drop;
            }
            *last = Some(now);
            gst::PadProbeReturn::Ok
        });
    }
    let caps = format!(
        "video/x-raw,format=I420,width=[1,{}],height=[1,{}],pixel-aspect-ratio=1/1",
        opts.max_width.max(1),
        opts.max_height.max(1)
    );
    let sink = gst_app::AppSink::builder().sync(false).max_buffers(1).drop(true).build();
    let in_flight = Arc::new(AtomicUsize::new(0));
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                if in_flight.load(Ordering::Acquire) >= MAX_FRAMES_IN_FLIGHT {
                    return Ok(gst::FlowSuccess::Ok); // the owner is behind: skip this frame
                }
                let info = sample.caps().and_then(|c| gst_video::VideoInfo::from_caps(c).ok());
                let (Some(info), Some(buf)) = (info, sample.buffer_owned()) else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                let (w, h) = (info.width(), info.height());
                let (cw, ch) = (picture::chroma(w) as usize, picture::chroma(h) as usize);
                let planes = [(w as usize, h as usize), (cw, ch), (cw, ch)];
                let len = picture::i420_len(w, h);
                let packed = planes.iter().enumerate().all(|(i, &(pw, _))| info.stride()[i] as usize == pw)
                    && info.offset() == [0, w as usize * h as usize, w as usize * h as usize + cw * ch]
                    && buf.size() == len;
                let i420 = if packed {
                    // Zero copy: the frame's own memory, returned to GStreamer when dropped.
                    let mapped = buf.into_mapped_buffer_readable().map_err(|_| gst::FlowError::Error)?;
                    Bytes::from_owner(Tracked::new(mapped, &in_flight))
                } else {
                    // Rows padded to a stride (odd or unaligned widths): packed plane by plane.
                    let map = buf.map_readable().map_err(|_| gst::FlowError::Error)?;
                    let mut v = Vec::with_capacity(len);
                    for (i, &(pw, ph)) in planes.iter().enumerate() {
                        let (offset, stride) = (info.offset()[i], info.stride()[i] as usize);
                        for y in 0..ph {
                            let at = offset + y * stride;
                            let row = map.get(at..at + pw).ok_or(gst::FlowError::Error)?;
                            v.extend_from_slice(row);
                        }
                    }
                    Bytes::from_owner(Tracked::new(v, &in_flight))
                };
                if tx.send(CallEvent::Frame { remote, width: w, height: h, i420 }).is_err() {
                    return Err(gst::FlowError::Eos);
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    let sink: gst::Element = sink.upcast();
    add_linked(bin, &[&queue, &make("videoconvert")?, &make("videoscale")?, &capsfilter(&caps)?, &sink])?;
    Ok(queue)
}

/// The receive audio path, built before any remote stream exists (the echo
/// probe must exist when webrtcdsp starts): convert → meter → probe → sink.
/// Returns the element decoded audio is linked to and, with a speaker, the
/// speaker and the element before it (to switch speakers).
pub struct AudioOut {
    pub first: gst::Element,
    pub speaker: Option<(gst::Element, gst::Element)>,
}

/// `resume`: a recording goes on after what an earlier session of the call wrote.
pub fn audio_out(
    bin: &gst::Bin,
    sink: &AudioSink,
    probe: Option<&str>,
    resume: bool,
    warns: &mut Vec<Warn>,
) -> Result<AudioOut, MediaError> {
    let first = make("audioconvert")?;
    let level = make("level")?;
    level.set_property("name", "level-remote");
    level.set_property("interval", 100_000_000u64);
    let mut chain = vec![first.clone(), make("audioresample")?, capsfilter(PCM)?, level];
    if let Some(p) = probe {
        chain.push(echo_probe(p)?);
    }
    let out = match sink {
        AudioSink::Device(id) => match device_element(DeviceKind::Speaker, id.as_deref()) {
            Some(e) => e,
            None => {
                warns.push(warn(warning::NO_SPEAKER, "no speaker: received audio is not played"));
                fakesink()?
            }
        },
        AudioSink::Record(path) => recorder(path, resume, warns)?,
        AudioSink::Discard => fakesink()?,
    };
    chain.push(out);
    let refs: Vec<&gst::Element> = chain.iter().collect();
    add_linked(bin, &refs)?;
    let n = chain.len();
    let speaker = matches!(sink, AudioSink::Device(_)).then(|| (chain[n - 2].clone(), chain[n - 1].clone()));
    Ok(AudioOut { first, speaker })
}

pub fn fakesink() -> Result<gst::Element, MediaError> {
    let e = make("fakesink")?;
    e.set_property("sync", false);
    e.set_property("async", false);
    Ok(e)
}

/// An appsink that appends what it gets to a 16-bit PCM WAV file.
/// With `resume`, it goes on after what an earlier session of the call wrote.
fn recorder(path: &Path, resume: bool, warns: &mut Vec<Warn>) -> Result<gst::Element, MediaError> {
    let opened =
        if resume { wav::Writer::resume(path, 48_000, 1) } else { wav::Writer::create(path, 48_000, 1) };
    let writer = match opened {
        Ok(w) => Mutex::new(w),
        Err(e) => {
            warns.push(warn(warning::DEVICE, &format!("cannot record to {}: {e}", path.display())));
            return fakesink();
        }
    };
    let sink = gst_app::AppSink::builder().sync(false).build();
    sink.set_property("async", false);
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                if let Some(buf) = sample.buffer() {
                    let map = buf.map_readable().map_err(|_| gst::FlowError::Error)?;
                    let mut w = writer.lock().unwrap_or_else(|p| p.into_inner());
                    w.append(&map).map_err(|_| gst::FlowError::Error)?;
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    Ok(sink.upcast())
}

/// Links one decoded stream (a decoder's output, `receive::decode`) to where it goes: audio to
/// `audio_out` (the first audio stream only), video to a frame counter and,
/// with frames on, a frame tap.
pub fn link_decoded(
    bin: &gst::Bin,
    pad: &gst::Pad,
    audio_out: &Mutex<Option<gst::Element>>,
    meters: &Arc<Meters>,
    frames: Option<(FrameOptions, UnboundedSender<CallEvent>)>,
) -> Result<(), MediaError> {
    let caps = pad.current_caps().or_else(|| Some(pad.query_caps(None)));
    let name = caps.as_ref().and_then(|c| c.structure(0)).map(|s| s.name().to_string()).unwrap_or_default();
    let target = if name.starts_with("audio/") {
        let taken = audio_out.lock().unwrap_or_else(|p| p.into_inner()).take();
        match taken {
            Some(e) => e,
            None => {
                let q = make("queue")?;
                add_linked(bin, &[&q, &fakesink()?])?;
                q
            }
        }
    } else {
        let m = meters.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            m.frames_decoded.fetch_add(1, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
        match frames {
            Some((opts, tx)) => frame_tap(bin, true, opts, tx)?,
            None => {
                let q = make("queue")?;
                add_linked(bin, &[&q, &fakesink()?])?;
                q
            }
        }
    };
    let sink = target.static_pad("sink").ok_or_else(|| MediaError::Negotiation("no sink pad".into()))?;
    pad.link(&sink).map(|_| ()).map_err(|e| MediaError::Negotiation(format!("link decoded: {e}")))
}

#[cfg(test)]
#[path = "echo_tests.rs"]
mod echo_tests;
