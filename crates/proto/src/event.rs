//! What a server sends: replies to requests and pushed events, and the
//! payload types they share.

use crate::codes::ErrorCode;
use crate::ids::{Conv, Target};
use crate::request::Role;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A stored message, as in the `msg` event and in `history` pages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Msg {
    /// The conversation.
    pub conv: Conv,
    /// Position in the conversation: 1, 2, 3… with no gaps.
    pub seq: u64,
    /// Server message id.
    pub mid: String,
    /// The sender's client message id.
    pub cid: String,
    /// The sender, set by the server from the session.
    pub from: String,
    /// The recipient as the sender addressed it.
    pub to: Target,
    /// `text`, `image`, `file` or `custom`.
    pub kind: String,
    /// The kind's body.
    pub body: Map<String, Value>,
    /// Server time of storage, ms since the Unix epoch.
    pub ts: i64,
    /// The `mid` this message replies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// v1.1 aggregate in `history`: the `ts` of the newest edit (whose text
    /// is then `body.text`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited: Option<i64>,
    /// v1.1 aggregate in `history`: per reaction key, the users with it on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reactions: BTreeMap<String, Vec<String>>,
    /// v1.1 aggregate in `history`: recalled (the body is then `{}`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recalled: bool,
    /// v1.1 aggregate in `history`: when it was pinned, while pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<i64>,
}

impl Msg {
    /// A message with no v1.1 aggregates.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        conv: Conv,
        seq: u64,
        mid: String,
        cid: String,
        from: String,
        to: Target,
        kind: String,
        body: Map<String, Value>,
        ts: i64,
        reply_to: Option<String>,
    ) -> Msg {
        Msg {
            conv,
            seq,
            mid,
            cid,
            from,
            to,
            kind,
            body,
            ts,
            reply_to,
            edited: None,
            reactions: BTreeMap::new(),
            recalled: false,
            pinned: None,
        }
    }

    /// For a relation kind: the `mid` it points at.
    pub fn target(&self) -> Option<&str> {
        if crate::request::is_relation_kind(&self.kind) {
            self.body.get("target").and_then(Value::as_str)
        } else {
            None
        }
    }
}

/// Limits a server announces in the `hello` ok.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest text frame, in bytes; larger closes the socket with 1009.
    pub max_frame_bytes: usize,
    /// Largest message body as compact JSON; larger is `too_large`.
    pub max_body_bytes: usize,
    /// Token-bucket refill rate for send, signal, invite and typing.
    pub send_per_sec: u32,
    /// Token-bucket capacity.
    pub send_burst: u32,
    /// Largest (and default) `history` page.
    pub history_page: u32,
    /// v1.1: seconds after a message's `ts` during which its sender may edit it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edit_window_s: Option<u64>,
    /// v1.1: seconds after a message's `ts` during which its sender may recall it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recall_window_s: Option<u64>,
    /// v1.2: most distinct reaction keys on one message (`limit_reached`,
    /// `err.limit = "reaction_keys"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reaction_keys: Option<u32>,
    /// v1.2: most reaction keys one user has on one message
    /// (`reactions_per_user`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reactions_per_user: Option<u32>,
    /// v1.2: most channels one user creates per UTC day (`channels_created`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels_created: Option<u32>,
    /// v1.2: most live sessions per user (`sessions`; the `hello` over it is
    /// refused and closed 4029).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<u32>,
    /// v1.2: most bytes one user uploads per UTC day (`upload_bytes_day`,
    /// HTTP 429).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_bytes_day: Option<u64>,
    /// Most call invitations one user may have pending as caller at once
    /// (`pending_invites`; an answer, a cancel or the expiry frees one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_invites: Option<u32>,
    /// Most pinned messages in one conversation (`limit_reached`,
    /// `err.limit = "pins"`; an extension: every `sync` row lists its pins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pins: Option<u32>,
}

