//! The Helm chart rendered by the stack's `helm` (`charts/impressions-operator`): `helm lint` and
//! `helm template` over a values matrix (hardening and least-privilege RBAC whatever the values),
//! values.schema.json rejecting bad values naming the field, and the optional PrometheusRule and
//! dashboard ConfigMap carrying the chart's files unchanged. Needs the stack's helm, not its
//! servers; the checks of the chart's files that need no tool are operator/tests/charts.rs.

use std::collections::{BTreeMap, BTreeSet};

use impressions_tests::{
    Stack,
    chart::{self, helm, run, template, text},
};
use serde_json::{Value, json};

fn kinds(docs: &[Value]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for d in docs {
        *m.entry(d["kind"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
    }
    m
}

fn find<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} rendered"))
}

#[test]
fn prometheus_rule_template_embeds_the_rule_file() {
    let docs = template(&["region=eu-west-1", "prometheusRule.enabled=true"]).unwrap();
    let rendered = &find(&docs, "PrometheusRule")["spec"];
    let file: Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart::rule_file()).unwrap()).unwrap();
    assert_eq!(rendered, &file);
}

/// The optional ConfigMap carries the dashboard file unchanged, labelled for the Grafana sidecar.
#[test]
fn dashboard_config_map_carries_the_dashboard_unchanged() {
    let path = chart::dir().join("dashboards/impressions.json");
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .expect("the dashboard is JSON");
    let docs = template(&["region=eu-west-1", "grafanaDashboard.enabled=true"]).unwrap();
    let cm = find(&docs, "ConfigMap");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    let carried: Value =
        serde_json::from_str(cm["data"]["impressions.json"].as_str().unwrap()).unwrap();
    assert_eq!(carried, dash);
}

