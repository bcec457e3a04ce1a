//! Payload types: a peer's offer names its own numbers for Opus and VP8
//! (aiortc: 96 and 97); webrtcbin 1.22 matches an offer against our streams
//! including the number, so the answerer takes the offer's numbers first.

use gst::prelude::*;

use super::chains::{OPUS_RTP, VP8_RTP};

/// Our fixed numbers (the ones our offers carry).
pub const OPUS_PT: u32 = 111;
pub const VP8_PT: u32 = 96;

/// The offer's payload types for Opus/48000/2 in its audio section and
/// VP8/90000 in its video section (the first such rtpmap of each).
pub fn offered(sdp: &str) -> (Option<u32>, Option<u32>) {
    let (mut audio, mut video, mut kind) = (None, None, "");
    for line in sdp.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("m=") {
            kind = m.split(' ').next().unwrap_or("");
            continue;
        }
        let Some(map) = line.strip_prefix("a=rtpmap:") else { continue };
        let Some((pt, codec)) = map.split_once(' ') else { continue };
        // Only the dynamic range (RFC 3551): a peer's offer names no other
        // number for Opus or VP8, and a payloader takes nothing above 127.
        let Some(pt) = pt.parse::<u32>().ok().filter(|pt| (96..=127).contains(pt)) else { continue };
        let codec = codec.to_ascii_lowercase();
        match kind {
            "audio" if audio.is_none() && codec == "opus/48000/2" => audio = Some(pt),
            "video" if video.is_none() && codec == "vp8/90000" => video = Some(pt),
            _ => {}
        }
    }
    (audio, video)
}

/// `caps` (one of our RTP caps strings) with payload `pt`.
pub fn with_pt(caps: &str, pt: u32) -> Option<gst::Caps> {
    let mut caps: gst::Caps = caps.parse().ok()?;
    caps.make_mut().structure_mut(0)?.set("payload", pt as i32);
    Some(caps)
}

/// Makes m-line `index` (0 audio, 1 video) send and expect payload `pt`:
/// the transceiver's codec preferences, then the send chain feeding
/// webrtcbin's `sink_<index>` (capsfilter ← payloader), if there is one.
/// The capsfilter takes the new caps before the payloader's number changes,
/// and the payloader renegotiates from it with its next buffer.
pub fn retarget(webrtc: &gst::Element, index: u32, pt: u32) {
    let ours = if index == 0 { OPUS_RTP } else { VP8_RTP };
    let Some(caps) = with_pt(ours, pt) else { return };
    let t = webrtc
        .emit_by_name::<Option<gst_webrtc::WebRTCRTPTransceiver>>("get-transceiver", &[&(index as i32)]);
    if let Some(t) = t {
        t.set_property("codec-preferences", &caps);
    }
    let filter =
        webrtc.static_pad(&format!("sink_{index}")).and_then(|p| p.peer()).and_then(|p| p.parent_element());
    let Some(filter) = filter else { return };
    if sends(&filter) == Some(pt) {
        // Already taken (a later offer from the same peer): no event, which
        // could wait on a buffer webrtcbin holds while it renegotiates.
        return;
    }
    let pay = filter.static_pad("sink").and_then(|p| p.peer()).and_then(|p| p.parent_element());
    filter.set_property("caps", &caps);
    if let Some(pay) = pay {
        pay.set_property("pt", pt);
        if let Some(src) = pay.static_pad("src") {
            src.mark_reconfigure();
        }
    }
    // webrtcbin matches the offer against the caps its pad last received;
    // the payloader renegotiates only with its next buffer (never, with the
    // camera off), so the new caps go to webrtcbin now. The session's gate
    // lets no buffer in before the first offer is applied, so this event
    // waits on nothing and no packet carries a stale number.
    // A chain that has sent no caps yet (its stream has not started) is
    // asked for them by webrtcbin, and the capsfilter already answers with
    // the new number; an event now would overtake its stream-start.
    if let Some(src) = filter.static_pad("src").filter(|p| p.current_caps().is_some()) {
        src.push_event(gst::event::Caps::new(&caps));
    }
}

/// The payload number a send chain's last capsfilter lets through.
fn sends(filter: &gst::Element) -> Option<u32> {
    let caps = filter.property::<Option<gst::Caps>>("caps")?;
    caps.structure(0)?.get::<i32>("payload").ok().map(|p| p as u32)
}

/// Applies the offer's numbers where they differ from ours.
pub fn follow_offer(webrtc: &gst::Element, sdp: &str) {
    let (audio, video) = offered(sdp);
    if let Some(pt) = audio.filter(|&p| p != OPUS_PT) {
        retarget(webrtc, 0, pt);
    }
    if let Some(pt) = video.filter(|&p| p != VP8_PT) {
        retarget(webrtc, 1, pt);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AIORTC: &str = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 96 0 8\r\na=rtpmap:96 opus/48000/2\r\n\
        a=rtpmap:0 PCMU/8000\r\nm=video 9 UDP/TLS/RTP/SAVPF 97 98 99\r\na=rtpmap:97 VP8/90000\r\n\
        a=rtpmap:98 rtx/90000\r\na=rtpmap:99 H264/90000\r\n";

    #[test]
    fn the_offers_opus_and_vp8_numbers_are_read_per_section() {
        assert_eq!(offered(AIORTC), (Some(96), Some(97)));
        let ours =
            "m=audio 9 x 111\r\na=rtpmap:111 OPUS/48000/2\r\nm=video 9 x 96\r\na=rtpmap:96 VP8/90000\r\n";
        assert_eq!(offered(ours), (Some(111), Some(96)));
        // VP8 named in the audio section is not the video number.
        assert_eq!(offered("m=audio 9 x 5\r\na=rtpmap:5 VP8/90000\r\n"), (None, None));
    }

    #[test]
    fn numbers_outside_the_dynamic_range_are_ignored() {
        let hostile = "m=audio 9 UDP/TLS/RTP/SAVPF 4000000\r\na=rtpmap:4000000 opus/48000/2\r\n\
                       m=video 9 UDP/TLS/RTP/SAVPF 8\r\na=rtpmap:8 VP8/90000\r\n";
        assert_eq!(offered(hostile), (None, None));
    }

    #[test]
    fn caps_take_the_offers_number() {
        gst::init().unwrap();
        let caps = with_pt(OPUS_RTP, 96).unwrap();
        assert_eq!(caps.structure(0).unwrap().get::<i32>("payload").unwrap(), 96);
        assert_eq!(caps.structure(0).unwrap().get::<&str>("encoding-name").unwrap(), "OPUS");
    }
}
