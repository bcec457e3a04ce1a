//! What a peer's signals may make this device do, checked before the
//! negotiation machine sees them. The peer is whoever sits at the other
//! call device, and the server relays its bodies unchanged, so:
//!
//! - a description (`offer`, `answer`, `renegotiate`) is at most
//!   [`MAX_SDP_BYTES`] and has the §12 shape: one or two m-lines, at most
//!   one audio and one video (in either order: other stacks put video
//!   first), nothing else (no data channel). Anything else ends the call
//!   `failed`: webrtcbin would build a transceiver for every m-line;
//! - a remote candidate names a unicast address a peer's ICE agent can
//!   listen on: never loopback, unspecified, multicast or broadcast, never
//!   a port below 1024 (services, not ICE agents), and never a DNS name
//!   but an mDNS `.local` one (a lookup of the peer's name would tell the
//!   peer's DNS server this device's resolver). Each candidate makes the
//!   ICE agent send connectivity checks to that address, so without this
//!   a caller could aim the callee's packets at the callee's own machine
//!   or LAN services. Private and link-local addresses stay: two devices
//!   on one LAN connect through them;
//! - at most [`MAX_REMOTE_CANDIDATES`] candidates (trickled and inside
//!   descriptions together) per ICE generation of the peer (a new
//!   `ice-ufrag` starts one); the rest are dropped.
//!
//! Refused candidates are dropped, not fatal: a legitimate peer's odd
//! candidate (a loopback one from a stack that gathers on `lo`) costs
//! nothing but that candidate.

use std::net::IpAddr;

use crate::CallSignal;

/// The largest description a peer may send (ours are 3–6 KB).
pub const MAX_SDP_BYTES: usize = 64 * 1024;
/// The longest candidate line (ours are under 150 bytes).
pub const MAX_CANDIDATE_BYTES: usize = 512;
/// Most remote candidates per ICE generation of the peer. A peer with
/// IPv4 and IPv6 on three interfaces, host, reflexive and relayed, UDP
/// and TCP has about 30.
pub const MAX_REMOTE_CANDIDATES: usize = 50;
/// The lowest port a remote candidate may name.
pub const MIN_CANDIDATE_PORT: u16 = 1024;

/// What to do with a peer's signal.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Pass it on (a description with its refused candidates taken out).
    Pass(CallSignal),
    /// Drop it, for this reason.
    Drop(String),
    /// End the call `failed`, for this reason.
    Fail(String),
}

/// Why a remote candidate is refused, if it is.
pub fn candidate_refusal(candidate: &str) -> Option<String> {
    if candidate.len() > MAX_CANDIDATE_BYTES {
        return Some(format!("a candidate of {} bytes", candidate.len()));
    }
    let t: Vec<&str> = candidate.split_ascii_whitespace().collect();
    let well_formed = t.len() >= 8
        && t[0].starts_with("candidate:")
        && t[6] == "typ"
        && (t[2].eq_ignore_ascii_case("udp") || t[2].eq_ignore_ascii_case("tcp"));
    if !well_formed {
        return Some("a malformed candidate".into());
    }
    let port = match t[5].parse::<u16>() {
        Ok(p) if p >= MIN_CANDIDATE_PORT => p,
        _ => return Some(format!("a candidate on port {}", t[5])),
    };
    match t[4].parse::<IpAddr>() {
        Ok(ip) if !unicast(ip) => Some(format!("a candidate naming {ip}:{port}")),
        Ok(_) => None,
        Err(_) if is_mdns_name(t[4]) => None,
        Err(_) => Some(format!("a candidate naming the host {}", t[4])),
    }
}

/// An address a peer's ICE agent can listen on and this device may send to.
fn unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_unspecified()
                || v4.is_loopback()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.octets()[0] == 0)
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => unicast(IpAddr::V4(v4)),
            None => !(v6.is_unspecified() || v6.is_loopback() || v6.is_multicast()),
        },
    }
}

/// A browser's mDNS host name (`<uuid>.local`): one label, then `.local`.
fn is_mdns_name(host: &str) -> bool {
    let lower = host.to_ascii_lowercase();
    lower.strip_suffix(".local").is_some_and(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    })
}

