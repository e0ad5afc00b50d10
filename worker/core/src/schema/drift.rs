//! Drift: a learned schema (an [`Observation`], usually the merge of a pipeline's workers over
//! the last window) compared to the baseline its owner accepted. Each difference is a [`Drift`]
//! naming its kind, event type and path with the numbers before and after.
//!
//! A difference is reported only when it is large enough to matter ([`Thresholds`]: a presence
//! moving by less than `presenceMinChange` is noise, a type is sent or not with a band between)
//! and too large to be chance: a two-proportion z-test over the sampled counts must reach
//! `minZ`, so that a small window cannot raise a drift by luck. A drift implied by one at a
//! parent path is left out (a new object reports its root, not each of its fields).
//!
//! A side whose event type went over its path budget (`pathsOverflow` > 0) cannot tell a path
//! it lacks from one it dropped: a path missing there is neither new (missing from the
//! baseline) nor gone (missing from the current schema).

use std::{collections::BTreeMap, fmt};

use serde::{Deserialize, Serialize};

use super::{
    observation::{EventTypeShape, FieldShape, Observation, ratio},
    path::segments,
    types::JsonType,
};

/// The kinds of drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DriftKind {
    /// An event type the baseline does not have.
    NewEventType,
    /// A path the baseline's event type does not have.
    NewField,
    /// A path of the baseline no longer sent at all.
    FieldGone,
    /// A path sent with a type it was not sent with, or no longer with one it was.
    TypeChanged,
    /// A path present in a smaller share of the events.
    PresenceDropped,
    /// A path present in a larger share of the events.
    PresenceJumped,
}

impl DriftKind {
    pub const ALL: [DriftKind; 6] = [
        DriftKind::NewEventType,
        DriftKind::NewField,
        DriftKind::FieldGone,
        DriftKind::TypeChanged,
        DriftKind::PresenceDropped,
        DriftKind::PresenceJumped,
    ];

    /// The kind as a metric label value.
    pub fn label(self) -> &'static str {
        match self {
            DriftKind::NewEventType => "new_event_type",
            DriftKind::NewField => "new_field",
            DriftKind::FieldGone => "field_gone",
            DriftKind::TypeChanged => "type_changed",
            DriftKind::PresenceDropped => "presence_dropped",
            DriftKind::PresenceJumped => "presence_jumped",
        }
    }
}

/// When a difference is a drift.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Thresholds {
    /// Sampled events an event type needs on both sides before its fields are compared.
    pub min_events: u64,
    /// The z-score (two-proportion test on sampled counts) a change must reach.
    pub min_z: f64,
    /// A new field or event type is reported once present in at least this share of the events
    /// (of its type; of all events for a type).
    pub new_min_share: f64,
    /// A presence must move by at least this much (absolute, in [0, 1]).
    pub presence_min_change: f64,
    /// A path of the baseline must have been present in at least this share of the events for
    /// its disappearance to be reported.
    pub gone_min_presence: f64,
    /// A type is sent when it is in at least this share of a path's presences…
    pub type_sent_share: f64,
    /// …and not sent below this share (in between, neither appears nor disappears).
    pub type_absent_share: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            min_events: 100,
            min_z: 4.0,
            new_min_share: 0.01,
            presence_min_change: 0.10,
            gone_min_presence: 0.02,
            type_sent_share: 0.05,
            type_absent_share: 0.01,
        }
    }
}

/// The numbers of one side of a drift.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Side {
    /// Sampled events of the event type (of all types, for a [`DriftKind::NewEventType`]).
    pub events: u64,
    /// Sampled events with the path (of the type, for a [`DriftKind::NewEventType`]).
    pub present: u64,
    /// `present / events`.
    pub presence: f64,
    /// Per type, its share of the presences.
    pub types: BTreeMap<JsonType, f64>,
}

