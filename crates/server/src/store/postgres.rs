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

use super::shared::{
    MentionScrub, RecallEffect, RelationEffect, RelationTarget, UnreadParts, apply_aggregates,
    attach_reactions, closed, content_span, from_sql_int, parse_conv, parse_object, parse_role, to_json,
    to_sql_int, unread_count,
};
use super::{
    Appended, ChannelRow, ConvSummary, Cursor, Departure, JoinOutcome, MediaMeta, NewChannel, NewMessage,
    Page, Relation, RelationAppend, StoreError, StoreResult, Transition, UploadQuota,
};
use super::{
    ChannelStore, InviteStore, MediaStore, MessageStore, ReactionCaps, ReactionTally, RelationStore,
    StoreAdmin, UserStore,
};
use async_trait::async_trait;
use courier_proto::{ChannelInfo, Conv, Invite, InviteState, Msg, Profile, Role, Target};
use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime, Transaction,
};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_postgres::error::SqlState;
use tokio_postgres::{IsolationLevel, NoTls, Row};

/// Connections each node keeps at most.
pub const POOL_SIZE: usize = 16;

/// How long a call waits for a free pooled connection (or a new one).
const POOL_WAIT: Duration = Duration::from_secs(10);

/// How long opening one connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Attempts of a transaction PostgreSQL aborted to break a deadlock or a
/// serialization conflict (not expected with these statements, but cheap
/// insurance: retrying such an abort is always safe).
const TRANSIENT_ATTEMPTS: usize = 5;

/// Key of the advisory lock held while migrating ("CRR1", as SQLite's
/// `application_id`). Advisory locks are per database.
pub const MIGRATION_LOCK: i64 = 0x4352_5231;

/// Schema scripts; entry `i` takes a database from version `i` to `i + 1`.
/// Append only: a released entry never changes, because databases in the
/// field were built from it.
///
/// Text columns that are sorted on carry `COLLATE "C"` so orders match
/// SQLite's bytewise ones whatever the database's locale. JSON is stored as
/// text, byte for byte as serialized (like SQLite), not as `jsonb`.
pub const MIGRATIONS: &[&str] = &[
    // v1
    r#"
    -- Everyone who ever signed in ("known" to call invitations).
    CREATE TABLE users (
        user_id    TEXT PRIMARY KEY,
        created    BIGINT NOT NULL,
        last_login BIGINT NOT NULL
    );

    -- Profile fields a user set; a NULL name shows as the user id.
    CREATE TABLE profiles (
        user_id TEXT PRIMARY KEY,
        name    TEXT,
        avatar  TEXT NOT NULL DEFAULT '',
        status  TEXT NOT NULL DEFAULT ''
    );

    -- When each user's last session ended.
    CREATE TABLE last_seen (
        user_id TEXT PRIMARY KEY,
        ts      BIGINT NOT NULL
    );

    -- One row per conversation with at least one message: the seq counter,
    -- row-locked by each append until it commits.
    CREATE TABLE conversations (
        conv     TEXT PRIMARY KEY,
        last_seq BIGINT NOT NULL,
        last_ts  BIGINT NOT NULL
    );

    CREATE TABLE messages (
        conv     TEXT NOT NULL REFERENCES conversations (conv),
        seq      BIGINT NOT NULL,
        mid      TEXT NOT NULL,
        cid      TEXT NOT NULL,
        sender   TEXT NOT NULL,
        target   TEXT NOT NULL,   -- the Target as JSON: {"user":..} / {"channel":..}
        kind     TEXT NOT NULL,
        body     TEXT NOT NULL,   -- compact JSON object
        reply_to TEXT,
        ts       BIGINT NOT NULL,
        CONSTRAINT messages_pkey PRIMARY KEY (conv, seq),
        CONSTRAINT messages_mid_key UNIQUE (mid),
        CONSTRAINT messages_sender_cid_key UNIQUE (sender, cid)   -- idempotency, forever
    );

    -- The DMs each party sees in sync, written with the first message.
    CREATE TABLE dm_members (
        user_id TEXT NOT NULL,
        conv    TEXT NOT NULL REFERENCES conversations (conv),
        peer    TEXT NOT NULL,
        PRIMARY KEY (user_id, conv)
    );

    CREATE TABLE cursors (
        conv     TEXT NOT NULL,
        user_id  TEXT NOT NULL,
        recv_seq BIGINT NOT NULL,
        read_seq BIGINT NOT NULL,
        PRIMARY KEY (conv, user_id)
    );

    CREATE TABLE channels (
        name       TEXT COLLATE "C" PRIMARY KEY,
        title      TEXT NOT NULL,
        topic      TEXT NOT NULL,
        private    BOOLEAN NOT NULL,
        created_by TEXT,
        created    BIGINT NOT NULL
    );

    CREATE TABLE channel_members (
        id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,   -- joining order
        channel TEXT COLLATE "C" NOT NULL REFERENCES channels (name),
        user_id TEXT NOT NULL,
        joined  BIGINT NOT NULL,
        UNIQUE (channel, user_id)
    );
    CREATE INDEX channel_members_by_user ON channel_members (user_id);

    CREATE TABLE invites (
        iid       TEXT COLLATE "C" PRIMARY KEY,
        sender    TEXT NOT NULL,
        recipient TEXT NOT NULL,
        room      TEXT NOT NULL,
        content   TEXT NOT NULL,  -- JSON object
        state     TEXT NOT NULL,
        created   BIGINT NOT NULL,
        expires   BIGINT NOT NULL,
        received  BOOLEAN NOT NULL,
        reason    TEXT,
        response  TEXT            -- JSON object
    );
    CREATE INDEX invites_pending_by_sender ON invites (sender) WHERE state = 'pending';
    CREATE INDEX invites_pending_by_recipient ON invites (recipient) WHERE state = 'pending';

    CREATE TABLE media (
        id      TEXT PRIMARY KEY,
        owner   TEXT NOT NULL,
        mime    TEXT NOT NULL,
        size    BIGINT NOT NULL,
        sha256  TEXT NOT NULL,
        created BIGINT NOT NULL
    );

    -- Bytes apart from the facts, so reading facts never detoasts blobs.
    -- Media is mostly compressed already: store it out of line, uncompressed.
    CREATE TABLE media_blobs (
        id    TEXT PRIMARY KEY REFERENCES media (id),
        bytes BYTEA NOT NULL
    );
    ALTER TABLE media_blobs ALTER COLUMN bytes SET STORAGE EXTERNAL;
    "#,
    // v2: protocol v1.1 (edits, recalls, reactions, pins, mentions, roles)
    r#"
    -- Relation messages (edit, recall, reaction, pin) name their target;
    -- content messages carry what their relations did, so a history page
    -- never scans relations. All of it is written in the relation's
    -- transaction, which row-locks the target first. Constant defaults:
    -- adding these columns rewrites no rows.
    ALTER TABLE messages ADD COLUMN rel_target TEXT;       -- relations: the target's mid
    -- Relation messages of the conversation up to and including this one
    -- (content messages up to seq n = n - this), for unread counts.
    ALTER TABLE messages ADD COLUMN rel_count BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN edited_text TEXT;      -- the newest edit's text
    ALTER TABLE messages ADD COLUMN edited_ts BIGINT;      -- and that edit's ts
    ALTER TABLE messages ADD COLUMN recalled BOOLEAN NOT NULL DEFAULT false;
    ALTER TABLE messages ADD COLUMN pinned BIGINT;         -- ts of the pin, while pinned
    ALTER TABLE messages ADD COLUMN pin_seq BIGINT;        -- seq of that pin: pinned-list order
    CREATE INDEX messages_edits ON messages (rel_target) WHERE kind = 'edit';
    CREATE INDEX messages_own_content ON messages (conv, sender, seq) WHERE rel_target IS NULL;
    CREATE INDEX messages_recalled ON messages (conv, seq) WHERE recalled;
    CREATE INDEX messages_pinned ON messages (conv, pin_seq) WHERE pin_seq IS NOT NULL;

    -- Relation messages in the conversation.
    ALTER TABLE conversations ADD COLUMN rel_count BIGINT NOT NULL DEFAULT 0;

    -- Reactions that are on: one row per (target, key, user).
    CREATE TABLE reactions (
        conv       TEXT NOT NULL,
        target_seq BIGINT NOT NULL,
        key        TEXT NOT NULL,
        user_id    TEXT NOT NULL,
        seq        BIGINT NOT NULL,   -- the reaction that turned it on: order of users
        PRIMARY KEY (conv, target_seq, key, user_id)
    );

    -- Who a (not recalled) message mentions, for mentions_unread; never
    -- the message's own sender.
    CREATE TABLE mentions (
        user_id TEXT NOT NULL,
        conv    TEXT NOT NULL,
        seq     BIGINT NOT NULL,
        PRIMARY KEY (user_id, conv, seq)
    );

    -- Channel roles: the creator owns a channel (a v1 channel whose creator
    -- left goes to its longest-standing member; default channels have none).
    ALTER TABLE channel_members ADD COLUMN role TEXT NOT NULL DEFAULT 'member';
    UPDATE channel_members SET role = 'owner' WHERE id IN (
        SELECT coalesce(
            (SELECT m.id FROM channel_members m WHERE m.channel = c.name AND m.user_id = c.created_by),
            (SELECT min(m.id) FROM channel_members m WHERE m.channel = c.name))
        FROM channels c WHERE c.created_by IS NOT NULL);

    -- Users an owner or admin removed: they may not join again until an
    -- owner or admin adds them.
    CREATE TABLE channel_removals (
        channel TEXT COLLATE "C" NOT NULL REFERENCES channels (name),
        user_id TEXT NOT NULL,
        PRIMARY KEY (channel, user_id)
    );
    "#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// The table recording applied migrations: one row per version. It is not
/// itself a migration, so that its absence means "nothing applied yet".
const SCHEMA_TABLE: &str = "CREATE TABLE courier_schema (\
     version INTEGER PRIMARY KEY, \
     applied TIMESTAMPTZ NOT NULL DEFAULT now())";

/// The PostgreSQL implementation of [`Store`]: a connection pool; every
/// guarantee is enforced by the database, so any number of instances (on
/// any number of nodes) may share one database.
pub struct PostgresStore {
    pool: Pool,
    closed: AtomicBool,
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
    pub async fn connect(url: &str) -> StoreResult<PostgresStore> {
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
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Unavailable(format!("building the PostgreSQL pool: {e}")))?;
        let store = PostgresStore { pool, closed: AtomicBool::new(false) };
        let mut client = store.client().await?;
        migrate(&mut client).await?;
        Ok(store)
    }

    /// A pooled connection, unless the store is closed.
    async fn client(&self) -> StoreResult<Object> {
        if self.closed.load(Ordering::Acquire) {
            return Err(closed());
        }
        self.pool.get().await.map_err(|e| match e {
            PoolError::Backend(e) => pg(e),
            PoolError::Closed => closed(),
            PoolError::Timeout(_) => StoreError::Unavailable(format!(
                "no PostgreSQL connection within {}s (pool of {POOL_SIZE} exhausted or server unreachable)",
                POOL_WAIT.as_secs()
            )),
            other => StoreError::Unavailable(format!("PostgreSQL pool: {other}")),
        })
    }
}

