//! The faults, one function each: inject, wait for the effect, restore, bound the recovery.

use super::*;

pub(super) async fn worker_kill(run: &mut Run<'_>) -> Phase {
    eprintln!("== kill -9 of a worker under steady load");
    let mut ph = Phase::new("worker kill -9, steady 1,000/s", run.now());
    ph.recover_bound = Some(RECOVER_KILL);
    run.loads(&mut ph, STEADY, 60.0);
    run.until(ph.start + 20.0).await;
    let pids = run.pids(A);
    ph.from = run.now();
    ph.to = ph.from;
    match pids.first() {
        None => ph.fail("no worker process of chaos found: the kill did not happen".into()),
        Some(p) => match kill9(*p) {
            Ok(()) => {
                ph.killed = 1;
                ph.notes
                    .push(format!("killed 1 of {} workers (pid {p})", pids.len()));
            }
            Err(e) => ph.fail(format!("the kill did not happen: {e}")),
        },
    }
    run.finish(&mut ph).await;
    ph
}

pub(super) async fn worker_kill_scaling(run: &mut Run<'_>) -> Phase {
    eprintln!("== kill -9 of two workers during a scale-up");
    let mut ph = Phase::new("worker kill -9 during a scale-up (2,500/s)", run.now());
    ph.recover_bound = Some(RECOVER_SCALING);
    // Room to grow: at most 4 of 8 replicas; if more, half the steady load until the fleet
    // comes down (at least 10 s of it, so that loadgen is running when it is stopped).
    run.load(&mut ph, B, SIDE_RATE, 3600.0);
    let room = |run: &Run<'_>| {
        run.pipes[A]
            .last()
            .filter(|s| s.replicas <= 4 && s.deployment)
            .map(|s| s.replicas)
    };
    let mut base = room(run);
    if base.is_none() {
        run.load(&mut ph, A, STEADY / 2.0, 180.0);
        let start = run.now();
        run.sleep(10.0).await;
        while base.is_none() && run.now() < start + 180.0 {
            base = room(run);
            run.sleep(1.0).await;
        }
        if let Some(low) = ph.runs.iter_mut().find(|r| r.pipe == A)
            && !matches!(low.run.stop(), Ok(s) if s.success())
        {
            ph.failures
                .push("loadgen at half the steady load did not stop cleanly".into());
        }
    }
    let base = match base {
        Some(b) => b,
        None => {
            ph.fail("the fleet did not come down to 4 replicas at 500/s within 180 s: no room for a scale-up".into());
            run.pipes[A].last().map_or(8, |s| s.replicas)
        }
    };
    run.load(&mut ph, A, 2.5 * STEADY, 75.0);
    let step = run.now();
    let mut grew = false;
    while run.now() < step + 60.0 {
        run.sleep(1.0).await;
        // A scale-up: the replicas rise between two samples since the step.
        if run.pipes[A].sampler.as_ref().is_some_and(|s| {
            s.since(step - 3.0)
                .windows(2)
                .any(|w| w[0].deployment && w[1].replicas > w[0].replicas)
        }) {
            grew = true;
            break;
        }
    }
    ph.from = run.now();
    ph.to = ph.from;
    if !grew {
        ph.fail(format!(
            "no scale-up from {base} replicas within 60 s of the step to 2,500/s: the kill during a scale-up did not happen"
        ));
    } else {
        let mut pids = run.pids(A);
        let wait = run.now() + 15.0;
        while pids.len() < 2 && run.now() < wait {
            run.sleep(0.5).await;
            pids = run.pids(A);
        }
        ph.from = run.now();
        ph.to = ph.from;
        let mut killed = Vec::new();
        for p in pids.iter().take(2) {
            match kill9(*p) {
                Ok(()) => killed.push(*p),
                Err(e) => ph.fail(format!("the kill did not happen: {e}")),
            }
        }
        if killed.len() < 2 {
            ph.fail(format!(
                "killed {} of the 2 workers planned ({} running)",
                killed.len(),
                pids.len()
            ));
        }
        ph.killed = killed.len();
        let now = run.pipes[A].last().map_or(0, |s| s.replicas);
        ph.notes.push(format!(
            "killed {} of {} running workers as the fleet grew {base} → {now}",
            killed.len(),
            pids.len()
        ));
    }
    run.finish(&mut ph).await;
    ph
}

pub(super) async fn broker_kill(run: &mut Run<'_>) -> Phase {
    eprintln!("== Kafka broker kill -9 and restart");
    let mut ph = Phase::new("broker kill -9 + restart", run.now());
    ph.recover_bound = Some(RECOVER_BROKER);
    ph.broker = true;
    run.loads(&mut ph, STEADY, 60.0);
    run.until(ph.start + 15.0).await;
    ph.from = run.now();
    if let Err(e) = stack_cmd(&["stop", "kafka", "--kill"]) {
        ph.fail(e);
    }
    if answers(&run.stack.kafka_bootstrap, &api_versions_request()).is_ok() {
        ph.fail("the broker still accepts connections after kill -9".into());
    }
    run.sleep(10.0).await;
    if let Err(e) = stack_cmd(&["start", "kafka"]) {
        ph.fail(e);
    }
    ph.to = run.now();
    ph.notes.push(format!(
        "broker down {:.0} s (10 s, then its start)",
        ph.to - ph.from
    ));
    run.blind.push(Interval {
        from: ph.from,
        to: ph.to,
        what: "the broker kill".into(),
    });
    run.finish(&mut ph).await;
    ph
}

