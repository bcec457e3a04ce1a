//! The registry of live sessions: who is online on this node, which sessions
//! watch whose presence, and the channel member cache used for fan-out.
//!
//! Each session owns a bounded outbound queue. Delivery never blocks: an
//! event is serialised once and the same bytes (a [`Frame`]) handed to every
//! recipient's queue and written from there, not copied per recipient; a session whose queue is full is a slow consumer and is asked to
//! close with 1008 (it resyncs on reconnect), so one stuck client cannot
//! grow the server's memory.
//!
//! The queue is a `VecDeque` beside the close request under one lock, with
//! the session task's waker: an idle session holds no queue allocation at
//! all (a tokio channel costs about 1 KiB per session before its first
//! message).
//!
//! An idle session (nothing queued, everything it took flushed) gets an
//! event written straight into its socket by the pusher, under the queue's
//! lock, without waking its task ([`crate::direct`]): a fan-out to a
//! thousand idle members is a thousand writes, not a thousand task
//! wake-ups. Whatever the socket does not take at once goes through the
//! queue as before, so the session's events keep the order they were pushed
//! in.

use crate::direct::{Claim, Direct, Framed, Wire};
use crate::ratelimit::UserBuckets;
use axum::extract::ws::Utf8Bytes;
use courier_proto::CloseCode;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// A queued event: shared bytes, written to each socket as they are.
pub type Frame = Utf8Bytes;

/// Queue capacity (in frames) kept after a burst drains; a larger buffer is
/// released so a burst does not stay resident for the session's lifetime.
const KEEP_QUEUE_CAPACITY: usize = 16;

/// One live, authenticated session as other tasks see it.
pub struct SessionHandle {
    /// Process-unique key (cheap comparisons).
    pub key: u64,
    /// The session id announced to the client.
    pub id: Box<str>,
    /// The user.
    pub user: Arc<str>,
    /// The device id from `hello`.
    pub device: Box<str>,
    /// Most frames queued before the session counts as a slow consumer.
    capacity: usize,
    outbox: Mutex<Outbox>,
    /// The session's socket, when its connection came through the
    /// listener: events are written into it while the session is idle.
    wire: OnceLock<Arc<Wire>>,
}

/// What other tasks hand the session's task.
#[derive(Default)]
struct Outbox {
    frames: VecDeque<Frame>,
    close: Option<(u16, &'static str)>,
    /// The session's task has ended: nothing is queued any more.
    ended: bool,
    /// The session's task, while it waits for frames or a close request.
    waker: Option<Waker>,
    /// Nothing is queued and nothing the task took from `frames` is
    /// unwritten: an event pushed now may be written straight into the
    /// socket. Set by the task once it has flushed with the queue empty
    /// ([`SessionHandle::settle`]); cleared whenever an event is queued or
    /// part of a direct write is left for the task (so no frame the task
    /// may still hold can be overtaken).
    idle: bool,
    /// Part of a direct write waits in the socket's wire: the task must
    /// flush.
    flush: bool,
}

impl Outbox {
    /// An event may be written straight into the socket: the session is
    /// idle (nothing queued, nothing taken unflushed) and not closing.
    fn takes_direct(&self) -> bool {
        !self.ended && self.idle && self.frames.is_empty() && self.close.is_none()
    }

    /// Remembers the waiting task; it is woken by the next push or close.
    fn wait(&mut self, cx: &Context<'_>) {
        if !self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            self.waker = Some(cx.waker().clone());
        }
    }
}

