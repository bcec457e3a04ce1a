//! Real calls in the Rust process (protocol §12): this module owns the one
//! running [`courier_media::Call`] of the profile.
//!
//! - A call starts when this device is the call device of an accepted
//!   invitation: as caller when the core reports `accepted` for an
//!   invitation this device sent ([`Calls::invited`] remembered it), as
//!   callee right after this device's accept ([`Calls::answered`]).
//! - Call signals the core receives go to [`courier_media::Call::on_signal`]
//!   (those that arrive before the call starts wait, in order); the call's
//!   own signals leave through [`courier_client::Client::call_signal`].
//! - Every [`CallEvent`] but frames reaches the webview as a [`CallUpdate`]
//!   (`courier://call`); frames wait in [`crate::calls_frames`] for the page
//!   to fetch them as raw bytes.
//! - When a call ends, the caller's device writes the call record.
//!
//! The webview controls only this profile's current call: the commands
//! ([`crate::calls_commands`]) name no call and take no paths.

use crate::bridge;
use crate::calls_frames::FrameStore;
use courier_client::{Client, ClientEvent, InviteView};
use courier_media::{
    AudioSink, AudioSource, Call, CallEvent, CallOptions, CallSignal, CallState, EndReason, FrameOptions,
    MediaConfig, Role, Signaler, VideoSource,
};
use courier_proto::InviteState;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tauri::{AppHandle, Manager};

/// The event a call's updates are emitted on: payload [`CallUpdate`].
pub const CALL_EVENT: &str = "courier://call";

/// Signals kept for a call that has not started yet (an offer and its
/// candidates that overtook the accept); beyond this they are dropped.
const EARLY_SIGNALS_MAX: usize = 64;
/// Invitations remembered as "ours to start" at once.
const PENDING_MAX: usize = 16;
/// The largest remote picture delivered to the page (it scales it down
/// further to its view, see [`crate::calls_frames`]).
const FRAME_MAX: (u32, u32) = (1280, 720);
const FRAME_FPS: u32 = 30;

/// Where a call is, as the in-call view says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, specta::Type)]
#[serde(rename_all = "snake_case")]
pub enum CallPhase {
    /// Negotiating, ICE checking.
    Connecting,
    /// Media flows.
    Connected,
    /// ICE restart under way.
    Reconnecting,
    /// Over.
    Ended,
}

/// One thing the in-call view should know about the running call.
#[derive(Debug, Clone, PartialEq, Serialize, specta::Type)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CallUiEvent {
    /// This device runs the media of the call.
    Started {
        /// The other party.
        peer: String,
        /// Whether this device sends video from the start.
        video: bool,
        /// Whether this device placed the call.
        caller: bool,
    },
    /// The call's phase; `reason` and `by_peer` once it ended.
    State {
        /// The phase.
        phase: CallPhase,
        /// Why it ended.
        reason: Option<EndReason>,
        /// Whether the other side (or the server for it) ended it.
        by_peer: bool,
    },
    /// The peer's microphone and camera.
    RemoteMedia {
        /// Its microphone is on.
        audio: bool,
        /// Its camera is on.
        video: bool,
    },
    /// Levels in dBFS, about ten a second.
    Levels {
        /// What this device sends.
        local: f64,
        /// What it hears.
        remote: f64,
    },
    /// The connection's quality, about once a second.
    Stats {
        /// Round-trip time.
        rtt_ms: Option<f64>,
        /// Packets lost, in percent of those expected.
        loss_pct: f64,
        /// The local candidate type of the selected pair.
        candidate_type: Option<String>,
        /// ICE state.
        ice_state: String,
        /// Remote video frames decoded so far.
        video_frames_decoded: u64,
    },
    /// A device problem that does not end the call (`no_camera`, `no_mic`…).
    Warning {
        /// Stable code.
        code: String,
        /// English text for logs; the UI words it from `code`.
        message: String,
    },
}

/// A [`CallUiEvent`] of the call of invitation `iid`.
#[derive(Debug, Clone, PartialEq, Serialize, specta::Type)]
pub struct CallUpdate {
    /// The invitation.
    pub iid: String,
    /// What happened.
    pub event: CallUiEvent,
}