/// v1.2 reference default of [`Limits::reaction_keys`].
pub const DEFAULT_REACTION_KEYS: u32 = 50;
/// v1.2 reference default of [`Limits::reactions_per_user`].
pub const DEFAULT_REACTIONS_PER_USER: u32 = 20;
/// v1.2 reference default of [`Limits::channels_created`].
pub const DEFAULT_CHANNELS_CREATED: u32 = 50;
/// v1.2 reference default of [`Limits::sessions`].
pub const DEFAULT_SESSIONS: u32 = 32;
/// v1.2 reference default of [`Limits::upload_bytes_day`] (1 GiB).
pub const DEFAULT_UPLOAD_BYTES_DAY: u64 = 1 << 30;
/// Reference default of [`Limits::pending_invites`].
pub const DEFAULT_PENDING_INVITES: u32 = 20;
/// Reference default of [`Limits::pins`].
pub const DEFAULT_PINS: u32 = 100;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: 65536,
            max_body_bytes: 32768,
            send_per_sec: 20,
            send_burst: 50,
            history_page: 200,
            edit_window_s: Some(172_800),
            recall_window_s: Some(86_400),
            reaction_keys: Some(DEFAULT_REACTION_KEYS),
            reactions_per_user: Some(DEFAULT_REACTIONS_PER_USER),
            channels_created: Some(DEFAULT_CHANNELS_CREATED),
            sessions: Some(DEFAULT_SESSIONS),
            upload_bytes_day: Some(DEFAULT_UPLOAD_BYTES_DAY),
            pending_invites: Some(DEFAULT_PENDING_INVITES),
            pins: Some(DEFAULT_PINS),
        }
    }
}

/// The ok of `hello`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HelloOk {
    /// The authenticated user id.
    pub user: String,
    /// This session's id.
    pub session: String,
    /// Server clock, ms since the Unix epoch.
    pub server_time: i64,
    /// Ping interval; silence for `2 × heartbeat_ms + 5 s` is death.
    pub heartbeat_ms: u64,
    /// The server's limits.
    pub limits: Limits,
    /// Optional protocol features beyond v1.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
    /// v1.2: STUN/TURN servers for calls (empty when none are configured).
    #[serde(default)]
    pub ice_servers: Vec<IceServer>,
}

/// v1.2: one entry of `ice_servers` (a WebRTC `RTCIceServer`). STUN entries
/// have no credentials; TURN entries carry time-limited REST credentials,
/// which clients treat as opaque.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct IceServer {
    /// `stun:`, `turn:` or `turns:` URLs (always an array on the wire;
    /// a single string is accepted too).
    #[serde(deserialize_with = "one_or_many")]
    pub urls: Vec<String>,
    /// TURN only: `<expiry in Unix seconds>:<user>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN only: base64(HMAC-SHA1(secret, username)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// v1.2: the ok of `ice`: fresh `ice_servers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceOk {
    /// As in the `hello` ok.
    pub ice_servers: Vec<IceServer>,
}

/// The ok of `invite`, `invite_answer` and `invite_cancel`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InviteOk {
    /// The invitation after the op.
    pub invite: Invite,
    /// v1.2: the session that sent the op is a call device of the
    /// invitation (the ok of an `invite` that rings, and of an answer that
    /// accepts). Absent otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub call_device: bool,
}

/// `urls` as an array, or a single string (protocol §12: clients accept both).
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// The ok of `send` (and of `POST /v1/push`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendOk {
    /// The conversation the message was stored in.
    pub conv: Conv,
    /// Its sequence number.
    pub seq: u64,
    /// Its server id.
    pub mid: String,
    /// Its server timestamp.
    pub ts: i64,
    /// True when this `(sender, cid)` was stored before: nothing was delivered again.
    pub dup: bool,
}

/// The ok of `history`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryOk {
    /// Messages in ascending `seq`.
    pub messages: Vec<Msg>,
    /// Whether more exist in the paging direction.
    pub more: bool,
}

