//! Channels, members and roles, and who shares a conversation with whom.

use super::SqliteStore;
use super::rows::channel_info;
use crate::store::ChannelStore;
use crate::store::shared::{from_sql_int, parse_role};
use crate::store::{ChannelRow, Departure, JoinOutcome, NewChannel, StoreResult};
use async_trait::async_trait;
use courier_proto::{ChannelInfo, Conv, Role};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashSet;

/// Whether two users (?1, ?2) are members of one channel.
pub(super) const SHARED_CHANNEL: &str = "SELECT 1 FROM channel_members x \
     JOIN channel_members y ON y.channel = x.channel AND y.user_id = ?2 WHERE x.user_id = ?1";
/// Whether a user (?2) has sent a content message in a conversation (?1):
/// their cursor row says so (schema v10), one lookup.
pub(super) const SENT_IN_CONV: &str = "SELECT 1 FROM cursors WHERE conv = ?1 AND user_id = ?2 AND wrote = 1";

pub(super) fn insert_channel(c: &Connection, ch: NewChannel) -> StoreResult<bool> {
    let created = c
        .prepare_cached(
            "INSERT INTO channels (name, title, topic, private, created_by, created) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (name) DO NOTHING",
        )?
        .execute(params![ch.name, ch.title, ch.topic, ch.private, ch.creator, ch.now])?;
    if created == 0 {
        return Ok(false);
    }
    if let Some(creator) = &ch.creator {
        c.prepare_cached(
            "INSERT INTO channel_members (channel, user_id, joined, role) VALUES (?1, ?2, ?3, 'owner')",
        )?
        .execute(params![ch.name, creator, ch.now])?;
    }
    Ok(true)
}

/// How many channels `user` created at or after `since`.
fn created_since(c: &Connection, user: &str, since: i64) -> StoreResult<u64> {
    let n: i64 = c
        .prepare_cached("SELECT count(*) FROM channels WHERE created_by = ?1 AND created >= ?2")?
        .query_row(params![user, since], |r| r.get(0))?;
    Ok(from_sql_int(n))
}

pub(super) fn insert_member(c: &Connection, channel: &str, user: &str, now: i64) -> StoreResult<bool> {
    let added = c
        .prepare_cached(
            "INSERT INTO channel_members (channel, user_id, joined) VALUES (?1, ?2, ?3) \
             ON CONFLICT (channel, user_id) DO NOTHING",
        )?
        .execute(params![channel, user, now])?;
    Ok(added == 1)
}

pub(super) fn read_role(c: &Connection, channel: &str, user: &str) -> StoreResult<Option<Role>> {
    c.prepare_cached("SELECT role FROM channel_members WHERE channel = ?1 AND user_id = ?2")?
        .query_row(params![channel, user], |r| r.get::<_, String>(0))
        .optional()?
        .map(|r| parse_role(&r))
        .transpose()
}

pub(super) fn join(c: &Connection, channel: &str, user: &str, now: i64) -> StoreResult<JoinOutcome> {
    let blocked = c
        .prepare_cached("SELECT 1 FROM channel_removals WHERE channel = ?1 AND user_id = ?2")?
        .exists(params![channel, user])?;
    Ok(if blocked {
        JoinOutcome::Blocked
    } else if insert_member(c, channel, user, now)? {
        JoinOutcome::Joined
    } else {
        JoinOutcome::AlreadyMember
    })
}

