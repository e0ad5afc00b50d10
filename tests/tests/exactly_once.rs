//! The worker in ExactlyOnce mode against the real Kafka broker, its outputs read back as a
//! downstream `read_committed` consumer reads them: every input has exactly its output (a record
//! or a dead letter), with 0 duplicates, also after one of two workers is killed with -9
//! mid-run and restarted (a `read_uncommitted` reader sees the aborted records that
//! `read_committed` hides), and after a worker paused past its session comes back as a zombie
//! (its offsets are refused: KIP-447 fencing). An output the sink refuses is never committed
//! and stops the worker. The cases with a group of two run under each group protocol
//! (`source.groupProtocol`: Consumer, the default, and Classic).

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use impressions_tests::{
    Stack,
    kafka::{self, Isolation, Sent},
    worker::{
        Topics, WorkerProcess, config_with_sink, event_id, expected, parse_metric, topics,
        wait_committed, with_group_protocol,
    },
};
use impressions_worker::loadgen::Mix;
use rdkafka::{Message, message::OwnedMessage};

const COMMITTED: &str = "impressions_worker_transactions_total{outcome=\"committed\"}";
const ABORTED: &str = "impressions_worker_transactions_total{outcome=\"aborted\"}";

fn eos_config(stack: &Stack, t: &Topics, instance: &str, sink: &str, extra: &str) -> String {
    config_with_sink(
        stack,
        t,
        &format!(
            "deliveryGuarantee: ExactlyOnce, transactionalId: {}-{instance}{sink}",
            t.group
        ),
        extra,
    )
}

/// The dead letters' event ids (their keys).
fn keys(dlq: &[OwnedMessage]) -> Vec<String> {
    dlq.iter()
        .map(|m| String::from_utf8(m.key().unwrap().to_vec()).unwrap())
        .collect()
}

/// Event ids seen more than once.
fn duplicates(ids: &[String]) -> Vec<&String> {
    let mut seen = HashSet::new();
    ids.iter().filter(|id| !seen.insert(*id)).collect()
}

/// Reads sink and dead-letter topics as `read_committed` and checks them against `sent`:
/// every record and dead letter expected, each once, nothing else.
fn assert_exactly_once(stack: &Stack, t: &Topics, sent: &[Sent], logs: &str) -> usize {
    let (want_records, want_dead) = expected(sent);
    let out = kafka::read_to_end(
        stack,
        &t.out,
        Isolation::ReadCommitted,
        Duration::from_secs(20),
    );
    let dlq = kafka::read_to_end(
        stack,
        &t.dlq,
        Isolation::ReadCommitted,
        Duration::from_secs(20),
    );
    let records: Vec<String> = out.iter().map(event_id).collect();
    let dead = keys(&dlq);
    let dup: Vec<_> = duplicates(&records)
        .into_iter()
        .chain(duplicates(&dead))
        .take(5)
        .collect();
    assert!(dup.is_empty(), "duplicates read_committed: {dup:?}\n{logs}");
    let got: HashSet<String> = records.into_iter().collect();
    let missing: Vec<_> = want_records.difference(&got).take(5).collect();
    assert!(missing.is_empty(), "records missing: {missing:?}\n{logs}");
    assert_eq!(got, want_records, "no record beyond the valid impressions");
    let got_dead: HashSet<String> = dead.into_iter().collect();
    let want_dead: HashSet<String> = want_dead.into_keys().collect();
    assert_eq!(got_dead, want_dead, "dead letters");
    let filtered = sent.iter().filter(|s| !s.kind.is_record()).count() - want_dead.len();
    assert_eq!(
        out.len() + dlq.len() + filtered,
        sent.len(),
        "records + dead letters + filtered = inputs"
    );
    out.len()
}

