//! The operator at scale: creates N ImpressionPipelines on the local API server, starts the
//! operator (release build), and reports the time until every pipeline is reconciled (children
//! applied, status written), the operator's peak RSS, and the writes to pipelines and their
//! children during one idle minute.
//!
//! `cargo run --release -p impressions-tests --bin bench_operator -- [N]` with the stack up
//! (`make bench-operator`).

use std::time::{Duration, Instant};

use impressions_crds::ImpressionPipeline;
use impressions_tests::{Stack, cluster, operator::OperatorProcess, unique};
use k8s_openapi::api::{apps::v1::Deployment, core::v1::ConfigMap};
use k8s_openapi::jiff::Timestamp;
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams},
};
use serde_json::json;

fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// The metadata of every object of one kind in `ns`.
async fn metadata<K>(
    client: &kube::Client,
    ns: &str,
) -> Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|o| o.meta().clone())
        .collect()
}

/// Objects in `ns` that the operator's field manager wrote after `since` (managedFields times).
async fn operator_writes_since(
    client: &kube::Client,
    ns: &str,
    since: Timestamp,
) -> (usize, usize) {
    let mut metas = metadata::<ImpressionPipeline>(client, ns).await;
    metas.extend(metadata::<Deployment>(client, ns).await);
    metas.extend(metadata::<ConfigMap>(client, ns).await);
    let written = metas
        .iter()
        .filter(|m| {
            m.managed_fields.iter().flatten().any(|f| {
                f.manager.as_deref() == Some("impressions-operator")
                    && f.time.as_ref().is_some_and(|t| t.0 > since)
            })
        })
        .count();
    (written, metas.len())
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let stack = Stack::get();
    let client = stack.client().await;
    cluster::install_crds(&client).await.unwrap();
    let ns = cluster::namespace(&client, &unique("scale")).await.unwrap();
    let api: Api<ImpressionPipeline> = Api::namespaced(client.clone(), &ns);
    eprintln!("creating {n} pipelines in {ns}…");
    let t0 = Instant::now();
    let pp = PatchParams::apply("bench");
    for chunk in (0..n).collect::<Vec<_>>().chunks(50) {
        let futs = chunk.iter().map(|i| {
            let name = format!("p{i:04}");
            let body = json!({
                "apiVersion": "impressions.dev/v1alpha1", "kind": "ImpressionPipeline", "metadata": {"name": name},
                "spec": {"region": "local", "source": {"bootstrapServers": "127.0.0.1:9092", "topic": format!("raw-{i}")},
                         "sink": {"topic": format!("out-{i}"), "deadLetterTopic": format!("dlq-{i}")},
                         "enrichment": {"catalog": {"topic": "titles"}}, "scaling": {"minReplicas": 1, "maxReplicas": 4}}
            });
            let api = api.clone();
            let pp = pp.clone();
            async move { api.patch(&name, &pp, &Patch::Apply(&body)).await.map(|_| ()) }
        });
        for r in futures::future::join_all(futs).await {
            r.unwrap();
        }
    }
    eprintln!("created in {:?}; starting the operator", t0.elapsed());

    let op = OperatorProcess::start(stack, "local", &ns, &[]);
    let pid = op.child.id();
    let start = Instant::now();
    loop {
        let list = api.list(&ListParams::default()).await.unwrap();
        let done = list
            .items
            .iter()
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.observed_generation)
                    .is_some()
            })
            .count();
        if done == n {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1200),
            "only {done}/{n} reconciled after 20 min:\n{}",
            op.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let all_reconciled = start.elapsed().as_secs_f64();
    eprintln!("all {n} reconciled in {all_reconciled:.1}s; waiting for the Deployments to settle");
    // The controller-manager creates 1000 ReplicaSets and pods meanwhile; each Deployment status
    // change is a real change the pipeline status follows. Idle starts once they settled.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    loop {
        let list = deployments.list(&ListParams::default()).await.unwrap();
        let settled = list
            .items
            .iter()
            .filter(|d| {
                d.status.as_ref().and_then(|s| s.replicas)
                    == d.spec.as_ref().and_then(|s| s.replicas)
            })
            .count();
        if settled == n {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1800),
            "deployments not settled: {settled}/{n}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    tokio::time::sleep(Duration::from_secs(15)).await;
    let since = Timestamp::now();
    eprintln!("settled; idling 60 s");
    tokio::time::sleep(Duration::from_secs(60)).await;
    let (writes, watched) = operator_writes_since(&client, &ns, since).await;
    let rss = peak_rss_mb(pid);
    println!(
        "{}",
        json!({"pipelines": n, "seconds_to_reconcile_all": all_reconciled, "pipelines_per_second": n as f64 / all_reconciled,
               "peak_rss_mb": rss, "objects_written_in_idle_minute": writes, "objects_checked": watched})
    );
}
