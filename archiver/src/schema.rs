//! The table's shape, derived from the Avro schema of the pipeline's output topic
//! (`worker/schemas/impression.avsc`): one pure function from an Avro schema to an Iceberg
//! schema, and the partition spec the configured partitioning asks for.
//!
//! Mapping (docs/archive.md): record → struct, `["null", X]` → optional X (other fields are
//! required), string and enum → string, int → int, long → long, `timestamp-millis` →
//! timestamptz (microseconds), float/double/boolean/bytes as named, array → list, map → map with
//! string keys. Column names are the Avro field names. Field ids are assigned depth first from 1,
//! so the same Avro schema always gives the same Iceberg schema.

use std::sync::Arc;

use apache_avro::Schema as Avro;
use iceberg::spec::{
    ListType, MapType, NestedField, NestedFieldRef, PrimitiveType, Schema, StructType, Transform,
    Type, UnboundPartitionSpec,
};

/// The Avro field whose value partitions the table (the event time).
pub const PARTITION_SOURCE: &str = "timestamp";

/// What the schema mapping cannot represent.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SchemaError {
    #[error("field {path}: Avro type {avro} has no Iceberg column type here")]
    Unsupported { path: String, avro: String },
    #[error("the top-level Avro schema must be a record, found {0}")]
    NotARecord(String),
    #[error("partition source field `{0}` is missing or not a timestamp")]
    PartitionSource(String),
    #[error("Iceberg rejected the schema: {0}")]
    Iceberg(String),
}

/// How the table is partitioned (by the event time, `timestamp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Partitioning {
    #[default]
    Hour,
    Day,
    None,
}

impl Partitioning {
    /// The partition field's name in the spec (`timestamp_hour`, `timestamp_day`).
    pub fn field_name(self) -> Option<String> {
        match self {
            Partitioning::Hour => Some(format!("{PARTITION_SOURCE}_hour")),
            Partitioning::Day => Some(format!("{PARTITION_SOURCE}_day")),
            Partitioning::None => None,
        }
    }

    fn transform(self) -> Option<Transform> {
        match self {
            Partitioning::Hour => Some(Transform::Hour),
            Partitioning::Day => Some(Transform::Day),
            Partitioning::None => None,
        }
    }

    /// The partition value of an event time in milliseconds since the epoch: hours or days
    /// since the epoch (Iceberg's hour and day transforms), rounded towards negative infinity.
    pub fn bucket_of_millis(self, millis: i64) -> i32 {
        let per = match self {
            Partitioning::Hour => 3_600_000,
            Partitioning::Day => 86_400_000,
            Partitioning::None => return 0,
        };
        millis.div_euclid(per) as i32
    }
}

/// The Iceberg schema of an Avro record schema.
pub fn iceberg_schema(avro: &Avro) -> Result<Schema, SchemaError> {
    let Avro::Record(record) = avro else {
        return Err(SchemaError::NotARecord(kind(avro)));
    };
    let mut ids = 0;
    let fields = record_fields(&record.fields, "", &mut ids)?;
    Schema::builder()
        .with_schema_id(0)
        .with_fields(fields)
        .build()
        .map_err(|e| SchemaError::Iceberg(e.to_string()))
}

/// The partition spec for `partitioning` over `schema` (the event time's column).
pub fn partition_spec(
    schema: &Schema,
    partitioning: Partitioning,
) -> Result<UnboundPartitionSpec, SchemaError> {
    let builder = UnboundPartitionSpec::builder().with_spec_id(0);
    let (Some(name), Some(transform)) = (partitioning.field_name(), partitioning.transform())
    else {
        return Ok(builder.build());
    };
    let source = schema
        .field_by_name(PARTITION_SOURCE)
        .filter(|f| *f.field_type == Type::Primitive(PrimitiveType::Timestamptz))
        .ok_or_else(|| SchemaError::PartitionSource(PARTITION_SOURCE.into()))?;
    builder
        .add_partition_field(source.id, name, transform)
        .map(|b| b.build())
        .map_err(|e| SchemaError::Iceberg(e.to_string()))
}

