//! The archivers' evaluation loop: every policy interval, for each pipeline with an archive,
//! read the archivers' group on the sink topic (lag, committed offsets, the last commit) and
//! their throughput from Prometheus, decide with the workers' decision code, judge whether the
//! commits progress, remember, and trigger the pipeline's reconcile (which applies the count in
//! Auto mode and writes `status.archive`). Every mode is evaluated (the status and the
//! ArchiveHealthy condition need the readings); only Auto applies the decision. Reconciles
//! register what the loop needs; the loop does no Kubernetes IO.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use impressions_crds::{ImpressionPipeline, scaling::ScalingMode};
use kube::runtime::reflector::ObjectRef;
use tokio::sync::mpsc;

use super::{
    health::{self, Health, Progress},
    mark::{self, CommitMark},
    prometheus::ArchivePrometheus,
    signals::{ArchiveThroughput, signals},
};
use crate::autoscale::{
    decide::decide,
    evaluator::{CONCURRENCY, KAFKA_DEADLINE},
    history::History,
    model::{Decision, LagSample, Limits},
    rebuild,
    signals::kafka_lag::{GroupSample, LagSource, LagTarget},
};

/// What the loop needs to evaluate one pipeline's archivers, registered by its reconcile.
#[derive(Debug, Clone)]
pub struct ArchiveRegistration {
    pub namespace: String,
    pub name: String,
    pub mode: ScalingMode,
    /// The archivers' group on the sink topic.
    pub lag: LagTarget,
    /// The ScalingPolicy's rate window (`queries.rateWindow`).
    pub rate_window: String,
    /// The ScalingPolicy's limits with its own bounds (not the pipeline's worker bounds).
    pub policy: Limits,
    pub interval: Duration,
    /// Archivers applied now.
    pub replicas: i32,
    /// The archive's commit interval (seconds): commits are judged stalled after
    /// [`health::stall_after`] of it.
    pub commit_interval_seconds: f64,
}

/// The outcome of one evaluation of a pipeline's archivers.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchiveEvaluation {
    /// Archivers running when the evaluation was made.
    pub from: i32,
    pub decision: Decision,
    /// The group's lag on the sink topic (records not yet in the table).
    pub lag: Option<LagSample>,
    /// The sum of the group's committed offsets.
    pub committed_total: Option<i64>,
    pub last_commit: Option<CommitMark>,
    pub throughput: Option<ArchiveThroughput>,
    pub health: Health,
    /// Why signals are missing, when they are.
    pub problem: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    reg: Option<ArchiveRegistration>,
    history: History,
    in_flight: bool,
    last_started: Option<Instant>,
    /// (time, sum of the sink's end offsets) at the last good read: the input rate.
    last_end: Option<(f64, i64)>,
    progress: Progress,
    latest: Option<ArchiveEvaluation>,
    /// The history was rebuilt from Prometheus (or that was tried) after this operator started.
    rebuilt: bool,
}

/// Shared between the loop and the reconciles.
pub struct ArchiveEvaluator {
    lag: Arc<dyn LagSource>,
    prometheus: Option<ArchivePrometheus>,
    started: Instant,
    states: Mutex<HashMap<ObjectRef<ImpressionPipeline>, State>>,
}

impl std::fmt::Debug for ArchiveEvaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveEvaluator")
            .field("prometheus", &self.prometheus.is_some())
            .finish()
    }
}

impl ArchiveEvaluator {
    pub fn new(lag: Arc<dyn LagSource>, prometheus: Option<ArchivePrometheus>) -> Self {
        ArchiveEvaluator {
            lag,
            prometheus,
            started: Instant::now(),
            states: Mutex::default(),
        }
    }

    /// Registers (or updates) a pipeline's archivers; `None` removes them (no archive).
    pub fn register(&self, key: ObjectRef<ImpressionPipeline>, reg: Option<ArchiveRegistration>) {
        let mut states = self.states.lock().expect("archive lock");
        match reg {
            Some(r) => states.entry(key).or_default().reg = Some(r),
            None => {
                if let Some(r) = states.remove(&key).and_then(|s| s.reg) {
                    self.lag.forget(&r.lag);
                }
            }
        }
    }

