//! The media cache: which local file holds a downloaded media id, and the
//! MIME type it was served with.

use super::{Result, Store};
use crate::model::now_ms;
use rusqlite::{OptionalExtension, params};
use std::path::{Path, PathBuf};

impl Store {
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
}
