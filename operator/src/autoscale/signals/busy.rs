//! The busy fraction of a pipeline's workers, as the capacity estimate divides by it (pure): the
//! larger of the processing threads' busy time (`busyFraction`) and the CPU they use of their
//! CPU limit (`cpuFraction`). Under a CPU limit the processing threads are not alone: librdkafka's
//! threads, the Avro encoding of other threads and CFS throttling take from the same quota, so
//! the threads' busy time alone reads a worker as idler than it is and its capacity as larger.
//! The default `cpuFraction` query takes each worker's fixed CPU (its idle use, which does not
//! grow with the load) from its CPU and divides by the whole limit (a saturated worker leaves no
//! room for the fixed part: docs/autoscaling.md).
//! Without a limit there is no CPU fraction and the busy time stands alone.

/// The busy fraction from the processing threads' (`threads`) and the CPU limit's (`cpu`)
/// readings; `None` when neither has a value.
pub fn busy_fraction(threads: Option<f64>, cpu: Option<f64>) -> Option<f64> {
    match (threads, cpu) {
        (Some(t), Some(c)) => Some(t.max(c)),
        (t, c) => t.or(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_cpu_limit_the_busy_time_stands_alone() {
        assert_eq!(busy_fraction(Some(0.4), None), Some(0.4));
        assert_eq!(busy_fraction(None, None), None);
    }

    #[test]
    fn under_a_limit_the_larger_reading_counts() {
        // The stack's finding: saturated at a 50m limit, the processing thread was busy 0.70
        // of the time while the process used 0.97 of its limit.
        assert_eq!(busy_fraction(Some(0.70), Some(0.97)), Some(0.97));
        // A rate cap (emulated CPU) keeps the thread busier than the CPU it uses.
        assert_eq!(busy_fraction(Some(0.9), Some(0.2)), Some(0.9));
        assert_eq!(busy_fraction(None, Some(0.5)), Some(0.5));
    }

    #[test]
    fn the_capacity_it_yields_is_the_limited_workers() {
        // Half the saturated load (3.9k of 7.8k events/s): the thread reads 0.17 busy, the CPU
        // 0.5 of the limit. processed / busy gives 23k/s from the thread, 7.8k/s from the max.
        let processed = 3_900.0;
        let capacity = processed / busy_fraction(Some(0.17), Some(0.5)).unwrap();
        assert!((capacity - 7_800.0f64).abs() < 1.0, "{capacity}");
    }
}