impl SessionHandle {
    fn outbox(&self) -> MutexGuard<'_, Outbox> {
        self.outbox.lock().expect("outbox lock")
    }

    /// Queues a frame. Returns false if it could not be queued; a full queue
    /// also asks the session to close as a slow consumer.
    pub fn push(&self, frame: &Arc<str>) -> bool {
        self.push_frame(&Frame::from(&**frame))
    }

    /// [`push`](Self::push) of bytes already made a frame (fan-out makes
    /// them once for every recipient).
    pub fn push_frame(&self, frame: &Frame) -> bool {
        self.push_frame_via(frame, true)
    }

    /// [`push_frame`](Self::push_frame), written directly only if `direct`
    /// allows it and the session is idle; else queued for its task.
    fn push_frame_via(&self, frame: &Frame, direct: bool) -> bool {
        let mut o = self.outbox();
        if o.ended {
            return false;
        }
        if direct
            && o.takes_direct()
            && let Some(wire) = self.wire.get()
        {
            match wire.write_text(frame.as_bytes()) {
                Direct::Written => return true,
                Direct::Partial => {
                    leave_rest(o);
                    return true;
                }
                Direct::NotNow => {}
            }
        }
        if o.frames.len() >= self.capacity {
            if o.close.is_none() {
                o.close = Some((CloseCode::POLICY, "slow consumer: outbound queue full"));
                wake(o);
            }
            return false;
        }
        o.frames.push_back(frame.clone());
        // Queued: later events queue behind it until the task has written
        // it (so `idle` implies an empty queue and nothing taken unflushed).
        o.idle = false;
        wake(o);
        true
    }

    /// Asks the session's task to close the socket with `code`. The first
    /// request wins.
    pub fn request_close(&self, code: u16, reason: &'static str) {
        let mut o = self.outbox();
        if o.close.is_none() {
            o.close = Some((code, reason));
        }
        wake(o);
    }

    /// The close request, if one was made.
    pub fn close_request(&self) -> Option<(u16, &'static str)> {
        self.outbox().close
    }

    /// Waits until a close is requested, then returns it. Only the
    /// session's own task waits on its handle (there is one waker slot).
    pub async fn close_requested(&self) -> (u16, &'static str) {
        std::future::poll_fn(|cx| {
            let mut o = self.outbox();
            match o.close {
                Some(c) => Poll::Ready(c),
                None => {
                    o.wait(cx);
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Ready while frames are queued or a close is requested (the session's
    /// task only).
    pub(crate) fn poll_work(&self, cx: &Context<'_>) -> Poll<()> {
        let mut o = self.outbox();
        if o.close.is_some() || !o.frames.is_empty() || o.flush {
            return Poll::Ready(());
        }
        o.wait(cx);
        Poll::Pending
    }

    /// Takes the oldest queued frame.
    pub(crate) fn pop(&self) -> Option<Frame> {
        let mut o = self.outbox();
        let frame = o.frames.pop_front();
        if o.frames.is_empty() && o.frames.capacity() > KEEP_QUEUE_CAPACITY {
            o.frames = VecDeque::new();
        }
        frame
    }

    /// Holds the session for a direct write if one may start now, without
    /// waiting for either lock: idle, nothing queued, no close requested,
    /// its wire at a frame boundary. The session's task, its stream and
    /// other pushers wait while it is held.
    fn try_claim(&self) -> Option<(MutexGuard<'_, Outbox>, Claim<'_>)> {
        let o = self.outbox.try_lock().ok()?;
        if !o.takes_direct() {
            return None;
        }
        Some((o, self.wire.get()?.try_claim()?))
    }

    /// Lets events be written into `wire` directly once the session is
    /// idle (the session's task, once, before it serves).
    pub(crate) fn attach(&self, wire: Arc<Wire>) {
        let _ = self.wire.set(wire);
    }

    /// The session's task has flushed what it wrote: if nothing is queued
    /// and no direct write waits to be finished, it is idle (events may be
    /// written into its socket directly until it takes one from the queue).
    pub(crate) fn settle(&self) {
        let mut o = self.outbox();
        if !o.frames.is_empty() {
            return;
        }
        let rest = self.wire.get().is_some_and(|w| w.has_rest());
        o.flush = rest;
        o.idle = !rest;
    }

    /// Whether an event pushed now may be written directly (tests).
    #[cfg(test)]
    pub(crate) fn is_idle(&self) -> bool {
        self.outbox().idle
    }

    /// The session's task has ended: drops what is queued and refuses more.
    pub(crate) fn end(&self) {
        let (frames, waker) = {
            let mut o = self.outbox();
            o.ended = true;
            (std::mem::take(&mut o.frames), o.waker.take())
        };
        drop((frames, waker));
    }
}

/// Claimed sockets from which a write counts as a fan-out: below it they are
/// written one by one and the write's cost is its wall time; from it (Linux)
/// they go in one `io_uring` submission, and the cost is read from the
/// thread's CPU clock. That read is a system call (about 1 µs here, twice per
/// write), which a one-to-one message's single write cannot afford: in a p2p
/// profile at 10k msg/s it was 2.4–3.8 % of the server. A write to a few
/// sockets takes microseconds, which time the thread was not running rarely
/// falls into.
const BATCH_FROM: usize = 4;

/// Writes a frame into claimed sockets: in one submission when there are
/// enough of them and `io_uring` is there, else one system call each.
fn write_claimed(claims: &[Claim<'_>], frame: &Framed) -> Vec<isize> {
    #[cfg(target_os = "linux")]
    if claims.len() >= BATCH_FROM
        && let Some(sent) = crate::direct::write_batch(claims, frame)
    {
        return sent;
    }
    crate::direct::write_each(claims, frame)
}

/// Queues `frame` to each of `sessions` except the one with key `except`:
/// idle sessions whose locks are free get it written into their sockets
/// together; the others (and any whose socket did not take it) are pushed
/// one by one after every claim is released. Returns the number reached.
fn deliver<'s>(
    sessions: impl IntoIterator<Item = &'s Arc<SessionHandle>>,
    frame: &Arc<str>,
    except: Option<u64>,
) -> usize {
    let direct = DUTY.with(|d| d.direct_allowed(Instant::now()));
    let mut n = 0;
    let mut owners = Vec::new();
    let mut outboxes = Vec::new();
    let mut claims = Vec::new();
    let mut later = Vec::new();
    for s in sessions {
        if Some(s.key) == except {
            continue;
        }
        match direct.then(|| s.try_claim()).flatten() {
            Some((outbox, claim)) => {
                owners.push(s);
                outboxes.push(outbox);
                claims.push(claim);
            }
            None => later.push(s),
        }
    }
    if !claims.is_empty() {
        let framed = Framed::new(frame.as_bytes());
        let start = Instant::now();
        let (sent, busy) = if claims.len() >= BATCH_FROM {
            on_cpu(|| write_claimed(&claims, &framed))
        } else {
            (write_claimed(&claims, &framed), start.elapsed())
        };
        DUTY.with(|d| d.record(start, busy, Instant::now()));
        // The counters are shared: counted once for the whole batch.
        let counter = owners[0].wire.get().cloned();
        for (((s, o), claim), sent) in owners.into_iter().zip(outboxes).zip(claims).zip(sent) {
            match claim.finish(&framed, sent) {
                Direct::Written => n += 1,
                Direct::Partial => {
                    leave_rest(o);
                    n += 1;
                }
                Direct::NotNow => {
                    drop(o);
                    later.push(s);
                }
            }
        }
        if let Some(wire) = counter {
            wire.count(n as u64);
        }
    }
    let mut bytes = None;
    for s in later {
        if s.push_frame_via(bytes.get_or_insert_with(|| Frame::from(&**frame)), direct) {
            n += 1;
        }
    }
    n
}

/// The processor time this thread has used (Linux: its own CPU clock, so
/// time it spent preempted or waiting for the host does not count; elsewhere
/// `None`).
fn thread_cpu() -> Option<Duration> {
    #[cfg(test)]
    CPU_CLOCK_READS.with(|n| n.set(n.get() + 1));
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `ts` is a valid timespec for the call to fill.
        if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0 {
            return Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32));
        }
    }
    None
}

#[cfg(test)]
thread_local! {
    /// Reads of this thread's CPU clock (tests).
    static CPU_CLOCK_READS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Runs `f`, returning what it gave and the processor time this thread
/// spent in it (the wall time where the thread's clock cannot be read).
fn on_cpu<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let (wall, cpu) = (Instant::now(), thread_cpu());
    let out = f();
    let spent = match (cpu, thread_cpu()) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => wall.elapsed(),
    };
    (out, spent)
}

/// How much of its time a thread spends writing fan-outs into sockets
/// itself, and whether it still should.
///
/// A direct write saves waking each member's task, but it writes each event
/// on its own: one `send` (one TCP segment) per member per event, all on the
/// publishing thread. A thread that spends most of its time doing that is
/// behind; its fan-outs then go to the members' queues instead, where a
/// task that runs late writes every event queued meanwhile in one write
/// (fewer segments per event as the load grows) and the tasks spread over
/// every worker. Measured over windows of [`Duty::WINDOW`]: above
/// [`Duty::LIMIT`] of [`Duty::OVER_IN_A_ROW`] windows in a row, the thread
/// queues for a hold, then tries direct writes again. The first hold is
/// short ([`Duty::HOLD_MIN`]): a burst (a thousand members joining at once)
/// is usually over by then, and a thread that keeps up again goes back to
/// direct writes soon after it (a fixed hold of a second queued up to a
/// tenth of a 10 s fan-out run that followed its join burst). A thread that
/// is over again as soon as it tries holds twice as long each time, up to
/// [`Duty::HOLD_MAX`], so sustained overload spends little time probing;
/// once it keeps up past its trial, the next hold is short again. One window
/// over the limit is not enough: on this shared host a moment's slowness
/// puts one there now and then, and at a load the thread keeps up with,
/// queueing only costs more (each member's task woken for one event); at
/// 100 events/s to 1,000 members it held fan-outs for up to a quarter of
/// a 10 s run. The share is of processor time spent writing
/// (the thread's own clock, for writes to [`BATCH_FROM`] sockets or more;
/// smaller ones count their wall time) over wall time: on a shared or
/// virtual machine a write's wall time also holds the moments the thread was
/// not running, and counting them queued fan-outs for a thread that was
/// keeping up (at 100 events/s to 1,000 members on this 2-core host, up to a
/// third of them).
#[derive(Debug)]
struct Duty {
    state: std::cell::Cell<DutyState>,
}

#[derive(Debug, Clone, Copy)]
struct DutyState {
    /// Start of the current window (`None`: no direct write yet).
    since: Option<Instant>,
    /// Time spent in direct writes in the current window.
    busy: Duration,
    /// Windows over the limit in a row, and when the last one ended.
    over: u32,
    last_end: Option<Instant>,
    /// Fan-outs are queued until then.
    queue_until: Option<Instant>,
    /// The last hold's length, and when it ended (`None`: no hold yet, or
    /// the thread has kept up since).
    hold: Duration,
    released: Option<Instant>,
}

impl DutyState {
    /// No window open, nothing held.
    const FRESH: DutyState = DutyState {
        since: None,
        busy: Duration::ZERO,
        over: 0,
        last_end: None,
        queue_until: None,
        hold: Duration::ZERO,
        released: None,
    };
}

impl Duty {
    const WINDOW: Duration = Duration::from_millis(100);
    const LIMIT: f64 = 0.7;
    /// Windows over the limit, one right after the other, that make a hold.
    const OVER_IN_A_ROW: u32 = 2;
    /// The first hold, and the longest one.
    const HOLD_MIN: Duration = Duration::from_millis(200);
    const HOLD_MAX: Duration = Duration::from_millis(1600);
    /// A hold that ended this long ago without another: the thread kept up.
    const KEPT_UP: Duration = Duration::from_secs(1);

    const fn new() -> Self {
        Duty { state: std::cell::Cell::new(DutyState::FRESH) }
    }

    /// Whether a fan-out starting at `now` may write directly.
    fn direct_allowed(&self, now: Instant) -> bool {
        let st = self.state.get();
        match st.queue_until {
            Some(until) if now < until => false,
            Some(until) => {
                // The hold is over: a fresh window of direct writes, and
                // the hold's length remembered for the next one.
                self.state.set(DutyState { hold: st.hold, released: Some(until), ..DutyState::FRESH });
                true
            }
            None => true,
        }
    }

    /// A direct write started at `start`, ended at `end` and took `busy`
    /// of this thread's processor time.
    fn record(&self, start: Instant, busy: Duration, end: Instant) {
        let mut st = self.state.get();
        let since = *st.since.get_or_insert(start);
        st.busy += busy;
        let span = end.saturating_duration_since(since);
        if span >= Self::WINDOW {
            // A window that began well after the last one ended follows a
            // pause: it starts a new row.
            let follows =
                st.last_end.is_some_and(|last| since.saturating_duration_since(last) < Self::WINDOW);
            st.over = match st.busy.as_secs_f64() > Self::LIMIT * span.as_secs_f64() {
                true if follows => st.over + 1,
                true => 1,
                false => 0,
            };
            if st.over >= Self::OVER_IN_A_ROW {
                // Over again soon after the last hold: twice as long.
                let again = st.released.is_some_and(|r| end.saturating_duration_since(r) < Self::KEPT_UP);
                st.hold = match again {
                    true => (st.hold * 2).clamp(Self::HOLD_MIN, Self::HOLD_MAX),
                    false => Self::HOLD_MIN,
                };
                st.queue_until = Some(end + st.hold);
                st.over = 0;
            }
            st.since = None;
            st.busy = Duration::ZERO;
            st.last_end = Some(end);
        }
        self.state.set(st);
    }
}

thread_local! {
    /// The duty of the thread's direct writes (each worker its own).
    static DUTY: Duty = const { Duty::new() };
}

/// Part of a direct write waits in the wire: the session's task must flush
/// it, and nothing more is written directly until it has.
fn leave_rest(mut o: MutexGuard<'_, Outbox>) {
    o.idle = false;
    o.flush = true;
    wake(o);
}

/// Wakes the session's task, if it waits, after releasing the lock.
fn wake(mut o: MutexGuard<'_, Outbox>) {
    let waker = o.waker.take();
    drop(o);
    if let Some(w) = waker {
        w.wake();
    }
}

/// Cached facts about a channel for fan-out and access checks.
pub struct ChannelCache {
    /// Whether the channel is private.
    pub private: bool,
    members: RwLock<MemberSet>,
    /// The members' live sessions on this node, as of the last fan-out.
    route: Mutex<Option<Route>>,
    /// Looked up since the cache's last sweep (see [`Channels`]).
    used: std::sync::atomic::AtomicBool,
}

/// The members of a channel at one moment, shared with the cache.
pub type Members = Arc<HashSet<Arc<str>>>;

struct MemberSet {
    /// Replaced, not changed, while a snapshot is out (joins and leaves are
    /// rare; every event to the channel takes a snapshot).
    set: Members,
    /// Counts joins and leaves: a route made before one is stale.
    version: u64,
}

/// The sessions a channel's events go to, and what they were read from:
/// valid while neither the members (`version`) nor the node's sessions
/// (`Hub::generation`) have changed since.
struct Route {
    version: u64,
    generation: u64,
    sessions: Arc<[Arc<SessionHandle>]>,
}

impl ChannelCache {
    /// A cache entry for a channel with these members.
    pub fn new(private: bool, members: impl IntoIterator<Item = String>) -> Self {
        let set = Arc::new(members.into_iter().map(Arc::from).collect());
        ChannelCache {
            private,
            members: RwLock::new(MemberSet { set, version: 0 }),
            route: Mutex::default(),
            used: std::sync::atomic::AtomicBool::new(true),
        }
    }

    fn members(&self) -> std::sync::RwLockReadGuard<'_, MemberSet> {
        self.members.read().expect("members lock")
    }

    /// Whether `user` is a member.
    pub fn is_member(&self, user: &str) -> bool {
        self.members().set.contains(user)
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members().set.len()
    }

    /// Whether the channel has no members.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records a join.
    pub fn insert(&self, user: &str) {
        let mut m = self.members.write().expect("members lock");
        if !m.set.contains(user) {
            Arc::make_mut(&mut m.set).insert(user.into());
            m.version += 1;
        }
    }

    /// Records a leave.
    pub fn remove(&self, user: &str) {
        let mut m = self.members.write().expect("members lock");
        if m.set.contains(user) {
            Arc::make_mut(&mut m.set).remove(user);
            m.version += 1;
        }
    }

    /// The members now, without copying them: later joins and leaves do not
    /// change it.
    pub fn snapshot(&self) -> Members {
        self.members().set.clone()
    }

    /// Marks the entry used (a load first, so a hot channel's shared line
    /// is not written on every lookup).
    fn touch(&self) {
        if !self.used.load(Ordering::Relaxed) {
            self.used.store(true, Ordering::Relaxed);
        }
    }
}

