//! The forecast's history from Prometheus (IO): the pipeline's arrival rate — its processed
//! rate plus the growth of its lag, from the policy's query templates — as one range query at
//! the forecast's bucket, within the Prometheus deadline (the adapter's breaker). The first
//! read covers the whole kept history; later ones only what is new, once per refit period
//! ([`refresh_seconds`]). The fit runs on a blocking thread, at most once per refit period.
//! Bucket, rate window and refresh follow the season: a compressed day is read as a real one.

use impressions_crds::policy::PrometheusQueries;

use super::{settings::Settings, tracker::Forecaster};
use crate::autoscale::{
    effective::duration_seconds,
    signals::{fleet_query::render, prometheus::PrometheusThroughput},
};

/// Seconds between two reads of a pipeline's history: before each fit (the refit period), at
/// least a bucket and at most five minutes — 300 s with the default day, 17.5 s with a day
/// compressed to 420 s.
pub fn refresh_seconds(s: &Settings) -> f64 {
    s.refit_seconds().clamp(s.step_seconds(), 300.0)
}

/// The PromQL of the arrival rate over buckets of `step` seconds: the processed rate plus the
/// lag's growth (a backlog that builds up arrived too). Each bucket's rate is over the bucket,
/// or over the policy's rate window when that is longer: a compressed season's buckets of a
/// second or two hold too few scrapes for a rate().
pub fn arrival_query(q: &PrometheusQueries, namespace: &str, pipeline: &str, step: f64) -> String {
    let seconds = step.max(duration_seconds(&q.rate_window)).max(1.0);
    let window = format!("{}s", seconds.ceil() as u64);
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
    if last.is_none_or(|l| now_unix - l >= refresh_seconds(f.settings())) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use impressions_crds::policy::PredictiveMode;

    fn season(seconds: f64) -> Settings {
        Settings {
            mode: PredictiveMode::Scale,
            min_history_seconds: 2.0 * seconds,
            max_error: 0.2,
            season_seconds: seconds,
        }
    }

    #[test]
    fn the_history_query_follows_the_season() {
        let q = PrometheusQueries::default();
        // The default day: 5-minute buckets, each a rate over its bucket, read every 5 minutes.
        let day = season(86_400.0);
        assert_eq!(day.step_seconds(), 300.0);
        assert_eq!(refresh_seconds(&day), 300.0);
        let query = arrival_query(&q, "ns", "p", day.step_seconds());
        assert!(
            query.contains("[300s]") && query.contains("[300s:]"),
            "{query}"
        );
        // A day compressed to 420 s: 1-second buckets, read before each of the 24 fits a
        // season, each a rate over the policy's window (1 s holds no two scrapes).
        let compressed = season(420.0);
        assert_eq!(compressed.step_seconds(), 1.0);
        assert_eq!(compressed.season_buckets(), 420);
        assert_eq!(refresh_seconds(&compressed), 17.5);
        let query = arrival_query(&q, "ns", "p", compressed.step_seconds());
        assert!(
            query.contains("[60s]") && query.contains("[60s:]"),
            "{query}"
        );
        let short = PrometheusQueries {
            rate_window: "15s".into(),
            ..PrometheusQueries::default()
        };
        let query = arrival_query(&short, "ns", "p", compressed.step_seconds());
        assert!(query.contains("[15s]"), "{query}");
    }
}
