//! What both engines share, written once: the SQL column lists they read,
//! how stored aggregate state becomes a message, column conversions, and
//! the decision of what a relation (edit, recall, reaction, pin) changes
//! ([`RelationEffect`]): the engines only execute it.

/// The message columns both engines read, in order: the message, then its
/// aggregate columns.
macro_rules! msg_columns {
    () => {
        "conv, seq, mid, cid, sender, target, kind, body, reply_to, ts, edited_text, edited_ts, recalled, pinned"
    };
}

/// The invitation columns both engines read, in order (see [`RawInvite`]).
macro_rules! invite_columns {
    () => {
        "iid, sender, recipient, room, content, state, created, expires, received, reason, response"
    };
}

/// The columns of a conversation row (`c` its `conversations` row, `mine`
/// the user's cursor) that the engines' unread counts need; `$recalled` is
/// the engine's spelling of "x is recalled" (SQLite needs `= 1` to use its
/// partial index), `$own` its count of the user's own content messages
/// after the read cursor (`own_content_after!`, or a counter kept in the
/// cursor row), then `mentions_unread`.
/// Each is one index read: see `UnreadParts`.
macro_rules! unread_columns {
    ($conv:literal, $user:literal, $recalled:literal, $own:expr) => {
        unread_columns!(
            $conv,
            $user,
            $recalled,
            $own,
            concat!(
                "(SELECT x.rel_count FROM messages x WHERE x.conv = ",
                $conv,
                " AND x.seq = mine.read_seq)"
            )
        )
    };
    // `$rel_at_read`: the engine's spelling of "the relation count of the
    // message at the read cursor" (SQLite keeps it in the cursor row: its
    // (conv, seq) order is not one index for the newest messages).
    ($conv:literal, $user:literal, $recalled:literal, $own:expr, $rel_at_read:expr) => {
        concat!(
            "c.rel_count, coalesce(",
            $rel_at_read,
            ", 0), ",
            $own,
            ", \
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

/// The user's own content messages after the read cursor, counted through
/// an index on `(conv, sender, seq)` of content messages.
macro_rules! own_content_after {
    ($conv:literal, $user:literal) => {
        concat!(
            "(SELECT count(*) FROM messages x WHERE x.conv = ",
            $conv,
            " AND x.sender = ",
            $user,
            " AND x.seq > coalesce(mine.read_seq, 0) AND x.rel_target IS NULL)"
        )
    };
}

use super::{ConvSummary, Relation, StoreError, StoreResult};
use courier_proto::{Conv, Invite, InviteState, Msg, Role, Target};
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

/// A message row as stored (the columns of `msg_columns!`, in order),
/// before its JSON is parsed; each engine reads its rows into this.
pub(crate) struct RawMsg {
    pub(crate) conv: String,
    pub(crate) seq: i64,
    pub(crate) mid: String,
    pub(crate) cid: String,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) kind: String,
    pub(crate) body: String,
    pub(crate) reply_to: Option<String>,
    pub(crate) ts: i64,
    pub(crate) edited_text: Option<String>,
    pub(crate) edited_ts: Option<i64>,
    pub(crate) recalled: bool,
    pub(crate) pinned: Option<i64>,
}

impl RawMsg {
    /// The message with its aggregate columns applied (not its reactions).
    pub(crate) fn into_msg(self) -> StoreResult<Msg> {
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

/// An invitation row as stored (the columns of `invite_columns!`, in
/// order), before its JSON is parsed.
pub(crate) struct RawInvite {
    pub(crate) iid: String,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) room: String,
    pub(crate) content: String,
    pub(crate) state: String,
    pub(crate) created: i64,
    pub(crate) expires: i64,
    pub(crate) received: bool,
    pub(crate) reason: Option<String>,
    pub(crate) response: Option<String>,
}

impl RawInvite {
    /// The invitation, its state and JSON parsed.
    pub(crate) fn into_invite(self) -> StoreResult<Invite> {
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

/// Keeps the `limit` most recently active of a user's conversations (by
/// their newest message, then by `conv`), sorted by `conv` again; true when
/// some were left out. Each engine reads at most `limit + 1` of each kind.
pub(crate) fn keep_most_recent(out: &mut Vec<ConvSummary>, limit: u32) -> bool {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = out.len() > limit;
    if more {
        out.sort_by(|a, b| b.last_ts.cmp(&a.last_ts).then_with(|| a.conv.cmp(&b.conv)));
        out.truncate(limit);
    }
    out.sort_by(|a, b| a.conv.cmp(&b.conv));
    more
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

// ---------------------------------------------------------------------------
// What a relation changes: decided here, executed by the engines

/// A relation's target as the relation's transaction reads it (its row,
/// locked where the engine locks).
#[derive(Debug, Clone)]
pub(crate) struct RelationTarget {
    /// Its seq.
    pub seq: i64,
    /// Its sender.
    pub sender: String,
    /// Its kind.
    pub kind: String,
    /// Its body as stored (JSON text).
    pub body: String,
    /// Whether it is recalled already.
    pub recalled: bool,
}

/// What storing a relation does to its target, besides storing the
/// relation message itself. Both engines execute it in the relation's
/// transaction, against the target's row (`conv`, [`RelationTarget::seq`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RelationEffect {
    /// Sets the target's edited text and its time (the newest edit wins).
    SetEdited {
        /// The new text.
        text: String,
        /// The edit's ts.
        ts: i64,
    },
    /// Turns `user`'s reaction `key` on, listed at the relation's `seq`; a
    /// key the user has on already keeps its place.
    AddReaction {
        /// The reaction.
        key: String,
        /// Who reacts (the relation's sender).
        user: String,
        /// The relation's seq (reactions list in reacting order).
        seq: i64,
    },
    /// Turns `user`'s reaction `key` off (off already: no change).
    RemoveReaction {
        /// The reaction.
        key: String,
        /// Who reacts (the relation's sender).
        user: String,
    },
    /// Pins the target at `ts`, listed at `seq`; a pinned target keeps its
    /// first pin (and its place in the list).
    Pin {
        /// The pin's ts.
        ts: i64,
        /// The pin's seq (pins list in pinning order).
        seq: i64,
    },
    /// Unpins the target.
    Unpin,
    /// Scrubs the target for good.
    Recall(RecallEffect),
}

impl RelationEffect {
    /// What `rel`, stored as `stored`, does to `target`.
    pub(crate) fn of(rel: &Relation, target: &RelationTarget, stored: &Msg) -> RelationEffect {
        let (seq, ts) = (to_sql_int(stored.seq), stored.ts);
        match rel {
            Relation::Edit { text, .. } => RelationEffect::SetEdited { text: text.clone(), ts },
            Relation::Reaction { key, on: true, .. } => {
                RelationEffect::AddReaction { key: key.clone(), user: stored.from.clone(), seq }
            }
            Relation::Reaction { key, on: false, .. } => {
                RelationEffect::RemoveReaction { key: key.clone(), user: stored.from.clone() }
            }
            Relation::Pin { on: true, .. } => RelationEffect::Pin { ts, seq },
            Relation::Pin { on: false, .. } => RelationEffect::Unpin,
            Relation::Recall { target: mid } => RelationEffect::Recall(RecallEffect::of(mid, target)),
        }
    }
}

/// What a recall scrubs. Always: the target's body (to `{}`), its edited
/// text, pin and reactions, and it becomes recalled. Besides, the parts
/// named here, which depend on what the target's body says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecallEffect {
    /// The target's mid: its edits keep only `edit_body`.
    pub target: String,
    /// The body the target's edits keep (JSON text of `{"target": mid}`).
    pub edit_body: String,
    /// The target's mention rows to delete.
    pub mentions: MentionScrub,
    /// The media object the target's body names, deleted only if it is
    /// still `owner`'s (the target's sender's) upload.
    pub media: Option<OwnedMedia>,
}

/// Which mention rows of a recalled message go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MentionScrub {
    /// The rows of these users (the ones its body mentions): one
    /// primary-key delete each.
    Users(Vec<String>),
    /// Every row of the message: its stored body does not parse, so whom
    /// it mentioned is unknown (a scan of the mentions, for damaged rows
    /// only).
    All,
}

/// A media object and the uploader it must have to be deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OwnedMedia {
    /// The media id.
    pub id: String,
    /// The uploader it must have.
    pub owner: String,
}

impl RecallEffect {
    /// What recalling `target` (with mid `mid`) scrubs.
    ///
    /// A stored body that does not parse (a damaged row) does not stop the
    /// recall: the protocol promises recalled content is never served again,
    /// and the recall removes it. Its mentions all go; the media it may name
    /// cannot be found and stays.
    pub(crate) fn of(mid: &str, target: &RelationTarget) -> RecallEffect {
        let edit_body = to_json(&scrubbed_edit_body(mid));
        let (mentions, media) = match parse_object("message body", &target.body) {
            Ok(body) => (
                MentionScrub::Users(courier_proto::body_mentions(&body)),
                body_media(&target.kind, &body)
                    .map(|id| OwnedMedia { id: id.to_owned(), owner: target.sender.clone() }),
            ),
            Err(e) => {
                tracing::warn!(mid, error = %e, "recalling a message whose stored body does not parse");
                (MentionScrub::All, None)
            }
        };
        RecallEffect { target: mid.to_owned(), edit_body, mentions, media }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(kind: &str, body: &str) -> RelationTarget {
        RelationTarget {
            seq: 7,
            sender: "alice".into(),
            kind: kind.into(),
            body: body.into(),
            recalled: false,
        }
    }

    #[test]
    fn a_recall_scrubs_the_mentions_and_the_senders_media_its_body_names() {
        let image = target("image", r#"{"media":"m_1","mentions":["bob","carol","bob"]}"#);
        let scrub = RecallEffect::of("mid1", &image);
        assert_eq!(scrub.target, "mid1");
        assert_eq!(scrub.edit_body, r#"{"target":"mid1"}"#);
        assert_eq!(scrub.mentions, MentionScrub::Users(vec!["bob".into(), "carol".into()]));
        assert_eq!(scrub.media, Some(OwnedMedia { id: "m_1".into(), owner: "alice".into() }));
        // A text's "media" field names nothing to delete.
        assert_eq!(RecallEffect::of("mid1", &target("text", r#"{"media":"m_1"}"#)).media, None);
    }

    #[test]
    fn a_recall_of_an_unreadable_body_scrubs_every_mention_and_no_media() {
        let scrub = RecallEffect::of("mid1", &target("image", "not json"));
        assert_eq!((scrub.mentions, scrub.media), (MentionScrub::All, None));
    }
}
