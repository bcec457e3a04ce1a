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

#[async_trait]
impl InviteStore for SqliteStore {
    async fn create_invite(&self, invite: &Invite) -> StoreResult<()> {
        let invite = invite.clone();
        self.write(move |c| {
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

    async fn pending_invites_for(&self, user: &str) -> StoreResult<Vec<Invite>> {
        let user = user.to_owned();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(concat!(
                "SELECT ", invite_columns!(),
                " FROM invites WHERE state = 'pending' AND (sender = ?1 OR recipient = ?1) ORDER BY created, iid"
            ))?;
            collect_invites(stmt.query_map([user], RawInvite::from_row)?)
        })
        .await
    }

    async fn recent_invites_for(&self, user: &str, since: i64) -> StoreResult<Vec<Invite>> {
        let user = user.to_owned();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(concat!(
                "SELECT ",
                invite_columns!(),
                " FROM invites WHERE (sender = ?1 OR recipient = ?1) AND created >= ?2 ORDER BY created, iid"
            ))?;
            collect_invites(stmt.query_map(rusqlite::params![user, since], RawInvite::from_row)?)
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
}
