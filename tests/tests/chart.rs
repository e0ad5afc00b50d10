//! The Helm chart (`charts/impressions-operator`): its CRDs are the generated ones, its
//! Prometheus rules pass `promtool test rules`, its dashboard's queries are valid PromQL over
//! metrics that exist, `helm lint`/`helm template` over a values matrix, values.schema.json
//! rejects bad values naming the field, and, installed on the RBAC-enforcing API server, its
//! ServiceAccount's token is enough for the real operator binary to reconcile a pipeline end to
//! end, and is refused what the operator must never do.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::Duration,
};

use impressions_crds::{ImpressionPipeline, conditions};
use impressions_tests::{
    Stack, cluster,
    operator::{OperatorProcess, eventually},
    repo_root, unique,
    worker::{binary, free_port},
};
use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        coordination::v1::Lease,
        core::v1::{ConfigMap, Event, Namespace, Pod, Secret, Service},
        policy::v1::PodDisruptionBudget,
        rbac::v1::ClusterRoleBinding,
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

fn chart() -> PathBuf {
    repo_root().join("charts/impressions-operator")
}

/// `promtool`, from PATH or Debian's /usr/bin. Panics (never skips) when it is missing.
fn promtool() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join("promtool"))
        .find(|p| p.is_file());
    on_path.unwrap_or_else(|| {
        panic!(
            "promtool not found on PATH or in /usr/bin: install Debian's prometheus package \
             (`tests/stack/provision.sh prometheus`; `make stack-up` does it)"
        )
    })
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn helm(stack: &Stack) -> Command {
    let mut cmd = Command::new(stack.tool("helm"));
    cmd.env("KUBECONFIG", &stack.kubeconfig);
    cmd
}

/// `helm template` with `--set` values; the rendered documents, or helm's error output.
fn template(values: &[&str]) -> Result<Vec<Value>, String> {
    let mut cmd = helm(Stack::get());
    cmd.args(["template", "imp"])
        .arg(chart())
        .args(["--namespace", "impressions-system"]);
    for v in values {
        cmd.args(["--set", v]);
    }
    let out = run(&mut cmd);
    if !out.status.success() {
        return Err(text(&out));
    }
    let docs = String::from_utf8(out.stdout).unwrap();
    Ok(docs
        .split("\n---")
        .filter_map(|d| serde_yaml::from_str::<Value>(d).ok())
        .filter(|v| v.is_object())
        .collect())
}

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

/// `dir` of the chart holds exactly the files of `source` of the repository, byte for byte.
fn assert_same_files(source: &str, dir: &str) {
    let names = |dir: &Path| -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    let (a, b) = (repo_root().join(source), chart().join(dir));
    assert_eq!(
        names(&a),
        names(&b),
        "charts/impressions-operator/{dir} must hold exactly the files of {source}"
    );
    for name in names(&a) {
        assert!(
            std::fs::read(a.join(&name)).unwrap() == std::fs::read(b.join(&name)).unwrap(),
            "charts/impressions-operator/{dir}/{name} differs from {source}/{name}: \
             run `cp {source}/*.yaml charts/impressions-operator/{dir}/`"
        );
    }
}

#[test]
fn chart_crds_are_the_generated_crds() {
    assert_same_files("crds/yaml", "crds");
}

/// The chart's examples are the repository's, which tests/tests/api.rs applies as they are.
#[test]
fn chart_examples_are_the_repository_examples() {
    assert_same_files("examples", "examples");
}

/// Metric names the workspace defines: every `register("name", …)` of the worker's and the
/// operator's metrics modules, with their prefixes.
fn defined_metrics() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (file, prefix) in [
        ("worker/src/metrics.rs", "impressions_worker_"),
        ("operator/src/metrics.rs", "impressions_operator_"),
    ] {
        let src = std::fs::read_to_string(repo_root().join(file)).unwrap();
        for part in src.split(".register(").skip(1) {
            if let Some(name) = part.split('"').nth(1) {
                names.insert(format!("{prefix}{name}"));
            }
        }
    }
    assert!(names.len() > 20, "found only {names:?}");
    names
}