/// Classifies an engine error: connection trouble is `Unavailable`, a
/// statement PostgreSQL refused is `Postgres` (with its SQLSTATE).
fn pg(e: tokio_postgres::Error) -> StoreError {
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
fn is_transient(e: &tokio_postgres::Error) -> bool {
    matches!(e.code(), Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED)
}

// ---------------------------------------------------------------------------
// Migrating

/// Applies the migrations the database lacks, in one transaction holding
/// the migration lock; refuses a newer schema.
async fn migrate(client: &mut Object) -> StoreResult<()> {
    let tx = client.transaction().await.map_err(pg)?;
    // Released at COMMIT or ROLLBACK, whatever happens below.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(pg)?;
    let exists: bool = tx
        .query_one("SELECT to_regclass('courier_schema') IS NOT NULL", &[])
        .await
        .map_err(pg)?
        .try_get(0)
        .map_err(pg)?;
    let version: i32 = if exists {
        tx.query_one("SELECT coalesce(max(version), 0) FROM courier_schema", &[])
            .await
            .map_err(pg)?
            .try_get(0)
            .map_err(pg)?
    } else {
        0
    };
    if version > SCHEMA_VERSION {
        return Err(StoreError::Unusable(format!(
            "the PostgreSQL database has Courier schema version {version}, but this build of \
             courier-server only knows versions up to {SCHEMA_VERSION}; run a newer courier-server \
             (the database was left untouched)"
        )));
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    if !exists {
        tx.batch_execute(SCHEMA_TABLE).await.map_err(pg)?;
    }
    for (from, script) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let to = from as i32 + 1;
        tx.batch_execute(script).await.map_err(|e| {
            StoreError::Unusable(format!(
                "migrating the PostgreSQL schema from version {from} to {to} failed ({}); \
                 nothing was changed",
                pg(e)
            ))
        })?;
        tx.execute("INSERT INTO courier_schema (version) VALUES ($1)", &[&to]).await.map_err(pg)?;
    }
    tx.commit().await.map_err(pg)
}

// ---------------------------------------------------------------------------
// Row mapping

/// Reads column `i` without panicking on a type mismatch.
fn col<'a, T: tokio_postgres::types::FromSql<'a>>(r: &'a Row, i: usize) -> StoreResult<T> {
    r.try_get(i).map_err(pg)
}

/// A message with its aggregate columns applied (not its reactions).
fn msg_from_row(r: &Row) -> StoreResult<Msg> {
    let mid: String = col(r, 2)?;
    let target: String = col(r, 5)?;
    let to: Target = serde_json::from_str(&target)
        .map_err(|e| StoreError::Unusable(format!("stored target of message {mid} is invalid: {e}")))?;
    let mut msg = Msg::new(
        parse_conv(&col::<String>(r, 0)?)?,
        from_sql_int(col(r, 1)?),
        mid,
        col(r, 3)?,
        col(r, 4)?,
        to,
        col(r, 6)?,
        parse_object("message body", &col::<String>(r, 7)?)?,
        col(r, 9)?,
        col(r, 8)?,
    );
    let edited = col::<Option<String>>(r, 10)?.zip(col::<Option<i64>>(r, 11)?);
    apply_aggregates(&mut msg, edited, col(r, 12)?, col(r, 13)?);
    Ok(msg)
}

fn msgs_from_rows(rows: &[Row]) -> StoreResult<Vec<Msg>> {
    rows.iter().map(msg_from_row).collect()
}

/// The columns [`invite_from_row`] reads, in order.
macro_rules! invite_columns {
    () => {
        "iid, sender, recipient, room, content, state, created, expires, received, reason, response"
    };
}

fn invite_from_row(r: &Row) -> StoreResult<Invite> {
    let iid: String = col(r, 0)?;
    let state: String = col(r, 5)?;
    let state = InviteState::parse(&state)
        .ok_or_else(|| StoreError::Unusable(format!("stored state {state:?} of invite {iid} is unknown")))?;
    let response: Option<String> = col(r, 10)?;
    Ok(Invite {
        from: col(r, 1)?,
        to: col(r, 2)?,
        room: col(r, 3)?,
        content: parse_object("invite content", &col::<String>(r, 4)?)?,
        state,
        created: col(r, 6)?,
        expires: col(r, 7)?,
        received: col(r, 8)?,
        reason: col(r, 9)?,
        response: response.as_deref().map(|s| parse_object("invite response", s)).transpose()?,
        iid,
    })
}

fn invites_from_rows(rows: &[Row]) -> StoreResult<Vec<Invite>> {
    rows.iter().map(invite_from_row).collect()
}

fn cursor_from(recv: Option<i64>, read: Option<i64>) -> Cursor {
    Cursor { recv_seq: from_sql_int(recv.unwrap_or(0)), read_seq: from_sql_int(read.unwrap_or(0)) }
}

// ---------------------------------------------------------------------------
// Statements used from more than one place

async fn find_by_cid(c: &Object, from: &str, cid: &str) -> StoreResult<Option<Msg>> {
    let stmt = c
        .prepare_cached(concat!("SELECT ", msg_columns!(), " FROM messages WHERE sender = $1 AND cid = $2"))
        .await
        .map_err(pg)?;
    c.query_opt(&stmt, &[&from, &cid]).await.map_err(pg)?.as_ref().map(msg_from_row).transpose()
}

async fn read_invite(c: &Object, iid: &str) -> StoreResult<Option<Invite>> {
    let stmt = c
        .prepare_cached(concat!("SELECT ", invite_columns!(), " FROM invites WHERE iid = $1"))
        .await
        .map_err(pg)?;
    c.query_opt(&stmt, &[&iid]).await.map_err(pg)?.as_ref().map(invite_from_row).transpose()
}

async fn read_cursor(c: &Object, conv: &str, user: &str) -> StoreResult<Cursor> {
    let stmt = c
        .prepare_cached("SELECT recv_seq, read_seq FROM cursors WHERE conv = $1 AND user_id = $2")
        .await
        .map_err(pg)?;
    match c.query_opt(&stmt, &[&conv, &user]).await.map_err(pg)? {
        Some(r) => Ok(cursor_from(col(&r, 0)?, col(&r, 1)?)),
        None => Ok(Cursor::default()),
    }
}

/// Inside `tx`: the conversation's counters, the row, the DM listing and
/// the mentions. `None` when `(from, cid)` was committed by someone else
/// meanwhile (the caller rolls back, undoing the counter bump).
async fn insert_message(
    tx: &Transaction<'_>,
    m: &NewMessage,
    conv: &str,
    rel_target: Option<&str>,
) -> Result<Option<Msg>, tokio_postgres::Error> {
    let bump = tx
        .prepare_cached(
            "INSERT INTO conversations AS c (conv, last_seq, last_ts, rel_count) VALUES ($1, 1, $2, $3) \
             ON CONFLICT (conv) DO UPDATE SET last_seq = c.last_seq + 1, last_ts = excluded.last_ts, \
                 rel_count = c.rel_count + excluded.rel_count \
             RETURNING last_seq, rel_count",
        )
        .await?;
    // Locks the counter row until this transaction ends.
    let row = tx.query_one(&bump, &[&conv, &m.ts, &i64::from(rel_target.is_some())]).await?;
    let (seq, rel_count): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
    let mid = ulid::Ulid::new().to_string();
    let insert = tx
        .prepare_cached(
            "INSERT INTO messages (conv, seq, mid, cid, sender, target, kind, body, reply_to, ts, rel_target, rel_count) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (sender, cid) DO NOTHING",
        )
        .await?;
    let (target, body) = (to_json(&m.to), to_json(&m.body));
    let inserted = tx
        .execute(
            &insert,
            &[
                &conv,
                &seq,
                &mid,
                &m.cid,
                &m.from,
                &target,
                &m.kind,
                &body,
                &m.reply_to,
                &m.ts,
                &rel_target,
                &rel_count,
            ],
        )
        .await?;
    if inserted == 0 {
        return Ok(None);
    }
    if let (1, Conv::Dm(a, b)) = (seq, &m.conv) {
        // The first message lists the DM for both parties (once for dm:a:a).
        let list = tx
            .prepare_cached(
                "INSERT INTO dm_members (user_id, conv, peer) VALUES ($1, $2, $3), ($3, $2, $1) \
                 ON CONFLICT DO NOTHING",
            )
            .await?;
        tx.execute(&list, &[a, &conv, b]).await?;
    }
    let mentioned: Vec<&str> = m.mentions.iter().map(String::as_str).filter(|u| *u != m.from).collect();
    if !mentioned.is_empty() {
        let mention = tx
            .prepare_cached(
                "INSERT INTO mentions (user_id, conv, seq) SELECT u, $2, $3 FROM unnest($1::text[]) AS u \
                 ON CONFLICT DO NOTHING",
            )
            .await?;
        tx.execute(&mention, &[&mentioned, &conv, &seq]).await?;
    }
    Ok(Some(Msg::new(
        m.conv.clone(),
        from_sql_int(seq),
        mid,
        m.cid.clone(),
        m.from.clone(),
        m.to.clone(),
        m.kind.clone(),
        m.body.clone(),
        m.ts,
        m.reply_to.clone(),
    )))
}

/// One transaction of [`MessageStore::append`]. `None` when `(from, cid)` was
/// committed by someone else meanwhile.
async fn try_append(
    c: &mut Object,
    m: &NewMessage,
    conv: &str,
) -> Result<Option<Msg>, tokio_postgres::Error> {
    let tx = c.transaction().await?;
    match insert_message(&tx, m, conv, None).await? {
        Some(msg) => {
            tx.commit().await?;
            Ok(Some(msg))
        }
        None => {
            // Undo the counter bump; the original is committed (ON CONFLICT
            // waited for it) and readable once this transaction is gone.
            tx.rollback().await?;
            Ok(None)
        }
    }
}

/// The v1.2 reaction caps' view of one message (reads of the reactions
/// primary key).
async fn read_tally<C: deadpool_postgres::GenericClient>(
    c: &C,
    conv: &str,
    target_seq: i64,
    user: &str,
    key: &str,
) -> Result<ReactionTally, tokio_postgres::Error> {
    let stmt = c
        .prepare_cached(
            "SELECT \
             (SELECT count(DISTINCT key) FROM reactions WHERE conv = $1 AND target_seq = $2), \
             (SELECT count(*) FROM reactions WHERE conv = $1 AND target_seq = $2 AND user_id = $3), \
             EXISTS (SELECT 1 FROM reactions WHERE conv = $1 AND target_seq = $2 AND key = $4), \
             EXISTS (SELECT 1 FROM reactions \
                     WHERE conv = $1 AND target_seq = $2 AND key = $4 AND user_id = $3)",
        )
        .await?;
    let r = c.query_one(&stmt, &[&conv, &target_seq, &user, &key]).await?;
    Ok(ReactionTally {
        keys: from_sql_int(r.try_get(0)?),
        user_keys: from_sql_int(r.try_get(1)?),
        key_present: r.try_get(2)?,
        user_has_key: r.try_get(3)?,
    })
}

/// [`RelationStore::append_relation`], with the reaction caps when given.
async fn append_relation_with(
    store: &PostgresStore,
    msg: NewMessage,
    rel: Relation,
    caps: Option<ReactionCaps>,
) -> StoreResult<RelationAppend> {
    let mut c = store.client().await?;
    // The common retry needs no transaction and no lock.
    if let Some(original) = find_by_cid(&c, &msg.from, &msg.cid).await? {
        return Ok(RelationAppend::Stored(Appended { msg: original, dup: true }));
    }
    let conv = msg.conv.to_string();
    let mut attempt = 0;
    loop {
        attempt += 1;
        match try_append_relation(&mut c, &msg, &conv, &rel, caps).await {
            Ok(RelationTry::Stored(msg)) => {
                return Ok(RelationAppend::Stored(Appended { msg, dup: false }));
            }
            Ok(RelationTry::NoTarget) => return Ok(RelationAppend::NoTarget),
            Ok(RelationTry::Recalled) => return Ok(RelationAppend::Recalled),
            Ok(RelationTry::Capped(cap)) => return Ok(RelationAppend::Capped(cap)),
            Ok(RelationTry::Dup) => {
                return match find_by_cid(&c, &msg.from, &msg.cid).await? {
                    Some(original) => Ok(RelationAppend::Stored(Appended { msg: original, dup: true })),
                    None => Err(StoreError::Postgres(format!(
                        "({}, {}) conflicted with a message that is not there",
                        msg.from, msg.cid
                    ))),
                };
            }
            Err(e) if is_transient(&e) && attempt < TRANSIENT_ATTEMPTS => continue,
            Err(e) => return Err(pg(e)),
        }
    }
}

/// What one transaction of [`RelationStore::append_relation`] did.
#[allow(clippy::large_enum_variant)] // returned once per call, never kept in bulk
enum RelationTry {
    Stored(Msg),
    Dup,
    NoTarget,
    Recalled,
    Capped(&'static str),
}

/// One transaction of [`RelationStore::append_relation`]: locks the target row
/// (so a concurrent recall and this relation take turns), checks it,
/// stores the relation and applies it.
async fn try_append_relation(
    c: &mut Object,
    m: &NewMessage,
    conv: &str,
    rel: &Relation,
    caps: Option<ReactionCaps>,
) -> Result<RelationTry, tokio_postgres::Error> {
    let tx = c.transaction().await?;
    let lock = tx
        .prepare_cached(
            "SELECT seq, sender, kind, body, recalled FROM messages \
             WHERE mid = $1 AND conv = $2 AND rel_target IS NULL FOR UPDATE",
        )
        .await?;
    let Some(target) = tx.query_opt(&lock, &[&rel.target(), &conv]).await? else {
        tx.rollback().await?;
        return Ok(RelationTry::NoTarget);
    };
    let target = RelationTarget {
        seq: target.try_get(0)?,
        sender: target.try_get(1)?,
        kind: target.try_get(2)?,
        body: target.try_get(3)?,
        recalled: target.try_get(4)?,
    };
    if target.recalled {
        tx.rollback().await?;
        return Ok(RelationTry::Recalled);
    }
    // The target row is locked: relations to it take turns, so the caps
    // hold under concurrency.
    if let (Relation::Reaction { key, on: true, .. }, Some(caps)) = (rel, caps) {
        let tally = read_tally(&tx, conv, target.seq, &m.from, key).await?;
        if let Some(cap) = caps.refuses(tally) {
            tx.rollback().await?;
            return Ok(RelationTry::Capped(cap));
        }
    }
    let Some(msg) = insert_message(&tx, m, conv, Some(rel.target())).await? else {
        tx.rollback().await?;
        return Ok(RelationTry::Dup);
    };
    apply_effect(&tx, conv, target.seq, RelationEffect::of(rel, &target, &msg)).await?;
    tx.commit().await?;
    Ok(RelationTry::Stored(msg))
}

/// Executes what a relation does to its target (`conv`, `seq`) inside the
/// relation's transaction.
async fn apply_effect(
    tx: &Transaction<'_>,
    conv: &str,
    seq: i64,
    effect: RelationEffect,
) -> Result<(), tokio_postgres::Error> {
    match effect {
        RelationEffect::SetEdited { text, ts } => {
            let stmt = tx
                .prepare_cached(
                    "UPDATE messages SET edited_text = $3, edited_ts = $4 WHERE conv = $1 AND seq = $2",
                )
                .await?;
            tx.execute(&stmt, &[&conv, &seq, &text, &ts]).await?;
        }
        RelationEffect::AddReaction { key, user, seq: at } => {
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO reactions (conv, target_seq, key, user_id, seq) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT DO NOTHING",
                )
                .await?;
            tx.execute(&stmt, &[&conv, &seq, &key, &user, &at]).await?;
        }
        RelationEffect::RemoveReaction { key, user } => {
            let stmt = tx
                .prepare_cached(
                    "DELETE FROM reactions WHERE conv = $1 AND target_seq = $2 AND key = $3 AND user_id = $4",
                )
                .await?;
            tx.execute(&stmt, &[&conv, &seq, &key, &user]).await?;
        }
        RelationEffect::Pin { ts, seq: at } => {
            let stmt = tx
                .prepare_cached(
                    "UPDATE messages SET pinned = coalesce(pinned, $3), pin_seq = coalesce(pin_seq, $4) \
                     WHERE conv = $1 AND seq = $2",
                )
                .await?;
            tx.execute(&stmt, &[&conv, &seq, &ts, &at]).await?;
        }
        RelationEffect::Unpin => {
            let stmt = tx
                .prepare_cached(
                    "UPDATE messages SET pinned = NULL, pin_seq = NULL WHERE conv = $1 AND seq = $2",
                )
                .await?;
            tx.execute(&stmt, &[&conv, &seq]).await?;
        }
        RelationEffect::Recall(scrub) => recall(tx, conv, seq, &scrub).await?,
    }
    Ok(())
}

/// Scrubs a recalled message (`conv`, `seq`) inside the relation's
/// transaction: its body, aggregates, reactions, and what `scrub` names
/// (its edits' texts, mentions, media).
async fn recall(
    tx: &Transaction<'_>,
    conv: &str,
    seq: i64,
    scrub: &RecallEffect,
) -> Result<(), tokio_postgres::Error> {
    let stmt = tx
        .prepare_cached(
            "UPDATE messages SET body = '{}', recalled = true, edited_text = NULL, edited_ts = NULL, \
                 pinned = NULL, pin_seq = NULL \
             WHERE conv = $1 AND seq = $2",
        )
        .await?;
    tx.execute(&stmt, &[&conv, &seq]).await?;
    let stmt = tx
        .prepare_cached("UPDATE messages SET body = $3 WHERE rel_target = $2 AND kind = 'edit' AND conv = $1")
        .await?;
    tx.execute(&stmt, &[&conv, &scrub.target, &scrub.edit_body]).await?;
    let stmt = tx.prepare_cached("DELETE FROM reactions WHERE conv = $1 AND target_seq = $2").await?;
    tx.execute(&stmt, &[&conv, &seq]).await?;
    match &scrub.mentions {
        MentionScrub::Users(users) if users.is_empty() => {}
        MentionScrub::Users(users) => {
            let stmt = tx
                .prepare_cached("DELETE FROM mentions WHERE user_id = ANY($1) AND conv = $2 AND seq = $3")
                .await?;
            tx.execute(&stmt, &[users, &conv, &seq]).await?;
        }
        MentionScrub::All => {
            let stmt = tx.prepare_cached("DELETE FROM mentions WHERE conv = $1 AND seq = $2").await?;
            tx.execute(&stmt, &[&conv, &seq]).await?;
        }
    }
    if let Some(media) = &scrub.media {
        let owned = tx.prepare_cached("SELECT 1 FROM media WHERE id = $1 AND owner = $2").await?;
        if tx.query_opt(&owned, &[&media.id, &media.owner]).await?.is_some() {
            let blob = tx.prepare_cached("DELETE FROM media_blobs WHERE id = $1").await?;
            tx.execute(&blob, &[&media.id]).await?;
            let facts = tx.prepare_cached("DELETE FROM media WHERE id = $1").await?;
            tx.execute(&facts, &[&media.id]).await?;
        }
    }
    Ok(())
}

/// Attaches the reactions of the content messages of `page` (one range read).
async fn load_reactions(c: &Object, conv: &str, page: &mut [Msg]) -> StoreResult<()> {
    let Some((first, last)) = content_span(page) else { return Ok(()) };
    let stmt = c
        .prepare_cached(
            "SELECT target_seq, key, user_id FROM reactions \
             WHERE conv = $1 AND target_seq BETWEEN $2 AND $3 ORDER BY target_seq, seq",
        )
        .await
        .map_err(pg)?;
    let rows = c.query(&stmt, &[&conv, &to_sql_int(first), &to_sql_int(last)]).await.map_err(pg)?;
    let rows = rows
        .iter()
        .map(|r| Ok((from_sql_int(col(r, 0)?), col(r, 1)?, col(r, 2)?)))
        .collect::<StoreResult<Vec<_>>>()?;
    attach_reactions(page, rows);
    Ok(())
}

/// Adds a member with role `member`; false when already one.
async fn insert_member(tx: &Transaction<'_>, channel: &str, user: &str, now: i64) -> StoreResult<bool> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO channel_members (channel, user_id, joined) VALUES ($1, $2, $3) \
             ON CONFLICT (channel, user_id) DO NOTHING",
        )
        .await
        .map_err(pg)?;
    Ok(tx.execute(&stmt, &[&channel, &user, &now]).await.map_err(pg)? == 1)
}