pub(super) async fn broker_hang(run: &mut Run<'_>) -> Phase {
    eprintln!("== Kafka broker hung (SIGSTOP) for 30 s");
    let mut ph = Phase::new("broker hung (SIGSTOP) 30 s", run.now());
    ph.recover_bound = Some(RECOVER_BROKER);
    ph.broker = true;
    ph.on_time = Some(ON_TIME_BROKER_HUNG);
    ph.evaluated = vec![A, B];
    run.loads(&mut ph, STEADY, 75.0);
    run.until(ph.start + 15.0).await;
    let addr = run.stack.kafka_bootstrap.clone();
    if !matches!(answers(&addr, &api_versions_request()), Ok(true)) {
        ph.fail("the broker does not answer before its hang: the probe is wrong".into());
    }
    ph.from = run.now();
    if let Err(e) = stack_cmd(&["stop", "kafka", "--hang"]) {
        ph.fail(e);
    }
    if let Err(e) = hang_met(&addr, &api_versions_request()) {
        ph.fail(format!("the hang did not happen: {e}"));
    }
    run.until(ph.from + 30.0).await;
    if let Err(e) = stack_cmd(&["start", "kafka", "--hang"]) {
        ph.fail(e);
    }
    ph.to = run.now();
    run.blind.push(Interval {
        from: ph.from,
        to: ph.to,
        what: "the broker hang".into(),
    });
    run.finish(&mut ph).await;
    ph
}

pub(super) async fn prometheus_down(run: &mut Run<'_>) -> Phase {
    eprintln!("== Prometheus down for 2 minutes");
    let mut ph = Phase::new("Prometheus down 2 min", run.now());
    ph.recover_bound = Some(RECOVER_UNTOUCHED);
    run.loads(&mut ph, STEADY, 150.0);
    run.until(ph.start + 10.0).await;
    ph.from = run.now();
    if let Err(e) = stack_cmd(&["stop", "prometheus"]) {
        ph.fail(e);
    }
    run.sleep(120.0).await;
    if let Err(e) = stack_cmd(&["start", "prometheus"]) {
        ph.fail(e);
    }
    ph.to = run.now();
    run.blind.push(Interval {
        from: ph.from,
        to: ph.to,
        what: "Prometheus down".into(),
    });
    run.finish(&mut ph).await;
    ph
}

pub(super) async fn prometheus_hang(run: &mut Run<'_>) -> Phase {
    eprintln!("== Prometheus hung (SIGSTOP) for 2 minutes");
    let mut ph = Phase::new("Prometheus hung (SIGSTOP) 2 min", run.now());
    ph.recover_bound = Some(RECOVER_UNTOUCHED);
    ph.on_time = Some(ON_TIME_PROMETHEUS_HUNG);
    ph.evaluated = vec![A, B];
    run.loads(&mut ph, STEADY, 150.0);
    run.until(ph.start + 10.0).await;
    let addr = host_port(&run.stack.prometheus_url);
    if !matches!(answers(&addr, HTTP_READY), Ok(true)) {
        ph.fail("Prometheus does not answer before its hang: the probe is wrong".into());
    }
    ph.from = run.now();
    if let Err(e) = stack_cmd(&["stop", "prometheus", "--hang"]) {
        ph.fail(e);
    }
    if let Err(e) = hang_met(&addr, HTTP_READY) {
        ph.fail(format!("the hang did not happen: {e}"));
    }
    run.until(ph.from + 120.0).await;
    if let Err(e) = stack_cmd(&["start", "prometheus", "--hang"]) {
        ph.fail(e);
    }
    ph.to = run.now();
    run.blind.push(Interval {
        from: ph.from,
        to: ph.to,
        what: "the Prometheus hang".into(),
    });
    run.finish(&mut ph).await;
    ph
}

pub(super) async fn apiserver_restart(run: &mut Run<'_>) -> Phase {
    eprintln!("== API server restart");
    let mut ph = Phase::new("API server restart", run.now());
    ph.recover_bound = Some(RECOVER_UNTOUCHED);
    run.loads(&mut ph, STEADY, 90.0);
    run.until(ph.start + 15.0).await;
    ph.from = run.now();
    if let Err(e) = stack_cmd(&["stop", "kube-apiserver"]) {
        ph.fail(e);
    }
    run.sleep(10.0).await;
    if let Err(e) = stack_cmd(&["start", "kube-apiserver"]) {
        ph.fail(e);
    }
    ph.to = run.now();
    ph.notes
        .push(format!("API server away {:.0} s", ph.to - ph.from));
    run.stalls.push(Interval {
        from: ph.from,
        to: ph.to,
        what: "the API server restart".into(),
    });
    run.finish(&mut ph).await;
    ph
}

