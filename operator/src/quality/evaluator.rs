//! The evaluation loop: every policy interval, for each pipeline whatever its scaling mode, read
//! its counts over its quality window, judge them, keep the reading, and trigger the pipeline's
//! reconcile when its DataQuality condition would change (the reconcile writes the condition,
//! the Event and the gauge). Reconciles register what the loop needs; the loop does no
//! Kubernetes IO.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use impressions_crds::{ImpressionPipeline, quality::QualitySpec};
use kube::runtime::reflector::ObjectRef;
use tokio::sync::mpsc;

use super::{
    assess::{NoData, Reading, WindowCounts},
    signals::{PipelineId, QualitySource},
};

/// What the loop needs to evaluate one pipeline, registered by its reconcile.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityRegistration {
    pub namespace: String,
    pub name: String,
    pub spec: QualitySpec,
    pub interval: Duration,
}

#[derive(Debug, Default)]
struct State {
    reg: Option<QualityRegistration>,
    last_eval: Option<Instant>,
    latest: Option<Reading>,
}

type Key = ObjectRef<ImpressionPipeline>;

/// Shared between the loop and the reconciles.
pub struct QualityEvaluator {
    source: Option<Arc<dyn QualitySource>>,
    states: Mutex<HashMap<Key, State>>,
    /// The latest read of each window, reused for [`READ_REUSE`].
    reads: Mutex<HashMap<u32, (tokio::time::Instant, Read)>>,
}

/// Every pipeline's counts over one window, or why there are none.
type Read = Result<HashMap<PipelineId, WindowCounts>, NoData>;

/// How long a read of a window is reused. Pipelines fall due at different seconds (each an
/// interval after its own last evaluation); without reuse every second with a due pipeline would
/// cost a full set of queries (360 a minute at 1,000 pipelines), with it at most one set per
/// window every 5 s. Counts over minutes do not change meaningfully in 5 s.
pub const READ_REUSE: Duration = Duration::from_secs(5);

impl std::fmt::Debug for QualityEvaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QualityEvaluator")
            .field("source", &self.source.is_some())
            .finish()
    }
}

impl QualityEvaluator {
    /// A monitor reading from `source`; without one every reading is NoData.
    pub fn new(source: Option<Arc<dyn QualitySource>>) -> Self {
        QualityEvaluator {
            source,
            states: Mutex::default(),
            reads: Mutex::default(),
        }
    }

    /// Registers (or updates) a pipeline; `None` removes it. A changed quality spec is judged
    /// again at the next tick.
    pub fn register(&self, key: Key, reg: Option<QualityRegistration>) {
        let mut states = self.states.lock().expect("quality lock");
        match reg {
            Some(r) => {
                let st = states.entry(key).or_default();
                if st.reg.as_ref().is_some_and(|old| old.spec != r.spec) {
                    st.last_eval = None;
                }
                st.reg = Some(r);
            }
            None => {
                states.remove(&key);
            }
        }
    }

    /// The latest reading of a pipeline.
    /// Forgets every pipeline not in `live` (deleted ones).
    pub fn retain(&self, live: &std::collections::HashSet<Key>) {
        self.states
            .lock()
            .expect("quality lock")
            .retain(|k, _| live.contains(k));
    }

    pub fn latest(&self, key: &Key) -> Option<Reading> {
        self.states
            .lock()
            .expect("quality lock")
            .get(key)
            .and_then(|s| s.latest.clone())
    }