fn record_fields(
    fields: &[apache_avro::schema::RecordField],
    prefix: &str,
    ids: &mut i32,
) -> Result<Vec<NestedFieldRef>, SchemaError> {
    // Ids of a struct's own fields first, then of their children (Iceberg's convention).
    let first = *ids + 1;
    *ids += fields.len() as i32;
    let mut out = Vec::with_capacity(fields.len());
    for (i, f) in fields.iter().enumerate() {
        let path = format!("{prefix}{}", f.name);
        let (schema, required) = nullable(&f.schema, &path)?;
        let ty = column_type(schema, &path, ids)?;
        let id = first + i as i32;
        let mut field = if required {
            NestedField::required(id, &f.name, ty)
        } else {
            NestedField::optional(id, &f.name, ty)
        };
        if let Some(doc) = &f.doc {
            field = field.with_doc(doc);
        }
        out.push(Arc::new(field));
    }
    Ok(out)
}

/// `["null", X]` or `[X, "null"]` → (X, optional); X → (X, required).
fn nullable<'a>(schema: &'a Avro, path: &str) -> Result<(&'a Avro, bool), SchemaError> {
    let Avro::Union(u) = schema else {
        return Ok((schema, true));
    };
    let non_null: Vec<&Avro> = u.variants().iter().filter(|v| **v != Avro::Null).collect();
    match (non_null.as_slice(), u.is_nullable()) {
        ([only], true) => Ok((only, false)),
        ([only], false) => Ok((only, true)),
        _ => Err(SchemaError::Unsupported {
            path: path.into(),
            avro: kind(schema),
        }),
    }
}

fn column_type(schema: &Avro, path: &str, ids: &mut i32) -> Result<Type, SchemaError> {
    use PrimitiveType as P;
    let primitive = |p| Ok(Type::Primitive(p));
    match schema {
        Avro::Boolean => primitive(P::Boolean),
        Avro::Int => primitive(P::Int),
        Avro::Long => primitive(P::Long),
        Avro::Float => primitive(P::Float),
        Avro::Double => primitive(P::Double),
        Avro::Bytes => primitive(P::Binary),
        Avro::String | Avro::Enum(_) => primitive(P::String),
        Avro::Date => primitive(P::Date),
        Avro::TimestampMillis | Avro::TimestampMicros => primitive(P::Timestamptz),
        Avro::LocalTimestampMillis | Avro::LocalTimestampMicros => primitive(P::Timestamp),
        Avro::Uuid => primitive(P::Uuid),
        Avro::Record(r) => Ok(Type::Struct(StructType::new(record_fields(
            &r.fields,
            &format!("{path}."),
            ids,
        )?))),
        Avro::Array(a) => {
            *ids += 1;
            let id = *ids;
            let element_path = format!("{path}.element");
            let (items, required) = nullable(&a.items, &element_path)?;
            let ty = column_type(items, &element_path, ids)?;
            Ok(Type::List(ListType::new(Arc::new(
                NestedField::list_element(id, ty, required),
            ))))
        }
        Avro::Map(m) => {
            *ids += 2;
            let (key_id, value_id) = (*ids - 1, *ids);
            let value_path = format!("{path}.value");
            let (values, required) = nullable(&m.types, &value_path)?;
            let ty = column_type(values, &value_path, ids)?;
            Ok(Type::Map(MapType::new(
                Arc::new(NestedField::map_key_element(
                    key_id,
                    Type::Primitive(P::String),
                )),
                Arc::new(NestedField::map_value_element(value_id, ty, required)),
            )))
        }
        other => Err(SchemaError::Unsupported {
            path: path.into(),
            avro: kind(other),
        }),
    }
}

