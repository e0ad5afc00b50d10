//! Generated traffic through the schema learner and the drift detection: a client release
//! (loadgen's knob) that renames a field, changes a type, drops a field, adds one or adds an
//! event type, for 30 % of the events, shows as the right kind of drift with the field named;
//! the same traffic without a release shows none.

use std::{collections::BTreeSet, sync::OnceLock};

use impressions_worker_core::{
    loadgen::{Generator, Mix, Release},
    schema::{Drift, DriftKind, Learner, LearnerConfig, Observation, Thresholds, detect},
};
use serde_json::json;

const EVENTS: usize = 20_000;
const NOW: i64 = 1_790_000_000_000;
/// The event types of the generated traffic.
const TYPES: [&str; 6] = [
    "impression",
    "playback_start",
    "playback_stop",
    "search",
    "page_view",
    "heartbeat",
];

/// One window of `EVENTS` events of `g`, sampled one in four (some 200 sampled events of each
/// type other than impression).
fn learn(mut g: Generator) -> Observation {
    let mut l = Learner::new(&LearnerConfig {
        sample_one_in: 4,
        ..LearnerConfig::default()
    });
    for i in 0..EVENTS {
        l.offer(&g.next_event(NOW + i as i64).payload, NOW + i as i64);
    }
    l.take()
}

fn baseline() -> &'static Observation {
    static BASELINE: OnceLock<Observation> = OnceLock::new();
    BASELINE.get_or_init(|| learn(Generator::new(1, 1000, Mix::default())))
}

fn drifts(release: Option<Release>) -> Vec<Drift> {
    let g = Generator::new(2, 1000, Mix::default());
    let g = match release {
        Some(r) => g.with_release(r),
        None => g,
    };
    let d = detect(baseline(), &learn(g), &Thresholds::default());
    for x in &d {
        println!("{x}");
    }
    d
}

fn release(share: f64, edit: impl FnOnce(&mut Release)) -> Option<Release> {
    let mut r = Release {
        share,
        ..Release::default()
    };
    edit(&mut r);
    Some(r)
}

/// The (kind, path) of every drift, per event type.
fn by_type(d: &[Drift], event_type: &str) -> BTreeSet<(DriftKind, String)> {
    d.iter()
        .filter(|x| x.event_type == event_type)
        .map(|x| (x.kind, x.path.clone().unwrap_or_default()))
        .collect()
}

/// Every event type shows exactly `want`.
fn assert_every_type(d: &[Drift], want: &[(DriftKind, &str)]) {
    let want: BTreeSet<_> = want.iter().map(|(k, p)| (*k, p.to_string())).collect();
    for t in TYPES {
        assert_eq!(by_type(d, t), want, "{t}: {d:#?}");
    }
    assert_eq!(d.len(), want.len() * TYPES.len(), "{d:#?}");
}

#[test]
fn the_same_traffic_has_no_drift() {
    assert_eq!(drifts(None), []);
    // A release that changes nothing but the version.
    assert_eq!(drifts(release(0.3, |_| {})), []);
}

#[test]
fn a_renamed_field_is_a_new_field_and_a_presence_drop() {
    let d = drifts(release(0.3, |r| {
        r.rename = Some(("rowIndex".into(), "rowPosition".into()))
    }));
    assert_every_type(
        &d,
        &[
            (DriftKind::NewField, "rowPosition"),
            (DriftKind::PresenceDropped, "rowIndex"),
        ],
    );
    let new = d
        .iter()
        .find(|x| x.event_type == "impression" && x.kind == DriftKind::NewField)
        .unwrap();
    assert!((0.25..0.35).contains(&new.after.presence), "{new:?}");
    assert_eq!(new.client_versions, ["16.0.0"]);
    let dropped = d
        .iter()
        .find(|x| x.event_type == "impression" && x.kind == DriftKind::PresenceDropped)
        .unwrap();
    assert_eq!(dropped.before.presence, 1.0);
    assert!(
        (0.65..0.75).contains(&dropped.after.presence),
        "{dropped:?}"
    );
}

#[test]
fn a_field_renamed_by_every_client_is_gone() {
    let d = drifts(release(1.0, |r| {
        r.rename = Some(("rowIndex".into(), "rowPosition".into()))
    }));
    assert_every_type(
        &d,
        &[
            (DriftKind::NewField, "rowPosition"),
            (DriftKind::FieldGone, "rowIndex"),
        ],
    );
}

#[test]
fn a_changed_type_is_a_type_change() {
    let d = drifts(release(0.3, |r| r.retype = Some("pageId".into())));
    assert_every_type(&d, &[(DriftKind::TypeChanged, "pageId")]);
    let t = d.iter().find(|x| x.event_type == "impression").unwrap();
    assert_eq!(
        t.before.types.keys().map(|t| t.name()).collect::<Vec<_>>(),
        ["integer"]
    );
    assert_eq!(
        t.after.types.keys().map(|t| t.name()).collect::<Vec<_>>(),
        ["integer", "string"]
    );
}

#[test]
fn a_dropped_object_is_one_presence_drop() {
    let d = drifts(release(0.3, |r| r.drop = Some("presentation".into())));
    assert_every_type(&d, &[(DriftKind::PresenceDropped, "presentation")]);
}

#[test]
fn a_dropped_nested_field_is_named_by_its_path() {
    let d = drifts(release(0.3, |r| r.drop = Some("context.memoryMb".into())));
    assert_every_type(&d, &[(DriftKind::PresenceDropped, "context.memoryMb")]);
}

#[test]
fn an_added_object_is_one_new_field() {
    let d = drifts(release(0.3, |r| {
        r.add = Some((
            "clientHints".into(),
            json!({"reducedMotion": true, "dpr": 2.0}),
        ))
    }));
    assert_every_type(&d, &[(DriftKind::NewField, "clientHints")]);
}

#[test]
fn an_added_event_type_is_a_new_event_type() {
    let d = drifts(release(0.3, |r| {
        r.event_type = Some("impression_v2".into())
    }));
    let kinds: Vec<_> = d
        .iter()
        .map(|x| (x.kind, x.event_type.as_str(), x.path.as_deref()))
        .collect();
    assert_eq!(kinds, [(DriftKind::NewEventType, "impression_v2", None)]);
    assert!((0.04..0.08).contains(&d[0].after.presence), "{:?}", d[0]);
    assert_eq!(d[0].client_versions, ["16.0.0"]);
}

#[test]
fn every_change_at_once() {
    let d = drifts(release(0.3, |r| {
        r.rename = Some(("rowIndex".into(), "rowPosition".into()));
        r.retype = Some("pageId".into());
        r.drop = Some("presentation".into());
        r.add = Some(("clientHints".into(), json!({"reducedMotion": true})));
        r.event_type = Some("impression_v2".into());
    }));
    let want: BTreeSet<_> = [
        (DriftKind::NewField, "rowPosition"),
        (DriftKind::PresenceDropped, "rowIndex"),
        (DriftKind::TypeChanged, "pageId"),
        (DriftKind::PresenceDropped, "presentation"),
        (DriftKind::NewField, "clientHints"),
    ]
    .iter()
    .map(|(k, p)| (*k, p.to_string()))
    .collect();
    assert_eq!(by_type(&d, "impression"), want, "{d:#?}");
    assert_eq!(by_type(&d, "impression_v2").len(), 1);
}
