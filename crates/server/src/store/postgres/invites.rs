//! Call invitations: storage, compare-and-set transitions (single
//! conditional `UPDATE … RETURNING` statements) and the pending and recent
//! lists.

use super::PostgresStore;
use super::pool::pg;
use super::rows::{invite_from_row, invites_from_rows};
use crate::store::InviteStore;
use crate::store::shared::to_json;
use crate::store::{StoreResult, Transition};
use async_trait::async_trait;
use courier_proto::{Invite, InviteState};
use deadpool_postgres::Object;
use serde_json::{Map, Value};

async fn read_invite(c: &Object, iid: &str) -> StoreResult<Option<Invite>> {
    let stmt = c
        .prepare_cached(concat!("SELECT ", invite_columns!(), " FROM invites WHERE iid = $1"))
        .await
        .map_err(pg)?;
    c.query_opt(&stmt, &[&iid]).await.map_err(pg)?.as_ref().map(invite_from_row).transpose()
}

#[async_trait]
impl InviteStore for PostgresStore {
    async fn create_invite(&self, invite: &Invite) -> StoreResult<()> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(concat!(
                "INSERT INTO invites (",
                invite_columns!(),
                ") \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
            ))
            .await
            .map_err(pg)?;
        let (content, response) = (to_json(&invite.content), invite.response.as_ref().map(to_json));
        c.execute(
            &stmt,
            &[
                &invite.iid,
                &invite.from,
                &invite.to,
                &invite.room,
                &content,
                &invite.state.as_str(),
                &invite.created,
                &invite.expires,
                &invite.received,
                &invite.reason,
                &response,
            ],
        )
        .await
        .map_err(pg)?;
        Ok(())
    }

    async fn invite(&self, iid: &str) -> StoreResult<Option<Invite>> {
        let c = self.client().await?;
        read_invite(&c, iid).await
    }

    async fn transition_invite(
        &self,
        iid: &str,
        to: InviteState,
        response: Option<Map<String, Value>>,
    ) -> StoreResult<Transition> {
        debug_assert!(to.is_final(), "invitations only move from pending to a final state");
        let c = self.client().await?;
        // A concurrent transition holds the row lock; this UPDATE waits for
        // it, re-checks `state = 'pending'` on the committed row and matches
        // nothing.
        let stmt = c
            .prepare_cached(concat!(
                "UPDATE invites SET state = $2, response = coalesce($3, response) \
                 WHERE iid = $1 AND state = 'pending' RETURNING ",
                invite_columns!()
            ))
            .await
            .map_err(pg)?;
        let response = response.as_ref().map(to_json);
        if let Some(r) = c.query_opt(&stmt, &[&iid, &to.as_str(), &response]).await.map_err(pg)? {
            return Ok(Transition::Done(invite_from_row(&r)?));
        }
        // Final states never change, so this read shows the state that won.
        Ok(match read_invite(&c, iid).await? {
            Some(final_state) => Transition::AlreadyFinal(final_state),
            None => Transition::NotFound,
        })
    }

    async fn mark_invite_received(&self, iid: &str) -> StoreResult<Option<Invite>> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(concat!(
                "UPDATE invites SET received = true WHERE iid = $1 AND state = 'pending' AND NOT received RETURNING ",
                invite_columns!()
            ))
            .await
            .map_err(pg)?;
        c.query_opt(&stmt, &[&iid]).await.map_err(pg)?.as_ref().map(invite_from_row).transpose()
    }

    async fn pending_invites_for(&self, user: &str) -> StoreResult<Vec<Invite>> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(concat!(
                "SELECT ", invite_columns!(),
                " FROM invites WHERE state = 'pending' AND (sender = $1 OR recipient = $1) ORDER BY created, iid"
            ))
            .await
            .map_err(pg)?;
        invites_from_rows(&c.query(&stmt, &[&user]).await.map_err(pg)?)
    }

    async fn recent_invites_for(&self, user: &str, since: i64) -> StoreResult<Vec<Invite>> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(concat!(
                "SELECT ",
                invite_columns!(),
                " FROM invites WHERE (sender = $1 OR recipient = $1) AND created >= $2 ORDER BY created, iid"
            ))
            .await
            .map_err(pg)?;
        invites_from_rows(&c.query(&stmt, &[&user, &since]).await.map_err(pg)?)
    }

    async fn pending_invites(&self) -> StoreResult<Vec<Invite>> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(concat!(
                "SELECT ",
                invite_columns!(),
                " FROM invites WHERE state = 'pending' ORDER BY created, iid"
            ))
            .await
            .map_err(pg)?;
        invites_from_rows(&c.query(&stmt, &[]).await.map_err(pg)?)
    }
}
