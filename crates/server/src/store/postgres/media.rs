//! Media: facts and bytes (blobs stored out of line, read a range at a
//! time) and the upload quota, checked in the insert's transaction.

use super::PostgresStore;
use super::pool::pg;
use super::rows::col;
use crate::store::MediaStore;
use crate::store::shared::{from_sql_int, to_sql_int};
use crate::store::{MediaMeta, StoreResult, UploadQuota};
use async_trait::async_trait;
use deadpool_postgres::Transaction;

/// Inserts an object's facts and bytes (inside the caller's transaction).
async fn insert_media(tx: &Transaction<'_>, meta: &MediaMeta, bytes: &[u8]) -> StoreResult<()> {
    let facts = tx
        .prepare_cached(
            "INSERT INTO media (id, owner, mime, size, sha256, created) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .await
        .map_err(pg)?;
    tx.execute(
        &facts,
        &[&meta.id, &meta.owner, &meta.mime, &to_sql_int(meta.size), &meta.sha256, &meta.created],
    )
    .await
    .map_err(pg)?;
    let blob = tx.prepare_cached("INSERT INTO media_blobs (id, bytes) VALUES ($1, $2)").await.map_err(pg)?;
    tx.execute(&blob, &[&meta.id, &bytes]).await.map_err(pg)?;
    Ok(())
}

/// Bytes `owner` uploaded at or after `since`.
async fn media_bytes_since<C: deadpool_postgres::GenericClient>(
    c: &C,
    owner: &str,
    since: i64,
) -> StoreResult<u64> {
    let stmt = c
        .prepare_cached("SELECT coalesce(sum(size), 0)::bigint FROM media WHERE owner = $1 AND created >= $2")
        .await
        .map_err(pg)?;
    Ok(from_sql_int(col(&c.query_one(&stmt, &[&owner, &since]).await.map_err(pg)?, 0)?))
}

#[async_trait]
impl MediaStore for PostgresStore {
    async fn put_media(&self, meta: &MediaMeta, bytes: Vec<u8>) -> StoreResult<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        insert_media(&tx, meta, &bytes).await?;
        tx.commit().await.map_err(pg)
    }

    async fn put_media_within(
        &self,
        meta: &MediaMeta,
        bytes: Vec<u8>,
        quota: UploadQuota,
    ) -> StoreResult<Option<u64>> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        // One owner's uploads queue here (on any node) until commit, so
        // check and insert are one step.
        let lock = tx
            .prepare_cached("SELECT pg_advisory_xact_lock(hashtext('courier-media-quota:' || $1)::bigint)")
            .await
            .map_err(pg)?;
        tx.execute(&lock, &[&meta.owner]).await.map_err(pg)?;
        let used = media_bytes_since(&tx, &meta.owner, quota.since).await?;
        if used.saturating_add(meta.size) > quota.bytes {
            return Ok(Some(used));
        }
        insert_media(&tx, meta, &bytes).await?;
        tx.commit().await.map_err(pg)?;
        Ok(None)
    }

    async fn media_meta(&self, id: &str) -> StoreResult<Option<MediaMeta>> {
        let c = self.client().await?;
        let stmt = c
            // Only media whose bytes are there: a recall removes the bytes and
            // keeps the facts (they count toward the daily quota).
            .prepare_cached(
                "SELECT id, owner, mime, size, sha256, created FROM media m \
                 WHERE id = $1 AND EXISTS (SELECT 1 FROM media_blobs b WHERE b.id = m.id)",
            )
            .await
            .map_err(pg)?;
        let Some(r) = c.query_opt(&stmt, &[&id]).await.map_err(pg)? else { return Ok(None) };
        Ok(Some(MediaMeta {
            id: col(&r, 0)?,
            owner: col(&r, 1)?,
            mime: col(&r, 2)?,
            size: from_sql_int(col(&r, 3)?),
            sha256: col(&r, 4)?,
            created: col(&r, 5)?,
        }))
    }

    async fn media_chunk(&self, id: &str, offset: u64, len: usize) -> StoreResult<Option<Vec<u8>>> {
        let c = self.client().await?;
        // Blobs are stored uncompressed out of line (STORAGE EXTERNAL), so
        // `substring` fetches only the TOAST chunks of this range.
        let stmt = c
            .prepare_cached("SELECT substring(bytes from $2 for $3) FROM media_blobs WHERE id = $1")
            .await
            .map_err(pg)?;
        let from = i64::try_from(offset).unwrap_or(i64::MAX - 1).saturating_add(1);
        let len = i64::try_from(len).unwrap_or(i64::MAX).min(i64::from(i32::MAX)) as i32;
        let from = from.min(i64::from(i32::MAX)) as i32;
        let Some(r) = c.query_opt(&stmt, &[&id, &from, &len]).await.map_err(pg)? else { return Ok(None) };
        Ok(Some(col(&r, 0)?))
    }

    async fn media_bytes_since(&self, owner: &str, since: i64) -> StoreResult<u64> {
        let c = self.client().await?;
        media_bytes_since(&c, owner, since).await
    }
}
