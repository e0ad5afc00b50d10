//! Workers that stop leave their consumer group at once: when four of five workers get SIGTERM
//! together under traffic (a scale-down), the one that stays is assigned all the partitions within
//! a few seconds, not after the leavers' session timeout (10 s) has expired; under each group
//! protocol (`source.groupProtocol`: Consumer, the default, and Classic).
//!
//! Under traffic a leaver's last offsets are still being committed when its consumer closes;
//! closing while the unsubscribe's incremental revoke waited on that commit ended the client
//! without a LeaveGroup (librdkafka 2.12), and the group waited out the session timeout. Without
//! traffic there is nothing to commit, so the test produces throughout.

use std::time::{Duration, Instant};

use impressions_tests::{
    Stack, kafka,
    worker::{self, WorkerProcess},
};

/// `text` without its terminal colour sequences.
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether `log` has a line saying the worker now holds `total` partitions.
fn holds(log: &str, total: usize) -> bool {
    plain(log).lines().any(|l| {
        l.contains("partitions assigned")
            && (l.contains(&format!("\"total\":{total}")) || l.contains(&format!("total={total}")))
    })
}

#[tokio::test]
async fn workers_that_stop_together_hand_their_partitions_over_at_once_consumer_protocol() {
    kafka::require_consumer_group_settings(Stack::get()).await;
    hand_over("Consumer").await;
}

#[tokio::test]
async fn workers_that_stop_together_hand_their_partitions_over_at_once_classic_protocol() {
    hand_over("Classic").await;
}

async fn hand_over(protocol: &str) {
    let stack = Stack::get();
    let t = worker::topics(stack, "leave", 8, 20).await;
    let config = worker::with_group_protocol(&worker::config(stack, &t, ""), protocol);
    let raw = t.raw.clone();
    let traffic = tokio::spawn(async move {
        for seed in 0.. {
            kafka::produce_generated(Stack::get(), &raw, seed, 400, 20, Default::default()).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut workers: Vec<WorkerProcess> = (0..5)
        .map(|i| WorkerProcess::start(&impressions_tests::unique(&format!("leave-{i}")), &config))
        .collect();
    for w in &mut workers {
        w.wait_ready(Duration::from_secs(60));
    }
    // Every worker holds partitions (one or two each), and the cooperative second round is over.
    let settled = Instant::now();
    while !workers.iter().all(|w| {
        let log = std::fs::read_to_string(&w.log).unwrap_or_default();
        holds(&log, 1) || holds(&log, 2)
    }) {
        assert!(
            settled.elapsed() < Duration::from_secs(60),
            "the five workers never held partitions each:\n{}",
            workers
                .iter()
                .map(|w| w.log_tail())
                .collect::<Vec<_>>()
                .join("\n---\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let survivor_log = workers[0].log.clone();
    let before = std::fs::read_to_string(&survivor_log)
        .unwrap_or_default()
        .len();

    let pids: Vec<String> = workers[1..]
        .iter()
        .map(|w| w.child.id().to_string())
        .collect();
    let t0 = Instant::now();
    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .args(&pids)
        .status()
        .unwrap();
    assert!(status.success(), "SIGTERM found the four workers");
    let handed_over = loop {
        let log = std::fs::read_to_string(&survivor_log).unwrap_or_default();
        if holds(&log[before.min(log.len())..], 8) {
            break t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the survivor was not assigned all eight partitions within 30 s:\n{}",
            workers[0].log_tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!(
        "{protocol}: the survivor held all eight partitions {handed_over:.2?} after SIGTERM to four"
    );
    for w in &mut workers[1..] {
        let (ok, took) = w.terminate(Duration::from_secs(20));
        assert!(ok, "a leaving worker exits 0 ({took:?}):\n{}", w.log_tail());
    }
    assert!(
        handed_over < Duration::from_secs(5),
        "{protocol}: the partitions of four leaving workers were handed over after {handed_over:.2?}, not within 5 s (the session timeout is 10 s)"
    );
    traffic.abort();
    workers[0].terminate(Duration::from_secs(20));
}
