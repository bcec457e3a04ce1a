//! Channels: list, create, join, leave, add members, list members.
//!
//! A channel that does not exist and a private channel the caller is not in
//! answer `forbidden` alike, so guessing names reveals nothing.

use super::{OpError, OpResult, SessionCtx};
use crate::clock::now_ms;
use crate::hub::ChannelCache;
use crate::state::{AppState, event_frame};
use crate::store::NewChannel;
use courier_proto::{Conv, Event, MemberInfo};
use serde_json::json;
use std::sync::Arc;

const HIDDEN: &str = "no such channel, or it is private";

/// `channels`: the public channels.
pub async fn list(st: &Arc<AppState>) -> OpResult {
    Ok(json!({"channels": st.store.public_channels().await?}))
}

/// `create_channel`: the creator becomes the first member.
pub async fn create(
    st: &Arc<AppState>,
    ses: &SessionCtx,
    channel: String,
    title: Option<String>,
    topic: Option<String>,
    private: bool,
) -> OpResult {
    let created = st
        .store
        .create_channel(NewChannel {
            title: title.filter(|t| !t.trim().is_empty()).unwrap_or_else(|| channel.clone()),
            topic: topic.unwrap_or_default(),
            name: channel.clone(),
            private,
            creator: Some(ses.user.to_string()),
            now: now_ms(),
        })
        .await?;
    if !created {
        return Err(OpError::new(courier_proto::ErrorCode::Conflict, "a channel with this name exists"));
    }
    let entry = st.channel_entry(&channel).await?.ok_or_else(|| OpError::not_found("channel vanished"))?;
    entry.insert(&ses.user);
    st.channel_changed(&channel);
    Ok(json!({"conv": Conv::channel(&channel), "members": entry.len()}))
}

/// Tells the channel's members (and `also`, e.g. someone who just left)
/// about a membership change.
fn announce(st: &AppState, entry: &ChannelCache, channel: &str, user: &str, joined: bool) {
    st.channel_changed(channel);
    let frame = event_frame(&Event::Member {
        channel: channel.to_owned(),
        user: user.to_owned(),
        joined,
        removed: false,
    });
    let mut members = entry.snapshot();
    if !joined {
        members.push(user.to_owned());
    }
    st.send_to_users(members.iter().map(String::as_str), &frame, None);
}

/// `join`: public channels only (a member of a private channel may "join"
/// it again harmlessly).
pub async fn join(st: &Arc<AppState>, ses: &SessionCtx, channel: &str) -> OpResult {
    let user = &*ses.user;
    let entry = match st.channel_entry(channel).await? {
        Some(e) if !e.private || e.is_member(user) => e,
        _ => return Err(OpError::forbidden(HIDDEN)),
    };
    if st.store.add_member(channel, user, now_ms()).await? {
        entry.insert(user);
        announce(st, &entry, channel, user, true);
    }
    let (last_seq, _) = st.store.conv_last(&Conv::channel(channel)).await?;
    Ok(json!({"conv": Conv::channel(channel), "last_seq": last_seq, "members": entry.len()}))
}

/// `leave`.
pub async fn leave(st: &Arc<AppState>, ses: &SessionCtx, channel: &str) -> OpResult {
    let user = &*ses.user;
    let entry = match st.channel_entry(channel).await? {
        Some(e) if !e.private || e.is_member(user) => e,
        _ => return Err(OpError::forbidden(HIDDEN)),
    };
    if st.store.remove_member(channel, user).await? {
        entry.remove(user);
        announce(st, &entry, channel, user, false);
    }
    Ok(json!({"conv": Conv::channel(channel), "members": entry.len()}))
}

/// `add_member`: any member may add a user.
pub async fn add_member(st: &Arc<AppState>, ses: &SessionCtx, channel: &str, user: &str) -> OpResult {
    let entry = match st.channel_entry(channel).await? {
        Some(e) if e.is_member(&ses.user) => e,
        _ => return Err(OpError::forbidden(HIDDEN)),
    };
    if st.store.add_member(channel, user, now_ms()).await? {
        entry.insert(user);
        announce(st, &entry, channel, user, true);
    }
    Ok(json!({"conv": Conv::channel(channel), "members": entry.len()}))
}

/// `members`: anyone for a public channel, members only for a private one.
pub async fn members(st: &Arc<AppState>, ses: &SessionCtx, channel: &str) -> OpResult {
    match st.channel_entry(channel).await? {
        Some(e) if !e.private || e.is_member(&ses.user) => {}
        _ => return Err(OpError::forbidden(HIDDEN)),
    }
    let users = st.store.members(channel).await?;
    let online = st.online(&users).await;
    let members: Vec<MemberInfo> = users
        .into_iter()
        .zip(online)
        .map(|(user, online)| MemberInfo { online, user, role: Default::default() })
        .collect();
    Ok(json!({"count": members.len(), "members": members}))
}
