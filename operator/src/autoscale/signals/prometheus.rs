//! Throughput from Prometheus through prometheus-http-query: the pipeline's processed rate and
//! its workers' busy fraction, from the ScalingPolicy's query templates.

use impressions_crds::policy::PrometheusQueries;

/// Processed events/s, busy fraction and the number of workers reporting, each `None` when
/// Prometheus has no (fresh) series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throughput {
    pub processed_rate: Option<f64>,
    pub busy_fraction: Option<f64>,
    /// Workers whose series Prometheus has (the `replicas` query): the capacity estimate divides
    /// by these, not by the Deployment's count (pending or crash-looping pods report nothing).
    pub workers: Option<f64>,
}

/// The deadline of one Prometheus query: a Prometheus that accepts connections and never
/// answers must not hold the evaluation of any pipeline.
pub const DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// Awaits `fut` for at most [`DEADLINE`].
pub async fn within_deadline<T>(
    fut: impl std::future::Future<Output = Result<T, prometheus_http_query::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(DEADLINE, fut).await {
        Ok(r) => r.map_err(|e| format!("Prometheus: {e}")),
        Err(_) => Err(format!("Prometheus did not answer within {DEADLINE:?}")),
    }
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
                let res = within_deadline(client.query(query.as_str()).get()).await?;
                Ok::<_, String>(
                    res.data()
                        .as_vector()
                        .and_then(|v| v.first())
                        .map(|s| s.sample().value())
                        .filter(|v| v.is_finite()),
                )
            }
        };
        // At once: a Prometheus that hangs costs one deadline, not one per query.
        let (processed_rate, busy_fraction, workers) = futures::try_join!(
            one(&q.processed_rate),
            one(&q.busy_fraction),
            one(&q.replicas)
        )?;
        let workers = workers.filter(|w| *w >= 1.0);
        Ok(Throughput {
            processed_rate,
            busy_fraction,
            workers,
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
                let res =
                    within_deadline(client.query_range(query.as_str(), start, end, step).get())
                        .await?;
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
        let (processed, busy, lag, replicas) = futures::try_join!(
            series(&q.processed_rate),
            series(&q.busy_fraction),
            series(&q.lag),
            series(&q.replicas)
        )?;
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
