//! How each worker replica runs.

use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
use kube::{KubeSchema, core::Rule};
use schemars::{Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// How each worker replica runs.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkerSpec {
    /// The worker container image. Defaults to the operator's configured worker image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(IMAGE_RULE).message(
        "must be a container image reference such as registry.example.com/impressions-worker:1.4: no blanks, a lowercase repository path, an optional :tag and @digest"
    ))]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,

    /// CPU, memory and ephemeral-storage requests and limits of each worker: quantities such as
    /// `500m`, `2` or `512Mi`, each request at most its limit. Resource claims cannot be used
    /// (the worker pod has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "resources_schema")]
    pub resources: Option<ResourceRequirements>,

    /// Processing threads per worker.
    #[serde(default = "default_threads")]
    #[schemars(range(min = 1, max = 64))]
    pub threads: u32,

    /// Extra environment variables of the worker container, each name once. A value comes from
    /// `value` or from one of `valueFrom.fieldRef`, `resourceFieldRef`, `configMapKeyRef` and
    /// `secretKeyRef` (`fileKeyRef` needs an emptyDir volume, which the worker pod lacks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "env_schema")]
    pub env: Vec<EnvVar>,

    /// How long a stopping worker may take to finish in-flight events, flush and commit. The pod's
    /// termination grace period is set above it.
    #[serde(default = "default_drain_timeout")]
    #[schemars(range(min = 1, max = 600))]
    pub drain_timeout_seconds: u32,

    /// Caps each worker's processing rate (events/s), e.g. to emulate a CPU limit in tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_events_per_second: Option<u64>,
}

impl Default for WorkerSpec {
    fn default() -> Self {
        Self {
            image: None,
            resources: None,
            threads: default_threads(),
            env: Vec::new(),
            drain_timeout_seconds: default_drain_timeout(),
            max_events_per_second: None,
        }
    }
}

fn default_threads() -> u32 {
    2
}
fn default_drain_timeout() -> u32 {
    30
}

/// A container image reference (the distribution grammar): `[domain[:port]/]path[:tag][@digest]`
/// with a lowercase path.
const IMAGE_RULE: &str = concat!(
    "self.matches('^",
    // domain and port
    "([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?([.][a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)*(:[0-9]+)?/)?",
    // path components
    "[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*(/[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*)*",
    // tag
    "(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?",
    // digest
    "(@[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?",
    "$')"
);

/// The resources the worker container may request or be limited to.
const RESOURCE_NAMES: &str = "['cpu', 'memory', 'ephemeral-storage']";

/// `worker.resources`: the Kubernetes ResourceRequirements schema with what a Deployment would
/// refuse (or a worker pod could not satisfy) refused here: unknown resource names, values that
/// are not quantities, negative values, requests above limits, resource claims.
fn resources_schema(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = generator.subschema_for::<Option<ResourceRequirements>>();
    let Some(object) = object_schema(schema.as_object_mut()) else {
        return schema;
    };
    for map in ["limits", "requests"] {
        let Some(m) = property(object, map) else {
            continue;
        };
        m.insert("maxProperties".into(), json!(3));
        add_rules(
            m,
            [Rule::new(format!("self.all(k, k in {RESOURCE_NAMES})"))
                .message("the worker's resources are cpu, memory and ephemeral-storage")],
        );
        if let Some(Value::Object(value)) = m.get_mut("additionalProperties") {
            value.insert("maxLength".into(), json!(64));
            add_rules(
                value,
                [
                    Rule::new("isQuantity(string(self))")
                        .message("must be a quantity such as 500m, 2, 512Mi or 1Gi"),
                    Rule::new(
                        "!isQuantity(string(self)) || !quantity(string(self)).isLessThan(quantity('0'))",
                    )
                    .message("must not be negative"),
                ],
            );
        }
    }
    add_rules(
        object,
        [
            Rule::new(concat!(
                "!has(self.requests) || !has(self.limits) || self.requests.all(k, !(k in self.limits)",
                " || !isQuantity(string(self.requests[k])) || !isQuantity(string(self.limits[k]))",
                " || quantity(string(self.requests[k])).compareTo(quantity(string(self.limits[k]))) <= 0)"
            ))
            .field_path(".requests")
            .message("a request must not exceed the limit of the same resource"),
            Rule::new("!has(self.claims) || size(self.claims) == 0")
                .field_path(".claims")
                .message("claims cannot be used: the worker pod has no resource claims"),
        ],
    );
    schema
}

