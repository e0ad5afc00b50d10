//! Throughput from Prometheus through prometheus-http-query: the pipeline's processed rate and
//! its workers' busy fraction, from the ScalingPolicy's query templates.

use impressions_crds::policy::PrometheusQueries;

/// Processed events/s and busy fraction, each `None` when Prometheus has no (fresh) series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throughput {
    pub processed_rate: Option<f64>,
    pub busy_fraction: Option<f64>,
}

pub use crate::autoscale::model::HistoryPoint;

/// Reads throughput for one pipeline.
#[derive(Clone)]
pub struct PrometheusThroughput {
    client: prometheus_http_query::Client,
}

impl std::fmt::Debug for PrometheusThroughput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrometheusThroughput")
    }
}

/// Substitutes `{namespace}`, `{pipeline}` and `{window}` in a query template.
pub fn render(template: &str, namespace: &str, pipeline: &str, window: &str) -> String {
    template
        .replace("{namespace}", namespace)
        .replace("{pipeline}", pipeline)
        .replace("{window}", window)
}

impl PrometheusThroughput {
    pub fn new(url: &str) -> Result<Self, String> {
        Ok(PrometheusThroughput {
            client: prometheus_http_query::Client::try_from(url).map_err(|e| e.to_string())?,
        })
    }

    /// Queries both signals; an unreachable Prometheus is an error, an empty result `None`.
    pub async fn sample(
        &self,
        q: &PrometheusQueries,
        namespace: &str,
        pipeline: &str,
    ) -> Result<Throughput, String> {
        let one = |template: &str| {
            let query = render(template, namespace, pipeline, &q.rate_window);
            let client = self.client.clone();
            async move {
                let res = client
                    .query(query.as_str())
                    .get()
                    .await
                    .map_err(|e| format!("Prometheus: {e}"))?;
                Ok::<_, String>(
                    res.data()
                        .as_vector()
                        .and_then(|v| v.first())
                        .map(|s| s.sample().value())
                        .filter(|v| v.is_finite()),
                )
            }
        };
        let processed_rate = one(&q.processed_rate).await?;
        let busy_fraction = one(&q.busy_fraction).await?;
        Ok(Throughput {
            processed_rate,
            busy_fraction,
        })
    }

    /// The last `seconds` of the pipeline's processed rate, busy fraction, lag and worker count
    /// at `step`-second resolution (points where all four are known).
    pub async fn history(
        &self,
        q: &PrometheusQueries,
        namespace: &str,
        pipeline: &str,
        seconds: i64,
        step: f64,
    ) -> Result<Vec<HistoryPoint>, String> {
        let end = k8s_openapi::jiff::Timestamp::now().as_second();
        let start = end - seconds;
        let series = |template: &str| {
            let query = render(template, namespace, pipeline, &q.rate_window);
            let client = self.client.clone();
            async move {
                let res = client
                    .query_range(query.as_str(), start, end, step)
                    .get()
                    .await
                    .map_err(|e| format!("Prometheus: {e}"))?;
                let points: std::collections::BTreeMap<i64, f64> = res
                    .data()
                    .as_matrix()
                    .and_then(|m| m.first())
                    .map(|rv| {
                        rv.samples()
                            .iter()
                            .map(|s| (s.timestamp() as i64, s.value()))
                            .filter(|(_, v)| v.is_finite())
                            .collect()
                    })
                    .unwrap_or_default();
                Ok::<_, String>(points)
            }
        };
        let processed = series(&q.processed_rate).await?;
        let busy = series(&q.busy_fraction).await?;
        let lag = series(&q.lag).await?;
        let replicas = series(&q.replicas).await?;
        Ok(processed
            .iter()
            .filter_map(|(t, p)| {
                Some(HistoryPoint {
                    at: *t as f64,
                    processed_rate: *p,
                    busy_fraction: *busy.get(t)?,
                    lag: *lag.get(t)?,
                    replicas: *replicas.get(t)? as i32,
                })
            })
            .collect())
    }
}
