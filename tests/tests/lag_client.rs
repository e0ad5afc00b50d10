//! The operator's lag reader on the real broker: one client per cluster and credentials serves
//! every pipeline's group (committed offsets asked per group through the admin API), the lag of
//! each group is its own, and a cluster's client goes with its last pipeline.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use impressions_crds::pipeline::OffsetReset;
use impressions_operator::{
    autoscale::signals::kafka_lag::{KafkaLag, LagSource, LagTarget},
    kafka_settings::KafkaSettings,
};
use impressions_tests::{Stack, blackhole::BlackHole, kafka, unique};
use rdkafka::{
    ClientConfig, Offset, TopicPartitionList,
    consumer::{BaseConsumer, CommitMode, Consumer},
    producer::FutureRecord,
};

const PARTITIONS: i32 = 4;
const PER_PARTITION: i64 = 100;

/// Commits `offset` on every partition of `topic` for `group`.
fn commit(stack: &Stack, group: &str, topic: &str, offset: i64) {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_bootstrap)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Offset(offset))
            .expect("offset");
    }
    kafka::retrying("commit", Duration::from_secs(30), |_| {
        c.commit(&tpl, CommitMode::Sync)
    })
    .expect("commit");
}

fn target(bootstrap: &str, topic: &str, group: &str, reset: OffsetReset) -> LagTarget {
    LagTarget {
        bootstrap: bootstrap.to_owned(),
        topic: topic.to_owned(),
        group: group.to_owned(),
        reset,
        kafka: KafkaSettings::default(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_client_per_cluster_reads_every_group_and_goes_with_its_last_pipeline() {
    let stack = Stack::get();
    let topic = unique("lagclient");
    kafka::create_topic(stack, &topic, PARTITIONS, false).await;
    let producer = kafka::producer(stack);
    for p in 0..PARTITIONS {
        for i in 0..PER_PARTITION {
            producer
                .send(
                    FutureRecord::to(&topic)
                        .partition(p)
                        .key(&format!("{i}"))
                        .payload("x"),
                    Duration::from_secs(10),
                )
                .await
                .map_err(|(e, _)| e)
                .expect("delivered");
        }
    }
    let (a, b, none, none2) = (unique("ga"), unique("gb"), unique("gnone"), unique("gnone"));
    commit(stack, &a, &topic, 10);
    commit(stack, &b, &topic, 60);

    let lag = Arc::new(KafkaLag::default());
    let bs = &stack.kafka_bootstrap;
    let ta = target(bs, &topic, &a, OffsetReset::Latest);
    let tb = target(bs, &topic, &b, OffsetReset::Latest);
    let tn = target(bs, &topic, &none, OffsetReset::Earliest);
    let tl = target(bs, &topic, &none2, OffsetReset::Latest);
    let sa = sample(&lag, &ta).await.expect("group a");
    let sb = sample(&lag, &tb).await.expect("group b");
    let sn = sample(&lag, &tn).await.expect("no commits, earliest");
    let sl = sample(&lag, &tl).await.expect("no commits, latest");
    assert_eq!(sa.partitions, PARTITIONS);
    assert_eq!(sa.total, (PER_PARTITION - 10) * PARTITIONS as i64, "{sa:?}");
    assert_eq!(sa.max_partition, PER_PARTITION - 10, "{sa:?}");
    assert_eq!(sb.total, (PER_PARTITION - 60) * PARTITIONS as i64, "{sb:?}");
    assert_eq!(sn.total, PER_PARTITION * PARTITIONS as i64, "{sn:?}");
    assert_eq!(sl.total, 0, "{sl:?}");
    assert_eq!(sa.end_offsets, PER_PARTITION * PARTITIONS as i64);
    assert_eq!(
        lag.clients(),
        1,
        "four groups on one cluster share one client"
    );

    // A group moves: its lag follows, the other's does not.
    commit(stack, &a, &topic, 90);
    let sa = sample(&lag, &ta).await.expect("group a again");
    assert_eq!(sa.total, 10 * PARTITIONS as i64, "{sa:?}");
    assert_eq!(sample(&lag, &tb).await.expect("b").total, sb.total);

    // A cluster that never answers: a client of its own, an error within the deadline, and
    // the healthy cluster's pipelines unaffected.
    let hole = BlackHole::start();
    let th = target(&hole.address(), &topic, &a, OffsetReset::Latest);
    let t0 = Instant::now();
    let err = sample(&lag, &th).await.expect_err("black hole");
    assert!(t0.elapsed() < Duration::from_secs(12), "{:?}", t0.elapsed());
    assert!(err.contains("Kafka unreachable"), "{err}");
    hole.wait_accepted(1, Duration::from_secs(5), "the lag client");
    assert_eq!(lag.clients(), 2);
    assert!(sample(&lag, &tb).await.is_ok());

    // Each client goes with its last pipeline.
    lag.forget(&th);
    assert_eq!(lag.clients(), 1);
    for t in [&ta, &tb, &tn] {
        lag.forget(t);
        assert_eq!(lag.clients(), 1, "{} still uses the cluster", tl.group);
    }
    lag.forget(&tl);
    assert_eq!(lag.clients(), 0);
}

async fn sample(
    lag: &Arc<KafkaLag>,
    t: &LagTarget,
) -> Result<impressions_operator::autoscale::signals::kafka_lag::LagSample, String> {
    let (lag, t) = (lag.clone(), t.clone());
    tokio::task::spawn_blocking(move || lag.sample(&t))
        .await
        .expect("join")
}
