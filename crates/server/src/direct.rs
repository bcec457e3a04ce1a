//! Writing an event straight into an idle session's socket.
//!
//! A fan-out to a thousand members used to wake a thousand session tasks,
//! each of which took its event from its queue and wrote it. When a member's
//! session has nothing queued and nothing half-written, the publisher can
//! instead write the event's WebSocket frame into the socket itself: one
//! system call, no task woken (`SessionHandle::push_frame` decides when; this
//! module does the write and keeps it from tearing a frame).
//!
//! A [`Wire`] belongs to one accepted connection (`listener::CappedStream`,
//! the socket under hyper's upgraded connection and the session's
//! WebSocket). Everything the WebSocket writes goes through
//! [`Wire::poll_write_via`] with the wire's lock held, so the two writers
//! never interleave inside a frame:
//! - a direct write happens only at a frame boundary: the WebSocket's last
//!   write was taken whole (`mid` is false) and nothing of an earlier direct
//!   write is left over;
//! - what the socket did not take of a direct write (`rest`) is written
//!   before any other byte, by the session's next write or flush;
//! - once the connection is dropped (`close`) nothing is written to its
//!   descriptor, which the lock keeps from closing during a write.
//!
//! Linux only (`send` with `MSG_NOSIGNAL`, `io_uring`); elsewhere every
//! event goes through the session's queue as before.
//!
//! Order among events is the session handle's business: it writes directly
//! only while its queue is empty and everything it took from the queue has
//! been flushed.

use prometheus::IntCounter;
use std::io;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;

/// What a direct write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direct {
    /// The whole frame is in the socket.
    Written,
    /// Part of the frame is in the socket; the rest waits for the session's
    /// next write or flush, which must happen (wake the session).
    Partial,
    /// Nothing was written: the socket is mid-frame, full, failed or closed.
    /// Queue the frame instead.
    NotNow,
}

#[derive(Default)]
struct State {
    /// The connection is gone: its descriptor may be closed or reused.
    closed: bool,
    /// The WebSocket's last write was taken in part: the socket is inside
    /// one of its frames.
    mid: bool,
    /// What the socket did not take of a direct write.
    rest: Vec<u8>,
}

impl State {
    /// A direct write may start: the connection is open, the socket is
    /// between frames and nothing of an earlier direct write is left.
    fn at_boundary(&self) -> bool {
        !self.closed && !self.mid && self.rest.is_empty()
    }
}

/// The write side of one connection, shared by its stream and its session.
pub struct Wire {
    /// The socket's descriptor (Linux; elsewhere no direct writes are made).
    #[cfg(target_os = "linux")]
    fd: std::os::fd::RawFd,
    state: Mutex<State>,
    /// Frames written directly (they count as frames sent).
    frames_out: Option<IntCounter>,
    /// Direct writes.
    direct: Option<IntCounter>,
}

impl std::fmt::Debug for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wire").finish_non_exhaustive()
    }
}

