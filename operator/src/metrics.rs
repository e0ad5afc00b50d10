//! The operator's metrics, named in one place (`impressions_operator_*`).

use std::sync::atomic::AtomicU64;

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
pub struct PipelineLabels {
    pub namespace: String,
    pub pipeline: String,
}
/// A pipeline and a kind of schema drift (`DriftKind::label()`: six values).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DriftLabels {
    pub namespace: String,
    pub pipeline: String,
    pub kind: &'static str,
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
    pub desired_replicas: Family<PipelineLabels, Gauge>,
    pub current_replicas: Family<PipelineLabels, Gauge>,
    pub lag_events: Family<PipelineLabels, Gauge>,
    pub input_rate: Family<PipelineLabels, Gauge<f64, AtomicU64>>,
    /// The arrival rate forecast one lead time ahead (predictive scaling on).
    pub forecast_input_rate: Family<PipelineLabels, Gauge<f64, AtomicU64>>,
    /// The forecast's recent mean relative error: above the policy's maxForecastError the
    /// forecast is not acted on.
    pub forecast_error: Family<PipelineLabels, Gauge<f64, AtomicU64>>,
    pub processed_rate: Family<PipelineLabels, Gauge<f64, AtomicU64>>,
    /// The capacity estimate of one replica at each evaluation (events/s), unrounded and without
    /// the status's 10 % hysteresis.
    pub capacity_per_replica: Family<PipelineLabels, Gauge<f64, AtomicU64>>,
    pub scaling_decisions: Family<DecisionLabels, Counter>,
    pub data_quality: Family<PipelineLabels, Gauge>,
    /// Per pipeline and kind, the drifts of the raw events' schema from the accepted baseline
    /// in the last window (every kind present, 0 included, once the pipeline has a baseline).
    pub schema_drifts: Family<DriftLabels, Gauge>,
    /// Reads of the workers' schema reports that failed, by reason (`endpoints`,
    /// `endpoints_timeout`: the worker Service's EndpointSlices; `pod`: one pod's GET).
    pub schema_read_failures: Family<ReasonLabel, Counter>,
    /// Schema windows closed (merged over a pipeline's workers).
    pub schema_windows: Counter,
    /// Seconds between the starts of two evaluations of one pipeline (the loop's punctuality:
    /// close to the policy interval unless evaluations wait on each other or on slow signals).
    pub evaluation_interval: Histogram,
    /// Archivers the operator wants per pipeline with an archive.
    pub archive_desired_replicas: Family<PipelineLabels, Gauge>,
    /// Records of the sink topic not yet in the archive's table (the archivers' group lag).
    pub archive_lag_records: Family<PipelineLabels, Gauge>,
    /// Unix time of the archive's last commit to its table.
    pub archive_last_commit_timestamp: Family<PipelineLabels, Gauge>,
    /// 1 while the ArchiveHealthy condition is True, else 0.
    pub archive_healthy: Family<PipelineLabels, Gauge>,
    /// The decision reasons counted per (namespace, pipeline), to drop their series when the
    /// pipeline is deleted.
    decided: std::sync::Mutex<
        std::collections::HashMap<(String, String), std::collections::BTreeSet<String>>,
    >,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    pub namespace: String,
    pub pipeline: String,
    pub reason: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            reconciles: Counter::default(),
            failures: Family::default(),
            duration: Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
            pipelines: Family::default(),
            leader: Gauge::default(),
            desired_replicas: Family::default(),
            current_replicas: Family::default(),
            lag_events: Family::default(),
            input_rate: Family::default(),
            forecast_input_rate: Family::default(),
            forecast_error: Family::default(),
            processed_rate: Family::default(),
            capacity_per_replica: Family::default(),
            scaling_decisions: Family::default(),
            data_quality: Family::default(),
            schema_drifts: Family::default(),
            schema_read_failures: Family::default(),
            schema_windows: Counter::default(),
            evaluation_interval: Histogram::new([
                1.0, 2.0, 5.0, 7.5, 10.0, 12.5, 15.0, 16.0, 17.5, 20.0, 25.0, 30.0, 45.0, 60.0,
                90.0, 120.0, 300.0,
            ]),
            archive_desired_replicas: Family::default(),
            archive_lag_records: Family::default(),
            archive_last_commit_timestamp: Family::default(),
            archive_healthy: Family::default(),
            decided: Default::default(),
        }
    }
}