/// `worker.env`: the Kubernetes EnvVar list, keyed by name, with what a Deployment would refuse
/// (or a worker pod could not satisfy) refused here.
fn env_schema(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = generator.subschema_for::<Vec<EnvVar>>();
    let Some(list) = schema.as_object_mut() else {
        return schema;
    };
    list.insert("maxItems".into(), json!(64));
    list.insert("x-kubernetes-list-type".into(), json!("map"));
    list.insert("x-kubernetes-list-map-keys".into(), json!(["name"]));
    let Some(Value::Object(item)) = list.get_mut("items") else {
        return schema;
    };
    add_rules(
        item,
        [
            Rule::new("!has(self.valueFrom) || !has(self.value) || size(self.value) == 0")
                .field_path(".valueFrom")
                .message("value and valueFrom must not both be set"),
        ],
    );
    if let Some(name) = property(item, "name") {
        name.insert("maxLength".into(), json!(1024));
        add_rules(
            name,
            [Rule::new("self.matches('^[ -<>-~]+$')")
                .message("must be one or more printable ASCII characters other than '='")],
        );
    }
    let Some(from) = property(item, "valueFrom") else {
        return schema;
    };
    add_rules(
        from,
        [
            Rule::new(concat!(
                "(has(self.fieldRef) ? 1 : 0) + (has(self.resourceFieldRef) ? 1 : 0)",
                " + (has(self.configMapKeyRef) ? 1 : 0) + (has(self.secretKeyRef) ? 1 : 0)",
                " + (has(self.fileKeyRef) ? 1 : 0) == 1"
            ))
            .message(
                "exactly one of fieldRef, resourceFieldRef, configMapKeyRef and secretKeyRef must be set",
            ),
            Rule::new("!has(self.fileKeyRef)")
                .field_path(".fileKeyRef")
                .message("fileKeyRef reads an emptyDir volume, and the worker pod has none"),
        ],
    );
    if let Some(field_ref) = property(from, "fieldRef") {
        if let Some(v) = property(field_ref, "apiVersion") {
            v.insert("maxLength".into(), json!(16));
            add_rules(v, [Rule::new("self in ['', 'v1']").message("must be v1")]);
        }
        if let Some(path) = property(field_ref, "fieldPath") {
            path.insert("maxLength".into(), json!(512));
            add_rules(
                path,
                [Rule::new(concat!(
                    "self in ['metadata.name', 'metadata.namespace', 'metadata.uid', 'spec.nodeName',",
                    " 'spec.serviceAccountName', 'status.hostIP', 'status.hostIPs', 'status.podIP',",
                    " 'status.podIPs'] || self.matches(\"^metadata[.](labels|annotations)[[]'",
                    "([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?",
                    "[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?'[]]$\")"
                ))
                .message(
                    "must be metadata.name, metadata.namespace, metadata.uid, spec.nodeName, spec.serviceAccountName, status.hostIP(s), status.podIP(s), or metadata.labels['<key>'] or metadata.annotations['<key>']",
                )],
            );
        }
    }
    if let Some(res) = property(from, "resourceFieldRef") {
        if let Some(r) = property(res, "resource") {
            r.insert("maxLength".into(), json!(64));
            add_rules(
                r,
                [Rule::new(
                    "self in ['limits.cpu', 'limits.memory', 'limits.ephemeral-storage', 'requests.cpu', 'requests.memory', 'requests.ephemeral-storage']",
                )
                .message("must be limits.<resource> or requests.<resource> of cpu, memory or ephemeral-storage")],
            );
        }
        if let Some(c) = property(res, "containerName") {
            c.insert("maxLength".into(), json!(63));
            add_rules(
                c,
                [Rule::new("self in ['', 'worker']")
                    .message("must be worker (the worker pod's only container) or left out")],
            );
        }
        if let Some(d) = property(res, "divisor") {
            d.insert("maxLength".into(), json!(8));
        }
        add_rules(
            res,
            [Rule::new(concat!(
                "!has(self.divisor) || (self.resource.endsWith('.cpu') ? string(self.divisor) in ['1m', '1']",
                " : string(self.divisor) in ['1', '1k', '1M', '1G', '1T', '1P', '1E', '1Ki', '1Mi', '1Gi', '1Ti', '1Pi', '1Ei'])"
            ))
            .field_path(".divisor")
            .message("must be 1m or 1 for cpu, and 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi or 1Ei for memory and ephemeral-storage")],
        );
    }
    for selector in ["configMapKeyRef", "secretKeyRef"] {
        let Some(sel) = property(from, selector) else {
            continue;
        };
        if let Some(n) = property(sel, "name") {
            n.insert("maxLength".into(), json!(253));
            add_rules(
                n,
                [Rule::new(crate::OBJECT_NAME_RULE).message(crate::OBJECT_NAME_MESSAGE)],
            );
        }
        if let Some(k) = property(sel, "key") {
            k.insert("maxLength".into(), json!(253));
            add_rules(
                k,
                [Rule::new(crate::CONFIG_KEY_RULE).message(crate::CONFIG_KEY_MESSAGE)],
            );
        }
    }
    schema
}

