//! Unit tests of the negotiation machine: every rule of protocol §12 it holds.

use super::*;

fn cand(n: u32) -> CallSignal {
    CallSignal::Candidate {
        candidate: format!("candidate:{n} 1 UDP 2122252543 10.0.0.1 4000{n} typ host"),
        mid: Some("audio0".into()),
        mline: Some(0),
        ufrag: None,
    }
}

fn local(n: u32) -> Input {
    Input::LocalCandidate {
        candidate: format!("candidate:{n} 1 UDP 1 10.0.0.2 5000{n} typ host"),
        mid: Some("audio0".into()),
        mline: 0,
    }
}

fn sent(actions: &[Action]) -> Vec<&CallSignal> {
    actions.iter().filter_map(|a| if let Action::Send(s) = a { Some(s) } else { None }).collect()
}

fn offer(sdp: &str) -> Input {
    Input::LocalDescription { offer: true, sdp: sdp.into() }
}

fn answer(sdp: &str) -> Input {
    Input::LocalDescription { offer: false, sdp: sdp.into() }
}

/// A caller whose first offer is out.
fn caller_offered() -> Machine {
    let mut m = Machine::new(Role::Caller);
    assert_eq!(
        m.handle(0, Input::Start),
        vec![Action::State(CallState::Connecting), Action::CreateOffer { ice_restart: false }]
    );
    let a = m.handle(10, offer("o1"));
    assert_eq!(a[0], Action::SetLocal { offer: true, sdp: "o1".into() });
    assert_eq!(sent(&a), vec![&CallSignal::Offer { sdp: "o1".into(), transport_restart: true }]);
    m
}

/// A callee that has answered the first offer.
fn callee_answered() -> Machine {
    let mut m = Machine::new(Role::Callee);
    m.handle(0, Input::Start);
    assert_eq!(
        m.handle(5, Input::Signal(CallSignal::Offer { sdp: "o1".into(), transport_restart: false })),
        vec![Action::ApplyOffer("o1".into())]
    );
    let a = m.handle(6, answer("a1"));
    assert_eq!(sent(&a), vec![&CallSignal::Answer { sdp: "a1".into(), transport_restart: true }]);
    m
}

fn connected(m: &mut Machine, now: u64) {
    let a = m.handle(now, Input::Ice(Ice::Connected));
    assert_eq!(a, vec![Action::State(CallState::Connected)]);
}

#[test]
fn the_caller_sends_one_offer_first_then_its_candidates() {
    let mut m = Machine::new(Role::Caller);
    m.handle(0, Input::Start);
    // A candidate before the offer is out waits behind it.
    assert!(m.handle(1, local(1)).is_empty());
    let a = m.handle(2, offer("o1"));
    let s = sent(&a);
    assert!(matches!(s[0], CallSignal::Offer { .. }));
    assert!(matches!(s[1], CallSignal::Candidate { .. }));
    assert_eq!(s.len(), 2);
    // A callee's offer never comes from the caller side again: later offers are renegotiate.
    m.handle(3, Input::Signal(CallSignal::Answer { sdp: "a1".into(), transport_restart: false }));
    m.handle(4, Input::CameraChanged);
    let a = m.handle(5, offer("o2"));
    assert_eq!(sent(&a), vec![&CallSignal::Renegotiate { sdp: "o2".into(), transport_restart: true }]);
}

