//! Unsent drafts, one per conversation.

use super::{Result, Store};
use crate::model::now_ms;
use courier_proto::Conv;
use rusqlite::{OptionalExtension, params};

impl Store {
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
}
