//! Every metric the worker exposes, named in one place (`impressions_worker_*`, Prometheus
//! conventions: counters end in `_total`, durations in `_seconds`). Label values come from
//! closed sets (reasons, columns, pairs, event types), so cardinality is bounded.

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{
        counter::{ConstCounter, Counter},
        family::Family,
        gauge::{ConstGauge, Gauge},
        histogram::Histogram,
    },
    registry::Registry,
};
use std::sync::atomic::AtomicU64;

use crate::{
    process::FILTERED_TYPES,
    quality::{Column, Correction, Pair, Tally},
    reject::Reject,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventTypeLabel {
    pub event_type: &'static str,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ColumnLabel {
    pub column: &'static str,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MismatchLabels {
    pub pair: &'static str,
    pub corrected: &'static str,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CorrectionLabel {
    pub correction: &'static str,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutputLabel {
    pub output: &'static str,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OverflowLabel {
    pub kind: &'static str,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    pub topic: String,
    pub partition: String,
}

/// The worker's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    pub consumed: Counter,
    pub processed: Counter,
    pub records_produced: Counter,
    pub dead_letters_produced: Counter,
    pub rejected: Family<ReasonLabel, Counter>,
    pub filtered: Family<EventTypeLabel, Counter>,
    pub column_nulls: Family<ColumnLabel, Counter>,
    pub column_invalid: Family<ColumnLabel, Counter>,
    pub mismatches: Family<MismatchLabels, Counter>,
    pub corrections: Family<CorrectionLabel, Counter>,
    pub busy_seconds: Counter<f64, AtomicU64>,
    pub rate_cap_wait_seconds: Counter<f64, AtomicU64>,
    pub latency: LatencyHistogram,
    pub consumer_lag: Family<PartitionLabels, Gauge>,
    pub assigned_partitions: Gauge,
    pub catalog_titles: Gauge,
    pub catalog_updates: Counter,
    pub delivery_errors: Counter,
    /// At-least-once: outputs that could not be produced, by output kind; each stops the worker.
    pub fatal_produce_errors: Family<OutputLabel, Counter>,
    /// Dead letters whose payload was cut to `deadLetter.maxPayloadBytes`.
    pub dead_letters_truncated: Counter,
    pub commits: Counter,
    /// ExactlyOnce: transactions ended, by outcome (`committed`, `aborted`).
    pub transactions: Family<OutcomeLabel, Counter>,
    /// ExactlyOnce: input events whose offsets were committed with their outputs.
    pub events_committed: Counter,
    pub transaction_commit_seconds: CommitHistogram,
    /// Raw events walked by the schema learner (about one in `schema.sampleOneIn`).
    pub schema_events_sampled: Counter,
    /// Schema windows ended (each served at `GET /schema`).
    pub schema_windows: Counter,
    /// Event types and field paths (all types) in the last schema window.
    pub schema_event_types: Gauge,
    pub schema_paths: Gauge,
    /// What went past the schema budget or the walk's bounds, by [`SCHEMA_OVERFLOWS`].
    pub schema_overflow: Family<OverflowLabel, Counter>,
}

/// Seconds a transaction commit takes (offsets sent, outputs flushed, commit acknowledged).
#[derive(Debug)]
pub struct CommitHistogram(pub Histogram);

impl Default for CommitHistogram {
    fn default() -> Self {
        CommitHistogram(Histogram::new([
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ]))
    }
}

