//! The [`Call`] handle and its driver task: one tokio task per call owns the
//! negotiation [`Machine`] and the media [`Session`], and is the only place
//! either is touched. GStreamer callbacks reach it as engine events over a
//! channel; the handle's methods reach it as commands; a 100 ms tick drives
//! the machine's timers, the level meters and (every second) the stats and
//! bandwidth adaptation. Outgoing signals go through one sender task, so they
//! leave in the order the machine produced them.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot, watch};

use crate::gst::session::{EngineEvent, Session};
use crate::gst::stats::Report;
use crate::machine::{Action, Ice, Input, Machine};
use crate::screen::{Screen, Verdict};
use crate::{
    AudioSink, AudioSource, CallEvent, CallOptions, CallSignal, CallState, CallStats, EndReason, MediaConfig,
    MediaError, VideoSource, warning,
};

/// How call signals leave this device. The CLI and the app implement it with
/// `courier_client::Client::call_signal(iid, signal)` (a `signal` to
/// `{"call":iid}`). Signals are sent one after another, in order.
pub trait Signaler: Send + Sync + 'static {
    /// Sends one signal. An error is logged; the call goes on (the 30 s
    /// failure timer ends a call whose peer never hears it).
    fn send(&self, signal: CallSignal) -> BoxFuture<'static, Result<(), String>>;
}

enum Cmd {
    Signal(CallSignal),
    Hangup,
    Mute(bool),
    Camera(bool),
    Devices(Option<String>, Option<String>, Option<String>),
    RestartIce,
    Stats(oneshot::Sender<CallStats>),
}

type Outcome = (EndReason, bool, CallStats);

struct Handle {
    cmd: mpsc::UnboundedSender<Cmd>,
    done: watch::Receiver<Option<Outcome>>,
    /// True once every signal the call made (its `end` last) was handed to
    /// the signaler and its send finished.
    flushed: watch::Receiver<bool>,
}

/// Connected, but nothing received for this long: the path is gone (ICE in
/// webrtcbin 1.22 has no consent freshness and never says so itself).
const SILENT_PATH_MS: u128 = 4_000;

