//! Channels: creation, membership and removals, roles and owner succession
//! (under a lock on the channel's row), pages, and presence sharing.

use super::PostgresStore;
use super::pool::pg;
use super::rows::{channel_info, col};
use crate::store::ChannelStore;
use crate::store::shared::{from_sql_int, parse_role};
use crate::store::{ChannelRow, Departure, JoinOutcome, NewChannel, StoreResult};
use async_trait::async_trait;
use courier_proto::{ChannelInfo, Conv, Role};
use deadpool_postgres::Transaction;
use std::collections::HashSet;

/// Adds a member with role `member`; false when already one.
async fn insert_member(tx: &Transaction<'_>, channel: &str, user: &str, now: i64) -> StoreResult<bool> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO channel_members (channel, user_id, joined) VALUES ($1, $2, $3) \
             ON CONFLICT (channel, user_id) DO NOTHING",
        )
        .await
        .map_err(pg)?;
    Ok(tx.execute(&stmt, &[&channel, &user, &now]).await.map_err(pg)? == 1)
}

/// Locks a channel's row so that role changes and departures of one
/// channel take turns (an owner leaving picks a successor who stays).
async fn lock_channel(tx: &Transaction<'_>, channel: &str) -> Result<(), tokio_postgres::Error> {
    let stmt = tx.prepare_cached("SELECT 1 FROM channels WHERE name = $1 FOR UPDATE").await?;
    tx.query_opt(&stmt, &[&channel]).await?;
    Ok(())
}

async fn read_role<C: deadpool_postgres::GenericClient>(
    c: &C,
    channel: &str,
    user: &str,
) -> StoreResult<Option<Role>> {
    let stmt = c
        .prepare_cached("SELECT role FROM channel_members WHERE channel = $1 AND user_id = $2")
        .await
        .map_err(pg)?;
    match c.query_opt(&stmt, &[&channel, &user]).await.map_err(pg)? {
        Some(r) => Ok(Some(parse_role(&col::<String>(&r, 0)?)?)),
        None => Ok(None),
    }
}

/// Inside `tx`: the channel and its creator as owner; false when the name
/// is taken (nothing written).
async fn insert_channel(tx: &Transaction<'_>, ch: &NewChannel) -> Result<bool, tokio_postgres::Error> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO channels (name, title, topic, private, created_by, created) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING",
        )
        .await?;
    if tx.execute(&stmt, &[&ch.name, &ch.title, &ch.topic, &ch.private, &ch.creator, &ch.now]).await? == 0 {
        return Ok(false);
    }
    if let Some(creator) = &ch.creator {
        let member = tx
            .prepare_cached(
                "INSERT INTO channel_members (channel, user_id, joined, role) VALUES ($1, $2, $3, 'owner')",
            )
            .await?;
        tx.execute(&member, &[&ch.name, creator, &ch.now]).await?;
    }
    Ok(true)
}

/// How many channels `user` created at or after `since`.
async fn created_since(
    c: &impl deadpool_postgres::GenericClient,
    user: &str,
    since: i64,
) -> Result<u64, tokio_postgres::Error> {
    let stmt =
        c.prepare_cached("SELECT count(*) FROM channels WHERE created_by = $1 AND created >= $2").await?;
    let n: i64 = c.query_one(&stmt, &[&user, &since]).await?.try_get(0)?;
    Ok(from_sql_int(n))
}