/// A cache sweep happens once the cache holds this many channels (at
/// least; fewer in tests, which then need fewer channels to reach it).
pub(crate) const CHANNEL_SWEEP_MIN: usize = if cfg!(test) { 512 } else { 4096 };

/// The cached channels of a node. Entries are loaded on first use and
/// would otherwise stay for the process's life: every channel ever
/// touched, with its member list and the sessions of its last fan-out. So
/// when a new entry finds the cache at `sweep_at`, the entries not looked
/// up since the previous sweep are dropped (the next use reads them from
/// storage again) and `sweep_at` becomes twice what is left: the cache
/// holds at most about twice the channels in use between two sweeps, and
/// [`CHANNEL_SWEEP_MIN`] when few are.
struct Channels {
    map: HashMap<String, Arc<ChannelCache>>,
    sweep_at: usize,
}

impl Default for Channels {
    fn default() -> Self {
        Channels { map: HashMap::new(), sweep_at: CHANNEL_SWEEP_MIN }
    }
}

impl Channels {
    /// Caches `entry` as `name` unless one is there; returns the cached one.
    fn insert(&mut self, name: &str, entry: ChannelCache) -> Arc<ChannelCache> {
        if let Some(e) = self.map.get(name) {
            e.touch();
            return e.clone();
        }
        if self.map.len() >= self.sweep_at {
            // Dropping an entry is not a membership change: nothing read
            // from storage meanwhile goes stale, so the epoch stays.
            self.map.retain(|_, e| e.used.swap(false, Ordering::Relaxed));
            self.sweep_at = (self.map.len() * 2).max(CHANNEL_SWEEP_MIN);
        }
        let entry = Arc::new(entry);
        self.map.insert(name.to_owned(), entry.clone());
        entry
    }
}

/// Change in a user's online state caused by registering or dropping a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceChange {
    /// The user's first session appeared.
    CameOnline,
    /// The user's last session went away.
    WentOffline,
    /// No change.
    Unchanged,
}

/// One session watching one user's presence.
struct Watch {
    session: Arc<SessionHandle>,
    /// Presence privacy (v1.2): whether the watcher shares a conversation
    /// with the watched user, so sees their presence. Decided by storage
    /// when the watch starts and again when a [`VIEWS_MARKER`] names either
    /// of them; presence events are filtered on it without a query.
    visible: bool,
}

/// Every watch entry of the node, found by watched user and by watcher.
#[derive(Default)]
struct Watchers {
    /// Watched user → the sessions watching them.
    by_target: HashMap<String, Vec<Watch>>,
    /// Watching user → the users their sessions watch, each with how many
    /// of their sessions watch it: the entries a change of the watcher's
    /// own views touches, found without scanning every entry.
    by_watcher: HashMap<Arc<str>, HashMap<String, u32>>,
}

/// The start of a presence event frame (events serialise `ev` first).
const PRESENCE_PREFIX: &str = r#"{"ev":"presence","#;

/// The start of an internal "views changed" frame, handed to watchers like
/// a presence event (so it reaches every node of a cluster on the watcher
/// path) but never delivered: `{"ev":"_views","users":[...]}` asks each
/// node to decide again the watch entries of those users, as watchers or
/// watched. See `ops::people::views_changed`.
pub const VIEWS_MARKER: &str = r#"{"ev":"_views","#;

/// Users whose watch verdicts need deciding again (a set, so a burst of
/// changes costs one decision per user), and the node's refresher task.
#[derive(Default)]
pub struct ViewQueue {
    pending: Mutex<HashSet<String>>,
    /// Wakes the refresher.
    pub notify: tokio::sync::Notify,
    /// The refresher runs (started by the node's first `watch`; until then
    /// no entry exists that could need deciding).
    started: std::sync::atomic::AtomicBool,
    /// DMs where both parties are known to have written (a verdict that
    /// never turns back), so later messages cost nothing.
    two_sided_dms: Mutex<HashSet<String>>,
    /// `(DM, writer)` pairs already checked: a party writing again cannot
    /// change anyone's view (only the other party's first message can), so
    /// a one-sided DM (a bot, a notice sender) costs one query, not one per
    /// message.
    checked_writers: Mutex<HashSet<(String, String)>>,
}

impl ViewQueue {
    /// True exactly once: the caller starts the refresher.
    pub fn start(&self) -> bool {
        !self.started.swap(true, Ordering::AcqRel)
    }

    /// Takes the users queued so far.
    pub fn take(&self) -> HashSet<String> {
        std::mem::take(&mut *self.pending.lock().expect("views lock"))
    }

    fn queue(&self, users: impl IntoIterator<Item = String>) {
        if !self.started.load(Ordering::Acquire) {
            return;
        }
        self.pending.lock().expect("views lock").extend(users);
        self.notify.notify_one();
    }

    /// Whether the DM `conv` is known to be written in by both parties.
    pub fn is_two_sided(&self, conv: &str) -> bool {
        self.two_sided_dms.lock().expect("views lock").contains(conv)
    }

    /// Whether `writer`'s messages in the DM `conv` were checked already;
    /// marks them checked (a bounded memo, like the two-sided one).
    pub fn check_writer_once(&self, conv: &str, writer: &str) -> bool {
        let mut set = self.checked_writers.lock().expect("views lock");
        if set.contains(&(conv.to_owned(), writer.to_owned())) {
            return true;
        }
        if set.len() >= 65_536 {
            set.clear();
        }
        set.insert((conv.to_owned(), writer.to_owned()));
        false
    }

    /// Remembers that both parties wrote in the DM `conv` (a bounded
    /// memo: forgotten wholesale when large, which only costs a query).
    pub fn set_two_sided(&self, conv: &str) {
        let mut set = self.two_sided_dms.lock().expect("views lock");
        if set.len() >= 65_536 {
            set.clear();
        }
        set.insert(conv.to_owned());
    }
}

/// The node's registry of sessions, watchers and channel caches.
#[derive(Default)]
pub struct Hub {
    users: RwLock<HashMap<Arc<str>, Vec<Arc<SessionHandle>>>>,
    watchers: RwLock<Watchers>,
    channels: RwLock<Channels>,
    /// Counts changes of channel members seen here (changed under
    /// `channels`' write lock): members read from storage before one are
    /// used, never cached (see [`Hub::cache_channel`]).
    channel_epoch: AtomicU64,
    /// Membership changes of one channel on this node take turns (see
    /// [`Hub::membership_turn`]).
    membership: MembershipTurns,
    /// Counts registrations and unregistrations (changed under `users`'
    /// write lock): a channel's route made before one is stale.
    generation: AtomicU64,
    /// Presence privacy (v1.2): watch entries whose verdict may be stale.
    pub views: ViewQueue,
    next_key: AtomicU64,
    /// Per-user rate buckets of a single node (a cluster keeps them in
    /// Redis, and falls back to these while Redis is unreachable).
    pub buckets: UserBuckets,
    /// The pace of presence events per user (see `presence`).
    pub presence: crate::presence::PresenceGate,
    /// Per-user buckets of sign-ins on this node (`hello_burst`,
    /// `hello_interval_ms`).
    pub hellos: UserBuckets,
}

