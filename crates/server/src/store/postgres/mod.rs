//! The cluster engine: many server nodes on one PostgreSQL database.
//!
//! # Concurrency across nodes
//!
//! Unlike SQLite's single writer thread, every node writes concurrently, so
//! the guarantees of [`Store`](super::Store) are carried by PostgreSQL's row
//! locks and constraints, never by process-local state:
//!
//! - **Sequence numbers.** [`MessageStore::append`] bumps the conversation's
//!   counter with `INSERT … ON CONFLICT DO UPDATE SET last_seq = last_seq + 1
//!   RETURNING last_seq` inside the message's transaction. The upsert keeps
//!   the counter row locked until `COMMIT`, so writers of one conversation
//!   (on any node) take turns, and a transaction that rolls back also rolls
//!   its increment back: seqs stay 1, 2, 3… without gaps or repeats.
//! - **Idempotency.** `UNIQUE (sender, cid)` on `messages`, inserted with
//!   `ON CONFLICT (sender, cid) DO NOTHING`. A concurrent duplicate waits for
//!   the first insert to commit, inserts nothing, rolls back (undoing its
//!   seq increment) and returns the committed original with `dup: true`.
//! - **Compare-and-set.** Invitation transitions and `received` are single
//!   `UPDATE … WHERE state = 'pending' … RETURNING` statements; under READ
//!   COMMITTED a concurrent updater waits for the row lock and re-checks the
//!   condition on the committed row, so exactly one wins. Cursors move with
//!   one upsert using `greatest(…)`, so they never go back.
//! - **Durability.** Sessions run with `synchronous_commit = on` (set on
//!   every connection, whatever the server default): a call returns only
//!   after its commit is flushed to the WAL.
//!
//! # Schema
//!
//! [`MIGRATIONS`] holds one SQL script per schema version; the
//! `courier_schema` table records each applied version. [`PostgresStore::connect`]
//! applies missing ones in one transaction holding a transaction-level
//! advisory lock ([`MIGRATION_LOCK`]), so nodes starting together migrate
//! one at a time and the rest find the work done. A database whose schema is
//! newer than this build is refused and left untouched.
//!
//! # Errors
//!
//! Lost or refused connections (and pool timeouts) are
//! [`StoreError::Unavailable`]; statements PostgreSQL rejects are
//! [`StoreError::Postgres`] with SQLSTATE and message. Both reach clients as
//! retryable `internal`. Nothing here panics on an engine error.
//!
//! # Layout
//!
//! This file holds [`PostgresStore`] and connecting it; `pool` the
//! connection pool and error classification, `schema` the migrations, `rows`
//! the row mapping, and one file per domain (`users`, `messages`,
//! `relations`, `channels`, `invites`, `media`) its trait impl and SQL.
//!
//! [`MessageStore::append`]: crate::store::MessageStore::append
//! [`StoreError::Unavailable`]: crate::store::StoreError::Unavailable
//! [`StoreError::Postgres`]: crate::store::StoreError::Postgres

mod batch;
mod channels;
mod invites;
mod media;
mod messages;
mod pool;
mod relations;
mod rows;
mod schema;
#[cfg(test)]
mod tests;
mod users;

pub use pool::POOL_SIZE;
pub use schema::{MIGRATION_LOCK, MIGRATIONS, SCHEMA_VERSION};

use crate::store::shared::from_sql_int;
use crate::store::{StoreAdmin, StoreResult};
use async_trait::async_trait;
use deadpool_postgres::Pool;
use pool::pg;
use rows::col;
use schema::migrate;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The PostgreSQL implementation of [`Store`](crate::store::Store): a connection pool; every
/// guarantee is enforced by the database, so any number of instances (on
/// any number of nodes) may share one database.
pub struct PostgresStore {
    pool: Pool,
    closed: Arc<AtomicBool>,
    /// Content appends, written in batches ([`batch`]).
    appends: tokio::sync::mpsc::Sender<batch::Queued>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").field("pool", &self.pool.status()).finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (a `postgresql://` URL or a
    /// `key=value` connection string, TLS not supported), migrates it to
    /// [`SCHEMA_VERSION`] under [`MIGRATION_LOCK`], and returns a pooled
    /// store.
    ///
    /// # Errors
    /// - [`StoreError::Unavailable`] when the URL is invalid or the server
    ///   cannot be reached or refuses the login.
    /// - [`StoreError::Unusable`] when the database has a schema newer than
    ///   this build, or a migration fails (for example because tables of
    ///   another application are in the way). Nothing is changed then.
    /// - [`StoreError::Postgres`] for other refusals (missing privileges…).
    ///
    /// [`StoreError::Unavailable`]: crate::store::StoreError::Unavailable
    /// [`StoreError::Unusable`]: crate::store::StoreError::Unusable
    /// [`StoreError::Postgres`]: crate::store::StoreError::Postgres
    pub async fn connect(url: &str) -> StoreResult<PostgresStore> {
        let pool = pool::build(url)?;
        let closed = Arc::new(AtomicBool::new(false));
        let appends = batch::start(pool.clone(), closed.clone());
        let store = PostgresStore { pool, closed, appends };
        let mut client = store.client().await?;
        migrate(&mut client).await?;
        Ok(store)
    }
}

#[async_trait]
impl StoreAdmin for PostgresStore {
    async fn message_count(&self) -> StoreResult<u64> {
        // Seqs are gapless and messages are never deleted, so the counters
        // add up to the row count without scanning every message.
        let c = self.client().await?;
        let stmt = c
            .prepare_cached("SELECT coalesce(sum(last_seq), 0)::bigint FROM conversations")
            .await
            .map_err(pg)?;
        Ok(from_sql_int(col(&c.query_one(&stmt, &[]).await.map_err(pg)?, 0)?))
    }

    async fn ping(&self) -> StoreResult<()> {
        let c = self.client().await?;
        c.simple_query("SELECT 1").await.map_err(pg)?;
        Ok(())
    }

    async fn close(&self) -> StoreResult<()> {
        // Every acknowledged write is already committed: closing only stops
        // new calls and drops the connections (busy ones when returned).
        self.closed.store(true, Ordering::Release);
        self.pool.close();
        Ok(())
    }
}
