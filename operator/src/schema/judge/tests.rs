//! The schema judgement's tests: baselines, accepts, drift kinds.

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
