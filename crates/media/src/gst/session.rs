//! One webrtcbin session: the pipeline, the offer/answer calls the driver
//! makes, candidates, mute, camera direction, stats and bandwidth adaptation.
//!
//! Everything webrtcbin reports (descriptions, candidates, ICE state, bus
//! errors) goes to the driver as an [`EngineEvent`] over a channel, in the
//! order it happened.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use gst::prelude::*;
use gst_webrtc::{WebRTCICEConnectionState as IceState, WebRTCRTPTransceiverDirection as Dir};
use tokio::sync::{mpsc::UnboundedSender, oneshot};

use super::chains::{self, Meters, VIDEO_MAX_BPS, VIDEO_MIN_BPS, VIDEO_START_BPS};
use super::stats::{self, Report};
use super::swap;
use crate::{AudioSink, AudioSource, CallEvent, DeviceKind, MediaConfig, MediaError, warning};

/// What the engine tells the driver.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineEvent {
    /// A local offer (`offer: true`) or answer was created (not yet set).
    Description {
        offer: bool,
        sdp: String,
    },
    /// A local candidate, `candidate:` prefixed, with the mid of its m-line.
    Candidate {
        candidate: String,
        mid: Option<String>,
        mline: u32,
    },
    /// The ICE connection state, in webrtcbin's words ("connected", …).
    Ice(String),
    Warning {
        code: String,
        message: String,
    },
    /// Something the session cannot recover from.
    Error(String),
    /// The peer presented a DTLS certificate its description does not
    /// name: no media passes either way from now on, and the call must end.
    Impostor(String),
}

/// `COURIER_ICE_RELAY_ONLY=1`: use TURN relay candidates only (tests of
/// the relay path, and people who must not reveal their addresses).
pub fn relay_only() -> bool {
    std::env::var("COURIER_ICE_RELAY_ONLY").is_ok_and(|v| v == "1")
}

/// A running media session.
pub struct Session {
    pipeline: gst::Pipeline,
    webrtc: gst::Element,
    volume: gst::Element,
    video: Option<chains::VideoSend>,
    meters: Arc<Meters>,
    local_mids: Arc<Mutex<Vec<String>>>,
    remote_mids: Mutex<Vec<String>>,
    /// The remote ufrag last applied: a new one is an ICE restart, answered
    /// with new local credentials too.
    remote_ufrag: Mutex<Option<String>>,
    bitrate: AtomicU32,
    last_lost: AtomicU64,
    last_sent: AtomicU64,
    camera_on: AtomicBool,
    /// The last offer created: (as sent, as webrtcbin made it).
    created_offer: Arc<Mutex<Option<(String, String)>>>,
    /// The DTLS certificate (descriptions carry its fingerprint).
    dtls: super::dtls::Certificate,
    /// Switchable devices: (source, next) for mic and camera, (prev, sink) for the speaker.
    mic: Mutex<Option<(gst::Element, gst::Element)>>,
    camera: Mutex<Option<(gst::Element, gst::Element)>>,
    speaker: Mutex<Option<(gst::Element, gst::Element)>>,
    /// Our media's way into webrtcbin, shut until the first offer.
    gate: Gate,
    /// Whether the peer's DTLS certificate is the one it signalled.
    check: Arc<super::dtls::PeerCheck>,
}

/// Drops our media buffers just before webrtcbin until it opens. (The
/// DTLS check, [`shut_unless`], keeps them out longer still: until the
/// peer's certificate is verified. The gate stays so that the order of
/// negotiation, not of the handshake, is what this rests on.)
///
/// webrtcbin holds the first buffer at each input until that input is
/// negotiated, and holds the input's stream lock meanwhile. An answerer
/// taking the offer's payload numbers (`pt`) sends a caps event through
/// the same input, which needs that lock: it would wait for negotiation,
/// and negotiation for it. With no buffer let in before the offer is
/// known, the lock is free. (Events pass: webrtcbin still sees our caps
/// early, which it needs to match the offer against.)
#[derive(Default)]
struct Gate(Mutex<Vec<(gst::Pad, gst::PadProbeId)>>);

