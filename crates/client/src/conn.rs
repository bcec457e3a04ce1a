//! One WebSocket session: dialing a server URL, typed requests matched to
//! their replies, pushed events, and heartbeats in both directions.
//!
//! A [`Session`] is driven by one task that owns the socket. It pings every
//! `heartbeat_ms` and declares the link dead when nothing at all (frame,
//! ping or pong) arrived for `2 × heartbeat_ms + 5 s` — also when a write
//! stalls that long — so a half-open TCP connection ends the session within
//! the protocol's bound and the connection manager reconnects.

use crate::tls::{self, TlsConfig};
use courier_proto::{ErrBody, Event, SUBPROTOCOL, ServerFrame, WS_PATH};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until, timeout, timeout_at};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;

/// Errors of dialing a server.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// The URL is not a usable `ws://` or `wss://` URL.
    #[error("bad server URL {0:?}: {1}")]
    BadUrl(String, String),
    /// TCP connect failed.
    #[error("cannot reach {0}: {1}")]
    Unreachable(String, std::io::Error),
    /// The TLS handshake failed (e.g. an untrusted certificate).
    #[error("TLS handshake with {0} failed: {1}")]
    Tls(String, String),
    /// The WebSocket handshake failed.
    #[error("WebSocket handshake with {0} failed: {1}")]
    Handshake(String, String),
    /// Dialing took too long.
    #[error("connecting to {0} timed out")]
    Timeout(String),
}

/// Errors of one request on a session.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RequestError {
    /// The server answered with an error.
    #[error("{}: {}", .0.code, .0.message)]
    Server(Box<ErrBody>),
    /// The session ended before the reply came.
    #[error("disconnected")]
    Disconnected,
    /// No reply within the request timeout.
    #[error("request timed out")]
    Timeout,
}

/// Anything a WebSocket can run over (TCP in production, an in-memory pipe
/// in tests).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// A WebSocket over any [`Io`].
pub type WsStream = WebSocketStream<Box<dyn Io>>;

/// Future returned by a [`Connector`].
pub type ConnectFuture<'a> = Pin<Box<dyn Future<Output = Result<WsStream, ConnError>> + Send + 'a>>;

/// Opens WebSockets; injectable so tests can put a fake server (or a
/// failing network) behind the connection manager.
pub trait Connector: Send + Sync + 'static {
    /// Dials `url` (already normalized by [`ws_url`]).
    fn connect<'a>(&'a self, url: &'a str) -> ConnectFuture<'a>;
}

/// Dials `ws://` URLs over TCP and `wss://` URLs over TLS (rustls).
///
/// The default verifies `wss://` servers against the built-in web roots;
/// [`TcpConnector::with_tls`] takes a configuration with extra roots (see
/// [`crate::ClientConfig::ca_file`]).
#[derive(Debug, Default, Clone)]
pub struct TcpConnector {
    tls: Option<TlsConfig>,
}

impl TcpConnector {
    /// A connector that uses `tls` for `wss://` URLs.
    pub fn with_tls(tls: TlsConfig) -> TcpConnector {
        TcpConnector { tls: Some(tls) }
    }
}

impl Connector for TcpConnector {
    fn connect<'a>(&'a self, url: &'a str) -> ConnectFuture<'a> {
        Box::pin(async move {
            let mut req =
                url.into_client_request().map_err(|e| ConnError::BadUrl(url.into(), e.to_string()))?;
            let secure = match req.uri().scheme_str() {
                Some("ws") => false,
                Some("wss") => true,
                _ => return Err(ConnError::BadUrl(url.into(), "expected ws:// or wss://".into())),
            };
            req.headers_mut().insert("Sec-WebSocket-Protocol", SUBPROTOCOL.parse().expect("static header"));
            let host = req.uri().host().unwrap_or("localhost").trim_matches(['[', ']']).to_owned();
            let port = req.uri().port_u16().unwrap_or(if secure { 443 } else { 80 });
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|e| ConnError::Unreachable(url.into(), e))?;
            let _ = tcp.set_nodelay(true);
            let io: Box<dyn Io> = if secure {
                let cfg = self.tls.clone().unwrap_or_else(tls::default_config);
                let stream = tls::handshake(cfg, &host, tcp)
                    .await
                    .map_err(|e| ConnError::Tls(url.into(), tls::describe(&e)))?;
                Box::new(stream)
            } else {
                Box::new(tcp)
            };
            let cfg =
                WebSocketConfig::default().max_message_size(Some(16 << 20)).max_frame_size(Some(16 << 20));
            let (ws, _resp) = tokio_tungstenite::client_async_with_config(req, io, Some(cfg))
                .await
                .map_err(|e| ConnError::Handshake(url.into(), e.to_string()))?;
            Ok(ws)
        })
    }
}