/// Appends the header of an unmasked, final text frame of `len` bytes (a
/// server's frame: RFC 6455 §5.2).
fn text_header(len: usize, out: &mut Vec<u8>) {
    out.push(0x81);
    if len < 126 {
        out.push(len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.push(126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

/// A text frame, header and payload in one buffer: made once per event and
/// written as is into every member's socket (a plain `send`; what a
/// socket did not take is a tail of it).
pub struct Framed {
    bytes: Vec<u8>,
}

impl Framed {
    /// The frame of `payload`.
    pub fn new(payload: &[u8]) -> Self {
        let mut bytes = Vec::with_capacity(payload.len() + 10);
        text_header(payload.len(), &mut bytes);
        bytes.extend_from_slice(payload);
        Framed { bytes }
    }

    fn len(&self) -> usize {
        self.bytes.len()
    }
}

/// A wire held for one direct write (see [`Wire::try_claim`]).
pub struct Claim<'a> {
    wire: &'a Wire,
    st: MutexGuard<'a, State>,
}

impl Claim<'_> {
    /// One `send` of the frame, never waiting: the bytes sent, or a
    /// negative number.
    #[cfg(target_os = "linux")]
    fn send_now(&self, frame: &Framed) -> isize {
        // SAFETY: the buffer is `frame`'s, which outlives the call, and
        // `send` only reads it. The descriptor is open: this claim holds the
        // wire's lock with `closed` false, and the stream sets it (under the
        // lock) before its socket closes.
        unsafe {
            libc::send(
                self.wire.fd,
                frame.bytes.as_ptr().cast(),
                frame.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        }
    }

    /// No direct writes on this platform: every event is queued.
    #[cfg(not(target_os = "linux"))]
    fn send_now(&self, _frame: &Framed) -> isize {
        -1
    }

    /// Records what a write of `frame` did (`sent`: the bytes the socket
    /// took, or a negative error) and releases the wire. The caller counts
    /// the frames written ([`Wire::count`]).
    pub fn finish(mut self, frame: &Framed, sent: isize) -> Direct {
        // An error (would block, reset) wrote nothing: the session's own
        // write meets it.
        let Ok(sent) = usize::try_from(sent) else { return Direct::NotNow };
        if sent == 0 {
            return Direct::NotNow;
        }
        if sent >= frame.len() {
            return Direct::Written;
        }
        self.st.rest.extend_from_slice(&frame.bytes[sent..]);
        Direct::Partial
    }
}

/// A ring for one thread's batches: only that thread submits to it and
/// reaps it, so the kernel may skip the cross-thread work (single issuer,
/// completions run when it waits); a kernel without those flags (before
/// 6.1) gets a plain ring; `None` when it has no `io_uring` at all.
#[cfg(target_os = "linux")]
fn new_ring(entries: u32) -> Option<io_uring::IoUring> {
    io_uring::IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(entries)
        .or_else(|_| io_uring::IoUring::new(entries))
        .ok()
}

/// Writes `frame` into every claimed socket with one `io_uring`
/// submission (Linux; a ring per thread, made on first use): the bytes
/// each socket took, or a negative error, in `claims`' order. `None` when
/// `io_uring` is not available here (the caller writes one by one).
#[cfg(target_os = "linux")]
pub fn write_batch(claims: &[Claim<'_>], frame: &Framed) -> Option<Vec<isize>> {
    use std::cell::RefCell;
    thread_local! {
        /// Made on first use; `Some(None)`: this thread's ring could not be made.
        static URING: RefCell<Option<Option<io_uring::IoUring>>> = const { RefCell::new(None) };
    }
    URING.with(|cell| {
        let mut cell = cell.borrow_mut();
        let ring = cell.get_or_insert_with(|| new_ring(RING)).as_mut()?;
        write_batch_on(ring, claims, frame)
    })
}

/// Entries per submission of [`write_batch`] (larger batches go in several).
#[cfg(target_os = "linux")]
const RING: u32 = 1024;

/// [`write_batch`] on a given ring. A chunk of writes goes into the
/// submission queue whole or not at all: with no room for it (which the
/// thread's own ring never lacks, every chunk being reaped before the
/// next), it and the rest answer `-EAGAIN`, so those members get the event
/// through their queues; nothing is written twice, and no entry pointing
/// at `frame` is left behind in the queue.
#[cfg(target_os = "linux")]
fn write_batch_on(ring: &mut io_uring::IoUring, claims: &[Claim<'_>], frame: &Framed) -> Option<Vec<isize>> {
    let mut sent = vec![-(libc::EAGAIN as isize); claims.len()];
    let len = u32::try_from(frame.len()).ok()?;
    let per = (ring.params().sq_entries() as usize).min(RING as usize);
    let mut entries = Vec::with_capacity(per.min(claims.len()));
    for (n, chunk) in claims.chunks(per).enumerate() {
        let base = n * per;
        entries.clear();
        entries.extend(chunk.iter().enumerate().map(|(i, c)| {
            // MSG_DONTWAIT: a full socket completes with -EAGAIN instead of
            // waiting for room.
            io_uring::opcode::Send::new(io_uring::types::Fd(c.wire.fd), frame.bytes.as_ptr(), len)
                .flags(libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
                .build()
                .user_data((base + i) as u64)
        }));
        // SAFETY: each entry points at `frame`'s buffer, which outlives it
        // (every one is reaped below before this returns); the descriptors
        // are open while the claims hold their wires' locks.
        if unsafe { ring.submission().push_multiple(&entries) }.is_err() {
            return Some(sent);
        }
        // Every entry is reaped before `frame` may go: the kernel reads
        // it until each completes.
        let mut done = 0;
        while done < chunk.len() {
            if let Err(e) = ring.submit_and_wait(chunk.len() - done) {
                let again = matches!(e.raw_os_error(), Some(libc::EINTR | libc::EAGAIN | libc::EBUSY));
                if !again {
                    // Entries in flight point at memory about to be
                    // freed: stopping is the only safe answer.
                    tracing::error!(error = %e, "io_uring failed with writes in flight");
                    std::process::abort();
                }
            }
            for c in ring.completion() {
                sent[c.user_data() as usize] = c.result() as isize;
                done += 1;
            }
        }
    }
    Some(sent)
}

/// Writes `frame` into every claimed socket, one system call each.
pub fn write_each(claims: &[Claim<'_>], frame: &Framed) -> Vec<isize> {
    claims.iter().map(|c| c.send_now(frame)).collect()
}

impl Wire {
    /// The wire of `stream`'s socket. `frames_out` and `direct` count the
    /// frames it writes itself.
    pub fn new(stream: &TcpStream, frames_out: Option<IntCounter>, direct: Option<IntCounter>) -> Wire {
        #[cfg(target_os = "linux")]
        let fd = std::os::fd::AsRawFd::as_raw_fd(stream);
        #[cfg(not(target_os = "linux"))]
        let _ = stream;
        Wire {
            #[cfg(target_os = "linux")]
            fd,
            state: Mutex::default(),
            frames_out,
            direct,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("wire lock")
    }

    /// The connection is gone: no more direct writes (called before its
    /// socket is closed).
    pub fn close(&self) {
        self.state().closed = true;
    }

    /// Whether part of a direct write still waits to be written.
    pub fn has_rest(&self) -> bool {
        !self.state().rest.is_empty()
    }

    /// Holds the wire for a direct write if one may start now: at a frame
    /// boundary, nothing left over, the connection open, and its lock free
    /// (never waits for it). While the claim lives, the stream's writes and
    /// its close wait.
    pub fn try_claim(&self) -> Option<Claim<'_>> {
        let st = self.state.try_lock().ok()?;
        st.at_boundary().then_some(Claim { wire: self, st })
    }

    /// Writes `payload` as one WebSocket text frame, now or not at all
    /// (never waits; see [`Direct`]).
    pub fn write_text(&self, payload: &[u8]) -> Direct {
        let st = self.state();
        if !st.at_boundary() {
            return Direct::NotNow;
        }
        let claim = Claim { wire: self, st };
        let frame = Framed::new(payload);
        let sent = claim.send_now(&frame);
        let done = claim.finish(&frame, sent);
        if done != Direct::NotNow {
            self.count(1);
        }
        done
    }

    /// Counts `n` frames written directly (a fan-out counts all its writes
    /// at once: the counters are shared by every connection).
    pub fn count(&self, n: u64) {
        for c in [&self.frames_out, &self.direct].into_iter().flatten() {
            c.inc_by(n);
        }
    }

    /// Writes what is left of a direct write, then reports ready.
    fn poll_rest(
        st: &mut State,
        stream: &mut Pin<&mut TcpStream>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while !st.rest.is_empty() {
            match stream.as_mut().poll_write(cx, &st.rest) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    st.rest.drain(..n);
                    if st.rest.capacity() > 64 * 1024 && st.rest.is_empty() {
                        st.rest = Vec::new();
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }

    /// The stream's write: what is left of a direct write first, then
    /// `bufs` (`len` bytes in all), noting whether the socket took all of
    /// them (a frame boundary) or only part (inside a frame).
    pub fn poll_write_via(
        &self,
        mut stream: Pin<&mut TcpStream>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut st = self.state();
        if let Poll::Ready(Err(e)) = Self::poll_rest(&mut st, &mut stream, cx) {
            return Poll::Ready(Err(e));
        }
        if !st.rest.is_empty() {
            return Poll::Pending;
        }
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        let r = if bufs.len() == 1 {
            stream.poll_write(cx, &bufs[0])
        } else {
            stream.poll_write_vectored(cx, bufs)
        };
        if let Poll::Ready(Ok(n)) = r {
            st.mid = n < len;
        }
        r
    }

    /// The stream's flush (and shutdown): what is left of a direct write
    /// first.
    pub fn poll_flush_via(
        &self,
        mut stream: Pin<&mut TcpStream>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        let mut st = self.state();
        match Self::poll_rest(&mut st, &mut stream, cx) {
            Poll::Ready(Ok(())) => stream.poll_flush(cx),
            other => other,
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::time::Duration;
    use tokio::io::AsyncReadExt;

    async fn pair() -> (TcpStream, TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (s, _) = l.accept().await.unwrap();
        (s, c)
    }

    /// Reads `n` bytes.
    async fn read_n(c: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        c.read_exact(&mut buf).await.unwrap();
        buf
    }

    fn frame(payload: &[u8]) -> Vec<u8> {
        Framed::new(payload).bytes
    }

    /// Writes all of `bytes` through the wire, as the stream does.
    async fn write_all_via(wire: &Wire, s: &mut TcpStream, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let n = std::future::poll_fn(|cx| {
                wire.poll_write_via(Pin::new(&mut *s), cx, &[io::IoSlice::new(bytes)])
            })
            .await
            .unwrap();
            bytes = &bytes[n..];
        }
    }

    /// Writes through the wire (as the stream does) until the socket takes
    /// part of a buffer; returns the bytes written.
    fn fill(wire: &Wire, s: &mut TcpStream, chunk: &[u8]) -> usize {
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut written = 0;
        loop {
            match wire.poll_write_via(Pin::new(&mut *s), &mut cx, &[io::IoSlice::new(chunk)]) {
                Poll::Ready(Ok(n)) => {
                    written += n;
                    if n < chunk.len() {
                        return written;
                    }
                }
                other => panic!("the socket should take part of a chunk before refusing: {other:?}"),
            }
        }
    }

    #[test]
    fn headers_follow_rfc_6455() {
        let frame = |len: usize| Framed::new(&vec![b'x'; len]).bytes;
        let f = frame(5);
        assert_eq!((&f[..2], f.len()), (&[0x81, 5][..], 2 + 5));
        let f = frame(300);
        assert_eq!((&f[..4], f.len()), (&[0x81, 126, 1, 44][..], 4 + 300));
        let f = frame(70_000);
        assert_eq!((&f[..10], f.len()), (&[0x81, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70][..], 10 + 70_000));
        assert!(f[10..].iter().all(|&b| b == b'x'));
    }

    #[tokio::test]
    async fn a_frame_written_directly_arrives_whole() {
        let (s, mut c) = pair().await;
        let wire = Wire::new(&s, None, None);
        assert_eq!(wire.write_text(b"hello"), Direct::Written);
        let big = vec![b'x'; 300];
        assert_eq!(wire.write_text(&big), Direct::Written);
        assert_eq!(read_n(&mut c, 7).await, frame(b"hello"));
        assert_eq!(read_n(&mut c, 304).await, frame(&big));
    }

    #[tokio::test]
    async fn no_direct_write_inside_a_frame_the_stream_has_not_finished() {
        let (mut s, mut c) = pair().await;
        let wire = Wire::new(&s, None, None);
        // The stream's write is taken in part: the socket is inside its frame.
        let chunk = vec![b'a'; 64 * 1024];
        let written = fill(&wire, &mut s, &chunk);
        // The reader takes some: the socket has room again, but is still
        // inside the stream's frame.
        let head = read_n(&mut c, written.min(128 * 1024)).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(wire.write_text(b"event"), Direct::NotNow, "a direct write would tear the frame");
        // The reader drains; the stream finishes its buffer (one whole write):
        // a frame boundary again.
        let reader = tokio::spawn(async move {
            let mut all = head;
            let _ = c.read_to_end(&mut all).await;
            all
        });
        let rest = chunk.len() - written % chunk.len();
        write_all_via(&wire, &mut s, &chunk[..rest]).await;
        assert_eq!(wire.write_text(b"event"), Direct::Written);
        drop(s);
        let all = reader.await.unwrap();
        assert_eq!(all.len(), written + rest + 7);
        assert!(all[..written + rest].iter().all(|b| *b == b'a'), "the stream's bytes come whole and first");
        assert_eq!(&all[written + rest..], &frame(b"event")[..]);
    }

    #[tokio::test]
    async fn the_rest_of_a_partial_direct_write_goes_before_anything_else() {
        let (mut s, mut c) = pair().await;
        let wire = Wire::new(&s, None, None);
        // Direct frames until the socket takes one in part.
        let payload = vec![b'e'; 50_000];
        let mut whole = 0;
        let partial = loop {
            match wire.write_text(&payload) {
                Direct::Written => whole += 1,
                other => break other,
            }
            assert!(whole < 10_000, "the socket never filled");
        };
        assert_eq!(partial, Direct::Partial);
        assert!(wire.has_rest());
        assert_eq!(wire.write_text(b"later"), Direct::NotNow, "nothing overtakes the rest");
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            let _ = c.read_to_end(&mut all).await;
            all
        });
        // The stream's next write: the rest first, then its own bytes.
        let tail = frame(b"tail");
        write_all_via(&wire, &mut s, &tail).await;
        std::future::poll_fn(|cx| wire.poll_flush_via(Pin::new(&mut s), cx)).await.unwrap();
        assert!(!wire.has_rest());
        drop(s);
        let all = reader.await.unwrap();
        let one = frame(&payload);
        let mut expected = one.repeat(whole + 1);
        expected.extend_from_slice(&tail);
        assert_eq!(all.len(), expected.len());
        assert!(all == expected, "frames torn or out of order");
    }

    /// One submission writes the frame into every claimed socket; a full
    /// socket among them answers at once (it does not hold the batch up),
    /// and a claimed wire cannot be claimed again until released.
    #[tokio::test]
    async fn a_batch_writes_every_claimed_socket_and_a_full_one_does_not_wait() {
        let mut pairs = Vec::new();
        for _ in 0..5 {
            pairs.push(pair().await);
        }
        // The last socket is filled to the brim behind the wire's back.
        let full = &pairs[4].0;
        let junk = vec![b'j'; 64 * 1024];
        // SAFETY: a plain non-blocking send on an open socket.
        while unsafe { libc::send(full.as_raw_fd(), junk.as_ptr().cast(), junk.len(), libc::MSG_DONTWAIT) }
            > 0
        {}
        let wires: Vec<Wire> = pairs.iter().map(|(s, _)| Wire::new(s, None, None)).collect();
        let claims: Vec<Claim<'_>> = wires.iter().map(|w| w.try_claim().expect("idle wire")).collect();
        assert!(wires[0].try_claim().is_none(), "a claimed wire cannot be claimed twice");
        let payload = vec![b'p'; 300];
        let framed = Framed::new(&payload);
        let sent = write_batch(&claims, &framed).expect("io_uring on this machine");
        assert_eq!(&sent[..4], &[304; 4], "{sent:?}");
        assert_eq!(sent[4], -(libc::EAGAIN as isize), "a full socket fails at once: {sent:?}");
        let results: Vec<Direct> =
            claims.into_iter().zip(&sent).map(|(c, &n)| c.finish(&framed, n)).collect();
        assert_eq!(
            results,
            [Direct::Written, Direct::Written, Direct::Written, Direct::Written, Direct::NotNow]
        );
        for (_, c) in pairs.iter_mut().take(4) {
            assert_eq!(read_n(c, 304).await, frame(&payload));
        }
    }

    /// A ring whose submission queue lacks room for a chunk queues none of
    /// it: those members answer `-EAGAIN` (their events go through their
    /// queues), nothing reaches their sockets, and no entry is left in the
    /// queue (fails if the chunk is pushed entry by entry, or if the batch
    /// gives up with `None`, which writes every member again one by one).
    #[tokio::test]
    async fn a_chunk_the_ring_has_no_room_for_is_not_queued_at_all() {
        let mut pairs = Vec::new();
        for _ in 0..4 {
            pairs.push(pair().await);
        }
        let mut ring = io_uring::IoUring::new(8).expect("io_uring on this machine");
        let nop = io_uring::opcode::Nop::new().build().user_data(u64::MAX);
        for _ in 0..6 {
            // SAFETY: a no-op holds no pointer.
            unsafe { ring.submission().push(&nop) }.expect("room for six");
        }
        let wires: Vec<Wire> = pairs.iter().map(|(s, _)| Wire::new(s, None, None)).collect();
        let claims: Vec<Claim<'_>> = wires.iter().map(|w| w.try_claim().expect("idle wire")).collect();
        let framed = Framed::new(b"p");
        let sent = write_batch_on(&mut ring, &claims, &framed);
        assert_eq!(sent, Some(vec![-(libc::EAGAIN as isize); 4]));
        assert_eq!(ring.submission().len(), 6, "nothing of the chunk left queued");
        drop(claims);
        ring.submit_and_wait(6).unwrap();
        assert_eq!(ring.completion().count(), 6);
        for (_, c) in &pairs {
            let mut b = [0u8; 8];
            assert!(c.try_read(&mut b).is_err(), "nothing written");
        }
        // With room again, the same ring writes them all.
        let claims: Vec<Claim<'_>> = wires.iter().map(|w| w.try_claim().expect("idle wire")).collect();
        assert_eq!(write_batch_on(&mut ring, &claims, &framed), Some(vec![3; 4]));
    }

    #[tokio::test]
    async fn nothing_is_written_once_the_connection_is_gone() {
        let (s, mut c) = pair().await;
        let wire = Wire::new(&s, None, None);
        wire.close();
        assert_eq!(wire.write_text(b"late"), Direct::NotNow);
        drop(s);
        let mut all = Vec::new();
        c.read_to_end(&mut all).await.unwrap();
        assert!(all.is_empty(), "{all:?}");
    }
}
