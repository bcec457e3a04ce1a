//! People: token renewal, presence watches, profiles.

use super::{MAX_WATCHED, OpError, OpResult, SessionCtx};
use crate::auth::AuthError;
use crate::state::{AppState, event_frame};
use courier_proto::{ErrorCode, Event, Presence};
use serde_json::json;
use std::sync::Arc;

/// `renew`: a fresh token for the same user.
pub fn renew(st: &Arc<AppState>, ses: &mut SessionCtx, token: &str) -> OpResult {
    let id = st.auth.verify(token).map_err(|e| match e {
        AuthError::Expired => OpError::new(ErrorCode::Unauthenticated, "the new token is already expired"),
        AuthError::Invalid(why) => OpError::new(ErrorCode::Unauthenticated, why),
    })?;
    if id.user != *ses.user {
        return Err(OpError::forbidden("the new token names a different user"));
    }
    ses.token_exp = id.exp;
    ses.exp_changed = true;
    Ok(json!({"exp": id.exp}))
}

/// `watch`: current presence now, `presence` events on change later.
pub async fn watch(st: &Arc<AppState>, ses: &mut SessionCtx, users: Vec<String>) -> OpResult {
    let new = users.iter().filter(|u| !ses.watched.contains(*u)).count();
    if ses.watched.len() + new > MAX_WATCHED {
        return Err(OpError::new(
            ErrorCode::TooLarge,
            format!("at most {MAX_WATCHED} watched users per session"),
        ));
    }
    st.hub.watch(&ses.handle, users.iter().map(String::as_str));
    ses.watched.extend(users.iter().cloned());
    let seen = st.store.last_seen(&users).await?;
    let online = st.online(&users).await;
    let presence: Vec<Presence> = users
        .into_iter()
        .zip(online)
        .map(|(u, online)| Presence {
            last_seen: if online { None } else { seen.get(&u).copied() },
            online,
            user: u,
        })
        .collect();
    Ok(json!({"presence": presence}))
}

/// `unwatch`.
pub fn unwatch(st: &Arc<AppState>, ses: &mut SessionCtx, users: Vec<String>) -> OpResult {
    st.hub.unwatch(&ses.handle, users.iter().map(String::as_str));
    for u in &users {
        ses.watched.remove(u);
    }
    Ok(json!({}))
}

/// `set_profile`: watchers get a `profile` event.
pub async fn set_profile(
    st: &Arc<AppState>,
    ses: &SessionCtx,
    name: Option<String>,
    avatar: Option<String>,
    status: Option<String>,
) -> OpResult {
    let name = name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    let profile =
        st.store.set_profile(&ses.user, name.as_deref(), avatar.as_deref(), status.as_deref()).await?;
    st.send_to_watchers(&ses.user, &event_frame(&Event::Profile(profile.clone())));
    Ok(serde_json::to_value(profile).expect("serializes"))
}

/// `profiles`: of the users that exist.
pub async fn profiles(st: &Arc<AppState>, users: Vec<String>) -> OpResult {
    Ok(json!({"profiles": st.store.profiles(&users).await?}))
}