fn kind(schema: &Avro) -> String {
    let s = format!("{schema:?}");
    s.split(['(', ' ', '{']).next().unwrap_or("?").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn impression() -> Avro {
        Avro::parse_str(impressions_worker_core::avro::IMPRESSION_SCHEMA).unwrap()
    }

    fn field(schema: &Schema, name: &str) -> NestedFieldRef {
        schema.field_by_name(name).unwrap().clone()
    }

    #[test]
    fn impression_columns_and_nullability() {
        let s = iceberg_schema(&impression()).unwrap();
        let top: Vec<&str> = s
            .as_struct()
            .fields()
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(
            top,
            [
                "eventId",
                "timestamp",
                "profileId",
                "accountId",
                "deviceId",
                "deviceType",
                "country",
                "videoId",
                "entityId",
                "imageId",
                "title",
                "location",
                "corrections",
                "mismatches",
                "processedAt"
            ]
        );
        assert!(field(&s, "eventId").required);
        assert!(!field(&s, "accountId").required);
        assert_eq!(
            *field(&s, "timestamp").field_type,
            Type::Primitive(PrimitiveType::Timestamptz)
        );
        assert_eq!(
            *field(&s, "videoId").field_type,
            Type::Primitive(PrimitiveType::Long)
        );
        // an enum is a string; a nested record a struct; an array a list of required elements
        assert_eq!(
            *field(&s, "title.kind").field_type,
            Type::Primitive(PrimitiveType::String)
        );
        assert!(!field(&s, "title.seasonNumber").required);
        assert_eq!(
            *field(&s, "title.seasonNumber").field_type,
            Type::Primitive(PrimitiveType::Int)
        );
        let Type::List(genres) = &*field(&s, "title.genres").field_type else {
            panic!("genres is a list")
        };
        assert!(genres.element_field.required);
        assert_eq!(
            field(&s, "eventId").doc.as_deref(),
            Some("The client's event id.")
        );
    }

    #[test]
    fn ids_are_unique_and_stable() {
        let a = iceberg_schema(&impression()).unwrap();
        let b = iceberg_schema(&impression()).unwrap();
        assert_eq!(a, b);
        // top-level fields take 1..=15, in order
        assert_eq!(field(&a, "eventId").id, 1);
        assert_eq!(field(&a, "processedAt").id, 15);
        assert_eq!(a.highest_field_id(), {
            // 15 top + 8 title + genres element + 6 location + 2 list elements
            15 + 8 + 1 + 6 + 2
        });
    }

    #[test]
    fn partition_spec_is_hour_of_event_time_by_default() {
        let s = iceberg_schema(&impression()).unwrap();
        let spec = partition_spec(&s, Partitioning::default()).unwrap();
        let f = &spec.fields()[0];
        assert_eq!(f.name, "timestamp_hour");
        assert_eq!(f.transform, Transform::Hour);
        assert_eq!(f.source_id, field(&s, "timestamp").id);
        assert_eq!(
            partition_spec(&s, Partitioning::Day).unwrap().fields()[0].transform,
            Transform::Day
        );
        assert!(
            partition_spec(&s, Partitioning::None)
                .unwrap()
                .fields()
                .is_empty()
        );
    }

    #[test]
    fn buckets_round_down_like_the_transforms() {
        assert_eq!(Partitioning::Hour.bucket_of_millis(0), 0);
        assert_eq!(Partitioning::Hour.bucket_of_millis(3_599_999), 0);
        assert_eq!(Partitioning::Hour.bucket_of_millis(3_600_000), 1);
        assert_eq!(Partitioning::Hour.bucket_of_millis(-1), -1);
        assert_eq!(Partitioning::Day.bucket_of_millis(86_400_000 * 3 + 5), 3);
    }

    #[test]
    fn unsupported_unions_and_non_records_are_named() {
        let s = Avro::parse_str(
            r#"{"type":"record","name":"R","fields":[{"name":"x","type":["int","string"]}]}"#,
        )
        .unwrap();
        assert!(matches!(
            iceberg_schema(&s),
            Err(SchemaError::Unsupported { path, .. }) if path == "x"
        ));
        assert!(matches!(
            iceberg_schema(&Avro::String),
            Err(SchemaError::NotARecord(_))
        ));
        let no_ts = Avro::parse_str(
            r#"{"type":"record","name":"R","fields":[{"name":"timestamp","type":"long"}]}"#,
        )
        .unwrap();
        let schema = iceberg_schema(&no_ts).unwrap();
        assert!(partition_spec(&schema, Partitioning::Hour).is_err());
    }
}
