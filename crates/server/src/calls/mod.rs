//! v1.2 call devices and the relay of call signals (protocol §12).
//!
//! A call is an invitation plus one device of each party: the caller's call
//! device is the `(user, device)` that sent the `invite`, the callee's the
//! one whose `invite_answer` accepted it. Signals to `{"call":iid}` travel
//! only between those two, in the order sent, and the order rules hold:
//! the caller's device sends one `offer`; before it the callee sends only
//! `end`; after an `end` (or the server's `gone`) nothing passes.
//!
//! What the server remembers of each call is a [`CallRecord`] in a
//! [`CallBook`]: in memory on a single node ([`local::LocalBook`]), in Redis
//! in a cluster (`cluster::redis`), so any node can relay any call's
//! signals. The rule itself is one pure function, [`judge`]; the book only
//! stores records and swaps them by compare-and-set.
//!
//! When a call device's session ends the book marks the device departed.
//! A new session of that device within `call_grace` inherits its role (the
//! mark is simply ignored once the device is live again, on any node);
//! otherwise, when the grace runs out, the other call device gets
//! `end`/`gone` and a still-pending invitation from the departed caller
//! device is canceled. The node where the session ended times the grace; in
//! a cluster every node also scans for departures whose node died meanwhile.

pub mod local;

use crate::clock::now_ms;
use crate::cluster::BusError;
use crate::ops::{OpError, OpResult, SessionCtx};
use crate::state::{AppState, event_frame};
use crate::store::Transition;
use async_trait::async_trait;
use courier_proto::call::{CallSignal, EndReason};
use courier_proto::{ErrorCode, Event, Invite, InviteState, Request, Target};
use serde_json::{Map, Value, json};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Signals a call device may send to its call per minute before they take
/// from its user's bucket (protocol §12).
pub const SIGNALS_PER_MIN: u32 = 200;

/// How long a call's record outlives its last change, whatever happens:
/// a call that never ends (both devices gone without a trace) is forgotten
/// then (protocol doc §16.4).
pub const RECORD_TTL: Duration = Duration::from_secs(12 * 3600);

/// Most retries of a compare-and-set that lost a race.
const SWAP_TRIES: usize = 8;

/// One call device: a user's device.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Party {
    /// The user id.
    pub user: String,
    /// The device id from `hello`.
    pub device: String,
}

impl Party {
    /// The device of a session.
    pub fn of(ses: &SessionCtx) -> Party {
        Party { user: ses.user.to_string(), device: ses.handle.device.to_string() }
    }

    /// `user|device` (user ids never contain `|`, so the first one splits).
    pub fn key(&self) -> String {
        format!("{}|{}", self.user, self.device)
    }

    /// The inverse of [`Party::key`].
    pub fn from_key(key: &str) -> Option<Party> {
        let (user, device) = key.split_once('|')?;
        Some(Party { user: user.to_owned(), device: device.to_owned() })
    }
}

/// What the server keeps of one invitation's call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    /// The device that sent the invitation.
    pub caller: Party,
    /// The device that accepted it (`None` while pending).
    pub callee: Option<Party>,
    /// The caller's device sent its `offer`.
    pub offered: bool,
    /// An `end` passed, or the server sent `gone`.
    pub ended: bool,
}

impl CallRecord {
    /// A call of a pending invitation from `caller`.
    pub fn new(caller: Party) -> Self {
        CallRecord { caller, callee: None, offered: false, ended: false }
    }

    /// Whether `p` is one of the two call devices.
    pub fn has(&self, p: &Party) -> bool {
        self.caller == *p || self.callee.as_ref() == Some(p)
    }
}

/// Where a call signal goes, and the record after it (when it changes one).
#[derive(Debug, PartialEq, Eq)]
pub struct Relay {
    /// The other call device.
    pub to: Party,
    /// The record to swap in (an `offer` or an `end`).
    pub next: Option<CallRecord>,
}

