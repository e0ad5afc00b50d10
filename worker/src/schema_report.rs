//! Learning the raw events' schema in the worker (docs/raw-event-schema.md). Each processing
//! thread offers every payload it processes to its own [`Learner`] (an unsampled event costs
//! one decrement); the main loop ends a window when it is due ([`Windows::tick`]), merges the
//! threads' observations into a [`SchemaReport`] and publishes it on the [`Board`] (in the
//! `Health` (in `run.rs`) the HTTP server reads). The board keeps the last [`RECENT`] reports:
//! `GET /schema` serves the last one, `GET /schema/windows` all of them, each with the pipeline,
//! the pod and the window, so that a collector that polls less often than once a window misses
//! none and can de-duplicate the reports by (pod, window start) before merging them.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

pub use crate::schema::report::{PipelineRef, SchemaReport, WindowBounds};
use crate::{
    config::WorkerConfig,
    metrics::{Metrics, OverflowLabel},
    schema::{Budget, Learner, Observation},
};

/// How many of the last reports the board keeps (`GET /schema/windows`).
pub const RECENT: usize = 8;

/// The last reports, shared between the main loop (which writes one per window) and the HTTP
/// server (which reads them per request). The default is a disabled board.
#[derive(Debug, Default)]
pub struct Board {
    /// Whether schema learning is enabled (`schema.enabled`).
    pub enabled: bool,
    recent: Mutex<VecDeque<Arc<SchemaReport>>>,
}

impl Board {
    pub fn new(enabled: bool) -> Self {
        Board {
            enabled,
            recent: Mutex::new(VecDeque::with_capacity(RECENT)),
        }
    }

    /// The last report, if a window has ended.
    pub fn latest(&self) -> Option<Arc<SchemaReport>> {
        self.recent
            .lock()
            .expect("schema board lock")
            .back()
            .cloned()
    }

    /// The last [`RECENT`] reports, oldest first.
    pub fn recent(&self) -> Vec<Arc<SchemaReport>> {
        self.recent
            .lock()
            .expect("schema board lock")
            .iter()
            .cloned()
            .collect()
    }

    pub fn publish(&self, report: SchemaReport) {
        let mut recent = self.recent.lock().expect("schema board lock");
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(Arc::new(report));
    }
}

/// The windows of the main loop: when the next one is due, and what to publish it with.
#[derive(Debug)]
pub struct Windows {
    window_ms: i64,
    start_ms: i64,
    due_ms: i64,
    pipeline: PipelineRef,
    pod: String,
    sample_one_in: u32,
    budget: Budget,
}

impl Windows {
    /// The windows of a worker whose first window starts at `now_ms`; `None` when schema
    /// learning is disabled.
    pub fn new(cfg: &WorkerConfig, pod: String, now_ms: i64) -> Option<Self> {
        if !cfg.schema.enabled {
            return None;
        }
        let window_ms = (cfg.schema.window_seconds * 1000) as i64;
        Some(Windows {
            window_ms,
            start_ms: now_ms,
            due_ms: next_boundary(now_ms, window_ms),
            pipeline: PipelineRef {
                namespace: cfg.pipeline.namespace.clone(),
                name: cfg.pipeline.name.clone(),
            },
            pod,
            sample_one_in: cfg.schema.sample_one_in,
            budget: cfg.schema.budget,
        })
    }

    /// Ends the window if it is due at `now_ms`: takes the learners' observations, merges them
    /// and folds the result into the metrics. Returns the window's report, if it ended.
    pub fn tick<'a>(
        &mut self,
        now_ms: i64,
        learners: impl IntoIterator<Item = &'a mut Learner>,
        metrics: &Metrics,
    ) -> Option<SchemaReport> {
        if now_ms < self.due_ms {
            return None;
        }
        let mut taken: Vec<Observation> = learners.into_iter().map(Learner::take).collect();
        let observation = if taken.len() == 1 {
            taken.pop().unwrap_or_default()
        } else {
            Observation::merged(&taken, &self.budget)
        };
        fold(metrics, &observation);
        let window = WindowBounds {
            start_ms: self.start_ms,
            end_ms: now_ms,
        };
        tracing::debug!(
            start_ms = window.start_ms,
            end_ms = window.end_ms,
            seen = observation.events_seen,
            sampled = observation.events_sampled,
            event_types = observation.event_types.len(),
            "schema window ended"
        );
        self.start_ms = now_ms;
        self.due_ms = next_boundary(now_ms, self.window_ms);
        Some(SchemaReport {
            pipeline: self.pipeline.clone(),
            pod: self.pod.clone(),
            window,
            window_seconds: (self.window_ms / 1000) as u32,
            sample_one_in: self.sample_one_in,
            budget: self.budget,
            observation,
        })
    }
}

