//! The Kafka side (IO): one thread polls the consumer and hands records to the archiver's loop
//! through a channel, tagged with a generation. Assignments are where exactly once starts: in
//! the rebalance callback the table's offsets are read (the catalog, with a deadline) and the
//! assigned partitions start there, never at the group's committed offsets (a hint only, kept
//! for lag monitoring). Every assignment, revocation and rewind starts a new generation; the loop
//! ignores records of an older one, so nothing read before a seek is archived after it.
//!
//! The group uses the eager `range` assignor: a rebalance revokes every partition before it
//! assigns, so an assignment is always the whole set a consumer owns.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc,
    },
    time::Duration,
};

use rdkafka::{
    ClientConfig, ClientContext, Offset, Statistics, TopicPartitionList,
    consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance},
};
use tokio::sync::mpsc as tokio_mpsc;

use crate::{config::SourceConfig, offsets::Offsets};

/// What the consumer thread hands to the archiver's loop, in order.
#[derive(Debug)]
pub enum Event {
    /// The partitions owned from now on, starting at the table's offsets (absent: beginning).
    Assigned {
        generation: u64,
        partitions: Vec<i32>,
        table_offsets: Offsets,
    },
    /// Every partition was taken away.
    Revoked { generation: u64 },
    Record {
        generation: u64,
        partition: i32,
        offset: i64,
        key: Option<Vec<u8>>,
        payload: Vec<u8>,
    },
    /// The consumer cannot go on safely (the table's offsets could not be read at an
    /// assignment, a seek failed).
    Fatal(String),
}

/// What the archiver's loop asks of the consumer thread.
#[derive(Debug)]
pub enum Request {
    /// Seek every owned partition back to the table's offsets (a commit was dropped).
    Rewind,
    /// Store the offsets a commit left as the group's committed offsets (a hint), each with
    /// the commit's mark as its metadata ([`crate::mark`]).
    CommitHint(Offsets, String),
}

/// Reads the table's offsets of the topic (blocking, with its own deadline).
pub type OffsetLoader = Arc<dyn Fn() -> Result<Offsets, String> + Send + Sync>;

/// The consumer's context: the rebalance callback and the statistics.
pub struct SourceContext {
    topic: String,
    load: OffsetLoader,
    generation: AtomicU64,
    events: Mutex<Vec<Event>>,
    /// High watermark of each assigned partition, from librdkafka's statistics.
    pub high_watermarks: Arc<Mutex<Offsets>>,
}

impl std::fmt::Debug for SourceContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceContext")
            .field("topic", &self.topic)
            .finish()
    }
}

impl SourceContext {
    fn push(&self, event: Event) {
        self.events.lock().expect("events lock").push(event);
    }

