//! Throughput from Prometheus through prometheus-http-query: each pipeline's processed rate,
//! its workers' busy fraction (the larger of their threads' busy time and the CPU they use of
//! their limit, [`super::busy`]) and their number, from the ScalingPolicy's query templates.
//!
//! The signals of every pipeline are read together: a refresher asks one query per signal for
//! all pipelines that share the same templates ([`fleet_query`]) every [`REFRESH`], and an
//! evaluation reads the latest answer. The number of queries does not grow with the number of
//! pipelines, and an evaluation never waits on a Prometheus that hangs.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use impressions_crds::policy::PrometheusQueries;

use super::{
    busy::busy_fraction,
    fleet_query::{self, PipelineId, render},
};

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

/// A circuit breaker shared by every query of one Prometheus. Open after a query that did not
/// answer in time; once [`OPEN_FOR`] has passed, one query (the probe) is let through while the
/// others still fail at once; the probe's answer closes it, its timeout opens it again.
#[derive(Debug, Default, Clone)]
pub struct Breaker(std::sync::Arc<std::sync::Mutex<BreakerState>>);

#[derive(Debug, Default)]
struct BreakerState {
    /// Open until then (`None`: closed).
    open_until: Option<tokio::time::Instant>,
    /// A probe is under way.
    probing: bool,
}

/// What a call may do.
#[derive(Debug, PartialEq)]
enum Pass {
    Closed,
    Probe,
    FailFast,
}

/// The same text on every failure: it becomes the MetricsAvailable message, and a text that
/// changed with each evaluation would rewrite the status each time.
fn hung_message() -> String {
    format!("Prometheus did not answer within {DEADLINE:?} (asked again every {OPEN_FOR:?})")
}

impl Breaker {
    fn pass(&self) -> Pass {
        let mut st = self.0.lock().expect("breaker lock");
        match st.open_until {
            None => Pass::Closed,
            Some(until) if tokio::time::Instant::now() < until || st.probing => Pass::FailFast,
            Some(_) => {
                st.probing = true;
                Pass::Probe
            }
        }
    }

    fn settle(&self, answered: bool) {
        let mut st = self.0.lock().expect("breaker lock");
        st.probing = false;
        st.open_until = (!answered).then(|| tokio::time::Instant::now() + OPEN_FOR);
    }

    /// Awaits `fut` for at most [`DEADLINE`]; while the breaker is open, fails at once.
    pub async fn call<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, prometheus_http_query::Error>>,
    ) -> Result<T, String> {
        let pass = self.pass();
        if pass == Pass::FailFast {
            return Err(hung_message());
        }
        // A probe dropped before its answer (its caller gave up) lets the next call probe.
        let mut guard = ProbeGuard(self, pass == Pass::Probe);
        let out = match tokio::time::timeout(DEADLINE, fut).await {
            Ok(r) => {
                // An answer, even an error, means Prometheus answers.
                if pass == Pass::Probe {
                    self.settle(true);
                }
                r.map_err(|e| format!("Prometheus: {e}"))
            }
            Err(_) => {
                self.settle(false);
                Err(hung_message())
            }
        };
        guard.1 = false;
        out
    }
}

/// Ends an abandoned probe.
struct ProbeGuard<'a>(&'a Breaker, bool);

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if self.1 {
            self.0.0.lock().expect("breaker lock").probing = false;
        }
    }
}

pub use crate::autoscale::model::HistoryPoint;

/// How often the refresher reads every pipeline's signals.
pub const REFRESH: Duration = Duration::from_secs(5);

/// A reading older than this is not used (the refresher is stuck or failing).
const MAX_AGE: Duration = Duration::from_secs(20);

/// The templates a group of pipelines shares: one query per signal answers the group.
type Templates = (String, String, String, String, String);

fn templates(q: &PrometheusQueries) -> Templates {
    (
        q.processed_rate.clone(),
        q.busy_fraction.clone(),
        q.cpu_fraction.clone(),
        q.replicas.clone(),
        q.rate_window.clone(),
    )
}

/// One pipeline's signals as of one refresh.
#[derive(Debug, Clone)]
struct Reading {
    at: Instant,
    result: Result<Throughput, String>,
}

