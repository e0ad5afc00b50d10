//! Predictive scaling in the closed loop on the local stack: two pipelines fed the same
//! compressed diurnal trace at once, one under a policy with `predictive.mode: Scale`, the other
//! with `Off`, every other field the same. The API server and controller-manager run their
//! Deployments, the node agent runs the pods as worker processes (each capped at `--cap`
//! events/s: its emulated CPU), Prometheus scrapes them, loadgen produces the trace and one
//! operator scales both.
//!
//! The day is compressed to `--season` seconds (`predictive.seasonSeconds`; 420 s by default:
//! the forecast's buckets are a 288th of it, 1 s, their rate over the policy's 15 s window).
//! The trace runs `--days` days (3): the first two are the history the forecast needs
//! (`minHistoryHours` = two seasons), the third is the one compared: replica-seconds, seconds
//! over the 10 s lag SLO (lag / the trace's rate at the sample), the largest lag, the scaling
//! actions, and what the forecast did (when it became Ready, its recent error, the decisions
//! it drove from the operator's `scaling_decisions_total`). The shape is the simulator's
//! diurnal day (a squared cosine: a long trough, a sharp evening peak), from `--low` to
//! `--high` events/s.
//!
//! `cargo run -p impressions-tests --bin bench_predictive -- [--season 420] [--days 3]
//! [--low 80] [--high 800] [--cap 200] [--out FILE]` with the stack up and the workspace's
//! binaries built (`make bench-predictive`, about 25 minutes). The run fails (after writing its
//! figures) when the Scale pipeline's forecast never became Ready.

use std::{collections::BTreeMap, time::Duration};

use impressions_crds::ImpressionPipeline;
use impressions_tests::{
    Stack, cluster, kafka,
    observe::{Clock, Sample, Sampler},
    operator::OperatorProcess,
    processes::{LoadgenRun, NodeAgentProcess},
    unique,
};
use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

const LAG_SLO_S: f64 = 10.0;
const MODES: [&str; 2] = ["Scale", "Off"];

#[derive(Debug, Clone)]
struct Args {
    season: f64,
    days: f64,
    low: f64,
    high: f64,
    cap: u64,
    out: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        season: 420.0,
        days: 3.0,
        low: 80.0,
        high: 800.0,
        cap: 200,
        out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--season" => a.season = value().parse().expect("--season SECONDS"),
            "--days" => a.days = value().parse().expect("--days N"),
            "--low" => a.low = value().parse().expect("--low EVENTS_PER_SECOND"),
            "--high" => a.high = value().parse().expect("--high EVENTS_PER_SECOND"),
            "--cap" => a.cap = value().parse().expect("--cap EVENTS_PER_SECOND"),
            "--out" => a.out = Some(value()),
            f => panic!("unknown flag {f}"),
        }
    }
    assert!(
        a.days >= 3.0,
        "--days must be at least 3: two to learn, one to compare"
    );
    assert!(
        a.season >= 60.0,
        "--season is at least 60 s (the CRD's minimum)"
    );
    a
}

/// The simulator's diurnal shape (`tools/simulate/traces.rs`), compressed: a squared cosine
/// from `low` (at 0, the trough) to `high` (half a season later).
fn rate(a: &Args, t: f64) -> f64 {
    let x = (t / a.season + 0.5) * std::f64::consts::TAU;
    a.low + (a.high - a.low) * ((1.0 + x.cos()) / 2.0).powi(2)
}

/// The policy of one mode: the closed-loop test's (`tests/tests/closed_loop.rs`) with the
/// predictive section.
fn policy(name: &str, mode: &str, a: &Args) -> Value {
    json!({"apiVersion": "impressions.dev/v1alpha1", "kind": "ScalingPolicy", "metadata": {"name": name},
        "spec": {"minReplicas": 1, "maxReplicas": 8, "targetUtilization": 0.7, "utilizationTolerance": 0.1,
                 "lagSloSeconds": LAG_SLO_S as u32, "catchUpSeconds": 30, "evaluationIntervalSeconds": 5,
                 "scaleUp": {"stabilizationWindowSeconds": 0, "maxStepPercent": 200, "maxStepReplicas": 4, "cooldownSeconds": 10},
                 "scaleDown": {"stabilizationWindowSeconds": 30, "maxStepPercent": 50, "maxStepReplicas": 0, "cooldownSeconds": 10},
                 "queries": {"rateWindow": "15s"},
                 "predictive": {"mode": mode, "minHistoryHours": min_history_hours(a),
                                "seasonSeconds": a.season as u32, "maxForecastError": 0.2}}})
}

/// Two seasons, the least the CRD allows, rounded up to the next 0.001 h.
fn min_history_hours(a: &Args) -> f64 {
    (2.0 * a.season / 3.6).ceil() / 1000.0
}

/// One pipeline of the run.
struct Run {
    mode: &'static str,
    name: String,
    raw: String,
    sampler: Sampler,
    /// (seconds on the clock, state, recent error, history hours) at each change of state.
    states: Vec<(f64, String, Option<f64>, Option<f64>)>,
    last_forecast: Option<Value>,
    first_ready: Option<f64>,
}

