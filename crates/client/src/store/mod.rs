//! The local store: one SQLite file per account holding conversations,
//! every message (unique on `conv+seq` and on `sender+cid`), the outbox,
//! cursors, profiles, invitations, drafts and a full-text index.
//!
//! All writes that belong together (a message and its outbox row; a page of
//! history and the cursor it advances) happen in one transaction, so a crash
//! at any point leaves a consistent store. Opening never deletes anything: a
//! corrupt file or one written by newer code is an error the user sees.

pub(crate) mod relations;
pub mod schema;

use crate::model::{ConversationView, DeliveryStatus, InviteView, MessageView, now_ms};
use courier_proto::{Conv, Invite, Msg, Profile, SendOk, SyncConv, Target, is_relation_kind};
use relations::{Aggregates, RELATION_KINDS_SQL, Recomputed};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use schema::{CURRENT_VERSION, MIGRATIONS};
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashMap, HashSet};
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

/// A message about to be queued by [`Store::enqueue`].
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// The conversation it belongs to.
    pub conv: Conv,
    /// Client message id (fresh ULID).
    pub cid: String,
    /// The sender (this user).
    pub from: String,
    /// The target as addressed.
    pub to: Target,
    /// Message kind.
    pub kind: String,
    /// Body.
    pub body: Map<String, Value>,
    /// Optional reply target.
    pub reply_to: Option<String>,
}

/// The oldest unsent message of a conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxItem {
    /// Outbox row id (FIFO order).
    pub id: i64,
    /// How many times it was tried.
    pub attempts: u32,
    /// The message.
    pub message: MessageView,
}

/// What applying a batch of server messages changed.
#[derive(Debug, Default)]
pub struct Applied {
    /// Content messages that were not in the store before (relations are
    /// never listed: they show only through their target).
    pub added: Vec<MessageView>,
    /// Own pending content messages that the batch confirmed.
    pub updated: Vec<MessageView>,
    /// Content messages held before whose edits, recall, reactions or pin
    /// changed because of relations in the batch.
    pub targets: Vec<MessageView>,
    /// How many relation messages were stored.
    pub relations: usize,
    /// Conversations whose pinned list may have changed.
    pub pins: Vec<Conv>,
}

/// The local store of one account. Cheap to share behind an `Arc`; calls
/// are short and serialized by an internal mutex.
pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
}

const MSG_COLS: &str = "m.conv, m.seq, m.mid, m.cid, m.sender, m.target, m.kind, m.body, m.ts, m.reply_to, \
     CASE WHEN m.status = 'sent' AND c.kind = 'dm' AND m.seq <= c.peer_read_seq THEN 'read' \
          WHEN m.status = 'sent' AND c.kind = 'dm' AND m.seq <= c.peer_recv_seq THEN 'delivered' \
          ELSE m.status END, m.error, m.edited, m.reactions, m.recalled, m.pinned";

/// A message row as selected by `MSG_COLS`.
struct RawMsg {
    conv: String,
    seq: Option<i64>,
    mid: Option<String>,
    cid: String,
    from: String,
    to: String,
    kind: String,
    body: String,
    ts: Option<i64>,
    reply_to: Option<String>,
    status: String,
    error: Option<String>,
    edited: Option<i64>,
    reactions: Option<String>,
    recalled: bool,
    pinned: Option<i64>,
}

fn msg_from_row(r: &Row<'_>) -> rusqlite::Result<RawMsg> {
    Ok(RawMsg {
        conv: r.get(0)?,
        seq: r.get(1)?,
        mid: r.get(2)?,
        cid: r.get(3)?,
        from: r.get(4)?,
        to: r.get(5)?,
        kind: r.get(6)?,
        body: r.get(7)?,
        ts: r.get(8)?,
        reply_to: r.get(9)?,
        status: r.get(10)?,
        error: r.get(11)?,
        edited: r.get(12)?,
        reactions: r.get(13)?,
        recalled: r.get(14)?,
        pinned: r.get(15)?,
    })
}