/// Locks a channel's row so that role changes and departures of one
/// channel take turns (an owner leaving picks a successor who stays).
async fn lock_channel(tx: &Transaction<'_>, channel: &str) -> Result<(), tokio_postgres::Error> {
    let stmt = tx.prepare_cached("SELECT 1 FROM channels WHERE name = $1 FOR UPDATE").await?;
    tx.query_opt(&stmt, &[&channel]).await?;
    Ok(())
}

async fn read_role<C: deadpool_postgres::GenericClient>(
    c: &C,
    channel: &str,
    user: &str,
) -> StoreResult<Option<Role>> {
    let stmt = c
        .prepare_cached("SELECT role FROM channel_members WHERE channel = $1 AND user_id = $2")
        .await
        .map_err(pg)?;
    match c.query_opt(&stmt, &[&channel, &user]).await.map_err(pg)? {
        Some(r) => Ok(Some(parse_role(&col::<String>(&r, 0)?)?)),
        None => Ok(None),
    }
}

// ---------------------------------------------------------------------------
// The trait

/// Inserts an object's facts and bytes (inside the caller's transaction).
async fn insert_media(tx: &Transaction<'_>, meta: &MediaMeta, bytes: &[u8]) -> StoreResult<()> {
    let facts = tx
        .prepare_cached(
            "INSERT INTO media (id, owner, mime, size, sha256, created) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .await
        .map_err(pg)?;
    tx.execute(
        &facts,
        &[&meta.id, &meta.owner, &meta.mime, &to_sql_int(meta.size), &meta.sha256, &meta.created],
    )
    .await
    .map_err(pg)?;
    let blob = tx.prepare_cached("INSERT INTO media_blobs (id, bytes) VALUES ($1, $2)").await.map_err(pg)?;
    tx.execute(&blob, &[&meta.id, &bytes]).await.map_err(pg)?;
    Ok(())
}

/// Bytes `owner` uploaded at or after `since`.
async fn media_bytes_since<C: deadpool_postgres::GenericClient>(
    c: &C,
    owner: &str,
    since: i64,
) -> StoreResult<u64> {
    let stmt = c
        .prepare_cached("SELECT coalesce(sum(size), 0)::bigint FROM media WHERE owner = $1 AND created >= $2")
        .await
        .map_err(pg)?;
    Ok(from_sql_int(col(&c.query_one(&stmt, &[&owner, &since]).await.map_err(pg)?, 0)?))
}

#[async_trait]
impl UserStore for PostgresStore {
    async fn touch_user(&self, user: &str, now: i64) -> StoreResult<()> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(
                "INSERT INTO users AS u (user_id, created, last_login) VALUES ($1, $2, $2) \
                 ON CONFLICT (user_id) DO UPDATE SET last_login = greatest(u.last_login, excluded.last_login)",
            )
            .await
            .map_err(pg)?;
        c.execute(&stmt, &[&user, &now]).await.map_err(pg)?;
        Ok(())
    }

    async fn user_exists(&self, user: &str) -> StoreResult<bool> {
        let c = self.client().await?;
        let stmt = c.prepare_cached("SELECT 1 FROM users WHERE user_id = $1").await.map_err(pg)?;
        Ok(c.query_opt(&stmt, &[&user]).await.map_err(pg)?.is_some())
    }

    async fn set_last_seen(&self, user: &str, ts: i64) -> StoreResult<()> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(
                "INSERT INTO last_seen (user_id, ts) VALUES ($1, $2) \
                 ON CONFLICT (user_id) DO UPDATE SET ts = excluded.ts",
            )
            .await
            .map_err(pg)?;
        c.execute(&stmt, &[&user, &ts]).await.map_err(pg)?;
        Ok(())
    }

    async fn last_seen(&self, users: &[String]) -> StoreResult<HashMap<String, i64>> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached("SELECT user_id, ts FROM last_seen WHERE user_id = ANY($1)")
            .await
            .map_err(pg)?;
        let rows = c.query(&stmt, &[&users]).await.map_err(pg)?;
        rows.iter().map(|r| Ok((col(r, 0)?, col(r, 1)?))).collect()
    }

    async fn set_profile(
        &self,
        user: &str,
        name: Option<&str>,
        avatar: Option<&str>,
        status: Option<&str>,
    ) -> StoreResult<Profile> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(
                "INSERT INTO profiles AS p (user_id, name, avatar, status) \
                 VALUES ($1, $2, coalesce($3, ''), coalesce($4, '')) \
                 ON CONFLICT (user_id) DO UPDATE SET name = coalesce($2, p.name), \
                     avatar = coalesce($3, p.avatar), status = coalesce($4, p.status) \
                 RETURNING coalesce(name, user_id), avatar, status",
            )
            .await
            .map_err(pg)?;
        let r = c.query_one(&stmt, &[&user, &name, &avatar, &status]).await.map_err(pg)?;
        Ok(Profile { user: user.to_owned(), name: col(&r, 0)?, avatar: col(&r, 1)?, status: col(&r, 2)? })
    }

    async fn profiles(&self, users: &[String]) -> StoreResult<Vec<Profile>> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(
                "SELECT u.user_id, coalesce(p.name, u.user_id), coalesce(p.avatar, ''), coalesce(p.status, '') \
                 FROM users u LEFT JOIN profiles p ON p.user_id = u.user_id WHERE u.user_id = ANY($1)",
            )
            .await
            .map_err(pg)?;
        let rows = c.query(&stmt, &[&users]).await.map_err(pg)?;
        let mut found: HashMap<String, (String, String, String)> = HashMap::with_capacity(rows.len());
        for r in &rows {
            found.insert(col(r, 0)?, (col(r, 1)?, col(r, 2)?, col(r, 3)?));
        }
        // In the order asked; unknown users left out.
        Ok(users
            .iter()
            .filter_map(|user| {
                let (name, avatar, status) = found.get(user)?.clone();
                Some(Profile { user: user.clone(), name, avatar, status })
            })
            .collect())
    }
}

