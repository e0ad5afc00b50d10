//! The judgement of a pipeline's raw events' schema (pure): the last closed window folded into
//! the learned schema, the baseline taken (the first window with enough events) or replaced (a
//! new value of the accept annotation), and the window's drift from the baseline, as the next
//! `RawEventSchema` status and the pipeline's `SchemaDrift` condition.

use impressions_crds::raw_schema::{
    Baseline, INITIAL_BASELINE, RawEventSchemaStatus, SchemaDriftStatus,
};
use impressions_worker_core::schema::{Drift, DriftKind, Observation, Thresholds, detect};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    learned::{fold, window_status},
    windows::ClosedWindow,
};

/// Drifts named in the condition's message; the status lists them all.
pub const CONDITION_DRIFTS: usize = 12;

/// What the pipeline's `SchemaDrift` condition says.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftCondition {
    /// `None` for Unknown.
    pub status: Option<bool>,
    pub reason: String,
    pub message: String,
}

/// A baseline this judgement took.
#[derive(Debug, Clone, PartialEq)]
pub enum Taken {
    /// The first window with enough events.
    Initial,
    /// The owner's accept, with the annotation's value.
    Accepted(String),
}

/// The outcome of one judgement.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub status: RawEventSchemaStatus,
    /// The drifts of the last window (those of the status when no window was judged now).
    pub drifts: Vec<Drift>,
    pub taken: Option<Taken>,
    pub condition: DriftCondition,
}

/// Judges `window` (the pipeline's last closed window with events, if the operator has one)
/// against the status `before`, with the accept annotation's value `accept`.
pub fn judge(
    before: Option<&RawEventSchemaStatus>,
    accept: Option<&str>,
    window: Option<&ClosedWindow>,
    th: &Thresholds,
    now: &Time,
) -> Judgement {
    let mut s = before.cloned().unwrap_or_default();
    let accept = accept.map(str::trim).filter(|v| !v.is_empty());
    let mut taken = None;
    let mut drifts = Vec::new();
    if let Some(w) = window {
        s.event_types = fold(&s.event_types, w);
        s.window = Some(window_status(w));
        let wanted = match (&s.baseline, accept) {
            (None, _) if w.observation.events_sampled >= th.min_events => {
                Some(accept.map_or(Taken::Initial, |v| Taken::Accepted(v.to_owned())))
            }
            (Some(b), Some(v)) if b.accepted != v => Some(Taken::Accepted(v.to_owned())),
            _ => None,
        };
        if let Some(t) = wanted {
            s.baseline = Some(Baseline {
                accepted: match &t {
                    Taken::Initial => INITIAL_BASELINE.to_owned(),
                    Taken::Accepted(v) => v.clone(),
                },
                accepted_at: now.clone(),
                window: window_status(w),
                observation: serde_json::to_string(&counts_only(&w.observation))
                    .unwrap_or_default(),
            });
            taken = Some(t);
        }
        if let Some(base) = s.baseline.as_ref().and_then(baseline_observation) {
            drifts = detect(&base, &w.observation, th);
            s.drifts = drifts.iter().map(drift_status).collect();
        }
    }
    s.event_type_count = s.event_types.len() as u32;
    s.drift_count = s.drifts.len() as u32;
    let condition = condition(&s, th);
    Judgement {
        status: s,
        drifts,
        taken,
        condition,
    }
}

/// What drift is measured against, without what it does not read (the client versions: a
/// drift names those of the current window; the fields' times), to keep the status small.
fn counts_only(o: &Observation) -> Observation {
    let mut o = o.clone();
    for t in o.event_types.values_mut() {
        t.versions = Default::default();
        for f in t.fields.values_mut() {
            f.versions = Default::default();
            (f.first_seen_ms, f.last_seen_ms) = (0, 0);
        }
    }
    o
}

/// The baseline's observation (`None` if it does not read as one).
fn baseline_observation(b: &Baseline) -> Option<Observation> {
    serde_json::from_str(&b.observation).ok()
}

