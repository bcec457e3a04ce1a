//! What both engines share: the SQL column lists they read, and how stored
//! aggregate state becomes a message.

/// The message columns both engines read, in order: the message, then its
/// aggregate columns.
macro_rules! msg_columns {
    () => {
        "conv, seq, mid, cid, sender, target, kind, body, reply_to, ts, edited_text, edited_ts, recalled, pinned"
    };
}

/// The columns of a conversation row (`c` its `conversations` row, `mine`
/// the user's cursor) that the engines' unread counts need; `$recalled` is
/// the engine's spelling of "x is recalled" (SQLite needs `= 1` to use its
/// partial index), then `mentions_unread`.
/// Each is one index read: see `UnreadParts`.
macro_rules! unread_columns {
    ($conv:literal, $user:literal, $recalled:literal) => {
        concat!(
            "c.rel_count, \
             coalesce((SELECT x.rel_count FROM messages x WHERE x.conv = ",
            $conv,
            " AND x.seq = mine.read_seq), 0), \
             (SELECT count(*) FROM messages x WHERE x.conv = ",
            $conv,
            " AND x.sender = ",
            $user,
            " \
                 AND x.seq > coalesce(mine.read_seq, 0) AND x.rel_target IS NULL), \
             (SELECT count(*) FROM messages x WHERE x.conv = ",
            $conv,
            " AND ",
            $recalled,
            " \
                 AND x.seq > coalesce(mine.read_seq, 0) AND x.sender <> ",
            $user,
            "), \
             (SELECT count(*) FROM mentions x WHERE x.user_id = ",
            $user,
            " AND x.conv = ",
            $conv,
            " \
                 AND x.seq > coalesce(mine.read_seq, 0))"
        )
    };
}

use super::{StoreError, StoreResult};
use courier_proto::{Conv, Msg, Role};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// The smallest media id minted at or after `since` (ms): ids are `m_` +
/// a ULID, whose first characters are its time, so ids sort by upload time.
pub(crate) fn first_media_id_since(since: i64) -> String {
    format!("m_{}", ulid::Ulid::from_parts(since.max(0) as u64, 0))
}

// ---------------------------------------------------------------------------
// Shared by the engines: how stored aggregate state becomes a message

/// Applies a content message's stored aggregates: a recalled message keeps
/// nothing but `recalled`; otherwise the newest edit's `(text, ts)` replaces
/// `body.text`, and a pin's ts shows while pinned.
pub(crate) fn apply_aggregates(
    msg: &mut Msg,
    edited: Option<(String, i64)>,
    recalled: bool,
    pinned: Option<i64>,
) {
    if recalled {
        msg.body = Map::new();
        msg.recalled = true;
        return;
    }
    if let Some((text, ts)) = edited {
        msg.body.insert("text".into(), Value::String(text));
        msg.edited = Some(ts);
    }
    msg.pinned = pinned;
}

/// Puts reactions onto the content messages of `page`: `rows` are
/// `(target seq, key, user)` in reacting order.
pub(crate) fn attach_reactions(page: &mut [Msg], rows: impl IntoIterator<Item = (u64, String, String)>) {
    let at: HashMap<u64, usize> = page.iter().enumerate().map(|(i, m)| (m.seq, i)).collect();
    for (seq, key, user) in rows {
        if let Some(&i) = at.get(&seq) {
            page[i].reactions.entry(key).or_default().push(user);
        }
    }
}

/// The seq range `(first, last)` of the content messages of a page, for
/// fetching their reactions in one range read.
pub(crate) fn content_span(page: &[Msg]) -> Option<(u64, u64)> {
    let mut content = page.iter().filter(|m| !courier_proto::is_relation_kind(&m.kind) && !m.recalled);
    let first = content.next()?.seq;
    let last = content.next_back().map_or(first, |m| m.seq);
    Some((first, last))
}

/// A stored role.
///
/// # Errors
/// [`StoreError::Unusable`] for a spelling this build does not know.
pub(crate) fn parse_role(s: &str) -> StoreResult<Role> {
    Role::parse(s).ok_or_else(|| StoreError::Unusable(format!("stored channel role {s:?} is unknown")))
}

/// Counts as one engine reads them for the unread count of a user in a
/// conversation.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct UnreadParts {
    /// Highest seq.
    pub last_seq: u64,
    /// Relation messages in the conversation.
    pub rel_total: u64,
    /// The user's read cursor.
    pub read_seq: u64,
    /// Relation messages up to and including `read_seq`.
    pub rel_at_read: u64,
    /// The user's own content messages after `read_seq`.
    pub own_after: u64,
    /// Others' recalled content messages after `read_seq`.
    pub recalled_after: u64,
}

/// Content messages after the read cursor, minus the user's own and the
/// recalled ones, from counters that are each one index read.
pub(crate) fn unread_count(p: UnreadParts) -> u64 {
    let content_total = p.last_seq.saturating_sub(p.rel_total);
    let content_read = p.read_seq.saturating_sub(p.rel_at_read);
    content_total.saturating_sub(content_read).saturating_sub(p.own_after).saturating_sub(p.recalled_after)
}

/// The body an edit of a recalled message keeps: only its target.
pub(crate) fn scrubbed_edit_body(target: &str) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("target".into(), Value::String(target.to_owned()));
    body
}

/// The media a content message's body names (images and files).
pub(crate) fn body_media<'a>(kind: &str, body: &'a Map<String, Value>) -> Option<&'a str> {
    match kind {
        "image" | "file" => body.get("media").and_then(Value::as_str),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Column conversions both engines use

/// Converts a u64 from the API to the engines' signed 64-bit integer,
/// saturating.
pub(crate) fn to_sql_int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Converts a stored non-negative integer back.
pub(crate) fn from_sql_int(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// JSON text of a value both engines store as text (bodies, targets).
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("JSON maps and targets always serialize")
}

/// A stored conversation id.
///
/// # Errors
/// [`StoreError::Unusable`] when it does not parse.
pub(crate) fn parse_conv(s: &str) -> StoreResult<Conv> {
    Conv::parse(s).ok_or_else(|| StoreError::Unusable(format!("stored conversation id {s:?} is invalid")))
}

/// A stored JSON object (`what` names it in the error).
///
/// # Errors
/// [`StoreError::Unusable`] when it is not a JSON object.
pub(crate) fn parse_object(what: &str, s: &str) -> StoreResult<Map<String, Value>> {
    serde_json::from_str(s)
        .map_err(|e| StoreError::Unusable(format!("stored {what} is not a JSON object: {e}")))
}

/// The error of a call on a store that was closed.
pub(crate) fn closed() -> StoreError {
    StoreError::Unavailable("the store is closed".into())
}