/// The pipelines to read and their latest readings.
#[derive(Debug, Default)]
struct Board {
    wanted: Mutex<HashMap<PipelineId, Templates>>,
    readings: Mutex<HashMap<PipelineId, Reading>>,
    /// Counts finished refreshes.
    refreshed: tokio::sync::watch::Sender<u64>,
    wake: tokio::sync::Notify,
    running: std::sync::atomic::AtomicBool,
}

/// Reads every pipeline's throughput from one Prometheus.
#[derive(Clone)]
pub struct PrometheusThroughput {
    client: prometheus_http_query::Client,
    breaker: Breaker,
    board: Arc<Board>,
}

impl std::fmt::Debug for PrometheusThroughput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrometheusThroughput")
    }
}

impl PrometheusThroughput {
    pub fn new(url: &str) -> Result<Self, String> {
        Ok(PrometheusThroughput {
            client: prometheus_http_query::Client::try_from(url).map_err(|e| e.to_string())?,
            breaker: Breaker::default(),
            board: Arc::default(),
        })
    }

    /// The pipeline's signals from the latest refresh; an unreachable Prometheus is an error,
    /// a signal without series `None`. A pipeline seen for the first time (or whose templates
    /// changed) waits for the next refresh, which it starts at once, for at most two deadlines.
    pub async fn sample(
        &self,
        q: &PrometheusQueries,
        namespace: &str,
        pipeline: &str,
    ) -> Result<Throughput, String> {
        self.start_refresher();
        let id = (namespace.to_owned(), pipeline.to_owned());
        let mut refreshed = self.board.refreshed.subscribe();
        let changed = {
            let t = templates(q);
            let mut wanted = self.board.wanted.lock().expect("board lock");
            wanted.insert(id.clone(), t.clone()) != Some(t)
        };
        if changed {
            self.board.readings.lock().expect("board lock").remove(&id);
            self.board.wake.notify_one();
            let until = tokio::time::Instant::now() + 2 * DEADLINE + Duration::from_secs(1);
            while self.reading(&id).is_none()
                && tokio::time::timeout_at(until, refreshed.changed())
                    .await
                    .is_ok_and(|r| r.is_ok())
            {}
        }
        match self.reading(&id) {
            Some(r) if r.at.elapsed() <= MAX_AGE => r.result,
            Some(_) => Err(format!(
                "Prometheus signals not refreshed for over {MAX_AGE:?}"
            )),
            None => Err(format!(
                "Prometheus did not answer within {DEADLINE:?} (asked again every {OPEN_FOR:?})"
            )),
        }
    }

    fn reading(&self, id: &PipelineId) -> Option<Reading> {
        self.board
            .readings
            .lock()
            .expect("board lock")
            .get(id)
            .cloned()
    }

    /// Stops reading a pipeline (deleted, or no longer autoscaled).
    pub fn forget(&self, namespace: &str, pipeline: &str) {
        let id = (namespace.to_owned(), pipeline.to_owned());
        self.board.wanted.lock().expect("board lock").remove(&id);
        self.board.readings.lock().expect("board lock").remove(&id);
    }

    /// Pipelines whose signals are read.
    pub fn reading_for(&self) -> usize {
        self.board.wanted.lock().expect("board lock").len()
    }