/// The order rules of §12: may `from` send a signal of kind `t` (the
/// body's `t`, if any) in this call, and what it changes.
///
/// # Errors
/// The human message of the `forbidden` answer.
pub fn judge(rec: &CallRecord, from: &Party, t: Option<&str>) -> Result<Relay, &'static str> {
    let Some(callee) = &rec.callee else {
        return Err("signals to a call need an accepted invitation");
    };
    let is_caller = rec.caller == *from;
    if !is_caller && callee != from {
        return Err("only the two call devices signal in a call");
    }
    if rec.ended {
        return Err("the call has ended");
    }
    let to = if is_caller { callee.clone() } else { rec.caller.clone() };
    let next = match t {
        Some("offer") if !is_caller => return Err("only the caller's call device sends the offer"),
        Some("offer") if rec.offered => return Err("the offer was sent already; use renegotiate"),
        Some("offer") => Some(CallRecord { offered: true, ..rec.clone() }),
        Some("end") => Some(CallRecord { ended: true, ..rec.clone() }),
        _ if !is_caller && !rec.offered => return Err("before the offer the callee sends only end"),
        _ => None,
    };
    Ok(Relay { to, next })
}

/// Where call records live: one node's memory or the cluster's Redis.
/// Every change is a compare-and-set on the record read, so two nodes (or
/// two sessions) never both make the same transition.
#[async_trait]
pub trait CallBook: Send + Sync + 'static {
    /// Records the call of a new pending invitation.
    async fn put(&self, iid: &str, rec: &CallRecord) -> Result<(), BusError>;
    /// The record of a call and its version.
    async fn get(&self, iid: &str) -> Result<Option<(CallRecord, u64)>, BusError>;
    /// Replaces the record if it is still at `version`; false when it moved.
    async fn swap(&self, iid: &str, version: u64, next: &CallRecord) -> Result<bool, BusError>;
    /// Forgets a call that is over (its signals are refused from now on).
    async fn forget(&self, iid: &str) -> Result<(), BusError>;
    /// Takes one of `from`'s [`SIGNALS_PER_MIN`] to call `iid`: false when
    /// `from` is not a call device of it or the allowance is spent.
    async fn allowance(&self, iid: &str, from: &Party) -> Result<bool, BusError>;
    /// `device`'s session ended: when it is a device of some call, marks it
    /// departed with `token` and returns true.
    async fn left(&self, device: &Party, token: &str, grace: Duration) -> Result<bool, BusError>;
    /// The grace of the departure `token` ran out: unless the device has a
    /// live session again (anywhere) or departed again since, clears the
    /// mark and returns the calls it belongs to.
    async fn departed(&self, device: &Party, token: &str) -> Result<Vec<String>, BusError>;
    /// Departures whose grace has run out and that nobody has looked at:
    /// in a cluster, those whose node died while the grace ran. A single
    /// node has none (its own timers see to every departure).
    async fn overdue(&self) -> Result<Vec<(Party, String)>, BusError> {
        Ok(Vec::new())
    }
}

/// The call state of one server: the book, and what the grace timers need.
pub struct Calls {
    /// Where records live.
    pub book: Arc<dyn CallBook>,
    /// The server state, for the grace timers (weak: timers must not keep
    /// a stopped server alive).
    me: Weak<AppState>,
}

impl Calls {
    /// Calls kept in `book`, for the server whose state is `me`.
    pub fn new(book: Arc<dyn CallBook>, me: Weak<AppState>) -> Self {
        Calls { book, me }
    }
}

fn unavailable(e: BusError) -> OpError {
    tracing::error!(error = %e, "call state unavailable");
    OpError::new(ErrorCode::Internal, "call state is unavailable; retry shortly")
}

/// A new pending invitation: its sender's device is the caller's call device.
pub async fn invited(st: &AppState, iid: &str, caller: Party) {
    if let Err(e) = st.calls.book.put(iid, &CallRecord::new(caller)).await {
        tracing::error!(%iid, error = %e, "could not record the call device");
    }
}

/// Whether `inv` is an invitation to oneself sent from `by`'s device. That
/// device is not a callee of it: it can neither accept it nor count as
/// having received it (another device of the user does both).
///
/// # Errors
/// `internal` when the book is unavailable.
pub async fn is_self_call_sender(st: &AppState, inv: &Invite, by: &Party) -> Result<bool, OpError> {
    if inv.from != inv.to {
        return Ok(false);
    }
    let rec = st.calls.book.get(&inv.iid).await.map_err(unavailable)?;
    Ok(rec.is_some_and(|(r, _)| r.caller == *by))
}

