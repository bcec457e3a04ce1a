//! Call invitations: inviting, answering, canceling, the local mirror
//! (also updated from a refusal that carries the invitation's final state),
//! and the caller's call record (protocol §14).

use crate::client::{Client, ClientError, Result};
use crate::events::ClientEvent;
use crate::model::{InviteView, MessageView};
use crate::state::lock;
use courier_proto::{Conv, InviteOk, InviteState, Target};
use serde_json::{Map, Value, json};

/// The outcomes a call record may carry (§14).
pub const CALL_OUTCOMES: [&str; 5] = ["completed", "failed", "missed", "declined", "canceled"];

/// The longest `duration_s` a call record may carry: a week.
pub const MAX_CALL_DURATION_S: u32 = 604_800;

impl Client {
    /// Queues the call record of invitation `iid`, which this user placed:
    /// a `call` message with cid `call-<iid>` in the DM with the callee,
    /// through the outbox like any send (so it survives going offline). The
    /// record is written once: a second call returns the first.
    ///
    /// # Errors
    /// An unknown outcome or a duration over a week, an invitation not in
    /// the local mirror or not this user's own, or store failure.
    pub fn send_call_record(
        &self,
        iid: &str,
        video: bool,
        outcome: &str,
        duration_s: u32,
    ) -> Result<MessageView> {
        if !CALL_OUTCOMES.contains(&outcome) {
            return Err(ClientError::Invalid(format!("unknown call outcome {outcome:?}")));
        }
        if duration_s > MAX_CALL_DURATION_S {
            return Err(ClientError::Invalid(format!("a call of {duration_s} s is over a week")));
        }
        let me = &self.inner.me;
        let inv = self
            .invites()?
            .into_iter()
            .find(|v| v.invite.iid == iid)
            .ok_or_else(|| ClientError::Invalid(format!("no invitation {iid:?}")))?
            .invite;
        if &inv.from != me {
            return Err(ClientError::Invalid("only the caller writes a call record".into()));
        }
        let cid = format!("call-{iid}");
        if let Some(m) = self.inner.store.message_by_cid(me, &cid)? {
            return Ok(m);
        }
        let body = json!({"iid": iid, "video": video, "outcome": outcome, "duration_s": duration_s});
        let Value::Object(body) = body else { unreachable!("a json object") };
        let to = Target::User(inv.to.clone());
        self.enqueue_as(Conv::dm(me, &inv.to), &to, cid, "call", body, None)
    }

    /// Mirrors the invitation an ok carries, and reports it; v1.2: notes
    /// when the ok names this device a call device of it. `answer`: the ok
    /// of this device's answer, which made the invitation final.
    fn record_invite(&self, v: &Value, answer: bool) -> Result<Option<InviteView>> {
        if v.get("invite").is_none() {
            return Ok(None);
        }
        let InviteOk { invite: inv, call_device } = serde_json::from_value(v.clone())?;
        if call_device {
            lock(&self.inner.call_devices).insert(&inv.iid);
        }
        let stored = self.inner.store.upsert_invite(&inv)?;
        let mut view = InviteView::new(stored, &self.inner.me, self.inner.server_now());
        view.answered_here = answer && view.invite.state.is_final();
        self.inner.emit(ClientEvent::Invite { invite: view.clone() });
        Ok(Some(view))
    }

    /// Mirrors the final state a refusal carries (e.g. answered elsewhere),
    /// and passes the error on.
    fn invite_error(&self, e: ClientError) -> ClientError {
        if let ClientError::Server(b) = &e
            && let Some(inv) = &b.invite
        {
            let stored = self.inner.store.upsert_invite(inv).unwrap_or_else(|err| {
                tracing::warn!(error = %err, "storing a refused invitation's state");
                inv.clone()
            });
            self.inner.emit(ClientEvent::Invite {
                invite: InviteView::new(stored, &self.inner.me, self.inner.server_now()),
            });
        }
        e
    }

    /// Invites `to` to a call (ringing for `ttl_s` seconds).
    ///
    /// # Errors
    /// Offline, or the server's refusal.
    pub async fn invite(&self, to: &str, content: Map<String, Value>, ttl_s: u32) -> Result<InviteView> {
        let v = self.call(json!({"op": "invite", "to": to, "content": content, "ttl_s": ttl_s})).await?;
        self.record_invite(&v, false)?.ok_or_else(|| ClientError::Protocol("invite ok without invite".into()))
    }

    /// Answers an incoming invitation.
    ///
    /// # Errors
    /// Offline, `invite_final` when it was answered elsewhere (the mirror is
    /// updated from the error), or another refusal.
    pub async fn answer(
        &self,
        iid: &str,
        accept: bool,
        response: Map<String, Value>,
    ) -> Result<Option<InviteView>> {
        let asked = if accept { InviteState::Accepted } else { InviteState::Refused };
        let _answering = Answering::start(self, iid, asked);
        let v = self
            .call(json!({"op": "invite_answer", "iid": iid, "accept": accept, "response": response}))
            .await
            .map_err(|e| self.invite_error(e))?;
        self.record_invite(&v, true)
    }

    /// Cancels an outgoing invitation.
    ///
    /// # Errors
    /// As [`Client::answer`].
    pub async fn cancel_invite(&self, iid: &str) -> Result<Option<InviteView>> {
        let v =
            self.call(json!({"op": "invite_cancel", "iid": iid})).await.map_err(|e| self.invite_error(e))?;
        self.record_invite(&v, false)
    }

    /// Invitations as mirrored locally, newest first; a pending one past
    /// its expiry by the server's clock shows as expired.
    ///
    /// # Errors
    /// On store failure.
    pub fn invites(&self) -> Result<Vec<InviteView>> {
        Ok(self.inner.store.invites(&self.inner.me, self.inner.server_now())?)
    }
}

/// An answer in flight (`Inner::answering`), forgotten when its op is done
/// or abandoned.
struct Answering<'a> {
    client: &'a Client,
    iid: String,
}

impl<'a> Answering<'a> {
    fn start(client: &'a Client, iid: &str, asked: InviteState) -> Self {
        let mut answering = lock(&client.inner.answering);
        // A device answers a few invitations at once; answers whose ops
        // never finished are not kept without bound.
        if answering.len() >= 64 {
            answering.clear();
        }
        answering.insert(iid.to_owned(), asked);
        Answering { client, iid: iid.to_owned() }
    }
}

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        lock(&self.client.inner.answering).remove(&self.iid);
    }
}