async fn create(
    stack: &Stack,
    client: &Client,
    ns: &str,
    mode: &'static str,
    a: &Args,
) -> (String, String) {
    let name = mode.to_lowercase();
    let prefix = format!("{ns}-{name}");
    let raw = kafka::pipeline_topics(stack, &prefix).await;
    let policy_name = format!("{ns}-{name}");
    Api::<impressions_crds::ScalingPolicy>::all(client.clone())
        .patch(
            &policy_name,
            &PatchParams::apply("bench").force(),
            &Patch::Apply(&policy(&policy_name, mode, a)),
        )
        .await
        .expect("the ScalingPolicy");
    let pipeline = json!({"apiVersion": "impressions.dev/v1alpha1", "kind": "ImpressionPipeline", "metadata": {"name": name},
        "spec": {"region": "local",
                 "source": {"bootstrapServers": stack.kafka_bootstrap, "topic": raw, "offsetReset": "Earliest"},
                 "sink": {"topic": format!("{prefix}-out"), "deadLetterTopic": format!("{prefix}-dlq")},
                 "enrichment": {"catalog": {"topic": format!("{prefix}-titles")}},
                 "worker": {"threads": 1, "drainTimeoutSeconds": 5, "maxEventsPerSecond": a.cap},
                 "scaling": {"mode": "Auto", "policyRef": policy_name, "minReplicas": 1, "maxReplicas": 8}}});
    Api::<ImpressionPipeline>::namespaced(client.clone(), ns)
        .create(
            &PostParams::default(),
            &serde_json::from_value(pipeline).unwrap(),
        )
        .await
        .expect("the ImpressionPipeline");
    (name, raw)
}

/// The figures of the samples from `from` to `to` (seconds on the run's clock, `t0` the
/// trace's start).
fn figures(samples: &[Sample], a: &Args, t0: f64, from: f64, to: f64) -> Value {
    let s: Vec<&Sample> = samples.iter().filter(|s| s.t >= from && s.t < to).collect();
    let lag_s = |x: &Sample| x.lag as f64 / rate(a, x.t - t0).max(1.0);
    let (mut replica_s, mut over, mut covered) = (0.0, 0.0, 0.0);
    for w in s.windows(2) {
        let dt = w[1].t - w[0].t;
        covered += dt;
        replica_s += f64::from(w[0].replicas) * dt;
        if lag_s(w[0]) > LAG_SLO_S {
            over += dt;
        }
    }
    let actions = s
        .windows(2)
        .filter(|w| w[1].replicas != w[0].replicas)
        .count();
    json!({
        "from_s": from - t0, "to_s": to - t0, "samples": s.len(), "seconds_covered": covered,
        "replica_seconds": replica_s,
        "seconds_over_slo": over,
        "max_lag_seconds": s.iter().map(|x| lag_s(x)).fold(0.0, f64::max),
        "max_lag_events": s.iter().map(|x| x.lag).max().unwrap_or(0),
        "max_replicas": s.iter().map(|x| x.replicas).max().unwrap_or(0),
        "scaling_actions": actions,
    })
}

/// The operator's decisions of one pipeline by reason, from its /metrics.
fn decisions(metrics: &str, ns: &str, pipeline: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("impressions_operator_scaling_decisions_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let label = |k: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{k}=\"")))
                .map(|v| v.trim_end_matches('"').to_owned())
        };
        if label("namespace").as_deref() == Some(ns)
            && label("pipeline").as_deref() == Some(pipeline)
            && let (Some(reason), Ok(v)) = (label("reason"), value.trim().parse::<f64>())
        {
            out.insert(reason, v);
        }
    }
    out
}

