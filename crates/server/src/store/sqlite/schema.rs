//! The SQLite schema: one script per version, and opening checks. A file
//! that is not SQLite, not Courier's, or from a newer build is refused and
//! left untouched; the missing scripts run in one transaction.

use crate::store::{StoreError, StoreResult};
use rusqlite::{Connection, TransactionBehavior};
use std::path::Path;

/// Marks a file as Courier's (`PRAGMA application_id`, "CRR1").
pub(super) const APPLICATION_ID: i64 = 0x4352_5231;

/// Schema scripts; entry `i` takes a database from `user_version` `i` to
/// `i + 1`. Append only: a released entry never changes, because databases
/// in the field were built from it.
pub const MIGRATIONS: &[&str] = &[
    // v1
    r#"
    -- Everyone who ever signed in ("known" to call invitations).
    CREATE TABLE users (
        user_id    TEXT PRIMARY KEY,
        created    INTEGER NOT NULL,
        last_login INTEGER NOT NULL
    ) WITHOUT ROWID;

    -- Profile fields a user set; a NULL name shows as the user id.
    CREATE TABLE profiles (
        user_id TEXT PRIMARY KEY,
        name    TEXT,
        avatar  TEXT NOT NULL DEFAULT '',
        status  TEXT NOT NULL DEFAULT ''
    ) WITHOUT ROWID;

    -- When each user's last session ended.
    CREATE TABLE last_seen (
        user_id TEXT PRIMARY KEY,
        ts      INTEGER NOT NULL
    ) WITHOUT ROWID;

    -- One row per conversation with at least one message: the seq counter.
    CREATE TABLE conversations (
        conv     TEXT PRIMARY KEY,
        last_seq INTEGER NOT NULL,
        last_ts  INTEGER NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE messages (
        id       INTEGER PRIMARY KEY,
        conv     TEXT NOT NULL REFERENCES conversations (conv),
        seq      INTEGER NOT NULL,
        mid      TEXT NOT NULL UNIQUE,
        cid      TEXT NOT NULL,
        sender   TEXT NOT NULL,
        target   TEXT NOT NULL,   -- the Target as JSON: {"user":..} / {"channel":..}
        kind     TEXT NOT NULL,
        body     TEXT NOT NULL,   -- compact JSON object
        reply_to TEXT,
        ts       INTEGER NOT NULL,
        UNIQUE (conv, seq),
        UNIQUE (sender, cid)      -- idempotency, forever
    );

    -- The DMs each party sees in sync, written with the first message.
    CREATE TABLE dm_members (
        user_id TEXT NOT NULL,
        conv    TEXT NOT NULL REFERENCES conversations (conv),
        peer    TEXT NOT NULL,
        PRIMARY KEY (user_id, conv)
    ) WITHOUT ROWID;

    CREATE TABLE cursors (
        conv     TEXT NOT NULL,
        user_id  TEXT NOT NULL,
        recv_seq INTEGER NOT NULL,
        read_seq INTEGER NOT NULL,
        PRIMARY KEY (conv, user_id)
    ) WITHOUT ROWID;

    CREATE TABLE channels (
        name       TEXT PRIMARY KEY,
        title      TEXT NOT NULL,
        topic      TEXT NOT NULL,
        private    INTEGER NOT NULL,
        created_by TEXT,
        created    INTEGER NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE channel_members (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,   -- joining order
        channel TEXT NOT NULL REFERENCES channels (name),
        user_id TEXT NOT NULL,
        joined  INTEGER NOT NULL,
        UNIQUE (channel, user_id)
    );
    CREATE INDEX channel_members_by_user ON channel_members (user_id);

    CREATE TABLE invites (
        iid       TEXT PRIMARY KEY,
        sender    TEXT NOT NULL,
        recipient TEXT NOT NULL,
        room      TEXT NOT NULL,
        content   TEXT NOT NULL,  -- JSON object
        state     TEXT NOT NULL,
        created   INTEGER NOT NULL,
        expires   INTEGER NOT NULL,
        received  INTEGER NOT NULL,
        reason    TEXT,
        response  TEXT            -- JSON object
    );
    CREATE INDEX invites_pending_by_sender ON invites (sender) WHERE state = 'pending';
    CREATE INDEX invites_pending_by_recipient ON invites (recipient) WHERE state = 'pending';

    CREATE TABLE media (
        id      TEXT PRIMARY KEY,
        owner   TEXT NOT NULL,
        mime    TEXT NOT NULL,
        size    INTEGER NOT NULL,
        sha256  TEXT NOT NULL,
        created INTEGER NOT NULL
    ) WITHOUT ROWID;

    -- Bytes apart from the facts, so listing facts never pages blobs in.
    CREATE TABLE media_blobs (
        id    TEXT PRIMARY KEY REFERENCES media (id),
        bytes BLOB NOT NULL
    );
    "#,
    // v2: protocol v1.1 (edits, recalls, reactions, pins, mentions, roles)
    r#"
    -- Relation messages (edit, recall, reaction, pin) name their target;
    -- content messages carry what their relations did, so a history page
    -- never scans relations. All of it is written in the relation's
    -- transaction.
    ALTER TABLE messages ADD COLUMN rel_target TEXT;       -- relations: the target's mid
    -- Relation messages of the conversation up to and including this one
    -- (content messages up to seq n = n - this), for unread counts.
    ALTER TABLE messages ADD COLUMN rel_count INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN edited_text TEXT;      -- the newest edit's text
    ALTER TABLE messages ADD COLUMN edited_ts INTEGER;     -- and that edit's ts
    ALTER TABLE messages ADD COLUMN recalled INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN pinned INTEGER;        -- ts of the pin, while pinned
    ALTER TABLE messages ADD COLUMN pin_seq INTEGER;       -- seq of that pin: pinned-list order
    CREATE INDEX messages_edits ON messages (rel_target) WHERE kind = 'edit';
    CREATE INDEX messages_own_content ON messages (conv, sender, seq) WHERE rel_target IS NULL;
    CREATE INDEX messages_recalled ON messages (conv, seq) WHERE recalled = 1;
    CREATE INDEX messages_pinned ON messages (conv, pin_seq) WHERE pin_seq IS NOT NULL;

    -- Relation messages in the conversation.
    ALTER TABLE conversations ADD COLUMN rel_count INTEGER NOT NULL DEFAULT 0;

    -- Reactions that are on: one row per (target, key, user).
    CREATE TABLE reactions (
        conv       TEXT NOT NULL,
        target_seq INTEGER NOT NULL,
        key        TEXT NOT NULL,
        user_id    TEXT NOT NULL,
        seq        INTEGER NOT NULL,   -- the reaction that turned it on: order of users
        PRIMARY KEY (conv, target_seq, key, user_id)
    ) WITHOUT ROWID;

    -- Who a (not recalled) message mentions, for mentions_unread; never
    -- the message's own sender.
    CREATE TABLE mentions (
        user_id TEXT NOT NULL,
        conv    TEXT NOT NULL,
        seq     INTEGER NOT NULL,
        PRIMARY KEY (user_id, conv, seq)
    ) WITHOUT ROWID;

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
        channel TEXT NOT NULL REFERENCES channels (name),
        user_id TEXT NOT NULL,
        PRIMARY KEY (channel, user_id)
    ) WITHOUT ROWID;
    "#,
    // v3: a conversation's counters are read from its newest message
    r#"
    -- last_seq, last_ts and rel_count were rewritten with every message: one
    -- more scattered page in every commit. The newest row of the
    -- conversation holds the same values (seq, ts, rel_count; messages are
    -- never deleted), read through the (conv, seq) index. The table stays
    -- as the list of conversations the messages refer to.
    ALTER TABLE conversations DROP COLUMN last_seq;
    ALTER TABLE conversations DROP COLUMN last_ts;
    ALTER TABLE conversations DROP COLUMN rel_count;
    "#,
    // v4: the user's own content messages after the read cursor are
    // counted in the cursor row
    r#"
    -- messages_own_content put one more entry at a scattered place of a
    -- large index with every message, for one count in the conversation
    -- list. A counter in the sender's cursor row (a small, hot table) does
    -- the same: raised by each content message of the user, set again when
    -- the read cursor moves.
    ALTER TABLE cursors ADD COLUMN own_after INTEGER NOT NULL DEFAULT 0;
    INSERT INTO cursors (conv, user_id, recv_seq, read_seq, own_after)
        SELECT m.conv, m.sender, 0, 0, count(*) FROM messages m
        WHERE m.rel_target IS NULL AND m.seq > coalesce(
            (SELECT c.read_seq FROM cursors c WHERE c.conv = m.conv AND c.user_id = m.sender), 0)
        GROUP BY m.conv, m.sender
        ON CONFLICT (conv, user_id) DO UPDATE SET own_after = excluded.own_after;
    DROP INDEX messages_own_content;
    "#,
    // v5: the idempotency key is indexed cid first
    r#"
    -- UNIQUE (sender, cid) put each message's key at its sender's place in
    -- a large index: one more scattered page in every commit per sender.
    -- Ordered (cid, sender), the keys of time-ordered cids (ULIDs, as the
    -- reference client sends) arrive at the end of the index, on the same
    -- few pages for every sender of a commit; random cids cost what they
    -- did. The same constraint, so the table is rebuilt around it, with its
    -- rowids (the message count), columns and other indexes unchanged.
    CREATE TABLE messages_v5 (
        id          INTEGER PRIMARY KEY,
        conv        TEXT NOT NULL REFERENCES conversations (conv),
        seq         INTEGER NOT NULL,
        mid         TEXT NOT NULL UNIQUE,
        cid         TEXT NOT NULL,
        sender      TEXT NOT NULL,
        target      TEXT NOT NULL,   -- the Target as JSON: {"user":..} / {"channel":..}
        kind        TEXT NOT NULL,
        body        TEXT NOT NULL,   -- compact JSON object
        reply_to    TEXT,
        ts          INTEGER NOT NULL,
        rel_target  TEXT,            -- relations: the target's mid
        rel_count   INTEGER NOT NULL DEFAULT 0,
        edited_text TEXT,
        edited_ts   INTEGER,
        recalled    INTEGER NOT NULL DEFAULT 0,
        pinned      INTEGER,
        pin_seq     INTEGER,
        UNIQUE (conv, seq),
        UNIQUE (cid, sender)         -- idempotency, forever
    );
    INSERT INTO messages_v5 (id, conv, seq, mid, cid, sender, target, kind, body, reply_to, ts,
                             rel_target, rel_count, edited_text, edited_ts, recalled, pinned, pin_seq)
        SELECT id, conv, seq, mid, cid, sender, target, kind, body, reply_to, ts,
               rel_target, rel_count, edited_text, edited_ts, recalled, pinned, pin_seq
        FROM messages ORDER BY id;
    DROP TABLE messages;
    ALTER TABLE messages_v5 RENAME TO messages;
    CREATE INDEX messages_edits ON messages (rel_target) WHERE kind = 'edit';
    CREATE INDEX messages_recalled ON messages (conv, seq) WHERE recalled = 1;
    CREATE INDEX messages_pinned ON messages (conv, pin_seq) WHERE pin_seq IS NOT NULL;
    "#,
    // v6: the (conv, seq) order is indexed in bulk, off each send's commit
    r#"
    -- UNIQUE (conv, seq) put every message at the end of its conversation's
    -- run in a large index: one scattered page per conversation in every
    -- commit, two thirds of the pages a commit wrote. The same order now
    -- lives in message_order, filled by the writer in bulk: every few
    -- hundred messages, the rows past message_order_mark are inserted in
    -- (conv, seq) order, so a page takes all of a conversation's new
    -- entries at once. Reads take the rows past the mark (the tail: a
    -- conversation's newest, in rowid order, since seq grows with the
    -- rowid in a conversation) from the table and the rest through
    -- message_order. The table is rebuilt without the constraint, with its
    -- rowids, columns and other indexes unchanged.
    CREATE TABLE messages_v6 (
        id          INTEGER PRIMARY KEY,
        conv        TEXT NOT NULL REFERENCES conversations (conv),
        seq         INTEGER NOT NULL,
        mid         TEXT NOT NULL UNIQUE,
        cid         TEXT NOT NULL,
        sender      TEXT NOT NULL,
        target      TEXT NOT NULL,   -- the Target as JSON: {"user":..} / {"channel":..}
        kind        TEXT NOT NULL,
        body        TEXT NOT NULL,   -- compact JSON object
        reply_to    TEXT,
        ts          INTEGER NOT NULL,
        rel_target  TEXT,            -- relations: the target's mid
        rel_count   INTEGER NOT NULL DEFAULT 0,
        edited_text TEXT,
        edited_ts   INTEGER,
        recalled    INTEGER NOT NULL DEFAULT 0,
        pinned      INTEGER,
        pin_seq     INTEGER,
        UNIQUE (cid, sender)         -- idempotency, forever
    );
    INSERT INTO messages_v6 (id, conv, seq, mid, cid, sender, target, kind, body, reply_to, ts,
                             rel_target, rel_count, edited_text, edited_ts, recalled, pinned, pin_seq)
        SELECT id, conv, seq, mid, cid, sender, target, kind, body, reply_to, ts,
               rel_target, rel_count, edited_text, edited_ts, recalled, pinned, pin_seq
        FROM messages ORDER BY id;
    DROP TABLE messages;
    ALTER TABLE messages_v6 RENAME TO messages;
    CREATE INDEX messages_edits ON messages (rel_target) WHERE kind = 'edit';
    CREATE INDEX messages_recalled ON messages (conv, seq) WHERE recalled = 1;
    CREATE INDEX messages_pinned ON messages (conv, pin_seq) WHERE pin_seq IS NOT NULL;
    -- Each message up to the mark, by conversation and seq (unique, as the
    -- constraint was).
    CREATE TABLE message_order (
        conv TEXT NOT NULL,
        seq  INTEGER NOT NULL,
        id   INTEGER NOT NULL,
        PRIMARY KEY (conv, seq)
    ) WITHOUT ROWID;
    INSERT INTO message_order (conv, seq, id) SELECT conv, seq, id FROM messages ORDER BY conv, seq;
    -- The highest rowid in message_order: rows above it are the tail.
    CREATE TABLE message_order_mark (
        only INTEGER PRIMARY KEY CHECK (only = 1),
        id   INTEGER NOT NULL
    );
    INSERT INTO message_order_mark (only, id) SELECT 1, coalesce(max(id), 0) FROM messages;
    "#,
    // v7: each conversation's span of the tail, found in one lookup
    r#"
    -- A reader that wanted a conversation's newest message, or its messages
    -- in the tail, scanned the whole tail (a few hundred rows) to learn
    -- that most conversations have none there. Each conversation with
    -- messages above message_order_mark has its lowest and newest rowid
    -- here; the row goes when the tail is indexed. A small table: a commit
    -- rewrites a few of its pages, not one per conversation.
    CREATE TABLE message_tail (
        conv      TEXT PRIMARY KEY,
        first_id  INTEGER NOT NULL,
        newest_id INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO message_tail (conv, first_id, newest_id)
        SELECT conv, min(id), max(id) FROM messages
        WHERE id > (SELECT id FROM message_order_mark) GROUP BY conv;
    "#,
    // v8: the tail is indexed a conversation at a time (store/sqlite/tail.rs)
    r#"
    -- No message row changes. From v8 on, a conversation's messages not yet in
    -- message_order are its rows from message_tail.first_id on, and the
    -- mark is one below the oldest of them: rows above the mark may already
    -- be in message_order. A v7 database already satisfies this; the
    -- version keeps a v7 build (which indexes every row above the mark at
    -- once, and would fail on those already indexed) from opening it.
    --
    -- Each cursor keeps the relation count of the message at its read_seq
    -- (unread counts need it): the conversation list read it by finding
    -- that message, which may now be anywhere in its conversation's tail.
    ALTER TABLE cursors ADD COLUMN read_rel INTEGER NOT NULL DEFAULT 0;
    UPDATE cursors SET read_rel = coalesce((SELECT m.rel_count FROM messages m WHERE m.id = coalesce(
        (SELECT o.id FROM message_order o WHERE o.conv = cursors.conv AND o.seq = cursors.read_seq),
        (SELECT t.id FROM messages t WHERE t.id > (SELECT id FROM message_order_mark)
            AND t.conv = cursors.conv AND t.seq = cursors.read_seq))), 0)
    WHERE read_seq > 0;
    "#,
    // v9: sync's recent invitations by index
    r#"
    -- A user's invitations of the last minutes (sync's recent_invites) are
    -- found by (sender, created) and (recipient, created), not by reading
    -- every invitation ever made.
    CREATE INDEX invites_by_sender ON invites (sender, created);
    CREATE INDEX invites_by_recipient ON invites (recipient, created);
    "#,
    // v10: whether a user has written in a conversation, in their cursor
    r#"
    -- Presence privacy asks whether both parties of a DM have written in
    -- it. Without an index by sender that read the DM until it found one,
    -- all of it for a party who never wrote: a watch of someone who never
    -- answered a long one-sided DM cost a pass over it per entry. The
    -- sender's cursor row, written by each of their content messages
    -- anyway, now says so.
    ALTER TABLE cursors ADD COLUMN wrote INTEGER NOT NULL DEFAULT 0;
    INSERT INTO cursors (conv, user_id, recv_seq, read_seq, own_after, wrote)
        SELECT DISTINCT conv, sender, 0, 0, 0, 1 FROM messages WHERE rel_target IS NULL
        ON CONFLICT (conv, user_id) DO UPDATE SET wrote = 1;
    "#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

// ---------------------------------------------------------------------------
// Opening and migrating

/// Refuses files that are not SQLite, not Courier's, or from a newer build.
/// Reads only.
pub(super) fn check_identity(conn: &Connection, path: &Path) -> StoreResult<()> {
    // Parsing the schema makes SQLite read and validate the header and page 1.
    let objects: i64 = conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let app: i64 = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
    if app != 0 && app != APPLICATION_ID {
        return Err(StoreError::Unusable(format!(
            "{} belongs to another application (application_id {app:#x}); it was left untouched",
            path.display()
        )));
    }
    if version < 0 {
        return Err(StoreError::Unusable(format!(
            "{} has an invalid schema version {version}; it was left untouched",
            path.display()
        )));
    }
    if version == 0 && objects > 0 {
        return Err(StoreError::Unusable(format!(
            "{} is a SQLite database that Courier did not create (it has tables but no \
             Courier schema version); it was left untouched",
            path.display()
        )));
    }
    if version > SCHEMA_VERSION {
        return Err(StoreError::Unusable(format!(
            "{} has schema version {version}, but this build of courier-server only knows \
             versions up to {SCHEMA_VERSION}; run a newer courier-server or restore a backup \
             (the file was left untouched)",
            path.display()
        )));
    }
    Ok(())
}

/// Applies the migrations the database lacks, all in one transaction.
pub(super) fn migrate(conn: &mut Connection, path: &Path) -> StoreResult<()> {
    let unusable = |e: rusqlite::Error| unusable_if_damaged(path, e);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unusable)?;
    // Read again under the write lock: another process may have migrated.
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(unusable)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Unusable(format!(
            "{} has schema version {version}, newer than this build's {SCHEMA_VERSION}",
            path.display()
        )));
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    for (from, script) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(script).map_err(|e| {
            StoreError::Unusable(format!(
                "{}: migrating schema version {from} to {} failed: {e}",
                path.display(),
                from + 1
            ))
        })?;
    }
    tx.pragma_update(None, "application_id", APPLICATION_ID).map_err(unusable)?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(unusable)?;
    tx.commit().map_err(unusable)?;
    Ok(())
}

/// Turns "not a database" and "corrupt" into [`StoreError::Unusable`] naming
/// the file; other errors stay engine errors.
pub(super) fn unusable_if_damaged(path: &Path, e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
    match e.sqlite_error_code() {
        Some(NotADatabase | DatabaseCorrupt) => StoreError::Unusable(format!(
            "{} is not a SQLite database or is corrupt ({e}); it was left untouched: \
             restore it from a backup or move it away",
            path.display()
        )),
        _ => StoreError::Sqlite(e),
    }
}
