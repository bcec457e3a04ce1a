//! Full-text search over the FTS5 index of message text and file names,
//! and the SQL function that gives the index a message's words without
//! their markup.

use super::relations::RELATION_KINDS_SQL;
use super::rows::{MSG_COLS, msg_from_row, view};
use super::{Result, Store};
use crate::markup;
use crate::model::MessageView;
use rusqlite::functions::FunctionFlags;
use rusqlite::types::Value;
use rusqlite::{Connection, params};

/// Registers `courier_search_text(kind, text)`, which the index triggers
/// call (schema version 4): for a text message its words without markup
/// ([`markup::search_text`]), for anything else (file names) the value as
/// it is. Every connection that writes messages needs it.
///
/// # Errors
/// On SQLite failure.
pub(super) fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        "courier_search_text",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let kind: Value = ctx.get(0)?;
            let text: Value = ctx.get(1)?;
            Ok(match (kind, text) {
                (Value::Text(k), Value::Text(t)) if k == "text" => Value::Text(markup::search_text(&t)),
                (_, other) => other,
            })
        },
    )
}

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

    #[test]
    fn search_matches_the_words_of_formatted_text_not_its_markup() {
        let (_d, s) = open();
        let c = Conv::channel("lobby");
        s.apply_messages(
            "alice",
            &[
                msg(&c, 1, "bob", "b1", "**bold** move and ~~old~~ plan"),
                msg(&c, 2, "bob", "b2", "```rust\nfn main() {}\n```"),
                msg(&c, 3, "bob", "b3", "the end: ||she wins||"),
                msg(&c, 4, "bob", "b4", "no formatting here"),
            ],
        )
        .unwrap();
        let hits = |q: &str| s.search(q, 10).unwrap().iter().map(|m| m.seq.unwrap()).collect::<Vec<_>>();
        assert_eq!(hits("bold move"), [1]);
        assert_eq!(hits("old plan"), [1]);
        assert_eq!(hits("main"), [2]);
        assert_eq!(hits("rust"), Vec::<u64>::new(), "a code block's language is not a word of the message");
        assert_eq!(hits("wins"), [3], "a spoiler's words are found");
        for markup in ["**", "~~", "||", "```"] {
            assert_eq!(hits(markup), Vec::<u64>::new(), "{markup}");
        }
    }

    #[test]
    fn an_edit_is_indexed_without_its_markup() {
        let (_d, s) = open();
        let c = Conv::channel("lobby");
        s.apply_messages("alice", &[msg(&c, 1, "bob", "b1", "```python\nprint()\n```")]).unwrap();
        s.with(|conn| {
            conn.execute(
                "UPDATE messages SET body = json_object('text', '```sql\nselect\n```') WHERE seq = 1",
                [],
            )?;
            Ok(())
        })
        .unwrap();
        let hits = |q: &str| s.search(q, 10).unwrap().len();
        assert_eq!((hits("python"), hits("sql"), hits("select")), (0, 0, 1));
    }
}
