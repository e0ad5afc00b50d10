//! `kubectl impressions what-if NAME --policy FILE --prometheus URL`: reads the pipeline, the
//! cluster's ScalingPolicies (its current effective one), the proposed policy (checked by the
//! API server with a dry-run create) and the pipeline's history from Prometheus, then replays
//! it under both ([`compare`]) and plots them.

use std::path::{Path, PathBuf};

use impressions_crds::{ScalingPolicy, ScalingPolicySpec};
use impressions_operator::{
    autoscale::{bounds::bounds, signals::prometheus::PrometheusThroughput},
    tools::simulate::{plot, replay::ClusterPolicy},
};
use kube::{
    Api, ResourceExt,
    api::{ListParams, PostParams},
};

use crate::{
    compare::{self, Candidate},
    connect::{Cluster, within},
    error::Error,
    status,
};

/// The longest history: at the 60 s step, under Prometheus's 11,000 points per series.
pub const MAX_HOURS: f64 = 168.0;

/// What `what-if` is asked.
#[derive(Debug, Clone)]
pub struct Request {
    pub name: String,
    pub policy_file: PathBuf,
    pub prometheus: String,
    pub hours: f64,
    pub svg: Option<PathBuf>,
    /// The operator's region (for a region-default ScalingPolicy of a pipeline that names none).
    pub region: String,
}

/// A ScalingPolicy manifest: apiVersion and kind checked, then its spec.
pub fn parse_policy(path: &Path, text: &str) -> Result<ScalingPolicy, Error> {
    let fail = |why: String| Error::PolicyFile {
        path: path.to_owned(),
        why,
    };
    let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| fail(e.to_string()))?;
    let field = |k: &str| value.get(k).and_then(|v| v.as_str()).unwrap_or_default();
    let want = format!("{}/{}", impressions_crds::GROUP, impressions_crds::VERSION);
    if field("kind") != "ScalingPolicy" || field("apiVersion") != want {
        return Err(fail(format!(
            "not a ScalingPolicy manifest (apiVersion: {want}, kind: ScalingPolicy); found apiVersion {:?}, kind {:?}",
            field("apiVersion"),
            field("kind")
        )));
    }
    let spec = value
        .get("spec")
        .cloned()
        .unwrap_or(serde_yaml::Value::Mapping(Default::default()));
    // From the text, so that an error names the field's path and line.
    #[derive(serde::Deserialize)]
    struct Manifest {
        #[serde(default = "ScalingPolicySpec::builtin")]
        spec: ScalingPolicySpec,
    }
    let parsed = serde_yaml::from_str::<Manifest>(text)
        .map_err(|e| fail(e.to_string()))?
        .spec;
    let raw = serde_json::to_value(&spec).map_err(|e| fail(format!("spec: {e}")))?;
    let known = serde_json::to_value(&parsed).expect("a policy serializes");
    let mut unknown = Vec::new();
    unknown_fields(&raw, &known, "spec", &mut unknown);
    if !unknown.is_empty() {
        return Err(fail(format!(
            "unknown field(s) {} (a ScalingPolicy has no such field)",
            unknown.join(", ")
        )));
    }
    let spec = parsed;
    let name = value
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(|n| n.as_str())
        .unwrap_or("proposed");
    Ok(ScalingPolicy::new(name, spec))
}

