//! Consumer lag from Kafka through rdkafka: each group's committed offsets against the
//! partitions' watermarks. One client per (cluster, credentials) serves every pipeline on that
//! cluster (it never joins a group: the committed offsets of any group are asked through the
//! admin API, [`super::group_offsets`]), so the operator's threads and memory do not grow with
//! the number of pipelines. It connects with the settings of the pipeline's source Secret (SASL,
//! TLS), as the workers do, and names an authentication or TLS failure instead of reporting a
//! timeout.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use super::group_offsets;
pub use crate::autoscale::model::LagSample;
use crate::kafka_settings::KafkaSettings;
use impressions_crds::pipeline::OffsetReset;
use rdkafka::{
    ClientConfig, ClientContext, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer, ConsumerContext},
    error::KafkaError,
    types::RDKafkaErrorCode,
};

/// Properties of the lag client that a Secret does not change: it never joins or commits.
const OWN: [&str; 2] = ["group.id", "enable.auto.commit"];

/// The group id the shared client is made with; it never joins it (librdkafka needs one for
/// a consumer handle). Each pipeline's group is named per request.
const CLIENT_GROUP: &str = "impressions-operator-lag";

/// The lag client's settings: the Secret's settings over the defaults, as the worker applies
/// them, except [`OWN`].
pub fn lag_client_config(bootstrap: &str, settings: &KafkaSettings) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("socket.timeout.ms", "5000");
    for (k, v) in settings.iter() {
        if !OWN.contains(&k.as_str()) {
            c.set(k, v);
        }
    }
    c.set("group.id", CLIENT_GROUP)
        .set("enable.auto.commit", "false");
    c
}

/// Records the lag consumer's authentication or TLS failure, which librdkafka reports only
/// through the error callback (a request just times out).
#[derive(Debug, Default)]
pub struct LagContext {
    failure: Mutex<Option<String>>,
}

impl ClientContext for LagContext {
    fn error(&self, error: KafkaError, reason: &str) {
        use RDKafkaErrorCode::{
            Authentication, IllegalSASLState, SSL, SaslAuthenticationFailed,
            UnsupportedSASLMechanism,
        };
        let kind = match error.rdkafka_error_code() {
            Some(
                Authentication
                | SaslAuthenticationFailed
                | UnsupportedSASLMechanism
                | IllegalSASLState,
            ) => "authentication failed",
            Some(SSL) => "TLS handshake failed",
            _ => {
                tracing::debug!(error = %error, "lag consumer: {reason}");
                return;
            }
        };
        tracing::warn!(error = %error, "lag consumer: {reason}");
        *self.failure.lock().expect("lag failure lock") = Some(format!(
            "Kafka {kind}: {reason} (the source Secret's security.protocol, sasl.* and ssl.* \
             settings)"
        ));
    }
}

impl ConsumerContext for LagContext {}

type LagConsumer = BaseConsumer<LagContext>;

/// Serves the consumer's queued events (errors, logs) for a moment, then tells why a request
/// failed: the recorded authentication/TLS failure if there is one, else `otherwise`.
fn explain(c: &LagConsumer, otherwise: String) -> String {
    let until = Instant::now() + Duration::from_millis(50);
    while Instant::now() < until {
        let _ = c.poll(Duration::from_millis(10));
    }
    c.context()
        .failure
        .lock()
        .expect("lag failure lock")
        .clone()
        .unwrap_or(otherwise)
}

/// Where a pipeline's lag is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LagTarget {
    pub bootstrap: String,
    pub topic: String,
    pub group: String,
    pub reset: OffsetReset,
    /// The source Secret's settings.
    pub kafka: KafkaSettings,
}

/// A group's lag with what it committed: the sum of its committed offsets and each committed
/// partition's metadata (the archivers write their last commit there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSample {
    pub lag: LagSample,
    pub committed_total: i64,
    pub metadata: Vec<String>,
}

/// Reads lag (blocking; call from a blocking task).
pub trait LagSource: Send + Sync {
    fn sample(&self, t: &LagTarget) -> Result<LagSample, String>;
    /// The lag with the group's committed offsets and their metadata (the archivers' group).
    fn sample_group(&self, t: &LagTarget) -> Result<GroupSample, String> {
        let _ = t;
        Err("this lag source reads no committed metadata".into())
    }
    /// Drops what is kept for `t` (its client), once its pipeline is gone.
    fn forget(&self, _t: &LagTarget) {}
}

