//! `operator simulate`: replays a traffic trace through a simulated cluster under several
//! autoscalers — the project's own decision code, KEDA+HPA, the Flink autoscaler's decision and
//! static provisioning — all driving the same actuator (one Deployment of workers, the same
//! cooperative rebalance pause), with the Flink autoscaler as deployed (a job restart per
//! rescale) as an extra row. Each baseline runs over a grid of its settings, defaults included;
//! its frontier of replica-hours against seconds over the lag SLO is reported, and its headline
//! is the cheapest setting with 0 s over the SLO. The physical limits are the clairvoyant
//! oracles ([`oracle`]); each policy's efficiency is the partition-granular oracle's
//! replica-hours over its own. Deterministic.

pub mod bench;
pub mod frontier;
pub mod grid;
pub mod model;
pub mod oracle;
pub mod plot;
pub mod replay;
pub mod scalers;
pub mod traces;

use serde::Serialize;

pub use frontier::{FrontierPoint, frontier, headline};
pub use grid::{Setting, flink_grid, keda_grid, ours_targets};
use model::{Cluster, ModelConfig, Tick};
use scalers::{Autoscaler, Flink, Ours, Static};

/// The outcome of one autoscaler on one trace.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// What the row is (ours, a baseline's default, its cheapest SLO-clean setting…).
    pub role: String,
    pub policy: String,
    pub replica_hours: f64,
    pub seconds_over_slo: u64,
    pub max_lag_events: f64,
    /// The largest age of the oldest unprocessed event.
    pub max_lag_seconds: f64,
    pub scaling_actions: u32,
    /// Scaling actions per simulated day.
    pub actions_per_day: f64,
    /// Load changes of the trace (the rate at least 1.5× or at most 2/3 of a minute before).
    pub load_changes: u32,
    /// Scaling actions within 30 minutes after a load change, per load change (none when the
    /// trace has none); the actions that follow a slow daily swing are in `actions_per_day`.
    pub actions_per_load_change: Option<f64>,
    /// The partition-granular oracle's replica-hours over this policy's (1 = the physical
    /// limit at the partition count).
    pub efficiency: f64,
    /// The fluid oracle's replica-hours over this policy's.
    pub efficiency_fluid: f64,
    /// Mean seconds from a load change until lag is under the SLO with no action for 2 minutes.
    pub mean_settle_seconds: Option<f64>,
    /// What the policy did beyond its figures (the predictive row: its fits and the actions
    /// the forecast drove).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// Wall-clock seconds the simulation of this policy took.
    #[serde(skip)]
    pub wall_seconds: f64,
    #[serde(skip)]
    pub ticks: Vec<Tick>,
}

impl Report {
    /// A report that only carries ticks (an observed run, a plot's input), no figures.
    pub fn of_ticks(policy: &str, ticks: Vec<Tick>) -> Report {
        Report {
            role: String::new(),
            policy: policy.into(),
            replica_hours: 0.0,
            seconds_over_slo: 0,
            max_lag_events: 0.0,
            max_lag_seconds: 0.0,
            scaling_actions: 0,
            actions_per_day: 0.0,
            load_changes: 0,
            actions_per_load_change: None,
            efficiency: 0.0,
            efficiency_fluid: 0.0,
            mean_settle_seconds: None,
            notes: None,
            wall_seconds: 0.0,
            ticks,
        }
    }
}

/// Runs `scaler` over `arrivals` (events/s, one per second).
pub fn run(
    arrivals: &[f64],
    cfg: &ModelConfig,
    scaler: &mut dyn Autoscaler,
    slo_seconds: f64,
    initial: i32,
) -> Report {
    let started = std::time::Instant::now();
    let mut c = Cluster::new(cfg.clone(), initial);
    let mut ticks = Vec::with_capacity(arrivals.len());
    let mut actions = Vec::new();
    let mut next_eval = 0.0;
    for (i, a) in arrivals.iter().enumerate() {
        let t = i as f64;
        ticks.push(c.step(t, *a));
        if t >= next_eval {
            next_eval = t + scaler.interval();
            if let Some(d) = scaler.decide(t, &c) {
                let before = c.pods();
                c.scale_to(t, d);
                if c.pods() != before {
                    actions.push(t);
                    c.pause(t, scaler.restart_pause());
                }
            }
        }
    }
    let mut r = summarize(scaler.name(), ticks, &actions, slo_seconds);
    r.notes = scaler.notes();
    r.wall_seconds = started.elapsed().as_secs_f64();
    r
}

