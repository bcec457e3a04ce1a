//! Full-text search over the FTS5 index of message text and file names.

use super::relations::RELATION_KINDS_SQL;
use super::rows::{MSG_COLS, msg_from_row, view};
use super::{Result, Store};
use crate::model::MessageView;
use rusqlite::params;

impl Store {
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