#[test]
fn helm_lint_and_template_over_a_values_matrix() {
    let stack = Stack::get();
    let matrix: [(&str, &[&str]); 4] = [
        ("defaults", &["region=eu-west-1"]),
        (
            "monitoring and network policy",
            &[
                "region=eu-west-1",
                "serviceMonitor.enabled=true",
                "prometheusRule.enabled=true",
                "networkPolicy.enabled=true",
                "grafanaDashboard.enabled=true",
                "prometheusUrl=http://prometheus.monitoring:9090",
                "log.format=json",
                "log.level=debug",
            ],
        ),
        (
            "watched namespaces",
            &["region=us-east-1", "watchNamespaces={team-a,team-b}"],
        ),
        (
            "one replica without leader election",
            &[
                "region=eu-west-1",
                "replicaCount=1",
                "leaderElection.enabled=false",
            ],
        ),
    ];
    for (name, values) in matrix {
        let mut lint = helm(stack);
        lint.args(["lint", "--strict"]).arg(chart::dir());
        for v in values {
            lint.args(["--set", v]);
        }
        let out = run(&mut lint);
        assert!(out.status.success(), "{name}: helm lint:\n{}", text(&out));

        let docs = template(values).unwrap_or_else(|e| panic!("{name}: {e}"));
        let k = kinds(&docs);
        println!("{name}: {k:?}");
        let deployment = find(&docs, "Deployment");
        let pod = &deployment["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        let args: Vec<&str> = c["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let region = values[0].strip_prefix("region=").unwrap();
        assert_eq!(args[0], "run");
        assert!(
            args.contains(&format!("--region={region}").as_str()),
            "{args:?}"
        );
        assert!(args.contains(&"--metrics-listen=0.0.0.0:8080"), "{args:?}");
        // The images `make images` builds, tagged with the appVersion.
        let version = env!("CARGO_PKG_VERSION");
        assert_eq!(
            c["image"],
            format!("ghcr.io/impressions/operator:{version}"),
            "{name}"
        );
        let worker_image = format!("--worker-image=ghcr.io/impressions/worker:{version}");
        assert!(args.contains(&worker_image.as_str()), "{args:?}");
        let archiver_image = format!("--archiver-image=ghcr.io/impressions/archiver:{version}");
        assert!(args.contains(&archiver_image.as_str()), "{args:?}");
        // Hardening, whatever the values.
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
            "{name}"
        );
        let sc = &c["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{name}");
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{name}");
        assert_eq!(sc["runAsNonRoot"], true, "{name}");
        assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{name}");
        assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault", "{name}");
        // No role grants delete (but on the archiver's children: Deployments and ConfigMaps,
        // deleted when a pipeline's archive is removed), or anything on pods, or escalation.
        for role in docs
            .iter()
            .filter(|d| d["kind"] == "ClusterRole" || d["kind"] == "Role")
        {
            for rule in role["rules"].as_array().unwrap() {
                let verbs = rule["verbs"].as_array().unwrap();
                let resources = rule["resources"].as_array().unwrap();
                let archiver_children = resources
                    .iter()
                    .all(|r| r == "deployments" || r == "configmaps");
                for forbidden in ["delete", "deletecollection", "*", "escalate", "bind"] {
                    if forbidden == "delete" && archiver_children {
                        continue;
                    }
                    assert!(!verbs.contains(&json!(forbidden)), "{name}: {rule}");
                }
                for forbidden in ["pods", "*", "namespaces", "customresourcedefinitions"] {
                    assert!(!resources.contains(&json!(forbidden)), "{name}: {rule}");
                }
            }
        }
        match name {
            "defaults" => {
                assert_eq!(deployment["spec"]["replicas"], 2);
                assert!(args.contains(&"--leader-election"), "{args:?}");
                assert!(
                    args.contains(&"--lease-namespace=impressions-system"),
                    "{args:?}"
                );
                assert!(args.contains(&"--identity=$(POD_NAME)"), "{args:?}");
                assert!(!args.iter().any(|a| a.starts_with("--namespace")));
                assert!(!args.iter().any(|a| a.starts_with("--prometheus-url")));
                for absent in [
                    "ServiceMonitor",
                    "PodMonitor",
                    "PrometheusRule",
                    "NetworkPolicy",
                    "ConfigMap",
                ] {
                    assert!(!k.contains_key(absent), "{absent} rendered by default");
                }
                for present in [
                    "ServiceAccount",
                    "ClusterRole",
                    "ClusterRoleBinding",
                    "Service",
                    "PodDisruptionBudget",
                ] {
                    assert!(k.contains_key(present), "{present} missing");
                }
                // The leader Role: the one Lease of the region, in the release namespace.
                let leader = docs
                    .iter()
                    .find(|d| d["kind"] == "Role")
                    .expect("leader Role");
                assert_eq!(leader["metadata"]["namespace"], "impressions-system");
                assert_eq!(
                    leader["rules"][1]["resourceNames"],
                    json!(["impressions-operator-eu-west-1"])
                );
            }
            "monitoring and network policy" => {
                for present in [
                    "ServiceMonitor",
                    "PodMonitor",
                    "PrometheusRule",
                    "NetworkPolicy",
                    "ConfigMap",
                ] {
                    assert!(k.contains_key(present), "{present} missing");
                }
                assert!(
                    args.contains(&"--prometheus-url=http://prometheus.monitoring:9090"),
                    "{args:?}"
                );
                assert!(args.contains(&"--log-format=json"), "{args:?}");
                assert_eq!(c["env"][1]["value"], "debug,kube=warn");
                assert_eq!(
                    find(&docs, "ServiceMonitor")["spec"]["endpoints"][0]["honorLabels"],
                    true
                );
                // the workers and the archivers (their busy time scales them)
                assert_eq!(
                    find(&docs, "PodMonitor")["spec"]["selector"]["matchExpressions"][0]["values"],
                    json!(["impressions-worker", "impressions-archiver"])
                );
            }
            "watched namespaces" => {
                assert!(args.contains(&"--namespace=team-a"), "{args:?}");
                assert!(args.contains(&"--namespace=team-b"), "{args:?}");
                let roles: BTreeSet<&str> = docs
                    .iter()
                    .filter(|d| d["kind"] == "Role")
                    .map(|d| d["metadata"]["namespace"].as_str().unwrap())
                    .collect();
                assert_eq!(
                    roles,
                    BTreeSet::from(["team-a", "team-b", "impressions-system"])
                );
                // Only ScalingPolicies (cluster-scoped) remain cluster-wide.
                let cr = find(&docs, "ClusterRole");
                assert_eq!(
                    cr["rules"],
                    json!([{"apiGroups": ["impressions.dev"], "resources": ["scalingpolicies"], "verbs": ["list", "watch"]}])
                );
            }
            _ => {
                assert_eq!(deployment["spec"]["replicas"], 1);
                assert!(!args.contains(&"--leader-election"), "{args:?}");
                assert!(!k.contains_key("PodDisruptionBudget"));
                assert!(!k.contains_key("Role"));
            }
        }
    }
}

#[test]
fn values_schema_rejects_bad_values_naming_the_field() {
    let cases: [(&[&str], &str); 7] = [
        (&[], "/region"),
        (&["region=eu-west-1", "log.format=xml"], "/log/format"),
        (&["region=eu-west-1", "log.level=loud"], "/log/level"),
        (
            &[
                "region=eu-west-1",
                "securityContext.readOnlyRootFilesystem=false",
            ],
            "/securityContext/readOnlyRootFilesystem",
        ),
        (&["region=eu-west-1", "replicaCount=0"], "/replicaCount"),
        (&["region=eu-west-1", "kafka.bootstrap=x:9092"], "kafka"),
        (
            &["region=eu-west-1", "leaderElection.enabled=false"],
            "replicaCount > 1 needs leaderElection.enabled",
        ),
    ];
    for (values, field) in cases {
        match template(values) {
            Ok(_) => panic!("{values:?} accepted"),
            Err(e) => {
                assert!(
                    e.contains(field),
                    "{values:?}: {field:?} not named in:\n{e}"
                );
                println!("{values:?} rejected: {}", e.trim().replace('\n', " "));
            }
        }
    }
}
