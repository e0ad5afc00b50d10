//! The autoscaler's vocabulary, shared by the estimate, the decision, the history and the
//! evaluation loop: what the signals said, the limits the policy sets, the estimate of demand
//! and capacity, and the decision with its explanation. Types only, no logic.

/// What the signals said at one evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Signals {
    /// Seconds since an arbitrary epoch (monotonic within a pipeline's history).
    pub now: f64,
    /// Replicas running now (the operator's current count).
    pub replicas: i32,
    /// Partitions of the source topic.
    pub partitions: i32,
    /// Total consumer lag (events), if Kafka answered.
    pub lag: Option<f64>,
    /// Events/s arriving on the topic (watermark deltas), if known.
    pub input_rate: Option<f64>,
    /// Events/s processed by all workers (Prometheus), if fresh.
    pub processed_rate: Option<f64>,
    /// Average busy fraction of the workers (0..1), if fresh.
    pub busy_fraction: Option<f64>,
    /// Workers reporting metrics (Prometheus), if known: the capacity per replica divides by
    /// these rather than by `replicas`, so pending or crash-looping pods do not make each worker
    /// look weaker (and the fleet over-scale).
    pub workers: Option<f64>,
    /// The lag is a stand-in: the last good read standing in for a failed one (within
    /// `staleAfterSeconds`); the operator could not read the source cluster this time.
    pub lag_stale: bool,
    /// The throughput (processed rate, busy fraction) is such a stand-in: Prometheus failed.
    pub throughput_stale: bool,
}

impl Signals {
    /// A signal is a stand-in. The decision never scales down on it, scales up only on a stale
    /// throughput (workers are unlikely to read a source cluster the operator could not), and
    /// the evaluation counts as a gap in the scale-down window.
    pub fn stale(&self) -> bool {
        self.lag_stale || self.throughput_stale
    }
}

/// The ScalingPolicy as the decision reads it: bounds, targets and steps, the pipeline's
/// narrowing and the freeze windows already applied (see [`super::effective`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub min: i32,
    pub max: i32,
    pub target_utilization: f64,
    pub tolerance: f64,
    /// The hard ceiling of the busiest replica's busy fraction (`busiestReplicaCeiling`): a
    /// count whose busiest replica stays under it is taken instead of a much larger one that
    /// keeps it under target + tolerance.
    pub busiest_ceiling: f64,
    pub lag_slo_seconds: f64,
    pub catch_up_seconds: f64,
    pub rebalance_cost_seconds: f64,
    /// Seconds after a replica change during which a measured capacity mixes the fleets before
    /// and after it (the rate window plus the rebalance); the last settled figure stands in.
    pub capacity_settle_seconds: f64,
    /// Seconds from asking for a pod until it consumes (the evaluator may pass what it
    /// measured; a default otherwise). Part of a scaling round trip.
    pub pod_start_seconds: f64,
    pub up: Step,
    pub down: Step,
    /// Replica count to go up to when metrics are missing (never down); hold when `None`.
    pub missing_metrics_replicas: Option<i32>,
    /// A signal whose last successful read is older than this counts as missing; a younger one
    /// stands in for a failed read (`onMissingMetrics.staleAfterSeconds`).
    pub stale_after_seconds: f64,
    pub paused: bool,
    /// No scale-down now (inside a freeze window).
    pub frozen: bool,
}

/// Limits of one direction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    pub stabilization_seconds: f64,
    pub max_percent: f64,
    pub max_replicas: i32,
    pub cooldown_seconds: f64,
}

/// A decision and its explanation.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub replicas: i32,
    /// CamelCase: ScaleUp, ScaleUpForBacklog, ScaleDown, Hold…, NoChange.
    pub reason: &'static str,
    pub message: String,
    /// What the model recommends before stabilization, steps and cooldowns.
    pub recommended: i32,
    pub metrics_available: bool,
    /// Scale-up is blocked because more replicas did not add capacity.
    pub ineffective_scale_up: bool,
    /// Estimated seconds to drain the backlog at the current processing rate.
    pub backlog_seconds: Option<f64>,
    pub capacity_per_replica: Option<f64>,
    /// The capacity was measured now (not carried over while the fleet settles).
    pub capacity_measured: bool,
    pub arrival_rate: Option<f64>,
    /// The workers processed (nearly) nothing while a backlog waited: a stalled fleet.
    pub stalled: bool,
}

/// What the model estimates from one evaluation's signals, before stabilization windows, steps
/// and cooldowns ([`super::estimate`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// Events/s arriving.
    pub arrival: f64,
    /// Events/s one replica processes when fully busy: the median of this evaluation's measure
    /// and the others since the last change (within the smoothing window), or carried over.
    pub capacity: f64,
    /// This evaluation's own measure of it, when there is one.
    pub measured_capacity: Option<f64>,
    /// The capacity was measured now (not carried over while the fleet settles).
    pub capacity_measured: bool,
    /// Seconds to drain the backlog at the rate it is being worked off (infinite if nothing
    /// moves).
    pub backlog_seconds: f64,
    /// The backlog is above the lag SLO.
    pub over_slo: bool,
    /// Arrival / the running replicas' capacity.
    pub utilization: f64,
    /// The replica count the model recommends.
    pub recommended: i32,
    /// The numbers behind the recommendation, for the decision's message.
    pub why: String,
}

/// The lag of a group on a topic at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LagSample {
    pub partitions: i32,
    pub total: i64,
    pub max_partition: i64,
    /// Sum of the partitions' high watermarks (its growth is the input rate).
    pub end_offsets: i64,
}

/// The outcome of one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Replicas running when the evaluation was made.
    pub from: i32,
    pub decision: Decision,
    pub lag: Option<LagSample>,
    pub processed_rate: Option<f64>,
    /// Why metrics are missing, when they are.
    pub problem: Option<String>,
    /// What the arrival forecast said (predictive scaling on).
    pub forecast: Option<ForecastReport>,
}

/// What the arrival forecast said at one evaluation, for the status and the metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastReport {
    pub mode: impressions_crds::policy::PredictiveMode,
    /// Learning, Ready, ErrorTooHigh or Unavailable.
    pub state: &'static str,
    /// The highest arrival (events/s) expected within the lead time.
    pub arrival: Option<f64>,
    pub lead_seconds: f64,
    /// The forecast's recent mean relative error.
    pub recent_error: Option<f64>,
    /// Seconds of history the forecast knows.
    pub history_seconds: f64,
    /// The replicas the forecast calls for (at the target utilization, partition-aware).
    pub replicas: Option<i32>,
    /// What it says, in words.
    pub message: String,
}

/// One point of a pipeline's recent history, as Prometheus recorded it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistoryPoint {
    /// Unix seconds.
    pub at: f64,
    pub processed_rate: f64,
    pub busy_fraction: f64,
    pub lag: f64,
    pub replicas: i32,
}
