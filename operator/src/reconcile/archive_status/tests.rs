use super::*;
use crate::autoscale::{
    archive::{mark::CommitMark, signals::ArchiveThroughput},
    model::{Decision, LagSample},
};

fn deployment(replicas: i32, ready: i32) -> Deployment {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "imp-archiver"},
        "spec": {"replicas": 1, "selector": {}, "template": {}},
        "status": {"replicas": replicas, "readyReplicas": ready}
    }))
    .unwrap()
}

fn condition(s: &ImpressionPipelineStatus) -> Option<(String, String)> {
    conditions::get(&s.conditions, conditions::ARCHIVE_HEALTHY)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(1_000).unwrap())
}

fn evaluation(replicas: i32, health: Health, failed: f64) -> ArchiveEvaluation {
    ArchiveEvaluation {
        from: 1,
        decision: Decision {
            replicas,
            reason: "ScaleUp",
            message: "arrival 3000/s".into(),
            recommended: replicas,
            metrics_available: true,
            ineffective_scale_up: false,
            backlog_seconds: None,
            capacity_per_replica: None,
            capacity_measured: true,
            arrival_rate: None,
            stalled: false,
        },
        lag: Some(LagSample {
            partitions: 6,
            total: 4200,
            max_partition: 900,
            end_offsets: 90_000,
        }),
        committed_total: Some(85_800),
        last_commit: Some(CommitMark {
            v: 1,
            snapshot: 8_476_120_998_765_432_101,
            at_ms: 999_500,
            records: 1200,
            files: 3,
            bytes: 51_234,
            commit_ms: 19,
        }),
        throughput: Some(ArchiveThroughput {
            failed_commits: Some(failed),
            ..Default::default()
        }),
        health,
        problem: None,
    }
}

fn view<'a>(d: &'a Deployment, desired: i32, e: Option<&'a ArchiveEvaluation>) -> ArchiveView<'a> {
    ArchiveView {
        archivers: d,
        desired,
        mode: ScalingMode::Auto,
        evaluation: e,
    }
}

#[test]
fn ready_unavailable_starting_and_absent() {
    let mut s = ImpressionPipelineStatus::default();
    let (ready, unready, none) = (deployment(1, 1), deployment(1, 0), deployment(0, 0));
    with_archive(&mut s, Some(1), Some(view(&ready, 1, None)), &now());
    assert_eq!(condition(&s), Some(("True".into(), "ArchiverReady".into())));
    with_archive(&mut s, Some(1), Some(view(&unready, 1, None)), &now());
    assert_eq!(
        condition(&s),
        Some(("False".into(), "ArchiverUnavailable".into()))
    );
    with_archive(&mut s, Some(1), Some(view(&none, 1, None)), &now());
    assert_eq!(
        condition(&s),
        Some(("False".into(), "ArchiverStarting".into()))
    );
    with_archive(&mut s, Some(2), None, &now());
    assert_eq!(condition(&s), None, "no archive, no condition");
    assert_eq!(s.archive, None, "no archive, no status.archive");
}

#[test]
fn the_status_carries_the_last_commit_the_lag_and_the_decision() {
    let mut s = ImpressionPipelineStatus::default();
    let d = deployment(2, 2);
    let e = evaluation(3, Health::Progressing, 0.0);
    with_archive(&mut s, Some(1), Some(view(&d, 3, Some(&e))), &now());
    let a = s.archive.clone().unwrap();
    assert_eq!(
        (a.replicas, a.ready_replicas, a.desired_replicas),
        (2, 2, Some(3))
    );
    assert_eq!(
        (a.partitions, a.lag, a.committed_offsets),
        (Some(6), Some(4200), Some(85_800))
    );
    let c = a.last_commit.unwrap();
    assert_eq!(c.snapshot_id, 8_476_120_998_765_432_101);
    assert_eq!(c.time.0.as_millisecond(), 999_500);
    assert_eq!((c.records, c.files, c.bytes), (1200, 3, 51_234));
    assert_eq!(c.latency_seconds, 0.019);
    assert_eq!(a.failed_commits, Some(0));
    let ld = a.last_decision.unwrap();
    assert_eq!((ld.from, ld.to, ld.reason.as_str()), (1, 3, "ScaleUp"));
    assert_eq!(condition(&s), Some(("True".into(), "ArchiverReady".into())));
    // in Manual mode the decision is not reported
    let mut m = ImpressionPipelineStatus::default();
    let mut v = view(&d, 1, Some(&e));
    v.mode = ScalingMode::Manual;
    with_archive(&mut m, Some(1), Some(v), &now());
    assert_eq!(m.archive.unwrap().last_decision, None);
}

#[test]
fn commits_that_stall_make_the_archive_unhealthy_with_an_event() {
    let d = deployment(1, 1);
    let mut before = ImpressionPipelineStatus::default();
    let ok = evaluation(1, Health::Progressing, 0.0);
    with_archive(&mut before, Some(1), Some(view(&d, 1, Some(&ok))), &now());
    let stalled = evaluation(
        1,
        Health::Stalled {
            quiet_seconds: 700.0,
            lag_then: 100,
            lag_now: 90_000,
        },
        2.0,
    );
    let mut after = before.clone();
    with_archive(
        &mut after,
        Some(1),
        Some(view(&d, 1, Some(&stalled))),
        &now(),
    );
    assert_eq!(
        condition(&after),
        Some(("False".into(), "CommitsStalled".into())),
        "ready pods, yet no commit: not healthy"
    );
    let notes = events(Some(&before), &after, ScalingMode::Auto);
    let reasons: Vec<_> = notes
        .iter()
        .map(|n| (n.reason.as_str(), n.warning))
        .collect();
    assert_eq!(
        reasons,
        [("ArchiveCommitFailed", true), ("CommitsStalled", true)],
        "{notes:?}"
    );
    assert!(
        notes[1].note.contains("lag grew from 100 to 90000"),
        "{}",
        notes[1].note
    );
    // nothing new: no Event again
    assert!(events(Some(&after), &after, ScalingMode::Auto).is_empty());
    // recovered
    let mut again = after.clone();
    with_archive(&mut again, Some(1), Some(view(&d, 1, Some(&ok))), &now());
    let notes = events(Some(&after), &again, ScalingMode::Auto);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(
        (notes[0].reason.as_str(), notes[0].warning),
        ("ArchiveHealthy", false)
    );
}

#[test]
fn scaling_the_archivers_is_an_event_in_auto_mode() {
    let d = deployment(1, 1);
    let e = evaluation(3, Health::Progressing, 0.0);
    let mut before = ImpressionPipelineStatus::default();
    with_archive(&mut before, Some(1), Some(view(&d, 1, Some(&e))), &now());
    let mut after = before.clone();
    with_archive(&mut after, Some(1), Some(view(&d, 3, Some(&e))), &now());
    let notes = events(Some(&before), &after, ScalingMode::Auto);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0].reason, "ArchiversScaled");
    assert!(
        notes[0].note.starts_with("archivers 1 → 3 (ScaleUp: "),
        "{}",
        notes[0].note
    );
    assert!(events(Some(&before), &after, ScalingMode::Manual).is_empty());
}