    /// Starts the refresher on the current runtime, once.
    fn start_refresher(&self) {
        use std::sync::atomic::Ordering;
        if self.board.running.swap(true, Ordering::SeqCst) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                this.refresh().await;
                let _ = tokio::time::timeout(REFRESH, this.board.wake.notified()).await;
            }
        });
    }

    /// Reads every wanted pipeline's signals: per group of pipelines sharing templates and per
    /// chunk of [`fleet_query::CHUNK`] pipelines, one query per signal, all at once.
    async fn refresh(&self) {
        let mut groups: HashMap<Templates, Vec<PipelineId>> = HashMap::new();
        for (id, t) in self.board.wanted.lock().expect("board lock").iter() {
            groups.entry(t.clone()).or_default().push(id.clone());
        }
        let reads = groups.iter().flat_map(|(t, ids)| {
            ids.chunks(fleet_query::CHUNK)
                .map(move |chunk| self.read_chunk(t, chunk))
        });
        let results = futures::future::join_all(reads).await;
        let at = Instant::now();
        {
            let mut readings = self.board.readings.lock().expect("board lock");
            for (id, result) in results.into_iter().flatten() {
                readings.insert(id, Reading { at, result });
            }
        }
        self.board.refreshed.send_modify(|n| *n += 1);
    }

    async fn read_chunk(
        &self,
        (processed, busy, cpu, replicas, window): &Templates,
        ids: &[PipelineId],
    ) -> Vec<(PipelineId, Result<Throughput, String>)> {
        let one = |template: &str| {
            let query = fleet_query::union(template, window, ids);
            let (client, breaker) = (self.client.clone(), self.breaker.clone());
            async move {
                let res = breaker.call(client.query(query.as_str()).post()).await?;
                Ok::<_, String>(fleet_query::by_pipeline(res.data()))
            }
        };
        // At once: a Prometheus that hangs costs one deadline, not one per query.
        match futures::try_join!(one(processed), one(busy), one(cpu), one(replicas)) {
            Ok((p, b, c, w)) => ids
                .iter()
                .map(|id| {
                    let t = Throughput {
                        processed_rate: p.get(id).copied(),
                        busy_fraction: busy_fraction(b.get(id).copied(), c.get(id).copied()),
                        workers: w.get(id).copied().filter(|w| *w >= 1.0),
                    };
                    (id.clone(), Ok(t))
                })
                .collect(),
            Err(e) => ids.iter().map(|id| (id.clone(), Err(e.clone()))).collect(),
        }
    }

    /// The points of `query` from `start` to `end` (Unix seconds) every `step` seconds, as
    /// (Unix seconds, value), within the breaker's deadline.
    pub async fn range(
        &self,
        query: &str,
        start: i64,
        end: i64,
        step: f64,
    ) -> Result<Vec<(f64, f64)>, String> {
        let res = self
            .breaker
            .call(self.client.query_range(query, start, end, step).get())
            .await?;
        Ok(res
            .data()
            .as_matrix()
            .and_then(|m| m.first())
            .map(|rv| {
                rv.samples()
                    .iter()
                    .map(|s| (s.timestamp(), s.value()))
                    .filter(|(_, v)| v.is_finite())
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The last `seconds` of the pipeline's processed rate, busy fraction (with the CPU fraction
    /// where it has points), lag and worker count at `step`-second resolution (points where all
    /// four are known).
    pub async fn history(
        &self,
        q: &PrometheusQueries,
        namespace: &str,
        pipeline: &str,
        seconds: i64,
        step: f64,
    ) -> Result<Vec<HistoryPoint>, String> {
        let r = |template: &str| render(template, namespace, pipeline, &q.rate_window);
        let queries = HistoryQueries {
            processed: r(&q.processed_rate),
            busy: r(&q.busy_fraction),
            cpu: Some(r(&q.cpu_fraction)),
            lag: r(&q.lag),
            replicas: r(&q.replicas),
        };
        read_history(&self.client, &self.breaker, &queries, seconds, step).await
    }
}

/// The queries (rendered for one fleet) whose series make a scaling history: the workers' from
/// the ScalingPolicy's templates, the archivers' from theirs.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryQueries {
    pub processed: String,
    pub busy: String,
    /// The CPU used of the limit, raising the busy fraction where it has points.
    pub cpu: Option<String>,
    pub lag: String,
    pub replicas: String,
}

/// The last `seconds` of `queries` at `step`-second resolution, all read at once within the
/// breaker's deadline; the points where processed rate, busy fraction, lag and replicas are
/// all known ([`join_history`]).
pub async fn read_history(
    client: &prometheus_http_query::Client,
    breaker: &Breaker,
    queries: &HistoryQueries,
    seconds: i64,
    step: f64,
) -> Result<Vec<HistoryPoint>, String> {
    let end = k8s_openapi::jiff::Timestamp::now().as_second();
    let start = end - seconds;
    let series = |query: Option<&str>| {
        let query = query.map(str::to_owned);
        let (client, breaker) = (client.clone(), breaker.clone());
        async move {
            let Some(query) = query else {
                return Ok(Series::new());
            };
            let res = breaker
                .call(client.query_range(query.as_str(), start, end, step).get())
                .await?;
            let points: Series = res
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
    let (processed, busy, cpu, lag, replicas) = futures::try_join!(
        series(Some(&queries.processed)),
        series(Some(&queries.busy)),
        series(queries.cpu.as_deref()),
        series(Some(&queries.lag)),
        series(Some(&queries.replicas))
    )?;
    Ok(join_history(&processed, &busy, &cpu, &lag, &replicas))
}

/// One series of a range query: Unix seconds → value.
pub type Series = std::collections::BTreeMap<i64, f64>;

/// The history points at the processed rate's timestamps where busy fraction (or CPU
/// fraction), lag and replicas have a value too. Pure.
pub fn join_history(
    processed: &Series,
    busy: &Series,
    cpu: &Series,
    lag: &Series,
    replicas: &Series,
) -> Vec<HistoryPoint> {
    processed
        .iter()
        .filter_map(|(t, p)| {
            Some(HistoryPoint {
                at: *t as f64,
                processed_rate: *p,
                busy_fraction: busy_fraction(busy.get(t).copied(), cpu.get(t).copied())?,
                lag: *lag.get(t)?,
                replicas: *replicas.get(t)? as i32,
            })
        })
        .collect()
}

#[cfg(test)]
mod history_tests {
    use super::*;

    #[test]
    fn a_point_needs_every_series_but_the_cpu() {
        let s = |v: &[(i64, f64)]| v.iter().copied().collect::<Series>();
        let points = join_history(
            &s(&[(10, 100.0), (20, 110.0), (30, 120.0)]),
            &s(&[(10, 0.2), (20, 0.3), (30, 0.4)]),
            &s(&[(20, 0.5)]),
            &s(&[(10, 5.0), (30, 7.0)]),
            &s(&[(10, 2.0), (20, 2.0), (30, 3.0)]),
        );
        assert_eq!(
            points,
            [
                HistoryPoint {
                    at: 10.0,
                    processed_rate: 100.0,
                    busy_fraction: 0.2,
                    lag: 5.0,
                    replicas: 2
                },
                HistoryPoint {
                    at: 30.0,
                    processed_rate: 120.0,
                    busy_fraction: 0.4,
                    lag: 7.0,
                    replicas: 3
                },
            ],
            "20 has no lag"
        );
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

    #[tokio::test(start_paused = true)]
    async fn after_the_open_period_one_probe_goes_through_and_the_others_fail_at_once() {
        let b = Breaker::default();
        let hung = || std::future::pending::<Result<(), prometheus_http_query::Error>>();
        assert!(b.call(hung()).await.is_err());
        tokio::time::sleep(OPEN_FOR).await;
        // The probe hangs; meanwhile another query fails at once.
        let probe = tokio::spawn({
            let b = b.clone();
            async move { b.call(hung()).await }
        });
        tokio::task::yield_now().await;
        let t0 = tokio::time::Instant::now();
        let other = b
            .call(async { Ok::<_, prometheus_http_query::Error>(()) })
            .await;
        assert!(
            other.is_err(),
            "not let through while the probe is under way"
        );
        assert_eq!(t0.elapsed(), std::time::Duration::ZERO);
        assert!(
            probe.await.unwrap().is_err(),
            "the probe timed out: open again"
        );
        assert!(
            b.call(async { Ok::<_, prometheus_http_query::Error>(()) })
                .await
                .is_err()
        );
        // The next probe answers: closed.
        tokio::time::sleep(OPEN_FOR).await;
        assert!(
            b.call(async { Ok::<_, prometheus_http_query::Error>(()) })
                .await
                .is_ok()
        );
        assert!(
            b.call(async { Ok::<_, prometheus_http_query::Error>(()) })
                .await
                .is_ok()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_probe_lets_the_next_call_probe() {
        let b = Breaker::default();
        let hung = || std::future::pending::<Result<(), prometheus_http_query::Error>>();
        assert!(b.call(hung()).await.is_err());
        tokio::time::sleep(OPEN_FOR).await;
        // The caller of the probe gives up at once (as try_join! does when a sibling fails).
        let _ = tokio::time::timeout(std::time::Duration::from_millis(1), b.call(hung())).await;
        assert!(
            b.call(async { Ok::<_, prometheus_http_query::Error>(()) })
                .await
                .is_ok(),
            "the next call is the probe, not failed forever"
        );
    }
}
