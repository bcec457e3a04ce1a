//! The one stream of typed events the application renders from.
//!
//! Serialized as `{"type": "<snake_case variant>", ...fields}` so a desktop
//! shell can forward each event to the UI as JSON unchanged.

use crate::model::{ConversationView, InviteView, MessageView};
use courier_proto::{Conv, Profile, Role, Target};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// States of the connection manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub enum ConnState {
    /// Not started, or stopped by the application.
    Disconnected,
    /// Dialing for the first time.
    Connecting,
    /// Session up (hello done).
    Connected,
    /// Lost the session (or never got one); trying again after a back-off.
    Reconnecting,
    /// Gave up for good: authentication refused, or replaced by a newer
    /// session of the same device. Needs the application to act.
    Stopped,
}

/// An event for the application.
// Message and conversation views are large, but an event is built once per
// change and serialized as is; boxing them would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub enum ClientEvent {
    /// The connection state changed.
    Connection {
        /// The new state.
        state: ConnState,
        /// The server URL involved.
        #[serde(skip_serializing_if = "Option::is_none")]
        url: Option<String>,
        /// When reconnecting: the back-off before the next attempt.
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_in_ms: Option<u64>,
        /// Why (error text or close reason).
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// The close code that caused it, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        close_code: Option<u16>,
    },
    /// A message appeared in the local store (incoming, or own and pending).
    /// Never a relation (edit, recall, reaction, pin): those show as
    /// [`ClientEvent::MessageUpdated`] of their target.
    MessageAdded {
        /// The message.
        message: MessageView,
    },
    /// A message's delivery status (or seq/mid/ts) changed, or what it
    /// shows: an edit, a recall, reactions, its pin (optimistic ones too,
    /// and their undoing when the server refuses them).
    MessageUpdated {
        /// The message as it is now.
        message: MessageView,
    },
    /// Many messages of one conversation arrived at once (gap filling after
    /// being offline); reload the visible page instead of per-message events.
    HistoryFilled {
        /// The conversation.
        conv: Conv,
        /// How many messages were added.
        added: usize,
    },
    /// A conversation's cursors, unread counts, pinned list or draft changed.
    ConversationUpdated {
        /// The conversation as it is now.
        conversation: ConversationView,
    },
    /// A (re)connect's sync finished: the store holds every message.
    SyncCompleted {
        /// Conversations the server listed.
        conversations: usize,
        /// Messages fetched to fill gaps.
        fetched: usize,
    },
    /// A DM peer's receive/read cursors moved.
    Receipt {
        /// The conversation.
        conv: Conv,
        /// The peer.
        user: String,
        /// Everything up to here reached the peer's device.
        recv_seq: u64,
        /// Everything up to here was read by the peer.
        read_seq: u64,
    },
    /// Someone is typing.
    Typing {
        /// Where.
        conv: Conv,
        /// Who.
        user: String,
    },
    /// A watched user came online or went offline.
    Presence {
        /// The user.
        user: String,
        /// Whether any of their sessions is live.
        online: bool,
        /// When their last session ended (ms).
        #[serde(skip_serializing_if = "Option::is_none")]
        last_seen: Option<i64>,
    },
    /// A profile changed (or was fetched).
    Profile {
        /// The profile.
        profile: Profile,
    },
    /// Channel membership changed.
    Member {
        /// The channel.
        channel: String,
        /// The member.
        user: String,
        /// Joined (true) or left (false).
        joined: bool,
        /// Removed by an owner/admin.
        removed: bool,
        /// v1.1: the member's new role, when this reports a role change.
        #[serde(skip_serializing_if = "Option::is_none")]
        role: Option<Role>,
    },
    /// A call invitation appeared or changed state.
    Invite {
        /// The invitation as mirrored locally.
        invite: InviteView,
    },
    /// An ephemeral signal arrived.
    Signal {
        /// Sender.
        from: String,
        /// As addressed.
        to: Target,
        /// Application payload.
        body: Map<String, Value>,
        /// Server time.
        ts: i64,
    },
    /// The session's token expires soon: call [`crate::Client::renew_token`].
    TokenExpiring {
        /// Expiry, seconds since the epoch.
        exp: i64,
    },
    /// The server closed with "token expired" (4002): the manager waits for
    /// [`crate::Client::renew_token`] before reconnecting.
    TokenRequired,
}

/// A v1.2 call signal, as [`ClientEvent::call_signal`] reads it from a
/// [`ClientEvent::Signal`] to `{"call":iid}` (the event stays a `Signal`, so
/// a UI that forwards signals sees no new kind).
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingCallSignal {
    /// The invitation.
    pub iid: String,
    /// The other call device's user.
    pub from: String,
    /// The decoded body.
    pub signal: courier_proto::call::CallSignal,
    /// Server time.
    pub ts: i64,
}
