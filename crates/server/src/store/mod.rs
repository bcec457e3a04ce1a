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

#[cfg(any(test, feature = "test-engines"))]
pub mod pg_harness;
pub mod postgres;
pub mod sqlite;
#[cfg(any(test, feature = "store-suite"))]
pub mod suite;

use async_trait::async_trait;
use courier_proto::{ChannelInfo, Conv, Invite, InviteState, Msg, Profile, Target};
use serde_json::{Map, Value};
use std::collections::HashMap;

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

    /// Stores a message durably and returns it with its seq, or returns the
    /// original for a repeated `(from, cid)` with `dup: true`. For a DM the
    /// conversation becomes listed for both parties.
    async fn append(&self, msg: NewMessage) -> StoreResult<Appended>;
    /// A page of messages in ascending seq, and whether more exist in the
    /// paging direction. `limit` is at least 1.
    async fn history(&self, conv: &Conv, page: Page, limit: u32) -> StoreResult<(Vec<Msg>, bool)>;
    /// The message with this mid, if it belongs to `conv`.
    async fn message(&self, conv: &Conv, mid: &str) -> StoreResult<Option<Msg>>;
    /// `(last_seq, last_ts)` of a conversation; `(0, 0)` when empty.
    async fn conv_last(&self, conv: &Conv) -> StoreResult<(u64, i64)>;
    /// Every conversation of `user`: DMs with at least one message and the
    /// channels the user is a member of (also empty ones).
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

    // ---- channels ----

    /// Creates a channel with its creator as first member. Returns false
    /// (and changes nothing) when the name exists.
    async fn create_channel(&self, ch: NewChannel) -> StoreResult<bool>;
    /// The channel, if it exists.
    async fn channel(&self, name: &str) -> StoreResult<Option<ChannelRow>>;
    /// Public channels with member counts, by name.
    async fn public_channels(&self) -> StoreResult<Vec<ChannelInfo>>;
    /// Adds a member; false when already a member.
    async fn add_member(&self, channel: &str, user: &str, now: i64) -> StoreResult<bool>;
    /// Removes a member; false when not a member.
    async fn remove_member(&self, channel: &str, user: &str) -> StoreResult<bool>;
    /// Whether `user` is a member.
    async fn is_member(&self, channel: &str, user: &str) -> StoreResult<bool>;
    /// Members in joining order.
    async fn members(&self, channel: &str) -> StoreResult<Vec<String>>;

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
    /// The object's facts and bytes.
    async fn media(&self, id: &str) -> StoreResult<Option<(MediaMeta, Vec<u8>)>>;

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
