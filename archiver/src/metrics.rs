//! Every metric the archiver exposes, named in one place (`impressions_archiver_*`, Prometheus
//! conventions). `busy_seconds_total` and `consumer_lag` mean what the worker's do, so the
//! operator's estimate reads an archiver fleet the way it reads a worker fleet.

use std::sync::atomic::AtomicU64;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

/// Outcomes of a commit attempt (label values of `commits_total`).
pub const COMMIT_OUTCOMES: [&str; 4] = ["committed", "conflict", "stale", "failed"];
/// Reasons a record is dead-lettered (label values of `records_dead_lettered_total`).
pub const DEAD_LETTER_REASONS: [&str; 5] = crate::rows::RowError::REASONS;

/// Every metric by the name Prometheus stores its series under; a unit test checks it against
/// what [`Metrics::register`] registers.
pub const NAMES: &[&str] = &[
    "impressions_archiver_records_consumed_total",
    "impressions_archiver_records_committed_total",
    "impressions_archiver_records_dead_lettered_total",
    "impressions_archiver_dead_letters_truncated_total",
    "impressions_archiver_commits_total",
    "impressions_archiver_commit_seconds",
    "impressions_archiver_commit_files",
    "impressions_archiver_commit_bytes",
    "impressions_archiver_files_committed_total",
    "impressions_archiver_bytes_committed_total",
    "impressions_archiver_small_files_committed_total",
    "impressions_archiver_table_data_files",
    "impressions_archiver_table_average_file_bytes",
    "impressions_archiver_last_snapshot_id",
    "impressions_archiver_last_commit_timestamp_seconds",
    "impressions_archiver_busy_seconds_total",
    "impressions_archiver_consumer_lag",
    "impressions_archiver_pending_records",
    "impressions_archiver_assigned_partitions",
    "impressions_archiver_rewinds_total",
];

/// The archiver's metrics.
#[derive(Debug)]
pub struct Metrics {
    pub consumed: Counter,
    pub committed: Counter,
    /// Records sent to the dead-letter topic (their offsets covered by the next commit).
    pub dead_lettered: Family<ReasonLabel, Counter>,
    /// Dead letters whose payload was cut to `deadLetter.maxPayloadBytes`.
    pub dead_letters_truncated: Counter,
    pub commits: Family<OutcomeLabel, Counter>,
    pub commit_seconds: Histogram,
    pub commit_files: Histogram,
    pub commit_bytes: Histogram,
    pub files: Counter,
    pub bytes: Counter,
    /// Data files committed below a quarter of the target size: the crate cannot rewrite
    /// (compact) files yet, so their growth is reported.
    pub small_files: Counter,
    pub table_data_files: Gauge,
    pub table_average_file_bytes: Gauge,
    pub last_snapshot_id: Gauge,
    pub last_commit_timestamp: Gauge,
    pub busy_seconds: Counter<f64, AtomicU64>,
    pub consumer_lag: Gauge,
    /// Records taken and not yet committed (waiting for the commit interval): not a backlog.
    pub pending_records: Gauge,
    pub assigned_partitions: Gauge,
    /// Seeks back to the table's offsets (a stale commit dropped, an assignment).
    pub rewinds: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            consumed: Counter::default(),
            committed: Counter::default(),
            dead_lettered: Family::default(),
            dead_letters_truncated: Counter::default(),
            commits: Family::default(),
            commit_seconds: Histogram::new([
                0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            commit_files: Histogram::new([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]),
            commit_bytes: Histogram::new([1e4, 1e5, 1e6, 4e6, 16e6, 64e6, 256e6, 1e9]),
            files: Counter::default(),
            bytes: Counter::default(),
            small_files: Counter::default(),
            table_data_files: Gauge::default(),
            table_average_file_bytes: Gauge::default(),
            last_snapshot_id: Gauge::default(),
            last_commit_timestamp: Gauge::default(),
            busy_seconds: Counter::default(),
            consumer_lag: Gauge::default(),
            pending_records: Gauge::default(),
            assigned_partitions: Gauge::default(),
            rewinds: Counter::default(),
        }
    }
}

