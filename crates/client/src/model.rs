//! What the application sees: messages, conversations and invitations as
//! held in the local store, ready to serialize to the UI.

use courier_proto::{Conv, Invite, InviteState, Target};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Where a message is on its way. Own messages go `pending → sent →
/// delivered → read` (delivered/read only in DMs, from the peer's receipts),
/// or end `failed` on a permanent error; messages of others are `received`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub enum DeliveryStatus {
    /// In the outbox, not yet acknowledged by the server.
    Pending,
    /// Stored by the server (has a seq).
    Sent,
    /// The DM peer's device received it.
    Delivered,
    /// The DM peer read it.
    Read,
    /// Refused permanently by the server; may be retried or deleted.
    Failed,
    /// A message from someone else (or from this user's other device).
    Received,
}

impl DeliveryStatus {
    /// The spelling used in the store and on the wire to the UI.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Read => "read",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Received => "received",
        }
    }

    /// Parses [`DeliveryStatus::as_str`].
    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        Some(match s {
            "pending" => DeliveryStatus::Pending,
            "sent" => DeliveryStatus::Sent,
            "delivered" => DeliveryStatus::Delivered,
            "read" => DeliveryStatus::Read,
            "failed" => DeliveryStatus::Failed,
            "received" => DeliveryStatus::Received,
            _ => return None,
        })
    }
}

/// A message as stored locally: the protocol's `msg` fields (seq, mid and ts
/// absent while pending) plus the delivery status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct MessageView {
    /// The conversation.
    pub conv: Conv,
    /// Position in the conversation; `None` while pending or failed.
    pub seq: Option<u64>,
    /// Server message id; `None` while pending or failed.
    pub mid: Option<String>,
    /// Client message id, stable across retries.
    pub cid: String,
    /// The sender.
    pub from: String,
    /// The recipient as addressed.
    pub to: Target,
    /// `text`, `image`, `file`, `custom`, `call` (or a 1.1 relation kind);
    /// `unreadable` for a message from history this client could not decode.
    /// Kinds the UI does not know show as a placeholder.
    pub kind: String,
    /// The kind's body.
    pub body: Map<String, Value>,
    /// Server timestamp (ms); `None` while pending.
    pub ts: Option<i64>,
    /// The `mid` this message replies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// Delivery status.
    pub status: DeliveryStatus,
    /// Why it failed, for `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// v1.1: when the newest edit was made (`body.text` holds its text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited: Option<i64>,
    /// v1.1: per reaction key, the users with it on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reactions: BTreeMap<String, Vec<String>>,
    /// v1.1: recalled by its sender or a channel owner/admin; `body` is
    /// then `{}`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recalled: bool,
    /// v1.1: when it was pinned, while pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<i64>,
}

impl MessageView {
    /// The text of a `text` message (or the file name of a file/image).
    pub fn text(&self) -> Option<&str> {
        self.body.get("text").or_else(|| self.body.get("name")).and_then(Value::as_str)
    }

    /// Whether `user` is among the body's `mentions` (v1.1).
    pub fn mentions(&self, user: &str) -> bool {
        self.body.get("mentions").and_then(Value::as_array).is_some_and(|a| a.iter().any(|u| u == user))
    }
}

/// The kind stored for a server message that does not decode (e.g. a
/// field of the wrong type): a placeholder at its seq, so that syncing moves
/// past it. Its body is the original body when that is an object.
pub const UNREADABLE_KIND: &str = "unreadable";

/// A conversation with its cursors and unread count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ConversationView {
    /// The conversation.
    pub conv: Conv,
    /// `dm` or `channel`.
    pub kind: String,
    /// For a DM: the other user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// For a channel: its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Highest seq known to exist on the server.
    pub last_seq: u64,
    /// Its timestamp.
    pub last_ts: i64,
    /// Every seq up to this one is in the local store.
    pub synced_seq: u64,
    /// This user's read cursor.
    pub read_seq: u64,
    /// Content messages of others after the read cursor that are stored
    /// locally and not recalled (edits, reactions, … never count).
    pub unread: u64,
    /// v1.1: of those, the ones whose `body.mentions` names this user.
    pub mentions_unread: u64,
    /// v1.1: the pinned messages' mids, oldest pin first.
    pub pins: Vec<String>,
    /// For a DM: the peer's read cursor.
    pub peer_read_seq: u64,
    /// For a DM: the peer's receive cursor.
    pub peer_recv_seq: u64,
    /// The unsent draft, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draft: Option<String>,
    /// The newest message (an own pending one if any), for the list preview.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message: Option<MessageView>,
}

/// A call invitation as mirrored locally. `state` is the server's state,
/// except that a pending invitation past its expiry shows as `expired`
/// even before the server says so.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct InviteView {
    /// The invitation as the server last described it.
    #[serde(flatten)]
    pub invite: Invite,
    /// Whether this user is the callee (an incoming call).
    pub incoming: bool,
    /// Whether the UI should ring: incoming, pending and not expired.
    pub ringing: bool,
    /// Whether this device's own answer made it final: set on the result of
    /// [`crate::Client::answer`] and the event reporting it, never on what
    /// the server relays, so that a UI tells "declined here" (from an OS
    /// notification too) from "answered on another device".
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub answered_here: bool,
}

impl InviteView {
    /// Builds the view of `invite` for user `me` at `now_ms` by the
    /// server's clock (the local clock plus the offset measured at hello),
    /// which is what `expires` is counted in.
    pub fn new(mut invite: Invite, me: &str, now_ms: i64) -> InviteView {
        if invite.state == InviteState::Pending && invite.expires <= now_ms {
            invite.state = InviteState::Expired;
        }
        let incoming = invite.to == me;
        let ringing = incoming && invite.state == InviteState::Pending;
        InviteView { invite, incoming, ringing, answered_here: false }
    }
}

/// A media object uploaded to the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct UploadedMedia {
    /// Media id (`m_...`).
    pub media: String,
    /// Content type.
    pub mime: String,
    /// Size in bytes.
    pub size: u64,
    /// Hex SHA-256 of the bytes.
    #[serde(default)]
    pub sha256: String,
}

/// Milliseconds since the Unix epoch, by the local clock.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