impl Hub {
    /// Creates a session handle with an outbound queue of `queue` frames
    /// (not yet registered).
    pub fn new_session(&self, user: &str, device: &str, queue: usize) -> Arc<SessionHandle> {
        Arc::new(SessionHandle {
            key: self.next_key.fetch_add(1, Ordering::Relaxed),
            id: ulid::Ulid::new().to_string().into(),
            user: Arc::from(user),
            device: device.into(),
            capacity: queue,
            outbox: Mutex::default(),
            wire: OnceLock::new(),
        })
    }

    /// Registers a session. An older session of the same user and device is
    /// asked to close with 4003 and dropped from the registry.
    pub fn register(&self, s: &Arc<SessionHandle>) -> PresenceChange {
        self.register_within(s, usize::MAX).expect("no cap")
    }

    /// Registers a session unless the user already has `cap` live sessions
    /// on other devices (`None`: refused, nothing changed). A session that
    /// replaces one of the same device (4003) never counts against the cap.
    pub fn register_within(&self, s: &Arc<SessionHandle>, cap: usize) -> Option<PresenceChange> {
        let mut users = self.users.write().expect("users lock");
        if let Some(list) = users.get(&s.user)
            && list.iter().filter(|old| old.device != s.device).count() >= cap
        {
            return None;
        }
        // Most users have one session: no room for more until a second.
        let list = users.entry(s.user.clone()).or_insert_with(|| Vec::with_capacity(1));
        let was_empty = list.is_empty();
        list.retain(|old| {
            if old.device == s.device {
                old.request_close(CloseCode::REPLACED, "replaced by a newer session of this device");
                false
            } else {
                true
            }
        });
        list.push(s.clone());
        self.generation.fetch_add(1, Ordering::Release);
        Some(if was_empty { PresenceChange::CameOnline } else { PresenceChange::Unchanged })
    }

    /// Drops a session (if still registered) and its presence watches.
    pub fn unregister(&self, s: &Arc<SessionHandle>, watched: &HashSet<String>) -> PresenceChange {
        self.unwatch(s, watched.iter().map(String::as_str));
        let mut users = self.users.write().expect("users lock");
        let Some(list) = users.get_mut(&s.user) else { return PresenceChange::Unchanged };
        let before = list.len();
        list.retain(|x| x.key != s.key);
        if list.len() == before {
            return PresenceChange::Unchanged;
        }
        self.generation.fetch_add(1, Ordering::Release);
        if list.is_empty() {
            users.remove(&s.user);
            PresenceChange::WentOffline
        } else {
            PresenceChange::Unchanged
        }
    }

    /// Whether `user` has a live session on this node.
    pub fn is_online(&self, user: &str) -> bool {
        self.users.read().expect("users lock").contains_key(user)
    }

    /// Number of `user`'s live sessions on this node.
    pub fn user_sessions(&self, user: &str) -> usize {
        self.users.read().expect("users lock").get(user).map_or(0, Vec::len)
    }

    /// Number of live sessions.
    pub fn session_count(&self) -> usize {
        self.users.read().expect("users lock").values().map(Vec::len).sum()
    }

    /// The users with a live session on this node.
    pub fn online_users(&self) -> Vec<Arc<str>> {
        self.users.read().expect("users lock").keys().cloned().collect()
    }

    /// Asks `user`'s sessions of `device` to close with 4003 (a newer
    /// session of that device opened on another node).
    ///
    /// Only sessions older than the session `newer` (by id: ULIDs, ordered
    /// by their creation time on any node) are closed; an empty `newer`
    /// (a kick from a node of an earlier version) closes them all. Kicks
    /// carry no order across nodes: a device reconnecting quickly, first to
    /// one node and then to another, could otherwise be closed 4003 on the
    /// newest session by the late kick of an older one, and a client does
    /// not reconnect after 4003.
    pub fn close_device_before(&self, user: &str, device: &str, newer: &str) {
        if let Some(list) = self.users.read().expect("users lock").get(user) {
            let older = |s: &&Arc<SessionHandle>| newer.is_empty() || *s.id < *newer;
            for s in list.iter().filter(|s| &*s.device == device).filter(older) {
                s.request_close(CloseCode::REPLACED, "replaced by a newer session of this device");
            }
        }
    }

    /// Whether `user` has a live session of `device` on this node.
    pub fn device_online(&self, user: &str, device: &str) -> bool {
        let users = self.users.read().expect("users lock");
        users.get(user).is_some_and(|list| list.iter().any(|s| &*s.device == device))
    }

    /// Queues `frame` to `user`'s sessions of `device` (v1.2 call signals
    /// reach one device only). Returns the number of sessions reached.
    pub fn send_to_device(&self, user: &str, device: &str, frame: &Arc<str>) -> usize {
        let users = self.users.read().expect("users lock");
        let Some(list) = users.get(user) else { return 0 };
        list.iter().filter(|s| &*s.device == device && s.push(frame)).count()
    }

    /// Every registered session (for shutdown).
    pub fn all_sessions(&self) -> Vec<Arc<SessionHandle>> {
        self.users.read().expect("users lock").values().flatten().cloned().collect()
    }

