//! People: token renewal, presence watches, profiles.

use super::{MAX_WATCHED, OpError, OpResult, SessionCtx};
use crate::auth::AuthError;
use crate::hub::VIEWS_MARKER;
use crate::state::{AppState, event_frame};
use courier_proto::{Conv, ErrorCode, Event, Presence};
use serde_json::json;
use std::collections::{HashMap, HashSet};
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
///
/// Presence privacy (v1.2): a user's presence and `last_seen` show only to
/// users who share a conversation with them ([`Store::shares_conversation`]);
/// to anyone else they are offline, without `last_seen`, here and in later
/// events. The verdict is kept with each watch entry in the hub and decided
/// again when a conversation the two could share changes (see
/// [`views_changed`]), so presence events cost no query.
///
/// [`Store::shares_conversation`]: crate::store::ChannelStore::shares_conversation
pub async fn watch(st: &Arc<AppState>, ses: &mut SessionCtx, users: Vec<String>) -> OpResult {
    // Each user once (the answer too): a request naming one user 500 times
    // is not 500 checks for one token.
    let mut named = HashSet::new();
    let users: Vec<String> = users.into_iter().filter(|u| named.insert(u.clone())).collect();
    let new = users.iter().filter(|u| !ses.watched.contains(*u)).count();
    if ses.watched.len() + new > MAX_WATCHED {
        return Err(OpError::new(
            ErrorCode::TooLarge,
            format!("at most {MAX_WATCHED} watched users per session"),
        ));
    }
    start_refresher(st);
    let shared = st.store.shares_conversation(&ses.user, &users).await?;
    st.hub.watch(&ses.handle, users.iter().map(|u| (u.as_str(), shared.contains(u))));
    ses.watched.extend(users.iter().cloned());
    let seen = st.store.last_seen(&users).await?;
    let online = st.online(&users).await;
    let presence: Vec<Presence> = users
        .into_iter()
        .zip(online)
        .map(|(u, online)| {
            if shared.contains(&u) {
                Presence { last_seen: if online { None } else { seen.get(&u).copied() }, online, user: u }
            } else {
                hidden(u)
            }
        })
        .collect();
    Ok(json!({"presence": presence}))
}

/// What a user who shares no conversation with `user` sees.
fn hidden(user: String) -> Presence {
    Presence { user, online: false, last_seen: None }
}

/// A conversation `users` are in changed (a channel membership, a DM's
/// second writer): every node decides again the watches in which one of
/// them watches or is watched, and tells each watcher whose view changed
/// with a `presence` event. Travels the watcher path of the cluster bus.
pub fn views_changed(st: &AppState, users: &[&str]) {
    let Some(first) = users.first() else { return };
    let frame: Arc<str> = Arc::from(json!({"ev": "_views", "users": users}).to_string());
    debug_assert!(frame.starts_with(VIEWS_MARKER));
    st.send_to_watchers(first, &frame);
}

/// After a DM message from `from` is stored: the first time both parties
/// have written, their views of each other change. Costs a query only
/// for each party's first message the node sees and until the DM is known
/// to be two-sided (both memoised per node), and runs off the sender's path.
pub fn dm_written(st: &Arc<AppState>, conv: &Conv, from: &str) {
    let Some(peer) = conv.peer_of(from).filter(|p| *p != from) else { return };
    let key = conv.to_string();
    if st.hub.views.is_two_sided(&key) || st.hub.views.check_writer_once(&key, from) {
        return;
    }
    let (st, from, peer) = (st.clone(), from.to_owned(), peer.to_owned());
    tokio::spawn(async move {
        match st.store.shares_conversation(&from, std::slice::from_ref(&peer)).await {
            Ok(shared) if shared.contains(&peer) => {
                st.hub.views.set_two_sided(&key);
                views_changed(&st, &[&from, &peer]);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(%from, %peer, error = %e, "could not check a DM for presence privacy"),
        }
    });
}

/// Starts this node's verdict refresher once (at its first `watch`: until
/// then no watch entry exists that could need deciding).
fn start_refresher(st: &Arc<AppState>) {
    if !st.hub.views.start() {
        return;
    }
    let weak = Arc::downgrade(st);
    let hub = st.hub.clone();
    let mut shutdown = st.shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = hub.views.notify.notified() => {}
                _ = shutdown.changed() => return,
            }
            let Some(st) = weak.upgrade() else { return };
            let users = hub.views.take();
            if !users.is_empty()
                && let Err(e) = refresh(&st, &users).await
            {
                tracing::warn!(error = %e, "could not decide presence visibility again");
            }
        }
    });
}

/// Decides again every local watch entry involving `users`, and sends a
/// `presence` event to each watcher whose verdict flipped: the real
/// presence when it now may see it, offline without `last_seen` when not.
async fn refresh(st: &AppState, users: &HashSet<String>) -> Result<(), crate::store::StoreError> {
    let entries = st.hub.watches_involving(users);
    let mut by_watcher: HashMap<Arc<str>, Vec<String>> = HashMap::new();
    for (s, target, _) in &entries {
        by_watcher.entry(s.user.clone()).or_default().push(target.clone());
    }
    let mut verdicts: HashMap<Arc<str>, HashSet<String>> = HashMap::new();
    for (watcher, mut targets) in by_watcher {
        targets.sort();
        targets.dedup();
        let shared = st.store.shares_conversation(&watcher, &targets).await?;
        verdicts.insert(watcher, shared);
    }
    for (s, target, was) in entries {
        let now = verdicts.get(&s.user).is_some_and(|v| v.contains(&target));
        if now == was || !st.hub.set_visible(&s, &target, now) {
            continue;
        }
        let presence = if now {
            let online = st.online(std::slice::from_ref(&target)).await[0];
            let last_seen = if online {
                None
            } else {
                st.store.last_seen(std::slice::from_ref(&target)).await?.get(&target).copied()
            };
            Presence { user: target, online, last_seen }
        } else {
            hidden(target)
        };
        s.push(&event_frame(&Event::Presence(presence)));
    }
    Ok(())
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
