//! The evaluation loop: every policy interval, for each pipeline in Auto or Recommend mode,
//! sample Kafka lag and Prometheus throughput, decide, remember, and trigger the pipeline's
//! reconcile (which applies the decision in Auto mode and writes it to status). Reconciles
//! register what the loop needs (targets, policy, current replicas); the loop does no
//! Kubernetes IO.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use impressions_crds::{ImpressionPipeline, policy::PrometheusQueries, scaling::ScalingMode};
use kube::runtime::reflector::ObjectRef;
use tokio::sync::mpsc;

use super::{
    ahead::ahead,
    decide::decide,
    forecast::{Forecaster, Settings, View, source},
    history::History,
    model::LagSample,
    model::{Evaluation, Limits, Signals},
    planned::{Planned, Surge},
    signals::{
        kafka_lag::{LagSource, LagTarget},
        prometheus::{PrometheusThroughput, Throughput},
    },
};

/// What the loop needs to evaluate one pipeline, registered by its reconcile.
#[derive(Debug, Clone)]
pub struct Registration {
    pub namespace: String,
    pub name: String,
    pub mode: ScalingMode,
    pub lag: LagTarget,
    pub queries: PrometheusQueries,
    pub policy: Limits,
    pub interval: Duration,
    pub replicas: i32,
    /// The policy's predictive scaling.
    pub predictive: Settings,
    /// The pipeline's planned surges.
    pub surges: Vec<Surge>,
}

/// A signal's last successful read, which stands in for a failed read while it is younger than
/// the policy's `staleAfterSeconds`.
#[derive(Debug, Clone)]
struct LastGood<T> {
    at: f64,
    value: T,
}

/// The deadline of a pipeline's Kafka lag read (all its requests together).
pub const KAFKA_DEADLINE: Duration = Duration::from_secs(10);
/// Pipelines evaluated at once.
pub const CONCURRENCY: usize = 32;

#[derive(Debug, Default)]
struct State {
    reg: Option<Registration>,
    history: History,
    /// An evaluation of this pipeline is under way (a slow one does not start twice).
    in_flight: bool,
    /// When the last evaluation started.
    last_started: Option<Instant>,
    last_lag: Option<LastGood<LagSample>>,
    last_throughput: Option<LastGood<Throughput>>,
    last_end: Option<(f64, i64)>,
    latest: Option<Evaluation>,
    /// The history was rebuilt from Prometheus (or that was tried) after this operator started.
    rebuilt: bool,
    /// The arrival forecast (predictive scaling on) and when its history was last read.
    forecaster: Option<Forecaster>,
    forecast_read: Option<f64>,
    planned: Planned,
}

/// Shared between the loop and the reconciles.
pub struct Evaluator {
    lag: Arc<dyn LagSource>,
    /// Observes the seconds between two evaluations of a pipeline.
    intervals: Option<prometheus_client::metrics::histogram::Histogram>,
    prometheus: Option<PrometheusThroughput>,
    started: Instant,
    states: Mutex<HashMap<ObjectRef<ImpressionPipeline>, State>>,
}

impl std::fmt::Debug for Evaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evaluator")
            .field("prometheus", &self.prometheus.is_some())
            .finish()
    }
}

impl Evaluator {
    pub fn new(lag: Arc<dyn LagSource>, prometheus: Option<PrometheusThroughput>) -> Self {
        Evaluator {
            lag,
            intervals: None,
            prometheus,
            started: Instant::now(),
            states: Mutex::default(),
        }
    }

    /// Observes the seconds between two evaluations of each pipeline into `h`.
    pub fn with_interval_histogram(
        mut self,
        h: prometheus_client::metrics::histogram::Histogram,
    ) -> Self {
        self.intervals = Some(h);
        self
    }

    /// Registers (or updates) a pipeline; `None` removes it (Manual/External mode).
    pub fn register(&self, key: ObjectRef<ImpressionPipeline>, reg: Option<Registration>) {
        let mut states = self.states.lock().expect("scaler lock");
        match reg {
            Some(r) => states.entry(key).or_default().reg = Some(r),
            None => {
                if let Some(st) = states.remove(&key)
                    && let Some(r) = st.reg
                {
                    self.forget(&r);
                }
            }
        }
    }

