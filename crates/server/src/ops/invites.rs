//! Call invitations: a state machine held by the server whose every
//! transition is a compare-and-set on `pending` in storage, so the first
//! answer wins and a final state never changes. v1.2: the inviting and the
//! accepting session's devices become the call devices (`crate::calls`),
//! and an invitation to oneself is answered from another device. What one
//! caller can make the server hold is bounded: `content` and an answer's
//! `response` by `max_body_bytes`, the invitations ringing at once by
//! `limits.pending_invites`. Also the v1.2 call records:
//! who may write one, and the one the server writes for an invitation that
//! ends unanswered.

use super::messages::{self, Sender};
use super::{OpError, OpResult, SessionCtx, check_body_size};
use crate::calls::{self, Party};
use crate::clock::now_ms;
use crate::state::{AppState, event_frame};
use crate::store::Transition;
use courier_proto::{Conv, ErrBody, ErrorCode, Event, Invite, InviteOk, InviteState, SendReq, Target};
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// `invite`: creates the invitation, rings the callee's sessions, and arms
/// the expiry timer. An unknown callee yields a `failed` invitation.
///
/// # Errors
/// `too_large` (`content` over `max_body_bytes`), `limit_reached`
/// (`pending_invites`: the caller has that many ringing already),
/// `internal` (storage).
pub async fn invite(
    st: &Arc<AppState>,
    ses: &SessionCtx,
    to: String,
    content: Map<String, Value>,
    ttl_s: u32,
) -> OpResult {
    check_body_size(st, "content", &content)?;
    let now = now_ms();
    let iid = ulid::Ulid::new().to_string();
    let known = st.store.user_exists(&to).await?;
    let inv = Invite {
        room: format!("call-{iid}"),
        iid,
        from: ses.user.to_string(),
        to,
        content,
        state: if known { InviteState::Pending } else { InviteState::Failed },
        created: now,
        expires: now + i64::from(ttl_s) * 1000,
        received: false,
        reason: (!known).then(|| "unknown_user".to_owned()),
        response: None,
    };
    if !known {
        st.store.create_invite(&inv).await?;
    } else if !st.store.create_invite_within(&inv, u64::from(pending_cap(st)), now).await? {
        return Err(pending_capped(st));
    }
    if known {
        // The sending device is the caller's call device, recorded before
        // anyone can answer.
        calls::invited(st, &inv.iid, Party::of(ses)).await;
        st.schedule_expiry(&inv);
        let frame = event_frame(&Event::Invite { invite: inv.clone() });
        let reached = st.send_to_users([inv.to.as_str()], &frame, Some(ses.handle.key));
        // In a cluster the callee's sessions may all be on other nodes. A
        // call to oneself is received only by another device (§7), never
        // by the inviting session, which is online itself.
        let own_device = (inv.from == inv.to).then_some(&*ses.handle.device);
        if reached > 0 || st.reached_elsewhere(&inv.to, own_device).await {
            // The ok below still shows the invitation as created; the
            // caller's sessions learn "received" from the `invite_state`
            // event queued here, which may reach them before or after the
            // ok (as may the callee's accept: docs/protocol.md §8.3).
            st.invite_received(&inv.iid).await;
        }
    }
    Ok(invite_ok(inv, known))
}

/// The `pending_invites` cap: most invitations one caller has ringing.
fn pending_cap(st: &AppState) -> u32 {
    st.config.limits.pending_invites.unwrap_or(courier_proto::event::DEFAULT_PENDING_INVITES)
}

fn pending_capped(st: &AppState) -> OpError {
    OpError(Box::new(ErrBody::limit(
        "pending_invites",
        format!(
            "at most {} of your invitations may ring at once; cancel one or wait for an answer",
            pending_cap(st)
        ),
    )))
}

fn invite_ok(invite: Invite, call_device: bool) -> Value {
    serde_json::to_value(InviteOk { invite, call_device }).expect("plain struct")
}

fn final_error(inv: Invite) -> OpError {
    let mut body =
        ErrBody::new(ErrorCode::InviteFinal, format!("the invitation is already {}", inv.state.as_str()));
    body.invite = Some(inv);
    OpError(Box::new(body))
}

