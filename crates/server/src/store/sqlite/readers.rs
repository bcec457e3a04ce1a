//! The pool of read-only connections reads run on, off the async threads.

use super::SqliteStore;
use crate::store::shared::closed;
use crate::store::{StoreError, StoreResult};
use rusqlite::Connection;
use std::ops::Deref;
use std::panic::resume_unwind;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

impl SqliteStore {
    /// Runs `work` on a pooled read-only connection off the async threads.
    pub(super) async fn read<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        if self.closed.load(Ordering::Acquire) {
            return Err(closed());
        }
        let permit = self.readers.permits.clone().acquire_owned().await.map_err(|_| closed())?;
        let pool = self.readers.clone();
        let task = tokio::task::spawn_blocking(move || {
            let conn = pool.lease(permit);
            work(&conn)
        });
        match task.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => resume_unwind(e.into_panic()),
            Err(_) => Err(StoreError::Unavailable("the runtime is shutting down".into())),
        }
    }
}

/// The read-only connections; each read leases one for as long as it runs.
pub(super) struct ReadPool {
    pub(super) conns: Mutex<Vec<Connection>>,
    /// One permit per pooled connection; closed when the store closes.
    pub(super) permits: Arc<Semaphore>,
}

impl ReadPool {
    fn lease(self: Arc<Self>, permit: OwnedSemaphorePermit) -> Lease {
        let conn = self
            .conns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .expect("a read permit always has a pooled connection");
        Lease { pool: self, conn: Some(conn), _permit: permit }
    }
}

/// A pooled connection, returned to the pool on drop (also on panic).
pub(super) struct Lease {
    pool: Arc<ReadPool>,
    conn: Option<Connection>,
    _permit: OwnedSemaphorePermit,
}

impl Deref for Lease {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("present until drop")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // After close() the connection is simply dropped (closed).
        if let Some(conn) = self.conn.take()
            && !self.pool.permits.is_closed()
        {
            self.pool.conns.lock().unwrap_or_else(PoisonError::into_inner).push(conn);
        }
    }
}
