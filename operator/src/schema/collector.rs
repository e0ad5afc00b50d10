//! The collection loop: every second, for each registered pipeline whose read is due (every half
//! window, as its workers report it), read its workers' recent windows ([`ReportSource`]),
//! ingest them ([`Windows`]), close the windows past their grace, keep the last one with events
//! and trigger the pipeline's reconcile, which judges it and writes the `RawEventSchema`, the
//! condition, the Events and the gauges. Pipelines are read a few at a time; the loop does no
//! other Kubernetes IO.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt;
use impressions_crds::ImpressionPipeline;
use kube::runtime::reflector::ObjectRef;
use prometheus_client::metrics::{counter::Counter, family::Family};
use tokio::sync::mpsc;

use super::{
    source::{ReportSource, SourceError},
    windows::{ClosedWindow, Windows},
};
use crate::metrics::ReasonLabel;

type Key = ObjectRef<ImpressionPipeline>;

/// What the loop needs to read one pipeline, registered by its reconcile.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaRegistration {
    pub namespace: String,
    /// The pipeline's headless worker Service (its EndpointSlices list the worker pods).
    pub service: String,
}

/// How often a pipeline is read before its workers' window length is known.
pub const FIRST_READS: Duration = Duration::from_secs(5);
/// The longest time between two reads of a pipeline (its workers keep 8 windows: with 60 s
/// windows, a read every 30 s misses none even when a few reads fail).
pub const MAX_READ_INTERVAL: Duration = Duration::from_secs(30);
/// Pipelines read at once.
pub const PIPELINES_AT_ONCE: usize = 8;

/// The read interval and the grace of a window for `window_seconds`: half a window, within
/// [1 s, [`MAX_READ_INTERVAL`]].
pub fn cadence(window_seconds: Option<u32>) -> (Duration, Duration) {
    match window_seconds {
        None => (FIRST_READS, FIRST_READS),
        Some(w) => {
            let half = Duration::from_millis(u64::from(w) * 500)
                .clamp(Duration::from_secs(1), MAX_READ_INTERVAL);
            (half, half)
        }
    }
}

#[derive(Debug, Default)]
struct State {
    reg: Option<SchemaRegistration>,
    windows: Windows,
    last_read: Option<Instant>,
    latest: Option<Arc<ClosedWindow>>,
}

/// Shared between the loop and the reconciles.
pub struct SchemaCollector {
    source: Option<Arc<dyn ReportSource>>,
    states: Mutex<HashMap<Key, State>>,
    failures: Family<ReasonLabel, Counter>,
    windows_closed: Counter,
}

impl std::fmt::Debug for SchemaCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaCollector")
            .field("source", &self.source.is_some())
            .finish()
    }
}

impl SchemaCollector {
    /// A collector reading from `source` (none: nothing is ever read), counting its failures
    /// and closed windows into the given metrics.
    pub fn new(
        source: Option<Arc<dyn ReportSource>>,
        failures: Family<ReasonLabel, Counter>,
        windows_closed: Counter,
    ) -> Self {
        SchemaCollector {
            source,
            states: Mutex::default(),
            failures,
            windows_closed,
        }
    }

    /// Registers (or updates) a pipeline; `None` removes it.
    pub fn register(&self, key: Key, reg: Option<SchemaRegistration>) {
        let mut states = self.states.lock().expect("schema lock");
        match reg {
            Some(r) => states.entry(key).or_default().reg = Some(r),
            None => {
                states.remove(&key);
            }
        }
    }

    /// Forgets every pipeline not in `live` (deleted ones).
    pub fn retain(&self, live: &HashSet<Key>) {
        self.states
            .lock()
            .expect("schema lock")
            .retain(|k, _| live.contains(k));
    }

    /// The pipeline's last closed window with events.
    pub fn latest(&self, key: &Key) -> Option<Arc<ClosedWindow>> {
        self.states
            .lock()
            .expect("schema lock")
            .get(key)
            .and_then(|s| s.latest.clone())
    }

    /// Runs forever: reads due pipelines and sends those with a new window to `trigger`.
    pub async fn run(self: Arc<Self>, trigger: mpsc::Sender<Key>) {
        if self.source.is_none() {
            return;
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            for key in self.collect_due(impressions_worker_core::now_ms()).await {
                let _ = trigger.send(key).await;
            }
        }
    }

    /// Reads the pipelines whose read is due, at `now_ms`; returns those with a new window.
    pub async fn collect_due(&self, now_ms: i64) -> Vec<Key> {
        let Some(source) = self.source.clone() else {
            return Vec::new();
        };
        let due: Vec<(Key, SchemaRegistration, Option<i64>)> = {
            let states = self.states.lock().expect("schema lock");
            states
                .iter()
                .filter_map(|(k, s)| {
                    let r = s.reg.as_ref()?;
                    let (every, _) = cadence(s.windows.window_seconds());
                    // Windows of the multiples closed are dropped on arrival: ask only for
                    // those ending after the last one (a window late past it comes along).
                    let after = s.windows.closed_upto();
                    s.last_read
                        .is_none_or(|t| t.elapsed() >= every)
                        .then(|| (k.clone(), r.clone(), after))
                })
                .collect()
        };
        let reads: Vec<_> = futures::stream::iter(due)
            .map(|(key, reg, after)| {
                let source = source.clone();
                async move {
                    let read = source.read(&reg.namespace, &reg.service, after).await;
                    (key, read)
                }
            })
            .buffer_unordered(PIPELINES_AT_ONCE)
            .collect()
            .await;
        let mut states = self.states.lock().expect("schema lock");
        let mut changed = Vec::new();
        for (key, read) in reads {
            let Some(st) = states.get_mut(&key) else {
                continue;
            };
            st.last_read = Some(Instant::now());
            let read = match read {
                Ok(r) => r,
                Err(e) => {
                    self.count(&e);
                    tracing::warn!(pipeline = %key, error = %e, "reading the workers' schema reports");
                    continue;
                }
            };
            for (pod, e) in &read.failed {
                self.failures
                    .get_or_create(&ReasonLabel {
                        reason: "pod".into(),
                    })
                    .inc();
                tracing::debug!(pipeline = %key, pod, error = %e, "a worker's schema report");
            }
            st.windows.ingest(read.reports);
            let (_, grace) = cadence(st.windows.window_seconds());
            let closed = st.windows.close(now_ms, grace.as_millis() as i64);
            self.windows_closed.inc_by(closed.len() as u64);
            let newest = closed
                .into_iter()
                .rev()
                .find(|w| w.observation.events_sampled > 0);
            if let Some(w) = newest {
                tracing::debug!(pipeline = %key, boundary_ms = w.boundary_ms, pods = w.pods,
                    sampled = w.observation.events_sampled, "schema window closed");
                st.latest = Some(Arc::new(w));
                changed.push(key);
            }
        }
        changed
    }

