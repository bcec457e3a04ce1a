//! Row mapping: stored message and invitation rows into protocol values.

use crate::store::StoreResult;
pub(super) use crate::store::shared::{RawInvite, RawMsg};
use courier_proto::{Invite, Msg};
use rusqlite::Row;

// ---------------------------------------------------------------------------
// A conversation's messages in seq order: the older ones through
// `message_order`, the newest (its tail, not indexed yet) straight from the
// table. A conversation's tail is its rows from `message_tail.first_id` on
// (none without a row there), a range of rowids in which seq grows with
// the rowid; see `tail.rs` for what holds (schema v8). The rows above
// `message_order_mark` include every tail, and may include rows already
// indexed.

/// A condition on `id`: within conversation `$conv`'s span of the tail
/// (false when it has no message there). Still filter on `conv`.
macro_rules! tail_span {
    ($conv:expr) => {
        concat!(
            "id BETWEEN (SELECT first_id FROM message_tail WHERE conv = ",
            $conv,
            ") AND (SELECT newest_id FROM message_tail WHERE conv = ",
            $conv,
            ")"
        )
    };
}

/// The rowids of conversation `$conv` whose seq satisfies `seq $cond` (both
/// SQL text), indexed part and tail, in no particular order.
macro_rules! conv_ids {
    ($conv:expr, $cond:expr) => {
        concat!(
            "SELECT id FROM message_order WHERE conv = ",
            $conv,
            " AND seq ",
            $cond,
            " UNION ALL SELECT id FROM messages WHERE ",
            tail_span!($conv),
            " AND conv = ",
            $conv,
            " AND seq ",
            $cond
        )
    };
}

/// The rowid of conversation `$conv`'s message `$seq` (NULL if none). In
/// the tail, read from the newest down: the message wanted is usually
/// recent (an edit, a pin), and the scan stops there.
macro_rules! id_at {
    ($conv:expr, $seq:expr) => {
        concat!(
            "coalesce((SELECT id FROM message_order WHERE conv = ",
            $conv,
            " AND seq = ",
            $seq,
            "), (SELECT id FROM messages WHERE ",
            tail_span!($conv),
            " AND conv = ",
            $conv,
            " AND seq = ",
            $seq,
            " ORDER BY id DESC LIMIT 1))"
        )
    };
}

/// The rowid of conversation `$conv`'s newest message (NULL if none): one
/// lookup in `message_tail`, else one in `message_order`.
macro_rules! newest_id {
    ($conv:expr) => {
        concat!(
            "coalesce((SELECT newest_id FROM message_tail WHERE conv = ",
            $conv,
            "), (SELECT id FROM message_order WHERE conv = ",
            $conv,
            " ORDER BY seq DESC LIMIT 1))"
        )
    };
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
}

pub(super) fn collect_msgs(rows: impl Iterator<Item = rusqlite::Result<RawMsg>>) -> StoreResult<Vec<Msg>> {
    rows.map(|raw| raw?.into_msg()).collect()
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
}

pub(super) fn collect_invites(
    rows: impl Iterator<Item = rusqlite::Result<RawInvite>>,
) -> StoreResult<Vec<Invite>> {
    rows.map(|raw| raw?.into_invite()).collect()
}

/// A channel-list row: name, title, topic, private, member count.
pub(super) fn channel_info(r: &Row<'_>) -> rusqlite::Result<courier_proto::ChannelInfo> {
    Ok(courier_proto::ChannelInfo {
        channel: r.get(0)?,
        title: r.get(1)?,
        topic: r.get(2)?,
        private: r.get(3)?,
        members: crate::store::shared::from_sql_int(r.get(4)?),
    })
}