    /// Queues `frame` to every session of each user in `users` except the
    /// session with key `except`. Returns the number of sessions reached.
    pub fn send_to_users<'a>(
        &self,
        users: impl IntoIterator<Item = &'a str>,
        frame: &Arc<str>,
        except: Option<u64>,
    ) -> usize {
        let map = self.users.read().expect("users lock");
        let sessions = users.into_iter().filter_map(|u| map.get(u)).flatten();
        deliver(sessions, frame, except)
    }

    /// Queues `frame` to every live session on this node of the channel's
    /// members except the session `except`, through the channel's route
    /// (made again only after a join, a leave, or a session opening or
    /// closing on this node). Returns the number of sessions reached.
    pub fn send_to_channel(&self, channel: &ChannelCache, frame: &Arc<str>, except: Option<u64>) -> usize {
        let route = self.route(channel);
        deliver(route.iter(), frame, except)
    }

    /// The channel's live sessions on this node, from its route while that
    /// is current, else read again.
    fn route(&self, channel: &ChannelCache) -> Arc<[Arc<SessionHandle>]> {
        let (members, version) = {
            let m = channel.members();
            (m.set.clone(), m.version)
        };
        let generation = self.generation.load(Ordering::Acquire);
        if let Some(r) = &*channel.route.lock().expect("route lock")
            && r.version == version
            && r.generation == generation
        {
            return r.sessions.clone();
        }
        let users = self.users.read().expect("users lock");
        // Exact: the generation only moves under the write lock.
        let generation = self.generation.load(Ordering::Acquire);
        let sessions: Arc<[_]> = members.iter().filter_map(|m| users.get(&**m)).flatten().cloned().collect();
        drop(users);
        *channel.route.lock().expect("route lock") =
            Some(Route { version, generation, sessions: sessions.clone() });
        sessions
    }

    /// Adds `s` as a watcher of each user, with whether it may see that
    /// user's presence (an existing watch takes the new verdict).
    pub fn watch<'a>(&self, s: &Arc<SessionHandle>, users: impl IntoIterator<Item = (&'a str, bool)>) {
        let mut guard = self.watchers.write().expect("watchers lock");
        let w = &mut *guard;
        for (u, visible) in users {
            let list = w.by_target.entry(u.to_owned()).or_default();
            match list.iter_mut().find(|x| x.session.key == s.key) {
                Some(x) => x.visible = visible,
                None => {
                    list.push(Watch { session: s.clone(), visible });
                    *w.by_watcher.entry(s.user.clone()).or_default().entry(u.to_owned()).or_insert(0) += 1;
                }
            }
        }
    }

    /// Sets the verdict of `s`'s watch of `user`; true when it changed.
    pub fn set_visible(&self, s: &SessionHandle, user: &str, visible: bool) -> bool {
        let mut w = self.watchers.write().expect("watchers lock");
        match w.by_target.get_mut(user).and_then(|l| l.iter_mut().find(|x| x.session.key == s.key)) {
            Some(x) if x.visible != visible => {
                x.visible = visible;
                true
            }
            _ => false,
        }
    }

    /// The watch entries (session, watched user, verdict) in which one of
    /// `users` is the watched user or the watching session's user.
    pub fn watches_involving(&self, users: &HashSet<String>) -> Vec<(Arc<SessionHandle>, String, bool)> {
        let w = self.watchers.read().expect("watchers lock");
        let mut out = Vec::new();
        for u in users {
            if let Some(list) = w.by_target.get(u) {
                out.extend(list.iter().map(|x| (x.session.clone(), u.clone(), x.visible)));
            }
            // The entries of u's own sessions, through the users they watch
            // (those in `users` were all taken above).
            for target in w.by_watcher.get(u.as_str()).into_iter().flat_map(HashMap::keys) {
                if users.contains(target) {
                    continue;
                }
                let list = w.by_target.get(target).map(Vec::as_slice).unwrap_or_default();
                out.extend(
                    list.iter()
                        .filter(|x| *x.session.user == **u)
                        .map(|x| (x.session.clone(), target.clone(), x.visible)),
                );
            }
        }
        out
    }

    /// The users `s` watches (for a session that ended without saying).
    pub fn watched_by(&self, s: &SessionHandle) -> HashSet<String> {
        let w = self.watchers.read().expect("watchers lock");
        let targets = w.by_watcher.get(&s.user).into_iter().flat_map(HashMap::keys);
        targets
            .filter(|t| w.by_target.get(*t).is_some_and(|l| l.iter().any(|x| x.session.key == s.key)))
            .cloned()
            .collect()
    }

    /// Removes `s` as a watcher of `users`.
    pub fn unwatch<'a>(&self, s: &Arc<SessionHandle>, users: impl IntoIterator<Item = &'a str>) {
        let mut guard = self.watchers.write().expect("watchers lock");
        let w = &mut *guard;
        for u in users {
            let Some(list) = w.by_target.get_mut(u) else { continue };
            let before = list.len();
            list.retain(|x| x.session.key != s.key);
            if list.len() == before {
                continue;
            }
            if list.is_empty() {
                w.by_target.remove(u);
            }
            if let Some(targets) = w.by_watcher.get_mut(&s.user) {
                if let Some(n) = targets.get_mut(u) {
                    *n -= 1;
                    if *n == 0 {
                        targets.remove(u);
                    }
                }
                if targets.is_empty() {
                    w.by_watcher.remove(&s.user);
                }
            }
        }
    }

    /// Queues `frame` to every session watching `user`. A presence event
    /// goes only to watchers that may see `user`'s presence (v1.2: they
    /// share a conversation); a [`VIEWS_MARKER`] frame is not delivered but
    /// queues its users' watches for a fresh verdict. This is where every
    /// node of a cluster filters, for local and remote changes alike.
    pub fn send_to_watchers(&self, user: &str, frame: &Arc<str>) {
        if frame.starts_with(VIEWS_MARKER) {
            let users = serde_json::from_str::<serde_json::Value>(frame)
                .ok()
                .and_then(|v| serde_json::from_value::<Vec<String>>(v["users"].clone()).ok())
                .unwrap_or_default();
            self.views.queue(users);
            return;
        }
        let presence = frame.starts_with(PRESENCE_PREFIX);
        if let Some(list) = self.watchers.read().expect("watchers lock").by_target.get(user) {
            let bytes = Frame::from(&**frame);
            for x in list.iter().filter(|x| x.visible || !presence) {
                x.session.push_frame(&bytes);
            }
        }
    }

    /// The cached channel entry, if loaded.
    pub fn channel(&self, name: &str) -> Option<Arc<ChannelCache>> {
        let channels = self.channels.read().expect("channels lock");
        let entry = channels.map.get(name)?;
        entry.touch();
        Some(entry.clone())
    }

    /// Drops a channel's cached entry (another node changed its members);
    /// the next use reloads it from storage.
    pub fn forget_channel(&self, name: &str) {
        let mut channels = self.channels.write().expect("channels lock");
        self.channel_epoch.fetch_add(1, Ordering::AcqRel);
        channels.map.remove(name);
    }

    /// Channel entries cached (tests, metrics).
    pub fn cached_channels(&self) -> usize {
        self.channels.read().expect("channels lock").map.len()
    }

    /// Drops every cached channel entry.
    pub fn forget_channels(&self) {
        let mut channels = self.channels.write().expect("channels lock");
        self.channel_epoch.fetch_add(1, Ordering::AcqRel);
        channels.map.clear();
    }

    /// The count of member changes seen here: read it before reading a
    /// channel's members from storage, and hand it to [`Hub::cache_channel`].
    pub fn channel_epoch(&self) -> u64 {
        self.channel_epoch.load(Ordering::Acquire)
    }

    /// Caches a channel entry read from storage when the epoch was `epoch`
    /// (the first one cached wins) and returns it. When members changed
    /// since (a `forget_channel`, a local join or leave), what was read may
    /// predate the change: it serves the caller once and is not cached, so a
    /// stale member list never outlives the request that read it (a member
    /// removed meanwhile kept receiving the channel on this node until its
    /// next membership change).
    pub fn cache_channel(&self, name: &str, entry: ChannelCache, epoch: u64) -> Arc<ChannelCache> {
        let mut channels = self.channels.write().expect("channels lock");
        if self.channel_epoch.load(Ordering::Acquire) != epoch {
            return channels.map.get(name).cloned().unwrap_or_else(|| Arc::new(entry));
        }
        channels.insert(name, entry)
    }

    /// A membership change of `name` was stored here: applies it to the
    /// channel's cached entry, if any (the one cached now, which may be a
    /// newer copy than the caller's), and makes reads of the members begun
    /// before it uncacheable.
    pub fn member_changed(&self, name: &str, user: &str, joined: bool) {
        let channels = self.channels.write().expect("channels lock");
        self.channel_epoch.fetch_add(1, Ordering::AcqRel);
        if let Some(entry) = channels.map.get(name) {
            if joined { entry.insert(user) } else { entry.remove(user) }
        }
    }

    /// Waits for the turn to change `name`'s members: hold it from before
    /// storing a change until [`Hub::member_changed`], so that this node's
    /// cache sees its changes of one channel in the order storage did.
    pub async fn membership_turn(&self, name: &str) -> tokio::sync::MutexGuard<'_, ()> {
        self.membership.of(name).lock().await
    }
}

/// Turns for membership changes, by channel name (striped: channels that
/// share a stripe wait for each other, rarely and briefly).
struct MembershipTurns(Box<[tokio::sync::Mutex<()>]>);

impl Default for MembershipTurns {
    fn default() -> Self {
        MembershipTurns((0..64).map(|_| tokio::sync::Mutex::new(())).collect())
    }
}

impl MembershipTurns {
    fn of(&self, name: &str) -> &tokio::sync::Mutex<()> {
        use std::hash::{BuildHasher, BuildHasherDefault};
        let h = BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(name);
        &self.0[(h % self.0.len() as u64) as usize]
    }
}

#[cfg(test)]
mod tests {
    /// A party writing again in a one-sided DM is checked once, not per
    /// message; the other party's first message is still checked.
    #[test]
    fn each_dm_writer_is_checked_once() {
        let v = ViewQueue::default();
        assert!(!v.check_writer_once("dm:a:b", "a"), "a's first message is checked");
        assert!(v.check_writer_once("dm:a:b", "a"), "a's later messages are not");
        assert!(!v.check_writer_once("dm:a:b", "b"), "b's first message is checked");
        assert!(!v.check_writer_once("dm:a:c", "a"), "another DM is checked");
    }

    /// Members read from storage before a change (another node's, seen as
    /// a forget, or this node's own) serve their request but are not
    /// cached: a removed member would otherwise keep receiving the channel
    /// here until its next membership change.
    #[test]
    fn members_read_before_a_change_are_used_once_not_cached() {
        let hub = Hub::default();
        let stale = || ChannelCache::new(false, ["alice".to_owned(), "mallory".to_owned()]);
        let epoch = hub.channel_epoch();
        hub.forget_channel("team"); // another node removed mallory meanwhile
        let served = hub.cache_channel("team", stale(), epoch);
        assert!(served.is_member("mallory"), "the request that read it is served");
        assert!(hub.channel("team").is_none(), "a read older than the change is not cached");

        let epoch = hub.channel_epoch();
        hub.member_changed("team", "mallory", false); // this node removed her meanwhile
        hub.cache_channel("team", stale(), epoch);
        assert!(hub.channel("team").is_none(), "nor one older than a change made here");

        let epoch = hub.channel_epoch();
        hub.cache_channel("team", ChannelCache::new(false, ["alice".to_owned()]), epoch);
        assert!(hub.channel("team").is_some_and(|c| !c.is_member("mallory")), "a current read is cached");
    }

    /// A node that touches a million channels over months does not keep
    /// them all: entries unused since the last sweep go when the cache
    /// grows, and channels in use stay cached (the same copy).
    #[test]
    fn channels_touched_once_do_not_stay_cached() {
        let hub = Hub::default();
        let load = |name: &str| {
            hub.channel(name).unwrap_or_else(|| {
                let epoch = hub.channel_epoch();
                hub.cache_channel(name, ChannelCache::new(false, ["alice".to_owned()]), epoch)
            })
        };
        let hot = load("hot");
        for i in 0..100_000 {
            load(&format!("once{i}"));
            if i % 100 == 0 {
                assert!(Arc::ptr_eq(&load("hot"), &hot), "a channel in use stays cached ({i})");
            }
        }
        let cached = hub.cached_channels();
        assert!(cached <= 2 * CHANNEL_SWEEP_MIN, "100,000 channels used once, {cached} still cached");
        // What was dropped is read again on its next use.
        assert!(hub.channel("once0").is_none());
        assert!(load("once0").is_member("alice"));
    }

