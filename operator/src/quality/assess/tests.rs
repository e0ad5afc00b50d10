//! The data-quality judgement's tests: ratios, levels, the worst offender, conditions and Events.

use super::*;
use proptest::prelude::*;

fn spec() -> QualitySpec {
    QualitySpec {
        key_columns: vec![Column::ProfileId, Column::VideoId],
        invalid_ratio: Thresholds {
            warning: 0.01,
            critical: 0.05,
        },
        null_ratio: Thresholds {
            warning: 0.005,
            critical: 0.02,
        },
        mismatch_ratio: Thresholds {
            warning: 0.02,
            critical: 0.1,
        },
        window_seconds: 300,
    }
}

fn counts(processed: f64, filtered: f64) -> WindowCounts {
    WindowCounts {
        processed,
        filtered,
        ..WindowCounts::default()
    }
}

fn map(entries: &[(&str, f64)]) -> BTreeMap<String, f64> {
    entries.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

#[test]
fn ratios_use_impressions_and_records_as_denominators() {
    let c = WindowCounts {
        rejected: map(&[
            ("invalid_json", 30.0),
            ("missing_field", 20.0),
            ("oversize", 0.0),
        ]),
        nulls: map(&[("profileId", 10.0), ("showId", 5.0)]),
        invalid: map(&[("pageId", 4.0)]),
        mismatches: map(&[("entityId/videoId", 45.0)]),
        ..counts(1200.0, 200.0)
    };
    let r = ratios(&c).unwrap();
    assert_eq!(r.impressions, 1000.0);
    assert_eq!(r.dead_lettered, 0.05);
    assert_eq!(r.top_reason.as_deref(), Some("invalid_json"));
    assert_eq!(r.nulls, BTreeMap::from([(Column::ProfileId, 0.01)]));
    assert_eq!(r.invalid, BTreeMap::from([(Column::PageId, 0.004)]));
    assert_eq!(r.mismatches["entityId/videoId"], 45.0 / 950.0);
}

#[test]
fn no_impression_events_is_no_data() {
    assert_eq!(ratios(&counts(0.0, 0.0)), None);
    assert_eq!(ratios(&counts(500.0, 500.0)), None, "only filtered events");
    assert_eq!(
        ratios(&counts(599.0, 500.0)),
        None,
        "99 impressions are too few"
    );
    assert!(
        ratios(&counts(600.0, 500.0)).is_some(),
        "100 impressions are judged"
    );
    assert_eq!(ratios(&counts(f64::NAN, 0.0)), None);
    let r = Reading::of(&spec(), Some(&counts(10.0, 10.0)));
    assert_eq!(r.outcome, Err(NoData::NoEvents("5m".into())));
    assert_eq!(Reading::of(&spec(), None).outcome, Err(NoData::NoSeries));
    assert_eq!(r.condition().status, None);
    assert_eq!(r.condition().reason, "NoData");
}

#[test]
fn extrapolated_counts_stay_within_zero_and_one() {
    let c = WindowCounts {
        rejected: map(&[("invalid_json", 130.0)]),
        mismatches: map(&[("entityId/videoId", 3.0)]),
        ..counts(100.0, 0.0)
    };
    let r = ratios(&c).unwrap();
    assert_eq!(r.dead_lettered, 1.0);
    assert_eq!(
        r.mismatches["entityId/videoId"], 0.0,
        "no records: no mismatch ratio"
    );
}

fn ratios_with(f: impl FnOnce(&mut QualityRatios)) -> QualityRatios {
    let mut r = QualityRatios {
        impressions: 1000.0,
        ..QualityRatios::default()
    };
    f(&mut r);
    r
}

#[test]
fn levels_and_worst_offenders() {
    struct Case {
        name: &'static str,
        ratios: QualityRatios,
        level: Level,
        kind: Kind,
        subject: Subject,
    }
    let dl = |top: Option<&str>| Subject::DeadLetters {
        top_reason: top.map(str::to_owned),
    };
    let cases = [
        Case {
            name: "clean",
            ratios: ratios_with(|_| {}),
            level: Level::Ok,
            kind: Kind::Invalid,
            subject: dl(None),
        },
        Case {
            name: "below every threshold",
            ratios: ratios_with(|r| {
                r.dead_lettered = 0.005; // half the warning threshold
                r.nulls.insert(Column::ProfileId, 0.004); // 80 % of it
            }),
            level: Level::Ok,
            kind: Kind::Null,
            subject: Subject::Column(Column::ProfileId),
        },
        Case {
            name: "dead letters at the warning threshold",
            ratios: ratios_with(|r| {
                r.dead_lettered = 0.01;
                r.top_reason = Some("invalid_json".into());
            }),
            level: Level::Warning,
            kind: Kind::Invalid,
            subject: dl(Some("invalid_json")),
        },
        Case {
            name: "dead letters critical",
            ratios: ratios_with(|r| r.dead_lettered = 0.2),
            level: Level::Critical,
            kind: Kind::Invalid,
            subject: dl(None),
        },
        Case {
            name: "a key column's nulls critical beat warning dead letters",
            ratios: ratios_with(|r| {
                r.dead_lettered = 0.04;
                r.nulls.insert(Column::VideoId, 0.02);
            }),
            level: Level::Critical,
            kind: Kind::Null,
            subject: Subject::Column(Column::VideoId),
        },
        Case {
            name: "nulls of a column that is not a key column are ignored",
            ratios: ratios_with(|r| {
                r.nulls.insert(Column::Country, 0.9);
            }),
            level: Level::Ok,
            kind: Kind::Invalid,
            subject: dl(None),
        },
        Case {
            name: "a key column's invalid values count against invalidRatio",
            ratios: ratios_with(|r| {
                r.invalid.insert(Column::ProfileId, 0.03);
            }),
            level: Level::Warning,
            kind: Kind::Invalid,
            subject: Subject::Column(Column::ProfileId),
        },
        Case {
            name: "within one level the furthest past its threshold is worst",
            ratios: ratios_with(|r| {
                r.dead_lettered = 0.02; // 2× warning
                r.nulls.insert(Column::ProfileId, 0.015); // 3× warning
            }),
            level: Level::Warning,
            kind: Kind::Null,
            subject: Subject::Column(Column::ProfileId),
        },
        Case {
            name: "a mismatching pair",
            ratios: ratios_with(|r| {
                r.mismatches.insert("entityId/videoId".into(), 0.12);
                r.mismatches.insert("imageId/videoId".into(), 0.03);
            }),
            level: Level::Critical,
            kind: Kind::Mismatch,
            subject: Subject::Pair("entityId/videoId".into()),
        },
    ];
    for c in cases {
        let a = assess(&spec(), &c.ratios);
        assert_eq!(a.level, c.level, "{}", c.name);
        assert_eq!(
            (a.worst.kind, &a.worst.subject),
            (c.kind, &c.subject),
            "{}",
            c.name
        );
    }
}

#[test]
fn a_zero_threshold_tolerates_nothing_but_zero() {
    let mut s = spec();
    s.invalid_ratio = Thresholds {
        warning: 0.0,
        critical: 0.5,
    };
    assert_eq!(assess(&s, &ratios_with(|_| {})).level, Level::Ok);
    let a = assess(&s, &ratios_with(|r| r.dead_lettered = 0.0001));
    assert_eq!(a.level, Level::Warning);
}

#[test]
fn messages_name_the_offender_its_ratio_and_threshold() {
    let c = WindowCounts {
        rejected: map(&[("invalid_json", 80.0), ("unknown_title", 40.0)]),
        nulls: map(&[("profileId", 30.0)]),
        ..counts(1000.0, 200.0)
    };
    let mut s = spec();
    s.window_seconds = 20;
    let r = Reading::of(&s, Some(&c));
    let t = r.condition();
    assert_eq!((t.status, t.reason), (Some(false), "Critical"));
    assert_eq!(
        t.message,
        "15% of impression events dead-lettered (most often invalid_json) over the last 20s; \
         invalid critical threshold 5% (1 more check above a threshold)"
    );

    let c = WindowCounts {
        nulls: map(&[("videoId", 7.0)]),
        ..counts(1000.0, 0.0)
    };
    let t = Reading::of(&spec(), Some(&c)).condition();
    assert_eq!(t.reason, "Warning");
    assert_eq!(
        t.message,
        "column videoId null in 0.7% of impression events over the last 5m; \
         null warning threshold 0.5%"
    );

    let t = Reading::of(&spec(), Some(&counts(1000.0, 0.0))).condition();
    assert_eq!((t.status, t.reason), (Some(true), "OK"));
    assert_eq!(
        t.message,
        "every ratio is below its warning threshold over the last 5m"
    );
}

#[test]
fn events_on_level_changes_only() {
    let text = |reason: &'static str| ConditionText {
        status: None,
        reason,
        message: String::new(),
    };
    let ev = |prev: Option<&str>, next| event(prev, &text(next)).map(|e| (e.warning, e.reason));
    assert_eq!(ev(None, "OK"), None);
    assert_eq!(ev(Some("NoData"), "OK"), None);
    assert_eq!(ev(Some("OK"), "OK"), None);
    assert_eq!(ev(Some("Warning"), "Warning"), None);
    assert_eq!(ev(Some("OK"), "NoData"), None);
    assert_eq!(ev(Some("Critical"), "NoData"), None);
    assert_eq!(
        ev(Some("OK"), "Warning"),
        Some((true, "DataQualityWarning"))
    );
    assert_eq!(ev(None, "Critical"), Some((true, "DataQualityCritical")));
    assert_eq!(
        ev(Some("Warning"), "Critical"),
        Some((true, "DataQualityCritical"))
    );
    assert_eq!(
        ev(Some("Critical"), "Warning"),
        Some((true, "DataQualityWarning"))
    );
    assert_eq!(
        ev(Some("Critical"), "OK"),
        Some((false, "DataQualityRecovered"))
    );
    assert_eq!(
        ev(Some("Warning"), "OK"),
        Some((false, "DataQualityRecovered"))
    );
}

