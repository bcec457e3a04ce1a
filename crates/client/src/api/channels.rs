//! Channels: the public list, joining (with its history), leaving,
//! creating, adding members, member lists, and v1.1 roles and removals.

use crate::client::{Client, ClientError, Result};
use crate::sync;
use courier_proto::ids::{is_valid_channel, is_valid_user};
use courier_proto::{ChannelInfo, Conv, MemberInfo, Role};
use serde_json::{Value, json};

impl Client {
    /// Public channels, every page (v1.2 servers page them by name; a v1
    /// server answers everything at once without `more`).
    ///
    /// # Errors
    /// Offline, or the server's refusal.
    pub async fn channels(&self) -> Result<Vec<ChannelInfo>> {
        let mut all: Vec<ChannelInfo> = Vec::new();
        loop {
            let mut req = json!({"op": "channels"});
            if let Some(last) = all.last() {
                req["after"] = json!(last.channel);
            }
            let v = self.call(req).await?;
            let page: Vec<ChannelInfo> =
                serde_json::from_value(v.get("channels").cloned().unwrap_or_default())?;
            // A page that does not move forward ends the walk, whatever
            // `more` says: a confused server cannot loop the client.
            let advanced = page.last().is_some_and(|p| all.last().is_none_or(|l| p.channel > l.channel));
            all.extend(page);
            if !advanced || !more(&v) {
                return Ok(all);
            }
        }
    }

    /// Joins a public channel and fetches its history.
    ///
    /// # Errors
    /// Offline, or `forbidden` for a missing or private channel.
    pub async fn join(&self, channel: &str) -> Result<Conv> {
        let v = self.call(json!({"op": "join", "channel": channel})).await?;
        let conv = Conv::channel(channel);
        let last = v.get("last_seq").and_then(Value::as_u64).unwrap_or(0);
        self.inner.store.ensure_conversation(&self.inner.me, &conv, last)?;
        if let Some(s) = self.inner.session() {
            sync::fill(&*self.inner, &*s, &conv, Some(last))
                .await
                .map_err(|e| ClientError::Protocol(e.to_string()))?;
        }
        self.inner.emit_conversation(&conv);
        Ok(conv)
    }

    /// Leaves a channel (its messages stay in the local store).
    ///
    /// # Errors
    /// Offline, or the server's refusal.
    pub async fn leave(&self, channel: &str) -> Result<()> {
        self.call(json!({"op": "leave", "channel": channel})).await?;
        self.inner.store.forget_conversation(&Conv::channel(channel))?;
        Ok(())
    }

    /// Creates a channel; the caller becomes its first member.
    ///
    /// # Errors
    /// Offline, `conflict` when the name exists.
    pub async fn create_channel(
        &self,
        channel: &str,
        title: &str,
        topic: &str,
        private: bool,
    ) -> Result<Conv> {
        self.call(json!({"op": "create_channel", "channel": channel, "title": title, "topic": topic, "private": private}))
            .await?;
        let conv = Conv::channel(channel);
        self.inner.store.ensure_conversation(&self.inner.me, &conv, 0)?;
        self.inner.emit_conversation(&conv);
        Ok(conv)
    }

    /// Adds a user to a (private) channel.
    ///
    /// # Errors
    /// Offline, or the server's refusal.
    pub async fn add_member(&self, channel: &str, user: &str) -> Result<()> {
        self.call(json!({"op": "add_member", "channel": channel, "user": user})).await.map(drop)
    }

    /// Members of a channel (with their v1.1 roles).
    ///
    /// # Errors
    /// Offline, or the server's refusal.
    pub async fn members(&self, channel: &str) -> Result<Vec<MemberInfo>> {
        let mut all: Vec<MemberInfo> = Vec::new();
        loop {
            let after = all.last().map(|m| m.user.clone());
            let (page, more) = self.members_page(channel, after.as_deref(), None).await?;
            let advanced = page.last().is_some_and(|p| after.as_ref().is_none_or(|a| p.user > *a));
            all.extend(page);
            if !advanced || !more {
                return Ok(all);
            }
        }
    }

    /// One page of a channel's members (v1.2): user ids after `after`
    /// (exclusive), at most `limit` (the server's default and cap: 200),
    /// and whether more follow.
    ///
    /// # Errors
    /// Offline, or the server's refusal.
    pub async fn members_page(
        &self,
        channel: &str,
        after: Option<&str>,
        limit: Option<u32>,
    ) -> Result<(Vec<MemberInfo>, bool)> {
        let mut req = json!({"op": "members", "channel": channel});
        if let Some(a) = after {
            req["after"] = json!(a);
        }
        if let Some(l) = limit {
            req["limit"] = json!(l);
        }
        let v = self.call(req).await?;
        let page = serde_json::from_value(v.get("members").cloned().unwrap_or_default())?;
        Ok((page, more(&v)))
    }

    /// Sets a member's role in a channel (v1.1; the owner's alone —
    /// `Role::Owner` transfers ownership and makes the old owner an admin).
    /// Members learn it from a `member` event with the role.
    ///
    /// # Errors
    /// A malformed channel or user id, offline, a server without v1.1, or
    /// the server's refusal (`forbidden` when not the owner, `not_found`
    /// when the user is not a member).
    pub async fn set_role(&self, channel: &str, user: &str, role: Role) -> Result<()> {
        check_channel_user(channel, user)?;
        self.require_v1_1("channel roles")?;
        self.call(json!({"op": "set_role", "channel": channel, "user": user, "role": role})).await.map(drop)
    }

    /// Removes a member from a channel (v1.1: the owner may remove anyone
    /// else, an admin only plain members). The removed user cannot join a
    /// public channel again until an owner or admin adds them.
    ///
    /// # Errors
    /// A malformed channel or user id, offline, a server without v1.1, or
    /// the server's refusal (`forbidden`, `not_found` for a non-member).
    pub async fn remove_member(&self, channel: &str, user: &str) -> Result<()> {
        check_channel_user(channel, user)?;
        self.require_v1_1("removing members")?;
        self.call(json!({"op": "remove_member", "channel": channel, "user": user})).await.map(drop)
    }
}

/// Refuses a malformed channel name or user id before anything is sent.
fn check_channel_user(channel: &str, user: &str) -> Result<()> {
    if !is_valid_channel(channel) {
        return Err(ClientError::Invalid(format!("{channel:?} is not a channel name")));
    }
    if !is_valid_user(user) {
        return Err(ClientError::Invalid(format!("{user:?} is not a user id")));
    }
    Ok(())
}

/// A paged ok's `more` (absent, as from a v1 server: no more).
fn more(ok: &Value) -> bool {
    ok.get("more").and_then(Value::as_bool).unwrap_or(false)
}
