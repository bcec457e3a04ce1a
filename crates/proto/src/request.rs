//! Client requests: `{"op": "...", "id": <u64>, ...}`.
//!
//! [`Request::decode`] turns one text frame into a validated request, or into
//! a [`DecodeError`] that already carries the reply the server owes: the
//! request id to echo (if one could be read) and the error code.

use crate::codes::ErrorCode;
use crate::ids::{Conv, Target, is_valid_channel, is_valid_cid, is_valid_user};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Longest profile name, in characters.
pub const MAX_PROFILE_NAME: usize = 64;
/// Longest profile status line, in characters.
pub const MAX_PROFILE_STATUS: usize = 140;
/// Longest avatar reference, in bytes.
pub const MAX_AVATAR: usize = 128;
/// Longest channel title, in characters.
pub const MAX_TITLE: usize = 64;
/// Longest channel topic, in characters.
pub const MAX_TOPIC: usize = 256;
/// Most users in one `watch`, `unwatch` or `profiles` request.
pub const MAX_USERS_PER_REQUEST: usize = 500;
/// Longest device id, in bytes.
pub const MAX_DEVICE: usize = 128;
/// Call invitation time-to-live bounds and default, in seconds.
pub const INVITE_TTL_MIN: u32 = 5;
/// See [`INVITE_TTL_MIN`].
pub const INVITE_TTL_MAX: u32 = 300;
/// See [`INVITE_TTL_MIN`].
pub const INVITE_TTL_DEFAULT: u32 = 60;

/// Message kinds that carry content: those of protocol v1, and v1.2's
/// `call` (a call record).
pub const CONTENT_KINDS: &[&str] = &["text", "image", "file", "custom", "call"];
/// The `outcome` of a v1.2 call record.
pub const CALL_OUTCOMES: &[&str] = &["completed", "failed", "missed", "declined", "canceled"];
/// Longest `duration_s` of a call record: a week.
pub const MAX_CALL_DURATION_S: u64 = 7 * 24 * 3600;
/// Message kinds of protocol v1.1 that point at a content message
/// (`body.target`): edits, recalls, reactions and pins.
pub const RELATION_KINDS: &[&str] = &["edit", "recall", "reaction", "pin"];
/// Longest reaction key, in bytes.
pub const MAX_REACTION_KEY: usize = 32;
/// Most user ids in one text message's `mentions`.
pub const MAX_MENTIONS: usize = 50;

/// Whether `kind` is one of the v1.1 relation kinds.
pub fn is_relation_kind(kind: &str) -> bool {
    RELATION_KINDS.contains(&kind)
}

/// A channel member's role (v1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub enum Role {
    /// The channel's owner (its creator, until ownership is transferred).
    Owner,
    /// May pin, recall any message and remove plain members.
    Admin,
    /// A plain member.
    #[default]
    Member,
}

impl Role {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "owner" => Role::Owner,
            "admin" => Role::Admin,
            "member" => Role::Member,
            _ => return None,
        })
    }

    /// Owner or admin.
    pub fn is_moderator(self) -> bool {
        self != Role::Member
    }
}

/// Why a frame could not be turned into a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct DecodeError {
    /// The request id to echo in the error reply (`null` when unreadable).
    pub id: Option<u64>,
    /// The op named by the frame, when one could be read (rate limiting
    /// counts `send`, `signal`, `invite` and `typing` even when malformed).
    pub op: Option<String>,
    /// `bad_request` or `unsupported`.
    pub code: ErrorCode,
    /// For humans.
    pub message: String,
}

impl DecodeError {
    fn bad(id: Option<u64>, message: impl Into<String>) -> Self {
        DecodeError { id, op: None, code: ErrorCode::BadRequest, message: message.into() }
    }
}

/// A `send` request: a message to a user or a channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendReq {
    /// The recipient: `{"user":..}` or `{"channel":..}`.
    pub to: Target,
    /// Client message id; `(sender, cid)` is unique forever.
    pub cid: String,
    /// `text`, `image`, `file` or `custom`.
    pub kind: String,
    /// The kind's body, a JSON object.
    pub body: Map<String, Value>,
    /// The `mid` of the message this one replies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
}

