//! Kafka helpers for tests: topics, producing generated traffic, reading a topic back, and
//! a consumer group's committed offsets; the client settings of the SASL_SSL listener.
//!
//! Reads of metadata, watermarks and committed offsets retry the errors a retry may cure (a
//! coordinator that moved or is loading, a broker restarting or hung, a request timing out;
//! [`transient`]) until a deadline: the `try_` functions return the last error after it, the
//! others panic with it.

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use impressions_worker::loadgen::{Generator, Kind, Mix, events};
use rdkafka::{
    ClientConfig, Message, Offset, TopicPartitionList,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{BaseConsumer, Consumer},
    error::{KafkaError, KafkaResult},
    message::{Headers, OwnedMessage},
    producer::{FutureProducer, FutureRecord, Producer},
    types::RDKafkaErrorCode,
};

use crate::Stack;

/// The librdkafka settings of a client of the stack's SASL_SSL listener with `password` (the
/// stack's when `None`): what a pipeline's Secret holds, keyed by property name.
pub fn sasl_settings(stack: &Stack, password: Option<&str>) -> BTreeMap<String, String> {
    let l = stack.sasl();
    let ca = std::fs::read_to_string(&l.ca_file)
        .unwrap_or_else(|e| panic!("{}: {e}", l.ca_file.display()));
    [
        ("security.protocol", "SASL_SSL"),
        ("sasl.mechanism", l.mechanism.as_str()),
        ("sasl.username", l.username.as_str()),
        ("sasl.password", password.unwrap_or(&l.password)),
        ("ssl.ca.pem", ca.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// A client config for the SASL_SSL listener with the stack's credentials.
pub fn sasl_client(stack: &Stack) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &stack.sasl().bootstrap);
    for (k, v) in sasl_settings(stack, None) {
        c.set(k, v);
    }
    c
}

fn admin(stack: &Stack) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_bootstrap)
        .create()
        .expect("admin client")
}

/// Creates a topic (compacted if asked); fails on any error but "already exists".
pub async fn create_topic(stack: &Stack, name: &str, partitions: i32, compacted: bool) {
    let config: &[(&str, &str)] = if compacted {
        &[("cleanup.policy", "compact")]
    } else {
        &[]
    };
    create_topic_with(stack, name, partitions, config).await;
}

/// Creates a topic with topic configs; fails on any error but "already exists".
pub async fn create_topic_with(
    stack: &Stack,
    name: &str,
    partitions: i32,
    config: &[(&str, &str)],
) {
    let mut t = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in config {
        t = t.set(k, v);
    }
    let res = admin(stack)
        .create_topics(&[t], &AdminOptions::new())
        .await
        .expect("create topics");
    for r in res {
        if let Err((topic, e)) = r {
            assert_eq!(
                e,
                rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists,
                "creating {topic}: {e}"
            );
        }
    }
}

/// The stack's broker's settings `names` (node 1), as the broker reports them (its defaults
/// included); a name the broker does not know is left out. 10 s deadline.
pub async fn broker_settings(stack: &Stack, names: &[&str]) -> BTreeMap<String, String> {
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let res = admin(stack)
        .describe_configs(&[rdkafka::admin::ResourceSpecifier::Broker(1)], &opts)
        .await
        .expect("describe the broker's configs");
    let resource = res
        .into_iter()
        .next()
        .expect("one resource")
        .expect("the broker's configs");
    names
        .iter()
        .filter_map(|n| {
            let v = resource.get(n)?.value.clone()?;
            Some(((*n).to_owned(), v))
        })
        .collect()
}

/// Panics unless the stack's broker gives consumer groups of the KIP-848 protocol the
/// heartbeat interval and session timeout tests/stack/stack.sh sets (1 s and 10 s; the broker's
/// defaults are 5 s and 45 s): a test timing their rebalances would fail for a reason of the
/// stack's, not the worker's.
pub async fn require_consumer_group_settings(stack: &Stack) {
    let s = broker_settings(
        stack,
        &[
            "group.consumer.heartbeat.interval.ms",
            "group.consumer.session.timeout.ms",
        ],
    )
    .await;
    let ms = |k: &str| {
        s.get(k)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(u64::MAX)
    };
    assert!(
        ms("group.consumer.heartbeat.interval.ms") <= 1000
            && ms("group.consumer.session.timeout.ms") <= 10_000,
        "the stack's broker gives KIP-848 consumer groups {s:?}, not the 1 s heartbeat and 10 s \
         session tests/stack/stack.sh sets: it was started before those settings; restart it \
         (tests/stack/stack.sh down && tests/stack/stack.sh up)"
    );
}