/// The `impressions_*` metric names a PromQL expression reads (recording-rule names, which
/// hold a colon, excluded), each checked against the defined metrics.
fn undefined_metrics(expr: &str, defined: &BTreeSet<String>) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|t| t.starts_with("impressions_") && !t.contains(':'))
        .filter(|t| {
            let base = ["_total", "_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| t.strip_suffix(s))
                .unwrap_or(t);
            !defined.contains(*t) && !defined.contains(base)
        })
        .map(str::to_owned)
        .collect()
}

fn rule_file() -> PathBuf {
    chart().join("files/rules/impressions.rules.yaml")
}

#[test]
fn prometheus_rules_pass_promtool_unit_tests_for_every_alert_and_tier() {
    let promtool = promtool();
    let check = run(Command::new(&promtool)
        .args(["check", "rules"])
        .arg(rule_file()));
    assert!(check.status.success(), "{}", text(&check));

    // Every alert and each of its severities has a test case expecting it.
    let rules: Value =
        serde_yaml::from_str(&std::fs::read_to_string(rule_file()).unwrap()).unwrap();
    let mut severities: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let defined = defined_metrics();
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let expr = rule["expr"].as_str().unwrap();
            let unknown = undefined_metrics(expr, &defined);
            assert!(unknown.is_empty(), "{rule}: unknown metrics {unknown:?}");
            if let Some(alert) = rule["alert"].as_str() {
                severities
                    .entry(alert.to_owned())
                    .or_default()
                    .insert(rule["labels"]["severity"].as_str().unwrap().to_owned());
            }
        }
    }
    let tests_path = chart().join("tests/rules.test.yaml");
    let tests: Value =
        serde_yaml::from_str(&std::fs::read_to_string(&tests_path).unwrap()).unwrap();
    let mut tested: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut silent: BTreeSet<String> = BTreeSet::new();
    let (mut alert_cases, mut expr_cases) = (0, 0);
    let groups = tests["tests"].as_array().unwrap();
    for t in groups {
        for case in t["alert_rule_test"].as_array().into_iter().flatten() {
            alert_cases += 1;
            let name = case["alertname"].as_str().unwrap().to_owned();
            let exp = case["exp_alerts"].as_array().cloned().unwrap_or_default();
            // An alert is shown silent below its threshold by an empty expectation, or by a
            // pipeline of the test's series that the expectation leaves out.
            let expected: BTreeSet<&str> = exp
                .iter()
                .filter_map(|a| a["exp_labels"]["pipeline"].as_str())
                .collect();
            let left_out = t["input_series"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|s| s["series"].as_str()?.split("pipeline=\"").nth(1))
                .filter_map(|rest| rest.split('"').next())
                .any(|p| !expected.contains(p));
            if exp.is_empty() || left_out {
                silent.insert(name.clone());
            }
            for a in exp {
                tested
                    .entry(name.clone())
                    .or_default()
                    .insert(a["exp_labels"]["severity"].as_str().unwrap().to_owned());
            }
        }
        expr_cases += t["promql_expr_test"].as_array().map_or(0, Vec::len);
    }
    assert_eq!(
        severities, tested,
        "every alert at each severity needs a test case where it fires"
    );
    let all: BTreeSet<String> = severities.keys().cloned().collect();
    assert_eq!(
        all, silent,
        "every alert needs a test case where it stays silent"
    );

    let out = run(Command::new(&promtool)
        .args(["test", "rules"])
        .arg(&tests_path)
        .current_dir(chart().join("tests")));
    assert!(out.status.success(), "promtool test rules:\n{}", text(&out));
    println!(
        "promtool test rules: {} test groups, {alert_cases} alert cases, {expr_cases} expression \
         cases; {} alerts, {} alert rules by severity: {severities:?}",
        groups.len(),
        severities.len(),
        severities.values().map(BTreeSet::len).sum::<usize>()
    );
}

