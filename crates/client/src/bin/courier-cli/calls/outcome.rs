//! How a call ended, as an exit code and as the report `call` and
//! `answer-calls` print (human text, or one JSON object with `--json`).
//! Pure: no client, no media, so the mapping is unit-tested.

use courier_media::CallStats;
use serde::Serialize;

/// How one call ended, from this device's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Media connected (ICE connected) at some point; the call then ended
    /// by a hang-up on either side, `--for` or the peer going away.
    Connected,
    /// The callee refused the invitation, or answered it busy.
    Declined,
    /// Nobody answered: the invitation expired or the caller canceled it.
    NoAnswer,
    /// The invitation was accepted but media never connected (ICE failed,
    /// `end` `failed`, or the other device went away before connecting).
    Failed,
    /// The invitation was answered on another device of the callee.
    AnsweredElsewhere,
}

impl Outcome {
    /// The process exit code for this outcome (documented in the README
    /// and in `courier-cli --help`).
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Connected => 0,
            Outcome::Declined => EXIT_DECLINED,
            Outcome::NoAnswer | Outcome::AnsweredElsewhere => EXIT_NO_ANSWER,
            Outcome::Failed => EXIT_MEDIA_FAILED,
        }
    }

    /// The call record's `outcome` the caller writes for an accepted call
    /// (protocol §12): `completed` once media connected, else `failed`.
    /// Unanswered invitations are recorded by the server.
    pub fn record(self) -> Option<&'static str> {
        match self {
            Outcome::Connected => Some("completed"),
            Outcome::Failed => Some("failed"),
            _ => None,
        }
    }
}

/// Exit code: the callee declined (or was busy).
pub const EXIT_DECLINED: u8 = 6;
/// Exit code: no answer (the invitation expired or was canceled), or, for
/// `answer-calls`, no call arrived before it was stopped.
pub const EXIT_NO_ANSWER: u8 = 7;
/// Exit code: the call was accepted but media (ICE) never connected.
pub const EXIT_MEDIA_FAILED: u8 = 8;

/// What `call` and `answer-calls` print for one call. The JSON field names
/// are documented in the crate README.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Report {
    /// The invitation id.
    pub iid: String,
    /// `caller` or `callee`.
    pub role: &'static str,
    /// The other party's user id.
    pub peer: String,
    /// Whether the caller asked for video.
    pub video: bool,
    /// How the call ended ([`Outcome`]).
    pub outcome: Option<Outcome>,
    /// The process exit code this outcome maps to.
    pub exit_code: u8,
    /// `hangup`, `failed`, `gone` or `busy` once a connected call ended.
    pub end_reason: Option<String>,
    /// Whether the other side ended it.
    pub ended_by_peer: bool,
    /// Seconds from ICE connected to the end (0 if it never connected).
    pub duration_s: f64,
    /// Milliseconds from the accepted invitation to ICE connected.
    pub accept_to_connected_ms: Option<u64>,
    /// Milliseconds from the accepted invitation to the first audible
    /// remote audio (a level above −50 dBFS).
    pub accept_to_first_audio_ms: Option<u64>,
    /// The media counters at the end: ICE state, candidate type, RTT,
    /// packets and bytes each way, loss, audio level, video frames (the
    /// engine's own names; see the crate README).
    #[serde(flatten)]
    pub stats: CallStats,
    /// Decoded video frames per second over the connected time.
    pub video_fps_decoded: f64,
    /// Received bytes per second over the connected time.
    pub bytes_received_per_s: f64,
    /// CPU time this process used during the call (user + system), ms.
    pub cpu_ms: u64,
    /// Where the received audio was written, if `--record` was given.
    pub recorded: Option<String>,
    /// A message for outcomes other than `connected`.
    pub error: Option<String>,
}

