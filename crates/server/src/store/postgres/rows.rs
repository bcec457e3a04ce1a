//! Row mapping: reading messages, invitations and cursors out of result
//! rows without panicking on a type mismatch (the parsing of what was read
//! is `RawMsg` and `RawInvite` in `store/shared.rs`).

use super::pool::pg;
use crate::store::shared::{RawInvite, RawMsg, from_sql_int};
use crate::store::{Cursor, StoreResult};
use courier_proto::{ChannelInfo, Invite, Msg};
use tokio_postgres::Row;

/// Reads column `i` without panicking on a type mismatch.
pub(super) fn col<'a, T: tokio_postgres::types::FromSql<'a>>(r: &'a Row, i: usize) -> StoreResult<T> {
    r.try_get(i).map_err(pg)
}

/// A message with its aggregate columns applied (not its reactions).
pub(super) fn msg_from_row(r: &Row) -> StoreResult<Msg> {
    RawMsg {
        conv: col(r, 0)?,
        seq: col(r, 1)?,
        mid: col(r, 2)?,
        cid: col(r, 3)?,
        from: col(r, 4)?,
        to: col(r, 5)?,
        kind: col(r, 6)?,
        body: col(r, 7)?,
        reply_to: col(r, 8)?,
        ts: col(r, 9)?,
        edited_text: col(r, 10)?,
        edited_ts: col(r, 11)?,
        recalled: col(r, 12)?,
        pinned: col(r, 13)?,
    }
    .into_msg()
}

pub(super) fn msgs_from_rows(rows: &[Row]) -> StoreResult<Vec<Msg>> {
    rows.iter().map(msg_from_row).collect()
}

pub(super) fn invite_from_row(r: &Row) -> StoreResult<Invite> {
    RawInvite {
        iid: col(r, 0)?,
        from: col(r, 1)?,
        to: col(r, 2)?,
        room: col(r, 3)?,
        content: col(r, 4)?,
        state: col(r, 5)?,
        created: col(r, 6)?,
        expires: col(r, 7)?,
        received: col(r, 8)?,
        reason: col(r, 9)?,
        response: col(r, 10)?,
    }
    .into_invite()
}

pub(super) fn invites_from_rows(rows: &[Row]) -> StoreResult<Vec<Invite>> {
    rows.iter().map(invite_from_row).collect()
}

pub(super) fn cursor_from(recv: Option<i64>, read: Option<i64>) -> Cursor {
    Cursor { recv_seq: from_sql_int(recv.unwrap_or(0)), read_seq: from_sql_int(read.unwrap_or(0)) }
}

/// A channel-list row: name, title, topic, private, member count.
pub(super) fn channel_info(r: &Row) -> StoreResult<ChannelInfo> {
    Ok(ChannelInfo {
        channel: col(r, 0)?,
        title: col(r, 1)?,
        topic: col(r, 2)?,
        private: col(r, 3)?,
        members: from_sql_int(col(r, 4)?),
    })
}
