//! The public API of the impressions operator: group `impressions.dev`, version `v1alpha1`.
//!
//! - [`ImpressionPipeline`] (namespaced, short name `ipl`): one filter/enrich pipeline in a region,
//!   owned by its pipeline team.
//! - [`ScalingPolicy`] (cluster-scoped, short name `spol`): the bounds and behaviour within which the
//!   operator may scale pipelines, owned by SREs.
//! - [`RawEventSchema`] (namespaced, short name `rawschema`): the raw events' schema of a pipeline,
//!   learned by the operator from its workers, the accepted baseline and the drift from it.
//!
//! Doc comments on the fields become the CRD descriptions (`kubectl explain`). Validation lives in
//! the schema (patterns, ranges, enums) and in CEL rules (`x-kubernetes-validations`), each with a
//! human message, so the API server rejects a wrong spec before the operator ever sees it.

pub mod archive;
pub mod conditions;
pub mod enrichment;
pub mod object_ref;
pub mod pipeline;
pub mod policy;
pub mod quality;
pub mod raw_schema;
pub mod scaling;
pub mod schema;
pub mod status;
pub mod worker;

pub use pipeline::{ImpressionPipeline, ImpressionPipelineSpec, SinkSpec, SourceSpec};
pub use policy::{ScalingPolicy, ScalingPolicySpec};
pub use raw_schema::{RawEventSchema, RawEventSchemaStatus};
pub use status::ImpressionPipelineStatus;

/// The API group of the resources.
pub const GROUP: &str = "impressions.dev";
/// The served and stored version.
pub const VERSION: &str = "v1alpha1";

/// The CEL expression that accepts a valid Kafka topic name (1–249 of `[a-zA-Z0-9._-]`, not `.`
/// or `..`), shared by every topic field.
pub(crate) const TOPIC_RULE: &str =
    "self.matches('^[a-zA-Z0-9._-]+$') && self != '.' && self != '..'";
/// The message the API server returns when [`TOPIC_RULE`] fails.
pub(crate) const TOPIC_MESSAGE: &str =
    "must be a valid Kafka topic name: 1-249 characters of letters, digits, '.', '_' and '-'";

/// The CEL expression that accepts a comma-separated `host:port` list of Kafka bootstrap servers,
/// each port within 1–65535.
pub(crate) const BOOTSTRAP_RULE: &str = concat!(
    "self.matches('^[A-Za-z0-9._-]+:",
    "([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])",
    "(,[A-Za-z0-9._-]+:",
    "([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))*$')"
);
/// The message the API server returns when [`BOOTSTRAP_RULE`] fails.
pub(crate) const BOOTSTRAP_MESSAGE: &str =
    "must be a comma-separated list of host:port, each port within 1-65535";

/// The CEL expression that accepts the name of an object of the kinds a pipeline refers to
/// (Secret, ConfigMap, ScalingPolicy): a DNS-1123 subdomain of at most 253 characters.
pub(crate) const OBJECT_NAME_RULE: &str =
    "self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')";
/// The message the API server returns when [`OBJECT_NAME_RULE`] fails.
pub(crate) const OBJECT_NAME_MESSAGE: &str = "must be an object name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters";

/// The CEL expression that accepts a ConfigMap or Secret key (`[-._a-zA-Z0-9]+`, not `.`, `..`
/// or starting with `..`).
pub(crate) const CONFIG_KEY_RULE: &str =
    "self.matches('^[-._a-zA-Z0-9]+$') && self != '.' && !self.startsWith('..')";
/// The message the API server returns when [`CONFIG_KEY_RULE`] fails.
pub(crate) const CONFIG_KEY_MESSAGE: &str = "must be a ConfigMap key: letters, digits, '-', '_' and '.', not '.' and not starting with '..'";

/// The CEL expression that accepts a label value (at most 63 characters of letters, digits, '-',
/// '_' and '.', starting and ending with a letter or digit), the empty value included.
pub(crate) const LABEL_VALUE_RULE: &str =
    "self.matches('^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$')";
