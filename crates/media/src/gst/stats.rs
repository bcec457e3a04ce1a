//! Reading webrtcbin's `get-stats` report (W3C webrtc-stats names).

use gst_webrtc::WebRTCStatsType as T;

/// What a call's stats need from one report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub candidate_type: Option<String>,
    /// The selected pair's local candidate address (for a host candidate,
    /// the interface address the call's media uses).
    pub local_address: Option<String>,
    pub rtt_ms: Option<f64>,
    pub packets_sent: u64,
    pub packets_received: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Lost as we receive (inbound-rtp `packets-lost`).
    pub packets_lost: i64,
    /// Packets we sent on the streams the receiver reports on (its RTCP
    /// receiver reports: video's when there is one, else whichever it
    /// reports; one path carries both), and of them the receiver reports lost.
    pub reported_sent: u64,
    pub reported_lost: i64,
    pub frames_decoded: u64,
    pub frames_sent: u64,
}

impl Report {
    /// The counters of an earlier session of the call (before a transport
    /// restart) added to this one's; the rest is this session's.
    pub fn after(&self, earlier: &Report) -> Report {
        Report {
            packets_sent: earlier.packets_sent + self.packets_sent,
            packets_received: earlier.packets_received + self.packets_received,
            bytes_sent: earlier.bytes_sent + self.bytes_sent,
            bytes_received: earlier.bytes_received + self.bytes_received,
            packets_lost: earlier.packets_lost + self.packets_lost,
            reported_sent: earlier.reported_sent + self.reported_sent,
            reported_lost: earlier.reported_lost + self.reported_lost,
            frames_decoded: earlier.frames_decoded + self.frames_decoded,
            frames_sent: earlier.frames_sent + self.frames_sent,
            ..self.clone()
        }
    }
}

fn u(s: &gst::StructureRef, f: &str) -> u64 {
    s.get::<u64>(f).ok().or_else(|| s.get::<u32>(f).ok().map(u64::from)).unwrap_or(0)
}

fn i(s: &gst::StructureRef, f: &str) -> i64 {
    s.get::<i64>(f).ok().or_else(|| s.get::<i32>(f).ok().map(i64::from)).unwrap_or(0)
}

/// Whether an RTP stats entry is video. webrtcbin 1.22 labels every
/// bundled stream `kind=audio`, so the clock rate of its own RTP source
/// statistics decides (90 kHz is video).
fn is_video(s: &gst::StructureRef) -> bool {
    s.get::<gst::Structure>("gst-rtpsource-stats")
        .ok()
        .and_then(|r| r.get::<i32>("clock-rate").ok())
        .map(|rate| rate == 90_000)
        .unwrap_or_else(|| s.get::<&str>("kind").map(|k| k == "video").unwrap_or(false))
}