#[test]
fn the_callee_sends_nothing_but_end_before_the_offer() {
    let mut m = Machine::new(Role::Callee);
    assert_eq!(m.handle(0, Input::Start), vec![Action::State(CallState::Connecting)]);
    assert!(m.handle(1, local(1)).is_empty());
    assert!(m.handle(2, Input::CameraChanged).is_empty(), "no renegotiate before the offer");
    assert!(
        m.handle(2, Input::MediaState { audio: false, video: true }).is_empty(),
        "no media before the offer"
    );
    assert!(
        m.handle(3, Input::Signal(CallSignal::Renegotiate { sdp: "x".into(), transport_restart: false }))
            .is_empty()
    );
    // The offer: answer, then the held candidate, then the held camera change.
    m.handle(4, Input::Signal(CallSignal::Offer { sdp: "o1".into(), transport_restart: false }));
    let a = m.handle(5, answer("a1"));
    let s = sent(&a);
    assert!(matches!(s[0], CallSignal::Answer { .. }));
    assert!(matches!(s[1], CallSignal::Candidate { .. }));
    assert_eq!(s[2], &CallSignal::Media { audio: false, video: true });
    assert_eq!(a.last(), Some(&Action::CreateOffer { ice_restart: false }));
    let a = m.handle(5, offer("callee-o2"));
    assert_eq!(
        a,
        vec![Action::Send(CallSignal::Renegotiate { sdp: "callee-o2".into(), transport_restart: true })],
        "a callee never sends `offer`"
    );
    // The polite side applies its offer together with the answer.
    let a = m.handle(5, Input::Signal(CallSignal::Answer { sdp: "a2".into(), transport_restart: false }));
    assert_eq!(
        a,
        vec![Action::SetLocal { offer: true, sdp: "callee-o2".into() }, Action::ApplyAnswer("a2".into())]
    );
    // A second offer is not an offer the callee takes.
    assert!(
        m.handle(6, Input::Signal(CallSignal::Offer { sdp: "o9".into(), transport_restart: false }))
            .is_empty()
    );
    // Ending is allowed any time.
    let mut early = Machine::new(Role::Callee);
    early.handle(0, Input::Start);
    assert_eq!(sent(&early.handle(1, Input::Hangup)), vec![&CallSignal::End { reason: EndReason::Hangup }]);
}

#[test]
fn late_and_early_candidates_are_buffered_in_order_until_the_remote_description() {
    let mut m = caller_offered();
    assert!(m.handle(20, Input::Signal(cand(1))).is_empty());
    let empty = CallSignal::Candidate { candidate: String::new(), mid: None, mline: Some(0), ufrag: None };
    assert!(m.handle(21, Input::Signal(empty.clone())).is_empty());
    assert!(m.handle(22, Input::Signal(cand(2))).is_empty());
    let a = m.handle(23, Input::Signal(CallSignal::Answer { sdp: "a1".into(), transport_restart: false }));
    let adds: Vec<String> = a
        .iter()
        .filter_map(|x| {
            if let Action::AddCandidate { candidate, .. } = x { Some(candidate.clone()) } else { None }
        })
        .collect();
    assert_eq!(a[0], Action::ApplyAnswer("a1".into()));
    assert_eq!(adds.len(), 2);
    assert!(adds[0].starts_with("candidate:1 ") && adds[1].starts_with("candidate:2 "));
    // After the description, a candidate goes straight in; mid is kept for the engine.
    let a = m.handle(24, Input::Signal(cand(3)));
    assert!(matches!(&a[..], [Action::AddCandidate { mid: Some(m), .. }] if m == "audio0"));
    assert!(m.handle(25, Input::Signal(empty)).is_empty());
}

#[test]
fn the_callee_buffers_candidates_that_overtake_the_offer() {
    let mut m = Machine::new(Role::Callee);
    m.handle(0, Input::Start);
    assert!(m.handle(1, Input::Signal(cand(7))).is_empty());
    let a = m.handle(2, Input::Signal(CallSignal::Offer { sdp: "o1".into(), transport_restart: false }));
    assert_eq!(a[0], Action::ApplyOffer("o1".into()));
    assert!(matches!(&a[1], Action::AddCandidate { candidate, .. } if candidate.starts_with("candidate:7 ")));
}

