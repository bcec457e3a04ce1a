//! Channels: list, create, join, leave, add and remove members, list
//! members, set roles.
//!
//! A channel that does not exist and a private channel the caller is not in
//! answer `forbidden` alike, so guessing names reveals nothing. Server
//! admins (configuration) act as owner of every channel, also one they are
//! not in.
//!
//! Roles (v1.1): the creator owns a channel; the owner alone sets roles
//! (`owner` transfers it); owner and admins remove members and add back
//! removed users; when the owner leaves, storage promotes a successor in
//! the same transaction. Every role change is announced to the channel's
//! members as a `member` event with `role` (an extension).

use super::{OpError, OpResult, SessionCtx};
use crate::clock::now_ms;
use crate::hub::ChannelCache;
use crate::state::{AppState, event_frame};
use crate::store::{Departure, JoinOutcome, NewChannel};
use courier_proto::{Conv, Event, LIST_PAGE, MemberInfo, Role};
use serde_json::json;
use std::sync::Arc;

const HIDDEN: &str = "no such channel, or it is private";

/// The page size a `channels` or `members` request asks for: absent means
/// the largest, as does 0; larger is clamped to it (v1.2).
fn page_limit(limit: Option<u32>) -> u32 {
    match limit {
        None | Some(0) => LIST_PAGE,
        Some(n) => n.min(LIST_PAGE),
    }
}

/// `channels`: a page of the public channels, bytewise by name after
/// `after` (v1.2; a v1 client sends neither field and gets the first page).
pub async fn list(st: &Arc<AppState>, after: Option<&str>, limit: Option<u32>) -> OpResult {
    let (channels, more) = st.store.public_channels_page(after, page_limit(limit)).await?;
    Ok(json!({"channels": channels, "more": more}))
}

/// `create_channel`: the creator becomes the first member and the owner.
pub async fn create(
    st: &Arc<AppState>,
    ses: &SessionCtx,
    channel: String,
    title: Option<String>,
    topic: Option<String>,
    private: bool,
) -> OpResult {
    // The v1.2 `channels_created` cap: at most that many channels created
    // per user per UTC day, counted and created in one step.
    const DAY_MS: i64 = 86_400_000;
    let cap = st.config.limits.channels_created.unwrap_or(courier_proto::event::DEFAULT_CHANNELS_CREATED);
    let now = now_ms();
    let midnight = now - now.rem_euclid(DAY_MS);
    let new = NewChannel {
        title: title.filter(|t| !t.trim().is_empty()).unwrap_or_else(|| channel.clone()),
        topic: topic.unwrap_or_default(),
        name: channel.clone(),
        private,
        creator: Some(ses.user.to_string()),
        now,
    };
    let Some(created) = st.store.create_channel_within(new, u64::from(cap), midnight).await? else {
        return Err(OpError(Box::new(courier_proto::ErrBody::limit(
            "channels_created",
            format!("at most {cap} new channels per user per day (UTC); try again tomorrow"),
        ))));
    };
    if !created {
        return Err(OpError::conflict("a channel with this name exists"));
    }
    let entry = st.channel_entry(&channel).await?.ok_or_else(|| OpError::not_found("channel vanished"))?;
    st.hub.member_changed(&channel, &ses.user, true);
    st.channel_changed(&channel);
    Ok(json!({"conv": Conv::channel(&channel), "members": entry.len()}))
}

/// The channel's cached entry, if `user` may see it: it exists and is
/// public, or `user` is a member or a server admin.
async fn visible(st: &AppState, channel: &str, user: &str) -> Result<Arc<ChannelCache>, OpError> {
    match st.channel_entry(channel).await? {
        Some(e) if !e.private || e.is_member(user) || st.config.is_server_admin(user) => Ok(e),
        _ => Err(OpError::forbidden(HIDDEN)),
    }
}

/// Tells the channel's members (and the user, who may just have left or
/// been removed) about a membership change; other nodes drop their cached
/// members first (the bus keeps this order).
fn announce(st: &AppState, entry: &ChannelCache, channel: &str, user: &str, joined: bool, removed: bool) {
    st.channel_changed(channel);
    let frame = event_frame(&Event::Member {
        channel: channel.to_owned(),
        user: user.to_owned(),
        joined,
        removed,
        role: None,
    });
    // The user hears it too: who left is no longer a member, and who joined
    // may be missing from `entry` (a copy that a newer one replaced in the
    // cache meanwhile: the change went to the cached copy).
    let members = entry.snapshot();
    let also = (!members.contains(user)).then_some(user);
    st.send_to_users(members.iter().map(|m| &**m).chain(also), &frame, None);
    // Who may see whose presence follows shared channels (v1.2).
    super::people::views_changed(st, &[user]);
}

