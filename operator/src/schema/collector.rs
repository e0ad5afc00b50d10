//! The collection loop: every [`TICK`], for each registered pipeline whose read is due, read
//! its workers' recent windows ([`ReportSource`]), ingest them ([`Windows`]), close the windows
//! every answering worker has ended (or past their grace), keep the last one with events and
//! trigger the pipeline's reconcile, which judges it and writes the `RawEventSchema`, the
//! condition, the Events and the gauges. Reads follow the workers' windows: one just after each
//! multiple of `windowSeconds` (its [`Cadence::settle`]), then again every `settle` while a
//! worker has not ended the window, within its grace. Pipelines are read a few at a time; the
//! loop does no other Kubernetes IO.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::StreamExt;
use impressions_crds::ImpressionPipeline;
use kube::runtime::reflector::ObjectRef;
use prometheus_client::metrics::{counter::Counter, family::Family};
use tokio::sync::mpsc;

use super::{
    source::{ReportSource, SourceError},
    windows::{ClosedWindow, Windows, complete_upto},
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
/// The longest grace of a window (its workers keep 8 windows: a window of any length is read
/// several times within it even when a few reads fail).
pub const MAX_GRACE: Duration = Duration::from_secs(30);
/// How often a pipeline with no worker endpoint is read once [`EMPTY_READS`] reads in a row
/// found none (a fleet of pipelines without workers costs one EndpointSlice list per pipeline
/// every 30 s, not every 5 s).
pub const NO_WORKERS_READS: Duration = Duration::from_secs(30);
/// Reads in a row with no worker endpoint before a pipeline is read every [`NO_WORKERS_READS`].
pub const EMPTY_READS: u32 = 12;
/// How often the loop looks for due reads.
pub const TICK: Duration = Duration::from_millis(100);
/// Pipelines read at once.
pub const PIPELINES_AT_ONCE: usize = 8;

/// When a pipeline's workers are read, for their window length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cadence {
    /// After a multiple of `windowSeconds`, the delay before the read that collects its window
    /// (the workers end it at their loop's first turn after the multiple), and between the reads
    /// while a worker has not: a twentieth of a window, within [250 ms, 2 s].
    pub settle: Duration,
    /// A window is closed with the reports it has once its multiple is this old (a worker that
    /// does not answer delays it no longer): half a window, within [1 s, [`MAX_GRACE`]].
    pub grace: Duration,
}

/// The cadence for `window_seconds` (`None` before the first report: every [`FIRST_READS`]).
pub fn cadence(window_seconds: Option<u32>) -> Cadence {
    match window_seconds {
        None => Cadence {
            settle: FIRST_READS,
            grace: FIRST_READS,
        },
        Some(w) => {
            let ms = u64::from(w) * 1000;
            Cadence {
                settle: Duration::from_millis(ms / 20)
                    .clamp(Duration::from_millis(250), Duration::from_secs(2)),
                grace: Duration::from_millis(ms / 2).clamp(Duration::from_secs(1), MAX_GRACE),
            }
        }
    }
}

/// When to read a pipeline next, after a read at `now_ms` (ms since the epoch): `settle` after
/// the next multiple of its window, or `settle` from now while a window is awaited; every
/// [`FIRST_READS`] before its window length is known.
pub fn next_read_ms(now_ms: i64, window_seconds: Option<u32>, awaiting: bool) -> i64 {
    let c = cadence(window_seconds);
    let settle = c.settle.as_millis() as i64;
    match window_seconds
        .map(|w| i64::from(w) * 1000)
        .filter(|w| *w > 0)
    {
        None => now_ms + FIRST_READS.as_millis() as i64,
        Some(_) if awaiting => now_ms + settle,
        Some(w) => (now_ms.div_euclid(w) + 1) * w + settle,
    }
}