/// Every metric the worker exposes, by the name Prometheus stores its series under: counters
/// with their `_total` suffix, histograms by their family name (series `_bucket`, `_sum`,
/// `_count`). Checks of the chart's dashboard and alert rules read this list; a unit test checks
/// it against what [`Metrics::register`] registers.
pub const NAMES: &[&str] = &[
    "impressions_worker_events_consumed_total",
    "impressions_worker_events_processed_total",
    "impressions_worker_records_produced_total",
    "impressions_worker_dead_letters_produced_total",
    "impressions_worker_events_rejected_total",
    "impressions_worker_events_filtered_total",
    "impressions_worker_column_nulls_total",
    "impressions_worker_column_invalid_total",
    "impressions_worker_column_mismatches_total",
    "impressions_worker_column_corrections_total",
    "impressions_worker_busy_seconds_total",
    "impressions_worker_rate_cap_wait_seconds_total",
    "impressions_worker_cpu_seconds_total",
    "impressions_worker_cpu_limit_cores",
    "impressions_worker_cpu_idle_cores",
    "impressions_worker_event_latency_seconds",
    "impressions_worker_consumer_lag",
    "impressions_worker_assigned_partitions",
    "impressions_worker_catalog_titles",
    "impressions_worker_catalog_updates_total",
    "impressions_worker_delivery_errors_total",
    "impressions_worker_fatal_produce_errors_total",
    "impressions_worker_dead_letters_truncated_total",
    "impressions_worker_offset_commits_total",
    "impressions_worker_transactions_total",
    "impressions_worker_events_committed_total",
    "impressions_worker_transaction_commit_seconds",
    "impressions_worker_schema_events_sampled_total",
    "impressions_worker_schema_windows_total",
    "impressions_worker_schema_event_types",
    "impressions_worker_schema_paths",
    "impressions_worker_schema_overflow_total",
];

/// Output kinds (label values of `fatal_produce_errors`).
pub const OUTPUTS: [&str; 2] = ["record", "dead_letter"];

/// What can go past the schema learner's bounds (label values of `schema_overflow`):
/// `event_types`, sampled events of event types beyond `schema.budget.maxEventTypes`; `paths`,
/// presences (one per event and path) of paths beyond `schema.budget.maxPaths`; `values`, values
/// left out by the walk's bounds (depth, array items, values per event).
pub const SCHEMA_OVERFLOWS: [&str; 3] = ["event_types", "paths", "values"];

/// Transaction outcomes (label values).
pub const TRANSACTION_OUTCOMES: [&str; 2] = ["committed", "aborted"];

/// Seconds from consuming an event to the broker acknowledging its output.
#[derive(Debug)]
pub struct LatencyHistogram(pub Histogram);

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram(Histogram::new([
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ]))
    }
}