/// Tells the channel's members that members' roles changed.
fn announce_roles(st: &AppState, entry: &ChannelCache, channel: &str, changes: &[(String, Role)]) {
    if changes.is_empty() {
        return;
    }
    let members = entry.snapshot();
    for (user, role) in changes {
        let frame = event_frame(&Event::Member {
            channel: channel.to_owned(),
            user: user.clone(),
            joined: true,
            removed: false,
            role: Some(*role),
        });
        st.send_to_users(members.iter().map(|m| &**m), &frame, None);
    }
}

/// After a departure: the cache, the `member` event, and the successor's
/// new role if the owner went.
fn departed(st: &AppState, entry: &ChannelCache, channel: &str, user: &str, removed: bool, d: Departure) {
    st.hub.member_changed(channel, user, false);
    announce(st, entry, channel, user, false, removed);
    if let Some(owner) = d.new_owner {
        announce_roles(st, entry, channel, &[(owner, Role::Owner)]);
    }
}

/// `join`: public channels only (a member of a private channel may "join"
/// it again harmlessly). A user an owner or admin removed may not.
pub async fn join(st: &Arc<AppState>, ses: &SessionCtx, channel: &str) -> OpResult {
    let user = &*ses.user;
    let entry = match st.channel_entry(channel).await? {
        Some(e) if !e.private || e.is_member(user) => e,
        _ => return Err(OpError::forbidden(HIDDEN)),
    };
    // Acting as owner, a server admin lifts their own removal.
    admit(
        st,
        &entry,
        channel,
        user,
        st.config.is_server_admin(user),
        "you were removed from this channel; only an owner or admin can add you back",
    )
    .await?;
    let (last_seq, _) = st.store.conv_last(&Conv::channel(channel)).await?;
    Ok(json!({"conv": Conv::channel(channel), "last_seq": last_seq, "members": entry.len()}))
}

/// Makes `user` a member of `channel` and announces it; true when they were
/// not one before. `lifts_removal` (an owner or admin acting) also admits a
/// removed user; otherwise a removed user is refused with `blocked`.
async fn admit(
    st: &Arc<AppState>,
    entry: &ChannelCache,
    channel: &str,
    user: &str,
    lifts_removal: bool,
    blocked: &str,
) -> Result<bool, OpError> {
    let turn = st.hub.membership_turn(channel).await;
    let admitted = if lifts_removal {
        st.store.add_member(channel, user, now_ms()).await?
    } else {
        match st.store.join_channel(channel, user, now_ms()).await? {
            JoinOutcome::Joined => true,
            JoinOutcome::AlreadyMember => false,
            JoinOutcome::Blocked => return Err(OpError::forbidden(blocked)),
        }
    };
    if admitted {
        st.hub.member_changed(channel, user, true);
        drop(turn);
        announce(st, entry, channel, user, true, false);
    }
    Ok(admitted)
}

/// `leave`. When the owner leaves, the longest-standing admin (else
/// member) becomes owner.
pub async fn leave(st: &Arc<AppState>, ses: &SessionCtx, channel: &str) -> OpResult {
    let user = &*ses.user;
    let entry = match st.channel_entry(channel).await? {
        Some(e) if !e.private || e.is_member(user) => e,
        _ => return Err(OpError::forbidden(HIDDEN)),
    };
    let turn = st.hub.membership_turn(channel).await;
    if let Some(d) = st.store.remove_member(channel, user, false).await? {
        departed(st, &entry, channel, user, false, d);
    }
    drop(turn);
    Ok(json!({"conv": Conv::channel(channel), "members": entry.len()}))
}