/// Every metric the operator exposes, by the name Prometheus stores its series under: counters
/// with their `_total` suffix, histograms by their family name (series `_bucket`, `_sum`,
/// `_count`). Checks of the chart's dashboard and alert rules read this list; a unit test checks
/// it against what [`Metrics::register`] registers.
pub const NAMES: &[&str] = &[
    "impressions_operator_reconciles_total",
    "impressions_operator_reconcile_failures_total",
    "impressions_operator_reconcile_duration_seconds",
    "impressions_operator_pipelines",
    "impressions_operator_leader",
    "impressions_operator_pipeline_desired_replicas",
    "impressions_operator_pipeline_current_replicas",
    "impressions_operator_pipeline_lag_events",
    "impressions_operator_pipeline_input_rate",
    "impressions_operator_pipeline_forecast_input_rate",
    "impressions_operator_pipeline_forecast_error_ratio",
    "impressions_operator_pipeline_processed_rate",
    "impressions_operator_pipeline_capacity_per_replica",
    "impressions_operator_scaling_decisions_total",
    "impressions_operator_pipeline_data_quality",
    "impressions_operator_evaluation_interval_seconds",
    "impressions_operator_pipeline_schema_drifts",
    "impressions_operator_schema_read_failures_total",
    "impressions_operator_schema_windows_total",
    "impressions_operator_archive_desired_replicas",
    "impressions_operator_archive_lag_records",
    "impressions_operator_archive_last_commit_timestamp_seconds",
    "impressions_operator_archive_healthy",
];

/// The `kind` label values of `pipeline_schema_drifts` (the core's `DriftKind::label()`).
pub const DRIFT_KINDS: [&str; 6] = [
    "new_event_type",
    "new_field",
    "field_gone",
    "type_changed",
    "presence_dropped",
    "presence_jumped",
];

/// Pipeline states for the `pipelines` gauge.
pub const STATES: [&str; 3] = ["ready", "not_ready", "other_region"];

impl Metrics {
    /// Counts a new scaling decision of a pipeline.
    pub fn count_decision(&self, l: DecisionLabels) {
        self.decided
            .lock()
            .expect("decided lock")
            .entry((l.namespace.clone(), l.pipeline.clone()))
            .or_default()
            .insert(l.reason.clone());
        self.scaling_decisions.get_or_create(&l).inc();
    }

    /// Drops every series of a deleted pipeline.
    pub fn forget_pipeline(&self, namespace: &str, pipeline: &str) {
        let l = PipelineLabels {
            namespace: namespace.to_owned(),
            pipeline: pipeline.to_owned(),
        };
        self.desired_replicas.remove(&l);
        self.current_replicas.remove(&l);
        self.lag_events.remove(&l);
        self.input_rate.remove(&l);
        self.forecast_input_rate.remove(&l);
        self.forecast_error.remove(&l);
        self.processed_rate.remove(&l);
        self.capacity_per_replica.remove(&l);
        self.data_quality.remove(&l);
        self.forget_archive(&l);
        self.forget_schema_drifts(namespace, pipeline);
        let reasons = self
            .decided
            .lock()
            .expect("decided lock")
            .remove(&(l.namespace.clone(), l.pipeline.clone()))
            .unwrap_or_default();
        for reason in reasons {
            self.scaling_decisions.remove(&DecisionLabels {
                namespace: l.namespace.clone(),
                pipeline: l.pipeline.clone(),
                reason,
            });
        }
    }

    /// Drops the archive's series of a pipeline (deleted, or its archive removed).
    pub fn forget_archive(&self, l: &PipelineLabels) {
        self.archive_desired_replicas.remove(l);
        self.archive_lag_records.remove(l);
        self.archive_last_commit_timestamp.remove(l);
        self.archive_healthy.remove(l);
    }

