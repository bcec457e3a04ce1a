//! The socket floor: what one frame costs the kernel on this machine's
//! loopback, with no WebSocket, no parsing and no runtime around it. One
//! thread writes a frame the size of Courier's fan-out event to each of
//! `members` TCP connections, `rate` rounds a second (the fan-out's shape:
//! every member gets every message); another thread reads them all with
//! `epoll`, one `read` per readable socket. Each thread's own CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`; on loopback it includes the receive path
//! the kernel runs for the other end inside each `send`) per frame is:
//!
//! - per frame written, by mode: `send`, one system call per member per
//!   round (what Courier, the relay and Socket.IO do per delivery); and
//!   `uring`, every member's write of a round submitted to `io_uring` at
//!   once (one `io_uring_enter` per round), the lever that lowers the count
//!   of system calls but not the TCP work per segment;
//! - per frame read, by reader: `epoll`, one `read` per readable socket
//!   (the least a generator holding one connection per member pays per
//!   delivery received, read as it comes), and `multishot`, a multishot
//!   `io_uring` receive armed once on every socket into a ring of provided
//!   buffers, every completion of a wake-up reaped from one
//!   `io_uring_enter` (no `epoll`, no system call per frame: what is left
//!   is the kernel's receive path itself, the ACK it sends included).
//!
//! Issue 17's section of `docs/benchmarks.md` states the fan-out and the
//! generator's targets against these figures, measured in the same run.

use crate::stats::{Metrics, Report};
use anyhow::{Context as _, anyhow, bail};
use serde_json::json;
use std::io::{ErrorKind, Read as _};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::thread::JoinHandleExt as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Parameters of `socket-floor`.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct Args {
    /// Connections (the fan-out's members).
    #[arg(long, default_value_t = 1000)]
    pub members: usize,
    /// Rounds per second: each round writes one frame to every member.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Seconds per mode.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Bytes per frame (Courier's fan-out event of a 100-byte text is about
    /// 300 bytes on the wire).
    #[arg(long, default_value_t = 300)]
    pub frame_bytes: usize,
    /// How the frames are written, one step each: `send` (a system call per
    /// frame), `uring` (a round's frames in one `io_uring` submission).
    #[arg(long, value_delimiter = ',', default_value = "send,uring")]
    pub modes: Vec<Mode>,
    /// How the frames are read: `epoll` (a `read` per readable socket) and
    /// `multishot` (`io_uring` multishot receives), each over its own
    /// connections; a `multishot` step is labelled `MODE+multishot`.
    #[arg(long, value_delimiter = ',', default_value = "epoll,multishot")]
    pub readers: Vec<ReadMode>,
}

/// How the frames are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadMode {
    /// Level-triggered `epoll`, one `read` per readable socket.
    Epoll,
    /// A multishot `io_uring` receive per socket, into provided buffers.
    Multishot,
}

/// How a round's frames are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One `send` per member.
    Send,
    /// Every member's write in one `io_uring` submission.
    Uring,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Send => "send",
            Mode::Uring => "uring",
        }
    }
}

