//! The schema history of the local store.
//!
//! Each entry of [`MIGRATIONS`] moves a database from `user_version = i` to
//! `i + 1`. Entries are never edited once released: a change is a new entry,
//! and the migration test opens a database at every historical version.

/// Version 1: the core — settings, conversations with their cursors,
/// messages and the outbox.
const V1: &str = r#"
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE conversations (
    conv          TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,             -- 'dm' | 'channel'
    peer          TEXT,
    channel       TEXT,
    -- every message with seq <= synced_seq is stored locally
    synced_seq    INTEGER NOT NULL DEFAULT 0,
    last_seq      INTEGER NOT NULL DEFAULT 0,
    last_ts       INTEGER NOT NULL DEFAULT 0,
    read_seq      INTEGER NOT NULL DEFAULT 0,
    read_sent_seq INTEGER NOT NULL DEFAULT 0, -- highest read cursor the server knows
    acked_seq     INTEGER NOT NULL DEFAULT 0, -- highest receive cursor the server knows
    peer_read_seq INTEGER NOT NULL DEFAULT 0,
    peer_recv_seq INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE messages (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,  -- local order of creation
    conv     TEXT NOT NULL,
    seq      INTEGER,                            -- NULL until the server stored it
    mid      TEXT,
    cid      TEXT NOT NULL,
    sender   TEXT NOT NULL,
    target   TEXT NOT NULL,                      -- JSON target as addressed
    kind     TEXT NOT NULL,
    body     TEXT NOT NULL,                      -- JSON object
    ts       INTEGER,
    reply_to TEXT,
    status   TEXT NOT NULL,                      -- pending | sent | failed | received
    error    TEXT,
    created  INTEGER NOT NULL,
    UNIQUE (conv, seq),
    UNIQUE (sender, cid)
);

CREATE TABLE outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,  -- FIFO order
    message_id INTEGER NOT NULL UNIQUE REFERENCES messages(id) ON DELETE CASCADE,
    conv       TEXT NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX outbox_by_conv ON outbox (conv, id);
"#;

/// Version 2: profiles cache, invitations mirror, drafts, media cache and the
/// full-text index (backfilled from the messages already stored).
const V2: &str = r#"
CREATE TABLE profiles (
    user    TEXT PRIMARY KEY,
    name    TEXT NOT NULL,
    avatar  TEXT NOT NULL,
    status  TEXT NOT NULL,
    updated INTEGER NOT NULL
);

CREATE TABLE invites (
    iid     TEXT PRIMARY KEY,
    json    TEXT NOT NULL,
    state   TEXT NOT NULL,
    expires INTEGER NOT NULL,
    updated INTEGER NOT NULL
);

CREATE TABLE drafts (
    conv    TEXT PRIMARY KEY,
    text    TEXT NOT NULL,
    updated INTEGER NOT NULL
);

CREATE TABLE media_cache (
    media   TEXT PRIMARY KEY,
    path    TEXT NOT NULL,
    mime    TEXT NOT NULL,
    size    INTEGER NOT NULL,
    fetched INTEGER NOT NULL
);

CREATE VIRTUAL TABLE messages_fts USING fts5 (text, tokenize = 'unicode61');

INSERT INTO messages_fts (rowid, text)
    SELECT id, coalesce(json_extract(body, '$.text'), json_extract(body, '$.name'))
    FROM messages
    WHERE coalesce(json_extract(body, '$.text'), json_extract(body, '$.name')) IS NOT NULL;

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages
WHEN coalesce(json_extract(new.body, '$.text'), json_extract(new.body, '$.name')) IS NOT NULL
BEGIN
    INSERT INTO messages_fts (rowid, text)
    VALUES (new.id, coalesce(json_extract(new.body, '$.text'), json_extract(new.body, '$.name')));
END;

CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
BEGIN
    DELETE FROM messages_fts WHERE rowid = old.id;
END;

CREATE TRIGGER messages_fts_update AFTER UPDATE OF body ON messages
BEGIN
    DELETE FROM messages_fts WHERE rowid = old.id;
    INSERT INTO messages_fts (rowid, text)
    SELECT new.id, coalesce(json_extract(new.body, '$.text'), json_extract(new.body, '$.name'))
    WHERE coalesce(json_extract(new.body, '$.text'), json_extract(new.body, '$.name')) IS NOT NULL;
END;
"#;

/// Version 3 (protocol v1.1): relation messages (`edit`, `recall`,
/// `reaction`, `pin`) name their target's mid in `rel_target` and never
/// enter the search index. A content message keeps what it was sent or
/// served with (`base_body`, and `base_agg`: the aggregates a v1.1 server
/// serves in history, reflecting every relation up to `agg_seq`) next to
/// what it shows once later relations are applied (`body`, `edited`,
/// `reactions`, `recalled`, `pinned`). A conversation keeps the pinned list
/// of the last v1.1 sync (`pins`, valid up to `pins_seq`).
///
/// Relation messages that a version-2 client stored as plain messages get
/// their `rel_target` here; their effect on the targets is computed by the
/// code right after this migration (`store::relations::recompute_all`).
const V3: &str = r#"
ALTER TABLE messages ADD COLUMN rel_target TEXT;
ALTER TABLE messages ADD COLUMN base_body TEXT;
ALTER TABLE messages ADD COLUMN base_agg TEXT;
ALTER TABLE messages ADD COLUMN agg_seq INTEGER;
ALTER TABLE messages ADD COLUMN edited INTEGER;
ALTER TABLE messages ADD COLUMN reactions TEXT;
ALTER TABLE messages ADD COLUMN recalled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN pinned INTEGER;

ALTER TABLE conversations ADD COLUMN pins TEXT;
ALTER TABLE conversations ADD COLUMN pins_seq INTEGER NOT NULL DEFAULT 0;

UPDATE messages SET rel_target = json_extract(body, '$.target')
WHERE kind IN ('edit', 'recall', 'reaction', 'pin');
UPDATE messages SET base_body = body, agg_seq = seq
WHERE kind NOT IN ('edit', 'recall', 'reaction', 'pin');

CREATE INDEX messages_by_mid ON messages (conv, mid);
CREATE INDEX messages_by_target ON messages (conv, rel_target) WHERE rel_target IS NOT NULL;
CREATE INDEX messages_relations ON messages (conv, kind, seq) WHERE rel_target IS NOT NULL;

DROP TRIGGER messages_fts_insert;
DROP TRIGGER messages_fts_update;

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages
WHEN new.kind NOT IN ('edit', 'recall', 'reaction', 'pin')
 AND coalesce(json_extract(new.body, '$.text'), json_extract(new.body, '$.name')) IS NOT NULL
BEGIN
    INSERT INTO messages_fts (rowid, text)
    VALUES (new.id, coalesce(json_extract(new.body, '$.text'), json_extract(new.body, '$.name')));
END;

CREATE TRIGGER messages_fts_update AFTER UPDATE OF body ON messages
BEGIN
    DELETE FROM messages_fts WHERE rowid = old.id;
    INSERT INTO messages_fts (rowid, text)
    SELECT new.id, coalesce(json_extract(new.body, '$.text'), json_extract(new.body, '$.name'))
    WHERE new.kind NOT IN ('edit', 'recall', 'reaction', 'pin')
      AND coalesce(json_extract(new.body, '$.text'), json_extract(new.body, '$.name')) IS NOT NULL;
END;

DELETE FROM messages_fts
WHERE rowid IN (SELECT id FROM messages WHERE kind IN ('edit', 'recall', 'reaction', 'pin'));
"#;

/// Version 4 (message formatting): the search index holds a message's
/// words without their Markdown markup (`courier_search_text`, registered on
/// every connection by `store::search::register_functions`), so a search
/// matches words, not markup or a code block's language; file names stay as
/// they are. The index is rebuilt.
const V4: &str = r#"
DROP TRIGGER messages_fts_insert;
DROP TRIGGER messages_fts_update;

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages
WHEN new.kind NOT IN ('edit', 'recall', 'reaction', 'pin')
 AND coalesce(json_extract(new.body, '$.text'), json_extract(new.body, '$.name')) IS NOT NULL
BEGIN
    INSERT INTO messages_fts (rowid, text)
    VALUES (new.id, courier_search_text(new.kind, coalesce(json_extract(new.body, '$.text'), json_extract(new.body, '$.name'))));
END;

CREATE TRIGGER messages_fts_update AFTER UPDATE OF body ON messages
BEGIN
    DELETE FROM messages_fts WHERE rowid = old.id;
    INSERT INTO messages_fts (rowid, text)
    SELECT new.id, courier_search_text(new.kind, coalesce(json_extract(new.body, '$.text'), json_extract(new.body, '$.name')))
    WHERE new.kind NOT IN ('edit', 'recall', 'reaction', 'pin')
      AND coalesce(json_extract(new.body, '$.text'), json_extract(new.body, '$.name')) IS NOT NULL;
END;

DELETE FROM messages_fts;
INSERT INTO messages_fts (rowid, text)
    SELECT id, courier_search_text(kind, coalesce(json_extract(body, '$.text'), json_extract(body, '$.name')))
    FROM messages
    WHERE kind NOT IN ('edit', 'recall', 'reaction', 'pin')
      AND coalesce(json_extract(body, '$.text'), json_extract(body, '$.name')) IS NOT NULL;
"#;

/// Version 5: the channels this user left or was removed from, so that a
/// message arriving late for one does not bring it back (with everything
/// unread) until the user is a member again.
const V5: &str = r#"
CREATE TABLE left_channels (
    conv TEXT PRIMARY KEY
);
"#;

/// Version 6: a content message records how far what it shows is folded
/// from its relations (`rel_seq`: every stored relation up to that seq, and
/// no pending one; NULL when unknown), so a new reaction is folded onto it
/// instead of re-reading every earlier relation; relations are indexed by
/// target and seq for that. NULL everywhere at first: the next relation of
/// a message folds from its base once and sets it.
const V6: &str = r#"
ALTER TABLE messages ADD COLUMN rel_seq INTEGER;
DROP INDEX messages_by_target;
CREATE INDEX messages_by_target ON messages (conv, rel_target, seq) WHERE rel_target IS NOT NULL;
"#;

/// Version 7: a conversation's messages by sender, so that whether this
/// user has written in a DM is one index lookup (a DM they never answered
/// gets no delivery acks: see `Store::acks_to_send`).
const V7: &str = r#"
CREATE INDEX messages_by_sender ON messages (conv, sender);
"#;

/// Every migration, in order; `MIGRATIONS.len()` is the current version.
pub const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5, V6, V7];

/// The schema version this code writes.
pub const CURRENT_VERSION: u32 = MIGRATIONS.len() as u32;
