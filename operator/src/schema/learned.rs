//! The learned schema kept in a `RawEventSchema`'s status (pure): a closed window folded into
//! what the status held. Per event type and field: the types and presence of the last window,
//! first and last seen over every window folded (kept across operator restarts by the status
//! itself), the newest client versions. Folding the same window twice gives the same status, so
//! a reconcile that runs again for one window writes nothing.

use std::collections::BTreeMap;

use impressions_crds::raw_schema::{LearnedEventType, LearnedField, SchemaOverflow, SchemaWindow};
use impressions_worker_core::schema::{
    EventTypeShape, FieldShape,
    json_schema::{RenderOptions, event_type_schema},
    versions,
};
use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};

use super::windows::ClosedWindow;

/// Event types kept in the status; beyond, those seen longest ago (then with the fewest
/// events) are dropped.
pub const MAX_EVENT_TYPES: usize = 32;
/// Fields kept per event type in the status (drift is judged on every path of the
/// observations, up to the workers' budget).
pub const MAX_FIELDS: usize = 128;
/// Fields kept in the status over all event types: the status's budget of paths. Beyond, the
/// fields present in the smallest share of their type's events (then seen longest ago) are left
/// out and counted (`fieldsOverflow`), so that a client sending a new key per event (an id as a
/// key) fills the overflow count, not the resource.
pub const MAX_STATUS_FIELDS: usize = 512;
/// The longest event type name or field path kept in the status, in bytes; longer ones are
/// counted as overflow.
pub const MAX_NAME_BYTES: usize = 128;
/// The longest client version listed, in bytes; longer ones are not listed.
pub const MAX_VERSION_BYTES: usize = 64;
/// Client versions listed per event type (the newest).
pub const MAX_VERSIONS: usize = 8;
/// Client versions listed per field (the newest).
pub const MAX_FIELD_VERSIONS: usize = 4;

/// A time in ms since the epoch, to the second (as the API server keeps it, so that a status
/// read back compares equal to the one written).
pub fn time_of(ms: i64) -> Time {
    Time(Timestamp::from_second(ms.div_euclid(1000)).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// A share rounded to 4 decimals (a status that does not jitter in the last digits).
pub fn share(n: u64, d: u64) -> f64 {
    if d == 0 {
        return 0.0;
    }
    (n as f64 / d as f64 * 10_000.0).round() / 10_000.0
}

/// The window as the status shows it.
pub fn window_status(w: &ClosedWindow) -> SchemaWindow {
    SchemaWindow {
        start: time_of(w.bounds.start_ms),
        end: time_of(w.bounds.end_ms),
        pods: w.pods,
        events_seen: w.observation.events_seen,
        events_sampled: w.observation.events_sampled,
    }
}

/// `before` with the window `w` folded in, within the status's budget: at most
/// [`MAX_EVENT_TYPES`] event types, [`MAX_FIELDS`] fields per type and [`MAX_STATUS_FIELDS`] in
/// all, names of at most [`MAX_NAME_BYTES`]. What the window had beyond is counted in the
/// returned [`Overflow`].
pub fn fold(
    before: &BTreeMap<String, LearnedEventType>,
    w: &ClosedWindow,
) -> (BTreeMap<String, LearnedEventType>, Overflow) {
    let mut out = before.clone();
    let mut overflow = Overflow {
        worker_event_types: w.observation.event_types_overflow,
        ..Overflow::default()
    };
    // Not seen in this window: no events, every field absent.
    for t in out.values_mut() {
        t.events = 0;
        t.fields_overflow = 0;
        t.worker_paths_overflow = 0;
        for f in t.fields.values_mut() {
            f.presence = 0.0;
            f.types.clear();
        }
    }
    for (name, shape) in &w.observation.event_types {
        overflow.worker_paths += shape.paths_overflow;
        if name.len() > MAX_NAME_BYTES {
            continue;
        }
        let seen = (shape.first_seen_ms, shape.last_seen_ms);
        let t = out.entry(name.clone()).or_insert_with(|| LearnedEventType {
            events: 0,
            first_seen: time_of(seen.0),
            last_seen: time_of(seen.1),
            client_versions: Vec::new(),
            json_schema: None,
            fields: BTreeMap::new(),
            fields_overflow: 0,
            worker_paths_overflow: 0,
        });
        t.events = shape.events;
        t.worker_paths_overflow = shape.paths_overflow;
        widen(&mut t.first_seen, &mut t.last_seen, seen);
        t.client_versions = newest(&t.client_versions, shape.versions.names(), MAX_VERSIONS);
        for (path, f) in shape
            .fields
            .iter()
            .filter(|(p, _)| p.len() <= MAX_NAME_BYTES)
        {
            fold_field(t, shape, path, f);
        }
    }
    keep_event_types(&mut out);
    keep_fields(&mut out);
    let opts = RenderOptions::default();
    for (name, shape) in &w.observation.event_types {
        let Some(t) = out.get_mut(name) else {
            overflow.event_types += 1;
            continue;
        };
        let mut kept = shape.clone();
        kept.fields.retain(|p, _| t.fields.contains_key(p));
        t.fields_overflow = (shape.fields.len() - kept.fields.len()) as u64;
        overflow.fields += t.fields_overflow;
        let mut schema = event_type_schema(name, &kept, &opts);
        strip_annotations(&mut schema);
        t.json_schema = Some(schema);
    }
    (out, overflow)
}

/// What a window had beyond the status's budget, and the workers' own overflow counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overflow {
    /// Event types of the window not kept in the status.
    pub event_types: u64,
    /// Field paths of the window not kept in the status (over the event types kept).
    pub fields: u64,
    /// Presences of paths beyond the workers' budget (their `pathsOverflow`, all types).
    pub worker_paths: u64,
    /// Sampled events of event types beyond the workers' budget.
    pub worker_event_types: u64,
}

/// The status's overflow section: `None` when nothing went past a budget.
pub fn overflow_status(o: Overflow) -> Option<SchemaOverflow> {
    (o != Overflow::default()).then_some(SchemaOverflow {
        event_types: o.event_types,
        fields: o.fields,
        worker_paths: o.worker_paths,
        worker_event_types: o.worker_event_types,
    })
}

fn fold_field(t: &mut LearnedEventType, shape: &EventTypeShape, path: &str, f: &FieldShape) {
    let seen = (f.first_seen_ms, f.last_seen_ms);
    let field = t
        .fields
        .entry(path.to_owned())
        .or_insert_with(|| LearnedField {
            types: Vec::new(),
            presence: 0.0,
            first_seen: time_of(seen.0),
            last_seen: time_of(seen.1),
            client_versions: Vec::new(),
        });
    field.types = f
        .types
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(t, _)| t.to_string())
        .collect();
    field.presence = share(f.present, shape.events);
    widen(&mut field.first_seen, &mut field.last_seen, seen);
    field.client_versions = newest(
        &field.client_versions,
        f.versions.names(),
        MAX_FIELD_VERSIONS,
    );
}

