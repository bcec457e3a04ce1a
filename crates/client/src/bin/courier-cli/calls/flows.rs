//! Placing a call and answering calls: the invitation part (§7), then one
//! [`session`](super::session) per accepted call, then the caller's call
//! record (§12) and the report.

use super::outcome::{EXIT_NO_ANSWER, Outcome, Report};
use super::session::{self, Setup};
use super::{AnswerArgs, CallArgs, MediaArgs, Stop};
use crate::Exit;
use courier_client::{Client, ClientError, ClientEvent, ConnState, InviteView};
use courier_media::Role;
use courier_proto::{FEATURE_V1_2, InviteState};
use serde_json::{Map, Value, json};
use std::collections::{HashSet, VecDeque};
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::{Instant, timeout, timeout_at};

/// How long to wait for the server at the start.
const CONNECT_WAIT: Duration = Duration::from_secs(10);
/// How long past the ringing time to wait for the server's `expired`
/// before canceling the invitation ourselves.
const EXPIRY_GRACE: Duration = Duration::from_secs(15);
/// How long to wait for the call record to reach the server.
const RECORD_WAIT: Duration = Duration::from_secs(10);
/// Fresh TURN credentials before a call once the last ones are this old (§12).
const ICE_RENEW_AFTER: Duration = Duration::from_secs(3600);

/// `courier-cli call @user`.
pub async fn call(client: &Client, user: &str, args: &CallArgs) -> Result<(), Exit> {
    crate::connect(client, Instant::now() + CONNECT_WAIT).await?;
    require_calls(client)?;
    // From here Ctrl-C / SIGTERM cancel or hang up instead of killing.
    let mut stop = Stop::listen();
    let mut events = client.subscribe();
    let mut content = Map::new();
    content.insert("video".into(), json!(args.video));
    let inv = client.invite(user, content, args.ring).await?;
    let iid = inv.invite.iid.clone();
    let mut report = Report {
        iid: iid.clone(),
        role: "caller",
        peer: user.to_owned(),
        video: args.video,
        ..Report::default()
    };
    if inv.invite.state == InviteState::Failed {
        let why = inv.invite.reason.unwrap_or_default();
        return Err(Exit(1, format!("cannot call {user}: {why}")));
    }
    eprintln!("courier-cli: calling {user} (invitation {iid})");
    let (state, response) = ringing(client, &iid, &mut events, args.ring, &mut stop).await?;
    match state {
        InviteState::Accepted => {}
        InviteState::Refused => {
            let busy = response.and_then(|r| r.get("busy").and_then(Value::as_bool)).unwrap_or(false);
            let why = if busy { format!("{user} is busy") } else { format!("{user} declined") };
            report.set_outcome(Outcome::Declined, Some(why));
            return finish(&report, &args.media);
        }
        other => {
            report.set_outcome(Outcome::NoAnswer, Some(format!("no answer ({})", other.as_str())));
            return finish(&report, &args.media);
        }
    }
    let setup = Setup {
        client,
        iid: iid.clone(),
        role: Role::Caller,
        peer: user.to_owned(),
        video: args.video,
        media: &args.media,
        accepted_at: Instant::now(),
        events: &mut events,
    };
    let report = session::run(setup, &mut stop).await;
    if let Some(outcome) = report.outcome.and_then(|o| o.record()) {
        write_call_record(client, &iid, args.video, outcome, report.duration_s).await;
    }
    finish(&report, &args.media)
}

/// Waits while the invitation rings; cancels it on Ctrl-C or when the
/// server's `expired` does not come in time. Returns the final state and
/// the callee's response.
async fn ringing(
    client: &Client,
    iid: &str,
    events: &mut broadcast::Receiver<ClientEvent>,
    ring_s: u32,
    stop: &mut Stop,
) -> Result<(InviteState, Option<Map<String, Value>>), Exit> {
    let deadline = Instant::now() + Duration::from_secs(ring_s.into()) + EXPIRY_GRACE;
    loop {
        let ev = tokio::select! {
            ev = timeout_at(deadline, events.recv()) => ev,
            _ = stop.requested() => {
                return Ok((cancel(client, iid).await, None));
            }
        };
        match ev {
            Err(_) => return Ok((cancel(client, iid).await, None)),
            Ok(Ok(ClientEvent::Invite { invite })) if invite.invite.iid == iid => {
                if invite.invite.state != InviteState::Pending {
                    return Ok((invite.invite.state, invite.invite.response));
                }
            }
            Ok(Ok(ClientEvent::Connection { state: ConnState::Stopped, reason, .. })) => {
                return Err(Exit(4, reason.unwrap_or_default()));
            }
            Ok(Err(RecvError::Closed)) => return Err(Exit(5, "disconnected".into())),
            Ok(_) => {}
        }
    }
}

/// Cancels a ringing invitation; returns its final state (the callee may
/// have answered first).
async fn cancel(client: &Client, iid: &str) -> InviteState {
    match client.cancel_invite(iid).await {
        Ok(Some(v)) => v.invite.state,
        Err(ClientError::Server(e)) => e.invite.map(|i| i.state).unwrap_or(InviteState::Canceled),
        _ => InviteState::Canceled,
    }
}