fn lag_seconds(t: &Tick) -> f64 {
    t.lag_seconds
}

/// Actions this long after a load change count as its actions.
const ACTION_ATTRIBUTION_SECONDS: f64 = 1800.0;

fn summarize(policy: String, ticks: Vec<Tick>, actions: &[f64], slo: f64) -> Report {
    let changes = traces::load_changes(&ticks.iter().map(|t| t.arrival).collect::<Vec<_>>());
    let settles: Vec<f64> = changes
        .iter()
        .filter_map(|&at| {
            ticks.iter().skip(at).find_map(|t| {
                let quiet = !actions.iter().any(|a| *a >= t.t && *a < t.t + 120.0);
                (lag_seconds(t) <= slo && quiet).then_some(t.t - at as f64)
            })
        })
        .collect();
    Report {
        role: String::new(),
        policy,
        replica_hours: ticks.iter().map(|t| t.replicas as f64).sum::<f64>() / 3600.0,
        seconds_over_slo: ticks.iter().filter(|t| lag_seconds(t) > slo).count() as u64,
        max_lag_events: ticks.iter().map(|t| t.lag).fold(0.0, f64::max),
        max_lag_seconds: ticks.iter().map(lag_seconds).fold(0.0, f64::max),
        scaling_actions: actions.len() as u32,
        actions_per_day: actions.len() as f64 * 86_400.0 / (ticks.len().max(1) as f64),
        load_changes: changes.len() as u32,
        actions_per_load_change: (!changes.is_empty()).then(|| {
            let after_a_change = actions
                .iter()
                .filter(|a| {
                    changes
                        .iter()
                        .any(|c| **a >= *c as f64 && **a < *c as f64 + ACTION_ATTRIBUTION_SECONDS)
                })
                .count();
            after_a_change as f64 / changes.len() as f64
        }),
        efficiency: 0.0,
        efficiency_fluid: 0.0,
        mean_settle_seconds: (!settles.is_empty())
            .then(|| settles.iter().sum::<f64>() / settles.len() as f64),
        notes: None,
        wall_seconds: 0.0,
        ticks,
    }
}

/// The lag SLO the comparison counts against: the built-in policy's.
pub fn slo_seconds() -> f64 {
    f64::from(impressions_crds::ScalingPolicySpec::builtin().lag_slo_seconds)
}

/// A scenario run under every autoscaler.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Comparison {
    pub scenario: String,
    pub seconds: usize,
    pub slo_seconds: f64,
    /// Seconds over the SLO of the clairvoyant scalers: only where the arrival exceeds what the
    /// most replicas allowed can carry.
    pub oracle_seconds_over_slo: u64,
    /// Replica-hours of the clairvoyant fluid scaler (arrival / capacity, instantly).
    pub oracle_fluid_replica_hours: f64,
    /// Replica-hours of the clairvoyant partition-granular scaler (the fewest replicas whose
    /// busiest one carries its partitions at full capacity, instantly).
    pub oracle_partition_replica_hours: f64,
    /// Ours (the policy as given), KEDA+HPA default and headline, the Flink decision default and
    /// headline, the Flink autoscaler as deployed, static provisioning at the peak, ours'
    /// headline over its target utilization, ours with predictive scaling, and ours with the
    /// scenario's planned surges declared (only where it has some).
    pub rows: Vec<Report>,
    /// Ours over its target utilization (the policy's, 0.75–0.9).
    pub ours_frontier: Vec<FrontierPoint>,
    pub keda_frontier: Vec<FrontierPoint>,
    pub flink_frontier: Vec<FrontierPoint>,
    /// Whether a baseline's headline is SLO-clean (0 s over the SLO).
    pub keda_headline_clean: bool,
    pub flink_headline_clean: bool,
    /// Simulated runs (grids included).
    pub runs: usize,
    /// Wall-clock seconds of the whole comparison.
    pub wall_seconds: f64,
}