/// The machine's non-loopback IP addresses. One of them going away is a
/// network change the call must restart its transport for.
fn local_addresses() -> Vec<std::net::IpAddr> {
    let mut v: Vec<_> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .filter(|i| !i.is_loopback())
        .map(|i| i.ip())
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Whether a path that carried media has gone quiet for [`SILENT_PATH_MS`]
/// while connected. A peer that never sent anything on this session (a
/// receive-only peer of another stack) is not taken for a dead path.
pub fn path_went_silent(state: CallState, packets_received: u64, quiet_ms: u128) -> bool {
    state == CallState::Connected && packets_received > 0 && quiet_ms >= SILENT_PATH_MS
}

/// Whether the addresses that went away (from `before` to `now`) take the
/// call's path with them. With a host candidate selected, only its own
/// address matters (an IPv6 temporary address expiring elsewhere does not);
/// with a server-reflexive or relay candidate the interface under it is not
/// in the stats, so any loss counts.
pub fn path_lost(
    before: &[std::net::IpAddr],
    now: &[std::net::IpAddr],
    candidate_type: Option<&str>,
    local_address: Option<&str>,
) -> bool {
    let mut gone = before.iter().filter(|a| !now.contains(a));
    let host = local_address
        .and_then(|a| a.parse::<std::net::IpAddr>().ok())
        .filter(|_| candidate_type == Some("host"));
    match host {
        Some(used) => gone.any(|a| *a == used),
        None => gone.next().is_some(),
    }
}

/// How long [`Call::ended`] waits for the last signals to leave.
const FLUSH_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

impl Drop for Handle {
    fn drop(&mut self) {
        let _ = self.cmd.send(Cmd::Hangup);
    }
}

/// One running call. Cheap to clone (an `Arc` inside). Dropping the last
/// clone hangs up.
#[derive(Clone)]
pub struct Call {
    inner: Arc<Handle>,
}

impl Call {
    /// Starts the media session and the negotiation machine on the current
    /// tokio runtime. The caller sends the offer at once (the invitation is
    /// already accepted); the callee waits for it.
    ///
    /// # Errors
    /// [`MediaError::Unavailable`] when GStreamer or a needed element is
    /// missing, or when called outside a tokio runtime. A missing device is
    /// not an error: it is a [`CallEvent::Warning`] and the call goes on
    /// without it.
    pub fn start(
        opts: CallOptions,
        signaler: Arc<dyn Signaler>,
    ) -> Result<(Call, mpsc::UnboundedReceiver<CallEvent>), MediaError> {
        let rt = tokio::runtime::Handle::try_current()
            .map_err(|_| MediaError::Unavailable("Call::start needs a tokio runtime".into()))?;
        let (events, events_rx) = mpsc::unbounded_channel();
        let (engine_tx, engine_rx) = mpsc::unbounded_channel();
        let session = Session::start(&opts.media, false, engine_tx.clone(), events.clone())?;
        let (cmd, cmd_rx) = mpsc::unbounded_channel();
        let (done_tx, done) = watch::channel(None);
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<CallSignal>();
        let iid = opts.iid.clone();
        let (flushed_tx, flushed) = watch::channel(false);
        rt.spawn(async move {
            while let Some(s) = out_rx.recv().await {
                if let Err(e) = signaler.send(s).await {
                    tracing::warn!(iid, error = %e, "call signal not sent");
                }
            }
            // The driver is gone (the call ended) and everything it queued was sent.
            let _ = flushed_tx.send(true);
        });
        let driver = Driver {
            machine: Machine::new(opts.role),
            session,
            engine_tx,
            events,
            out: out_tx,
            epoch: Instant::now(),
            ice: "new".into(),
            connected_at: None,
            muted: false,
            last_report: Report::default(),
            media: opts.media,
            earlier: Report::default(),
            new_engine: None,
            warned: HashSet::new(),
            addresses: local_addresses(),
            received: (0, Instant::now()),
            noticed: VecDeque::new(),
            screen: Screen::default(),
        };
        rt.spawn(driver.run(cmd_rx, engine_rx, done_tx));
        Ok((Call { inner: Arc::new(Handle { cmd, done, flushed }) }, events_rx))
    }

    fn send(&self, c: Cmd) {
        let _ = self.inner.cmd.send(c);
    }

    /// Feeds a call signal that arrived for this call (from the other call
    /// device, or the server's `gone`).
    pub fn on_signal(&self, signal: CallSignal) {
        self.send(Cmd::Signal(signal));
    }

    /// Sends `end{hangup}` and closes the media.
    pub fn hangup(&self) {
        self.send(Cmd::Hangup);
    }

    /// Mutes or unmutes the microphone; sends `media{…}`.
    pub fn set_muted(&self, muted: bool) {
        self.send(Cmd::Mute(muted));
    }

    /// Turns the camera on or off: a direction change by `renegotiate`
    /// (never a new m-line); sends `media{…}`. Without a camera, turning it
    /// on is a `no_camera` warning.
    pub fn set_camera(&self, on: bool) {
        self.send(Cmd::Camera(on));
    }

    /// Switches devices mid-call (ids from [`devices`](crate::devices));
    /// `None` keeps that one. What cannot be switched (an unknown id, a call
    /// that sends a tone or file, a call that started without a camera) is a
    /// `device` warning; the call goes on.
    pub fn set_devices(&self, mic: Option<String>, camera: Option<String>, speaker: Option<String>) {
        self.send(Cmd::Devices(mic, camera, speaker));
    }

    /// Restarts ICE now (new credentials by `renegotiate`), as after a
    /// network change.
    pub fn restart_ice(&self) {
        self.send(Cmd::RestartIce);
    }

    /// The current counters (the final ones once the call is over).
    pub async fn stats(&self) -> CallStats {
        let (tx, rx) = oneshot::channel();
        self.send(Cmd::Stats(tx));
        match rx.await {
            Ok(s) => s,
            Err(_) => self.inner.done.borrow().as_ref().map(|o| o.2.clone()).unwrap_or_default(),
        }
    }

    /// Waits for the end, and for the call's last signals (its `end`) to be
    /// sent (at most 5 s more); returns the reason, whether the peer ended
    /// it, and the final stats.
    pub async fn ended(&self) -> (EndReason, bool, CallStats) {
        let mut done = self.inner.done.clone();
        let outcome = match done.wait_for(Option::is_some).await {
            Ok(v) => v.clone().expect("waited for Some"),
            // The driver is gone without an outcome: only if the runtime shut down.
            Err(_) => (EndReason::Failed, false, CallStats::default()),
        };
        // A process that exits right after this must not lose its `end`:
        // wait (bounded) until the last signals have been sent.
        let mut flushed = self.inner.flushed.clone();
        let _ = tokio::time::timeout(FLUSH_PATIENCE, flushed.wait_for(|f| *f)).await;
        outcome
    }
}

struct Driver {
    machine: Machine,
    session: Session,
    engine_tx: mpsc::UnboundedSender<EngineEvent>,
    events: mpsc::UnboundedSender<CallEvent>,
    out: mpsc::UnboundedSender<CallSignal>,
    epoch: Instant,
    ice: String,
    connected_at: Option<Instant>,
    muted: bool,
    /// The current session's last report (its own counters).
    last_report: Report,
    /// What a new session is started with (devices switched mid-call included).
    media: MediaConfig,
    /// The counters of the sessions transport restarts replaced.
    earlier: Report,
    /// A new session's engine channel, for the run loop to listen to instead.
    new_engine: Option<mpsc::UnboundedReceiver<EngineEvent>>,
    /// Engine warnings already passed on: a new session repeats its device warnings.
    warned: HashSet<(String, String)>,
    /// The local addresses at the last look (every second).
    addresses: Vec<std::net::IpAddr>,
    /// Packets received at the last look, and when that count last grew.
    received: (u64, Instant),
    /// What the once-a-second look noticed, for the machine.
    noticed: VecDeque<Input>,
    /// The peer's signals as checked so far (descriptions, candidate budget).
    screen: Screen,
}

impl Driver {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    async fn run(
        mut self,
        mut cmds: mpsc::UnboundedReceiver<Cmd>,
        mut engine: mpsc::UnboundedReceiver<EngineEvent>,
        done: watch::Sender<Option<Outcome>>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks = 0u64;
        let mut end = self.step(Input::Start).await;
        if end.is_none() {
            let video = self.session.camera_on();
            end = self.step(Input::MediaState { audio: true, video }).await;
        }
        while end.is_none() {
            if let Some(rx) = self.new_engine.take() {
                // What the replaced session still reports is dropped with its channel.
                engine = rx;
            }
            let input = tokio::select! {
                c = cmds.recv() => match c {
                    Some(c) => self.command(c).await,
                    None => Some(Input::Hangup),
                },
                Some(e) = engine.recv() => self.engine_event(e),
                _ = tick.tick() => {
                    ticks += 1;
                    self.meter(ticks.is_multiple_of(10)).await;
                    Some(Input::Tick)
                }
            };
            if let Some(input) = input {
                end = self.step(input).await;
            }
            while end.is_none()
                && let Some(input) = self.noticed.pop_front()
            {
                end = self.step(input).await;
            }
        }
        let (reason, by_peer) = end.expect("loop ends with an outcome");
        let stats = self.stats().await;
        self.session.close();
        let _ = done.send(Some((reason, by_peer, stats)));
    }

    async fn command(&mut self, c: Cmd) -> Option<Input> {
        match c {
            Cmd::Signal(s) => match self.screen.signal(s) {
                Verdict::Pass(s) => Some(Input::Signal(s)),
                Verdict::Drop(why) => {
                    tracing::debug!("dropped a peer's signal: {why}");
                    None
                }
                Verdict::Fail(why) => {
                    tracing::warn!("the peer sent {why}: ending the call");
                    self.warn(warning::MEDIA, &format!("the peer sent {why}"));
                    Some(Input::MediaFailed)
                }
            },
            Cmd::Hangup => Some(Input::Hangup),
            Cmd::RestartIce => Some(Input::RestartIce),
            Cmd::Mute(m) => {
                self.muted = m;
                self.session.set_muted(m);
                Some(Input::MediaState { audio: !m, video: self.session.camera_on() })
            }
            Cmd::Camera(on) => {
                if on && !self.session.has_camera() {
                    self.warn(warning::NO_CAMERA, "no camera: audio only");
                    return None;
                }
                if on == self.session.camera_on() {
                    return None;
                }
                self.session.set_camera(on);
                let _ = self.step(Input::CameraChanged).await;
                Some(Input::MediaState { audio: !self.muted, video: on })
            }
            Cmd::Devices(mic, camera, speaker) => {
                for (code, message) in
                    self.session.set_devices(mic.as_deref(), camera.as_deref(), speaker.as_deref())
                {
                    self.warn(&code, &message);
                }
                // A later session (transport restart) opens the devices chosen last.
                let m = &mut self.media;
                if let (Some(id), AudioSource::Device(_)) = (mic, &m.audio_in) {
                    m.audio_in = AudioSource::Device(Some(id));
                }
                if let (Some(id), VideoSource::Device(_)) = (camera, &m.video_in) {
                    m.video_in = VideoSource::Device(Some(id));
                }
                if let (Some(id), AudioSink::Device(_)) = (speaker, &m.audio_out) {
                    m.audio_out = AudioSink::Device(Some(id));
                }
                None
            }
            Cmd::Stats(tx) => {
                let _ = tx.send(self.stats().await);
                None
            }
        }
    }

    fn warn(&self, code: &str, message: &str) {
        let _ = self.events.send(CallEvent::Warning { code: code.into(), message: message.into() });
    }

    fn engine_event(&mut self, e: EngineEvent) -> Option<Input> {
        match e {
            EngineEvent::Description { offer, sdp } => Some(Input::LocalDescription { offer, sdp }),
            EngineEvent::Candidate { candidate, mid, mline } => {
                Some(Input::LocalCandidate { candidate, mid, mline })
            }
            EngineEvent::Ice(s) => {
                self.ice = s.clone();
                Some(Input::Ice(Ice::parse(&s)))
            }
            EngineEvent::Warning { code, message } => {
                if self.warned.insert((code.clone(), message.clone())) {
                    self.warn(&code, &message);
                }
                None
            }
            EngineEvent::Impostor(message) => {
                self.warn(warning::MEDIA, &message);
                Some(Input::MediaFailed)
            }
            EngineEvent::Error(message) => {
                tracing::warn!(%message, "media error");
                self.warn(warning::MEDIA, &message);
                None
            }
        }
    }

    /// Runs one input through the machine and carries out its actions;
    /// returns the outcome once the call has ended.
    async fn step(&mut self, input: Input) -> Option<(EndReason, bool)> {
        let mut actions: VecDeque<Action> = self.machine.handle(self.now(), input).into();
        let mut end = None;
        while let Some(a) = actions.pop_front() {
            match a {
                Action::NewTransport => {
                    if let Err(e) = self.new_transport().await {
                        tracing::warn!(error = %e, "no new media session for a transport restart");
                        self.warn(warning::MEDIA, &e.to_string());
                        // Nothing that was meant for the new session can happen.
                        actions = self.machine.handle(self.now(), Input::MediaFailed).into();
                    }
                }
                Action::Send(s) => {
                    let _ = self.out.send(s);
                }
                Action::CreateOffer { ice_restart } => {
                    self.session.create_offer(&self.engine_tx, ice_restart)
                }
                Action::SetLocal { offer, sdp } => {
                    if let Err(e) = self.session.set_local(offer, &sdp) {
                        self.warn(warning::MEDIA, &e.to_string());
                    }
                }
                Action::ApplyOffer(sdp) => self.session.apply_offer(&self.engine_tx, &sdp),
                Action::ApplyAnswer(sdp) => self.session.apply_answer(&self.engine_tx, &sdp),
                Action::AddCandidate { candidate, mid, mline } => {
                    self.session.add_candidate(&candidate, mid.as_deref(), mline)
                }
                Action::State(s) => {
                    if s == CallState::Connected && self.connected_at.is_none() {
                        self.connected_at = Some(Instant::now());
                    }
                    if let CallState::Ended { reason, by_peer } = s {
                        end = Some((reason, by_peer));
                    }
                    let _ = self.events.send(CallEvent::State(s));
                }
                Action::RemoteMedia { audio, video } => {
                    let _ = self.events.send(CallEvent::RemoteMedia { audio, video });
                }
                Action::Close => {}
            }
        }
        end
    }

    /// Levels every tick; stats and bandwidth adaptation when `full`.
    async fn meter(&mut self, full: bool) {
        let (local, remote) = self.session.levels();
        if local.is_some() || remote.is_some() {
            let _ = self
                .events
                .send(CallEvent::Levels { local: local.unwrap_or(-100.0), remote: remote.unwrap_or(-100.0) });
        }
        if full {
            let s = self.stats().await;
            self.session.adapt(&self.last_report);
            let _ = self.events.send(CallEvent::Stats(s));
            self.watch_path();
        }
    }

    /// Notices a network change: an address of ours gone (restart at once,
    /// whichever side we are), or a connected path on which nothing has
    /// arrived for [`SILENT_PATH_MS`] (the peer's network changed, or a
    /// middlebox dropped the flow: the ICE-lost path of the machine).
    fn watch_path(&mut self) {
        let live = matches!(self.machine.state(), CallState::Connected | CallState::Reconnecting);
        let now = local_addresses();
        let r = &self.last_report;
        let lost = path_lost(&self.addresses, &now, r.candidate_type.as_deref(), r.local_address.as_deref());
        if lost && live {
            tracing::info!(before = ?self.addresses, now = ?now, "a local address went away: restarting the transport");
            if self.machine.state() == CallState::Connected {
                self.noticed.push_back(Input::Ice(Ice::Disconnected));
            }
            self.noticed.push_back(Input::RestartIce);
        }
        self.addresses = now;
        let got = self.last_report.packets_received;
        if got != self.received.0 {
            self.received = (got, Instant::now());
        } else if path_went_silent(self.machine.state(), got, self.received.1.elapsed().as_millis()) {
            tracing::info!("nothing received for {SILENT_PATH_MS} ms: the path is gone");
            self.noticed.push_back(Input::Ice(Ice::Disconnected));
            self.received.1 = Instant::now();
        }
    }

    /// Replaces the session by a new one (a transport restart): same
    /// devices, camera and mute state; a recording goes on.
    async fn new_transport(&mut self) -> Result<(), MediaError> {
        let last = self.session.report().await;
        self.earlier = last.after(&self.earlier);
        self.session.close();
        let media = MediaConfig { video: self.session.camera_on(), ..self.media.clone() };
        let (tx, rx) = mpsc::unbounded_channel();
        let session = Session::start(&media, true, tx.clone(), self.events.clone())?;
        session.set_muted(self.muted);
        self.session = session;
        self.engine_tx = tx;
        self.new_engine = Some(rx);
        self.last_report = Report::default();
        self.received = (0, Instant::now());
        self.ice = "new".into();
        tracing::info!("media transport restarted: a new ICE agent and DTLS association");
        Ok(())
    }

    async fn stats(&mut self) -> CallStats {
        let raw = self.session.report().await;
        let r = raw.after(&self.earlier);
        let (_, remote) = self.session.levels();
        let total = r.packets_received as f64 + r.packets_lost.max(0) as f64;
        let s = CallStats {
            ice_state: self.ice.clone(),
            candidate_type: r.candidate_type.clone(),
            rtt_ms: r.rtt_ms,
            packets_sent: r.packets_sent,
            packets_received: r.packets_received,
            bytes_sent: r.bytes_sent,
            bytes_received: r.bytes_received,
            packets_lost: r.packets_lost,
            loss_pct: if total > 0.0 { r.packets_lost.max(0) as f64 * 100.0 / total } else { 0.0 },
            audio_level_dbfs: remote,
            video_frames_decoded: r.frames_decoded,
            video_frames_sent: r.frames_sent,
            connected_ms: self.connected_at.map(|t| t.elapsed().as_millis() as u64),
            video_target_kbps: self.session.video_target_bps().map(|b| b / 1000),
        };
        self.last_report = raw;
        s
    }
}

#[cfg(test)]
mod tests {
    use super::{CallState, SILENT_PATH_MS, path_lost, path_went_silent};

    #[test]
    fn only_a_path_that_carried_media_and_went_quiet_is_dead() {
        assert!(path_went_silent(CallState::Connected, 500, SILENT_PATH_MS));
        assert!(!path_went_silent(CallState::Connected, 500, SILENT_PATH_MS - 1));
        assert!(
            !path_went_silent(CallState::Connected, 0, 60_000),
            "a peer that never sends is not a dead path"
        );
        assert!(!path_went_silent(CallState::Reconnecting, 500, 60_000), "already restarting");
    }

    #[test]
    fn only_the_loss_of_the_address_in_use_restarts_a_host_path() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let before = [ip("10.0.0.5"), ip("2001:db8::1"), ip("2001:db8::2")];
        let v6_expired = [ip("10.0.0.5"), ip("2001:db8::1")];
        let moved = [ip("10.0.1.9"), ip("2001:db8::1"), ip("2001:db8::2")];
        assert!(!path_lost(&before, &v6_expired, Some("host"), Some("10.0.0.5")), "another address went");
        assert!(path_lost(&before, &moved, Some("host"), Some("10.0.0.5")), "the one in use went");
        assert!(!path_lost(&before, &before, Some("host"), Some("10.0.0.5")));
        // Relayed or reflexive: the interface underneath is unknown.
        assert!(path_lost(&before, &v6_expired, Some("relay"), Some("198.51.100.4")));
        assert!(path_lost(&before, &v6_expired, None, None));
        assert!(!path_lost(&before, &before, None, None));
    }
}
