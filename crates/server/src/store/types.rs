//! The data the storage traits take and return: messages to store,
//! relations, pages, cursors, channel rows, invitation transitions, media
//! facts, and the engines' error type. Re-exported from [`super`], so
//! callers write `crate::store::X`.

use courier_proto::{Conv, Invite, Msg, Target};
use serde_json::{Map, Value};

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

/// The outcome of [`super::RelationStore::append_relation`].
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
    /// A reaction turning a key on (v1.2) or a pin would pass this cap
    /// (`reaction_keys`, `reactions_per_user` or `pins`); nothing was
    /// written.
    Capped(&'static str),
}

/// The outcome of [`super::ChannelStore::join_channel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinOutcome {
    /// The user is a member now.
    Joined,
    /// The user was a member already; nothing changed.
    AlreadyMember,
    /// An owner or admin removed the user; only [`super::ChannelStore::add_member`] lets
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

/// The outcome of [`super::MessageStore::append`].
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

/// The caps storage checks in a relation's transaction: the v1.2 reaction
/// caps (`limits.reaction_keys`, `reactions_per_user`) and the pinned
/// messages of a conversation (`limits.pins`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelationCaps {
    /// Most distinct keys on one message.
    pub keys: u64,
    /// Most keys one user has on one message.
    pub per_user: u64,
    /// Most pinned messages in one conversation.
    pub pins: u64,
}

impl RelationCaps {
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

    /// The cap pinning a message would pass when its conversation has
    /// `pinned` messages pinned (`None`: it fits; the caller does not ask
    /// for a message pinned already, which stays where it is).
    pub fn refuses_pin(&self, pinned: u64) -> Option<&'static str> {
        (pinned >= self.pins).then_some("pins")
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

/// Bytes per read of a media download (see [`super::MediaStore::media_chunk`]).
pub const MEDIA_CHUNK: usize = 256 * 1024;

/// A daily upload allowance (see [`super::MediaStore::put_media_within`]).
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
