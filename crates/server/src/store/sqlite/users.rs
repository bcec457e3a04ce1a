//! Users: sign-ins, last-seen times and profiles.

use super::SqliteStore;
use crate::store::StoreResult;
use crate::store::UserStore;
use async_trait::async_trait;
use courier_proto::Profile;
use rusqlite::{OptionalExtension, params};
use std::collections::HashMap;

#[async_trait]
impl UserStore for SqliteStore {
    async fn touch_user(&self, user: &str, now: i64) -> StoreResult<()> {
        let user = user.to_owned();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO users (user_id, created, last_login) VALUES (?1, ?2, ?2) \
                 ON CONFLICT (user_id) DO UPDATE SET last_login = max(last_login, excluded.last_login)",
            )?
            .execute(params![user, now])?;
            Ok(())
        })
        .await
    }

    async fn user_exists(&self, user: &str) -> StoreResult<bool> {
        let user = user.to_owned();
        self.read(move |c| Ok(c.prepare_cached("SELECT 1 FROM users WHERE user_id = ?1")?.exists([user])?))
            .await
    }

    async fn set_last_seen(&self, user: &str, ts: i64) -> StoreResult<()> {
        let user = user.to_owned();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO last_seen (user_id, ts) VALUES (?1, ?2) \
                 ON CONFLICT (user_id) DO UPDATE SET ts = excluded.ts",
            )?
            .execute(params![user, ts])?;
            Ok(())
        })
        .await
    }

    async fn last_seen(&self, users: &[String]) -> StoreResult<HashMap<String, i64>> {
        let users = users.to_vec();
        self.read(move |c| {
            let tx = c.unchecked_transaction()?;
            let mut stmt = tx.prepare_cached("SELECT ts FROM last_seen WHERE user_id = ?1")?;
            let mut seen = HashMap::new();
            for user in users {
                if let Some(ts) = stmt.query_row([&user], |r| r.get(0)).optional()? {
                    seen.insert(user, ts);
                }
            }
            Ok(seen)
        })
        .await
    }

    async fn set_profile(
        &self,
        user: &str,
        name: Option<&str>,
        avatar: Option<&str>,
        status: Option<&str>,
    ) -> StoreResult<Profile> {
        let user = user.to_owned();
        let (name, avatar, status) =
            (name.map(str::to_owned), avatar.map(str::to_owned), status.map(str::to_owned));
        self.write(move |c| {
            let profile = c
                .prepare_cached(
                    "INSERT INTO profiles (user_id, name, avatar, status) \
                     VALUES (?1, ?2, coalesce(?3, ''), coalesce(?4, '')) \
                     ON CONFLICT (user_id) DO UPDATE SET name = coalesce(?2, name), \
                         avatar = coalesce(?3, avatar), status = coalesce(?4, status) \
                     RETURNING coalesce(name, user_id), avatar, status",
                )?
                .query_row(params![user, name, avatar, status], |r| {
                    Ok(Profile { user: user.clone(), name: r.get(0)?, avatar: r.get(1)?, status: r.get(2)? })
                })?;
            Ok(profile)
        })
        .await
    }

    async fn profiles(&self, users: &[String]) -> StoreResult<Vec<Profile>> {
        let users = users.to_vec();
        self.read(move |c| {
            let tx = c.unchecked_transaction()?;
            let mut stmt = tx.prepare_cached(
                "SELECT coalesce(p.name, u.user_id), coalesce(p.avatar, ''), coalesce(p.status, '') \
                 FROM users u LEFT JOIN profiles p ON p.user_id = u.user_id WHERE u.user_id = ?1",
            )?;
            let mut out = Vec::with_capacity(users.len());
            for user in users {
                let found = stmt.query_row([&user], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).optional()?;
                if let Some((name, avatar, status)) = found {
                    out.push(Profile { user, name, avatar, status });
                }
            }
            Ok(out)
        })
        .await
    }
}