fn view(raw: RawMsg) -> Result<MessageView> {
    let mut body: Map<String, Value> = serde_json::from_str(&raw.body)?;
    // A file's name is the sender's word: what the app and the CLI show (and
    // offer as a save name) has no path separators, control or bidi
    // characters (which can make `exe.pdf` read as `fdp.exe`), leading dots
    // or reserved Windows names.
    if let Some(Value::String(name)) = body.get_mut("name")
        && matches!(raw.kind.as_str(), "file" | "image")
    {
        *name = courier_proto::ids::safe_file_name(name, "file");
    }
    Ok(MessageView {
        conv: Conv::parse(&raw.conv).ok_or_else(|| StoreError::Corrupt {
            path: PathBuf::new(),
            detail: format!("bad conv {}", raw.conv),
        })?,
        seq: raw.seq.map(|s| s as u64),
        mid: raw.mid,
        cid: raw.cid,
        from: raw.from,
        to: serde_json::from_str(&raw.to)?,
        kind: raw.kind,
        body,
        ts: raw.ts,
        reply_to: raw.reply_to,
        status: DeliveryStatus::parse(&raw.status).unwrap_or(DeliveryStatus::Received),
        error: raw.error,
        edited: raw.edited,
        reactions: raw.reactions.as_deref().map(serde_json::from_str).transpose()?.unwrap_or_default(),
        recalled: raw.recalled,
        pinned: raw.pinned,
    })
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

    /// A setting's value.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        self.with(|c| {
            Ok(c.query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| r.get(0)).optional()?)
        })
    }

    /// Sets a setting.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )?;
            Ok(())
        })
    }

    /// Binds the store to `user` on first use; refuses another account later.
    ///
    /// # Errors
    /// [`StoreError::AccountMismatch`] when the store belongs to someone else.
    pub fn claim_user(&self, user: &str) -> Result<()> {
        match self.setting("user")? {
            Some(stored) if stored != user => {
                Err(StoreError::AccountMismatch { stored, requested: user.to_owned() })
            }
            Some(_) => Ok(()),
            None => self.set_setting("user", user),
        }
    }

    /// Queues a message: the message row (`pending`) and its outbox row in
    /// one transaction. A relation (`edit`, `reaction`, `pin`) applies to
    /// its target at once, as pending; a `recall` only once the server
    /// stored it.
    ///
    /// # Errors
    /// On SQLite failure (e.g. a cid reused by the same sender).
    pub fn enqueue(&self, m: &NewMessage) -> Result<MessageView> {
        Ok(self.enqueue_many(std::slice::from_ref(m))?.remove(0))
    }

    /// Queues several messages in one durable transaction (one fsync), in
    /// order: all or none.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn enqueue_many(&self, msgs: &[NewMessage]) -> Result<Vec<MessageView>> {
        self.durable_tx(|tx| msgs.iter().map(|m| enqueue_one(tx, m)).collect())
    }

    /// Conversations that have queued messages, oldest queue head first.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn outbox_convs(&self) -> Result<Vec<Conv>> {
        self.with(|c| {
            let mut st =
                c.prepare_cached("SELECT conv, min(id) AS first FROM outbox GROUP BY conv ORDER BY first")?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            let mut out = Vec::new();
            for r in rows {
                out.extend(Conv::parse(&r?));
            }
            Ok(out)
        })
    }

    /// The oldest queued message of `conv`.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn outbox_head(&self, conv: &Conv) -> Result<Option<OutboxItem>> {
        self.with(|c| {
            let head: Option<(i64, i64, u32)> = c
                .prepare_cached(
                    "SELECT id, message_id, attempts FROM outbox WHERE conv = ?1 ORDER BY id LIMIT 1",
                )?
                .query_row([conv.to_string()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?;
            match head {
                None => Ok(None),
                Some((id, mid, attempts)) => {
                    Ok(Some(OutboxItem { id, attempts, message: message_by_id(c, mid)? }))
                }
            }
        })
    }

    /// Cids of every queued message, oldest first.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn outbox_cids(&self) -> Result<Vec<String>> {
        self.with(|c| {
            let mut st = c.prepare_cached(
                "SELECT m.cid FROM outbox o JOIN messages m ON m.id = o.message_id ORDER BY o.id",
            )?;
            let rows = st.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
        })
    }

    /// Records a failed attempt of an outbox row.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn note_attempt(&self, outbox_id: i64, error: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
                params![outbox_id, error],
            )?;
            Ok(())
        })
    }

    /// Marks the message `cid` of `from` as stored by the server, removes
    /// its outbox row and advances the conversation's cursors. Returns the
    /// message as it is now — for a relation, its target (recomputed; a
    /// recall takes effect here).
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn mark_sent(&self, from: &str, cid: &str, ok: &SendOk) -> Result<Option<MessageView>> {
        self.tx_files(|tx, files| {
            let id: Option<i64> = tx
                .query_row(
                    "SELECT id FROM messages WHERE sender = ?1 AND cid = ?2",
                    params![from, cid],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(id) = id else { return Ok(None) };
            let conv = ok.conv.to_string();
            // The same (conv, seq) may already be held by a copy that history
            // brought in under this cid; that copy is the same message.
            let taken: Option<i64> = tx
                .query_row(
                    "SELECT id FROM messages WHERE conv = ?1 AND seq = ?2",
                    params![conv, ok.seq as i64],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(other) = taken.filter(|o| *o != id) {
                tx.execute("DELETE FROM messages WHERE id = ?1", [id])?;
                return affected(tx, other, files);
            }
            tx.execute(
                "UPDATE messages SET seq = ?2, mid = ?3, ts = ?4, status = 'sent', error = NULL,
                    agg_seq = CASE WHEN base_body IS NULL THEN NULL ELSE coalesce(agg_seq, ?2) END
                 WHERE id = ?1",
                params![id, ok.seq as i64, ok.mid, ok.ts],
            )?;
            tx.execute("DELETE FROM outbox WHERE message_id = ?1", [id])?;
            bump_last(tx, &conv, ok.seq, ok.ts)?;
            advance_synced(tx, &conv)?;
            affected(tx, id, files)
        })
    }

    /// Marks a queued message `failed` (a permanent error) and takes it out
    /// of the outbox. Returns the message as it is now — for a relation, its
    /// target, recomputed without it (the optimistic change is undone).
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn mark_failed(&self, from: &str, cid: &str, error: &str) -> Result<Option<MessageView>> {
        self.tx_files(|tx, files| {
            let id: Option<i64> = tx
                .query_row(
                    "SELECT id FROM messages WHERE sender = ?1 AND cid = ?2 AND status = 'pending'",
                    params![from, cid],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(id) = id else { return Ok(None) };
            tx.execute(
                "UPDATE messages SET status = 'failed', error = ?2 WHERE id = ?1",
                params![id, error],
            )?;
            tx.execute("DELETE FROM outbox WHERE message_id = ?1", [id])?;
            affected(tx, id, files)
        })
    }

    /// Puts a failed message back into the outbox (same cid). Returns it —
    /// for a relation, its target with the relation applied again.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn retry_failed(&self, from: &str, cid: &str) -> Result<Option<MessageView>> {
        self.durable_tx(|tx| {
            let row: Option<(i64, String)> = tx
                .query_row(
                    "SELECT id, conv FROM messages WHERE sender = ?1 AND cid = ?2 AND status = 'failed'",
                    params![from, cid],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((id, conv)) = row else { return Ok(None) };
            tx.execute("UPDATE messages SET status = 'pending', error = NULL WHERE id = ?1", [id])?;
            tx.execute("INSERT INTO outbox (message_id, conv) VALUES (?1, ?2)", params![id, conv])?;
            affected(tx, id, &mut Vec::new())
        })
    }

    /// Deletes an own message that the server never stored (pending or
    /// failed). Returns whether one was deleted.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn delete_unsent(&self, from: &str, cid: &str) -> Result<bool> {
        self.tx_files(|tx, files| {
            let row: Option<(String, Option<String>)> = tx
                .query_row(
                    "SELECT conv, rel_target FROM messages WHERE sender = ?1 AND cid = ?2 AND seq IS NULL",
                    params![from, cid],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((conv, target)) = row else { return Ok(false) };
            tx.execute(
                "DELETE FROM messages WHERE sender = ?1 AND cid = ?2 AND seq IS NULL",
                params![from, cid],
            )?;
            if let Some(mid) = target {
                relations::recompute(tx, &conv, &mid, files)?;
            }
            Ok(true)
        })
    }

    /// Applies messages from the server (live events, or history pages of a
    /// server without v1.1 aggregates) in one transaction: skips those
    /// already held (by conv+seq), confirms own pending ones (by
    /// sender+cid), inserts the rest, applies relations to their targets,
    /// and advances each conversation's contiguous `synced_seq`.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn apply_messages(&self, me: &str, msgs: &[Msg]) -> Result<Applied> {
        self.apply_batch(me, msgs, false)
    }

    /// Applies a `history` page of a v1.1 server: like
    /// [`Store::apply_messages`], but the aggregates served with each content
    /// message (edits, recall, reactions, pin) are taken as reflecting every
    /// relation up to the newest seq of the page, so relation messages of
    /// the page are not applied on top of them again.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn apply_page(&self, me: &str, msgs: &[Msg]) -> Result<Applied> {
        self.apply_batch(me, msgs, true)
    }

    fn apply_batch(&self, me: &str, msgs: &[Msg], served_aggregates: bool) -> Result<Applied> {
        self.tx_files(|tx, files| {
            let mut applied = Applied::default();
            let mut touched: Vec<String> = Vec::new();
            // Up to which seq the aggregates served with a message reflect
            // the relations: the page's newest seq, or the message itself.
            let mut horizon: HashMap<String, u64> = HashMap::new();
            if served_aggregates {
                for m in msgs {
                    let h = horizon.entry(m.conv.to_string()).or_default();
                    *h = (*h).max(m.seq);
                }
            }
            let (mut added, mut confirmed) = (Vec::new(), Vec::new());
            let mut targets: BTreeSet<(String, String)> = BTreeSet::new();
            let mut pins: BTreeSet<String> = BTreeSet::new();
            for m in msgs {
                let conv = m.conv.to_string();
                if !touched.contains(&conv) {
                    ensure_conv(tx, &m.conv, me)?;
                    touched.push(conv.clone());
                }
                let held: Option<i64> = tx
                    .prepare_cached("SELECT id FROM messages WHERE conv = ?1 AND seq = ?2")?
                    .query_row(params![conv, m.seq as i64], |r| r.get(0))
                    .optional()?;
                if held.is_some() {
                    continue;
                }
                let relation = is_relation_kind(&m.kind);
                let agg_seq = horizon.get(&conv).copied().unwrap_or(m.seq).max(m.seq) as i64;
                let base_agg = if relation { None } else { Aggregates::served_json(m)? };
                let own: Option<i64> = tx
                    .prepare_cached("SELECT id FROM messages WHERE sender = ?1 AND cid = ?2")?
                    .query_row(params![m.from, m.cid], |r| r.get(0))
                    .optional()?;
                if let Some(id) = own {
                    tx.execute(
                        "UPDATE messages SET seq = ?2, mid = ?3, ts = ?4, status = 'sent', error = NULL WHERE id = ?1",
                        params![id, m.seq as i64, m.mid, m.ts],
                    )?;
                    if !relation {
                        // As served: a v1.1 page shows it edited or recalled.
                        tx.execute(
                            "UPDATE messages SET base_body = ?2, base_agg = ?3, agg_seq = ?4 WHERE id = ?1",
                            params![id, serde_json::to_string(&m.body)?, base_agg, agg_seq],
                        )?;
                        // Served aggregates, or relations already held.
                        targets.insert((conv.clone(), m.mid.clone()));
                        confirmed.push(id);
                    }
                    tx.execute("DELETE FROM outbox WHERE message_id = ?1", [id])?;
                } else {
                    let status = if m.from == me { "sent" } else { "received" };
                    let body = serde_json::to_string(&m.body)?;
                    tx.prepare_cached(
                        "INSERT INTO messages (conv, seq, mid, cid, sender, target, kind, body, ts, reply_to, status, created,
                                               rel_target, base_body, base_agg, agg_seq, edited, reactions, recalled, pinned)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
                    )?
                    .execute(params![
                        conv,
                        m.seq as i64,
                        m.mid,
                        m.cid,
                        m.from,
                        serde_json::to_string(&m.to)?,
                        m.kind,
                        body,
                        m.ts,
                        m.reply_to,
                        status,
                        now_ms(),
                        m.target(),
                        (!relation).then_some(&body),
                        base_agg,
                        (!relation).then_some(agg_seq),
                        if relation { None } else { m.edited },
                        if relation { None } else { relations::reactions_json(&m.reactions)? },
                        !relation && m.recalled,
                        if relation { None } else { m.pinned },
                    ])?;
                    let id = tx.last_insert_rowid();
                    if !relation {
                        if m.recalled || relations::has_relations(tx, &conv, &m.mid)? {
                            targets.insert((conv.clone(), m.mid.clone()));
                        }
                        added.push(id);
                    }
                }
                if relation {
                    applied.relations += 1;
                    if let Some(t) = m.target() {
                        targets.insert((conv.clone(), t.to_owned()));
                    }
                    if m.kind == "pin" {
                        pins.insert(conv.clone());
                    }
                }
                bump_last(tx, &conv, m.seq, m.ts)?;
            }
            for conv in &touched {
                advance_synced(tx, conv)?;
            }
            let fresh: HashSet<i64> = added.iter().chain(&confirmed).copied().collect();
            for (conv, mid) in &targets {
                if let Some(Recomputed { id, changed: true }) = relations::recompute(tx, conv, mid, files)?
                    && !fresh.contains(&id)
                {
                    applied.targets.push(message_by_id(tx, id)?);
                }
            }
            applied.added = added.into_iter().map(|id| message_by_id(tx, id)).collect::<Result<_>>()?;
            applied.updated = confirmed.into_iter().map(|id| message_by_id(tx, id)).collect::<Result<_>>()?;
            applied.pins = pins.iter().filter_map(|c| Conv::parse(c)).collect();
            Ok(applied)
        })
    }

    /// Every seq up to the returned one is stored locally.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn synced_seq(&self, conv: &Conv) -> Result<u64> {
        self.with(|c| {
            Ok(c.prepare_cached("SELECT synced_seq FROM conversations WHERE conv = ?1")?
                .query_row([conv.to_string()], |r| r.get::<_, i64>(0))
                .optional()?
                .unwrap_or(0) as u64)
        })
    }

    /// Records a conversation row of the `sync` ok. With `v1_1` (the server
    /// lists the feature) its `pins` become the conversation's pinned list
    /// as of its `last_seq`.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn apply_sync_conv(&self, me: &str, s: &SyncConv, v1_1: bool) -> Result<()> {
        self.tx(|tx| {
            let conv = s.conv.to_string();
            ensure_conv(tx, &s.conv, me)?;
            tx.execute(
                "UPDATE conversations SET
                    last_seq = max(last_seq, ?2), last_ts = max(last_ts, ?3),
                    read_seq = max(read_seq, ?4), read_sent_seq = max(read_sent_seq, ?4),
                    peer_read_seq = max(peer_read_seq, ?5), peer_recv_seq = max(peer_recv_seq, ?6)
                 WHERE conv = ?1",
                params![
                    conv,
                    s.last_seq as i64,
                    s.last_ts,
                    s.read_seq as i64,
                    s.peer_read_seq.unwrap_or(0) as i64,
                    s.peer_recv_seq.unwrap_or(0) as i64
                ],
            )?;
            if v1_1 {
                tx.execute(
                    "UPDATE conversations SET pins = ?2, pins_seq = ?3 WHERE conv = ?1",
                    params![conv, serde_json::to_string(&s.pins)?, s.last_seq as i64],
                )?;
            }
            Ok(())
        })
    }

    /// Adds a conversation the user just joined or created.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn ensure_conversation(&self, me: &str, conv: &Conv, last_seq: u64) -> Result<()> {
        self.tx(|tx| {
            ensure_conv(tx, conv, me)?;
            tx.execute(
                "UPDATE conversations SET last_seq = max(last_seq, ?2) WHERE conv = ?1",
                params![conv.to_string(), last_seq as i64],
            )?;
            Ok(())
        })
    }

    /// Forgets a conversation the user left (its messages stay searchable).
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn forget_conversation(&self, conv: &Conv) -> Result<()> {
        self.with(|c| {
            c.execute("DELETE FROM conversations WHERE conv = ?1", [conv.to_string()])?;
            Ok(())
        })
    }

    /// Every conversation with its unread count, most recent first.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn conversations(&self, me: &str) -> Result<Vec<ConversationView>> {
        self.conversations_where(me, None)
    }

    fn conversations_where(&self, me: &str, only: Option<&Conv>) -> Result<Vec<ConversationView>> {
        self.with(|c| {
            // Unread: content messages of others after the read cursor,
            // not recalled; of those, the ones that mention this user.
            let unread = format!(
                "FROM messages m WHERE m.conv = c.conv AND m.seq > c.read_seq AND m.sender <> ?1
                   AND m.recalled = 0 AND m.kind NOT IN {RELATION_KINDS_SQL}"
            );
            let mut st = c.prepare_cached(&format!(
                "SELECT c.conv, c.kind, c.peer, c.channel, c.last_seq, c.last_ts, c.synced_seq, c.read_seq,
                        (SELECT count(*) {unread}),
                        c.peer_read_seq, c.peer_recv_seq, d.text,
                        (SELECT count(*) {unread}
                           AND EXISTS (SELECT 1 FROM json_each(m.body, '$.mentions') j WHERE j.value = ?1))
                 FROM conversations c LEFT JOIN drafts d ON d.conv = c.conv
                 WHERE ?2 IS NULL OR c.conv = ?2
                 ORDER BY c.last_ts DESC, c.conv"
            ))?;
            let rows = st.query_map(params![me, only.map(Conv::to_string)], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get::<_, i64>(4)?,
                    r.get(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, i64>(7)?,
                    r.get::<_, i64>(8)?,
                    r.get::<_, i64>(9)?,
                    r.get::<_, i64>(10)?,
                    r.get(11)?,
                    r.get::<_, i64>(12)?,
                ))
            })?;
            let rows = rows.collect::<rusqlite::Result<Vec<_>>>()?;
            let mut last = c.prepare_cached(&format!(
                "SELECT id FROM messages WHERE conv = ?1 AND kind NOT IN {RELATION_KINDS_SQL}
                 ORDER BY seq IS NULL DESC, seq DESC, id DESC LIMIT 1"
            ))?;
            let mut out = Vec::new();
            for row in rows {
                let (
                    conv,
                    kind,
                    peer,
                    channel,
                    last_seq,
                    last_ts,
                    synced,
                    read,
                    unread,
                    pr,
                    pv,
                    draft,
                    mentions,
                ) = row;
                let last_id: Option<i64> = last.query_row([&conv], |r| r.get(0)).optional()?;
                let last_message = last_id.map(|id| message_by_id(c, id)).transpose()?;
                let pins = relations::pins(c, &conv)?;
                let Some(conv) = Conv::parse(&conv) else { continue };
                out.push(ConversationView {
                    conv,
                    kind,
                    peer,
                    channel,
                    last_seq: last_seq as u64,
                    last_ts,
                    synced_seq: synced as u64,
                    read_seq: read as u64,
                    unread: unread as u64,
                    mentions_unread: mentions as u64,
                    pins,
                    peer_read_seq: pr as u64,
                    peer_recv_seq: pv as u64,
                    draft,
                    last_message,
                });
            }
            Ok(out)
        })
    }

    /// One conversation.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn conversation(&self, me: &str, conv: &Conv) -> Result<Option<ConversationView>> {
        Ok(self.conversations_where(me, Some(conv))?.pop())
    }

    /// A page of a conversation from the local store, ascending: the
    /// `limit` newest messages with seq below `before` (all when `None`),
    /// followed — on the newest page — by own messages not yet stored by the
    /// server, in the order they were written. Content messages only:
    /// relations (edits, recalls, reactions, pins) show on their targets.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn history(&self, conv: &Conv, before: Option<u64>, limit: u32) -> Result<Vec<MessageView>> {
        self.with(|c| {
            let sql = format!(
                "SELECT {MSG_COLS} FROM messages m JOIN conversations c ON c.conv = m.conv
                 WHERE m.conv = ?1 AND m.seq IS NOT NULL AND m.seq < ?2 AND m.kind NOT IN {RELATION_KINDS_SQL}
                 ORDER BY m.seq DESC LIMIT ?3"
            );
            let before_v = before.map(|b| b as i64).unwrap_or(i64::MAX);
            let mut st = c.prepare_cached(&sql)?;
            let raws = st
                .query_map(params![conv.to_string(), before_v, limit as i64], msg_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut out = raws.into_iter().rev().map(view).collect::<Result<Vec<_>>>()?;
            if before.is_none() {
                let sql = format!(
                    "SELECT {MSG_COLS} FROM messages m JOIN conversations c ON c.conv = m.conv
                     WHERE m.conv = ?1 AND m.seq IS NULL AND m.kind NOT IN {RELATION_KINDS_SQL} ORDER BY m.id"
                );
                let mut st = c.prepare_cached(&sql)?;
                for raw in st.query_map([conv.to_string()], msg_from_row)? {
                    out.push(view(raw?)?);
                }
            }
            Ok(out)
        })
    }

    /// Every stored message of a conversation in seq order (tests, export).
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn all_messages(&self, conv: &Conv) -> Result<Vec<MessageView>> {
        self.history(conv, None, u32::MAX)
    }

    /// An own message by cid.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn message_by_cid(&self, from: &str, cid: &str) -> Result<Option<MessageView>> {
        self.with(|c| {
            let id: Option<i64> = c
                .query_row(
                    "SELECT id FROM messages WHERE sender = ?1 AND cid = ?2",
                    params![from, cid],
                    |r| r.get(0),
                )
                .optional()?;
            id.map(|id| message_by_id(c, id)).transpose()
        })
    }

    /// A stored message of `conv` by its server id (content or relation).
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn message_by_mid(&self, conv: &Conv, mid: &str) -> Result<Option<MessageView>> {
        self.with(|c| {
            let id: Option<i64> = c
                .prepare_cached("SELECT id FROM messages WHERE conv = ?1 AND mid = ?2")?
                .query_row(params![conv.to_string(), mid], |r| r.get(0))
                .optional()?;
            id.map(|id| message_by_id(c, id)).transpose()
        })
    }

    /// The pinned messages of a conversation that are stored locally,
    /// oldest pin first.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn pinned(&self, conv: &Conv) -> Result<Vec<MessageView>> {
        self.with(|c| {
            let conv = conv.to_string();
            let sql = format!(
                "SELECT id FROM messages WHERE conv = ?1 AND mid = ?2 AND kind NOT IN {RELATION_KINDS_SQL}"
            );
            let mut st = c.prepare_cached(&sql)?;
            let mut out = Vec::new();
            for mid in relations::pins(c, &conv)? {
                if let Some(id) = st.query_row(params![conv, mid], |r| r.get::<_, i64>(0)).optional()? {
                    out.push(message_by_id(c, id)?);
                }
            }
            Ok(out)
        })
    }

    /// Full-text search over message text (and file names), newest first.
    /// Each word of `query` must appear; the last one may be a prefix.
    /// Edited messages are found by their newest text; recalled ones and
    /// relations never.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn search(&self, query: &str, limit: u32) -> Result<Vec<MessageView>> {
        let Some(fts) = fts_query(query) else {
            return Ok(Vec::new());
        };
        self.with(|c| {
            let sql = format!(
                "SELECT {MSG_COLS} FROM messages m JOIN conversations c ON c.conv = m.conv
                 WHERE m.id IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?1 ORDER BY rowid DESC LIMIT ?2)
                   AND m.kind NOT IN {RELATION_KINDS_SQL} AND m.recalled = 0
                 ORDER BY m.id DESC"
            );
            let mut st = c.prepare_cached(&sql)?;
            let raws = st.query_map(params![fts, limit as i64], msg_from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
            raws.into_iter().map(view).collect()
        })
    }

    /// Raises the local read cursor (clamped to what is stored). Returns the
    /// new cursor when it moved.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn set_read(&self, conv: &Conv, seq: Option<u64>) -> Result<Option<u64>> {
        self.with(|c| {
            let row: Option<(i64, i64)> = c
                .query_row(
                    "SELECT read_seq, synced_seq FROM conversations WHERE conv = ?1",
                    [conv.to_string()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((read, synced)) = row else {
                return Ok(None);
            };
            let target = seq.map(|s| (s as i64).min(synced)).unwrap_or(synced);
            if target <= read {
                return Ok(None);
            }
            c.execute(
                "UPDATE conversations SET read_seq = ?2 WHERE conv = ?1",
                params![conv.to_string(), target],
            )?;
            Ok(Some(target as u64))
        })
    }

    /// Read cursors the server does not know yet.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn reads_to_send(&self) -> Result<Vec<(Conv, u64)>> {
        self.cursor_list("SELECT conv, read_seq FROM conversations WHERE read_seq > read_sent_seq")
    }

    /// Receive cursors the server does not know yet.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn acks_to_send(&self) -> Result<Vec<(Conv, u64)>> {
        self.cursor_list("SELECT conv, synced_seq FROM conversations WHERE synced_seq > acked_seq AND synced_seq > read_sent_seq")
    }

    fn cursor_list(&self, sql: &str) -> Result<Vec<(Conv, u64)>> {
        self.with(|c| {
            let mut st = c.prepare_cached(sql)?;
            let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            let mut out = Vec::new();
            for r in rows {
                let (conv, seq) = r?;
                out.extend(Conv::parse(&conv).map(|c| (c, seq as u64)));
            }
            Ok(out)
        })
    }

    /// Records that the server has the read cursor `seq` (which also raises
    /// its receive cursor).
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn read_sent(&self, conv: &Conv, seq: u64) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE conversations SET read_sent_seq = max(read_sent_seq, ?2), acked_seq = max(acked_seq, ?2) WHERE conv = ?1",
                params![conv.to_string(), seq as i64],
            )?;
            Ok(())
        })
    }

    /// Records that the server has the receive cursor `seq`.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn acked(&self, conv: &Conv, seq: u64) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE conversations SET acked_seq = max(acked_seq, ?2) WHERE conv = ?1",
                params![conv.to_string(), seq as i64],
            )?;
            Ok(())
        })
    }

    /// This user read up to `seq` on another device.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn apply_read_elsewhere(&self, conv: &Conv, seq: u64) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE conversations SET read_seq = max(read_seq, ?2), read_sent_seq = max(read_sent_seq, ?2) WHERE conv = ?1",
                params![conv.to_string(), seq as i64],
            )?;
            Ok(())
        })
    }

    /// Applies a DM peer's receipt; returns own messages whose status moved.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn apply_receipt(
        &self,
        me: &str,
        conv: &Conv,
        recv: u64,
        read: u64,
        max_changed: u32,
    ) -> Result<Vec<MessageView>> {
        self.tx(|tx| {
            let before: Option<i64> = tx
                .query_row(
                    "SELECT min(peer_recv_seq, peer_read_seq) FROM conversations WHERE conv = ?1",
                    [conv.to_string()],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(low) = before else { return Ok(Vec::new()) };
            tx.execute(
                "UPDATE conversations SET peer_recv_seq = max(peer_recv_seq, ?2, ?3), peer_read_seq = max(peer_read_seq, ?3) WHERE conv = ?1",
                params![conv.to_string(), recv as i64, read as i64],
            )?;
            let sql = format!(
                "SELECT {MSG_COLS} FROM messages m JOIN conversations c ON c.conv = m.conv
                 WHERE m.conv = ?1 AND m.sender = ?2 AND m.seq > ?3 AND m.seq <= ?4 ORDER BY m.seq DESC LIMIT ?5"
            );
            let mut st = tx.prepare_cached(&sql)?;
            let raws = st
                .query_map(
                    params![conv.to_string(), me, low, recv.max(read) as i64, max_changed as i64],
                    msg_from_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            raws.into_iter().rev().map(view).collect()
        })
    }

    /// Stores or updates an invitation.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn upsert_invite(&self, inv: &Invite) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO invites (iid, json, state, expires, updated) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(iid) DO UPDATE SET json = excluded.json, state = excluded.state,
                    expires = excluded.expires, updated = excluded.updated
                 WHERE invites.state = 'pending' OR excluded.state <> 'pending'",
                params![inv.iid, serde_json::to_string(inv)?, inv.state.as_str(), inv.expires, now_ms()],
            )?;
            Ok(())
        })
    }

    /// Applies a final state learned later (from `sync`) to an invitation
    /// this device holds as pending. Returns whether anything changed.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn settle_invite(&self, inv: &Invite) -> Result<bool> {
        if !inv.state.is_final() {
            return Ok(false);
        }
        self.with(|c| {
            let n = c.execute(
                "UPDATE invites SET json = ?2, state = ?3, updated = ?4 WHERE iid = ?1 AND state = 'pending'",
                params![inv.iid, serde_json::to_string(inv)?, inv.state.as_str(), now_ms()],
            )?;
            Ok(n > 0)
        })
    }

    /// Invitations to or from this user, newest first.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn invites(&self, me: &str) -> Result<Vec<InviteView>> {
        self.with(|c| {
            let mut st = c.prepare_cached("SELECT json FROM invites ORDER BY updated DESC LIMIT 200")?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            let now = now_ms();
            let mut out = Vec::new();
            for r in rows {
                let inv: Invite = serde_json::from_str(&r?)?;
                out.push(InviteView::new(inv, me, now));
            }
            Ok(out)
        })
    }

    /// Caches profiles.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn upsert_profiles(&self, profiles: &[Profile]) -> Result<()> {
        self.tx(|tx| {
            for p in profiles {
                tx.execute(
                    "INSERT INTO profiles (user, name, avatar, status, updated) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT(user) DO UPDATE SET name = excluded.name, avatar = excluded.avatar,
                        status = excluded.status, updated = excluded.updated",
                    params![p.user, p.name, p.avatar, p.status, now_ms()],
                )?;
            }
            Ok(())
        })
    }

    /// Cached profiles of `users` (those known).
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn profiles(&self, users: &[String]) -> Result<Vec<Profile>> {
        self.with(|c| {
            let mut st =
                c.prepare_cached("SELECT user, name, avatar, status FROM profiles WHERE user = ?1")?;
            let mut out = Vec::new();
            for u in users {
                if let Some(p) = st
                    .query_row([u], |r| {
                        Ok(Profile { user: r.get(0)?, name: r.get(1)?, avatar: r.get(2)?, status: r.get(3)? })
                    })
                    .optional()?
                {
                    out.push(p);
                }
            }
            Ok(out)
        })
    }

    /// Saves (or with an empty text, clears) a draft.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn set_draft(&self, conv: &Conv, text: &str) -> Result<()> {
        self.with(|c| {
            if text.is_empty() {
                c.execute("DELETE FROM drafts WHERE conv = ?1", [conv.to_string()])?;
            } else {
                c.execute(
                    "INSERT INTO drafts (conv, text, updated) VALUES (?1, ?2, ?3)
                     ON CONFLICT(conv) DO UPDATE SET text = excluded.text, updated = excluded.updated",
                    params![conv.to_string(), text, now_ms()],
                )?;
            }
            Ok(())
        })
    }

    /// The draft of a conversation.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn draft(&self, conv: &Conv) -> Result<Option<String>> {
        self.with(|c| {
            Ok(c.query_row("SELECT text FROM drafts WHERE conv = ?1", [conv.to_string()], |r| r.get(0))
                .optional()?)
        })
    }

    /// The cached file of a media id.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn media_path(&self, media: &str) -> Result<Option<PathBuf>> {
        self.with(|c| {
            Ok(c.query_row("SELECT path FROM media_cache WHERE media = ?1", [media], |r| {
                r.get::<_, String>(0)
            })
            .optional()?
            .map(PathBuf::from))
        })
    }

    /// The MIME type a cached media file was served with.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn media_mime(&self, media: &str) -> Result<Option<String>> {
        self.with(|c| {
            Ok(c.query_row("SELECT mime FROM media_cache WHERE media = ?1", [media], |r| {
                r.get::<_, String>(0)
            })
            .optional()?)
        })
    }

    /// Records a cached media file.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn put_media(&self, media: &str, path: &Path, mime: &str, size: u64) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO media_cache (media, path, mime, size, fetched) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![media, path.to_string_lossy(), mime, size as i64, now_ms()],
            )?;
            Ok(())
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
            Err(e) => tracing::warn!(path = %p.display(), error = %e, "cannot delete recalled media"),
        }
    }
}