impl SendReq {
    /// Validates the fields that the protocol constrains without server state.
    ///
    /// # Errors
    /// A human message for a `bad_request` reply.
    pub fn validate(&self) -> Result<(), String> {
        match &self.to {
            Target::User(u) if !is_valid_user(u) => return Err("invalid user id in `to`".into()),
            Target::Channel(c) if !is_valid_channel(c) => {
                return Err("invalid channel name in `to`".into());
            }
            Target::Call(_) => return Err("messages go to a user or a channel".into()),
            _ => {}
        }
        if !is_valid_cid(&self.cid) {
            return Err("cid must be 1-64 printable ASCII characters".into());
        }
        if let Some(r) = &self.reply_to
            && !is_valid_cid(r)
        {
            return Err("invalid reply_to".into());
        }
        validate_body(&self.kind, &self.body)?;
        match call_record_iid(&self.kind, &self.body) {
            Some(iid) if self.cid != format!("call-{iid}") => Err("a call record's cid is call-<iid>".into()),
            _ => Ok(()),
        }
    }

    /// The UTF-8 length of `body` as compact JSON, which `max_body_bytes` limits.
    pub fn body_len(&self) -> usize {
        serde_json::to_vec(&self.body).map(|v| v.len()).unwrap_or(usize::MAX)
    }
}

/// Checks a message body against its kind.
///
/// # Errors
/// A human message for a `bad_request` reply.
pub fn validate_body(kind: &str, body: &Map<String, Value>) -> Result<(), String> {
    let checked: Result<(), String> = match kind {
        "text" => match body.get("text") {
            Some(Value::String(t)) if !t.is_empty() => Ok(()),
            _ => Err("a text message needs a non-empty body.text".into()),
        },
        "image" | "file" => match body.get("media") {
            Some(Value::String(m)) if !m.is_empty() && m.len() <= 128 => Ok(()),
            _ => Err(format!("an {kind} message needs body.media from an upload")),
        },
        "custom" => Ok(()),
        "call" => validate_call(body),
        "edit" => {
            relation_target(body)?;
            match body.get("text") {
                Some(Value::String(t)) if !t.is_empty() => Ok(()),
                _ => Err("an edit needs a non-empty body.text".into()),
            }
        }
        "recall" => relation_target(body),
        "reaction" => {
            relation_target(body)?;
            match body.get("key") {
                Some(Value::String(k)) if !k.is_empty() && k.len() <= MAX_REACTION_KEY => {}
                _ => return Err("a reaction needs body.key of 1-32 bytes".into()),
            }
            relation_on(body)
        }
        "pin" => {
            relation_target(body)?;
            relation_on(body)
        }
        other => Err(format!("unknown message kind `{other}`")),
    };
    checked?;
    if kind == "text" {
        match body.get("mentions") {
            None => {}
            Some(Value::Array(a)) if a.len() <= MAX_MENTIONS && a.iter().all(Value::is_string) => {}
            Some(_) => return Err("body.mentions must be an array of at most 50 user ids".into()),
        }
    }
    Ok(())
}

/// The v1.2 call record body:
/// `{"iid":…,"video":bool,"outcome":…,"duration_s":n}`.
fn validate_call(body: &Map<String, Value>) -> Result<(), String> {
    match body.get("iid") {
        Some(Value::String(i)) if !i.is_empty() && is_valid_cid(&format!("call-{i}")) => {}
        _ => return Err("a call record needs body.iid, an invitation id".into()),
    }
    if !body.get("video").is_some_and(Value::is_boolean) {
        return Err("a call record needs body.video, a boolean".into());
    }
    if !body.get("outcome").and_then(Value::as_str).is_some_and(|o| CALL_OUTCOMES.contains(&o)) {
        return Err(format!("a call record's body.outcome is one of {}", CALL_OUTCOMES.join(", ")));
    }
    match body.get("duration_s").and_then(Value::as_u64) {
        Some(d) if d <= MAX_CALL_DURATION_S => Ok(()),
        _ => Err(format!("a call record needs body.duration_s, 0-{MAX_CALL_DURATION_S} seconds")),
    }
}

/// The invitation a `call` message records (`body.iid`); `None` for other kinds.
pub fn call_record_iid<'a>(kind: &str, body: &'a Map<String, Value>) -> Option<&'a str> {
    if kind == "call" { body.get("iid").and_then(Value::as_str) } else { None }
}

/// `body.target` of a relation kind: the `mid` it points at.
fn relation_target(body: &Map<String, Value>) -> Result<(), String> {
    match body.get("target") {
        Some(Value::String(t)) if is_valid_cid(t) => Ok(()),
        _ => Err("a relation needs body.target, the mid of a message".into()),
    }
}

