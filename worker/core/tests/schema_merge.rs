//! Observations of several workers merge into the same result whatever the order and grouping
//! (commutative, associative, with the empty observation as identity), keep their budget, lose
//! no count, and the merge of two workers' observations is what one worker seeing all the events
//! would have observed.

use std::collections::BTreeMap;

use impressions_worker_core::schema::{
    Budget, EventTypeShape, FieldShape, JsonType, Learner, LearnerConfig, Observation, Window,
    versions::Versions,
};
use proptest::prelude::*;

/// Small enough that generated observations go over it.
const BUDGET: Budget = Budget {
    max_event_types: 2,
    max_paths: 3,
    max_versions: 2,
};

const PATHS: [&str; 6] = ["a", "b", "a.x", "a.y", "l[]", "l[].z"];
const VERSIONS: [&str; 4] = ["1.0", "1.2", "2.0", "10.0"];

fn versions() -> impl Strategy<Value = Versions> {
    (
        prop::collection::vec((0..VERSIONS.len(), 1..5u64), 0..4),
        0..3u64,
    )
        .prop_map(|(adds, others)| {
            let mut v = Versions::default();
            for (i, n) in adds {
                v.add(Some(VERSIONS[i]), n, usize::MAX);
            }
            v.add(None, others, usize::MAX);
            v
        })
}

fn field() -> impl Strategy<Value = FieldShape> {
    (
        1..50u64,
        prop::collection::btree_map(0..7usize, 1..50u64, 1..3),
        0..100i64,
        0..100i64,
        versions(),
    )
        .prop_map(|(present, types, t0, dt, versions)| FieldShape {
            present,
            types: types
                .into_iter()
                .map(|(t, n)| (JsonType::ALL[t], n))
                .collect(),
            first_seen_ms: t0,
            last_seen_ms: t0 + dt,
            versions,
        })
}

fn event_type() -> impl Strategy<Value = EventTypeShape> {
    (
        1..100u64,
        prop::collection::btree_map(0..PATHS.len(), field(), 0..5),
        0..5u64,
        0..5u64,
        versions(),
        0..100i64,
    )
        .prop_map(
            |(events, fields, paths_overflow, values_truncated, versions, t0)| EventTypeShape {
                events,
                first_seen_ms: t0,
                last_seen_ms: t0 + 10,
                fields: fields
                    .into_iter()
                    .map(|(p, f)| (PATHS[p].to_owned(), f))
                    .collect(),
                paths_overflow,
                values_truncated,
                versions,
            },
        )
}

fn observation() -> impl Strategy<Value = Observation> {
    (
        prop::option::of((0..1000i64, 0..1000i64)),
        0..1000u64,
        0..10u64,
        prop::collection::btree_map("[a-d]", event_type(), 0..4),
        0..5u64,
    )
        .prop_map(|(window, seen, unparsed, types, overflow)| {
            let events: u64 = types.values().map(|t: &EventTypeShape| t.events).sum();
            Observation {
                window: window.map(|(s, d)| Window {
                    start_ms: s,
                    end_ms: s + d,
                }),
                events_seen: seen + events + unparsed + overflow,
                events_sampled: events + unparsed + overflow,
                unparsed,
                event_types: types,
                event_types_overflow: overflow,
            }
        })
}

fn merge(a: &Observation, b: &Observation) -> Observation {
    let mut m = a.clone();
    m.merge(b, &BUDGET);
    m
}

/// Sampled events of event types kept or overflowed.
fn typed_events(o: &Observation) -> u64 {
    o.event_types.values().map(|t| t.events).sum::<u64>() + o.event_types_overflow
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn merge_is_commutative(a in observation(), b in observation()) {
        prop_assert_eq!(merge(&a, &b), merge(&b, &a));
    }

    #[test]
    fn merge_is_associative(a in observation(), b in observation(), c in observation()) {
        prop_assert_eq!(merge(&merge(&a, &b), &c), merge(&a, &merge(&b, &c)));
    }

    #[test]
    fn the_empty_observation_is_the_identity(a in observation()) {
        let empty = Observation::default();
        let m = merge(&a, &empty);
        prop_assert_eq!(&m, &merge(&empty, &a));
        // Merging is idempotent on the budgeted form.
        prop_assert_eq!(merge(&m, &empty), m);
    }

    #[test]
    fn merge_keeps_the_budget_and_every_count(a in observation(), b in observation()) {
        let m = merge(&a, &b);
        prop_assert!(m.event_types.len() <= BUDGET.max_event_types);
        prop_assert_eq!(m.events_seen, a.events_seen + b.events_seen);
        prop_assert_eq!(m.events_sampled, a.events_sampled + b.events_sampled);
        prop_assert_eq!(typed_events(&m), typed_events(&a) + typed_events(&b));
        for t in m.event_types.values() {
            prop_assert!(t.fields.len() <= BUDGET.max_paths);
            prop_assert!(t.versions.newest.len() <= BUDGET.max_versions);
            for f in t.fields.values() {
                prop_assert!(f.versions.newest.len() <= BUDGET.max_versions);
            }
        }
    }

    #[test]
    fn two_workers_merged_are_one_worker(
        events in prop::collection::vec((0..3usize, 0..VERSIONS.len(), prop::collection::vec(0..5usize, 0..5), 0..1000i64), 0..60),
        split in prop::collection::vec(any::<bool>(), 60),
    ) {
        let config = LearnerConfig { sample_one_in: 1, ..LearnerConfig::default() };
        let (mut one, mut w1, mut w2) = (Learner::new(&config), Learner::new(&config), Learner::new(&config));
        let values = ["1", "2.5", "\"s\"", "null", "[true]"];
        for (i, (t, v, fields, now)) in events.iter().enumerate() {
            let mut e = format!(r#"{{"eventType":"t{t}","appVersion":"{}""#, VERSIONS[*v]);
            let mut seen = BTreeMap::new();
            for f in fields {
                seen.insert(format!("f{f}"), values[*f]);
            }
            for (k, val) in seen {
                e.push_str(&format!(r#","{k}":{val}"#));
            }
            e.push('}');
            one.offer(e.as_bytes(), *now);
            if split[i] { &mut w1 } else { &mut w2 }.offer(e.as_bytes(), *now);
        }
        let budget = LearnerConfig::default().budget;
        let mut merged = w1.take();
        merged.merge(&w2.take(), &budget);
        prop_assert_eq!(merged, one.take());
    }
}