/// Whether a call connected: ICE connected AND media arrived. ICE alone can
/// succeed while DTLS or the codec negotiation fails, and both sides then
/// talk into silence; that is a failed call, not a connected one.
pub fn media_connected(ice_connected: bool, packets_received: u64) -> bool {
    ice_connected && packets_received > 0
}

impl Report {
    /// Sets the outcome and its exit code.
    pub fn set_outcome(&mut self, outcome: Outcome, error: Option<String>) {
        self.outcome = Some(outcome);
        self.exit_code = outcome.exit_code();
        self.error = error;
    }

    /// Per-second rates (zero when it never connected). Video: over the
    /// `(frames, seconds)` window from the first stats that showed decoded
    /// video to the last (the steady rate, without the wait for the first
    /// key frame) when that window spans at least 2 s, else over the
    /// connected time.
    pub fn derive_rates(&mut self, video_window: Option<(u64, f64)>) {
        if self.duration_s > 0.0 {
            self.video_fps_decoded = round2(self.stats.video_frames_decoded as f64 / self.duration_s);
            self.bytes_received_per_s = round2(self.stats.bytes_received as f64 / self.duration_s);
        }
        if let Some((frames, secs)) = video_window
            && secs >= 2.0
        {
            self.video_fps_decoded = round2(frames as f64 / secs);
        }
    }

    /// The human-readable report: one `key: value` line per figure.
    pub fn text(&self) -> String {
        let outcome = self.outcome.map(|o| format!("{o:?}").to_lowercase()).unwrap_or_default();
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        let num =
            |v: Option<f64>, unit: &str| v.map(|v| format!("{v:.1} {unit}")).unwrap_or_else(|| "-".into());
        let ms = |v: Option<u64>| v.map(|v| format!("{v} ms")).unwrap_or_else(|| "-".into());
        let mut lines = vec![
            format!(
                "call {} ({} with {}{})",
                self.iid,
                self.role,
                self.peer,
                if self.video { ", video" } else { "" }
            ),
            format!("outcome: {outcome} (exit {})", self.exit_code),
        ];
        if let Some(e) = &self.error {
            lines.push(format!("error: {e}"));
        }
        if let Some(r) = &self.end_reason {
            let by = if self.ended_by_peer { "the peer" } else { "this side" };
            lines.push(format!("ended: {r} by {by} after {:.1} s", self.duration_s));
        }
        lines.extend([
            format!(
                "ice state: {}",
                if self.stats.ice_state.is_empty() { "-" } else { &self.stats.ice_state }
            ),
            format!("candidate type: {}", opt(&self.stats.candidate_type)),
            format!("rtt: {}", num(self.stats.rtt_ms, "ms")),
            format!("accept to connected: {}", ms(self.accept_to_connected_ms)),
            format!("accept to first audio: {}", ms(self.accept_to_first_audio_ms)),
            format!("sent: {} packets, {} bytes", self.stats.packets_sent, self.stats.bytes_sent),
            format!(
                "received: {} packets, {} bytes ({:.0} B/s), {} lost ({:.1} %)",
                self.stats.packets_received,
                self.stats.bytes_received,
                self.bytes_received_per_s,
                self.stats.packets_lost,
                self.stats.loss_pct
            ),
            format!("audio level: {}", num(self.stats.audio_level_dbfs, "dBFS")),
            format!(
                "video frames: {} decoded ({:.1}/s), {} sent",
                self.stats.video_frames_decoded, self.video_fps_decoded, self.stats.video_frames_sent
            ),
            format!("cpu: {} ms", self.cpu_ms),
        ]);
        if let Some(r) = &self.recorded {
            lines.push(format!("recorded: {r}"));
        }
        lines.join("\n")
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// CPU time (user + system) this process has used so far, in milliseconds,
/// from `/proc/self/stat` (0 where that is not available).
pub fn process_cpu_ms() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0 };
    // Fields after the command name (which may contain spaces) start after ')'.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { return 0 };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after ')'.
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // The kernel's USER_HZ is 100 on every Linux this runs on.
    (ticks(11) + ticks(12)) * 10
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ice_without_media_is_not_a_connected_call() {
        assert!(media_connected(true, 250));
        assert!(!media_connected(true, 0), "ICE up, DTLS failed: nothing arrived");
        assert!(!media_connected(false, 0));
    }