/// Turns a server base URL into the WebSocket endpoint: `http(s)` becomes
/// `ws(s)`, and `/v1/ws` is appended unless the URL has a path.
///
/// # Errors
/// When the URL has no `ws`, `wss`, `http` or `https` scheme.
pub fn ws_url(base: &str) -> Result<String, ConnError> {
    let base = base.trim();
    let (scheme, rest) = base
        .split_once("://")
        .ok_or_else(|| ConnError::BadUrl(base.into(), "expected ws://host:port".into()))?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "ws" | "http" => "ws",
        "wss" | "https" => "wss",
        other => {
            return Err(ConnError::BadUrl(base.into(), format!("unsupported scheme {other}")));
        }
    };
    if rest.is_empty() {
        return Err(ConnError::BadUrl(base.into(), "no host".into()));
    }
    match rest.find('/') {
        Some(i) if rest[i..] != *"/" => Ok(format!("{scheme}://{rest}")),
        Some(i) => Ok(format!("{scheme}://{}{WS_PATH}", &rest[..i])),
        None => Ok(format!("{scheme}://{rest}{WS_PATH}")),
    }
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEnd {
    /// The close code the server sent, if it sent one.
    pub code: Option<u16>,
    /// For humans.
    pub reason: String,
}

/// Something that answers requests: a live session, or a fake in tests.
pub trait Transport: Send + Sync + 'static {
    /// Sends `op` (without `id`) and waits for its reply.
    fn request(&self, op: Value) -> impl Future<Output = Result<Value, RequestError>> + Send;
}

type Pending = HashMap<u64, oneshot::Sender<Result<Value, ErrBody>>>;

struct PendingTable {
    map: Pending,
    dead: bool,
}

/// A live WebSocket session.
pub struct Session {
    out: mpsc::UnboundedSender<Message>,
    pending: Arc<Mutex<PendingTable>>,
    next_id: AtomicU64,
    request_timeout: Duration,
    heartbeat: watch::Sender<Duration>,
    close: watch::Sender<Option<(u16, String)>>,
}

/// Liveness timing before the server announced its heartbeat.
const INITIAL_HEARTBEAT: Duration = Duration::from_secs(15);

/// How long silence means death for a heartbeat interval: `2 × hb + 5 s`.
pub fn dead_after(heartbeat: Duration) -> Duration {
    heartbeat * 2 + Duration::from_secs(5)
}

impl Session {
    /// Starts driving `ws`; pushed events go to `events`. The returned
    /// handle resolves when the session ends.
    pub fn start(
        ws: WsStream,
        events: mpsc::UnboundedSender<Event>,
        request_timeout: Duration,
    ) -> (Arc<Session>, JoinHandle<SessionEnd>) {
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let pending = Arc::new(Mutex::new(PendingTable { map: HashMap::new(), dead: false }));
        let (hb_tx, hb_rx) = watch::channel(INITIAL_HEARTBEAT);
        let (close_tx, close_rx) = watch::channel(None);
        let session = Arc::new(Session {
            out: out_tx,
            pending: pending.clone(),
            next_id: AtomicU64::new(1),
            request_timeout,
            heartbeat: hb_tx,
            close: close_tx,
        });
        let handle = tokio::spawn(drive(ws, out_rx, pending, events, hb_rx, close_rx));
        (session, handle)
    }

    /// Adopts the server's heartbeat interval (from the `hello` ok).
    pub fn set_heartbeat(&self, hb: Duration) {
        let _ = self.heartbeat.send(hb.max(Duration::from_millis(100)));
    }

    /// Closes the session with `code` (1000 for a normal close).
    pub fn close(&self, code: u16, reason: &str) {
        let _ = self.close.send(Some((code, reason.to_owned())));
    }

    /// Sends a request and waits for its reply.
    ///
    /// # Errors
    /// The server's error, [`RequestError::Disconnected`] when the session
    /// ended, [`RequestError::Timeout`] when no reply came in time.
    pub async fn call(&self, mut op: Value) -> Result<Value, RequestError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        op["id"] = Value::from(id);
        let (tx, rx) = oneshot::channel();
        {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            if p.dead {
                return Err(RequestError::Disconnected);
            }
            p.map.insert(id, tx);
        }
        if self.out.send(Message::text(op.to_string())).is_err() {
            self.pending.lock().unwrap_or_else(|e| e.into_inner()).map.remove(&id);
            return Err(RequestError::Disconnected);
        }
        match timeout(self.request_timeout, rx).await {
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(e))) => Err(RequestError::Server(Box::new(e))),
            Ok(Err(_)) => Err(RequestError::Disconnected),
            Err(_) => {
                self.pending.lock().unwrap_or_else(|e| e.into_inner()).map.remove(&id);
                Err(RequestError::Timeout)
            }
        }
    }
}

impl Transport for Session {
    fn request(&self, op: Value) -> impl Future<Output = Result<Value, RequestError>> + Send {
        self.call(op)
    }
}

impl<T: Transport> Transport for Arc<T> {
    fn request(&self, op: Value) -> impl Future<Output = Result<Value, RequestError>> + Send {
        (**self).request(op)
    }
}