/// Every partition's (low, high) watermark in two batched ListOffsets requests (earliest and
/// latest), instead of one request per partition; per partition only if the batch fails.
fn watermarks(
    c: &LagConsumer,
    topic: &str,
    partitions: &[i32],
) -> Result<HashMap<i32, (i64, i64)>, String> {
    let batch = |at: Offset| -> Option<HashMap<i32, i64>> {
        let mut tpl = TopicPartitionList::new();
        for p in partitions {
            tpl.add_partition_offset(topic, *p, at).ok()?;
        }
        let got = c.offsets_for_times(tpl, TIMEOUT).ok()?;
        got.elements()
            .iter()
            .map(|e| match (e.error(), e.offset()) {
                (Ok(()), Offset::Offset(o)) => Some((e.partition(), o)),
                _ => None,
            })
            .collect()
    };
    if let (Some(low), Some(high)) = (batch(Offset::Beginning), batch(Offset::End))
        && partitions
            .iter()
            .all(|p| low.contains_key(p) && high.contains_key(p))
    {
        return Ok(partitions.iter().map(|p| (*p, (low[p], high[p]))).collect());
    }
    partitions
        .iter()
        .map(|p| {
            c.fetch_watermarks(topic, *p, TIMEOUT)
                .map(|w| (*p, w))
                .map_err(|e| explain(c, format!("watermarks: {e}")))
        })
        .collect()
}

/// (group, topic, partition).
type PartitionKey = (String, String, i32);

/// A cluster as reached with one set of credentials: one client each.
type ClientKey = (String, KafkaSettings);

/// A shared client and the (group, topic) pairs that use it.
struct Shared {
    client: Arc<LagConsumer>,
    users: HashSet<(String, String)>,
}

/// The rdkafka implementation.
#[derive(Default)]
pub struct KafkaLag {
    clients: Mutex<HashMap<ClientKey, Shared>>,
    /// (group, topic, partition) → (committed, high watermark) at the previous sample.
    previous: Mutex<HashMap<PartitionKey, (i64, i64)>>,
}

impl std::fmt::Debug for KafkaLag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KafkaLag")
    }
}

const TIMEOUT: Duration = Duration::from_secs(5);

impl KafkaLag {
    /// The client of `t`'s cluster and credentials, made on first use; `t` is counted among its
    /// users. A Secret whose settings changed gets (or shares) another client; the old one goes
    /// with its last user.
    fn client(&self, t: &LagTarget) -> Result<Arc<LagConsumer>, String> {
        let mut map = self.clients.lock().expect("lag clients lock");
        let user = (t.group.clone(), t.topic.clone());
        // A pipeline whose settings changed leaves its previous client.
        let key = (t.bootstrap.clone(), t.kafka.clone());
        map.retain(|k, s| {
            if *k != key {
                s.users.remove(&user);
            }
            *k == key || !s.users.is_empty()
        });
        if let Some(s) = map.get_mut(&key) {
            s.users.insert(user);
            return Ok(s.client.clone());
        }
        let c: LagConsumer = lag_client_config(&t.bootstrap, &t.kafka)
            .create_with_context(LagContext::default())
            .map_err(|e| format!("Kafka client settings (source Secret): {e}"))?;
        let client = Arc::new(c);
        map.insert(
            key,
            Shared {
                client: client.clone(),
                users: HashSet::from([user]),
            },
        );
        Ok(client)
    }

    /// Clients currently kept (one per cluster and credentials in use).
    pub fn clients(&self) -> usize {
        self.clients.lock().expect("lag clients lock").len()
    }
}

impl LagSource for KafkaLag {
    fn forget(&self, t: &LagTarget) {
        let user = (t.group.clone(), t.topic.clone());
        self.clients
            .lock()
            .expect("lag clients lock")
            .retain(|_, s| {
                s.users.remove(&user);
                !s.users.is_empty()
            });
        self.previous
            .lock()
            .expect("previous lock")
            .retain(|(group, topic, _), _| !(group == &t.group && topic == &t.topic));
    }

    fn sample(&self, t: &LagTarget) -> Result<LagSample, String> {
        self.sample_group(t).map(|g| g.lag)
    }

