//! Durable state behind one trait, so the engine is chosen once at start-up
//! (SQLite embedded by default; PostgreSQL for clusters) and every engine
//! passes the same test suite ([`suite`]).
//!
//! The contract every implementation keeps:
//! - [`Store::append`] returns only after the message is durable (it
//!   survives `kill -9` of the process right after), assigns per-conversation
//!   sequence numbers 1, 2, 3… with no gaps even under concurrent callers, and
//!   is idempotent on `(from, cid)` forever.
//! - Read and receive cursors only move forward and never pass `last_seq`.
//! - Invitation transitions are compare-and-set on `pending`: of any number of
//!   concurrent transitions of one invitation, exactly one succeeds.
//! - A v1.1 relation (edit, recall, reaction, pin) is stored in the same
//!   transaction as the change it makes to its target's aggregates, and is
//!   refused inside that transaction when the target was recalled meanwhile.
//!   A recall scrubs the target's content (body, edits' texts, mentions,
//!   reactions, pin, and its own media) for good.

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

#[cfg(any(test, feature = "test-engines"))]
pub mod pg_harness;
pub mod postgres;
pub mod sqlite;
#[cfg(any(test, feature = "store-suite"))]
pub mod suite;
mod walbuf;

use async_trait::async_trait;
use courier_proto::{ChannelInfo, Conv, Invite, InviteState, Msg, Profile, Role, Target};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};

/// Failures of the storage engine. All of them reach clients as `internal`
/// (retryable): the engine, not the request, is at fault.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The SQLite engine failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The PostgreSQL engine refused a statement (SQLSTATE and message;
    /// unreachable servers are [`StoreError::Unavailable`]).
    #[error("postgres: {0}")]
    Postgres(String),
    /// The database holds data this code cannot read (corrupt, or written by
    /// a newer version).
    #[error("database unusable: {0}")]
    Unusable(String),
    /// The engine is shut down or unreachable.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Filesystem failure (creating the data directory).
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Result alias for storage calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// A message to store. The store assigns `seq` and `mid`.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// The conversation, already derived from `from` and `to`.
    pub conv: Conv,
    /// The sender (from the session, or the push API's `from`).
    pub from: String,
    /// The recipient as addressed.
    pub to: Target,
    /// The sender's idempotency key.
    pub cid: String,
    /// Message kind.
    pub kind: String,
    /// The body.
    pub body: Map<String, Value>,
    /// Optional reply target (a `mid`).
    pub reply_to: Option<String>,
    /// Server time to stamp on the message if it is new.
    pub ts: i64,
    /// Users the message mentions, already filtered to members of the
    /// conversation other than the sender (they count in `mentions_unread`).
    pub mentions: Vec<String>,
}

/// What a v1.1 relation message does to its target, parsed from its kind
/// and body (see [`Relation::parse`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relation {
    /// Replaces the target's text.
    Edit {
        /// The target's mid.
        target: String,
        /// The new text.
        text: String,
    },
    /// Hides the target's content for good.
    Recall {
        /// The target's mid.
        target: String,
    },
    /// Turns the sender's reaction `key` on or off.
    Reaction {
        /// The target's mid.
        target: String,
        /// The reaction, 1–32 bytes.
        key: String,
        /// On or off.
        on: bool,
    },
    /// Pins or unpins the target.
    Pin {
        /// The target's mid.
        target: String,
        /// Pinned or not.
        on: bool,
    },
}

impl Relation {
    /// The relation a message of `kind` with `body` carries; `None` for
    /// content kinds or a body that `validate_body` would refuse.
    pub fn parse(kind: &str, body: &Map<String, Value>) -> Option<Relation> {
        let target = body.get("target")?.as_str()?.to_owned();
        let on = || body.get("on").and_then(Value::as_bool);
        Some(match kind {
            "edit" => Relation::Edit { target, text: body.get("text")?.as_str()?.to_owned() },
            "recall" => Relation::Recall { target },
            "reaction" => {
                Relation::Reaction { target, key: body.get("key")?.as_str()?.to_owned(), on: on()? }
            }
            "pin" => Relation::Pin { target, on: on()? },
            _ => return None,
        })
    }

    /// The target's mid.
    pub fn target(&self) -> &str {
        match self {
            Relation::Edit { target, .. }
            | Relation::Recall { target }
            | Relation::Reaction { target, .. }
            | Relation::Pin { target, .. } => target,
        }
    }
}

