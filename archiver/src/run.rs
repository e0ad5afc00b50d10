//! The archiver's loop: records from the consumer thread are decoded into rows, buffered,
//! written into the open data files, and committed with their offsets when a commit is due.
//! Anything uncommitted is dropped on a revocation, a stale or failed commit; the consumer then
//! starts again at the table's offsets, so the table holds each record once. A record that
//! cannot be archived goes to the dead-letter topic ([`crate::dead_letter`]); the commit that
//! covers its offset waits for the broker's acknowledgement.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI64, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use arrow_schema::SchemaRef;
use iceberg::{Catalog, NamespaceIdent, TableIdent, table::Table};
use impressions_worker_core::ratecap::RateCap;
use tokio::sync::mpsc as tokio_mpsc;

use crate::{
    catalog::{self, CatalogError, deadline},
    config::ArchiverConfig,
    dead_letter::DeadLetters,
    error::Error,
    mark::{self, CommitMark},
    metrics::Metrics,
    offsets::{Offsets, Progress},
    roll::{Pending, RollPolicy},
    rows::{self, Decoder, Raw, Row},
    schema::{self, Partitioning},
    source::{Event, OffsetLoader, Request, Source},
    writer::FileSet,
};

/// Fault injection for the exactly-once tests: the archiver aborts (as kill -9 would stop it)
/// at the N-th commit, after its data files are written and before the catalog commit.
pub const FAULT_ABORT_BEFORE_COMMIT_ENV: &str = "ARCHIVER_FAULT_ABORT_BEFORE_COMMIT";

/// Liveness and readiness, read by /healthz and /readyz.
#[derive(Debug, Default)]
pub struct Health {
    pub heartbeat_ms: AtomicI64,
    pub ready: AtomicBool,
}

