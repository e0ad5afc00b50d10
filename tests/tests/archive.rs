//! The archiver against the real Kafka broker and a SQL catalog on a SQLite file (and, for the
//! rebalances, Apache Iceberg's REST catalog server), the table read back by pyiceberg (an
//! independent engine): the rows are exactly the records the worker wrote
//! (no loss, no duplicate), with the schema and partition spec of docs/archive.md; also after the
//! archiver is stopped between writing its data files and committing them (the files exist, the
//! table does not reference them) and restarted; with the group's committed offsets in Kafka set
//! past the table's and back before it (a hint the archiver never trusts); and across rebalances
//! between two archivers of one consumer group, one of them killed with -9. Records the archiver
//! cannot decode, among valid ones, go to the dead-letter topic with their reason and the table
//! holds exactly the valid ones.

use std::{collections::HashSet, time::Duration};

use impressions_tests::{
    Stack,
    archive::{ArchiverProcess, Catalog, TableReadBack, config, set_group_offsets},
    kafka::{self, Isolation},
    worker::{Topics, WorkerProcess, event_id, topics, wait_committed},
};
use impressions_worker::loadgen::Mix;

const MIX: Mix = Mix {
    non_impression: 0.1,
    invalid: 0.05,
    mismatch: 0.1,
};

/// Runs a worker over `n` generated events (seeded) and returns the event ids of every record
/// on the output topic after it (all of them, from the beginning).
async fn worker_writes(stack: &Stack, t: &Topics, name: &str, seed: u64, n: usize) -> Vec<String> {
    kafka::produce_generated(stack, &t.raw, seed, n, 200, MIX).await;
    let mut w = WorkerProcess::start(name, &impressions_tests::worker::config(stack, t, ""));
    w.wait_ready(Duration::from_secs(30));
    wait_committed(stack, t, Duration::from_secs(60)).await;
    assert!(
        w.terminate(Duration::from_secs(30)).0,
        "worker stops cleanly"
    );
    kafka::read_to_end(
        stack,
        &t.out,
        Isolation::ReadUncommitted,
        Duration::from_secs(20),
    )
    .iter()
    .map(event_id)
    .collect()
}

/// The table holds exactly `want` (each once).
fn assert_exactly(table: &TableReadBack, want: &[String], context: &str) {
    let dup = table.duplicates();
    assert!(
        dup.is_empty(),
        "{context}: duplicates in the table: {:?}",
        &dup[..dup.len().min(5)]
    );
    let got: HashSet<&String> = table.event_ids.iter().collect();
    let want_set: HashSet<&String> = want.iter().collect();
    assert_eq!(
        want.len(),
        want_set.len(),
        "{context}: the topic itself holds no duplicate"
    );
    let missing: Vec<_> = want_set.difference(&got).take(5).collect();
    assert!(
        missing.is_empty(),
        "{context}: records missing from the table: {missing:?}"
    );
    assert_eq!(table.rows, want.len(), "{context}: rows = records written");
}

const FAST: &str = "commitIntervalSeconds: 2\nflushRows: 500";

