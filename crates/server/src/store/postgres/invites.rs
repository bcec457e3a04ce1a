//! Call invitations: storage, compare-and-set transitions (single
//! conditional `UPDATE … RETURNING` statements) and the pending and recent
//! lists.

use super::PostgresStore;
use super::pool::pg;
use super::rows::{col, invite_from_row, invites_from_rows};
use crate::store::InviteStore;
use crate::store::shared::to_json;
use crate::store::{StoreResult, Transition};
use async_trait::async_trait;
use courier_proto::{Invite, InviteState};
use deadpool_postgres::{GenericClient, Object};
use serde_json::{Map, Value};

async fn read_invite(c: &Object, iid: &str) -> StoreResult<Option<Invite>> {
    let stmt = c
        .prepare_cached(concat!("SELECT ", invite_columns!(), " FROM invites WHERE iid = $1"))
        .await
        .map_err(pg)?;
    c.query_opt(&stmt, &[&iid]).await.map_err(pg)?.as_ref().map(invite_from_row).transpose()
}

async fn insert_invite(c: &impl GenericClient, invite: &Invite) -> StoreResult<()> {
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

#[async_trait]
impl InviteStore for PostgresStore {
    async fn create_invite(&self, invite: &Invite) -> StoreResult<()> {
        let c = self.client().await?;
        insert_invite(&c, invite).await
    }

    async fn create_invite_within(&self, invite: &Invite, at_most: u64, now: i64) -> StoreResult<bool> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        // One caller's capped invitations take turns, on every node, until
        // each transaction ends: count and insert are one step.
        let lock = tx
            .prepare_cached(
                "SELECT pg_advisory_xact_lock(hashtextextended('courier.pending_invites:' || $1, 0))",
            )
            .await
            .map_err(pg)?;
        tx.execute(&lock, &[&invite.from]).await.map_err(pg)?;
        let count = tx
            .prepare_cached(
                "SELECT count(*) FROM invites WHERE sender = $1 AND state = 'pending' AND expires > $2",
            )
            .await
            .map_err(pg)?;
        let pending: i64 = col(&tx.query_one(&count, &[&invite.from, &now]).await.map_err(pg)?, 0)?;
        if u64::try_from(pending).unwrap_or(0) >= at_most {
            return Ok(false);
        }
        insert_invite(&tx, invite).await?;
        tx.commit().await.map_err(pg)?;
        Ok(true)
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

    async fn pending_invites_for(&self, user: &str, limit: u32) -> StoreResult<Vec<Invite>> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(concat!(
                "SELECT * FROM (SELECT ",
                invite_columns!(),
                " FROM invites WHERE state = 'pending' AND (sender = $1 OR recipient = $1) \
                 ORDER BY created DESC, iid DESC LIMIT $2) AS newest ORDER BY created, iid"
            ))
            .await
            .map_err(pg)?;
        invites_from_rows(&c.query(&stmt, &[&user, &i64::from(limit)]).await.map_err(pg)?)
    }

    async fn recent_invites_for(&self, user: &str, since: i64, limit: u32) -> StoreResult<Vec<Invite>> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(concat!(
                "SELECT * FROM (SELECT ",
                invite_columns!(),
                " FROM invites WHERE (sender = $1 OR recipient = $1) AND created >= $2 \
                 ORDER BY created DESC, iid DESC LIMIT $3) AS newest ORDER BY created, iid"
            ))
            .await
            .map_err(pg)?;
        invites_from_rows(&c.query(&stmt, &[&user, &since, &i64::from(limit)]).await.map_err(pg)?)
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

    async fn overdue_invites(&self, now: i64, limit: u32) -> StoreResult<Vec<String>> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(
                "SELECT iid FROM invites WHERE state = 'pending' AND expires <= $1 \
                 ORDER BY expires, iid LIMIT $2",
            )
            .await
            .map_err(pg)?;
        let rows = c.query(&stmt, &[&now, &i64::from(limit)]).await.map_err(pg)?;
        rows.iter().map(|r| col(r, 0)).collect()
    }
}