impl Health {
    fn beat(&self) {
        self.heartbeat_ms.store(now_ms(), Ordering::Release);
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Connects, subscribes and archives until `shutdown` resolves; commits what is pending first.
pub async fn run(
    config: ArchiverConfig,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let avro = apache_avro::Schema::parse_str(impressions_worker_core::avro::IMPRESSION_SCHEMA)
        .map_err(|e| Error::Write(format!("impression.avsc: {e}")))?;
    let table_schema = schema::iceberg_schema(&avro)?;
    let spec = schema::partition_spec(&table_schema, config.table.partitioning)?;
    let timeout = config.catalog_timeout();
    let catalog = catalog::connect(&config.catalog, timeout).await?;
    let namespace = NamespaceIdent::from_strs(config.table.namespace.split('.'))
        .map_err(|e| Error::Write(e.to_string()))?;
    let ident = TableIdent::new(namespace, config.table.name.clone());
    let table = catalog::ensure_table(&*catalog, &ident, table_schema, spec, timeout).await?;
    let arrow_schema: SchemaRef = Arc::new(
        iceberg::arrow::schema_to_arrow_schema(table.metadata().current_schema())
            .map_err(|e| Error::Write(e.to_string()))?,
    );
    tracing::info!(
        table = %ident,
        snapshot = ?table.metadata().current_snapshot_id(),
        offsets = ?catalog::table_offsets(&table, &config.source.topic),
        "table ready"
    );

    let dead_letters = DeadLetters::new(&config, Arc::clone(&metrics))?;
    let (source, high_watermarks) = Source::subscribe(
        &config.source,
        offset_loader(Arc::clone(&catalog), ident.clone(), &config),
        config.kafka_timeout(),
    )?;
    let (events_tx, events) = tokio_mpsc::channel(4 * config.flush_rows.max(1024));
    let (requests, requests_rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("consumer".into())
            .spawn(move || source.run(events_tx, requests_rx, stop))?
    };
    health.beat();
    health.ready.store(true, Ordering::Release);

    let mut archive = Archive {
        catalog,
        table,
        arrow_schema,
        decoder: Decoder::new(avro, config.table.partitioning),
        dead_letters,
        topic: config.source.topic.clone(),
        partitioning: config.table.partitioning,
        target_file_size: config.table.target_file_size_bytes,
        policy: config.roll_policy(),
        timeout,
        cap: config.max_records_per_second.map(RateCap::new),
        // capped, a batch is at most a tenth of a second's worth (the loop keeps turning)
        batch: config
            .max_records_per_second
            .map_or(config.flush_rows, |r| (r / 10).max(1) as usize)
            .min(config.flush_rows),
        metrics,
        requests,
        generation: None,
        progress: Progress::default(),
        pending: Pending::default(),
        rows: Vec::new(),
        files: None,
        commits: 0,
        abort_at: std::env::var(FAULT_ABORT_BEFORE_COMMIT_ENV)
            .ok()
            .and_then(|v| v.parse().ok()),
        writer: format!("{}-{}", hostname(), std::process::id()),
    };
    let result = archive
        .run(events, &health, &high_watermarks, shutdown)
        .await;
    health.ready.store(false, Ordering::Release);
    stop.store(true, Ordering::Release);
    let _ = tokio::task::spawn_blocking(move || poller.join()).await;
    result
}

/// Reads the table's offsets from the consumer thread (blocking on the runtime, with a deadline).
fn offset_loader(
    catalog: Arc<dyn Catalog>,
    ident: TableIdent,
    config: &ArchiverConfig,
) -> OffsetLoader {
    let handle = tokio::runtime::Handle::current();
    let topic = config.source.topic.clone();
    let timeout = config.catalog_timeout();
    Arc::new(move || {
        handle.block_on(async {
            deadline("load_table", timeout, catalog.load_table(&ident))
                .await
                .map(|t| catalog::table_offsets(&t, &topic))
                .map_err(|e| e.to_string())
        })
    })
}

struct Archive {
    catalog: Arc<dyn Catalog>,
    table: Table,
    arrow_schema: SchemaRef,
    decoder: Decoder,
    dead_letters: DeadLetters,
    topic: String,
    partitioning: Partitioning,
    target_file_size: u64,
    policy: RollPolicy,
    timeout: Duration,
    /// `maxRecordsPerSecond`: each record costs its share of a second of busy time.
    cap: Option<RateCap>,
    /// Records taken from the queue in one go.
    batch: usize,
    metrics: Arc<Metrics>,
    requests: mpsc::Sender<Request>,
    /// The consumer generation whose records are taken (None: waiting for an assignment).
    generation: Option<u64>,
    progress: Progress,
    pending: Pending,
    rows: Vec<Row>,
    files: Option<FileSet>,
    commits: u64,
    abort_at: Option<u64>,
    /// This instance (host and process id), named in each snapshot it commits.
    writer: String,
}

impl Archive {
    async fn run(
        &mut self,
        mut events: tokio_mpsc::Receiver<Event>,
        health: &Health,
        high_watermarks: &std::sync::Mutex<Offsets>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        tokio::pin!(shutdown);
        loop {
            health.beat();
            let now = Instant::now();
            let wait = self
                .policy
                .until_due(&self.pending, now)
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_secs(1));
            tokio::select! {
                _ = &mut shutdown => {
                    tracing::info!("stopping: committing what is pending");
                    self.commit().await?;
                    return Ok(());
                }
                got = tokio::time::timeout(wait, events.recv()) => match got {
                    Ok(Some(first)) => {
                        let started = Instant::now();
                        let mut records = usize::from(matches!(first, Event::Record { .. }));
                        self.handle(first).await?;
                        // take what is already queued in one go
                        for _ in 1..self.batch {
                            match events.try_recv() {
                                Ok(event) => {
                                    records += usize::from(matches!(event, Event::Record { .. }));
                                    self.handle(event).await?;
                                }
                                Err(_) => break,
                            }
                        }
                        // an emulated CPU limit: the batch takes its cost, and that is busy time
                        if let Some(cap) = &self.cap {
                            tokio::time::sleep(cap.hold(records, started.elapsed())).await;
                        }
                        self.metrics.busy_seconds.inc_by(started.elapsed().as_secs_f64());
                    }
                    Ok(None) => return Err(Error::Consumer("the consumer thread ended".into())),
                    Err(_) => {}
                },
            }
            if self.policy.commit_due(&self.pending, Instant::now()) {
                let started = Instant::now();
                self.commit().await?;
                self.metrics
                    .busy_seconds
                    .inc_by(started.elapsed().as_secs_f64());
            }
            let lag = self
                .progress
                .lag(&high_watermarks.lock().expect("watermarks lock"));
            self.metrics.consumer_lag.set(lag);
            self.metrics
                .pending_records
                .set(self.pending.records as i64);
        }
    }

    async fn handle(&mut self, event: Event) -> Result<(), Error> {
        match event {
            Event::Assigned {
                generation,
                partitions,
                table_offsets,
            } => {
                self.drop_uncommitted();
                self.generation = Some(generation);
                self.progress = Progress::assigned(&partitions, &table_offsets);
                self.metrics
                    .assigned_partitions
                    .set(partitions.len() as i64);
                self.metrics.rewinds.inc();
            }
            Event::Revoked { generation } => {
                self.drop_uncommitted();
                self.generation = Some(generation);
                self.progress = Progress::default();
                self.metrics.assigned_partitions.set(0);
            }
            Event::Record {
                generation,
                partition,
                offset,
                key,
                payload,
            } => {
                if self.generation != Some(generation) || !self.progress.owns(partition) {
                    return Ok(());
                }
                self.metrics.consumed.inc();
                self.progress.took(partition, offset);
                self.pending.took(Instant::now(), payload.len());
                let raw = Raw {
                    partition,
                    offset,
                    key,
                    payload,
                };
                match self.decoder.decode(&raw.payload) {
                    Ok((bucket, value)) => self.rows.push(Row { bucket, value, raw }),
                    Err(e) => self
                        .dead_letters
                        .send(&raw, &e)
                        .map_err(Error::DeadLetter)?,
                }
                if self.policy.flush_due(&self.pending) {
                    self.flush().await?;
                }
            }
            Event::Fatal(message) => return Err(Error::Consumer(message)),
        }
        Ok(())
    }

    /// Encodes the buffered rows into the open data files.
    async fn flush(&mut self) -> Result<(), Error> {
        self.pending.buffered_rows = 0;
        if self.rows.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.rows);
        let rows::Batches { batches, misfits } = rows::batches_by_bucket(rows, &self.arrow_schema);
        for (raw, e) in &misfits {
            self.dead_letters.send(raw, e).map_err(Error::DeadLetter)?;
        }
        if batches.is_empty() {
            return Ok(());
        }
        if self.files.is_none() {
            let prefix = format!("{}-{}", self.writer, uuid::Uuid::new_v4());
            self.files = Some(
                FileSet::new(
                    &self.table,
                    self.partitioning,
                    self.target_file_size,
                    prefix,
                )
                .map_err(|e| Error::Write(e.to_string()))?,
            );
        }
        let files = self.files.as_mut().expect("opened above");
        for (bucket, batch) in batches {
            tokio::time::timeout(self.timeout, files.write(bucket, batch))
                .await
                .map_err(|_| Error::Write(format!("writing a batch took over {:?}", self.timeout)))?
                .map_err(|e| Error::Write(e.to_string()))?;
        }
        Ok(())
    }