#[tokio::test(flavor = "multi_thread")]
async fn archive_holds_each_record_once_and_survives_an_abort_before_commit() {
    let stack = Stack::get();
    let t = topics(stack, "archive-basic", 3, 200).await;
    let catalog = Catalog::new("archive-basic");
    let group = format!("{}-archiver", t.group);
    let first = worker_writes(stack, &t, "archive-basic-w1", 21, 4000).await;
    assert!(
        first.len() > 3000,
        "the worker wrote records: {}",
        first.len()
    );

    let cfg = config(stack, &t.out, &t.dlq, &group, &catalog, FAST);
    let mut a = ArchiverProcess::start("archive-basic-a", &cfg, &[]);
    a.wait_ready(Duration::from_secs(60));
    let reached = a.wait_committed(first.len() as f64, Duration::from_secs(60));
    assert_eq!(
        reached,
        first.len() as f64,
        "committed every record:\n{}",
        a.log_tail()
    );
    let metrics = a.get("/metrics").unwrap().1;
    assert!(
        a.metric("impressions_archiver_files_committed_total") >= 1.0,
        "{metrics}"
    );
    assert!(
        a.metric("impressions_archiver_last_snapshot_id") != 0.0,
        "{metrics}"
    );
    assert!(
        a.terminate(Duration::from_secs(30)),
        "archiver stops cleanly:\n{}",
        a.log_tail()
    );

    let table = catalog.read(stack);
    assert_exactly(&table, &first, "after the first run");
    // schema and partition spec as documented (docs/archive.md)
    let field = |name: &str| {
        table
            .schema
            .iter()
            .find(|f| f.name == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(table.schema.len(), 15);
    assert_eq!(
        (field("eventId").ty.as_str(), field("eventId").required),
        ("string", true)
    );
    assert_eq!(field("timestamp").ty, "timestamptz");
    assert_eq!(
        (field("accountId").ty.as_str(), field("accountId").required),
        ("string", false)
    );
    assert_eq!(field("videoId").ty, "long");
    assert!(
        field("title").ty.starts_with("struct<"),
        "{:?}",
        field("title")
    );
    assert!(
        field("corrections").ty.starts_with("list<"),
        "{:?}",
        field("corrections")
    );
    assert_eq!(table.partition_spec.len(), 1);
    assert_eq!(table.partition_spec[0].name, "timestamp_hour");
    assert_eq!(table.partition_spec[0].transform, "hour");
    assert_eq!(table.partition_spec[0].source, "timestamp");
    assert!(
        table
            .data_files
            .iter()
            .all(|f| f.contains("/timestamp_hour=")),
        "data files under hour partitions: {:?}",
        &table.data_files[..table.data_files.len().min(3)]
    );
    // the snapshots carry the offsets they cover: together, every output partition's end
    let high = kafka::high_watermarks(stack, &t.out);
    let newest = impressions_archiver_offsets(&table, &t.out);
    for (p, h) in &high {
        if *h > 0 {
            assert_eq!(
                newest.get(p),
                Some(h),
                "partition {p}'s offset in the summaries"
            );
        }
    }

    // more records; an archiver that stops after writing its data files, before the commit
    let second = worker_writes(stack, &t, "archive-basic-w2", 22, 3000).await;
    assert!(second.len() > first.len());
    let files_before = catalog.parquet_files().len();
    let mut b = ArchiverProcess::start(
        "archive-basic-abort",
        &cfg,
        &[("ARCHIVER_FAULT_ABORT_BEFORE_COMMIT", "1")],
    );
    let status = b
        .wait_exit(Duration::from_secs(60))
        .expect("the archiver aborts");
    assert!(!status.success(), "aborted: {status}");
    assert!(
        b.log_text().contains("aborting before the catalog commit"),
        "stopped at the fault, between files and commit:\n{}",
        b.log_tail()
    );
    assert!(
        catalog.parquet_files().len() > files_before,
        "its data files were written before it stopped"
    );
    let table = catalog.read(stack);
    assert_exactly(&table, &first, "after the abort, the table is unchanged");

    // the group's offsets in Kafka are a hint only: set past everything, they must not make
    // the restarted archiver skip the records the table lacks
    let end = kafka::high_watermarks(stack, &t.out);
    set_group_offsets(stack, &group, &t.out, &end);
    let mut c = ArchiverProcess::start("archive-basic-c", &cfg, &[]);
    c.wait_ready(Duration::from_secs(60));
    let new = (second.len() - first.len()) as f64;
    assert_eq!(
        c.wait_committed(new, Duration::from_secs(60)),
        new,
        "{}",
        c.log_tail()
    );
    assert!(c.terminate(Duration::from_secs(30)));
    let table = catalog.read(stack);
    assert_exactly(&table, &second, "after the restart");

    // set back to the beginning, they must not make it archive anything twice
    let third = worker_writes(stack, &t, "archive-basic-w3", 23, 1000).await;
    let start: std::collections::HashMap<i32, i64> = end.keys().map(|p| (*p, 0)).collect();
    set_group_offsets(stack, &group, &t.out, &start);
    let mut d = ArchiverProcess::start("archive-basic-d", &cfg, &[]);
    d.wait_ready(Duration::from_secs(60));
    let new = (third.len() - second.len()) as f64;
    assert_eq!(
        d.wait_committed(new, Duration::from_secs(60)),
        new,
        "{}",
        d.log_tail()
    );
    // a few more commit intervals: nothing beyond the new records
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        d.metric("impressions_archiver_records_committed_total"),
        new
    );
    assert!(d.terminate(Duration::from_secs(30)));
    let table = catalog.read(stack);
    assert_exactly(
        &table,
        &third,
        "after a restart with the group's offsets at the beginning",
    );
}

/// Records that are no impression (not framed, another schema's fingerprint, a cut datum, bytes
/// after the record, an empty payload) among valid ones on the Avro topic: each goes to the
/// dead-letter topic with its reason and source offset, the table holds exactly the valid
/// records, and the commits cover every offset (the archiver does not stall on them).
#[tokio::test(flavor = "multi_thread")]
async fn records_it_cannot_archive_go_to_the_dead_letter_topic_with_their_reason() {
    use rdkafka::{Message, producer::FutureRecord};
    let stack = Stack::get();
    // the worker writes valid records into one pipeline's topic; they are copied, with the
    // garbage between them, into another's (whose dead-letter topic only the archiver writes)
    let w = topics(stack, "archive-dlq-w", 1, 200).await;
    let valid = worker_writes(stack, &w, "archive-dlq-w", 41, 400).await;
    let records = kafka::read_to_end(
        stack,
        &w.out,
        Isolation::ReadUncommitted,
        Duration::from_secs(20),
    );
    assert!(records.len() > 250, "the worker wrote {}", records.len());
    let t = topics(stack, "archive-dlq", 1, 0).await;
    let sample = records[0].payload().unwrap().to_vec();
    let mut foreign = sample.clone();
    foreign[2..10].copy_from_slice(&[0xAB; 8]);
    let mut trailing = sample.clone();
    trailing.extend([1, 2, 3]);
    let garbage: Vec<(&str, Vec<u8>)> = vec![
        ("framing", br#"{"eventId":"not-avro"}"#.to_vec()),
        ("schema_mismatch", foreign),
        ("datum", sample[..14].to_vec()),
        ("datum", trailing),
        ("framing", Vec::new()),
    ];
    let producer = kafka::producer(stack);
    let every = records.len() / garbage.len();
    let mut out: Vec<(&[u8], &[u8])> = Vec::new();
    for (i, m) in records.iter().enumerate() {
        let key = m.key().unwrap_or_default();
        out.push((key, m.payload().unwrap()));
        if i % every == every - 1 && i / every < garbage.len() {
            out.push((key, &garbage[i / every].1));
        }
    }
    for (key, payload) in out {
        producer
            .send(
                FutureRecord::to(&t.out)
                    .partition(0)
                    .key(key)
                    .payload(payload),
                Duration::from_secs(10),
            )
            .await
            .expect("delivered");
    }
    let sent_garbage = garbage.len();

    let catalog = Catalog::new("archive-dlq");
    let cfg = config(
        stack,
        &t.out,
        &t.dlq,
        &format!("{}-archiver", t.group),
        &catalog,
        FAST,
    );
    let mut a = ArchiverProcess::start("archive-dlq-a", &cfg, &[]);
    a.wait_ready(Duration::from_secs(60));
    let end = kafka::high_watermarks(stack, &t.out);
    assert_eq!(
        end.values().sum::<i64>() as usize,
        valid.len() + sent_garbage
    );
    // every offset committed: the valid records in the table, the garbage's offsets covered
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let table = loop {
        let table = catalog.try_read(stack).ok();
        let covered = table.as_ref().is_some_and(|tb| {
            impressions_archiver_offsets(tb, &t.out)
                == end.clone().into_iter().filter(|(_, h)| *h > 0).collect()
        });
        if covered || std::time::Instant::now() > deadline {
            break table.expect("the table exists");
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(
        impressions_archiver_offsets(&table, &t.out),
        end.into_iter().filter(|(_, h)| *h > 0).collect(),
        "the commits cover every offset, the garbage's too:\n{}",
        a.log_tail()
    );
    assert_exactly(&table, &valid, "valid records among garbage");
    for reason in ["framing", "schema_mismatch", "datum"] {
        let want = garbage.iter().filter(|(r, _)| *r == reason).count() as f64;
        assert_eq!(
            a.metric(&format!(
                "impressions_archiver_records_dead_lettered_total{{reason=\"{reason}\"}}"
            )),
            want,
            "{reason}"
        );
    }
    assert!(a.terminate(Duration::from_secs(30)), "{}", a.log_tail());

    let dead = kafka::read_topic(stack, &t.dlq, sent_garbage + 1, Duration::from_secs(5));
    let mut got: Vec<(String, Vec<u8>)> = dead
        .iter()
        .map(|m| {
            assert_eq!(
                kafka::header(m, "impressions.source.topic").as_deref(),
                Some(t.out.as_str())
            );
            assert!(kafka::header(m, "impressions.source.offset").is_some());
            assert!(kafka::header(m, "impressions.reject.detail").is_some_and(|d| !d.is_empty()));
            (
                kafka::header(m, "impressions.reject.reason").unwrap_or_default(),
                m.payload().unwrap_or_default().to_vec(),
            )
        })
        .collect();
    let mut want: Vec<(String, Vec<u8>)> = garbage
        .into_iter()
        .map(|(r, p)| (r.to_string(), p))
        .collect();
    got.sort();
    want.sort();
    assert_eq!(
        got, want,
        "each garbage record once, with its reason and bytes"
    );
}

/// The newest offset of each partition of `topic` along the snapshots (newest first).
fn impressions_archiver_offsets(
    table: &TableReadBack,
    topic: &str,
) -> std::collections::HashMap<i32, i64> {
    let prefix = format!("impressions.archive.offset.{topic}.");
    let mut out = std::collections::HashMap::new();
    for s in table.snapshots.iter().rev() {
        for (k, v) in &s.summary {
            if let Some(p) = k.strip_prefix(&prefix) {
                out.entry(p.parse().unwrap()).or_insert(v.parse().unwrap());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn two_archivers_and_their_rebalances_keep_each_record_once() {
    let stack = Stack::get();
    let catalog = Catalog::new("archive-rebalance");
    rebalances_keep_each_record_once(stack, &catalog, "archive-rebalance").await;
}

/// The same through a REST catalog: Apache Iceberg's REST catalog server (its JDBC catalog on a
/// SQLite file of its own) between the archivers and the table; pyiceberg reads the table through
/// the same server. The archivers' fenced commits and conflict retries go through the REST
/// protocol's commit requirements (a 409 when the branch moved).
#[tokio::test(flavor = "multi_thread")]
async fn a_rest_catalog_keeps_each_record_once_across_rebalances() {
    let stack = Stack::get();
    let catalog = Catalog::rest(stack, "archive-rest");
    rebalances_keep_each_record_once(stack, &catalog, "archive-rest").await;
    // the table went through the server: its database holds it and no SQL catalog file exists
    assert!(
        catalog.dir.join("rest-catalog.db").exists() && !catalog.dir.join("catalog.db").exists(),
        "the archivers used the REST catalog: {:?}",
        std::fs::read_dir(&catalog.dir)
            .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
    );
    let table = catalog.read(stack);
    assert!(
        table
            .data_files
            .iter()
            .all(|f| f.contains(&catalog.dir.join("warehouse").display().to_string())),
        "data files under the warehouse: {:?}",
        &table.data_files[..table.data_files.len().min(3)]
    );

    // Client properties (archive.catalog.rest.propertiesSecretRef → these variables) reach the
    // catalog's client: with OAuth2 client credentials the archiver asks the server's token
    // endpoint first (the fixture grants any) and works; pointed at a token endpoint that does
    // not answer it cannot load the table and stops, naming the call.
    let t = topics(stack, "archive-rest-auth", 1, 200).await;
    let cfg = config(
        stack,
        &t.out,
        &t.dlq,
        &format!("{}-archiver", t.group),
        &catalog,
        FAST,
    );
    let mut a = ArchiverProcess::start(
        "archive-rest-credential",
        &cfg,
        &[(
            "ARCHIVER__CATALOG__PROPERTIES__credential",
            "archiver:s3cret",
        )],
    );
    a.wait_ready(Duration::from_secs(60));
    assert!(a.terminate(Duration::from_secs(30)), "{}", a.log_tail());
    let mut a = ArchiverProcess::start(
        "archive-rest-no-token",
        &cfg,
        &[
            (
                "ARCHIVER__CATALOG__PROPERTIES__credential",
                "archiver:s3cret",
            ),
            (
                "ARCHIVER__CATALOG__PROPERTIES__oauth2-server-uri",
                "http://127.0.0.1:9/v1/oauth/tokens",
            ),
        ],
    );
    let status = a.wait_exit(Duration::from_secs(90));
    let log = a.log_text();
    assert!(
        status.is_some_and(|s| !s.success()) && log.contains("127.0.0.1:9/v1/oauth/tokens"),
        "an archiver whose token endpoint does not answer stops non-zero, naming it ({status:?}):\n{log}"
    );
}

/// Two archivers of one group into `catalog`: one joins while the other is busy, then one is
/// killed with -9 while records are pending; the table holds each record once and both wrote.
async fn rebalances_keep_each_record_once(stack: &Stack, catalog: &Catalog, name: &str) {
    let t = topics(stack, name, 3, 200).await;
    let group = format!("{}-archiver", t.group);
    let cfg = config(stack, &t.out, &t.dlq, &group, catalog, FAST);

    let first = worker_writes(stack, &t, &format!("{name}-w1"), 31, 3000).await;
    let mut a = ArchiverProcess::start(&format!("{name}-a"), &cfg, &[]);
    a.wait_ready(Duration::from_secs(60));
    // a second archiver joins while the first is busy: the partitions are split between them
    std::thread::sleep(Duration::from_millis(1500));
    let mut b = ArchiverProcess::start(&format!("{name}-b"), &cfg, &[]);
    b.wait_ready(Duration::from_secs(60));
    let second = worker_writes(stack, &t, &format!("{name}-w2"), 32, 3000).await;
    assert!(second.len() > first.len());
    let both = |a: &ArchiverProcess, b: &ArchiverProcess| {
        a.metric("impressions_archiver_assigned_partitions")
            + b.metric("impressions_archiver_assigned_partitions")
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while both(&a, &b) != 3.0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        a.metric("impressions_archiver_assigned_partitions") >= 1.0
            && b.metric("impressions_archiver_assigned_partitions") >= 1.0,
        "both archivers own partitions:\n{}\n{}",
        a.log_tail(),
        b.log_tail()
    );
    // one archiver killed with -9 while records are pending: the other takes its partitions
    let third = worker_writes(stack, &t, &format!("{name}-w3"), 33, 2000).await;
    a.kill9();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let table = catalog.read(stack);
        if table.rows >= third.len() || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(b.terminate(Duration::from_secs(30)), "{}", b.log_tail());
    let table = catalog.read(stack);
    assert_exactly(&table, &third, "after two rebalances and a kill -9");
    let writers: HashSet<&String> = table
        .snapshots
        .iter()
        .filter_map(|s| s.summary.get("impressions.archive.writer"))
        .collect();
    assert_eq!(
        writers.len(),
        2,
        "both archivers committed snapshots: {writers:?}"
    );
}

/// The operator runs an archiver for a pipeline with an archive: its Deployment's pod runs on
/// the node agent as the `archiver` program (found in the bin folder like the worker), archives
/// what the workers write, and the pipeline shows ArchiveHealthy.
#[tokio::test(flavor = "multi_thread")]
async fn the_operator_runs_the_archiver_of_a_pipeline_with_an_archive() {
    use impressions_crds::{ImpressionPipeline, conditions};
    use impressions_tests::{
        cluster,
        operator::{OperatorProcess, eventually},
        processes::NodeAgentProcess,
        unique,
    };
    use kube::{Api, api::PostParams};

    let stack = Stack::get();
    let client = stack.client().await;
    cluster::install_crds(&client).await.unwrap();
    let ns = cluster::namespace(&client, &unique("archive-op"))
        .await
        .unwrap();
    let raw = kafka::pipeline_topics(stack, &ns).await;
    let catalog = Catalog::new("archive-op");
    let pipeline = serde_json::json!({"apiVersion": "impressions.dev/v1alpha1", "kind": "ImpressionPipeline", "metadata": {"name": "arch"},
        "spec": {"region": "local",
                 "source": {"bootstrapServers": stack.kafka_bootstrap, "topic": raw, "offsetReset": "Earliest"},
                 "sink": {"topic": format!("{ns}-out"), "deadLetterTopic": format!("{ns}-dlq")},
                 "enrichment": {"catalog": {"topic": format!("{ns}-titles")}},
                 "worker": {"threads": 1, "drainTimeoutSeconds": 5},
                 "scaling": {"mode": "Manual"}, "replicas": 1,
                 "archive": {"catalog": {"sql": {"uri": catalog.uri()}}, "warehouse": catalog.warehouse(),
                             "namespace": catalog.namespace, "table": catalog.table, "commitIntervalSeconds": 2}}});
    let api = Api::<ImpressionPipeline>::namespaced(client.clone(), &ns);
    api.create(
        &PostParams::default(),
        &serde_json::from_value(pipeline).unwrap(),
    )
    .await
    .unwrap();
    let agent = NodeAgentProcess::start(stack, &ns);
    let op = OperatorProcess::start(stack, "local", &ns, &[]);
    kafka::produce_generated(stack, &raw, 41, 2000, 200, MIX).await;
    let diag = || format!("{}\n{}", op.log_tail(), agent.log_tail());

    // every record the worker wrote, each once, in the table
    let out = format!("{ns}-out");
    let want: Vec<String> = eventually(
        Duration::from_secs(120),
        "the worker wrote its records",
        || {
            let got = kafka::read_to_end(
                stack,
                &out,
                Isolation::ReadUncommitted,
                Duration::from_secs(5),
            );
            let ids: Vec<String> = got.iter().map(event_id).collect();
            std::future::ready((ids.len() > 1500).then_some(ids))
        },
    )
    .await;
    let table = eventually(
        Duration::from_secs(120),
        "the archiver committed them",
        || {
            let t = catalog
                .try_read(stack)
                .ok()
                .filter(|t| t.rows >= want.len());
            std::future::ready(t)
        },
    )
    .await;
    assert_exactly(
        &table,
        &want,
        &format!("the operator's archiver\n{}", diag()),
    );
    let writer = table.snapshots[0]
        .summary
        .get("impressions.archive.writer")
        .cloned()
        .unwrap_or_default();
    assert!(
        writer.starts_with("arch-archiver-"),
        "committed by the archiver pod: {writer}"
    );
    let healthy = eventually(Duration::from_secs(60), "ArchiveHealthy", || {
        let api = api.clone();
        async move {
            let p = api.get("arch").await.ok()?;
            let c = conditions::get(&p.status?.conditions, conditions::ARCHIVE_HEALTHY)?.clone();
            (c.status == "True").then_some(c)
        }
    })
    .await;
    assert_eq!(healthy.reason, "ArchiverReady", "{}", diag());

    // status.archive: once every record is committed, its last commit is the table's newest
    // snapshot as pyiceberg reads it, and the group's committed offsets are the topic's end
    let end: i64 = kafka::high_watermarks(stack, &out).values().sum();
    let archive = eventually(Duration::from_secs(60), "status.archive caught up", || {
        let api = api.clone();
        async move {
            let a = api.get("arch").await.ok()?.status?.archive?;
            (a.lag == Some(0) && a.committed_offsets == Some(end) && a.last_commit.is_some())
                .then_some(a)
        }
    })
    .await;
    let table = catalog.read(stack);
    let newest = table.snapshots.last().expect("snapshots").id;
    let commit = archive.last_commit.clone().unwrap();
    assert_eq!(
        commit.snapshot_id, newest,
        "the status names the table's newest snapshot: {archive:?}"
    );
    assert!(
        commit.records > 0 && commit.files > 0 && commit.bytes > 0,
        "{archive:?}"
    );
    assert!(
        commit.latency_seconds > 0.0 && commit.latency_seconds < 30.0,
        "{archive:?}"
    );
    assert_eq!(
        (archive.desired_replicas, archive.partitions),
        (Some(1), Some(4)),
        "Manual mode runs one archiver; the sink has 4 partitions"
    );

    // removing spec.archive removes the archiver's Deployment and ConfigMap (the table stays)
    use k8s_openapi::api::{apps::v1::Deployment, core::v1::ConfigMap};
    use kube::api::{Patch, PatchParams};
    api.patch(
        "arch",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"archive": null}})),
    )
    .await
    .unwrap();
    let (deployments, config_maps) = (
        Api::<Deployment>::namespaced(client.clone(), &ns),
        Api::<ConfigMap>::namespaced(client.clone(), &ns),
    );
    let removed = std::time::Instant::now();
    eventually(
        Duration::from_secs(60),
        "the archiver's Deployment and ConfigMap deleted, status.archive and ArchiveHealthy gone",
        || {
            let (api, deployments, config_maps) =
                (api.clone(), deployments.clone(), config_maps.clone());
            async move {
                let d = deployments.get_opt("arch-archiver").await.ok()?;
                let c = config_maps.get_opt("arch-archiver").await.ok()?;
                let s = api.get("arch").await.ok()?.status?;
                let gone = d.is_none()
                    && c.is_none()
                    && s.archive.is_none()
                    && conditions::get(&s.conditions, conditions::ARCHIVE_HEALTHY).is_none();
                gone.then_some(())
            }
        },
    )
    .await;
    eprintln!(
        "archive removed: children gone after {:.1} s",
        removed.elapsed().as_secs_f64()
    );
    assert!(
        deployments.get_opt("arch-worker").await.unwrap().is_some(),
        "the workers stay"
    );
    assert_eq!(catalog.read(stack).rows, want.len(), "the table stays");
}