#[test]
fn prometheus_rule_template_embeds_the_rule_file() {
    let docs = template(&["region=eu-west-1", "prometheusRule.enabled=true"]).unwrap();
    let rendered = &find(&docs, "PrometheusRule")["spec"];
    let file: Value = serde_yaml::from_str(&std::fs::read_to_string(rule_file()).unwrap()).unwrap();
    assert_eq!(rendered, &file);
}

/// A dashboard query with Grafana's variables replaced, as Prometheus would receive it.
fn grafana_to_promql(expr: &str) -> String {
    expr.replace("$namespace", ".*")
        .replace("$pipeline", ".*")
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
}

fn collect_exprs(panels: &Value, out: &mut Vec<(String, String)>) {
    for p in panels.as_array().into_iter().flatten() {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((
                p["title"].as_str().unwrap_or("?").to_owned(),
                t["expr"].as_str().unwrap().to_owned(),
            ));
        }
        collect_exprs(&p["panels"], out);
    }
}

#[test]
fn dashboard_is_json_and_every_query_is_valid_promql_over_defined_metrics() {
    let path = chart().join("dashboards/impressions.json");
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    collect_exprs(&dash["panels"], &mut exprs);
    // The variables' label_values(SELECTOR, label) queries: their selectors must parse too.
    for v in dash["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["definition"].as_str() {
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|r| r.rsplit_once(','))
                .map(|(sel, _)| sel.to_owned())
                .unwrap_or_else(|| panic!("unexpected variable query {q}"));
            exprs.push((format!("variable {}", v["name"]), inner));
        }
    }
    assert!(exprs.len() >= 20, "only {} queries", exprs.len());
    let titles: BTreeSet<&str> = exprs.iter().map(|(t, _)| t.as_str()).collect();
    for needed in [
        "DataQuality condition",
        "Null ratio per column",
        "Column mismatches by pair",
        "Corrections (columns/s)",
        "Consumer lag (events)",
        "Input vs processed (events/s)",
        "Replicas vs desired",
        "Scaling decisions by reason",
    ] {
        assert!(titles.contains(needed), "no panel {needed:?}: {titles:?}");
    }
    let defined = defined_metrics();
    // promtool parses and type-checks each query as a recording rule.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (title, e)) in exprs.iter().enumerate() {
        let unknown = undefined_metrics(e, &defined);
        assert!(unknown.is_empty(), "{title}: unknown metrics {unknown:?}");
        rules.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {}\n",
            serde_json::to_string(&grafana_to_promql(e)).unwrap()
        ));
    }
    let dir = std::env::temp_dir().join("impressions-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{}.yaml", unique("dashboard-queries")));
    std::fs::write(&file, rules).unwrap();
    let out = run(Command::new(promtool()).args(["check", "rules"]).arg(&file));
    assert!(
        out.status.success(),
        "a dashboard query is not valid PromQL:\n{}",
        text(&out)
    );
    println!("dashboard: {} queries parse", exprs.len());

    // The optional ConfigMap carries the file unchanged, labelled for the Grafana sidecar.
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
        lint.args(["lint", "--strict"]).arg(chart());
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
        // No role grants delete, or anything on pods, or escalation.
        for role in docs
            .iter()
            .filter(|d| d["kind"] == "ClusterRole" || d["kind"] == "Role")
        {
            for rule in role["rules"].as_array().unwrap() {
                let verbs = rule["verbs"].as_array().unwrap();
                let resources = rule["resources"].as_array().unwrap();
                for forbidden in ["delete", "deletecollection", "*", "escalate", "bind"] {
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

// --- On the local stack: the chart installed, the operator run with its ServiceAccount. ---

/// Uninstalls the release and deletes what the test created, also when it fails.
struct Installed {
    release: String,
    release_ns: String,
    namespaces: Vec<String>,
    policy: String,
}

impl Drop for Installed {
    fn drop(&mut self) {
        let stack = Stack::get();
        let _ = helm(stack)
            .args(["uninstall", &self.release, "-n", &self.release_ns, "--wait"])
            .stdout(Stdio::null())
            .status();
        let _ = stack
            .kubectl()
            .args([
                "delete",
                "scalingpolicy",
                &self.policy,
                "--ignore-not-found",
            ])
            .stdout(Stdio::null())
            .status();
        let _ = stack
            .kubectl()
            .args(["delete", "namespace", "--wait=false", "--ignore-not-found"])
            .args(&self.namespaces)
            .stdout(Stdio::null())
            .status();
    }
}

/// A kubeconfig for `token`: the admin kubeconfig's cluster (server and CA), the token as user.
fn token_kubeconfig(stack: &Stack, token: &str, name: &str) -> PathBuf {
    let admin: Value =
        serde_yaml::from_str(&std::fs::read_to_string(&stack.kubeconfig).unwrap()).unwrap();
    let cluster = admin["clusters"][0]["name"].as_str().unwrap();
    let kc = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": cluster, "user": name}}],
        "current-context": name,
    });
    let dir = std::env::temp_dir().join("impressions-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.kubeconfig"));
    std::fs::write(&path, serde_yaml::to_string(&kc).unwrap()).unwrap();
    path
}