/// One difference between the baseline and the learned schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Drift {
    pub kind: DriftKind,
    pub event_type: String,
    /// The field path (none for a [`DriftKind::NewEventType`]).
    pub path: Option<String>,
    pub before: Side,
    pub after: Side,
    /// The newest client versions sending the path (or the event type) now.
    pub client_versions: Vec<String>,
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (b, a) = (&self.before, &self.after);
        let path = self.path.as_deref().unwrap_or("");
        let et = &self.event_type;
        match self.kind {
            DriftKind::NewEventType => write!(
                f,
                "new event type {et}: {:.1}% of the events",
                100.0 * a.presence
            )?,
            DriftKind::NewField => write!(
                f,
                "{et}: new field {path} in {:.1}% of the events",
                100.0 * a.presence
            )?,
            DriftKind::FieldGone => write!(
                f,
                "{et}: field {path} no longer sent (was in {:.1}% of the events)",
                100.0 * b.presence
            )?,
            DriftKind::TypeChanged => write!(
                f,
                "{et}: field {path} sent as {} (was {})",
                type_list(&a.types),
                type_list(&b.types)
            )?,
            DriftKind::PresenceDropped | DriftKind::PresenceJumped => write!(
                f,
                "{et}: field {path} in {:.1}% of the events (was {:.1}%)",
                100.0 * a.presence,
                100.0 * b.presence
            )?,
        }
        if !self.client_versions.is_empty() {
            write!(f, "; client versions {}", self.client_versions.join(", "))?;
        }
        Ok(())
    }
}

fn type_list(types: &BTreeMap<JsonType, f64>) -> String {
    let parts: Vec<String> = types
        .iter()
        .map(|(t, s)| format!("{t} {:.0}%", 100.0 * s))
        .collect();
    parts.join(", ")
}

/// The drifts of `current` from `baseline`, ordered by event type, path and kind.
pub fn detect(baseline: &Observation, current: &Observation, th: &Thresholds) -> Vec<Drift> {
    let mut out = Vec::new();
    let typed = |o: &Observation| o.event_types.values().map(|t| t.events).sum::<u64>();
    let (base_total, cur_total) = (typed(baseline), typed(current));
    for (name, cur) in &current.event_types {
        match baseline.event_types.get(name) {
            Some(base) => compare_type(name, base, cur, th, &mut out),
            None => {
                let share = ratio(cur.events, cur_total);
                if base_total >= th.min_events
                    && share >= th.new_min_share
                    && z(0, base_total, cur.events, cur_total) >= th.min_z
                {
                    out.push(Drift {
                        kind: DriftKind::NewEventType,
                        event_type: name.clone(),
                        path: None,
                        before: Side {
                            events: base_total,
                            ..Side::default()
                        },
                        after: Side {
                            events: cur_total,
                            present: cur.events,
                            presence: share,
                            types: BTreeMap::new(),
                        },
                        client_versions: cur.versions.names().map(str::to_owned).collect(),
                    });
                }
            }
        }
    }
    let mut out = drop_implied(out);
    out.sort_by(|a, b| (&a.event_type, &a.path, a.kind).cmp(&(&b.event_type, &b.path, b.kind)));
    out
}

/// The drifts of one event type present on both sides.
fn compare_type(
    name: &str,
    base: &EventTypeShape,
    cur: &EventTypeShape,
    th: &Thresholds,
    out: &mut Vec<Drift>,
) {
    if base.events < th.min_events || cur.events < th.min_events {
        return;
    }
    let (n1, n2) = (base.events, cur.events);
    let absent = FieldShape {
        present: 0,
        types: BTreeMap::new(),
        first_seen_ms: 0,
        last_seen_ms: 0,
        versions: Default::default(),
    };
    let paths = base.fields.keys().chain(
        cur.fields
            .keys()
            .filter(|p| !base.fields.contains_key(p.as_str())),
    );
    for path in paths {
        let b = base.fields.get(path).unwrap_or(&absent);
        let c = cur.fields.get(path).unwrap_or(&absent);
        let (x1, x2) = (b.present, c.present);
        let (p1, p2) = (ratio(x1, n1), ratio(x2, n2));
        let significant = z(x1, n1, x2, n2) >= th.min_z;
        let drift = |kind| Drift {
            kind,
            event_type: name.to_owned(),
            path: Some(path.clone()),
            before: side(b, n1),
            after: side(c, n2),
            client_versions: c.versions.names().map(str::to_owned).collect(),
        };
        if x1 == 0 {
            if base.paths_overflow == 0 && p2 >= th.new_min_share && significant {
                out.push(drift(DriftKind::NewField));
            }
            continue;
        }
        if x2 == 0 {
            if cur.paths_overflow == 0 && p1 >= th.gone_min_presence && significant {
                out.push(drift(DriftKind::FieldGone));
            }
            continue;
        }
        if significant && (p2 - p1).abs() >= th.presence_min_change {
            out.push(drift(if p2 < p1 {
                DriftKind::PresenceDropped
            } else {
                DriftKind::PresenceJumped
            }));
        }
        if x1 >= th.min_events && x2 >= th.min_events && types_changed(b, c, th) {
            out.push(drift(DriftKind::TypeChanged));
        }
    }
}

