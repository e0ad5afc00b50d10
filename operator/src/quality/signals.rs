//! Where the counts come from: Prometheus, through prometheus-http-query. One set of five
//! `sum by (namespace, pipeline, …) (increase(…[window]))` queries answers for every pipeline
//! at once, so the cost does not grow with the number of pipelines.

use std::collections::HashMap;

use futures::future::BoxFuture;

use super::assess::{WindowCounts, span};

/// A pipeline as Prometheus labels its workers' series: (namespace, pipeline).
pub type PipelineId = (String, String);

/// The counts could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("Prometheus: {0}")]
    Prometheus(#[from] prometheus_http_query::Error),
    #[error("Prometheus did not answer within {0:?}")]
    Timeout(std::time::Duration),
}

/// Reads every pipeline's counts over a window.
pub trait QualitySource: Send + Sync {
    /// The counts over the last `window_seconds` of every pipeline Prometheus has worker series
    /// of; a pipeline without series is absent.
    fn counts(
        &self,
        window_seconds: u32,
    ) -> BoxFuture<'_, Result<HashMap<PipelineId, WindowCounts>, SourceError>>;
}

/// Which field of [`WindowCounts`] a query fills, and by which label.
#[derive(Debug, Clone, Copy)]
enum Field {
    Processed,
    Filtered,
    Rejected,
    Nulls,
    Invalid,
    Mismatches,
}

/// The worker metric and the label each field is summed by (besides namespace and pipeline).
const QUERIES: [(Field, &str, Option<&str>); 6] = [
    (
        Field::Processed,
        "impressions_worker_events_processed_total",
        None,
    ),
    (
        Field::Filtered,
        "impressions_worker_events_filtered_total",
        None,
    ),
    (
        Field::Rejected,
        "impressions_worker_events_rejected_total",
        Some("reason"),
    ),
    (
        Field::Nulls,
        "impressions_worker_column_nulls_total",
        Some("column"),
    ),
    (
        Field::Invalid,
        "impressions_worker_column_invalid_total",
        Some("column"),
    ),
    (
        Field::Mismatches,
        "impressions_worker_column_mismatches_total",
        Some("pair"),
    ),
];

/// The PromQL of one field.
fn query(metric: &str, by: Option<&str>, window_seconds: u32) -> String {
    let by = by.map(|l| format!(", {l}")).unwrap_or_default();
    format!(
        "sum by (namespace, pipeline{by}) (increase({metric}{{pipeline!=\"\"}}[{}]))",
        span(window_seconds)
    )
}

/// Adds one result series to the counts.
fn add(
    counts: &mut HashMap<PipelineId, WindowCounts>,
    field: Field,
    labels: &HashMap<String, String>,
    by: Option<&str>,
    value: f64,
) {
    let (Some(ns), Some(p)) = (labels.get("namespace"), labels.get("pipeline")) else {
        return;
    };
    if !value.is_finite() {
        return;
    }
    let c = counts.entry((ns.clone(), p.clone())).or_default();
    let key = by.and_then(|l| labels.get(l)).cloned().unwrap_or_default();
    match field {
        Field::Processed => c.processed += value,
        Field::Filtered => c.filtered += value,
        Field::Rejected => *c.rejected.entry(key).or_default() += value,
        Field::Nulls => *c.nulls.entry(key).or_default() += value,
        Field::Invalid => *c.invalid.entry(key).or_default() += value,
        Field::Mismatches => *c.mismatches.entry(key).or_default() += value,
    }
}

/// The Prometheus implementation.
#[derive(Clone)]
pub struct PrometheusQuality {
    client: prometheus_http_query::Client,
}

impl std::fmt::Debug for PrometheusQuality {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrometheusQuality")
    }
}

impl PrometheusQuality {
    pub fn new(url: &str) -> Result<Self, SourceError> {
        Ok(PrometheusQuality {
            client: prometheus_http_query::Client::try_from(url)?,
        })
    }

