//! The archivers' signals → replicas, through the workers' estimate and decision: a simulated
//! archiver fleet (each archiver reads at most 1000 records/s) under a step of traffic, without
//! IO.

use std::time::Duration;

use impressions_crds::{pipeline::OffsetReset, scaling::ScalingMode};

use super::{
    evaluator::{ArchiveRegistration, applied_archivers, evaluate_once},
    health::{Health, Progress},
    signals::ArchiveThroughput,
};
use crate::autoscale::{
    history::History,
    model::{HistoryPoint, LagSample},
    signals::kafka_lag::{GroupSample, LagTarget},
};

const CAPACITY: f64 = 1000.0;

fn reg(replicas: i32) -> ArchiveRegistration {
    ArchiveRegistration {
        namespace: "ns".into(),
        name: "eu".into(),
        mode: ScalingMode::Auto,
        lag: LagTarget {
            bootstrap: "k:9092".into(),
            topic: "out".into(),
            group: "ns.eu.archiver".into(),
            reset: OffsetReset::Earliest,
            kafka: Default::default(),
        },
        rate_window: "1m".into(),
        policy: crate::autoscale::tests::policy(),
        interval: Duration::from_secs(15),
        replicas,
        commit_interval_seconds: 10.0,
    }
}

/// A fleet of archivers on a sink topic of `partitions`: its group's lag and the archivers'
/// metrics, advanced one evaluation interval at a time.
struct Fleet {
    partitions: i32,
    end: i64,
    read: i64,
    committed: i64,
    pending: i64,
    snapshot: i64,
}

impl Fleet {
    /// `arrival` records/s for `dt` seconds with `replicas` archivers; a commit every interval.
    fn step(
        &mut self,
        arrival: f64,
        replicas: i32,
        dt: f64,
        commits: bool,
    ) -> (GroupSample, ArchiveThroughput) {
        let capacity = CAPACITY * f64::from(replicas.min(self.partitions));
        self.end += (arrival * dt) as i64;
        let can = (capacity * dt) as i64;
        let took = (self.end - self.read).min(can);
        self.read += took;
        self.pending += took;
        if commits {
            self.committed = self.read;
            self.pending = 0;
            self.snapshot += 1;
        }
        let processed = took as f64 / dt;
        let group = GroupSample {
            lag: LagSample {
                partitions: self.partitions,
                total: self.end - self.committed,
                max_partition: (self.end - self.committed) / i64::from(self.partitions),
                end_offsets: self.end,
            },
            committed_total: self.committed,
            metadata: vec![format!(
                r#"{{"v":1,"snapshot":{},"atMs":{},"records":1,"files":1,"bytes":1,"commitMs":5}}"#,
                self.snapshot, self.snapshot
            )],
        };
        let tp = ArchiveThroughput {
            processed: Some(processed),
            busy: Some((processed / capacity).min(1.0)),
            archivers: Some(f64::from(replicas)),
            pending: Some(self.pending as f64),
            failed_commits: Some(0.0),
        };
        (group, tp)
    }
}

/// Runs `arrivals` (records/s per 15-s interval) and returns the archivers after each.
fn run(arrivals: &[f64], partitions: i32) -> Vec<i32> {
    run_with_restart(arrivals, partitions, None)
}

/// Unix seconds of the simulation's time 0.
const UNIX_AT_ZERO: f64 = 1_700_000_000.0;

/// As [`run`], with the operator restarted before evaluation `restart.0`: its history is gone,
/// and rebuilt (`restart.1`) from the points Prometheus recorded of the archivers until then
/// (processed rate, busy fraction, backlog, archivers reporting, one point per evaluation).
fn run_with_restart(arrivals: &[f64], partitions: i32, restart: Option<(usize, bool)>) -> Vec<i32> {
    let mut fleet = Fleet {
        partitions,
        end: 0,
        read: 0,
        committed: 0,
        pending: 0,
        snapshot: 0,
    };
    let (mut history, mut progress) = (History::default(), Progress::default());
    let (mut replicas, mut last_end, mut out) = (1, None, Vec::new());
    let mut recorded = Vec::new();
    for (i, arrival) in arrivals.iter().enumerate() {
        let now = 15.0 * (i + 1) as f64;
        if let Some((at, rebuild)) = restart
            && at == i
        {
            // the new operator's clock starts again; its first evaluation reads Prometheus
            history = if rebuild {
                crate::autoscale::rebuild::rebuild(
                    &recorded,
                    partitions,
                    &reg(replicas).policy,
                    now,
                    UNIX_AT_ZERO + now,
                )
            } else {
                History::default()
            };
            progress = Progress::default();
            last_end = None;
        }
        let (group, tp) = fleet.step(*arrival, replicas, 15.0, true);
        recorded.push(HistoryPoint {
            at: UNIX_AT_ZERO + now,
            processed_rate: tp.processed.unwrap(),
            busy_fraction: tp.busy.unwrap(),
            lag: super::signals::backlog(group.lag.total, tp.pending),
            replicas: tp.archivers.unwrap() as i32,
        });
        let (e, end) = evaluate_once(
            &reg(replicas),
            now,
            Ok(group),
            Ok(tp),
            last_end,
            &mut history,
            &mut progress,
        );
        last_end = end;
        assert_eq!(e.health, Health::Progressing, "{e:?}");
        replicas = applied_archivers(ScalingMode::Auto, Some(&e), None, 1, 20);
        out.push(replicas);
    }
    out
}

