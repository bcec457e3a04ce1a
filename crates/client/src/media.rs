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
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::time::timeout;

/// What an image is by its own bytes (whatever type its sender claimed):
/// a PNG, JPEG, GIF or WebP, the formats an app shows inline, with the size
/// in pixels its header gives. Read with `imagesize`; no pixel is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    /// `image/png`, `image/jpeg`, `image/gif` or `image/webp`.
    pub mime: &'static str,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// The [`ImageInfo`] of `head`, the first bytes of a file (its header);
/// `None` for any other format or a header without a size.
pub fn image_info(head: &[u8]) -> Option<ImageInfo> {
    use imagesize::ImageType;
    let mime = match imagesize::image_type(head).ok()? {
        ImageType::Png => "image/png",
        ImageType::Jpeg => "image/jpeg",
        ImageType::Gif => "image/gif",
        ImageType::Webp => "image/webp",
        _ => return None,
    };
    let size = imagesize::blob_size(head).ok()?;
    Some(ImageInfo { mime, width: u32::try_from(size.width).ok()?, height: u32::try_from(size.height).ok()? })
}

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
    /// The server's answer is larger than this client takes (bytes).
    #[error("the server sent more than {0} bytes")]
    TooLarge(u64),
}

/// `http://host:port` for a `ws://host:port/...` endpoint (`https` for
/// `wss`).
pub fn http_base(ws_url: &str) -> String {
    let (scheme, rest) = ws_url.split_once("://").unwrap_or(("ws", ws_url));
    let host = rest.split('/').next().unwrap_or(rest);
    let scheme = if scheme == "wss" { "https" } else { "http" };
    format!("{scheme}://{host}")
}

/// Longest wait to reach the server, and for each next piece of an
/// answer (head or body): a server that stalls fails the transfer instead
/// of holding it forever.
const STALL: Duration = if cfg!(test) { Duration::from_secs(1) } else { Duration::from_secs(30) };
/// Most bytes of an answer other than a download (error bodies, the
/// upload's reply).
const MAX_REPLY_BYTES: u64 = 64 * 1024;
/// Most bytes a download may be, whatever the server says: servers keep
/// media to 10 MiB by default (`max_media_bytes`); this bounds what a
/// hostile one can make this device store.
pub const MAX_DOWNLOAD_BYTES: u64 = if cfg!(test) { 1024 * 1024 } else { 256 * 1024 * 1024 };

