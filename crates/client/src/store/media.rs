//! The media cache: which local file holds a downloaded media id, and the
//! MIME type it was served with; bounded in bytes, the files used longest
//! ago going first.

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

    /// Notes that a cached media file was used now (it goes last).
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn touch_media(&self, media: &str) -> Result<()> {
        self.with(|c| {
            c.execute("UPDATE media_cache SET fetched = ?2 WHERE media = ?1", params![media, now_ms()])?;
            Ok(())
        })
    }

    /// Deletes the cached files used longest ago until the rest take at
    /// most `max` bytes, never `keep` (the file just fetched). Returns how
    /// many went.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn trim_media(&self, max: u64, keep: &str) -> Result<usize> {
        self.tx_files(|tx, files| {
            let total: i64 =
                tx.query_row("SELECT COALESCE(SUM(size), 0) FROM media_cache", [], |r| r.get(0))?;
            let mut over = total.saturating_sub(i64::try_from(max).unwrap_or(i64::MAX));
            let mut gone = Vec::new();
            let mut oldest = tx.prepare(
                "SELECT media, path, size FROM media_cache WHERE media != ?1 ORDER BY fetched, media",
            )?;
            let mut rows = oldest.query([keep])?;
            while over > 0
                && let Some(row) = rows.next()?
            {
                over -= row.get::<_, i64>(2)?.max(0);
                gone.push(row.get::<_, String>(0)?);
                files.push(PathBuf::from(row.get::<_, String>(1)?));
            }
            drop(rows);
            drop(oldest);
            for media in &gone {
                tx.execute("DELETE FROM media_cache WHERE media = ?1", [media])?;
            }
            Ok(gone.len())
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::store::Store;

    #[test]
    fn the_cache_keeps_the_files_used_last_within_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_dir(dir.path()).unwrap();
        let file = |id: &str| dir.path().join(id);
        for (i, id) in ["m_a", "m_b", "m_c"].into_iter().enumerate() {
            std::fs::write(file(id), [0u8; 40]).unwrap();
            s.put_media(id, &file(id), "image/png", 40).unwrap();
            // Distinct times: a used longest ago, then b, then c.
            let at = i64::try_from(i).unwrap();
            s.with_transaction(|tx| {
                tx.execute("UPDATE media_cache SET fetched = ?2 WHERE media = ?1", (id, at))
            })
            .unwrap();
        }
        assert_eq!(s.trim_media(120, "m_c").unwrap(), 0, "within the bound: nothing goes");
        s.touch_media("m_a").unwrap();
        // 120 bytes against 50: b goes first (a was just used), then a,
        // since c is the file just fetched.
        assert_eq!(s.trim_media(50, "m_c").unwrap(), 2);
        for id in ["m_a", "m_b"] {
            assert!(s.media_path(id).unwrap().is_none() && !file(id).exists(), "{id} is gone");
        }
        assert_eq!(s.media_path("m_c").unwrap(), Some(file("m_c")));
        assert_eq!(s.trim_media(0, "m_c").unwrap(), 0, "the file just fetched stays");
        assert!(file("m_c").exists());
    }
}
