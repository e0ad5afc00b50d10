//! From the topic's Avro payloads to Arrow record batches of the table's schema: the framing
//! (single-object or Confluent wire format, as the worker writes them), the datum decoded with
//! the output schema, logical types converted to the table's (milliseconds to microseconds,
//! enums to strings), and rows grouped by their partition (the event time's hour or day). A
//! payload that cannot become a row, or a row the table's schema does not take, is named with
//! its reason ([`RowError`]) for the dead-letter topic.

use std::{collections::BTreeMap, sync::Arc};

use apache_avro::{Schema as Avro, types::Value};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use serde_json::{Map, Value as Json};

use crate::schema::{PARTITION_SOURCE, Partitioning};

/// Why a record cannot be archived: the dead letter's reason and its detail.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum RowError {
    #[error("payload of {0} bytes has neither single-object nor Confluent framing")]
    Framing(usize),
    #[error(
        "single-object payload written with the schema of fingerprint {found}, not impression.avsc ({expected})"
    )]
    SchemaMismatch { found: String, expected: String },
    #[error("Avro datum does not match the output schema: {0}")]
    Datum(String),
    #[error("record has no `{PARTITION_SOURCE}` timestamp")]
    NoEventTime,
    #[error("the row does not fit the table's schema: {0}")]
    TableMismatch(String),
}

impl RowError {
    /// Every reason (metric label values).
    pub const REASONS: [&'static str; 5] = [
        "framing",
        "schema_mismatch",
        "datum",
        "no_event_time",
        "table_mismatch",
    ];

    /// The reason: the dead letter's `impressions.reject.reason` header and the metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            RowError::Framing(_) => "framing",
            RowError::SchemaMismatch { .. } => "schema_mismatch",
            RowError::Datum(_) => "datum",
            RowError::NoEventTime => "no_event_time",
            RowError::TableMismatch(_) => "table_mismatch",
        }
    }
}

/// The 8-byte Rabin fingerprints a single-object payload of `impression.avsc` may carry: the
/// worker's encoder's (serde_avro_fast) and apache-avro's (their canonical forms of the schema
/// differ, so a record written by another Avro library is taken too).
pub fn fingerprints(avro: &Avro) -> [[u8; 8]; 2] {
    let worker = *impressions_worker_core::avro::schema().rabin_fingerprint();
    let f = avro.fingerprint::<apache_avro::rabin::Rabin>();
    let mut other = [0u8; 8];
    other.copy_from_slice(&f.bytes[..8]);
    [worker, other]
}

/// The Avro datum of a framed payload; a single-object payload must carry one of
/// `fingerprints`.
pub fn unframe<'a>(payload: &'a [u8], fingerprints: &[[u8; 8]]) -> Result<&'a [u8], RowError> {
    match payload {
        [0xC3, 0x01, rest @ ..] if rest.len() >= 8 => {
            if !fingerprints.iter().any(|f| rest[..8] == f[..]) {
                return Err(RowError::SchemaMismatch {
                    found: hex(&rest[..8]),
                    expected: hex(&fingerprints[0]),
                });
            }
            Ok(&rest[8..])
        }
        [0x00, rest @ ..] if rest.len() >= 4 => Ok(&rest[4..]),
        _ => Err(RowError::Framing(payload.len())),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The output schema and what decoding needs of it.
#[derive(Debug, Clone)]
pub struct Decoder {
    pub avro: Avro,
    pub fingerprints: [[u8; 8]; 2],
    pub partitioning: Partitioning,
}

impl Decoder {
    pub fn new(avro: Avro, partitioning: Partitioning) -> Self {
        Decoder {
            fingerprints: fingerprints(&avro),
            avro,
            partitioning,
        }
    }

    /// Decodes one framed payload into a row of the table: (its bucket, its value). The datum
    /// must be read to its last byte (trailing bytes are another schema's).
    pub fn decode(&self, payload: &[u8]) -> Result<(i32, Json), RowError> {
        let mut datum = unframe(payload, &self.fingerprints)?;
        let value = apache_avro::from_avro_datum(&self.avro, &mut datum, None)
            .map_err(|e| RowError::Datum(e.to_string()))?;
        if !datum.is_empty() {
            return Err(RowError::Datum(format!(
                "{} bytes left after the record",
                datum.len()
            )));
        }
        let millis = event_millis(&value).ok_or(RowError::NoEventTime)?;
        Ok((self.partitioning.bucket_of_millis(millis), to_json(value)))
    }
}

/// Where a record came from and its bytes: what its dead letter carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Raw {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
}

