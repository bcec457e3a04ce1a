//! Row mapping: stored message and invitation rows into protocol values.

use crate::store::shared::{apply_aggregates, from_sql_int, parse_conv, parse_object};
use crate::store::{StoreError, StoreResult};
use courier_proto::{Invite, InviteState, Msg, Target};
use rusqlite::Row;

/// A message row as stored, before its JSON is parsed.
pub(super) struct RawMsg {
    conv: String,
    seq: i64,
    mid: String,
    cid: String,
    from: String,
    to: String,
    kind: String,
    body: String,
    reply_to: Option<String>,
    ts: i64,
    edited_text: Option<String>,
    edited_ts: Option<i64>,
    recalled: bool,
    pinned: Option<i64>,
}

impl RawMsg {
    pub(super) fn from_row(r: &Row<'_>) -> rusqlite::Result<RawMsg> {
        Ok(RawMsg {
            conv: r.get(0)?,
            seq: r.get(1)?,
            mid: r.get(2)?,
            cid: r.get(3)?,
            from: r.get(4)?,
            to: r.get(5)?,
            kind: r.get(6)?,
            body: r.get(7)?,
            reply_to: r.get(8)?,
            ts: r.get(9)?,
            edited_text: r.get(10)?,
            edited_ts: r.get(11)?,
            recalled: r.get(12)?,
            pinned: r.get(13)?,
        })
    }

    /// The message with its aggregate columns applied (not its reactions).
    pub(super) fn into_msg(self) -> StoreResult<Msg> {
        let to: Target = serde_json::from_str(&self.to).map_err(|e| {
            StoreError::Unusable(format!("stored target of message {} is invalid: {e}", self.mid))
        })?;
        let mut msg = Msg::new(
            parse_conv(&self.conv)?,
            from_sql_int(self.seq),
            self.mid,
            self.cid,
            self.from,
            to,
            self.kind,
            parse_object("message body", &self.body)?,
            self.ts,
            self.reply_to,
        );
        let edited = self.edited_text.zip(self.edited_ts);
        apply_aggregates(&mut msg, edited, self.recalled, self.pinned);
        Ok(msg)
    }
}

pub(super) fn collect_msgs(rows: impl Iterator<Item = rusqlite::Result<RawMsg>>) -> StoreResult<Vec<Msg>> {
    rows.map(|raw| raw?.into_msg()).collect()
}

/// The columns [`RawInvite::from_row`] reads, in order.
macro_rules! invite_columns {
    () => {
        "iid, sender, recipient, room, content, state, created, expires, received, reason, response"
    };
}

pub(super) struct RawInvite {
    iid: String,
    from: String,
    to: String,
    room: String,
    content: String,
    state: String,
    created: i64,
    expires: i64,
    received: bool,
    reason: Option<String>,
    response: Option<String>,
}

impl RawInvite {
    pub(super) fn from_row(r: &Row<'_>) -> rusqlite::Result<RawInvite> {
        Ok(RawInvite {
            iid: r.get(0)?,
            from: r.get(1)?,
            to: r.get(2)?,
            room: r.get(3)?,
            content: r.get(4)?,
            state: r.get(5)?,
            created: r.get(6)?,
            expires: r.get(7)?,
            received: r.get(8)?,
            reason: r.get(9)?,
            response: r.get(10)?,
        })
    }

    pub(super) fn into_invite(self) -> StoreResult<Invite> {
        let state = InviteState::parse(&self.state).ok_or_else(|| {
            StoreError::Unusable(format!("stored state {:?} of invite {} is unknown", self.state, self.iid))
        })?;
        Ok(Invite {
            content: parse_object("invite content", &self.content)?,
            response: self.response.as_deref().map(|r| parse_object("invite response", r)).transpose()?,
            iid: self.iid,
            from: self.from,
            to: self.to,
            room: self.room,
            state,
            created: self.created,
            expires: self.expires,
            received: self.received,
            reason: self.reason,
        })
    }
}

pub(super) fn collect_invites(
    rows: impl Iterator<Item = rusqlite::Result<RawInvite>>,
) -> StoreResult<Vec<Invite>> {
    rows.map(|raw| raw?.into_invite()).collect()
}