impl Metrics {
    /// Registers every metric; label families are pre-filled with every value so that a rate()
    /// over them starts at zero instead of appearing with the first occurrence.
    pub fn register(&self, r: &mut Registry) {
        let p = r.sub_registry_with_prefix("impressions_worker");
        p.register(
            "events_consumed",
            "Events read from the raw topic",
            self.consumed.clone(),
        );
        p.register(
            "events_processed",
            "Events handled (records, dead letters and filtered)",
            self.processed.clone(),
        );
        p.register(
            "records_produced",
            "Avro records acknowledged by the sink topic",
            self.records_produced.clone(),
        );
        p.register(
            "dead_letters_produced",
            "Rejected events acknowledged by the dead-letter topic",
            self.dead_letters_produced.clone(),
        );
        p.register(
            "events_rejected",
            "Events rejected to the dead-letter topic, by reason",
            self.rejected.clone(),
        );
        p.register(
            "events_filtered",
            "Events of other types than impression, dropped",
            self.filtered.clone(),
        );
        p.register(
            "column_nulls",
            "Null or missing values per column",
            self.column_nulls.clone(),
        );
        p.register(
            "column_invalid",
            "Ill-typed or out-of-range values per column",
            self.column_invalid.clone(),
        );
        p.register(
            "column_mismatches",
            "Column pairs that disagreed, corrected or not",
            self.mismatches.clone(),
        );
        p.register(
            "column_corrections",
            "Columns corrected in place, by correction",
            self.corrections.clone(),
        );
        p.register(
            "busy_seconds",
            "Seconds spent processing (not waiting for input)",
            self.busy_seconds.clone(),
        );
        p.register(
            "rate_cap_wait_seconds",
            "Seconds held back by the configured rate cap (counted as busy)",
            self.rate_cap_wait_seconds.clone(),
        );
        p.register(
            "event_latency_seconds",
            "Seconds from consuming an event to its output being acknowledged",
            self.latency.0.clone(),
        );
        p.register(
            "consumer_lag",
            "Consumer lag per assigned partition, from librdkafka statistics",
            self.consumer_lag.clone(),
        );
        p.register(
            "assigned_partitions",
            "Partitions assigned to this worker",
            self.assigned_partitions.clone(),
        );
        p.register(
            "catalog_titles",
            "Titles in the catalog",
            self.catalog_titles.clone(),
        );
        p.register(
            "catalog_updates",
            "Catalog updates applied",
            self.catalog_updates.clone(),
        );
        p.register(
            "delivery_errors",
            "Outputs the broker did not acknowledge",
            self.delivery_errors.clone(),
        );
        p.register(
            "fatal_produce_errors",
            "At-least-once: outputs that could not be produced, by output; each stops the worker \
             so that their input is not committed",
            self.fatal_produce_errors.clone(),
        );
        p.register(
            "dead_letters_truncated",
            "Dead letters whose payload was cut to deadLetter.maxPayloadBytes",
            self.dead_letters_truncated.clone(),
        );
        p.register(
            "offset_commits",
            "Offset commits made (ExactlyOnce: in committed transactions)",
            self.commits.clone(),
        );
        p.register(
            "transactions",
            "ExactlyOnce: transactions ended, by outcome",
            self.transactions.clone(),
        );
        p.register(
            "events_committed",
            "ExactlyOnce: input events committed in a transaction with their outputs",
            self.events_committed.clone(),
        );
        p.register(
            "transaction_commit_seconds",
            "ExactlyOnce: seconds to commit a transaction (flush, offsets, commit)",
            self.transaction_commit_seconds.0.clone(),
        );
        p.register(
            "schema_events_sampled",
            "Raw events walked by the schema learner (about one in schema.sampleOneIn)",
            self.schema_events_sampled.clone(),
        );
        p.register(
            "schema_windows",
            "Schema learning windows ended, each served at /schema",
            self.schema_windows.clone(),
        );
        p.register(
            "schema_event_types",
            "Event types in the last schema window",
            self.schema_event_types.clone(),
        );
        p.register(
            "schema_paths",
            "Field paths in the last schema window, all event types",
            self.schema_paths.clone(),
        );
        p.register(
            "schema_overflow",
            "What went past the schema budget, by kind: sampled events of event types, \
             presences of paths, values beyond the walk's bounds",
            self.schema_overflow.clone(),
        );
        for kind in SCHEMA_OVERFLOWS {
            let _ = self.schema_overflow.get_or_create(&OverflowLabel { kind });
        }
        for outcome in TRANSACTION_OUTCOMES {
            let _ = self.transactions.get_or_create(&OutcomeLabel { outcome });
        }
        for output in OUTPUTS {
            let _ = self
                .fatal_produce_errors
                .get_or_create(&OutputLabel { output });
        }
        for reason in Reject::REASONS {
            let _ = self.rejected.get_or_create(&ReasonLabel { reason });
        }
        for event_type in FILTERED_TYPES {
            let _ = self.filtered.get_or_create(&EventTypeLabel { event_type });
        }
        for c in Column::ALL {
            let _ = self
                .column_nulls
                .get_or_create(&ColumnLabel { column: c.name() });
            let _ = self
                .column_invalid
                .get_or_create(&ColumnLabel { column: c.name() });
        }
        for pair in Pair::ALL {
            for corrected in ["true", "false"] {
                let _ = self.mismatches.get_or_create(&MismatchLabels {
                    pair: pair.name(),
                    corrected,
                });
            }
        }
        for c in Correction::ALL {
            let _ = self.corrections.get_or_create(&CorrectionLabel {
                correction: c.name(),
            });
        }
    }

    /// Adds a batch's quality tally.
    pub fn add_tally(&self, t: &Tally) {
        for c in Column::ALL {
            let i = c as usize;
            if t.nulls[i] > 0 {
                let _ = self
                    .column_nulls
                    .get_or_create(&ColumnLabel { column: c.name() })
                    .inc_by(t.nulls[i]);
            }
            if t.invalid[i] > 0 {
                let _ = self
                    .column_invalid
                    .get_or_create(&ColumnLabel { column: c.name() })
                    .inc_by(t.invalid[i]);
            }
        }
        for p in Pair::ALL {
            for (corrected, label) in [(0, "false"), (1, "true")] {
                let n = t.mismatches[p as usize][corrected];
                if n > 0 {
                    let _ = self
                        .mismatches
                        .get_or_create(&MismatchLabels {
                            pair: p.name(),
                            corrected: label,
                        })
                        .inc_by(n);
                }
            }
        }
        for c in Correction::ALL {
            let n = t.corrections[c as usize];
            if n > 0 {
                let _ = self
                    .corrections
                    .get_or_create(&CorrectionLabel {
                        correction: c.name(),
                    })
                    .inc_by(n);
            }
        }
    }
}

