//! An optional cap on the processing rate (events/s) that emulates a pod's CPU limit: a worker at
//! its cap waits, and the wait counts as busy time, as CPU throttling would.

use std::time::{Duration, Instant};

/// A token bucket refilled at `rate` per second, holding at most a tenth of a second of tokens.
#[derive(Debug)]
pub struct RateCap {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl RateCap {
    pub fn new(rate: u64) -> Self {
        RateCap {
            rate: rate as f64,
            tokens: 0.0,
            last: Instant::now(),
        }
    }

    /// How long to wait before `n` more events may be processed (and takes them).
    pub fn take(&mut self, n: usize, now: Instant) -> Duration {
        let burst = (self.rate / 10.0).max(1.0);
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(burst);
        self.last = now;
        self.tokens -= n as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_the_rate() {
        let t0 = Instant::now();
        let mut cap = RateCap::new(1000);
        cap.last = t0;
        // 500 events at once: half a second of debt.
        let wait = cap.take(500, t0);
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "{wait:?}");
        // After paying the debt, 100 more events 0.1 s later cost nothing extra.
        let later = t0 + Duration::from_millis(600);
        assert_eq!(cap.take(100, later), Duration::ZERO);
    }
}
