//! Which Events a reconcile publishes, from the status before and after it: pure, so every
//! transition is tested without a cluster.

use impressions_crds::{
    ImpressionPipelineStatus,
    conditions::{self, DATA_QUALITY, DEGRADED, READY},
    scaling::ScalingMode,
};

use super::status::is_true;
use crate::{autoscale::model::Evaluation, error::Error, quality::assess};

/// An Event about a pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    /// Warning, else Normal.
    pub warning: bool,
    /// CamelCase.
    pub reason: String,
    /// What the operator was doing: Apply, Reconcile, Scale, DataQuality.
    pub action: &'static str,
    pub note: String,
}

impl Note {
    fn new(warning: bool, reason: &str, action: &'static str, note: String) -> Note {
        Note {
            warning,
            reason: reason.to_owned(),
            action,
            note,
        }
    }
}

/// A reconcile that applied the children: the status before and after it and what it decided.
#[derive(Debug)]
pub struct Applied<'a> {
    pub before: Option<&'a ImpressionPipelineStatus>,
    pub after: &'a ImpressionPipelineStatus,
    pub mode: ScalingMode,
    /// Replicas without a scaling decision (the last desired count within the bounds).
    pub base: i32,
    /// Replicas applied.
    pub replicas: i32,
    pub evaluation: Option<&'a Evaluation>,
    pub quality: Option<&'a assess::Reading>,
}

/// The Events of a reconcile that applied the children: the first apply, a recovery, a scaling
/// action (Auto mode), a change of data-quality level, becoming Degraded.
pub fn on_applied(a: &Applied<'_>) -> Vec<Note> {
    let mut out = Vec::new();
    let first = a.before.and_then(|s| s.observed_generation).is_none();
    if first {
        out.push(Note::new(
            false,
            "ChildrenCreated",
            "Apply",
            format!(
                "worker Deployment, ConfigMap, Service and PodDisruptionBudget applied with {} replicas",
                a.replicas
            ),
        ));
    }
    if is_true(a.before, READY) == Some(false) {
        out.push(Note::new(
            false,
            "Recovered",
            "Reconcile",
            "references resolved; workers applied".into(),
        ));
    }
    if a.replicas != a.base && a.mode == ScalingMode::Auto {
        let (reason, why) = a.evaluation.map_or(("Scaled", String::new()), |e| {
            (e.decision.reason, e.decision.message.clone())
        });
        out.push(Note::new(
            false,
            reason,
            "Scale",
            format!("{} → {}: {why}", a.base, a.replicas),
        ));
    }
    if let Some(r) = a.quality {
        let text = r.condition();
        let previous = a
            .before
            .and_then(|s| conditions::get(&s.conditions, DATA_QUALITY))
            .map(|c| c.reason.as_str());
        if let Some(ev) = assess::event(previous, &text) {
            out.push(Note::new(
                ev.warning,
                ev.reason,
                "DataQuality",
                text.message,
            ));
        }
    }
    let degraded = is_true(Some(a.after), DEGRADED) == Some(true);
    if degraded && is_true(a.before, DEGRADED) != Some(true) {
        let msg = conditions::get(&a.after.conditions, DEGRADED)
            .map(|c| c.message.clone())
            .unwrap_or_default();
        out.push(Note::new(true, "Degraded", "Reconcile", msg));
    }
    out
}

/// The Event of a failed reconcile: a Warning with the error's reason when the spec (or what
/// it refers to) is at fault and the pipeline was not already known not to be Ready.
pub fn on_failed(before: Option<&ImpressionPipelineStatus>, e: &Error) -> Option<Note> {
    (e.is_spec_problem() && is_true(before, READY) != Some(false))
        .then(|| Note::new(true, e.reason(), "Reconcile", e.to_string()))
}