fn relation_on(body: &Map<String, Value>) -> Result<(), String> {
    match body.get("on") {
        Some(Value::Bool(_)) => Ok(()),
        _ => Err("body.on must be a boolean".into()),
    }
}

/// The `mentions` of a text body: the valid user ids it names, each once,
/// in order (the server further keeps only members of the conversation).
pub fn body_mentions(body: &Map<String, Value>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if let Some(Value::Array(a)) = body.get("mentions") {
        for u in a.iter().filter_map(Value::as_str) {
            if is_valid_user(u) && !out.iter().any(|o| o == u) {
                out.push(u.to_owned());
            }
        }
    }
    out
}

/// The default and largest page of `channels` and `members` (v1.2); a
/// larger `limit` is clamped to it, an absent one means this.
pub const LIST_PAGE: u32 = 200;

/// Every request a client may make. See `docs/protocol.md` for each op.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Opens the session. Must be the first frame.
    Hello { token: String, device: String, client: Option<String> },
    /// Replaces the session's token before it expires.
    Renew { token: String },
    /// Sends a stored message.
    Send(SendReq),
    /// Reads a page of a conversation.
    History { conv: Conv, after: Option<u64>, before: Option<u64>, limit: Option<u32> },
    /// Lists the caller's conversations and pending invitations.
    Sync,
    /// Everything up to `seq` reached this device.
    Ack { conv: Conv, seq: u64 },
    /// Everything up to `seq` was read.
    Read { conv: Conv, seq: u64 },
    /// The caller is typing.
    Typing { conv: Conv },
    /// An ephemeral custom message, not stored.
    Signal { to: Target, body: Map<String, Value> },
    /// Lists public channels, a page at a time (v1.2): names bytewise
    /// after `after` (exclusive), at most `limit` (see [`LIST_PAGE`]).
    Channels { after: Option<String>, limit: Option<u32> },
    /// Creates a channel.
    CreateChannel { channel: String, title: Option<String>, topic: Option<String>, private: bool },
    /// Joins a public channel.
    Join { channel: String },
    /// Leaves a channel.
    Leave { channel: String },
    /// Adds a user to a channel (any member of a private channel may).
    AddMember { channel: String, user: String },
    /// Lists a channel's members, a page at a time (v1.2): user ids
    /// bytewise after `after` (exclusive), at most `limit`.
    Members { channel: String, after: Option<String>, limit: Option<u32> },
    /// Subscribes to presence changes.
    Watch { users: Vec<String> },
    /// Unsubscribes from presence changes.
    Unwatch { users: Vec<String> },
    /// Updates the caller's profile; absent fields are unchanged.
    SetProfile { name: Option<String>, avatar: Option<String>, status: Option<String> },
    /// Reads profiles.
    Profiles { users: Vec<String> },
    /// v1.1: sets a member's role (the owner's alone; `owner` transfers).
    SetRole { channel: String, user: String, role: Role },
    /// v1.1: removes a member (owner: anyone else; admin: plain members).
    RemoveMember { channel: String, user: String },
    /// Invites a user to a call.
    Invite { to: String, content: Map<String, Value>, ttl_s: u32 },
    /// Accepts or refuses an invitation (callee only).
    InviteAnswer { iid: String, accept: bool, response: Option<Map<String, Value>> },
    /// Cancels an invitation (caller only).
    InviteCancel { iid: String },
    /// v1.2: fresh ICE servers (TURN credentials) for a call.
    Ice,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    op: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    id: Option<Value>,
}