impl Gate {
    fn close(&self, pad: &gst::Pad) {
        let id = pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST, |_, _| {
            gst::PadProbeReturn::Drop
        });
        if let Some(id) = id {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).push((pad.clone(), id));
        }
    }

    /// Lets media through from now on (once; later calls do nothing).
    fn open(&self) {
        for (pad, id) in self.0.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            pad.remove_probe(id);
        }
    }
}

/// Drops every buffer through `pad` until the peer's DTLS certificate is
/// verified, and for good once it is refused (see [`EngineEvent::Impostor`]).
fn shut_unless(pad: &gst::Pad, check: &Arc<super::dtls::PeerCheck>) {
    let c = check.clone();
    pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST, move |_, _| {
        if c.passes() { gst::PadProbeReturn::Ok } else { gst::PadProbeReturn::Drop }
    });
}

fn sdp_text(desc: &gst_webrtc::WebRTCSessionDescription) -> String {
    desc.sdp().as_text().unwrap_or_default()
}

/// The `a=mid` of each m-line, in order.
pub fn mids(sdp: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in sdp.lines() {
        if line.starts_with("m=") {
            out.push(String::new());
        } else if let (Some(mid), Some(last)) = (line.strip_prefix("a=mid:"), out.last_mut()) {
            *last = mid.trim().to_string();
        }
    }
    out
}

/// The first `a=ice-ufrag` of an SDP.
pub fn ufrag(sdp: &str) -> Option<String> {
    sdp.lines().find_map(|l| l.strip_prefix("a=ice-ufrag:")).map(|u| u.trim().to_string())
}

/// New ICE credentials for every m-line (an ICE restart, RFC 8839 §4.4.1.1.1).
pub fn with_new_credentials(sdp: &str) -> String {
    use rand::Rng;
    let token = |n: usize| -> String {
        rand::rng().sample_iter(&rand::distr::Alphanumeric).take(n).map(char::from).collect()
    };
    let (uf, pw) = (token(8), token(24));
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        if line.starts_with("a=ice-ufrag:") {
            out.push_str(&format!("a=ice-ufrag:{uf}\r\n"));
        } else if line.starts_with("a=ice-pwd:") {
            out.push_str(&format!("a=ice-pwd:{pw}\r\n"));
        } else {
            out.push_str(line);
        }
    }
    out
}

fn description(
    kind: gst_webrtc::WebRTCSDPType,
    sdp: &str,
) -> Result<gst_webrtc::WebRTCSessionDescription, MediaError> {
    let msg = gst_sdp::SDPMessage::parse_buffer(sdp.as_bytes())
        .map_err(|_| MediaError::Negotiation("unparsable SDP".into()))?;
    Ok(gst_webrtc::WebRTCSessionDescription::new(kind, msg))
}

/// Offers as every WebRTC stack reads them: webrtcbin's max-bundle offers
/// give bundled m-lines port 0 with `a=bundle-only` (RFC 8843), which
/// several stacks take as a rejected m-line; browsers offer port 9 on every
/// m-line in the BUNDLE group instead, and so do we.
pub fn without_bundle_only(sdp: &str) -> String {
    let mut out = String::with_capacity(sdp.len());
    let mut section: Vec<&str> = Vec::new();
    let flush = |section: &mut Vec<&str>, out: &mut String| {
        let bundle_only = section.iter().any(|l| l.trim_end() == "a=bundle-only");
        for (i, l) in section.drain(..).enumerate() {
            if l.trim_end() == "a=bundle-only" {
                continue;
            }
            match (i, bundle_only, l.split_once(' ')) {
                (0, true, Some((media, rest))) if rest.starts_with("0 ") => {
                    out.push_str(media);
                    out.push_str(" 9");
                    out.push_str(&rest[1..]);
                }
                _ => out.push_str(l),
            }
        }
    };
    for l in sdp.split_inclusive('\n') {
        if l.starts_with("m=") {
            flush(&mut section, &mut out);
        }
        if l.starts_with("m=") || !section.is_empty() {
            section.push(l);
        } else {
            out.push_str(l);
        }
    }
    flush(&mut section, &mut out);
    out
}