pub(super) async fn leader_kill(run: &mut Run<'_>) -> Phase {
    eprintln!("== the operator leader killed");
    let mut ph = Phase::new("operator leader kill -9", run.now());
    ph.recover_bound = Some(RECOVER_UNTOUCHED);
    run.loads(&mut ph, STEADY, 75.0);
    run.until(ph.start + 15.0).await;
    let leader = run.leader().await;
    ph.from = run.now();
    match leader
        .clone()
        .and_then(|id| Some((id.clone(), run.ops.remove(&id)?)))
    {
        None => ph.fail(format!(
            "no leader to kill (the Lease names {leader:?}, operators running: {:?})",
            run.ops.keys().collect::<Vec<_>>()
        )),
        Some((id, mut op)) => {
            op.kill9();
            let t = run.now();
            let mut next = None;
            while run.now() < t + 60.0 {
                run.sleep(0.5).await;
                let now = run.leader().await;
                if now.is_some() && now.as_deref() != Some(id.as_str()) {
                    next = now;
                    break;
                }
            }
            match next {
                Some(n) => ph.notes.push(format!(
                    "{id} killed; {n} leads after {:.1} s",
                    run.now() - t
                )),
                None => ph.fail(format!("{id} killed; no new leader within 60 s")),
            }
            let op = run.start_op(&id);
            run.ops.insert(id, op);
        }
    }
    ph.to = run.now();
    run.stalls.push(Interval {
        from: ph.from,
        to: ph.to,
        what: "the leader's failover".into(),
    });
    run.finish(&mut ph).await;
    ph
}

pub(super) async fn pipeline_delete(run: &mut Run<'_>) -> anyhow::Result<Phase> {
    eprintln!("== a pipeline deleted under load");
    let mut ph = Phase::new("pipeline deleted under load", run.now());
    ph.recover_bound = Some(RECOVER_UNTOUCHED);
    ph.on_time = Some(ON_TIME);
    ph.evaluated = vec![A, B];
    create_pipeline(run, "gone", 2).await?;
    run.pipes[C].sampler = Some(sampler(run, "gone"));
    run.loads(&mut ph, STEADY, 100.0);
    run.load(&mut ph, C, GONE_RATE, 3600.0);
    let loaded = run.now();
    let ready_by = loaded + 60.0;
    let mut running = false;
    while run.now() < ready_by {
        run.sleep(1.0).await;
        if run.pipes[C]
            .last()
            .is_some_and(|s| s.t > loaded + 15.0 && s.ready >= 1 && !behind(&s))
        {
            running = true;
            break;
        }
    }
    if !running {
        ph.fail("the pipeline to delete never ran (no ready worker keeping up within 60 s): the deletion would not be under load".into());
    }
    ph.from = run.now();
    ph.to = ph.from;
    Api::<ImpressionPipeline>::namespaced(run.client.clone(), &run.ns)
        .delete("gone", &DeleteParams::default())
        .await?;
    let deployments: Api<Deployment> = Api::namespaced(run.client.clone(), &run.ns);
    let (mut gone_at, mut stopped_at, mut forgotten_at) = (None, None, None);
    while run.now() < ph.from + 60.0 {
        run.sleep(1.0).await;
        let t = run.now() - ph.from;
        if gone_at.is_none() && matches!(deployments.get_opt("gone-worker").await, Ok(None)) {
            gone_at = Some(t);
        }
        if stopped_at.is_none() && run.pids(C).is_empty() {
            stopped_at = Some(t);
        }
        if forgotten_at.is_none()
            && let Some(l) = run.leader().await
            && let Some(op) = run.ops.get(&l)
        {
            let m = op.metrics();
            if !m.is_empty() && !m.contains("pipeline=\"gone\"") {
                forgotten_at = Some(t);
            }
        }
        if gone_at.is_some() && stopped_at.is_some() && forgotten_at.is_some() {
            break;
        }
    }
    // The others are watched for 45 s after the deletion at least.
    run.until(ph.from + 45.0).await;
    ph.watch_until = Some(run.now());
    match (gone_at, stopped_at, forgotten_at) {
        (Some(g), Some(s), Some(f)) => ph.notes.push(format!(
            "gone: Deployment deleted after {g:.0} s, its workers stopped after {s:.0} s, its series off the leader's /metrics after {f:.0} s"
        )),
        _ => ph.fail(format!(
            "60 s after the deletion: Deployment deleted {gone_at:?}, workers stopped {stopped_at:?}, series gone {forgotten_at:?} (s)"
        )),
    }
    run.finish(&mut ph).await;
    run.pipes[C].stop_sampling();
    Ok(ph)
}