/// An invitation was accepted by `callee` (before anyone hears of it, so
/// the caller's first signal finds the callee's device).
pub async fn accepted(st: &AppState, iid: &str, callee: Party) {
    for _ in 0..SWAP_TRIES {
        let rec = match st.calls.book.get(iid).await {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => return tracing::error!(%iid, error = %e, "could not record the callee's device"),
        };
        let next = CallRecord { callee: Some(callee.clone()), ..rec.0 };
        match st.calls.book.swap(iid, rec.1, &next).await {
            Ok(false) => continue,
            Ok(true) => return,
            Err(e) => return tracing::error!(%iid, error = %e, "could not record the callee's device"),
        }
    }
}

/// An invitation ended unanswered: its call is forgotten.
pub async fn forget(st: &AppState, iid: &str) {
    if let Err(e) = st.calls.book.forget(iid).await {
        tracing::warn!(%iid, error = %e, "could not forget a call");
    }
}

/// Queues `frame` to the sessions of one device, on this node and others.
pub fn send_to_device(st: &AppState, to: &Party, frame: &Arc<str>) {
    st.hub.send_to_device(&to.user, &to.device, frame);
    if let Some(bus) = &st.bus {
        bus.publish_to_device(&to.user, &to.device, frame);
    }
}

/// `signal` to `{"call":iid}`: checks the order rules and relays the body
/// to the other call device.
///
/// # Errors
/// `forbidden` (not a call device, not accepted, ended, out of order),
/// `internal` (call state unavailable).
pub async fn relay(st: &AppState, ses: &SessionCtx, iid: &str, body: Map<String, Value>) -> OpResult {
    let from = Party::of(ses);
    let t = CallSignal::kind_of(&body).map(str::to_owned);
    for _ in 0..SWAP_TRIES {
        let Some((rec, version)) = st.calls.book.get(iid).await.map_err(unavailable)? else {
            return Err(OpError::forbidden("no call of yours with that iid, or it has ended"));
        };
        let relay = judge(&rec, &from, t.as_deref()).map_err(OpError::forbidden)?;
        if let Some(next) = &relay.next
            && !st.calls.book.swap(iid, version, next).await.map_err(unavailable)?
        {
            continue;
        }
        let ts = now_ms();
        let to = Target::Call(iid.to_owned());
        let frame = event_frame(&Event::Signal { from: from.user.clone(), to, body, ts });
        send_to_device(st, &relay.to, &frame);
        if relay.next.is_some_and(|n| n.ended) {
            forget(st, iid).await;
        }
        return Ok(json!({ "ts": ts }));
    }
    Err(OpError::new(ErrorCode::Internal, "the call changed too often; retry"))
}

/// Whether a metered request is a call signal covered by its call device's
/// own allowance (and so takes nothing from the user's bucket).
pub async fn within_allowance(st: &AppState, ses: &SessionCtx, req: &Request) -> bool {
    let Request::Signal { to: Target::Call(iid), .. } = req else { return false };
    match st.calls.book.allowance(iid, &Party::of(ses)).await {
        Ok(covered) => covered,
        Err(e) => {
            tracing::debug!(error = %e, "call allowance unavailable; metering from the bucket");
            false
        }
    }
}

/// A session ended: if its device is a call device, arms the grace timer
/// after which its calls end with `gone`. When the book cannot record the
/// departure (Redis unreachable), the timer runs anyway and records it
/// later, so the other device's call still ends once the grace is over.
pub async fn session_ended(st: &AppState, user: &str, device: &str) {
    let party = Party { user: user.to_owned(), device: device.to_owned() };
    let token = ulid::Ulid::new().to_string();
    let grace = Duration::from_millis(st.config.call_grace_ms);
    let deadline = tokio::time::Instant::now() + grace;
    let recorded = match st.calls.book.left(&party, &token, grace).await {
        Ok(true) => true,
        Ok(false) => return,
        Err(e) => {
            tracing::warn!(%user, error = %e, "could not mark a call device departed; retrying while its grace runs");
            false
        }
    };
    let me = st.calls.me.clone();
    st.spawn_timer(async move {
        if !recorded && !record_departure(&me, &party, &token, deadline).await {
            return;
        }
        tokio::time::sleep_until(deadline).await;
        let Some(st) = me.upgrade() else { return };
        grace_over(&st, &party, &token).await;
    });
}

