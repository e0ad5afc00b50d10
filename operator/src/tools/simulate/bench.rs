//! `make bench-autoscaler`: every built-in scenario under every autoscaler, the goals of the
//! fair comparison checked on each, and the timings; written as one results file
//! (`docs/results/bench-autoscaler.json`) that docs/benchmarks.md quotes.

use serde::Serialize;

use super::{Comparison, compare, model::ModelConfig, plot, run, scalers::Ours, traces};

/// One scenario's figures against the goals.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Goals {
    pub scenario: String,
    /// The clairvoyant scalers have 0 s over the SLO (where they do not, no policy can).
    pub oracle_clean: bool,
    pub ours_seconds_over_slo: u64,
    /// Ours / the cheapest SLO-clean setting of KEDA+HPA (goal ≤ 0.85; none when no setting is
    /// clean).
    pub vs_keda: Option<f64>,
    /// Ours / the cheapest SLO-clean setting of the Flink decision (goal ≤ 0.85).
    pub vs_flink: Option<f64>,
    /// Ours at its cheapest SLO-clean target utilization (tuned as the baselines are) / the
    /// baselines' cheapest SLO-clean settings.
    pub tuned_target: Option<String>,
    pub tuned_vs_keda: Option<f64>,
    pub tuned_vs_flink: Option<f64>,
    /// The partition-granular oracle's replica-hours / ours (goal ≥ 0.75).
    pub efficiency: f64,
    /// Actions within 30 minutes after a load change, per load change: goal ≤ 1.5 (none when
    /// the trace has no load change).
    pub actions_per_load_change: Option<f64>,
    pub actions_per_day: f64,
    /// Ours / static provisioning at the peak (goal ≤ 1).
    pub vs_static: f64,
    /// Baseline settings (from their frontiers) with fewer replica-hours than ours and no more
    /// seconds over the SLO: empty when ours lies below both frontiers.
    pub dominated_by: Vec<String>,
    /// The goals this scenario misses, in words.
    pub missed: Vec<String>,
    /// Ours with predictive scaling (mode Scale): its replica-hours / ours', its seconds over
    /// the SLO, the largest lag (seconds) of each, and what its forecast did.
    pub predictive_vs_ours: Option<f64>,
    pub predictive_seconds_over_slo: Option<u64>,
    pub predictive_max_lag_seconds: Option<f64>,
    pub ours_max_lag_seconds: f64,
    pub predictive_notes: Option<String>,
    /// Ours with the scenario's planned surges declared (`plannedSurges`; only scenarios with
    /// a planned event): its replica-hours / ours', its seconds over the SLO, largest lag
    /// (seconds) and actions, and what the surges did.
    pub planned_vs_ours: Option<f64>,
    pub planned_replica_hours: Option<f64>,
    pub planned_seconds_over_slo: Option<u64>,
    pub planned_max_lag_seconds: Option<f64>,
    pub planned_actions: Option<u32>,
    pub planned_notes: Option<String>,
}

/// How long our policy and a whole comparison take.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Timing {
    /// Our policy alone on the three regions' diurnal days (24 h × 3), seconds (goal < 1).
    pub ours_24h_3_regions_seconds: f64,
    /// The whole comparison of one scenario (grids included), seconds (goal < 10).
    pub one_comparison_seconds: f64,
    pub one_comparison_scenario: String,
    pub one_comparison_runs: usize,
    /// The build the timings were taken with.
    pub profile: &'static str,
}

/// The results file.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Results {
    /// UTC date of the run, YYYY-MM-DD.
    pub date: String,
    pub command: &'static str,
    pub model: ModelConfig,
    pub goals: Vec<Goals>,
    pub timing: Timing,
    pub scenarios: Vec<Comparison>,
}

