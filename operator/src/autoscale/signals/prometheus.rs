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

/// After a query that did not answer in time, how long every query fails at once instead of
/// waiting out its deadline: a hung Prometheus costs one deadline per this period for the whole
/// fleet, not one per pipeline and evaluation.
pub const OPEN_FOR: std::time::Duration = std::time::Duration::from_secs(15);

/// A circuit breaker shared by every query of one Prometheus.
#[derive(Debug, Default, Clone)]
pub struct Breaker(std::sync::Arc<std::sync::Mutex<Option<std::time::Instant>>>);

impl Breaker {
    /// Seconds the breaker stays open, if it is.
    fn open_for(&self) -> Option<std::time::Duration> {
        let until = (*self.0.lock().expect("breaker lock"))?;
        until.checked_duration_since(std::time::Instant::now())
    }

    fn trip(&self) {
        *self.0.lock().expect("breaker lock") = Some(std::time::Instant::now() + OPEN_FOR);
    }

    /// Awaits `fut` for at most [`DEADLINE`]; while the breaker is open, fails at once.
    pub async fn call<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, prometheus_http_query::Error>>,
    ) -> Result<T, String> {
        // The same text on every failure: it becomes the MetricsAvailable message, and a text
        // that changed with each evaluation would rewrite the status each time.
        if self.open_for().is_some() {
            return Err(format!(
                "Prometheus did not answer within {DEADLINE:?} (asked again every {OPEN_FOR:?})"
            ));
        }
        match tokio::time::timeout(DEADLINE, fut).await {
            Ok(r) => r.map_err(|e| format!("Prometheus: {e}")),
            Err(_) => {
                self.trip();
                Err(format!(
                    "Prometheus did not answer within {DEADLINE:?} (asked again every {OPEN_FOR:?})"
                ))
            }
        }
    }
}

pub use crate::autoscale::model::HistoryPoint;

/// Reads throughput for one pipeline.
#[derive(Clone)]
pub struct PrometheusThroughput {
    client: prometheus_http_query::Client,
    breaker: Breaker,
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
            breaker: Breaker::default(),
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
            let (client, breaker) = (self.client.clone(), self.breaker.clone());
            async move {
                let res = breaker.call(client.query(query.as_str()).get()).await?;
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
            let (client, breaker) = (self.client.clone(), self.breaker.clone());
            async move {
                let res = breaker
                    .call(client.query_range(query.as_str(), start, end, step).get())
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

#[cfg(test)]
mod breaker_tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_query_that_hangs_opens_the_breaker_for_everyone() {
        let b = Breaker::default();
        let hung = std::future::pending::<Result<(), prometheus_http_query::Error>>();
        let t0 = tokio::time::Instant::now();
        assert!(b.call(hung).await.unwrap_err().contains("did not answer"));
        assert_eq!(t0.elapsed(), DEADLINE);
        // Open: the next query fails at once, without waiting.
        let t1 = tokio::time::Instant::now();
        let e = b
            .clone()
            .call(async { Ok::<_, prometheus_http_query::Error>(()) })
            .await;
        assert_eq!(
            e.unwrap_err(),
            "Prometheus did not answer within 5s (asked again every 15s)",
            "the same text each time: it becomes the status message"
        );
        assert_eq!(t1.elapsed(), std::time::Duration::ZERO);
    }
}
