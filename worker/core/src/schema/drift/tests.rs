use super::*;
use crate::schema::versions::Versions;
use JsonType::*;

/// A path and its presences by type.
type Field<'a> = (&'a str, &'a [(JsonType, u64)]);
/// An event type, its sampled events and its fields.
type Type<'a> = (&'a str, u64, &'a [Field<'a>]);

/// An observation of event types: per type, its events and per path its presences by type.
fn obs(types: &[Type]) -> Observation {
    let mut o = Observation::default();
    for (name, events, fields) in types {
        let fields = fields
            .iter()
            .map(|(p, ts)| {
                let present = ts.iter().map(|(_, n)| *n).sum::<u64>().min(*events);
                let mut versions = Versions::default();
                versions.add(Some("16.0"), present, 8);
                let f = FieldShape {
                    present,
                    types: ts.iter().copied().collect(),
                    first_seen_ms: 0,
                    last_seen_ms: 0,
                    versions,
                };
                (p.to_string(), f)
            })
            .collect();
        o.event_types.insert(
            name.to_string(),
            EventTypeShape {
                events: *events,
                first_seen_ms: 0,
                last_seen_ms: 0,
                fields,
                paths_overflow: 0,
                values_truncated: 0,
                versions: Versions::default(),
            },
        );
        o.events_sampled += events;
    }
    o
}

fn kinds(d: &[Drift]) -> Vec<(DriftKind, &str, Option<&str>)> {
    d.iter()
        .map(|d| (d.kind, d.event_type.as_str(), d.path.as_deref()))
        .collect()
}

fn detect_default(b: &Observation, c: &Observation) -> Vec<Drift> {
    detect(b, c, &Thresholds::default())
}

#[test]
fn the_same_schema_has_no_drift() {
    let o = obs(&[(
        "imp",
        1000,
        &[("a", &[(String, 1000)]), ("b", &[(Integer, 500)])],
    )]);
    assert!(detect_default(&o, &o).is_empty());
}

#[test]
fn a_new_field_with_its_numbers_and_versions() {
    let b = obs(&[("imp", 1000, &[("a", &[(String, 1000)])])]);
    let c = obs(&[(
        "imp",
        1000,
        &[
            ("a", &[(String, 1000)]),
            ("hints", &[(Object, 300)]),
            ("hints.x", &[(Boolean, 300)]),
        ],
    )]);
    let d = detect_default(&b, &c);
    assert_eq!(kinds(&d), [(DriftKind::NewField, "imp", Some("hints"))]);
    assert_eq!(d[0].before.present, 0);
    assert_eq!((d[0].after.present, d[0].after.events), (300, 1000));
    assert!((d[0].after.presence - 0.3).abs() < 1e-9);
    assert_eq!(d[0].client_versions, ["16.0"]);
    assert_eq!(
        d[0].to_string(),
        "imp: new field hints in 30.0% of the events; client versions 16.0"
    );
}

#[test]
fn a_rare_or_unproven_new_field_is_not_reported() {
    let b = obs(&[("imp", 1000, &[("a", &[(String, 1000)])])]);
    // 0.5 % of the events: below the share.
    let c = obs(&[(
        "imp",
        1000,
        &[("a", &[(String, 1000)]), ("x", &[(String, 5)])],
    )]);
    assert!(detect_default(&b, &c).is_empty());
    // 3 % but of 150 events: could be chance.
    let b = obs(&[("imp", 150, &[("a", &[(String, 150)])])]);
    let c = obs(&[(
        "imp",
        150,
        &[("a", &[(String, 150)]), ("x", &[(String, 5)])],
    )]);
    assert!(detect_default(&b, &c).is_empty());
}

#[test]
fn a_field_gone_reports_its_root_only() {
    let b = obs(&[(
        "imp",
        1000,
        &[
            ("a", &[(String, 1000)]),
            ("p", &[(Object, 800)]),
            ("p.w", &[(Integer, 800)]),
        ],
    )]);
    let c = obs(&[("imp", 1000, &[("a", &[(String, 1000)])])]);
    let d = detect_default(&b, &c);
    assert_eq!(kinds(&d), [(DriftKind::FieldGone, "imp", Some("p"))]);
    assert!((d[0].before.presence - 0.8).abs() < 1e-9);
    assert_eq!(d[0].after.present, 0);
}

#[test]
fn a_side_over_its_path_budget_cannot_tell_new_or_gone() {
    let b = obs(&[("imp", 1000, &[("a", &[(String, 1000)])])]);
    let c = obs(&[("imp", 1000, &[("b", &[(String, 1000)])])]);
    assert_eq!(detect_default(&b, &c).len(), 2);
    let (mut b2, mut c2) = (b.clone(), c.clone());
    b2.event_types.get_mut("imp").unwrap().paths_overflow = 1;
    assert_eq!(
        kinds(&detect_default(&b2, &c)),
        [(DriftKind::FieldGone, "imp", Some("a"))]
    );
    c2.event_types.get_mut("imp").unwrap().paths_overflow = 1;
    assert_eq!(
        kinds(&detect_default(&b, &c2)),
        [(DriftKind::NewField, "imp", Some("b"))]
    );
}