async fn client_from(path: &Path) -> Client {
    let kc = kube::config::Kubeconfig::read_from(path).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    Client::try_from(cfg).unwrap()
}

/// The API server's answer was 403 Forbidden.
fn assert_forbidden<T: std::fmt::Debug>(what: &str, r: Result<T, kube::Error>) {
    match r {
        Err(kube::Error::Api(e)) if e.code == 403 => println!("refused (403): {what}"),
        other => panic!("{what}: expected 403 Forbidden, got {other:?}"),
    }
}

fn condition(p: &ImpressionPipeline, t: &str) -> Option<(String, String, String)> {
    let c = conditions::get(&p.status.as_ref()?.conditions, t)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Installs the chart (all namespaces, or only the pipeline's with `namespaced`), runs the real
/// operator with the chart ServiceAccount's token, and checks what that token may and may not do.
async fn installed_chart_is_sufficient_and_least_privilege(namespaced: bool) {
    let stack = Stack::get();
    let admin = stack.client().await;
    cluster::install_crds(&admin).await.expect("install CRDs");
    let region = unique("chart");
    let release = unique("imp");
    let release_ns = cluster::namespace(&admin, &unique("chart-op"))
        .await
        .unwrap();
    let ns = cluster::namespace(&admin, &unique("chart-pl"))
        .await
        .unwrap();
    let other = cluster::namespace(&admin, &unique("chart-other"))
        .await
        .unwrap();
    let _installed = Installed {
        release: release.clone(),
        release_ns: release_ns.clone(),
        namespaces: vec![release_ns.clone(), ns.clone(), other.clone()],
        policy: region.clone(),
    };

    // helm install, as the chart's users would.
    let mut install = helm(stack);
    install
        .args(["install", &release])
        .arg(chart())
        .args(["--namespace", &release_ns])
        .args(["--set", &format!("region={region}")])
        .args(["--set", &format!("prometheusUrl={}", stack.prometheus_url)]);
    if namespaced {
        install.args(["--set", &format!("watchNamespaces={{{ns}}}")]);
    }
    let out = run(&mut install);
    assert!(out.status.success(), "helm install:\n{}", text(&out));
    let sa = format!("{release}-impressions-operator");
    let deployment = Api::<Deployment>::namespaced(admin.clone(), &release_ns)
        .get(&sa)
        .await
        .expect("the chart's Deployment");
    assert_eq!(deployment.spec.unwrap().replicas, Some(2));

    // The chart ServiceAccount's token, not admin.
    let out = run(Command::new("bash")
        .arg(repo_root().join("tests/stack/stack.sh"))
        .args(["token", &release_ns, &sa, "3600"])
        .env("IMPRESSIONS_STACK_DIR", &stack.dir));
    assert!(out.status.success(), "stack.sh token: {}", text(&out));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let kubeconfig = token_kubeconfig(stack, &token, &release);
    let as_sa = client_from(&kubeconfig).await;
    let who = run(stack.kubectl().env("KUBECONFIG", &kubeconfig).args([
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username}",
    ]));
    assert_eq!(
        String::from_utf8_lossy(&who.stdout),
        format!("system:serviceaccount:{release_ns}:{sa}"),
        "{}",
        text(&who)
    );

    // What a pipeline refers to, created by its owners (admin here).
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "kafka-credentials"},
        "stringData": {"sasl.username": "impressions", "sasl.password": "s3cret"}
    }))
    .unwrap();
    Api::<Secret>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let catalog: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "titles"},
        "data": {"titles.json": "[{\"videoId\": 1, \"showId\": 10, \"title\": \"One\"}]"}
    }))
    .unwrap();
    Api::<ConfigMap>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &catalog)
        .await
        .unwrap();
    // The SREs' default policy of the region (cluster-scoped, named after the region).
    let policy = json!({"apiVersion": "impressions.dev/v1alpha1", "kind": "ScalingPolicy",
        "metadata": {"name": region}, "spec": {"defaultForRegion": region, "minReplicas": 1, "maxReplicas": 4}});
    Api::<impressions_crds::ScalingPolicy>::all(admin.clone())
        .patch(
            &region,
            &PatchParams::apply(cluster::MANAGER),
            &Patch::Apply(&policy),
        )
        .await
        .unwrap();

    // The real operator, as the chart runs it, authenticated by the ServiceAccount's token.
    let port = free_port();
    let identity = format!("{release}-0");
    let dir = std::env::temp_dir().join("impressions-tests");
    let log = dir.join(format!("operator-{release}.log"));
    let mut cmd = Command::new(binary("operator"));
    cmd.args(["run", "--region", &region, "--leader-election"])
        .args(["--lease-namespace", &release_ns, "--identity", &identity])
        .args(["--worker-image", "impressions/worker:test"])
        .args(["--prometheus-url", &stack.prometheus_url])
        .arg("--metrics-listen")
        .arg(format!("127.0.0.1:{port}"));
    if namespaced {
        cmd.args(["--namespace", &ns]);
    }
    let child = cmd
        .env("KUBECONFIG", &kubeconfig)
        .env("OPERATOR_LOG", "info,impressions_operator=debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start operator");
    let op = OperatorProcess {
        child,
        metrics_port: port,
        log,
    };

    // A pipeline reconciled end to end: policy, Secret and ConfigMap references resolved,
    // children applied, status written, Events published, the leader Lease held.
    let api: Api<ImpressionPipeline> = Api::namespaced(admin.clone(), &ns);
    let pipeline = json!({"apiVersion": "impressions.dev/v1alpha1", "kind": "ImpressionPipeline",
    "metadata": {"name": "imp"},
    "spec": {
        "region": region,
        "source": {"bootstrapServers": stack.kafka_bootstrap, "topic": "raw",
                   "secretRef": {"name": "kafka-credentials"}},
        "sink": {"topic": "out", "deadLetterTopic": "dlq", "secretRef": {"name": "kafka-credentials"}},
        "enrichment": {"catalog": {"configMapRef": {"name": "titles", "key": "titles.json"}}},
        "scaling": {"mode": "Auto", "minReplicas": 1, "maxReplicas": 3}
    }});
    api.patch(
        "imp",
        &PatchParams::apply(cluster::MANAGER),
        &Patch::Apply(&pipeline),
    )
    .await
    .unwrap();
    let ready = eventually(Duration::from_secs(60), "Ready=True", || async {
        let p = api.get("imp").await.ok()?;
        condition(&p, conditions::READY).filter(|c| c.0 == "True")?;
        Some(p)
    })
    .await;
    // The region's ScalingPolicy was found through the policy watch.
    let scaling = condition(&ready, conditions::SCALING).expect("a Scaling condition");
    assert!(
        scaling.2.contains(&format!("ScalingPolicy {region}")),
        "policy not applied: {scaling:?}"
    );
    for (kind, present) in [
        (
            "Deployment",
            Api::<Deployment>::namespaced(admin.clone(), &ns)
                .get_opt("imp-worker")
                .await
                .unwrap()
                .is_some(),
        ),
        (
            "ConfigMap",
            Api::<ConfigMap>::namespaced(admin.clone(), &ns)
                .get_opt("imp-worker")
                .await
                .unwrap()
                .is_some(),
        ),
        (
            "Service",
            Api::<Service>::namespaced(admin.clone(), &ns)
                .get_opt("imp-worker")
                .await
                .unwrap()
                .is_some(),
        ),
        (
            "PodDisruptionBudget",
            Api::<PodDisruptionBudget>::namespaced(admin.clone(), &ns)
                .get_opt("imp-worker")
                .await
                .unwrap()
                .is_some(),
        ),
    ] {
        assert!(present, "{kind} imp-worker not applied");
    }
    eventually(
        Duration::from_secs(20),
        "a ChildrenCreated Event",
        || async {
            let events = Api::<Event>::namespaced(admin.clone(), &ns)
                .list(&ListParams::default())
                .await
                .ok()?;
            events
                .items
                .iter()
                .any(|e| e.reason.as_deref() == Some("ChildrenCreated"))
                .then_some(())
        },
    )
    .await;
    // The leader Lease: created, then renewed (update) every lease duration / 3.
    let leases = Api::<Lease>::namespaced(admin.clone(), &release_ns);
    let lease_name = format!("impressions-operator-{region}");
    let held = |l: &Lease| {
        let spec = l.spec.clone().unwrap_or_default();
        (spec.holder_identity, spec.renew_time.map(|t| t.0))
    };
    let (holder, first_renewal) = held(&leases.get(&lease_name).await.expect("the leader Lease"));
    assert_eq!(holder.as_deref(), Some(identity.as_str()));
    eventually(Duration::from_secs(20), "the Lease renewed", || async {
        let (_, renewed) = held(&leases.get(&lease_name).await.ok()?);
        (renewed > first_renewal).then_some(())
    })
    .await;
    // A change of the pipeline is applied too (the watch and the status patch keep working).
    api.patch(
        "imp",
        &PatchParams::apply(cluster::MANAGER),
        &Patch::Merge(json!({"spec": {"sink": {"topic": "out-v2"}}})),
    )
    .await
    .unwrap();
    eventually(Duration::from_secs(30), "the change applied", || async {
        let cm = Api::<ConfigMap>::namespaced(admin.clone(), &ns)
            .get("imp-worker")
            .await
            .ok()?;
        cm.data?["worker.yaml"].contains("out-v2").then_some(())
    })
    .await;
    // A clean stop (SIGTERM) releases the Lease (patch), so a standby takes over at once.
    let mut op = op;
    let term = run(Command::new("kill").args(["-TERM", &op.child.id().to_string()]));
    assert!(term.status.success(), "{}", text(&term));
    let stopped = tokio::task::block_in_place(|| op.child.wait()).unwrap();
    assert!(
        stopped.success(),
        "operator exit {stopped}:\n{}",
        op.log_tail()
    );
    let (holder, _) = held(&leases.get(&lease_name).await.unwrap());
    assert_eq!(holder, None, "the Lease was not released");
    let log = std::fs::read_to_string(&op.log).unwrap().to_lowercase();
    assert!(
        !log.contains("forbidden"),
        "the operator was refused a call:\n{}",
        op.log_tail()
    );

    // The same token is refused what the operator must never do. Writes are dry runs, so a
    // wrong grant fails the test without harm.
    let dry_delete = DeleteParams::default().dry_run();
    let dry_create = PostParams {
        dry_run: true,
        ..Default::default()
    };
    assert_forbidden(
        "list Secrets in the pipeline namespace",
        Api::<Secret>::namespaced(as_sa.clone(), &ns)
            .list(&ListParams::default())
            .await,
    );
    assert_forbidden(
        "list Secrets in another namespace",
        Api::<Secret>::namespaced(as_sa.clone(), &other)
            .list(&ListParams::default())
            .await,
    );
    assert_forbidden(
        "list Secrets cluster-wide",
        Api::<Secret>::all(as_sa.clone())
            .list(&ListParams::default())
            .await,
    );
    assert_forbidden(
        "delete a CRD",
        Api::<CustomResourceDefinition>::all(as_sa.clone())
            .delete("impressionpipelines.impressions.dev", &dry_delete)
            .await,
    );
    assert_forbidden(
        "delete a namespace",
        Api::<Namespace>::all(as_sa.clone())
            .delete(&other, &dry_delete)
            .await,
    );
    assert_forbidden(
        "delete its own worker Deployment",
        Api::<Deployment>::namespaced(as_sa.clone(), &ns)
            .delete("imp-worker", &dry_delete)
            .await,
    );
    assert_forbidden(
        "delete a pipeline",
        Api::<ImpressionPipeline>::namespaced(as_sa.clone(), &ns)
            .delete("imp", &dry_delete)
            .await,
    );
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "probe"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}))
    .unwrap();
    assert_forbidden(
        "create a pod",
        Api::<Pod>::namespaced(as_sa.clone(), &ns)
            .create(&dry_create, &pod)
            .await,
    );
    let crb: ClusterRoleBinding = serde_json::from_value(json!({"metadata": {"name": unique("escalate")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": release_ns}]}))
    .unwrap();
    assert_forbidden(
        "bind itself to cluster-admin",
        Api::<ClusterRoleBinding>::all(as_sa.clone())
            .create(&dry_create, &crb)
            .await,
    );
    assert_forbidden(
        "modify a ScalingPolicy",
        Api::<impressions_crds::ScalingPolicy>::all(as_sa.clone())
            .delete(&region, &dry_delete)
            .await,
    );
    assert_forbidden(
        "read another Lease in its namespace",
        Api::<Lease>::namespaced(as_sa.clone(), &release_ns)
            .get("someone-else")
            .await,
    );
    let lease: Lease = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
    assert_forbidden(
        "create a Lease in another namespace",
        Api::<Lease>::namespaced(as_sa.clone(), &other)
            .create(&dry_create, &lease)
            .await,
    );
    let secret_elsewhere = Api::<Secret>::namespaced(as_sa.clone(), &other)
        .get_metadata_opt("kafka-credentials")
        .await;
    if namespaced {
        assert_forbidden(
            "read a Secret outside the watched namespaces",
            secret_elsewhere,
        );
        assert_forbidden(
            "list pipelines outside the watched namespaces",
            Api::<ImpressionPipeline>::namespaced(as_sa.clone(), &other)
                .list(&ListParams::default())
                .await,
        );
        let d: Deployment = serde_json::from_value(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "intruder", "namespace": other},
            "spec": {"selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}))
        .unwrap();
        assert_forbidden(
            "apply a Deployment outside the watched namespaces",
            Api::<Deployment>::namespaced(as_sa.clone(), &other)
                .patch(
                    "intruder",
                    &PatchParams::apply("x").dry_run(),
                    &Patch::Apply(&d),
                )
                .await,
        );
    } else {
        // Watching every namespace, the operator may get (never list) a named Secret anywhere:
        // a pipeline's secretRef may be in any namespace. watchNamespaces confines it.
        assert!(
            secret_elsewhere.is_ok(),
            "get by name is granted: {secret_elsewhere:?}"
        );
    }
    let can = run(stack
        .kubectl()
        .env("KUBECONFIG", &kubeconfig)
        .args(["auth", "can-i", "--list", "-n", &ns]));
    println!(
        "kubectl auth can-i --list -n <pipeline namespace> as the chart's ServiceAccount:\n{}",
        text(&can)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn installed_chart_lets_the_operator_reconcile_and_refuses_the_rest() {
    installed_chart_is_sufficient_and_least_privilege(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn installed_chart_with_watched_namespaces_confines_the_operator_to_them() {
    installed_chart_is_sufficient_and_least_privilege(true).await;
}