/// First wait before recording a departure again, doubled after each
/// failure up to [`DEPARTURE_RETRY_MAX`].
const DEPARTURE_RETRY: Duration = Duration::from_millis(250);
/// Longest wait between two tries to record a departure.
const DEPARTURE_RETRY_MAX: Duration = Duration::from_secs(10);

/// Records a departure the book could not record when the session ended,
/// with the grace left until `deadline` (none once it is over: the grace
/// then runs out at once, and the device's calls end unless it is live
/// again). Tries until the book answers, for as long as call records live
/// ([`RECORD_TTL`]). True when the device is in a call (and now marked).
async fn record_departure(
    me: &Weak<AppState>,
    party: &Party,
    token: &str,
    deadline: tokio::time::Instant,
) -> bool {
    let give_up = deadline + RECORD_TTL;
    let mut wait = DEPARTURE_RETRY;
    loop {
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(DEPARTURE_RETRY_MAX);
        let Some(st) = me.upgrade() else { return false };
        let now = tokio::time::Instant::now();
        match st.calls.book.left(party, token, deadline.saturating_duration_since(now)).await {
            Ok(marked) => {
                if marked {
                    tracing::info!(user = %party.user, "call device's departure recorded after a retry");
                }
                return marked;
            }
            Err(e) if now >= give_up => {
                tracing::error!(user = %party.user, error = %e, "gave up recording a call device's departure; its calls stay open until their records expire");
                return false;
            }
            Err(e) => {
                tracing::debug!(user = %party.user, error = %e, "recording a call device's departure failed again")
            }
        }
    }
}

/// The grace of departure `token` ran out: ends the device's calls unless
/// it came back (or departed again since). Only one caller gets the calls
/// of a departure, however many look.
async fn grace_over(st: &Arc<AppState>, party: &Party, token: &str) {
    match st.calls.book.departed(party, token).await {
        Ok(iids) => {
            for iid in iids {
                gone(st, &iid, party).await;
            }
        }
        Err(e) => tracing::warn!(user = %party.user, error = %e, "could not end a departed device's calls"),
    }
}

/// In a cluster, looks every `every` for departures whose grace ran out
/// while the node that was timing them died, and ends them here.
pub fn scan_departures(st: &Arc<AppState>, every: Duration) {
    let me = Arc::downgrade(st);
    st.spawn_timer(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(st) = me.upgrade() else { return };
            match st.calls.book.overdue().await {
                Ok(due) => {
                    for (party, token) in due {
                        grace_over(&st, &party, &token).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not scan call devices' departures"),
            }
        }
    });
}

/// The grace of `departed` ran out in call `iid`: a pending invitation it
/// sent is canceled; an accepted call ends and the other device hears
/// `gone`.
async fn gone(st: &Arc<AppState>, iid: &str, departed: &Party) {
    for _ in 0..SWAP_TRIES {
        let Ok(Some((rec, version))) = st.calls.book.get(iid).await else { return };
        if rec.ended || !rec.has(departed) {
            return;
        }
        if rec.callee.is_none() {
            match st.store.transition_invite(iid, InviteState::Canceled, None).await {
                Ok(Transition::Done(inv)) => return crate::ops::invites::ended(st, &inv).await,
                // Accepted meanwhile: read the record again.
                Ok(Transition::AlreadyFinal(inv)) if inv.state == InviteState::Accepted => continue,
                Ok(_) => return forget(st, iid).await,
                Err(e) => {
                    return tracing::warn!(%iid, error = %e, "could not cancel a departed caller's invite");
                }
            }
        }
        let next = CallRecord { ended: true, ..rec.clone() };
        match st.calls.book.swap(iid, version, &next).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => return tracing::warn!(%iid, error = %e, "could not end a departed device's call"),
        }
        let to = if rec.caller == *departed { rec.callee.clone() } else { Some(rec.caller.clone()) };
        let body = CallSignal::End { reason: EndReason::Gone }.to_body();
        let ev = Event::Signal {
            from: departed.user.clone(),
            to: Target::Call(iid.to_owned()),
            body,
            ts: now_ms(),
        };
        if let Some(to) = to {
            send_to_device(st, &to, &event_frame(&ev));
        }
        return forget(st, iid).await;
    }
}

#[cfg(test)]
mod tests;
