//! Watching a pipeline during end-to-end and chaos runs: its Deployment's replicas and the
//! consumer group's lag, sampled about every second, and the account of every event sent.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use impressions_worker::loadgen::Kind;
use k8s_openapi::api::apps::v1::Deployment;
use kube::{Api, Client};
use rdkafka::Message;
use serde::Serialize;

use crate::{
    Stack,
    kafka::{self, Isolation},
    worker::event_id,
};

#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub t: f64,
    pub input: f64,
    pub replicas: i32,
    pub ready: i32,
    pub lag: i64,
}

impl Sample {
    pub fn lag_seconds(&self) -> f64 {
        self.lag as f64 / self.input.max(1.0)
    }
}

/// Samples replicas and lag every second until dropped.
#[derive(Debug)]
pub struct Sampler {
    samples: Arc<Mutex<Vec<Sample>>>,
    input: Arc<Mutex<f64>>,
    task: tokio::task::JoinHandle<()>,
    start: Instant,
}

impl Sampler {
    pub fn start(client: Client, ns: &str, deploy: &str, raw: &str, group: &str) -> Sampler {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let input = Arc::new(Mutex::new(0.0));
        let start = Instant::now();
        let api: Api<Deployment> = Api::namespaced(client, ns);
        let (deploy, raw, group) = (deploy.to_owned(), raw.to_owned(), group.to_owned());
        let (out, rate) = (samples.clone(), input.clone());
        let task = tokio::spawn(async move {
            loop {
                // No sample while the API server cannot be read (replicas are unknown, not 0).
                let Ok(d) = api.get_opt(&deploy).await else {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                };
                let replicas = d.as_ref().and_then(|d| d.spec.as_ref()?.replicas);
                let ready = d.and_then(|d| d.status?.ready_replicas).unwrap_or(0);
                let (raw2, group2) = (raw.clone(), group.clone());
                let lag = tokio::task::spawn_blocking(move || {
                    let stack = Stack::get();
                    let high = kafka::high_watermarks(stack, &raw2);
                    let done = kafka::committed(stack, &group2, &raw2);
                    high.iter()
                        .map(|(p, h)| h - done.get(p).copied().unwrap_or(0).max(0))
                        .sum::<i64>()
                })
                .await;
                // No sample while Kafka cannot be read (a broker fault): lag is unknown, not 0.
                let Ok(lag) = lag else {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                };
                let input = *rate.lock().unwrap();
                out.lock().unwrap().push(Sample {
                    t: start.elapsed().as_secs_f64(),
                    input,
                    replicas: replicas.unwrap_or(0),
                    ready,
                    lag,
                });
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        Sampler {
            samples,
            input,
            task,
            start,
        }
    }

    pub fn set_input(&self, rate: f64) {
        *self.input.lock().unwrap() = rate;
    }

    pub fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    pub fn since(&self, t: f64) -> Vec<Sample> {
        self.samples
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.t >= t)
            .copied()
            .collect()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What came out of a pipeline against what was sent.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Account {
    pub events_sent: usize,
    pub records_expected: usize,
    pub records_distinct: usize,
    pub dead_letters_expected: usize,
    pub dead_letters_distinct: usize,
    /// Valid impressions with no record.
    pub missing_records: usize,
    /// Records of ids never sent as valid impressions.
    pub unexpected_records: usize,
    /// Invalid events with no dead letter.
    pub missing_dead_letters: usize,
    /// Records and dead letters seen more than once.
    pub duplicates: usize,
}

/// How often each event id came out as a record and as a dead letter.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    pub records: HashMap<String, usize>,
    pub dead_letters: HashMap<String, usize>,
}

impl Outputs {
    /// Reads the output and dead-letter topics to their end.
    pub fn read(stack: &Stack, out: &str, dlq: &str, isolation: Isolation) -> Outputs {
        let mut o = Outputs::default();
        for m in kafka::read_to_end(stack, out, isolation, Duration::from_secs(120)) {
            *o.records.entry(event_id(&m)).or_default() += 1;
        }
        for m in kafka::read_to_end(stack, dlq, isolation, Duration::from_secs(60)) {
            let id = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
            *o.dead_letters.entry(id).or_default() += 1;
        }
        o
    }
}

impl Account {
    /// Accounts for `sent` in what came out (records of other runs are ignored).
    pub fn of(sent: &HashMap<String, Kind>, o: &Outputs) -> Account {
        let extra = |m: &HashMap<String, usize>, id: &String| m.get(id).map_or(0, |n| n - 1);
        let mut a = Account {
            events_sent: sent.len(),
            records_expected: 0,
            records_distinct: 0,
            dead_letters_expected: 0,
            dead_letters_distinct: 0,
            missing_records: 0,
            unexpected_records: 0,
            missing_dead_letters: 0,
            duplicates: 0,
        };
        for (id, kind) in sent {
            let (rec, dead) = (o.records.contains_key(id), o.dead_letters.contains_key(id));
            a.records_distinct += usize::from(rec);
            a.dead_letters_distinct += usize::from(dead);
            a.duplicates += extra(&o.records, id) + extra(&o.dead_letters, id);
            if kind.is_record() {
                a.records_expected += 1;
                a.missing_records += usize::from(!rec);
            } else {
                a.unexpected_records += usize::from(rec);
            }
            if kind.reject_reason().is_some() {
                a.dead_letters_expected += 1;
                a.missing_dead_letters += usize::from(!dead);
            }
        }
        a
    }

    /// Reads the output and dead-letter topics to their end and accounts for `sent`.
    pub fn take(
        stack: &Stack,
        sent: &HashMap<String, Kind>,
        out: &str,
        dlq: &str,
        isolation: Isolation,
    ) -> Account {
        let o = Outputs::read(stack, out, dlq, isolation);
        let mut a = Account::of(sent, &o);
        a.unexpected_records += o
            .records
            .keys()
            .filter(|id| !sent.contains_key(*id))
            .count();
        a
    }

    /// Nothing lost, nothing invented.
    pub fn complete(&self) -> bool {
        self.missing_records == 0 && self.unexpected_records == 0 && self.missing_dead_letters == 0
    }
}
