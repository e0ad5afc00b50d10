//! The output schema stays backward compatible: the current `schemas/impression.avsc` (the
//! reader) can read every record written with a released version (the writers, kept in
//! `tests/avro/`), by apache-avro's schema compatibility check. A change that would break a
//! consumer reading old records with the new schema is refused.

use std::path::Path;

use apache_avro::{Schema, schema_compatibility::SchemaCompatibility};
use impressions_worker_core::avro::IMPRESSION_SCHEMA;
use serde_json::{Value, json};

/// The released versions, oldest first.
fn released() -> Vec<(String, Schema)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/avro");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "avsc"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let schema = Schema::parse_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, schema)
        })
        .collect()
}

fn current() -> Schema {
    Schema::parse_str(IMPRESSION_SCHEMA).unwrap()
}

/// The current schema with one change to its JSON.
fn changed(edit: impl FnOnce(&mut Value)) -> Schema {
    let mut v: Value = serde_json::from_str(IMPRESSION_SCHEMA).unwrap();
    edit(&mut v);
    Schema::parse(&v).unwrap()
}

fn fields(v: &mut Value) -> &mut Vec<Value> {
    v["fields"].as_array_mut().unwrap()
}

#[test]
fn the_current_schema_reads_every_released_version() {
    let released = released();
    assert!(!released.is_empty(), "no released version in tests/avro");
    let reader = current();
    for (name, writer) in &released {
        if let Err(e) = SchemaCompatibility::can_read(writer, &reader) {
            panic!("schemas/impression.avsc cannot read records written with {name}: {e}");
        }
    }
}

#[test]
fn an_optional_field_with_a_default_is_a_compatible_change() {
    let reader = changed(|v| {
        fields(v).push(json!({"name": "region", "type": ["null", "string"], "default": null}))
    });
    for (name, writer) in released() {
        assert!(
            SchemaCompatibility::can_read(&writer, &reader).is_ok(),
            "{name}"
        );
    }
}

#[test]
fn a_required_field_without_a_default_is_refused() {
    let reader = changed(|v| fields(v).push(json!({"name": "region", "type": "string"})));
    for (name, writer) in released() {
        let err = SchemaCompatibility::can_read(&writer, &reader)
            .expect_err("a new field without a default cannot be read from old records");
        assert!(err.to_string().contains("region"), "{name}: {err}");
    }
}

#[test]
fn a_narrowed_type_is_refused() {
    // videoId long → int: old records may hold values an int cannot.
    let reader = changed(|v| {
        let f = fields(v)
            .iter_mut()
            .find(|f| f["name"] == "videoId")
            .unwrap();
        f["type"] = json!("int");
    });
    for (name, writer) in released() {
        assert!(
            SchemaCompatibility::can_read(&writer, &reader).is_err(),
            "{name}: long → int accepted"
        );
    }
}

#[test]
fn a_removed_enum_symbol_without_a_default_is_refused() {
    let reader = changed(|v| {
        let title = fields(v).iter_mut().find(|f| f["name"] == "title").unwrap();
        let kind = title["type"]["fields"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|f| f["name"] == "kind")
            .unwrap();
        kind["type"]["symbols"] = json!(["MOVIE", "SHOW", "SEASON", "EPISODE"]);
        kind["type"].as_object_mut().unwrap().remove("default");
    });
    for (name, writer) in released() {
        assert!(
            SchemaCompatibility::can_read(&writer, &reader).is_err(),
            "{name}: a removed symbol accepted"
        );
    }
}