/// The object schema with `properties` in `schema` (itself, or a branch of its `anyOf`/`oneOf`
/// when it is nullable).
fn object_schema(schema: Option<&mut Map<String, Value>>) -> Option<&mut Map<String, Value>> {
    let schema = schema?;
    if schema.contains_key("properties") {
        return Some(schema);
    }
    ["anyOf", "oneOf"]
        .into_iter()
        .find(|k| schema.contains_key(*k))
        .and_then(|k| schema.get_mut(k))
        .and_then(Value::as_array_mut)?
        .iter_mut()
        .filter_map(Value::as_object_mut)
        .find(|s| s.contains_key("properties"))
}

/// The schema of the property `name` of an object schema.
fn property<'a>(
    object: &'a mut Map<String, Value>,
    name: &str,
) -> Option<&'a mut Map<String, Value>> {
    let p = object
        .get_mut("properties")?
        .get_mut(name)?
        .as_object_mut()?;
    if p.contains_key("anyOf") || p.contains_key("oneOf") {
        object_schema(Some(p))
    } else {
        Some(p)
    }
}

/// Appends CEL rules to a schema's `x-kubernetes-validations`.
fn add_rules(schema: &mut Map<String, Value>, rules: impl IntoIterator<Item = Rule>) {
    let list = schema
        .entry("x-kubernetes-validations")
        .or_insert_with(|| json!([]));
    if let Value::Array(list) = list {
        list.extend(
            rules
                .into_iter()
                .map(|r| serde_json::to_value(r).expect("a CEL rule serializes")),
        );
    }
}

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;
    use serde_json::Value;

    /// The worker section of the generated CRD schema.
    fn worker_schema() -> Value {
        let crd = crate::ImpressionPipeline::crd();
        let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
        schema["openAPIV3Schema"]["properties"]["spec"]["properties"]["worker"]["properties"]
            .clone()
    }

    fn rules(schema: &Value) -> Vec<String> {
        schema["x-kubernetes-validations"]
            .as_array()
            .map(|r| {
                r.iter()
                    .map(|r| r["rule"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    // The schema patches find their places in k8s-openapi's schemas: a renamed or moved field
    // would silently drop a rule.
    #[test]
    fn every_resources_rule_lands_in_the_schema() {
        let r = &worker_schema()["resources"];
        assert_eq!(r["nullable"], true);
        assert_eq!(rules(r).len(), 2, "{r:#}");
        for map in ["limits", "requests"] {
            let m = &r["properties"][map];
            assert_eq!(m["maxProperties"], 3);
            assert_eq!(rules(m).len(), 1);
            let value = &m["additionalProperties"];
            assert_eq!(value["x-kubernetes-int-or-string"], true);
            assert_eq!(value["maxLength"], 64);
            assert_eq!(rules(value).len(), 2);
        }
    }

    #[test]
    fn every_env_rule_lands_in_the_schema() {
        let env = &worker_schema()["env"];
        assert_eq!(env["maxItems"], 64);
        assert_eq!(env["x-kubernetes-list-type"], "map");
        assert_eq!(
            env["x-kubernetes-list-map-keys"],
            serde_json::json!(["name"])
        );
        let item = &env["items"];
        assert_eq!(rules(item).len(), 1);
        assert_eq!(rules(&item["properties"]["name"]).len(), 1);
        let from = &item["properties"]["valueFrom"];
        assert_eq!(rules(from).len(), 2);
        let p = &from["properties"];
        for (path, max) in [
            (&p["fieldRef"]["properties"]["apiVersion"], 16),
            (&p["fieldRef"]["properties"]["fieldPath"], 512),
            (&p["resourceFieldRef"]["properties"]["resource"], 64),
            (&p["resourceFieldRef"]["properties"]["containerName"], 63),
            (&p["configMapKeyRef"]["properties"]["name"], 253),
            (&p["configMapKeyRef"]["properties"]["key"], 253),
            (&p["secretKeyRef"]["properties"]["name"], 253),
            (&p["secretKeyRef"]["properties"]["key"], 253),
        ] {
            assert_eq!(path["maxLength"], max, "{path:#}");
            assert_eq!(rules(path).len(), 1, "{path:#}");
        }
        assert_eq!(rules(&p["resourceFieldRef"]).len(), 1);
        assert_eq!(
            p["resourceFieldRef"]["properties"]["divisor"]["maxLength"],
            8
        );
    }
}
