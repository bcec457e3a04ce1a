//! The local store: one SQLite file per account holding conversations,
//! every message (unique on `conv+seq` and on `sender+cid`), the outbox,
//! cursors, profiles, invitations, drafts and a full-text index.
//!
//! All writes that belong together (a message and its outbox row; a page of
//! history and the cursor it advances) happen in one transaction, so a crash
//! at any point leaves a consistent store. Opening never deletes anything: a
//! corrupt file or one written by newer code is an error the user sees.
//!
//! # Layout
//! This file holds the [`Store`] type, `open` and migration, and the
//! connection mechanics (`with`, `tx`, `durable_tx`, `tx_files`). Each area
//! adds its own `impl Store` block in its own file:
//! - `schema`: the migrations; `rows`: a `messages` row to a [`MessageView`](crate::model::MessageView);
//! - `outbox`: queuing own messages and the outcome of each send;
//! - `incoming`: applying messages from the server; `relations`: edits,
//!   recalls, reactions and pins applied to their targets;
//! - `messages`: reading history; `search`: the full-text index;
//! - `conversations`: conversation rows and the list; `cursors`: synced,
//!   read and receive cursors and receipts;
//! - `invites`, `profiles`, `drafts`, `media` (the media cache), `settings`.
//!
//! Each file's unit tests sit at its end; `test_support` holds their fixtures.

mod conversations;
mod cursors;
mod drafts;
mod incoming;
mod invites;
mod media;
mod messages;
mod outbox;
mod profiles;
pub(crate) mod relations;
mod rows;
pub mod schema;
mod search;
mod settings;

pub use incoming::Applied;
pub use outbox::{NewMessage, OutboxItem};

use rusqlite::{Connection, Transaction};
use schema::{CURRENT_VERSION, MIGRATIONS};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The file name of the store inside an account's data directory.
pub const DB_FILE: &str = "courier.db";

/// Errors of the local store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("local store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored JSON column did not parse.
    #[error("local store holds malformed JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The database was written by a newer version of the client.
    #[error(
        "the local store {path} has schema version {found}, newer than this client supports ({supported}); \
         upgrade the client (the file was left untouched)"
    )]
    TooNew {
        /// The file.
        path: PathBuf,
        /// Its `user_version`.
        found: u32,
        /// The newest version this code knows.
        supported: u32,
    },
    /// The file is not a readable SQLite database.
    #[error(
        "the local store {path} is corrupt or not a Courier database ({detail}); it was left untouched — move it away to start over"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        detail: String,
    },
    /// The data directory belongs to another account.
    #[error(
        "this data directory belongs to user {stored:?}, not {requested:?}; use one --data directory per account"
    )]
    AccountMismatch {
        /// The user recorded in the store.
        stored: String,
        /// The user of the current token.
        requested: String,
    },
    /// A message was to be queued for a channel the user left (or was
    /// removed from): the server would refuse it, and queuing it would bring
    /// the channel back locally while its messages are kept out.
    #[error("you are no longer a member of {conv}; join it again to send there")]
    LeftChannel {
        /// The channel's conversation.
        conv: courier_proto::Conv,
    },
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

type Result<T> = std::result::Result<T, StoreError>;

/// The local store of one account. Cheap to share behind an `Arc`; calls
/// are short and serialized by an internal mutex.
pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
}

fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::NotADatabase) | Some(rusqlite::ErrorCode::DatabaseCorrupt)
    )
}

