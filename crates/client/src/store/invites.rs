//! Invitations to or from this user, as last seen.

use super::{Result, Store};
use crate::model::{InviteView, now_ms};
use courier_proto::Invite;
use rusqlite::params;

impl Store {
    /// Stores or updates an invitation.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn upsert_invite(&self, inv: &Invite) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO invites (iid, json, state, expires, updated) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(iid) DO UPDATE SET json = excluded.json, state = excluded.state,
                    expires = excluded.expires, updated = excluded.updated
                 WHERE invites.state = 'pending' OR excluded.state <> 'pending'",
                params![inv.iid, serde_json::to_string(inv)?, inv.state.as_str(), inv.expires, now_ms()],
            )?;
            Ok(())
        })
    }

    /// Applies a final state learned later (from `sync`) to an invitation
    /// this device holds as pending. Returns whether anything changed.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn settle_invite(&self, inv: &Invite) -> Result<bool> {
        if !inv.state.is_final() {
            return Ok(false);
        }
        self.with(|c| {
            let n = c.execute(
                "UPDATE invites SET json = ?2, state = ?3, updated = ?4 WHERE iid = ?1 AND state = 'pending'",
                params![inv.iid, serde_json::to_string(inv)?, inv.state.as_str(), now_ms()],
            )?;
            Ok(n > 0)
        })
    }

    /// Invitations to or from this user, newest first, as seen at
    /// `server_now` (ms by the server's clock: a pending one whose `expires`
    /// has passed shows as expired).
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn invites(&self, me: &str, server_now: i64) -> Result<Vec<InviteView>> {
        self.with(|c| {
            let mut st = c.prepare_cached("SELECT json FROM invites ORDER BY updated DESC LIMIT 200")?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            let mut out = Vec::new();
            for r in rows {
                let inv: Invite = serde_json::from_str(&r?)?;
                out.push(InviteView::new(inv, me, server_now));
            }
            Ok(out)
        })
    }
}
