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
mod tests {
    use std::collections::BTreeMap;

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

    /// A window of the events given as (count, payload), in that order.
    fn events(list: &[(usize, &str)], end_ms: i64) -> ClosedWindow {
        let mut l = Learner::new(&LearnerConfig {
            sample_one_in: 1,
            ..LearnerConfig::default()
        });
        for (n, e) in list {
            for _ in 0..*n {
                l.offer(e.as_bytes(), end_ms - 1_000);
            }
        }
        ClosedWindow {
            bounds: WindowBounds {
                start_ms: end_ms - 10_000,
                end_ms,
            },
            boundary_ms: end_ms,
            window_seconds: 10,
            pods: 1,
            observation: l.take(),
        }
    }

    /// The drifts (kind path) of `current` from `baseline` judged with `spec`.
    fn drifts_with(
        spec: &DriftSpec,
        baseline: &[(usize, &str)],
        current: &[(usize, &str)],
    ) -> Vec<String> {
        let th = thresholds(spec);
        let b = judge(None, None, Some(&events(baseline, 10_000)), &th, &now());
        let j = judge(
            Some(&b.status),
            None,
            Some(&events(current, 20_000)),
            &th,
            &now(),
        );
        j.status
            .drifts
            .iter()
            .map(|d| format!("{} {}", d.kind, d.path.as_deref().unwrap_or("-")))
            .collect()
    }

    #[test]
    fn the_default_spec_is_the_default_thresholds() {
        assert_eq!(thresholds(&DriftSpec::default()), Thresholds::default());
    }