    /// A change made here applies to the copy cached now, which may be a
    /// newer one than the copy the request started with.
    #[test]
    fn a_change_made_here_applies_to_the_copy_cached_now() {
        let hub = Hub::default();
        let epoch = hub.channel_epoch();
        let held = hub.cache_channel("team", ChannelCache::new(false, ["alice".to_owned()]), epoch);
        hub.forget_channel("team");
        let epoch = hub.channel_epoch();
        hub.cache_channel("team", ChannelCache::new(false, ["alice".to_owned()]), epoch);
        hub.member_changed("team", "bob", true);
        assert!(hub.channel("team").is_some_and(|c| c.is_member("bob")));
        assert!(!held.is_member("bob"), "the old copy is no one's any more");
    }

    /// Membership changes of one channel take turns; other channels' do not
    /// wait (unless they share a stripe).
    #[tokio::test]
    async fn membership_changes_of_one_channel_take_turns() {
        let hub = Hub::default();
        let first = hub.membership_turn("team").await;
        assert!(
            tokio::time::timeout(Duration::from_millis(20), hub.membership_turn("team")).await.is_err(),
            "a second change of team waits"
        );
        drop(first);
        let _again = hub.membership_turn("team").await;
    }

    use super::*;

    #[tokio::test]
    async fn same_device_replaces_and_presence_follows_sessions() {
        let hub = Hub::default();
        let a1 = hub.new_session("alice", "d1", 16);
        let a2 = hub.new_session("alice", "d2", 16);
        let a3 = hub.new_session("alice", "d1", 16);
        assert_eq!(hub.register(&a1), PresenceChange::CameOnline);
        assert_eq!(hub.register(&a2), PresenceChange::Unchanged);
        assert_eq!(hub.register(&a3), PresenceChange::Unchanged);
        assert_eq!(a1.close_requested().await.0, CloseCode::REPLACED);
        let none = HashSet::new();
        assert_eq!(hub.unregister(&a1, &none), PresenceChange::Unchanged, "replaced session is gone already");
        assert_eq!(hub.unregister(&a2, &none), PresenceChange::Unchanged);
        assert_eq!(hub.unregister(&a3, &none), PresenceChange::WentOffline);
        assert!(!hub.is_online("alice"));
    }

    #[tokio::test]
    async fn the_session_cap_counts_other_devices_only() {
        let hub = Hub::default();
        let a1 = hub.new_session("alice", "d1", 16);
        let a2 = hub.new_session("alice", "d2", 16);
        let a3 = hub.new_session("alice", "d3", 16);
        let a1b = hub.new_session("alice", "d1", 16);
        assert_eq!(hub.register_within(&a1, 2), Some(PresenceChange::CameOnline));
        assert_eq!(hub.register_within(&a2, 2), Some(PresenceChange::Unchanged));
        assert_eq!(hub.register_within(&a3, 2), None, "a third device is over the cap");
        assert!(a1.close_request().is_none() && a2.close_request().is_none());
        assert_eq!(hub.register_within(&a1b, 2), Some(PresenceChange::Unchanged), "a replacement");
        assert_eq!(a1.close_requested().await.0, CloseCode::REPLACED);
        assert_eq!(hub.user_sessions("alice"), 2);
    }