impl Comparison {
    /// The rows a plot shows: ours against each baseline's headline and static provisioning
    /// (the defaults and the other rows are in the table).
    pub fn plotted(&self) -> Vec<Report> {
        self.rows
            .iter()
            .filter(|r| {
                r.role == "ours"
                    || r.role.starts_with("KEDA+HPA cheapest")
                    || r.role.starts_with("KEDA+HPA fewest")
                    || r.role.starts_with("Flink decision cheapest")
                    || r.role.starts_with("Flink decision fewest")
                    || r.role == "static at peak"
            })
            .cloned()
            .collect()
    }

    /// The row of a role.
    pub fn row(&self, role: &str) -> Option<&Report> {
        self.rows.iter().find(|r| r.role == role)
    }
}

/// Runs the jobs on the machine's cores (at most 4 threads); results in the jobs' order.
fn run_all(
    jobs: Vec<Box<dyn Autoscaler + Send>>,
    arrivals: &[f64],
    cfg: &ModelConfig,
    slo: f64,
    start: i32,
    keep_ticks: bool,
) -> Vec<Report> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4);
    let n = jobs.len();
    let mut slots: Vec<Option<Box<dyn Autoscaler + Send>>> = jobs.into_iter().map(Some).collect();
    let mut buckets: Vec<Vec<(usize, Box<dyn Autoscaler + Send>)>> =
        (0..threads).map(|_| Vec::new()).collect();
    for (i, slot) in slots.iter_mut().enumerate() {
        if let Some(job) = slot.take() {
            buckets[i % threads].push((i, job));
        }
    }
    let mut out: Vec<Option<Report>> = (0..n).map(|_| None).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = buckets
            .into_iter()
            .map(|bucket| {
                scope.spawn(move || {
                    bucket
                        .into_iter()
                        .map(|(i, mut job)| {
                            let mut r = run(arrivals, cfg, job.as_mut(), slo, start);
                            if !keep_ticks {
                                r.ticks = Vec::new();
                            }
                            (i, r)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            for (i, r) in h.join().expect("a simulation thread panicked") {
                out[i] = Some(r);
            }
        }
    });
    out.into_iter().flatten().collect()
}

/// The scenario under every autoscaler, ours with the built-in ScalingPolicy.
pub fn compare(scenario: &str, arrivals: &[f64], cfg: &ModelConfig) -> Comparison {
    compare_with(
        scenario,
        arrivals,
        cfg,
        &impressions_crds::ScalingPolicySpec::builtin(),
        None,
    )
}

/// The scenario under every autoscaler, ours with `spec` as `pipeline` narrows it (when given;
/// its lag SLO is the one counted).
pub fn compare_with(
    scenario: &str,
    arrivals: &[f64],
    cfg: &ModelConfig,
    spec: &impressions_crds::ScalingPolicySpec,
    pipeline: Option<&impressions_crds::ImpressionPipelineSpec>,
) -> Comparison {
    use crate::autoscale::{
        bounds::Bounds,
        effective::{effective, from_policy},
    };
    let started = std::time::Instant::now();
    let b = Bounds {
        min: cfg.min_replicas,
        max: cfg.max_replicas,
        widened: vec![],
    };
    let limits = match pipeline {
        Some(p) => effective(p, spec, &b, 0),
        None => from_policy(spec, &b, 0),
    };
    let slo = limits.lag_slo_seconds;
    let start =
        ((arrivals.first().copied().unwrap_or(0.0) / (cfg.capacity * 0.7)).ceil() as i32).max(1);
    let peak = arrivals.iter().copied().fold(0.0, f64::max);
    // Enough for the peak at 80 % on average, with no replica's partitions above its capacity.
    let fixed = crate::autoscale::estimate::partition_aware(
        peak,
        cfg.capacity * 0.8,
        cfg.capacity,
        cfg.partitions,
    )
    .clamp(cfg.min_replicas, cfg.max_replicas);
    let (keda, flink) = (keda_grid(), flink_grid());
    // Ours over its main knob, as the baselines over theirs: the policy's target first.
    let ours_limits: Vec<crate::autoscale::model::Limits> = ours_targets(spec.target_utilization)
        .into_iter()
        .map(|target| {
            let mut tuned = spec.clone();
            tuned.target_utilization = target;
            match pipeline {
                Some(p) => effective(p, &tuned, &b, 0),
                None => from_policy(&tuned, &b, 0),
            }
        })
        .collect();
    let interval = f64::from(spec.evaluation_interval_seconds);
    let mut jobs: Vec<Box<dyn Autoscaler + Send>> = ours_limits
        .iter()
        .map(|l| Box::new(Ours::new(l.clone(), interval)) as Box<dyn Autoscaler + Send>)
        .collect();
    jobs.extend(keda.iter().chain(&flink).map(|s| s.scaler(cfg)));
    let mut ours_runs = run_all(jobs, arrivals, cfg, slo, start, false);
    let mut keda_runs = ours_runs.split_off(ours_limits.len());
    let flink_runs = keda_runs.split_off(keda.len());
    let (o_head, o_clean) = headline(&ours_runs).unwrap_or((0, false));
    let (k_head, k_clean) = headline(&keda_runs).unwrap_or((0, false));
    let (f_head, f_clean) = headline(&flink_runs).unwrap_or((0, false));
    // The rows to show again with their ticks (for the plot).
    let rows_limits = limits.clone();
    let mut rows = run_all(
        vec![
            Box::new(Ours::new(
                limits,
                f64::from(spec.evaluation_interval_seconds),
            )),
            keda[0].scaler(cfg),
            keda[k_head].scaler(cfg),
            flink[0].scaler(cfg),
            flink[f_head].scaler(cfg),
            Box::new(Flink::as_deployed(cfg.min_replicas, cfg.max_replicas)),
        ],
        arrivals,
        cfg,
        slo,
        start,
        true,
    );
    rows.push(run(
        arrivals,
        cfg,
        &mut Static { replicas: fixed },
        slo,
        fixed,
    ));
    let mut tuned = run(
        arrivals,
        cfg,
        &mut Ours::new(ours_limits[o_head].clone(), interval),
        slo,
        start,
    );
    tuned.wall_seconds = 0.0;
    rows.push(tuned);
    // Ours with predictive scaling (mode Scale, the policy's other predictive settings): the
    // forecaster learns from the trace's earlier days.
    let mut predictive = spec.predictive.clone();
    predictive.mode = impressions_crds::policy::PredictiveMode::Scale;
    let mut ahead = run(
        arrivals,
        cfg,
        &mut Ours::predictive(
            rows_limits.clone(),
            interval,
            crate::autoscale::forecast::Settings::of(&predictive),
        ),
        slo,
        start,
    );
    ahead.wall_seconds = 0.0;
    rows.push(ahead);
    // Ours with the surges an SRE would declare ahead of the scenario's planned event (none for
    // most scenarios: no row then).
    let surges = traces::planned_surges(scenario);
    let planned = !surges.is_empty();
    if planned {
        let mut r = run(
            arrivals,
            cfg,
            &mut Ours::new(rows_limits, interval).with_surges(surges),
            slo,
            start,
        );
        r.wall_seconds = 0.0;
        rows.push(r);
    }
    let roles = [
        "ours".to_owned(),
        "KEDA+HPA default".to_owned(),
        format!(
            "KEDA+HPA {}",
            if k_clean {
                "cheapest at 0 s over SLO"
            } else {
                "fewest s over SLO (none clean)"
            }
        ),
        "Flink decision default".to_owned(),
        format!(
            "Flink decision {}",
            if f_clean {
                "cheapest at 0 s over SLO"
            } else {
                "fewest s over SLO (none clean)"
            }
        ),
        "Flink as deployed".to_owned(),
        "static at peak".to_owned(),
        format!(
            "ours {}",
            if o_clean {
                "cheapest at 0 s over SLO"
            } else {
                "fewest s over SLO (none clean)"
            }
        ),
        "ours + predictive".to_owned(),
        "ours + planned surges".to_owned(),
    ];
    let fluid = oracle::fluid_replica_hours(arrivals, cfg);
    let granular = oracle::partition_replica_hours(arrivals, cfg);
    for (r, role) in rows.iter_mut().zip(roles) {
        r.role = role;
        r.efficiency = granular / r.replica_hours.max(1e-9);
        r.efficiency_fluid = fluid / r.replica_hours.max(1e-9);
    }
    Comparison {
        scenario: scenario.to_owned(),
        seconds: arrivals.len(),
        slo_seconds: slo,
        oracle_seconds_over_slo: oracle::seconds_over_slo(arrivals, cfg, slo),
        oracle_fluid_replica_hours: fluid,
        oracle_partition_replica_hours: granular,
        rows,
        ours_frontier: frontier(&ours_runs),
        keda_frontier: frontier(&keda_runs),
        flink_frontier: frontier(&flink_runs),
        keda_headline_clean: k_clean,
        flink_headline_clean: f_clean,
        runs: ours_limits.len() + keda.len() + flink.len() + 9 + usize::from(planned),
        wall_seconds: started.elapsed().as_secs_f64(),
    }
}

/// A plain-text table of a comparison, with the oracles and each baseline's frontier.
pub fn table(c: &Comparison) -> String {
    let mut s = format!(
        "scenario: {} ({} s simulated, lag SLO {:.0} s)\n{:<40} {:<62} {:>9} {:>7} {:>9} {:>7} {:>7} {:>5} {:>8}\n",
        c.scenario,
        c.seconds,
        c.slo_seconds,
        "row",
        "settings",
        "replica-h",
        "s>SLO",
        "max lag s",
        "actions",
        "act/chg",
        "eff",
        "settle s"
    );
    for r in &c.rows {
        s.push_str(&format!(
            "{:<40} {:<62} {:>9.1} {:>7} {:>9.0} {:>7} {:>7} {:>5.2} {:>8}\n",
            r.role,
            r.policy,
            r.replica_hours,
            r.seconds_over_slo,
            r.max_lag_seconds,
            r.scaling_actions,
            r.actions_per_load_change
                .map(|x| format!("{x:.1}"))
                .unwrap_or_else(|| "-".into()),
            r.efficiency,
            r.mean_settle_seconds
                .map(|x| format!("{x:.0}"))
                .unwrap_or_else(|| "-".into())
        ));
    }
    s.push_str(&format!(
        "{:<40} {:<62} {:>9.1}\n{:<40} {:<62} {:>9.1}\n",
        "oracle, partition-granular (eff = 1)",
        "clairvoyant, instant, busiest replica at 100 %",
        c.oracle_partition_replica_hours,
        "oracle, fluid",
        "clairvoyant, instant, arrival / capacity",
        c.oracle_fluid_replica_hours,
    ));
    for (name, f) in [
        ("ours", &c.ours_frontier),
        ("KEDA+HPA", &c.keda_frontier),
        ("Flink decision", &c.flink_frontier),
    ] {
        s.push_str(&format!(
            "{name} frontier (replica-h @ s>SLO): {}\n",
            f.iter()
                .map(|p| format!("{:.1}@{}", p.replica_hours, p.seconds_over_slo))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    s
}

#[cfg(test)]
mod tests;