    /// Sets the drift gauges of a pipeline: every kind, from the count of each.
    pub fn set_schema_drifts(
        &self,
        namespace: &str,
        pipeline: &str,
        count: impl Fn(&'static str) -> i64,
    ) {
        for kind in DRIFT_KINDS {
            self.schema_drifts
                .get_or_create(&DriftLabels {
                    namespace: namespace.to_owned(),
                    pipeline: pipeline.to_owned(),
                    kind,
                })
                .set(count(kind));
        }
    }

    /// Drops the drift gauges of a pipeline (deleted, or without a baseline).
    pub fn forget_schema_drifts(&self, namespace: &str, pipeline: &str) {
        for kind in DRIFT_KINDS {
            self.schema_drifts.remove(&DriftLabels {
                namespace: namespace.to_owned(),
                pipeline: pipeline.to_owned(),
                kind,
            });
        }
    }

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
        p.register_with_unit(
            "evaluation_interval",
            "Seconds between the starts of two evaluations of one pipeline",
            prometheus_client::registry::Unit::Seconds,
            self.evaluation_interval.clone(),
        );
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
        p.register(
            "pipeline_desired_replicas",
            "Replicas the operator wants per pipeline",
            self.desired_replicas.clone(),
        );
        p.register(
            "pipeline_current_replicas",
            "Worker replicas that exist per pipeline",
            self.current_replicas.clone(),
        );
        p.register(
            "archive_desired_replicas",
            "Archivers the operator wants per pipeline with an archive",
            self.archive_desired_replicas.clone(),
        );
        p.register(
            "archive_lag_records",
            "Records of the sink topic not yet committed to the archive's table",
            self.archive_lag_records.clone(),
        );
        p.register(
            "archive_last_commit_timestamp_seconds",
            "Unix time of the archive's last commit to its table",
            self.archive_last_commit_timestamp.clone(),
        );
        p.register(
            "archive_healthy",
            "1 while the pipeline's ArchiveHealthy condition is True",
            self.archive_healthy.clone(),
        );
        p.register(
            "pipeline_lag_events",
            "Consumer lag per pipeline",
            self.lag_events.clone(),
        );
        p.register(
            "pipeline_input_rate",
            "Events/s arriving per pipeline",
            self.input_rate.clone(),
        );
        p.register(
            "pipeline_forecast_input_rate",
            "Events/s the forecast expects one lead time ahead, per pipeline (predictive scaling on)",
            self.forecast_input_rate.clone(),
        );
        p.register(
            "pipeline_forecast_error_ratio",
            "The forecast's recent mean relative error per pipeline; above the policy's maxForecastError scaling is reactive",
            self.forecast_error.clone(),
        );
        p.register(
            "pipeline_processed_rate",
            "Events/s processed per pipeline",
            self.processed_rate.clone(),
        );
        p.register(
            "pipeline_capacity_per_replica",
            "The events/s one replica carries at its limit, as the autoscaler estimated it at its last evaluation",
            self.capacity_per_replica.clone(),
        );
        p.register(
            "scaling_decisions",
            "Scaling decisions that changed a pipeline's last decision, by reason",
            self.scaling_decisions.clone(),
        );
        p.register(
            "pipeline_data_quality",
            "Data quality per pipeline: 0 OK, 1 Warning, 2 Critical (absent without data)",
            self.data_quality.clone(),
        );
        p.register(
            "pipeline_schema_drifts",
            "Drifts of the raw events' schema from the accepted baseline in the last window, per pipeline and kind",
            self.schema_drifts.clone(),
        );
        p.register(
            "schema_read_failures",
            "Reads of the workers' schema reports that failed, by reason",
            self.schema_read_failures.clone(),
        );
        p.register(
            "schema_windows",
            "Schema windows closed (merged over a pipeline's workers)",
            self.schema_windows.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_exactly_the_registered_metrics() {
        let m = Metrics::default();
        let mut r = Registry::default();
        m.register(&mut r);
        // A family without a member is not rendered: those register() leaves empty get one.
        let pipeline = PipelineLabels {
            namespace: "ns".into(),
            pipeline: "p".into(),
        };
        let _ = m
            .failures
            .get_or_create(&ReasonLabel { reason: "r".into() });
        for family in [
            &m.desired_replicas,
            &m.current_replicas,
            &m.lag_events,
            &m.data_quality,
            &m.archive_desired_replicas,
            &m.archive_lag_records,
            &m.archive_last_commit_timestamp,
            &m.archive_healthy,
        ] {
            let _ = family.get_or_create(&pipeline);
        }
        for family in [
            &m.input_rate,
            &m.processed_rate,
            &m.capacity_per_replica,
            &m.forecast_input_rate,
            &m.forecast_error,
        ] {
            let _ = family.get_or_create(&pipeline);
        }
        m.set_schema_drifts("ns", "p", |_| 0);
        let _ = m.schema_read_failures.get_or_create(&ReasonLabel {
            reason: "pod".into(),
        });
        let _ = m.scaling_decisions.get_or_create(&DecisionLabels {
            namespace: "ns".into(),
            pipeline: "p".into(),
            reason: "r".into(),
        });
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &r).unwrap();
        // OpenMetrics names a counter family without `_total`; its series carry it.
        let registered: std::collections::BTreeSet<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_once(' '))
            .map(|(name, kind)| match kind {
                "counter" => format!("{name}_total"),
                _ => name.to_owned(),
            })
            .collect();
        let listed: std::collections::BTreeSet<String> =
            NAMES.iter().map(|n| n.to_string()).collect();
        assert_eq!(listed.len(), NAMES.len(), "NAMES lists a name twice");
        assert_eq!(
            listed, registered,
            "NAMES must list every registered metric, and nothing else"
        );
    }

    #[test]
    fn the_drift_kinds_are_the_cores_labels_and_forgotten_with_the_pipeline() {
        use impressions_worker_core::schema::DriftKind;
        let labels: Vec<&str> = DriftKind::ALL.iter().map(|k| k.label()).collect();
        assert_eq!(labels, DRIFT_KINDS);
        let m = Metrics::default();
        m.set_schema_drifts("ns", "p", |k| i64::from(k == "new_field"));
        let get = |kind| {
            m.schema_drifts
                .get_or_create(&DriftLabels {
                    namespace: "ns".into(),
                    pipeline: "p".into(),
                    kind,
                })
                .get()
        };
        assert_eq!((get("new_field"), get("field_gone")), (1, 0));
        m.forget_pipeline("ns", "p");
        let mut r = Registry::default();
        m.register(&mut r);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &r).unwrap();
        assert!(!text.contains("pipeline=\"p\""), "{text}");
    }
}