/// An idempotent producer to the stack's broker.
pub fn producer(stack: &Stack) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .expect("producer")
}

/// Fills a catalog topic with the generator's first `n` titles.
pub async fn fill_catalog(stack: &Stack, topic: &str, n: u32) {
    let p = producer(stack);
    for t in events::catalog(n) {
        let key = t.video_id.to_string();
        let value = serde_json::to_vec(&t).unwrap();
        p.send(
            FutureRecord::to(topic).key(&key).payload(&value),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("catalog record");
    }
}

/// One generated event that was sent.
#[derive(Debug, Clone)]
pub struct Sent {
    pub event_id: String,
    pub kind: Kind,
    pub payload: Vec<u8>,
}

/// Produces `n` generated events (keyed by event id) and returns them.
pub async fn produce_generated(
    stack: &Stack,
    topic: &str,
    seed: u64,
    n: usize,
    titles: u32,
    mix: Mix,
) -> Vec<Sent> {
    let p = producer(stack);
    let mut g = Generator::new(seed, titles, mix);
    let now = impressions_worker::now_ms();
    let sent: Vec<Sent> = (0..n)
        .map(|_| {
            let e = g.next_event(now);
            Sent {
                event_id: e.event_id,
                kind: e.kind,
                payload: e.payload,
            }
        })
        .collect();
    for chunk in sent.chunks(2000) {
        let futs = chunk.iter().map(|s| {
            p.send(
                FutureRecord::to(topic).key(&s.event_id).payload(&s.payload),
                Duration::from_secs(30),
            )
        });
        for r in futures::future::join_all(futs).await {
            r.map_err(|(e, _)| e).expect("delivered");
        }
    }
    p.flush(Duration::from_secs(10)).unwrap();
    sent
}

/// Reads a topic from the beginning until `want` messages arrived (or `timeout` passed) and
/// returns what it read.
pub fn read_topic(stack: &Stack, topic: &str, want: usize, timeout: Duration) -> Vec<OwnedMessage> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_bootstrap)
        .set("group.id", crate::unique("reader"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in partition_ids(&c, topic) {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let deadline = std::time::Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < want && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            out.push(m.detach());
        }
    }
    out
}

/// How a reader sees transactional records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Only committed transactions' records (what downstream consumers of the sink use).
    ReadCommitted,
    /// Every record written, aborted transactions' too.
    ReadUncommitted,
}

/// Reads a whole topic, from the beginning to the end of every partition as of now (the last
/// stable offset for read_committed), as `isolation` sees it. Panics after `timeout`.
pub fn read_to_end(
    stack: &Stack,
    topic: &str,
    isolation: Isolation,
    timeout: Duration,
) -> Vec<OwnedMessage> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_bootstrap)
        .set("group.id", crate::unique("reader"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set(
            "isolation.level",
            match isolation {
                Isolation::ReadCommitted => "read_committed",
                Isolation::ReadUncommitted => "read_uncommitted",
            },
        )
        .create()
        .unwrap();
    let mut remaining: std::collections::HashSet<i32> =
        partition_ids(&c, topic).into_iter().collect();
    let mut tpl = TopicPartitionList::new();
    for p in &remaining {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let deadline = std::time::Instant::now() + timeout;
    let mut out = Vec::new();
    while !remaining.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "{topic}: partitions {remaining:?} not read to their end within {timeout:?}"
        );
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => out.push(m.detach()),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                remaining.remove(&p);
            }
            _ => {}
        }
    }
    out
}

