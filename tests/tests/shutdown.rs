//! Every long-running binary stops within a few seconds of SIGTERM, whatever it is waiting on:
//! the operator while starting against a hung API server, while waiting for or holding the
//! Lease, and while its Kafka and Prometheus hang; the worker while its broker hangs and while
//! running; the node agent; loadgen while its broker hangs and while producing. Hung
//! dependencies are black holes (listeners that accept and never answer); each test checks that
//! the binary did reach its black hole, so a hang that was never met fails the test.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use impressions_tests::{
    Stack,
    blackhole::BlackHole,
    cluster,
    operator::{OperatorProcess, eventually},
    unique,
    worker::{self, WorkerProcess, binary},
};
use k8s_openapi::api::{apps::v1::Deployment, coordination::v1::Lease, core::v1::Node};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;

/// Sends SIGTERM to `child` and waits at most `bound` for it to exit; returns how long it took
/// and whether it exited 0. Panics (after SIGKILL) when it did not exit, with `log`'s tail.
fn sigterm(child: &mut Child, bound: Duration, what: &str, log: &Path) -> (Duration, bool) {
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "{what} had already exited before SIGTERM:\n{}",
        impressions_tests::log_tail(log, 30)
    );
    let t0 = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "SIGTERM to {what} found no process");
    while t0.elapsed() < bound {
        if let Some(s) = child.try_wait().expect("try_wait") {
            let took = t0.elapsed();
            eprintln!("{what}: exited {s} {took:.2?} after SIGTERM");
            return (took, s.success());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!(
        "{what} did not exit within {bound:?} of SIGTERM:\n{}",
        impressions_tests::log_tail(log, 30)
    );
}

fn log_file(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join("impressions-tests");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("{}.log", unique(name)))
}

/// A kubeconfig like the stack's whose server is `address` (a black hole).
fn kubeconfig_to(address: &str) -> PathBuf {
    Stack::get().kubeconfig_with_server(address)
}

async fn setup(prefix: &str) -> (Client, String) {
    let client = Stack::get().client().await;
    cluster::install_crds(&client).await.expect("install CRDs");
    let ns = cluster::namespace(&client, &unique(prefix)).await.unwrap();
    (client, ns)
}

async fn holder(client: &Client, ns: &str, name: &str) -> Option<String> {
    Api::<Lease>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .unwrap()?
        .spec?
        .holder_identity
        .filter(|h| !h.is_empty())
}

const BOUND: Duration = Duration::from_secs(5);
/// While leading, in-flight reconciles get a grace period and the Lease is released.
const LEADER_BOUND: Duration = Duration::from_secs(10);

#[test]
fn the_operator_stops_while_the_api_server_hangs_at_start() {
    let hole = BlackHole::start();
    let log = log_file("operator-api-hung");
    let mut child = Command::new(binary("operator"))
        .args(["run", "--region", "r", "--metrics-listen", "127.0.0.1:0"])
        .env("KUBECONFIG", kubeconfig_to(&hole.address()))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    hole.wait_accepted(1, Duration::from_secs(20), "the operator");
    std::thread::sleep(Duration::from_millis(500));
    let (took, ok) = sigterm(&mut child, BOUND, "operator (API server hung)", &log);
    assert!(ok, "a stop is not an error");
    assert!(took < BOUND);
}

#[tokio::test]
async fn the_operator_stops_while_waiting_for_the_lease_and_leaves_it_alone() {
    let (client, ns) = setup("stop-lease-wait").await;
    let lease_name = "impressions-operator-stopwait";
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": lease_name},
        "spec": {"holderIdentity": "someone-else", "leaseDurationSeconds": 3600,
                 "renewTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)}
    }))
    .unwrap();
    Api::<Lease>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &lease)
        .await
        .unwrap();
    let mut op = OperatorProcess::start(
        Stack::get(),
        "stopwait",
        &ns,
        &[
            "--leader-election",
            "--lease-namespace",
            &ns,
            "--identity",
            "me",
        ],
    );
    // Running, connected (it serves /metrics once the API server answered), not leading.
    eventually(
        Duration::from_secs(30),
        "the operator to serve /metrics",
        || {
            let up = op.metrics().contains("impressions_operator");
            async move { up.then_some(()) }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        holder(&client, &ns, lease_name).await.as_deref(),
        Some("someone-else")
    );
    let log = op.log.clone();
    let (took, ok) = sigterm(
        &mut op.child,
        BOUND,
        "operator (waiting for the Lease)",
        &log,
    );
    assert!(ok && took < BOUND);
    assert_eq!(
        holder(&client, &ns, lease_name).await.as_deref(),
        Some("someone-else"),
        "a standby that stops must not touch the holder's Lease"
    );
}