    #[tokio::test]
    async fn presence_reaches_only_watchers_who_may_see_it() {
        let hub = Hub::default();
        let (friend, stranger) = (hub.new_session("friend", "d", 8), hub.new_session("stranger", "d", 8));
        hub.watch(&friend, [("bob", true)]);
        hub.watch(&stranger, [("bob", false)]);
        // The filter recognises presence frames by their start: events
        // serialise their tag first.
        let ev = courier_proto::Event::Presence(courier_proto::Presence {
            user: "bob".into(),
            online: true,
            last_seen: None,
        });
        let frame: Arc<str> = Arc::from(serde_json::to_string(&ev).unwrap());
        assert!(frame.starts_with(PRESENCE_PREFIX), "{frame}");
        hub.send_to_watchers("bob", &frame);
        assert!(friend.pop().is_some() && stranger.pop().is_none());
        let profile: Arc<str> = Arc::from(r#"{"ev":"profile","user":"bob"}"#);
        hub.send_to_watchers("bob", &profile);
        assert!(friend.pop().is_some() && stranger.pop().is_some(), "profiles go to every watcher");
        assert!(hub.set_visible(&stranger, "bob", true));
        assert!(!hub.set_visible(&stranger, "bob", true), "no change");
        hub.send_to_watchers("bob", &frame);
        assert!(stranger.pop().is_some() && friend.pop().is_some());
        // A views marker is never delivered.
        hub.send_to_watchers("bob", &Arc::from(r#"{"ev":"_views","users":["bob"]}"#));
        assert!(friend.pop().is_none());
        let involved = hub.watches_involving(&["friend".to_owned()].into_iter().collect());
        assert_eq!(involved.len(), 1, "friend's own watch of bob");
        let involved = hub.watches_involving(&["bob".to_owned()].into_iter().collect());
        assert_eq!(involved.len(), 2);
    }

    /// The watch entries of a user's own sessions are found through the
    /// users they watch: all of them, each once, none of another watcher's,
    /// and the index forgets them as they go.
    #[test]
    fn the_watches_of_a_users_own_sessions_are_found_by_watcher() {
        let hub = Hub::default();
        let laptop = hub.new_session("ann", "laptop", 8);
        let phone = hub.new_session("ann", "phone", 8);
        let other = hub.new_session("bo", "d", 8);
        hub.watch(&laptop, [("cy", true), ("di", false)]);
        hub.watch(&phone, [("cy", true)]);
        hub.watch(&other, [("cy", false), ("ann", true)]);
        hub.watch(&laptop, [("cy", false)]); // a new verdict, not a second entry
        let involving = |users: &[&str]| {
            let users: HashSet<String> = users.iter().map(|u| u.to_string()).collect();
            let mut got: Vec<_> =
                hub.watches_involving(&users).into_iter().map(|(s, t, v)| (s.key, t, v)).collect();
            got.sort();
            got
        };
        let entry = |s: &SessionHandle, t: &str, v: bool| (s.key, t.to_owned(), v);
        let mut want = vec![
            entry(&laptop, "cy", false),
            entry(&laptop, "di", false),
            entry(&phone, "cy", true),
            entry(&other, "ann", true),
        ];
        want.sort();
        assert_eq!(involving(&["ann"]), want);
        let mut want = vec![
            entry(&laptop, "cy", false),
            entry(&phone, "cy", true),
            entry(&other, "cy", false),
            entry(&other, "ann", true),
            entry(&laptop, "di", false),
        ];
        want.sort();
        assert_eq!(involving(&["ann", "cy"]), want, "each entry once");
        hub.unwatch(&laptop, ["cy", "di"]);
        let mut want = vec![entry(&phone, "cy", true), entry(&other, "ann", true)];
        want.sort();
        assert_eq!(involving(&["ann"]), want);
        hub.unregister(&phone, &["cy".to_owned()].into_iter().collect());
        hub.unwatch(&other, ["cy", "ann"]);
        let w = hub.watchers.read().unwrap();
        assert!(w.by_target.is_empty() && w.by_watcher.is_empty(), "nothing left behind");
    }

    #[tokio::test]
    async fn full_queue_closes_slow_consumer() {
        let hub = Hub::default();
        let s = hub.new_session("bob", "d", 2);
        hub.register(&s);
        let f: Arc<str> = Arc::from("{}");
        assert_eq!(hub.send_to_users(["bob"], &f, None), 1);
        assert_eq!(hub.send_to_users(["bob"], &f, None), 1);
        assert_eq!(hub.send_to_users(["bob"], &f, None), 0);
        assert_eq!(s.close_requested().await.0, CloseCode::POLICY);
    }

    #[tokio::test]
    async fn a_kick_from_another_node_closes_only_that_device() {
        let hub = Hub::default();
        let laptop = hub.new_session("bob", "laptop", 4);
        let phone = hub.new_session("bob", "phone", 4);
        hub.register(&laptop);
        hub.register(&phone);
        // A session made later on another node (a ULID of a later
        // millisecond: two of the same millisecond compare at random).
        let newer = ulid::Ulid::from_parts((1 << 48) - 1, 0).to_string();
        hub.close_device_before("bob", "laptop", &newer);
        assert_eq!(laptop.close_requested().await.0, CloseCode::REPLACED);
        assert!(phone.close_request().is_none(), "the other device stays");
        assert_eq!(hub.online_users().len(), 1);
    }

    /// A kick that arrives late, from a session older than the one this
    /// node holds of the device, closes nothing (it closed the newest
    /// session with 4003, and the client does not reconnect after 4003).
    #[tokio::test]
    async fn a_late_kick_from_an_older_session_closes_nothing_newer() {
        let hub = Hub::default();
        let older_elsewhere = ulid::Ulid::from_parts(1, 0).to_string();
        let laptop = hub.new_session("bob", "laptop", 4);
        hub.register(&laptop);
        hub.close_device_before("bob", "laptop", &older_elsewhere);
        assert!(laptop.close_request().is_none(), "the newer session stays");
        hub.close_device_before("bob", "laptop", "");
        assert_eq!(laptop.close_requested().await.0, CloseCode::REPLACED, "a kick without an id closes all");
    }

    #[tokio::test]
    async fn sender_session_is_skipped() {
        let hub = Hub::default();
        let s1 = hub.new_session("bob", "d1", 4);
        let s2 = hub.new_session("bob", "d2", 4);
        hub.register(&s1);
        hub.register(&s2);
        let f: Arc<str> = Arc::from("x");
        assert_eq!(hub.send_to_users(["bob"], &f, Some(s1.key)), 1);
        assert!(s1.pop().is_none());
        assert_eq!(s2.pop().as_deref(), Some("x"));
    }

    /// Who got a channel event: the users whose sessions have it queued.
    fn got(sessions: &[&Arc<SessionHandle>]) -> Vec<String> {
        sessions.iter().filter(|s| s.pop().is_some()).map(|s| s.user.to_string()).collect()
    }

    /// A channel's route follows its members and the node's sessions: a
    /// session opened or closed, a join or a leave after the route was made
    /// is seen by the next event (each assertion fails if that change does
    /// not make the route stale).
    #[tokio::test]
    async fn a_channel_route_follows_sessions_and_members() {
        let hub = Hub::default();
        let ch = ChannelCache::new(false, ["amy".to_owned(), "ben".to_owned()]);
        let (amy, ben, cat) =
            (hub.new_session("amy", "d", 8), hub.new_session("ben", "d", 8), hub.new_session("cat", "d", 8));
        let all = [&amy, &ben, &cat];
        let f: Arc<str> = Arc::from("x");
        hub.register(&amy);
        hub.register(&cat);
        assert_eq!(hub.send_to_channel(&ch, &f, None), 1, "cat is not a member");
        assert_eq!(got(&all), ["amy"]);
        assert_eq!(hub.send_to_channel(&ch, &f, None), 1, "the route made above, used again");
        assert_eq!(got(&all), ["amy"]);

        hub.register(&ben);
        assert_eq!(hub.send_to_channel(&ch, &f, None), 2, "a session opened");
        assert_eq!(got(&all), ["amy", "ben"]);

        ch.insert("cat");
        assert_eq!(hub.send_to_channel(&ch, &f, None), 3, "a join");
        assert_eq!(got(&all), ["amy", "ben", "cat"]);

        ch.remove("amy");
        assert_eq!(hub.send_to_channel(&ch, &f, Some(cat.key)), 1, "a leave (and the sender skipped)");
        assert_eq!(got(&all), ["ben"]);

        // Unregistered but not ended (its task has not finished): only a
        // fresh route leaves it out.
        hub.unregister(&ben, &HashSet::new());
        assert_eq!(hub.send_to_channel(&ch, &f, None), 1, "a session closed");
        assert_eq!(got(&all), ["cat"]);

        // What a route is made from: a snapshot, untouched by later changes.
        let before = ch.snapshot();
        ch.insert("dan");
        ch.insert("cat");
        assert_eq!(before.len(), 2);
        assert_eq!(ch.len(), 3);
    }

    /// A fan-out hands every recipient the same bytes, not a copy each.
    #[tokio::test]
    async fn a_fan_out_shares_one_copy_of_the_event() {
        let hub = Hub::default();
        let (a, b) = (hub.new_session("amy", "d", 4), hub.new_session("ben", "d", 4));
        hub.register(&a);
        hub.register(&b);
        let f: Arc<str> = Arc::from("{\"ev\":\"msg\"}");
        assert_eq!(hub.send_to_users(["amy", "ben"], &f, None), 2);
        let (fa, fb) = (a.pop().unwrap(), b.pop().unwrap());
        assert_eq!(fa.as_str(), &*f);
        assert_eq!(fa.as_str().as_ptr(), fb.as_str().as_ptr(), "one buffer for both");
    }

    #[tokio::test]
    async fn queued_frames_wake_the_task_and_come_out_in_order() {
        let hub = Hub::default();
        let s = hub.new_session("carol", "d", 64);
        hub.register(&s);
        for f in ["a", "b", "c"] {
            assert!(s.push(&Arc::from(f)));
        }
        std::future::poll_fn(|cx| s.poll_work(cx)).await;
        let drained: Vec<_> = std::iter::from_fn(|| s.pop()).collect();
        assert_eq!(drained.iter().map(|f| &**f).collect::<Vec<_>>(), ["a", "b", "c"]);
        assert!(s.close_request().is_none(), "a queue within capacity is no slow consumer");
    }

    /// `idle` (events may go straight into the socket) holds only while
    /// nothing is queued and the task has flushed all it took: an event
    /// that had to be queued keeps later ones queued behind it.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_queued_event_keeps_later_ones_behind_it_until_the_task_has_flushed() {
        use tokio::io::AsyncReadExt;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = tokio::net::TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (server, _) = l.accept().await.unwrap();
        let wire = Arc::new(Wire::new(&server, None, None));
        let hub = Hub::default();
        let s = hub.new_session("gina", "d", 64);
        s.attach(wire.clone());
        assert!(!s.is_idle(), "not idle before the task says so");
        assert!(s.push(&Arc::from("queued")));
        s.settle();
        assert!(!s.is_idle(), "an event is queued");
        assert_eq!(s.pop().as_deref(), Some("queued"));
        // (The task writes and flushes it, then:)
        s.settle();
        assert!(s.is_idle());
        assert!(s.push(&Arc::from("direct")));
        assert!(s.is_idle() && s.outbox().frames.is_empty(), "written into the socket, not queued");
        let mut got = [0; 8];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"\x81\x06direct");
        // The socket cannot take one now (closed wire): it is queued, and
        // the session is no longer idle, so the next one queues behind it.
        wire.close();
        assert!(s.push(&Arc::from("first")));
        assert!(!s.is_idle(), "a queued event ends idleness");
        assert!(s.push(&Arc::from("second")));
        let queued: Vec<_> = std::iter::from_fn(|| s.pop()).collect();
        assert_eq!(queued.iter().map(|f| &**f).collect::<Vec<_>>(), ["first", "second"]);
        drop(server);
    }

    /// `n` registered sessions `m0`… of `hub`, idle, each with a connected
    /// socket: (session, its wire, the server's end, the client's end).
    async fn idle_members(
        hub: &Hub,
        n: usize,
    ) -> Vec<(Arc<SessionHandle>, Arc<Wire>, tokio::net::TcpStream, tokio::net::TcpStream)> {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut members = Vec::new();
        for i in 0..n {
            let client = tokio::net::TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
            let (server, _) = l.accept().await.unwrap();
            let wire = Arc::new(Wire::new(&server, None, None));
            let s = hub.new_session(&format!("m{i}"), "d", 64);
            hub.register(&s);
            s.attach(wire.clone());
            s.settle();
            assert!(s.is_idle());
            members.push((s, wire, server, client));
        }
        members
    }

    /// A fan-out writes the event into every idle member's socket (in one
    /// submission from `BATCH_FROM` members on Linux); a member that cannot
    /// take it now gets it queued instead, and nobody is skipped.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_fan_out_writes_idle_members_directly_and_queues_for_the_rest() {
        use tokio::io::AsyncReadExt;
        let hub = Hub::default();
        let mut members = idle_members(&hub, 6).await;
        // m5's connection is going away: it must be queued, not written.
        members[5].1.close();
        let names: Vec<String> = (0..6).map(|i| format!("m{i}")).collect();
        let f: Arc<str> = Arc::from("{\"ev\":\"msg\"}");
        assert_eq!(hub.send_to_users(names.iter().map(String::as_str), &f, None), 6, "every member got it");
        for (s, _, _, client) in members.iter_mut().take(5) {
            assert!(s.is_idle() && s.outbox().frames.is_empty(), "{} was written directly", s.user);
            let mut got = vec![0; 2 + f.len()];
            client.read_exact(&mut got).await.unwrap();
            assert_eq!(&got[2..], f.as_bytes());
        }
        let (m5, ..) = &members[5];
        assert!(!m5.is_idle(), "queued, so no longer idle");
        assert_eq!(m5.pop().as_deref(), Some(&*f));
    }

    /// The duty rule on made-up times: a thread that writes fan-outs 40 %
    /// of the time keeps writing them; one that writes 90 % of two windows
    /// in a row queues them for `Duty::HOLD_MIN`, then tries again.
    #[test]
    fn a_thread_busy_writing_fan_outs_queues_them_for_a_while() {
        let d = Duty::new();
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        for i in 0..50 {
            assert!(d.direct_allowed(ms(i * 10)), "40 % at {} ms", i * 10);
            d.record(ms(i * 10), Duration::from_millis(4), ms(i * 10 + 4));
        }
        let base = 1_000;
        let refused = (0..30).map(|i| base + i * 10).find(|&t| {
            if !d.direct_allowed(ms(t)) {
                return true;
            }
            d.record(ms(t), Duration::from_millis(9), ms(t + 9));
            false
        });
        let q = refused.expect("queued once two windows were mostly direct writes");
        assert!(q <= base + 250, "within two windows and a bit: {q}");
        assert!(!d.direct_allowed(ms(q + 150)), "still held");
        assert!(d.direct_allowed(ms(q + 210)), "tried again after the first, short hold");
        assert!(d.direct_allowed(ms(q + 220)), "a fresh window");
    }

