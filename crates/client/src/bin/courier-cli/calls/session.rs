//! One accepted call on `courier-media`: this device's call signals go out
//! through the client, the other call device's come in from the client's
//! events, `--for` hangs up, and the figures become a [`Report`].

use super::outcome::{Outcome, Report, media_connected, process_cpu_ms};
use super::relay::{self, IcePolicy};
use super::{MediaArgs, Stop};
use courier_client::{Client, ClientEvent, ConnState};
use courier_media::{
    AudioSink, AudioSource, BoxFuture, Call, CallEvent, CallOptions, CallSignal, CallState, CallStats,
    MediaConfig, Role, Signaler, VideoSource,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::time::Instant;

/// A remote level above this counts as hearing the other side.
const AUDIBLE_DBFS: f64 = -50.0;

/// How long after the start a call may stay unconnected before this side
/// gives up. The media machine itself ends a call with `end{failed}` 30 s
/// after the offer; this is the backstop should that never come.
const CONNECT_BACKSTOP: Duration = Duration::from_secs(45);

/// How long a hang-up may take to close media before the report is made.
const CLOSE_PATIENCE: Duration = Duration::from_secs(10);

/// Sends this device's call signals as `signal`s to `{"call":iid}`,
/// through the relay-only filter when that policy is on.
struct ClientSignaler {
    client: Client,
    iid: String,
    policy: IcePolicy,
}

impl Signaler for ClientSignaler {
    fn send(&self, signal: CallSignal) -> BoxFuture<'static, Result<(), String>> {
        let Some(signal) = relay::filter(self.policy, signal) else {
            return Box::pin(async { Ok(()) });
        };
        let (client, iid) = (self.client.clone(), self.iid.clone());
        // The frame is queued when the future is first polled; the call polls
        // its sends in order, so signals leave in the order they were made.
        Box::pin(async move { client.call_signal(&iid, &signal).await.map_err(|e| e.to_string()) })
    }
}

/// What one call is started with.
pub struct Setup<'a> {
    pub client: &'a Client,
    pub iid: String,
    pub role: Role,
    pub peer: String,
    /// Whether the caller asked for video (both sides then send the test picture).
    pub video: bool,
    pub media: &'a MediaArgs,
    /// When the invitation was accepted (the clock of `accept_to_*`).
    pub accepted_at: Instant,
    /// Subscribed before the invitation was accepted, so no early signal is lost.
    pub events: &'a mut broadcast::Receiver<ClientEvent>,
}