/// The partition ids of a topic (retrying transient errors for up to 30 s; panics after).
fn partition_ids(c: &BaseConsumer, topic: &str) -> Vec<i32> {
    try_partition_ids(c, topic, READ_DEADLINE).unwrap_or_else(|e| panic!("{e:#}"))
}

/// How long the panicking helpers retry transient errors.
const READ_DEADLINE: Duration = Duration::from_secs(30);
/// The longest one attempt may wait for the broker (a hung broker costs this much per attempt).
const PER_ATTEMPT: Duration = Duration::from_secs(3);
/// The pause between attempts.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Whether a retry may cure `e`: a coordinator that moved, is loading or is not known yet
/// (`NotCoordinator` right after a group's first commit), a broker that cannot be reached,
/// restarts or does not answer (`BrokerTransportFailure`, `AllBrokersDown`, time-outs), a
/// partition leader being elected, a topic whose metadata is not propagated yet.
pub fn transient(e: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    e.rdkafka_error_code().is_some_and(|c| {
        matches!(
            c,
            C::NotCoordinator
                | C::CoordinatorLoadInProgress
                | C::CoordinatorNotAvailable
                | C::WaitingForCoordinator
                | C::BrokerTransportFailure
                | C::AllBrokersDown
                | C::BrokerNotAvailable
                | C::Resolve
                | C::OperationTimedOut
                | C::TimedOutQueue
                | C::RequestTimedOut
                | C::NetworkException
                | C::LeaderNotAvailable
                | C::NotLeaderForPartition
                | C::PreferredLeaderNotAvailable
                | C::FencedLeaderEpoch
                | C::UnknownLeaderEpoch
                | C::UnknownTopicOrPartition
                | C::UnknownTopic
                | C::UnknownPartition
                | C::Partial
        )
    })
}

/// Runs `attempt` (given the time it may take) until it succeeds, fails with an error that is not
/// [`transient`], or `within` has passed; the error names `what`, the attempts and the last error.
pub fn retrying<T>(
    what: &str,
    within: Duration,
    mut attempt: impl FnMut(Duration) -> KafkaResult<T>,
) -> anyhow::Result<T> {
    let start = Instant::now();
    let deadline = start + within;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        match attempt(left.clamp(Duration::from_millis(100), PER_ATTEMPT)) {
            Ok(v) => return Ok(v),
            Err(e) if transient(&e) && Instant::now() + RETRY_PAUSE < deadline => {
                std::thread::sleep(RETRY_PAUSE);
            }
            Err(e) => {
                let kind = if transient(&e) { "transient" } else { "fatal" };
                anyhow::bail!(
                    "{what}: {e} ({kind}; {attempts} attempts in {:.1} s)",
                    start.elapsed().as_secs_f64()
                )
            }
        }
    }
}

/// One attempt at a topic's partition ids: an error unless the broker knows the topic and its
/// partitions.
fn partitions_once(c: &BaseConsumer, topic: &str, timeout: Duration) -> KafkaResult<Vec<i32>> {
    let md = c.fetch_metadata(Some(topic), timeout)?;
    let unknown = KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownTopicOrPartition);
    let t = md.topics().first().ok_or(unknown.clone())?;
    if let Some(e) = t.error() {
        return Err(KafkaError::MetadataFetch(e.into()));
    }
    let ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
    if ids.is_empty() {
        return Err(unknown);
    }
    Ok(ids)
}

/// The partition ids of a topic, retrying transient errors for `within`.
pub fn try_partition_ids(
    c: &BaseConsumer,
    topic: &str,
    within: Duration,
) -> anyhow::Result<Vec<i32>> {
    retrying(&format!("partitions of {topic}"), within, |t| {
        partitions_once(c, topic, t)
    })
}