    fn count(&self, e: &SourceError) {
        self.failures
            .get_or_create(&ReasonLabel {
                reason: e.reason().into(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use futures::future::BoxFuture;
    use impressions_worker_core::schema::{
        Budget, Learner, LearnerConfig,
        report::{PipelineRef, SchemaReport, WindowBounds},
    };

    use super::{super::source::Read, *};

    /// Serves the reports the test sets; counts the reads.
    #[derive(Default)]
    struct Fake {
        reports: Mutex<Vec<SchemaReport>>,
        reads: Mutex<Vec<String>>,
    }

    impl ReportSource for Fake {
        fn read<'a>(
            &'a self,
            namespace: &'a str,
            service: &'a str,
            end_after_ms: Option<i64>,
        ) -> BoxFuture<'a, Result<Read, SourceError>> {
            self.reads
                .lock()
                .unwrap()
                .push(format!("{namespace}/{service} {end_after_ms:?}"));
            let reports = self.reports.lock().unwrap().clone();
            Box::pin(async move {
                Ok(Read {
                    reports,
                    failed: vec![("gone".into(), "connection refused".into())],
                })
            })
        }
    }

    fn report(pod: &str, start: i64, end: i64, events: usize) -> SchemaReport {
        let mut l = Learner::new(&LearnerConfig {
            sample_one_in: 1,
            ..LearnerConfig::default()
        });
        for _ in 0..events {
            l.offer(br#"{"eventType":"imp"}"#, start);
        }
        SchemaReport {
            pipeline: PipelineRef {
                namespace: "ns".into(),
                name: "p".into(),
            },
            pod: pod.into(),
            window: WindowBounds {
                start_ms: start,
                end_ms: end,
            },
            window_seconds: 4,
            sample_one_in: 1,
            budget: Budget::default(),
            observation: l.take(),
        }
    }

    fn key() -> Key {
        ObjectRef::new("p").within("ns")
    }

    #[test]
    fn the_cadence_is_half_a_window_within_bounds() {
        assert_eq!(cadence(None), (FIRST_READS, FIRST_READS));
        assert_eq!(cadence(Some(4)).0, Duration::from_secs(2));
        assert_eq!(cadence(Some(1)).0, Duration::from_secs(1));
        assert_eq!(cadence(Some(3600)).0, MAX_READ_INTERVAL);
    }

    #[tokio::test]
    async fn a_closed_window_with_events_triggers_the_pipeline_once() {
        let fake = Arc::new(Fake::default());
        let failures = Family::<ReasonLabel, Counter>::default();
        let closed = Counter::default();
        let c = SchemaCollector::new(Some(fake.clone()), failures.clone(), closed.clone());
        c.register(
            key(),
            Some(SchemaRegistration {
                namespace: "ns".into(),
                service: "p-worker".into(),
            }),
        );
        *fake.reports.lock().unwrap() = vec![report("a", 0, 4_010, 3), report("b", 0, 4_020, 2)];
        // Read before the grace (2 s after the multiple 4 s): nothing closes.
        assert!(c.collect_due(5_000).await.is_empty());
        assert!(c.latest(&key()).is_none());
        assert!(c.collect_due(6_500).await.is_empty(), "not due again yet");
        c.states.lock().unwrap().get_mut(&key()).unwrap().last_read = None;
        assert_eq!(c.collect_due(6_500).await, [key()]);
        let w = c.latest(&key()).unwrap();
        assert_eq!((w.pods, w.observation.events_seen), (2, 5));
        assert_eq!(closed.get(), 1);
        assert_eq!(
            failures
                .get_or_create(&ReasonLabel {
                    reason: "pod".into()
                })
                .get(),
            2
        );
        assert_eq!(fake.reads.lock().unwrap()[0], "ns/p-worker None");
        // The same reports again: nothing new.
        c.states.lock().unwrap().get_mut(&key()).unwrap().last_read = None;
        assert!(c.collect_due(7_000).await.is_empty());
        // An empty window closes but keeps the last one with events.
        *fake.reports.lock().unwrap() = vec![report("a", 4_010, 8_001, 0)];
        c.states.lock().unwrap().get_mut(&key()).unwrap().last_read = None;
        assert!(c.collect_due(10_500).await.is_empty());
        assert_eq!(c.latest(&key()).unwrap().boundary_ms, 4_000);
        assert_eq!(closed.get(), 2);
        // Once a window is closed, a read asks only for those ending after its multiple.
        assert_eq!(
            fake.reads.lock().unwrap().last().unwrap(),
            "ns/p-worker Some(4000)"
        );
        c.retain(&HashSet::new());
        assert!(c.latest(&key()).is_none());
    }
}