fn drift_status(d: &Drift) -> SchemaDriftStatus {
    SchemaDriftStatus {
        kind: kind_name(d.kind).to_owned(),
        event_type: d.event_type.clone(),
        path: d.path.clone(),
        message: d.to_string(),
    }
}

/// The kind as the condition's reason and the status show it.
pub fn kind_name(k: DriftKind) -> &'static str {
    match k {
        DriftKind::NewEventType => "NewEventType",
        DriftKind::NewField => "NewField",
        DriftKind::FieldGone => "FieldGone",
        DriftKind::TypeChanged => "TypeChanged",
        DriftKind::PresenceDropped => "PresenceDropped",
        DriftKind::PresenceJumped => "PresenceJumped",
    }
}

/// The condition from the status: its drifts by kind and field, without the numbers (which
/// move every window and are in the status and the Events), so that it changes only when the
/// drifts do.
fn condition(s: &RawEventSchemaStatus, th: &Thresholds) -> DriftCondition {
    let Some(b) = &s.baseline else {
        return DriftCondition {
            status: None,
            reason: "NoBaseline".into(),
            message: format!(
                "no window with at least {} sampled events learned yet",
                th.min_events
            ),
        };
    };
    if s.drifts.is_empty() {
        return DriftCondition {
            status: Some(false),
            reason: "NoDrift".into(),
            message: format!(
                "the last window matches the baseline accepted as {:?}",
                b.accepted
            ),
        };
    }
    let kinds: Vec<&str> = DriftKind::ALL
        .iter()
        .map(|k| kind_name(*k))
        .filter(|k| s.drifts.iter().any(|d| d.kind == *k))
        .collect();
    let mut parts: Vec<String> = s
        .drifts
        .iter()
        .take(CONDITION_DRIFTS)
        .map(|d| match &d.path {
            Some(p) => format!("{} {}: {p}", d.kind, d.event_type),
            None => format!("{} {}", d.kind, d.event_type),
        })
        .collect();
    if s.drifts.len() > CONDITION_DRIFTS {
        parts.push(format!("and {} more", s.drifts.len() - CONDITION_DRIFTS));
    }
    DriftCondition {
        status: Some(true),
        reason: kinds.join(","),
        message: format!(
            "{} (from the baseline accepted as {:?}; numbers in the RawEventSchema's status.drifts)",
            parts.join("; "),
            b.accepted
        ),
    }
}

#[cfg(test)]
mod tests {
    use impressions_worker_core::schema::{Learner, LearnerConfig, report::WindowBounds};

    use super::*;
    use crate::schema::learned::time_of;