    #[test]
    fn each_field_of_spec_schema_drift_changes_the_judgement() {
        const A: &str = r#"{"eventType":"imp","a":1}"#;
        const B: &str = r#"{"eventType":"imp","a":1,"b":1}"#;
        const BS: &str = r#"{"eventType":"imp","a":1,"b":"x"}"#;
        let d = DriftSpec::default;
        // (what, the spec, baseline, window, drifts with the defaults, drifts with the spec)
        type Case<'a> = (
            &'a str,
            DriftSpec,
            Vec<(usize, &'a str)>,
            Vec<(usize, &'a str)>,
            &'a [&'a str],
            &'a [&'a str],
        );
        let cases: Vec<Case> = vec![
            // b new in 3 % of the events (z ≈ 5.5).
            (
                "newMinShare",
                DriftSpec {
                    new_min_share: 0.05,
                    ..d()
                },
                vec![(1000, A)],
                vec![(970, A), (30, B)],
                &["NewField b"],
                &[],
            ),
            (
                "minZ",
                DriftSpec { min_z: 6.0, ..d() },
                vec![(1000, A)],
                vec![(970, A), (30, B)],
                &["NewField b"],
                &[],
            ),
            // b from 100 % to 85 % of the events.
            (
                "presenceMinChange",
                DriftSpec {
                    presence_min_change: 0.2,
                    ..d()
                },
                vec![(1000, B)],
                vec![(150, A), (850, B)],
                &["PresenceDropped b"],
                &[],
            ),
            // b in 3 % of the baseline's events, now in none.
            (
                "goneMinPresence",
                DriftSpec {
                    gone_min_presence: 0.05,
                    ..d()
                },
                vec![(970, A), (30, B)],
                vec![(1000, A)],
                &["FieldGone b"],
                &[],
            ),
            // b a string in 3 % of its presences, never before.
            (
                "typeSentShare",
                DriftSpec {
                    type_sent_share: 0.02,
                    ..d()
                },
                vec![(1000, B)],
                vec![(970, B), (30, BS)],
                &[],
                &["TypeChanged b"],
            ),
            // b a string in 2 % of its presences before (in the band), in 30 % now.
            (
                "typeAbsentShare",
                DriftSpec {
                    type_absent_share: 0.03,
                    ..d()
                },
                vec![(980, B), (20, BS)],
                vec![(700, B), (300, BS)],
                &[],
                &["TypeChanged b"],
            ),
        ];
        for (what, spec, base, cur, default, with) in cases {
            assert_eq!(
                drifts_with(&d(), &base, &cur),
                default,
                "{what}: the defaults"
            );
            assert_eq!(drifts_with(&spec, &base, &cur), with, "{what}: the spec");
        }
        // minEvents: a window with fewer sampled events does not become the baseline, and the
        // condition names the number.
        let spec = DriftSpec {
            min_events: 2_000,
            ..d()
        };
        let w = events(&[(1000, A)], 10_000);
        let j = judge(None, None, Some(&w), &thresholds(&spec), &now());
        assert_eq!(j.condition.reason, "NoBaseline");
        assert!(
            j.condition.message.contains("at least 2000 sampled events"),
            "{}",
            j.condition.message
        );
        let j = judge(None, None, Some(&w), &thresholds(&d()), &now());
        assert_eq!(j.taken, Some(Taken::Initial));
    }

    /// A window of `types` event types of `paths` fields each, names and client versions as
    /// long as the status keeps, every field in half the events: built directly (the workers'
    /// budget would have stopped it earlier).
    fn flood(types: usize, paths: usize, round: usize, end_ms: i64) -> ClosedWindow {
        use impressions_worker_core::schema::{EventTypeShape, FieldShape, JsonType};
        let long = |prefix: &str, i: usize| {
            format!(
                "{prefix}{i:06}{}",
                "x".repeat(MAX_NAME_BYTES - prefix.len() - 6)
            )
        };
        let mut o = Observation::default();
        for t in 0..types {
            let mut fields = BTreeMap::new();
            for p in 0..paths {
                let mut versions = impressions_worker_core::schema::versions::Versions::default();
                for v in 0..8 {
                    versions.add(Some(&format!("{v}.{}", "9".repeat(60))), 1, 8);
                }
                fields.insert(
                    long(&format!("r{round}.id"), p),
                    FieldShape {
                        present: 500,
                        types: [(JsonType::Integer, 400), (JsonType::String, 100)].into(),
                        first_seen_ms: end_ms - 5_000,
                        last_seen_ms: end_ms - 1_000,
                        versions,
                    },
                );
            }
            o.event_types.insert(
                long("type", t),
                EventTypeShape {
                    events: 1_000,
                    first_seen_ms: end_ms - 5_000,
                    last_seen_ms: end_ms - 1_000,
                    fields,
                    paths_overflow: 0,
                    values_truncated: 0,
                    versions: Default::default(),
                },
            );
        }
        o.events_seen = 1_000 * types as u64;
        o.events_sampled = o.events_seen;
        ClosedWindow {
            bounds: WindowBounds {
                start_ms: end_ms - 10_000,
                end_ms,
            },
            boundary_ms: end_ms,
            window_seconds: 10,
            pods: 1,
            observation: o,
        }
    }

    #[test]
    fn the_status_stays_bounded_whatever_the_paths_and_counts_what_it_leaves_out() {
        use super::super::learned::{MAX_FIELDS, MAX_STATUS_FIELDS};
        let th = Thresholds::default();
        // 40 event types of 600 paths each, other paths every window (ids as keys): beyond
        // every budget of the status, with the longest names it keeps.
        let j1 = judge(None, None, Some(&flood(40, 600, 1, 10_000)), &th, &now());
        let j2 = judge(
            Some(&j1.status),
            None,
            Some(&flood(40, 600, 2, 20_000)),
            &th,
            &now(),
        );
        let s = &j2.status;
        let fields: usize = s.event_types.values().map(|t| t.fields.len()).sum();
        assert_eq!(s.event_types.len(), MAX_EVENT_TYPES);
        assert!(s.event_types.values().all(|t| t.fields.len() <= MAX_FIELDS));
        assert_eq!(fields, MAX_STATUS_FIELDS);
        assert!(
            s.event_types
                .values()
                .flat_map(|t| t.fields.keys())
                .all(|p| p.starts_with("r2.")),
            "the fields of the last window first"
        );
        let o = s.overflow.as_ref().expect("the overflow is reported");
        assert_eq!(o.event_types, 8);
        assert_eq!(o.fields, (32 * 600 - MAX_STATUS_FIELDS) as u64);
        let per_type: u64 = s.event_types.values().map(|t| t.fields_overflow).sum();
        assert_eq!(per_type, o.fields);
        // Every baseline path gone: more drifts than the status lists.
        assert!(s.drift_count as usize > STATUS_DRIFTS, "{}", s.drift_count);
        assert_eq!(s.drifts.len(), STATUS_DRIFTS);
        let base: Observation =
            serde_json::from_str(&s.baseline.as_ref().unwrap().observation).unwrap();
        assert_eq!(base.event_types.len(), MAX_EVENT_TYPES);
        let kept: usize = base.event_types.values().map(|t| t.fields.len()).sum();
        assert_eq!(kept, BASELINE_PATHS_TOTAL);
        assert!(base.event_types.values().all(|t| t.paths_overflow > 0));
        assert_eq!(base.event_types_overflow, 8 * 1_000);
        // The whole status, as written: well within the API server's object limit (~1.5 MB)
        // with the managed fields (which repeat the keys of the maps) beside it.
        let bytes = serde_json::to_vec(s).unwrap().len();
        println!(
            "status of the flood: {bytes} bytes, {} drifts",
            s.drift_count
        );
        assert!(bytes <= 768 * 1024, "{bytes} bytes");
    }

    #[test]
    fn a_client_sending_ids_as_keys_fills_the_overflow_not_the_status() {
        use super::super::learned::MAX_FIELDS;
        // The workers' default budget (256 paths per type); each event has a key of its own.
        let th = Thresholds::default();
        let mut before = None;
        for round in 0..3_i64 {
            let mut l = Learner::new(&LearnerConfig {
                sample_one_in: 1,
                ..LearnerConfig::default()
            });
            for i in 0..2_000 {
                let e = format!(
                    r#"{{"eventType":"imp","a":1,"b":{{"x":"y"}},"ids":{{"u{round}-{i}":1}}}}"#
                );
                l.offer(e.as_bytes(), (round + 1) * 10_000 - 1_000);
            }
            let w = ClosedWindow {
                bounds: WindowBounds {
                    start_ms: round * 10_000,
                    end_ms: (round + 1) * 10_000,
                },
                boundary_ms: (round + 1) * 10_000,
                window_seconds: 10,
                pods: 1,
                observation: l.take(),
            };
            let j = judge(before.as_ref(), None, Some(&w), &th, &now());
            before = Some(j.status);
        }
        let s = before.unwrap();
        let imp = &s.event_types["imp"];
        assert_eq!(imp.fields.len(), MAX_FIELDS);
        for f in ["a", "b", "b.x", "ids", "eventType"] {
            assert_eq!(imp.fields[f].presence, 1.0, "{f} kept");
        }
        assert!(
            imp.fields_overflow > 0 && imp.worker_paths_overflow > 0,
            "{imp:?}"
        );
        let o = s.overflow.unwrap();
        assert_eq!(o.fields, imp.fields_overflow);
        assert_eq!(o.worker_paths, imp.worker_paths_overflow);
        // Each id is in one event of 2,000: not a drift, and the baseline is over its budget
        // (its paths beyond it cannot be told from new ones).
        assert!(s.drifts.is_empty(), "{:?}", s.drifts);
    }
}