    #[test]
    fn every_outcome_has_its_own_exit_code_and_only_connected_is_zero() {
        let all = [Outcome::Connected, Outcome::Declined, Outcome::NoAnswer, Outcome::Failed];
        let codes: Vec<u8> = all.iter().map(|o| o.exit_code()).collect();
        assert_eq!(codes, [0, 6, 7, 8]);
        // Distinct from the CLI's other codes: 1 other, 2 usage, 3 queued,
        // 4 refused, 5 unreachable.
        assert!(codes[1..].iter().all(|c| *c > 5));
    }

    #[test]
    fn the_caller_records_completed_or_failed_and_leaves_the_rest_to_the_server() {
        assert_eq!(Outcome::Connected.record(), Some("completed"));
        assert_eq!(Outcome::Failed.record(), Some("failed"));
        assert_eq!(Outcome::Declined.record(), None);
        assert_eq!(Outcome::NoAnswer.record(), None);
    }

    #[test]
    fn the_json_report_names_every_figure() {
        let mut r = Report {
            iid: "i1".into(),
            role: "caller",
            peer: "bob".into(),
            duration_s: 4.0,
            stats: CallStats {
                video_frames_decoded: 100,
                bytes_received: 40_000,
                candidate_type: Some("relay".into()),
                ..CallStats::default()
            },
            ..Report::default()
        };
        r.set_outcome(Outcome::Connected, None);
        r.derive_rates(None);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["outcome"], "connected");
        assert_eq!(v["exit_code"], 0);
        assert_eq!(v["video_fps_decoded"], 25.0);
        assert_eq!(v["bytes_received_per_s"], 10_000.0);
        assert_eq!(v["candidate_type"], "relay");
        for key in
            ["ice_state", "rtt_ms", "packets_sent", "packets_received", "bytes_sent", "audio_level_dbfs"]
        {
            assert!(v.get(key).is_some(), "{key} missing from {v}");
        }
        let text = r.text();
        assert!(text.contains("candidate type: relay"), "{text}");
        assert!(text.contains("(25.0/s)"), "{text}");
    }

    #[test]
    fn rates_stay_zero_for_a_call_that_never_connected() {
        let mut r = Report {
            stats: CallStats { video_frames_decoded: 3, ..CallStats::default() },
            ..Report::default()
        };
        r.derive_rates(None);
        assert_eq!(r.video_fps_decoded, 0.0);
    }

    #[test]
    fn the_video_rate_is_the_steady_one_once_frames_flow() {
        let stats = CallStats { video_frames_decoded: 120, ..CallStats::default() };
        let mut r = Report { duration_s: 6.0, stats, ..Report::default() };
        r.derive_rates(Some((100, 4.0)));
        assert_eq!(r.video_fps_decoded, 25.0, "over the window, not the 6 s");
        r.derive_rates(Some((10, 1.0)));
        assert_eq!(r.video_fps_decoded, 20.0, "a window under 2 s falls back to the connected time");
    }

    #[test]
    fn cpu_time_is_read_from_proc() {
        // Spin until the kernel's 10 ms tick has counted some CPU time; a
        // parser that never finds it fails after a generous bound.
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut x = 0u64;
        while process_cpu_ms() == 0 && std::time::Instant::now() < give_up {
            for _ in 0..100_000 {
                x = x.wrapping_add(std::hint::black_box(1));
            }
        }
        assert!(x > 0 || process_cpu_ms() > 0);
        assert!(process_cpu_ms() > 0, "busy work shows in /proc/self/stat");
    }
}