    /// Forgets every pipeline not in `live` (deleted ones).
    pub fn retain(&self, live: &HashSet<ObjectRef<ImpressionPipeline>>) {
        let mut states = self.states.lock().expect("archive lock");
        let gone: Vec<_> = states
            .keys()
            .filter(|k| !live.contains(*k))
            .cloned()
            .collect();
        for k in gone {
            if let Some(r) = states.remove(&k).and_then(|s| s.reg) {
                self.lag.forget(&r.lag);
            }
        }
    }

    /// The latest evaluation of a pipeline's archivers.
    pub fn latest(&self, key: &ObjectRef<ImpressionPipeline>) -> Option<ArchiveEvaluation> {
        self.states
            .lock()
            .expect("archive lock")
            .get(key)
            .and_then(|s| s.latest.clone())
    }

    /// Runs forever: evaluates due pipelines, each in a task of its own (at most
    /// [`CONCURRENCY`] at once, one at a time per pipeline), and sends each evaluated one to
    /// `trigger`.
    pub async fn run(self: Arc<Self>, trigger: mpsc::Sender<ObjectRef<ImpressionPipeline>>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let slots = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
        loop {
            tick.tick().await;
            let due: Vec<_> = {
                let mut states = self.states.lock().expect("archive lock");
                states
                    .iter_mut()
                    .filter_map(|(k, s)| {
                        let r = s.reg.as_ref()?;
                        let due = !s.in_flight
                            && s.last_started.is_none_or(|t| t.elapsed() >= r.interval);
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

    async fn evaluate(&self, key: &ObjectRef<ImpressionPipeline>, reg: &ArchiveRegistration) {
        if let Some(st) = self.states.lock().expect("archive lock").get_mut(key) {
            st.last_started = Some(Instant::now());
        }
        let lag_src = self.lag.clone();
        let target = reg.lag.clone();
        let read = tokio::task::spawn_blocking(move || lag_src.sample_group(&target));
        let group = match tokio::time::timeout(KAFKA_DEADLINE, read).await {
            Ok(joined) => joined.unwrap_or_else(|e| Err(e.to_string())),
            Err(_) => Err(format!("Kafka did not answer within {KAFKA_DEADLINE:?}")),
        };
        let throughput = match &self.prometheus {
            Some(p) => p.sample(&reg.namespace, &reg.name, &reg.rate_window).await,
            None => Err("no Prometheus URL configured (--prometheus-url)".into()),
        };
        let now = self.started.elapsed().as_secs_f64();
        let partitions = group.as_ref().ok().map(|g| g.lag.partitions);
        let rebuilt = self.rebuild_once(key, reg, partitions, now).await;
        let mut states = self.states.lock().expect("archive lock");
        let st = states.entry(key.clone()).or_default();
        st.in_flight = false;
        if let Some(h) = rebuilt {
            st.history = h;
        }
        let (evaluation, end) = evaluate_once(
            reg,
            now,
            group,
            throughput,
            st.last_end,
            &mut st.history,
            &mut st.progress,
        );
        if end.is_some() {
            st.last_end = end;
        }
        tracing::debug!(pipeline = %key, reason = evaluation.decision.reason, archivers = evaluation.decision.replicas, message = %evaluation.decision.message, "archivers evaluated");
        st.latest = Some(evaluation);
    }
}

impl ArchiveEvaluator {
    /// After an operator (re)start, rebuilds the archivers' history from what Prometheus
    /// recorded of them, once, as the workers' is ([`crate::autoscale::rebuild`]): windows and
    /// cooldowns continue where the last operator left them.
    async fn rebuild_once(
        &self,
        key: &ObjectRef<ImpressionPipeline>,
        reg: &ArchiveRegistration,
        partitions: Option<i32>,
        now: f64,
    ) -> Option<History> {
        {
            let mut states = self.states.lock().expect("archive lock");
            let st = states.entry(key.clone()).or_default();
            if st.rebuilt {
                return None;
            }
            st.rebuilt = true;
        }
        let (prometheus, partitions) = (self.prometheus.as_ref()?, partitions?);
        let read = prometheus
            .history(
                &reg.namespace,
                &reg.name,
                &reg.rate_window,
                rebuild::span_seconds(&reg.policy),
                rebuild::step_seconds(reg.interval),
            )
            .await;
        match rebuild::from_read(read, partitions, &reg.policy, now) {
            Ok(Some((history, points))) => {
                tracing::info!(pipeline = %key, points, "rebuilt the archivers' scaling history from Prometheus");
                Some(history)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(pipeline = %key, error = %e, "cannot rebuild the archivers' scaling history");
                None
            }
        }
    }
}

/// One evaluation from its readings (pure but for the history and progress it updates):
/// the signals, the decision, the judgement of the commits. Returns it and the end offsets to
/// remember for the next input rate.
pub fn evaluate_once(
    reg: &ArchiveRegistration,
    now: f64,
    group: Result<GroupSample, String>,
    throughput: Result<ArchiveThroughput, String>,
    last_end: Option<(f64, i64)>,
    history: &mut History,
    progress: &mut Progress,
) -> (ArchiveEvaluation, Option<(f64, i64)>) {
    let mut problems = Vec::new();
    let group = group.map_err(|e| problems.push(e)).ok();
    let tp = throughput.map_err(|e| problems.push(e)).ok();
    let input_rate = match (&group, last_end) {
        (Some(g), Some((t0, e0))) if now > t0 => {
            Some(((g.lag.end_offsets - e0) as f64 / (now - t0)).max(0.0))
        }
        _ => None,
    };
    let s = signals(
        now,
        reg.replicas,
        group.as_ref(),
        input_rate,
        tp.as_ref(),
        reg.policy.max,
    );
    let mut decision = decide(&s, &reg.policy, history);
    // at most one archiver per sink partition (the decision's fallbacks included)
    decision.replicas = decision
        .replicas
        .min(s.partitions.max(1))
        .max(reg.policy.min.min(s.partitions.max(1)));
    history.record(
        now,
        s.lag,
        reg.replicas,
        &decision,
        reg.mode == ScalingMode::Auto,
    );
    let last_commit = group.as_ref().and_then(|g| mark::newest(&g.metadata));
    let lag_now = group.as_ref().map(|g| g.lag.total);
    if let Some(lag) = lag_now {
        progress.observe(now, last_commit.as_ref(), lag);
    }
    let health = health::judge(
        progress,
        now,
        lag_now,
        health::stall_after(reg.commit_interval_seconds),
    );
    if problems.is_empty() && tp.is_some_and(|t| t.processed.is_none() || t.busy.is_none()) {
        problems.push("Prometheus has no archiver series for the pipeline".into());
    }
    let end = group.as_ref().map(|g| (now, g.lag.end_offsets));
    (
        ArchiveEvaluation {
            from: reg.replicas,
            decision,
            committed_total: group.as_ref().map(|g| g.committed_total),
            lag: group.map(|g| g.lag),
            last_commit,
            throughput: tp,
            health,
            problem: (!problems.is_empty()).then(|| problems.join("; ")),
        },
        end,
    )
}

/// The archivers to apply: the decision in Auto mode, else `base` (the last desired count in
/// Recommend mode, one archiver in Manual and External modes); within the policy's bounds and
/// the sink's partitions (when known).
pub fn applied_archivers(
    mode: ScalingMode,
    latest: Option<&ArchiveEvaluation>,
    last_desired: Option<i32>,
    min: i32,
    max: i32,
) -> i32 {
    let partitions = latest
        .and_then(|e| e.lag.as_ref())
        .map_or(i32::MAX, |l| l.partitions.max(1));
    let within = |n: i32| n.clamp(min, max.max(min)).min(partitions).max(1);
    match (mode, latest) {
        (ScalingMode::Auto, Some(e)) => within(e.decision.replicas),
        (ScalingMode::Auto | ScalingMode::Recommend, _) => within(last_desired.unwrap_or(min)),
        (ScalingMode::Manual | ScalingMode::External, _) => 1,
    }
}
