//! The archivers' throughput from Prometheus: one query per pipeline and evaluation answers
//! every signal (each tagged with a `signal` label), through the same deadline and circuit
//! breaker as the workers' signals ([`crate::autoscale::signals::prometheus::Breaker`]).
//!
//! The archivers' series carry the `namespace` and `pipeline` target labels as the workers' do
//! (their pods have the pipeline label). Their names are the archiver's
//! (`archiver/src/metrics.rs`, `NAMES`).

use prometheus_http_query::response::Data;

use super::signals::ArchiveThroughput;
use crate::autoscale::{
    model::HistoryPoint,
    signals::{
        fleet_query::render,
        prometheus::{Breaker, HistoryQueries, read_history},
    },
};

/// The label that names the signal in the answer.
const LABEL: &str = "impressions_signal";

/// Each signal and its template (`{namespace}`, `{pipeline}`, `{window}` as the ScalingPolicy's
/// queries): the archivers' counterparts of the workers' processed rate, busy fraction and
/// count, the records waiting for a commit, and the commits that failed (a `stale` one is the
/// fencing at work after a rebalance, not a failure).
pub const QUERIES: [(&str, &str); 5] = [
    (
        "processed",
        "sum(rate(impressions_archiver_records_consumed_total{namespace=\"{namespace}\",pipeline=\"{pipeline}\"}[{window}]))",
    ),
    (
        "busy",
        "avg(rate(impressions_archiver_busy_seconds_total{namespace=\"{namespace}\",pipeline=\"{pipeline}\"}[{window}]))",
    ),
    (
        "archivers",
        "count(impressions_archiver_busy_seconds_total{namespace=\"{namespace}\",pipeline=\"{pipeline}\"})",
    ),
    (
        "pending",
        "sum(impressions_archiver_pending_records{namespace=\"{namespace}\",pipeline=\"{pipeline}\"})",
    ),
    (
        "failed",
        "sum(increase(impressions_archiver_commits_total{namespace=\"{namespace}\",pipeline=\"{pipeline}\",outcome=\"failed\"}[{window}]))",
    ),
];

/// The archivers' backlog over time (records of their partitions not yet taken: the group's
/// lag less what waits for a commit, [`super::signals::backlog`]), for the history's rebuild.
pub const LAG: &str =
    "sum(impressions_archiver_consumer_lag{namespace=\"{namespace}\",pipeline=\"{pipeline}\"})";

fn template(signal: &str) -> &'static str {
    QUERIES
        .iter()
        .find(|(s, _)| *s == signal)
        .map(|(_, t)| *t)
        .expect("a signal of QUERIES")
}

/// The series of a pipeline's archivers whose history the decision needs after an operator
/// restart: processed rate, busy fraction, backlog, archivers reporting.
pub fn history_queries(namespace: &str, pipeline: &str, window: &str) -> HistoryQueries {
    let r = |t: &str| render(t, namespace, pipeline, window);
    HistoryQueries {
        processed: r(template("processed")),
        busy: r(template("busy")),
        cpu: None,
        lag: r(LAG),
        replicas: r(template("archivers")),
    }
}

/// The one query of a pipeline.
pub fn query(namespace: &str, pipeline: &str, window: &str) -> String {
    QUERIES
        .iter()
        .map(|(signal, template)| {
            format!(
                "label_replace(({}), \"{LABEL}\", \"{signal}\", \"\", \"\")",
                render(template, namespace, pipeline, window)
            )
        })
        .collect::<Vec<_>>()
        .join(" or ")
}

/// The signals in an answer (a signal without a finite sample is `None`).
pub fn read(data: &Data) -> ArchiveThroughput {
    let mut t = ArchiveThroughput::default();
    for s in data.as_vector().into_iter().flatten() {
        let v = s.sample().value();
        if !v.is_finite() {
            continue;
        }
        let slot = match s.metric().get(LABEL).map(String::as_str) {
            Some("processed") => &mut t.processed,
            Some("busy") => &mut t.busy,
            Some("archivers") => &mut t.archivers,
            Some("pending") => &mut t.pending,
            Some("failed") => &mut t.failed_commits,
            _ => continue,
        };
        slot.get_or_insert(v);
    }
    t
}

/// Reads the archivers' throughput of pipelines from one Prometheus.
#[derive(Clone)]
pub struct ArchivePrometheus {
    client: prometheus_http_query::Client,
    breaker: Breaker,
}

impl std::fmt::Debug for ArchivePrometheus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ArchivePrometheus")
    }
}

impl ArchivePrometheus {
    pub fn new(url: &str) -> Result<Self, String> {
        Ok(ArchivePrometheus {
            client: prometheus_http_query::Client::try_from(url).map_err(|e| e.to_string())?,
            breaker: Breaker::default(),
        })
    }

    /// The pipeline's archivers' signals, within the breaker's deadline.
    pub async fn sample(
        &self,
        namespace: &str,
        pipeline: &str,
        window: &str,
    ) -> Result<ArchiveThroughput, String> {
        let q = query(namespace, pipeline, window);
        let res = self
            .breaker
            .call(self.client.query(q.as_str()).post())
            .await?;
        Ok(read(res.data()))
    }

    /// The last `seconds` of the pipeline's archivers' history at `step`-second resolution.
    pub async fn history(
        &self,
        namespace: &str,
        pipeline: &str,
        window: &str,
        seconds: i64,
        step: f64,
    ) -> Result<Vec<HistoryPoint>, String> {
        let queries = history_queries(namespace, pipeline, window);
        read_history(&self.client, &self.breaker, &queries, seconds, step).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_reads_the_archivers_series() {
        let q = history_queries("ns", "eu", "1m");
        assert!(q.processed.starts_with("sum(rate(impressions_archiver_records_consumed_total{namespace=\"ns\",pipeline=\"eu\"}[1m]"), "{q:?}");
        assert!(
            q.busy.contains("impressions_archiver_busy_seconds_total"),
            "{q:?}"
        );
        assert!(
            q.lag
                .starts_with("sum(impressions_archiver_consumer_lag{namespace=\"ns\""),
            "{q:?}"
        );
        assert!(
            q.replicas
                .starts_with("count(impressions_archiver_busy_seconds_total"),
            "{q:?}"
        );
        assert_eq!(q.cpu, None, "the archivers export no CPU limit series");
    }

    #[test]
    fn one_query_answers_every_signal() {
        let q = query("ns", "eu", "1m");
        assert_eq!(q.matches(" or ").count(), 4);
        assert!(
            q.contains(
                "impressions_archiver_busy_seconds_total{namespace=\"ns\",pipeline=\"eu\"}[1m]"
            ),
            "{q}"
        );
        let data: Data = serde_json::from_value(serde_json::json!({
            "resultType": "vector",
            "result": [
                {"metric": {"impressions_signal": "processed"}, "value": [1.0, "900"]},
                {"metric": {"impressions_signal": "busy"}, "value": [1.0, "0.45"]},
                {"metric": {"impressions_signal": "archivers"}, "value": [1.0, "2"]},
                {"metric": {"impressions_signal": "pending"}, "value": [1.0, "NaN"]},
                {"metric": {"other": "x"}, "value": [1.0, "7"]}
            ]
        }))
        .unwrap();
        assert_eq!(
            read(&data),
            ArchiveThroughput {
                processed: Some(900.0),
                busy: Some(0.45),
                archivers: Some(2.0),
                pending: None,
                failed_commits: None,
            }
        );
    }
}