/// Applies the first `version` migrations only: for the migration test,
/// which builds a database as an older client left it.
#[doc(hidden)]
pub fn create_at_version(path: &Path, version: u32) -> rusqlite::Result<Connection> {
    let mut conn = Connection::open(path)?;
    let tx = conn.transaction()?;
    for sql in &MIGRATIONS[..version as usize] {
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", version)?;
    tx.commit()?;
    Ok(conn)
}

fn enqueue_one(tx: &Transaction<'_>, m: &NewMessage) -> Result<MessageView> {
    ensure_conv(tx, &m.conv, &m.from)?;
    let relation = is_relation_kind(&m.kind);
    let target = if relation { m.body.get("target").and_then(Value::as_str) } else { None };
    let body = serde_json::to_string(&m.body)?;
    tx.execute(
        "INSERT INTO messages (conv, seq, mid, cid, sender, target, kind, body, ts, reply_to, status, created,
                               rel_target, base_body)
         VALUES (?1, NULL, NULL, ?2, ?3, ?4, ?5, ?6, NULL, ?7, 'pending', ?8, ?9, ?10)",
        params![
            m.conv.to_string(),
            m.cid,
            m.from,
            serde_json::to_string(&m.to)?,
            m.kind,
            body,
            m.reply_to,
            now_ms(),
            target,
            (!relation).then_some(&body),
        ],
    )?;
    let id = tx.last_insert_rowid();
    tx.execute("INSERT INTO outbox (message_id, conv) VALUES (?1, ?2)", params![id, m.conv.to_string()])?;
    if let Some(mid) = target {
        // Optimistic: shows at once (a pending recall is skipped).
        relations::recompute(tx, &m.conv.to_string(), mid, &mut Vec::new())?;
    }
    message_by_id(tx, id)
}