/// Why a remote description is refused, if it is: its size and shape.
pub fn description_refusal(sdp: &str) -> Option<String> {
    if sdp.len() > MAX_SDP_BYTES {
        return Some(format!("a description of {} bytes", sdp.len()));
    }
    let kinds: Vec<&str> =
        sdp.lines().filter_map(|l| l.strip_prefix("m=")).map(|m| m.split(' ').next().unwrap_or("")).collect();
    let shaped = matches!(kinds.as_slice(), ["audio"] | ["video"] | ["audio", "video"] | ["video", "audio"]);
    (!shaped).then(|| format!("a description with the m-lines {kinds:?}"))
}

/// The peer's signals as checked so far: the candidate budget of its
/// current ICE generation.
#[derive(Debug, Default)]
pub struct Screen {
    ufrag: Option<String>,
    taken: usize,
    over_budget: bool,
}

impl Screen {
    /// Checks one signal from the peer.
    pub fn signal(&mut self, s: CallSignal) -> Verdict {
        match s {
            CallSignal::Offer { sdp, transport_restart } => {
                self.description(sdp, |sdp| CallSignal::Offer { sdp, transport_restart })
            }
            CallSignal::Answer { sdp, transport_restart } => {
                self.description(sdp, |sdp| CallSignal::Answer { sdp, transport_restart })
            }
            CallSignal::Renegotiate { sdp, transport_restart } => {
                self.description(sdp, |sdp| CallSignal::Renegotiate { sdp, transport_restart })
            }
            CallSignal::Candidate { ref candidate, .. } if candidate.is_empty() => Verdict::Pass(s),
            CallSignal::Candidate { ref candidate, .. } => match self.take(candidate) {
                Ok(()) => Verdict::Pass(s),
                Err(why) => Verdict::Drop(why),
            },
            s => Verdict::Pass(s),
        }
    }

    /// One more candidate of the current generation, if it is acceptable
    /// and within the budget.
    fn take(&mut self, candidate: &str) -> Result<(), String> {
        if let Some(why) = candidate_refusal(candidate) {
            return Err(why);
        }
        if self.taken >= MAX_REMOTE_CANDIDATES {
            if !std::mem::replace(&mut self.over_budget, true) {
                tracing::warn!(
                    "the peer sent more than {MAX_REMOTE_CANDIDATES} candidates: dropping the rest"
                );
            }
            return Err(format!("over the {MAX_REMOTE_CANDIDATES} candidates of a generation"));
        }
        self.taken += 1;
        Ok(())
    }

