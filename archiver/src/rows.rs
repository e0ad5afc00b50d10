//! From the topic's Avro payloads to Arrow record batches of the table's schema: the framing
//! (single-object or Confluent wire format, as the worker writes them), the datum decoded with
//! the output schema, logical types converted to the table's (milliseconds to microseconds,
//! enums to strings), and rows grouped by their partition (the event time's hour or day).

use std::{collections::BTreeMap, sync::Arc};

use apache_avro::{Schema as Avro, types::Value};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use serde_json::{Map, Value as Json};

use crate::schema::{PARTITION_SOURCE, Partitioning};

/// Why a payload could not become a row.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RowError {
    #[error("payload of {0} bytes has neither single-object nor Confluent framing")]
    Framing(usize),
    #[error("Avro datum does not match the output schema: {0}")]
    Datum(String),
    #[error("record has no `{PARTITION_SOURCE}` timestamp")]
    NoEventTime,
}

impl RowError {
    /// The metric label of the reason.
    pub fn reason(&self) -> &'static str {
        match self {
            RowError::Framing(_) => "framing",
            RowError::Datum(_) => "datum",
            RowError::NoEventTime => "no_event_time",
        }
    }
}

/// The Avro datum of a framed payload.
pub fn unframe(payload: &[u8]) -> Result<&[u8], RowError> {
    match payload {
        [0xC3, 0x01, rest @ ..] if rest.len() >= 8 => Ok(&rest[8..]),
        [0x00, rest @ ..] if rest.len() >= 4 => Ok(&rest[4..]),
        _ => Err(RowError::Framing(payload.len())),
    }
}

/// One decoded row: the JSON shape arrow's decoder reads, and its partition bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub bucket: i32,
    pub value: Json,
}

/// Decodes one framed payload into a row of the table.
pub fn decode(payload: &[u8], avro: &Avro, partitioning: Partitioning) -> Result<Row, RowError> {
    let mut datum = unframe(payload)?;
    let value = apache_avro::from_avro_datum(avro, &mut datum, None)
        .map_err(|e| RowError::Datum(e.to_string()))?;
    let millis = event_millis(&value).ok_or(RowError::NoEventTime)?;
    Ok(Row {
        bucket: partitioning.bucket_of_millis(millis),
        value: to_json(value),
    })
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

/// Rows grouped by partition bucket, each group one Arrow batch of `schema` (buckets in order).
pub fn batches_by_bucket(
    rows: Vec<Row>,
    schema: &SchemaRef,
) -> Result<Vec<(i32, RecordBatch)>, arrow_schema::ArrowError> {
    let mut groups: BTreeMap<i32, Vec<Json>> = BTreeMap::new();
    for row in rows {
        groups.entry(row.bucket).or_default().push(row.value);
    }
    groups
        .into_iter()
        .map(|(bucket, values)| Ok((bucket, to_batch(&values, schema)?)))
        .collect()
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

    #[test]
    fn both_framings_decode_to_the_same_row() {
        let a = decode(
            &encoded(Framing::SingleObject, "e1", 7_200_001),
            &avro(),
            Partitioning::Hour,
        )
        .unwrap();
        let b = decode(
            &encoded(Framing::Confluent { schema_id: 9 }, "e1", 7_200_001),
            &avro(),
            Partitioning::Hour,
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.bucket, 2);
        assert_eq!(a.value["timestamp"], Json::from(7_200_001_000i64));
        assert_eq!(a.value["title"]["kind"], Json::from("SHOW"));
        assert_eq!(a.value["accountId"], Json::Null);
        assert_eq!(a.value["entityId"], Json::from("title:42"));
    }

    #[test]
    fn bad_payloads_are_named() {
        assert_eq!(unframe(&[1, 2, 3]), Err(RowError::Framing(3)));
        let mut truncated = encoded(Framing::SingleObject, "e1", 1);
        truncated.truncate(14);
        let err = decode(&truncated, &avro(), Partitioning::Hour).unwrap_err();
        assert_eq!(err.reason(), "datum");
    }

    #[test]
    fn rows_become_one_batch_per_hour_with_the_tables_types() {
        let schema = Arc::new(
            iceberg::arrow::schema_to_arrow_schema(&iceberg_schema(&avro()).unwrap()).unwrap(),
        );
        let rows = [("a", 10), ("b", 3_600_000 + 1), ("c", 20)]
            .map(|(id, ts)| {
                decode(
                    &encoded(Framing::SingleObject, id, ts),
                    &avro(),
                    Partitioning::Hour,
                )
                .unwrap()
            })
            .to_vec();
        let batches = batches_by_bucket(rows, &schema).unwrap();
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