impl Store {
    /// Opens (creating if needed) the store at `path`, sets the PRAGMAs and
    /// migrates it to the current schema in one transaction.
    ///
    /// # Errors
    /// [`StoreError::TooNew`] for a database written by newer code,
    /// [`StoreError::Corrupt`] for a file that is not a readable database.
    /// The file is never deleted or rewritten in either case.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io { path: dir.to_owned(), source })?;
        }
        let corrupt = |e: rusqlite::Error| -> StoreError {
            if is_corruption(&e) {
                StoreError::Corrupt { path: path.to_owned(), detail: e.to_string() }
            } else {
                StoreError::Sqlite(e)
            }
        };
        let mut conn = Connection::open(path).map_err(corrupt)?;
        // Reading user_version is the first access to the file: a non-database
        // fails here, before any PRAGMA could try to rewrite it.
        let version: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(corrupt)?;
        if version > CURRENT_VERSION {
            return Err(StoreError::TooNew {
                path: path.to_owned(),
                found: version,
                supported: CURRENT_VERSION,
            });
        }
        conn.pragma_update(None, "journal_mode", "WAL").map_err(corrupt)?;
        // NORMAL: a commit survives a crash of the process (WAL), and may be
        // lost only on power loss. Writes that only this device holds (the
        // outbox) are committed with FULL instead; see `durable_tx`.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        search::register_functions(&conn)?;
        let obsolete = migrate(&mut conn, version).map_err(|e| match e {
            StoreError::Sqlite(e) => corrupt(e),
            other => other,
        })?;
        remove_files(&obsolete);
        Ok(Store { conn: Mutex::new(conn), path: path.to_owned() })
    }

    /// Opens the store of the account whose data directory is `dir`.
    ///
    /// # Errors
    /// As [`Store::open`].
    pub fn open_dir(dir: &Path) -> Result<Store> {
        Store::open(&dir.join(DB_FILE))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn)
    }

    fn tx<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        self.with(|c| {
            let tx = c.transaction()?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })
    }

    /// Like `tx`, but fsynced before returning even on power loss: for
    /// data the server does not have yet (a queued message). Committing
    /// with FULL also makes every earlier NORMAL commit durable.
    fn durable_tx<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        self.with(|c| {
            c.pragma_update(None, "synchronous", "FULL")?;
            let out = (|| {
                let tx = c.transaction()?;
                let out = f(&tx)?;
                tx.commit()?;
                Ok(out)
            })();
            c.pragma_update(None, "synchronous", "NORMAL")?;
            out
        })
    }

    /// Like `tx`, for changes that may make cached media files obsolete
    /// (a recall): `f` lists them, and they are deleted once committed,
    /// before the store is released, so no reader sees the change without
    /// the deletion.
    fn tx_files<T>(&self, f: impl FnOnce(&Transaction<'_>, &mut Vec<PathBuf>) -> Result<T>) -> Result<T> {
        self.with(|c| {
            let mut files = Vec::new();
            let tx = c.transaction()?;
            let out = f(&tx, &mut files)?;
            tx.commit()?;
            remove_files(&files);
            Ok(out)
        })
    }

    /// Runs `f` on the raw connection inside one transaction (benchmarks and
    /// bulk tools).
    ///
    /// # Errors
    /// Whatever `f` returns, or SQLite failure.
    pub fn with_transaction<T>(&self, f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>) -> Result<T> {
        self.tx(|tx| Ok(f(tx)?))
    }
}

/// Runs the migrations after `from` in one transaction. Returns cached
/// media files made obsolete (recalled messages found by the version 3
/// fix-up), to delete once committed.
fn migrate(conn: &mut Connection, from: u32) -> Result<Vec<PathBuf>> {
    let mut obsolete = Vec::new();
    if from >= CURRENT_VERSION {
        return Ok(obsolete);
    }
    let tx = conn.transaction()?;
    for sql in &MIGRATIONS[from as usize..] {
        tx.execute_batch(sql)?;
    }
    if from < 3 {
        // A version-2 client may have stored relation messages from a v1.1
        // server as plain messages: apply them to their targets.
        relations::recompute_all(&tx, &mut obsolete)?;
    }
    tx.pragma_update(None, "user_version", CURRENT_VERSION)?;
    tx.commit()?;
    Ok(obsolete)
}

/// Deletes files a transaction made obsolete (cached media of recalled
/// messages). A file already gone is fine; another failure is only logged:
/// the store no longer refers to it.
fn remove_files(paths: &[PathBuf]) {
    for p in paths {
        match std::fs::remove_file(p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(path = %p.display(), error = %e, "cannot delete cached media"),
        }
    }
}

