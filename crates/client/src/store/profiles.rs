//! The cache of other users' profiles (name, avatar, status).

use super::{Result, Store};
use crate::model::now_ms;
use courier_proto::Profile;
use rusqlite::{OptionalExtension, params};

impl Store {
    /// Caches profiles.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn upsert_profiles(&self, profiles: &[Profile]) -> Result<()> {
        self.tx(|tx| {
            for p in profiles {
                tx.execute(
                    "INSERT INTO profiles (user, name, avatar, status, updated) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT(user) DO UPDATE SET name = excluded.name, avatar = excluded.avatar,
                        status = excluded.status, updated = excluded.updated",
                    params![p.user, p.name, p.avatar, p.status, now_ms()],
                )?;
            }
            Ok(())
        })
    }

    /// Cached profiles of `users` (those known).
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn profiles(&self, users: &[String]) -> Result<Vec<Profile>> {
        self.with(|c| {
            let mut st =
                c.prepare_cached("SELECT user, name, avatar, status FROM profiles WHERE user = ?1")?;
            let mut out = Vec::new();
            for u in users {
                if let Some(p) = st
                    .query_row([u], |r| {
                        Ok(Profile { user: r.get(0)?, name: r.get(1)?, avatar: r.get(2)?, status: r.get(3)? })
                    })
                    .optional()?
                {
                    out.push(p);
                }
            }
            Ok(out)
        })
    }
}
