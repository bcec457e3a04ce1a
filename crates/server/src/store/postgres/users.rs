//! Users: sign-in records, last-seen times and profiles.

use super::PostgresStore;
use super::pool::pg;
use super::rows::col;
use crate::store::StoreResult;
use crate::store::UserStore;
use async_trait::async_trait;
use courier_proto::Profile;
use std::collections::HashMap;

#[async_trait]
impl UserStore for PostgresStore {
    async fn touch_user(&self, user: &str, now: i64) -> StoreResult<()> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(
                "INSERT INTO users AS u (user_id, created, last_login) VALUES ($1, $2, $2) \
                 ON CONFLICT (user_id) DO UPDATE SET last_login = greatest(u.last_login, excluded.last_login)",
            )
            .await
            .map_err(pg)?;
        c.execute(&stmt, &[&user, &now]).await.map_err(pg)?;
        Ok(())
    }

    async fn user_exists(&self, user: &str) -> StoreResult<bool> {
        let c = self.client().await?;
        let stmt = c.prepare_cached("SELECT 1 FROM users WHERE user_id = $1").await.map_err(pg)?;
        Ok(c.query_opt(&stmt, &[&user]).await.map_err(pg)?.is_some())
    }

    async fn set_last_seen(&self, user: &str, ts: i64) -> StoreResult<()> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(
                "INSERT INTO last_seen (user_id, ts) VALUES ($1, $2) \
                 ON CONFLICT (user_id) DO UPDATE SET ts = excluded.ts",
            )
            .await
            .map_err(pg)?;
        c.execute(&stmt, &[&user, &ts]).await.map_err(pg)?;
        Ok(())
    }

    async fn last_seen(&self, users: &[String]) -> StoreResult<HashMap<String, i64>> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached("SELECT user_id, ts FROM last_seen WHERE user_id = ANY($1)")
            .await
            .map_err(pg)?;
        let rows = c.query(&stmt, &[&users]).await.map_err(pg)?;
        rows.iter().map(|r| Ok((col(r, 0)?, col(r, 1)?))).collect()
    }

    async fn set_profile(
        &self,
        user: &str,
        name: Option<&str>,
        avatar: Option<&str>,
        status: Option<&str>,
    ) -> StoreResult<Profile> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(
                "INSERT INTO profiles AS p (user_id, name, avatar, status) \
                 VALUES ($1, $2, coalesce($3, ''), coalesce($4, '')) \
                 ON CONFLICT (user_id) DO UPDATE SET name = coalesce($2, p.name), \
                     avatar = coalesce($3, p.avatar), status = coalesce($4, p.status) \
                 RETURNING coalesce(name, user_id), avatar, status",
            )
            .await
            .map_err(pg)?;
        let r = c.query_one(&stmt, &[&user, &name, &avatar, &status]).await.map_err(pg)?;
        Ok(Profile { user: user.to_owned(), name: col(&r, 0)?, avatar: col(&r, 1)?, status: col(&r, 2)? })
    }

    async fn profiles(&self, users: &[String]) -> StoreResult<Vec<Profile>> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(
                "SELECT u.user_id, coalesce(p.name, u.user_id), coalesce(p.avatar, ''), coalesce(p.status, '') \
                 FROM users u LEFT JOIN profiles p ON p.user_id = u.user_id WHERE u.user_id = ANY($1)",
            )
            .await
            .map_err(pg)?;
        let rows = c.query(&stmt, &[&users]).await.map_err(pg)?;
        let mut found: HashMap<String, (String, String, String)> = HashMap::with_capacity(rows.len());
        for r in &rows {
            found.insert(col(r, 0)?, (col(r, 1)?, col(r, 2)?, col(r, 3)?));
        }
        // In the order asked; unknown users left out.
        Ok(users
            .iter()
            .filter_map(|user| {
                let (name, avatar, status) = found.get(user)?.clone();
                Some(Profile { user: user.clone(), name, avatar, status })
            })
            .collect())
    }
}