pub(super) fn depart(
    c: &Connection,
    channel: &str,
    user: &str,
    block_rejoin: bool,
) -> StoreResult<Option<Departure>> {
    let Some(role) = read_role(c, channel, user)? else { return Ok(None) };
    c.prepare_cached("DELETE FROM channel_members WHERE channel = ?1 AND user_id = ?2")?
        .execute(params![channel, user])?;
    if block_rejoin {
        c.prepare_cached(
            "INSERT INTO channel_removals (channel, user_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        )?
        .execute(params![channel, user])?;
    }
    let mut departure = Departure::default();
    if role == Role::Owner {
        // The longest-standing admin, else the longest-standing member.
        departure.new_owner = c
            .prepare_cached(
                "UPDATE channel_members SET role = 'owner' WHERE id = ( \
                     SELECT id FROM channel_members WHERE channel = ?1 \
                     ORDER BY role = 'admin' DESC, id LIMIT 1) \
                 AND NOT EXISTS (SELECT 1 FROM channel_members WHERE channel = ?1 AND role = 'owner') \
                 RETURNING user_id",
            )?
            .query_row([channel], |r| r.get(0))
            .optional()?;
    }
    Ok(Some(departure))
}

pub(super) fn change_role(
    c: &Connection,
    channel: &str,
    user: &str,
    role: Role,
) -> StoreResult<Option<Vec<(String, Role)>>> {
    let Some(now) = read_role(c, channel, user)? else { return Ok(None) };
    let mut changed = Vec::new();
    if now != role {
        c.prepare_cached("UPDATE channel_members SET role = ?3 WHERE channel = ?1 AND user_id = ?2")?
            .execute(params![channel, user, role.as_str()])?;
        changed.push((user.to_owned(), role));
    }
    if role == Role::Owner {
        let mut stmt = c.prepare_cached(
            "UPDATE channel_members SET role = 'admin' WHERE channel = ?1 AND role = 'owner' AND user_id <> ?2 \
             RETURNING user_id",
        )?;
        let demoted = stmt.query_map(params![channel, user], |r| r.get::<_, String>(0))?;
        for old in demoted {
            changed.push((old?, Role::Admin));
        }
    }
    Ok(Some(changed))
}

#[async_trait]
impl ChannelStore for SqliteStore {
    async fn create_channel(&self, ch: NewChannel) -> StoreResult<bool> {
        self.write(move |c| insert_channel(c, ch)).await
    }

    async fn create_channel_within(
        &self,
        ch: NewChannel,
        at_most: u64,
        since: i64,
    ) -> StoreResult<Option<bool>> {
        // The single writer serialises count and insert.
        self.write(move |c| {
            let creator = ch.creator.clone().unwrap_or_default();
            if created_since(c, &creator, since)? >= at_most {
                return Ok(None);
            }
            insert_channel(c, ch).map(Some)
        })
        .await
    }

    async fn channel(&self, name: &str) -> StoreResult<Option<ChannelRow>> {
        let name = name.to_owned();
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT name, title, topic, private, created_by, created FROM channels WHERE name = ?1",
            )?
            .query_row([name], |r| {
                Ok(ChannelRow {
                    name: r.get(0)?,
                    title: r.get(1)?,
                    topic: r.get(2)?,
                    private: r.get(3)?,
                    created_by: r.get(4)?,
                    created: r.get(5)?,
                })
            })
            .optional()?)
        })
        .await
    }

    async fn public_channels(&self) -> StoreResult<Vec<ChannelInfo>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT c.name, c.title, c.topic, c.private, \
                     (SELECT count(*) FROM channel_members m WHERE m.channel = c.name) \
                 FROM channels c WHERE c.private = 0 ORDER BY c.name",
            )?;
            let rows = stmt.query_map([], channel_info)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn add_member(&self, channel: &str, user: &str, now: i64) -> StoreResult<bool> {
        let (channel, user) = (channel.to_owned(), user.to_owned());
        self.write(move |c| {
            c.prepare_cached("DELETE FROM channel_removals WHERE channel = ?1 AND user_id = ?2")?
                .execute(params![channel, user])?;
            insert_member(c, &channel, &user, now)
        })
        .await
    }

    async fn join_channel(&self, channel: &str, user: &str, now: i64) -> StoreResult<JoinOutcome> {
        let (channel, user) = (channel.to_owned(), user.to_owned());
        self.write(move |c| join(c, &channel, &user, now)).await
    }

    async fn remove_member(
        &self,
        channel: &str,
        user: &str,
        block_rejoin: bool,
    ) -> StoreResult<Option<Departure>> {
        let (channel, user) = (channel.to_owned(), user.to_owned());
        self.write(move |c| depart(c, &channel, &user, block_rejoin)).await
    }

    async fn is_member(&self, channel: &str, user: &str) -> StoreResult<bool> {
        let (channel, user) = (channel.to_owned(), user.to_owned());
        self.read(move |c| {
            Ok(c.prepare_cached("SELECT 1 FROM channel_members WHERE channel = ?1 AND user_id = ?2")?
                .exists(params![channel, user])?)
        })
        .await
    }

    async fn members(&self, channel: &str) -> StoreResult<Vec<String>> {
        let channel = channel.to_owned();
        self.read(move |c| {
            let mut stmt =
                c.prepare_cached("SELECT user_id FROM channel_members WHERE channel = ?1 ORDER BY id")?;
            let rows = stmt.query_map([channel], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn member_roles(&self, channel: &str) -> StoreResult<Vec<(String, Role)>> {
        let channel = channel.to_owned();
        self.read(move |c| {
            let mut stmt =
                c.prepare_cached("SELECT user_id, role FROM channel_members WHERE channel = ?1 ORDER BY id")?;
            let rows = stmt.query_map([channel], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            rows.map(|row| {
                let (user, role) = row?;
                Ok((user, parse_role(&role)?))
            })
            .collect()
        })
        .await
    }

    async fn public_channels_page(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<(Vec<ChannelInfo>, bool)> {
        let after = after.map(str::to_owned);
        self.read(move |c| {
            // One row more than asked says whether another page follows.
            let mut stmt = c.prepare_cached(
                "SELECT c.name, c.title, c.topic, c.private, \
                     (SELECT count(*) FROM channel_members m WHERE m.channel = c.name) \
                 FROM channels c WHERE c.private = 0 AND (?1 IS NULL OR c.name > ?1) \
                 ORDER BY c.name LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![after, i64::from(limit) + 1], channel_info)?;
            let mut page: Vec<ChannelInfo> = rows.collect::<rusqlite::Result<_>>()?;
            let more = page.len() > limit as usize;
            page.truncate(limit as usize);
            Ok((page, more))
        })
        .await
    }

    async fn member_roles_page(
        &self,
        channel: &str,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<(Vec<(String, Role)>, bool)> {
        let (channel, after) = (channel.to_owned(), after.map(str::to_owned));
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT user_id, role FROM channel_members \
                 WHERE channel = ?1 AND (?2 IS NULL OR user_id > ?2) ORDER BY user_id LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![channel, after, i64::from(limit) + 1], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?;
            let mut page = rows
                .map(|row| {
                    let (user, role) = row?;
                    Ok((user, parse_role(&role)?))
                })
                .collect::<StoreResult<Vec<_>>>()?;
            let more = page.len() > limit as usize;
            page.truncate(limit as usize);
            Ok((page, more))
        })
        .await
    }

    async fn shares_conversation(&self, viewer: &str, others: &[String]) -> StoreResult<HashSet<String>> {
        let (viewer, others) = (viewer.to_owned(), others.to_vec());
        self.read(move |c| {
            let tx = c.unchecked_transaction()?;
            let mut channel = tx.prepare_cached(SHARED_CHANNEL)?;
            let mut sent = tx.prepare_cached(SENT_IN_CONV)?;
            let mut shared = HashSet::new();
            for other in others {
                let yes = other == viewer || channel.exists(params![viewer, other])? || {
                    let conv = Conv::dm(&viewer, &other).to_string();
                    sent.exists(params![conv, viewer])? && sent.exists(params![conv, other])?
                };
                if yes {
                    shared.insert(other);
                }
            }
            Ok(shared)
        })
        .await
    }

    async fn role(&self, channel: &str, user: &str) -> StoreResult<Option<Role>> {
        let (channel, user) = (channel.to_owned(), user.to_owned());
        self.read(move |c| read_role(c, &channel, &user)).await
    }

    async fn channels_created_since(&self, user: &str, since: i64) -> StoreResult<u64> {
        let user = user.to_owned();
        self.read(move |c| created_since(c, &user, since)).await
    }

    async fn set_role(
        &self,
        channel: &str,
        user: &str,
        role: Role,
    ) -> StoreResult<Option<Vec<(String, Role)>>> {
        let (channel, user) = (channel.to_owned(), user.to_owned());
        self.write(move |c| change_role(c, &channel, &user, role)).await
    }
}