/// A microphone, camera or speaker the OS offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, specta::Type)]
pub struct DeviceInfo {
    /// Opaque id to pass back.
    pub id: String,
    /// For humans.
    pub name: String,
    /// `mic`, `camera` or `speaker`.
    pub kind: String,
}

/// The devices chosen in Settings (`None`: the system default); persisted
/// in the profile's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
#[serde(default)]
pub struct DeviceChoice {
    /// Microphone id.
    pub mic: Option<String>,
    /// Camera id.
    pub camera: Option<String>,
    /// Speaker id.
    pub speaker: Option<String>,
}

/// Longest device id kept from the page (GStreamer ids are short paths).
pub const DEVICE_ID_MAX: usize = 256;

impl DeviceChoice {
    /// The choice as stored: ids longer than [`DEVICE_ID_MAX`] or empty are
    /// the default device.
    #[must_use]
    pub fn bounded(self) -> DeviceChoice {
        DeviceChoice {
            mic: device_id(self.mic),
            camera: device_id(self.camera),
            speaker: device_id(self.speaker),
        }
    }
}

/// A device id from the page as used: empty or longer than
/// [`DEVICE_ID_MAX`] means the default device.
pub fn device_id(id: Option<String>) -> Option<String> {
    id.filter(|s| !s.is_empty() && s.len() <= DEVICE_ID_MAX)
}

/// What the page hears of a media event (frames travel apart).
pub fn ui_event(ev: &CallEvent) -> Option<CallUiEvent> {
    Some(match ev {
        CallEvent::State(s) => {
            let (phase, reason, by_peer) = match s {
                CallState::Connecting => (CallPhase::Connecting, None, false),
                CallState::Connected => (CallPhase::Connected, None, false),
                CallState::Reconnecting => (CallPhase::Reconnecting, None, false),
                CallState::Ended { reason, by_peer } => (CallPhase::Ended, Some(*reason), *by_peer),
            };
            CallUiEvent::State { phase, reason, by_peer }
        }
        CallEvent::RemoteMedia { audio, video } => CallUiEvent::RemoteMedia { audio: *audio, video: *video },
        CallEvent::Levels { local, remote } => CallUiEvent::Levels { local: db(*local), remote: db(*remote) },
        CallEvent::Stats(s) => CallUiEvent::Stats {
            rtt_ms: s.rtt_ms,
            loss_pct: s.loss_pct,
            candidate_type: s.candidate_type.clone(),
            ice_state: s.ice_state.clone(),
            video_frames_decoded: s.video_frames_decoded,
        },
        CallEvent::Warning { code, message } => {
            CallUiEvent::Warning { code: code.clone(), message: message.clone() }
        }
        CallEvent::Frame { .. } => return None,
    })
}

/// The quietest level the page is told of: JSON has no −∞ (silence).
pub const SILENCE_DB: f64 = -100.0;

/// A level the page can read: finite, silence at most [`SILENCE_DB`].
pub fn db(level: f64) -> f64 {
    if level.is_nan() { SILENCE_DB } else { level.clamp(SILENCE_DB, 0.0) }
}

/// Who this device is in an invitation it may run the media of.
#[derive(Debug, Clone)]
struct Pending {
    caller: bool,
    video: bool,
    peer: String,
}

/// The running call.
struct Active {
    iid: String,
    call: Call,
}

#[derive(Default)]
struct Inner {
    pending: HashMap<String, Pending>,
    early: HashMap<String, Vec<CallSignal>>,
    active: Option<Active>,
    mic_test: Option<courier_media::MicTest>,
    muted: bool,
    /// Accepts this device has sent and not yet heard back about, and
    /// whether a hang-up came for them meanwhile (the page shows the call
    /// from the click on; its hang-up must not be lost).
    accepting: HashMap<String, bool>,
}

impl Inner {
    fn accepting(&mut self, iid: &str) {
        if self.accepting.len() >= PENDING_MAX {
            self.accepting.clear();
        }
        self.accepting.insert(iid.to_owned(), false);
    }

    /// A hang-up: the running call's, else the accepts in flight are to be
    /// hung up as they start. `false`: there is nothing to hang up.
    fn hangup(&mut self) -> bool {
        if let Some(a) = self.active.as_ref() {
            a.call.hangup();
            return true;
        }
        self.accepting.values_mut().for_each(|h| *h = true);
        !self.accepting.is_empty()
    }

