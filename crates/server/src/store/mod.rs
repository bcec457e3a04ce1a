//! Durable state behind one small trait per domain, gathered in [`Store`],
//! so the engine is chosen once at start-up (SQLite embedded by default;
//! PostgreSQL for clusters) and every engine passes the same test suite
//! (`suite`).
//!
//! The contract every implementation keeps:
//! - [`MessageStore::append`] returns only after the message is durable (it
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
//!
//! # Layout
//!
//! - this file: the traits, one per domain, and [`Store`], which is all of
//!   them (callers hold an `Arc<dyn Store>`);
//! - [`types`]: the data they take and return (re-exported here);
//! - `shared`: what both engines share, written once;
//! - [`sqlite`] and [`postgres`]: the engines;
//! - `suite`: the behaviour suite every engine passes.

#[macro_use]
mod shared;
#[cfg(any(test, feature = "test-engines"))]
#[cfg_attr(not(target_os = "linux"), path = "pg_harness_unsupported.rs")]
pub mod pg_harness;
pub mod postgres;
pub mod sqlite;
#[cfg(any(test, feature = "store-suite"))]
pub mod suite;
pub mod types;

pub use types::*;

use async_trait::async_trait;
use courier_proto::{ChannelInfo, Conv, Invite, InviteState, Msg, Profile, Role};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// The durable half of [`MessageStore::queue_append`].
pub type QueuedAppend = std::pin::Pin<Box<dyn std::future::Future<Output = StoreResult<Appended>> + Send>>;

/// Users: sign-ins, last-seen times and profiles.
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
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
}

/// Content messages, history pages, conversation lists and the read and
/// receive cursors.
#[async_trait]
pub trait MessageStore: Send + Sync + 'static {
    /// Stores a content message durably and returns it with its seq, or
    /// returns the original for a repeated `(from, cid)` with `dup: true`.
    /// For a DM the conversation becomes listed for both parties.
    async fn append(&self, msg: NewMessage) -> StoreResult<Appended>;
    /// [`append`](Self::append) in two steps, for a session that pipelines
    /// its sends: this future completes once the append has its place in
    /// the engine's order (an append queued later, by anyone, gets a later
    /// seq in the same conversation), and the one it returns completes
    /// when the append is durable. An engine without a write queue stores
    /// the message in the first step.
    async fn queue_append(&self, msg: NewMessage) -> QueuedAppend {
        let stored = self.append(msg).await;
        Box::pin(std::future::ready(stored))
    }
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
    /// unread counters and each conversation's pins, sorted by `conv`.
    async fn conversations(&self, user: &str) -> StoreResult<Vec<ConvSummary>> {
        Ok(self.recent_conversations(user, u32::MAX).await?.0)
    }
    /// [`MessageStore::conversations`], at most `limit` of them: the most
    /// recently active (by their newest message; empty channels last), and
    /// whether there were more. Rows beyond the limit are never built, so a
    /// user in 100,000 conversations costs `sync` what `limit` do.
    async fn recent_conversations(&self, user: &str, limit: u32) -> StoreResult<(Vec<ConvSummary>, bool)>;
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
}

/// v1.1 relations (edit, recall, reaction, pin) and what they do to
/// their targets; the v1.2 reaction caps.
#[async_trait]
pub trait RelationStore: Send + Sync + 'static {
    /// Stores a relation message like [`MessageStore::append`] and, in the same
    /// transaction, applies `rel` to its target's aggregates. A repeated
    /// `(from, cid)` returns the original before anything is checked.
    /// Refused (nothing written) when the target is not a content message
    /// of `msg.conv` or is recalled. A recall also scrubs the target (see
    /// the module docs) and deletes the media its body names when the
    /// media was uploaded by the target's sender.
    async fn append_relation(&self, msg: NewMessage, rel: Relation) -> StoreResult<RelationAppend>;
    /// [`RelationStore::append_relation`] with the v1.2 reaction caps checked in
    /// the relation's transaction, so concurrent reactions cannot pass
    /// them: a reaction turning a key on over `caps` is
    /// [`RelationAppend::Capped`] (a retry of a stored one is still its
    /// duplicate).
    async fn append_relation_capped(
        &self,
        msg: NewMessage,
        rel: Relation,
        caps: RelationCaps,
    ) -> StoreResult<RelationAppend>;
    /// The reactions on the content message `target_seq` of `conv` as the
    /// v1.2 caps see them when `user` turns `key` on.
    async fn reaction_tally(
        &self,
        conv: &Conv,
        target_seq: u64,
        user: &str,
        key: &str,
    ) -> StoreResult<ReactionTally>;
}

