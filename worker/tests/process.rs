//! The per-event path without IO: every rejection reason, every correction, the Avro output
//! decoded with the schema (apache-avro, independent of the encoder), and a property test that
//! any byte string becomes a record, a dead letter with a reason, or a filtered event.

use std::collections::HashMap;

use apache_avro::{Schema as AvroSchema, types::Value};
use impressions_worker::{
    avro::{self, Encoder, Framing},
    catalog::Catalog,
    loadgen::{Generator, Kind, Mix, events},
    process::{Limits, Locations, Outcome, Processor},
    quality::{Column, Correction, Pair, Tally},
    reject::Reject,
};
use proptest::prelude::*;

const NOW: i64 = 1_790_000_000_000;

fn catalog() -> Catalog {
    Catalog::default().with_updates(
        events::catalog(100)
            .into_iter()
            .map(|t| (t.video_id, Some(t))),
    )
}

fn locations() -> Locations {
    Locations {
        pages: HashMap::from([(1, "Home".to_owned())]),
        rows: HashMap::from([("trending".to_owned(), "Trending Now".to_owned())]),
    }
}

/// Runs one payload; returns the outcome, the decoded record (if any) and the tally.
fn run(payload: &[u8], framing: Framing) -> (Outcome, Option<HashMap<String, Value>>, Tally) {
    let schema = avro::schema();
    let mut p = Processor::new(
        Encoder::new(&schema, framing),
        Limits::default(),
        locations(),
    );
    let (mut out, mut tally) = (Vec::new(), Tally::default());
    let outcome = p.process(payload, &catalog(), NOW, &mut out, &mut tally);
    let record = (outcome == Outcome::Record).then(|| decode(&out, framing));
    (outcome, record, tally)
}

fn decode(bytes: &[u8], framing: Framing) -> HashMap<String, Value> {
    let schema = AvroSchema::parse_str(avro::IMPRESSION_SCHEMA).unwrap();
    let body = match framing {
        Framing::SingleObject => {
            assert_eq!(&bytes[..2], &[0xC3, 0x01], "single-object marker");
            assert_eq!(
                &bytes[2..10],
                &spec_fingerprint(&schema),
                "schema fingerprint"
            );
            &bytes[10..]
        }
        Framing::Confluent { schema_id } => {
            assert_eq!(bytes[0], 0);
            assert_eq!(&bytes[1..5], &schema_id.to_be_bytes());
            &bytes[5..]
        }
    };
    let mut reader = body;
    match apache_avro::from_avro_datum(&schema, &mut reader, None).unwrap() {
        Value::Record(fields) => {
            assert!(reader.is_empty(), "trailing bytes after the record");
            fields.into_iter().collect()
        }
        other => panic!("not a record: {other:?}"),
    }
}

/// The schema's CRC-64-AVRO fingerprint over its Parsing Canonical Form, little-endian, computed
/// as the Avro specification defines it. apache-avro 0.21's canonical form keeps logical-type
/// primitives as `{"type":"long"}` instead of `"long"` (so its own fingerprint differs from the
/// Java implementation's); that one rewrite is applied here.
fn spec_fingerprint(schema: &AvroSchema) -> [u8; 8] {
    const EMPTY: u64 = 0xc15d_213a_a4d7_a795;
    let table: Vec<u64> = (0..256u64)
        .map(|i| (0..8).fold(i, |fp, _| (fp >> 1) ^ (EMPTY & (fp & 1).wrapping_neg())))
        .collect();
    let mut pcf = schema.canonical_form();
    for p in ["long", "int", "string", "bytes"] {
        pcf = pcf.replace(&format!("{{\"type\":\"{p}\"}}"), &format!("\"{p}\""));
    }
    let fp = pcf.bytes().fold(EMPTY, |fp, b| {
        (fp >> 8) ^ table[((fp ^ u64::from(b)) & 0xff) as usize]
    });
    fp.to_le_bytes()
}

fn event(fields: &str) -> Vec<u8> {
    let base = format!(
        r#""eventType":"impression","eventId":"e1","timestamp":{ts},"profileId":"P1","deviceType":"tv","country":"US","pageId":1,"rowId":"trending","rowIndex":3,"columnIndex":4"#,
        ts = NOW - 1000
    );
    format!(
        "{{{base}{}{fields}}}",
        if fields.is_empty() { "" } else { "," }
    )
    .into_bytes()
}