/// `add_member`: any member may add a user; only an owner or admin may add
/// back a user an owner or admin removed (which lifts the removal).
pub async fn add_member(st: &Arc<AppState>, ses: &SessionCtx, channel: &str, user: &str) -> OpResult {
    let actor = &*ses.user;
    let entry = match st.channel_entry(channel).await? {
        Some(e) if e.is_member(actor) || st.config.is_server_admin(actor) => e,
        _ => return Err(OpError::forbidden(HIDDEN)),
    };
    let moderator = st.channel_role(channel, actor).await?.is_some_and(Role::is_moderator);
    admit(
        st,
        &entry,
        channel,
        user,
        moderator,
        "an owner or admin removed this user; only an owner or admin can add them back",
    )
    .await?;
    Ok(json!({"conv": Conv::channel(channel), "members": entry.len()}))
}

/// `remove_member` (v1.1): the owner removes anyone else, an admin plain
/// members. The user loses access at once and may not `join` again until
/// an owner or admin adds them.
pub async fn remove_member(st: &Arc<AppState>, ses: &SessionCtx, channel: &str, user: &str) -> OpResult {
    let actor = &*ses.user;
    let entry = visible(st, channel, actor).await?;
    if user == actor {
        return Err(OpError::bad_request("to remove yourself, leave the channel"));
    }
    let mine = st.channel_role(channel, actor).await?;
    if !mine.is_some_and(Role::is_moderator) {
        return Err(OpError::forbidden("only an owner or admin of the channel may remove members"));
    }
    let theirs = st
        .store
        .role(channel, user)
        .await?
        .ok_or_else(|| OpError::not_found("not a member of this channel"))?;
    if mine == Some(Role::Admin) && theirs != Role::Member {
        return Err(OpError::forbidden("an admin may remove only plain members"));
    }
    let turn = st.hub.membership_turn(channel).await;
    match st.store.remove_member(channel, user, true).await? {
        Some(d) => departed(st, &entry, channel, user, true, d),
        None => return Err(OpError::not_found("not a member of this channel")),
    }
    drop(turn);
    Ok(json!({"conv": Conv::channel(channel), "members": entry.len()}))
}

/// `set_role` (v1.1): the owner's alone. `owner` transfers ownership (the
/// old owner becomes admin); the owner's own role changes only that way.
pub async fn set_role(
    st: &Arc<AppState>,
    ses: &SessionCtx,
    channel: &str,
    user: &str,
    role: Role,
) -> OpResult {
    let actor = &*ses.user;
    let entry = visible(st, channel, actor).await?;
    if st.channel_role(channel, actor).await? != Some(Role::Owner) {
        return Err(OpError::forbidden("only the owner of the channel may set roles"));
    }
    let theirs = st
        .store
        .role(channel, user)
        .await?
        .ok_or_else(|| OpError::not_found("not a member of this channel"))?;
    if theirs == Role::Owner && role != Role::Owner {
        return Err(OpError::conflict(
            "the owner's role changes only by transferring ownership: make another member owner",
        ));
    }
    let changes = st
        .store
        .set_role(channel, user, role)
        .await?
        .ok_or_else(|| OpError::not_found("not a member of this channel"))?;
    announce_roles(st, &entry, channel, &changes);
    Ok(json!({"conv": Conv::channel(channel), "user": user, "role": role}))
}

/// `members`: anyone for a public channel, members (and server admins)
/// only for a private one. A page of rows with roles, bytewise by user id
/// after `after` (v1.2); `count` is the channel's total. A row shows its
/// user online only to a caller who shares a conversation with them
/// (v1.2 presence privacy): every member does; a visitor of a public
/// channel sees only the members it shares another conversation with.
pub async fn members(
    st: &Arc<AppState>,
    ses: &SessionCtx,
    channel: &str,
    after: Option<&str>,
    limit: Option<u32>,
) -> OpResult {
    let entry = visible(st, channel, &ses.user).await?;
    let (rows, more) = st.store.member_roles_page(channel, after, page_limit(limit)).await?;
    let users: Vec<String> = rows.iter().map(|(u, _)| u.clone()).collect();
    let online = st.online(&users).await;
    let shared = if entry.is_member(&ses.user) {
        None
    } else {
        Some(st.store.shares_conversation(&ses.user, &users).await?)
    };
    let members: Vec<MemberInfo> = rows
        .into_iter()
        .zip(online)
        .map(|((user, role), online)| {
            let online = online && shared.as_ref().is_none_or(|s| s.contains(&user));
            MemberInfo { user, online, role }
        })
        .collect();
    Ok(json!({"count": entry.len(), "members": members, "more": more}))
}
