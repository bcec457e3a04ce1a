//! Media: upload, download into the local cache, and keeping a forwarded
//! message's media available (uploaded again from the cache when the
//! server no longer has it).

use crate::client::{Client, ClientError, Result};
use crate::media;
use crate::model::UploadedMedia;
use crate::state::lock;
use serde_json::{Map, Value, json};
use std::path::PathBuf;

impl Client {
    /// The HTTP base of the server in use (the session's, after a fail-over
    /// too): where this session's media lives.
    fn http_base(&self) -> String {
        let at = self.inner.server.load(std::sync::atomic::Ordering::Relaxed) % self.inner.urls.len();
        media::http_base(&self.inner.urls[at])
    }

    /// Uploads bytes as media (`POST /v1/media`).
    ///
    /// # Errors
    /// Network failure or a refusal (e.g. 413).
    pub async fn upload(&self, bytes: Vec<u8>, mime: &str) -> Result<UploadedMedia> {
        let token = lock(&self.inner.token).clone();
        Ok(media::upload(&self.http_base(), &self.inner.tls, &token, bytes, mime).await?)
    }

    /// The local file of a media id, downloaded once into the cache.
    ///
    /// # Errors
    /// Network failure or a refusal (e.g. 404).
    pub async fn download(&self, media_id: &str) -> Result<PathBuf> {
        if !courier_proto::ids::is_valid_media_id(media_id) {
            return Err(ClientError::Invalid(format!("not a valid media id: {media_id:?}")));
        }
        if let Some(p) = self.inner.store.media_path(media_id)?
            && p.exists()
        {
            self.inner.store.touch_media(media_id)?;
            return Ok(p);
        }
        let token = lock(&self.inner.token).clone();
        let dir = self.inner.cfg.data_dir.join("media");
        let (path, mime, size) =
            media::download(&self.http_base(), &self.inner.tls, &token, media_id, &dir).await?;
        self.inner.store.put_media(media_id, &path, &mime, size)?;
        // Bounded: a peer sending many large files cannot fill the disk.
        self.inner.store.trim_media(self.inner.cfg.media_cache_max, media_id)?;
        Ok(path)
    }

    /// Makes sure `body.media` names media the server still has: when it
    /// answers 404 the cached copy (if any) is uploaded again and the body
    /// points at the new id. Unreachable: left as it is (the send queues).
    pub(super) async fn keep_media_available(&self, kind: &str, body: &mut Map<String, Value>) -> Result<()> {
        let Some(id) = body.get("media").and_then(Value::as_str).map(str::to_owned) else {
            return Err(ClientError::Invalid(format!("this {kind} has no media id")));
        };
        // A peer's id is checked before it reaches a URL or the cache table.
        if !courier_proto::ids::is_valid_media_id(&id) {
            return Err(ClientError::Invalid(format!("this {kind} has an invalid media id")));
        }
        let token = lock(&self.inner.token).clone();
        match media::exists(&self.http_base(), &self.inner.tls, &token, &id).await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => {
                tracing::debug!(error = %e, "cannot check media {id}; forwarding it as it is");
                return Ok(());
            }
        }
        let cached = self.inner.store.media_path(&id)?.filter(|p| p.exists());
        let Some(path) = cached else {
            return Err(ClientError::Invalid(format!(
                "the {kind} of this message is no longer on the server and not cached on this device, \
                 so it cannot be forwarded"
            )));
        };
        let bytes = tokio::fs::read(&path).await.map_err(media::MediaError::from)?;
        let mime = body.get("mime").and_then(Value::as_str).unwrap_or("application/octet-stream").to_owned();
        let up = self.upload(bytes, &mime).await?;
        body.insert("media".into(), json!(up.media));
        body.insert("size".into(), json!(up.size));
        Ok(())
    }
}
