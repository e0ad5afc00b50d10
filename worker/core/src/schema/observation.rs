//! What a worker publishes at the end of a window: per event type, every field path with the
//! number of (sampled) events it was present in, its types, first and last seen and the client
//! versions sending it. Everything is a count, so observations of several workers (or several
//! windows) merge by adding; the merge keeps the budget by dropping the last entries of a fixed
//! order (event types by name, paths shallowest first then by name) into the overflow counts,
//! which makes it commutative and associative (`tests/schema_merge.rs` checks both).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{path, types::JsonType, versions::Versions};

/// How much an observation may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Budget {
    /// Event types learned; events of further types are counted in `eventTypesOverflow`.
    pub max_event_types: usize,
    /// Field paths learned per event type; further paths are counted in `pathsOverflow`.
    pub max_paths: usize,
    /// Client versions kept per event type and per field (the newest).
    pub max_versions: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            max_event_types: 32,
            max_paths: 256,
            max_versions: 8,
        }
    }
}

/// The time covered, in milliseconds since the Unix epoch (event time of the sampled events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Window {
    pub start_ms: i64,
    pub end_ms: i64,
}

/// The shape of the raw events seen over a window, by one or several workers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Observation {
    /// `None` when nothing was sampled.
    pub window: Option<Window>,
    /// Events offered to the learner.
    pub events_seen: u64,
    /// Events sampled (walked); the counts below are of sampled events.
    pub events_sampled: u64,
    /// Sampled events that were not a JSON object (not UTF-8, not JSON, not an object).
    pub unparsed: u64,
    pub event_types: BTreeMap<String, EventTypeShape>,
    /// Sampled events of event types beyond the budget.
    pub event_types_overflow: u64,
}

/// The shape of one event type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventTypeShape {
    /// Sampled events of this type.
    pub events: u64,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub fields: BTreeMap<String, FieldShape>,
    /// Presences (one per event and path) of paths beyond the budget.
    pub paths_overflow: u64,
    /// Values left out by the walk's bounds (depth, array items, values per event).
    pub values_truncated: u64,
    /// The client versions sending this event type.
    pub versions: Versions,
}

/// The shape of one field path of an event type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldShape {
    /// Sampled events in which the path was present (with any value, `null` included).
    pub present: u64,
    /// Per type, the sampled events in which the path had a value of that type (an array's
    /// items may have several types in one event).
    pub types: BTreeMap<JsonType, u64>,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    /// The client versions sending this field.
    pub versions: Versions,
}

impl Observation {
    /// Adds `other` into `self`, keeping `budget`.
    pub fn merge(&mut self, other: &Observation, budget: &Budget) {
        self.window = match (self.window, other.window) {
            (Some(a), Some(b)) => Some(Window {
                start_ms: a.start_ms.min(b.start_ms),
                end_ms: a.end_ms.max(b.end_ms),
            }),
            (a, b) => a.or(b),
        };
        self.events_seen += other.events_seen;
        self.events_sampled += other.events_sampled;
        self.unparsed += other.unparsed;
        self.event_types_overflow += other.event_types_overflow;
        for (name, shape) in &other.event_types {
            match self.event_types.get_mut(name) {
                Some(mine) => mine.merge(shape, budget),
                None => {
                    self.event_types.insert(name.clone(), shape.clone());
                }
            }
        }
        // Both sides are brought within the budget, whichever was over it.
        for shape in self.event_types.values_mut() {
            shape.keep(budget);
        }
        while self.event_types.len() > budget.max_event_types {
            if let Some((_, dropped)) = self.event_types.pop_last() {
                self.event_types_overflow += dropped.events;
            }
        }
    }

    /// The merge of many observations.
    pub fn merged<'a>(all: impl IntoIterator<Item = &'a Observation>, budget: &Budget) -> Self {
        let mut out = Observation::default();
        for o in all {
            out.merge(o, budget);
        }
        out
    }
}

impl EventTypeShape {
    /// Presence of `path` in this event type, in [0, 1] (0 for an unknown path).
    pub fn presence(&self, path: &str) -> f64 {
        self.fields
            .get(path)
            .map_or(0.0, |f| ratio(f.present, self.events))
    }

    /// Adds `other` into `self`, leaving the budget to [`EventTypeShape::keep`].
    fn merge(&mut self, other: &EventTypeShape, budget: &Budget) {
        self.events += other.events;
        self.first_seen_ms = self.first_seen_ms.min(other.first_seen_ms);
        self.last_seen_ms = self.last_seen_ms.max(other.last_seen_ms);
        self.paths_overflow += other.paths_overflow;
        self.values_truncated += other.values_truncated;
        self.versions.merge(&other.versions, budget.max_versions);
        for (p, f) in &other.fields {
            match self.fields.get_mut(p) {
                Some(mine) => mine.merge(f, budget),
                None => {
                    self.fields.insert(p.clone(), f.clone());
                }
            }
        }
    }

    /// Brings the shape within the budget: the newest versions, and the paths beyond the budget
    /// (the deepest, then the last by name) dropped into the overflow.
    fn keep(&mut self, budget: &Budget) {
        self.versions
            .merge(&Versions::default(), budget.max_versions);
        for f in self.fields.values_mut() {
            f.versions.merge(&Versions::default(), budget.max_versions);
        }
        if self.fields.len() <= budget.max_paths {
            return;
        }
        let mut order: Vec<(usize, String)> = self
            .fields
            .keys()
            .map(|p| (path::depth(p), p.clone()))
            .collect();
        order.sort();
        for (_, p) in order.drain(budget.max_paths..) {
            if let Some(f) = self.fields.remove(&p) {
                self.paths_overflow += f.present;
            }
        }
    }
}

impl FieldShape {
    fn merge(&mut self, other: &FieldShape, budget: &Budget) {
        self.present += other.present;
        for (t, n) in &other.types {
            *self.types.entry(*t).or_default() += n;
        }
        self.first_seen_ms = self.first_seen_ms.min(other.first_seen_ms);
        self.last_seen_ms = self.last_seen_ms.max(other.last_seen_ms);
        self.versions.merge(&other.versions, budget.max_versions);
    }

    /// The share of the events with the field that had type `t`, in [0, 1].
    pub fn type_share(&self, t: JsonType) -> f64 {
        ratio(self.types.get(&t).copied().unwrap_or(0), self.present)
    }
}

/// `n / d`, 0 when `d` is 0.
pub(crate) fn ratio(n: u64, d: u64) -> f64 {
    if d == 0 { 0.0 } else { n as f64 / d as f64 }
}
