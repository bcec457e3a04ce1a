//! Media upload and download over the server's HTTP endpoints (§9), with
//! downloads cached in the account's `media/` directory.

use crate::model::UploadedMedia;
use crate::tls::{self, TlsConfig};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};

/// Errors of media transfers.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The server could not be reached or the exchange broke.
    #[error("media transfer failed: {0}")]
    Transport(String),
    /// The server answered with an error status.
    #[error("media request refused: HTTP {status}: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Response body.
        body: String,
    },
    /// Writing the cache failed.
    #[error("media cache: {0}")]
    Io(#[from] std::io::Error),
    /// Not a media id as servers mint them (`m_` + 26 Crockford base32).
    #[error("not a valid media id: {0:?}")]
    BadId(String),
}

/// `http://host:port` for a `ws://host:port/...` endpoint (`https` for
/// `wss`).
pub fn http_base(ws_url: &str) -> String {
    let (scheme, rest) = ws_url.split_once("://").unwrap_or(("ws", ws_url));
    let host = rest.split('/').next().unwrap_or(rest);
    let scheme = if scheme == "wss" { "https" } else { "http" };
    format!("{scheme}://{host}")
}

async fn exchange(
    base: &str,
    tls: &TlsConfig,
    req: Request<Full<Bytes>>,
) -> Result<(u16, String, Bytes), MediaError> {
    let (scheme, authority) = base.split_once("://").unwrap_or(("http", base));
    let secure = match scheme {
        "http" => false,
        "https" => true,
        other => return Err(MediaError::Transport(format!("unsupported media URL scheme {other:?}"))),
    };
    let (host, port) = tls::host_port(authority, if secure { 443 } else { 80 });
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| MediaError::Transport(format!("cannot reach {base}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let resp = if secure {
        let stream = tls::handshake(tls.clone(), &host, tcp)
            .await
            .map_err(|e| MediaError::Transport(format!("TLS with {base} failed: {}", tls::describe(&e))))?;
        send(TokioIo::new(stream), req).await?
    } else {
        send(TokioIo::new(tcp), req).await?
    };
    let status = resp.status().as_u16();
    let mime = resp
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned();
    let body = resp.into_body().collect().await.map_err(|e| MediaError::Transport(e.to_string()))?.to_bytes();
    Ok((status, mime, body))
}

/// One HTTP/1.1 exchange over an established stream.
async fn send<T>(io: T, req: Request<Full<Bytes>>) -> Result<Response<Incoming>, MediaError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(io).await.map_err(|e| MediaError::Transport(e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender.send_request(req).await.map_err(|e| MediaError::Transport(e.to_string()))
}

fn host_header(base: &str) -> String {
    base.split_once("://").map(|(_, h)| h).unwrap_or(base).to_owned()
}

/// Uploads `bytes` with content type `mime`; `tls` is used for `https`.
///
/// # Errors
/// Network failure, or a non-201 answer (413 when too large).
pub async fn upload(
    base: &str,
    tls: &TlsConfig,
    token: &str,
    bytes: Vec<u8>,
    mime: &str,
) -> Result<UploadedMedia, MediaError> {
    let req = Request::post(format!("{base}/v1/media"))
        .header(hyper::header::HOST, host_header(base))
        .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"))
        .header(hyper::header::CONTENT_TYPE, mime)
        .body(Full::new(Bytes::from(bytes)))
        .map_err(|e| MediaError::Transport(e.to_string()))?;
    let (status, _, body) = exchange(base, tls, req).await?;
    if status != 201 && status != 200 {
        return Err(MediaError::Status { status, body: String::from_utf8_lossy(&body).into_owned() });
    }
    let up: UploadedMedia =
        serde_json::from_slice(&body).map_err(|e| MediaError::Transport(format!("bad upload reply: {e}")))?;
    // The id goes into messages peers will fetch: only a well-formed one.
    check_id(&up.media)?;
    Ok(up)
}

/// Downloads a media object into `dir`; returns (path, mime, size).
///
/// # Errors
/// Network failure, a non-200 answer, or a cache write failure.
pub async fn download(
    base: &str,
    tls: &TlsConfig,
    token: &str,
    media: &str,
    dir: &Path,
) -> Result<(PathBuf, String, u64), MediaError> {
    check_id(media)?;
    let req = Request::get(format!("{base}/v1/media/{media}"))
        .header(hyper::header::HOST, host_header(base))
        .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .map_err(|e| MediaError::Transport(e.to_string()))?;
    let (status, mime, body) = exchange(base, tls, req).await?;
    if status != 200 {
        return Err(MediaError::Status { status, body: String::from_utf8_lossy(&body).into_owned() });
    }
    tokio::fs::create_dir_all(dir).await?;
    let path = dir.join(media);
    let tmp = dir.join(format!(".{media}.part"));
    tokio::fs::write(&tmp, &body).await?;
    tokio::fs::rename(&tmp, &path).await?;
    Ok((path, mime, body.len() as u64))
}

/// Whether the server still has a media object (`HEAD /v1/media/<id>`):
/// `false` on 404 (never uploaded, or taken down by a recall).
///
/// # Errors
/// Network failure or another error status.
pub async fn exists(base: &str, tls: &TlsConfig, token: &str, media: &str) -> Result<bool, MediaError> {
    check_id(media)?;
    let req = Request::head(format!("{base}/v1/media/{media}"))
        .header(hyper::header::HOST, host_header(base))
        .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .map_err(|e| MediaError::Transport(e.to_string()))?;
    match exchange(base, tls, req).await? {
        (200, _, _) => Ok(true),
        (404, _, _) => Ok(false),
        (status, _, body) => {
            Err(MediaError::Status { status, body: String::from_utf8_lossy(&body).into_owned() })
        }
    }
}

/// A media id is checked exactly before it becomes a URL or a file name
/// (§9): a peer sends it, and `m_<id>#.bat` or `m_<id>\\..\\..` must never
/// name a file.
fn check_id(media: &str) -> Result<(), MediaError> {
    if !courier_proto::ids::is_valid_media_id(media) {
        return Err(MediaError::BadId(media.chars().take(80).collect()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// Hostile ids are refused before any request or file is made.
    #[tokio::test]
    async fn hostile_media_ids_never_reach_the_network_or_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let tls = crate::tls::default_config();
        for bad in
            ["m_01J9ZS1A7PQ8R2XKJT3V4W5Y6H#.bat", "m_01J9ZS1A7PQ8R2XKJT3V4W5Y6H\\..\\..", "m_x", "../m"]
        {
            // Port 9 (discard) is never contacted: the id check comes first.
            let err = super::download("http://127.0.0.1:9", &tls, "t", bad, dir.path()).await.unwrap_err();
            assert!(matches!(err, super::MediaError::BadId(_)), "{bad}: {err}");
            let err = super::exists("http://127.0.0.1:9", &tls, "t", bad).await.unwrap_err();
            assert!(matches!(err, super::MediaError::BadId(_)), "{bad}: {err}");
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn http_base_from_ws_url() {
        assert_eq!(super::http_base("ws://h:7700/v1/ws"), "http://h:7700");
        assert_eq!(super::http_base("wss://chat.example.com/v1/ws"), "https://chat.example.com");
    }
}