    /// Runs forever: evaluates due pipelines and sends those whose condition changed to
    /// `trigger`.
    pub async fn run(self: Arc<Self>, trigger: mpsc::Sender<Key>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            for key in self.evaluate_due().await {
                let _ = trigger.send(key).await;
            }
        }
    }

    /// Evaluates the pipelines whose interval has passed, with one read of the source per
    /// distinct window; returns those whose DataQuality condition changed.
    pub async fn evaluate_due(&self) -> Vec<Key> {
        let due: Vec<(Key, QualityRegistration)> = {
            let states = self.states.lock().expect("quality lock");
            states
                .iter()
                .filter_map(|(k, s)| {
                    let r = s.reg.as_ref()?;
                    s.last_eval
                        .is_none_or(|t| t.elapsed() >= r.interval)
                        .then(|| (k.clone(), r.clone()))
                })
                .collect()
        };
        let windows: BTreeSet<u32> = due.iter().map(|(_, r)| r.spec.window_seconds).collect();
        let mut counts: HashMap<u32, Result<HashMap<PipelineId, WindowCounts>, NoData>> =
            HashMap::new();
        for w in windows {
            let reused = self
                .reads
                .lock()
                .expect("quality lock")
                .get(&w)
                .filter(|(at, _)| at.elapsed() < READ_REUSE)
                .map(|(_, r)| r.clone());
            if let Some(read) = reused {
                counts.insert(w, read);
                continue;
            }
            let read = match &self.source {
                None => Err(NoData::NoPrometheus),
                Some(s) => s.counts(w).await.map_err(|e| {
                    tracing::warn!(error = %e, "reading data-quality counts");
                    NoData::Unavailable(e.to_string())
                }),
            };
            self.reads
                .lock()
                .expect("quality lock")
                .insert(w, (tokio::time::Instant::now(), read.clone()));
            counts.insert(w, read);
        }
        let mut states = self.states.lock().expect("quality lock");
        let mut changed = Vec::new();
        for (key, reg) in due {
            let window = reg.spec.window_seconds;
            let reading = match &counts[&window] {
                Err(e) => Reading {
                    window_seconds: window,
                    outcome: Err(e.clone()),
                },
                Ok(m) => Reading::of(&reg.spec, m.get(&(reg.namespace, reg.name))),
            };
            // A pipeline unregistered meanwhile stays unregistered.
            let Some(st) = states.get_mut(&key) else {
                continue;
            };
            let next = reading.condition();
            if st.latest.as_ref().map(Reading::condition) != Some(next.clone()) {
                tracing::debug!(pipeline = %key, reason = next.reason, message = %next.message, "data quality");
                changed.push(key);
            }
            st.last_eval = Some(Instant::now());
            st.latest = Some(reading);
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures::future::BoxFuture;

    use super::{super::signals::SourceError, *};
    use crate::quality::assess::Level;

    /// Counts set by the test; counts the reads.
    #[derive(Default)]
    struct Fake {
        counts: Mutex<HashMap<PipelineId, WindowCounts>>,
        reads: AtomicUsize,
    }

    impl QualitySource for Fake {
        fn counts(
            &self,
            _window: u32,
        ) -> BoxFuture<'_, Result<HashMap<PipelineId, WindowCounts>, SourceError>> {
            self.reads.fetch_add(1, Ordering::Relaxed);
            let c = self.counts.lock().unwrap().clone();
            Box::pin(async move { Ok(c) })
        }
    }

    fn key(name: &str) -> Key {
        ObjectRef::new(name).within("ns")
    }

    fn reg(name: &str, window: u32) -> QualityRegistration {
        QualityRegistration {
            namespace: "ns".into(),
            name: name.into(),
            spec: QualitySpec {
                window_seconds: window,
                ..QualitySpec::default()
            },
            interval: Duration::ZERO,
        }
    }

    fn counts(processed: f64, dead: f64) -> WindowCounts {
        WindowCounts {
            processed,
            rejected: [("invalid_json".to_owned(), dead)].into(),
            ..WindowCounts::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn triggers_only_when_the_condition_changes() {
        let fake = Arc::new(Fake::default());
        let m = QualityEvaluator::new(Some(fake.clone()));
        m.register(key("a"), Some(reg("a", 60)));
        m.register(key("b"), Some(reg("b", 60)));
        m.register(key("c"), Some(reg("c", 300)));
        fake.counts
            .lock()
            .unwrap()
            .insert(("ns".into(), "a".into()), counts(1000.0, 0.0));

        let mut first = m.evaluate_due().await;
        first.sort_by_key(|k| k.name.clone());
        assert_eq!(first, [key("a"), key("b"), key("c")], "first readings");
        assert_eq!(fake.reads.load(Ordering::Relaxed), 2, "one read per window");
        assert_eq!(m.latest(&key("a")).unwrap().level(), Some(Level::Ok));
        assert_eq!(m.latest(&key("b")).unwrap().outcome, Err(NoData::NoSeries));

        assert!(m.evaluate_due().await.is_empty(), "nothing changed");

        tokio::time::advance(READ_REUSE).await;
        fake.counts
            .lock()
            .unwrap()
            .insert(("ns".into(), "a".into()), counts(1000.0, 100.0));
        assert_eq!(m.evaluate_due().await, [key("a")]);
        assert_eq!(m.latest(&key("a")).unwrap().level(), Some(Level::Critical));
    }

    #[tokio::test]
    async fn without_a_source_every_reading_is_no_data_and_unregistered_pipelines_are_dropped() {
        let m = QualityEvaluator::new(None);
        m.register(key("a"), Some(reg("a", 60)));
        assert_eq!(m.evaluate_due().await, [key("a")]);
        assert_eq!(
            m.latest(&key("a")).unwrap().outcome,
            Err(NoData::NoPrometheus)
        );
        m.register(key("a"), None);
        assert!(m.evaluate_due().await.is_empty());
        assert_eq!(m.latest(&key("a")), None);
    }

    #[tokio::test]
    async fn a_changed_spec_is_judged_at_once() {
        let fake = Arc::new(Fake::default());
        let m = QualityEvaluator::new(Some(fake.clone()));
        let mut r = reg("a", 60);
        r.interval = Duration::from_secs(3600);
        m.register(key("a"), Some(r.clone()));
        m.evaluate_due().await;
        m.register(key("a"), Some(r.clone()));
        m.evaluate_due().await;
        assert_eq!(fake.reads.load(Ordering::Relaxed), 1, "not due yet");
        r.spec.window_seconds = 120;
        m.register(key("a"), Some(r));
        m.evaluate_due().await;
        assert_eq!(fake.reads.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn pipelines_due_at_different_seconds_share_a_read() {
        let fake = Arc::new(Fake::default());
        let m = QualityEvaluator::new(Some(fake.clone()));
        m.register(key("a"), Some(reg("a", 60)));
        m.evaluate_due().await;
        m.register(key("b"), Some(reg("b", 60)));
        m.evaluate_due().await;
        assert!(m.latest(&key("b")).is_some(), "b was judged");
        assert_eq!(
            fake.reads.load(Ordering::Relaxed),
            1,
            "b, due a moment later, reused a's read of the same window"
        );
    }
}