/// Whether a type is now sent that was not, or no longer sent that was. JSON Schema's
/// `integer` is a `number`: whole numbers appearing in a field of fractions (or the fractions
/// of a number field all happening to be whole) are no change.
fn types_changed(b: &FieldShape, c: &FieldShape, th: &Thresholds) -> bool {
    let sent = |f: &FieldShape, t| f.type_share(t) >= th.type_sent_share;
    let absent = |f: &FieldShape, t| f.type_share(t) < th.type_absent_share;
    JsonType::ALL.iter().any(|&t| {
        let number_covers = t == JsonType::Integer;
        let appeared = sent(c, t) && absent(b, t) && !(number_covers && sent(b, JsonType::Number));
        let vanished = sent(b, t) && absent(c, t) && !(number_covers && sent(c, JsonType::Number));
        appeared || vanished
    })
}

fn side(f: &FieldShape, events: u64) -> Side {
    Side {
        events,
        present: f.present,
        presence: ratio(f.present, events),
        types: f
            .types
            .iter()
            .map(|(t, n)| (*t, ratio(*n, f.present)))
            .collect(),
    }
}

/// The two-proportion z-score of `x1/n1` against `x2/n2` (pooled variance; 0 when either side
/// has no events or nothing varies).
fn z(x1: u64, n1: u64, x2: u64, n2: u64) -> f64 {
    if n1 == 0 || n2 == 0 {
        return 0.0;
    }
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let pooled = (x1 + x2) as f64 / (n1f + n2f);
    let var = pooled * (1.0 - pooled) * (1.0 / n1f + 1.0 / n2f);
    if var <= 0.0 {
        return 0.0;
    }
    (x1 as f64 / n1f - x2 as f64 / n2f).abs() / var.sqrt()
}

/// Leaves out drifts implied by a drift at a parent path of the same event type: the fields of
/// a new (or retyped) object are new, the fields of an object sent less are sent less.
fn drop_implied(drifts: Vec<Drift>) -> Vec<Drift> {
    use DriftKind::*;
    let implies = |parent: DriftKind, child: DriftKind| match child {
        NewField => matches!(parent, NewField | TypeChanged),
        FieldGone | PresenceDropped => matches!(parent, FieldGone | PresenceDropped | TypeChanged),
        PresenceJumped => matches!(parent, PresenceJumped | NewField),
        TypeChanged | NewEventType => false,
    };
    let keep: Vec<bool> = drifts
        .iter()
        .map(|d| {
            let Some(path) = &d.path else { return true };
            let segs = segments(path);
            !drifts.iter().any(|p| {
                p.event_type == d.event_type
                    && implies(p.kind, d.kind)
                    && p.path.as_ref().is_some_and(|pp| {
                        let ps = segments(pp);
                        ps.len() < segs.len() && segs[..ps.len()] == ps[..]
                    })
            })
        })
        .collect();
    drifts
        .into_iter()
        .zip(keep)
        .filter_map(|(d, k)| k.then_some(d))
        .collect()
}

#[cfg(test)]
mod tests;
