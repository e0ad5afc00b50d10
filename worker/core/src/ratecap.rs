//! An optional cap on the processing rate (events/s) that emulates a pod's CPU limit: each event
//! costs `1 / rate` seconds of the worker's time, so a worker at half its cap is half busy and a
//! worker at its cap is fully busy, as a CPU-bound process under a CPU limit would be. The time a
//! batch is held to its cost counts as busy time, as CPU throttling would.

use std::time::Duration;

/// What `rate` events per second of capacity means for a batch.
#[derive(Debug, Clone, Copy)]
pub struct RateCap {
    rate: f64,
}

impl RateCap {
    pub fn new(rate: u64) -> Self {
        RateCap {
            rate: (rate as f64).max(1.0),
        }
    }

    /// How much longer a batch of `n` events must take after `spent` of real work.
    pub fn hold(&self, n: usize, spent: Duration) -> Duration {
        Duration::from_secs_f64(n as f64 / self.rate).saturating_sub(spent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_costs_its_events_over_the_rate() {
        let cap = RateCap::new(1000);
        let hold = cap.hold(500, Duration::from_millis(100));
        assert!((hold.as_secs_f64() - 0.4).abs() < 1e-9, "{hold:?}");
        // Work slower than the cap is not held further.
        assert_eq!(cap.hold(10, Duration::from_secs(1)), Duration::ZERO);
    }
}