/// One decoded row: the JSON shape arrow's decoder reads, its partition bucket, its record.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub bucket: i32,
    pub value: Json,
    pub raw: Raw,
}

fn event_millis(record: &Value) -> Option<i64> {
    let Value::Record(fields) = record else {
        return None;
    };
    fields
        .iter()
        .find_map(|(name, v)| match (name.as_str(), v) {
            (PARTITION_SOURCE, Value::TimestampMillis(ms)) => Some(*ms),
            (PARTITION_SOURCE, Value::TimestampMicros(us)) => Some(us.div_euclid(1000)),
            _ => None,
        })
}

/// An Avro value as the JSON the table's Arrow schema reads: timestamps in microseconds, enums
/// as their symbol, unions as their branch, bytes as a string of the bytes.
pub fn to_json(value: Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(b),
        Value::Int(i) | Value::Date(i) => Json::from(i),
        Value::Long(l) => Json::from(l),
        Value::Float(f) => Json::from(f),
        Value::Double(d) => Json::from(d),
        Value::TimestampMillis(ms) | Value::LocalTimestampMillis(ms) => {
            Json::from(ms.saturating_mul(1000))
        }
        Value::TimestampMicros(us) | Value::LocalTimestampMicros(us) => Json::from(us),
        Value::String(s) | Value::Enum(_, s) => Json::String(s),
        Value::Uuid(u) => Json::String(u.to_string()),
        Value::Bytes(b) | Value::Fixed(_, b) => Json::String(String::from_utf8_lossy(&b).into()),
        Value::Union(_, inner) => to_json(*inner),
        Value::Array(items) => Json::Array(items.into_iter().map(to_json).collect()),
        Value::Map(m) => Json::Object(m.into_iter().map(|(k, v)| (k, to_json(v))).collect()),
        Value::Record(fields) => Json::Object(
            fields
                .into_iter()
                .map(|(k, v)| (k, to_json(v)))
                .collect::<Map<_, _>>(),
        ),
        other => Json::String(format!("{other:?}")),
    }
}

/// Rows as Arrow batches: one per partition bucket (buckets in order), and the rows the table's
/// schema does not take, each with why.
#[derive(Debug, Default)]
pub struct Batches {
    pub batches: Vec<(i32, RecordBatch)>,
    pub misfits: Vec<(Raw, RowError)>,
}

/// Rows grouped by partition bucket, each group one Arrow batch of `schema`. A group the schema
/// does not take is tried row by row: the rows that fit make the batch, the others are misfits
/// (the common case, every row fitting, converts each group once).
pub fn batches_by_bucket(rows: Vec<Row>, schema: &SchemaRef) -> Batches {
    let mut groups: BTreeMap<i32, Vec<Row>> = BTreeMap::new();
    for row in rows {
        groups.entry(row.bucket).or_default().push(row);
    }
    let mut out = Batches::default();
    for (bucket, rows) in groups {
        let values: Vec<Json> = rows.iter().map(|r| r.value.clone()).collect();
        if let Ok(batch) = to_batch(&values, schema) {
            out.batches.push((bucket, batch));
            continue;
        }
        let mut fit: Vec<Row> = Vec::new();
        for row in rows {
            match to_batch(std::slice::from_ref(&row.value), schema) {
                Ok(_) => fit.push(row),
                Err(e) => out
                    .misfits
                    .push((row.raw, RowError::TableMismatch(e.to_string()))),
            }
        }
        if fit.is_empty() {
            continue;
        }
        let values: Vec<Json> = fit.iter().map(|r| r.value.clone()).collect();
        match to_batch(&values, schema) {
            Ok(batch) => out.batches.push((bucket, batch)),
            // rows that fit one by one and not together: none is archived, none is lost
            Err(e) => out.misfits.extend(
                fit.into_iter()
                    .map(|r| (r.raw, RowError::TableMismatch(e.to_string()))),
            ),
        }
    }
    out
}

