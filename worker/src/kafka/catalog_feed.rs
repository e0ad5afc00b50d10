//! Keeps the shared catalog current from a compacted topic: reads it from the beginning until
//! caught up (the worker is not ready before), then applies updates in small batches while
//! running, so that a catalog change takes effect without a restart.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer, ConsumerContext},
    error::KafkaError,
};

use crate::{
    catalog::{SharedCatalog, Title},
    metrics::Metrics,
};

/// Follows `topic` into `catalog` until `stop`; sets `loaded` once the initial read caught up.
pub fn follow<C: ConsumerContext>(
    consumer: BaseConsumer<C>,
    topic: &str,
    catalog: SharedCatalog,
    metrics: Arc<Metrics>,
    loaded: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> Result<(), KafkaError> {
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions: Vec<i32> = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    if partitions.is_empty() {
        return Err(KafkaError::MetadataFetch(
            rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition,
        ));
    }
    let mut tpl = TopicPartitionList::new();
    let mut remaining = std::collections::HashSet::new();
    for p in &partitions {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)?;
        let (lo, hi) = consumer.fetch_watermarks(topic, *p, Duration::from_secs(10))?;
        if hi > lo {
            remaining.insert(*p);
        }
    }
    consumer.assign(&tpl)?;
    let mut pending: Vec<(i64, Option<Title>)> = Vec::new();
    let mut last_apply = Instant::now();
    while !stop.load(Ordering::Acquire) {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => match parse(&m) {
                Ok(update) => pending.push(update),
                Err(e) => tracing::warn!(
                    partition = m.partition(),
                    offset = m.offset(),
                    "skipping catalog record: {e}"
                ),
            },
            Some(Err(KafkaError::PartitionEOF(p))) => {
                remaining.remove(&p);
            }
            Some(Err(e)) => tracing::warn!(error = %e, "reading the catalog topic"),
            None => {}
        }
        let initial = !loaded.load(Ordering::Acquire);
        let due = if initial {
            remaining.is_empty()
        } else {
            !pending.is_empty() && last_apply.elapsed() >= Duration::from_millis(500)
        };
        if due {
            let n = pending.len() as u64;
            catalog.rcu(|c| c.with_updates(pending.iter().cloned()));
            pending.clear();
            last_apply = Instant::now();
            let size = catalog.load().len();
            metrics.catalog_titles.set(size as i64);
            if initial {
                tracing::info!(titles = size, "catalog loaded");
                loaded.store(true, Ordering::Release);
            } else {
                metrics.catalog_updates.inc_by(n);
                tracing::info!(updates = n, titles = size, "catalog updated");
            }
        }
    }
    Ok(())
}

fn parse(m: &rdkafka::message::BorrowedMessage<'_>) -> Result<(i64, Option<Title>), String> {
    let key = m.key().ok_or("record without key")?;
    let id: i64 = std::str::from_utf8(key)
        .ok()
        .and_then(|k| k.parse().ok())
        .ok_or("key is not a videoId")?;
    match m.payload() {
        None => Ok((id, None)),
        Some(p) => {
            let t: Title = serde_json::from_slice(p).map_err(|e| e.to_string())?;
            if t.video_id != id {
                return Err(format!("key {id} differs from videoId {}", t.video_id));
            }
            Ok((id, Some(t)))
        }
    }
}
