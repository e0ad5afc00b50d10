//! Which Events a reconcile publishes, from the status before and after it: pure, so every
//! transition is tested without a cluster.

use impressions_crds::{
    ImpressionPipelineStatus,
    conditions::{self, DATA_QUALITY, DEGRADED, READY},
    scaling::ScalingMode,
};

use super::{raw_schema::SchemaOutcome, status::is_true};
use crate::{autoscale::model::Evaluation, error::Error, quality::assess, schema::judge::Taken};

/// An Event about a pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    /// Warning, else Normal.
    pub warning: bool,
    /// CamelCase.
    pub reason: String,
    /// What the operator was doing: Apply, Reconcile, Scale, DataQuality, Schema.
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

/// The longest note of a schema Event (the drifts with their numbers; the status lists all).
pub const SCHEMA_NOTE_MAX: usize = 1000;

/// The Events of the schema step: a baseline taken (the first, or accepted), drift found or
/// changed (a Warning with each drift's numbers and client versions), drift cleared. Only on
/// change: the same drifts window after window raise one Event.
pub fn on_schema(before: Option<&ImpressionPipelineStatus>, outcome: &SchemaOutcome) -> Vec<Note> {
    let SchemaOutcome::Judged(j) = outcome else {
        return Vec::new();
    };
    let mut out = Vec::new();
    match &j.taken {
        Some(Taken::Initial) => {
            let w = j.status.window.as_ref();
            out.push(Note::new(
                false,
                "SchemaBaselineLearned",
                "Schema",
                format!(
                    "the first learned schema is the baseline: {} event types, {} sampled events from {} workers",
                    j.status.event_type_count,
                    w.map_or(0, |w| w.events_sampled),
                    w.map_or(0, |w| w.pods)
                ),
            ))
        }
        Some(Taken::Accepted(v)) => out.push(Note::new(
            false,
            "SchemaAccepted",
            "Schema",
            format!(
                "the learned schema of the last window is the baseline ({}={v})",
                impressions_crds::raw_schema::ACCEPT_ANNOTATION
            ),
        )),
        None => {}
    }
    let prev = before.and_then(|s| conditions::get(&s.conditions, conditions::SCHEMA_DRIFT));
    let c = &j.condition;
    let was_drift = prev.is_some_and(|p| p.status == "True");
    let same = prev.is_some_and(|p| p.reason == c.reason && p.message == c.message);
    if c.status == Some(true) && !same {
        let mut note: String = j
            .status
            .drifts
            .iter()
            .map(|d| d.message.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        if note.len() > SCHEMA_NOTE_MAX {
            let cut = (0..=SCHEMA_NOTE_MAX)
                .rev()
                .find(|i| note.is_char_boundary(*i))
                .unwrap_or(0);
            note.truncate(cut);
            note.push('…');
        }
        out.push(Note::new(true, "SchemaDrift", "Schema", note));
    } else if c.status == Some(false) && was_drift {
        out.push(Note::new(
            false,
            "SchemaDriftCleared",
            "Schema",
            c.message.clone(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use impressions_crds::raw_schema::{RawEventSchemaStatus, SchemaDriftStatus};
    use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};

    use super::*;
    use crate::schema::judge::{DriftCondition, Judgement};

    fn judged(status: Option<bool>, reason: &str, taken: Option<Taken>) -> SchemaOutcome {
        let drifts = if status == Some(true) {
            vec![SchemaDriftStatus {
                kind: "NewField".into(),
                event_type: "imp".into(),
                path: Some("hints".into()),
                message: "imp: new field hints in 30.0% of the events".into(),
            }]
        } else {
            Vec::new()
        };
        SchemaOutcome::Judged(Box::new(Judgement {
            status: RawEventSchemaStatus {
                drifts,
                ..Default::default()
            },
            drifts: Vec::new(),
            taken,
            condition: DriftCondition {
                status,
                reason: reason.into(),
                message: format!("{reason} message"),
            },
        }))
    }

    fn with_condition(o: &SchemaOutcome) -> ImpressionPipelineStatus {
        let mut s = ImpressionPipelineStatus::default();
        let now = Time(Timestamp::from_second(1).unwrap());
        super::super::status::with_schema(&mut s, None, o, &now);
        s
    }

    fn reasons(n: &[Note]) -> Vec<(bool, &str)> {
        n.iter().map(|n| (n.warning, n.reason.as_str())).collect()
    }

    #[test]
    fn schema_events_only_on_change() {
        let first = judged(Some(false), "NoDrift", Some(Taken::Initial));
        assert_eq!(
            reasons(&on_schema(None, &first)),
            [(false, "SchemaBaselineLearned")]
        );
        let calm = with_condition(&first);
        let drift = judged(Some(true), "NewField", None);
        let n = on_schema(Some(&calm), &drift);
        assert_eq!(reasons(&n), [(true, "SchemaDrift")]);
        assert_eq!(n[0].note, "imp: new field hints in 30.0% of the events");
        // The same drift in the next window: no Event.
        let drifting = with_condition(&drift);
        assert!(on_schema(Some(&drifting), &drift).is_empty());
        // Accepted: cleared.
        let accepted = judged(Some(false), "NoDrift", Some(Taken::Accepted("t1".into())));
        let n = on_schema(Some(&drifting), &accepted);
        assert_eq!(
            reasons(&n),
            [(false, "SchemaAccepted"), (false, "SchemaDriftCleared")]
        );
        assert!(n[0].note.contains("impressions.dev/schema-accept=t1"));
        assert!(on_schema(Some(&drifting), &SchemaOutcome::NoWindow).is_empty());
    }
}