/// The goals of one comparison.
pub fn goals(c: &Comparison) -> Goals {
    let ours = &c.rows[0];
    let clean = |role: &str| {
        c.row(role)
            .filter(|r| r.seconds_over_slo == 0)
            .map(|r| ours.replica_hours / r.replica_hours.max(1e-9))
    };
    let vs_static = c
        .row("static at peak")
        .map_or(0.0, |s| ours.replica_hours / s.replica_hours.max(1e-9));
    let tuned = c.row("ours cheapest at 0 s over SLO");
    let predictive = c.row("ours + predictive");
    let planned = c.row("ours + planned surges");
    let tuned_vs = |role: &str| {
        let t = tuned?;
        c.row(role)
            .filter(|r| r.seconds_over_slo == 0)
            .map(|r| t.replica_hours / r.replica_hours.max(1e-9))
    };
    let g = Goals {
        scenario: c.scenario.clone(),
        oracle_clean: c.oracle_seconds_over_slo == 0,
        ours_seconds_over_slo: ours.seconds_over_slo,
        vs_keda: clean("KEDA+HPA cheapest at 0 s over SLO"),
        vs_flink: clean("Flink decision cheapest at 0 s over SLO"),
        tuned_target: tuned.map(|t| t.policy.clone()),
        tuned_vs_keda: tuned_vs("KEDA+HPA cheapest at 0 s over SLO"),
        tuned_vs_flink: tuned_vs("Flink decision cheapest at 0 s over SLO"),
        efficiency: ours.efficiency,
        actions_per_load_change: ours.actions_per_load_change,
        actions_per_day: ours.actions_per_day,
        vs_static,
        dominated_by: c
            .keda_frontier
            .iter()
            .chain(&c.flink_frontier)
            .filter(|p| {
                p.replica_hours < ours.replica_hours && p.seconds_over_slo <= ours.seconds_over_slo
            })
            .map(|p| format!("{} ({:.1} replica-h)", p.policy, p.replica_hours))
            .collect(),
        missed: Vec::new(),
        predictive_vs_ours: predictive.map(|p| p.replica_hours / ours.replica_hours.max(1e-9)),
        predictive_seconds_over_slo: predictive.map(|p| p.seconds_over_slo),
        predictive_max_lag_seconds: predictive.map(|p| p.max_lag_seconds),
        ours_max_lag_seconds: ours.max_lag_seconds,
        predictive_notes: predictive.and_then(|p| p.notes.clone()),
        planned_vs_ours: planned.map(|p| p.replica_hours / ours.replica_hours.max(1e-9)),
        planned_replica_hours: planned.map(|p| p.replica_hours),
        planned_seconds_over_slo: planned.map(|p| p.seconds_over_slo),
        planned_max_lag_seconds: planned.map(|p| p.max_lag_seconds),
        planned_actions: planned.map(|p| p.scaling_actions),
        planned_notes: planned.and_then(|p| p.notes.clone()),
    };
    let mut missed = Vec::new();
    if g.oracle_clean && g.ours_seconds_over_slo > 0 {
        missed.push(format!("{} s over the SLO", g.ours_seconds_over_slo));
    }
    for (name, v) in [("KEDA+HPA", g.vs_keda), ("the Flink decision", g.vs_flink)] {
        if let Some(v) = v.filter(|v| *v > 0.85) {
            missed.push(format!(
                "{v:.2}× the replica-hours of {name}'s cheapest SLO-clean setting (goal ≤ 0.85)"
            ));
        }
    }
    if g.efficiency < 0.75 {
        missed.push(format!(
            "efficiency {:.2} of the partition-granular oracle (goal ≥ 0.75)",
            g.efficiency
        ));
    }
    if let Some(a) = g.actions_per_load_change.filter(|a| *a > 1.5) {
        missed.push(format!("{a:.1} actions per load change (goal ≤ 1.5)"));
    }
    if !g.dominated_by.is_empty() {
        missed.push(format!(
            "not below the frontier: {}",
            g.dominated_by.join(", ")
        ));
    }
    if g.vs_static > 1.0 {
        missed.push(format!(
            "{:.2}× the replica-hours of static provisioning at the peak",
            g.vs_static
        ));
    }
    Goals { missed, ..g }
}

