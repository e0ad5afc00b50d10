//! The impressions operator: reconciles ImpressionPipelines of its region into worker fleets
//! (Deployment, ConfigMap, Service, PodDisruptionBudget), keeps their status, and scales them.
//!
//! - [`reconcile`]: one reconcile as a fixed sequence (dereference → bounds → children → apply →
//!   status → Events); the children, the status and the Events are pure functions.
//! - [`autoscale`]: signals (Kafka lag, Prometheus throughput) → estimate → decision (pure) in
//!   an evaluation loop that triggers reconciles.
//! - [`quality`]: the DataQuality judgement (pure) and its evaluation loop.
//! - [`schema`]: the raw events' schema read from the workers, its baseline and drift (pure).
//! - [`controller`], [`context`], [`leader`], [`shutdown`], [`http`], [`metrics`]: the runtime.
//! - [`tools`]: `operator simulate` and `operator top`.

pub mod autoscale;
pub mod context;
pub mod controller;
pub mod error;
pub mod http;
pub mod kafka_settings;
pub mod leader;
pub mod metrics;
pub mod quality;
pub mod reconcile;
pub mod schema;
pub mod shutdown;
pub mod tools;

/// The repository of the operator's image (`images/Containerfile`, target `operator`).
pub const OPERATOR_IMAGE_REPOSITORY: &str = "ghcr.io/impressions/operator";
/// The repository of the worker's image (`images/Containerfile`, target `worker`).
pub const WORKER_IMAGE_REPOSITORY: &str = "ghcr.io/impressions/worker";
/// `--worker-image` when none is given: the worker image of this operator's version (the images
/// and the chart's appVersion share the workspace's version).
pub const DEFAULT_WORKER_IMAGE: &str =
    concat!("ghcr.io/impressions/worker:", env!("CARGO_PKG_VERSION"));
/// The repository of the archiver's image (`images/Containerfile`, target `archiver`).
pub const ARCHIVER_IMAGE_REPOSITORY: &str = "ghcr.io/impressions/archiver";
/// `--archiver-image` when none is given: the archiver image of this operator's version.
pub const DEFAULT_ARCHIVER_IMAGE: &str =
    concat!("ghcr.io/impressions/archiver:", env!("CARGO_PKG_VERSION"));
