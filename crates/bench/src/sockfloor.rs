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
//! - per frame read: the least a generator holding one connection per
//!   member pays per delivery received.
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
    fn start(socks: Vec<TcpStream>) -> anyhow::Result<Reader> {
        let read = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (read.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("socket-floor-reader".into())
            .spawn(move || read_all(&socks, &r, &s))?;
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

/// Connects the members, runs every mode, closes them.
///
/// # Errors
/// When the sockets cannot be set up, a write fails or the reader fails.
pub fn run(args: &Args) -> anyhow::Result<Report> {
    if args.members == 0 || args.frame_bytes == 0 || args.rate <= 0.0 || args.duration <= 0.0 {
        bail!("--members, --frame-bytes, --rate and --duration must be above 0");
    }
    let listener = TcpListener::bind("127.0.0.1:0").context("binding a loopback listener")?;
    let addr = listener.local_addr()?;
    let mut readers = Vec::with_capacity(args.members);
    let mut writers = Vec::with_capacity(args.members);
    for _ in 0..args.members {
        let r = TcpStream::connect(addr).context("connecting a member")?;
        let (w, _) = listener.accept()?;
        for s in [&r, &w] {
            s.set_nodelay(true)?;
            s.set_nonblocking(true)?;
        }
        readers.push(r);
        writers.push(w);
    }
    let fds: Vec<RawFd> = writers.iter().map(AsRawFd::as_raw_fd).collect();
    let reader = Reader::start(readers)?;
    let mut notes = Vec::new();
    let mut ring = match io_uring::IoUring::new(1024) {
        Ok(ring) => Some(ring),
        Err(e) => {
            notes.push(format!("io_uring is not available here ({e}): the uring step was not run"));
            None
        }
    };
    let mut steps = Vec::new();
    for &mode in &args.modes {
        if mode == Mode::Uring && ring.is_none() {
            continue;
        }
        steps.push((mode.label().to_owned(), step(args, mode, &fds, &reader, ring.as_mut())?));
    }
    reader.finish()?;
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
        };
        let r = run(&args).unwrap();
        let uring = io_uring::IoUring::new(8).is_ok();
        let labels: Vec<&str> = r.steps.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(labels, if uring { vec!["send", "uring"] } else { vec!["send"] }, "{:?}", r.notes);
        assert_eq!(r.notes.is_empty(), uring, "{:?}", r.notes);
        for (label, m) in &r.steps {
            let n = |k: &str| m.get(k).and_then(serde_json::Value::as_f64).unwrap();
            assert!(n("frames") >= 20.0, "{label}: {m:?}");
            assert_eq!(n("frames_received"), n("frames"), "{label}: every frame read");
            assert!(
                n("writer_cpu_us_per_frame") > 0.0 && n("reader_cpu_us_per_frame") > 0.0,
                "{label}: {m:?}"
            );
            assert_eq!(m.get("kept_up"), Some(&json!(true)), "{label}: {m:?}");
        }
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
        let args = Args { members: 0, rate: 50.0, duration: 0.1, frame_bytes: 300, modes: vec![Mode::Send] };
        assert!(run(&args).unwrap_err().to_string().contains("above 0"));
    }
}
