//! Request handlers, one module per family of ops. Each handler checks
//! access, talks to storage, fans events out through the hub, and returns
//! the `ok` payload or an [`OpError`] that becomes the `err` reply.

pub mod channels;
pub mod invites;
pub mod messages;
pub mod people;
pub mod relations;

use crate::hub::SessionHandle;
use crate::state::AppState;
use crate::store::StoreError;
use courier_proto::{Conv, ErrBody, ErrorCode, Request};
use serde::Serialize;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::time::Instant;

/// An error reply (boxed: results stay small on the success path).
#[derive(Debug)]
pub struct OpError(pub Box<ErrBody>);

impl OpError {
    /// An error with a code and a human message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        OpError(Box::new(ErrBody::new(code, message)))
    }

    /// `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// `conflict`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }
}

impl From<StoreError> for OpError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "storage failure");
        OpError::new(ErrorCode::Internal, "storage is unavailable; retry shortly")
    }
}

/// The result of a handler.
pub type OpResult = Result<Value, OpError>;

/// Bytes of `v` as compact JSON, counted without building the text.
pub(crate) fn json_len<T: Serialize + ?Sized>(v: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut n = Count(0);
    serde_json::to_writer(&mut n, v).expect("serializes");
    n.0
}

/// `too_large` when `value` (a message body, an invitation's content, an
/// answer's response: the request's `field`) takes more than
/// `max_body_bytes` as compact JSON.
pub(crate) fn check_body_size<T: Serialize + ?Sized>(
    st: &AppState,
    field: &str,
    value: &T,
) -> Result<(), OpError> {
    let max = st.config.limits.max_body_bytes;
    if json_len(value) > max {
        return Err(OpError::new(ErrorCode::TooLarge, format!("{field} exceeds max_body_bytes ({max})")));
    }
    Ok(())
}

/// The part of a session's state that handlers read and change.
pub struct SessionCtx {
    /// The registered handle (key, user, device, queue).
    pub handle: Arc<SessionHandle>,
    /// The user, for convenience.
    pub user: Arc<str>,
    /// Token expiry (seconds since the epoch); `None` never expires.
    pub token_exp: Option<i64>,
    /// Set by `renew` so the session re-arms its expiry timers.
    pub exp_changed: bool,
    /// Users whose presence this session watches.
    pub watched: HashSet<String>,
    /// When this session's last `typing` per conversation was forwarded.
    pub typing_last: HashMap<Conv, Instant>,
}

/// Most users one session may watch.
pub const MAX_WATCHED: usize = 2000;

/// Runs one authenticated request. `hello` never reaches here.
pub async fn dispatch(st: &Arc<AppState>, ses: &mut SessionCtx, req: Request) -> OpResult {
    match req {
        Request::Hello { .. } => Err(OpError::bad_request("already authenticated")),
        Request::Renew { token } => people::renew(st, ses, &token),
        Request::Send(s) => messages::send(st, ses, s).await,
        Request::History { conv, after, before, limit } => {
            messages::history(st, ses, conv, after, before, limit).await
        }
        Request::Sync => messages::sync(st, ses).await,
        Request::Ack { conv, seq } => messages::cursor(st, ses, conv, Some(seq), None).await,
        Request::Read { conv, seq } => messages::cursor(st, ses, conv, None, Some(seq)).await,
        Request::Typing { conv } => messages::typing(st, ses, conv).await,
        Request::Signal { to, body } => messages::signal(st, ses, to, body).await,
        Request::Channels { after, limit } => channels::list(st, after.as_deref(), limit).await,
        Request::CreateChannel { channel, title, topic, private } => {
            channels::create(st, ses, channel, title, topic, private).await
        }
        Request::Join { channel } => channels::join(st, ses, &channel).await,
        Request::Leave { channel } => channels::leave(st, ses, &channel).await,
        Request::AddMember { channel, user } => channels::add_member(st, ses, &channel, &user).await,
        Request::Members { channel, after, limit } => {
            channels::members(st, ses, &channel, after.as_deref(), limit).await
        }
        Request::SetRole { channel, user, role } => channels::set_role(st, ses, &channel, &user, role).await,
        Request::RemoveMember { channel, user } => channels::remove_member(st, ses, &channel, &user).await,
        Request::Watch { users } => people::watch(st, ses, users).await,
        Request::Unwatch { users } => people::unwatch(st, ses, users),
        Request::SetProfile { name, avatar, status } => {
            people::set_profile(st, ses, name, avatar, status).await
        }
        Request::Profiles { users } => people::profiles(st, users).await,
        Request::Invite { to, content, ttl_s } => invites::invite(st, ses, to, content, ttl_s).await,
        Request::InviteAnswer { iid, accept, response } => {
            invites::answer(st, ses, &iid, accept, response).await
        }
        Request::InviteCancel { iid } => invites::cancel(st, ses, &iid).await,
        Request::Ice => Ok(serde_json::to_value(courier_proto::IceOk {
            ice_servers: crate::ice::servers_now(&st.config, &ses.user),
        })
        .expect("plain struct")),
    }
}
