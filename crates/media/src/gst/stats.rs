//! Reading webrtcbin's `get-stats` report (W3C webrtc-stats names).

use gst_webrtc::WebRTCStatsType as T;

/// What a call's stats need from one report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub candidate_type: Option<String>,
    pub rtt_ms: Option<f64>,
    pub packets_sent: u64,
    pub packets_received: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Lost as we receive (inbound-rtp `packets-lost`).
    pub packets_lost: i64,
    /// Video packets we sent, and of them the receiver reports lost.
    pub video_packets_sent: u64,
    pub video_lost: i64,
    pub frames_decoded: u64,
    pub frames_sent: u64,
}

fn u(s: &gst::StructureRef, f: &str) -> u64 {
    s.get::<u64>(f).ok().or_else(|| s.get::<u32>(f).ok().map(u64::from)).unwrap_or(0)
}

fn i(s: &gst::StructureRef, f: &str) -> i64 {
    s.get::<i64>(f).ok().or_else(|| s.get::<i32>(f).ok().map(i64::from)).unwrap_or(0)
}

fn is_video(s: &gst::StructureRef) -> bool {
    s.get::<&str>("kind").map(|k| k == "video").unwrap_or(false)
}

/// Sums the RTP counters and picks the selected pair's local candidate type.
pub fn parse(report: &gst::StructureRef) -> Report {
    let mut r = Report::default();
    let mut local_candidates = Vec::new();
    let mut pair_local = None;
    let mut rtts = Vec::new();
    for (_, value) in report.iter() {
        let Ok(s) = value.get::<gst::Structure>() else { continue };
        let Ok(kind) = s.get::<T>("type") else { continue };
        match kind {
            T::OutboundRtp => {
                r.packets_sent += u(&s, "packets-sent");
                r.bytes_sent += u(&s, "bytes-sent");
                if is_video(&s) {
                    r.video_packets_sent += u(&s, "packets-sent");
                }
            }
            T::InboundRtp => {
                r.packets_received += u(&s, "packets-received");
                r.bytes_received += u(&s, "bytes-received");
                r.packets_lost += i(&s, "packets-lost");
            }
            T::RemoteInboundRtp => {
                if let Ok(rtt) = s.get::<f64>("round-trip-time") {
                    rtts.push(rtt * 1000.0);
                }
                if is_video(&s) {
                    r.video_lost += i(&s, "packets-lost");
                }
            }
            T::CandidatePair => {
                if let Ok(id) = s.get::<String>("local-candidate-id") {
                    pair_local = Some(id);
                }
            }
            T::LocalCandidate => {
                let id = s.get::<String>("id").unwrap_or_default();
                let ty = s.get::<String>("candidate-type").ok();
                local_candidates.push((id, ty));
            }
            _ => {}
        }
    }
    r.candidate_type = match pair_local {
        Some(id) => local_candidates.iter().find(|(i, _)| *i == id).and_then(|(_, t)| t.clone()),
        None => None,
    };
    r.rtt_ms = rtts.into_iter().filter(|v| v.is_finite() && *v > 0.0).reduce(f64::min);
    r
}