/// Channels, their members and roles, and who shares a conversation
/// with whom (presence privacy).
#[async_trait]
pub trait ChannelStore: Send + Sync + 'static {
    /// Creates a channel with its creator as first member and owner.
    /// Returns false (and changes nothing) when the name exists.
    async fn create_channel(&self, ch: NewChannel) -> StoreResult<bool>;
    /// [`create_channel`](Self::create_channel) for a creator under the
    /// `channels_created` cap: `None`, creating nothing, when the creator
    /// already created `at_most` channels at or after `since` (ms). The
    /// count and the insert are one step: creations racing from several
    /// sessions or nodes cannot pass the cap together.
    async fn create_channel_within(
        &self,
        ch: NewChannel,
        at_most: u64,
        since: i64,
    ) -> StoreResult<Option<bool>>;
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
    /// [`ChannelStore::join_channel`] refuses them. When the owner goes, the
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
}

/// Call invitations and their compare-and-set transitions.
#[async_trait]
pub trait InviteStore: Send + Sync + 'static {
    /// Stores a new invitation (in whatever state it was created).
    async fn create_invite(&self, invite: &Invite) -> StoreResult<()>;
    /// Stores a new pending invitation unless its caller already has
    /// `at_most` pending ones that expire after `now` (ms): false, storing
    /// nothing, when over the `pending_invites` cap. Count and insert are
    /// one step: invitations racing from several sessions or nodes cannot
    /// pass the cap together.
    async fn create_invite_within(&self, invite: &Invite, at_most: u64, now: i64) -> StoreResult<bool>;
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
    /// The newest `limit` pending invitations to or from `user`, oldest
    /// first.
    async fn pending_invites_for(&self, user: &str, limit: u32) -> StoreResult<Vec<Invite>>;
    /// The newest `limit` invitations to or from `user` created at or after
    /// `since` (ms), in any state, oldest first.
    async fn recent_invites_for(&self, user: &str, since: i64, limit: u32) -> StoreResult<Vec<Invite>>;
    /// All pending invitations (to schedule their expiry after a restart).
    async fn pending_invites(&self) -> StoreResult<Vec<Invite>>;
    /// The iids of at most `limit` pending invitations whose expiry is at
    /// or before `now` (ms), the most overdue first: what a cluster's
    /// expiry scan needs, without their contents.
    async fn overdue_invites(&self, now: i64, limit: u32) -> StoreResult<Vec<String>>;
}

/// Uploaded media objects and the daily upload quota.
#[async_trait]
pub trait MediaStore: Send + Sync + 'static {
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
    /// objects; downloads use [`MediaStore::media_chunk`]).
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
}

/// How long one committed write batch took, for metrics: a stalled commit
/// (the disk) and a slow batch (its statements, or the thread kept off the
/// processor) are told apart by these two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchTimes {
    /// From the batch's first statement to its commit returning.
    pub batch: Duration,
    /// The `COMMIT` alone: the WAL write and its fsync.
    pub commit: Duration,
}

/// Receives the [`BatchTimes`] of each committed batch, on the writer thread
/// (so it must be quick: a histogram's observe).
pub type BatchHook = Box<dyn Fn(BatchTimes) + Send + Sync>;

/// The engine itself: counts for metrics, health, shutdown.
#[async_trait]
pub trait StoreAdmin: Send + Sync + 'static {
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
    /// Has `hook` told the times of every write batch committed from now on
    /// and returns true, for an engine that groups writes into batches (the
    /// embedded one; the first hook stays). Others keep no batches: false.
    fn observe_batches(&self, hook: BatchHook) -> bool {
        drop(hook);
        false
    }
}

/// Everything the server keeps: every domain trait. Implementations are cheap
/// to share (`Arc<dyn Store>`) and safe to call from many tasks at once; an
/// engine implements the domain traits and gets this one for free.
pub trait Store:
    UserStore + MessageStore + RelationStore + ChannelStore + InviteStore + MediaStore + StoreAdmin
{
}

impl<T> Store for T where
    T: UserStore
        + MessageStore
        + RelationStore
        + ChannelStore
        + InviteStore
        + MediaStore
        + StoreAdmin
        + ?Sized
{
}
