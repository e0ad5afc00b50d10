//! The pure side of `what-if`: a pipeline's recorded history replayed through the operator's
//! simulator once under its current effective policy and once under a proposed one, on the
//! same simulated cluster (the pipeline's measured capacity per replica and partitions, see
//! [`replay::resolve`]), each starting from the replicas the history starts with.

use impressions_crds::ImpressionPipelineSpec;
use impressions_operator::{
    autoscale::{bounds::Bounds, effective::effective, model::HistoryPoint},
    tools::simulate::{
        self, Report,
        model::ModelConfig,
        replay::{self, ClusterPolicy},
        scalers::Ours,
        traces,
    },
};

use crate::format::columns;

/// A policy to replay.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// `current` or `proposed`.
    pub role: &'static str,
    /// What it is, e.g. `ScalingPolicy fast` or `ScalingPolicy cheap (cheap.yaml)`.
    pub label: String,
    pub policy: ClusterPolicy,
}

/// One policy's replay.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub role: &'static str,
    pub label: String,
    /// The simulated bounds (the pipeline's within the policy, at most the partitions).
    pub min: i32,
    pub max: i32,
    /// The policy's lag SLO as the pipeline narrows it.
    pub lag_slo_seconds: f64,
    /// Seconds over the current policy's lag SLO (the one both are judged by).
    pub seconds_over_current_slo: u64,
    pub report: Report,
}

/// Both replays.
#[derive(Debug, Clone)]
pub struct WhatIf {
    pub pipeline: String,
    /// Simulated seconds (the history's span).
    pub seconds: usize,
    /// Where each value of the simulated cluster came from.
    pub provenance: Vec<String>,
    pub current: Outcome,
    pub proposed: Outcome,
}

/// Replays `points` (at least two) under both candidates.
pub fn what_if(
    pipeline: &str,
    spec: &ImpressionPipelineSpec,
    points: &[HistoryPoint],
    partitions: Result<i32, String>,
    current: &Candidate,
    proposed: &Candidate,
) -> WhatIf {
    let arrivals = traces::from_history(points);
    let base = ModelConfig::default();
    let first = points.first().copied();
    let minute = first.map_or(0, |p| ((p.at as i64).rem_euclid(86_400) / 60) as u32);
    let replay_one = |c: &Candidate, current_slo: Option<f64>| {
        let r = replay::resolve(points, partitions.clone(), Ok(c.policy.clone()), &base);
        let b = Bounds {
            min: r.cfg.min_replicas,
            max: r.cfg.max_replicas,
            widened: vec![],
        };
        let limits = effective(spec, &r.policy, &b, minute);
        let slo = limits.lag_slo_seconds;
        let start = first
            .map_or(r.cfg.min_replicas, |p| p.replicas)
            .clamp(r.cfg.min_replicas, r.cfg.max_replicas);
        let interval = f64::from(r.policy.evaluation_interval_seconds);
        let mut report = simulate::run(
            &arrivals,
            &r.cfg,
            &mut Ours::new(limits, interval),
            slo,
            start,
        );
        report.role = c.role.to_owned();
        report.policy = format!("{}: {}", c.role, c.label);
        let judged_by = current_slo.unwrap_or(slo);
        let outcome = Outcome {
            role: c.role,
            label: c.label.clone(),
            min: r.cfg.min_replicas,
            max: r.cfg.max_replicas,
            lag_slo_seconds: slo,
            seconds_over_current_slo: report
                .ticks
                .iter()
                .filter(|t| t.lag_seconds > judged_by)
                .count() as u64,
            report,
        };
        (outcome, r.provenance)
    };
    let (current, mut provenance) = replay_one(current, None);
    let (proposed, _) = replay_one(proposed, Some(current.lag_slo_seconds));
    for line in provenance.iter_mut() {
        if line.starts_with("policy: ") {
            *line = format!("current {line}");
        } else if let (true, Ok(p)) = (line.starts_with("partitions: "), &partitions) {
            *line = format!(
                "partitions: {p} (the pipeline's status, as the operator read them from Kafka)"
            );
        }
    }
    provenance.push(format!(
        "proposed policy: {}; bounds {}..{} (the pipeline within the proposed policy, at most the partitions)",
        proposed.label, proposed.min, proposed.max
    ));
    provenance.push(format!(
        "the limits at {:02}:{:02} UTC (the start of the history) hold for the whole replay",
        minute / 60,
        minute % 60
    ));
    WhatIf {
        pipeline: pipeline.to_owned(),
        seconds: arrivals.len(),
        provenance,
        current,
        proposed,
    }
}

