//! The operator's count of a pipeline's decisions by reason, from Prometheus
//! (`impressions_operator_scaling_decisions_total`): each counter's highest value within the
//! window, so that the counts of an operator that has stopped since (or of a pipeline deleted
//! since) are still shown. A counter counts from its operator's start; the counters of several
//! operator processes (a restart, a new leader) are added. The query has a deadline.

use std::{collections::BTreeMap, time::Duration};

use crate::{error::Error, format::columns};

/// The operator's counter of decisions (`operator/src/metrics.rs`).
pub const METRIC: &str = "impressions_operator_scaling_decisions_total";

/// Decisions of one reason.
#[derive(Debug, Clone, PartialEq)]
pub struct ReasonCount {
    pub reason: String,
    /// The counters' highest values within the window, added over the operator processes.
    pub total: f64,
}

/// The query: each counter's highest value within `window` (a Prometheus duration), summed by
/// reason.
pub fn query(namespace: &str, pipeline: &str, window: &str) -> String {
    format!(
        "sum by (reason) (max_over_time({METRIC}{{namespace=\"{}\",pipeline=\"{}\"}}[{window}]))",
        escape(namespace),
        escape(pipeline)
    )
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Asks Prometheus at `url`, each query within `deadline`.
pub async fn read(
    url: &str,
    namespace: &str,
    pipeline: &str,
    window: &str,
    deadline: Duration,
) -> Result<Vec<ReasonCount>, Error> {
    let fail = |why: String| Error::Prometheus {
        url: url.to_owned(),
        why,
    };
    let client = prometheus_http_query::Client::try_from(url).map_err(|e| fail(e.to_string()))?;
    let q = query(namespace, pipeline, window);
    let answer = tokio::time::timeout(deadline, client.query(q.as_str()).get())
        .await
        .map_err(|_| {
            fail(format!(
                "no answer within {} s (--request-timeout)",
                deadline.as_secs_f64()
            ))
        })?
        .map_err(|e| fail(format!("{q}: {e}")))?;
    let by_reason: BTreeMap<String, f64> = answer
        .data()
        .as_vector()
        .map(|v| {
            v.iter()
                .map(|s| {
                    (
                        s.metric().get("reason").cloned().unwrap_or_default(),
                        s.sample().value(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(by_reason
        .into_iter()
        .map(|(reason, total)| ReasonCount { reason, total })
        .collect())
}

/// The counts as a table, the most frequent reason first.
pub fn render(counts: &[ReasonCount], window: &str) -> String {
    if counts.is_empty() {
        return format!(
            "  no series of {METRIC} for this pipeline (is the operator scraped by this Prometheus?)\n"
        );
    }
    let mut sorted = counts.to_vec();
    sorted.sort_by(|a, b| b.total.total_cmp(&a.total).then(a.reason.cmp(&b.reason)));
    let mut rows = vec![vec![
        "REASON".to_owned(),
        format!("COUNTED (latest within {window})"),
    ]];
    for c in &sorted {
        rows.push(vec![c.reason.clone(), format!("{:.0}", c.total)]);
    }
    columns(&rows).lines().map(|l| format!("  {l}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_selects_the_pipeline_and_sums_by_reason() {
        assert_eq!(
            query("ads", "eu\"x", "1h"),
            "sum by (reason) (max_over_time(impressions_operator_scaling_decisions_total{namespace=\"ads\",pipeline=\"eu\\\"x\"}[1h]))"
        );
    }

    #[test]
    fn the_most_frequent_reason_comes_first() {
        let c = |reason: &str, total: f64| ReasonCount {
            reason: reason.into(),
            total,
        };
        let t = render(
            &[c("ScaleUpForBacklog", 2.0), c("HoldStabilizing", 14.0)],
            "1h",
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines,
            [
                "  REASON              COUNTED (latest within 1h)",
                "  HoldStabilizing     14",
                "  ScaleUpForBacklog   2",
            ]
        );
        assert!(render(&[], "1h").contains("no series"));
    }
}