    /// Forgets every pipeline not in `live` (deleted ones): their state, history and lag
    /// client. Returns the forgotten keys.
    pub fn retain(
        &self,
        live: &std::collections::HashSet<ObjectRef<ImpressionPipeline>>,
    ) -> Vec<ObjectRef<ImpressionPipeline>> {
        let mut states = self.states.lock().expect("scaler lock");
        let gone: Vec<_> = states
            .keys()
            .filter(|k| !live.contains(*k))
            .cloned()
            .collect();
        for k in &gone {
            if let Some(st) = states.remove(k)
                && let Some(r) = st.reg
            {
                self.forget(&r);
            }
        }
        gone
    }

    /// Drops what the signal sources keep for a pipeline: its lag client (with its last
    /// pipeline) and its place in the Prometheus refresh.
    fn forget(&self, r: &Registration) {
        self.lag.forget(&r.lag);
        if let Some(p) = &self.prometheus {
            p.forget(&r.namespace, &r.name);
        }
    }

    /// The pipelines the loop keeps state for.
    pub fn tracked(&self) -> usize {
        self.states.lock().expect("scaler lock").len()
    }

    /// The latest evaluation of a pipeline.
    pub fn latest(&self, key: &ObjectRef<ImpressionPipeline>) -> Option<Evaluation> {
        self.states
            .lock()
            .expect("scaler lock")
            .get(key)
            .and_then(|s| s.latest.clone())
    }

    /// Runs forever: evaluates due pipelines, each in a task of its own (at most
    /// [`CONCURRENCY`] at once, one at a time per pipeline), and sends each evaluated one to
    /// `trigger`. A pipeline whose signals hang holds alone; the others are evaluated on time.
    pub async fn run(self: Arc<Self>, trigger: mpsc::Sender<ObjectRef<ImpressionPipeline>>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let slots = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
        loop {
            tick.tick().await;
            let due: Vec<(ObjectRef<ImpressionPipeline>, Registration)> = {
                let mut states = self.states.lock().expect("scaler lock");
                states
                    .iter_mut()
                    .filter_map(|(k, s)| {
                        let r = s.reg.as_ref()?;
                        // Due an interval after the last evaluation *started*: evaluations
                        // follow the policy interval, not the interval plus their own time.
                        let due = !s.in_flight
                            && s.last_started.is_none_or(|t| t.elapsed() >= r.interval)
                            && matches!(r.mode, ScalingMode::Auto | ScalingMode::Recommend);
                        due.then(|| {
                            s.in_flight = true;
                            (k.clone(), r.clone())
                        })
                    })
                    .collect()
            };
            for (key, reg) in due {
                let (this, trigger, slots) = (self.clone(), trigger.clone(), slots.clone());
                tokio::spawn(async move {
                    let Ok(_slot) = slots.acquire_owned().await else {
                        return;
                    };
                    this.evaluate(&key, &reg).await;
                    let _ = trigger.send(key).await;
                });
            }
        }
    }