#[derive(Debug, Default)]
struct State {
    reg: Option<SchemaRegistration>,
    windows: Windows,
    /// When the next read is due (ms since the epoch); `None`: at once.
    next_read_ms: Option<i64>,
    /// Reads in a row that found no worker endpoint.
    empty_reads: u32,
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
        let mut tick = tokio::time::interval(TICK);
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
                    // Windows of the multiples closed are dropped on arrival: ask only for
                    // those ending after the last one (a window late past it comes along).
                    let after = s.windows.closed_upto();
                    s.next_read_ms
                        .is_none_or(|t| t <= now_ms)
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
            let grace = cadence(st.windows.window_seconds()).grace.as_millis() as i64;
            let read = match read {
                Ok(r) => r,
                Err(e) => {
                    let w = st.windows.window_seconds();
                    st.next_read_ms =
                        Some(next_read_ms(now_ms, w, st.windows.awaiting(now_ms, grace)));
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
            let w = st.windows.window_seconds();
            let grace = cadence(w).grace.as_millis() as i64;
            let complete = complete_upto(&read.latest, !read.failed.is_empty());
            let closed = st.windows.close(now_ms, grace, complete);
            st.next_read_ms = Some(next_read_ms(now_ms, w, st.windows.awaiting(now_ms, grace)));
            st.empty_reads = if read.latest.is_empty() && read.failed.is_empty() {
                st.empty_reads.saturating_add(1)
            } else {
                0
            };
            if st.empty_reads >= EMPTY_READS {
                st.next_read_ms = Some(now_ms + NO_WORKERS_READS.as_millis() as i64);
            }
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

    /// Serves the reports the test sets (each pod in them answers; `gone` fails when set);
    /// records the reads.
    #[derive(Default)]
    struct Fake {
        reports: Mutex<Vec<SchemaReport>>,
        pods: Mutex<Vec<String>>,
        gone: Mutex<bool>,
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
            let reports: Vec<SchemaReport> = self
                .reports
                .lock()
                .unwrap()
                .iter()
                .filter(|r| end_after_ms.is_none_or(|t| r.window.end_ms > t))
                .cloned()
                .collect();
            let latest = self
                .pods
                .lock()
                .unwrap()
                .iter()
                .map(|p| {
                    reports
                        .iter()
                        .filter(|r| &r.pod == p)
                        .filter_map(SchemaReport::boundary_ms)
                        .max()
                })
                .collect();
            let failed = if *self.gone.lock().unwrap() {
                vec![("gone".into(), "connection refused".into())]
            } else {
                Vec::new()
            };
            Box::pin(async move {
                Ok(Read {
                    reports,
                    latest,
                    failed,
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

    fn collector(fake: &Arc<Fake>) -> (SchemaCollector, Family<ReasonLabel, Counter>, Counter) {
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
        (c, failures, closed)
    }

    fn next_read(c: &SchemaCollector) -> Option<i64> {
        c.states.lock().unwrap()[&key()].next_read_ms
    }

    #[test]
    fn the_cadence_follows_the_window_within_bounds() {
        assert_eq!(cadence(None).settle, FIRST_READS);
        let c = cadence(Some(4));
        assert_eq!(c.settle, Duration::from_millis(250));
        assert_eq!(c.grace, Duration::from_secs(2));
        assert_eq!(cadence(Some(1)).grace, Duration::from_secs(1));
        assert_eq!(cadence(Some(60)).settle, Duration::from_secs(2));
        assert_eq!(cadence(Some(3600)).grace, MAX_GRACE);
        // Just after the multiple of the window that was collected: the next one's, settled.
        assert_eq!(next_read_ms(8_300, Some(4), false), 12_250);
        assert_eq!(next_read_ms(11_999, Some(4), false), 12_250);
        // A worker has not ended the window yet: again soon.
        assert_eq!(next_read_ms(8_300, Some(4), true), 8_550);
        assert_eq!(next_read_ms(8_300, None, true), 13_300);
    }

    #[tokio::test]
    async fn a_window_every_worker_ended_closes_at_the_first_read_after_its_multiple() {
        let fake = Arc::new(Fake::default());
        let (c, _, closed) = collector(&fake);
        *fake.pods.lock().unwrap() = vec!["a".into(), "b".into()];
        // a has ended the window of 4 s, b not yet: the window waits, the next read is soon.
        *fake.reports.lock().unwrap() = vec![report("a", 0, 4_010, 3)];
        assert!(c.collect_due(4_250).await.is_empty());
        assert_eq!(next_read(&c), Some(4_500));
        assert!(c.collect_due(4_400).await.is_empty(), "not due yet");
        fake.reports.lock().unwrap().push(report("b", 0, 4_300, 2));
        assert_eq!(
            c.collect_due(4_500).await,
            [key()],
            "closed before its grace"
        );
        let w = c.latest(&key()).unwrap();
        assert_eq!((w.pods, w.observation.events_seen), (2, 5));
        assert_eq!(closed.get(), 1);
        assert_eq!(next_read(&c), Some(8_250), "the next window's, settled");
        assert!(c.collect_due(8_000).await.is_empty(), "not due yet");
        // The next window: both ended it by the first read after its multiple.
        fake.reports
            .lock()
            .unwrap()
            .extend([report("a", 4_010, 8_020, 7), report("b", 4_300, 8_030, 1)]);
        assert_eq!(c.collect_due(8_250).await, [key()]);
        assert_eq!(c.latest(&key()).unwrap().observation.events_seen, 8);
        assert_eq!(
            fake.reads.lock().unwrap().last().unwrap(),
            "ns/p-worker Some(4000)",
            "only the windows after the last one closed"
        );
    }

    #[tokio::test]
    async fn a_worker_that_does_not_answer_delays_a_window_by_its_grace_only() {
        let fake = Arc::new(Fake::default());
        let (c, failures, closed) = collector(&fake);
        *fake.pods.lock().unwrap() = vec!["a".into(), "b".into()];
        *fake.gone.lock().unwrap() = true;
        *fake.reports.lock().unwrap() = vec![report("a", 0, 4_010, 3), report("b", 0, 4_020, 2)];
        // Read before the grace (2 s after the multiple 4 s): nothing closes.
        assert!(c.collect_due(5_000).await.is_empty());
        assert!(c.latest(&key()).is_none());
        assert_eq!(next_read(&c), Some(5_250), "awaited");
        assert_eq!(c.collect_due(6_000).await, [key()], "past its grace");
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
        assert_eq!(next_read(&c), Some(8_250));
        // The same reports again: nothing new.
        assert!(c.collect_due(8_250).await.is_empty());
        // An empty window closes but keeps the last one with events.
        *fake.reports.lock().unwrap() = vec![report("a", 4_010, 8_001, 0)];
        assert!(c.collect_due(10_500).await.is_empty());
        assert_eq!(c.latest(&key()).unwrap().boundary_ms, 4_000);
        assert_eq!(closed.get(), 2);
        c.retain(&HashSet::new());
        assert!(c.latest(&key()).is_none());
    }

    #[tokio::test]
    async fn a_pipeline_without_workers_is_read_less_often() {
        let fake = Arc::new(Fake::default());
        let (c, _, _) = collector(&fake);
        let mut now = 0;
        for _ in 0..EMPTY_READS - 1 {
            c.collect_due(now).await;
            now = next_read(&c).unwrap();
        }
        assert_eq!(
            now,
            i64::from(EMPTY_READS - 1) * 5_000,
            "every 5 s at first"
        );
        c.collect_due(now).await;
        assert_eq!(next_read(&c), Some(now + 30_000));
        // A worker answers: back to its windows' cadence.
        *fake.pods.lock().unwrap() = vec!["a".into()];
        c.collect_due(now + 30_000).await;
        assert_eq!(next_read(&c), Some(now + 35_000));
    }
}