/// The UTC date of a Unix time, YYYY-MM-DD (days to civil date, after Howard Hinnant).
pub fn utc_date(unix_seconds: i64) -> String {
    let z = unix_seconds.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Runs every built-in scenario; writes one plot per scenario into `plots` (ours against each
/// baseline's headline and static provisioning).
pub fn run_all(cfg: &ModelConfig, plots: &std::path::Path) -> Result<Results, String> {
    std::fs::create_dir_all(plots).map_err(|e| format!("{}: {e}", plots.display()))?;
    let mut scenarios = Vec::new();
    for name in traces::SCENARIOS {
        let arrivals = traces::scenario(name)?;
        let c = compare(name, &arrivals, cfg);
        let shown = c.plotted();
        let path = plots.join(format!("sim-{}.svg", name.replace(':', "-")));
        plot::svg(&path, name, &shown, Some(c.slo_seconds))?;
        // The ticks were for the plot; the results file carries the figures.
        let mut c = c;
        for r in c.rows.iter_mut() {
            r.ticks = Vec::new();
        }
        scenarios.push(c);
    }
    // Our policy alone on the three regions' days.
    let spec = impressions_crds::ScalingPolicySpec::builtin();
    let b = crate::autoscale::bounds::Bounds {
        min: cfg.min_replicas,
        max: cfg.max_replicas,
        widened: vec![],
    };
    let started = std::time::Instant::now();
    for region in 0..3 {
        let arrivals = traces::diurnal(region, 86_400);
        let mut ours = Ours::new(
            crate::autoscale::effective::from_policy(&spec, &b, 0),
            f64::from(spec.evaluation_interval_seconds),
        );
        run(
            &arrivals,
            cfg,
            &mut ours,
            f64::from(spec.lag_slo_seconds),
            1,
        );
    }
    let ours_seconds = started.elapsed().as_secs_f64();
    let one = scenarios
        .iter()
        .find(|c| c.scenario == "diurnal:0")
        .ok_or("no diurnal:0")?;
    let timing = Timing {
        ours_24h_3_regions_seconds: ours_seconds,
        one_comparison_seconds: one.wall_seconds,
        one_comparison_scenario: one.scenario.clone(),
        one_comparison_runs: one.runs,
        profile: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    Ok(Results {
        date: utc_date(now),
        command: "make bench-autoscaler",
        model: cfg.clone(),
        goals: scenarios.iter().map(goals).collect(),
        timing,
        scenarios,
    })
}

/// The goals of every scenario, one line each, and the timings.
pub fn summary(r: &Results) -> String {
    let ratio = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2}"));
    let mut s = format!(
        "{:<12} {:>6} {:>7} {:>7} {:>12} {:>7} {:>5} {:>7} {:>7} {:>7} {:>15}  missed (at the defaults)\n",
        "scenario",
        "s>SLO",
        "/KEDA",
        "/Flink",
        "tuned /K /F",
        "/static",
        "eff",
        "act/chg",
        "act/day",
        "oracle",
        "pred/ours s>SLO"
    );
    for g in &r.goals {
        s.push_str(&format!(
            "{:<12} {:>6} {:>7} {:>7} {:>12} {:>7.2} {:>5.2} {:>7} {:>7.1} {:>7} {:>15}  {}\n",
            g.scenario,
            g.ours_seconds_over_slo,
            ratio(g.vs_keda),
            ratio(g.vs_flink),
            format!("{} {}", ratio(g.tuned_vs_keda), ratio(g.tuned_vs_flink)),
            g.vs_static,
            g.efficiency,
            g.actions_per_load_change
                .map_or("-".to_owned(), |a| format!("{a:.1}")),
            g.actions_per_day,
            if g.oracle_clean { "clean" } else { "over" },
            format!(
                "{} {}",
                ratio(g.predictive_vs_ours),
                g.predictive_seconds_over_slo
                    .map_or("-".to_owned(), |s| s.to_string())
            ),
            g.missed.join("; ")
        ));
    }
    for g in &r.goals {
        if let (Some(rh), Some(v), Some(over), Some(lag)) = (
            g.planned_replica_hours,
            g.planned_vs_ours,
            g.planned_seconds_over_slo,
            g.planned_max_lag_seconds,
        ) {
            s.push_str(&format!(
                "{} + planned surges: {rh:.1} replica-h ({v:.3}× ours), {over} s over the SLO, largest lag {lag:.0} s (ours {:.0} s)\n",
                g.scenario, g.ours_max_lag_seconds
            ));
        }
    }
    s.push_str(&format!(
        "ours on 24 h × 3 regions: {:.3} s; the whole comparison of {} ({} runs): {:.2} s ({} build)",
        r.timing.ours_24h_3_regions_seconds,
        r.timing.one_comparison_scenario,
        r.timing.one_comparison_runs,
        r.timing.one_comparison_seconds,
        r.timing.profile
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(951_782_400), "2000-02-29");
        assert_eq!(utc_date(1_796_083_200), "2026-12-01");
    }

    #[test]
    fn goals_name_what_is_missed() {
        let c = compare("step", &traces::step(6000), &ModelConfig::default());
        let g = goals(&c);
        assert_eq!(g.scenario, "step");
        assert!(g.oracle_clean);
        assert_eq!(
            g.missed.is_empty(),
            g.ours_seconds_over_slo == 0
                && g.vs_keda.is_none_or(|v| v <= 0.85)
                && g.vs_flink.is_none_or(|v| v <= 0.85)
                && g.efficiency >= 0.75
                && g.actions_per_load_change.is_none_or(|a| a <= 1.5)
                && g.vs_static <= 1.0
                && g.dominated_by.is_empty(),
            "{g:?}"
        );
    }
}