/// The outcome of [`Store::append_relation`].
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // returned once per call, never kept in bulk
pub enum RelationAppend {
    /// Stored (with its effect on the target), or the original of a
    /// repeated `(from, cid)` with `dup: true`.
    Stored(Appended),
    /// The target is not a content message of the conversation; nothing
    /// was written.
    NoTarget,
    /// The target is recalled; nothing was written.
    Recalled,
    /// v1.2: a reaction turning a key on would pass this cap
    /// (`reaction_keys` or `reactions_per_user`); nothing was written.
    Capped(&'static str),
}

/// The outcome of [`Store::join_channel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinOutcome {
    /// The user is a member now.
    Joined,
    /// The user was a member already; nothing changed.
    AlreadyMember,
    /// An owner or admin removed the user; only [`Store::add_member`] lets
    /// them back.
    Blocked,
}

/// What a member leaving (or being removed) changed besides the membership.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Departure {
    /// The member who became owner because the owner left: the
    /// longest-standing admin, else the longest-standing member.
    pub new_owner: Option<String>,
}

/// The outcome of [`Store::append`].
#[derive(Debug, Clone, PartialEq)]
pub struct Appended {
    /// The stored message: the new one, or for a duplicate the original.
    pub msg: Msg,
    /// True when `(from, cid)` had been stored before; nothing new was written.
    pub dup: bool,
}

/// Which page of a conversation to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// The newest messages.
    Latest,
    /// Messages with `seq > after`, oldest first.
    After(u64),
    /// Messages with `seq < before`, the newest of them.
    Before(u64),
}

/// The reactions on one message, as the v1.2 reaction caps see them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReactionTally {
    /// Distinct keys that some user has on (`reaction_keys`).
    pub keys: u64,
    /// Keys the user has on (`reactions_per_user`).
    pub user_keys: u64,
    /// Whether some user has the key on already (adding it adds no key).
    pub key_present: bool,
    /// Whether the user has the key on already (turning it on is a no-op).
    pub user_has_key: bool,
}

/// The v1.2 reaction caps (`limits.reaction_keys`, `reactions_per_user`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReactionCaps {
    /// Most distinct keys on one message.
    pub keys: u64,
    /// Most keys one user has on one message.
    pub per_user: u64,
}

impl ReactionCaps {
    /// The cap the user turning the key on would pass, given the tally
    /// (`None`: it fits; a key the user has on already always fits).
    pub fn refuses(&self, t: ReactionTally) -> Option<&'static str> {
        if t.user_has_key {
            None
        } else if t.user_keys >= self.per_user {
            Some("reactions_per_user")
        } else if !t.key_present && t.keys >= self.keys {
            Some("reaction_keys")
        } else {
            None
        }
    }
}

/// A user's two cursors in a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cursor {
    /// Everything up to here reached one of the user's devices.
    pub recv_seq: u64,
    /// Everything up to here was read.
    pub read_seq: u64,
}

/// One conversation of a user, for `sync`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvSummary {
    /// The conversation.
    pub conv: Conv,
    /// Highest stored seq (0 when empty).
    pub last_seq: u64,
    /// Its timestamp (0 when empty).
    pub last_ts: i64,
    /// The user's cursors.
    pub cursor: Cursor,
    /// For a DM, the peer's cursors.
    pub peer_cursor: Option<Cursor>,
    /// Content messages after the user's read cursor, not sent by the
    /// user, not recalled.
    pub unread: u64,
    /// Of those, the ones that mention the user.
    pub mentions_unread: u64,
    /// Mids of the pinned messages, oldest pin first.
    pub pins: Vec<String>,
}

/// A channel's stored description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRow {
    /// Name.
    pub name: String,
    /// Display title.
    pub title: String,
    /// Topic line.
    pub topic: String,
    /// Private channels are invisible to non-members.
    pub private: bool,
    /// Creator; `None` for the server's default channels.
    pub created_by: Option<String>,
    /// Creation time (ms).
    pub created: i64,
}

/// A channel to create.
#[derive(Debug, Clone)]
pub struct NewChannel {
    /// Name (already validated).
    pub name: String,
    /// Display title.
    pub title: String,
    /// Topic line.
    pub topic: String,
    /// Private or public.
    pub private: bool,
    /// Creator, who becomes the first member; `None` for default channels.
    pub creator: Option<String>,
    /// Creation time (ms).
    pub now: i64,
}

