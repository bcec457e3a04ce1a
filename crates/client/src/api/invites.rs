//! Call invitations: inviting, answering, canceling, and the local mirror
//! (also updated from a refusal that carries the invitation's final state).

use crate::client::{Client, ClientError, Result};
use crate::events::ClientEvent;
use crate::model::{InviteView, now_ms};
use courier_proto::Invite;
use serde_json::{Map, Value, json};

impl Client {
    /// Mirrors the invitation an ok carries, and reports it.
    fn record_invite(&self, v: &Value) -> Result<Option<InviteView>> {
        let Some(inv) = v.get("invite") else {
            return Ok(None);
        };
        let inv: Invite = serde_json::from_value(inv.clone())?;
        self.inner.store.upsert_invite(&inv)?;
        let view = InviteView::new(inv, &self.inner.me, now_ms());
        self.inner.emit(ClientEvent::Invite { invite: view.clone() });
        Ok(Some(view))
    }

    /// Mirrors the final state a refusal carries (e.g. answered elsewhere),
    /// and passes the error on.
    fn invite_error(&self, e: ClientError) -> ClientError {
        if let ClientError::Server(b) = &e
            && let Some(inv) = &b.invite
        {
            let _ = self.inner.store.upsert_invite(inv);
            self.inner
                .emit(ClientEvent::Invite { invite: InviteView::new(inv.clone(), &self.inner.me, now_ms()) });
        }
        e
    }

    /// Invites `to` to a call (ringing for `ttl_s` seconds).
    ///
    /// # Errors
    /// Offline, or the server's refusal.
    pub async fn invite(&self, to: &str, content: Map<String, Value>, ttl_s: u32) -> Result<InviteView> {
        let v = self.call(json!({"op": "invite", "to": to, "content": content, "ttl_s": ttl_s})).await?;
        self.record_invite(&v)?.ok_or_else(|| ClientError::Protocol("invite ok without invite".into()))
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
        let v = self
            .call(json!({"op": "invite_answer", "iid": iid, "accept": accept, "response": response}))
            .await
            .map_err(|e| self.invite_error(e))?;
        self.record_invite(&v)
    }

    /// Cancels an outgoing invitation.
    ///
    /// # Errors
    /// As [`Client::answer`].
    pub async fn cancel_invite(&self, iid: &str) -> Result<Option<InviteView>> {
        let v =
            self.call(json!({"op": "invite_cancel", "iid": iid})).await.map_err(|e| self.invite_error(e))?;
        self.record_invite(&v)
    }

    /// Invitations as mirrored locally, newest first.
    ///
    /// # Errors
    /// On store failure.
    pub fn invites(&self) -> Result<Vec<InviteView>> {
        Ok(self.inner.store.invites(&self.inner.me)?)
    }
}