#[test]
fn percentages_and_windows() {
    assert_eq!(pct(0.0), "0%");
    assert_eq!(pct(0.05), "5%");
    assert_eq!(pct(0.125), "12%");
    assert_eq!(pct(0.035), "3.5%");
    assert_eq!(pct(0.0025), "0.25%");
    assert_eq!(pct(1.0), "100%");
    assert_eq!(span(300), "5m");
    assert_eq!(span(20), "20s");
    assert_eq!(span(90), "90s");
    assert_eq!(span(7200), "2h");
}

fn thresholds() -> impl Strategy<Value = Thresholds> {
    (0.0..=1.0f64, 0.0..=1.0f64).prop_map(|(a, b)| Thresholds {
        warning: a.min(b),
        critical: a.max(b),
    })
}

/// Ratios of the three kinds: dead letters, the nine columns' nulls and invalid values, and
/// three pairs, as one flat vector (so that one of them can be raised).
fn flat(v: &[f64]) -> QualityRatios {
    let cols = |off: usize| {
        Column::ALL
            .into_iter()
            .enumerate()
            .map(|(i, c)| (c, v[off + i]))
            .collect()
    };
    QualityRatios {
        impressions: 1000.0,
        dead_lettered: v[0],
        top_reason: None,
        nulls: cols(1),
        invalid: cols(10),
        mismatches: ["entityId/videoId", "imageId/videoId", "showId/catalog"]
            .into_iter()
            .enumerate()
            .map(|(i, p)| (p.to_owned(), v[19 + i]))
            .collect(),
    }
}