#[async_trait]
impl MessageStore for PostgresStore {
    async fn append(&self, msg: NewMessage) -> StoreResult<Appended> {
        let mut c = self.client().await?;
        // The common retry needs no transaction and no lock.
        if let Some(original) = find_by_cid(&c, &msg.from, &msg.cid).await? {
            return Ok(Appended { msg: original, dup: true });
        }
        let conv = msg.conv.to_string();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match try_append(&mut c, &msg, &conv).await {
                Ok(Some(msg)) => return Ok(Appended { msg, dup: false }),
                Ok(None) => {
                    return match find_by_cid(&c, &msg.from, &msg.cid).await? {
                        Some(original) => Ok(Appended { msg: original, dup: true }),
                        None => Err(StoreError::Postgres(format!(
                            "({}, {}) conflicted with a message that is not there",
                            msg.from, msg.cid
                        ))),
                    };
                }
                Err(e) if is_transient(&e) && attempt < TRANSIENT_ATTEMPTS => continue,
                // A failed COMMIT leaves the outcome unknown; a retry with
                // the same (from, cid) resolves it either way.
                Err(e) => return Err(pg(e)),
            }
        }
    }

    async fn history(&self, conv: &Conv, page: Page, limit: u32) -> StoreResult<(Vec<Msg>, bool)> {
        let c = self.client().await?;
        let conv = conv.to_string();
        let limit = limit.max(1);
        // One row beyond the page tells whether more exist in that direction.
        let fetch = i64::from(limit) + 1;
        let limit = limit as usize;
        let (rows, newest_first) = match page {
            Page::Latest => {
                let stmt = c
                    .prepare_cached(concat!(
                        "SELECT ",
                        msg_columns!(),
                        " FROM messages WHERE conv = $1 ORDER BY seq DESC LIMIT $2"
                    ))
                    .await
                    .map_err(pg)?;
                (c.query(&stmt, &[&conv, &fetch]).await.map_err(pg)?, true)
            }
            Page::After(after) => {
                let stmt = c
                    .prepare_cached(concat!(
                        "SELECT ",
                        msg_columns!(),
                        " FROM messages WHERE conv = $1 AND seq > $3 ORDER BY seq ASC LIMIT $2"
                    ))
                    .await
                    .map_err(pg)?;
                (c.query(&stmt, &[&conv, &fetch, &to_sql_int(after)]).await.map_err(pg)?, false)
            }
            Page::Before(before) => {
                let stmt = c
                    .prepare_cached(concat!(
                        "SELECT ",
                        msg_columns!(),
                        " FROM messages WHERE conv = $1 AND seq < $3 ORDER BY seq DESC LIMIT $2"
                    ))
                    .await
                    .map_err(pg)?;
                (c.query(&stmt, &[&conv, &fetch, &to_sql_int(before)]).await.map_err(pg)?, true)
            }
        };
        let mut msgs = msgs_from_rows(&rows)?;
        let more = msgs.len() > limit;
        msgs.truncate(limit);
        if newest_first {
            msgs.reverse();
        }
        // A relation committed between the two reads only makes the
        // aggregates newer than the page, which they may be anyway.
        load_reactions(&c, &conv, &mut msgs).await?;
        Ok((msgs, more))
    }

    async fn message(&self, conv: &Conv, mid: &str) -> StoreResult<Option<Msg>> {
        let c = self.client().await?;
        let conv = conv.to_string();
        let stmt = c
            .prepare_cached(concat!("SELECT ", msg_columns!(), " FROM messages WHERE mid = $1 AND conv = $2"))
            .await
            .map_err(pg)?;
        let Some(row) = c.query_opt(&stmt, &[&mid, &conv]).await.map_err(pg)? else { return Ok(None) };
        let mut one = [msg_from_row(&row)?];
        load_reactions(&c, &conv, &mut one).await?;
        let [msg] = one;
        Ok(Some(msg))
    }

    async fn message_by_cid(&self, from: &str, cid: &str) -> StoreResult<Option<Msg>> {
        let c = self.client().await?;
        find_by_cid(&c, from, cid).await
    }

    async fn conv_last(&self, conv: &Conv) -> StoreResult<(u64, i64)> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached("SELECT last_seq, last_ts FROM conversations WHERE conv = $1")
            .await
            .map_err(pg)?;
        match c.query_opt(&stmt, &[&conv.to_string()]).await.map_err(pg)? {
            Some(r) => Ok((from_sql_int(col(&r, 0)?), col(&r, 1)?)),
            None => Ok((0, 0)),
        }
    }

    async fn conversations(&self, user: &str) -> StoreResult<Vec<ConvSummary>> {
        let mut c = self.client().await?;
        // One snapshot for both lists and the pins.
        let tx = c
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(pg)?;
        let dms = tx
            .prepare_cached(concat!(
                "SELECT d.conv, c.last_seq, c.last_ts, mine.recv_seq, mine.read_seq, ",
                unread_columns!("d.conv", "d.user_id", "x.recalled"),
                ", peer.recv_seq, peer.read_seq \
                 FROM dm_members d \
                 JOIN conversations c ON c.conv = d.conv \
                 LEFT JOIN cursors mine ON mine.conv = d.conv AND mine.user_id = d.user_id \
                 LEFT JOIN cursors peer ON peer.conv = d.conv AND peer.user_id = d.peer \
                 WHERE d.user_id = $1"
            ))
            .await
            .map_err(pg)?;
        let channels = tx
            .prepare_cached(concat!(
                "SELECT m.channel, c.last_seq, c.last_ts, mine.recv_seq, mine.read_seq, ",
                unread_columns!("'ch:' || m.channel", "m.user_id", "x.recalled"),
                " FROM channel_members m \
                 LEFT JOIN conversations c ON c.conv = 'ch:' || m.channel \
                 LEFT JOIN cursors mine ON mine.conv = 'ch:' || m.channel AND mine.user_id = m.user_id \
                 WHERE m.user_id = $1"
            ))
            .await
            .map_err(pg)?;
        let dm_rows = tx.query(&dms, &[&user]).await.map_err(pg)?;
        let channel_rows = tx.query(&channels, &[&user]).await.map_err(pg)?;

        // Columns 1-4 of each list, then `unread_columns!` from 5 on.
        let summary = |r: &Row, conv: Conv, peer_cursor: Option<Cursor>| -> StoreResult<ConvSummary> {
            let cursor = cursor_from(col(r, 3)?, col(r, 4)?);
            let last_seq = from_sql_int(col::<Option<i64>>(r, 1)?.unwrap_or(0));
            let parts = UnreadParts {
                last_seq,
                rel_total: from_sql_int(col::<Option<i64>>(r, 5)?.unwrap_or(0)),
                read_seq: cursor.read_seq,
                rel_at_read: from_sql_int(col(r, 6)?),
                own_after: from_sql_int(col(r, 7)?),
                recalled_after: from_sql_int(col(r, 8)?),
            };
            Ok(ConvSummary {
                conv,
                last_seq,
                last_ts: col::<Option<i64>>(r, 2)?.unwrap_or(0),
                cursor,
                peer_cursor,
                unread: unread_count(parts),
                mentions_unread: from_sql_int(col(r, 9)?),
                pins: Vec::new(),
            })
        };
        let mut out = Vec::with_capacity(dm_rows.len() + channel_rows.len());
        for r in &dm_rows {
            let peer = cursor_from(col(r, 10)?, col(r, 11)?);
            out.push(summary(r, parse_conv(&col::<String>(r, 0)?)?, Some(peer))?);
        }
        for r in &channel_rows {
            out.push(summary(r, Conv::channel(&col::<String>(r, 0)?), None)?);
        }
        out.sort_by(|a, b| a.conv.cmp(&b.conv));
        let convs: Vec<String> = out.iter().map(|s| s.conv.to_string()).collect();
        let pins = tx
            .prepare_cached(
                "SELECT conv, mid FROM messages WHERE pin_seq IS NOT NULL AND conv = ANY($1) ORDER BY conv, pin_seq",
            )
            .await
            .map_err(pg)?;
        let pin_rows = tx.query(&pins, &[&convs]).await.map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        for r in &pin_rows {
            let conv = parse_conv(&col::<String>(r, 0)?)?;
            if let Ok(i) = out.binary_search_by(|s| s.conv.cmp(&conv)) {
                out[i].pins.push(col(r, 1)?);
            }
        }
        Ok(out)
    }

    async fn advance_cursor(
        &self,
        conv: &Conv,
        user: &str,
        recv: Option<u64>,
        read: Option<u64>,
    ) -> StoreResult<Cursor> {
        let c = self.client().await?;
        let conv = conv.to_string();
        // One statement: clamp to last_seq, then move forward only. The
        // upsert row-locks the cursor, so concurrent advances (from any
        // node) combine to the maximum. Nothing is written when nothing
        // would change.
        let stmt = c
            .prepare_cached(
                "WITH last AS (SELECT coalesce((SELECT last_seq FROM conversations WHERE conv = $1), 0) AS seq), \
                      want AS (SELECT least($4::bigint, seq) AS read, \
                                      greatest(least($3::bigint, seq), least($4::bigint, seq)) AS recv \
                               FROM last) \
                 INSERT INTO cursors AS cur (conv, user_id, recv_seq, read_seq) \
                 SELECT $1, $2, want.recv, want.read FROM want WHERE want.recv > 0 \
                 ON CONFLICT (conv, user_id) DO UPDATE SET \
                     read_seq = greatest(cur.read_seq, excluded.read_seq), \
                     recv_seq = greatest(cur.recv_seq, excluded.recv_seq, cur.read_seq) \
                 WHERE excluded.read_seq > cur.read_seq OR excluded.recv_seq > cur.recv_seq \
                 RETURNING recv_seq, read_seq",
            )
            .await
            .map_err(pg)?;
        let (recv, read) = (to_sql_int(recv.unwrap_or(0)), to_sql_int(read.unwrap_or(0)));
        match c.query_opt(&stmt, &[&conv, &user, &recv, &read]).await.map_err(pg)? {
            Some(r) => Ok(cursor_from(col(&r, 0)?, col(&r, 1)?)),
            // Unchanged: the stored cursor is the answer.
            None => read_cursor(&c, &conv, user).await,
        }
    }

    async fn cursor(&self, conv: &Conv, user: &str) -> StoreResult<Cursor> {
        let c = self.client().await?;
        read_cursor(&c, &conv.to_string(), user).await
    }
}

