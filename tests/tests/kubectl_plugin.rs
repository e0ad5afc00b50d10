//! `kubectl impressions` on the real stack: the built `kubectl-impressions` binary, run as a
//! user runs it (the stack's kubeconfig through KUBECONFIG or --kubeconfig), against the API
//! server, the stack's Prometheus and, for `why` and `what-if`, a real operator scaling a real
//! worker's backlog.

use std::{
    path::PathBuf,
    process::{Command, Output},
    time::Duration,
};

use impressions_crds::{ImpressionPipeline, ScalingPolicy};
use impressions_tests::{
    Stack, cluster, kafka,
    operator::{OperatorProcess, eventually},
    repo_root, unique,
    worker::{WorkerProcess, binary},
};
use impressions_worker::loadgen::Mix;
use k8s_openapi::{
    api::{core::v1::ObjectReference, events::v1::Event},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::Timestamp,
};
use kube::{
    Api, Client, ResourceExt,
    api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

/// Runs the plugin with the stack's kubeconfig (and `env` on top).
fn plugin_with(env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(binary("kubectl-impressions"));
    cmd.args(args)
        .env("KUBECONFIG", &Stack::get().kubeconfig)
        .env_remove("IMPRESSIONS_PROMETHEUS_URL")
        .env_remove("IMPRESSIONS_REGION");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run kubectl-impressions")
}

fn plugin(args: &[&str]) -> Output {
    plugin_with(&[], args)
}

/// The standard output of a run that must succeed.
fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "kubectl-impressions failed ({}):\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// The standard error of a run that must fail with `code`.
fn fails(o: Output, code: i32) -> String {
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout: {}\nstderr: {err}",
        String::from_utf8_lossy(&o.stdout)
    );
    err
}

async fn setup(prefix: &str) -> (Client, String) {
    let client = Stack::get().client().await;
    cluster::install_crds(&client).await.unwrap();
    let ns = cluster::namespace(&client, &unique(prefix)).await.unwrap();
    (client, ns)
}

/// A pipeline no operator of the stack serves (its region is no operator's).
fn pipeline(name: &str) -> Value {
    json!({"apiVersion": "impressions.dev/v1alpha1", "kind": "ImpressionPipeline", "metadata": {"name": name},
        "spec": {"region": "plugin-test",
                 "source": {"bootstrapServers": "127.0.0.1:9092", "topic": "raw"},
                 "sink": {"topic": "out", "deadLetterTopic": "dlq"},
                 "enrichment": {"catalog": {"topic": "titles"}}}})
}

async fn create(client: &Client, ns: &str, name: &str) -> ImpressionPipeline {
    Api::<ImpressionPipeline>::namespaced(client.clone(), ns)
        .patch(
            name,
            &PatchParams::apply("tests"),
            &Patch::Apply(&pipeline(name)),
        )
        .await
        .unwrap()
}

fn ago(seconds: i64) -> Timestamp {
    Timestamp::from_second(Timestamp::now().as_second() - seconds).unwrap()
}