/// Queues the caller's call record and waits a while for it to be sent
/// (it stays in the outbox otherwise, for the next command that connects).
async fn write_call_record(client: &Client, iid: &str, video: bool, outcome: &str, duration_s: f64) {
    // The core refuses records over a week (`MAX_CALL_DURATION_S`).
    let secs = duration_s.round().clamp(0.0, 604_800.0) as u32;
    match client.send_call_record(iid, video, outcome, secs) {
        Ok(m) => match timeout(RECORD_WAIT, client.wait_settled(std::slice::from_ref(&m.cid))).await {
            Ok(Ok(_)) => {}
            _ => eprintln!("courier-cli: the call record is still queued; a later command sends it"),
        },
        Err(e) => eprintln!("courier-cli: cannot write the call record: {e}"),
    }
}

/// `courier-cli answer-calls`.
pub async fn answer_calls(client: &Client, args: &AnswerArgs) -> Result<(), Exit> {
    crate::connect(client, Instant::now() + CONNECT_WAIT).await?;
    require_calls(client)?;
    // From here Ctrl-C / SIGTERM cancel or hang up instead of killing.
    let mut stop = Stop::listen();
    let mut events = client.subscribe();
    let limit = args.call_limit();
    let mut seen = HashSet::new();
    // Calls already ringing when we connected, oldest first.
    let mut waiting: VecDeque<InviteView> =
        client.invites()?.into_iter().rev().filter(|v| v.incoming && v.ringing).collect();
    let mut last_ice = Instant::now();
    let mut last: Option<Report> = None;
    let mut handled = 0;
    eprintln!("courier-cli: waiting for calls to {}", client.me());
    while limit.is_none_or(|l| handled < l) && !stop.is_requested() {
        let inv = match waiting.pop_front() {
            Some(inv) => inv,
            None => tokio::select! {
                ev = events.recv() => match ev {
                    Ok(ClientEvent::Invite { invite }) if invite.incoming && invite.ringing => invite,
                    Ok(ClientEvent::Connection { state: ConnState::Stopped, reason, .. }) => {
                        return Err(Exit(4, reason.unwrap_or_default()));
                    }
                    Err(RecvError::Closed) => return Err(Exit(5, "disconnected".into())),
                    _ => continue,
                },
                _ = stop.requested() => break,
            },
        };
        if !seen.insert(inv.invite.iid.clone()) {
            continue;
        }
        let iid = inv.invite.iid.clone();
        let video = inv.invite.content.get("video").and_then(Value::as_bool).unwrap_or(false);
        let mut report = Report {
            iid: iid.clone(),
            role: "callee",
            peer: inv.invite.from.clone(),
            video,
            ..Report::default()
        };
        if args.decline {
            match client.answer(&iid, false, Map::new()).await {
                Ok(_) => report.set_outcome(Outcome::Declined, Some("declined".into())),
                Err(e) => report.set_outcome(Outcome::AnsweredElsewhere, Some(answered_elsewhere(e)?)),
            }
        } else {
            if last_ice.elapsed() > ICE_RENEW_AFTER && client.ice().await.is_ok() {
                last_ice = Instant::now();
            }
            let accepted_at = Instant::now();
            if let Err(e) = client.answer(&iid, true, Map::new()).await {
                eprintln!("courier-cli: call {iid}: {}", answered_elsewhere(e)?);
                continue;
            }
            let setup = Setup {
                client,
                iid,
                role: Role::Callee,
                peer: inv.invite.from.clone(),
                video,
                media: &args.media,
                accepted_at,
                events: &mut events,
            };
            report = session::run(setup, &mut stop).await;
        }
        print_report(&report, &args.media);
        handled += 1;
        last = Some(report);
    }
    match last {
        Some(r) if r.exit_code == 0 => Ok(()),
        Some(r) => Err(Exit(r.exit_code, r.error.unwrap_or_default())),
        None => Err(Exit(EXIT_NO_ANSWER, "stopped before any call came".into())),
    }
}

/// An answer refused because the invitation is final already (answered on
/// another device, canceled, expired) is a note; other errors end the run.
fn answered_elsewhere(e: ClientError) -> Result<String, Exit> {
    match e {
        ClientError::Server(b) if b.invite.is_some() => {
            let state = b.invite.map(|i| i.state.as_str()).unwrap_or_default();
            Ok(format!("no longer ringing ({state})"))
        }
        e => Err(e.into()),
    }
}

/// The server must speak protocol v1.2 (call devices and call signals).
fn require_calls(client: &Client) -> Result<(), Exit> {
    if client.features().iter().any(|f| f == FEATURE_V1_2) {
        Ok(())
    } else {
        Err(Exit(1, "this server does not support calls (it does not announce protocol v1.2)".into()))
    }
}

fn print_report(report: &Report, media: &MediaArgs) {
    if media.json {
        println!("{}", serde_json::to_string(report).unwrap_or_default());
    } else {
        println!("{}", report.text());
    }
}

/// Prints the report and turns its outcome into the command's result.
fn finish(report: &Report, media: &MediaArgs) -> Result<(), Exit> {
    print_report(report, media);
    match report.exit_code {
        0 => Ok(()),
        code => Err(Exit(code, report.error.clone().unwrap_or_default())),
    }
}