    fn sample_group(&self, t: &LagTarget) -> Result<GroupSample, String> {
        let c = self.client(t)?;
        let md = c
            .fetch_metadata(Some(&t.topic), TIMEOUT)
            .map_err(|e| explain(&c, format!("Kafka unreachable: {e}")))?;
        let topic = md
            .topics()
            .iter()
            .find(|x| x.name() == t.topic)
            .ok_or("topic missing")?;
        if topic.error().is_some() || topic.partitions().is_empty() {
            return Err(format!("topic {} missing", t.topic));
        }
        let partitions: Vec<i32> = topic.partitions().iter().map(|p| p.id()).collect();
        let committed =
            group_offsets::committed(c.client(), &t.group, &t.topic, &partitions, TIMEOUT)
                .map_err(|e| explain(&c, e))?;
        let mut s = LagSample {
            partitions: partitions.len() as i32,
            total: 0,
            max_partition: 0,
            end_offsets: 0,
        };
        let mut committed_total = 0;
        let marks = watermarks(&c, &t.topic, &partitions)?;
        // The lock is taken after the network calls: a slow cluster never holds other pipelines.
        let mut previous = self.previous.lock().expect("previous lock");
        for p in &partitions {
            let (low, high) = marks
                .get(p)
                .copied()
                .ok_or_else(|| format!("no watermarks for partition {p}"))?;
            let offset = committed.get(p).and_then(|c| c.offset);
            committed_total += offset.unwrap_or(0);
            let at = offset.map_or(Offset::Invalid, Offset::Offset);
            let mut lag = partition_lag(at, low, high, t.reset);
            if let Some(o) = offset {
                let key = (t.group.clone(), t.topic.clone(), *p);
                if resting_on_marker(previous.insert(key, (o, high)), o, high) {
                    lag = 0;
                }
            }
            s.total += lag;
            s.max_partition = s.max_partition.max(lag);
            s.end_offsets += high;
        }
        drop(previous);
        // Reached and authenticated: an earlier failure is over.
        c.context().failure.lock().expect("lag failure lock").take();
        Ok(GroupSample {
            lag: s,
            committed_total,
            metadata: committed
                .into_values()
                .map(|c| c.metadata)
                .filter(|m| !m.is_empty())
                .collect(),
        })
    }
}

/// One partition's lag. Without a committed offset the group starts where its reset policy
/// says: at the end (no lag) or at the oldest *retained* offset (never the whole history that
/// retention already deleted). Negative lag (a commit racing the watermark) is 0.
pub fn partition_lag(committed: Offset, low: i64, high: i64, reset: OffsetReset) -> i64 {
    match committed {
        Offset::Offset(c) => (high - c.max(low)).max(0),
        _ => match reset {
            OffsetReset::Latest => 0,
            OffsetReset::Earliest => (high - low).max(0),
        },
    }
}

/// A transactional producer ends each transaction with a control record that consumers never
/// receive, so an idle group's commit can rest one below the high watermark forever. A lag of
/// exactly 1 that did not move since the previous sample is that marker, not work.
pub fn resting_on_marker(previous: Option<(i64, i64)>, committed: i64, high: i64) -> bool {
    high - committed == 1 && previous == Some((committed, high))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Secret;

    fn secret(data: &[(&str, &str)]) -> Secret {
        use k8s_openapi::ByteString;
        Secret {
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn secret_keys_are_read_as_the_worker_reads_them() {
        let s = KafkaSettings::from_secret(&secret(&[
            ("security.protocol", "SASL_SSL"),
            ("SASL_MECHANISM", "SCRAM-SHA-512"),
            ("sasl.password", "hunter2"),
        ]));
        assert_eq!(s.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(s.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(s.get("sasl.password"), Some("hunter2"));
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("sasl.password"), "{shown}");
    }

    #[test]
    fn the_lag_client_takes_the_secret_but_never_joins_or_commits() {
        let s = KafkaSettings::from_pairs([
            ("security.protocol".to_owned(), "SASL_SSL".to_owned()),
            ("group.id".to_owned(), "elsewhere".to_owned()),
            ("enable.auto.commit".to_owned(), "true".to_owned()),
            ("socket.timeout.ms".to_owned(), "9000".to_owned()),
        ]);
        let c = lag_client_config("k:9093", &s);
        assert_eq!(c.get("bootstrap.servers"), Some("k:9093"));
        assert_eq!(c.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(c.get("socket.timeout.ms"), Some("9000"));
        assert_eq!(c.get("group.id"), Some(CLIENT_GROUP));
        assert_eq!(c.get("enable.auto.commit"), Some("false"));
    }

    #[test]
    fn lag_rules() {
        assert_eq!(
            partition_lag(Offset::Offset(90), 0, 100, OffsetReset::Latest),
            10
        );
        assert_eq!(
            partition_lag(Offset::Offset(120), 0, 100, OffsetReset::Latest),
            0
        );
        assert_eq!(
            partition_lag(Offset::Invalid, 500, 800, OffsetReset::Latest),
            0
        );
        assert_eq!(
            partition_lag(Offset::Invalid, 500, 800, OffsetReset::Earliest),
            300,
            "retention-deleted data is not lag"
        );
        assert_eq!(
            partition_lag(Offset::Offset(10), 500, 800, OffsetReset::Earliest),
            300,
            "a commit below the log start counts from the start"
        );
    }

    #[test]
    fn a_resting_transaction_marker_is_not_lag() {
        assert!(
            !resting_on_marker(None, 99, 100),
            "first sight: could be a real event"
        );
        assert!(resting_on_marker(Some((99, 100)), 99, 100));
        assert!(
            !resting_on_marker(Some((98, 100)), 99, 100),
            "the group is moving"
        );
        assert!(
            !resting_on_marker(Some((99, 101)), 99, 101),
            "new data arrived"
        );
        assert!(
            !resting_on_marker(Some((90, 100)), 90, 100),
            "a real backlog"
        );
    }
}