#[tokio::test]
async fn the_operator_stops_holding_the_lease_before_its_first_reconcile_and_releases_it() {
    let (client, ns) = setup("stop-lease-held").await;
    let mut op = OperatorProcess::start(
        Stack::get(),
        "stopheld",
        &ns,
        &[
            "--leader-election",
            "--lease-namespace",
            &ns,
            "--identity",
            "leader-1",
        ],
    );
    let lease_name = "impressions-operator-stopheld";
    eventually(
        Duration::from_secs(30),
        "the operator to take the Lease",
        || {
            let (client, ns) = (client.clone(), ns.clone());
            async move {
                (holder(&client, &ns, lease_name).await.as_deref() == Some("leader-1"))
                    .then_some(())
            }
        },
    )
    .await;
    let log = op.log.clone();
    let (took, ok) = sigterm(&mut op.child, LEADER_BOUND, "operator (leading)", &log);
    assert!(ok && took < LEADER_BOUND);
    assert_eq!(
        holder(&client, &ns, lease_name).await,
        None,
        "the Lease is released on a clean stop"
    );
}

#[tokio::test]
async fn the_operator_stops_while_kafka_and_prometheus_hang() {
    let (client, ns) = setup("stop-hung-deps").await;
    let (kafka, prometheus) = (BlackHole::start(), BlackHole::start());
    let pipelines: Api<impressions_crds::ImpressionPipeline> = Api::namespaced(client.clone(), &ns);
    let body = json!({
        "apiVersion": "impressions.dev/v1alpha1", "kind": "ImpressionPipeline",
        "metadata": {"name": "hung"},
        "spec": {
            "region": "stophung",
            "source": {"bootstrapServers": kafka.address(), "topic": "raw"},
            "sink": {"topic": "out", "deadLetterTopic": "dlq"},
            "enrichment": {"catalog": {"topic": "titles"}},
            "scaling": {"mode": "Auto", "minReplicas": 1, "maxReplicas": 4}
        }
    });
    pipelines
        .patch(
            "hung",
            &PatchParams::apply("tests").force(),
            &Patch::Apply(&body),
        )
        .await
        .unwrap();
    let prometheus_url = format!("http://{}", prometheus.address());
    let mut op = OperatorProcess::start(
        Stack::get(),
        "stophung",
        &ns,
        &["--prometheus-url", &prometheus_url],
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    eventually(Duration::from_secs(30), "the worker Deployment", || {
        let d = deployments.clone();
        async move { d.get_opt("hung-worker").await.ok().flatten().map(|_| ()) }
    })
    .await;
    // The evaluation loop is now inside calls that never return.
    kafka.wait_accepted(1, Duration::from_secs(30), "the operator's lag client");
    prometheus.wait_accepted(
        1,
        Duration::from_secs(30),
        "the operator's Prometheus client",
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let log = op.log.clone();
    let (took, ok) = sigterm(
        &mut op.child,
        LEADER_BOUND,
        "operator (Kafka and Prometheus hung)",
        &log,
    );
    assert!(ok && took < LEADER_BOUND);
}

#[test]
fn the_worker_stops_while_its_broker_hangs() {
    let kafka = BlackHole::start();
    let config = format!(
        "pipeline: {{namespace: t, name: stop}}\n\
         source: {{bootstrapServers: \"{a}\", topic: raw, consumerGroup: g}}\n\
         sink: {{topic: out, deadLetterTopic: dlq}}\n\
         catalog: {{topic: titles}}\n",
        a = kafka.address()
    );
    let mut w = WorkerProcess::start(&unique("worker-stop-hung"), &config);
    kafka.wait_accepted(1, Duration::from_secs(20), "the worker");
    std::thread::sleep(Duration::from_millis(500));
    let log = w.log.clone();
    let (took, _) = sigterm(&mut w.child, BOUND, "worker (broker hung)", &log);
    assert!(took < BOUND);
}

#[tokio::test]
async fn the_worker_stops_while_consuming() {
    let stack = Stack::get();
    let t = worker::topics(stack, "stop-running", 4, 100).await;
    let mut w = WorkerProcess::start(&unique("worker-stop"), &worker::config(stack, &t, ""));
    w.wait_ready(Duration::from_secs(60));
    impressions_tests::kafka::produce_generated(
        stack,
        &t.raw,
        7,
        2_000,
        100,
        impressions_worker::loadgen::Mix::default(),
    )
    .await;
    let log = w.log.clone();
    let (took, ok) = sigterm(&mut w.child, BOUND, "worker (consuming)", &log);
    assert!(ok, "a drained stop exits 0:\n{}", w.log_tail());
    assert!(took < BOUND);
}

#[tokio::test]
async fn the_node_agent_stops_and_deregisters_its_node() {
    let stack = Stack::get();
    let (client, ns) = setup("stop-agent").await;
    let node = unique("stop-node");
    let state = std::env::temp_dir().join("impressions-tests").join(&node);
    std::fs::create_dir_all(&state).unwrap();
    let log = log_file("node-agent-stop");
    let mut child = Command::new(binary("node_agent"))
        .args(["--node", &node, "--namespace", &ns, "--bin-dir"])
        .arg(binary("worker").parent().unwrap())
        .arg("--state-dir")
        .arg(&state)
        .env("KUBECONFIG", &stack.kubeconfig)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let nodes: Api<Node> = Api::all(client.clone());
    eventually(Duration::from_secs(30), "the Node to be registered", || {
        let (nodes, node) = (nodes.clone(), node.clone());
        async move { nodes.get_opt(&node).await.ok().flatten().map(|_| ()) }
    })
    .await;
    let (took, ok) = sigterm(&mut child, BOUND, "node agent", &log);
    assert!(ok && took < BOUND);
    assert!(
        nodes.get_opt(&node).await.unwrap().is_none(),
        "the Node is deleted on a clean stop"
    );
}

#[test]
fn the_node_agent_stops_while_the_api_server_hangs() {
    let hole = BlackHole::start();
    let state = std::env::temp_dir()
        .join("impressions-tests")
        .join(unique("agent-hung"));
    std::fs::create_dir_all(&state).unwrap();
    let log = log_file("node-agent-hung");
    let mut child = Command::new(binary("node_agent"))
        .args(["--node", "hung", "--bin-dir"])
        .arg(binary("worker").parent().unwrap())
        .arg("--state-dir")
        .arg(&state)
        .env("KUBECONFIG", kubeconfig_to(&hole.address()))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    hole.wait_accepted(1, Duration::from_secs(20), "the node agent");
    std::thread::sleep(Duration::from_millis(500));
    let (took, ok) = sigterm(&mut child, BOUND, "node agent (API server hung)", &log);
    assert!(ok && took < BOUND);
}

fn loadgen(bootstrap: &str, topic: &str, report: &Path, log: &Path) -> Child {
    Command::new(binary("loadgen"))
        .args(["produce", "--bootstrap", bootstrap, "--topic", topic])
        .args(["--trace", "constant:2000", "--duration", "600", "--report"])
        .arg(report)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

fn report(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("loadgen wrote its report")).unwrap()
}

#[test]
fn loadgen_stops_while_its_broker_hangs_and_reports_what_was_not_acknowledged() {
    let kafka = BlackHole::start();
    let (log, out) = (log_file("loadgen-hung"), log_file("loadgen-hung-report"));
    let mut child = loadgen(&kafka.address(), "raw", &out, &log);
    kafka.wait_accepted(1, Duration::from_secs(20), "loadgen");
    std::thread::sleep(Duration::from_secs(1));
    let (took, _) = sigterm(&mut child, BOUND, "loadgen (broker hung)", &log);
    assert!(took < BOUND);
    let r = report(&out);
    assert_eq!(r["stopped"], true);
    assert!(r["unacknowledged"].as_u64().unwrap() > 0, "{r}");
}

#[tokio::test]
async fn loadgen_stops_while_producing_and_flushes() {
    let stack = Stack::get();
    let topic = unique("stop-loadgen");
    impressions_tests::kafka::create_topic(stack, &topic, 2, false).await;
    let (log, out) = (log_file("loadgen-stop"), log_file("loadgen-stop-report"));
    let mut child = loadgen(&stack.kafka_bootstrap, &topic, &out, &log);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (took, ok) = sigterm(&mut child, BOUND, "loadgen (producing)", &log);
    assert!(ok && took < BOUND);
    let r = report(&out);
    assert_eq!(r["stopped"], true);
    assert!(r["acknowledged"].as_u64().unwrap() > 1000, "{r}");
    assert_eq!(r["unacknowledged"], 0, "{r}");
    assert_eq!(r["failed"], 0, "{r}");
}
