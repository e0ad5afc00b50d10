//! The ScalingPolicy's default `cpuFraction` query, evaluated by Prometheus's engine (`promtool
//! test rules`, the stack's promtool) on synthetic series: a worker whose fixed CPU is measured
//! counts (CPU − idle) over the whole limit; one without it counts its whole CPU over the limit
//! (the query's `or`); the query averages the workers. The capacity estimate divides by this
//! (docs/autoscaling.md: with the idle part kept out of the limit too it read 10 % low).

use std::process::Command;

use impressions_crds::policy::PrometheusQueries;
use impressions_tests::{
    chart::{promtool, run, text},
    unique,
};

#[test]
fn the_default_cpu_fraction_is_cpu_less_idle_over_the_whole_limit() {
    let query = PrometheusQueries::default()
        .cpu_fraction
        .replace("{namespace}", "ns")
        .replace("{pipeline}", "p")
        .replace("{window}", "1m");
    let sel = |pod: &str| format!("{{namespace=\"ns\",pipeline=\"p\",pod=\"{pod}\"}}");
    // Worker a: 0.06 cores, 0.01 idle, limit 0.1 → 0.5 (the line through the idle CPU would
    // give 0.556). Worker b: 0.04 cores, no idle measured → 0.4. Their average: 0.45.
    let test = format!(
        r#"rule_files: []
evaluation_interval: 1s
tests:
  - interval: 1s
    input_series:
      - series: 'impressions_worker_cpu_seconds_total{a}'
        values: '0+0.06x180'
      - series: 'impressions_worker_cpu_limit_cores{a}'
        values: '0.1x180'
      - series: 'impressions_worker_cpu_idle_cores{a}'
        values: '0.01x180'
      - series: 'impressions_worker_cpu_seconds_total{b}'
        values: '0+0.04x180'
      - series: 'impressions_worker_cpu_limit_cores{b}'
        values: '0.1x180'
    promql_expr_test:
      - expr: 'abs(({query}) - 0.45) < bool 0.0001'
        eval_time: 2m
        exp_samples:
          - labels: '{{}}'
            value: 1
"#,
        a = sel("a"),
        b = sel("b"),
        query = query.replace('\'', "''"),
    );
    let dir = std::env::temp_dir().join(unique("cpu-fraction"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("test.yaml");
    std::fs::write(&file, &test).unwrap();
    let out = run(Command::new(promtool()).args(["test", "rules"]).arg(&file));
    assert!(
        out.status.success(),
        "the default cpuFraction query\n{query}\ndid not give 0.45:\n{}",
        text(&out)
    );
}