impl Metrics {
    /// Registers every metric; label families are pre-filled with every value.
    pub fn register(&self, r: &mut Registry) {
        let p = r.sub_registry_with_prefix("impressions_archiver");
        p.register(
            "records_consumed",
            "Records read from the Avro topic",
            self.consumed.clone(),
        );
        p.register(
            "records_committed",
            "Records in data files committed to the table",
            self.committed.clone(),
        );
        p.register(
            "records_dead_lettered",
            "Records sent to the dead-letter topic (not decodable, or not fitting the table), by reason",
            self.dead_lettered.clone(),
        );
        p.register(
            "dead_letters_truncated",
            "Dead letters whose payload was cut to deadLetter.maxPayloadBytes",
            self.dead_letters_truncated.clone(),
        );
        p.register(
            "commits",
            "Commit attempts, by outcome",
            self.commits.clone(),
        );
        p.register(
            "commit_seconds",
            "Seconds from closing the data files to the catalog accepting the snapshot",
            self.commit_seconds.clone(),
        );
        p.register(
            "commit_files",
            "Data files per commit",
            self.commit_files.clone(),
        );
        p.register(
            "commit_bytes",
            "Data file bytes per commit",
            self.commit_bytes.clone(),
        );
        p.register(
            "files_committed",
            "Data files committed",
            self.files.clone(),
        );
        p.register(
            "bytes_committed",
            "Data file bytes committed",
            self.bytes.clone(),
        );
        p.register(
            "small_files_committed",
            "Data files committed below a quarter of the target file size (no compaction yet)",
            self.small_files.clone(),
        );
        p.register(
            "table_data_files",
            "Data files in the table after this archiver's last commit",
            self.table_data_files.clone(),
        );
        p.register(
            "table_average_file_bytes",
            "Average data file size in the table after this archiver's last commit",
            self.table_average_file_bytes.clone(),
        );
        p.register(
            "last_snapshot_id",
            "Id of the snapshot of this archiver's last commit",
            self.last_snapshot_id.clone(),
        );
        p.register(
            "last_commit_timestamp_seconds",
            "Unix time of this archiver's last commit",
            self.last_commit_timestamp.clone(),
        );
        p.register(
            "busy_seconds",
            "Seconds spent decoding, writing and committing (not waiting for input)",
            self.busy_seconds.clone(),
        );
        p.register(
            "consumer_lag",
            "Records of the owned partitions not yet taken (high watermark minus position)",
            self.consumer_lag.clone(),
        );
        p.register(
            "pending_records",
            "Records taken and not yet committed to the table (they wait for the commit)",
            self.pending_records.clone(),
        );
        p.register(
            "assigned_partitions",
            "Partitions assigned to this archiver",
            self.assigned_partitions.clone(),
        );
        p.register(
            "rewinds",
            "Seeks back to the table's offsets (stale commit dropped or partitions assigned)",
            self.rewinds.clone(),
        );
        for outcome in COMMIT_OUTCOMES {
            let _ = self.commits.get_or_create(&OutcomeLabel { outcome });
        }
        for reason in DEAD_LETTER_REASONS {
            let _ = self.dead_lettered.get_or_create(&ReasonLabel { reason });
        }
    }

    pub fn commit_outcome(&self, outcome: &'static str) {
        self.commits.get_or_create(&OutcomeLabel { outcome }).inc();
    }
}

/// The OpenMetrics text of a registry.
pub fn encode(r: &Registry) -> String {
    let mut s = String::new();
    prometheus_client::encoding::text::encode(&mut s, r).expect("writing to a String cannot fail");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_what_is_registered() {
        let m = Metrics::default();
        let mut r = Registry::default();
        m.register(&mut r);
        let text = encode(&r);
        let mut families: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| {
                let (name, kind) = l.split_once(' ').unwrap();
                if kind == "counter" {
                    format!("{name}_total")
                } else {
                    name.to_string()
                }
            })
            .collect();
        families.sort();
        let mut names: Vec<String> = NAMES.iter().map(|s| s.to_string()).collect();
        names.sort();
        assert_eq!(families, names);
        for reason in DEAD_LETTER_REASONS {
            assert!(text.contains(&format!("reason=\"{reason}\"")));
        }
    }
}
