//! The Helm chart's files (`charts/impressions-operator`) agree with the code, checked without the
//! stack (`make test-unit`): its CRDs are the generated ones, its examples the repository's, its
//! alert rules and dashboard read only metrics that the operator and the worker expose (their
//! `metrics::NAMES`), and every alert has a promtool test case where it fires at each of its
//! severities and one where it stays silent. What needs the stack's promtool or helm, or its API
//! server, is in tests/tests/ (`rules.rs`, `chart_render.rs`, `rbac.rs`).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use serde_json::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("operator/ has a parent")
        .to_path_buf()
}

fn chart() -> PathBuf {
    repo_root().join("charts/impressions-operator")
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
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

/// The chart's defaults name the images `make images` builds (images/build.sh tags
/// `ghcr.io/impressions/<target>:<workspace version>`): the chart's appVersion is the operator's
/// version, every image tag defaults to it, and the operator's own `--worker-image` and
/// `--archiver-image` defaults are the same images.
#[test]
fn chart_defaults_name_the_images_of_this_version() {
    use impressions_operator::{
        ARCHIVER_IMAGE_REPOSITORY, DEFAULT_ARCHIVER_IMAGE, DEFAULT_WORKER_IMAGE,
        OPERATOR_IMAGE_REPOSITORY, WORKER_IMAGE_REPOSITORY,
    };
    let meta = yaml(&chart().join("Chart.yaml"));
    let app_version = meta["appVersion"].as_str().expect("appVersion");
    assert_eq!(
        app_version,
        env!("CARGO_PKG_VERSION"),
        "Chart.yaml appVersion"
    );
    let values = yaml(&chart().join("values.yaml"));
    assert_eq!(values["image"]["repository"], OPERATOR_IMAGE_REPOSITORY);
    assert_eq!(values["workerImage"]["repository"], WORKER_IMAGE_REPOSITORY);
    assert_eq!(
        values["archiverImage"]["repository"],
        ARCHIVER_IMAGE_REPOSITORY
    );
    for key in ["image", "workerImage", "archiverImage"] {
        assert_eq!(
            values[key]["tag"], "",
            "{key}.tag defaults to the appVersion"
        );
    }
    assert_eq!(
        DEFAULT_WORKER_IMAGE,
        format!("{WORKER_IMAGE_REPOSITORY}:{app_version}")
    );
    assert_eq!(
        DEFAULT_ARCHIVER_IMAGE,
        format!("{ARCHIVER_IMAGE_REPOSITORY}:{app_version}")
    );
    for target in ["worker", "operator", "archiver"] {
        let containerfile =
            std::fs::read_to_string(repo_root().join("images/Containerfile")).unwrap();
        assert!(
            containerfile.contains(&format!("AS {target}\n")),
            "images/Containerfile has a {target} target"
        );
    }
    let build = std::fs::read_to_string(repo_root().join("images/build.sh")).unwrap();
    assert!(
        build.contains("ghcr.io/impressions}") && build.contains("$registry/$target:$version"),
        "images/build.sh tags the images as the chart names them"
    );
}

/// Metric names the workspace exposes, as Prometheus stores them: the worker's and the
/// operator's `metrics::NAMES`.
fn exposed_metrics() -> BTreeSet<&'static str> {
    let names: BTreeSet<&str> = impressions_operator::metrics::NAMES
        .iter()
        .chain(impressions_worker::metrics::NAMES)
        .copied()
        .collect();
    assert!(names.len() > 20, "only {names:?}");
    names
}

/// The `impressions_*` metric names a PromQL expression reads (recording-rule names, which hold
/// a colon, excluded) that no metric exposes; a histogram's series (`_bucket`, `_sum`, `_count`)
/// are its family's.
fn undefined_metrics(expr: &str, exposed: &BTreeSet<&str>) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|t| t.starts_with("impressions_") && !t.contains(':'))
        .filter(|t| {
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| t.strip_suffix(s))
                .unwrap_or(t);
            !exposed.contains(t) && !exposed.contains(family)
        })
        .map(str::to_owned)
        .collect()
}

fn rule_file() -> PathBuf {
    chart().join("files/rules/impressions.rules.yaml")
}

#[test]
fn alert_and_recording_rules_read_only_exposed_metrics() {
    let rules = yaml(&rule_file());
    let exposed = exposed_metrics();
    let mut n = 0;
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let expr = rule["expr"].as_str().unwrap();
            let unknown = undefined_metrics(expr, &exposed);
            assert!(unknown.is_empty(), "{rule}: unknown metrics {unknown:?}");
            n += 1;
        }
    }
    assert!(n > 0, "no rules in {}", rule_file().display());
}

/// The promtool unit tests (`tests/rules.test.yaml`, run by tests/tests/rules.rs) cover every
/// alert firing at each of its severities and staying silent.
#[test]
fn every_alert_has_a_test_case_firing_at_each_severity_and_one_staying_silent() {
    let rules = yaml(&rule_file());
    let mut severities: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            if let Some(alert) = rule["alert"].as_str() {
                severities
                    .entry(alert.to_owned())
                    .or_default()
                    .insert(rule["labels"]["severity"].as_str().unwrap().to_owned());
            }
        }
    }
    let tests = yaml(&chart().join("tests/rules.test.yaml"));
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
    println!(
        "rules.test.yaml: {} test groups, {alert_cases} alert cases, {expr_cases} expression \
         cases; {} alerts, {} alert rules by severity: {severities:?}",
        groups.len(),
        severities.len(),
        severities.values().map(BTreeSet::len).sum::<usize>()
    );
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

/// tests/tests/rules.rs has promtool parse every query of the dashboard.
#[test]
fn dashboard_is_json_with_the_needed_panels_over_exposed_metrics() {
    let path = chart().join("dashboards/impressions.json");
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    collect_exprs(&dash["panels"], &mut exprs);
    // The variables' label_values(SELECTOR, label) queries.
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
        "Schema drifts by kind",
    ] {
        assert!(titles.contains(needed), "no panel {needed:?}: {titles:?}");
    }
    let exposed = exposed_metrics();
    for (title, e) in &exprs {
        let unknown = undefined_metrics(e, &exposed);
        assert!(unknown.is_empty(), "{title}: unknown metrics {unknown:?}");
    }
}

/// The check itself: names no metric exposes are caught, a histogram's series are its family's.
#[test]
fn undefined_metrics_names_what_no_metric_exposes() {
    let exposed = exposed_metrics();
    assert_eq!(
        undefined_metrics(
            "sum(rate(impressions_worker_events_processed_total[1m])) \
             / histogram_quantile(0.9, impressions_worker_event_latency_seconds_bucket) \
             + impressions_worker_nulls:ratio_rate",
            &exposed
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        undefined_metrics(
            "rate(impressions_worker_events_processed[1m]) + impressions_operator_nope",
            &exposed
        ),
        [
            "impressions_worker_events_processed",
            "impressions_operator_nope"
        ]
    );
}