/// Runs the call until it ends; the report carries its outcome.
pub async fn run(setup: Setup<'_>, stop: &mut Stop) -> Report {
    let Setup { client, iid, role, peer, video, media, accepted_at, events } = setup;
    let mut report = Report {
        iid: iid.clone(),
        role: if role == Role::Caller { "caller" } else { "callee" },
        peer: peer.clone(),
        video,
        recorded: media.record.as_ref().map(|p| p.display().to_string()),
        ..Report::default()
    };
    let cpu_at_start = process_cpu_ms();
    let config = MediaConfig {
        ice_servers: client.ice_servers(),
        audio_in: match (media.tone, &media.play) {
            (Some(hz), _) => AudioSource::Tone(hz),
            (None, Some(file)) => AudioSource::File(file.clone()),
            (None, None) => AudioSource::Silence,
        },
        audio_out: media.record.clone().map(AudioSink::Record).unwrap_or(AudioSink::Discard),
        video_in: if video { VideoSource::Test } else { VideoSource::None },
        video,
        frames: None,
    };
    let signaler = ClientSignaler { client: client.clone(), iid: iid.clone(), policy: media.ice_policy };
    let opts = CallOptions { iid: iid.clone(), role, media: config };
    let (call, mut media_events) = match Call::start(opts, Arc::new(signaler)) {
        Ok(started) => started,
        Err(e) => {
            // The other side must not wait 30 s for an offer or answer.
            let end = CallSignal::End { reason: courier_media::EndReason::Failed };
            let _ = client.call_signal(&iid, &end).await;
            report.set_outcome(Outcome::Failed, Some(format!("cannot start call media: {e}")));
            return report;
        }
    };
    let started = Instant::now();
    let mut connected_at: Option<Instant> = None;
    let mut hung_up = false;
    let mut last = CallStats::default();
    // (when, frames decoded) at the first stats that showed decoded video,
    // and at the latest: the decode rate once video flows.
    let mut video_window: Option<((Instant, u64), (Instant, u64))> = None;
    let mut lost_server = None;
    loop {
        let hang_at = match (connected_at, media.for_secs) {
            (Some(at), Some(secs)) if !hung_up => Some(at + Duration::from_secs_f64(secs)),
            (None, _) if !hung_up => Some(started + CONNECT_BACKSTOP),
            _ => None,
        };
        tokio::select! {
            ev = media_events.recv() => match ev {
                None => break,
                Some(CallEvent::State(CallState::Connected)) => {
                    if connected_at.is_none() {
                        connected_at = Some(Instant::now());
                        report.accept_to_connected_ms = Some(accepted_at.elapsed().as_millis() as u64);
                        eprintln!("courier-cli: call {iid} connected");
                    }
                }
                Some(CallEvent::State(CallState::Reconnecting)) => {
                    eprintln!("courier-cli: call {iid} reconnecting (ICE restart)");
                }
                Some(CallEvent::State(CallState::Ended { .. })) => break,
                Some(CallEvent::Levels { remote, .. }) => {
                    if remote > AUDIBLE_DBFS && report.accept_to_first_audio_ms.is_none() {
                        report.accept_to_first_audio_ms = Some(accepted_at.elapsed().as_millis() as u64);
                    }
                }
                Some(CallEvent::Stats(s)) => {
                    let now = (Instant::now(), s.video_frames_decoded);
                    if s.video_frames_decoded > 0 {
                        video_window = Some((video_window.map_or(now, |(first, _)| first), now));
                    }
                    last = s;
                }
                Some(CallEvent::Warning { code, message }) => eprintln!("courier-cli: {code}: {message}"),
                Some(_) => {}
            },
            ev = events.recv() => match ev {
                Ok(ev @ ClientEvent::Signal { .. }) => {
                    let signal = ev.call_signal().filter(|s| s.iid == iid && s.from == peer);
                    if let Some(signal) = signal.and_then(|s| relay::filter(media.ice_policy, s.signal)) {
                        call.on_signal(signal);
                    }
                }
                Ok(ClientEvent::Invite { invite }) if invite.incoming && invite.ringing && invite.invite.iid != iid => {
                    // One call at a time: a second caller hears "busy".
                    let (client, other) = (client.clone(), invite.invite.iid.clone());
                    tokio::spawn(async move {
                        let busy = serde_json::json!({"busy": true});
                        let _ = client.answer(&other, false, busy.as_object().cloned().unwrap_or_default()).await;
                    });
                }
                Ok(ClientEvent::Connection { state: ConnState::Stopped, reason, .. }) => {
                    lost_server = Some(reason.unwrap_or_else(|| "signed out".into()));
                    call.hangup();
                    hung_up = true;
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => {
                    call.hangup();
                    hung_up = true;
                }
            },
            _ = sleep_until_some(hang_at) => {
                call.hangup();
                hung_up = true;
            }
            _ = stop.requested(), if !hung_up => {
                call.hangup();
                hung_up = true;
            }
        }
    }
    let (reason, by_peer, stats) = match tokio::time::timeout(CLOSE_PATIENCE, call.ended()).await {
        Ok(end) => end,
        Err(_) => (courier_media::EndReason::Failed, false, last),
    };
    drop(call);
    report.end_reason = Some(reason.as_str().to_owned());
    report.ended_by_peer = by_peer;
    report.duration_s = match (stats.connected_ms, connected_at) {
        (Some(ms), _) => ms as f64 / 1000.0,
        (None, Some(at)) => at.elapsed().as_secs_f64(),
        (None, None) => 0.0,
    };
    report.stats = stats.clone();
    report.cpu_ms = process_cpu_ms().saturating_sub(cpu_at_start);
    if media_connected(connected_at.is_some(), stats.packets_received) {
        report.set_outcome(Outcome::Connected, lost_server);
    } else {
        let why = lost_server.unwrap_or_else(|| match connected_at {
            Some(_) => "ICE connected but no media arrived (DTLS or codec negotiation failed)".to_owned(),
            None => format!("media never connected (ICE {}, ended: {})", stats.ice_state, reason.as_str()),
        });
        report.set_outcome(Outcome::Failed, Some(why));
    }
    report.derive_rates(video_window.map(|((t0, f0), (t1, f1))| (f1 - f0, (t1 - t0).as_secs_f64())));
    report
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
