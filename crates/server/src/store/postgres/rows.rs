//! Row mapping: reading messages, invitations and cursors out of result
//! rows without panicking on a type mismatch.

use super::pool::pg;
use crate::store::shared::{apply_aggregates, from_sql_int, parse_conv, parse_object};
use crate::store::{Cursor, StoreError, StoreResult};
use courier_proto::{Invite, InviteState, Msg, Target};
use tokio_postgres::Row;

/// Reads column `i` without panicking on a type mismatch.
pub(super) fn col<'a, T: tokio_postgres::types::FromSql<'a>>(r: &'a Row, i: usize) -> StoreResult<T> {
    r.try_get(i).map_err(pg)
}

/// A message with its aggregate columns applied (not its reactions).
pub(super) fn msg_from_row(r: &Row) -> StoreResult<Msg> {
    let mid: String = col(r, 2)?;
    let target: String = col(r, 5)?;
    let to: Target = serde_json::from_str(&target)
        .map_err(|e| StoreError::Unusable(format!("stored target of message {mid} is invalid: {e}")))?;
    let mut msg = Msg::new(
        parse_conv(&col::<String>(r, 0)?)?,
        from_sql_int(col(r, 1)?),
        mid,
        col(r, 3)?,
        col(r, 4)?,
        to,
        col(r, 6)?,
        parse_object("message body", &col::<String>(r, 7)?)?,
        col(r, 9)?,
        col(r, 8)?,
    );
    let edited = col::<Option<String>>(r, 10)?.zip(col::<Option<i64>>(r, 11)?);
    apply_aggregates(&mut msg, edited, col(r, 12)?, col(r, 13)?);
    Ok(msg)
}

pub(super) fn msgs_from_rows(rows: &[Row]) -> StoreResult<Vec<Msg>> {
    rows.iter().map(msg_from_row).collect()
}

/// The columns [`invite_from_row`] reads, in order.
macro_rules! invite_columns {
    () => {
        "iid, sender, recipient, room, content, state, created, expires, received, reason, response"
    };
}

pub(super) fn invite_from_row(r: &Row) -> StoreResult<Invite> {
    let iid: String = col(r, 0)?;
    let state: String = col(r, 5)?;
    let state = InviteState::parse(&state)
        .ok_or_else(|| StoreError::Unusable(format!("stored state {state:?} of invite {iid} is unknown")))?;
    let response: Option<String> = col(r, 10)?;
    Ok(Invite {
        from: col(r, 1)?,
        to: col(r, 2)?,
        room: col(r, 3)?,
        content: parse_object("invite content", &col::<String>(r, 4)?)?,
        state,
        created: col(r, 6)?,
        expires: col(r, 7)?,
        received: col(r, 8)?,
        reason: col(r, 9)?,
        response: response.as_deref().map(|s| parse_object("invite response", s)).transpose()?,
        iid,
    })
}

pub(super) fn invites_from_rows(rows: &[Row]) -> StoreResult<Vec<Invite>> {
    rows.iter().map(invite_from_row).collect()
}

pub(super) fn cursor_from(recv: Option<i64>, read: Option<i64>) -> Cursor {
    Cursor { recv_seq: from_sql_int(recv.unwrap_or(0)), read_seq: from_sql_int(read.unwrap_or(0)) }
}