    async fn read(
        &self,
        window_seconds: u32,
    ) -> Result<HashMap<PipelineId, WindowCounts>, SourceError> {
        let mut counts = HashMap::new();
        for (field, metric, by) in QUERIES {
            let q = query(metric, by, window_seconds);
            let deadline = crate::autoscale::signals::prometheus::DEADLINE;
            let res = tokio::time::timeout(deadline, self.client.query(q.as_str()).get())
                .await
                .map_err(|_| SourceError::Timeout(deadline))??;
            for s in res.data().as_vector().into_iter().flatten() {
                add(&mut counts, field, s.metric(), by, s.sample().value());
            }
        }
        Ok(counts)
    }
}

impl QualitySource for PrometheusQuality {
    fn counts(
        &self,
        window_seconds: u32,
    ) -> BoxFuture<'_, Result<HashMap<PipelineId, WindowCounts>, SourceError>> {
        Box::pin(self.read(window_seconds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_sum_per_pipeline_and_label_over_the_window() {
        assert_eq!(
            query("impressions_worker_column_nulls_total", Some("column"), 300),
            "sum by (namespace, pipeline, column) (increase(impressions_worker_column_nulls_total{pipeline!=\"\"}[5m]))"
        );
        assert_eq!(
            query("impressions_worker_events_processed_total", None, 20),
            "sum by (namespace, pipeline) (increase(impressions_worker_events_processed_total{pipeline!=\"\"}[20s]))"
        );
    }

    #[test]
    fn series_land_in_their_pipeline_and_field() {
        let labels = |kv: &[(&str, &str)]| -> HashMap<String, String> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let mut c = HashMap::new();
        let a = labels(&[("namespace", "n"), ("pipeline", "a")]);
        add(&mut c, Field::Processed, &a, None, 100.0);
        add(&mut c, Field::Filtered, &a, None, 20.0);
        let col = labels(&[("namespace", "n"), ("pipeline", "a"), ("column", "videoId")]);
        add(&mut c, Field::Nulls, &col, Some("column"), 3.0);
        add(&mut c, Field::Nulls, &col, Some("column"), f64::NAN);
        add(
            &mut c,
            Field::Processed,
            &labels(&[("pipeline", "x")]),
            None,
            9.0,
        );
        let pair = labels(&[
            ("namespace", "n"),
            ("pipeline", "b"),
            ("pair", "entityId/videoId"),
        ]);
        add(&mut c, Field::Mismatches, &pair, Some("pair"), 4.0);
        assert_eq!(c.len(), 2, "a series without a namespace is dropped");
        let a = &c[&("n".to_owned(), "a".to_owned())];
        assert_eq!(
            (a.processed, a.filtered, a.nulls["videoId"]),
            (100.0, 20.0, 3.0)
        );
        assert_eq!(
            c[&("n".to_owned(), "b".to_owned())].mismatches["entityId/videoId"],
            4.0
        );
    }

    #[test]
    fn the_worker_exposes_the_queried_metrics_and_labels() {
        let m = impressions_worker::metrics::Metrics::default();
        let mut r = prometheus_client::registry::Registry::default();
        m.register(&mut r);
        let text = impressions_worker::metrics::to_prometheus_text(
            &impressions_worker::metrics::encode(&r),
        );
        for (_, metric, by) in QUERIES {
            let line = text
                .lines()
                .find(|l| l.starts_with(metric))
                .unwrap_or_else(|| panic!("the worker exposes no {metric}"));
            if let Some(label) = by {
                assert!(line.contains(&format!("{label}=\"")), "{line}");
            }
        }
        // The column label values are the API's column names.
        for c in impressions_worker::quality::Column::ALL {
            assert_eq!(
                impressions_crds::quality::Column::from_name(c.name()).map(|c| c.name()),
                Some(c.name())
            );
        }
    }
}
