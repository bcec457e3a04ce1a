//! The call negotiation machine (protocol §12), sans IO.
//!
//! It takes [`Input`]s — signals from the peer, what the media engine
//! produced, ICE states, user commands and clock ticks — and answers with
//! [`Action`]s for the driver to carry out in order. Time is a number of
//! milliseconds the driver passes in, so every timer is tested without
//! sleeping.
//!
//! Rules held here:
//! - the caller sends exactly one `offer`, first; the callee sends nothing
//!   but `end` before that offer arrives (its candidates wait for its answer);
//! - later offers are `renegotiate` (camera on/off, ICE restart), one at a
//!   time; a change asked for mid-negotiation waits until the state is stable;
//! - glare: the callee is polite (drops its own offer and answers), the
//!   caller ignores the callee's crossing offer. The callee applies its own
//!   offer only together with the answer, so there is nothing to roll back
//!   (webrtcbin 1.22 refuses rollback descriptions);
//! - remote candidates before the remote description are buffered in order;
//!   `"candidate":""` is ignored;
//! - no ICE connection 30 s after the offer → `end{failed}`; ICE lost → an
//!   ICE restart (the caller at once, the callee after a grace period if the
//!   caller has not restarted first); no connection 30 s after the loss →
//!   `end{failed}`;
//! - a restart with a peer that said `transport_restart` is a transport
//!   restart: a new engine session (a new ICE agent, which gathers on the
//!   interfaces there are now, and a new DTLS association) and its offer; a
//!   `renegotiate` whose DTLS fingerprint changed is answered from a new
//!   session too, each at most 6 times a minute (past that: new ICE
//!   credentials only). With other peers a restart is new ICE credentials only;
//! - after `end` (sent or received) nothing more is sent.

use crate::{CallSignal, CallState, EndReason, Role};

/// How long ICE may take to connect, or to come back.
pub const ICE_TIMEOUT_MS: u64 = 30_000;
/// At most this many transport restarts the peer asks for in a minute are
/// answered from a new session (each opens the devices again); past that a
/// new fingerprint is applied like any renegotiation.
pub const PEER_TRANSPORT_RESTARTS_PER_MIN: usize = 6;
/// At most this many transport restarts of our own in a minute; past that
/// a restart is a plain ICE restart. What makes us restart (a path gone
/// quiet, ICE lost) is partly in the peer's hands: a peer that sends and
/// falls silent in turn would otherwise have this device open its camera
/// and microphone again every few seconds.
pub const OWN_TRANSPORT_RESTARTS_PER_MIN: usize = 6;

/// How long the callee waits for the caller to restart ICE before it does.
pub const CALLEE_RESTART_GRACE_MS: u64 = 3_000;

/// ICE connection state, as the engine reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ice {
    New,
    Checking,
    Connected,
    Completed,
    Disconnected,
    Failed,
    Closed,
}