/// The process's CPU time and its cgroup's CPU limit, read at each scrape ([`crate::cpu`]):
/// `impressions_worker_cpu_seconds_total` (every thread's, from the moment the worker became
/// ready: no series before, so a rate never holds the start-up), and
/// `impressions_worker_cpu_limit_cores` only while the cgroup has a limit, so that the
/// operator's `cpuFraction` query has no series (and the busy fraction is the processing
/// threads' alone) without one.
#[derive(Debug)]
pub struct CpuCollector {
    pub cgroup: Option<crate::cpu::CpuCgroup>,
    pub since_ready: std::sync::Arc<crate::cpu::SinceReady>,
    /// The events processed, sampled with the CPU time at each scrape for [`Self::idle`].
    pub processed: Counter,
    /// The fixed CPU, from the scrapes' samples: `impressions_worker_cpu_idle_cores` under a
    /// limit once measured ([`crate::idle_cpu`]).
    pub idle: std::sync::Arc<crate::idle_cpu::IdleCpu>,
    pub clock: std::time::Instant,
}

impl Collector for CpuCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some(seconds) = self.since_ready.seconds() {
            self.idle.observe(
                self.clock.elapsed().as_secs_f64(),
                seconds,
                self.processed.get() as f64,
            );
            let used = ConstCounter::new(seconds);
            used.encode(encoder.encode_descriptor(
                "cpu_seconds",
                "CPU seconds used by the worker process (all its threads) since it became ready",
                None,
                used.metric_type(),
            )?)?;
        }
        if let Some(cores) = self.cgroup.as_ref().and_then(|c| c.limit_cores()) {
            let limit = ConstGauge::new(cores);
            limit.encode(encoder.encode_descriptor(
                "cpu_limit_cores",
                "The CPU limit of the worker's cgroup in cores (quota / period); absent without a limit",
                None,
                limit.metric_type(),
            )?)?;
            if let Some(idle) = self.idle.cores(cores) {
                let idle = ConstGauge::new(idle);
                idle.encode(encoder.encode_descriptor(
                    "cpu_idle_cores",
                    "The CPU the worker process used over its newest stretch of at least 5 s without events (its fixed part), in cores; under a CPU limit, once measured",
                    None,
                    idle.metric_type(),
                )?)?;
            }
        }
        Ok(())
    }
}

/// Registers the [`CpuCollector`] of `cgroup` under the worker's prefix; `processed` is the
/// worker's processed-events counter. Returns the idle CPU it measures.
pub fn register_cpu(
    r: &mut Registry,
    cgroup: Option<crate::cpu::CpuCgroup>,
    since_ready: std::sync::Arc<crate::cpu::SinceReady>,
    processed: Counter,
) -> std::sync::Arc<crate::idle_cpu::IdleCpu> {
    let idle = std::sync::Arc::new(crate::idle_cpu::IdleCpu::default());
    r.sub_registry_with_prefix("impressions_worker")
        .register_collector(Box::new(CpuCollector {
            cgroup,
            since_ready,
            processed,
            idle: idle.clone(),
            clock: std::time::Instant::now(),
        }));
    idle
}

/// The text exposition of a registry.
pub fn encode(r: &Registry) -> String {
    let mut s = String::new();
    prometheus_client::encoding::text::encode(&mut s, r).expect("writing to a String cannot fail");
    s
}

/// The classic Prometheus text format (0.0.4) of an OpenMetrics exposition, for clients that do
/// not ask for OpenMetrics (curl, `promtool check metrics`): counter families are named with
/// their `_total` suffix, and `# UNIT` / `# EOF` lines are dropped.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut help: Option<&str> = None;
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest);
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let name = if kind == "counter" {
                format!("{name}_total")
            } else {
                name.to_owned()
            };
            if let Some(h) = help.take() {
                let text = h.split_once(' ').map(|x| x.1).unwrap_or("");
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
        } else if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests;