    fn next_generation(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Sets each element of `tpl` to start at the table's offset; returns what was assigned.
    fn start_at_table(&self, tpl: &TopicPartitionList) -> Result<(Vec<i32>, Offsets), String> {
        let table = (self.load)()?;
        let mut partitions = Vec::new();
        for mut elem in tpl.elements_for_topic(&self.topic) {
            let p = elem.partition();
            let start = table
                .get(&p)
                .map_or(Offset::Beginning, |o| Offset::Offset(*o));
            elem.set_offset(start).map_err(|e| e.to_string())?;
            partitions.push(p);
        }
        Ok((partitions, table))
    }
}

impl ClientContext for SourceContext {
    fn stats(&self, stats: Statistics) {
        let Some(topic) = stats.topics.get(&self.topic) else {
            return;
        };
        let mut hw = self.high_watermarks.lock().expect("watermarks lock");
        hw.clear();
        for (p, s) in &topic.partitions {
            if *p >= 0 && s.fetch_state == "active" {
                hw.insert(*p, s.hi_offset);
            }
        }
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => match self.start_at_table(tpl) {
                Ok((partitions, table_offsets)) => {
                    tracing::info!(
                        ?partitions,
                        ?table_offsets,
                        "assigned; starting at the table's offsets"
                    );
                    let generation = self.next_generation();
                    self.push(Event::Assigned {
                        generation,
                        partitions,
                        table_offsets,
                    });
                }
                Err(e) => self.push(Event::Fatal(format!(
                    "reading the table's offsets at an assignment: {e}"
                ))),
            },
            Rebalance::Revoke(_) => {
                let generation = self.next_generation();
                tracing::info!("partitions revoked; uncommitted records dropped");
                self.push(Event::Revoked { generation });
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }
}

/// The consumer and its thread's inputs.
pub struct Source {
    consumer: BaseConsumer<SourceContext>,
    topic: String,
    kafka_timeout: Duration,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("topic", &self.topic)
            .finish()
    }
}

impl Source {
    /// Creates the consumer and subscribes to the topic.
    pub fn subscribe(
        config: &SourceConfig,
        load: OffsetLoader,
        kafka_timeout: Duration,
    ) -> Result<(Self, Arc<Mutex<Offsets>>), rdkafka::error::KafkaError> {
        let high_watermarks = Arc::new(Mutex::new(Offsets::new()));
        let context = SourceContext {
            topic: config.topic.clone(),
            load,
            generation: AtomicU64::new(0),
            events: Mutex::new(Vec::new()),
            high_watermarks: Arc::clone(&high_watermarks),
        };
        let mut cc = ClientConfig::new();
        for (k, v) in &config.kafka {
            cc.set(k, v);
        }
        cc.set("bootstrap.servers", &config.bootstrap_servers)
            .set("group.id", &config.consumer_group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("partition.assignment.strategy", "range")
            .set("auto.offset.reset", "earliest")
            .set("statistics.interval.ms", "5000");
        let consumer: BaseConsumer<SourceContext> = cc.create_with_context(context)?;
        consumer.subscribe(&[&config.topic])?;
        Ok((
            Source {
                consumer,
                topic: config.topic.clone(),
                kafka_timeout,
            },
            high_watermarks,
        ))
    }

    /// Polls until `stop` is set, sending events to `events` and serving `requests`.
    pub fn run(
        self,
        events: tokio_mpsc::Sender<Event>,
        requests: mpsc::Receiver<Request>,
        stop: Arc<AtomicBool>,
    ) {
        while !stop.load(Ordering::Acquire) {
            while let Ok(request) = requests.try_recv() {
                self.serve(request);
            }
            let message = self.consumer.poll(Duration::from_millis(100));
            let generation = self.consumer.context().generation.load(Ordering::Acquire);
            let pending =
                std::mem::take(&mut *self.consumer.context().events.lock().expect("events lock"));
            for event in pending {
                if events.blocking_send(event).is_err() {
                    return;
                }
            }
            let record = match message {
                None => continue,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "consumer error");
                    continue;
                }
                Some(Ok(m)) => {
                    use rdkafka::Message;
                    Event::Record {
                        generation,
                        partition: m.partition(),
                        offset: m.offset(),
                        key: m.key().map(<[u8]>::to_vec),
                        payload: m.payload().unwrap_or_default().to_vec(),
                    }
                }
            };
            if events.blocking_send(record).is_err() {
                return;
            }
        }
        // leave the group now rather than at the session timeout
        self.consumer.unsubscribe();
    }

    fn serve(&self, request: Request) {
        let ctx = self.consumer.context();
        match request {
            Request::Rewind => match self.rewind() {
                Ok((partitions, table_offsets)) => {
                    let generation = ctx.next_generation();
                    ctx.push(Event::Assigned {
                        generation,
                        partitions,
                        table_offsets,
                    });
                }
                Err(e) => ctx.push(Event::Fatal(format!(
                    "rewinding to the table's offsets: {e}"
                ))),
            },
            Request::CommitHint(offsets, mark) => {
                let mut tpl = TopicPartitionList::new();
                for (p, o) in offsets {
                    let mut e = tpl.add_partition(&self.topic, p);
                    let _ = e.set_offset(Offset::Offset(o));
                    e.set_metadata(mark.as_str());
                }
                if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
                    tracing::warn!(error = %e, "storing the group's offsets (a hint) failed");
                }
            }
        }
    }

    fn rewind(&self) -> Result<(Vec<i32>, Offsets), String> {
        let assignment = self.consumer.assignment().map_err(|e| e.to_string())?;
        let table = (self.consumer.context().load)()?;
        let mut partitions = Vec::new();
        for elem in assignment.elements_for_topic(&self.topic) {
            let p = elem.partition();
            let start = table
                .get(&p)
                .map_or(Offset::Beginning, |o| Offset::Offset(*o));
            self.consumer
                .seek(&self.topic, p, start, self.kafka_timeout)
                .map_err(|e| format!("partition {p}: {e}"))?;
            partitions.push(p);
        }
        Ok((partitions, table))
    }
}