/// Keeps the [`MAX_EVENT_TYPES`] event types seen last (then with the most events, then by
/// name).
fn keep_event_types(m: &mut BTreeMap<String, LearnedEventType>) {
    if m.len() <= MAX_EVENT_TYPES {
        return;
    }
    let mut order: Vec<(Timestamp, u64, String)> = m
        .iter()
        .map(|(k, t)| (t.last_seen.0, t.events, k.clone()))
        .collect();
    order.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then(b.1.cmp(&a.1))
            .then_with(|| a.2.cmp(&b.2))
    });
    for (_, _, k) in order.drain(MAX_EVENT_TYPES..) {
        m.remove(&k);
    }
}

/// Keeps at most [`MAX_FIELDS`] fields per event type and [`MAX_STATUS_FIELDS`] in all: those
/// present in the largest share of the last window's events, then seen last, then by type and
/// path.
fn keep_fields(m: &mut BTreeMap<String, LearnedEventType>) {
    type Rank<'a> = (f64, Timestamp, &'a str, &'a str);
    let rank = |a: &Rank, b: &Rank| {
        b.0.total_cmp(&a.0)
            .then(b.1.cmp(&a.1))
            .then_with(|| (a.2, a.3).cmp(&(b.2, b.3)))
    };
    let mut kept: Vec<(String, String)> = Vec::new();
    {
        let mut all: Vec<Rank> = Vec::new();
        for (name, t) in m.iter() {
            let mut mine: Vec<Rank> = t
                .fields
                .iter()
                .map(|(p, f)| (f.presence, f.last_seen.0, name.as_str(), p.as_str()))
                .collect();
            mine.sort_by(rank);
            mine.truncate(MAX_FIELDS);
            all.extend(mine);
        }
        all.sort_by(rank);
        all.truncate(MAX_STATUS_FIELDS);
        kept.extend(
            all.into_iter()
                .map(|(_, _, t, p)| (t.to_owned(), p.to_owned())),
        );
    }
    kept.sort();
    for (name, t) in m.iter_mut() {
        t.fields.retain(|p, _| {
            kept.binary_search_by(|(kt, kp)| (kt.as_str(), kp.as_str()).cmp(&(name, p)))
                .is_ok()
        });
    }
}

fn widen(first: &mut Time, last: &mut Time, (f, l): (i64, i64)) {
    let (f, l) = (time_of(f), time_of(l));
    if f.0 < first.0 {
        *first = f;
    }
    if l.0 > last.0 {
        *last = l;
    }
}