    async fn evaluate(&self, key: &ObjectRef<ImpressionPipeline>, reg: &Registration) {
        {
            let mut states = self.states.lock().expect("scaler lock");
            let st = states.entry(key.clone()).or_default();
            if let (Some(h), Some(t)) = (&self.intervals, st.last_started) {
                h.observe(t.elapsed().as_secs_f64());
            }
            st.last_started = Some(Instant::now());
        }
        let lag_src = self.lag.clone();
        let target = reg.lag.clone();
        let read = tokio::task::spawn_blocking(move || lag_src.sample(&target));
        let lag = match tokio::time::timeout(KAFKA_DEADLINE, read).await {
            Ok(joined) => joined.unwrap_or_else(|e| Err(e.to_string())),
            Err(_) => Err(format!("Kafka did not answer within {KAFKA_DEADLINE:?}")),
        };
        let throughput = match &self.prometheus {
            Some(p) => p.sample(&reg.queries, &reg.namespace, &reg.name).await,
            None => Err("no Prometheus URL configured (--prometheus-url)".into()),
        };
        let now_unix = k8s_openapi::jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
        let forecast = self.forecast(key, reg, now_unix).await;
        // The evaluation's time is when its signals were read, not when it started: a read that
        // waited out a hung dependency describes the moment it returned.
        let now = self.started.elapsed().as_secs_f64();
        let rebuilt = self
            .rebuild_once(key, reg, lag.as_ref().ok().map(|l| l.partitions), now)
            .await;
        let stale_after = reg.policy.stale_after_seconds;
        // Both sources' problems are told (a Kafka authentication failure is not hidden behind a
        // missing Prometheus).
        let mut problems = Vec::new();
        let mut states = self.states.lock().expect("scaler lock");
        let st = states.entry(key.clone()).or_default();
        st.in_flight = false;
        if let Some(h) = rebuilt {
            st.history = h;
        }
        // A failed read is stood in for by the last good one while it is fresh enough; older,
        // the signal counts as missing (and the decision holds).
        let lag_fresh = lag.is_ok();
        let tp_fresh = throughput.is_ok();
        let lag = fresh_or_last(lag, &mut st.last_lag, now, stale_after, &mut problems);
        let tp = fresh_or_last(
            throughput,
            &mut st.last_throughput,
            now,
            stale_after,
            &mut problems,
        );
        let mut problem = (!problems.is_empty()).then(|| problems.join("; "));
        // A stand-in's end offsets do not move: no input rate from it.
        let input_rate = match (&lag, st.last_end) {
            (Some(l), Some((t0, e0))) if now > t0 && lag_fresh => {
                Some(((l.end_offsets - e0) as f64 / (now - t0)).max(0.0))
            }
            _ => None,
        };
        let signals = Signals {
            now,
            replicas: reg.replicas,
            partitions: lag.as_ref().map_or(reg.policy.max, |l| l.partitions),
            lag: lag.as_ref().map(|l| l.total as f64),
            input_rate,
            processed_rate: tp.and_then(|t| t.processed_rate),
            busy_fraction: tp.and_then(|t| t.busy_fraction),
            workers: tp.and_then(|t| t.workers),
            lag_stale: lag.is_some() && !lag_fresh,
            throughput_stale: tp.is_some() && !tp_fresh,
        };
        if problem.is_none()
            && (signals.processed_rate.is_none() || signals.busy_fraction.is_none())
        {
            problem = Some("Prometheus has no worker series for the pipeline".into());
        }
        let decision = decide(&signals, &reg.policy, &st.history);
        let floor = st
            .planned
            .floor(&reg.surges, now_unix, prescale_lead(reg), reg.replicas);
        let (decision, forecast) = ahead(
            decision,
            &signals,
            &reg.policy,
            &st.history,
            forecast.as_ref().map(|(s, v)| (s, v)),
            floor.as_ref(),
        );
        st.history.record(
            now,
            signals.lag.filter(|_| lag_fresh),
            reg.replicas,
            &decision,
            reg.mode == ScalingMode::Auto,
        );
        if let Some(l) = lag.as_ref().filter(|_| lag_fresh) {
            st.last_end = Some((now, l.end_offsets));
        }
        tracing::debug!(pipeline = %key, reason = decision.reason, replicas = decision.replicas, message = %decision.message, "evaluated");
        st.latest = Some(Evaluation {
            from: reg.replicas,
            decision,
            lag,
            processed_rate: signals.processed_rate,
            problem,
            forecast,
        });
    }

