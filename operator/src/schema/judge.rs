//! The judgement of a pipeline's raw events' schema (pure): the last closed window folded into
//! the learned schema, the baseline taken (the first window with enough events) or replaced (a
//! new value of the accept annotation), and the window's drift from the baseline, as the next
//! `RawEventSchema` status and the pipeline's `SchemaDrift` condition.

use impressions_crds::{
    raw_schema::{Baseline, INITIAL_BASELINE, RawEventSchemaStatus, SchemaDriftStatus},
    schema::DriftSpec,
};
use impressions_worker_core::schema::{Drift, DriftKind, Observation, Thresholds, detect};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    learned::{MAX_EVENT_TYPES, MAX_NAME_BYTES, fold, overflow_status, window_status},
    windows::ClosedWindow,
};

/// Drifts named in the condition's message.
pub const CONDITION_DRIFTS: usize = 12;
/// Drifts listed in the status (`driftCount` counts them all).
pub const STATUS_DRIFTS: usize = 64;
/// Paths the baseline keeps per event type, and in all: the workers' default budget per type.
/// Beyond, the paths present in the fewest events are counted in the type's `pathsOverflow`,
/// which drift reads as "over budget" (no NewField from a baseline that may lack the path).
pub const BASELINE_PATHS: usize = 256;
pub const BASELINE_PATHS_TOTAL: usize = 1024;

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

/// The drift thresholds of a pipeline's `spec.schema.drift`.
pub fn thresholds(d: &DriftSpec) -> Thresholds {
    Thresholds {
        min_events: d.min_events,
        min_z: d.min_z,
        new_min_share: d.new_min_share,
        presence_min_change: d.presence_min_change,
        gone_min_presence: d.gone_min_presence,
        type_sent_share: d.type_sent_share,
        type_absent_share: d.type_absent_share,
    }
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
        let (types, overflow) = fold(&s.event_types, w);
        s.event_types = types;
        s.overflow = overflow_status(overflow);
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
            s.drifts = drifts
                .iter()
                .take(STATUS_DRIFTS)
                .map(drift_status)
                .collect();
            s.drift_count = drifts.len() as u32;
        }
    }
    s.event_type_count = s.event_types.len() as u32;
    let condition = condition(&s, th);
    Judgement {
        status: s,
        drifts,
        taken,
        condition,
    }
}

/// What drift is measured against, without what it does not read (the client versions: a
/// drift names those of the current window; the fields' times), and bounded, to keep the
/// status small: at most [`MAX_EVENT_TYPES`] event types (those with the most events),
/// [`BASELINE_PATHS`] paths per type and [`BASELINE_PATHS_TOTAL`] in all (those present in the
/// most events), names of at most [`MAX_NAME_BYTES`]; what is left out is counted in the
/// overflow counts, as the workers' budget does.
fn counts_only(o: &Observation) -> Observation {
    let mut o = o.clone();
    let mut types: Vec<(u64, String)> = o
        .event_types
        .iter()
        .map(|(k, t)| (t.events, k.clone()))
        .collect();
    types.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    for (i, (events, name)) in types.into_iter().enumerate() {
        if i >= MAX_EVENT_TYPES || name.len() > MAX_NAME_BYTES {
            o.event_types.remove(&name);
            o.event_types_overflow += events;
        }
    }
    let mut paths: Vec<(u64, String, String)> = Vec::new();
    for (name, t) in o.event_types.iter_mut() {
        t.versions = Default::default();
        let mut mine: Vec<(u64, String, String)> = t
            .fields
            .iter()
            .map(|(p, f)| (f.present, name.clone(), p.clone()))
            .collect();
        mine.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.2.cmp(&b.2)));
        for (present, _, path) in mine.drain(BASELINE_PATHS.min(mine.len())..) {
            t.fields.remove(&path);
            t.paths_overflow += present;
        }
        for f in t.fields.values_mut() {
            f.versions = Default::default();
            (f.first_seen_ms, f.last_seen_ms) = (0, 0);
        }
        paths.extend(mine);
    }
    paths.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| (&a.1, &a.2).cmp(&(&b.1, &b.2))));
    let long = paths.iter().filter(|p| p.2.len() > MAX_NAME_BYTES).cloned();
    let beyond: Vec<_> = paths
        .iter()
        .filter(|p| p.2.len() <= MAX_NAME_BYTES)
        .skip(BASELINE_PATHS_TOTAL)
        .cloned()
        .chain(long)
        .collect();
    for (present, name, path) in beyond {
        if let Some(t) = o.event_types.get_mut(&name) {
            t.fields.remove(&path);
            t.paths_overflow += present;
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
mod tests;