#[async_trait]
impl RelationStore for PostgresStore {
    async fn append_relation(&self, msg: NewMessage, rel: Relation) -> StoreResult<RelationAppend> {
        append_relation_with(self, msg, rel, None).await
    }

    async fn append_relation_capped(
        &self,
        msg: NewMessage,
        rel: Relation,
        caps: ReactionCaps,
    ) -> StoreResult<RelationAppend> {
        append_relation_with(self, msg, rel, Some(caps)).await
    }

    async fn reaction_tally(
        &self,
        conv: &Conv,
        target_seq: u64,
        user: &str,
        key: &str,
    ) -> StoreResult<ReactionTally> {
        let c = self.client().await?;
        read_tally(&c, &conv.to_string(), to_sql_int(target_seq), user, key).await.map_err(pg)
    }
}

#[async_trait]
impl ChannelStore for PostgresStore {
    async fn create_channel(&self, ch: NewChannel) -> StoreResult<bool> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        let stmt = tx
            .prepare_cached(
                "INSERT INTO channels (name, title, topic, private, created_by, created) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING",
            )
            .await
            .map_err(pg)?;
        let created = tx
            .execute(&stmt, &[&ch.name, &ch.title, &ch.topic, &ch.private, &ch.creator, &ch.now])
            .await
            .map_err(pg)?;
        if created == 0 {
            return Ok(false);
        }
        if let Some(creator) = &ch.creator {
            let member = tx
                .prepare_cached(
                    "INSERT INTO channel_members (channel, user_id, joined, role) VALUES ($1, $2, $3, 'owner')",
                )
                .await
                .map_err(pg)?;
            tx.execute(&member, &[&ch.name, creator, &ch.now]).await.map_err(pg)?;
        }
        tx.commit().await.map_err(pg)?;
        Ok(true)
    }

    async fn channel(&self, name: &str) -> StoreResult<Option<ChannelRow>> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(
                "SELECT name, title, topic, private, created_by, created FROM channels WHERE name = $1",
            )
            .await
            .map_err(pg)?;
        let Some(r) = c.query_opt(&stmt, &[&name]).await.map_err(pg)? else { return Ok(None) };
        Ok(Some(ChannelRow {
            name: col(&r, 0)?,
            title: col(&r, 1)?,
            topic: col(&r, 2)?,
            private: col(&r, 3)?,
            created_by: col(&r, 4)?,
            created: col(&r, 5)?,
        }))
    }

    async fn public_channels(&self) -> StoreResult<Vec<ChannelInfo>> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(
                "SELECT ch.name, ch.title, ch.topic, ch.private, \
                     (SELECT count(*) FROM channel_members m WHERE m.channel = ch.name) \
                 FROM channels ch WHERE NOT ch.private ORDER BY ch.name",
            )
            .await
            .map_err(pg)?;
        let rows = c.query(&stmt, &[]).await.map_err(pg)?;
        rows.iter()
            .map(|r| {
                Ok(ChannelInfo {
                    channel: col(r, 0)?,
                    title: col(r, 1)?,
                    topic: col(r, 2)?,
                    private: col(r, 3)?,
                    members: from_sql_int(col(r, 4)?),
                })
            })
            .collect()
    }

    async fn add_member(&self, channel: &str, user: &str, now: i64) -> StoreResult<bool> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        let unblock = tx
            .prepare_cached("DELETE FROM channel_removals WHERE channel = $1 AND user_id = $2")
            .await
            .map_err(pg)?;
        tx.execute(&unblock, &[&channel, &user]).await.map_err(pg)?;
        let added = insert_member(&tx, channel, user, now).await?;
        tx.commit().await.map_err(pg)?;
        Ok(added)
    }

    async fn join_channel(&self, channel: &str, user: &str, now: i64) -> StoreResult<JoinOutcome> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        let blocked = tx
            .prepare_cached("SELECT 1 FROM channel_removals WHERE channel = $1 AND user_id = $2")
            .await
            .map_err(pg)?;
        if tx.query_opt(&blocked, &[&channel, &user]).await.map_err(pg)?.is_some() {
            return Ok(JoinOutcome::Blocked);
        }
        let outcome = if insert_member(&tx, channel, user, now).await? {
            JoinOutcome::Joined
        } else {
            JoinOutcome::AlreadyMember
        };
        tx.commit().await.map_err(pg)?;
        Ok(outcome)
    }

    async fn remove_member(
        &self,
        channel: &str,
        user: &str,
        block_rejoin: bool,
    ) -> StoreResult<Option<Departure>> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        lock_channel(&tx, channel).await.map_err(pg)?;
        let delete = tx
            .prepare_cached("DELETE FROM channel_members WHERE channel = $1 AND user_id = $2 RETURNING role")
            .await
            .map_err(pg)?;
        let Some(row) = tx.query_opt(&delete, &[&channel, &user]).await.map_err(pg)? else { return Ok(None) };
        let role = parse_role(&col::<String>(&row, 0)?)?;
        if block_rejoin {
            let block = tx
                .prepare_cached(
                    "INSERT INTO channel_removals (channel, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                )
                .await
                .map_err(pg)?;
            tx.execute(&block, &[&channel, &user]).await.map_err(pg)?;
        }
        let mut departure = Departure::default();
        if role == Role::Owner {
            // The longest-standing admin, else the longest-standing member.
            let succeed = tx
                .prepare_cached(
                    "UPDATE channel_members SET role = 'owner' WHERE id = ( \
                         SELECT id FROM channel_members WHERE channel = $1 \
                         ORDER BY role = 'admin' DESC, id LIMIT 1) \
                     AND NOT EXISTS (SELECT 1 FROM channel_members WHERE channel = $1 AND role = 'owner') \
                     RETURNING user_id",
                )
                .await
                .map_err(pg)?;
            if let Some(r) = tx.query_opt(&succeed, &[&channel]).await.map_err(pg)? {
                departure.new_owner = Some(col(&r, 0)?);
            }
        }
        tx.commit().await.map_err(pg)?;
        Ok(Some(departure))
    }

    async fn is_member(&self, channel: &str, user: &str) -> StoreResult<bool> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached("SELECT 1 FROM channel_members WHERE channel = $1 AND user_id = $2")
            .await
            .map_err(pg)?;
        Ok(c.query_opt(&stmt, &[&channel, &user]).await.map_err(pg)?.is_some())
    }

    async fn members(&self, channel: &str) -> StoreResult<Vec<String>> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached("SELECT user_id FROM channel_members WHERE channel = $1 ORDER BY id")
            .await
            .map_err(pg)?;
        let rows = c.query(&stmt, &[&channel]).await.map_err(pg)?;
        rows.iter().map(|r| col(r, 0)).collect()
    }

    async fn member_roles(&self, channel: &str) -> StoreResult<Vec<(String, Role)>> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached("SELECT user_id, role FROM channel_members WHERE channel = $1 ORDER BY id")
            .await
            .map_err(pg)?;
        let rows = c.query(&stmt, &[&channel]).await.map_err(pg)?;
        rows.iter().map(|r| Ok((col(r, 0)?, parse_role(&col::<String>(r, 1)?)?))).collect()
    }

    async fn public_channels_page(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<(Vec<ChannelInfo>, bool)> {
        let c = self.client().await?;
        // One row more than asked says whether another page follows.
        let stmt = c
            .prepare_cached(
                "SELECT ch.name, ch.title, ch.topic, ch.private, \
                     (SELECT count(*) FROM channel_members m WHERE m.channel = ch.name) \
                 FROM channels ch WHERE NOT ch.private AND ($1::text IS NULL OR ch.name > $1) \
                 ORDER BY ch.name LIMIT $2",
            )
            .await
            .map_err(pg)?;
        let rows = c.query(&stmt, &[&after, &(i64::from(limit) + 1)]).await.map_err(pg)?;
        let mut page = rows
            .iter()
            .map(|r| {
                Ok(ChannelInfo {
                    channel: col(r, 0)?,
                    title: col(r, 1)?,
                    topic: col(r, 2)?,
                    private: col(r, 3)?,
                    members: from_sql_int(col(r, 4)?),
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let more = page.len() > limit as usize;
        page.truncate(limit as usize);
        Ok((page, more))
    }

    async fn member_roles_page(
        &self,
        channel: &str,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<(Vec<(String, Role)>, bool)> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(
                "SELECT user_id, role FROM channel_members \
                 WHERE channel = $1 AND ($2::text IS NULL OR user_id COLLATE \"C\" > $2) \
                 ORDER BY user_id COLLATE \"C\" LIMIT $3",
            )
            .await
            .map_err(pg)?;
        let rows = c.query(&stmt, &[&channel, &after, &(i64::from(limit) + 1)]).await.map_err(pg)?;
        let mut page = rows
            .iter()
            .map(|r| Ok((col(r, 0)?, parse_role(&col::<String>(r, 1)?)?)))
            .collect::<StoreResult<Vec<_>>>()?;
        let more = page.len() > limit as usize;
        page.truncate(limit as usize);
        Ok((page, more))
    }

    async fn shares_conversation(&self, viewer: &str, others: &[String]) -> StoreResult<HashSet<String>> {
        let c = self.client().await?;
        // One statement for the whole batch: each other user with the DM
        // conversation id it would have with the viewer.
        let convs: Vec<String> = others.iter().map(|o| Conv::dm(viewer, o).to_string()).collect();
        let stmt = c
            .prepare_cached(
                "SELECT o.user_id FROM unnest($2::text[], $3::text[]) AS o (user_id, conv) \
                 WHERE o.user_id = $1 \
                    OR EXISTS (SELECT 1 FROM channel_members x \
                               JOIN channel_members y ON y.channel = x.channel AND y.user_id = o.user_id \
                               WHERE x.user_id = $1) \
                    OR (EXISTS (SELECT 1 FROM messages m \
                                WHERE m.conv = o.conv AND m.sender = $1 AND m.rel_target IS NULL) \
                        AND EXISTS (SELECT 1 FROM messages m \
                                WHERE m.conv = o.conv AND m.sender = o.user_id AND m.rel_target IS NULL))",
            )
            .await
            .map_err(pg)?;
        let rows = c.query(&stmt, &[&viewer, &others, &convs]).await.map_err(pg)?;
        rows.iter().map(|r| col(r, 0)).collect()
    }

    async fn role(&self, channel: &str, user: &str) -> StoreResult<Option<Role>> {
        let c = self.client().await?;
        read_role(&c, channel, user).await
    }

    async fn channels_created_since(&self, user: &str, since: i64) -> StoreResult<u64> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached("SELECT count(*) FROM channels WHERE created_by = $1 AND created >= $2")
            .await
            .map_err(pg)?;
        let r = c.query_one(&stmt, &[&user, &since]).await.map_err(pg)?;
        Ok(from_sql_int(col(&r, 0)?))
    }

    async fn set_role(
        &self,
        channel: &str,
        user: &str,
        role: Role,
    ) -> StoreResult<Option<Vec<(String, Role)>>> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        lock_channel(&tx, channel).await.map_err(pg)?;
        let Some(now) = read_role(&tx, channel, user).await? else { return Ok(None) };
        let mut changed = Vec::new();
        if now != role {
            let stmt = tx
                .prepare_cached("UPDATE channel_members SET role = $3 WHERE channel = $1 AND user_id = $2")
                .await
                .map_err(pg)?;
            tx.execute(&stmt, &[&channel, &user, &role.as_str()]).await.map_err(pg)?;
            changed.push((user.to_owned(), role));
        }
        if role == Role::Owner {
            let stmt = tx
                .prepare_cached(
                    "UPDATE channel_members SET role = 'admin' \
                     WHERE channel = $1 AND role = 'owner' AND user_id <> $2 RETURNING user_id",
                )
                .await
                .map_err(pg)?;
            for r in tx.query(&stmt, &[&channel, &user]).await.map_err(pg)? {
                changed.push((col(&r, 0)?, Role::Admin));
            }
        }
        tx.commit().await.map_err(pg)?;
        Ok(Some(changed))
    }
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

#[async_trait]
impl MediaStore for PostgresStore {
    async fn put_media(&self, meta: &MediaMeta, bytes: Vec<u8>) -> StoreResult<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        insert_media(&tx, meta, &bytes).await?;
        tx.commit().await.map_err(pg)
    }

    async fn put_media_within(
        &self,
        meta: &MediaMeta,
        bytes: Vec<u8>,
        quota: UploadQuota,
    ) -> StoreResult<Option<u64>> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        // One owner's uploads queue here (on any node) until commit, so
        // check and insert are one step.
        let lock = tx
            .prepare_cached("SELECT pg_advisory_xact_lock(hashtext('courier-media-quota:' || $1)::bigint)")
            .await
            .map_err(pg)?;
        tx.execute(&lock, &[&meta.owner]).await.map_err(pg)?;
        let used = media_bytes_since(&tx, &meta.owner, quota.since).await?;
        if used.saturating_add(meta.size) > quota.bytes {
            return Ok(Some(used));
        }
        insert_media(&tx, meta, &bytes).await?;
        tx.commit().await.map_err(pg)?;
        Ok(None)
    }

    async fn media_meta(&self, id: &str) -> StoreResult<Option<MediaMeta>> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached("SELECT id, owner, mime, size, sha256, created FROM media WHERE id = $1")
            .await
            .map_err(pg)?;
        let Some(r) = c.query_opt(&stmt, &[&id]).await.map_err(pg)? else { return Ok(None) };
        Ok(Some(MediaMeta {
            id: col(&r, 0)?,
            owner: col(&r, 1)?,
            mime: col(&r, 2)?,
            size: from_sql_int(col(&r, 3)?),
            sha256: col(&r, 4)?,
            created: col(&r, 5)?,
        }))
    }

    async fn media_chunk(&self, id: &str, offset: u64, len: usize) -> StoreResult<Option<Vec<u8>>> {
        let c = self.client().await?;
        // Blobs are stored uncompressed out of line (STORAGE EXTERNAL), so
        // `substring` fetches only the TOAST chunks of this range.
        let stmt = c
            .prepare_cached("SELECT substring(bytes from $2 for $3) FROM media_blobs WHERE id = $1")
            .await
            .map_err(pg)?;
        let from = i64::try_from(offset).unwrap_or(i64::MAX - 1).saturating_add(1);
        let len = i64::try_from(len).unwrap_or(i64::MAX).min(i64::from(i32::MAX)) as i32;
        let from = from.min(i64::from(i32::MAX)) as i32;
        let Some(r) = c.query_opt(&stmt, &[&id, &from, &len]).await.map_err(pg)? else { return Ok(None) };
        Ok(Some(col(&r, 0)?))
    }

    async fn media_bytes_since(&self, owner: &str, since: i64) -> StoreResult<u64> {
        let c = self.client().await?;
        media_bytes_since(&c, owner, since).await
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::pg_harness;
    use crate::store::suite::{check_migrated_fixtures, invite as new_invite, text};
    use std::collections::HashSet;
    use std::sync::Arc;

    /// A store on a fresh database of the test server, or `None` (after
    /// printing why) when PostgreSQL is not installed.
    async fn fresh() -> Option<Arc<dyn Store>> {
        let url = pg_harness::fresh_database().await?;
        Some(Arc::new(PostgresStore::connect(&url).await.expect("connect to a fresh database")))
    }

    mod suite {
        // `return` here leaves the generated test early: the skip path.
        crate::store_suite!(match super::fresh().await {
            Some(store) => ::std::future::ready(store),
            None => return,
        });
    }

    /// Several stores on one database, as several server nodes.
    async fn nodes(n: usize) -> Option<(String, Vec<Arc<PostgresStore>>)> {
        let url = pg_harness::fresh_database().await?;
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(Arc::new(PostgresStore::connect(&url).await.expect("connect")));
        }
        Some((url, out))
    }

    /// A plain connection for inspecting or tampering with a database.
    async fn raw(url: &str) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(url, NoTls).await.expect("raw connection");
        tokio::spawn(conn);
        client
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_nodes_appending_to_one_conversation_get_each_seq_exactly_once() {
        let Some((_, nodes)) = nodes(2).await else { return };
        const TASKS_PER_NODE: usize = 4;
        const EACH: usize = 50;
        let mut tasks = Vec::new();
        for (n, node) in nodes.iter().enumerate() {
            for t in 0..TASKS_PER_NODE {
                let node = node.clone();
                tasks.push(tokio::spawn(async move {
                    let mut mine = Vec::new();
                    for i in 0..EACH {
                        let m = text(
                            &format!("n{n}u{t}"),
                            Target::Channel("lobby".into()),
                            &format!("c{i}"),
                            "x",
                            i as i64,
                        );
                        let a = node.append(m).await.unwrap();
                        assert!(!a.dup);
                        mine.push(a.msg);
                    }
                    mine
                }));
            }
        }
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        all.sort_by_key(|m| m.seq);
        let n = (2 * TASKS_PER_NODE * EACH) as u64;
        assert_eq!(all.iter().map(|m| m.seq).collect::<Vec<_>>(), (1..=n).collect::<Vec<_>>());
        let conv = Conv::channel("lobby");
        // Either node reads exactly what both acknowledged.
        for node in &nodes {
            let (stored, more) = node.history(&conv, Page::After(0), n as u32 + 1).await.unwrap();
            assert!(!more);
            assert_eq!(stored, all);
            assert_eq!(node.message_count().await.unwrap(), n);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_duplicates_from_two_nodes_are_stored_once() {
        let Some((_, nodes)) = nodes(2).await else { return };
        for round in 0..20 {
            let mut tasks = Vec::new();
            for (n, node) in nodes.iter().enumerate() {
                for t in 0..3 {
                    let node = node.clone();
                    // Alternate DM and channel so the duplicate also races
                    // against a different conversation's counter.
                    let to =
                        if t % 2 == 0 { Target::User("bob".into()) } else { Target::Channel("lobby".into()) };
                    tasks.push(tokio::spawn(async move {
                        node.append(text("alice", to, &format!("same-{round}"), &format!("{n}/{t}"), round))
                            .await
                            .unwrap()
                    }));
                }
            }
            let mut results = Vec::new();
            for task in tasks {
                results.push(task.await.unwrap());
            }
            assert_eq!(results.iter().filter(|a| !a.dup).count(), 1, "round {round}: exactly one is new");
            let winner = results.iter().find(|a| !a.dup).unwrap().msg.clone();
            assert!(results.iter().all(|a| a.msg == winner), "round {round}: all see the original");
        }
        // 20 messages in total, and each conversation is still gapless.
        assert_eq!(nodes[0].message_count().await.unwrap(), 20);
        for conv in [Conv::dm("alice", "bob"), Conv::channel("lobby")] {
            let (msgs, _) = nodes[1].history(&conv, Page::After(0), 100).await.unwrap();
            let seqs: Vec<u64> = msgs.iter().map(|m| m.seq).collect();
            assert_eq!(seqs, (1..=msgs.len() as u64).collect::<Vec<_>>(), "{conv}");
            assert_eq!(nodes[0].conv_last(&conv).await.unwrap().0, msgs.len() as u64, "{conv}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_invitation_answered_on_two_nodes_at_once_has_one_winner() {
        let Some((_, nodes)) = nodes(2).await else { return };
        for round in 0..10 {
            let iid = format!("i{round}");
            nodes[0].create_invite(&new_invite(&iid, "alice", "bob")).await.unwrap();
            let mut tasks = Vec::new();
            for t in 0..8 {
                let (node, iid) = (nodes[t % 2].clone(), iid.clone());
                let to = if t % 2 == 0 { InviteState::Accepted } else { InviteState::Canceled };
                tasks.push(tokio::spawn(async move {
                    (
                        node.mark_invite_received(&iid).await.unwrap(),
                        node.transition_invite(&iid, to, None).await.unwrap(),
                    )
                }));
            }
            let (mut flipped, mut done) = (0, 0);
            for task in tasks {
                let (marked, transition) = task.await.unwrap();
                flipped += usize::from(marked.is_some());
                done += usize::from(matches!(transition, Transition::Done(_)));
            }
            assert_eq!(done, 1, "round {round}: exactly one transition wins");
            assert!(flipped <= 1, "round {round}: received flipped at most once");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nodes_starting_together_migrate_once() {
        let Some(url) = pg_harness::fresh_database().await else { return };
        let mut starts = Vec::new();
        for _ in 0..6 {
            let url = url.clone();
            starts.push(tokio::spawn(async move { PostgresStore::connect(&url).await }));
        }
        for start in starts {
            start.await.unwrap().expect("every node starts");
        }
        let rows =
            raw(&url).await.query("SELECT version FROM courier_schema ORDER BY version", &[]).await.unwrap();
        let versions: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
        assert_eq!(versions, (1..=SCHEMA_VERSION).collect::<Vec<_>>());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_database_with_a_newer_schema_is_refused_and_left_alone() {
        let Some(url) = pg_harness::fresh_database().await else { return };
        let store = PostgresStore::connect(&url).await.unwrap();
        store.append(text("alice", Target::User("bob".into()), "c1", "kept", 1)).await.unwrap();
        store.close().await.unwrap();
        let db = raw(&url).await;
        db.execute("INSERT INTO courier_schema (version) VALUES ($1)", &[&(SCHEMA_VERSION + 1)])
            .await
            .unwrap();

        let err = PostgresStore::connect(&url).await.expect_err("a newer schema is refused");
        let StoreError::Unusable(msg) = err else { panic!("expected Unusable, got {err:?}") };
        assert!(msg.contains(&format!("schema version {}", SCHEMA_VERSION + 1)), "{msg}");
        let n: i64 = db.query_one("SELECT count(*) FROM messages", &[]).await.unwrap().get(0);
        assert_eq!(n, 1, "the data is untouched");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn another_applications_tables_are_refused_and_left_alone() {
        let Some(url) = pg_harness::fresh_database().await else { return };
        let db = raw(&url).await;
        db.batch_execute(
            "CREATE TABLE messages (id INT, note TEXT); INSERT INTO messages VALUES (1, 'theirs')",
        )
        .await
        .unwrap();
        let err = PostgresStore::connect(&url).await.expect_err("foreign tables are in the way");
        assert!(matches!(err, StoreError::Unusable(_)), "{err:?}");
        let schema: Option<String> =
            db.query_one("SELECT to_regclass('courier_schema')::text", &[]).await.unwrap().get(0);
        assert_eq!(schema, None, "nothing was created");
        let note: String = db.query_one("SELECT note FROM messages", &[]).await.unwrap().get(0);
        assert_eq!(note, "theirs");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unreachable_server_is_unavailable() {
        // A port nobody listens on (bound, then released).
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let err =
            PostgresStore::connect(&format!("postgresql://courier@127.0.0.1:{port}/x?connect_timeout=2"))
                .await
                .expect_err("nothing listens there");
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        let err = PostgresStore::connect("not a url at all ===").await.expect_err("invalid");
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn killed_connections_fail_as_unavailable_and_the_store_recovers() {
        let Some(url) = pg_harness::fresh_database().await else { return };
        let store = PostgresStore::connect(&url).await.unwrap();
        // Fill the pool with a few open connections.
        let mut tasks = Vec::new();
        let store = Arc::new(store);
        for i in 0..4 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .append(text("alice", Target::User("bob".into()), &format!("c{i}"), "x", 1))
                    .await
                    .unwrap()
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        // An administrator (or a failover) cuts every connection.
        let admin = raw(&url).await;
        admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .unwrap();
        let mut recovered = false;
        for i in 0..20 {
            match store.append(text("alice", Target::User("bob".into()), &format!("after{i}"), "x", 2)).await
            {
                Ok(_) => {
                    recovered = true;
                    break;
                }
                Err(StoreError::Unavailable(_)) => {}
                Err(e) => panic!("a cut connection must read as Unavailable, got {e:?}"),
            }
        }
        assert!(recovered, "the pool replaces cut connections");
        let (msgs, _) = store.history(&Conv::dm("alice", "bob"), Page::After(0), 100).await.unwrap();
        let seqs: Vec<u64> = msgs.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, (1..=msgs.len() as u64).collect::<Vec<_>>());
        let cids: HashSet<&str> = msgs.iter().map(|m| m.cid.as_str()).collect();
        assert_eq!(cids.len(), msgs.len());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sessions_commit_synchronously() {
        let Some(url) = pg_harness::fresh_database().await else { return };
        // Even when the database's default says otherwise.
        raw(&url)
            .await
            .batch_execute(
                "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET synchronous_commit = off', current_database()); END $$",
            )
            .await
            .unwrap();
        let check = raw(&url).await;
        let default: String = check.query_one("SHOW synchronous_commit", &[]).await.unwrap().get(0);
        assert_eq!(default, "off", "the test really changed the default");
        let store = PostgresStore::connect(&url).await.unwrap();
        let c = store.client().await.unwrap();
        let setting: String = c.query_one("SHOW synchronous_commit", &[]).await.unwrap().get(0);
        assert_eq!(setting, "on");
    }

    /// Rows written with each historical schema, by raw SQL as that version
    /// of the code would have stored them. Entry `i` is data for schema
    /// version `i + 1`; add one with every migration.
    const FIXTURES: &[&str] = &[
        // v1
        r#"
        INSERT INTO users VALUES ('alice', 1, 2), ('bob', 1, 3);
        INSERT INTO profiles VALUES ('alice', 'Alice', 'avatar:1', 'hi');
        INSERT INTO last_seen VALUES ('bob', 50);
        INSERT INTO conversations VALUES ('dm:alice:bob', 2, 20), ('ch:lobby', 1, 30);
        INSERT INTO messages (conv, seq, mid, cid, sender, target, kind, body, reply_to, ts) VALUES
            ('dm:alice:bob', 1, 'M1', 'c1', 'alice', '{"user":"bob"}', 'text', '{"text":"one"}', NULL, 10),
            ('dm:alice:bob', 2, 'M2', 'c2', 'bob', '{"user":"alice"}', 'text', '{"text":"two"}', 'M1', 20),
            ('ch:lobby', 1, 'M3', 'c1', 'bob', '{"channel":"lobby"}', 'custom', '{"k":[1,2]}', NULL, 30);
        INSERT INTO dm_members VALUES ('alice', 'dm:alice:bob', 'bob'), ('bob', 'dm:alice:bob', 'alice');
        INSERT INTO cursors VALUES ('dm:alice:bob', 'bob', 2, 1);
        INSERT INTO channels VALUES ('lobby', 'Lobby', '', false, NULL, 1);
        INSERT INTO channels VALUES ('team', 'Team', '', true, 'alice', 2), ('gone', 'Gone', '', false, 'carol', 3);
        INSERT INTO channel_members (channel, user_id, joined) VALUES ('lobby', 'bob', 5), ('lobby', 'alice', 6);
        INSERT INTO channel_members (channel, user_id, joined) VALUES
            ('team', 'bob', 7), ('team', 'alice', 8), ('gone', 'dave', 9), ('gone', 'erin', 10);
        INSERT INTO invites VALUES ('i1', 'alice', 'bob', 'call-i1', '{"a":1}', 'pending', 100, 200, true, NULL, NULL);
        INSERT INTO media VALUES ('m_1', 'alice', 'text/plain', 2, 'ff', 9);
        INSERT INTO media_blobs VALUES ('m_1', '\x6869');
        "#,
        // v2
        r#"
        INSERT INTO conversations (conv, last_seq, last_ts, rel_count) VALUES ('dm:bob:carol', 5, 44, 3);
        INSERT INTO messages (conv, seq, mid, cid, sender, target, kind, body, reply_to, ts,
                              rel_target, rel_count, edited_text, edited_ts, recalled, pinned, pin_seq) VALUES
            ('dm:bob:carol', 1, 'N1', 'n1', 'bob', '{"user":"carol"}', 'text',
             '{"text":"hey @carol","mentions":["carol"]}', NULL, 40, NULL, 0, 'hi @carol', 42, false, 43, 4),
            ('dm:bob:carol', 2, 'N2', 'n2', 'carol', '{"user":"bob"}', 'text', '{"text":"yo"}', NULL, 41,
             NULL, 0, NULL, NULL, false, NULL, NULL),
            ('dm:bob:carol', 3, 'N3', 'n3', 'bob', '{"user":"carol"}', 'edit', '{"target":"N1","text":"hi @carol"}',
             NULL, 42, 'N1', 1, NULL, NULL, false, NULL, NULL),
            ('dm:bob:carol', 4, 'N4', 'n4', 'carol', '{"user":"bob"}', 'pin', '{"target":"N1","on":true}', NULL, 43,
             'N1', 2, NULL, NULL, false, NULL, NULL),
            ('dm:bob:carol', 5, 'N5', 'n5', 'carol', '{"user":"bob"}', 'reaction',
             '{"target":"N1","key":"👍","on":true}', NULL, 44, 'N1', 3, NULL, NULL, false, NULL, NULL);
        INSERT INTO dm_members VALUES ('bob', 'dm:bob:carol', 'carol'), ('carol', 'dm:bob:carol', 'bob');
        INSERT INTO reactions VALUES ('dm:bob:carol', 1, '👍', 'carol', 5);
        INSERT INTO mentions VALUES ('carol', 'dm:bob:carol', 1);
        INSERT INTO channel_removals VALUES ('team', 'zed');
        "#,
    ];

    #[test]
    fn every_migration_has_a_fixture() {
        assert_eq!(FIXTURES.len(), MIGRATIONS.len());
    }

    /// Builds schema `version` holding the fixtures of every version up to
    /// it, as an older build would have left the database.
    async fn build_historical(url: &str, version: usize) {
        let mut script = String::from("BEGIN;\n");
        if version > 0 {
            script += SCHEMA_TABLE;
            script += ";\n";
        }
        for v in 0..version {
            script += MIGRATIONS[v];
            script += FIXTURES[v];
            script += &format!("INSERT INTO courier_schema (version) VALUES ({});\n", v + 1);
        }
        script += "COMMIT;";
        raw(url).await.batch_execute(&script).await.unwrap();
    }

    /// Tables, columns, constraints and indexes of a database, comparable.
    async fn schema_of(url: &str) -> Vec<String> {
        let db = raw(url).await;
        let rows = db
            .query(
                "SELECT format('column %s.%s %s %s %s %s', table_name, column_name, data_type, is_nullable, \
                     coalesce(column_default, '-'), coalesce(collation_name, '-')) \
                 FROM information_schema.columns WHERE table_schema = 'public' \
                 UNION ALL \
                 SELECT format('index %s', indexdef) FROM pg_indexes WHERE schemaname = 'public' \
                 UNION ALL \
                 SELECT format('constraint %s %s', conname, pg_get_constraintdef(oid)) FROM pg_constraint \
                 WHERE connamespace = 'public'::regnamespace \
                 ORDER BY 1",
                &[],
            )
            .await
            .unwrap();
        rows.iter().map(|r| r.get(0)).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_historical_schema_migrates_to_the_current_one() {
        let Some(fresh_url) = pg_harness::fresh_database().await else { return };
        PostgresStore::connect(&fresh_url).await.unwrap().close().await.unwrap();
        let current = schema_of(&fresh_url).await;

        for version in 0..=MIGRATIONS.len() {
            let url = pg_harness::fresh_database().await.unwrap();
            build_historical(&url, version).await;
            let store = PostgresStore::connect(&url)
                .await
                .unwrap_or_else(|e| panic!("opening a v{version} database: {e}"));
            check_migrated_fixtures(&store, version).await;
            store.close().await.unwrap();
            let versions: Vec<i32> = raw(&url)
                .await
                .query("SELECT version FROM courier_schema ORDER BY version", &[])
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            assert_eq!(versions, (1..=SCHEMA_VERSION).collect::<Vec<_>>(), "from v{version}");
            assert_eq!(
                schema_of(&url).await,
                current,
                "schema migrated from v{version} differs from a fresh one"
            );
        }
    }
}
