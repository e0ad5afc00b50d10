//! Leader election when the API server hangs for the leader alone (a pausable proxy between
//! them): the leader stops acting within its renew deadline, before the standby may take the
//! Lease, so no two operators act as leader at once; the standby takes over once the lease has
//! not changed for its duration by its own clock.

use std::time::{Duration, Instant};

use impressions_tests::{
    Stack, cluster,
    operator::{OperatorProcess, eventually},
    proxy::Proxy,
    unique,
};
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};

async fn holder(client: &Client, ns: &str, name: &str) -> Option<String> {
    Api::<Lease>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .ok()??
        .spec?
        .holder_identity
        .filter(|h| !h.is_empty())
}

#[tokio::test]
async fn a_leader_cut_off_from_the_api_server_steps_down_before_the_standby_takes_over() {
    let stack = Stack::get();
    let client = stack.client().await;
    cluster::install_crds(&client).await.expect("install CRDs");
    let ns = cluster::namespace(&client, &unique("leader-hung"))
        .await
        .unwrap();
    let proxy = Proxy::start(stack.api_server_address());
    let via_proxy = stack.kubeconfig_with_server(&format!("127.0.0.1:{}", proxy.port));
    let lease = "impressions-operator-hung";
    let flags = |id: &'static str| {
        vec![
            "--leader-election".to_owned(),
            "--lease-namespace".into(),
            ns.clone(),
            "--identity".into(),
            id.into(),
            "--lease-duration-seconds".into(),
            "15".into(),
        ]
    };
    let a_flags = flags("a");
    let mut a = OperatorProcess::start_with_kubeconfig(
        stack,
        &via_proxy,
        "hung",
        &ns,
        &a_flags.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    eventually(Duration::from_secs(30), "a to lead", || {
        let (client, ns) = (client.clone(), ns.clone());
        async move { (holder(&client, &ns, lease).await.as_deref() == Some("a")).then_some(()) }
    })
    .await;
    let b_flags = flags("b");
    let b = OperatorProcess::start(
        stack,
        "hung",
        &ns,
        &b_flags.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        holder(&client, &ns, lease).await.as_deref(),
        Some("a"),
        "a renews"
    );
    let before = proxy.forwarded();
    assert!(before > 0, "a talked to the API server through the proxy");

    // The API server hangs for a alone.
    proxy.pause();
    let t0 = Instant::now();
    let mut a_stopped = None;
    let mut b_took = None;
    while t0.elapsed() < Duration::from_secs(40) && (a_stopped.is_none() || b_took.is_none()) {
        if a_stopped.is_none()
            && let Some(status) = a.child.try_wait().unwrap()
        {
            a_stopped = Some((t0.elapsed(), status));
        }
        if b_took.is_none() && holder(&client, &ns, lease).await.as_deref() == Some("b") {
            b_took = Some(t0.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (a_at, status) = a_stopped.unwrap_or_else(|| {
        panic!(
            "the cut-off leader kept running for 40 s:\n{}",
            a.log_tail()
        )
    });
    let b_at = b_took.unwrap_or_else(|| panic!("the standby never took over:\n{}", b.log_tail()));
    eprintln!(
        "leader stepped down {a_at:.1?} after the API server hung; standby led at {b_at:.1?}"
    );
    assert!(!status.success(), "losing the lease is an error exit");
    let log = std::fs::read_to_string(&a.log).unwrap_or_default();
    assert!(
        log.contains("not renewed within the renew deadline"),
        "the leader says why it stopped:\n{}",
        a.log_tail()
    );
    assert!(
        a_at < b_at,
        "two leaders at once: the standby led at {b_at:?}, the old leader stopped at {a_at:?}"
    );
    assert!(
        a_at <= Duration::from_secs(12),
        "renew deadline 10 s (2/3 of 15): stopped after {a_at:?}"
    );
    assert!(
        b_at <= Duration::from_secs(25),
        "lease 15 s after the standby last saw it change: took over after {b_at:?}"
    );
    proxy.resume();
}
