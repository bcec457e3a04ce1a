//! Per-session token bucket for `send`, `signal`, `invite` and `typing`,
//! with abuse detection (a client that keeps going at ~10× the rate).

use std::time::Duration;
use tokio::time::Instant;

/// What the bucket says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead.
    Allowed,
    /// Refuse with `rate_limited`; retry after this long.
    Limited(Duration),
    /// Refuse and close the session with 4029.
    Abuse,
}

/// A token bucket: `rate` tokens per second, at most `burst` stored.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    window_start: Instant,
    window_attempts: u32,
    abuse_attempts: u32,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: u32, burst: u32) -> Self {
        let now = Instant::now();
        TokenBucket {
            rate: f64::from(rate.max(1)),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            last: now,
            window_start: now,
            window_attempts: 0,
            // A client "going at 10x the rate" makes 10x rate attempts a
            // second; trip at 8x (a fixed window may split a second), but
            // never below what an honest client can do (burst plus rate).
            abuse_attempts: rate.max(1).saturating_mul(8).max(rate.saturating_add(burst).saturating_add(1)),
        }
    }

    /// Takes one token if there is one.
    pub fn take(&mut self) -> Verdict {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.window_attempts = 0;
        }
        self.window_attempts += 1;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Verdict::Allowed;
        }
        if self.window_attempts >= self.abuse_attempts {
            return Verdict::Abuse;
        }
        let wait = (1.0 - self.tokens) / self.rate;
        Verdict::Limited(Duration::from_secs_f64(wait).max(Duration::from_millis(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn burst_then_rate() {
        let mut b = TokenBucket::new(20, 50);
        for _ in 0..50 {
            assert_eq!(b.take(), Verdict::Allowed);
        }
        let Verdict::Limited(d) = b.take() else { panic!("expected limit") };
        assert!(d <= Duration::from_millis(50) && d >= Duration::from_millis(1), "{d:?}");
        tokio::time::advance(Duration::from_millis(50)).await;
        assert_eq!(b.take(), Verdict::Allowed);
    }

    #[tokio::test(start_paused = true)]
    async fn ten_times_the_rate_is_abuse() {
        let mut b = TokenBucket::new(20, 50);
        let mut verdicts = Vec::new();
        for _ in 0..400 {
            verdicts.push(b.take());
            tokio::time::advance(Duration::from_millis(5)).await;
        }
        assert!(verdicts.contains(&Verdict::Abuse));
    }

    #[tokio::test(start_paused = true)]
    async fn steady_rate_is_never_abuse() {
        let mut b = TokenBucket::new(20, 50);
        for _ in 0..500 {
            assert_eq!(b.take(), Verdict::Allowed);
            tokio::time::advance(Duration::from_millis(50)).await;
        }
    }
}