#[derive(Deserialize)]
struct HelloF {
    token: String,
    device: String,
    #[serde(default)]
    client: Option<String>,
}
#[derive(Deserialize)]
struct TokenF {
    token: String,
}
#[derive(Deserialize)]
struct HistoryF {
    conv: Conv,
    #[serde(default)]
    after: Option<u64>,
    #[serde(default)]
    before: Option<u64>,
    #[serde(default)]
    limit: Option<u32>,
}
#[derive(Deserialize)]
struct CursorF {
    conv: Conv,
    seq: u64,
}
#[derive(Deserialize)]
struct ConvF {
    conv: Conv,
}
#[derive(Deserialize)]
struct SignalF {
    to: Target,
    body: Map<String, Value>,
}
#[derive(Deserialize)]
struct CreateChannelF {
    channel: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    topic: Option<String>,
    #[serde(default)]
    private: bool,
}
#[derive(Deserialize)]
struct ChannelF {
    channel: String,
}
/// The paging fields of `channels` and `members` (v1.2).
#[derive(Deserialize)]
struct PageF {
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
}
#[derive(Deserialize)]
struct ChannelUserF {
    channel: String,
    user: String,
}
#[derive(Deserialize)]
struct SetRoleF {
    channel: String,
    user: String,
    role: String,
}
#[derive(Deserialize)]
struct UsersF {
    users: Vec<String>,
}
#[derive(Deserialize)]
struct ProfileF {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    avatar: Option<String>,
    #[serde(default)]
    status: Option<String>,
}
#[derive(Deserialize)]
struct InviteF {
    to: String,
    #[serde(default)]
    content: Option<Map<String, Value>>,
    #[serde(default)]
    ttl_s: Option<i64>,
}
#[derive(Deserialize)]
struct AnswerF {
    iid: String,
    accept: bool,
    #[serde(default)]
    response: Option<Map<String, Value>>,
}
#[derive(Deserialize)]
struct IidF {
    iid: String,
}

fn fields<T: DeserializeOwned>(text: &str, id: u64) -> Result<T, DecodeError> {
    serde_json::from_str(text).map_err(|e| DecodeError::bad(Some(id), format!("invalid fields: {e}")))
}

fn check(id: u64, ok: bool, message: &str) -> Result<(), DecodeError> {
    if ok { Ok(()) } else { Err(DecodeError::bad(Some(id), message)) }
}

fn check_users(id: u64, users: &[String]) -> Result<(), DecodeError> {
    check(id, users.len() <= MAX_USERS_PER_REQUEST, "too many users in one request")?;
    check(id, users.iter().all(|u| is_valid_user(u)), "invalid user id")
}