/// The message the API server returns when [`LABEL_VALUE_RULE`] fails.
pub(crate) const LABEL_VALUE_MESSAGE: &str = "must be a label value: at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit";

/// The suffix the operator appends to a pipeline's name to name its children (the worker
/// Deployment, ConfigMap, Service and PodDisruptionBudget): `operator/src/labels.rs`.
pub const CHILD_NAME_SUFFIX: &str = "-worker";
/// The longest pipeline name whose children's names fit: a Service name is a DNS-1035 label of
/// at most 63 characters.
pub const MAX_PIPELINE_NAME: usize = 63 - CHILD_NAME_SUFFIX.len();

/// The CEL expression (on the ImpressionPipeline root) that bounds the name's length to
/// [`MAX_PIPELINE_NAME`].
pub(crate) const PIPELINE_NAME_LENGTH_RULE: &str = "self.metadata.name.size() <= 56";
/// The message the API server returns when [`PIPELINE_NAME_LENGTH_RULE`] fails.
pub(crate) const PIPELINE_NAME_LENGTH_MESSAGE: &str = "metadata.name must be at most 56 characters: the worker Deployment, ConfigMap, Service and PodDisruptionBudget are named <name>-worker, and a Service name is at most 63 characters";
/// The CEL expression (on the ImpressionPipeline root) that accepts a name whose children's
/// names are DNS-1035 labels.
pub(crate) const PIPELINE_NAME_RULE: &str =
    "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')";
/// The message the API server returns when [`PIPELINE_NAME_RULE`] fails.
pub(crate) const PIPELINE_NAME_MESSAGE: &str = "metadata.name must be a DNS-1035 label: lowercase letters, digits and '-', starting with a letter and ending with a letter or digit (it names the worker Service <name>-worker)";

/// Every CRD this crate defines, in the order they are installed, each integer bounded by the
/// range of the type that reads it ([`bound_integers`]).
pub fn crds()
-> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>
{
    use kube::CustomResourceExt;
    let mut crds = vec![
        ScalingPolicy::crd(),
        ImpressionPipeline::crd(),
        RawEventSchema::crd(),
    ];
    for crd in &mut crds {
        for version in &mut crd.spec.versions {
            if let Some(schema) = version
                .schema
                .as_mut()
                .and_then(|s| s.open_api_v3_schema.as_mut())
            {
                bound_integers(schema);
            }
        }
    }
    crds
}

/// Gives every `int32`, `uint32` and unsigned integer of `schema` (at any depth) the bounds of
/// its format where the types set none or wider ones. The API server stores any int64 it is
/// given, whatever the format says; a value that does not fit the field's Rust type would then
/// fail the operator's typed watch of *every* object of the kind (one list decodes as a whole),
/// so it must be refused when it is applied, naming the field.
pub fn bound_integers(
    schema: &mut k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps,
) {
    // (minimum, maximum); an unsigned 64-bit field needs no maximum (the API server's integers
    // are int64)
    let range = match (schema.type_.as_deref(), schema.format.as_deref()) {
        (Some("integer"), Some("int32")) => Some((f64::from(i32::MIN), Some(f64::from(i32::MAX)))),
        (Some("integer"), Some("uint32")) => Some((0.0, Some(f64::from(u32::MAX)))),
        (Some("integer"), Some("uint16")) => Some((0.0, Some(f64::from(u16::MAX)))),
        (Some("integer"), Some("uint8")) => Some((0.0, Some(f64::from(u8::MAX)))),
        (Some("integer"), Some("uint64" | "uint")) => Some((0.0, None)),
        _ => None,
    };
    if let Some((lo, hi)) = range {
        schema.minimum = Some(schema.minimum.map_or(lo, |m| m.max(lo)));
        if let Some(hi) = hi {
            schema.maximum = Some(schema.maximum.map_or(hi, |m| m.min(hi)));
        }
    }
    let children = schema
        .properties
        .iter_mut()
        .flat_map(|p| p.values_mut())
        .chain(schema.all_of.iter_mut().flatten())
        .chain(schema.any_of.iter_mut().flatten())
        .chain(schema.one_of.iter_mut().flatten());
    for child in children {
        bound_integers(child);
    }
    if let Some(k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrBool::Schema(s)) =
        schema.additional_properties.as_mut()
    {
        bound_integers(s);
    }
    if let Some(k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrArray::Schema(s)) =
        schema.items.as_mut()
    {
        bound_integers(s);
    }
}