/// Sums the RTP counters and picks the selected pair's local candidate type.
///
/// webrtcbin 1.22 reports one candidate pair (the selected one) and swaps
/// the `type` of local and remote candidate entries, so the pair's
/// `local-candidate-id` is looked up among both.
pub fn parse(report: &gst::StructureRef) -> Report {
    let mut r = Report::default();
    let mut candidates = Vec::new();
    let mut pair_local = None;
    // (id, packets sent, is video) of each outbound stream.
    let mut outbound = Vec::new();
    let mut remote_in = Vec::new();
    let mut rtts = Vec::new();
    for (_, value) in report.iter() {
        let Ok(s) = value.get::<gst::Structure>() else { continue };
        let Ok(kind) = s.get::<T>("type") else { continue };
        let id = s.get::<String>("id").unwrap_or_default();
        match kind {
            T::OutboundRtp => {
                r.packets_sent += u(&s, "packets-sent");
                r.bytes_sent += u(&s, "bytes-sent");
                outbound.push((id, u(&s, "packets-sent"), is_video(&s)));
            }
            T::InboundRtp => {
                r.packets_received += u(&s, "packets-received");
                r.bytes_received += u(&s, "bytes-received");
                r.packets_lost += i(&s, "packets-lost").max(0);
            }
            T::RemoteInboundRtp => {
                if let Ok(rtt) = s.get::<f64>("round-trip-time") {
                    rtts.push(rtt * 1000.0);
                }
                remote_in
                    .push((s.get::<String>("local-id").unwrap_or_default(), i(&s, "packets-lost").max(0)));
            }
            T::CandidatePair => pair_local = s.get::<String>("local-candidate-id").ok(),
            T::LocalCandidate | T::RemoteCandidate => {
                candidates.push((id, s.get::<String>("candidate-type").ok(), s.get::<String>("address").ok()))
            }
            _ => {}
        }
    }
    // webrtcbin 1.22 sometimes has a remote-inbound entry for only one of
    // the bundled streams: the audio's loss then stands for the path's.
    let reported: Vec<(u64, i64, bool)> = remote_in
        .iter()
        .filter_map(|(local, lost)| {
            outbound.iter().find(|(id, _, _)| id == local).map(|(_, sent, video)| (*sent, *lost, *video))
        })
        .collect();
    let any_video = reported.iter().any(|(_, _, v)| *v);
    for (sent, lost, _) in reported.iter().filter(|(_, _, v)| *v || !any_video) {
        r.reported_sent += sent;
        r.reported_lost += lost;
    }
    if let Some((_, t, a)) = pair_local.and_then(|id| candidates.into_iter().find(|(i, _, _)| *i == id)) {
        r.candidate_type = t;
        r.local_address = a;
    }
    r.rtt_ms = rtts.into_iter().filter(|v| v.is_finite() && *v > 0.0).reduce(f64::min);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_carry_over_a_transport_restart_and_the_rest_is_the_new_session() {
        let old = Report {
            candidate_type: Some("host".into()),
            rtt_ms: Some(9.0),
            packets_sent: 100,
            bytes_received: 5000,
            packets_lost: 3,
            frames_decoded: 40,
            ..Report::default()
        };
        let new = Report {
            candidate_type: Some("relay".into()),
            packets_sent: 7,
            frames_decoded: 2,
            ..Report::default()
        };
        let both = new.after(&old);
        assert_eq!(
            (both.packets_sent, both.bytes_received, both.packets_lost, both.frames_decoded),
            (107, 5000, 3, 42)
        );
        assert_eq!(both.candidate_type.as_deref(), Some("relay"));
        assert_eq!(both.rtt_ms, None, "the RTT is the new path's");
    }

    fn rtp(kind: T, id: &str, clock: i32, f: &[(&str, u64)]) -> gst::Structure {
        let mut b = gst::Structure::builder("x").field("type", kind).field("id", id).field(
            "gst-rtpsource-stats",
            gst::Structure::builder("application/x-rtp-source-stats").field("clock-rate", clock).build(),
        );
        for (k, v) in f {
            b = b.field(*k, *v);
        }
        b.build()
    }

    /// The peer's receiver report on our stream `local_id`.
    fn remote_inbound(local_id: &str, lost: i64) -> gst::structure::Builder {
        gst::Structure::builder("x")
            .field("type", T::RemoteInboundRtp)
            .field("local-id", local_id)
            .field("packets-lost", lost)
    }

    #[test]
    fn without_a_report_on_video_the_audio_streams_loss_stands_for_the_path() {
        gst::init().unwrap();
        let report = gst::Structure::builder("application/x-webrtc-stats")
            .field("a", rtp(T::OutboundRtp, "out-a", 48_000, &[("packets-sent", 100)]))
            .field("v", rtp(T::OutboundRtp, "out-v", 90_000, &[("packets-sent", 300)]))
            .field("ra", remote_inbound("out-a", 30).build())
            .build();
        let r = parse(&report);
        assert_eq!((r.reported_sent, r.reported_lost), (100, 30), "30 % loss, not 30 of 300");
    }

    #[test]
    fn a_webrtcbin_1_22_report_reads_right_despite_its_labels() {
        gst::init().unwrap();
        let report = gst::Structure::builder("application/x-webrtc-stats")
            .field("a", rtp(T::OutboundRtp, "out-a", 48_000, &[("packets-sent", 100), ("bytes-sent", 8000)]))
            .field("v", rtp(T::OutboundRtp, "out-v", 90_000, &[("packets-sent", 50), ("bytes-sent", 50_000)]))
            .field(
                "in",
                rtp(T::InboundRtp, "in-a", 48_000, &[("packets-received", 90), ("bytes-received", 7000)]),
            )
            .field("rv", remote_inbound("out-v", 7).field("round-trip-time", 0.012f64).build())
            .field(
                "pair",
                gst::Structure::builder("x")
                    .field("type", T::CandidatePair)
                    .field("local-candidate-id", "ice-candidate-local_1")
                    .build(),
            )
            // 1.22 labels our own candidate `remote-candidate`.
            .field(
                "l",
                gst::Structure::builder("x")
                    .field("type", T::RemoteCandidate)
                    .field("id", "ice-candidate-local_1")
                    .field("candidate-type", "relay")
                    .field("address", "192.0.2.7")
                    .build(),
            )
            .field(
                "r",
                gst::Structure::builder("x")
                    .field("type", T::LocalCandidate)
                    .field("id", "ice-candidate-remote_1")
                    .field("candidate-type", "host")
                    .build(),
            )
            .build();
        let r = parse(&report);
        assert_eq!((r.packets_sent, r.bytes_sent), (150, 58_000));
        assert_eq!((r.packets_received, r.bytes_received), (90, 7000));
        assert_eq!((r.reported_sent, r.reported_lost), (50, 7), "the video stream's report");
        assert_eq!(r.candidate_type.as_deref(), Some("relay"));
        assert_eq!(r.local_address.as_deref(), Some("192.0.2.7"));
        assert_eq!(r.rtt_ms, Some(12.0));
    }
}
