//! The schema: one SQL script per version, applied by [`migrate`] under an
//! advisory lock so nodes starting together migrate one at a time.

use super::pool::pg;
use crate::store::{StoreError, StoreResult};
use deadpool_postgres::Object;

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
    // v3: sync's recent invitations by index
    r#"
    -- A user's invitations of the last minutes (sync's recent_invites) are
    -- found by (sender, created) and (recipient, created), not by reading
    -- every invitation ever made.
    CREATE INDEX invites_by_sender ON invites (sender, created);
    CREATE INDEX invites_by_recipient ON invites (recipient, created);
    "#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// The table recording applied migrations: one row per version. It is not
/// itself a migration, so that its absence means "nothing applied yet".
pub(super) const SCHEMA_TABLE: &str = "CREATE TABLE courier_schema (\
     version INTEGER PRIMARY KEY, \
     applied TIMESTAMPTZ NOT NULL DEFAULT now())";

/// Applies the migrations the database lacks, in one transaction holding
/// the migration lock; refuses a newer schema.
pub(super) async fn migrate(client: &mut Object) -> StoreResult<()> {
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
