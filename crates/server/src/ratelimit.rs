//! Rate limits (protocol §8, v1.2): one token bucket per USER, shared by
//! all of that user's sessions (and, in a cluster, all nodes: see
//! `cluster::redis`), so a reconnect does not refill it; and, per session,
//! the abuse window that closes a session flooding at ~10× the rate (4029).
//!
//! The single-node buckets live in [`UserBuckets`]: a sharded map from user
//! to bucket. Taking a token from an existing user's bucket locks one shard
//! and allocates nothing. A bucket that has refilled completely is the same
//! as no bucket, so idle full buckets are swept out when a shard grows:
//! memory follows the users active within `burst / rate` seconds.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// What a bucket says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead.
    Allowed,
    /// Refuse with `rate_limited` (HTTP: 429); retry after this long.
    Limited(Duration),
}

/// A token bucket's state: `rate` tokens per second, at most `burst` held.
/// The rate and burst are passed to each call (they come from the config).
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn full(burst: u32, now: Instant) -> Self {
        Bucket { tokens: f64::from(burst.max(1)), last: now }
    }

    fn refill(&mut self, now: Instant, rate: u32, burst: u32) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * f64::from(rate.max(1))).min(f64::from(burst.max(1)));
        self.last = now;
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, now: Instant, rate: u32, burst: u32) -> Verdict {
        self.take_n(now, 1, rate, burst)
    }

    /// Takes `n` tokens at once if there are that many (a request that
    /// costs more than one: rates finer than one a second).
    pub fn take_n(&mut self, now: Instant, n: u32, rate: u32, burst: u32) -> Verdict {
        self.refill(now, rate, burst);
        let n = f64::from(n);
        if self.tokens >= n {
            self.tokens -= n;
            return Verdict::Allowed;
        }
        let wait = (n - self.tokens) / f64::from(rate.max(1));
        Verdict::Limited(Duration::from_secs_f64(wait).max(Duration::from_millis(1)))
    }

    /// Whether the bucket would be full at `now` (and so can be forgotten).
    fn is_full(&self, now: Instant, rate: u32, burst: u32) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * f64::from(rate.max(1)) >= f64::from(burst.max(1))
    }
}

/// A pace of `burst` events in a row, then one per `interval_ms`, per key
/// of a [`UserBuckets`] (intervals of seconds and more, which a rate per
/// second cannot say): the bucket counts milliseconds, 1000 a second, and
/// an event costs `interval_ms` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// Events in a row.
    pub burst: u32,
    /// After the burst, one event per this many ms.
    pub interval_ms: u32,
}

impl Pace {
    /// A pace from configured values; `None` when `interval_ms` is 0 (off)
    /// or does not fit.
    pub fn new(burst: u32, interval_ms: u64) -> Option<Pace> {
        let interval_ms = u32::try_from(interval_ms).ok().filter(|ms| *ms > 0)?;
        Some(Pace { burst: burst.max(1), interval_ms })
    }

    /// Takes one event from `key`'s bucket in `buckets` (which must hold
    /// buckets of this pace only: idle ones are swept by it).
    pub fn take(self, buckets: &UserBuckets, key: &str) -> Verdict {
        buckets.take_n(key, self.interval_ms, 1000, self.burst.saturating_mul(self.interval_ms))
    }
}

/// Number of shards (a power of two).
const SHARDS: usize = 32;
/// A shard is swept for full buckets once it holds this many (at least).
const SWEEP_MIN: usize = 256;

#[derive(Default)]
struct Shard {
    map: HashMap<Box<str>, Bucket>,
    /// Sweep when `map` reaches this size.
    sweep_at: usize,
}

/// The single-node per-user buckets.
pub struct UserBuckets {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
}

impl Default for UserBuckets {
    fn default() -> Self {
        UserBuckets {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(Shard { map: HashMap::new(), sweep_at: SWEEP_MIN }))
                .collect(),
            hasher: RandomState::new(),
        }
    }
}

impl UserBuckets {
    /// Takes one token from `user`'s bucket (`rate` per second, `burst`).
    pub fn take(&self, user: &str, rate: u32, burst: u32) -> Verdict {
        self.take_n(user, 1, rate, burst)
    }