#[test]
fn a_step_of_traffic_scales_the_archivers_up_and_back_down() {
    let mut arrivals = vec![500.0; 4];
    arrivals.extend([3000.0; 8]);
    arrivals.extend([500.0; 20]);
    let replicas = run(&arrivals, 12);
    assert_eq!(
        replicas[3], 1,
        "500/s: one archiver at half its capacity: {replicas:?}"
    );
    let peak = *replicas.iter().max().unwrap();
    assert!(
        (4..=8).contains(&peak),
        "3000/s needs 3000 / (1000 × 0.7) ≈ 5 archivers: {replicas:?}"
    );
    assert!(
        *replicas.last().unwrap() <= 2,
        "back down after the step: {replicas:?}"
    );
}

#[test]
fn after_an_operator_restart_the_rebuilt_history_keeps_the_scale_down_on_time() {
    // a step to 3000/s, then 500/s: the fleet shrinks once the scale-down window has seen the
    // low load; the operator restarts 90 s into the low load, 30 s before that
    let mut arrivals = vec![3000.0; 8];
    arrivals.extend([500.0; 16]);
    let restart_at = 14;
    let through = run(&arrivals, 12);
    let rebuilt = run_with_restart(&arrivals, 12, Some((restart_at, true)));
    let forgotten = run_with_restart(&arrivals, 12, Some((restart_at, false)));
    let first_down = |r: &[i32]| {
        (restart_at..r.len())
            .find(|i| r[*i] < r[restart_at - 1])
            .unwrap_or(usize::MAX)
    };
    assert!(
        through[restart_at - 1] >= 4,
        "scaled up by the step: {through:?}"
    );
    assert_eq!(
        rebuilt, through,
        "the rebuilt history decides as the one the restart lost"
    );
    assert!(
        first_down(&forgotten) >= first_down(&through) + 4,
        "without it the scale-down waits a whole window again: {forgotten:?} vs {through:?}"
    );
}

#[test]
fn archivers_are_bounded_by_the_sink_partitions() {
    let replicas = run(&[500.0, 500.0, 5000.0, 5000.0, 5000.0, 5000.0], 3);
    assert_eq!(*replicas.iter().max().unwrap(), 3, "{replicas:?}");
}

#[test]
fn records_waiting_for_the_commit_do_not_scale_up() {
    // commits every 300 s: the group's lag holds up to 300 s of records, all read already
    let mut fleet = Fleet {
        partitions: 12,
        end: 0,
        read: 0,
        committed: 0,
        pending: 0,
        snapshot: 0,
    };
    let (mut history, mut progress) = (History::default(), Progress::default());
    let mut last_end = None;
    for i in 1..=19 {
        let (group, tp) = fleet.step(500.0, 1, 15.0, i % 20 == 0);
        let (e, end) = evaluate_once(
            &reg(1),
            15.0 * f64::from(i),
            Ok(group),
            Ok(tp),
            last_end,
            &mut history,
            &mut progress,
        );
        last_end = end;
        assert_eq!(e.decision.replicas, 1, "step {i}: {:?}", e.decision);
        assert_eq!(
            e.lag.unwrap().total,
            7500 * i64::from(i),
            "all of it waits for the commit"
        );
    }
}

#[test]
fn missing_signals_hold_and_commits_that_stop_are_told() {
    let mut fleet = Fleet {
        partitions: 6,
        end: 0,
        read: 0,
        committed: 0,
        pending: 0,
        snapshot: 0,
    };
    let (mut history, mut progress) = (History::default(), Progress::default());
    let (group, _) = fleet.step(500.0, 2, 15.0, true);
    let (e, _) = evaluate_once(
        &reg(2),
        15.0,
        Ok(group),
        Err("Prometheus did not answer".into()),
        None,
        &mut history,
        &mut progress,
    );
    assert_eq!(e.decision.replicas, 2);
    assert_eq!(e.decision.reason, "HoldMetricsMissing");
    assert_eq!(e.problem.as_deref(), Some("Prometheus did not answer"));
    assert_eq!(e.last_commit.unwrap().snapshot, 1);
    assert_eq!(
        applied_archivers(ScalingMode::Auto, Some(&e), Some(2), 1, 20),
        2
    );
    assert_eq!(
        applied_archivers(ScalingMode::Manual, Some(&e), Some(4), 1, 20),
        1
    );
    assert_eq!(
        applied_archivers(ScalingMode::Recommend, Some(&e), Some(4), 1, 20),
        4
    );
    // no commit for 80 s (2 × 10 s + 60 s) while the lag grows
    let mut last = e;
    for i in 2..=8 {
        let (group, tp) = fleet.step(500.0, 2, 15.0, false);
        last = evaluate_once(
            &reg(2),
            15.0 * f64::from(i),
            Ok(group),
            Ok(tp),
            None,
            &mut history,
            &mut progress,
        )
        .0;
    }
    assert!(
        matches!(last.health, Health::Stalled { lag_now, .. } if lag_now > 0),
        "{:?}",
        last.health
    );
    let (e, _) = evaluate_once(
        &reg(2),
        200.0,
        Err("Kafka did not answer within 10s".into()),
        Ok(ArchiveThroughput::default()),
        None,
        &mut history,
        &mut progress,
    );
    assert_eq!(e.health, Health::Unknown);
    assert!(e.problem.unwrap().starts_with("Kafka did not answer"));
}