/// The outcome of an invitation transition.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// This call moved the invitation out of `pending`; here is its new state.
    Done(Invite),
    /// It was already final; here it is, unchanged.
    AlreadyFinal(Invite),
    /// No such invitation.
    NotFound,
}

/// Bytes per read of a media download (see [`Store::media_chunk`]).
pub const MEDIA_CHUNK: usize = 256 * 1024;

/// The smallest media id minted at or after `since` (ms): ids are `m_` +
/// a ULID, whose first characters are its time, so ids sort by upload time.
pub(crate) fn first_media_id_since(since: i64) -> String {
    format!("m_{}", ulid::Ulid::from_parts(since.max(0) as u64, 0))
}

/// A daily upload allowance (see [`Store::put_media_within`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadQuota {
    /// Uploads at or after this time (ms) count: the start of the UTC day.
    pub since: i64,
    /// The most bytes they may add up to.
    pub bytes: u64,
}

/// Stored facts about an uploaded media object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaMeta {
    /// `m_<ulid>`.
    pub id: String,
    /// Uploader.
    pub owner: String,
    /// Content type given at upload.
    pub mime: String,
    /// Byte length.
    pub size: u64,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
    /// Upload time (ms).
    pub created: i64,
}

/// Everything the server keeps. Implementations are cheap to share
/// (`Arc<dyn Store>`) and safe to call from many tasks at once.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    // ---- users and profiles ----

    /// Records that `user` signed in (creating the user on first sight).
    /// Users that were never recorded are "unknown" to call invitations.
    async fn touch_user(&self, user: &str, now: i64) -> StoreResult<()>;
    /// Whether `user` ever signed in.
    async fn user_exists(&self, user: &str) -> StoreResult<bool>;
    /// Records when the user's last session ended.
    async fn set_last_seen(&self, user: &str, ts: i64) -> StoreResult<()>;
    /// Last-seen times of those users that have one.
    async fn last_seen(&self, users: &[String]) -> StoreResult<HashMap<String, i64>>;
    /// Updates the fields given (others unchanged) and returns the profile.
    async fn set_profile(
        &self,
        user: &str,
        name: Option<&str>,
        avatar: Option<&str>,
        status: Option<&str>,
    ) -> StoreResult<Profile>;
    /// Profiles of the users that exist, in the order asked. A user with no
    /// profile set yet gets `name` = user id and empty avatar and status.
    async fn profiles(&self, users: &[String]) -> StoreResult<Vec<Profile>>;

    // ---- messages ----

    /// Stores a content message durably and returns it with its seq, or
    /// returns the original for a repeated `(from, cid)` with `dup: true`.
    /// For a DM the conversation becomes listed for both parties.
    async fn append(&self, msg: NewMessage) -> StoreResult<Appended>;
    /// Stores a relation message like [`Store::append`] and, in the same
    /// transaction, applies `rel` to its target's aggregates. A repeated
    /// `(from, cid)` returns the original before anything is checked.
    /// Refused (nothing written) when the target is not a content message
    /// of `msg.conv` or is recalled. A recall also scrubs the target (see
    /// the module docs) and deletes the media its body names when the
    /// media was uploaded by the target's sender.
    async fn append_relation(&self, msg: NewMessage, rel: Relation) -> StoreResult<RelationAppend>;
    /// [`Store::append_relation`] with the v1.2 reaction caps checked in
    /// the relation's transaction, so concurrent reactions cannot pass
    /// them: a reaction turning a key on over `caps` is
    /// [`RelationAppend::Capped`] (a retry of a stored one is still its
    /// duplicate).
    async fn append_relation_capped(
        &self,
        msg: NewMessage,
        rel: Relation,
        caps: ReactionCaps,
    ) -> StoreResult<RelationAppend>;
    /// A page of messages in ascending seq, and whether more exist in the
    /// paging direction. `limit` is at least 1. Content messages carry
    /// their aggregates (edit, reactions, pin, recall).
    async fn history(&self, conv: &Conv, page: Page, limit: u32) -> StoreResult<(Vec<Msg>, bool)>;
    /// The message with this mid, if it belongs to `conv`, with its
    /// aggregates.
    async fn message(&self, conv: &Conv, mid: &str) -> StoreResult<Option<Msg>>;
    /// The message `from` stored with `cid`, if any (as stored, without
    /// reactions), so a retry is recognised before it is validated again.
    async fn message_by_cid(&self, from: &str, cid: &str) -> StoreResult<Option<Msg>>;
    /// `(last_seq, last_ts)` of a conversation; `(0, 0)` when empty.
    async fn conv_last(&self, conv: &Conv) -> StoreResult<(u64, i64)>;
    /// Every conversation of `user`: DMs with at least one message and the
    /// channels the user is a member of (also empty ones), with the user's
    /// unread counters and each conversation's pins.
    async fn conversations(&self, user: &str) -> StoreResult<Vec<ConvSummary>>;

    // ---- receipts ----

    /// Moves the user's cursors forward (never back), each clamped to
    /// `last_seq`; raising `read` also raises `recv` to at least `read`.
    /// Returns the cursors after the update.
    async fn advance_cursor(
        &self,
        conv: &Conv,
        user: &str,
        recv: Option<u64>,
        read: Option<u64>,
    ) -> StoreResult<Cursor>;
    /// The user's cursors (zeros when never set).
    async fn cursor(&self, conv: &Conv, user: &str) -> StoreResult<Cursor>;
    /// The reactions on the content message `target_seq` of `conv` as the
    /// v1.2 caps see them when `user` turns `key` on.
    async fn reaction_tally(
        &self,
        conv: &Conv,
        target_seq: u64,
        user: &str,
        key: &str,
    ) -> StoreResult<ReactionTally>;

    // ---- channels ----

    /// Creates a channel with its creator as first member and owner.
    /// Returns false (and changes nothing) when the name exists.
    async fn create_channel(&self, ch: NewChannel) -> StoreResult<bool>;
    /// The channel, if it exists.
    async fn channel(&self, name: &str) -> StoreResult<Option<ChannelRow>>;
    /// Public channels with member counts, by name.
    async fn public_channels(&self) -> StoreResult<Vec<ChannelInfo>>;
    /// Adds a member (role `member`) on someone's behalf who may lift a
    /// removal: any block from an earlier removal is lifted. False when
    /// already a member.
    async fn add_member(&self, channel: &str, user: &str, now: i64) -> StoreResult<bool>;
    /// Adds a member (role `member`) unless an owner or admin removed them.
    async fn join_channel(&self, channel: &str, user: &str, now: i64) -> StoreResult<JoinOutcome>;
    /// Removes a member; `block_rejoin` records the removal so that
    /// [`Store::join_channel`] refuses them. When the owner goes, the
    /// longest-standing admin (else member) becomes owner in the same
    /// transaction. `None` when not a member.
    async fn remove_member(
        &self,
        channel: &str,
        user: &str,
        block_rejoin: bool,
    ) -> StoreResult<Option<Departure>>;
    /// Whether `user` is a member.
    async fn is_member(&self, channel: &str, user: &str) -> StoreResult<bool>;
    /// Members in joining order.
    async fn members(&self, channel: &str) -> StoreResult<Vec<String>>;
    /// Members with their roles, in joining order.
    async fn member_roles(&self, channel: &str) -> StoreResult<Vec<(String, Role)>>;
    /// A page of public channels (v1.2): names bytewise after `after`
    /// (exclusive), at most `limit`, and whether more follow.
    async fn public_channels_page(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<(Vec<ChannelInfo>, bool)>;
    /// A page of a channel's members with roles (v1.2): user ids bytewise
    /// after `after` (exclusive), at most `limit`, and whether more follow.
    async fn member_roles_page(
        &self,
        channel: &str,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<(Vec<(String, Role)>, bool)>;
    /// Presence privacy (v1.2): which of `others` share a conversation with
    /// `viewer`: a channel both are members of, or their DM when each of
    /// them has sent a message in it. `viewer` always shares with
    /// themself.
    async fn shares_conversation(&self, viewer: &str, others: &[String]) -> StoreResult<HashSet<String>>;
    /// A member's role; `None` when not a member.
    async fn role(&self, channel: &str, user: &str) -> StoreResult<Option<Role>>;
    /// How many channels `user` created at or after `since` (ms): the
    /// `channels_created` cap counts those of the current UTC day.
    async fn channels_created_since(&self, user: &str, since: i64) -> StoreResult<u64>;
    /// Sets a member's role. `Owner` transfers ownership: every other owner
    /// becomes admin, in the same transaction. Returns each member whose
    /// role changed (the new owner first), or `None` when `user` is not a
    /// member.
    async fn set_role(
        &self,
        channel: &str,
        user: &str,
        role: Role,
    ) -> StoreResult<Option<Vec<(String, Role)>>>;

    // ---- call invitations ----

    /// Stores a new invitation (in whatever state it was created).
    async fn create_invite(&self, invite: &Invite) -> StoreResult<()>;
    /// The invitation, if it exists.
    async fn invite(&self, iid: &str) -> StoreResult<Option<Invite>>;
    /// Compare-and-set from `pending` to `to` (a final state), storing the
    /// callee's `response` if given.
    async fn transition_invite(
        &self,
        iid: &str,
        to: InviteState,
        response: Option<Map<String, Value>>,
    ) -> StoreResult<Transition>;
    /// Sets `received` on a pending invitation; returns it only when this
    /// call flipped the flag (so the caller is told once).
    async fn mark_invite_received(&self, iid: &str) -> StoreResult<Option<Invite>>;
    /// Pending invitations to or from `user`.
    async fn pending_invites_for(&self, user: &str) -> StoreResult<Vec<Invite>>;
    /// Invitations to or from `user` created at or after `since` (ms), in
    /// any state, oldest first.
    async fn recent_invites_for(&self, user: &str, since: i64) -> StoreResult<Vec<Invite>>;
    /// All pending invitations (to schedule their expiry after a restart).
    async fn pending_invites(&self) -> StoreResult<Vec<Invite>>;

    // ---- media ----

    /// Stores an uploaded object.
    async fn put_media(&self, meta: &MediaMeta, bytes: Vec<u8>) -> StoreResult<()>;
    /// Stores an uploaded object if its owner's uploads at or after
    /// `quota.since` plus this one stay within `quota.bytes`; else stores
    /// nothing and returns what was used. Check and insert are one step
    /// (concurrent uploads of one owner cannot both pass).
    async fn put_media_within(
        &self,
        meta: &MediaMeta,
        bytes: Vec<u8>,
        quota: UploadQuota,
    ) -> StoreResult<Option<u64>>;
    /// The object's facts, without its bytes.
    async fn media_meta(&self, id: &str) -> StoreResult<Option<MediaMeta>>;
    /// Up to `len` bytes of the object from `offset` (fewer at the end,
    /// none at or past it); `None` when there is no such object (any more).
    /// Downloads read objects this way, a chunk at a time, so a large
    /// object is never held whole in memory.
    async fn media_chunk(&self, id: &str, offset: u64, len: usize) -> StoreResult<Option<Vec<u8>>>;
    /// Total size of the objects `owner` uploaded at or after `since` (ms):
    /// the daily upload quota. Server-minted ids are `m_` + the ULID of
    /// their upload time, which lets an engine read only the recent part of
    /// its id index.
    async fn media_bytes_since(&self, owner: &str, since: i64) -> StoreResult<u64>;
    /// The object's facts and all of its bytes (for tests and small
    /// objects; downloads use [`Store::media_chunk`]).
    async fn media(&self, id: &str) -> StoreResult<Option<(MediaMeta, Vec<u8>)>> {
        let Some(meta) = self.media_meta(id).await? else { return Ok(None) };
        let mut bytes = Vec::with_capacity(usize::try_from(meta.size).unwrap_or(0).min(64 << 20));
        loop {
            match self.media_chunk(id, bytes.len() as u64, MEDIA_CHUNK).await? {
                None => return Ok(None),
                Some(chunk) if chunk.is_empty() => return Ok(Some((meta, bytes))),
                Some(chunk) => bytes.extend_from_slice(&chunk),
            }
        }
    }

    // ---- lifecycle ----

    /// Number of stored messages (for metrics and tests).
    async fn message_count(&self) -> StoreResult<u64>;
    /// Finishes pending writes and makes them durable. Later calls may fail
    /// with [`StoreError::Unavailable`].
    async fn close(&self) -> StoreResult<()>;
    /// Checks that the engine answers (for `/healthz` in cluster mode). The
    /// embedded engine has nothing to reach, so the default answers at once.
    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }
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
