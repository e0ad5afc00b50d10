//! The checked-in CRD YAML is exactly what the types generate (`make crds` regenerates it).

#[test]
fn checked_in_crd_yaml_matches_the_types() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("yaml");
    let crds = impressions_crds::crds();
    let mut stale = Vec::new();
    for crd in &crds {
        let path = dir.join(impressions_crds::crd_file_name(crd));
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        if on_disk != impressions_crds::crd_yaml(crd) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale CRD YAML, run `make crds`: {stale:?}"
    );
    let files = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(
        files,
        crds.len(),
        "crds/yaml holds files that no type generates"
    );
}

/// Every integer of every CRD has bounds within the range of its format: the API server then
/// refuses a value the operator's types cannot read (one such object would fail the typed
/// watch of every object of its kind), naming the field.
#[test]
fn every_integer_is_bounded_by_its_format() {
    fn walk(node: &serde_json::Value, path: &str, out: &mut Vec<String>) {
        match node {
            serde_json::Value::Object(m) => {
                if m.get("type").and_then(|t| t.as_str()) == Some("integer")
                    && let Some(format) = m.get("format").and_then(|f| f.as_str())
                {
                    // (minimum, maximum) a value must keep to; None: the API server's own
                    // int64 range is enough
                    let (lo, hi) = match format {
                        "int32" => (Some(f64::from(i32::MIN)), Some(f64::from(i32::MAX))),
                        "uint32" => (Some(0.0), Some(f64::from(u32::MAX))),
                        "uint64" => (Some(0.0), None),
                        "int64" => (None, None),
                        other => panic!("{path}: integer format {other} not known to this test"),
                    };
                    let min = m.get("minimum").and_then(|v| v.as_f64());
                    let max = m.get("maximum").and_then(|v| v.as_f64());
                    let min_ok = lo.is_none_or(|lo| min.is_some_and(|v| v >= lo));
                    let max_ok = hi.is_none_or(|hi| max.is_some_and(|v| v <= hi));
                    if !(min_ok && max_ok) {
                        out.push(format!(
                            "{path} ({format}): minimum {min:?}, maximum {max:?}"
                        ));
                    }
                }
                for (k, v) in m {
                    walk(v, &format!("{path}.{k}"), out);
                }
            }
            serde_json::Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    walk(v, &format!("{path}[{i}]"), out);
                }
            }
            _ => {}
        }
    }
    let mut unbounded = Vec::new();
    let mut seen = 0;
    for crd in impressions_crds::crds() {
        for v in &crd.spec.versions {
            let schema = serde_json::to_value(&v.schema).unwrap();
            seen += schema.to_string().matches("\"format\":\"int32\"").count();
            walk(
                &schema,
                crd.metadata.name.as_deref().unwrap_or_default(),
                &mut unbounded,
            );
        }
    }
    assert!(seen > 10, "the walk found the int32 fields ({seen})");
    assert!(
        unbounded.is_empty(),
        "integers without the bounds of their format:\n{}",
        unbounded.join("\n")
    );
}