impl Ice {
    /// From webrtcbin's / the W3C spelling; unknown is `New`.
    pub fn parse(s: &str) -> Ice {
        match s {
            "checking" => Ice::Checking,
            "connected" => Ice::Connected,
            "completed" => Ice::Completed,
            "disconnected" => Ice::Disconnected,
            "failed" => Ice::Failed,
            "closed" => Ice::Closed,
            _ => Ice::New,
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The call starts (the invitation is accepted).
    Start,
    /// A signal from the other call device (or the server's `gone`).
    Signal(CallSignal),
    /// The engine created a local offer or answer (not yet applied).
    LocalDescription {
        offer: bool,
        sdp: String,
    },
    /// The engine gathered a local candidate.
    LocalCandidate {
        candidate: String,
        mid: Option<String>,
        mline: u32,
    },
    Ice(Ice),
    /// The camera was turned on or off: the direction changed.
    CameraChanged,
    /// Restart ICE now (a network change the owner noticed).
    RestartIce,
    /// Our mute / camera state changed (sent as `media` once we may speak).
    MediaState {
        audio: bool,
        video: bool,
    },
    Hangup,
    /// The engine failed for good.
    MediaFailed,
    /// Time passed (the driver ticks a few times a second).
    Tick,
}

/// What the driver must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Send(CallSignal),
    /// Ask the engine for an offer; it comes back as `LocalDescription`.
    CreateOffer {
        ice_restart: bool,
    },
    /// Apply a description the engine created.
    SetLocal {
        offer: bool,
        sdp: String,
    },
    /// Apply the peer's offer and create an answer (back as `LocalDescription`).
    ApplyOffer(String),
    /// Replace the engine session with a new one (new ICE agent, new DTLS
    /// association; same devices, mute and camera state) before what follows.
    NewTransport,
    ApplyAnswer(String),
    AddCandidate {
        candidate: String,
        mid: Option<String>,
        mline: Option<u32>,
    },
    State(CallState),
    RemoteMedia {
        audio: bool,
        video: bool,
    },
    /// Stop the media.
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sig {
    /// The callee before the caller's offer.
    AwaitingOffer,
    Stable,
    /// We asked the engine for an offer.
    MakingOffer {
        restart: bool,
    },
    /// Our offer is out; waiting for the answer.
    /// The polite side's offer is applied locally only with the answer, so
    /// losing glare leaves nothing to roll back (webrtcbin 1.22 cannot).
    HaveLocalOffer {
        restart: bool,
    },
    /// The peer's offer is applied; waiting for the engine's answer.
    Answering,
}

/// One call's negotiation state.
#[derive(Debug)]
pub struct Machine {
    role: Role,
    sig: Sig,
    state: CallState,
    offer_sent: bool,
    remote_desc: bool,
    described: bool,
    remote_cands: Vec<(String, Option<String>, Option<u32>)>,
    local_cands: Vec<CallSignal>,
    /// The polite side's offer, sent but applied only with its answer.
    unapplied_offer: Option<String>,
    /// Our latest `media` state while we may not send yet.
    media: Option<CallSignal>,
    /// A renegotiation waiting for a stable state (`true`: with ICE restart).
    wanted: Option<bool>,
    connected_once: bool,
    fail_at: Option<u64>,
    restart_at: Option<u64>,
    /// The peer said `transport_restart` in an offer or answer.
    peer_transport_restart: bool,
    /// The DTLS fingerprint of the peer's last applied description.
    remote_fingerprint: Option<String>,
    /// When the peer's recent transport restarts were answered (ms).
    peer_restarts: std::collections::VecDeque<u64>,
    /// When our own recent transport restarts began (ms).
    own_restarts: std::collections::VecDeque<u64>,
    /// The time of the input being handled (ms).
    now: u64,
}

/// Whether one more restart fits in the last minute's `max`, recorded in
/// `recent` (times in ms) when it does.
fn within_minute(recent: &mut std::collections::VecDeque<u64>, now_ms: u64, max: usize) -> bool {
    while recent.front().is_some_and(|t| now_ms.saturating_sub(*t) >= 60_000) {
        recent.pop_front();
    }
    let fits = recent.len() < max;
    if fits {
        recent.push_back(now_ms);
    }
    fits
}

/// The first `a=fingerprint:` of an SDP, as written.
pub fn fingerprint(sdp: &str) -> Option<String> {
    sdp.lines().find_map(|l| l.strip_prefix("a=fingerprint:")).map(|f| f.trim().to_ascii_uppercase())
}

impl Machine {
    pub fn new(role: Role) -> Machine {
        Machine {
            role,
            sig: if role == Role::Caller { Sig::Stable } else { Sig::AwaitingOffer },
            state: CallState::Connecting,
            // Only the caller's first offer is an `offer`; every callee offer is a `renegotiate`.
            offer_sent: role == Role::Callee,
            remote_desc: false,
            described: false,
            remote_cands: Vec::new(),
            local_cands: Vec::new(),
            media: None,
            unapplied_offer: None,
            wanted: None,
            connected_once: false,
            fail_at: None,
            restart_at: None,
            peer_transport_restart: false,
            remote_fingerprint: None,
            peer_restarts: std::collections::VecDeque::new(),
            own_restarts: std::collections::VecDeque::new(),
            now: 0,
        }
    }

    pub fn state(&self) -> CallState {
        self.state
    }

    pub fn is_ended(&self) -> bool {
        matches!(self.state, CallState::Ended { .. })
    }

    /// Feeds one input at time `now_ms`; returns what to do.
    pub fn handle(&mut self, now_ms: u64, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        if self.is_ended() {
            return out;
        }
        self.now = now_ms;
        match input {
            Input::Start => {
                out.push(Action::State(CallState::Connecting));
                self.fail_at = Some(now_ms + ICE_TIMEOUT_MS);
                if self.role == Role::Caller {
                    self.sig = Sig::MakingOffer { restart: false };
                    out.push(Action::CreateOffer { ice_restart: false });
                }
            }
            Input::Signal(s) => self.on_signal(now_ms, s, &mut out),
            Input::LocalDescription { offer: true, sdp } => {
                let Sig::MakingOffer { restart } = self.sig else {
                    return out; // rolled back while it was being made
                };
                self.sig = Sig::HaveLocalOffer { restart };
                if self.role == Role::Caller {
                    out.push(Action::SetLocal { offer: true, sdp: sdp.clone() });
                } else {
                    self.unapplied_offer = Some(sdp.clone());
                }
                out.push(Action::Send(if self.offer_sent {
                    CallSignal::Renegotiate { sdp, transport_restart: true }
                } else {
                    CallSignal::Offer { sdp, transport_restart: true }
                }));
                self.offer_sent = true;
                self.described(&mut out);
            }
            Input::LocalDescription { offer: false, sdp } => {
                if self.sig != Sig::Answering {
                    return out;
                }
                self.sig = Sig::Stable;
                out.push(Action::SetLocal { offer: false, sdp: sdp.clone() });
                out.push(Action::Send(CallSignal::Answer { sdp, transport_restart: true }));
                self.described(&mut out);
                self.start_wanted(&mut out);
            }
            Input::LocalCandidate { candidate, mid, mline } => {
                let c = CallSignal::Candidate { candidate, mid, mline: Some(mline), ufrag: None };
                if self.described {
                    out.push(Action::Send(c));
                } else {
                    self.local_cands.push(c);
                }
            }
            Input::Ice(ice) => self.on_ice(now_ms, ice, &mut out),
            Input::CameraChanged => self.want(false, &mut out),
            Input::MediaState { audio, video } => {
                let m = CallSignal::Media { audio, video };
                if self.described {
                    out.push(Action::Send(m));
                } else {
                    self.media = Some(m);
                }
            }
            Input::RestartIce => {
                // Restarting now: no second one when the callee's grace ends.
                self.restart_at = None;
                self.want(true, &mut out);
            }
            Input::Hangup => self.end(EndReason::Hangup, false, &mut out),
            Input::MediaFailed => self.end(EndReason::Failed, false, &mut out),
            Input::Tick => {
                let waiting = matches!(self.state, CallState::Connecting | CallState::Reconnecting);
                if waiting && self.fail_at.is_some_and(|t| now_ms >= t) {
                    self.end(EndReason::Failed, false, &mut out);
                } else if self.restart_at.is_some_and(|t| now_ms >= t) {
                    self.restart_at = None;
                    self.want(true, &mut out);
                }
            }
        }
        out
    }

    fn on_signal(&mut self, now_ms: u64, s: CallSignal, out: &mut Vec<Action>) {
        match s {
            CallSignal::Offer { sdp, transport_restart } => {
                // Only the caller offers, once.
                if self.role == Role::Callee && self.sig == Sig::AwaitingOffer {
                    self.peer_transport_restart |= transport_restart;
                    self.fail_at = Some(now_ms + ICE_TIMEOUT_MS);
                    self.apply_offer(now_ms, sdp, out);
                }
            }
            CallSignal::Renegotiate { sdp, transport_restart } => match self.sig {
                Sig::AwaitingOffer | Sig::Answering => {}
                Sig::MakingOffer { .. } | Sig::HaveLocalOffer { .. } if self.role == Role::Caller => {}
                Sig::MakingOffer { restart } => {
                    self.keep_wanted(restart);
                    self.restart_at = None;
                    self.peer_transport_restart |= transport_restart;
                    self.apply_offer(now_ms, sdp, out);
                }
                Sig::HaveLocalOffer { restart } => {
                    // The polite peer: drop ours (never applied) and redo its change later.
                    self.keep_wanted(restart);
                    self.restart_at = None;
                    self.unapplied_offer = None;
                    self.peer_transport_restart |= transport_restart;
                    self.apply_offer(now_ms, sdp, out);
                }
                Sig::Stable => {
                    self.restart_at = None;
                    self.peer_transport_restart |= transport_restart;
                    self.apply_offer(now_ms, sdp, out);
                }
            },
            CallSignal::Answer { sdp, transport_restart } => {
                if let Sig::HaveLocalOffer { .. } = self.sig {
                    self.sig = Sig::Stable;
                    self.peer_transport_restart |= transport_restart;
                    self.remote_fingerprint = fingerprint(&sdp);
                    if let Some(sdp) = self.unapplied_offer.take() {
                        out.push(Action::SetLocal { offer: true, sdp });
                    }
                    out.push(Action::ApplyAnswer(sdp));
                    self.remote_described(out);
                    self.start_wanted(out);
                }
            }
            CallSignal::Candidate { candidate, mid, mline, .. } => {
                if candidate.is_empty() {
                    return; // end of gathering: nobody waits for it
                }
                if self.remote_desc {
                    out.push(Action::AddCandidate { candidate, mid, mline });
                } else {
                    self.remote_cands.push((candidate, mid, mline));
                }
            }
            CallSignal::Media { audio, video } => out.push(Action::RemoteMedia { audio, video }),
            CallSignal::End { reason } => self.end(reason, true, out),
        }
    }

    /// The polite peer's own change, dropped for the peer's offer, is made
    /// again once stable.
    fn keep_wanted(&mut self, restart: bool) {
        self.wanted = Some(self.wanted.unwrap_or(false) || restart);
    }

    fn apply_offer(&mut self, now_ms: u64, sdp: String, out: &mut Vec<Action>) {
        self.sig = Sig::Answering;
        let fp = fingerprint(&sdp);
        let known = self.remote_fingerprint.replace(fp.clone().unwrap_or_default());
        if self.peer_transport_restart && known.is_some_and(|k| fp.is_some_and(|f| f != k)) {
            // The peer restarted its transport: answer from a new one, as
            // often as a network can change, not as often as a peer can ask.
            if within_minute(&mut self.peer_restarts, now_ms, PEER_TRANSPORT_RESTARTS_PER_MIN) {
                if self.state == CallState::Connected {
                    // No media until the new transport connects, whether or
                    // not this side noticed the loss first; the same window
                    // as a restart of its own.
                    self.state = CallState::Reconnecting;
                    out.push(Action::State(CallState::Reconnecting));
                    self.fail_at = Some(now_ms + ICE_TIMEOUT_MS);
                }
                self.new_transport(out);
            } else {
                tracing::warn!("the peer restarts its transport too often: applied as a renegotiation");
            }
        }
        out.push(Action::ApplyOffer(sdp));
        self.remote_described(out);
    }

    /// A new engine session: what the peer's old one sent no longer applies.
    fn new_transport(&mut self, out: &mut Vec<Action>) {
        out.push(Action::NewTransport);
        self.remote_desc = false;
        self.remote_cands.clear();
    }

    fn remote_described(&mut self, out: &mut Vec<Action>) {
        self.remote_desc = true;
        for (candidate, mid, mline) in self.remote_cands.drain(..) {
            out.push(Action::AddCandidate { candidate, mid, mline });
        }
    }

    fn described(&mut self, out: &mut Vec<Action>) {
        self.described = true;
        out.extend(self.local_cands.drain(..).map(Action::Send));
        out.extend(self.media.take().map(Action::Send));
    }

    fn want(&mut self, restart: bool, out: &mut Vec<Action>) {
        self.wanted = Some(self.wanted.unwrap_or(false) || restart);
        self.start_wanted(out);
    }

    fn start_wanted(&mut self, out: &mut Vec<Action>) {
        if self.sig != Sig::Stable {
            return;
        }
        if let Some(restart) = self.wanted.take() {
            self.sig = Sig::MakingOffer { restart };
            if restart
                && self.peer_transport_restart
                && within_minute(&mut self.own_restarts, self.now, OWN_TRANSPORT_RESTARTS_PER_MIN)
            {
                // A new session has new credentials and gathers afresh.
                self.new_transport(out);
                out.push(Action::CreateOffer { ice_restart: false });
            } else {
                out.push(Action::CreateOffer { ice_restart: restart });
            }
        }
    }

    fn on_ice(&mut self, now_ms: u64, ice: Ice, out: &mut Vec<Action>) {
        match ice {
            Ice::Connected | Ice::Completed => {
                self.fail_at = None;
                self.restart_at = None;
                self.connected_once = true;
                if self.state != CallState::Connected {
                    self.state = CallState::Connected;
                    out.push(Action::State(CallState::Connected));
                }
            }
            Ice::Disconnected | Ice::Failed if self.state == CallState::Connected => {
                self.state = CallState::Reconnecting;
                out.push(Action::State(CallState::Reconnecting));
                self.fail_at = Some(now_ms + ICE_TIMEOUT_MS);
                match self.role {
                    Role::Caller => self.want(true, out),
                    Role::Callee => self.restart_at = Some(now_ms + CALLEE_RESTART_GRACE_MS),
                }
            }
            _ => {}
        }
    }

    fn end(&mut self, reason: EndReason, by_peer: bool, out: &mut Vec<Action>) {
        if !by_peer {
            out.push(Action::Send(CallSignal::End { reason }));
        }
        self.state = CallState::Ended { reason, by_peer };
        out.push(Action::State(self.state));
        out.push(Action::Close);
    }
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
