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

#[cfg(test)]
mod tests {
    use crate::store::test_support::{msg, open};
    use courier_proto::Conv;

    #[test]
    fn search_finds_words_and_prefixes_and_ignores_operators() {
        let (_d, s) = open();
        let c = Conv::channel("lobby");
        s.apply_messages(
            "alice",
            &[
                msg(&c, 1, "bob", "b1", "the quick brown fox"),
                msg(&c, 2, "bob", "b2", "lazy dogs sleep"),
                msg(&c, 3, "bob", "b3", "Quick: \"NEAR\" AND OR"),
            ],
        )
        .unwrap();
        let hits = |q: &str| s.search(q, 10).unwrap().iter().map(|m| m.seq.unwrap()).collect::<Vec<_>>();
        assert_eq!(hits("quick"), [3, 1]);
        assert_eq!(hits("quick bro"), [1]);
        assert_eq!(hits("do"), [2]);
        assert_eq!(hits("AND OR"), [3]);
        assert_eq!(hits("\"unbalanced"), Vec::<u64>::new());
        assert!(hits("   ").is_empty());
    }
}