#[test]
fn glare_the_callee_drops_its_offer_and_answers_then_redoes_its_change() {
    let mut m = callee_answered();
    m.handle(10, Input::CameraChanged);
    m.handle(11, offer("callee-o2"));
    // The caller's renegotiate crosses ours.
    let a = m.handle(
        12,
        Input::Signal(CallSignal::Renegotiate { sdp: "caller-o2".into(), transport_restart: false }),
    );
    assert_eq!(
        a,
        vec![Action::ApplyOffer("caller-o2".into())],
        "its own offer was never applied: nothing to roll back"
    );
    let a = m.handle(13, answer("a2"));
    assert_eq!(sent(&a), vec![&CallSignal::Answer { sdp: "a2".into(), transport_restart: true }]);
    assert_eq!(
        a.last(),
        Some(&Action::CreateOffer { ice_restart: false }),
        "its camera change is made again"
    );
    // An answer to the rolled-back offer is not applied.
    assert!(
        m.handle(14, Input::Signal(CallSignal::Answer { sdp: "stale".into(), transport_restart: false }))
            .is_empty()
    );
}

#[test]
fn glare_while_the_callee_is_still_making_its_offer_drops_that_offer() {
    let mut m = callee_answered();
    m.handle(10, Input::RestartIce);
    let a = m.handle(
        11,
        Input::Signal(CallSignal::Renegotiate { sdp: "caller-o2".into(), transport_restart: false }),
    );
    assert_eq!(a, vec![Action::ApplyOffer("caller-o2".into())]);
    assert!(m.handle(12, offer("late")).is_empty(), "the offer made before glare is dropped");
    let a = m.handle(13, answer("a2"));
    assert_eq!(a.last(), Some(&Action::CreateOffer { ice_restart: true }));
}

#[test]
fn glare_the_caller_ignores_the_callees_crossing_offer() {
    let mut m = caller_offered();
    m.handle(20, Input::Signal(CallSignal::Answer { sdp: "a1".into(), transport_restart: false }));
    m.handle(21, Input::CameraChanged);
    m.handle(22, offer("caller-o2"));
    assert!(
        m.handle(
            23,
            Input::Signal(CallSignal::Renegotiate { sdp: "callee-o2".into(), transport_restart: false })
        )
        .is_empty()
    );
    assert_eq!(
        m.handle(24, Input::Signal(CallSignal::Answer { sdp: "a2".into(), transport_restart: false })),
        vec![Action::ApplyAnswer("a2".into())]
    );
}

#[test]
fn end_before_the_answer_closes_and_nothing_more_is_sent() {
    let mut m = caller_offered();
    let a = m.handle(20, Input::Signal(CallSignal::End { reason: EndReason::Hangup }));
    assert_eq!(
        a,
        vec![Action::State(CallState::Ended { reason: EndReason::Hangup, by_peer: true }), Action::Close]
    );
    assert!(m.handle(21, local(1)).is_empty());
    assert!(
        m.handle(22, Input::Signal(CallSignal::Answer { sdp: "a1".into(), transport_restart: false }))
            .is_empty()
    );
    assert!(m.handle(23, Input::Hangup).is_empty());
    assert!(m.handle(60_000, Input::Tick).is_empty());
    // `gone` from the server ends it the same way.
    let mut g = caller_offered();
    let a = g.handle(20, Input::Signal(CallSignal::End { reason: EndReason::Gone }));
    assert!(sent(&a).is_empty());
    assert_eq!(g.state(), CallState::Ended { reason: EndReason::Gone, by_peer: true });
}

#[test]
fn hangup_before_the_answer_sends_end_once() {
    let mut m = caller_offered();
    let a = m.handle(20, Input::Hangup);
    assert_eq!(sent(&a), vec![&CallSignal::End { reason: EndReason::Hangup }]);
    assert!(a.contains(&Action::Close));
    assert!(m.handle(21, Input::Hangup).is_empty());
}

#[test]
fn no_connection_30_s_after_the_offer_ends_failed() {
    let mut m = caller_offered();
    m.handle(20, Input::Signal(CallSignal::Answer { sdp: "a1".into(), transport_restart: false }));
    assert!(m.handle(ICE_TIMEOUT_MS - 1, Input::Tick).is_empty());
    let a = m.handle(ICE_TIMEOUT_MS, Input::Tick);
    assert_eq!(sent(&a), vec![&CallSignal::End { reason: EndReason::Failed }]);
    assert_eq!(m.state(), CallState::Ended { reason: EndReason::Failed, by_peer: false });
    // Connected in time: the timer is off.
    let mut ok = caller_offered();
    connected(&mut ok, 500);
    assert!(ok.handle(ICE_TIMEOUT_MS * 3, Input::Tick).is_empty());
}