#[tokio::main]
async fn main() {
    let a = args();
    let stack = Stack::get();
    let client = stack.client().await;
    cluster::install_crds(&client).await.expect("the CRDs");
    let ns = cluster::namespace(&client, &unique("pred"))
        .await
        .expect("a namespace");
    let trace_path = std::env::temp_dir()
        .join("impressions-tests")
        .join(format!("{ns}-trace.csv"));
    std::fs::create_dir_all(trace_path.parent().unwrap()).unwrap();
    let seconds = a.days * a.season;
    let csv: String = (0..=(seconds as usize))
        .step_by(2)
        .map(|t| format!("{t},{:.1}\n", rate(&a, t as f64)))
        .collect();
    std::fs::write(&trace_path, csv).unwrap();

    let clock = Clock::new();
    let mut runs = Vec::new();
    for mode in MODES {
        let (name, raw) = create(stack, &client, &ns, mode, &a).await;
        let sampler = Sampler::with_clock(
            clock,
            client.clone(),
            &ns,
            &format!("{name}-worker"),
            &raw,
            &format!("{ns}.{name}"),
        );
        runs.push(Run {
            mode,
            name,
            raw,
            sampler,
            states: Vec::new(),
            last_forecast: None,
            first_ready: None,
        });
    }
    let agent = NodeAgentProcess::start(stack, &ns);
    let op = OperatorProcess::start(
        stack,
        "local",
        &ns,
        &["--prometheus-url", stack.prometheus_url.as_str()],
    );
    let trace = format!("csv:{}", trace_path.display());
    let t0 = clock.now();
    let mut loads: Vec<LoadgenRun> = runs
        .iter()
        .map(|r| LoadgenRun::start(stack, &r.raw, &trace, seconds, 1))
        .collect();
    eprintln!(
        "bench_predictive: {ns}, {} days of {} s from {}/s to {}/s, workers capped at {}/s",
        a.days, a.season, a.low, a.high, a.cap
    );
    let api = Api::<ImpressionPipeline>::namespaced(client.clone(), &ns);
    let mut next_print = 0.0;
    while clock.now() - t0 < seconds {
        let t = clock.now() - t0;
        for r in &mut runs {
            r.sampler.set_input(rate(&a, t));
            let forecast = api
                .get(&r.name)
                .await
                .ok()
                .and_then(|p| p.status)
                .and_then(|s| s.forecast);
            if let Some(f) = forecast {
                let changed = r.states.last().is_none_or(|(_, s, _, _)| *s != f.state);
                if changed {
                    r.states
                        .push((t, f.state.clone(), f.recent_error, f.history_hours));
                }
                if f.state == "Ready" {
                    r.first_ready.get_or_insert(t);
                }
                r.last_forecast = Some(serde_json::to_value(&f).unwrap());
            }
        }
        if t >= next_print {
            next_print = t + 60.0;
            let line: Vec<String> = runs
                .iter()
                .map(|r| {
                    let s = r.sampler.since(clock.now() - 3.0);
                    let last = s.last();
                    format!(
                        "{}: {} replicas, lag {} ({})",
                        r.mode,
                        last.map_or(0, |s| s.replicas),
                        last.map_or(0, |s| s.lag),
                        r.states.last().map_or("-", |s| s.1.as_str())
                    )
                })
                .collect();
            eprintln!("{t:>6.0} s, {:.0}/s: {}", rate(&a, t), line.join("; "));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    for l in &mut loads {
        l.wait();
    }
    let end = clock.now();
    let metrics = op.metrics();

    let mut out = serde_json::Map::new();
    for r in &runs {
        let samples = r.sampler.since(0.0);
        let day = |d: f64| {
            figures(
                &samples,
                &a,
                t0,
                t0 + d * a.season,
                t0 + (d + 1.0) * a.season,
            )
        };
        let compared = figures(&samples, &a, t0, t0 + 2.0 * a.season, t0 + seconds);
        out.insert(
            r.mode.to_owned(),
            json!({
                "pipeline": r.name,
                "compared_days": compared,
                "per_day": (0..(a.days as usize)).map(|d| day(d as f64)).collect::<Vec<_>>(),
                "whole_run": figures(&samples, &a, t0, t0, end),
                "forecast_first_ready_s": r.first_ready,
                "forecast_states": r.states.iter().map(|(t, s, e, h)| json!({"t_s": t, "state": s, "recent_error": e, "history_hours": h})).collect::<Vec<_>>(),
                "forecast_last": r.last_forecast,
                "decisions": decisions(&metrics, &ns, &r.name),
            }),
        );
    }
    let ratio = |k: &str| {
        let v = |m: &str| out[m]["compared_days"][k].as_f64().unwrap_or(0.0);
        (v("Off") > 0.0).then(|| v("Scale") / v("Off"))
    };
    let report = json!({
        "date": k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%MZ").to_string(),
        "command": "make bench-predictive",
        "trace": {"season_s": a.season, "days": a.days, "low_per_s": a.low, "high_per_s": a.high,
                  "shape": "the simulator's diurnal day compressed: low + (high - low) × ((1 + cos x) / 2)², the trough at 0"},
        "worker_cap_per_s": a.cap, "lag_slo_s": LAG_SLO_S,
        "min_history_hours": min_history_hours(&a),
        "policy": policy("<mode>", "<mode>", &a)["spec"],
        "compared": "from the start of day 3 to the end of the trace",
        "scale_over_off_replica_seconds": ratio("replica_seconds"),
        "runs": out,
    });
    println!("{report:#}");
    if let Some(path) = &a.out {
        std::fs::write(path, serde_json::to_string_pretty(&report).unwrap() + "\n")
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut csv = String::from("mode,t_s,input_per_s,replicas,ready,lag_events\n");
        for r in &runs {
            for s in r.sampler.since(0.0) {
                csv.push_str(&format!(
                    "{},{:.1},{:.0},{},{},{}\n",
                    r.mode,
                    s.t - t0,
                    rate(&a, s.t - t0),
                    s.replicas,
                    s.ready,
                    s.lag
                ));
            }
        }
        let csv_path = std::path::Path::new(path).with_extension("csv");
        std::fs::write(&csv_path, csv).unwrap_or_else(|e| panic!("{}: {e}", csv_path.display()));
    }
    let scale = &runs[0];
    drop(loads);
    drop(agent);
    drop(op);
    let _ = Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .delete(&ns, &DeleteParams::default())
        .await;
    assert!(
        scale.first_ready.is_some(),
        "the Scale pipeline's forecast never became Ready: {:?}",
        scale.last_forecast
    );
}