/// One conversation in the `sync` ok.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncConv {
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
    /// Highest seq stored (0 when empty).
    pub last_seq: u64,
    /// Timestamp of that message (0 when empty).
    pub last_ts: i64,
    /// The caller's read cursor.
    pub read_seq: u64,
    /// For a DM: the peer's read cursor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_read_seq: Option<u64>,
    /// For a DM: the peer's receive cursor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_recv_seq: Option<u64>,
    /// v1.1: content messages after `read_seq`, not the user's own, not recalled.
    #[serde(default)]
    pub unread: u64,
    /// v1.1: of those, the ones that mention the user.
    #[serde(default)]
    pub mentions_unread: u64,
    /// v1.1: `mid`s of the pinned messages, oldest pin first.
    #[serde(default)]
    pub pins: Vec<String>,
}

/// The ok of `sync`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncOk {
    /// Every conversation the user belongs to.
    pub conversations: Vec<SyncConv>,
    /// Pending invitations to or from the user.
    pub invites: Vec<Invite>,
    /// Extension: invitations to or from the user that reached a final
    /// state recently (created within the last 10 minutes), so a device
    /// that was offline when one was answered or canceled learns the
    /// outcome. v1 clients ignore the field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_invites: Vec<Invite>,
}

/// A public channel in the `channels` ok.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ChannelInfo {
    /// Its name.
    pub channel: String,
    /// Display title.
    pub title: String,
    /// Topic line.
    pub topic: String,
    /// Whether it is private (only members see it).
    pub private: bool,
    /// Member count.
    pub members: u64,
}

/// A member in the `members` ok.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct MemberInfo {
    /// The member.
    pub user: String,
    /// Whether any of their sessions is live.
    pub online: bool,
    /// v1.1: the member's role.
    #[serde(default)]
    pub role: Role,
}

/// A presence row (in the `watch` ok and the `presence` event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Presence {
    /// The user.
    pub user: String,
    /// Whether any of their sessions is live.
    pub online: bool,
    /// When their last session ended (ms); absent if never seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<i64>,
}

/// A user's public profile.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Profile {
    /// The user.
    pub user: String,
    /// Display name (≤ 64 characters).
    pub name: String,
    /// Media id or `avatar:<n>` preset; empty for none.
    pub avatar: String,
    /// Status line (≤ 140 characters).
    pub status: String,
}

/// States of a call invitation. Every state but `pending` is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub enum InviteState {
    /// Ringing.
    Pending,
    /// The callee accepted.
    Accepted,
    /// The callee refused.
    Refused,
    /// The caller canceled.
    Canceled,
    /// The time-to-live elapsed.
    Expired,
    /// Could not be created (e.g. unknown callee).
    Failed,
}

impl InviteState {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            InviteState::Pending => "pending",
            InviteState::Accepted => "accepted",
            InviteState::Refused => "refused",
            InviteState::Canceled => "canceled",
            InviteState::Expired => "expired",
            InviteState::Failed => "failed",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<InviteState> {
        Some(match s {
            "pending" => InviteState::Pending,
            "accepted" => InviteState::Accepted,
            "refused" => InviteState::Refused,
            "canceled" => InviteState::Canceled,
            "expired" => InviteState::Expired,
            "failed" => InviteState::Failed,
            _ => return None,
        })
    }

    /// Whether the state is locked.
    pub fn is_final(self) -> bool {
        self != InviteState::Pending
    }
}

/// A call invitation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Invite {
    /// Invitation id.
    pub iid: String,
    /// The caller.
    pub from: String,
    /// The callee.
    pub to: String,
    /// Where the call continues: `call-<iid>`.
    pub room: String,
    /// Application content from the caller.
    pub content: Map<String, Value>,
    /// Current state.
    pub state: InviteState,
    /// Creation time (ms).
    pub created: i64,
    /// Expiry time (ms).
    pub expires: i64,
    /// Whether a callee session has received it.
    pub received: bool,
    /// Why it failed, for `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The callee's response content, once answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Map<String, Value>>,
}

