//! A baseline's frontier of replica-hours against seconds over the SLO, and its headline
//! setting.

use serde::Serialize;

use super::Report;

/// One point of a baseline's frontier.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FrontierPoint {
    pub policy: String,
    pub replica_hours: f64,
    pub seconds_over_slo: u64,
    pub scaling_actions: u32,
}

/// The settings no other setting beats on both replica-hours and seconds over the SLO, from
/// the cheapest up.
pub fn frontier(reports: &[Report]) -> Vec<FrontierPoint> {
    let mut sorted: Vec<&Report> = reports.iter().collect();
    sorted.sort_by(|a, b| {
        a.replica_hours
            .total_cmp(&b.replica_hours)
            .then(a.seconds_over_slo.cmp(&b.seconds_over_slo))
    });
    let mut out: Vec<FrontierPoint> = Vec::new();
    let mut best = u64::MAX;
    for r in sorted {
        if r.seconds_over_slo < best {
            best = r.seconds_over_slo;
            out.push(FrontierPoint {
                policy: r.policy.clone(),
                replica_hours: r.replica_hours,
                seconds_over_slo: r.seconds_over_slo,
                scaling_actions: r.scaling_actions,
            });
        }
    }
    out
}

/// A baseline's headline: its cheapest setting with 0 s over the SLO, else (no setting is
/// clean) the one with the fewest seconds over it, then the cheapest. `true` when clean.
pub fn headline(reports: &[Report]) -> Option<(usize, bool)> {
    let clean = reports
        .iter()
        .enumerate()
        .filter(|(_, r)| r.seconds_over_slo == 0)
        .min_by(|a, b| a.1.replica_hours.total_cmp(&b.1.replica_hours))
        .map(|(i, _)| (i, true));
    clean.or_else(|| {
        reports
            .iter()
            .enumerate()
            .min_by(|a, b| {
                a.1.seconds_over_slo
                    .cmp(&b.1.seconds_over_slo)
                    .then(a.1.replica_hours.total_cmp(&b.1.replica_hours))
            })
            .map(|(i, _)| (i, false))
    })
}
