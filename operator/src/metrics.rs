//! The operator's metrics, named in one place (`impressions_operator_*`).

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: &'static str,
}

/// The operator's metrics.
#[derive(Debug)]
pub struct Metrics {
    pub reconciles: Counter,
    pub failures: Family<ReasonLabel, Counter>,
    pub duration: Histogram,
    pub pipelines: Family<StateLabel, Gauge>,
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            reconciles: Counter::default(),
            failures: Family::default(),
            duration: Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
            pipelines: Family::default(),
            leader: Gauge::default(),
        }
    }
}

/// Pipeline states for the `pipelines` gauge.
pub const STATES: [&str; 3] = ["ready", "not_ready", "other_region"];

impl Metrics {
    /// Observes the duration of a reconcile when dropped.
    pub fn duration_timer(&self) -> DurationTimer<'_> {
        DurationTimer {
            start: std::time::Instant::now(),
            histogram: &self.duration,
        }
    }

    pub fn register(&self, r: &mut Registry) {
        let p = r.sub_registry_with_prefix("impressions_operator");
        p.register("reconciles", "Reconciles run", self.reconciles.clone());
        p.register(
            "reconcile_failures",
            "Reconciles that failed, by reason",
            self.failures.clone(),
        );
        p.register(
            "reconcile_duration_seconds",
            "Duration of one reconcile",
            self.duration.clone(),
        );
        p.register(
            "pipelines",
            "Pipelines seen, by state",
            self.pipelines.clone(),
        );
        p.register(
            "leader",
            "1 while this replica holds the leader lease",
            self.leader.clone(),
        );
        for state in STATES {
            let _ = self.pipelines.get_or_create(&StateLabel { state });
        }
    }
}

/// Observes the elapsed time into the reconcile duration histogram on drop.
#[derive(Debug)]
pub struct DurationTimer<'a> {
    start: std::time::Instant,
    histogram: &'a Histogram,
}

impl Drop for DurationTimer<'_> {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}