impl Request {
    /// The op name of this request, as on the wire.
    pub fn op(&self) -> &'static str {
        match self {
            Request::Hello { .. } => "hello",
            Request::Renew { .. } => "renew",
            Request::Send(_) => "send",
            Request::History { .. } => "history",
            Request::Sync => "sync",
            Request::Ack { .. } => "ack",
            Request::Read { .. } => "read",
            Request::Typing { .. } => "typing",
            Request::Signal { .. } => "signal",
            Request::Channels { .. } => "channels",
            Request::CreateChannel { .. } => "create_channel",
            Request::Join { .. } => "join",
            Request::Leave { .. } => "leave",
            Request::AddMember { .. } => "add_member",
            Request::Members { .. } => "members",
            Request::Watch { .. } => "watch",
            Request::Unwatch { .. } => "unwatch",
            Request::SetProfile { .. } => "set_profile",
            Request::Profiles { .. } => "profiles",
            Request::SetRole { .. } => "set_role",
            Request::RemoveMember { .. } => "remove_member",
            Request::Invite { .. } => "invite",
            Request::InviteAnswer { .. } => "invite_answer",
            Request::InviteCancel { .. } => "invite_cancel",
            Request::Ice => "ice",
        }
    }

    /// Decodes and validates one text frame.
    ///
    /// # Errors
    /// `bad_request` for a frame that is not a JSON object, lacks `op` or a
    /// u64 `id`, or has malformed fields (then the id is echoed);
    /// `unsupported` for an unknown op.
    pub fn decode(text: &str) -> Result<(u64, Request), DecodeError> {
        // A derived struct would also read a JSON array (`["sync", 1]`).
        if !text.trim_start().starts_with('{') {
            return Err(DecodeError::bad(None, "not a JSON object"));
        }
        let env: Envelope<'_> = serde_json::from_str(text)
            .map_err(|e| DecodeError::bad(None, format!("not a JSON object: {e}")))?;
        let id = match env.id {
            Some(Value::Number(n)) => n.as_u64(),
            _ => None,
        }
        .ok_or_else(|| DecodeError::bad(None, "missing or invalid `id` (an unsigned integer)"))?;
        // The contract answers a frame without `op` like one without `id`:
        // with `"re": null`.
        let op = env.op.ok_or_else(|| DecodeError::bad(None, "missing `op`"))?;
        Self::decode_op(text, id, &op).map(|req| (id, req)).map_err(|mut e| {
            e.op = Some(op.into_owned());
            e
        })
    }

    fn decode_op(text: &str, id: u64, op: &str) -> Result<Request, DecodeError> {
        let req = match op {
            "hello" => {
                let f: HelloF = fields(text, id)?;
                check(id, !f.token.is_empty(), "empty token")?;
                check(
                    id,
                    !f.device.is_empty()
                        && f.device.len() <= MAX_DEVICE
                        && f.device.bytes().all(|b| (0x21..=0x7e).contains(&b)),
                    "device must be 1-128 printable ASCII characters",
                )?;
                Request::Hello { token: f.token, device: f.device, client: f.client }
            }
            "renew" => {
                let f: TokenF = fields(text, id)?;
                check(id, !f.token.is_empty(), "empty token")?;
                Request::Renew { token: f.token }
            }
            "send" => {
                let f: SendReq = fields(text, id)?;
                f.validate().map_err(|m| DecodeError::bad(Some(id), m))?;
                Request::Send(f)
            }
            "history" => {
                let f: HistoryF = fields(text, id)?;
                Request::History { conv: f.conv, after: f.after, before: f.before, limit: f.limit }
            }
            "sync" => Request::Sync,
            "ice" => Request::Ice,
            "ack" | "read" => {
                let f: CursorF = fields(text, id)?;
                if op == "ack" {
                    Request::Ack { conv: f.conv, seq: f.seq }
                } else {
                    Request::Read { conv: f.conv, seq: f.seq }
                }
            }
            "typing" => Request::Typing { conv: fields::<ConvF>(text, id)?.conv },
            "signal" => {
                let f: SignalF = fields(text, id)?;
                check(id, f.to.is_valid(), "invalid signal target")?;
                Request::Signal { to: f.to, body: f.body }
            }
            "channels" => {
                let p: PageF = fields(text, id)?;
                check(
                    id,
                    p.after.as_ref().is_none_or(|a| is_valid_channel(a)),
                    "`after` must be a channel name",
                )?;
                Request::Channels { after: p.after, limit: p.limit }
            }
            "create_channel" => {
                let f: CreateChannelF = fields(text, id)?;
                check(id, is_valid_channel(&f.channel), "invalid channel name")?;
                check(id, f.title.as_ref().is_none_or(|t| t.chars().count() <= MAX_TITLE), "title too long")?;
                check(id, f.topic.as_ref().is_none_or(|t| t.chars().count() <= MAX_TOPIC), "topic too long")?;
                Request::CreateChannel {
                    channel: f.channel,
                    title: f.title,
                    topic: f.topic,
                    private: f.private,
                }
            }
            "join" | "leave" | "members" => {
                let f: ChannelF = fields(text, id)?;
                check(id, is_valid_channel(&f.channel), "invalid channel name")?;
                match op {
                    "join" => Request::Join { channel: f.channel },
                    "leave" => Request::Leave { channel: f.channel },
                    _ => {
                        let p: PageF = fields(text, id)?;
                        check(
                            id,
                            p.after.as_ref().is_none_or(|a| is_valid_user(a)),
                            "`after` must be a user id",
                        )?;
                        Request::Members { channel: f.channel, after: p.after, limit: p.limit }
                    }
                }
            }
            "add_member" | "remove_member" => {
                let f: ChannelUserF = fields(text, id)?;
                check(id, is_valid_channel(&f.channel), "invalid channel name")?;
                check(id, is_valid_user(&f.user), "invalid user id")?;
                if op == "add_member" {
                    Request::AddMember { channel: f.channel, user: f.user }
                } else {
                    Request::RemoveMember { channel: f.channel, user: f.user }
                }
            }
            "set_role" => {
                let f: SetRoleF = fields(text, id)?;
                check(id, is_valid_channel(&f.channel), "invalid channel name")?;
                check(id, is_valid_user(&f.user), "invalid user id")?;
                let role = Role::parse(&f.role)
                    .ok_or_else(|| DecodeError::bad(Some(id), "role must be owner, admin or member"))?;
                Request::SetRole { channel: f.channel, user: f.user, role }
            }
            "watch" | "unwatch" | "profiles" => {
                let f: UsersF = fields(text, id)?;
                check_users(id, &f.users)?;
                match op {
                    "watch" => Request::Watch { users: f.users },
                    "unwatch" => Request::Unwatch { users: f.users },
                    _ => Request::Profiles { users: f.users },
                }
            }
            "set_profile" => {
                let f: ProfileF = fields(text, id)?;
                check(
                    id,
                    f.name.as_ref().is_none_or(|n| n.chars().count() <= MAX_PROFILE_NAME),
                    "name longer than 64 characters",
                )?;
                check(
                    id,
                    f.status.as_ref().is_none_or(|s| s.chars().count() <= MAX_PROFILE_STATUS),
                    "status longer than 140 characters",
                )?;
                check(
                    id,
                    f.avatar
                        .as_ref()
                        .is_none_or(|a| a.is_empty() || (a.len() <= MAX_AVATAR && is_avatar_ref(a))),
                    "avatar must be a media id or an avatar:<n> preset",
                )?;
                Request::SetProfile { name: f.name, avatar: f.avatar, status: f.status }
            }
            "invite" => {
                let f: InviteF = fields(text, id)?;
                check(id, is_valid_user(&f.to), "invalid user id in `to`")?;
                let ttl = f.ttl_s.unwrap_or(i64::from(INVITE_TTL_DEFAULT));
                check(
                    id,
                    (i64::from(INVITE_TTL_MIN)..=i64::from(INVITE_TTL_MAX)).contains(&ttl),
                    "ttl_s must be between 5 and 300",
                )?;
                Request::Invite { to: f.to, content: f.content.unwrap_or_default(), ttl_s: ttl as u32 }
            }
            "invite_answer" => {
                let f: AnswerF = fields(text, id)?;
                check(id, is_valid_cid(&f.iid), "invalid iid")?;
                Request::InviteAnswer { iid: f.iid, accept: f.accept, response: f.response }
            }
            "invite_cancel" => {
                let f: IidF = fields(text, id)?;
                check(id, is_valid_cid(&f.iid), "invalid iid")?;
                Request::InviteCancel { iid: f.iid }
            }
            other => {
                return Err(DecodeError {
                    id: Some(id),
                    op: None,
                    code: ErrorCode::Unsupported,
                    message: format!("unknown op `{}`", truncate(other, 64)),
                });
            }
        };
        Ok(req)
    }
}