    /// The accept of `iid` got its answer; whether its call is to be hung up.
    fn accepted(&mut self, iid: &str) -> bool {
        self.accepting.remove(iid).unwrap_or(false)
    }

    /// This device placed `v` and is its call device (`call_device`): the
    /// call to start now when `v` is accepted already, else nothing yet
    /// (a pending one is remembered until its accept arrives).
    ///
    /// The accept can overtake the `invite` ok: the callee may answer while
    /// the server still finishes the `invite` op, and the `invite_state`
    /// event then reaches this device before the ok, so the ok's invitation
    /// reads as accepted (the core never moves a final state back). That
    /// accepted event found nothing remembered, so the call starts here.
    fn placed(&mut self, v: &InviteView, call_device: bool) -> Option<Pending> {
        if !call_device {
            return None;
        }
        let p = Pending { caller: true, video: wants_video(v), peer: v.invite.to.clone() };
        match v.invite.state {
            InviteState::Accepted => Some(p),
            InviteState::Pending => {
                if self.pending.len() >= PENDING_MAX {
                    self.pending.clear();
                }
                self.pending.insert(v.invite.iid.clone(), p);
                None
            }
            _ => None,
        }
    }

    /// A new state of an invitation this device placed: the call to start
    /// when it is the accept of one remembered by [`Inner::placed`] (once).
    fn outgoing(&mut self, iid: &str, state: InviteState) -> Option<Pending> {
        match state {
            InviteState::Pending => None,
            InviteState::Accepted => self.pending.remove(iid),
            _ => {
                self.pending.remove(iid);
                None
            }
        }
    }
}

/// The calls of this profile (managed Tauri state).
#[derive(Default)]
pub struct Calls {
    inner: Mutex<Inner>,
    /// The latest frames of the running call, for the page to fetch.
    pub frames: Arc<FrameStore>,
}