/// The paths of `raw` that `known` (what was understood of it) lacks.
fn unknown_fields(
    raw: &serde_json::Value,
    known: &serde_json::Value,
    path: &str,
    out: &mut Vec<String>,
) {
    use serde_json::Value;
    match (raw, known) {
        (Value::Object(r), Value::Object(k)) => {
            for (key, v) in r {
                let at = format!("{path}.{key}");
                let empty = v.is_null()
                    || v.as_array().is_some_and(Vec::is_empty)
                    || v.as_object().is_some_and(serde_json::Map::is_empty);
                match k.get(key) {
                    Some(kv) => unknown_fields(v, kv, &at, out),
                    // A field left out of the serialized form when empty.
                    None if empty => {}
                    None => out.push(at),
                }
            }
        }
        (Value::Array(r), Value::Array(k)) => {
            for (i, (v, kv)) in r.iter().zip(k).enumerate() {
                unknown_fields(v, kv, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Runs the comparison; returns the text to print.
pub async fn run(cluster: &Cluster, r: &Request) -> Result<String, Error> {
    let text = std::fs::read_to_string(&r.policy_file).map_err(|e| Error::PolicyFile {
        path: r.policy_file.clone(),
        why: e.to_string(),
    })?;
    let proposed = parse_policy(&r.policy_file, &text)?;
    let ns = &cluster.namespace;
    let pipeline = status::get(cluster, &r.name).await?;
    let validated = validate(cluster, &proposed, &r.policy_file).await?;
    let policies = within(
        cluster.deadline,
        "listing ScalingPolicies",
        Api::<ScalingPolicy>::all(cluster.client.clone()).list(&ListParams::default()),
    )
    .await?
    .items;
    let current =
        ClusterPolicy::of(&pipeline, &r.region, &policies).map_err(|why| Error::CurrentPolicy {
            namespace: ns.clone(),
            name: r.name.clone(),
            why,
        })?;
    let b = bounds(&pipeline.spec, &proposed.spec);
    let proposed = Candidate {
        role: "proposed",
        label: format!(
            "ScalingPolicy {} ({})",
            proposed.name_any(),
            r.policy_file.display()
        ),
        policy: ClusterPolicy {
            spec: proposed.spec.clone(),
            name: Some(proposed.name_any()),
            min: b.min,
            max: b.max,
        },
    };
    let current = Candidate {
        role: "current",
        label: current
            .name
            .as_ref()
            .map_or("built-in defaults".to_owned(), |n| {
                format!("ScalingPolicy {n}")
            }),
        policy: current,
    };
    let prometheus = |why: String| Error::Prometheus {
        url: r.prometheus.clone(),
        why,
    };
    let hours = r.hours.clamp(0.01, MAX_HOURS);
    let step = (hours * 3600.0 / 720.0).clamp(5.0, 60.0);
    let points = PrometheusThroughput::new(&r.prometheus)
        .map_err(prometheus)?
        .history(
            &current.policy.spec.queries,
            ns,
            &r.name,
            (hours * 3600.0) as i64,
            step,
        )
        .await
        .map_err(prometheus)?;
    if points.len() < 2 {
        return Err(prometheus(format!(
            "no history of {ns}/{} in the last {hours} h (the current policy's queries gave {} point(s) with processed rate, busy fraction, lag and workers all known)",
            r.name,
            points.len()
        )));
    }
    let partitions = pipeline
        .status
        .as_ref()
        .and_then(|s| s.partitions)
        .ok_or_else(|| "the pipeline's status has no partition count yet".to_owned())
        .map(|p| p.max(1));
    let w = compare::what_if(
        &format!("{ns}/{}", r.name),
        &pipeline.spec,
        &points,
        partitions,
        &current,
        &proposed,
    );
    let mut out = compare::render(&w);
    if !validated {
        out.push_str("(the proposed policy was not checked by the API server: no permission to create ScalingPolicies)\n");
    }
    if let Some(path) = &r.svg {
        plot::svg(
            path,
            &format!("what-if {}", w.pipeline),
            &[w.current.report.clone(), w.proposed.report.clone()],
            Some(w.current.lag_slo_seconds),
        )
        .map_err(|why| Error::Write {
            path: path.clone(),
            why,
        })?;
        out.push_str(&format!("plot: {}\n", path.display()));
    }
    Ok(out)
}

/// Asks the API server whether it would accept the proposed policy (a dry-run create under a
/// generated name: nothing is stored). `false` when the user may not create ScalingPolicies.
async fn validate(cluster: &Cluster, p: &ScalingPolicy, path: &Path) -> Result<bool, Error> {
    let mut probe = ScalingPolicy::new("", p.spec.clone());
    probe.metadata.name = None;
    probe.metadata.generate_name = Some("what-if-".into());
    let api = Api::<ScalingPolicy>::all(cluster.client.clone());
    let created = within(
        cluster.deadline,
        "checking the proposed ScalingPolicy (dry run)",
        api.create(
            &PostParams {
                dry_run: true,
                field_manager: Some("kubectl-impressions".into()),
            },
            &probe,
        ),
    )
    .await;
    match created {
        Ok(_) => Ok(true),
        Err(Error::Api {
            source: kube::Error::Api(s),
            ..
        }) if s.code == 403 => Ok(false),
        Err(Error::Api {
            source: kube::Error::Api(s),
            ..
        }) if s.code == 422 || s.code == 400 => Err(Error::PolicyFile {
            path: path.to_owned(),
            why: format!("the API server rejects it: {}", s.message),
        }),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_manifest_gives_its_name_and_spec() {
        let p = parse_policy(
            Path::new("cheap.yaml"),
            "apiVersion: impressions.dev/v1alpha1\nkind: ScalingPolicy\nmetadata: {name: cheap}\nspec: {maxReplicas: 4, targetUtilization: 0.85}\n",
        )
        .unwrap();
        assert_eq!(p.name_any(), "cheap");
        assert_eq!((p.spec.max_replicas, p.spec.target_utilization), (4, 0.85));
        assert_eq!(
            p.spec.lag_slo_seconds,
            ScalingPolicySpec::builtin().lag_slo_seconds
        );
    }

    #[test]
    fn another_kind_or_a_wrong_field_is_refused_with_the_file_named() {
        let e = parse_policy(
            Path::new("p.yaml"),
            "apiVersion: impressions.dev/v1alpha1\nkind: ImpressionPipeline\nspec: {}\n",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("--policy p.yaml: not a ScalingPolicy manifest"),
            "{e}"
        );
        let e = parse_policy(
            Path::new("p.yaml"),
            "apiVersion: impressions.dev/v1alpha1\nkind: ScalingPolicy\nspec: {maxReplicas: many}\n",
        )
        .unwrap_err();
        assert!(
            e.to_string().contains(
                "spec.maxReplicas: invalid type: string \"many\", expected i32 at line 3"
            ),
            "{e}"
        );
        assert_eq!(e.exit_code(), 2);
        let e = parse_policy(
            Path::new("p.yaml"),
            "apiVersion: impressions.dev/v1alpha1\nkind: ScalingPolicy\nspec: {maxReplica: 4, queries: {rateWindw: 1m}}\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "--policy p.yaml: unknown field(s) spec.maxReplica, spec.queries.rateWindw (a ScalingPolicy has no such field)"
        );
    }
}