/// A pushed server event: `{"ev": "...", ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub enum Event {
    /// A new message in one of the user's conversations.
    Msg(Msg),
    /// A DM peer's receive/read cursors moved.
    Receipt { conv: Conv, user: String, recv_seq: u64, read_seq: u64 },
    /// The user read up to `seq` on another of their sessions.
    Read { conv: Conv, seq: u64 },
    /// Someone is typing.
    Typing { conv: Conv, user: String },
    /// An ephemeral signal.
    Signal { from: String, to: Target, body: Map<String, Value>, ts: i64 },
    /// Channel membership changed. v1.1: `removed` when an owner or admin
    /// removed the user; `role` (an extension) when a member's role changed
    /// (then `joined` is true).
    Member {
        channel: String,
        user: String,
        joined: bool,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        removed: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        role: Option<Role>,
    },
    /// A watched user's presence changed.
    Presence(Presence),
    /// A watched user's profile changed.
    Profile(Profile),
    /// A new invitation for the callee.
    Invite { invite: Invite },
    /// An invitation changed (received, answered, canceled, expired).
    InviteState { invite: Invite },
    /// The session's token expires at `exp` (seconds); `renew` before then.
    TokenExpiring { exp: i64 },
}

/// The error object of an error reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrBody {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// For humans.
    pub message: String,
    /// With `rate_limited`: when to retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// With `invite_final`: the invitation's final state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite: Option<Invite>,
    /// v1.2, with `limit_reached`: which cap (see [`Limits`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

impl ErrBody {
    /// An error with just a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrBody { code, message: message.into(), retry_after_ms: None, invite: None, limit: None }
    }

    /// v1.2: `limit_reached` naming the cap `limit`.
    pub fn limit(limit: &str, message: impl Into<String>) -> Self {
        ErrBody { limit: Some(limit.to_owned()), ..ErrBody::new(ErrorCode::LimitReached, message) }
    }
}

/// A reply: `{"re": id, "ok": {...}}` or `{"re": id|null, "err": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// The request id (null when the request's id could not be read).
    pub re: Option<u64>,
    /// The result on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok: Option<Value>,
    /// The error on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub err: Option<ErrBody>,
}

impl Reply {
    /// Encodes a success reply.
    pub fn ok_json<T: Serialize>(re: u64, ok: &T) -> String {
        #[derive(Serialize)]
        struct OkFrame<'a, T> {
            re: u64,
            ok: &'a T,
        }
        serde_json::to_string(&OkFrame { re, ok }).expect("reply serializes")
    }

    /// Encodes an error reply.
    pub fn err_json(re: Option<u64>, err: &ErrBody) -> String {
        #[derive(Serialize)]
        struct ErrFrame<'a> {
            re: Option<u64>,
            err: &'a ErrBody,
        }
        serde_json::to_string(&ErrFrame { re, err }).expect("reply serializes")
    }
}

/// Anything a server sends, as a client decodes it.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerFrame {
    /// A reply to a request (boxed: an error can carry a whole invitation).
    Reply(Box<Reply>),
    /// A pushed event.
    Event(Box<Event>),
    /// An event this client version does not know (forward compatibility).
    UnknownEvent(String),
}

impl ServerFrame {
    /// Decodes one text frame from a server.
    ///
    /// # Errors
    /// When the frame is neither a reply nor an event.
    pub fn decode(text: &str) -> Result<ServerFrame, serde_json::Error> {
        #[derive(Deserialize)]
        struct Probe {
            #[serde(default)]
            ev: Option<String>,
        }
        let probe: Probe = serde_json::from_str(text)?;
        match probe.ev {
            Some(ev) => match serde_json::from_str::<Event>(text) {
                Ok(e) => Ok(ServerFrame::Event(Box::new(e))),
                Err(_) if !KNOWN_EVENTS.contains(&ev.as_str()) => Ok(ServerFrame::UnknownEvent(ev)),
                Err(e) => Err(e),
            },
            None => Ok(ServerFrame::Reply(Box::new(serde_json::from_str(text)?))),
        }
    }
}

