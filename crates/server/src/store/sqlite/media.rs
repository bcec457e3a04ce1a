//! Uploaded media: facts and bytes, chunked reads, the daily quota.

use super::SqliteStore;
use crate::store::MediaStore;
use crate::store::shared::{first_media_id_since, from_sql_int, to_sql_int};
use crate::store::{MediaMeta, StoreResult, UploadQuota};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

/// Inserts an object's facts and bytes.
pub(super) fn insert_media(c: &Connection, meta: &MediaMeta, bytes: Vec<u8>) -> StoreResult<()> {
    c.prepare_cached(
        "INSERT INTO media (id, owner, mime, size, sha256, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        meta.id,
        meta.owner,
        meta.mime,
        to_sql_int(meta.size),
        meta.sha256,
        meta.created
    ])?;
    c.prepare_cached("INSERT INTO media_blobs (id, bytes) VALUES (?1, ?2)")?
        .execute(params![meta.id, bytes])?;
    Ok(())
}

/// Bytes `owner` uploaded at or after `since`. The id range reads only
/// recent uploads (ids are `m_` + a ULID of the upload time); `created`
/// decides.
pub(super) fn media_bytes_since(c: &Connection, owner: &str, since: i64) -> StoreResult<u64> {
    let n: i64 = c
        .prepare_cached(
            "SELECT coalesce(sum(size), 0) FROM media WHERE id >= ?1 AND owner = ?2 AND created >= ?3",
        )?
        .query_row(params![first_media_id_since(since), owner, since], |r| r.get(0))?;
    Ok(from_sql_int(n))
}

#[async_trait]
impl MediaStore for SqliteStore {
    async fn put_media(&self, meta: &MediaMeta, bytes: Vec<u8>) -> StoreResult<()> {
        let meta = meta.clone();
        self.write(move |c| insert_media(c, &meta, bytes)).await
    }

    async fn put_media_within(
        &self,
        meta: &MediaMeta,
        bytes: Vec<u8>,
        quota: UploadQuota,
    ) -> StoreResult<Option<u64>> {
        let meta = meta.clone();
        // The single writer serialises check and insert.
        self.write(move |c| {
            let used = media_bytes_since(c, &meta.owner, quota.since)?;
            if used.saturating_add(meta.size) > quota.bytes {
                return Ok(Some(used));
            }
            insert_media(c, &meta, bytes)?;
            Ok(None)
        })
        .await
    }

    async fn media_bytes_since(&self, owner: &str, since: i64) -> StoreResult<u64> {
        let owner = owner.to_owned();
        self.read(move |c| media_bytes_since(c, &owner, since)).await
    }

    async fn media_meta(&self, id: &str) -> StoreResult<Option<MediaMeta>> {
        let id = id.to_owned();
        self.read(move |c| {
            // Only media whose bytes are there: a recall removes the bytes and
            // keeps the facts (they count toward the daily quota).
            Ok(c.prepare_cached(
                "SELECT id, owner, mime, size, sha256, created FROM media m \
                 WHERE id = ?1 AND EXISTS (SELECT 1 FROM media_blobs b WHERE b.id = m.id)",
            )?
            .query_row([id], |r| {
                Ok(MediaMeta {
                    id: r.get(0)?,
                    owner: r.get(1)?,
                    mime: r.get(2)?,
                    size: from_sql_int(r.get(3)?),
                    sha256: r.get(4)?,
                    created: r.get(5)?,
                })
            })
            .optional()?)
        })
        .await
    }

    async fn media_chunk(&self, id: &str, offset: u64, len: usize) -> StoreResult<Option<Vec<u8>>> {
        let id = id.to_owned();
        self.read(move |c| {
            let rowid: Option<i64> = c
                .prepare_cached("SELECT rowid FROM media_blobs WHERE id = ?1")?
                .query_row([id], |r| r.get(0))
                .optional()?;
            let Some(rowid) = rowid else { return Ok(None) };
            // Incremental blob I/O reads only the pages of this range.
            let blob = c.blob_open(rusqlite::MAIN_DB, "media_blobs", "bytes", rowid, true)?;
            let size = blob.len() as u64;
            let start = offset.min(size);
            let take = (size - start).min(len as u64) as usize;
            let mut buf = vec![0u8; take];
            blob.read_at_exact(&mut buf, start as usize)?;
            Ok(Some(buf))
        })
        .await
    }
}
