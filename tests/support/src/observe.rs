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

/// A time origin shared by samplers and logs: seconds since it, and the wall clock at it (to
/// place timestamps of other processes' logs on the same axis).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
    unix: f64,
}

impl Clock {
    pub fn new() -> Clock {
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        Clock {
            start: Instant::now(),
            unix,
        }
    }

    /// Seconds since the origin.
    pub fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// The wall-clock time at the origin, seconds since the Unix epoch.
    pub fn unix_origin(&self) -> f64 {
        self.unix
    }

    /// A wall-clock time (seconds since the Unix epoch) on this clock's axis.
    pub fn of_unix(&self, unix: f64) -> f64 {
        unix - self.unix
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// When the Deployment was read (seconds on the sampler's clock).
    pub t: f64,
    pub input: f64,
    /// The Deployment's `spec.replicas` (0 when it does not exist).
    pub replicas: i32,
    pub ready: i32,
    /// The consumer group's lag (read just after the Deployment).
    pub lag: i64,
    /// Whether the Deployment existed (a change from or to a missing Deployment is its creation
    /// or deletion, not a scaling action).
    pub deployment: bool,
}

impl Sample {
    pub fn lag_seconds(&self) -> f64 {
        self.lag as f64 / self.input.max(1.0)
    }
}

/// A sample that could not be taken: when, and why (the read that failed after its retries).
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub t: f64,
    pub why: String,
}

/// How long one sample's Kafka reads may retry transient errors before the sample is skipped.
const SAMPLE_DEADLINE: Duration = Duration::from_secs(5);

/// Samples replicas and lag about every second until dropped. A sample whose Deployment or lag
/// cannot be read (an API server or broker fault) is skipped, never guessed: replicas are
/// unknown, not 0, and lag is unknown, not 0. Skipped samples are kept with their reason.
#[derive(Debug)]
pub struct Sampler {
    samples: Arc<Mutex<Vec<Sample>>>,
    skipped: Arc<Mutex<Vec<Skipped>>>,
    input: Arc<Mutex<f64>>,
    task: tokio::task::JoinHandle<()>,
    clock: Clock,
}

impl Sampler {
    pub fn start(client: Client, ns: &str, deploy: &str, raw: &str, group: &str) -> Sampler {
        Sampler::with_clock(Clock::new(), client, ns, deploy, raw, group)
    }

    /// A sampler whose times are on `clock` (several samplers and logs on one axis).
    pub fn with_clock(
        clock: Clock,
        client: Client,
        ns: &str,
        deploy: &str,
        raw: &str,
        group: &str,
    ) -> Sampler {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let skipped = Arc::new(Mutex::new(Vec::new()));
        let input = Arc::new(Mutex::new(0.0));
        let api: Api<Deployment> = Api::namespaced(client, ns);
        let deploy = deploy.to_owned();
        let reader = Arc::new(kafka::OffsetReader::new(Stack::get(), group, raw));
        let (out, skips, rate) = (samples.clone(), skipped.clone(), input.clone());
        let task = tokio::spawn(async move {
            let skip = |t: f64, why: String| skips.lock().unwrap().push(Skipped { t, why });
            loop {
                let d = api.get_opt(&deploy).await;
                let t = clock.now();
                match d {
                    Err(e) => skip(t, format!("Deployment {deploy}: {e}")),
                    Ok(d) => {
                        let r = reader.clone();
                        let lag = tokio::task::spawn_blocking(move || r.lag(SAMPLE_DEADLINE)).await;
                        match lag {
                            Ok(Ok(lag)) => {
                                let input = *rate.lock().unwrap();
                                let replicas = d.as_ref().and_then(|d| d.spec.as_ref()?.replicas);
                                let deployment = d.is_some();
                                let ready = d.and_then(|d| d.status?.ready_replicas).unwrap_or(0);
                                out.lock().unwrap().push(Sample {
                                    t,
                                    input,
                                    replicas: replicas.unwrap_or(0),
                                    ready,
                                    lag,
                                    deployment,
                                });
                            }
                            Ok(Err(e)) => skip(t, format!("lag: {e:#}")),
                            Err(e) => skip(t, format!("lag: {e}")),
                        }
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        Sampler {
            samples,
            skipped,
            input,
            task,
            clock,
        }
    }

    pub fn set_input(&self, rate: f64) {
        *self.input.lock().unwrap() = rate;
    }

    pub fn now(&self) -> f64 {
        self.clock.now()
    }

    pub fn clock(&self) -> Clock {
        self.clock
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

    /// The samples skipped from `from` until `to`.
    pub fn skipped(&self, from: f64, to: f64) -> Vec<Skipped> {
        self.skipped
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.t >= from && s.t < to)
            .cloned()
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

    /// Nothing lost, nothing invented. Duplicates are not part of it: each caller checks them
    /// against the pipeline's guarantee (0 under ExactlyOnce, a stated bound under AtLeastOnce).
    pub fn complete(&self) -> bool {
        self.missing_records == 0 && self.unexpected_records == 0 && self.missing_dead_letters == 0
    }
}
