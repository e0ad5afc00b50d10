//! The chart's Prometheus rules and dashboard queries, through the stack's `promtool`: the rules
//! pass `promtool check rules` and their unit tests (`charts/impressions-operator/tests/
//! rules.test.yaml`, `promtool test rules`), and every dashboard query is valid PromQL. That the
//! rules and queries read only exposed metrics, and that every alert has its test cases, is
//! checked without the stack in operator/tests/charts.rs.

use std::process::Command;

use impressions_tests::{
    chart::{self, promtool, run, text},
    unique,
};
use serde_json::Value;

#[test]
fn prometheus_rules_pass_promtool_check_and_unit_tests() {
    let promtool = promtool();
    let check = run(Command::new(&promtool)
        .args(["check", "rules"])
        .arg(chart::rule_file()));
    assert!(check.status.success(), "{}", text(&check));
    let out = run(Command::new(&promtool)
        .args(["test", "rules"])
        .arg(chart::dir().join("tests/rules.test.yaml"))
        .current_dir(chart::dir().join("tests")));
    assert!(out.status.success(), "promtool test rules:\n{}", text(&out));
    println!("promtool test rules:\n{}", text(&out));
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
fn every_dashboard_query_is_valid_promql() {
    let path = chart::dir().join("dashboards/impressions.json");
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
    // promtool parses and type-checks each query as a recording rule.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, e)) in exprs.iter().enumerate() {
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
}