const KNOWN_EVENTS: &[&str] = &[
    "msg",
    "receipt",
    "read",
    "typing",
    "signal",
    "member",
    "presence",
    "profile",
    "invite",
    "invite_state",
    "token_expiring",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msg_event_has_the_wire_shape() {
        let m = Msg::new(
            Conv::dm("alice", "bob"),
            42,
            "m1".into(),
            "c1".into(),
            "alice".into(),
            Target::User("bob".into()),
            "text".into(),
            serde_json::from_str(r#"{"text":"hi"}"#).unwrap(),
            5,
            None,
        );
        let s = serde_json::to_string(&Event::Msg(m.clone())).unwrap();
        assert_eq!(
            s,
            r#"{"ev":"msg","conv":"dm:alice:bob","seq":42,"mid":"m1","cid":"c1","from":"alice","to":{"user":"bob"},"kind":"text","body":{"text":"hi"},"ts":5}"#
        );
        assert_eq!(ServerFrame::decode(&s).unwrap(), ServerFrame::Event(Box::new(Event::Msg(m))));
    }

    #[test]
    fn invite_ok_names_a_call_device_only_when_it_is_one() {
        let inv: Invite = serde_json::from_value(serde_json::json!({"iid":"i1","from":"a","to":"b",
            "room":"call-i1","content":{},"state":"pending","created":1,"expires":2,"received":false}))
        .unwrap();
        let ok = InviteOk { invite: inv.clone(), call_device: true };
        let v = serde_json::to_value(&ok).unwrap();
        assert_eq!(v["call_device"], true);
        assert_eq!(serde_json::from_value::<InviteOk>(v).unwrap(), ok);
        let plain = serde_json::to_value(InviteOk { invite: inv, call_device: false }).unwrap();
        assert!(plain.get("call_device").is_none(), "absent when false: {plain}");
        assert!(!serde_json::from_value::<InviteOk>(plain).unwrap().call_device);
    }

    #[test]
    fn replies_round_trip() {
        let s = Reply::ok_json(3, &serde_json::json!({"a":1}));
        assert_eq!(s, r#"{"re":3,"ok":{"a":1}}"#);
        let e = Reply::err_json(None, &ErrBody::new(ErrorCode::BadRequest, "x"));
        assert_eq!(e, r#"{"re":null,"err":{"code":"bad_request","message":"x"}}"#);
        match ServerFrame::decode(&e).unwrap() {
            ServerFrame::Reply(r) => assert_eq!(r.err.unwrap().code, ErrorCode::BadRequest),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_events_are_tolerated() {
        assert_eq!(
            ServerFrame::decode(r#"{"ev":"aurora","x":1}"#).unwrap(),
            ServerFrame::UnknownEvent("aurora".into())
        );
    }

    #[test]
    fn member_event_omits_removed_when_false() {
        let e =
            Event::Member { channel: "c".into(), user: "u".into(), joined: true, removed: false, role: None };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"ev":"member","channel":"c","user":"u","joined":true}"#
        );
    }

    #[test]
    fn member_event_carries_a_changed_role() {
        let e = Event::Member {
            channel: "c".into(),
            user: "u".into(),
            joined: true,
            removed: false,
            role: Some(Role::Admin),
        };
        let s = serde_json::to_string(&e).unwrap();
        assert_eq!(s, r#"{"ev":"member","channel":"c","user":"u","joined":true,"role":"admin"}"#);
        assert_eq!(ServerFrame::decode(&s).unwrap(), ServerFrame::Event(Box::new(e)));
    }
}