fn rejected(payload: &[u8]) -> Reject {
    match run(payload, Framing::SingleObject).0 {
        Outcome::Rejected(r) => r,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn strs(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a
            .iter()
            .map(|x| match x {
                Value::String(s) => s.clone(),
                o => panic!("{o:?}"),
            })
            .collect(),
        o => panic!("not an array: {o:?}"),
    }
}

fn union(v: &Value) -> &Value {
    match v {
        Value::Union(_, inner) => inner,
        o => o,
    }
}

#[test]
fn valid_impression_is_enriched_and_decodes_with_the_schema() {
    let (outcome, rec, tally) = run(
        &event(
            r#""videoId":80000001,"entityId":"title:80000001","imageId":"img-80000001-2","showId":70000000"#,
        ),
        Framing::SingleObject,
    );
    assert_eq!(outcome, Outcome::Record);
    let r = rec.unwrap();
    assert_eq!(r["eventId"], Value::String("e1".into()));
    assert_eq!(r["videoId"], Value::Long(80000001));
    assert_eq!(r["entityId"], Value::String("title:80000001".into()));
    assert_eq!(r["timestamp"], Value::TimestampMillis(NOW - 1000));
    assert_eq!(r["processedAt"], Value::TimestampMillis(NOW));
    let Value::Record(title) = &r["title"] else {
        panic!()
    };
    let title: HashMap<_, _> = title.iter().cloned().collect();
    assert_eq!(title["name"], Value::String("Title 1".into()));
    assert_eq!(title["kind"], Value::Enum(3, "EPISODE".into()));
    assert_eq!(union(&title["showId"]), &Value::Long(70000000));
    assert_eq!(union(&title["episodeNumber"]), &Value::Int(2));
    let Value::Record(loc) = &r["location"] else {
        panic!()
    };
    let loc: HashMap<_, _> = loc.iter().cloned().collect();
    assert_eq!(union(&loc["pageName"]), &Value::String("Home".into()));
    assert_eq!(
        union(&loc["rowName"]),
        &Value::String("Trending Now".into())
    );
    assert_eq!(union(&loc["rowIndex"]), &Value::Int(3));
    assert!(strs(&r["corrections"]).is_empty() && strs(&r["mismatches"]).is_empty());
    assert_eq!(tally, Tally::default(), "a clean event counts nothing");
}

#[test]
fn confluent_framing_carries_the_schema_id() {
    let (outcome, rec, _) = run(
        &event(r#""videoId":80000002,"entityId":"title:80000002""#),
        Framing::Confluent { schema_id: 42 },
    );
    assert_eq!(outcome, Outcome::Record);
    assert_eq!(rec.unwrap()["videoId"], Value::Long(80000002));
}

#[test]
fn every_rejection_reason() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            b"{\"eventType\":\"impression\",\xff}".to_vec(),
            "invalid_utf8",
        ),
        (b"{\"eventType\":\"impression\",".to_vec(), "invalid_json"),
        (b"[1,2,3]".to_vec(), "invalid_json"),
        (vec![b' '; 70_000], "oversize"),
        (br#"{"eventId":"x"}"#.to_vec(), "missing_field"),
        (br#"{"eventType":7}"#.to_vec(), "invalid_field"),
        (
            event(r#""videoId":80000001"#)
                .replace_str("\"profileId\":\"P1\"", "\"profileId\":null"),
            "missing_field",
        ),
        (
            event(r#""videoId":80000001"#).replace_str("\"profileId\":\"P1\"", "\"profileId\":12"),
            "invalid_field",
        ),
        (
            event(r#""videoId":80000001"#).replace_str("\"eventId\":\"e1\"", "\"eventId\":\"\""),
            "missing_field",
        ),
        (
            event(r#""videoId":80000001"#).replace_str(
                &format!("\"timestamp\":{}", NOW - 1000),
                "\"timestamp\":\"yesterday\"",
            ),
            "invalid_field",
        ),
        (
            event(r#""videoId":80000001"#).replace_str(
                &format!("\"timestamp\":{}", NOW - 1000),
                &format!("\"timestamp\":{}", NOW - 8 * 86_400_000),
            ),
            "timestamp_out_of_range",
        ),
        (
            event(r#""videoId":80000001"#).replace_str(
                &format!("\"timestamp\":{}", NOW - 1000),
                &format!("\"timestamp\":{}", NOW + 2 * 3_600_000),
            ),
            "timestamp_out_of_range",
        ),
        (event(""), "missing_field"),
        (
            event(r#""videoId":"abc","entityId":"film-9""#),
            "missing_field",
        ),
        (event(r#""videoId":99999999"#), "unknown_title"),
    ];
    for (payload, reason) in cases {
        let r = rejected(&payload);
        assert_eq!(
            r.reason(),
            reason,
            "{r} for {:?}",
            String::from_utf8_lossy(&payload[..payload.len().min(120)])
        );
        assert!(!r.to_string().is_empty());
    }
}

trait ReplaceStr {
    fn replace_str(&self, from: &str, to: &str) -> Vec<u8>;
}
impl ReplaceStr for Vec<u8> {
    fn replace_str(&self, from: &str, to: &str) -> Vec<u8> {
        let s = String::from_utf8(self.clone()).unwrap();
        assert!(s.contains(from), "{from} not in {s}");
        s.replace(from, to).into_bytes()
    }
}

#[test]
fn other_event_types_are_filtered_not_rejected() {
    let (o, _, _) = run(
        br#"{"eventType":"search","query":"x"}"#,
        Framing::SingleObject,
    );
    assert_eq!(o, Outcome::Filtered("search"));
    let (o, _, _) = run(br#"{"eventType":"brand_new_type"}"#, Framing::SingleObject);
    assert_eq!(o, Outcome::Filtered("other"));
}

#[test]
fn every_correction_and_mismatch() {
    // videoId missing → from entityId.
    let (_, r, t) = run(
        &event(r#""entityId":"title:80000003""#),
        Framing::SingleObject,
    );
    let r = r.unwrap();
    assert_eq!(r["videoId"], Value::Long(80000003));
    assert_eq!(strs(&r["corrections"]), ["videoId<-entityId"]);
    assert_eq!(t.corrections[Correction::VideoFromEntity as usize], 1);
    assert_eq!(t.nulls[Column::VideoId as usize], 1);

    // entityId missing → rebuilt from videoId.
    let (_, r, t) = run(&event(r#""videoId":80000004"#), Framing::SingleObject);
    let r = r.unwrap();
    assert_eq!(r["entityId"], Value::String("title:80000004".into()));
    assert_eq!(strs(&r["corrections"]), ["entityId<-videoId"]);
    assert_eq!(t.corrections[Correction::EntityFromVideo as usize], 1);

    // Only the artwork names the title.
    let (_, r, _) = run(
        &event(r#""imageId":"img-80000005-1""#),
        Framing::SingleObject,
    );
    let r = r.unwrap();
    assert_eq!(
        (r["videoId"].clone(), r["entityId"].clone()),
        (
            Value::Long(80000005),
            Value::String("title:80000005".into())
        )
    );
    assert_eq!(
        strs(&r["corrections"]),
        ["videoId<-imageId", "entityId<-videoId"]
    );

    // Disagreement settled by the artwork.
    let (_, r, t) = run(
        &event(r#""videoId":80000006,"entityId":"title:80000007","imageId":"img-80000007-1""#),
        Framing::SingleObject,
    );
    let r = r.unwrap();
    assert_eq!(r["videoId"], Value::Long(80000007));
    assert_eq!(t.mismatches[Pair::EntityVideo as usize], [0, 1]);

    // Undecidable disagreement: kept, flagged.
    let (_, r, t) = run(
        &event(r#""videoId":80000006,"entityId":"title:80000007""#),
        Framing::SingleObject,
    );
    let r = r.unwrap();
    assert_eq!(
        (r["videoId"].clone(), r["entityId"].clone()),
        (
            Value::Long(80000006),
            Value::String("title:80000007".into())
        )
    );
    assert_eq!(strs(&r["mismatches"]), ["entityId/videoId"]);
    assert_eq!(t.mismatches[Pair::EntityVideo as usize], [1, 0]);

    // showId disagreeing with the catalog is corrected from the catalog.
    let (_, r, t) = run(
        &event(r#""videoId":80000001,"entityId":"title:80000001","showId":123"#),
        Framing::SingleObject,
    );
    let r = r.unwrap();
    assert_eq!(strs(&r["corrections"]), ["showId<-catalog"]);
    assert_eq!(t.mismatches[Pair::ShowCatalog as usize], [0, 1]);
}

#[test]
fn null_and_invalid_columns_are_counted_and_nulled() {
    let (o, r, t) = run(
        &event(r#""videoId":80000001,"entityId":"title:80000001","imageId":null"#)
            .replace_str("\"rowIndex\":3", "\"rowIndex\":-2")
            .replace_str("\"country\":\"US\"", "\"country\":5"),
        Framing::SingleObject,
    );
    assert_eq!(o, Outcome::Record);
    let r = r.unwrap();
    assert_eq!(union(&r["imageId"]), &Value::Null);
    assert_eq!(union(&r["country"]), &Value::Null);
    assert_eq!(t.nulls[Column::ImageId as usize], 1);
    assert_eq!(t.invalid[Column::RowIndex as usize], 1);
    assert_eq!(t.invalid[Column::Country as usize], 1);
}

#[test]
fn generated_traffic_ends_as_the_generator_says() {
    let schema = avro::schema();
    let mut p = Processor::new(
        Encoder::new(&schema, Framing::SingleObject),
        Limits::default(),
        locations(),
    );
    let mut g = Generator::new(
        11,
        100,
        Mix {
            non_impression: 0.2,
            invalid: 0.2,
            mismatch: 0.3,
        },
    );
    let cat = catalog();
    let mut out = Vec::new();
    for _ in 0..5_000 {
        let e = g.next_event(NOW);
        let mut t = Tally::default();
        let outcome = p.process(&e.payload, &cat, NOW, &mut out, &mut t);
        match (e.kind, &outcome) {
            (k, Outcome::Record) if k.is_record() => {
                let r = decode(&out, Framing::SingleObject);
                assert_eq!(r["eventId"], Value::String(e.event_id.clone()));
                let flagged = !strs(&r["mismatches"]).is_empty();
                assert_eq!(flagged, k == Kind::UncorrectableMismatch, "{k:?}");
            }
            (k, Outcome::Rejected(r)) => {
                assert_eq!(k.reject_reason(), Some(r.reason()), "{k:?}: {r}")
            }
            (Kind::NonImpression, Outcome::Filtered(_)) => {}
            (k, o) => panic!("{k:?} became {o:?}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_become_a_record_a_dead_letter_or_a_filtered_event(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let (outcome, _, _) = run(&bytes, Framing::SingleObject);
        if let Outcome::Rejected(r) = outcome {
            prop_assert!(Reject::REASONS.contains(&r.reason()));
        }
    }

    #[test]
    fn mutated_events_never_panic(cut in 0usize..1300, byte in any::<u8>(), seed in 0u64..1000) {
        let mut g = Generator::new(seed, 100, Mix::default());
        let mut payload = g.next_event(NOW).payload;
        let at = cut.min(payload.len().saturating_sub(1));
        payload[at] = byte;
        let (outcome, _, _) = run(&payload, Framing::SingleObject);
        if let Outcome::Rejected(r) = outcome {
            prop_assert!(Reject::REASONS.contains(&r.reason()));
        }
    }
}

#[test]
fn the_widest_timestamp_window_does_not_overflow() {
    // Found by the fuzz harness (a config's limits near i64::MAX): now ± the window overflowed.
    let schema = avro::schema();
    let wide = Limits {
        max_event_bytes: usize::MAX,
        max_age_ms: i64::MAX,
        max_future_ms: i64::MAX,
    };
    let mut p = Processor::new(
        Encoder::new(&schema, Framing::SingleObject),
        wide,
        locations(),
    );
    let payload = event(r#""videoId":80000001"#);
    for now in [NOW, 0, i64::MAX] {
        let (mut out, mut tally) = (Vec::new(), Tally::default());
        assert_eq!(
            p.process(&payload, &catalog(), now, &mut out, &mut tally),
            Outcome::Record,
            "at {now}"
        );
    }
}