/// Applies the first `version` migrations only: for the migration test,
/// which builds a database as an older client left it.
#[doc(hidden)]
pub fn create_at_version(path: &Path, version: u32) -> rusqlite::Result<Connection> {
    let mut conn = Connection::open(path)?;
    search::register_functions(&conn)?;
    let tx = conn.transaction()?;
    for sql in &MIGRATIONS[..version as usize] {
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", version)?;
    tx.commit()?;
    Ok(conn)
}

#[cfg(test)]
mod test_support;

#[cfg(test)]
mod tests {
    use super::test_support::{by_mid, fts_rows, hits, open, seqs};
    use super::{CURRENT_VERSION, DB_FILE, Store, StoreError, create_at_version};
    use courier_proto::Conv;
    use rusqlite::Connection;

    #[test]
    fn the_database_is_in_wal_mode_with_fts5() {
        let (_d, s) = open();
        let mode: String = s.with(|c| Ok(c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?)).unwrap();
        assert_eq!(mode, "wal");
        let v: u32 = s.with(|c| Ok(c.query_row("PRAGMA user_version", [], |r| r.get(0))?)).unwrap();
        assert_eq!(v, CURRENT_VERSION);
    }

    #[test]
    fn a_newer_database_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        {
            let s = Store::open(&path).unwrap();
            s.set_setting("user", "alice").unwrap();
            s.with(|c| Ok(c.pragma_update(None, "user_version", CURRENT_VERSION + 1)?)).unwrap();
        }
        match Store::open(&path) {
            Err(StoreError::TooNew { found, .. }) => assert_eq!(found, CURRENT_VERSION + 1),
            other => panic!("expected TooNew, got {:?}", other.map(|_| ())),
        }
        let c = Connection::open(&path).unwrap();
        let user: String =
            c.query_row("SELECT value FROM settings WHERE key='user'", [], |r| r.get(0)).unwrap();
        assert_eq!(user, "alice");
    }

    #[test]
    fn a_corrupt_file_is_a_clear_error_and_is_not_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        let junk = b"this is not a sqlite database, just some bytes that happen to be here".repeat(100);
        std::fs::write(&path, &junk).unwrap();
        let err = Store::open(&path).err().expect("must fail");
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("left untouched"));
        assert_eq!(std::fs::read(&path).unwrap(), junk);
    }

    /// Every historical schema version, with data written the way that version
    /// wrote it, opens and migrates to the current one without losing anything.
    #[test]
    fn every_historical_schema_version_migrates() {
        for version in 1..=CURRENT_VERSION {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(DB_FILE);
            {
                let c = create_at_version(&path, version).unwrap();
                c.execute("INSERT INTO settings (key, value) VALUES ('user', 'alice')", []).unwrap();
                c.execute(
                    "INSERT INTO conversations (conv, kind, channel, synced_seq, last_seq) VALUES ('ch:lobby', 'channel', 'lobby', 1, 1)",
                    [],
                )
                .unwrap();
                c.execute(
                    "INSERT INTO messages (conv, seq, mid, cid, sender, target, kind, body, ts, status, created)
                     VALUES ('ch:lobby', 1, 'm1', 'b1', 'bob', '{\"channel\":\"lobby\"}', 'text', '{\"text\":\"migrated greetings\"}', 5, 'received', 5)",
                    [],
                )
                .unwrap();
                c.execute(
                    "INSERT INTO messages (conv, seq, mid, cid, sender, target, kind, body, ts, status, created)
                     VALUES ('ch:lobby', NULL, NULL, 'a1', 'alice', '{\"channel\":\"lobby\"}', 'text', '{\"text\":\"queued before upgrade\"}', NULL, 'pending', 6)",
                    [],
                )
                .unwrap();
                c.execute("INSERT INTO outbox (message_id, conv) VALUES (2, 'ch:lobby')", []).unwrap();
            }
            let s = Store::open(&path).unwrap_or_else(|e| panic!("version {version}: {e}"));
            let v: u32 = s.with(|c| Ok(c.query_row("PRAGMA user_version", [], |r| r.get(0))?)).unwrap();
            assert_eq!(v, CURRENT_VERSION, "from version {version}");
            let c = Conv::channel("lobby");
            assert_eq!(seqs(&s, &c), [Some(1), None], "from version {version}");
            assert_eq!(s.outbox_cids().unwrap(), ["a1"], "from version {version}");
            assert_eq!(s.search("greet", 5).unwrap().len(), 1, "search after migrating from {version}");
            assert_eq!(s.setting("user").unwrap().as_deref(), Some("alice"));
        }
    }

    /// A version-3 store indexed the raw text; version 4 rebuilds the index
    /// from the words without markup.
    #[test]
    fn migrating_to_version_4_reindexes_without_markup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        {
            let c = create_at_version(&path, 3).unwrap();
            let body = serde_json::json!({ "text": "```rust\nlet x\n```" }).to_string();
            c.execute(
                "INSERT INTO messages (conv, cid, sender, target, kind, body, status, created)
                 VALUES ('ch:lobby', 'b1', 'bob', '{}', 'text', ?1, 'received', 5)",
                [body],
            )
            .unwrap();
            let indexed: i64 = c
                .query_row("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'rust'", [], |r| {
                    r.get(0)
                })
                .unwrap();
            assert_eq!(indexed, 1, "version 3 indexed the raw text");
        }
        let s = Store::open(&path).unwrap();
        assert_eq!(fts_rows(&s, "rust"), 0);
        assert_eq!(fts_rows(&s, "let"), 1);
    }

    /// A version-2 store of a client that talked to a v1.1 server holds
    /// relation messages as plain messages; after migrating they apply to
    /// their targets and leave the message list and the search index.
    #[test]
    fn a_version_2_store_with_relation_messages_migrates_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        {
            let c = create_at_version(&path, 2).unwrap();
            c.execute_batch(
                r#"
                INSERT INTO settings (key, value) VALUES ('user', 'alice');
                INSERT INTO conversations (conv, kind, channel, synced_seq, last_seq) VALUES ('ch:lobby', 'channel', 'lobby', 4, 4);
                INSERT INTO messages (conv, seq, mid, cid, sender, target, kind, body, ts, status, created) VALUES
                  ('ch:lobby', 1, 'm1', 'b1', 'bob', '{"channel":"lobby"}', 'text', '{"text":"draft words"}', 5, 'received', 5),
                  ('ch:lobby', 2, 'm2', 'b2', 'bob', '{"channel":"lobby"}', 'edit', '{"target":"m1","text":"polished words"}', 6, 'received', 6),
                  ('ch:lobby', 3, 'm3', 'c3', 'carol', '{"channel":"lobby"}', 'reaction', '{"target":"m1","key":"👍","on":true}', 7, 'received', 7),
                  ('ch:lobby', 4, 'm4', 'b4', 'bob', '{"channel":"lobby"}', 'text', '{"text":"bye"}', 8, 'received', 8);
                "#,
            )
            .unwrap();
        }
        let s = Store::open(&path).unwrap();
        let c = Conv::channel("lobby");
        assert_eq!(seqs(&s, &c), [Some(1), Some(4)], "relations left the message list");
        let m = by_mid(&s, &c, "m1");
        assert_eq!((m.text(), m.edited), (Some("polished words"), Some(6)));
        assert_eq!(m.reactions["👍"], ["carol"]);
        assert_eq!(hits(&s, "polished"), ["m1"]);
        assert!(hits(&s, "draft").is_empty());
        assert_eq!(fts_rows(&s, "polished"), 1, "the edit itself is not indexed");
        assert_eq!(s.conversation("alice", &c).unwrap().unwrap().unread, 2);
    }
}
