//! Call invitations and their compare-and-set transitions.

use super::SqliteStore;
use super::rows::{RawInvite, collect_invites};
use crate::store::InviteStore;
use crate::store::shared::to_json;
use crate::store::{StoreResult, Transition};
use async_trait::async_trait;
use courier_proto::{Invite, InviteState};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value};

pub(super) fn read_invite(c: &Connection, iid: &str) -> StoreResult<Option<Invite>> {
    c.prepare_cached(concat!("SELECT ", invite_columns!(), " FROM invites WHERE iid = ?1"))?
        .query_row([iid], RawInvite::from_row)
        .optional()?
        .map(RawInvite::into_invite)
        .transpose()
}

fn insert_invite(c: &Connection, invite: &Invite) -> StoreResult<()> {
    c.prepare_cached(concat!(
        "INSERT INTO invites (",
        invite_columns!(),
        ") \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
    ))?
    .execute(params![
        invite.iid,
        invite.from,
        invite.to,
        invite.room,
        to_json(&invite.content),
        invite.state.as_str(),
        invite.created,
        invite.expires,
        invite.received,
        invite.reason,
        invite.response.as_ref().map(to_json),
    ])?;
    Ok(())
}

#[async_trait]
impl InviteStore for SqliteStore {
    async fn create_invite(&self, invite: &Invite) -> StoreResult<()> {
        let invite = invite.clone();
        self.write(move |c| insert_invite(c, &invite)).await
    }

    async fn create_invite_within(&self, invite: &Invite, at_most: u64, now: i64) -> StoreResult<bool> {
        let invite = invite.clone();
        // The single writer serialises count and insert.
        self.write(move |c| {
            let pending: i64 = c
                .prepare_cached(
                    "SELECT count(*) FROM invites WHERE sender = ?1 AND state = 'pending' AND expires > ?2",
                )?
                .query_row(params![invite.from, now], |r| r.get(0))?;
            if u64::try_from(pending).unwrap_or(0) >= at_most {
                return Ok(false);
            }
            insert_invite(c, &invite)?;
            Ok(true)
        })
        .await
    }

    async fn invite(&self, iid: &str) -> StoreResult<Option<Invite>> {
        let iid = iid.to_owned();
        self.read(move |c| read_invite(c, &iid)).await
    }

    async fn transition_invite(
        &self,
        iid: &str,
        to: InviteState,
        response: Option<Map<String, Value>>,
    ) -> StoreResult<Transition> {
        debug_assert!(to.is_final(), "invitations only move from pending to a final state");
        let iid = iid.to_owned();
        self.write(move |c| {
            let moved = c
                .prepare_cached(concat!(
                    "UPDATE invites SET state = ?2, response = coalesce(?3, response) \
                     WHERE iid = ?1 AND state = 'pending' RETURNING ",
                    invite_columns!()
                ))?
                .query_row(params![iid, to.as_str(), response.as_ref().map(to_json)], RawInvite::from_row)
                .optional()?;
            if let Some(moved) = moved {
                return Ok(Transition::Done(moved.into_invite()?));
            }
            Ok(match read_invite(c, &iid)? {
                Some(final_state) => Transition::AlreadyFinal(final_state),
                None => Transition::NotFound,
            })
        })
        .await
    }

    async fn mark_invite_received(&self, iid: &str) -> StoreResult<Option<Invite>> {
        let iid = iid.to_owned();
        self.write(move |c| {
            c.prepare_cached(concat!(
                "UPDATE invites SET received = 1 WHERE iid = ?1 AND state = 'pending' AND received = 0 RETURNING ",
                invite_columns!()
            ))?
            .query_row([iid], RawInvite::from_row)
            .optional()?
            .map(RawInvite::into_invite)
            .transpose()
        })
        .await
    }

    async fn pending_invites_for(&self, user: &str, limit: u32) -> StoreResult<Vec<Invite>> {
        let user = user.to_owned();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(concat!(
                "SELECT * FROM (SELECT ",
                invite_columns!(),
                " FROM invites WHERE state = 'pending' AND (sender = ?1 OR recipient = ?1) \
                 ORDER BY created DESC, iid DESC LIMIT ?2) AS newest ORDER BY created, iid"
            ))?;
            collect_invites(stmt.query_map(params![user, limit], RawInvite::from_row)?)
        })
        .await
    }

    async fn recent_invites_for(&self, user: &str, since: i64, limit: u32) -> StoreResult<Vec<Invite>> {
        let user = user.to_owned();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(concat!(
                "SELECT * FROM (SELECT ",
                invite_columns!(),
                " FROM invites WHERE (sender = ?1 OR recipient = ?1) AND created >= ?2 \
                 ORDER BY created DESC, iid DESC LIMIT ?3) AS newest ORDER BY created, iid"
            ))?;
            collect_invites(stmt.query_map(params![user, since, limit], RawInvite::from_row)?)
        })
        .await
    }

    async fn pending_invites(&self) -> StoreResult<Vec<Invite>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(concat!(
                "SELECT ",
                invite_columns!(),
                " FROM invites WHERE state = 'pending' ORDER BY created, iid"
            ))?;
            collect_invites(stmt.query_map([], RawInvite::from_row)?)
        })
        .await
    }

    async fn overdue_invites(&self, now: i64, limit: u32) -> StoreResult<Vec<String>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT iid FROM invites WHERE state = 'pending' AND expires <= ?1 \
                 ORDER BY expires, iid LIMIT ?2",
            )?;
            Ok(stmt.query_map(params![now, limit], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }
}
