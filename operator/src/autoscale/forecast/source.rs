//! The forecast's history from Prometheus (IO): the pipeline's arrival rate — its processed
//! rate plus the growth of its lag, from the policy's query templates — as one range query at
//! the forecast's bucket, within the Prometheus deadline (the adapter's breaker). The first
//! read covers the whole kept history; later ones only what is new, at most every
//! [`refresh_seconds`]. The fit runs on a blocking thread, at most once per refit period.

use impressions_crds::policy::PrometheusQueries;

use super::tracker::Forecaster;
use crate::autoscale::signals::{fleet_query::render, prometheus::PrometheusThroughput};

/// Seconds between two reads of a pipeline's history: a bucket, at least a minute and at most
/// five.
pub fn refresh_seconds(f: &Forecaster) -> f64 {
    f.settings().step_seconds().clamp(60.0, 300.0)
}

/// The PromQL of the arrival rate over buckets of `step` seconds: the processed rate plus the
/// lag's growth (a backlog that builds up arrived too).
pub fn arrival_query(q: &PrometheusQueries, namespace: &str, pipeline: &str, step: f64) -> String {
    let window = format!("{}s", step.max(1.0) as u64);
    let processed = render(&q.processed_rate, namespace, pipeline, &window);
    let lag = render(&q.lag, namespace, pipeline, &window);
    format!("({processed}) + (deriv(({lag})[{window}:]) or vector(0))")
}

/// Where a pipeline's history is read from.
#[derive(Debug, Clone, Copy)]
pub struct HistorySource<'a> {
    pub prometheus: &'a PrometheusThroughput,
    pub queries: &'a PrometheusQueries,
    pub namespace: &'a str,
    pub pipeline: &'a str,
}

/// Reads what is new of the pipeline's history into `f` when a refresh is due at `now_unix`
/// (`last` is when the last read was made; updated), then refits when due. Failures are kept
/// in the forecaster (its view says why there is no forecast).
pub async fn refresh(
    src: HistorySource<'_>,
    mut f: Forecaster,
    last: &mut Option<f64>,
    now_unix: f64,
    lead: f64,
) -> Forecaster {
    if last.is_none_or(|l| now_unix - l >= refresh_seconds(&f)) {
        *last = Some(now_unix);
        let step = f.settings().step_seconds();
        let end = ((now_unix / step).floor() * step) as i64;
        let kept = f.settings().capacity_buckets() as f64 * step;
        let from = if f.history_seconds() > 0.0 {
            f.history_end() - step
        } else {
            end as f64 - kept
        };
        let start = from.max(end as f64 - kept) as i64;
        let query = arrival_query(src.queries, src.namespace, src.pipeline, step);
        match src.prometheus.range(&query, start, end, step).await {
            Ok(points) => f.insert_bucket_ends(&points),
            Err(e) => f.failed(e),
        }
    }
    if f.refit_due(now_unix, lead) {
        let settings = *f.settings();
        // Milliseconds to tens of them: on a blocking thread, not the runtime's.
        let fitted = tokio::task::spawn_blocking(move || {
            let mut f = f;
            let _ = f.refit(now_unix, lead);
            f
        })
        .await;
        return match fitted {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "the forecast's fit panicked");
                Forecaster::new(settings)
            }
        };
    }
    f
}