proptest! {
    #[test]
    fn raising_a_ratio_never_lowers_the_level(
        v in proptest::collection::vec(0.0..=1.0f64, 22),
        i in 0usize..22,
        raise in 0.0..=1.0f64,
        invalid in thresholds(),
        null in thresholds(),
        mismatch in thresholds(),
        keys in proptest::sample::subsequence(Column::ALL.to_vec(), 1..=9),
    ) {
        let s = QualitySpec {
            key_columns: keys,
            invalid_ratio: invalid,
            null_ratio: null,
            mismatch_ratio: mismatch,
            window_seconds: 300,
        };
        let before = assess(&s, &flat(&v));
        let mut higher = v.clone();
        higher[i] = (higher[i] + raise).min(1.0);
        let after = assess(&s, &flat(&higher));
        prop_assert!(after.level >= before.level, "{:?} → {:?}", before, after);
        // The level is the worst finding's, and the worst finding reaches its threshold.
        prop_assert_eq!(after.level, after.worst.level);
        if after.level > Level::Ok {
            prop_assert!(after.worst.ratio >= after.worst.threshold());
        }
    }

    #[test]
    fn ratios_are_shares(
        processed in 0.0..1e6f64,
        filtered in 0.0..1e6f64,
        rejected in 0.0..1e6f64,
        nulls in 0.0..1e6f64,
        mism in 0.0..1e6f64,
    ) {
        let c = WindowCounts {
            processed,
            filtered,
            rejected: map(&[("invalid_json", rejected)]),
            nulls: map(&[("videoId", nulls)]),
            invalid: BTreeMap::new(),
            mismatches: map(&[("entityId/videoId", mism)]),
        };
        if let Some(r) = ratios(&c) {
            for x in [r.dead_lettered, r.nulls[&Column::VideoId], r.mismatches["entityId/videoId"]] {
                prop_assert!((0.0..=1.0).contains(&x), "{x}");
            }
        } else {
            prop_assert!(processed - filtered < MIN_IMPRESSIONS);
        }
    }
}