#[test]
fn the_callees_timer_runs_from_the_offer() {
    let mut m = Machine::new(Role::Callee);
    m.handle(0, Input::Start);
    m.handle(10_000, Input::Signal(CallSignal::Offer { sdp: "o1".into(), transport_restart: false }));
    assert!(m.handle(ICE_TIMEOUT_MS + 5_000, Input::Tick).is_empty());
    assert!(!m.handle(ICE_TIMEOUT_MS + 10_000, Input::Tick).is_empty());
}

#[test]
fn ice_lost_makes_the_caller_restart_and_a_new_connection_resumes() {
    let mut m = caller_offered();
    m.handle(20, Input::Signal(CallSignal::Answer { sdp: "a1".into(), transport_restart: false }));
    connected(&mut m, 100);
    let a = m.handle(5_000, Input::Ice(Ice::Failed));
    assert_eq!(a, vec![Action::State(CallState::Reconnecting), Action::CreateOffer { ice_restart: true }]);
    let a = m.handle(5_010, offer("restart"));
    assert_eq!(sent(&a), vec![&CallSignal::Renegotiate { sdp: "restart".into(), transport_restart: true }]);
    m.handle(5_020, Input::Signal(CallSignal::Answer { sdp: "a2".into(), transport_restart: false }));
    assert_eq!(m.handle(5_030, Input::Signal(cand(4))).len(), 1, "new-generation candidates go in");
    connected(&mut m, 6_000);
    assert!(m.handle(5_000 + ICE_TIMEOUT_MS, Input::Tick).is_empty());
}

#[test]
fn a_restart_that_never_connects_ends_failed() {
    let mut m = caller_offered();
    m.handle(20, Input::Signal(CallSignal::Answer { sdp: "a1".into(), transport_restart: false }));
    connected(&mut m, 100);
    m.handle(5_000, Input::Ice(Ice::Disconnected));
    assert!(m.handle(5_000 + ICE_TIMEOUT_MS - 1, Input::Tick).is_empty());
    let a = m.handle(5_000 + ICE_TIMEOUT_MS, Input::Tick);
    assert_eq!(sent(&a), vec![&CallSignal::End { reason: EndReason::Failed }]);
}

#[test]
fn the_callee_restarts_only_if_the_caller_has_not() {
    let mut m = callee_answered();
    connected(&mut m, 100);
    assert_eq!(m.handle(1_000, Input::Ice(Ice::Failed)), vec![Action::State(CallState::Reconnecting)]);
    assert!(m.handle(1_000 + CALLEE_RESTART_GRACE_MS - 1, Input::Tick).is_empty());
    let a = m.handle(1_000 + CALLEE_RESTART_GRACE_MS, Input::Tick);
    assert_eq!(a, vec![Action::CreateOffer { ice_restart: true }]);
    // The caller's restart came first: the callee answers it and makes none.
    let mut n = callee_answered();
    connected(&mut n, 100);
    n.handle(1_000, Input::Ice(Ice::Failed));
    n.handle(
        1_500,
        Input::Signal(CallSignal::Renegotiate { sdp: "restart".into(), transport_restart: false }),
    );
    n.handle(1_510, answer("a2"));
    assert!(n.handle(1_000 + CALLEE_RESTART_GRACE_MS, Input::Tick).is_empty());
}

#[test]
fn changes_asked_mid_negotiation_wait_for_stable() {
    let mut m = caller_offered();
    assert!(m.handle(20, Input::CameraChanged).is_empty(), "the first answer is still out");
    assert!(m.handle(21, Input::RestartIce).is_empty());
    let a = m.handle(22, Input::Signal(CallSignal::Answer { sdp: "a1".into(), transport_restart: false }));
    assert_eq!(a.last(), Some(&Action::CreateOffer { ice_restart: true }), "merged into one renegotiation");
}

