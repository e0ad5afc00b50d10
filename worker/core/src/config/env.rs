//! `WORKER__…` environment overrides, applied to the YAML document before it is read:
//! `WORKER__A__B=value` sets field `a.b` (segments in SNAKE_CASE, turned into camelCase); under
//! a `kafka` map the key is a librdkafka property (`WORKER__SOURCE__KAFKA__SASL_PASSWORD` sets
//! `sasl.password`) and the value stays a string.

/// An override that walks into a value that is not a map; `at` names that value's field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAMap {
    pub at: String,
}

/// Applies one override: `path` is the variable's name without `WORKER__`.
pub fn apply_override(doc: &mut serde_yaml::Value, path: &str, value: &str) -> Result<(), NotAMap> {
    let segments: Vec<&str> = path.split("__").collect();
    let mut node = doc;
    let mut in_kafka = false;
    // The keys walked so far, as fields are named in errors.
    let mut walked: Vec<String> = Vec::new();
    for (i, seg) in segments.iter().enumerate() {
        let key = if in_kafka {
            seg.to_ascii_lowercase().replace('_', ".")
        } else {
            camel(seg)
        };
        in_kafka = key == "kafka";
        let map = match node {
            serde_yaml::Value::Mapping(m) => m,
            v @ serde_yaml::Value::Null => {
                *v = serde_yaml::Value::Mapping(Default::default());
                let serde_yaml::Value::Mapping(m) = v else {
                    unreachable!()
                };
                m
            }
            _ => {
                let at = if walked.is_empty() {
                    "(root)".to_owned()
                } else {
                    walked.join(".")
                };
                return Err(NotAMap { at });
            }
        };
        walked.push(key.clone());
        let k = serde_yaml::Value::String(key);
        if i + 1 == segments.len() {
            let parsed = if in_kafka_value(&segments, i) {
                serde_yaml::Value::String(value.to_owned())
            } else {
                serde_yaml::from_str(value)
                    .unwrap_or_else(|_| serde_yaml::Value::String(value.to_owned()))
            };
            map.insert(k, parsed);
            return Ok(());
        }
        node = map.entry(k).or_insert(serde_yaml::Value::Null);
    }
    Ok(())
}

/// Whether the last segment is a key of a `kafka` map (values stay strings).
fn in_kafka_value(segments: &[&str], last: usize) -> bool {
    last > 0 && segments[last - 1].eq_ignore_ascii_case("kafka")
}

/// `DEAD_LETTER_TOPIC` → `deadLetterTopic`.
fn camel(seg: &str) -> String {
    let mut out = String::new();
    for (i, part) in seg.split('_').enumerate() {
        let lower = part.to_ascii_lowercase();
        if i == 0 {
            out.push_str(&lower);
        } else {
            let mut c = lower.chars();
            if let Some(f) = c.next() {
                out.push(f.to_ascii_uppercase());
                out.extend(c);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::config::{WorkerConfig, testing::BASE};

    #[test]
    fn environment_overrides_fields_and_kafka_properties() {
        let env = [
            (
                "WORKER__SINK__DEAD_LETTER_TOPIC".to_owned(),
                "dead".to_owned(),
            ),
            (
                "WORKER__SOURCE__KAFKA__SASL_PASSWORD".to_owned(),
                "s3cret".to_owned(),
            ),
            (
                "WORKER__PROCESSING__MAX_EVENTS_PER_SECOND".to_owned(),
                "500".to_owned(),
            ),
            ("UNRELATED".to_owned(), "x".to_owned()),
        ];
        let c = WorkerConfig::from_yaml(BASE, env).unwrap();
        assert_eq!(c.sink.dead_letter_topic, "dead");
        assert_eq!(c.source.kafka["sasl.password"], "s3cret");
        assert_eq!(c.processing.max_events_per_second, Some(500));
    }

    #[test]
    fn override_inside_a_scalar_names_the_field() {
        let over = |k: &str| [(k.to_owned(), "x".to_owned())];
        // Found by fuzzing: the root itself used to be named as the empty field.
        let e = WorkerConfig::from_yaml("just text", over("WORKER__SOURCE__TOPIC")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "config field (root): cannot override inside a non-map value"
        );
        let e = WorkerConfig::from_yaml(
            &format!("{BASE}drainTimeoutSecs: 5\n"),
            over("WORKER__DRAIN_TIMEOUT_SECS__X"),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "config field drainTimeoutSecs: cannot override inside a non-map value"
        );
    }
}