/// The JSON Schema without the learned numbers (`x-…` annotations of the schemas; property
/// names are kept whatever they are): the status has them per field already, and the resource
/// stays small.
fn strip_annotations(schema: &mut serde_json::Value) {
    use serde_json::Value;
    match schema {
        Value::Object(m) => {
            m.retain(|k, _| !k.starts_with("x-"));
            for (k, v) in m.iter_mut() {
                match (k.as_str(), v) {
                    ("properties" | "$defs", Value::Object(named)) => {
                        named.values_mut().for_each(strip_annotations)
                    }
                    (_, v) => strip_annotations(v),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(strip_annotations),
        _ => {}
    }
}

/// The newest `max` of both lists, newest first.
fn newest<'a>(before: &'a [String], now: impl Iterator<Item = &'a str>, max: usize) -> Vec<String> {
    let mut all: Vec<&str> = before
        .iter()
        .map(String::as_str)
        .chain(now)
        .filter(|v| v.len() <= MAX_VERSION_BYTES)
        .collect();
    all.sort_by(|a, b| versions::compare(b, a));
    all.dedup();
    all.truncate(max);
    all.into_iter().map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use impressions_worker_core::schema::{Learner, LearnerConfig, report::WindowBounds};

    use super::*;

    fn window(events: &[(&str, i64)]) -> ClosedWindow {
        let mut l = Learner::new(&LearnerConfig {
            sample_one_in: 1,
            ..LearnerConfig::default()
        });
        for (e, at) in events {
            l.offer(e.as_bytes(), *at);
        }
        let observation = l.take();
        ClosedWindow {
            bounds: WindowBounds {
                start_ms: 0,
                end_ms: 60_000,
            },
            boundary_ms: 60_000,
            window_seconds: 60,
            pods: 1,
            observation,
        }
    }

    #[test]
    fn a_window_gives_types_presence_times_versions_and_json_schema() {
        let w = window(&[
            (
                r#"{"eventType":"imp","a":1,"b":"x","appVersion":"15.2.0"}"#,
                1_000,
            ),
            (
                r#"{"eventType":"imp","a":"s","appVersion":"15.10.0"}"#,
                5_000,
            ),
        ]);
        let (s, _) = fold(&BTreeMap::new(), &w);
        let imp = &s["imp"];
        assert_eq!(imp.events, 2);
        assert_eq!(imp.first_seen, time_of(1_000));
        assert_eq!(imp.last_seen, time_of(5_000));
        assert_eq!(imp.client_versions, ["15.10.0", "15.2.0"]);
        assert_eq!(imp.fields["a"].types, ["integer", "string"]);
        assert_eq!(imp.fields["a"].presence, 1.0);
        assert_eq!(imp.fields["b"].presence, 0.5);
        assert_eq!(imp.fields["b"].client_versions, ["15.2.0"]);
        let js = imp.json_schema.as_ref().unwrap();
        assert_eq!(js["properties"]["b"]["type"], "string");
        assert!(
            !js.to_string().contains("x-presence"),
            "numbers only in fields: {js}"
        );
        let x = window(&[(r#"{"eventType":"imp","x-id":1}"#, 1_000)]);
        let xs = fold(&BTreeMap::new(), &x).0["imp"]
            .json_schema
            .clone()
            .unwrap();
        assert_eq!(
            xs["properties"]["x-id"]["type"], "integer",
            "a field named x-…: {xs}"
        );
        // Folding the same window again changes nothing.
        assert_eq!(fold(&s, &w).0, s);
    }

    #[test]
    fn first_seen_stays_last_seen_moves_and_absent_fields_are_kept_at_zero() {
        let w1 = window(&[(r#"{"eventType":"imp","a":1,"b":2}"#, 1_000)]);
        let w2 = window(&[(r#"{"eventType":"imp","a":1}"#, 70_000)]);
        let (s, _) = fold(&fold(&BTreeMap::new(), &w1).0, &w2);
        let a = &s["imp"].fields["a"];
        assert_eq!(
            (a.first_seen.clone(), a.last_seen.clone()),
            (time_of(1_000), time_of(70_000))
        );
        let b = &s["imp"].fields["b"];
        assert_eq!(b.presence, 0.0);
        assert!(b.types.is_empty());
        assert_eq!(b.last_seen, time_of(1_000));
    }

    #[test]
    fn beyond_the_bounds_the_oldest_are_dropped() {
        let mut before = BTreeMap::new();
        for i in 0..MAX_EVENT_TYPES {
            let w = window(&[(&format!(r#"{{"eventType":"t{i:02}"}}"#), i as i64 * 1000)]);
            before = fold(&before, &w).0;
        }
        let w = window(&[(r#"{"eventType":"new"}"#, 999_000)]);
        let (s, _) = fold(&before, &w);
        assert_eq!(s.len(), MAX_EVENT_TYPES);
        assert!(s.contains_key("new"));
        assert!(!s.contains_key("t00"), "seen longest ago");
        assert_eq!(
            newest(&["1.9".into()], ["1.10", "1.9", "1.8"].into_iter(), 2),
            ["1.10", "1.9"]
        );
    }
}
