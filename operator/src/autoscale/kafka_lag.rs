//! Consumer lag from Kafka through rdkafka: the group's committed offsets against the
//! partitions' watermarks. A consumer per (cluster, group) is kept; it never joins the group.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use impressions_crds::pipeline::OffsetReset;
use rdkafka::{
    ClientConfig, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
};

/// The lag of a group on a topic at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LagSample {
    pub partitions: i32,
    pub total: i64,
    pub max_partition: i64,
    /// Sum of the partitions' high watermarks (its growth is the input rate).
    pub end_offsets: i64,
}

/// Where a pipeline's lag is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LagTarget {
    pub bootstrap: String,
    pub topic: String,
    pub group: String,
    pub reset: OffsetReset,
}

/// Reads lag (blocking; call from a blocking task).
pub trait LagSource: Send + Sync {
    fn sample(&self, t: &LagTarget) -> Result<LagSample, String>;
}

/// (group, topic, partition).
type PartitionKey = (String, String, i32);

/// The rdkafka implementation.
#[derive(Default)]
pub struct KafkaLag {
    consumers: Mutex<HashMap<(String, String), Arc<BaseConsumer>>>,
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
    fn consumer(&self, bootstrap: &str, group: &str) -> Result<Arc<BaseConsumer>, String> {
        let mut map = self.consumers.lock().expect("lag consumers lock");
        if let Some(c) = map.get(&(bootstrap.to_owned(), group.to_owned())) {
            return Ok(c.clone());
        }
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("socket.timeout.ms", "5000")
            .create()
            .map_err(|e| e.to_string())?;
        let c = Arc::new(c);
        map.insert((bootstrap.to_owned(), group.to_owned()), c.clone());
        Ok(c)
    }
}

impl LagSource for KafkaLag {
    fn sample(&self, t: &LagTarget) -> Result<LagSample, String> {
        let c = self.consumer(&t.bootstrap, &t.group)?;
        let md = c
            .fetch_metadata(Some(&t.topic), TIMEOUT)
            .map_err(|e| format!("Kafka unreachable: {e}"))?;
        let topic = md
            .topics()
            .iter()
            .find(|x| x.name() == t.topic)
            .ok_or("topic missing")?;
        if topic.error().is_some() || topic.partitions().is_empty() {
            return Err(format!("topic {} missing", t.topic));
        }
        let mut tpl = TopicPartitionList::new();
        for p in topic.partitions() {
            tpl.add_partition(&t.topic, p.id());
        }
        let committed = c
            .committed_offsets(tpl, TIMEOUT)
            .map_err(|e| format!("committed offsets: {e}"))?;
        let mut s = LagSample {
            partitions: topic.partitions().len() as i32,
            total: 0,
            max_partition: 0,
            end_offsets: 0,
        };
        let mut previous = self.previous.lock().expect("previous lock");
        for e in committed.elements() {
            let (low, high) = c
                .fetch_watermarks(&t.topic, e.partition(), TIMEOUT)
                .map_err(|e| format!("watermarks: {e}"))?;
            let mut lag = partition_lag(e.offset(), low, high, t.reset);
            if let Offset::Offset(o) = e.offset() {
                let key = (t.group.clone(), t.topic.clone(), e.partition());
                if resting_on_marker(previous.insert(key, (o, high)), o, high) {
                    lag = 0;
                }
            }
            s.total += lag;
            s.max_partition = s.max_partition.max(lag);
            s.end_offsets += high;
        }
        Ok(s)
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