fn to_batch(values: &[Json], schema: &SchemaRef) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let mut decoder = arrow_json::ReaderBuilder::new(Arc::clone(schema))
        .with_batch_size(values.len().max(1))
        .with_strict_mode(true)
        .build_decoder()?;
    decoder.serialize(values)?;
    Ok(decoder
        .flush()?
        .unwrap_or_else(|| RecordBatch::new_empty(Arc::clone(schema))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::iceberg_schema;
    use arrow_array::{Array, Int64Array, StringArray, TimestampMicrosecondArray};
    use impressions_worker_core::{
        avro::{Encoder, Framing, IMPRESSION_SCHEMA},
        catalog::TitleKind,
        record::{EntityId, ImpressionRecord, LocationRecord, TitleRecord},
    };

    fn record<'a>(id: &'a str, ts: i64, genres: &'a [String]) -> ImpressionRecord<'a> {
        ImpressionRecord {
            event_id: id,
            timestamp: ts,
            profile_id: "p1",
            account_id: None,
            device_id: Some("d1"),
            device_type: None,
            country: Some("NL"),
            video_id: 42,
            entity_id: EntityId::FromVideo(42),
            image_id: None,
            title: TitleRecord {
                name: "A Title",
                kind: TitleKind::Show,
                show_id: Some(7),
                season_number: None,
                episode_number: None,
                genres,
                maturity_rating: None,
                release_year: Some(2020),
            },
            location: LocationRecord {
                row_index: Some(3),
                ..Default::default()
            },
            corrections: vec!["videoId<-entityId"],
            mismatches: vec![],
            processed_at: ts + 5,
        }
    }

    fn encoded(framing: Framing, id: &str, ts: i64) -> Vec<u8> {
        let schema = impressions_worker_core::avro::schema();
        let mut enc = Encoder::new(&schema, framing);
        let genres = vec!["drama".to_string()];
        let mut out = Vec::new();
        enc.encode(&record(id, ts, &genres), &mut out).unwrap();
        out
    }

    fn avro() -> Avro {
        Avro::parse_str(IMPRESSION_SCHEMA).unwrap()
    }

    fn decoder() -> Decoder {
        Decoder::new(avro(), Partitioning::Hour)
    }

    fn row(payload: Vec<u8>) -> Row {
        let (bucket, value) = decoder().decode(&payload).unwrap();
        Row {
            bucket,
            value,
            raw: Raw {
                partition: 0,
                offset: 0,
                key: None,
                payload,
            },
        }
    }

    #[test]
    fn both_framings_decode_to_the_same_row() {
        let a = decoder()
            .decode(&encoded(Framing::SingleObject, "e1", 7_200_001))
            .unwrap();
        let b = decoder()
            .decode(&encoded(
                Framing::Confluent { schema_id: 9 },
                "e1",
                7_200_001,
            ))
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.0, 2);
        assert_eq!(a.1["timestamp"], Json::from(7_200_001_000i64));
        assert_eq!(a.1["title"]["kind"], Json::from("SHOW"));
        assert_eq!(a.1["accountId"], Json::Null);
        assert_eq!(a.1["entityId"], Json::from("title:42"));
    }

    #[test]
    fn the_fingerprint_is_the_one_the_worker_writes() {
        let payload = encoded(Framing::SingleObject, "e1", 1);
        assert_eq!(payload[2..10], fingerprints(&avro())[0]);
    }

    #[test]
    fn bad_payloads_are_named() {
        let d = decoder();
        let reason = |p: &[u8]| d.decode(p).unwrap_err().reason();
        assert_eq!(d.decode(&[1, 2, 3]), Err(RowError::Framing(3)));
        assert_eq!(reason(b"{\"eventId\": \"e1\"}"), "framing");
        let mut truncated = encoded(Framing::SingleObject, "e1", 1);
        truncated.truncate(14);
        assert_eq!(reason(&truncated), "datum");
        // a record of another schema: another fingerprint
        let mut foreign = encoded(Framing::SingleObject, "e1", 1);
        foreign[5] ^= 0xff;
        let e = d.decode(&foreign).unwrap_err();
        assert_eq!(e.reason(), "schema_mismatch");
        assert!(e.to_string().contains(&hex(&d.fingerprints[0])), "{e}");
        // bytes after the record: not this schema's datum
        let mut longer = encoded(Framing::Confluent { schema_id: 1 }, "e1", 1);
        longer.extend([2, 4, 6]);
        let e = d.decode(&longer).unwrap_err();
        assert_eq!(e, RowError::Datum("3 bytes left after the record".into()));
        for e in [
            RowError::Framing(0),
            RowError::SchemaMismatch {
                found: String::new(),
                expected: String::new(),
            },
            RowError::Datum(String::new()),
            RowError::NoEventTime,
            RowError::TableMismatch(String::new()),
        ] {
            assert!(RowError::REASONS.contains(&e.reason()));
        }
    }

    #[test]
    fn a_row_the_table_does_not_take_is_a_misfit_and_the_others_are_archived() {
        let schema = Arc::new(
            iceberg::arrow::schema_to_arrow_schema(&iceberg_schema(&avro()).unwrap()).unwrap(),
        );
        let mut rows: Vec<Row> = ["a", "b", "c"]
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let mut r = row(encoded(Framing::SingleObject, id, 10));
                r.raw.offset = i as i64;
                r
            })
            .collect();
        // a column the table does not have (strict decoding refuses it)
        rows[1].value["foreign"] = Json::from(1);
        let out = batches_by_bucket(rows, &schema);
        assert_eq!(out.batches.len(), 1);
        assert_eq!(out.batches[0].1.num_rows(), 2);
        assert_eq!(out.misfits.len(), 1);
        let (raw, e) = &out.misfits[0];
        assert_eq!((raw.offset, e.reason()), (1, "table_mismatch"));
        assert!(e.to_string().contains("foreign"), "{e}");
    }

    #[test]
    fn rows_become_one_batch_per_hour_with_the_tables_types() {
        let schema = Arc::new(
            iceberg::arrow::schema_to_arrow_schema(&iceberg_schema(&avro()).unwrap()).unwrap(),
        );
        let rows = [("a", 10), ("b", 3_600_000 + 1), ("c", 20)]
            .map(|(id, ts)| row(encoded(Framing::SingleObject, id, ts)))
            .to_vec();
        let out = batches_by_bucket(rows, &schema);
        assert!(out.misfits.is_empty());
        let batches = out.batches;
        assert_eq!(
            batches
                .iter()
                .map(|(b, r)| (*b, r.num_rows()))
                .collect::<Vec<_>>(),
            [(0, 2), (1, 1)]
        );
        let first = &batches[0].1;
        let ids = first
            .column_by_name("eventId")
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!((ids.value(0), ids.value(1)), ("a", "c"));
        let ts = first
            .column_by_name("timestamp")
            .unwrap()
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(ts.value(1), 20_000);
        let video = first
            .column_by_name("videoId")
            .unwrap()
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(video.value(0), 42);
        assert!(first.column_by_name("accountId").unwrap().is_null(0));
        // the field ids travel with the batch's schema (the Parquet writer matches on them)
        assert_eq!(
            first
                .schema()
                .field_with_name("eventId")
                .unwrap()
                .metadata()
                .get("PARQUET:field_id"),
            Some(&"1".to_string())
        );
    }
}
