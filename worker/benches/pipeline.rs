//! The in-process path on ~1.2 KB generated events (parse → validate → resolve → enrich →
//! quality → Avro), reported as events/s on one core, next to a naive baseline in the same run:
//! serde_json::Value parsing and apache-avro's Value API (schema parsed once).
//!
//! `cargo bench -p impressions-worker --bench pipeline` (see docs/benchmarks.md).

use apache_avro::{Schema as AvroSchema, types::Value as AvroValue};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use impressions_worker::{
    avro::{self, Encoder, Framing},
    catalog::{Catalog, TitleKind},
    event,
    loadgen::sample,
    process::{Limits, Locations, Outcome, Processor},
    quality::Tally,
};
use serde_json::Value;

const N: usize = sample::EVENTS;

fn bench(c: &mut Criterion) {
    let (events, catalog, now) = sample::traffic();
    let bytes: usize = events.iter().map(Vec::len).sum();
    println!(
        "{} events, {} bytes on average",
        events.len(),
        bytes / events.len()
    );
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(20);

    let schema = avro::schema();
    let mut p = Processor::new(
        Encoder::new(&schema, Framing::SingleObject),
        Limits::default(),
        sample::locations(),
    );
    let mut out = Vec::with_capacity(1024);
    group.bench_function("typed_path", |b| {
        b.iter(|| {
            let mut tally = Tally::default();
            let mut records = 0;
            for e in &events {
                if p.process(e, &catalog, now, &mut out, &mut tally) == Outcome::Record {
                    records += out.len();
                }
            }
            records
        })
    });

    group.bench_function("parse_only_typed", |b| {
        b.iter(|| {
            events
                .iter()
                .filter_map(|e| std::str::from_utf8(e).ok())
                .filter_map(|t| event::parse(t).ok())
                .filter(|e| e.video_id.is_some())
                .count()
        })
    });

    let avro_schema = AvroSchema::parse_str(avro::IMPRESSION_SCHEMA).unwrap();
    let locs = sample::locations();
    group.bench_function("naive_value_api", |b| {
        b.iter(|| {
            let mut n = 0;
            for e in &events {
                if let Some(bytes) = naive(e, &catalog, &locs, &avro_schema, now) {
                    n += bytes.len();
                }
            }
            n
        })
    });
    group.finish();
}

/// The straightforward implementation: a JSON tree, lookups by name, an Avro Value tree.
fn naive(
    payload: &[u8],
    catalog: &Catalog,
    locs: &Locations,
    schema: &AvroSchema,
    now: i64,
) -> Option<Vec<u8>> {
    let v: Value = serde_json::from_slice(payload).ok()?;
    if v.get("eventType")?.as_str()? != "impression" {
        return None;
    }
    let event_id = v.get("eventId")?.as_str()?.to_owned();
    let profile = v.get("profileId")?.as_str()?.to_owned();
    let ts = v.get("timestamp")?.as_i64()?;
    if ts < now - 7 * 86_400_000 || ts > now + 3_600_000 {
        return None;
    }
    let entity = v
        .get("entityId")
        .and_then(Value::as_str)
        .and_then(|s| s.strip_prefix("title:"))
        .and_then(|s| s.parse::<i64>().ok());
    let video = v.get("videoId").and_then(Value::as_i64).or(entity)?;
    let title = catalog.get(video)?;
    let s = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .map(|x| AvroValue::Union(1, Box::new(AvroValue::String(x.to_owned()))))
            .unwrap_or(AvroValue::Union(0, Box::new(AvroValue::Null)))
    };
    let i = |k: &str| {
        v.get(k)
            .and_then(Value::as_i64)
            .map(|x| AvroValue::Union(1, Box::new(AvroValue::Int(x as i32))))
            .unwrap_or(AvroValue::Union(0, Box::new(AvroValue::Null)))
    };
    let opt_long = |x: Option<i64>| {
        x.map(|x| AvroValue::Union(1, Box::new(AvroValue::Long(x))))
            .unwrap_or(AvroValue::Union(0, Box::new(AvroValue::Null)))
    };
    let opt_int = |x: Option<i32>| {
        x.map(|x| AvroValue::Union(1, Box::new(AvroValue::Int(x))))
            .unwrap_or(AvroValue::Union(0, Box::new(AvroValue::Null)))
    };
    let kind = match title.kind {
        TitleKind::Movie => 0,
        TitleKind::Show => 1,
        TitleKind::Season => 2,
        TitleKind::Episode => 3,
        TitleKind::Other => 4,
    };
    let page = v.get("pageId").and_then(Value::as_i64);
    let row = v.get("rowId").and_then(Value::as_str);
    let page_name = page
        .and_then(|p| locs.pages.get(&p))
        .map(|n| AvroValue::Union(1, Box::new(AvroValue::String(n.clone()))))
        .unwrap_or(AvroValue::Union(0, Box::new(AvroValue::Null)));
    let row_name = row
        .and_then(|r| locs.rows.get(r))
        .map(|n| AvroValue::Union(1, Box::new(AvroValue::String(n.clone()))))
        .unwrap_or(AvroValue::Union(0, Box::new(AvroValue::Null)));
    let record = AvroValue::Record(vec![
        ("eventId".into(), AvroValue::String(event_id)),
        ("timestamp".into(), AvroValue::TimestampMillis(ts)),
        ("profileId".into(), AvroValue::String(profile)),
        ("accountId".into(), s("accountId")),
        ("deviceId".into(), s("deviceId")),
        ("deviceType".into(), s("deviceType")),
        ("country".into(), s("country")),
        ("videoId".into(), AvroValue::Long(video)),
        (
            "entityId".into(),
            AvroValue::String(format!("title:{video}")),
        ),
        ("imageId".into(), s("imageId")),
        (
            "title".into(),
            AvroValue::Record(vec![
                ("name".into(), AvroValue::String(title.name.clone())),
                (
                    "kind".into(),
                    AvroValue::Enum(kind, format!("{:?}", title.kind).to_uppercase()),
                ),
                ("showId".into(), opt_long(title.show_id)),
                ("seasonNumber".into(), opt_int(title.season_number)),
                ("episodeNumber".into(), opt_int(title.episode_number)),
                (
                    "genres".into(),
                    AvroValue::Array(
                        title
                            .genres
                            .iter()
                            .map(|g| AvroValue::String(g.clone()))
                            .collect(),
                    ),
                ),
                (
                    "maturityRating".into(),
                    title
                        .maturity_rating
                        .clone()
                        .map(|m| AvroValue::Union(1, Box::new(AvroValue::String(m))))
                        .unwrap_or(AvroValue::Union(0, Box::new(AvroValue::Null))),
                ),
                ("releaseYear".into(), opt_int(title.release_year)),
            ]),
        ),
        (
            "location".into(),
            AvroValue::Record(vec![
                ("pageId".into(), i("pageId")),
                ("pageName".into(), page_name),
                ("rowId".into(), s("rowId")),
                ("rowName".into(), row_name),
                ("rowIndex".into(), i("rowIndex")),
                ("columnIndex".into(), i("columnIndex")),
            ]),
        ),
        ("corrections".into(), AvroValue::Array(vec![])),
        ("mismatches".into(), AvroValue::Array(vec![])),
        ("processedAt".into(), AvroValue::TimestampMillis(now)),
    ]);
    apache_avro::to_avro_datum(schema, record).ok()
}

criterion_group!(benches, bench);
criterion_main!(benches);