#[test]
fn remote_media_state_is_passed_on() {
    let mut m = callee_answered();
    let a = m.handle(10, Input::Signal(CallSignal::Media { audio: false, video: true }));
    assert_eq!(a, vec![Action::RemoteMedia { audio: false, video: true }]);
}

fn sdp_with(fp: &str) -> String {
    format!("v=0\r\na=fingerprint:sha-256 {fp}\r\nm=audio 9 UDP/TLS/RTP/SAVPF 96\r\n")
}

#[test]
fn with_a_peer_that_can_a_restart_is_a_new_transport() {
    let mut m = caller_offered();
    let answer_a1 = CallSignal::Answer { sdp: sdp_with("AA:01"), transport_restart: true };
    m.handle(20, Input::Signal(answer_a1));
    connected(&mut m, 100);
    let a = m.handle(5_000, Input::Ice(Ice::Failed));
    assert_eq!(
        a,
        vec![
            Action::State(CallState::Reconnecting),
            Action::NewTransport,
            Action::CreateOffer { ice_restart: false }
        ],
        "a new session gathers afresh and has new credentials of its own"
    );
    // A candidate of the peer's old session, before the new answer: held, not
    // given to a session without a remote description.
    assert!(m.handle(5_005, Input::Signal(cand(1))).is_empty());
    let a = m.handle(5_010, offer("new-session-offer"));
    assert_eq!(
        sent(&a),
        vec![&CallSignal::Renegotiate { sdp: "new-session-offer".into(), transport_restart: true }]
    );
    let a = m
        .handle(5_020, Input::Signal(CallSignal::Answer { sdp: sdp_with("AA:02"), transport_restart: true }));
    assert!(a.contains(&Action::ApplyAnswer(sdp_with("AA:02"))));
    connected(&mut m, 6_000);
    assert!(m.handle(5_000 + ICE_TIMEOUT_MS, Input::Tick).is_empty(), "the call goes on");
}

#[test]
fn a_peer_that_did_not_say_so_gets_an_ice_restart_only() {
    let mut m = caller_offered();
    m.handle(20, Input::Signal(CallSignal::Answer { sdp: sdp_with("AA:01"), transport_restart: false }));
    connected(&mut m, 100);
    let a = m.handle(5_000, Input::RestartIce);
    assert_eq!(a, vec![Action::CreateOffer { ice_restart: true }]);
}

#[test]
fn a_renegotiate_with_a_new_fingerprint_is_answered_from_a_new_transport() {
    let callee = |flag: bool| {
        let mut m = Machine::new(Role::Callee);
        m.handle(0, Input::Start);
        m.handle(5, Input::Signal(CallSignal::Offer { sdp: sdp_with("AA:01"), transport_restart: flag }));
        m.handle(6, answer("a1"));
        connected(&mut m, 100);
        m
    };
    let reneg =
        |fp: &str| Input::Signal(CallSignal::Renegotiate { sdp: sdp_with(fp), transport_restart: true });
    // Same fingerprint (camera on/off, ICE restart): the same session answers.
    let mut m = callee(true);
    assert_eq!(m.handle(1_000, reneg("AA:01")), vec![Action::ApplyOffer(sdp_with("AA:01"))]);
    m.handle(1_010, answer("a2"));
    // A new one: the peer's transport is new, so ours must be.
    // While it connects this side is reconnecting too, even if it had not
    // noticed the loss itself.
    let a = m.handle(2_000, reneg("BB:02"));
    assert_eq!(
        a,
        vec![
            Action::State(CallState::Reconnecting),
            Action::NewTransport,
            Action::ApplyOffer(sdp_with("BB:02"))
        ]
    );
    let a = m.handle(2_010, answer("a3"));
    assert_eq!(sent(&a), vec![&CallSignal::Answer { sdp: "a3".into(), transport_restart: true }]);
    connected(&mut m, 2_500);
    // Fingerprints compare as hex, whatever the case.
    assert_eq!(m.handle(3_000, reneg("bb:02")), vec![Action::ApplyOffer(sdp_with("bb:02"))]);
    m.handle(3_010, answer("a4"));
    // A new transport that never connects ends the call, as a restart of
    // this side's own would.
    assert_eq!(m.handle(4_000, reneg("DD:04"))[0], Action::State(CallState::Reconnecting));
    m.handle(4_010, answer("a5"));
    assert!(m.handle(4_000 + ICE_TIMEOUT_MS - 1, Input::Tick).is_empty());
    let a = m.handle(4_000 + ICE_TIMEOUT_MS, Input::Tick);
    assert!(
        a.contains(&Action::State(CallState::Ended { reason: EndReason::Failed, by_peer: false })),
        "{a:?}"
    );
    // With a peer that never said it can, a new fingerprint is only applied.
    let mut old = callee(false);
    let a = old.handle(
        1_000,
        Input::Signal(CallSignal::Renegotiate { sdp: sdp_with("CC:03"), transport_restart: false }),
    );
    assert_eq!(a, vec![Action::ApplyOffer(sdp_with("CC:03"))]);
}