    /// Holds, as (first refused, first allowed again) in ms, of a thread that
    /// tries a write every 10 ms from `from` to `to` costing `cost` ms each.
    fn holds(d: &Duty, t0: Instant, from: u64, to: u64, cost: u64) -> Vec<(u64, u64)> {
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut out: Vec<(u64, u64)> = Vec::new();
        let mut held_since = None;
        for t in (from..to).step_by(10) {
            match (d.direct_allowed(ms(t)), held_since) {
                (false, None) => held_since = Some(t),
                (false, Some(_)) => {}
                (true, since) => {
                    if let Some(since) = since {
                        out.push((since, t));
                        held_since = None;
                    }
                    d.record(ms(t), Duration::from_millis(cost), ms(t + cost));
                }
            }
        }
        out
    }

    /// A thread still over the limit as soon as a hold ends holds twice as
    /// long each time, up to `Duty::HOLD_MAX`; one that kept up past its
    /// trial starts again from `Duty::HOLD_MIN` (fails with a fixed hold,
    /// without the cap, or if calm does not reset it).
    #[test]
    fn holds_grow_while_the_thread_stays_busy_and_shrink_once_it_keeps_up() {
        let d = Duty::new();
        let t0 = Instant::now();
        let busy = holds(&d, t0, 0, 9_000, 9);
        let lengths: Vec<u64> = busy.iter().map(|(a, b)| b - a).collect();
        assert!(lengths.len() >= 6, "{busy:?}");
        let near = |got: u64, want: Duration| got.abs_diff(want.as_millis() as u64) <= 30;
        assert!(near(lengths[0], Duty::HOLD_MIN), "first hold {lengths:?}");
        assert!(near(lengths[1], 2 * Duty::HOLD_MIN), "second hold {lengths:?}");
        assert!(near(lengths[2], 4 * Duty::HOLD_MIN), "third hold {lengths:?}");
        for &l in &lengths[3..] {
            assert!(near(l, Duty::HOLD_MAX), "capped: {lengths:?}");
        }
        // Calm long enough to show it keeps up, then busy again: short.
        // (The busy run may end inside a hold: its rest is the only one.)
        let calm = holds(&d, t0, 9_000, 12_000, 4);
        assert!(calm.iter().all(|&(since, _)| since == 9_000), "calm is never held: {calm:?}");
        let again = holds(&d, t0, 12_000, 13_000, 9);
        let first = again.first().expect("busy again is held");
        assert!(near(first.1 - first.0, Duty::HOLD_MIN), "back to the short hold: {again:?}");
    }

    /// One window over the limit between calm ones (a moment the host was
    /// slow) does not queue fan-outs, nor do two separated by a pause; two
    /// in a row do (fails if one window is enough, or if a pause does not
    /// break the row).
    #[test]
    fn one_busy_window_alone_does_not_queue_fan_outs() {
        let d = Duty::new();
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let t = std::cell::Cell::new(0);
        // A write every 10 ms costing `cost` ms, when allowed.
        let write = |cost: u64| {
            let at = t.get();
            let allowed = d.direct_allowed(ms(at));
            if allowed {
                d.record(ms(at), Duration::from_millis(cost), ms(at + cost));
            }
            t.set(at + 10);
            allowed
        };
        // Calm, one busy window, calm again, over and over: never held.
        for round in 0..5 {
            for (cost, n) in [(4, 20), (9, 11), (4, 20)] {
                for _ in 0..n {
                    assert!(write(cost), "held in round {round} at {} ms", t.get());
                }
            }
        }
        // A busy window, a pause of a second, another busy window: not a row.
        // (After a pause one write closes the window left open, so the busy
        // writes fill a window of their own.)
        t.set(t.get() + 1_000);
        assert!(write(4));
        for _ in 0..11 {
            assert!(write(9), "held at {} ms", t.get());
        }
        t.set(t.get() + 1_000);
        for _ in 0..11 {
            assert!(write(9), "held after a pause at {} ms", t.get());
        }
        for _ in 0..20 {
            assert!(write(4), "held once calm again at {} ms", t.get());
        }
        // Busy on: the next window makes a row, and the one after is held.
        let held = (0..30).any(|_| !write(9));
        assert!(held, "two busy windows in a row hold fan-outs");
    }

    /// A thread whose writes span most of each window in wall time, but
    /// took little of its processor time (it was preempted, or the host was
    /// slow), keeps writing directly (fails if the rule counts wall time).
    #[test]
    fn writes_slow_only_on_the_clock_on_the_wall_stay_direct() {
        let d = Duty::new();
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        for i in 0..200 {
            assert!(d.direct_allowed(ms(i * 10)), "queued at {} ms", i * 10);
            d.record(ms(i * 10), Duration::from_millis(4), ms(i * 10 + 9));
        }
    }

    /// A delivery to one or a few members (a one-to-one message) does not
    /// read the thread's CPU clock, a system call per read; a fan-out does
    /// (fails if every direct write is measured on the CPU clock, or none).
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn only_a_fan_out_reads_the_threads_cpu_clock() {
        let hub = Hub::default();
        let members = idle_members(&hub, BATCH_FROM).await;
        let f: Arc<str> = Arc::from("{\"ev\":\"msg\"}");
        let reads = || CPU_CLOCK_READS.with(std::cell::Cell::get);
        let before = reads();
        assert_eq!(hub.send_to_users(["m0"], &f, None), 1);
        assert_eq!(reads(), before, "one member: the wall clock");
        let names: Vec<String> = (0..BATCH_FROM).map(|i| format!("m{i}")).collect();
        // m0 took its event whole, so it is still idle: all four are claimed.
        assert_eq!(hub.send_to_users(names.iter().map(String::as_str), &f, None), BATCH_FROM);
        assert!(members.iter().all(|(s, ..)| s.is_idle()), "written directly");
        assert!(reads() > before, "a fan-out to {BATCH_FROM} members reads the CPU clock");
    }

    /// A write's cost is the thread's processor time: time asleep inside it
    /// does not count (fails if `on_cpu` measures wall time).
    #[cfg(target_os = "linux")]
    #[test]
    fn a_write_costs_the_threads_processor_time() {
        let ((), spent) = on_cpu(|| std::thread::sleep(Duration::from_millis(60)));
        assert!(spent < Duration::from_millis(30), "{spent:?} for a 60 ms sleep");
        let ((), spent) = on_cpu(|| {
            let t = Instant::now();
            while t.elapsed() < Duration::from_millis(20) {
                std::hint::black_box(0u64);
            }
        });
        assert!(spent > Duration::ZERO, "a busy loop costs something");
    }

    /// While its thread is over the duty limit, a fan-out queues for idle
    /// members instead of writing into their sockets (fails if `deliver`
    /// ignores the duty).
    #[tokio::test]
    async fn a_fan_out_from_a_busy_thread_is_queued() {
        let hub = Hub::default();
        let members = idle_members(&hub, 5).await;
        let now = Instant::now();
        let w = Duty::WINDOW;
        // Two windows in a row spent writing.
        DUTY.with(|d| {
            d.record(now, w, now + w);
            d.record(now + w, w, now + 2 * w);
        });
        let names: Vec<String> = (0..5).map(|i| format!("m{i}")).collect();
        let f: Arc<str> = Arc::from("{\"ev\":\"msg\"}");
        assert_eq!(hub.send_to_users(names.iter().map(String::as_str), &f, None), 5);
        assert_eq!(hub.send_to_users(["m0"], &f, None), 1, "one member alone");
        for (s, ..) in &members {
            assert!(!s.is_idle(), "{} was queued", s.user);
            assert_eq!(s.pop().as_deref(), Some(&*f));
        }
        assert_eq!(members[0].0.pop().as_deref(), Some(&*f));
    }

    #[tokio::test]
    async fn a_drained_burst_releases_its_buffer() {
        let hub = Hub::default();
        let s = hub.new_session("dave", "d", 1024);
        let f: Arc<str> = Arc::from("{}");
        for _ in 0..500 {
            assert!(s.push(&f));
        }
        while s.pop().is_some() {}
        assert!(s.outbox().frames.capacity() <= KEEP_QUEUE_CAPACITY);
    }

    #[tokio::test]
    async fn an_ended_session_takes_no_frames() {
        let hub = Hub::default();
        let s = hub.new_session("erin", "d", 16);
        hub.register(&s);
        let f: Arc<str> = Arc::from("{}");
        assert!(s.push(&f));
        s.end();
        assert!(s.pop().is_none(), "what was queued is dropped");
        assert_eq!(hub.send_to_users(["erin"], &f, None), 0);
        assert!(s.close_request().is_none(), "refused frames do not make a slow consumer");
    }
}