    fn description(&mut self, sdp: String, rebuild: impl FnOnce(String) -> CallSignal) -> Verdict {
        if let Some(why) = description_refusal(&sdp) {
            return Verdict::Fail(why);
        }
        let ufrag = sdp.lines().find_map(|l| l.strip_prefix("a=ice-ufrag:")).map(|u| u.trim().to_owned());
        if ufrag != self.ufrag {
            // A new ICE generation (or the first): a new budget.
            self.ufrag = ufrag;
            self.taken = 0;
            self.over_budget = false;
        }
        let mut out = String::with_capacity(sdp.len());
        for line in sdp.split_inclusive('\n') {
            let keep = match line.trim_end().strip_prefix("a=") {
                Some(c) if c.starts_with("candidate:") => match self.take(c) {
                    Ok(()) => true,
                    Err(why) => {
                        tracing::debug!("dropped from the peer's description: {why}");
                        false
                    }
                },
                _ => true,
            };
            if keep {
                out.push_str(line);
            }
        }
        Verdict::Pass(rebuild(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(addr: &str, port: u16) -> String {
        format!("candidate:1 1 UDP 2122252543 {addr} {port} typ host")
    }

    #[test]
    fn candidates_naming_this_machine_multicast_or_services_are_refused() {
        for (addr, port) in [
            ("127.0.0.1", 5000),
            ("127.8.9.10", 5000),
            ("::1", 5000),
            ("0.0.0.0", 5000),
            ("0.1.2.3", 5000),
            ("::", 5000),
            ("::ffff:127.0.0.1", 5000),
            ("224.0.0.251", 5353),
            ("239.255.255.250", 1900),
            ("ff02::fb", 5353),
            ("255.255.255.255", 5000),
            ("192.168.1.1", 22),
            ("192.168.1.1", 80),
            ("10.0.0.1", 0),
            ("evil.example.com", 5000),
            ("attacker.example.local.evil", 5000),
        ] {
            assert!(candidate_refusal(&cand(addr, port)).is_some(), "{addr}:{port} must be refused");
        }
        for (addr, port) in [
            ("10.0.0.1", 40000),
            ("192.168.1.20", 50000),
            ("169.254.3.4", 40000),
            ("fe80::1", 40000),
            ("2001:db8::7", 3478),
            ("198.51.100.4", 1024),
            ("1f2e3d4c-aaaa-bbbb-cccc-0123456789ab.local", 54321),
        ] {
            assert_eq!(candidate_refusal(&cand(addr, port)), None, "{addr}:{port} is a peer's");
        }
        assert!(candidate_refusal("candidate:1 1 UDP 1 10.0.0.1 40000").is_some(), "no typ");
        assert!(candidate_refusal("candidate:1 1 SCTP 1 10.0.0.1 40000 typ host").is_some());
        assert!(candidate_refusal("1 1 UDP 1 10.0.0.1 40000 typ host").is_some(), "no prefix");
        let long = format!("{} {}", cand("10.0.0.1", 40000), "x".repeat(MAX_CANDIDATE_BYTES));
        assert!(candidate_refusal(&long).is_some(), "too long");
        let tcp = "candidate:2 1 TCP 1518280447 10.0.0.1 40001 typ host tcptype passive";
        assert_eq!(candidate_refusal(tcp), None);
    }

    #[test]
    fn a_flood_of_candidates_stops_at_the_budget_of_a_generation() {
        let mut s = Screen::default();
        let c = |n: u32| CallSignal::Candidate {
            candidate: cand("10.0.0.1", 40000 + n as u16),
            mid: Some("0".into()),
            mline: None,
            ufrag: None,
        };
        let passed = (0..1000).filter(|n| matches!(s.signal(c(*n)), Verdict::Pass(_))).count();
        assert_eq!(passed, MAX_REMOTE_CANDIDATES);
        let end = CallSignal::Candidate { candidate: String::new(), mid: None, mline: None, ufrag: None };
        assert_eq!(s.signal(end.clone()), Verdict::Pass(end), "the end of gathering always passes");
        // A new generation (an ICE restart) has a budget of its own.
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:new1\r\n";
        assert!(matches!(
            s.signal(CallSignal::Renegotiate { sdp: sdp.into(), transport_restart: true }),
            Verdict::Pass(_)
        ));
        assert!(matches!(s.signal(c(1)), Verdict::Pass(_)));
        let refused = CallSignal::Candidate {
            candidate: cand("127.0.0.1", 40000),
            mid: None,
            mline: None,
            ufrag: None,
        };
        assert!(matches!(s.signal(refused), Verdict::Drop(_)));
    }

    #[test]
    fn descriptions_lose_refused_candidates_and_must_have_the_call_shape() {
        let mut sdp = String::from(
            "v=0\r\na=group:BUNDLE 0 1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:u1\r\n",
        );
        sdp.push_str(&format!("a={}\r\n", cand("10.0.0.1", 40000)));
        sdp.push_str(&format!("a={}\r\n", cand("127.0.0.1", 40000)));
        for n in 0..100 {
            sdp.push_str(&format!("a={}\r\n", cand("192.168.0.9", 41000 + n)));
        }
        sdp.push_str("m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\n");
        let Verdict::Pass(CallSignal::Offer { sdp: out, .. }) =
            Screen::default().signal(CallSignal::Offer { sdp, transport_restart: false })
        else {
            panic!("a well-shaped offer passes");
        };
        assert!(!out.contains("127.0.0.1"));
        assert_eq!(out.matches("a=candidate:").count(), MAX_REMOTE_CANDIDATES);
        assert!(out.ends_with("m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\n"), "everything else stays");

        let mut many = String::from("v=0\r\n");
        for _ in 0..1000 {
            many.push_str("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n");
        }
        for bad in [
            many,
            "v=0\r\n".into(),
            "v=0\r\nm=audio 9 X 111\r\nm=audio 9 X 111\r\n".into(),
            "v=0\r\nm=audio 9 X 111\r\nm=video 9 X 96\r\nm=application 9 X webrtc-datachannel\r\n".into(),
            format!("v=0\r\nm=audio 9 X 111\r\na=x:{}\r\n", "y".repeat(MAX_SDP_BYTES)),
        ] {
            let v = Screen::default().signal(CallSignal::Answer { sdp: bad, transport_restart: false });
            assert!(matches!(v, Verdict::Fail(_)), "{v:?}");
        }
        let video_first = "v=0\r\nm=video 9 X 97\r\nm=audio 9 X 96\r\n";
        assert!(matches!(
            Screen::default().signal(CallSignal::Offer { sdp: video_first.into(), transport_restart: false }),
            Verdict::Pass(_)
        ));
    }
}