/// The content message a change of row `id` shows on: the row itself, or
/// for a relation its target, recomputed (`None` while the target is not
/// stored).
fn affected(tx: &Connection, id: i64, files: &mut Vec<PathBuf>) -> Result<Option<MessageView>> {
    let (conv, kind, target): (String, String, Option<String>) = tx
        .prepare_cached("SELECT conv, kind, rel_target FROM messages WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    if !is_relation_kind(&kind) {
        return Ok(Some(message_by_id(tx, id)?));
    }
    let Some(mid) = target else { return Ok(None) };
    relations::recompute(tx, &conv, &mid, files)?.map(|r| message_by_id(tx, r.id)).transpose()
}

fn ensure_conv(tx: &Connection, conv: &Conv, me: &str) -> rusqlite::Result<()> {
    let (kind, peer, channel) = match conv {
        Conv::Dm(..) => ("dm", conv.peer_of(me).map(str::to_owned), None),
        Conv::Channel(c) => ("channel", None, Some(c.clone())),
    };
    tx.prepare_cached(
        "INSERT OR IGNORE INTO conversations (conv, kind, peer, channel) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![conv.to_string(), kind, peer, channel])?;
    Ok(())
}

fn bump_last(tx: &Connection, conv: &str, seq: u64, ts: i64) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE conversations SET last_seq = max(last_seq, ?2), last_ts = max(last_ts, ?3) WHERE conv = ?1",
    )?
    .execute(params![conv, seq as i64, ts])?;
    Ok(())
}