/// Makes one request and returns the answer's status, content type and
/// body (not yet read).
async fn exchange(
    base: &str,
    tls: &TlsConfig,
    req: Request<Full<Bytes>>,
) -> Result<(u16, String, Incoming), MediaError> {
    let (scheme, authority) = base.split_once("://").unwrap_or(("http", base));
    let secure = match scheme {
        "http" => false,
        "https" => true,
        other => return Err(MediaError::Transport(format!("unsupported media URL scheme {other:?}"))),
    };
    let (host, port) = tls::host_port(authority, if secure { 443 } else { 80 });
    let stalled = || MediaError::Transport(format!("{base} did not answer within {} s", STALL.as_secs()));
    let tcp = timeout(STALL, tokio::net::TcpStream::connect((host.as_str(), port)))
        .await
        .map_err(|_| stalled())?
        .map_err(|e| MediaError::Transport(format!("cannot reach {base}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let answer = async {
        if secure {
            let stream = tls::handshake(tls.clone(), &host, tcp).await.map_err(|e| {
                MediaError::Transport(format!("TLS with {base} failed: {}", tls::describe(&e)))
            })?;
            send(TokioIo::new(stream), req).await
        } else {
            send(TokioIo::new(tcp), req).await
        }
    };
    let resp = timeout(STALL, answer).await.map_err(|_| stalled())??;
    let status = resp.status().as_u16();
    let mime = resp
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned();
    Ok((status, mime, resp.into_body()))
}

/// An answer's body read piece by piece, each within [`STALL`], at most
/// `cap` bytes in all.
struct Capped {
    body: Incoming,
    cap: u64,
    read: u64,
}

impl Capped {
    fn new(body: Incoming, cap: u64) -> Result<Capped, MediaError> {
        use hyper::body::Body;
        if body.size_hint().lower() > cap {
            return Err(MediaError::TooLarge(cap));
        }
        Ok(Capped { body, cap, read: 0 })
    }

    /// The next piece of data; `None` at the end.
    async fn next(&mut self) -> Result<Option<Bytes>, MediaError> {
        loop {
            let frame = timeout(STALL, self.body.frame()).await.map_err(|_| {
                MediaError::Transport(format!("the transfer stalled for {} s", STALL.as_secs()))
            })?;
            let Some(frame) = frame else { return Ok(None) };
            let frame = frame.map_err(|e| MediaError::Transport(e.to_string()))?;
            if let Ok(data) = frame.into_data() {
                self.read += data.len() as u64;
                if self.read > self.cap {
                    return Err(MediaError::TooLarge(self.cap));
                }
                return Ok(Some(data));
            }
        }
    }
}

/// A whole (small) answer in memory, at most [`MAX_REPLY_BYTES`].
async fn read_reply(body: Incoming) -> Result<Bytes, MediaError> {
    let mut body = Capped::new(body, MAX_REPLY_BYTES)?;
    let mut all = Vec::new();
    while let Some(piece) = body.next().await? {
        all.extend_from_slice(&piece);
    }
    Ok(Bytes::from(all))
}

/// Writes `body` into `file`; returns its size.
async fn write_body(body: Incoming, file: &mut tokio::fs::File) -> Result<u64, MediaError> {
    let mut body = Capped::new(body, MAX_DOWNLOAD_BYTES)?;
    while let Some(piece) = body.next().await? {
        file.write_all(&piece).await?;
    }
    file.flush().await?;
    Ok(body.read)
}

/// The error of a refused request, with its (bounded) body.
async fn refused(status: u16, body: Incoming) -> MediaError {
    let body = read_reply(body).await.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    MediaError::Status { status, body }
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
        return Err(refused(status, body).await);
    }
    let body = read_reply(body).await?;
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
        return Err(refused(status, body).await);
    }
    tokio::fs::create_dir_all(dir).await?;
    let path = dir.join(media);
    let tmp = dir.join(format!(".{media}.part"));
    // Written as it comes (never the whole file in memory), bounded, and
    // named as the media only once complete.
    let mut file = tokio::fs::File::create(&tmp).await?;
    let written = write_body(body, &mut file).await;
    drop(file);
    let size = match written {
        Ok(n) => n,
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
    };
    tokio::fs::rename(&tmp, &path).await?;
    Ok((path, mime, size))
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
        (status, _, body) => Err(refused(status, body).await),
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

    /// A server that answers every request with `head`, then, if `endless`,
    /// with chunks of zeros until the client goes, else with nothing more
    /// (and never closes).
    async fn hostile(head: &'static str, endless: bool) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    if s.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let chunk = format!("{:x}\r\n{}\r\n", 65_536, "0".repeat(65_536));
                    while endless && s.write_all(chunk.as_bytes()).await.is_ok() {}
                    tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                });
            }
        });
        base
    }

    const ID: &str = "m_01J9ZS1A7PQ8R2XKJT3V4W5Y6H";

    /// A server that sends more than a download may be (announced or not)
    /// gets an error, and nothing stays in the cache.
    #[tokio::test]
    async fn a_download_stops_at_its_cap_and_leaves_nothing() {
        let tls = crate::tls::default_config();
        let dir = tempfile::tempdir().unwrap();
        let announced = hostile("HTTP/1.1 200 OK\r\nContent-Length: 4294967296\r\n\r\n", false).await;
        let endless = hostile("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true).await;
        for base in [announced, endless] {
            let err = super::download(&base, &tls, "t", ID, dir.path()).await.unwrap_err();
            assert!(matches!(err, super::MediaError::TooLarge(_)), "{base}: {err}");
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no file, no .part");
        // An endless error body is cut off too.
        let error = hostile("HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n", true).await;
        let err = super::exists(&error, &tls, "t", ID).await.unwrap_err();
        assert!(matches!(err, super::MediaError::Status { status: 500, .. }), "{err}");
    }

    /// A server that stops sending fails the transfer instead of holding it.
    #[tokio::test]
    async fn a_stalled_transfer_fails() {
        let tls = crate::tls::default_config();
        let dir = tempfile::tempdir().unwrap();
        let stalls = hostile("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789", false).await;
        let err = super::download(&stalls, &tls, "t", ID, dir.path()).await.unwrap_err();
        assert!(err.to_string().contains("stalled"), "{err}");
        let mute = hostile("", false).await;
        let err = super::download(&mute, &tls, "t", ID, dir.path()).await.unwrap_err();
        assert!(err.to_string().contains("did not answer"), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn http_base_from_ws_url() {
        assert_eq!(super::http_base("ws://h:7700/v1/ws"), "http://h:7700");
        assert_eq!(super::http_base("wss://chat.example.com/v1/ws"), "https://chat.example.com");
    }
}