    fn drop_uncommitted(&mut self) {
        if !self.progress.is_empty() {
            tracing::info!(
                records = self.pending.records,
                "uncommitted records dropped"
            );
        }
        self.rows.clear();
        self.files = None;
        self.pending = Pending::default();
        self.progress = Progress::default();
        self.generation = None;
    }

    /// Closes the data files and commits them with their offsets. A stale or failed commit
    /// drops what was taken and asks the consumer to rewind to the table's offsets.
    async fn commit(&mut self) -> Result<(), Error> {
        self.flush().await?;
        if self.progress.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        // the offsets of dead letters go in only once the broker has them
        if let Err(e) = self.dead_letters.settle(self.timeout).await {
            self.metrics.commit_outcome("failed");
            tracing::warn!(error = %e, records = self.pending.records, "commit dropped: dead letters not acknowledged; rewinding to the table's offsets");
            self.drop_uncommitted();
            let _ = self.requests.send(Request::Rewind);
            return Ok(());
        }
        let files = match self.files.take() {
            Some(f) => tokio::time::timeout(self.timeout, f.close())
                .await
                .map_err(|_| {
                    Error::Write(format!("closing data files took over {:?}", self.timeout))
                })?
                .map_err(|e| Error::Write(e.to_string()))?,
            None => Vec::new(),
        };
        self.commits += 1;
        if self.abort_at == Some(self.commits) {
            tracing::error!(
                files = files.len(),
                "fault injection: data files written, aborting before the catalog commit"
            );
            std::process::abort();
        }
        let file_count = files.len() as u64;
        let bytes: u64 = files.iter().map(|f| f.file_size_in_bytes()).sum();
        let small = files
            .iter()
            .filter(|f| f.file_size_in_bytes() < self.target_file_size / 4)
            .count() as u64;
        let paths: Vec<String> = files.iter().map(|f| f.file_path().to_string()).collect();
        let records = self.pending.records;
        let result = catalog::commit(
            Arc::clone(&self.catalog),
            &self.table,
            &self.topic,
            &self.writer,
            &self.progress,
            files,
            self.timeout,
        )
        .await;
        match result {
            Ok(done) => {
                let m = &self.metrics;
                for _ in 0..done.conflicts {
                    m.commit_outcome("conflict");
                }
                m.commit_outcome("committed");
                m.commit_seconds.observe(started.elapsed().as_secs_f64());
                m.commit_files.observe(file_count as f64);
                m.commit_bytes.observe(bytes as f64);
                m.files.inc_by(file_count);
                m.bytes.inc_by(bytes);
                m.small_files.inc_by(small);
                m.committed.inc_by(records);
                m.table_data_files.set(done.table_data_files as i64);
                m.table_average_file_bytes
                    .set((done.table_files_bytes / done.table_data_files.max(1)) as i64);
                m.last_snapshot_id.set(done.snapshot_id);
                let at_ms = now_ms();
                m.last_commit_timestamp.set(at_ms / 1000);
                let commit_mark = CommitMark {
                    v: mark::VERSION,
                    snapshot: done.snapshot_id,
                    at_ms,
                    records,
                    files: file_count,
                    bytes,
                    commit_ms: started.elapsed().as_millis() as u64,
                };
                self.progress.committed();
                let offsets = self.progress.to_commit();
                tracing::info!(
                    snapshot = done.snapshot_id,
                    records,
                    files = file_count,
                    bytes,
                    conflicts = done.conflicts,
                    ?offsets,
                    seconds = started.elapsed().as_secs_f64(),
                    "committed"
                );
                self.table = done.table;
                self.pending = Pending::default();
                let _ = self
                    .requests
                    .send(Request::CommitHint(offsets, commit_mark.render()));
            }
            Err(e) => {
                let outcome = if matches!(e, CatalogError::Stale(_)) {
                    "stale"
                } else {
                    "failed"
                };
                self.metrics.commit_outcome(outcome);
                tracing::warn!(error = %e, records, "commit dropped; rewinding to the table's offsets");
                if outcome == "stale" {
                    self.delete_files(&paths).await;
                }
                self.drop_uncommitted();
                // reload: the next commit's base, and the files' location generator
                self.table = deadline(
                    "load_table",
                    self.timeout,
                    self.catalog.load_table(self.table.identifier()),
                )
                .await?;
                let _ = self.requests.send(Request::Rewind);
            }
        }
        Ok(())
    }

    /// Deletes the data files of a commit that certainly did not go in (a stale one; a commit
    /// that failed otherwise may have gone in, so its files stay).
    async fn delete_files(&self, paths: &[String]) {
        for path in paths {
            let _ = tokio::time::timeout(self.timeout, self.table.file_io().delete(path)).await;
        }
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "archiver".into())
}
