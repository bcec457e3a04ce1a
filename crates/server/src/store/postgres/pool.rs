//! Connections: the pool every call borrows from, the classification of
//! engine errors (`Unavailable` or `Postgres`), and which aborted
//! transactions are worth running again.

use super::PostgresStore;
use crate::store::shared::closed as closed_error;
use crate::store::{StoreError, StoreResult};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

/// Connections each node keeps at most.
pub const POOL_SIZE: usize = 16;

/// How long a call waits for a free pooled connection (or a new one).
const POOL_WAIT: Duration = Duration::from_secs(10);

/// How long opening one connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Attempts of a transaction PostgreSQL aborted to break a deadlock or a
/// serialization conflict (not expected with these statements, but cheap
/// insurance: retrying such an abort is always safe).
pub(super) const TRANSIENT_ATTEMPTS: usize = 5;

/// The pool for `url`: every connection asks for synchronous commits and
/// names itself `courier-server` (unless the URL says otherwise); waits and
/// connects time out. Connects lazily: nothing is reached yet.
///
/// # Errors
/// [`StoreError::Unavailable`] when the URL is invalid.
pub(super) fn build(url: &str) -> StoreResult<Pool> {
    let mut config = tokio_postgres::Config::from_str(url)
        .map_err(|e| StoreError::Unavailable(format!("invalid PostgreSQL connection string: {e}")))?;
    // Durable acknowledgements whatever the server or role default says.
    let options = match config.get_options() {
        Some(o) if !o.is_empty() => format!("{o} -c synchronous_commit=on"),
        _ => "-c synchronous_commit=on".to_owned(),
    };
    config.options(options);
    if config.get_application_name().is_none() {
        config.application_name("courier-server");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    let manager =
        Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    Pool::builder(manager)
        .max_size(POOL_SIZE)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(POOL_WAIT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .build()
        .map_err(|e| StoreError::Unavailable(format!("building the PostgreSQL pool: {e}")))
}

impl PostgresStore {
    /// A pooled connection, unless the store is closed.
    pub(super) async fn client(&self) -> StoreResult<Object> {
        client_of(&self.pool, &self.closed).await
    }
}

/// A connection of `pool`, unless `closed` is set.
pub(super) async fn client_of(pool: &Pool, closed: &AtomicBool) -> StoreResult<Object> {
    if closed.load(Ordering::Acquire) {
        return Err(closed_error());
    }
    pool.get().await.map_err(|e| match e {
        PoolError::Backend(e) => pg(e),
        PoolError::Closed => closed_error(),
        PoolError::Timeout(_) => StoreError::Unavailable(format!(
            "no PostgreSQL connection within {}s (pool of {POOL_SIZE} exhausted or server unreachable)",
            POOL_WAIT.as_secs()
        )),
        other => StoreError::Unavailable(format!("PostgreSQL pool: {other}")),
    })
}

/// Classifies an engine error: connection trouble is `Unavailable`, a
/// statement PostgreSQL refused is `Postgres` (with its SQLSTATE).
pub(super) fn pg(e: tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        let text = match db.detail() {
            Some(detail) => format!("{} ({}): {detail}", db.message(), code.code()),
            None => format!("{} ({})", db.message(), code.code()),
        };
        // Class 08 is "connection exception"; 57P0x are shutdowns; 53300
        // is "too many connections".
        let gone = code.code().starts_with("08")
            || [&SqlState::ADMIN_SHUTDOWN, &SqlState::CRASH_SHUTDOWN, &SqlState::CANNOT_CONNECT_NOW]
                .contains(&code)
            || *code == SqlState::TOO_MANY_CONNECTIONS;
        return if gone {
            StoreError::Unavailable(format!("PostgreSQL: {text}"))
        } else {
            StoreError::Postgres(text)
        };
    }
    let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
    let text = match std::error::Error::source(&e) {
        Some(source) => format!("{e}: {source}"),
        None => e.to_string(),
    };
    // Without a database error it is the connection (closed, I/O, connect
    // timeout, authentication), unless a value failed to convert.
    let conversion = ["serializ", "column", "parameters", "rows"].iter().any(|w| text.contains(w));
    if e.is_closed() || io || !conversion {
        StoreError::Unavailable(format!("PostgreSQL connection: {text}"))
    } else {
        StoreError::Postgres(text)
    }
}

/// Whether PostgreSQL aborted the transaction only to resolve a conflict
/// with another one, so running it again is right.
pub(super) fn is_transient(e: &tokio_postgres::Error) -> bool {
    matches!(e.code(), Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED)
}