    /// The arrival forecast one lead time ahead, when the policy asks for one: the pipeline's
    /// history read from Prometheus when a refresh is due, the model refitted when due.
    async fn forecast(
        &self,
        key: &ObjectRef<ImpressionPipeline>,
        reg: &Registration,
        now_unix: f64,
    ) -> Option<(Settings, View)> {
        let off = reg.predictive.mode == impressions_crds::policy::PredictiveMode::Off;
        let (f, mut last) = {
            let mut states = self.states.lock().expect("scaler lock");
            let st = states.entry(key.clone()).or_default();
            if off {
                st.forecaster = None;
                return None;
            }
            let f = match st.forecaster.take() {
                Some(mut f) => {
                    f.reconfigure(reg.predictive);
                    f
                }
                None => Forecaster::new(reg.predictive),
            };
            (f, st.forecast_read)
        };
        let lead = forecast_lead(reg);
        let f = match &self.prometheus {
            Some(p) => {
                let src = source::HistorySource {
                    prometheus: p,
                    queries: &reg.queries,
                    namespace: &reg.namespace,
                    pipeline: &reg.name,
                };
                source::refresh(src, f, &mut last, now_unix, lead).await
            }
            None => {
                let mut f = f;
                f.failed("no Prometheus URL configured (--prometheus-url)".into());
                f
            }
        };
        let view = f.view(now_unix, lead, reg.policy.down.stabilization_seconds);
        let mut states = self.states.lock().expect("scaler lock");
        let st = states.entry(key.clone()).or_default();
        st.forecaster = Some(f);
        st.forecast_read = last;
        Some((reg.predictive, view))
    }
}

/// How far ahead a planned surge is pre-scaled: a pod's start and a rebalance.
pub fn prescale_lead(reg: &Registration) -> f64 {
    reg.policy.pod_start_seconds + reg.policy.rebalance_cost_seconds
}

/// How far ahead the forecast looks: a pod's start, a rebalance and one evaluation.
pub fn forecast_lead(reg: &Registration) -> f64 {
    prescale_lead(reg) + reg.interval.as_secs_f64()
}

/// The read if it succeeded (remembered as the last good one); else the last good one while it
/// is younger than `stale_after` seconds (the failure is told, with the age of what stands in);
/// else `None` (the failure is told).
fn fresh_or_last<T: Clone>(
    read: Result<T, String>,
    last: &mut Option<LastGood<T>>,
    now: f64,
    stale_after: f64,
    problems: &mut Vec<String>,
) -> Option<T> {
    match read {
        Ok(v) => {
            *last = Some(LastGood {
                at: now,
                value: v.clone(),
            });
            Some(v)
        }
        Err(e) => match last.as_ref().filter(|l| now - l.at <= stale_after) {
            Some(l) => {
                tracing::debug!(error = %e, age = now - l.at, "using the last good read");
                Some(l.value.clone())
            }
            None => {
                problems.push(e);
                None
            }
        },
    }
}

impl Evaluator {
    /// After an operator (re)start, rebuilds the pipeline's history from what Prometheus
    /// recorded, once, so that windows and cooldowns continue where the last operator left them.
    async fn rebuild_once(
        &self,
        key: &ObjectRef<ImpressionPipeline>,
        reg: &Registration,
        partitions: Option<i32>,
        now: f64,
    ) -> Option<History> {
        {
            let mut states = self.states.lock().expect("scaler lock");
            let st = states.entry(key.clone()).or_default();
            if st.rebuilt {
                return None;
            }
            st.rebuilt = true;
        }
        let (prometheus, partitions) = (self.prometheus.as_ref()?, partitions?);
        let read = prometheus
            .history(
                &reg.queries,
                &reg.namespace,
                &reg.name,
                super::rebuild::span_seconds(&reg.policy),
                super::rebuild::step_seconds(reg.interval),
            )
            .await;
        match super::rebuild::from_read(read, partitions, &reg.policy, now) {
            Ok(Some((history, points))) => {
                tracing::info!(pipeline = %key, points, "rebuilt the scaling history from Prometheus");
                Some(history)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(pipeline = %key, error = %e, "cannot rebuild the scaling history");
                None
            }
        }
    }
}

/// The replicas to apply: the decision in Auto mode, the base count otherwise (Recommend only
/// reports), always within the bounds.
pub fn applied_replicas(
    mode: ScalingMode,
    latest: Option<&Evaluation>,
    base: i32,
    min: i32,
    max: i32,
) -> i32 {
    match (mode, latest) {
        (ScalingMode::Auto, Some(e)) => e.decision.replicas.clamp(min, max),
        _ => base,
    }
}

#[cfg(test)]
mod tests;