fn cpu_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into a local timespec.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The reading side: its thread, the clock of its CPU time, the bytes it
/// has read.
struct Reader {
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
    clock: libc::clockid_t,
    read: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Reader {
    fn start(socks: Vec<TcpStream>, how: ReadMode) -> anyhow::Result<Reader> {
        let read = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (read.clone(), stop.clone());
        let thread =
            std::thread::Builder::new().name("socket-floor-reader".into()).spawn(move || match how {
                ReadMode::Epoll => read_all(&socks, &r, &s),
                ReadMode::Multishot => read_multishot(&socks, &r, &s),
            })?;
        let mut clock: libc::clockid_t = 0;
        // SAFETY: the thread is alive (it is joined only in `finish`), and
        // the call writes into a local.
        let rc = unsafe { libc::pthread_getcpuclockid(thread.as_pthread_t(), &mut clock) };
        if rc != 0 {
            stop.store(true, Ordering::Relaxed);
            bail!("pthread_getcpuclockid: {}", std::io::Error::from_raw_os_error(rc));
        }
        Ok(Reader { thread: Some(thread), clock, read, stop })
    }

    /// Waits until `bytes` have been read in all (or `limit` passed).
    fn wait_for(&self, bytes: u64, limit: Duration) -> bool {
        let t0 = Instant::now();
        while self.read.load(Ordering::Relaxed) < bytes {
            if t0.elapsed() > limit {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        true
    }

    fn finish(mut self) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread.take().expect("joined once");
        thread.join().map_err(|_| anyhow!("the reader panicked"))?.context("reading")
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Reads every socket as its data comes: level-triggered `epoll`, one
/// `read` per readable socket per wake-up.
fn read_all(socks: &[TcpStream], read: &AtomicU64, stop: &AtomicBool) -> std::io::Result<()> {
    // SAFETY: plain system calls on descriptors this function's sockets own;
    // `epoll` is closed at the end.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let result = (|| {
        for (i, s) in socks.iter().enumerate() {
            let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: i as u64 };
            // SAFETY: `ev` is a valid event for the call's duration.
            if unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, s.as_raw_fd(), &mut ev) } < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
        let mut buf = vec![0u8; 64 * 1024];
        while !stop.load(Ordering::Relaxed) {
            // SAFETY: `events` has room for the 256 entries asked for.
            let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, 50) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for ev in &events[..n as usize] {
                let mut sock = &socks[ev.u64 as usize];
                match sock.read(&mut buf) {
                    Ok(0) => return Err(std::io::Error::new(ErrorKind::UnexpectedEof, "a writer closed")),
                    Ok(k) => {
                        read.fetch_add(k as u64, Ordering::Relaxed);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    })();
    // SAFETY: `ep` is this function's descriptor, closed once.
    unsafe { libc::close(ep) };
    result
}

/// Provided buffers of the multishot reader: how many, and their size.
const BUFFERS: u16 = 4096;
const BUFFER_BYTES: usize = 4096;

/// The ring of provided buffers a multishot receive takes its buffers from:
/// `BUFFERS` entries in page-aligned memory the kernel reads, each naming a
/// slice of `data`. A buffer is the kernel's from when it is offered
/// (`offer`, then `publish`) until a completion names it.
struct BufRing {
    entries: *mut io_uring::types::BufRingEntry,
    layout: std::alloc::Layout,
    data: Vec<u8>,
    tail: u16,
}

impl BufRing {
    fn new() -> std::io::Result<BufRing> {
        let layout = std::alloc::Layout::from_size_align(BUFFERS as usize * 16, 4096)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        // SAFETY: the layout has a non-zero size; freed in `drop`.
        let entries = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<io_uring::types::BufRingEntry>();
        if entries.is_null() {
            return Err(std::io::Error::other("out of memory for the buffer ring"));
        }
        let mut ring = BufRing { entries, layout, data: vec![0; BUFFERS as usize * BUFFER_BYTES], tail: 0 };
        for bid in 0..BUFFERS {
            ring.offer(bid);
        }
        ring.publish();
        Ok(ring)
    }

    /// Puts buffer `bid` back at the ring's tail (seen by the kernel once
    /// published).
    fn offer(&mut self, bid: u16) {
        // SAFETY: the index is masked into the ring's `BUFFERS` entries, and
        // the buffer's slice lies inside `data`.
        unsafe {
            let e = &mut *self.entries.add((self.tail & (BUFFERS - 1)) as usize);
            e.set_addr(self.data.as_mut_ptr().add(bid as usize * BUFFER_BYTES) as u64);
            e.set_len(BUFFER_BYTES as u32);
            e.set_bid(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    /// Shows the kernel every buffer offered so far.
    fn publish(&self) {
        // SAFETY: the tail field lies in the first entry of the live ring; the
        // kernel reads it with acquire ordering.
        unsafe {
            let tail =
                io_uring::types::BufRingEntry::tail(self.entries).cast::<std::sync::atomic::AtomicU16>();
            (*tail).store(self.tail, Ordering::Release);
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; the ring that used it
        // is dropped first (see `read_multishot`).
        unsafe { std::alloc::dealloc(self.entries.cast(), self.layout) };
    }
}

/// Reads every socket through `io_uring`: one multishot receive armed on
/// each (re-armed when the kernel ends it), into the provided buffers of
/// a `BufRing`; each wake-up reaps every completion in one `io_uring_enter`.
fn read_multishot(socks: &[TcpStream], read: &AtomicU64, stop: &AtomicBool) -> std::io::Result<()> {
    const GROUP: u16 = 0;
    let mut bufs = BufRing::new()?;
    let mut ring = io_uring::IoUring::builder().setup_single_issuer().setup_defer_taskrun().build(4096)?;
    // SAFETY: the entries stay valid until `ring` is dropped, which happens
    // before `bufs` (declared after it, so dropped first, on every path).
    unsafe {
        ring.submitter().register_buf_ring_with_flags(bufs.entries as u64, BUFFERS, GROUP, 0)?;
    }
    let arm = |ring: &mut io_uring::IoUring, i: usize| -> std::io::Result<()> {
        let e = io_uring::opcode::RecvMulti::new(io_uring::types::Fd(socks[i].as_raw_fd()), GROUP)
            .build()
            .user_data(i as u64);
        // SAFETY: the entry holds no pointer: its buffers come from the group.
        while unsafe { ring.submission().push(&e) }.is_err() {
            ring.submit()?;
        }
        Ok(())
    };
    for i in 0..socks.len() {
        arm(&mut ring, i)?;
    }
    ring.submit()?;
    let wait = io_uring::types::Timespec::new().nsec(50_000_000);
    let args = io_uring::types::SubmitArgs::new().timespec(&wait);
    let mut rearm = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match ring.submitter().submit_with_args(1, &args) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ETIME) || e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        let mut offered = false;
        for c in ring.completion() {
            let i = c.user_data() as usize;
            match c.result() {
                n if n > 0 => {
                    read.fetch_add(n as u64, Ordering::Relaxed);
                }
                0 => return Err(std::io::Error::new(ErrorKind::UnexpectedEof, "a writer closed")),
                // Out of buffers: the receive ended; re-armed below once
                // this wake-up's buffers are back.
                n if n == -libc::ENOBUFS => {}
                n => return Err(std::io::Error::from_raw_os_error(-n)),
            }
            if let Some(bid) = io_uring::cqueue::buffer_select(c.flags()) {
                bufs.offer(bid);
                offered = true;
            }
            if !io_uring::cqueue::more(c.flags()) {
                rearm.push(i);
            }
        }
        if offered {
            bufs.publish();
        }
        for i in rearm.drain(..) {
            arm(&mut ring, i)?;
        }
    }
    Ok(())
}

/// Writes one frame to every socket, one `send` each.
fn round_send(fds: &[RawFd], frame: &[u8]) -> anyhow::Result<()> {
    for &fd in fds {
        // SAFETY: `frame` is valid for its length; `fd` is an open socket.
        let n = unsafe { libc::send(fd, frame.as_ptr().cast(), frame.len(), libc::MSG_NOSIGNAL) };
        if n != frame.len() as isize {
            bail!("send wrote {n} of {} bytes: {}", frame.len(), std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Writes one frame to every socket, all in one `io_uring` submission.
fn round_uring(ring: &mut io_uring::IoUring, fds: &[RawFd], frame: &[u8]) -> anyhow::Result<()> {
    for chunk in fds.chunks(ring.params().sq_entries() as usize) {
        {
            let mut sq = ring.submission();
            for &fd in chunk {
                let e =
                    io_uring::opcode::Send::new(io_uring::types::Fd(fd), frame.as_ptr(), frame.len() as u32)
                        .flags(libc::MSG_NOSIGNAL)
                        .build();
                // SAFETY: `frame` outlives the submission: every entry has
                // completed when `submit_and_wait` below returns.
                unsafe { sq.push(&e) }.map_err(|_| anyhow!("the submission queue is full"))?;
            }
        }
        ring.submit_and_wait(chunk.len())?;
        for c in ring.completion() {
            if c.result() != frame.len() as i32 {
                bail!("an io_uring send returned {} for {} bytes", c.result(), frame.len());
            }
        }
    }
    Ok(())
}

/// One mode: `rate` rounds a second for `duration`, then waits until the
/// reader has every frame.
fn step(
    args: &Args,
    mode: Mode,
    fds: &[RawFd],
    reader: &Reader,
    ring: Option<&mut io_uring::IoUring>,
) -> anyhow::Result<Metrics> {
    let frame = vec![b'x'; args.frame_bytes];
    let mut ring = ring;
    let period = Duration::from_secs_f64(1.0 / args.rate);
    let window = Duration::from_secs_f64(args.duration);
    let read0 = reader.read.load(Ordering::Relaxed);
    let (w0, r0) = (cpu_ns(libc::CLOCK_THREAD_CPUTIME_ID), cpu_ns(reader.clock));
    let t0 = Instant::now();
    let mut next = t0;
    let mut rounds = 0u64;
    while t0.elapsed() < window {
        match (mode, ring.as_deref_mut()) {
            (Mode::Send, _) => round_send(fds, &frame)?,
            (Mode::Uring, Some(ring)) => round_uring(ring, fds, &frame)?,
            (Mode::Uring, None) => bail!("no io_uring"),
        }
        rounds += 1;
        next += period;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let wall = t0.elapsed();
    let writer_ns = cpu_ns(libc::CLOCK_THREAD_CPUTIME_ID) - w0;
    let frames = rounds * fds.len() as u64;
    let expected = read0 + frames * args.frame_bytes as u64;
    let complete = reader.wait_for(expected, Duration::from_secs(10));
    let reader_ns = cpu_ns(reader.clock) - r0;
    let received = (reader.read.load(Ordering::Relaxed) - read0) / args.frame_bytes as u64;
    let mut m = Metrics::default();
    m.num("target_rounds_per_s", args.rate, "rounds/s")
        .num("rounds_per_s", rounds as f64 / wall.as_secs_f64(), "rounds/s")
        .put("frames", frames, "")
        .put("frames_received", received, "")
        .num("writer_cpu_us_per_frame", writer_ns as f64 / 1e3 / frames.max(1) as f64, "µs")
        .num("reader_cpu_us_per_frame", reader_ns as f64 / 1e3 / received.max(1) as f64, "µs")
        .put("kept_up", complete && rounds as f64 >= 0.95 * args.rate * wall.as_secs_f64(), "")
        .num("machine_load_1m", crate::scenarios::loadavg(), "");
    Ok(m)
}

/// `members` loopback connections: the reading ends, the writing ends.
fn connect(members: usize) -> anyhow::Result<(Vec<TcpStream>, Vec<TcpStream>)> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding a loopback listener")?;
    let addr = listener.local_addr()?;
    let mut readers = Vec::with_capacity(members);
    let mut writers = Vec::with_capacity(members);
    for _ in 0..members {
        let r = TcpStream::connect(addr).context("connecting a member")?;
        let (w, _) = listener.accept()?;
        for s in [&r, &w] {
            s.set_nodelay(true)?;
            s.set_nonblocking(true)?;
        }
        readers.push(r);
        writers.push(w);
    }
    Ok((readers, writers))
}

/// For each reader, connects the members, runs every mode, closes them.
///
/// # Errors
/// When the sockets cannot be set up, a write fails or the `epoll` reader
/// fails. (A kernel without multishot receives gets a note instead.)
pub fn run(args: &Args) -> anyhow::Result<Report> {
    if args.members == 0 || args.frame_bytes == 0 || args.rate <= 0.0 || args.duration <= 0.0 {
        bail!("--members, --frame-bytes, --rate and --duration must be above 0");
    }
    let mut notes = Vec::new();
    let mut ring = match io_uring::IoUring::new(1024) {
        Ok(ring) => Some(ring),
        Err(e) => {
            notes.push(format!("io_uring is not available here ({e}): its steps were not run"));
            None
        }
    };
    let mut steps = Vec::new();
    for &how in &args.readers {
        if how == ReadMode::Multishot && ring.is_none() {
            continue;
        }
        let (readers, writers) = connect(args.members)?;
        let fds: Vec<RawFd> = writers.iter().map(AsRawFd::as_raw_fd).collect();
        let reader = Reader::start(readers, how)?;
        let mut these = Vec::new();
        for &mode in &args.modes {
            if mode == Mode::Uring && ring.is_none() {
                continue;
            }
            let label = match how {
                ReadMode::Epoll => mode.label().to_owned(),
                ReadMode::Multishot => format!("{}+multishot", mode.label()),
            };
            these.push((label, step(args, mode, &fds, &reader, ring.as_mut())?));
        }
        match (reader.finish(), how) {
            (Ok(()), _) => steps.append(&mut these),
            (Err(e), ReadMode::Multishot) => {
                notes.push(format!("the multishot reader failed ({e:#}): its steps were dropped"));
            }
            (Err(e), ReadMode::Epoll) => return Err(e),
        }
    }
    let mut summary = Metrics::default();
    for (label, m) in &steps {
        for key in ["writer_cpu_us_per_frame", "reader_cpu_us_per_frame"] {
            summary.put(&format!("{key}_{label}"), m.get(key).cloned().unwrap_or_default(), "µs");
        }
    }
    Ok(Report { scenario: "socket-floor", target: "loopback", params: json!(args), summary, steps, notes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_frame_written_is_read_and_costed_in_each_mode() {
        let args = Args {
            members: 20,
            rate: 50.0,
            duration: 0.3,
            frame_bytes: 300,
            modes: vec![Mode::Send, Mode::Uring],
            readers: vec![ReadMode::Epoll, ReadMode::Multishot],
        };
        let r = run(&args).unwrap();
        let uring = io_uring::IoUring::new(8).is_ok();
        let labels: Vec<&str> = r.steps.iter().map(|(l, _)| l.as_str()).collect();
        let want = match uring {
            true => vec!["send", "uring", "send+multishot", "uring+multishot"],
            false => vec!["send"],
        };
        assert_eq!(labels, want, "{:?}", r.notes);
        assert_eq!(r.notes.is_empty(), uring, "{:?}", r.notes);
        for (label, m) in &r.steps {
            let n = |k: &str| m.get(k).and_then(serde_json::Value::as_f64).unwrap();
            assert!(n("frames") >= 20.0, "{label}: {m:?}");
            assert_eq!(n("frames_received"), n("frames"), "{label}: every frame read");
            assert!(
                n("writer_cpu_us_per_frame") > 0.0 && n("reader_cpu_us_per_frame") > 0.0,
                "{label}: {m:?}"
            );
            // Whether the writer kept its pace is a measurement of the
            // machine's load (a 0.3 s step on a busy machine falls short),
            // not of the code: reported, not asserted.
            assert!(m.get("kept_up").is_some_and(serde_json::Value::is_boolean), "{label}: {m:?}");
        }
    }

    /// More frames than the ring has buffers: each buffer must go back to the
    /// kernel once read (fails if the reader keeps them: the receives run dry
    /// and the frames are never read).
    #[test]
    fn the_multishot_reader_gives_its_buffers_back() {
        if io_uring::IoUring::new(8).is_err() {
            return; // No io_uring here: the step is not run (see the test above).
        }
        let args = Args {
            members: 10,
            rate: 1000.0,
            duration: 1.0,
            frame_bytes: 300,
            modes: vec![Mode::Send],
            readers: vec![ReadMode::Multishot],
        };
        let r = run(&args).unwrap();
        let (label, m) = r.steps.first().unwrap_or_else(|| panic!("{:?}", r.notes));
        assert_eq!(label, "send+multishot");
        let n = |k: &str| m.get(k).and_then(serde_json::Value::as_f64).unwrap();
        assert!(n("frames") > f64::from(BUFFERS), "{m:?}");
        assert_eq!(n("frames_received"), n("frames"), "every frame read: {m:?}");
    }

    #[test]
    fn a_frame_the_socket_does_not_take_whole_is_an_error() {
        // A socket that takes nothing: its peer is closed, so `send` fails.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (w, _) = listener.accept().unwrap();
        drop(peer);
        let fd = w.as_raw_fd();
        let frame = [b'x'; 300];
        let failed = (0..50).any(|_| {
            std::thread::sleep(Duration::from_millis(2));
            round_send(&[fd], &frame).is_err()
        });
        assert!(failed, "writes to a closed peer must fail, not be counted");
        if let Ok(mut ring) = io_uring::IoUring::new(8) {
            assert!(round_uring(&mut ring, &[fd], &frame).is_err());
        }
    }

    #[test]
    fn bad_parameters_are_refused() {
        let args = Args {
            members: 0,
            rate: 50.0,
            duration: 0.1,
            frame_bytes: 300,
            modes: vec![Mode::Send],
            readers: vec![ReadMode::Epoll],
        };
        assert!(run(&args).unwrap_err().to_string().contains("above 0"));
    }
}