/// The generated YAML of one CRD, as checked in under `crds/yaml/`.
pub fn crd_yaml(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> String {
    let body = serde_yaml::to_string(crd).expect("a CRD always serializes to YAML");
    let body = quote_yaml11_booleans(&body);
    format!(
        "# Generated by `make crds` (cargo run -p impressions-crds --bin crdgen). Do not edit.\n---\n{body}"
    )
}

/// Quotes plain scalars that YAML 1.1 reads as booleans (`Off`, `on`, `yes`, `N`, …). The output
/// is YAML 1.2, where they are strings, but helm and other YAML 1.1 readers turn an enum value
/// `Off` into `false` and the API server refuses the CRD.
fn quote_yaml11_booleans(yaml: &str) -> String {
    const WORDS: [&str; 16] = [
        "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off",
        "OFF",
    ];
    let mut out = String::with_capacity(yaml.len());
    for line in yaml.split_inclusive('\n') {
        let (text, end) = match line.strip_suffix('\n') {
            Some(t) => (t, "\n"),
            None => (line, ""),
        };
        // `key: Word` or `- Word`, the value alone at the end of the line.
        let split = text.rfind(": ").map(|i| i + 2).or_else(|| {
            text.trim_start()
                .starts_with("- ")
                .then(|| text.find("- ").unwrap() + 2)
        });
        match split {
            Some(i) if WORDS.contains(&&text[i..]) => {
                out.push_str(&text[..i]);
                out.push('\'');
                out.push_str(&text[i..]);
                out.push('\'');
            }
            _ => out.push_str(text),
        }
        out.push_str(end);
    }
    out
}

/// The file name of one CRD's YAML: `<plural>.<group>.yaml`.
pub fn crd_file_name(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("crd"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pipeline_name_rules_leave_room_for_the_child_suffix() {
        assert_eq!(MAX_PIPELINE_NAME, 56);
        assert!(PIPELINE_NAME_LENGTH_RULE.ends_with(&format!("<= {MAX_PIPELINE_NAME}")));
        assert!(PIPELINE_NAME_LENGTH_MESSAGE.contains(&format!("at most {MAX_PIPELINE_NAME} ")));
        assert!(PIPELINE_NAME_LENGTH_MESSAGE.contains(&format!("<name>{CHILD_NAME_SUFFIX}")));
    }

    #[test]
    fn yaml_1_1_booleans_are_quoted_and_the_yaml_means_the_same() {
        let yaml = "a:\n  mode: Off\n  enum:\n  - Off\n  - Scale\n  text: 'Off: no'\n  n: No\n";
        let quoted = quote_yaml11_booleans(yaml);
        assert!(
            quoted.contains("mode: 'Off'")
                && quoted.contains("- 'Off'")
                && quoted.contains("n: 'No'")
        );
        assert!(quoted.contains("- Scale"));
        let a: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
        let b: serde_yaml::Value = serde_yaml::from_str(&quoted).unwrap();
        assert_eq!(a, b);
        for crd in [
            <crate::ScalingPolicy as kube::CustomResourceExt>::crd(),
            <crate::ImpressionPipeline as kube::CustomResourceExt>::crd(),
        ] {
            let text = crd_yaml(&crd);
            let back: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
                serde_yaml::from_str(text.split_once("---\n").unwrap().1).unwrap();
            assert_eq!(back, crd, "the quoting changed what the YAML says");
            assert!(
                !text
                    .lines()
                    .any(|l| l.ends_with(": Off") || l.ends_with("- Off"))
            );
        }
    }
}
