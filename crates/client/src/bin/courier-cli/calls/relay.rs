//! The relay-only ICE policy (`--ice-policy relay`, env
//! `COURIER_ICE_POLICY=relay`). The media engine gathers relay (TURN)
//! candidates only (`main` turns on courier-media's
//! `COURIER_ICE_RELAY_ONLY`), and this device also tells its peer only its
//! relay candidates and ignores every non-relay candidate the peer sends,
//! in trickled candidates and inside SDP alike, so the peer cannot reach
//! it around the relay either.

use courier_proto::call::CallSignal;

/// Whether a call uses every candidate or only relayed ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IcePolicy {
    /// Host, server-reflexive and relay candidates (the default).
    All,
    /// Relay (TURN) candidates only.
    Relay,
}

/// The candidate's `typ`, from `candidate:… typ <type> …` (with or
/// without the `a=` / `candidate:` prefix).
pub fn candidate_type(candidate: &str) -> Option<&str> {
    let mut words = candidate.split_ascii_whitespace();
    words.by_ref().find(|w| *w == "typ")?;
    words.next()
}

/// Whether a candidate line passes the policy. The empty end-of-candidates
/// marker always passes.
pub fn keeps(policy: IcePolicy, candidate: &str) -> bool {
    policy == IcePolicy::All || candidate.is_empty() || candidate_type(candidate) == Some("relay")
}

/// The SDP without the `a=candidate` lines the policy drops.
pub fn filter_sdp(policy: IcePolicy, sdp: &str) -> String {
    if policy == IcePolicy::All {
        return sdp.to_owned();
    }
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        if let Some(c) = body.strip_prefix("a=")
            && c.starts_with("candidate:")
            && !keeps(policy, c)
        {
            continue;
        }
        out.push_str(line);
    }
    out
}

/// The signal as the policy lets it through (either way), or `None` for a
/// candidate it drops.
pub fn filter(policy: IcePolicy, signal: CallSignal) -> Option<CallSignal> {
    match signal {
        CallSignal::Candidate { ref candidate, .. } if !keeps(policy, candidate) => None,
        CallSignal::Offer { sdp, transport_restart } => {
            Some(CallSignal::Offer { sdp: filter_sdp(policy, &sdp), transport_restart })
        }
        CallSignal::Answer { sdp, transport_restart } => {
            Some(CallSignal::Answer { sdp: filter_sdp(policy, &sdp), transport_restart })
        }
        CallSignal::Renegotiate { sdp, transport_restart } => {
            Some(CallSignal::Renegotiate { sdp: filter_sdp(policy, &sdp), transport_restart })
        }
        other => Some(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "candidate:1 1 UDP 2122252543 10.77.0.1 40000 typ host";
    const RELAY: &str = "candidate:5 1 UDP 16777215 10.77.1.1 50000 typ relay raddr 10.77.0.1 rport 40000";
    const SRFLX: &str = "candidate:3 1 UDP 1686052607 192.0.2.1 40000 typ srflx raddr 10.77.0.1 rport 40000";

    fn cand(c: &str) -> CallSignal {
        CallSignal::Candidate { candidate: c.into(), mid: Some("0".into()), mline: None, ufrag: None }
    }

    #[test]
    fn relay_policy_passes_relay_candidates_and_the_end_marker_only() {
        assert_eq!(candidate_type(RELAY), Some("relay"));
        assert_eq!(filter(IcePolicy::Relay, cand(RELAY)), Some(cand(RELAY)));
        assert_eq!(filter(IcePolicy::Relay, cand("")), Some(cand("")));
        assert_eq!(filter(IcePolicy::Relay, cand(HOST)), None);
        assert_eq!(filter(IcePolicy::Relay, cand(SRFLX)), None);
        assert_eq!(filter(IcePolicy::Relay, cand("candidate:garbage")), None);
        assert_eq!(filter(IcePolicy::All, cand(HOST)), Some(cand(HOST)));
    }

    #[test]
    fn relay_policy_strips_non_relay_candidates_from_sdp() {
        let sdp = format!("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 96\r\na={HOST}\r\na={RELAY}\r\na=mid:0\r\n");
        let Some(CallSignal::Offer { sdp: got, .. }) =
            filter(IcePolicy::Relay, CallSignal::Offer { sdp: sdp.clone(), transport_restart: true })
        else {
            panic!("an offer stays an offer");
        };
        assert_eq!(got, format!("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 96\r\na={RELAY}\r\na=mid:0\r\n"));
        assert_eq!(filter_sdp(IcePolicy::All, &sdp), sdp);
        let end = CallSignal::End { reason: courier_proto::call::EndReason::Hangup };
        assert_eq!(filter(IcePolicy::Relay, end.clone()), Some(end));
    }
}
