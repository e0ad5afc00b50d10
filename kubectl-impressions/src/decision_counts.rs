//! The operator's count of a pipeline's decisions by reason, from Prometheus
//! (`impressions_operator_scaling_decisions_total`): since the operator started counting, and
//! within the last window. Each query has a deadline.

use std::{collections::BTreeMap, time::Duration};

use crate::{error::Error, format::columns};

/// The operator's counter of decisions (`operator/src/metrics.rs`).
pub const METRIC: &str = "impressions_operator_scaling_decisions_total";

/// Decisions of one reason.
#[derive(Debug, Clone, PartialEq)]
pub struct ReasonCount {
    pub reason: String,
    /// The counter's value now (since the operator counting it started).
    pub total: f64,
    /// Its increase within the window.
    pub recent: f64,
}

/// The two queries: the counter now and its increase within `window` (a Prometheus duration),
/// each summed by reason over the operator's replicas.
pub fn queries(namespace: &str, pipeline: &str, window: &str) -> (String, String) {
    let selector = format!(
        "{METRIC}{{namespace=\"{}\",pipeline=\"{}\"}}",
        escape(namespace),
        escape(pipeline)
    );
    (
        format!("sum by (reason) ({selector})"),
        format!("sum by (reason) (increase({selector}[{window}]))"),
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
    let (total, recent) = queries(namespace, pipeline, window);
    let ask = |q: String| {
        let client = client.clone();
        async move {
            let answer = tokio::time::timeout(deadline, client.query(q.as_str()).get())
                .await
                .map_err(|_| {
                    format!(
                        "no answer within {} s (--request-timeout)",
                        deadline.as_secs_f64()
                    )
                })?
                .map_err(|e| format!("{q}: {e}"))?;
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
            Ok::<_, String>(by_reason)
        }
    };
    let (total, recent) = tokio::try_join!(ask(total), ask(recent)).map_err(fail)?;
    Ok(total
        .into_iter()
        .map(|(reason, total)| ReasonCount {
            recent: recent.get(&reason).copied().unwrap_or(0.0),
            reason,
            total,
        })
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
        "SINCE THE OPERATOR STARTED".to_owned(),
        format!("LAST {window}"),
    ]];
    for c in &sorted {
        rows.push(vec![
            c.reason.clone(),
            format!("{:.0}", c.total),
            format!("{:.0}", c.recent),
        ]);
    }
    columns(&rows).lines().map(|l| format!("  {l}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queries_select_the_pipeline_and_sum_by_reason() {
        let (total, recent) = queries("ads", "eu\"x", "1h");
        assert_eq!(
            total,
            "sum by (reason) (impressions_operator_scaling_decisions_total{namespace=\"ads\",pipeline=\"eu\\\"x\"})"
        );
        assert_eq!(
            recent,
            "sum by (reason) (increase(impressions_operator_scaling_decisions_total{namespace=\"ads\",pipeline=\"eu\\\"x\"}[1h]))"
        );
    }

    #[test]
    fn the_most_frequent_reason_comes_first() {
        let c = |reason: &str, total: f64, recent: f64| ReasonCount {
            reason: reason.into(),
            total,
            recent,
        };
        let t = render(
            &[
                c("ScaleUpForBacklog", 2.0, 1.0),
                c("HoldStabilizing", 14.0, 3.2),
            ],
            "1h",
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines,
            [
                "  REASON              SINCE THE OPERATOR STARTED   LAST 1h",
                "  HoldStabilizing     14                           3",
                "  ScaleUpForBacklog   2                            1",
            ]
        );
        assert!(render(&[], "1h").contains("no series"));
    }
}