/// Moves `synced_seq` over every contiguous stored seq after it.
fn advance_synced(tx: &Connection, conv: &str) -> rusqlite::Result<u64> {
    let synced: i64 = tx
        .prepare_cached("SELECT synced_seq FROM conversations WHERE conv = ?1")?
        .query_row([conv], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let mut next = synced;
    {
        let mut st =
            tx.prepare_cached("SELECT seq FROM messages WHERE conv = ?1 AND seq > ?2 ORDER BY seq")?;
        let mut rows = st.query(params![conv, synced])?;
        while let Some(r) = rows.next()? {
            let s: i64 = r.get(0)?;
            if s != next + 1 {
                break;
            }
            next = s;
        }
    }
    if next != synced {
        tx.prepare_cached("UPDATE conversations SET synced_seq = ?2 WHERE conv = ?1")?
            .execute(params![conv, next])?;
    }
    Ok(next as u64)
}

fn message_by_id(c: &Connection, id: i64) -> Result<MessageView> {
    let sql = format!(
        "SELECT {MSG_COLS} FROM messages m LEFT JOIN conversations c ON c.conv = m.conv WHERE m.id = ?1"
    );
    let raw = c.prepare_cached(&sql)?.query_row([id], msg_from_row)?;
    view(raw)
}

/// Turns user input into an FTS5 query: every word quoted (so no operator
/// syntax leaks through), all required, the last one as a prefix.
fn fts_query(q: &str) -> Option<String> {
    let words: Vec<String> =
        q.split_whitespace().map(|w| format!("\"{}\"", w.replace('"', "\"\""))).collect();
    if words.is_empty() {
        return None;
    }
    let mut s = words.join(" ");
    s.push('*');
    Some(s)
}

#[cfg(test)]
mod tests;
