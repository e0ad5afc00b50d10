//! The archive's part of the status (pure): `status.archive` (the archivers, their group's lag
//! and committed offsets, the last commit, failed commits, the last decision) and the
//! `ArchiveHealthy` condition, from the archiver Deployment as applied and the archive loop's
//! latest evaluation; and the Events its transitions deserve.
//!
//! ArchiveHealthy is True while an archiver is ready and the commits progress; False with
//! `ArchiverStarting`/`ArchiverUnavailable` when none is ready, `CommitsStalled` when no commit
//! came for two commit intervals and a minute while the lag grew; absent without an archive.

use impressions_crds::{
    ImpressionPipelineStatus, conditions,
    scaling::ScalingMode,
    status::{ArchiveCommitStatus, ArchiveStatus, ScalingDecisionStatus},
};
use k8s_openapi::{
    api::apps::v1::Deployment, apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp,
};

use super::events::Note;
use crate::autoscale::archive::{evaluator::ArchiveEvaluation, health::Health};

/// What the reconcile knows of a pipeline's archivers.
#[derive(Debug, Clone, Copy)]
pub struct ArchiveView<'a> {
    /// The Deployment as applied.
    pub archivers: &'a Deployment,
    /// The archivers applied (Auto) or recommended.
    pub desired: i32,
    pub mode: ScalingMode,
    pub evaluation: Option<&'a ArchiveEvaluation>,
}

/// Folds the archivers (None: the pipeline has no archive) into `s`.
pub fn with_archive(
    s: &mut ImpressionPipelineStatus,
    generation: Option<i64>,
    view: Option<ArchiveView<'_>>,
    now: &Time,
) {
    let Some(v) = view else {
        s.conditions
            .retain(|c| c.type_ != conditions::ARCHIVE_HEALTHY);
        s.archive = None;
        return;
    };
    let st = v.archivers.status.clone().unwrap_or_default();
    let ready = st.ready_replicas.unwrap_or(0);
    let before = s.archive.take().unwrap_or_default();
    let e = v.evaluation;
    let lag = e.and_then(|e| e.lag.as_ref());
    let mut a = ArchiveStatus {
        replicas: st.replicas.unwrap_or(0),
        ready_replicas: ready,
        desired_replicas: Some(v.desired),
        partitions: lag.map(|l| l.partitions).or(before.partitions),
        lag: lag.map(|l| l.total).or(before.lag),
        committed_offsets: e
            .and_then(|e| e.committed_total)
            .or(before.committed_offsets),
        last_commit: e
            .and_then(|e| e.last_commit.as_ref())
            .map(|m| ArchiveCommitStatus {
                snapshot_id: m.snapshot,
                time: Time(Timestamp::from_millisecond(m.at_ms).unwrap_or(now.0)),
                records: m.records as i64,
                files: m.files as i64,
                bytes: m.bytes as i64,
                latency_seconds: m.commit_ms as f64 / 1000.0,
            })
            .or(before.last_commit),
        failed_commits: e
            .and_then(|e| e.throughput.and_then(|t| t.failed_commits))
            .map(|f| f.round() as i64),
        last_decision: before.last_decision,
    };
    if let Some(e) = e.filter(|_| matches!(v.mode, ScalingMode::Auto | ScalingMode::Recommend)) {
        let d = &e.decision;
        let changed = a
            .last_decision
            .as_ref()
            .is_none_or(|l| (l.from, l.to, l.reason.as_str()) != (e.from, d.replicas, d.reason));
        if changed {
            a.last_decision = Some(ScalingDecisionStatus {
                from: e.from,
                to: d.replicas,
                reason: d.reason.to_owned(),
                message: d.message.clone(),
                time: now.clone(),
            });
        }
    }
    s.archive = Some(a);
    let desired = v.desired;
    let (ok, reason, msg) = match (ready, e.map(|e| &e.health)) {
        (0, _) if st.replicas.unwrap_or(0) > 0 => (
            false,
            "ArchiverUnavailable",
            format!("none of {desired} archivers is ready"),
        ),
        (0, _) => (
            false,
            "ArchiverStarting",
            format!("{desired} archivers requested, none running yet"),
        ),
        (
            _,
            Some(Health::Stalled {
                quiet_seconds,
                lag_then,
                lag_now,
            }),
        ) => (
            false,
            "CommitsStalled",
            format!(
                "no commit to the table for {:.0} s while the archivers' lag grew from {lag_then} to {lag_now} records",
                quiet_seconds
            ),
        ),
        _ => (
            true,
            "ArchiverReady",
            format!("{ready}/{desired} archivers ready"),
        ),
    };
    conditions::set(
        &mut s.conditions,
        conditions::ARCHIVE_HEALTHY,
        ok,
        reason,
        &msg,
        generation,
        now.clone(),
    );
}

/// The Events of the archive's transitions: the archivers scaled (Auto mode), commits that
/// failed (a new count in the rate window), ArchiveHealthy turning False (Warning, with its
/// reason) or back True.
pub fn events(
    before: Option<&ImpressionPipelineStatus>,
    after: &ImpressionPipelineStatus,
    mode: ScalingMode,
) -> Vec<Note> {
    let mut out = Vec::new();
    let Some(a) = &after.archive else {
        return out;
    };
    let b = before.and_then(|s| s.archive.as_ref());
    let was = b.and_then(|b| b.desired_replicas);
    if let (ScalingMode::Auto, Some(from), Some(to)) = (mode, was, a.desired_replicas)
        && from != to
    {
        let why = a
            .last_decision
            .as_ref()
            .map(|d| format!(" ({}: {})", d.reason, d.message))
            .unwrap_or_default();
        out.push(note(
            false,
            "ArchiversScaled",
            format!("archivers {from} → {to}{why}"),
        ));
    }
    let failed = a.failed_commits.unwrap_or(0);
    if failed > b.and_then(|b| b.failed_commits).unwrap_or(0) {
        out.push(note(
            true,
            "ArchiveCommitFailed",
            format!(
                "{failed} commits to the table failed recently (dropped and rewound to the table's offsets; see the archivers' logs)"
            ),
        ));
    }
    let cond = |s: &ImpressionPipelineStatus| {
        conditions::get(&s.conditions, conditions::ARCHIVE_HEALTHY)
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    };
    let (old, new) = (before.and_then(cond), cond(after));
    if let Some((status, reason, message)) = new
        && old.as_ref().map(|o| (&o.0, &o.1)) != Some((&status, &reason))
    {
        match status.as_str() {
            "False" if reason != "ArchiverStarting" => out.push(note(true, &reason, message)),
            "True" if old.is_some_and(|o| o.0 == "False") => {
                out.push(note(false, "ArchiveHealthy", message))
            }
            _ => {}
        }
    }
    out
}

fn note(warning: bool, reason: &str, note: String) -> Note {
    Note {
        warning,
        reason: reason.to_owned(),
        action: "Archive",
        note,
    }
}

#[cfg(test)]
mod tests;
