//! Reconnect and retry pacing: exponential back-off with a cap and jitter,
//! and a client-side token bucket that keeps sends under the server's rate.
//!
//! Randomness is injected (a function returning values in `[0, 1)`) and all
//! waiting uses tokio's clock, so tests drive both deterministically with
//! `tokio::time::pause()`.

use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// A source of jitter: returns values in `[0, 1)`.
pub type Jitter = Arc<dyn Fn() -> f64 + Send + Sync>;

/// The default jitter source: the thread RNG.
pub fn random_jitter() -> Jitter {
    Arc::new(rand::random::<f64>)
}

/// Back-off parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffConfig {
    /// The first delay.
    pub base: Duration,
    /// No delay exceeds this.
    pub cap: Duration,
    /// Each failure multiplies the delay by this.
    pub factor: f64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig { base: Duration::from_millis(500), cap: Duration::from_secs(30), factor: 2.0 }
    }
}

/// Exponential back-off with "equal jitter": the n-th delay is uniformly
/// drawn from `[d/2, d)` where `d = min(cap, base × factor^n)`, so clients
/// that lost the same server do not come back in lockstep, and no delay is
/// ever near zero.
pub struct Backoff {
    cfg: BackoffConfig,
    attempt: u32,
    jitter: Jitter,
}

impl std::fmt::Debug for Backoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backoff").field("cfg", &self.cfg).field("attempt", &self.attempt).finish()
    }
}

impl Backoff {
    /// A back-off at its first step.
    pub fn new(cfg: BackoffConfig, jitter: Jitter) -> Backoff {
        Backoff { cfg, attempt: 0, jitter }
    }

    /// The delay before the next attempt; advances the step.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.cfg.factor.powi(self.attempt.min(64) as i32);
        let full = (self.cfg.base.as_secs_f64() * exp).min(self.cfg.cap.as_secs_f64());
        self.attempt = self.attempt.saturating_add(1);
        let j = (self.jitter)().clamp(0.0, 1.0);
        Duration::from_secs_f64(full / 2.0 + full / 2.0 * j)
    }

    /// Failures since the last success.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Back to the first step (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// A token bucket: `rate` tokens a second, at most `burst` saved up.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: u32, burst: u32) -> TokenBucket {
        let burst = f64::from(burst.max(1));
        TokenBucket { rate: f64::from(rate.max(1)), burst, tokens: burst, last: Instant::now() }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.burst);
        self.last = now;
    }

    /// Takes a token, or says how long until one is available.
    pub fn try_take(&mut self) -> Result<(), Duration> {
        self.refill();
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }

    /// Empties the bucket (the server said we were too fast).
    pub fn drain(&mut self) {
        self.refill();
        self.tokens = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(v: f64) -> Jitter {
        Arc::new(move || v)
    }

    #[test]
    fn delays_double_up_to_the_cap() {
        let cfg =
            BackoffConfig { base: Duration::from_millis(100), cap: Duration::from_secs(2), factor: 2.0 };
        let mut b = Backoff::new(cfg, fixed(0.999_999));
        let ms: Vec<u128> = (0..8).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(ms, vec![99, 199, 399, 799, 1599, 1999, 1999, 1999]);
    }

    #[test]
    fn jitter_stays_within_the_upper_half() {
        let cfg = BackoffConfig::default();
        let mut low = Backoff::new(cfg, fixed(0.0));
        let mut high = Backoff::new(cfg, fixed(0.999_999));
        for _ in 0..20 {
            let (l, h) = (low.next_delay(), high.next_delay());
            assert!(l <= h);
            assert!(l * 2 >= h - Duration::from_millis(1), "{l:?} {h:?}");
            assert!(h <= cfg.cap);
        }
    }

    #[test]
    fn reset_starts_over() {
        let mut b = Backoff::new(BackoffConfig::default(), fixed(0.0));
        let first = b.next_delay();
        b.next_delay();
        b.next_delay();
        assert_eq!(b.attempts(), 3);
        b.reset();
        assert_eq!(b.next_delay(), first);
    }

    #[tokio::test(start_paused = true)]
    async fn bucket_allows_a_burst_then_the_rate() {
        let mut tb = TokenBucket::new(10, 3);
        for _ in 0..3 {
            assert!(tb.try_take().is_ok());
        }
        let wait = tb.try_take().unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        tokio::time::advance(wait).await;
        assert!(tb.try_take().is_ok());
        assert!(tb.try_take().is_err());
    }
}
