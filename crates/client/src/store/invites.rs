//! Invitations to or from this user, as last seen.

use super::{Result, Store};
use crate::model::{InviteView, now_ms};
use courier_proto::{Invite, InviteState};
use rusqlite::{Connection, OptionalExtension, params};

impl Store {
    /// Stores or updates an invitation and returns it as stored, which is
    /// what the application should be shown: events about one invitation
    /// may arrive out of order (on a cluster the callee can hear
    /// `canceled` before the invitation itself), so a final state is never
    /// replaced by `pending`, and `received` never goes back to false.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn upsert_invite(&self, inv: &Invite) -> Result<Invite> {
        self.tx(|tx| {
            let stored = match held_invite(tx, &inv.iid)? {
                Some(held) if held.state.is_final() && !inv.state.is_final() => return Ok(held),
                Some(held) => Invite { received: held.received || inv.received, ..inv.clone() },
                None => inv.clone(),
            };
            tx.execute(
                "INSERT INTO invites (iid, json, state, expires, updated) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(iid) DO UPDATE SET json = excluded.json, state = excluded.state,
                    expires = excluded.expires, updated = excluded.updated",
                params![
                    stored.iid,
                    serde_json::to_string(&stored)?,
                    stored.state.as_str(),
                    stored.expires,
                    now_ms()
                ],
            )?;
            Ok(stored)
        })
    }

    /// Applies a final state learned later (from `sync`) to an invitation
    /// this device holds as pending. Returns the invitation as stored when
    /// that changed it.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn settle_invite(&self, inv: &Invite) -> Result<Option<Invite>> {
        if !inv.state.is_final() {
            return Ok(None);
        }
        self.tx(|tx| {
            let Some(held) = held_invite(tx, &inv.iid)?.filter(|h| h.state == InviteState::Pending) else {
                return Ok(None);
            };
            let stored = Invite { received: held.received || inv.received, ..inv.clone() };
            tx.execute(
                "UPDATE invites SET json = ?2, state = ?3, updated = ?4 WHERE iid = ?1",
                params![stored.iid, serde_json::to_string(&stored)?, stored.state.as_str(), now_ms()],
            )?;
            Ok(Some(stored))
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

/// The invitation `iid` as stored, if it is.
fn held_invite(c: &Connection, iid: &str) -> Result<Option<Invite>> {
    let json: Option<String> =
        c.query_row("SELECT json FROM invites WHERE iid = ?1", [iid], |r| r.get(0)).optional()?;
    Ok(json.map(|j| serde_json::from_str(&j)).transpose()?)
}