/// Writes a status as the operator would: 3 workers (2 ready), 4 wanted after a scale-up
/// 200 s ago for a backlog.
async fn write_status(client: &Client, ns: &str, name: &str) {
    let status = json!({"status": {
        "observedGeneration": 1, "replicas": 3, "readyReplicas": 2, "desiredReplicas": 4,
        "partitions": 8,
        "lag": {"total": 12000, "maxPartition": 3100, "estimatedSeconds": 6.25},
        "throughput": {"inputPerSecond": 2500.4, "processedPerSecond": 1999.6, "capacityPerReplica": 1000.0},
        "conditions": [{"type": "DataQuality", "status": "True", "reason": "OK", "message": "every column within its thresholds",
                        "lastTransitionTime": ago(600).to_string()}],
        "lastDecision": {"from": 3, "to": 4, "reason": "ScaleUpForBacklog",
                         "message": "arrival 2500/s, backlog 12000 events, capacity 1000/s per replica: 4 replicas drain it within 120 s",
                         "time": ago(200).to_string()}}});
    Api::<ImpressionPipeline>::namespaced(client.clone(), ns)
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

/// A copy of the stack's kubeconfig whose context defaults to `namespace`.
fn kubeconfig_in(namespace: &str) -> PathBuf {
    let stack = Stack::get();
    let text = std::fs::read_to_string(&stack.kubeconfig).unwrap();
    let mut kc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    for c in kc["contexts"].as_sequence_mut().unwrap() {
        c["context"]["namespace"] = namespace.into();
    }
    let dir = std::env::temp_dir().join("impressions-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{}.kubeconfig", unique("plugin-ns")));
    std::fs::write(&path, serde_yaml::to_string(&kc).unwrap()).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn status_shows_every_pipeline_as_a_table_and_as_json() {
    let (client, ns) = setup("plugin-status").await;
    let other = cluster::namespace(&client, &unique("plugin-status-b"))
        .await
        .unwrap();
    create(&client, &ns, "eu").await;
    write_status(&client, &ns, "eu").await;
    create(&client, &ns, "fresh").await;
    create(&client, &other, "us").await;

    let table = ok(plugin(&["status", "-n", &ns]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        [
            "NAME",
            "READY",
            "INPUT/S",
            "PROCESSED/S",
            "LAG",
            "LAG-SECONDS",
            "QUALITY",
            "LAST",
            "DECISION",
            "AGE"
        ]
    );
    let eu: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        eu[..9],
        [
            "eu",
            "2/4",
            "2500",
            "2000",
            "12000",
            "6.2",
            "OK",
            "ScaleUpForBacklog",
            "3→4"
        ],
        "{table}"
    );
    // 200 s ago when written, as kubectl shows ages (a loaded machine may take a while).
    let age: Option<u32> = eu[9]
        .strip_prefix("3m")
        .and_then(|s| s.strip_suffix('s'))
        .and_then(|s| s.parse().ok());
    assert!(
        age.is_some_and(|s| (19..60).contains(&s)) || eu[9] == "4m",
        "{table}"
    );
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["fresh", "-", "-", "-", "-", "-", "-", "-", "-"],
        "{table}"
    );

    // kubectl finds the binary on the PATH as its `impressions` subcommand.
    let dir = binary("kubectl-impressions")
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let via_kubectl = ok(Stack::get()
        .kubectl()
        .env("PATH", path)
        .args(["impressions", "status", "-n", &ns])
        .output()
        .unwrap());
    let first_cells = |t: &str| -> Vec<String> {
        t.lines()
            .map(|l| l.split_whitespace().take(8).collect::<Vec<_>>().join(" "))
            .collect()
    };
    assert_eq!(first_cells(&via_kubectl), first_cells(&table));

    let json: Value = serde_json::from_str(&ok(plugin(&["status", "-n", &ns, "-o", "json"])))
        .expect("status -o json is JSON");
    let items = json.as_array().unwrap();
    assert_eq!(items.len(), 2, "{json:#}");
    let eu = &items[0];
    assert_eq!((&eu["namespace"], &eu["name"]), (&json!(ns), &json!("eu")));
    assert_eq!(
        eu["replicas"],
        json!({"ready": 2, "current": 3, "desired": 4})
    );
    assert_eq!(
        (&eu["inputPerSecond"], &eu["processedPerSecond"]),
        (&json!(2500.4), &json!(1999.6))
    );
    assert_eq!(eu["lag"], json!({"events": 12000, "seconds": 6.25}));
    assert_eq!(eu["quality"], json!("OK"));
    let d = &eu["lastDecision"];
    assert_eq!(
        (&d["reason"], &d["from"], &d["to"]),
        (&json!("ScaleUpForBacklog"), &json!(3), &json!(4))
    );
    assert!(
        d["message"]
            .as_str()
            .unwrap()
            .contains("backlog 12000 events")
    );
    assert!(
        (199..300).contains(&d["ageSeconds"].as_i64().unwrap()),
        "{d}"
    );
    assert_eq!(items[1]["hasStatus"], json!(false));

    // -A: every namespace, the namespace first.
    let all = ok(plugin(&["status", "-A"]));
    assert!(all.starts_with("NAMESPACE "), "{all}");
    for (n, p) in [(&ns, "eu"), (&ns, "fresh"), (&other, "us")] {
        assert!(
            all.lines().any(|l| {
                let c: Vec<&str> = l.split_whitespace().collect();
                c.len() > 2 && c[0] == n.as_str() && c[1] == p
            }),
            "{n}/{p} in\n{all}"
        );
    }

    // The context's namespace is the default, as with kubectl; --kubeconfig names the file.
    let in_other = kubeconfig_in(&other);
    let listed = ok(plugin_with(
        &[("KUBECONFIG", "/nonexistent")],
        &["status", "--kubeconfig", in_other.to_str().unwrap()],
    ));
    assert!(
        listed.lines().nth(1).unwrap().starts_with("us "),
        "{listed}"
    );
    let empty = cluster::namespace(&client, &unique("plugin-empty"))
        .await
        .unwrap();
    assert_eq!(
        ok(plugin(&["status", "-n", &empty])),
        format!("No ImpressionPipelines in namespace {empty}.\n")
    );

    // Errors say what is wrong.
    let err = fails(
        plugin_with(&[("KUBECONFIG", "/nonexistent/config")], &["status"]),
        1,
    );
    assert!(
        err.contains("no kubeconfig: /nonexistent/config does not exist"),
        "{err}"
    );
    let err = fails(plugin(&["status", "--context", "nosuch"]), 1);
    assert!(
        err.contains("context \"nosuch\" is not in the kubeconfig"),
        "{err}"
    );
    let err = fails(plugin(&["why", "nosuch", "-n", &ns]), 1);
    assert!(
        err.contains(&format!(
            "ImpressionPipeline nosuch not found in namespace {ns}"
        )),
        "{err}"
    );
    // An API server that never answers: the deadline, not a hang.
    let hole = impressions_tests::blackhole::BlackHole::start();
    let hung = Stack::get().kubeconfig_with_server(&hole.address());
    let started = std::time::Instant::now();
    let err = fails(
        plugin(&[
            "status",
            "--kubeconfig",
            hung.to_str().unwrap(),
            "--request-timeout",
            "2",
        ]),
        1,
    );
    assert!(err.contains("no answer within 2 s"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// An Event as the operator's recorder writes it about a pipeline.
async fn record(
    client: &Client,
    p: &ImpressionPipeline,
    action: &str,
    reason: &str,
    note: &str,
    at: Timestamp,
) {
    let ns = p.namespace().unwrap();
    let e = Event {
        metadata: ObjectMeta {
            name: Some(format!("{}.{}", p.name_any(), unique("ev"))),
            namespace: Some(ns.clone()),
            ..ObjectMeta::default()
        },
        event_time: Some(MicroTime(at)),
        action: Some(action.into()),
        reason: Some(reason.into()),
        note: Some(note.into()),
        type_: Some("Normal".into()),
        reporting_controller: Some("impressions-operator".into()),
        reporting_instance: Some("tests".into()),
        regarding: Some(ObjectReference {
            api_version: Some("impressions.dev/v1alpha1".into()),
            kind: Some("ImpressionPipeline".into()),
            name: Some(p.name_any()),
            namespace: Some(ns.clone()),
            uid: p.metadata.uid.clone(),
            ..ObjectReference::default()
        }),
        ..Event::default()
    };
    Api::<Event>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &e)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn why_lists_the_decisions_newest_first_with_their_numbers() {
    let (client, ns) = setup("plugin-why").await;
    let p = create(&client, &ns, "eu").await;
    write_status(&client, &ns, "eu").await;
    record(
        &client,
        &p,
        "Scale",
        "ScaleUpForBacklog",
        "1 → 2: arrival 1800/s, backlog 40000 events, capacity 1000/s per replica",
        ago(1500),
    )
    .await;
    record(
        &client,
        &p,
        "Scale",
        "ScaleDownIdle",
        "2 → 1: arrival 300/s, 1 replica at 30 %",
        ago(900),
    )
    .await;
    record(
        &client,
        &p,
        "Reconcile",
        "Degraded",
        "none of 3 workers is ready",
        ago(600),
    )
    .await;
    record(
        &client,
        &p,
        "Scale",
        "ScaleUpForBacklog",
        "1 → 3: arrival 2300/s, backlog 9000 events",
        ago(400),
    )
    .await;
    record(&client, &p, "Scale", "ScaleUpForBacklog", "3 → 4: arrival 2500/s, backlog 12000 events, capacity 1000/s per replica: 4 replicas drain it within 120 s", ago(199)).await;
    // Another pipeline's decision is not this one's.
    let q = create(&client, &ns, "us").await;
    record(
        &client,
        &q,
        "Scale",
        "ScaleUpForLag",
        "1 → 9: elsewhere",
        ago(100),
    )
    .await;

    let out = ok(plugin(&["why", "eu", "-n", &ns]));
    assert!(
        out.starts_with(&format!(
            "ImpressionPipeline {ns}/eu: decisions, newest first\n"
        )),
        "{out}"
    );
    let heads: Vec<&str> = out.lines().filter(|l| l.starts_with("  2")).collect();
    let summary: Vec<(String, String)> = heads
        .iter()
        .map(|l| {
            let after = l.split("ago)  ").nth(1).unwrap();
            let (reason, rest) = after.split_once("  ").unwrap();
            (
                reason.to_owned(),
                rest.split("  [").next().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("ScaleUpForBacklog".to_owned(), "3 → 4".to_owned()),
            ("ScaleUpForBacklog".to_owned(), "1 → 3".to_owned()),
            ("ScaleDownIdle".to_owned(), "2 → 1".to_owned()),
            ("ScaleUpForBacklog".to_owned(), "1 → 2".to_owned()),
        ],
        "{out}"
    );
    assert!(
        heads[0].ends_with("[Event + status]"),
        "the status's decision is its Event's: {out}"
    );
    assert!(
        out.contains("      arrival 300/s, 1 replica at 30 %\n"),
        "{out}"
    );
    assert!(
        out.contains("backlog 12000 events, capacity 1000/s per replica"),
        "{out}"
    );
    assert!(
        !out.contains("Degraded") && !out.contains("elsewhere"),
        "{out}"
    );

    // With Prometheus: the operator's counts (none: no operator serves this pipeline).
    let out = ok(plugin(&[
        "why",
        "eu",
        "-n",
        &ns,
        "--prometheus",
        &Stack::get().prometheus_url,
    ]));
    assert!(
        out.contains("no series of impressions_operator_scaling_decisions_total for this pipeline"),
        "{out}"
    );
    let err = fails(
        plugin(&["why", "eu", "-n", &ns, "--prometheus", "http://127.0.0.1:1"]),
        1,
    );
    assert!(
        err.starts_with("error: Prometheus http://127.0.0.1:1: "),
        "{err}"
    );
}

/// The scrape target of a process in the stack's Prometheus, removed on drop.
struct Target(PathBuf);

impl Target {
    fn write(name: &str, port: u16, labels: Value) -> Target {
        let path = Stack::get().file_sd_dir.join(format!("{name}.json"));
        let sd = json!([{"targets": [format!("127.0.0.1:{port}")], "labels": labels}]);
        std::fs::write(&path, sd.to_string()).unwrap();
        Target(path)
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn why_and_what_if_on_a_pipeline_the_operator_scaled() {
    let stack = Stack::get();
    let (client, ns) = setup("plugin-whatif").await;
    let id = unique("pw");
    for (t, p, compact) in [
        (format!("{id}-raw"), 8, false),
        (format!("{id}-out"), 2, false),
        (format!("{id}-dlq"), 1, false),
        (format!("{id}-titles"), 1, true),
    ] {
        kafka::create_topic(stack, &t, p, compact).await;
    }
    kafka::fill_catalog(stack, &format!("{id}-titles"), 100).await;
    kafka::produce_generated(stack, &format!("{id}-raw"), 1, 30_000, 100, Mix::default()).await;
    let fast = format!("{id}-fast");
    let body = json!({"apiVersion": "impressions.dev/v1alpha1", "kind": "ScalingPolicy", "metadata": {"name": fast},
        "spec": {"minReplicas": 1, "maxReplicas": 8, "lagSloSeconds": 10, "catchUpSeconds": 30, "evaluationIntervalSeconds": 5,
                 "scaleUp": {"stabilizationWindowSeconds": 0, "maxStepPercent": 100, "maxStepReplicas": 4, "cooldownSeconds": 5},
                 "queries": {"rateWindow": "15s"}}});
    let policies = Api::<ScalingPolicy>::all(client.clone());
    policies
        .patch(&fast, &PatchParams::apply("tests"), &Patch::Apply(&body))
        .await
        .unwrap();
    // One worker process of the pipeline's group, capped at 400 events/s, scraped with its
    // pipeline's labels; the operator, scraped too.
    let cfg = format!(
        "pipeline: {{namespace: {ns}, name: auto}}\nsource: {{bootstrapServers: '{b}', topic: {id}-raw, consumerGroup: {ns}.auto, offsetReset: earliest}}\nsink: {{topic: {id}-out, deadLetterTopic: {id}-dlq}}\ncatalog: {{topic: {id}-titles}}\nprocessing: {{threads: 1, maxBatch: 100, maxEventsPerSecond: 400}}\ndrainTimeoutSecs: 10\n",
        b = stack.kafka_bootstrap
    );
    let mut worker = WorkerProcess::start(&format!("{id}-auto"), &cfg);
    worker.wait_ready(Duration::from_secs(30));
    let _worker_target = Target::write(
        &format!("{id}-worker"),
        worker.metrics_port,
        json!({"namespace": ns, "pipeline": "auto"}),
    );
    let op = OperatorProcess::start(
        stack,
        "local",
        &ns,
        &["--prometheus-url", &stack.prometheus_url],
    );
    let _operator_target = Target::write(&format!("{id}-operator"), op.metrics_port, json!({}));
    let spec = json!({"apiVersion": "impressions.dev/v1alpha1", "kind": "ImpressionPipeline", "metadata": {"name": "auto"},
        "spec": {"region": "local",
                 "source": {"bootstrapServers": stack.kafka_bootstrap, "topic": format!("{id}-raw"), "offsetReset": "Earliest"},
                 "sink": {"topic": format!("{id}-out"), "deadLetterTopic": format!("{id}-dlq")},
                 "enrichment": {"catalog": {"topic": format!("{id}-titles")}},
                 "scaling": {"mode": "Auto", "policyRef": fast, "minReplicas": 1, "maxReplicas": 8}}});
    let api: Api<ImpressionPipeline> = Api::namespaced(client.clone(), &ns);
    api.patch("auto", &PatchParams::apply("tests"), &Patch::Apply(&spec))
        .await
        .unwrap();

    let decision = eventually(
        Duration::from_secs(120),
        "a scale-up for the backlog",
        || {
            let api = api.clone();
            async move {
                let s = api.get("auto").await.ok()?.status?;
                let d = s.last_decision?;
                (d.reason.starts_with("ScaleUp") && s.partitions == Some(8)).then_some(d)
            }
        },
    )
    .await;

    // why: the scale-up from its Event (and from the status while it is the last decision),
    // the newest decision from the status, and the scale-up's count in Prometheus.
    let head = format!("  {}  {} → {}", decision.reason, decision.from, decision.to);
    let why = eventually(
        Duration::from_secs(60),
        "the scale-up's Event listed and its count in Prometheus",
        || {
            let (ns, reason, head) = (ns.clone(), decision.reason.clone(), head.clone());
            async move {
                let out = plugin(&[
                    "why",
                    "auto",
                    "-n",
                    &ns,
                    "--prometheus",
                    &stack.prometheus_url,
                ]);
                let out = String::from_utf8(out.stdout).ok()?;
                let counted = out.lines().any(|l| {
                    let cells: Vec<&str> = l.split_whitespace().collect();
                    cells.first() == Some(&reason.as_str())
                        && cells.get(1).and_then(|c| c.parse::<f64>().ok()) >= Some(1.0)
                });
                let listed = out
                    .lines()
                    .any(|l| l.contains(&head) && l.contains("Event"));
                (counted && listed).then_some(out)
            }
        },
    )
    .await;
    println!("{why}");
    let entries: Vec<&str> = why.lines().filter(|l| l.starts_with("  2")).collect();
    assert!(
        entries[0].contains("status"),
        "the newest decision is the status's:\n{why}\n{}",
        op.log_tail()
    );
    assert!(why.contains(&decision.message), "{why}");

    // what-if: the history Prometheus recorded, under the current policy and a capped one.
    let dir = std::env::temp_dir().join("impressions-tests").join(&id);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("capped.yaml");
    std::fs::write(&file, format!("apiVersion: impressions.dev/v1alpha1\nkind: ScalingPolicy\nmetadata: {{name: {id}-capped}}\nspec:\n  maxReplicas: 2\n  targetUtilization: 0.9\n  lagSloSeconds: 10\n  evaluationIntervalSeconds: 5\n  queries: {{rateWindow: 15s}}\n")).unwrap();
    let svg = dir.join("what-if.svg");
    let args = [
        "what-if",
        "auto",
        "-n",
        &ns,
        "--policy",
        file.to_str().unwrap(),
        "--prometheus",
        &stack.prometheus_url,
        "--hours",
        "0.05",
        "--svg",
        svg.to_str().unwrap(),
    ];
    let out = eventually(
        Duration::from_secs(150),
        "what-if with a minute of history",
        || async {
            let o = plugin(&args);
            let out = String::from_utf8(o.stdout).unwrap();
            // A minute of history at least (the worker busy with the backlog), asked every 3 s.
            let seconds: Option<u64> = out
                .split(" of its history (")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .and_then(|n| n.parse().ok());
            if o.status.success() && seconds >= Some(60) {
                return Some(out);
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
            None
        },
    )
    .await;
    println!("{out}");
    assert!(out.starts_with(&format!("what-if {ns}/auto: ")), "{out}");
    for want in [
        "partitions: 8 (the pipeline's status".to_owned(),
        "capacity per replica: ".to_owned(),
        format!("current policy: ScalingPolicy {fast}"),
        format!(
            "proposed policy: ScalingPolicy {id}-capped ({}); bounds 1..2",
            file.display()
        ),
        "REPLICA-HOURS".to_owned(),
        "proposed − current: ".to_owned(),
        format!("plot: {}", svg.display()),
    ] {
        assert!(out.contains(&want), "{want} in\n{out}");
    }
    let row = |role: &str| -> Vec<String> {
        out.lines()
            .find(|l| l.starts_with(&format!("{role} ")))
            .unwrap_or_else(|| panic!("a {role} row in\n{out}"))
            .split("   ")
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty())
            .collect()
    };
    let (current, proposed) = (row("current"), row("proposed"));
    assert_eq!(
        current[1..4],
        [
            format!("ScalingPolicy {fast}"),
            "1..8".into(),
            "10 s".into()
        ],
        "{out}"
    );
    assert_eq!(
        proposed[2..4],
        ["1..2".to_owned(), "10 s".to_owned()],
        "{out}"
    );
    for r in [&current, &proposed] {
        let hours: f64 = r[4].parse().unwrap();
        assert!(hours > 0.0, "{out}");
    }
    let plot = std::fs::read_to_string(&svg).expect("the plot written");
    for want in [
        "what-if",
        "current: ScalingPolicy",
        "proposed: ScalingPolicy",
        "replicas",
        "lag SLO 10 s",
    ] {
        assert!(plot.contains(want), "{want} in the plot");
    }

    // A proposed policy the API server would refuse is refused, with its message.
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "apiVersion: impressions.dev/v1alpha1\nkind: ScalingPolicy\nmetadata: {name: bad}\nspec: {minReplicas: 5, maxReplicas: 2}\n").unwrap();
    let err = fails(
        plugin(&[
            "what-if",
            "auto",
            "-n",
            &ns,
            "--policy",
            bad.to_str().unwrap(),
            "--prometheus",
            &stack.prometheus_url,
        ]),
        2,
    );
    assert!(
        err.contains("the API server rejects it") && err.contains("minReplicas"),
        "{err}"
    );
    assert!(
        policies
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .iter()
            .all(|p| !p.name_any().starts_with("what-if-")),
        "the dry run stored nothing"
    );
    drop(worker);
    policies.delete(&fast, &Default::default()).await.ok();
}

/// The RawEventSchema CRD: crds/yaml/'s when it has one, else the server's, else a minimal one.
async fn raw_event_schema_served(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = "raweventschemas.impressions.dev";
    if cluster::load_crds()
        .unwrap()
        .iter()
        .any(|c| c.name_any() == name)
        || crds.get_opt(name).await.unwrap().is_some()
    {
        return;
    }
    let text =
        std::fs::read_to_string(repo_root().join("tests/manifests/plugin/raweventschema-crd.yaml"))
            .unwrap();
    let crd: CustomResourceDefinition = serde_yaml::from_str(&text).unwrap();
    // The manager install_crds applies with: the real CRD, once there, replaces this one whole.
    crds.patch(
        name,
        &PatchParams::apply(cluster::MANAGER).force(),
        &Patch::Apply(&crd),
    )
    .await
    .unwrap();
    tokio::time::timeout(
        Duration::from_secs(30),
        kube::runtime::wait::await_condition(
            crds,
            name,
            kube::runtime::conditions::is_crd_established(),
        ),
    )
    .await
    .expect("the RawEventSchema CRD Established within 30 s")
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn schema_accept_sets_the_annotation_on_the_raw_event_schema() {
    let (client, ns) = setup("plugin-schema").await;
    raw_event_schema_served(&client).await;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &schema_resource());
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "impressions.dev/v1alpha1", "kind": "RawEventSchema",
        "metadata": {"name": "eu", "namespace": ns}, "spec": {}
    }))
    .unwrap();
    // Wait for discovery to serve the kind (a just-installed CRD takes a moment).
    let created = eventually(Duration::from_secs(30), "a RawEventSchema created", || {
        let (api, obj) = (api.clone(), obj.clone());
        async move { api.create(&PostParams::default(), &obj).await.ok() }
    })
    .await;
    assert!(
        created
            .annotations()
            .get("impressions.dev/schema-accept")
            .is_none()
    );

    let before = Timestamp::now().as_second();
    let out = ok(plugin(&["schema", "accept", "eu", "-n", &ns]));
    assert!(
        out.starts_with(&format!(
            "rawschema {ns}/eu: impressions.dev/schema-accept="
        )),
        "{out}"
    );
    let got = api.get("eu").await.unwrap();
    let value = got
        .annotations()
        .get("impressions.dev/schema-accept")
        .expect("the annotation set")
        .clone();
    let at: Timestamp = value
        .parse()
        .unwrap_or_else(|e| panic!("{value} is not RFC 3339: {e}"));
    assert!(
        (before - 1..=Timestamp::now().as_second() + 1).contains(&at.as_second()),
        "{value}"
    );
    assert!(out.contains(&value), "{out}");

    let err = fails(plugin(&["schema", "accept", "missing", "-n", &ns]), 1);
    assert!(
        err.contains(&format!(
            "RawEventSchema missing not found in namespace {ns}"
        )),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn prescale_writes_a_planned_surge_and_keeps_the_others() {
    let (client, ns) = setup("plugin-prescale").await;
    create(&client, &ns, "eu").await;
    let api = Api::<ImpressionPipeline>::namespaced(client.clone(), &ns);
    let start = Timestamp::from_second(Timestamp::now().as_second() + 3600).unwrap();
    let out = ok(plugin(&[
        "prescale",
        "eu",
        "--factor",
        "2.5",
        "--from",
        &start.to_string(),
        "--for",
        "2h",
        "-n",
        &ns,
    ]));
    assert!(
        out.starts_with(&format!(
            "impressionpipeline {ns}/eu: planned surge ×2.5 from {start} to "
        )) && out.contains("(1 planned)"),
        "{out}"
    );
    let surges = api.get("eu").await.unwrap().spec.scaling.planned_surges;
    assert_eq!(surges.len(), 1);
    assert_eq!((surges[0].start.0, surges[0].factor), (start, 2.5));
    assert_eq!(surges[0].end.0.as_second() - start.as_second(), 7200);
    // A second one (a duration from now) is added next to it.
    let out = ok(plugin(&[
        "prescale", "eu", "--factor", "4", "--from", "10m", "--for", "30m", "-n", &ns,
    ]));
    assert!(out.contains("(2 planned)"), "{out}");
    let surges = api.get("eu").await.unwrap().spec.scaling.planned_surges;
    assert_eq!(surges.len(), 2);
    assert_eq!(surges[1].factor, 4.0);
    // Errors: a factor the CRD would refuse, before any call; a missing pipeline.
    let err = fails(
        plugin(&[
            "prescale", "eu", "--factor", "1", "--from", "now", "--for", "1h", "-n", &ns,
        ]),
        2,
    );
    assert!(err.contains("--factor 1: must be above 1"), "{err}");
    let err = fails(
        plugin(&[
            "prescale", "missing", "--factor", "2", "--from", "now", "--for", "1h", "-n", &ns,
        ]),
        1,
    );
    assert!(
        err.contains(&format!(
            "ImpressionPipeline missing not found in namespace {ns}"
        )),
        "{err}"
    );
}

/// The operator writes a pipeline's status often, and each write moves its resourceVersion: a
/// surge added at the resourceVersion read is retried from a fresh read on a conflict, and every
/// surge added lands.
#[tokio::test(flavor = "multi_thread")]
async fn prescale_retries_when_the_status_moves_under_it() {
    let (client, ns) = setup("plugin-prescale-busy").await;
    create(&client, &ns, "eu").await;
    let api = Api::<ImpressionPipeline>::namespaced(client.clone(), &ns);
    // A status writer a hundred times as busy as an operator (one write per evaluation).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (api, stop) = (api.clone(), stop.clone());
        tokio::spawn(async move {
            let mut writes = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let status = serde_json::json!({"status": {"replicas": writes % 7}});
                if api
                    .patch_status(
                        "eu",
                        &kube::api::PatchParams::default(),
                        &kube::api::Patch::Merge(&status),
                    )
                    .await
                    .is_ok()
                {
                    writes += 1;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            writes
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for (i, factor) in ["2", "3", "5", "6"].iter().enumerate() {
        let from = format!("{}m", 10 + i);
        let args: Vec<String> = [
            "prescale", "eu", "--factor", factor, "--from", &from, "--for", "30m", "-n", &ns,
        ]
        .map(str::to_owned)
        .into();
        let out = tokio::task::spawn_blocking(move || {
            ok(plugin(&args.iter().map(String::as_str).collect::<Vec<_>>()))
        })
        .await
        .unwrap();
        assert!(out.contains(&format!("({} planned)", i + 1)), "{out}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = writer.await.unwrap();
    assert!(writes >= 20, "the status writer wrote only {writes} times");
    let surges = api.get("eu").await.unwrap().spec.scaling.planned_surges;
    let factors: Vec<f64> = surges.iter().map(|s| s.factor).collect();
    assert_eq!(factors, [2.0, 3.0, 5.0, 6.0]);
}

#[test]
fn version_names_the_plugin_and_its_version() {
    let out = Command::new(binary("kubectl-impressions"))
        .arg("version")
        .output()
        .unwrap();
    assert_eq!(
        ok(out),
        format!("kubectl-impressions {}\n", env!("CARGO_PKG_VERSION"))
    );
}

/// A kubeconfig of the stack's cluster with a token of ServiceAccount `sa` of `ns` as its user.
fn service_account_kubeconfig(ns: &str, sa: &str) -> PathBuf {
    let stack = Stack::get();
    let out = stack
        .kubectl()
        .args(["create", "token", sa, "-n", ns, "--duration", "600s"])
        .output()
        .unwrap();
    let token = ok(out).trim().to_owned();
    let admin: Value =
        serde_yaml::from_str(&std::fs::read_to_string(&stack.kubeconfig).unwrap()).unwrap();
    let cluster = admin["clusters"][0]["name"].as_str().unwrap();
    let kc = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": sa, "user": {"token": token}}],
        "contexts": [{"name": sa, "context": {"cluster": cluster, "user": sa, "namespace": ns}}],
        "current-context": sa,
    });
    let dir = std::env::temp_dir().join("impressions-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{}.kubeconfig", unique(sa)));
    std::fs::write(&path, serde_yaml::to_string(&kc).unwrap()).unwrap();
    path
}

/// Applies a manifest as the admin (any kind the API server serves).
async fn apply(client: &Client, ns: &str, manifest: Value) {
    let obj: DynamicObject = serde_json::from_value(manifest).unwrap();
    let (ar, namespaced) = cluster::resolve(client, &obj).await.unwrap();
    let api: Api<DynamicObject> = if namespaced {
        Api::namespaced_with(client.clone(), ns, &ar)
    } else {
        Api::all_with(client.clone(), &ar)
    };
    api.patch(
        &obj.name_any(),
        &PatchParams::apply("tests").force(),
        &Patch::Apply(&obj),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_documented_permissions_are_enough_for_each_subcommand() {
    let (client, ns) = setup("plugin-rbac").await;
    raw_event_schema_served(&client).await;
    let p = create(&client, &ns, "eu").await;
    write_status(&client, &ns, "eu").await;
    record(
        &client,
        &p,
        "Scale",
        "ScaleUpForBacklog",
        "3 → 4: backlog 12000 events",
        ago(199),
    )
    .await;
    eventually(Duration::from_secs(30), "a RawEventSchema created", || {
        let client = client.clone();
        let ns = ns.clone();
        async move {
            let api: Api<DynamicObject> = Api::namespaced_with(client, &ns, &schema_resource());
            let obj: DynamicObject = serde_json::from_value(json!({
                "apiVersion": "impressions.dev/v1alpha1", "kind": "RawEventSchema",
                "metadata": {"name": "eu", "namespace": ns}, "spec": {}
            }))
            .unwrap();
            api.create(&PostParams::default(), &obj).await.ok()
        }
    })
    .await;
    // The table of docs/kubectl-plugin.md, "Permissions" (no create of ScalingPolicies).
    let reader = format!("{ns}-plugin-user");
    apply(&client, &ns, json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "plugin-user", "namespace": ns}})).await;
    apply(&client, &ns, json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "plugin-user", "namespace": ns},
        "rules": [
            {"apiGroups": ["impressions.dev"], "resources": ["impressionpipelines"], "verbs": ["get", "list", "patch"]},
            {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["list"]},
            {"apiGroups": ["impressions.dev"], "resources": ["raweventschemas"], "verbs": ["patch"]}]})).await;
    apply(
        &client,
        &ns,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "plugin-user", "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "plugin-user"},
        "subjects": [{"kind": "ServiceAccount", "name": "plugin-user", "namespace": ns}]}),
    )
    .await;
    apply(&client, &ns, json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": reader},
        "rules": [{"apiGroups": ["impressions.dev"], "resources": ["scalingpolicies"], "verbs": ["list"]}]})).await;
    apply(
        &client,
        &ns,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": reader},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": reader},
        "subjects": [{"kind": "ServiceAccount", "name": "plugin-user", "namespace": ns}]}),
    )
    .await;
    let kc = service_account_kubeconfig(&ns, "plugin-user");
    let as_user = |args: &[&str]| plugin_with(&[("KUBECONFIG", kc.to_str().unwrap())], args);

    // The namespace comes from the user's context.
    let table = eventually(Duration::from_secs(10), "the Role bound", || async {
        let o = as_user(&["status"]);
        o.status
            .success()
            .then(|| String::from_utf8(o.stdout).unwrap())
    })
    .await;
    assert!(table.lines().nth(1).unwrap().starts_with("eu "), "{table}");
    let why = ok(as_user(&["why", "eu"]));
    assert!(
        why.contains("ScaleUpForBacklog  3 → 4  [Event + status]"),
        "{why}"
    );
    let accepted = ok(as_user(&["schema", "accept", "eu"]));
    assert!(
        accepted.starts_with(&format!("rawschema {ns}/eu: ")),
        "{accepted}"
    );
    let planned = ok(as_user(&[
        "prescale", "eu", "--factor", "2", "--from", "1h", "--for", "1h",
    ]));
    assert!(
        planned.starts_with(&format!(
            "impressionpipeline {ns}/eu: planned surge ×2 from "
        )),
        "{planned}"
    );
    // what-if gets as far as Prometheus (no history of this pipeline there): the pipeline, the
    // policies and the dry run (refused: skipped) were allowed.
    let dir = std::env::temp_dir().join("impressions-tests");
    let file = dir.join(format!("{}.yaml", unique("plugin-rbac-policy")));
    std::fs::write(&file, "apiVersion: impressions.dev/v1alpha1\nkind: ScalingPolicy\nmetadata: {name: p}\nspec: {maxReplicas: 2}\n").unwrap();
    let err = fails(
        as_user(&[
            "what-if",
            "eu",
            "--policy",
            file.to_str().unwrap(),
            "--prometheus",
            &Stack::get().prometheus_url,
            "--hours",
            "0.05",
        ]),
        1,
    );
    assert!(err.contains("no history of"), "{err}");
    // -A needs the cluster-wide list this user lacks: the API server's refusal, readable.
    let err = fails(as_user(&["status", "-A"]), 1);
    assert!(
        err.starts_with("error: listing ImpressionPipelines in all namespaces: ")
            && err.contains("forbidden")
            && err.trim_end().ends_with("(403 Forbidden)"),
        "{err}"
    );
    for kind in ["clusterrolebindings", "clusterroles"] {
        let _ = Stack::get()
            .kubectl()
            .args(["delete", kind, &reader, "--ignore-not-found"])
            .output();
    }
}

fn schema_resource() -> ApiResource {
    ApiResource {
        group: "impressions.dev".into(),
        version: "v1alpha1".into(),
        api_version: "impressions.dev/v1alpha1".into(),
        kind: "RawEventSchema".into(),
        plural: "raweventschemas".into(),
    }
}