    /// Takes `n` tokens at once from `user`'s bucket (rates finer than one
    /// a second: see [`Bucket::take_n`]).
    pub fn take_n(&self, user: &str, n: u32, rate: u32, burst: u32) -> Verdict {
        let now = Instant::now();
        let i = (self.hasher.hash_one(user) as usize) & (SHARDS - 1);
        let mut shard = self.shards[i].lock().expect("rate shard lock");
        if let Some(b) = shard.map.get_mut(user) {
            return b.take_n(now, n, rate, burst);
        }
        if shard.map.len() >= shard.sweep_at {
            shard.map.retain(|_, b| !b.is_full(now, rate, burst));
            shard.sweep_at = (shard.map.len() * 2).max(SWEEP_MIN);
        }
        let mut b = Bucket::full(burst, now);
        let verdict = b.take_n(now, n, rate, burst);
        shard.map.insert(user.into(), b);
        verdict
    }

    /// Buckets held (for tests).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().expect("rate shard lock").map.len()).sum()
    }

    /// Whether no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Per session: counts metered attempts in one-second windows, to close a
/// session that keeps going at ~10× the rate (4029) while its user's other
/// sessions carry on.
#[derive(Debug)]
pub struct AbuseWindow {
    start: Instant,
    attempts: u32,
    threshold: u32,
}

impl AbuseWindow {
    /// A window for a user limited to `rate` per second with `burst`.
    pub fn new(rate: u32, burst: u32) -> Self {
        AbuseWindow {
            start: Instant::now(),
            attempts: 0,
            // A client "going at 10x the rate" makes 10x rate attempts a
            // second; trip at 8x (a fixed window may split a second), but
            // never below what an honest client can do (burst plus rate).
            threshold: rate.max(1).saturating_mul(8).max(rate.saturating_add(burst).saturating_add(1)),
        }
    }

    /// Records one metered attempt with its verdict; true when the session
    /// is abusive (a refused attempt beyond the threshold in this window).
    pub fn record(&mut self, verdict: Verdict) -> bool {
        let now = Instant::now();
        if now.duration_since(self.start) >= Duration::from_secs(1) {
            self.start = now;
            self.attempts = 0;
        }
        self.attempts = self.attempts.saturating_add(1);
        matches!(verdict, Verdict::Limited(_)) && self.attempts >= self.threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn burst_then_rate() {
        let b = UserBuckets::default();
        for _ in 0..50 {
            assert_eq!(b.take("u", 20, 50), Verdict::Allowed);
        }
        let Verdict::Limited(d) = b.take("u", 20, 50) else { panic!("expected limit") };
        assert!(d <= Duration::from_millis(50) && d >= Duration::from_millis(1), "{d:?}");
        assert_eq!(b.take("other", 20, 50), Verdict::Allowed, "buckets are per user");
        tokio::time::advance(Duration::from_millis(50)).await;
        assert_eq!(b.take("u", 20, 50), Verdict::Allowed);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_full_buckets_are_swept() {
        let b = UserBuckets::default();
        for i in 0..20_000 {
            b.take(&format!("user{i}"), 20, 50);
        }
        assert!(b.len() >= 20_000, "active buckets stay: {}", b.len());
        // 50 tokens at 20/s: full again after 2.5 s.
        tokio::time::advance(Duration::from_secs(3)).await;
        for i in 0..20_000 {
            b.take(&format!("fresh{i}"), 20, 50);
        }
        assert!(b.len() < 30_000, "idle full buckets were dropped: {}", b.len());
    }

    #[tokio::test(start_paused = true)]
    async fn ten_times_the_rate_is_abuse() {
        let b = UserBuckets::default();
        let mut w = AbuseWindow::new(20, 50);
        let mut abuse = false;
        for _ in 0..400 {
            abuse |= w.record(b.take("u", 20, 50));
            tokio::time::advance(Duration::from_millis(5)).await;
        }
        assert!(abuse);
    }

    #[tokio::test(start_paused = true)]
    async fn steady_rate_is_never_abuse() {
        let b = UserBuckets::default();
        let mut w = AbuseWindow::new(20, 50);
        for _ in 0..500 {
            let v = b.take("u", 20, 50);
            assert_eq!(v, Verdict::Allowed);
            assert!(!w.record(v));
            tokio::time::advance(Duration::from_millis(50)).await;
        }
    }
}