async fn drive(
    mut ws: WsStream,
    mut out: mpsc::UnboundedReceiver<Message>,
    pending: Arc<Mutex<PendingTable>>,
    events: mpsc::UnboundedSender<Event>,
    mut hb: watch::Receiver<Duration>,
    mut close: watch::Receiver<Option<(u16, String)>>,
) -> SessionEnd {
    let mut heartbeat = *hb.borrow_and_update();
    let mut last_rx = Instant::now();
    let mut next_ping = Instant::now() + heartbeat;
    let end = loop {
        let deadline = last_rx + dead_after(heartbeat);
        tokio::select! {
            frame = ws.next() => {
                last_rx = Instant::now();
                match frame {
                    Some(Ok(Message::Text(text))) => route(text.as_str(), &pending, &events),
                    Some(Ok(Message::Close(frame))) => {
                        break match frame {
                            Some(f) => SessionEnd { code: Some(u16::from(f.code)), reason: f.reason.to_string() },
                            None => SessionEnd { code: None, reason: "closed without a code".into() },
                        };
                    }
                    Some(Ok(_)) => {} // ping (answered by tungstenite), pong, binary
                    Some(Err(e)) => break SessionEnd { code: None, reason: format!("connection lost: {e}") },
                    None => break SessionEnd { code: None, reason: "connection closed".into() },
                }
            }
            msg = out.recv() => {
                let Some(msg) = msg else { break SessionEnd { code: None, reason: "client dropped".into() } };
                match timeout_at(deadline, ws.send(msg)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => break SessionEnd { code: None, reason: format!("write failed: {e}") },
                    Err(_) => break SessionEnd { code: None, reason: "heartbeat timeout (write stalled)".into() },
                }
            }
            _ = sleep_until(next_ping) => {
                next_ping = Instant::now() + heartbeat;
                match timeout_at(deadline, ws.send(Message::Ping(Default::default()))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => break SessionEnd { code: None, reason: format!("write failed: {e}") },
                    Err(_) => break SessionEnd { code: None, reason: "heartbeat timeout (write stalled)".into() },
                }
            }
            _ = sleep_until(deadline) => {
                break SessionEnd { code: None, reason: "heartbeat timeout: nothing received".into() };
            }
            changed = hb.changed() => {
                if changed.is_ok() {
                    heartbeat = *hb.borrow_and_update();
                    next_ping = Instant::now() + heartbeat;
                }
            }
            changed = close.changed() => {
                let wanted = if changed.is_ok() { close.borrow_and_update().clone() } else { None };
                let (code, reason) = wanted.unwrap_or((1000, "client closed".into()));
                let frame = CloseFrame { code: WsCloseCode::from(code), reason: reason.clone().into() };
                let _ = timeout(Duration::from_secs(2), ws.close(Some(frame))).await;
                break SessionEnd { code: None, reason: format!("closed by client: {reason}") };
            }
        }
    };
    let mut p = pending.lock().unwrap_or_else(|e| e.into_inner());
    p.dead = true;
    p.map.clear();
    end
}

fn route(text: &str, pending: &Mutex<PendingTable>, events: &mpsc::UnboundedSender<Event>) {
    match ServerFrame::decode(text) {
        Ok(ServerFrame::Reply(reply)) => {
            let Some(id) = reply.re else {
                tracing::warn!(?reply.err, "server rejected a frame");
                return;
            };
            let tx = pending.lock().unwrap_or_else(|e| e.into_inner()).map.remove(&id);
            if let Some(tx) = tx {
                let _ = tx.send(match (reply.ok, reply.err) {
                    (_, Some(err)) => Err(err),
                    (ok, None) => Ok(ok.unwrap_or(Value::Null)),
                });
            }
        }
        Ok(ServerFrame::Event(ev)) => {
            let _ = events.send(*ev);
        }
        Ok(ServerFrame::UnknownEvent(name)) => tracing::debug!(%name, "ignoring unknown event"),
        Err(e) => tracing::warn!(error = %e, "undecodable frame from server"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_get_the_ws_path() {
        assert_eq!(ws_url("ws://host:7700").unwrap(), "ws://host:7700/v1/ws");
        assert_eq!(ws_url("ws://host:7700/").unwrap(), "ws://host:7700/v1/ws");
        assert_eq!(ws_url("wss://chat.example.com").unwrap(), "wss://chat.example.com/v1/ws");
        assert_eq!(ws_url("http://h:1").unwrap(), "ws://h:1/v1/ws");
        assert_eq!(ws_url("ws://h:1/custom/ws").unwrap(), "ws://h:1/custom/ws");
        assert!(ws_url("h:1").is_err());
        assert!(ws_url("ftp://h").is_err());
    }

    #[test]
    fn dead_after_follows_the_protocol() {
        assert_eq!(dead_after(Duration::from_secs(15)), Duration::from_secs(35));
    }
}