/// A header's value as text.
pub fn header(m: &OwnedMessage, key: &str) -> Option<String> {
    let hs = m.headers()?;
    hs.iter()
        .find(|h| h.key == key)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// The committed offsets of `group` on `topic`, per partition (absent: nothing committed),
/// retrying transient errors for up to 30 s; panics after.
pub fn committed(stack: &Stack, group: &str, topic: &str) -> HashMap<i32, i64> {
    OffsetReader::new(stack, group, topic)
        .committed(READ_DEADLINE)
        .unwrap_or_else(|e| panic!("{e:#}"))
}

/// High watermarks of a topic, per partition, retrying transient errors for up to 30 s; panics
/// after.
pub fn high_watermarks(stack: &Stack, topic: &str) -> HashMap<i32, i64> {
    OffsetReader::new(stack, &crate::unique("watermarks"), topic)
        .high_watermarks(READ_DEADLINE)
        .unwrap_or_else(|e| panic!("{e:#}"))
}

/// A long-lived client reading one topic's high watermarks and one group's committed offsets on
/// it (it never joins the group). It reconnects by itself after a broker restart; every read
/// retries transient errors until its deadline and returns the last error after it.
pub struct OffsetReader {
    consumer: BaseConsumer,
    group: String,
    topic: String,
}

impl std::fmt::Debug for OffsetReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OffsetReader")
            .field("group", &self.group)
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl OffsetReader {
    pub fn new(stack: &Stack, group: &str, topic: &str) -> OffsetReader {
        let consumer = ClientConfig::new()
            .set("bootstrap.servers", &stack.kafka_bootstrap)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .expect("offset reader");
        OffsetReader {
            consumer,
            group: group.to_owned(),
            topic: topic.to_owned(),
        }
    }

    /// The group's committed offsets per partition (absent: nothing committed), within `within`.
    pub fn committed(&self, within: Duration) -> anyhow::Result<HashMap<i32, i64>> {
        let deadline = Instant::now() + within;
        let ids = try_partition_ids(&self.consumer, &self.topic, within)?;
        let left = deadline.saturating_duration_since(Instant::now());
        let what = format!("committed offsets of {} on {}", self.group, self.topic);
        retrying(&what, left, |t| {
            let mut tpl = TopicPartitionList::new();
            for p in &ids {
                tpl.add_partition(&self.topic, *p);
            }
            let got = self.consumer.committed_offsets(tpl, t)?;
            let mut out = HashMap::new();
            for e in got.elements() {
                e.error()?;
                if let Offset::Offset(o) = e.offset() {
                    out.insert(e.partition(), o);
                }
            }
            Ok(out)
        })
    }

    /// The topic's high watermarks per partition, within `within`.
    pub fn high_watermarks(&self, within: Duration) -> anyhow::Result<HashMap<i32, i64>> {
        let deadline = Instant::now() + within;
        let ids = try_partition_ids(&self.consumer, &self.topic, within)?;
        let mut out = HashMap::new();
        for p in ids {
            let left = deadline.saturating_duration_since(Instant::now());
            let what = format!("high watermark of {}/{p}", self.topic);
            let (_, high) = retrying(&what, left, |t| {
                self.consumer.fetch_watermarks(&self.topic, p, t)
            })?;
            out.insert(p, high);
        }
        Ok(out)
    }

    /// The group's lag on the topic (high watermarks less committed offsets; a partition with
    /// nothing committed counts from 0), both read within `within`.
    pub fn lag(&self, within: Duration) -> anyhow::Result<i64> {
        let deadline = Instant::now() + within;
        let high = self.high_watermarks(within)?;
        let done = self.committed(deadline.saturating_duration_since(Instant::now()))?;
        Ok(high
            .iter()
            .map(|(p, h)| h - done.get(p).copied().unwrap_or(0).max(0))
            .sum())
    }
}

/// The topics of an end-to-end pipeline named after `prefix`: `<prefix>-raw` (8 partitions),
/// `-out` (4), `-dlq` (1) and a compacted `-titles` filled with 200 titles. Returns the raw topic.
pub async fn pipeline_topics(stack: &Stack, prefix: &str) -> String {
    let raw = format!("{prefix}-raw");
    for (t, p, compact) in [
        (raw.clone(), 8, false),
        (format!("{prefix}-out"), 4, false),
        (format!("{prefix}-dlq"), 1, false),
        (format!("{prefix}-titles"), 1, true),
    ] {
        create_topic(stack, &t, p, compact).await;
    }
    fill_catalog(stack, &format!("{prefix}-titles"), 200).await;
    raw
}