#[test]
fn presence_drops_and_jumps() {
    let b = obs(&[(
        "imp",
        2000,
        &[("a", &[(String, 2000)]), ("b", &[(String, 600)])],
    )]);
    let c = obs(&[(
        "imp",
        2000,
        &[("a", &[(String, 1400)]), ("b", &[(String, 1800)])],
    )]);
    let d = detect_default(&b, &c);
    assert_eq!(
        kinds(&d),
        [
            (DriftKind::PresenceDropped, "imp", Some("a")),
            (DriftKind::PresenceJumped, "imp", Some("b")),
        ]
    );
    assert!((d[0].before.presence - 1.0).abs() < 1e-9);
    assert!((d[0].after.presence - 0.7).abs() < 1e-9);
}

#[test]
fn presence_noise_is_not_reported() {
    // 0.50 → 0.48 on a million events: significant, but too small to matter.
    let b = obs(&[("imp", 1_000_000, &[("a", &[(String, 500_000)])])]);
    let c = obs(&[("imp", 1_000_000, &[("a", &[(String, 480_000)])])]);
    assert!(detect_default(&b, &c).is_empty());
    // 0.50 → 0.35 on 100 events: large, but could be chance (z ≈ 2.1)…
    let b = obs(&[("imp", 100, &[("a", &[(String, 50)])])]);
    let c = obs(&[("imp", 100, &[("a", &[(String, 35)])])]);
    assert!(detect_default(&b, &c).is_empty());
    // …and is a drift on 10,000.
    let b = obs(&[("imp", 10_000, &[("a", &[(String, 5_000)])])]);
    let c = obs(&[("imp", 10_000, &[("a", &[(String, 3_500)])])]);
    assert_eq!(
        kinds(&detect_default(&b, &c)),
        [(DriftKind::PresenceDropped, "imp", Some("a"))]
    );
}

#[test]
fn a_type_that_appears_or_vanishes_is_a_change() {
    let b = obs(&[("imp", 1000, &[("page", &[(Integer, 1000)])])]);
    let c = obs(&[("imp", 1000, &[("page", &[(Integer, 700), (String, 300)])])]);
    let d = detect_default(&b, &c);
    assert_eq!(kinds(&d), [(DriftKind::TypeChanged, "imp", Some("page"))]);
    assert_eq!(d[0].before.types, BTreeMap::from([(Integer, 1.0)]));
    assert!((d[0].after.types[&String] - 0.3).abs() < 1e-9);
    assert_eq!(
        d[0].to_string(),
        "imp: field page sent as integer 70%, string 30% (was integer 100%); client versions 16.0"
    );
    // Whole numbers becoming fractions is a change; the other way is not.
    let ints = obs(&[("imp", 1000, &[("x", &[(Integer, 1000)])])]);
    let floats = obs(&[("imp", 1000, &[("x", &[(Number, 900), (Integer, 100)])])]);
    assert_eq!(
        kinds(&detect_default(&ints, &floats)),
        [(DriftKind::TypeChanged, "imp", Some("x"))]
    );
    let floats_all = obs(&[("imp", 1000, &[("x", &[(Number, 1000)])])]);
    assert!(detect_default(&floats, &floats_all).is_empty());
    assert!(detect_default(&floats_all, &floats).is_empty());
}

#[test]
fn type_noise_is_not_reported() {
    // A type in 3 % of the presences, between absent (1 %) and sent (5 %), on either side.
    let b = obs(&[("imp", 1000, &[("x", &[(String, 1000), (Null, 30)])])]);
    let c = obs(&[("imp", 1000, &[("x", &[(String, 1000), (Null, 5)])])]);
    assert!(detect_default(&b, &c).is_empty());
    assert!(detect_default(&c, &b).is_empty());
}

#[test]
fn a_new_event_type_counts_against_all_events() {
    let b = obs(&[("imp", 1000, &[("a", &[(String, 1000)])])]);
    let c = obs(&[
        ("imp", 1000, &[("a", &[(String, 1000)])]),
        ("imp_v2", 200, &[("a", &[(String, 200)])]),
        ("blip", 2, &[("a", &[(String, 2)])]),
    ]);
    let d = detect_default(&b, &c);
    assert_eq!(kinds(&d), [(DriftKind::NewEventType, "imp_v2", None)]);
    assert_eq!((d[0].after.present, d[0].after.events), (200, 1202));
}

#[test]
fn too_few_events_are_not_judged() {
    let b = obs(&[("imp", 50, &[("a", &[(String, 50)])])]);
    let c = obs(&[("imp", 50, &[("b", &[(Integer, 50)])])]);
    assert!(detect_default(&b, &c).is_empty());
}

#[test]
fn thresholds_deserialize_with_defaults_and_refuse_unknown_fields() {
    let t: Thresholds = serde_json::from_str(r#"{"minZ": 3.0}"#).unwrap();
    assert_eq!(t.min_z, 3.0);
    assert_eq!(t.min_events, Thresholds::default().min_events);
    assert!(serde_json::from_str::<Thresholds>(r#"{"minz": 3.0}"#).is_err());
}
