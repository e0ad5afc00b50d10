//! `operator simulate`: replays a traffic trace through a simulated cluster under several
//! autoscalers — the project's own decision code, KEDA+HPA, the Flink autoscaler and static
//! provisioning — and reports replica-hours, time over the lag SLO, the largest lag, scaling
//! actions and time to settle. Deterministic.

pub mod model;
pub mod plot;
pub mod scalers;
pub mod traces;

use serde::Serialize;

use model::{Cluster, ModelConfig, Tick};
use scalers::Autoscaler;

/// The outcome of one autoscaler on one trace.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub policy: String,
    pub replica_hours: f64,
    pub seconds_over_slo: u64,
    pub max_lag_events: f64,
    pub max_lag_seconds: f64,
    pub scaling_actions: u32,
    pub load_changes: u32,
    /// Mean seconds from a load change until lag is under the SLO with no action for 2 minutes.
    pub mean_settle_seconds: Option<f64>,
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
            policy: policy.into(),
            replica_hours: 0.0,
            seconds_over_slo: 0,
            max_lag_events: 0.0,
            max_lag_seconds: 0.0,
            scaling_actions: 0,
            load_changes: 0,
            mean_settle_seconds: None,
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
    r.wall_seconds = started.elapsed().as_secs_f64();
    r
}

fn lag_seconds(t: &Tick) -> f64 {
    t.lag_seconds
}

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
        policy,
        replica_hours: ticks.iter().map(|t| t.replicas as f64).sum::<f64>() / 3600.0,
        seconds_over_slo: ticks.iter().filter(|t| lag_seconds(t) > slo).count() as u64,
        max_lag_events: ticks.iter().map(|t| t.lag).fold(0.0, f64::max),
        max_lag_seconds: ticks.iter().map(lag_seconds).fold(0.0, f64::max),
        scaling_actions: actions.len() as u32,
        load_changes: changes.len() as u32,
        mean_settle_seconds: (!settles.is_empty())
            .then(|| settles.iter().sum::<f64>() / settles.len() as f64),
        wall_seconds: 0.0,
        ticks,
    }
}

/// The lag SLO the comparison counts against: the built-in policy's.
pub fn slo_seconds() -> f64 {
    f64::from(impressions_crds::ScalingPolicySpec::builtin().lag_slo_seconds)
}

/// The scenario run under every autoscaler: the project's policy (the built-in ScalingPolicy
/// defaults), KEDA+HPA and the Flink autoscaler at their defaults and at the best setting of
/// their main knob (a small grid search on the same trace), and static provisioning at the peak.
pub fn compare(arrivals: &[f64], cfg: &ModelConfig) -> Vec<Report> {
    use crate::autoscale::{bounds::Bounds, effective::from_policy};
    use scalers::{Flink, KedaHpa, Ours, Static};
    let spec = impressions_crds::ScalingPolicySpec::builtin();
    let slo = f64::from(spec.lag_slo_seconds);
    let b = Bounds {
        min: cfg.min_replicas,
        max: cfg.max_replicas,
        widened: vec![],
    };
    let start =
        ((arrivals.first().copied().unwrap_or(0.0) / (cfg.capacity * 0.7)).ceil() as i32).max(1);
    let mut out = vec![run(
        arrivals,
        cfg,
        &mut Ours::new(
            from_policy(&spec, &b, 0),
            f64::from(spec.evaluation_interval_seconds),
        ),
        slo,
        start,
    )];
    let best = |reports: Vec<Report>| {
        reports.into_iter().min_by(|a, b| {
            (a.seconds_over_slo, a.replica_hours as u64)
                .cmp(&(b.seconds_over_slo, b.replica_hours as u64))
        })
    };
    out.push(run(
        arrivals,
        cfg,
        &mut KedaHpa::new(10.0, cfg.min_replicas, cfg.max_replicas),
        slo,
        start,
    ));
    let keda_grid: Vec<Report> = [1e3, 1e4, 5e4, 1e5, 2.5e5, 5e5, 1e6]
        .iter()
        .map(|th| {
            run(
                arrivals,
                cfg,
                &mut KedaHpa::new(*th, cfg.min_replicas, cfg.max_replicas),
                slo,
                start,
            )
        })
        .collect();
    out.extend(best(keda_grid).map(|mut r| {
        r.policy.push_str(" best");
        r
    }));
    out.push(run(
        arrivals,
        cfg,
        &mut Flink::new(0.7, cfg.min_replicas, cfg.max_replicas),
        slo,
        start,
    ));
    let flink_grid: Vec<Report> = [0.4, 0.5, 0.6, 0.8, 0.9]
        .iter()
        .map(|u| {
            run(
                arrivals,
                cfg,
                &mut Flink::new(*u, cfg.min_replicas, cfg.max_replicas),
                slo,
                start,
            )
        })
        .collect();
    out.extend(best(flink_grid).map(|mut r| {
        r.policy.push_str(" best");
        r
    }));
    let peak = arrivals.iter().copied().fold(0.0, f64::max);
    // Enough for the peak at 80 % on average, with no replica's partitions above its capacity.
    let fixed = crate::autoscale::estimate::partition_aware(
        peak,
        cfg.capacity * 0.8,
        cfg.capacity,
        cfg.partitions,
    )
    .clamp(cfg.min_replicas, cfg.max_replicas);
    out.push(run(
        arrivals,
        cfg,
        &mut Static { replicas: fixed },
        slo,
        fixed,
    ));
    out
}

/// A plain-text table of reports.
pub fn table(scenario: &str, reports: &[Report]) -> String {
    let mut s = format!(
        "scenario: {scenario}\n{:<34} {:>10} {:>10} {:>12} {:>9} {:>8} {:>10}\n",
        "policy", "replica-h", "s>SLO", "max lag", "max lag s", "actions", "settle s"
    );
    for r in reports {
        s.push_str(&format!(
            "{:<34} {:>10.1} {:>10} {:>12.0} {:>9.0} {:>8} {:>10}\n",
            r.policy,
            r.replica_hours,
            r.seconds_over_slo,
            r.max_lag_events,
            r.max_lag_seconds,
            r.scaling_actions,
            r.mean_settle_seconds
                .map(|x| format!("{x:.0}"))
                .unwrap_or_else(|| "-".into())
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_runs_and_the_project_policy_stays_under_the_slo() {
        let cfg = ModelConfig::default();
        for name in ["step", "spike", "ramp", "failover", "diurnal"] {
            let reports = compare(&traces::scenario(name).unwrap(), &cfg);
            assert_eq!(reports.len(), 6, "{name}");
            assert_eq!(reports[0].seconds_over_slo, 0, "{}", table(name, &reports));
        }
    }

    #[test]
    fn deterministic_and_the_project_policy_keeps_a_step_under_the_slo() {
        let arrivals = traces::step(6000);
        let cfg = ModelConfig::default();
        let mut a = compare(&arrivals, &cfg);
        let mut b = compare(&arrivals, &cfg);
        for r in a.iter_mut().chain(b.iter_mut()) {
            r.wall_seconds = 0.0;
        }
        assert_eq!(a, b, "the same inputs give the same run");
        let ours = &a[0];
        assert!(ours.policy.starts_with("impressions"));
        assert_eq!(ours.seconds_over_slo, 0, "{}", table("step", &a));
        assert!(
            ours.scaling_actions as f64 <= 6.0 * ours.load_changes as f64,
            "{}",
            table("step", &a)
        );
    }
}