fn lock(m: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether an invitation's content asks for video (`invite.content.video`).
pub fn wants_video(v: &InviteView) -> bool {
    v.invite.content.get("video").and_then(serde_json::Value::as_bool).unwrap_or(false)
}

/// The invitation this device refuses as busy (§12: a device already in a
/// call may answer a new one `response:{"busy":true}`), instead of ringing
/// over the running call: a new incoming invitation while `in_call`.
pub fn busy_refusal(ev: &ClientEvent, in_call: bool) -> Option<String> {
    match ev {
        ClientEvent::Invite { invite } if in_call && invite.ringing => Some(invite.invite.iid.clone()),
        _ => None,
    }
}

/// Refuses `iid` as busy, in the background (a failure only means it rings
/// out on the caller's side).
pub fn refuse_busy(client: &Client, iid: String) {
    let client = client.clone();
    tauri::async_runtime::spawn(async move {
        let mut busy = serde_json::Map::new();
        busy.insert("busy".into(), serde_json::Value::Bool(true));
        if let Err(e) = client.answer(&iid, false, busy).await {
            tracing::warn!("call {iid}: could not refuse as busy: {e}");
        }
    });
}

impl Calls {
    /// The result of this device's `invite`: when it is the call device,
    /// the call starts once the invitation is accepted (at once when the
    /// `accepted` event overtook this result).
    pub fn invited(&self, app: &AppHandle, client: &Client, v: &InviteView) {
        // The session that sent the invite is the caller's call device (§12).
        let call_device = client.is_call_device(&v.invite.iid);
        let start = lock(&self.inner).placed(v, call_device);
        if let Some(p) = start {
            self.start(app, client, &v.invite.iid, p);
            return;
        }
        if !call_device || v.invite.state != InviteState::Pending {
            return;
        }
        // Accepted between the ok and now: the event may have passed the
        // forwarder before the invitation was remembered.
        let now = client.invites().ok().and_then(|vs| vs.into_iter().find(|x| x.invite.iid == v.invite.iid));
        if let Some(now) = now.filter(|x| x.invite.state != InviteState::Pending) {
            self.on_event(app, client, &ClientEvent::Invite { invite: now });
        }
    }

    /// The result of this device's answer: an accept that made this device
    /// the callee's call device starts the call now.
    pub fn answered(&self, app: &AppHandle, client: &Client, v: &InviteView) {
        // The session whose answer accepted is the callee's call device (§12).
        if v.invite.state == InviteState::Accepted && client.is_call_device(&v.invite.iid) {
            let p = Pending { caller: false, video: wants_video(v), peer: v.invite.from.clone() };
            self.start(app, client, &v.invite.iid, p);
        } else {
            self.accept_done(&v.invite.iid);
        }
    }

    /// A core event: the accept of a call this device placed, and the
    /// signals of calls this device runs.
    pub fn on_event(&self, app: &AppHandle, client: &Client, ev: &ClientEvent) {
        match ev {
            ClientEvent::Invite { invite } if !invite.incoming => {
                let p = lock(&self.inner).outgoing(&invite.invite.iid, invite.invite.state);
                if let Some(p) = p {
                    self.start(app, client, &invite.invite.iid, p);
                }
            }
            // Anything that is not a call signal (an extension, a peer
            // before v1.2) is not the engine's business.
            ClientEvent::Signal { .. } => {
                if let Some(s) = ev.call_signal() {
                    self.on_signal(&s.iid, s.signal);
                }
            }
            _ => {}
        }
    }

    /// Hands a signal to the running call, or keeps it for a call that is
    /// about to start.
    fn on_signal(&self, iid: &str, signal: CallSignal) {
        let mut inner = lock(&self.inner);
        if let Some(a) = inner.active.as_ref().filter(|a| a.iid == iid) {
            a.call.on_signal(signal);
            return;
        }
        let early = inner.early.entry(iid.to_owned()).or_default();
        if early.len() < EARLY_SIGNALS_MAX {
            early.push(signal);
        }
        if inner.early.len() > PENDING_MAX {
            let keep = iid.to_owned();
            inner.early.retain(|k, _| *k == keep);
        }
    }

    fn start(&self, app: &AppHandle, client: &Client, iid: &str, p: Pending) {
        let settings = app.state::<crate::state::AppState>().settings();
        let media = media_config(client, &settings.call_devices, p.video);
        let signaler = Arc::new(ClientSignaler { client: client.clone(), iid: iid.to_owned() });
        let role = if p.caller { Role::Caller } else { Role::Callee };
        let opts = CallOptions { iid: iid.to_owned(), role, media };
        let (call, events) = match Call::start(opts, signaler) {
            Ok(started) => started,
            Err(e) => {
                tracing::error!("call {iid}: media did not start: {e}");
                emit(
                    app,
                    iid,
                    CallUiEvent::Warning { code: "media_unavailable".into(), message: e.to_string() },
                );
                let ended = CallUiEvent::State {
                    phase: CallPhase::Ended,
                    reason: Some(EndReason::Failed),
                    by_peer: false,
                };
                emit(app, iid, ended);
                fail_unstarted(client, iid, &p);
                return;
            }
        };
        let (early, hang_up) = {
            let mut inner = lock(&self.inner);
            if let Some(old) = inner.active.take() {
                old.call.hangup();
            }
            inner.muted = false;
            inner.active = Some(Active { iid: iid.to_owned(), call: call.clone() });
            let hang_up = inner.accepted(iid);
            (inner.early.remove(iid).unwrap_or_default(), hang_up)
        };
        self.frames.reset();
        emit(app, iid, CallUiEvent::Started { peer: p.peer.clone(), video: p.video, caller: p.caller });
        for s in early {
            call.on_signal(s);
        }
        if hang_up {
            // Hung up while the accept was on its way: the call ends as it
            // starts (`end{hangup}`, the callee's only signal before the offer).
            call.hangup();
        }
        let run = Running { app: app.clone(), client: client.clone(), iid: iid.to_owned(), p, call };
        tauri::async_runtime::spawn(run.pump(events));
    }

    /// This device is about to accept `iid` (before the answer is sent).
    pub fn accepting(&self, iid: &str) {
        lock(&self.inner).accepting(iid);
    }

    /// The accept of `iid` failed, or made another device the call device.
    pub fn accept_done(&self, iid: &str) {
        lock(&self.inner).accepted(iid);
    }

    /// Whether a call is running on this device.
    pub fn in_call(&self) -> bool {
        lock(&self.inner).active.is_some()
    }

    /// The running call, if any.
    pub fn current(&self) -> Option<Call> {
        lock(&self.inner).active.as_ref().map(|a| a.call.clone())
    }

    /// Hangs up the running call (the end arrives as its last update), or
    /// the call an accept in flight is about to start.
    pub fn hangup(&self) -> bool {
        lock(&self.inner).hangup()
    }

    /// Mutes or unmutes this device's microphone in the running call.
    pub fn set_muted(&self, muted: bool) -> bool {
        let mut inner = lock(&self.inner);
        inner.muted = muted;
        inner.active.as_ref().map(|a| a.call.set_muted(muted)).is_some()
    }

    fn finished(&self, iid: &str) {
        let mut inner = lock(&self.inner);
        if inner.active.as_ref().is_some_and(|a| a.iid == iid) {
            inner.active = None;
        }
        inner.early.remove(iid);
    }

    /// Starts the Settings mic test (replacing one that runs); its levels
    /// go to `levels` until [`Calls::stop_mic_test`].
    pub fn start_mic_test(
        &self,
        mic: Option<String>,
        levels: tauri::ipc::Channel<f64>,
    ) -> Result<(), courier_media::MediaError> {
        let (test, mut rx) = courier_media::MicTest::start(mic)?;
        lock(&self.inner).mic_test = Some(test);
        tauri::async_runtime::spawn(async move {
            while let Some(level) = rx.recv().await {
                if levels.send(db(level)).is_err() {
                    break;
                }
            }
        });
        Ok(())
    }

    /// Stops the mic test (its level stream ends with it).
    pub fn stop_mic_test(&self) {
        lock(&self.inner).mic_test = None;
    }
}

/// The person's choice on an incoming-call notification: Accept answers
/// from here (this device becomes the call device and the window comes up
/// on the call), Decline refuses, a click shows the ringing call.
pub fn on_notification(app: &AppHandle, client: &Client, iid: &str, choice: crate::notify::CallChoice) {
    use crate::notify::CallChoice;
    if choice != CallChoice::Decline {
        crate::tray::show_main(app);
    }
    if choice == CallChoice::Open {
        bridge::handle_link(app, &format!("courier://call/{iid}"));
        return;
    }
    let (app, client, iid) = (app.clone(), client.clone(), iid.to_owned());
    tauri::async_runtime::spawn(async move {
        let accept = choice == CallChoice::Accept;
        let calls = app.state::<Calls>();
        if accept {
            calls.accepting(&iid);
        }
        match client.answer(&iid, accept, serde_json::Map::new()).await {
            Ok(Some(v)) if accept => calls.answered(&app, &client, &v),
            Ok(_) => calls.accept_done(&iid),
            Err(e) => {
                calls.accept_done(&iid);
                tracing::info!("call {iid}: the notification's answer failed: {e}");
            }
        }
    });
}

/// What a call sends and plays: the chosen devices, or the test tone and
/// pattern under `COURIER_TEST_MEDIA=1` (Xvfb has no devices).
fn media_config(client: &Client, devices: &DeviceChoice, video: bool) -> MediaConfig {
    let frames = Some(FrameOptions { max_width: FRAME_MAX.0, max_height: FRAME_MAX.1, fps: FRAME_FPS });
    let ice_servers = client.ice_servers();
    match courier_media::test_media_from_env() {
        Some(test) => MediaConfig { ice_servers, video, frames, ..test },
        None => MediaConfig {
            ice_servers,
            audio_in: AudioSource::Device(devices.mic.clone()),
            audio_out: AudioSink::Device(devices.speaker.clone()),
            video_in: VideoSource::Device(devices.camera.clone()),
            video,
            frames,
        },
    }
}

/// A running call's event pump: updates to the page, frames to the
/// store, the call record at the end.
struct Running {
    app: AppHandle,
    client: Client,
    iid: String,
    p: Pending,
    call: Call,
}

impl Running {
    async fn pump(self, mut events: tokio::sync::mpsc::UnboundedReceiver<CallEvent>) {
        let calls = self.app.state::<Calls>();
        while let Some(ev) = events.recv().await {
            if let CallEvent::Frame { remote, width, height, i420 } = ev {
                calls.frames.put(remote, width, height, i420);
                continue;
            }
            let ended = matches!(ev, CallEvent::State(CallState::Ended { .. }));
            if let Some(ui) = ui_event(&ev) {
                emit(&self.app, &self.iid, ui);
            }
            if ended {
                break;
            }
        }
        let (reason, _by_peer, stats) = self.call.ended().await;
        calls.finished(&self.iid);
        let (cost_us, sent) = calls.frames.mean_cost_us();
        let (local, remote) = calls.frames.delivered();
        tracing::info!(
            "call {}: ended ({reason:?}); {} decoded; pictures so far: {remote} remote and {local} local from the engine, \
             {sent} to the page, {cost_us:.0} µs each to prepare",
            self.iid,
            stats.video_frames_decoded
        );
        calls.frames.reset();
        if self.p.caller {
            let (outcome, duration_s) = record_of(reason, stats.connected_ms);
            if let Err(e) = self.client.send_call_record(&self.iid, self.p.video, outcome, duration_s) {
                tracing::warn!("call {}: no call record: {e}", self.iid);
            }
        }
    }
}

/// The caller's call record of an accepted call: `completed` with the time
/// from ICE connected to the end, `failed` (0 s) when media never connected.
pub fn record_of(_reason: EndReason, connected_ms: Option<u64>) -> (&'static str, u32) {
    match connected_ms {
        Some(ms) => ("completed", u32::try_from(ms.div_ceil(1000)).unwrap_or(u32::MAX)),
        None => ("failed", 0),
    }
}

/// A call whose media could not start: the peer hears `end failed`, and
/// the caller writes the `failed` record.
fn fail_unstarted(client: &Client, iid: &str, p: &Pending) {
    let (client, iid, p) = (client.clone(), iid.to_owned(), p.clone());
    tauri::async_runtime::spawn(async move {
        let _ = client.call_signal(&iid, &CallSignal::End { reason: EndReason::Failed }).await;
        if p.caller
            && let Err(e) = client.send_call_record(&iid, p.video, "failed", 0)
        {
            tracing::warn!("call {iid}: no call record: {e}");
        }
    });
}

fn emit(app: &AppHandle, iid: &str, event: CallUiEvent) {
    bridge::emit(app, &CallUpdate { iid: iid.to_owned(), event });
}

/// The call's signals leave through the client core (`signal` to
/// `{"call":iid}`, in the order the engine sends them).
struct ClientSignaler {
    client: Client,
    iid: String,
}

impl Signaler for ClientSignaler {
    fn send(&self, signal: CallSignal) -> courier_media::BoxFuture<'static, Result<(), String>> {
        let client = self.client.clone();
        let iid = self.iid.clone();
        Box::pin(async move { client.call_signal(&iid, &signal).await.map_err(|e| e.to_string()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_invitation_during_a_call_is_refused_as_busy_and_does_not_ring() {
        let now = 1_000_000;
        let invite = courier_proto::Invite {
            iid: "i2".into(),
            room: "call-i2".into(),
            from: "carol".into(),
            to: "me".into(),
            content: serde_json::Map::new(),
            state: InviteState::Pending,
            created: now,
            expires: now + 30_000,
            received: true,
            reason: None,
            response: None,
        };
        let ev = ClientEvent::Invite { invite: InviteView::new(invite.clone(), "me", now) };
        assert_eq!(busy_refusal(&ev, true).as_deref(), Some("i2"));
        assert_eq!(busy_refusal(&ev, false), None, "no call: it rings");
        let mine = ClientEvent::Invite { invite: InviteView::new(invite.clone(), "carol", now) };
        assert_eq!(busy_refusal(&mine, true), None, "an outgoing invitation is not refused");
        let over = courier_proto::Invite { state: InviteState::Canceled, ..invite };
        assert_eq!(
            busy_refusal(&ClientEvent::Invite { invite: InviteView::new(over, "me", now) }, true),
            None
        );
    }

    fn placed_by_me(iid: &str, state: InviteState) -> InviteView {
        let now = 1_000_000;
        let mut content = serde_json::Map::new();
        content.insert("video".into(), true.into());
        let invite = courier_proto::Invite {
            iid: iid.into(),
            room: format!("call-{iid}"),
            from: "me".into(),
            to: "bob".into(),
            content,
            state,
            created: now,
            expires: now + 30_000,
            received: true,
            reason: None,
            response: None,
        };
        InviteView::new(invite, "me", now)
    }

    #[test]
    fn an_accept_that_overtook_the_invites_ok_starts_the_call() {
        // The forwarder saw the accept first, when nothing was remembered.
        let mut inner = Inner::default();
        assert!(inner.outgoing("i1", InviteState::Accepted).is_none());
        // Then the ok, whose invitation the core already holds as accepted:
        // the call starts now, as the caller with video.
        let p = inner.placed(&placed_by_me("i1", InviteState::Accepted), true).expect("the call starts");
        assert!(p.caller && p.video && p.peer == "bob", "{p:?}");
        assert!(inner.pending.is_empty(), "and is not started a second time");
        // Not the call device (another session of mine placed it): nothing.
        assert!(inner.placed(&placed_by_me("i2", InviteState::Accepted), false).is_none());
    }

    #[test]
    fn a_pending_invitation_starts_its_call_on_its_accept_once() {
        let mut inner = Inner::default();
        assert!(inner.placed(&placed_by_me("i1", InviteState::Pending), true).is_none());
        assert!(inner.outgoing("i1", InviteState::Pending).is_none(), "still ringing");
        assert!(inner.outgoing("i1", InviteState::Accepted).is_some(), "accepted: it starts");
        assert!(inner.outgoing("i1", InviteState::Accepted).is_none(), "once");
        assert!(inner.placed(&placed_by_me("i2", InviteState::Pending), true).is_none());
        assert!(inner.outgoing("i2", InviteState::Refused).is_none());
        assert!(inner.outgoing("i2", InviteState::Accepted).is_none(), "a refused one is forgotten");
        assert!(inner.placed(&placed_by_me("i3", InviteState::Refused), true).is_none());
        assert!(inner.pending.is_empty());
    }

    #[test]
    fn a_hang_up_while_the_accept_is_on_its_way_ends_the_call_as_it_starts() {
        let mut inner = Inner::default();
        assert!(!inner.hangup(), "nothing to hang up");
        inner.accepting("i1");
        assert!(inner.hangup(), "the page's hang-up is taken, not refused");
        assert!(inner.accepted("i1"), "the call is hung up as it starts");
        assert!(!inner.hangup(), "and only once");
        inner.accepting("i2");
        assert!(!inner.accepted("i2"), "no hang-up: the call goes on");
    }

    #[test]
    fn the_record_counts_from_ice_connected_and_fails_without_it() {
        assert_eq!(record_of(EndReason::Hangup, Some(192_100)), ("completed", 193));
        assert_eq!(record_of(EndReason::Gone, Some(0)), ("completed", 0));
        assert_eq!(record_of(EndReason::Failed, None), ("failed", 0));
        assert_eq!(record_of(EndReason::Hangup, None), ("failed", 0));
    }

    #[test]
    fn device_ids_from_the_page_are_bounded() {
        let long = "x".repeat(DEVICE_ID_MAX + 1);
        let ok = "alsa_input.pci-0000_00_1f.3".to_owned();
        let c = DeviceChoice { mic: Some(long), camera: Some(String::new()), speaker: Some(ok.clone()) }
            .bounded();
        assert_eq!(c, DeviceChoice { mic: None, camera: None, speaker: Some(ok) });
    }

    #[test]
    fn ui_events_carry_the_wire_spelling() {
        let ended = CallEvent::State(CallState::Ended { reason: EndReason::Gone, by_peer: true });
        let ui = ui_event(&ended).unwrap();
        let v = serde_json::to_value(CallUpdate { iid: "i1".into(), event: ui }).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"iid":"i1","event":{"type":"state","phase":"ended","reason":"gone","by_peer":true}})
        );
        let silent = ui_event(&CallEvent::Levels { local: f64::NEG_INFINITY, remote: f64::NAN }).unwrap();
        assert_eq!(
            serde_json::to_value(&silent).unwrap(),
            serde_json::json!({"type":"levels","local":-100.0,"remote":-100.0})
        );
        let frame = CallEvent::Frame { remote: true, width: 2, height: 1, i420: vec![0u8; 4].into() };
        assert_eq!(ui_event(&frame), None, "frames never go as JSON");
    }
}