#[test]
fn a_peer_cannot_make_us_rebuild_the_transport_more_than_six_times_a_minute() {
    let mut m = Machine::new(Role::Callee);
    m.handle(0, Input::Start);
    m.handle(5, Input::Signal(CallSignal::Offer { sdp: sdp_with("00"), transport_restart: true }));
    m.handle(6, answer("a0"));
    let mut rebuilt = 0;
    for i in 1..=10u64 {
        let at = 1_000 * i;
        let a = m.handle(
            at,
            Input::Signal(CallSignal::Renegotiate {
                sdp: sdp_with(&format!("{i:02}")),
                transport_restart: true,
            }),
        );
        assert!(
            a.contains(&Action::ApplyOffer(sdp_with(&format!("{i:02}")))),
            "every offer is still answered"
        );
        rebuilt += usize::from(a.contains(&Action::NewTransport));
        m.handle(at + 1, answer("a"));
    }
    assert_eq!(rebuilt, PEER_TRANSPORT_RESTARTS_PER_MIN);
    // A minute after the first ones, a new network change is honoured again.
    let a = m.handle(
        62_000,
        Input::Signal(CallSignal::Renegotiate { sdp: sdp_with("99"), transport_restart: true }),
    );
    assert_eq!(a.first(), Some(&Action::NewTransport));
}

#[test]
fn a_peer_falling_silent_again_and_again_rebuilds_our_transport_six_times_a_minute() {
    let mut m = caller_offered();
    m.handle(20, Input::Signal(CallSignal::Answer { sdp: sdp_with("AA:01"), transport_restart: true }));
    connected(&mut m, 100);
    let (mut rebuilt, mut plain) = (0, 0);
    for i in 1..=10u64 {
        // The path goes quiet (the driver reports it as ICE lost), the
        // restart's answer comes and it connects again.
        let at = 5_000 * i;
        let a = m.handle(at, Input::Ice(Ice::Disconnected));
        rebuilt += usize::from(a.contains(&Action::NewTransport));
        plain += usize::from(a.contains(&Action::CreateOffer { ice_restart: true }));
        m.handle(at + 10, offer(&format!("o{i}")));
        m.handle(
            at + 20,
            Input::Signal(CallSignal::Answer { sdp: sdp_with(&format!("{i:02}")), transport_restart: true }),
        );
        connected(&mut m, at + 30);
    }
    assert_eq!((rebuilt, plain), (OWN_TRANSPORT_RESTARTS_PER_MIN, 10 - OWN_TRANSPORT_RESTARTS_PER_MIN));
    // A minute after the first ones, a restart rebuilds again.
    let a = m.handle(70_000, Input::Ice(Ice::Disconnected));
    assert!(a.contains(&Action::NewTransport), "{a:?}");
}