/// `stun:host:port` → `stun://host:port`; `turn:host:port?transport=udp` with
/// credentials → `turn://user:pass@host:port?transport=udp` (percent-encoded:
/// REST usernames contain `:` and credentials `/+=`).
pub fn gst_ice_uri(url: &str, username: Option<&str>, credential: Option<&str>) -> Option<String> {
    let (scheme, rest) = url.split_once(':')?;
    let rest = rest.trim_start_matches("//");
    match scheme {
        "stun" | "stuns" => Some(format!("{scheme}://{rest}")),
        "turn" | "turns" => {
            let enc = |s: &str| -> String {
                s.bytes()
                    .map(|b| match b {
                        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                            (b as char).to_string()
                        }
                        _ => format!("%{b:02X}"),
                    })
                    .collect()
            };
            let (u, c) = (username?, credential?);
            Some(format!("{scheme}://{}:{}@{rest}", enc(u), enc(c)))
        }
        _ => None,
    }
}

impl Session {
    /// Builds and starts the pipeline. Device problems become
    /// [`EngineEvent::Warning`]s; the call goes on without that device.
    /// `resume`: this session replaces an earlier one of the same call (a
    /// transport restart), so a recording goes on instead of starting over.
    ///
    /// The pipeline plays at once (ICE and DTLS run as soon as they are
    /// asked), but our media is dropped at webrtcbin's inputs until the
    /// first offer is created or applied ([`Gate`]).
    pub fn start(
        cfg: &MediaConfig,
        resume: bool,
        events: UnboundedSender<EngineEvent>,
        call_events: UnboundedSender<CallEvent>,
    ) -> Result<Session, MediaError> {
        super::init()?;
        let pipeline = gst::Pipeline::new();
        let bin: &gst::Bin = pipeline.upcast_ref();
        let webrtc = gst::ElementFactory::make("webrtcbin")
            .name("webrtc")
            .property("bundle-policy", gst_webrtc::WebRTCBundlePolicy::MaxBundle)
            .build()
            .map_err(|_| MediaError::Unavailable("webrtcbin".into()))?;
        webrtc.set_property("latency", 100u32);
        let cert = super::dtls::ecdsa()?;
        super::dtls::use_certificate(&webrtc, &cert);
        // Media passes only to and from the certificate the peer signalled.
        let tx = events.clone();
        let check = super::dtls::PeerCheck::new(move |why| {
            tracing::warn!("{why}: no media to or from this peer");
            let _ = tx.send(EngineEvent::Impostor(why));
        });
        super::dtls::enforce_fingerprint(&webrtc, check.clone());
        // No UPnP port mapping (multicast discovery on the LAN; browsers don't).
        let ice = webrtc.property::<gst::glib::Object>("ice-agent");
        if ice.find_property("agent").is_some() {
            let agent = ice.property::<gst::glib::Object>("agent");
            if agent.find_property("upnp").is_some() {
                agent.set_property("upnp", false);
            }
        }
        if relay_only() {
            webrtc.set_property("ice-transport-policy", gst_webrtc::WebRTCICETransportPolicy::Relay);
        }
        for server in &cfg.ice_servers {
            for url in &server.urls {
                let uri = gst_ice_uri(url, server.username.as_deref(), server.credential.as_deref());
                match uri {
                    Some(u) if u.starts_with("stun") => webrtc.set_property("stun-server", u),
                    Some(u) => {
                        if !webrtc.emit_by_name::<bool>("add-turn-server", &[&u]) {
                            tracing::warn!(url, "TURN server refused");
                        }
                    }
                    None => tracing::warn!(url, "ICE server URL not understood"),
                }
            }
        }
        pipeline.add(&webrtc).map_err(|e| MediaError::Unavailable(e.to_string()))?;

        let meters = Meters::new();
        let mut warns = Vec::new();
        let probe = (matches!(cfg.audio_in, AudioSource::Device(_))
            && matches!(cfg.audio_out, AudioSink::Device(_))
            && gst::ElementFactory::find("webrtcechoprobe").is_some())
        .then(chains::probe_name);
        let audio_out = chains::audio_out(bin, &cfg.audio_out, probe.as_deref(), resume, &mut warns)?;
        let audio = chains::audio_send(bin, &cfg.audio_in, probe.as_deref(), &mut warns)?;
        let frames = cfg.frames.map(|f| (f, call_events.clone()));
        let video = chains::video_send(bin, &cfg.video_in, &meters, frames.clone(), &mut warns)?;

        // m-line 0: audio; m-line 1: video (sendrecv with a camera, else recvonly).
        let gate = Gate::default();
        let link = |src: &gst::Element| -> Result<(), MediaError> {
            let sink = webrtc
                .request_pad_simple("sink_%u")
                .ok_or_else(|| MediaError::Negotiation("webrtcbin pad".into()))?;
            let pad = src.static_pad("src").ok_or_else(|| MediaError::Negotiation("src pad".into()))?;
            gate.close(&pad);
            shut_unless(&pad, &check);
            pad.link(&sink)
                .map(|_| ())
                .map_err(|e| MediaError::Negotiation(format!("link to webrtcbin: {e}")))
        };
        link(&audio.last)?;
        match &video {
            Some(v) => link(&v.last)?,
            None => {
                let caps: gst::Caps =
                    chains::VP8_RTP.parse().map_err(|_| MediaError::Unavailable("caps".into()))?;
                webrtc.emit_by_name::<gst_webrtc::WebRTCRTPTransceiver>(
                    "add-transceiver",
                    &[&Dir::Recvonly, &caps],
                );
            }
        }

        let local_mids = Arc::new(Mutex::new(Vec::new()));
        let mids_c = local_mids.clone();
        let tx = events.clone();
        webrtc.connect("on-ice-candidate", false, move |values| {
            let mline = values[1].get::<u32>().unwrap_or(0);
            let candidate = values[2].get::<String>().unwrap_or_default();
            let mid = mids_c.lock().unwrap_or_else(|p| p.into_inner()).get(mline as usize).cloned();
            let candidate = if candidate.starts_with("candidate:") || candidate.is_empty() {
                candidate
            } else {
                format!("candidate:{}", candidate.trim_start_matches("a=candidate:"))
            };
            let _ = tx.send(EngineEvent::Candidate { candidate, mid, mline });
            None
        });
        let tx = events.clone();
        webrtc.connect_notify(Some("ice-connection-state"), move |w, _| {
            let s = w.property::<IceState>("ice-connection-state");
            let name = match s {
                IceState::New => "new",
                IceState::Checking => "checking",
                IceState::Connected => "connected",
                IceState::Completed => "completed",
                IceState::Failed => "failed",
                IceState::Disconnected => "disconnected",
                IceState::Closed => "closed",
                _ => "new",
            };
            let _ = tx.send(EngineEvent::Ice(name.into()));
        });
        let audio_slot = Arc::new(Mutex::new(Some(audio_out.first.clone())));
        let bin_weak = pipeline.downgrade();
        let m = meters.clone();
        let tx = events.clone();
        let check_rx = check.clone();
        webrtc.connect_pad_added(move |_, pad| {
            if pad.direction() != gst::PadDirection::Src {
                return;
            }
            shut_unless(pad, &check_rx);
            let Some(pipeline) = bin_weak.upgrade() else { return };
            let Ok(decode) = super::make("decodebin") else { return };
            let tx3 = tx.clone();
            super::receive::restrict(&decode, move |message: String| {
                tracing::warn!("{message}");
                let _ = tx3.send(EngineEvent::Warning { code: warning::MEDIA.into(), message });
            });
            let bin = pipeline.upcast_ref::<gst::Bin>().clone();
            let (slot, m, frames, tx2) = (audio_slot.clone(), m.clone(), frames.clone(), tx.clone());
            decode.connect_pad_added(move |_, dpad| {
                if let Err(e) = chains::link_decoded(&bin, dpad, &slot, &m, frames.clone()) {
                    let _ = tx2
                        .send(EngineEvent::Warning { code: warning::DEVICE.into(), message: e.to_string() });
                }
            });
            if pipeline.add(&decode).is_ok() {
                let _ = decode.sync_state_with_parent();
                if let Some(sink) = decode.static_pad("sink") {
                    let _ = pad.link(&sink);
                }
            }
        });

        let bus = pipeline.bus().ok_or_else(|| MediaError::Unavailable("bus".into()))?;
        let m = meters.clone();
        let tx = events.clone();
        bus.set_sync_handler(move |_, msg| {
            use gst::MessageView;
            match msg.view() {
                MessageView::Element(e) => {
                    if let Some(s) = e.structure().filter(|s| s.name() == "level") {
                        let db = super::rms_db(s).unwrap_or(-100.0).to_bits();
                        match msg.src().map(|s| s.name()) {
                            Some(n) if n == "level-local" => m.local_db.store(db, Ordering::Relaxed),
                            Some(n) if n == "level-remote" => m.remote_db.store(db, Ordering::Relaxed),
                            _ => {}
                        }
                    }
                }
                MessageView::Error(e) => {
                    let from = msg.src().map(|s| s.path_string().to_string()).unwrap_or_default();
                    let _ = tx.send(EngineEvent::Error(format!("{from}: {}", e.error())));
                }
                _ => {}
            }
            gst::BusSyncReply::Drop
        });

        for (code, message) in warns {
            let _ = events.send(EngineEvent::Warning { code, message });
        }
        let camera_on = cfg.video && video.is_some();
        if let Some(v) = video.as_ref().filter(|_| !camera_on) {
            // An audio call never opens the camera.
            chains::run_source(&v.src, false);
        }
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| MediaError::Unavailable("the media pipeline would not start".into()))?;
        let camera = video.as_ref().and_then(|v| v.source.clone());
        let s = Session {
            pipeline,
            webrtc,
            volume: audio.volume,
            video,
            meters,
            local_mids,
            remote_mids: Mutex::new(Vec::new()),
            remote_ufrag: Mutex::new(None),
            bitrate: AtomicU32::new(VIDEO_START_BPS),
            last_lost: AtomicU64::new(0),
            last_sent: AtomicU64::new(0),
            camera_on: AtomicBool::new(false),
            created_offer: Arc::default(),
            dtls: cert,
            mic: Mutex::new(audio.source),
            camera: Mutex::new(camera),
            speaker: Mutex::new(audio_out.speaker),
            gate,
            check,
        };
        s.set_camera(camera_on);
        Ok(s)
    }

    fn video_transceiver(&self) -> Option<gst_webrtc::WebRTCRTPTransceiver> {
        self.webrtc.emit_by_name::<Option<gst_webrtc::WebRTCRTPTransceiver>>("get-transceiver", &[&1i32])
    }

    /// Whether a camera exists to turn on.
    pub fn has_camera(&self) -> bool {
        self.video.is_some()
    }

    /// Sets the video direction (sendrecv / recvonly) and opens or closes the
    /// valve. The change reaches the peer with the next offer.
    pub fn set_camera(&self, on: bool) {
        let on = on && self.video.is_some();
        self.camera_on.store(on, Ordering::Relaxed);
        if let Some(t) = self.video_transceiver() {
            t.set_property("direction", if on { Dir::Sendrecv } else { Dir::Recvonly });
        }
        if let Some(v) = &self.video {
            v.valve.set_property("drop", !on);
            let current =
                self.camera.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|(src, _)| src.clone());
            chains::run_source(current.as_ref().unwrap_or(&v.src), on);
            if on && let Some(pad) = v.encoder.static_pad("src") {
                let ev = gst_video::UpstreamForceKeyUnitEvent::builder().all_headers(true).build();
                pad.send_event(ev);
            }
        }
    }

    /// The VP8 target bitrate while the camera sends.
    pub fn video_target_bps(&self) -> Option<u32> {
        self.camera_on().then(|| self.bitrate.load(Ordering::Relaxed))
    }

    pub fn camera_on(&self) -> bool {
        self.camera_on.load(Ordering::Relaxed)
    }

    /// Switches devices mid-call (`None`: keep that one). Only a device can
    /// replace a device: a call that sends a tone or a file keeps it. Returns
    /// warnings for what could not be switched.
    pub fn set_devices(
        &self,
        mic: Option<&str>,
        camera: Option<&str>,
        speaker: Option<&str>,
    ) -> Vec<(String, String)> {
        let mut warns = Vec::new();
        let bin: &gst::Bin = self.pipeline.upcast_ref();
        let mut switch = |slot: &Mutex<Option<(gst::Element, gst::Element)>>,
                          id: Option<&str>,
                          kind: DeviceKind,
                          what: &str| {
            let Some(id) = id else { return };
            let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
            let Some((a, b)) = slot.clone() else {
                warns.push((warning::DEVICE.into(), format!("this call has no {what} to switch")));
                return;
            };
            let Some(new) = chains::device_element(kind, Some(id)) else {
                warns.push((warning::DEVICE.into(), format!("{what} {id} is not available")));
                return;
            };
            let done = if kind == DeviceKind::Speaker {
                swap::sink(bin, &a, &b, &new).map(|_| (a, new))
            } else {
                swap::source(bin, &a, &new, &b).map(|_| (new, b))
            };
            match done {
                Ok(pair) => *slot = Some(pair),
                Err(e) => warns.push((warning::DEVICE.into(), format!("could not switch the {what}: {e}"))),
            }
        };
        switch(&self.mic, mic, DeviceKind::Mic, "microphone");
        switch(&self.camera, camera, DeviceKind::Camera, "camera");
        switch(&self.speaker, speaker, DeviceKind::Speaker, "speaker");
        if camera.is_some() && !self.camera_on() {
            // A camera picked while the camera is off stays closed.
            if let Some((src, _)) = self.camera.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                chains::run_source(src, false);
            }
        }
        warns
    }

    pub fn set_muted(&self, muted: bool) {
        self.volume.set_property("mute", muted);
    }

    /// Creates an offer (new ICE credentials with `ice_restart`) and reports it.
    pub fn create_offer(&self, events: &UnboundedSender<EngineEvent>, ice_restart: bool) {
        self.gate.open();
        self.describe(events, true, ice_restart);
    }

    /// Applies the peer's offer and answers it.
    pub fn apply_offer(&self, events: &UnboundedSender<EngineEvent>, sdp: &str) {
        let restart = {
            let mut last = self.remote_ufrag.lock().unwrap_or_else(|p| p.into_inner());
            let new = ufrag(sdp);
            let restart = last.is_some() && new != *last;
            *last = new;
            restart
        };
        // Another stack's numbers for Opus/VP8 (aiortc: 96/97) before
        // webrtcbin matches the offer; before the gate opens (see [`Gate`]).
        super::pt::follow_offer(&self.webrtc, sdp);
        self.gate.open();
        if let Err(e) = self.set_remote(gst_webrtc::WebRTCSDPType::Offer, sdp) {
            let _ = events.send(EngineEvent::Error(e.to_string()));
            return;
        }
        self.describe(events, false, restart);
    }

    /// Asks webrtcbin for an offer or an answer and reports it as
    /// [`EngineEvent::Description`] (with new ICE credentials on a restart).
    fn describe(&self, events: &UnboundedSender<EngineEvent>, offer: bool, new_credentials: bool) {
        let (tx, field) = (events.clone(), if offer { "offer" } else { "answer" });
        let created = self.created_offer.clone();
        let cert = self.dtls.clone();
        let promise = gst::Promise::with_change_func(move |reply| {
            let desc = reply.ok().flatten().and_then(|r| {
                r.value(field).ok().and_then(|v| v.get::<gst_webrtc::WebRTCSessionDescription>().ok())
            });
            let Some(desc) = desc else {
                let _ = tx.send(EngineEvent::Error(format!("could not create an {field}")));
                return;
            };
            let mut sdp = super::dtls::with_fingerprint(&sdp_text(&desc), &cert);
            if new_credentials {
                sdp = with_new_credentials(&sdp);
            }
            if offer {
                // webrtcbin applies its own form; the peer gets the portable one.
                let wire = without_bundle_only(&sdp);
                *created.lock().unwrap_or_else(|p| p.into_inner()) = Some((wire.clone(), sdp));
                sdp = wire;
            }
            let _ = tx.send(EngineEvent::Description { offer, sdp });
        });
        let signal = if offer { "create-offer" } else { "create-answer" };
        self.webrtc.emit_by_name::<()>(signal, &[&None::<gst::Structure>, &promise]);
    }

    /// Applies a description this session created (the driver decides
    /// whether it still applies: a polite peer drops an offer that lost glare).
    pub fn set_local(&self, offer: bool, sdp: &str) -> Result<(), MediaError> {
        let kind = if offer { gst_webrtc::WebRTCSDPType::Offer } else { gst_webrtc::WebRTCSDPType::Answer };
        let created = self.created_offer.lock().unwrap_or_else(|p| p.into_inner()).take();
        let sdp = match created {
            Some((wire, own)) if offer && wire == sdp => own,
            _ => sdp.to_string(),
        };
        let sdp = sdp.as_str();
        let desc = description(kind, sdp)?;
        *self.local_mids.lock().unwrap_or_else(|p| p.into_inner()) = mids(sdp);
        self.webrtc.emit_by_name::<()>("set-local-description", &[&desc, &None::<gst::Promise>]);
        Ok(())
    }

    /// Applies the peer's answer.
    pub fn apply_answer(&self, events: &UnboundedSender<EngineEvent>, sdp: &str) {
        *self.remote_ufrag.lock().unwrap_or_else(|p| p.into_inner()) = ufrag(sdp);
        if let Err(e) = self.set_remote(gst_webrtc::WebRTCSDPType::Answer, sdp) {
            let _ = events.send(EngineEvent::Error(e.to_string()));
        }
    }

    fn set_remote(&self, kind: gst_webrtc::WebRTCSDPType, sdp: &str) -> Result<(), MediaError> {
        let desc = description(kind, sdp)?;
        self.check.described(sdp);
        *self.remote_mids.lock().unwrap_or_else(|p| p.into_inner()) = mids(sdp);
        self.webrtc.emit_by_name::<()>("set-remote-description", &[&desc, &None::<gst::Promise>]);
        Ok(())
    }

    /// Adds a remote candidate; `mid` wins over `mline`.
    pub fn add_candidate(&self, candidate: &str, mid: Option<&str>, mline: Option<u32>) {
        let by_mid = mid.and_then(|m| {
            let mids = self.remote_mids.lock().unwrap_or_else(|p| p.into_inner());
            mids.iter().position(|x| x == m).map(|i| i as u32)
        });
        let index = by_mid.or(mline).unwrap_or(0);
        self.webrtc.emit_by_name::<()>("add-ice-candidate", &[&index, &candidate]);
    }

    /// Current counters, from webrtcbin's `get-stats` and our meters.
    pub async fn report(&self) -> Report {
        let (tx, rx) = oneshot::channel();
        let promise = gst::Promise::with_change_func(move |reply| {
            let s = reply.ok().flatten().map(|s| s.to_owned());
            let _ = tx.send(s);
        });
        self.webrtc.emit_by_name::<()>("get-stats", &[&None::<gst::Pad>, &promise]);
        let raw = tokio::time::timeout(std::time::Duration::from_secs(2), rx)
            .await
            .ok()
            .and_then(Result::ok)
            .flatten();
        let mut r = raw.map(|s| stats::parse(&s)).unwrap_or_default();
        r.frames_decoded = self.meters.frames_decoded.load(Ordering::Relaxed);
        r.frames_sent = self.meters.frames_sent.load(Ordering::Relaxed);
        r
    }

    /// Last measured levels (local, remote) in dBFS.
    pub fn levels(&self) -> (Option<f64>, Option<f64>) {
        (Meters::level(&self.meters.local_db), Meters::level(&self.meters.remote_db))
    }

    /// Loss-based bandwidth adaptation for VP8 (the loss half of Google
    /// congestion control): from the receiver's RTCP reports between two
    /// calls, more than 10 % loss cuts the target bitrate by half the loss,
    /// under 2 % raises it by 8 %, bounded to 150 kbit/s … 2.5 Mbit/s.
    /// Returns the new target.
    pub fn adapt(&self, r: &Report) -> u32 {
        let Some(v) = &self.video else { return 0 };
        let lost = r.reported_lost.max(0) as u64;
        let sent = r.reported_sent;
        let d_lost = lost.saturating_sub(self.last_lost.swap(lost, Ordering::Relaxed));
        let d_sent = sent.saturating_sub(self.last_sent.swap(sent, Ordering::Relaxed));
        let cur = self.bitrate.load(Ordering::Relaxed);
        if d_sent < 10 {
            return cur;
        }
        let next = next_bitrate(cur, d_lost as f64 / d_sent as f64);
        if next != cur {
            self.bitrate.store(next, Ordering::Relaxed);
            v.encoder.set_property("target-bitrate", next as i32);
        }
        next
    }

    /// Stops the pipeline.
    pub fn close(&self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// One step of the loss-based rate controller.
pub fn next_bitrate(cur: u32, loss: f64) -> u32 {
    let next = if loss > 0.10 {
        f64::from(cur) * (1.0 - 0.5 * loss)
    } else if loss < 0.02 {
        f64::from(cur) * 1.08
    } else {
        f64::from(cur)
    };
    (next as u32).clamp(VIDEO_MIN_BPS, VIDEO_MAX_BPS)
}

impl Drop for Session {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ice_urls_become_gstreamer_uris() {
        assert_eq!(
            gst_ice_uri("stun:stun.example:3478", None, None).as_deref(),
            Some("stun://stun.example:3478")
        );
        assert_eq!(
            gst_ice_uri("turn:10.0.0.1:3478?transport=udp", Some("1700000000:alice"), Some("a+b/c="))
                .as_deref(),
            Some("turn://1700000000%3Aalice:a%2Bb%2Fc%3D@10.0.0.1:3478?transport=udp")
        );
        assert_eq!(gst_ice_uri("turn:10.0.0.1", None, None), None);
        // webrtcbin takes the REST form (`:` in the username) once encoded.
        crate::gst::init().unwrap();
        let w = gst::ElementFactory::make("webrtcbin").build().unwrap();
        let uri = gst_ice_uri("turn:10.0.0.1:3478", Some("1700000000:alice"), Some("a+b/c=")).unwrap();
        assert!(w.emit_by_name::<bool>("add-turn-server", &[&uri]));
        assert!(!w.emit_by_name::<bool>("add-turn-server", &[&"turn://10.0.0.1:3478"]), "no credentials");
        assert_eq!(gst_ice_uri("http://x", None, None), None);
    }

    #[test]
    fn an_ice_restart_changes_every_credential_and_nothing_else() {
        let sdp = "v=0\r\nm=audio 9 UDP 111\r\na=ice-ufrag:abcd\r\na=ice-pwd:p1\r\na=mid:audio0\r\nm=video 9 UDP 96\r\na=ice-ufrag:abcd\r\na=ice-pwd:p1\r\na=mid:video1\r\n";
        let new = with_new_credentials(sdp);
        assert_ne!(ufrag(&new), ufrag(sdp));
        assert!(!new.contains("ice-pwd:p1"));
        assert_eq!(new.lines().count(), sdp.lines().count());
        assert_eq!(mids(&new), vec!["audio0", "video1"]);
        let ufrags: Vec<_> = new.lines().filter(|l| l.starts_with("a=ice-ufrag:")).collect();
        assert_eq!(ufrags[0], ufrags[1]);
    }

    #[test]
    fn offers_carry_port_9_on_bundled_m_lines() {
        let sdp = "v=0\r\na=group:BUNDLE audio0 video1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:audio0\r\nm=video 0 UDP/TLS/RTP/SAVPF 96\r\na=bundle-only\r\na=mid:video1\r\nm=video 0 UDP/TLS/RTP/SAVPF 97\r\na=mid:x\r\n";
        let out = without_bundle_only(sdp);
        assert_eq!(
            out,
            "v=0\r\na=group:BUNDLE audio0 video1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:audio0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:video1\r\nm=video 0 UDP/TLS/RTP/SAVPF 97\r\na=mid:x\r\n",
            "a rejected m-line (port 0 without bundle-only) stays rejected"
        );
    }

    #[test]
    fn the_rate_controller_backs_off_on_loss_and_probes_up_without() {
        assert!(next_bitrate(1_000_000, 0.3) < 1_000_000);
        assert!(next_bitrate(1_000_000, 0.0) > 1_000_000);
        assert_eq!(next_bitrate(1_000_000, 0.05), 1_000_000);
        assert_eq!(next_bitrate(VIDEO_MAX_BPS, 0.0), VIDEO_MAX_BPS);
        assert_eq!(next_bitrate(VIDEO_MIN_BPS, 0.9), VIDEO_MIN_BPS);
    }
}

#[cfg(test)]
#[path = "gate_tests.rs"]
mod gate_tests;