    /// A window of `n` events: `{"eventType":"imp","a":1}` with `extra` fields in the first
    /// `with` of them.
    fn window(n: usize, with: usize, extra: &str, end_ms: i64) -> ClosedWindow {
        let mut l = Learner::new(&LearnerConfig {
            sample_one_in: 1,
            ..LearnerConfig::default()
        });
        for i in 0..n {
            let e = if i < with {
                format!(r#"{{"eventType":"imp","a":1,{extra}}}"#)
            } else {
                r#"{"eventType":"imp","a":1}"#.to_owned()
            };
            l.offer(e.as_bytes(), end_ms - 1_000);
        }
        ClosedWindow {
            bounds: WindowBounds {
                start_ms: end_ms - 10_000,
                end_ms,
            },
            boundary_ms: end_ms,
            window_seconds: 10,
            pods: 2,
            observation: l.take(),
        }
    }

    fn now() -> Time {
        time_of(1_000_000)
    }

    #[test]
    fn no_window_no_baseline_is_unknown() {
        let j = judge(None, None, None, &Thresholds::default(), &now());
        assert_eq!(j.condition.status, None);
        assert_eq!(j.condition.reason, "NoBaseline");
        assert_eq!(j.taken, None);
        // A window with too few events is learned but does not become the baseline.
        let w = window(50, 0, "", 10_000);
        let j = judge(None, None, Some(&w), &Thresholds::default(), &now());
        assert_eq!(j.condition.reason, "NoBaseline");
        assert_eq!(j.status.event_type_count, 1);
        assert!(j.status.baseline.is_none());
    }

    #[test]
    fn the_first_window_becomes_the_baseline_then_a_new_field_drifts_until_accepted() {
        let th = Thresholds::default();
        let w1 = window(1000, 0, "", 10_000);
        let j1 = judge(None, None, Some(&w1), &th, &now());
        assert_eq!(j1.taken, Some(Taken::Initial));
        assert_eq!(j1.status.baseline.as_ref().unwrap().accepted, "initial");
        assert_eq!(j1.status.baseline.as_ref().unwrap().window.pods, 2);
        let kept = baseline_observation(j1.status.baseline.as_ref().unwrap()).unwrap();
        assert_eq!(
            kept,
            counts_only(&w1.observation),
            "the counts, without versions"
        );
        assert_eq!(kept.event_types["imp"].events, 1000);
        assert_eq!(j1.condition.status, Some(false));
        assert_eq!(j1.condition.reason, "NoDrift");

        let w2 = window(1000, 300, r#""hints":{"x":true}"#, 20_000);
        let j2 = judge(Some(&j1.status), None, Some(&w2), &th, &now());
        assert_eq!(j2.taken, None);
        assert_eq!(j2.condition.status, Some(true));
        assert_eq!(j2.condition.reason, "NewField");
        assert!(
            j2.condition
                .message
                .starts_with("NewField imp: hints (from the baseline"),
            "{}",
            j2.condition.message
        );
        assert_eq!(j2.status.drift_count, 1);
        assert_eq!(j2.status.drifts[0].path.as_deref(), Some("hints"));
        assert!(
            j2.status.drifts[0]
                .message
                .contains("new field hints in 30.0%")
        );
        assert_eq!(j2.drifts.len(), 1);
        // The same window judged again: the same status (nothing to write).
        assert_eq!(judge(Some(&j2.status), None, Some(&w2), &th, &now()), j2);
        // No window (e.g. after a restart): the drifts stay as the status has them.
        let idle = judge(Some(&j2.status), None, None, &th, &now());
        assert_eq!(idle.condition, j2.condition);

        // Accepting takes the window as the baseline: the drift clears…
        let j3 = judge(Some(&j2.status), Some("1764590400"), Some(&w2), &th, &now());
        assert_eq!(j3.taken, Some(Taken::Accepted("1764590400".into())));
        assert_eq!(j3.condition.reason, "NoDrift");
        assert!(j3.status.drifts.is_empty());
        // …and the same value is not applied again, a new one is.
        let w3 = window(1000, 0, "", 30_000);
        let j4 = judge(Some(&j3.status), Some("1764590400"), Some(&w3), &th, &now());
        assert_eq!(j4.taken, None);
        assert_eq!(j4.condition.reason, "FieldGone");
        assert!(j4.condition.message.contains("imp: hints"));
        let j5 = judge(Some(&j4.status), Some("again"), Some(&w3), &th, &now());
        assert_eq!(j5.taken, Some(Taken::Accepted("again".into())));
        assert_eq!(j5.condition.reason, "NoDrift");
    }

    #[test]
    fn several_kinds_are_named_in_the_reason_in_a_fixed_order() {
        let th = Thresholds::default();
        let j1 = judge(
            None,
            None,
            Some(&window(1000, 1000, r#""b":1"#, 10_000)),
            &th,
            &now(),
        );
        // b now a string in 300 events and gone from the rest; c new.
        let w2 = window(1000, 300, r#""b":"x","c":2"#, 20_000);
        let j2 = judge(Some(&j1.status), None, Some(&w2), &th, &now());
        assert_eq!(j2.condition.reason, "NewField,TypeChanged,PresenceDropped");
    }

    #[test]
    fn an_accept_before_the_first_baseline_names_it() {
        let th = Thresholds::default();
        let j = judge(
            None,
            Some(" v1 "),
            Some(&window(1000, 0, "", 10_000)),
            &th,
            &now(),
        );
        assert_eq!(j.taken, Some(Taken::Accepted("v1".into())));
        assert_eq!(j.status.baseline.unwrap().accepted, "v1");
    }
}
