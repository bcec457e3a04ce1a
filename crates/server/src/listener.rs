//! The accept loop and the connection-level defences against floods.
//!
//! - A connection cap: each accepted socket holds a semaphore permit until
//!   it closes. At the cap a new connection gets a short HTTP 503 and is
//!   closed at once, so clients see a clear refusal (and back off) instead
//!   of a hanging connect.
//! - A per-IP cap on connections that have not signed in ([`PreHello`]):
//!   counted before the connection cap, so connections over it take no
//!   slot of the global cap; released when the socket closes or its
//!   WebSocket session completes `hello`.
//! - A header-read timeout (hyper's, which also bounds the wait for the
//!   next request on a keep-alive connection) and an idle timeout for
//!   plain HTTP connections (nothing read or written), so silent sockets
//!   cannot hold slots.
//!
//! Accept errors (e.g. out of file descriptors) back off instead of
//! spinning. [`serve`] runs one hyper HTTP/1 connection per socket, with
//! upgrades (WebSocket) and graceful shutdown.

use crate::direct::Wire;
use crate::metrics::Metrics;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

/// The refusal written to a connection over a cap.
const REFUSAL_503: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 78\r\nconnection: close\r\n\r\n{\"re\":null,\"err\":{\"code\":\"rate_limited\",\"message\":\"server at connection cap\"}}";

/// Counts the connections of each IP address that have not signed in.
struct IpGate {
    max: usize,
    counts: Mutex<HashMap<IpAddr, usize>>,
}

impl IpGate {
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<PreHello> {
        let mut counts = self.counts.lock().expect("ip gate lock");
        let n = counts.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(PreHello(Arc::new(Slot { gate: self.clone(), ip, released: AtomicBool::new(false) })))
    }

    fn release(&self, ip: IpAddr) {
        let mut counts = self.counts.lock().expect("ip gate lock");
        if let Some(n) = counts.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&ip);
            }
        }
    }

    #[cfg(test)]
    fn count(&self, ip: IpAddr) -> usize {
        self.counts.lock().expect("ip gate lock").get(&ip).copied().unwrap_or(0)
    }
}

struct Slot {
    gate: Arc<IpGate>,
    ip: IpAddr,
    released: AtomicBool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if !self.released.swap(true, Ordering::AcqRel) {
            self.gate.release(self.ip);
        }
    }
}

/// A connection's place in its IP address's count of connections that
/// have not signed in. Cheap to clone; the place is given back once, by
/// [`PreHello::release`] (the session completed `hello`) or when the
/// connection closes, whichever comes first.
#[derive(Clone)]
pub struct PreHello(Arc<Slot>);

impl PreHello {
    /// Gives the place back (idempotent).
    pub fn release(&self) {
        if !self.0.released.swap(true, Ordering::AcqRel) {
            self.0.gate.release(self.0.ip);
        }
    }
}

impl std::fmt::Debug for PreHello {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PreHello({}, released: {})", self.0.ip, self.0.released.load(Ordering::Relaxed))
    }
}

/// What a request knows about its connection (a request extension).
#[derive(Clone, Debug)]
pub struct ConnInfo {
    /// The peer's address.
    pub remote: SocketAddr,
    /// The address the connection was accepted on.
    pub local: SocketAddr,
    /// The connection's place in its IP's count of unauthenticated
    /// connections; a WebSocket session releases it after `hello`.
    pub pre_hello: PreHello,
    /// The connection's socket, for writing events into it directly while
    /// its session is idle (see [`crate::direct`]).
    pub wire: Arc<Wire>,
}

/// A TCP listener that admits at most `max` connections at once, and at
/// most `per_ip` not yet signed in from one IP address.
pub struct CappedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    gate: Arc<IpGate>,
    metrics: Arc<Metrics>,
}

impl CappedListener {
    /// Wraps a bound listener.
    pub fn new(inner: TcpListener, max: usize, per_ip: usize, metrics: Arc<Metrics>) -> Self {
        CappedListener {
            inner,
            permits: Arc::new(Semaphore::new(max)),
            gate: Arc::new(IpGate { max: per_ip, counts: Mutex::default() }),
            metrics,
        }
    }