#[async_trait]
impl ChannelStore for PostgresStore {
    async fn create_channel(&self, ch: NewChannel) -> StoreResult<bool> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        let created = insert_channel(&tx, &ch).await.map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(created)
    }

    async fn create_channel_within(
        &self,
        ch: NewChannel,
        at_most: u64,
        since: i64,
    ) -> StoreResult<Option<bool>> {
        let creator = ch.creator.clone().unwrap_or_default();
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        // One creator's capped creations take turns, on every node, until
        // each transaction ends: count and insert are one step.
        let lock = tx
            .prepare_cached(
                "SELECT pg_advisory_xact_lock(hashtextextended('courier.channels_created:' || $1, 0))",
            )
            .await
            .map_err(pg)?;
        tx.execute(&lock, &[&creator]).await.map_err(pg)?;
        if created_since(&tx, &creator, since).await.map_err(pg)? >= at_most {
            return Ok(None);
        }
        let created = insert_channel(&tx, &ch).await.map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(Some(created))
    }

    async fn channel(&self, name: &str) -> StoreResult<Option<ChannelRow>> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(
                "SELECT name, title, topic, private, created_by, created FROM channels WHERE name = $1",
            )
            .await
            .map_err(pg)?;
        let Some(r) = c.query_opt(&stmt, &[&name]).await.map_err(pg)? else { return Ok(None) };
        Ok(Some(ChannelRow {
            name: col(&r, 0)?,
            title: col(&r, 1)?,
            topic: col(&r, 2)?,
            private: col(&r, 3)?,
            created_by: col(&r, 4)?,
            created: col(&r, 5)?,
        }))
    }

    async fn public_channels(&self) -> StoreResult<Vec<ChannelInfo>> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(
                "SELECT ch.name, ch.title, ch.topic, ch.private, \
                     (SELECT count(*) FROM channel_members m WHERE m.channel = ch.name) \
                 FROM channels ch WHERE NOT ch.private ORDER BY ch.name",
            )
            .await
            .map_err(pg)?;
        let rows = c.query(&stmt, &[]).await.map_err(pg)?;
        rows.iter().map(channel_info).collect()
    }

    async fn add_member(&self, channel: &str, user: &str, now: i64) -> StoreResult<bool> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        let unblock = tx
            .prepare_cached("DELETE FROM channel_removals WHERE channel = $1 AND user_id = $2")
            .await
            .map_err(pg)?;
        tx.execute(&unblock, &[&channel, &user]).await.map_err(pg)?;
        let added = insert_member(&tx, channel, user, now).await?;
        tx.commit().await.map_err(pg)?;
        Ok(added)
    }

    async fn join_channel(&self, channel: &str, user: &str, now: i64) -> StoreResult<JoinOutcome> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        let blocked = tx
            .prepare_cached("SELECT 1 FROM channel_removals WHERE channel = $1 AND user_id = $2")
            .await
            .map_err(pg)?;
        if tx.query_opt(&blocked, &[&channel, &user]).await.map_err(pg)?.is_some() {
            return Ok(JoinOutcome::Blocked);
        }
        let outcome = if insert_member(&tx, channel, user, now).await? {
            JoinOutcome::Joined
        } else {
            JoinOutcome::AlreadyMember
        };
        tx.commit().await.map_err(pg)?;
        Ok(outcome)
    }

    async fn remove_member(
        &self,
        channel: &str,
        user: &str,
        block_rejoin: bool,
    ) -> StoreResult<Option<Departure>> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        lock_channel(&tx, channel).await.map_err(pg)?;
        let delete = tx
            .prepare_cached("DELETE FROM channel_members WHERE channel = $1 AND user_id = $2 RETURNING role")
            .await
            .map_err(pg)?;
        let Some(row) = tx.query_opt(&delete, &[&channel, &user]).await.map_err(pg)? else { return Ok(None) };
        let role = parse_role(&col::<String>(&row, 0)?)?;
        if block_rejoin {
            let block = tx
                .prepare_cached(
                    "INSERT INTO channel_removals (channel, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                )
                .await
                .map_err(pg)?;
            tx.execute(&block, &[&channel, &user]).await.map_err(pg)?;
        }
        let mut departure = Departure::default();
        if role == Role::Owner {
            // The longest-standing admin, else the longest-standing member.
            let succeed = tx
                .prepare_cached(
                    "UPDATE channel_members SET role = 'owner' WHERE id = ( \
                         SELECT id FROM channel_members WHERE channel = $1 \
                         ORDER BY role = 'admin' DESC, id LIMIT 1) \
                     AND NOT EXISTS (SELECT 1 FROM channel_members WHERE channel = $1 AND role = 'owner') \
                     RETURNING user_id",
                )
                .await
                .map_err(pg)?;
            if let Some(r) = tx.query_opt(&succeed, &[&channel]).await.map_err(pg)? {
                departure.new_owner = Some(col(&r, 0)?);
            }
        }
        tx.commit().await.map_err(pg)?;
        Ok(Some(departure))
    }

    async fn is_member(&self, channel: &str, user: &str) -> StoreResult<bool> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached("SELECT 1 FROM channel_members WHERE channel = $1 AND user_id = $2")
            .await
            .map_err(pg)?;
        Ok(c.query_opt(&stmt, &[&channel, &user]).await.map_err(pg)?.is_some())
    }

    async fn members(&self, channel: &str) -> StoreResult<Vec<String>> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached("SELECT user_id FROM channel_members WHERE channel = $1 ORDER BY id")
            .await
            .map_err(pg)?;
        let rows = c.query(&stmt, &[&channel]).await.map_err(pg)?;
        rows.iter().map(|r| col(r, 0)).collect()
    }

    async fn member_roles(&self, channel: &str) -> StoreResult<Vec<(String, Role)>> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached("SELECT user_id, role FROM channel_members WHERE channel = $1 ORDER BY id")
            .await
            .map_err(pg)?;
        let rows = c.query(&stmt, &[&channel]).await.map_err(pg)?;
        rows.iter().map(|r| Ok((col(r, 0)?, parse_role(&col::<String>(r, 1)?)?))).collect()
    }

    async fn public_channels_page(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<(Vec<ChannelInfo>, bool)> {
        let c = self.client().await?;
        // One row more than asked says whether another page follows.
        let stmt = c
            .prepare_cached(
                "SELECT ch.name, ch.title, ch.topic, ch.private, \
                     (SELECT count(*) FROM channel_members m WHERE m.channel = ch.name) \
                 FROM channels ch WHERE NOT ch.private AND ($1::text IS NULL OR ch.name > $1) \
                 ORDER BY ch.name LIMIT $2",
            )
            .await
            .map_err(pg)?;
        let rows = c.query(&stmt, &[&after, &(i64::from(limit) + 1)]).await.map_err(pg)?;
        let mut page = rows.iter().map(channel_info).collect::<StoreResult<Vec<_>>>()?;
        let more = page.len() > limit as usize;
        page.truncate(limit as usize);
        Ok((page, more))
    }

    async fn member_roles_page(
        &self,
        channel: &str,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<(Vec<(String, Role)>, bool)> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(
                "SELECT user_id, role FROM channel_members \
                 WHERE channel = $1 AND ($2::text IS NULL OR user_id COLLATE \"C\" > $2) \
                 ORDER BY user_id COLLATE \"C\" LIMIT $3",
            )
            .await
            .map_err(pg)?;
        let rows = c.query(&stmt, &[&channel, &after, &(i64::from(limit) + 1)]).await.map_err(pg)?;
        let mut page = rows
            .iter()
            .map(|r| Ok((col(r, 0)?, parse_role(&col::<String>(r, 1)?)?)))
            .collect::<StoreResult<Vec<_>>>()?;
        let more = page.len() > limit as usize;
        page.truncate(limit as usize);
        Ok((page, more))
    }

    async fn shares_conversation(&self, viewer: &str, others: &[String]) -> StoreResult<HashSet<String>> {
        let c = self.client().await?;
        // One statement for the whole batch: each other user with the DM
        // conversation id it would have with the viewer.
        let convs: Vec<String> = others.iter().map(|o| Conv::dm(viewer, o).to_string()).collect();
        let stmt = c
            .prepare_cached(
                "SELECT o.user_id FROM unnest($2::text[], $3::text[]) AS o (user_id, conv) \
                 WHERE o.user_id = $1 \
                    OR EXISTS (SELECT 1 FROM channel_members x \
                               JOIN channel_members y ON y.channel = x.channel AND y.user_id = o.user_id \
                               WHERE x.user_id = $1) \
                    OR (EXISTS (SELECT 1 FROM messages m \
                                WHERE m.conv = o.conv AND m.sender = $1 AND m.rel_target IS NULL) \
                        AND EXISTS (SELECT 1 FROM messages m \
                                WHERE m.conv = o.conv AND m.sender = o.user_id AND m.rel_target IS NULL))",
            )
            .await
            .map_err(pg)?;
        let rows = c.query(&stmt, &[&viewer, &others, &convs]).await.map_err(pg)?;
        rows.iter().map(|r| col(r, 0)).collect()
    }

    async fn role(&self, channel: &str, user: &str) -> StoreResult<Option<Role>> {
        let c = self.client().await?;
        read_role(&c, channel, user).await
    }

    async fn channels_created_since(&self, user: &str, since: i64) -> StoreResult<u64> {
        let c = self.client().await?;
        created_since(&c, user, since).await.map_err(pg)
    }

    async fn set_role(
        &self,
        channel: &str,
        user: &str,
        role: Role,
    ) -> StoreResult<Option<Vec<(String, Role)>>> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        lock_channel(&tx, channel).await.map_err(pg)?;
        let Some(now) = read_role(&tx, channel, user).await? else { return Ok(None) };
        let mut changed = Vec::new();
        if now != role {
            let stmt = tx
                .prepare_cached("UPDATE channel_members SET role = $3 WHERE channel = $1 AND user_id = $2")
                .await
                .map_err(pg)?;
            tx.execute(&stmt, &[&channel, &user, &role.as_str()]).await.map_err(pg)?;
            changed.push((user.to_owned(), role));
        }
        if role == Role::Owner {
            let stmt = tx
                .prepare_cached(
                    "UPDATE channel_members SET role = 'admin' \
                     WHERE channel = $1 AND role = 'owner' AND user_id <> $2 RETURNING user_id",
                )
                .await
                .map_err(pg)?;
            for r in tx.query(&stmt, &[&channel, &user]).await.map_err(pg)? {
                changed.push((col(&r, 0)?, Role::Admin));
            }
        }
        tx.commit().await.map_err(pg)?;
        Ok(Some(changed))
    }
}