async fn transition(
    st: &Arc<AppState>,
    ses: &SessionCtx,
    iid: &str,
    to: InviteState,
    response: Option<Map<String, Value>>,
) -> OpResult {
    let user = &*ses.user;
    let inv = st.store.invite(iid).await?;
    let Some(inv) = inv.filter(|i| i.from == user || i.to == user) else {
        return Err(OpError::not_found("no such invitation"));
    };
    let allowed = match to {
        InviteState::Accepted | InviteState::Refused => inv.to == user,
        InviteState::Canceled => inv.from == user,
        _ => false,
    };
    if !allowed {
        let who = if to == InviteState::Canceled { "caller" } else { "callee" };
        return Err(OpError::forbidden(format!("only the {who} may do this")));
    }
    let by = Party::of(ses);
    if to == InviteState::Accepted && calls::is_self_call_sender(st, &inv, &by).await? {
        return Err(OpError::forbidden("a call to yourself is answered from another device"));
    }
    if inv.state == InviteState::Pending && now_ms() >= inv.expires {
        // The expiry timer has not fired yet, but the time is up: expire it
        // now so a late answer can never win.
        if let Transition::Done(expired) = st.store.transition_invite(iid, InviteState::Expired, None).await?
        {
            ended(st, &expired).await;
        }
    }
    match st.store.transition_invite(iid, to, response).await? {
        Transition::Done(inv) if inv.state == InviteState::Accepted => {
            // The callee's call device is known before anyone hears of the
            // answer, so the caller's first signal finds it.
            calls::accepted(st, iid, by).await;
            ended(st, &inv).await;
            Ok(invite_ok(inv, true))
        }
        Transition::Done(inv) => {
            ended(st, &inv).await;
            Ok(invite_ok(inv, false))
        }
        Transition::AlreadyFinal(inv) => Err(final_error(inv)),
        Transition::NotFound => Err(OpError::not_found("no such invitation")),
    }
}

/// `invite_answer` (callee only). A `response` over `max_body_bytes` is
/// `too_large` before anything else is checked.
pub async fn answer(
    st: &Arc<AppState>,
    ses: &SessionCtx,
    iid: &str,
    accept: bool,
    response: Option<Map<String, Value>>,
) -> OpResult {
    if let Some(r) = &response {
        check_body_size(st, "response", r)?;
    }
    let to = if accept { InviteState::Accepted } else { InviteState::Refused };
    transition(st, ses, iid, to, response).await
}

/// `invite_cancel` (caller only).
pub async fn cancel(st: &Arc<AppState>, ses: &SessionCtx, iid: &str) -> OpResult {
    transition(st, ses, iid, InviteState::Canceled, None).await
}

/// After a transition this node made (a compare-and-set, so exactly one
/// node gets here for each): tells both parties, and for an invitation that
/// ended unanswered forgets its call devices and writes its call record as
/// the caller.
pub async fn ended(st: &Arc<AppState>, inv: &Invite) {
    st.broadcast_invite_state(inv);
    let outcome = match inv.state {
        InviteState::Expired => "missed",
        InviteState::Refused => "declined",
        InviteState::Canceled => "canceled",
        _ => return,
    };
    calls::forget(st, &inv.iid).await;
    let video = inv.content.get("video").and_then(Value::as_bool).unwrap_or(false);
    let body = json!({"iid": inv.iid, "video": video, "outcome": outcome, "duration_s": 0});
    let req = SendReq {
        to: Target::User(inv.to.clone()),
        cid: format!("call-{}", inv.iid),
        kind: "call".into(),
        body: body.as_object().expect("an object").clone(),
        reply_to: None,
    };
    // Written once: the (caller, cid) pair is unique, so a second write
    // (another node, a retry) is answered as a duplicate.
    if let Err(e) = messages::store_and_deliver(st, Sender::Push(&inv.from), req).await {
        tracing::warn!(iid = %inv.iid, error = %e.0.message, "could not write the call record");
    }
}

/// The v1.2 call record rule: a `call` message about invitation `iid` is
/// written by its caller, in the DM of the two parties. (Its body and its
/// cid, `call-<iid>`, are checked with the request.)
///
/// # Errors
/// `not_found` (no such invitation of `from`'s), `forbidden` (not the
/// caller, or not that DM), `internal` (storage).
pub async fn authorize_record(st: &AppState, from: &str, conv: &Conv, iid: &str) -> Result<(), OpError> {
    let inv = st.store.invite(iid).await?;
    let Some(inv) = inv.filter(|i| i.from == from || i.to == from) else {
        return Err(OpError::not_found("body.iid is not an invitation of yours"));
    };
    if inv.from != from {
        return Err(OpError::forbidden("only the caller writes a call record"));
    }
    if *conv != Conv::dm(&inv.from, &inv.to) {
        return Err(OpError::forbidden("a call record goes in the DM of the two parties"));
    }
    Ok(())
}