    /// The next admitted connection.
    pub async fn accept(&mut self) -> (CappedStream, SocketAddr) {
        let mut backoff = Duration::from_millis(5);
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    backoff = Duration::from_millis(5);
                    let _ = stream.set_nodelay(true);
                    // The per-IP count first: a connection over it must not
                    // take a slot of the global cap.
                    let Some(pre_hello) = self.gate.admit(addr.ip()) else {
                        self.metrics.rejected_connections.inc();
                        let _ = stream.try_write(REFUSAL_503);
                        continue;
                    };
                    match self.permits.clone().try_acquire_owned() {
                        Ok(permit) => {
                            let wire = Arc::new(Wire::new(
                                &stream,
                                Some(self.metrics.frames_out.clone()),
                                Some(self.metrics.frames_direct.clone()),
                            ));
                            let stream = CappedStream {
                                stream,
                                _permit: permit,
                                pre_hello,
                                activity: Arc::new(Activity::new()),
                                wire,
                            };
                            return (stream, addr);
                        }
                        Err(_) => {
                            self.metrics.rejected_connections.inc();
                            let _ = stream.try_write(REFUSAL_503);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed; backing off");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// The bound address.
    ///
    /// # Errors
    /// As [`TcpListener::local_addr`].
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// When a connection last moved a byte (milliseconds since it opened).
struct Activity {
    opened: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity { opened: Instant::now(), last_ms: AtomicU64::new(0) }
    }

    fn touch(&self) {
        self.last_ms.store(self.opened.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// How long the connection has been without traffic.
    fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.opened.elapsed().saturating_sub(last)
    }
}

/// An accepted connection, its permit and its per-IP place. Its writes go
/// through its [`Wire`], which a session may also write into directly.
pub struct CappedStream {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    pre_hello: PreHello,
    activity: Arc<Activity>,
    wire: Arc<Wire>,
}

impl Drop for CappedStream {
    fn drop(&mut self) {
        // Before the socket closes (the fields drop after this).
        self.wire.close();
        self.pre_hello.release();
    }
}

impl AsyncRead for CappedStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.touch();
        }
        r
    }
}

impl AsyncWrite for CappedStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.wire.poll_flush_via(Pin::new(&mut this.stream), cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // What is left of a direct write goes out before the FIN.
        std::task::ready!(this.wire.poll_flush_via(Pin::new(&mut this.stream), cx))?;
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = this.wire.poll_write_via(Pin::new(&mut this.stream), cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Timeouts of [`serve`].
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Time to send a complete request head (from connect, or from the end
    /// of the previous response on a keep-alive connection).
    pub header_read: Duration,
    /// A connection that moves no byte for this long is closed (until it
    /// becomes a WebSocket, which has its heartbeat).
    pub idle: Duration,
}

/// Hands each request to the router with its [`ConnInfo`] attached.
#[derive(Clone)]
struct ConnService {
    router: Router,
    info: ConnInfo,
}

impl hyper::service::Service<hyper::Request<Incoming>> for ConnService {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = axum::routing::future::RouteFuture<std::convert::Infallible>;

    fn call(&self, mut req: hyper::Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(self.info.clone());
        // The router is always ready (axum's `Router::poll_ready`).
        tower_service::Service::call(&mut self.router.clone(), req.map(axum::body::Body::new))
    }
}

/// Serves HTTP/1.1 (with WebSocket upgrades) on `listener` until `stop`
/// turns true; then asks open HTTP connections to finish their request and
/// waits for them (upgraded connections are the sessions' business).
///
/// # Errors
/// None today; the signature leaves room for accept errors that should end
/// the server.
pub async fn serve(
    mut listener: CappedListener,
    router: Router,
    timeouts: Timeouts,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let local = listener.local_addr()?;
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(timeouts.header_read).keep_alive(true);
    let (open_tx, open_rx) = watch::channel(());
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stopped| *stopped) => break,
        };
        let activity = stream.activity.clone();
        let info = ConnInfo { remote, local, pre_hello: stream.pre_hello.clone(), wire: stream.wire.clone() };
        let conn =
            builder.serve_connection(TokioIo::new(stream), ConnService { router: router.clone(), info });
        let mut stop = stop.clone();
        let open = open_rx.clone();
        tokio::spawn(async move {
            let conn = conn.with_upgrades();
            tokio::pin!(conn);
            let mut draining = false;
            loop {
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!(%remote, error = %e, "HTTP connection ended");
                        }
                        break;
                    }
                    _ = stop.wait_for(|stopped| *stopped), if !draining => {
                        draining = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    () = idle_for(&activity, timeouts.idle) => {
                        tracing::debug!(%remote, "closing an idle HTTP connection");
                        break;
                    }
                }
            }
            drop(open);
        });
    }
    drop(open_rx);
    open_tx.closed().await;
    Ok(())
}

/// Completes once the connection has moved no byte for `limit`.
async fn idle_for(activity: &Activity, limit: Duration) {
    loop {
        let idle = activity.idle();
        if idle >= limit {
            return;
        }
        tokio::time::sleep(limit - idle).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_place_is_given_back_once_by_release_or_drop() {
        let gate = Arc::new(IpGate { max: 2, counts: Mutex::default() });
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let a = gate.admit(ip).unwrap();
        let b = gate.admit(ip).unwrap();
        assert!(gate.admit(ip).is_none(), "over the cap");
        assert!(gate.admit("127.0.0.2".parse().unwrap()).is_some(), "another address has its own count");
        a.release();
        a.release();
        let a2 = a.clone();
        drop(a);
        drop(a2);
        assert_eq!(gate.count(ip), 1, "released once");
        let c = gate.admit(ip).unwrap();
        drop(b);
        drop(c);
        assert_eq!(gate.count(ip), 0);
    }
}