/// Whether `a` names an avatar: an `avatar:<n>` preset or a media id.
pub fn is_avatar_ref(a: &str) -> bool {
    if let Some(n) = a.strip_prefix("avatar:") {
        !n.is_empty() && n.len() <= 8 && n.bytes().all(|b| b.is_ascii_digit())
    } else {
        a.starts_with("m_") && is_valid_cid(a)
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Result<(u64, Request), DecodeError> {
        Request::decode(s)
    }

    #[test]
    fn a_frame_must_be_an_object() {
        for frame in [r#"["sync",1]"#, r#" ["hello",1,"dev:a","d"]"#, "7", r#""sync""#] {
            let e = dec(frame).unwrap_err();
            assert_eq!((e.id, e.code), (None, ErrorCode::BadRequest), "{frame}");
        }
        assert!(dec(r#" {"op":"sync","id":1}"#).is_ok());
    }

    #[test]
    fn decodes_a_text_send() {
        let (id, req) = dec(
            r#"{"op":"send","id":7,"to":{"user":"bob"},"cid":"c1","kind":"text","body":{"text":"hi"},"extra":1}"#,
        )
        .unwrap();
        assert_eq!(id, 7);
        let Request::Send(s) = req else { panic!() };
        assert_eq!(s.to, Target::User("bob".into()));
        assert_eq!(s.body_len(), r#"{"text":"hi"}"#.len());
    }

    #[test]
    fn a_call_record_needs_a_valid_body_and_the_cid_of_its_invitation() {
        let send = |cid: &str, body: &str| {
            dec(&format!(
                r#"{{"op":"send","id":5,"to":{{"user":"bob"}},"cid":"{cid}","kind":"call","body":{body}}}"#
            ))
        };
        let good = r#"{"iid":"I1","video":true,"outcome":"completed","duration_s":192}"#;
        assert!(send("call-I1", good).is_ok());
        for (cid, body) in [
            ("call-I2", good),
            ("c1", good),
            ("call-I1", r#"{"iid":"I1","video":1,"outcome":"completed","duration_s":1}"#),
            ("call-I1", r#"{"iid":"I1","video":false,"outcome":"hung","duration_s":1}"#),
            ("call-I1", r#"{"iid":"I1","video":false,"outcome":"missed","duration_s":-1}"#),
            ("call-I1", r#"{"iid":"I1","video":false,"outcome":"missed","duration_s":1.5}"#),
            ("call-I1", r#"{"iid":"I1","video":false,"outcome":"missed","duration_s":604801}"#),
            ("call-", r#"{"iid":"","video":false,"outcome":"missed","duration_s":0}"#),
        ] {
            let e = send(cid, body).unwrap_err();
            assert_eq!((e.id, e.code), (Some(5), ErrorCode::BadRequest), "{cid} {body}");
        }
    }

    #[test]
    fn not_json_or_no_id_is_bad_request_without_id() {
        for f in
            ["nope", "[]", "{}", r#"{"op":"sync"}"#, r#"{"op":"sync","id":-1}"#, r#"{"op":"sync","id":"1"}"#]
        {
            let e = dec(f).unwrap_err();
            assert_eq!((e.id, e.code), (None, ErrorCode::BadRequest), "{f}");
        }
    }

    #[test]
    fn missing_op_and_unknown_op() {
        let e = dec(r#"{"id":3}"#).unwrap_err();
        assert_eq!((e.id, e.code), (None, ErrorCode::BadRequest));
        let e = dec(r#"{"op":"teleport","id":4}"#).unwrap_err();
        assert_eq!((e.id, e.code), (Some(4), ErrorCode::Unsupported));
    }

    #[test]
    fn bad_fields_echo_the_id() {
        for f in [
            r#"{"op":"send","id":5,"to":{"user":"b b"},"cid":"c","kind":"text","body":{"text":"x"}}"#,
            r#"{"op":"send","id":5,"to":{"user":"b"},"cid":"","kind":"text","body":{"text":"x"}}"#,
            r#"{"op":"send","id":5,"to":{"user":"b"},"cid":"c","kind":"text","body":{"text":""}}"#,
            r#"{"op":"send","id":5,"to":{"user":"b"},"cid":"c","kind":"image","body":{}}"#,
            r#"{"op":"send","id":5,"to":{"user":"b"},"cid":"c","kind":"poem","body":{}}"#,
            r#"{"op":"send","id":5,"to":{"call":"x"},"cid":"c","kind":"text","body":{"text":"x"}}"#,
            r#"{"op":"history","id":5,"conv":"dm:bob:alice"}"#,
            r#"{"op":"invite","id":5,"to":"bob","ttl_s":4}"#,
            r#"{"op":"invite","id":5,"to":"bob","ttl_s":301}"#,
            r#"{"op":"join","id":5,"channel":"no spaces"}"#,
            r#"{"op":"set_profile","id":5,"avatar":"http://evil"}"#,
        ] {
            let e = dec(f).unwrap_err();
            assert_eq!((e.id, e.code), (Some(5), ErrorCode::BadRequest), "{f}");
        }
    }

    #[test]
    fn channels_and_members_page_fields_are_optional_and_checked() {
        assert_eq!(
            dec(r#"{"op":"channels","id":1}"#).unwrap().1,
            Request::Channels { after: None, limit: None }
        );
        assert_eq!(
            dec(r#"{"op":"members","id":1,"channel":"lobby","after":"bob","limit":5}"#).unwrap().1,
            Request::Members { channel: "lobby".into(), after: Some("bob".into()), limit: Some(5) }
        );
        for f in [
            r#"{"op":"channels","id":5,"after":"no spaces"}"#,
            r#"{"op":"channels","id":5,"limit":-1}"#,
            r#"{"op":"members","id":5,"channel":"lobby","after":""}"#,
            r#"{"op":"members","id":5,"channel":"lobby","limit":"9"}"#,
        ] {
            let e = dec(f).unwrap_err();
            assert_eq!((e.id, e.code), (Some(5), ErrorCode::BadRequest), "{f}");
        }
    }

    #[test]
    fn invite_ttl_defaults_to_sixty() {
        let (_, r) = dec(r#"{"op":"invite","id":1,"to":"bob"}"#).unwrap();
        assert_eq!(r, Request::Invite { to: "bob".into(), content: Map::new(), ttl_s: 60 });
    }

    #[test]
    fn avatar_refs() {
        assert!(is_avatar_ref("avatar:3"));
        assert!(is_avatar_ref("m_01JABC"));
        assert!(!is_avatar_ref("avatar:"));
        assert!(!is_avatar_ref("https://x"));
    }
}