#[tokio::test(flavor = "multi_thread")]
async fn exactly_once_outputs_match_inputs_read_committed() {
    let stack = Stack::get();
    let t = topics(stack, "eos-basic", 4, 200).await;
    let mix = Mix {
        non_impression: 0.2,
        invalid: 0.06,
        mismatch: 0.1,
    };
    let sent = kafka::produce_generated(stack, &t.raw, 13, 6000, 200, mix).await;
    let mut w = WorkerProcess::start(
        "eos-basic",
        &eos_config(
            stack,
            &t,
            "a",
            "",
            "processing: {threads: 2, maxBatch: 500}",
        ),
    );
    w.wait_ready(Duration::from_secs(30));

    let high = kafka::high_watermarks(stack, &t.raw);
    let committed = wait_committed(stack, &t, Duration::from_secs(40)).await;
    assert_eq!(
        committed,
        high.into_iter()
            .filter(|(_, h)| *h > 0)
            .collect::<HashMap<_, _>>(),
        "every input offset committed in a transaction:\n{}",
        w.log_tail()
    );
    assert_exactly_once(stack, &t, &sent, &w.log_tail());

    assert!(w.metric(COMMITTED) >= 1.0, "{}", w.metrics());
    assert_eq!(w.metric(ABORTED), 0.0);
    assert_eq!(
        w.metric("impressions_worker_events_committed_total"),
        sent.len() as f64
    );
    let (ok, took) = w.terminate(Duration::from_secs(25));
    assert!(ok, "unclean exit after {took:?}:\n{}", w.log_tail());
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_one_of_two_workers_then_restart_no_duplicates_nothing_missing_consumer_protocol() {
    kafka::require_consumer_group_settings(Stack::get()).await;
    kill_9_then_restart("Consumer").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_one_of_two_workers_then_restart_no_duplicates_nothing_missing_classic_protocol() {
    kill_9_then_restart("Classic").await;
}

async fn kill_9_then_restart(protocol: &str) {
    let stack = Stack::get();
    let t = topics(stack, "eos-kill", 4, 100).await;
    let sent = kafka::produce_generated(stack, &t.raw, 17, 16_000, 100, Mix::default()).await;
    // Capped so the kill lands mid-run; 2 s transactions so that the killed worker's open
    // transaction surely holds delivered records when it dies.
    let cfg = |instance: &str| {
        with_group_protocol(
            &eos_config(
                stack,
                &t,
                instance,
                ", transactionIntervalMs: 2000",
                "processing: {threads: 1, maxBatch: 200, maxEventsPerSecond: 1500}",
            ),
            protocol,
        )
    };
    let mut a = WorkerProcess::start(&format!("eos-kill-a-{protocol}"), &cfg("a"));
    a.wait_ready(Duration::from_secs(30));
    let mut b = WorkerProcess::start(&format!("eos-kill-b-{protocol}"), &cfg("b"));
    b.wait_ready(Duration::from_secs(30));

    // B's join took partitions from A, whose transaction was committed before the revoke. Kill
    // A once it processed two batches since its last commit but not many more (their outputs
    // are acknowledged within milliseconds; the transaction commits after 2 s).
    let deadline = Instant::now() + Duration::from_secs(20);
    while b.metric("impressions_worker_assigned_partitions") == 0.0 {
        assert!(
            Instant::now() < deadline,
            "B got no partitions:\n{}",
            b.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    loop {
        let m = a.metrics();
        let open = parse_metric(&m, "impressions_worker_events_processed_total")
            - parse_metric(&m, "impressions_worker_events_committed_total");
        // Young enough not to be committed before the kill (1,500 events/s, 2 s transactions).
        if (400.0..=1200.0).contains(&open) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "A processes nothing:\n{}",
            a.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let done = a.metric("impressions_worker_events_processed_total")
        + b.metric("impressions_worker_events_processed_total");
    assert!(
        done < sent.len() as f64,
        "the kill must land mid-run ({done} of {} processed)",
        sent.len()
    );
    a.kill9();
    a.restart(&format!("eos-kill-a-{protocol}"));
    a.wait_ready(Duration::from_secs(30));

    let high = kafka::high_watermarks(stack, &t.raw);
    let committed = wait_committed(stack, &t, Duration::from_secs(45)).await;
    let logs = format!("A:\n{}\nB:\n{}", a.log_tail(), b.log_tail());
    assert_eq!(
        committed,
        high.into_iter()
            .filter(|(_, h)| *h > 0)
            .collect::<HashMap<_, _>>(),
        "every input committed after the kill:\n{logs}"
    );
    let records = assert_exactly_once(stack, &t, &sent, &logs);

    // The killed worker's open transaction was aborted (fenced by its restart): its records
    // are in the log, hidden from read_committed readers.
    let all = kafka::read_to_end(
        stack,
        &t.out,
        Isolation::ReadUncommitted,
        Duration::from_secs(20),
    );
    let distinct: HashSet<String> = all.iter().map(event_id).collect();
    println!(
        "{protocol}: kill -9: {records} records read_committed, {} read_uncommitted ({} aborted)",
        all.len(),
        all.len() - records
    );
    assert_eq!(distinct.len(), records);
    assert!(
        all.len() > records,
        "read_uncommitted shows no aborted record:\n{logs}"
    );
    for w in [&mut a, &mut b] {
        let (ok, took) = w.terminate(Duration::from_secs(25));
        assert!(ok, "unclean exit after {took:?}:\n{}", w.log_tail());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_output_the_sink_refuses_is_never_committed_and_stops_the_worker() {
    let stack = Stack::get();
    let mut t = topics(stack, "eos-refused", 1, 100).await;
    // Dead letters above 2,000 bytes are refused by the broker.
    t.dlq = format!("{}-small", t.dlq);
    kafka::create_topic_with(stack, &t.dlq, 1, &[("max.message.bytes", "2000")]).await;
    let valid = Mix {
        non_impression: 0.0,
        invalid: 0.0,
        mismatch: 0.0,
    };
    let before = kafka::produce_generated(stack, &t.raw, 23, 300, 100, valid).await;
    // Not JSON, so dead-lettered with its bytes: 20 kB that do not compress.
    let poison: String = (0..20_000u64)
        .map(|i| char::from(b'a' + (i.wrapping_mul(2654435761) >> 7) as u8 % 26))
        .collect();
    use rdkafka::producer::FutureRecord;
    kafka::producer(stack)
        .send(
            FutureRecord::to(&t.raw).key("poison").payload(&poison),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    kafka::produce_generated(stack, &t.raw, 29, 100, 100, valid).await;
    let poison_offset = before.len() as i64;

    // Slow enough that transactions commit before the poison is reached.
    let mut w = WorkerProcess::start(
        "eos-refused",
        &eos_config(
            stack,
            &t,
            "a",
            "",
            "processing: {maxBatch: 50, maxEventsPerSecond: 1000}",
        ),
    );
    let deadline = Instant::now() + Duration::from_secs(40);
    let status = loop {
        if let Some(s) = w.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the worker keeps running:\n{}",
            w.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let log = std::fs::read_to_string(&w.log).unwrap();
    assert!(!status.success(), "exit {status}:\n{}", w.log_tail());
    assert!(
        log.contains("transactions in a row aborted"),
        "{}",
        w.log_tail()
    );

    // Committed: a prefix before the poison, with its records exactly once; nothing after.
    let committed = kafka::committed(stack, &t.group, &t.raw)
        .get(&0)
        .copied()
        .unwrap_or(0);
    assert!(
        committed > 0 && committed <= poison_offset,
        "committed {committed}, poison at {poison_offset}:\n{}",
        w.log_tail()
    );
    let out = kafka::read_to_end(
        stack,
        &t.out,
        Isolation::ReadCommitted,
        Duration::from_secs(20),
    );
    let ids: Vec<String> = out.iter().map(event_id).collect();
    assert!(duplicates(&ids).is_empty(), "duplicates");
    let want: HashSet<String> = before[..committed as usize]
        .iter()
        .map(|s| s.event_id.clone())
        .collect();
    assert_eq!(ids.into_iter().collect::<HashSet<_>>(), want);
    let dlq = kafka::read_to_end(
        stack,
        &t.dlq,
        Isolation::ReadCommitted,
        Duration::from_secs(20),
    );
    assert!(dlq.is_empty(), "the refused dead letter is not committed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_zombie_worker_is_fenced_and_commits_nothing_twice_consumer_protocol() {
    kafka::require_consumer_group_settings(Stack::get()).await;
    zombie("Consumer").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_zombie_worker_is_fenced_and_commits_nothing_twice_classic_protocol() {
    zombie("Classic").await;
}

async fn zombie(protocol: &str) {
    let stack = Stack::get();
    let t = topics(stack, "eos-zombie", 4, 100).await;
    let sent = kafka::produce_generated(stack, &t.raw, 31, 16_000, 100, Mix::default()).await;
    let cfg = |instance: &str| {
        with_group_protocol(
            &eos_config(
                stack,
                &t,
                instance,
                "",
                "processing: {threads: 1, maxBatch: 200, maxEventsPerSecond: 1500}",
            ),
            protocol,
        )
    };
    let mut a = WorkerProcess::start(&format!("eos-zombie-a-{protocol}"), &cfg("a"));
    a.wait_ready(Duration::from_secs(30));
    let mut b = WorkerProcess::start(&format!("eos-zombie-b-{protocol}"), &cfg("b"));
    b.wait_ready(Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(20);
    while b.metric("impressions_worker_assigned_partitions") == 0.0 {
        assert!(
            Instant::now() < deadline,
            "B got no partitions:\n{}",
            b.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A stops mid-transaction for longer than its session (10 s: the worker's under the classic
    // protocol, the broker's under the consumer protocol) and its transaction timeout (10 s):
    // the group gives its partitions to B, the broker aborts its transaction. When A
    // wakes up it must not commit what B now owns.
    let signal = |sig: &str, w: &WorkerProcess| {
        std::process::Command::new("kill")
            .args([sig, &w.child.id().to_string()])
            .status()
            .unwrap();
    };
    signal("-STOP", &a);
    let deadline = Instant::now() + Duration::from_secs(30);
    while b.metric("impressions_worker_assigned_partitions") < 4.0 {
        assert!(
            Instant::now() < deadline,
            "B did not take over:\n{}",
            b.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    signal("-CONT", &a);
    // A either rejoins or stops with an error (fenced); restarted like a pod if it stopped.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let a_exit = a.child.try_wait().unwrap();
    if a_exit.is_some() {
        a.restart(&format!("eos-zombie-a-{protocol}"));
    }

    let high = kafka::high_watermarks(stack, &t.raw);
    let committed = wait_committed(stack, &t, Duration::from_secs(40)).await;
    let logs = format!("A:\n{}\nB:\n{}", a.log_tail(), b.log_tail());
    assert_eq!(
        committed,
        high.into_iter()
            .filter(|(_, h)| *h > 0)
            .collect::<HashMap<_, _>>(),
        "every input committed:\n{logs}"
    );
    let records = assert_exactly_once(stack, &t, &sent, &logs);
    println!("{protocol}: zombie: A after waking up: {a_exit:?}; {records} records, 0 duplicates");
}
