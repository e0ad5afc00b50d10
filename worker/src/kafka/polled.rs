//! A producer served by a thread of its own, like rdkafka's `ThreadedProducer`, but polled in
//! long waits.
//!
//! rdkafka's poll loop (`BaseProducer::poll`) hands librdkafka the time left to its deadline in
//! whole milliseconds: when the wait ends less than a millisecond before the deadline, the rest
//! is polled with a zero timeout, reading the clock in a tight loop until the deadline passes
//! (the same rounding librdkafka fixed in its own main loop in 2.3.1). `ThreadedProducer` polls
//! every 100 ms, so an idle worker spun ~0.7 ms of every 100: 8-9 ms of CPU a second, a sixth of
//! a 50m CPU limit, on a thread that had nothing to do. Delivery reports do not wait for the
//! deadline (the loop serves each as it arrives), so a longer wait only delays stopping the
//! thread: [`POLL_WAIT`] bounds that.

use std::{
    ops::Deref,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use rdkafka::{
    ClientConfig,
    config::FromClientConfigAndContext,
    error::KafkaResult,
    producer::{BaseProducer, ProducerContext},
};

/// How long one poll waits for events; the tail spin is at most a millisecond of each.
pub const POLL_WAIT: Duration = Duration::from_secs(1);

/// A [`BaseProducer`] whose events (delivery reports, errors) are served by its own thread.
pub struct PolledProducer<C: ProducerContext + 'static> {
    producer: Arc<BaseProducer<C>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl<C: ProducerContext + 'static> FromClientConfigAndContext<C> for PolledProducer<C> {
    fn from_config_and_context(config: &ClientConfig, context: C) -> KafkaResult<Self> {
        let producer = Arc::new(BaseProducer::from_config_and_context(config, context)?);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (producer, stop) = (producer.clone(), stop.clone());
            std::thread::Builder::new()
                .name("producer-poll".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        producer.poll(POLL_WAIT);
                    }
                })
                .map_err(|e| {
                    rdkafka::error::KafkaError::ClientCreation(format!(
                        "the producer's poll thread: {e}"
                    ))
                })?
        };
        Ok(PolledProducer {
            producer,
            stop,
            thread: Some(thread),
        })
    }
}

impl<C: ProducerContext + 'static> std::fmt::Debug for PolledProducer<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolledProducer").finish_non_exhaustive()
    }
}

impl<C: ProducerContext + 'static> Deref for PolledProducer<C> {
    type Target = BaseProducer<C>;

    fn deref(&self) -> &BaseProducer<C> {
        &self.producer
    }
}

impl<C: ProducerContext + 'static> Drop for PolledProducer<C> {
    /// Stops the poll thread (within [`POLL_WAIT`]); the producer itself purges and flushes
    /// when its last reference goes.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use rdkafka::producer::DefaultProducerContext;

    use super::*;

    /// The CPU time of this process's thread named `name` (its `schedstat`, nanoseconds).
    fn thread_cpu_ns(name: &str) -> Option<u64> {
        for t in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
            let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
            if comm.trim() == name {
                let stat = std::fs::read_to_string(t.path().join("schedstat")).ok()?;
                return stat.split_whitespace().next()?.parse().ok();
            }
        }
        None
    }

    #[test]
    fn an_idle_producer_costs_its_thread_almost_no_cpu_and_stops_within_one_wait() {
        // No broker: the producer only retries its connection in librdkafka's own threads.
        let p: PolledProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:1")
            .create_with_context(DefaultProducerContext)
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let before = thread_cpu_ns("producer-poll").expect("the poll thread runs");
        std::thread::sleep(Duration::from_secs(3));
        let used = thread_cpu_ns("producer-poll").unwrap() - before;
        // ThreadedProducer's thread used ~25 ms over the same time (8.5 ms a second, measured
        // on an idle worker); three waits of a second spin at most 3 ms.
        assert!(
            used < 9_000_000,
            "{:.1} ms of CPU in 3 s",
            used as f64 / 1e6
        );
        let start = Instant::now();
        drop(p);
        assert!(
            start.elapsed() < POLL_WAIT + Duration::from_millis(600),
            "dropped in {:?}",
            start.elapsed()
        );
    }
}