/// Both replays side by side, then the difference.
pub fn render(w: &WhatIf) -> String {
    let slo = w.current.lag_slo_seconds;
    let mut out = format!(
        "what-if {}: {:.2} h of its history ({} s) replayed through the simulator\n",
        w.pipeline,
        w.seconds as f64 / 3600.0,
        w.seconds
    );
    for line in &w.provenance {
        out.push_str(&format!("  {line}\n"));
    }
    out.push('\n');
    let mut rows = vec![
        [
            "ROLE",
            "POLICY",
            "BOUNDS",
            "LAG SLO",
            "REPLICA-HOURS",
            "SECONDS OVER SLO",
            "MAX LAG SECONDS",
            "SCALING ACTIONS",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for o in [&w.current, &w.proposed] {
        rows.push(vec![
            o.role.to_owned(),
            o.label.clone(),
            format!("{}..{}", o.min, o.max),
            format!("{:.0} s", o.lag_slo_seconds),
            format!("{:.3}", o.report.replica_hours),
            o.seconds_over_current_slo.to_string(),
            format!("{:.0}", o.report.max_lag_seconds),
            o.report.scaling_actions.to_string(),
        ]);
    }
    out.push_str(&columns(&rows));
    let (c, p) = (&w.current, &w.proposed);
    let hours = p.report.replica_hours - c.report.replica_hours;
    let percent = if c.report.replica_hours > 0.0 {
        format!(" ({:+.0} %)", 100.0 * hours / c.report.replica_hours)
    } else {
        String::new()
    };
    out.push_str(&format!(
        "\nproposed − current: {hours:+.3} replica-hours{percent}, {:+} s over the lag SLO ({slo:.0} s), {:+} scaling actions\n",
        p.seconds_over_current_slo as i64 - c.seconds_over_current_slo as i64,
        i64::from(p.report.scaling_actions) - i64::from(c.report.scaling_actions),
    ));
    if p.lag_slo_seconds != slo {
        out.push_str(&format!(
            "(seconds over SLO are counted against the current policy's {slo:.0} s; the proposed policy's own SLO is {:.0} s: {} s over it)\n",
            p.lag_slo_seconds, p.report.seconds_over_slo
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use impressions_crds::ScalingPolicySpec;

    fn spec() -> ImpressionPipelineSpec {
        serde_json::from_value(serde_json::json!({
            "source": {"bootstrapServers": "k:9092", "topic": "raw"},
            "sink": {"topic": "out", "deadLetterTopic": "dlq"},
            "enrichment": {"catalog": {"topic": "titles"}}
        }))
        .unwrap()
    }

    /// Ten minutes at 1,000 events/s, then ten at 4,000: workers of 1,000 events/s each.
    fn history() -> Vec<HistoryPoint> {
        (0..=120)
            .map(|i| {
                let high = i >= 60;
                let replicas = if high { 4 } else { 1 };
                HistoryPoint {
                    at: 1_764_590_400.0 + f64::from(i) * 10.0,
                    processed_rate: if high { 4_000.0 } else { 1_000.0 },
                    busy_fraction: 1.0,
                    lag: 0.0,
                    replicas,
                }
            })
            .collect()
    }

    fn candidate(role: &'static str, name: &str, spec: ScalingPolicySpec) -> Candidate {
        Candidate {
            role,
            label: format!("ScalingPolicy {name}"),
            policy: ClusterPolicy {
                min: spec.min_replicas,
                max: spec.max_replicas,
                spec,
                name: Some(name.into()),
            },
        }
    }

    #[test]
    fn a_policy_capped_below_the_load_costs_less_and_misses_the_slo() {
        let current = candidate("current", "roomy", ScalingPolicySpec::builtin());
        let mut capped = ScalingPolicySpec::builtin();
        capped.max_replicas = 2;
        let proposed = candidate("proposed", "capped", capped);
        let w = what_if("ads/eu", &spec(), &history(), Ok(8), &current, &proposed);
        assert_eq!(w.seconds, 1200);
        assert_eq!((w.current.min, w.current.max), (1, 8));
        assert_eq!((w.proposed.min, w.proposed.max), (1, 2));
        assert_eq!(w.current.seconds_over_current_slo, 0, "{}", render(&w));
        assert!(
            w.proposed.seconds_over_current_slo > 60,
            "2 replicas cannot carry 4,000/s: {}",
            render(&w)
        );
        assert!(w.proposed.report.replica_hours < w.current.report.replica_hours);
        let text = render(&w);
        for want in [
            "what-if ads/eu: 0.33 h of its history (1200 s)",
            "capacity per replica: 1000 events/s",
            "partitions: 8 (the pipeline's status",
            "current policy: ScalingPolicy roomy",
            "proposed policy: ScalingPolicy capped; bounds 1..2",
            "current    ScalingPolicy roomy    1..8",
            "proposed   ScalingPolicy capped   1..2",
            "proposed − current: -",
        ] {
            assert!(text.contains(want), "{want} in\n{text}");
        }
        assert_eq!(w.proposed.report.policy, "proposed: ScalingPolicy capped");
    }

    #[test]
    fn a_different_slo_is_named_and_both_are_judged_by_the_current_one() {
        let current = candidate("current", "a", ScalingPolicySpec::builtin());
        let mut strict = ScalingPolicySpec::builtin();
        strict.lag_slo_seconds = 5;
        let w = what_if(
            "ads/eu",
            &spec(),
            &history(),
            Err("no status yet".into()),
            &current,
            &candidate("proposed", "strict", strict),
        );
        assert_eq!(w.proposed.lag_slo_seconds, 5.0);
        let text = render(&w);
        assert!(
            text.contains("the proposed policy's own SLO is 5 s"),
            "{text}"
        );
        assert!(text.contains("no status yet"), "{text}");
    }
}