/// The first multiple of `window_ms` after `now_ms`.
fn next_boundary(now_ms: i64, window_ms: i64) -> i64 {
    (now_ms.div_euclid(window_ms) + 1) * window_ms
}

/// A window's observation into the metrics: the windows ended, the event types and paths it
/// holds (which the learner keeps tracking into the next window), and what went past the budget.
fn fold(m: &Metrics, o: &Observation) {
    m.schema_windows.inc();
    m.schema_event_types.set(o.event_types.len() as i64);
    let paths: usize = o.event_types.values().map(|t| t.fields.len()).sum();
    m.schema_paths.set(paths as i64);
    let (paths_over, values_over) = o.event_types.values().fold((0, 0), |(p, v), t| {
        (p + t.paths_overflow, v + t.values_truncated)
    });
    for (kind, n) in [
        ("event_types", o.event_types_overflow),
        ("paths", paths_over),
        ("values", values_over),
    ] {
        if n > 0 {
            m.schema_overflow
                .get_or_create(&OverflowLabel { kind })
                .inc_by(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{metrics::SCHEMA_OVERFLOWS, schema::LearnerConfig};

    fn config(extra: &str) -> WorkerConfig {
        WorkerConfig::from_yaml(
            &format!(
                "pipeline: {{namespace: demo, name: imp}}
source: {{bootstrapServers: 'k:9092', topic: raw, consumerGroup: g}}
sink: {{topic: out, deadLetterTopic: dlq}}
catalog: {{topic: titles}}
{extra}"
            ),
            [],
        )
        .unwrap()
    }

    fn learner(cfg: &WorkerConfig, lane: usize) -> Learner {
        Learner::new(&cfg.learner(lane).unwrap())
    }

    #[test]
    fn windows_end_at_multiples_of_the_window_and_are_contiguous() {
        let cfg = config("schema: {sampleOneIn: 1, windowSeconds: 2}");
        let board = Board::new(true);
        let metrics = Metrics::default();
        let mut w = Windows::new(&cfg, "pod-a".into(), 10_500).unwrap();
        let mut l = [learner(&cfg, 0)];
        assert!(w.tick(11_999, &mut l, &metrics).is_none());
        assert!(board.latest().is_none(), "no window ended yet");
        l[0].offer(br#"{"eventType":"impression","a":{"b":1}}"#, 11_000);
        board.publish(w.tick(12_040, &mut l, &metrics).unwrap());
        let first = board.latest().unwrap();
        assert_eq!(
            first.window,
            WindowBounds {
                start_ms: 10_500,
                end_ms: 12_040
            }
        );
        assert_eq!(first.pod, "pod-a");
        assert_eq!(
            first.pipeline,
            PipelineRef {
                namespace: "demo".into(),
                name: "imp".into()
            }
        );
        assert_eq!(first.observation.events_seen, 1);
        assert_eq!(first.observation.event_types["impression"].fields.len(), 3);
        // The next window ends at the next multiple, and starts where this one ended.
        assert!(w.tick(13_999, &mut l, &metrics).is_none());
        // A loop that stalled over several windows ends one window, at the next multiple.
        board.publish(w.tick(17_100, &mut l, &metrics).unwrap());
        let second = board.latest().unwrap();
        assert_eq!(
            second.window,
            WindowBounds {
                start_ms: 12_040,
                end_ms: 17_100
            }
        );
        assert_eq!(second.observation, Observation::default());
        assert!(w.tick(17_999, &mut l, &metrics).is_none());
        assert!(w.tick(18_000, &mut l, &metrics).is_some());
        assert_eq!(metrics.schema_windows.get(), 3);
    }

    #[test]
    fn the_threads_observations_are_merged_and_counted() {
        let cfg = config(
            "processing: {threads: 2}\nschema: {sampleOneIn: 1, budget: {maxEventTypes: 1, maxPaths: 2}}",
        );
        let metrics = Metrics::default();
        let mut w = Windows::new(&cfg, "p".into(), 0).unwrap();
        let mut lanes = [learner(&cfg, 0), learner(&cfg, 1)];
        lanes[0].offer(br#"{"eventType":"a","x":1,"y":2}"#, 1);
        lanes[1].offer(br#"{"eventType":"a","x":"s"}"#, 2);
        lanes[1].offer(br#"{"eventType":"b"}"#, 3);
        let o = w
            .tick(60_000, lanes.iter_mut(), &metrics)
            .unwrap()
            .observation;
        assert_eq!((o.events_seen, o.events_sampled), (3, 3));
        let a = &o.event_types["a"];
        assert_eq!(a.events, 2);
        assert_eq!(a.fields["x"].present, 2);
        // The budget of two paths: eventType and x kept, y over it (in the first thread).
        assert_eq!(a.fields.len(), 2);
        assert_eq!(a.paths_overflow, 1);
        assert_eq!(o.event_types_overflow, 1, "b is past one event type");
        assert_eq!(metrics.schema_event_types.get(), 1);
        assert_eq!(metrics.schema_paths.get(), 2);
        let over = |kind| {
            metrics
                .schema_overflow
                .get_or_create(&OverflowLabel { kind })
                .get()
        };
        assert_eq!(SCHEMA_OVERFLOWS, ["event_types", "paths", "values"]);
        assert_eq!(
            (over("event_types"), over("paths"), over("values")),
            (1, 1, 0)
        );
    }

    #[test]
    fn the_board_keeps_the_last_reports_oldest_first() {
        let cfg = config("schema: {sampleOneIn: 1, windowSeconds: 1}");
        let board = Board::new(true);
        let mut w = Windows::new(&cfg, "p".into(), 0).unwrap();
        let mut l = [learner(&cfg, 0)];
        assert!(board.recent().is_empty());
        for i in 1..=(RECENT as i64 + 3) {
            board.publish(w.tick(i * 1000, &mut l, &Metrics::default()).unwrap());
        }
        let recent = board.recent();
        assert_eq!(recent.len(), RECENT);
        let starts: Vec<i64> = recent.iter().map(|r| r.window.start_ms).collect();
        let first = 3 * 1000;
        assert_eq!(
            starts,
            (0..RECENT as i64)
                .map(|i| first + i * 1000)
                .collect::<Vec<_>>()
        );
        assert_eq!(board.latest().unwrap().window, recent[RECENT - 1].window);
        assert_eq!(recent[0].window_seconds, 1);
    }

    #[test]
    fn disabled_learning_has_no_windows() {
        let cfg = config("schema: {enabled: false}");
        assert!(Windows::new(&cfg, "p".into(), 0).is_none());
        assert!(!Board::default().enabled);
        assert_eq!(cfg.learner(0), None::<LearnerConfig>);
    }

    #[test]
    fn the_report_is_json_with_camel_case_names() {
        let cfg = config("schema: {sampleOneIn: 1, windowSeconds: 1}");
        let mut w = Windows::new(&cfg, "pod-7".into(), 0).unwrap();
        let mut l = [learner(&cfg, 0)];
        l[0].offer(br#"{"eventType":"impression","appVersion":"15.1.1"}"#, 5);
        let report = w.tick(1_000, &mut l, &Metrics::default()).unwrap();
        let text = serde_json::to_string(&report).unwrap();
        for part in [
            r#""pipeline":{"namespace":"demo","name":"imp"}"#,
            r#""pod":"pod-7""#,
            r#""window":{"startMs":0,"endMs":1000}"#,
            r#""windowSeconds":1"#,
            r#""sampleOneIn":1"#,
            r#""budget":{"maxEventTypes":32,"maxPaths":256,"maxVersions":8}"#,
            r#""eventsSeen":1"#,
        ] {
            assert!(text.contains(part), "{part} in {text}");
        }
        assert_eq!(serde_json::from_str::<SchemaReport>(&text).unwrap(), report);
    }
}
