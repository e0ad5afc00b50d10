//! `ScalingPolicy`: the bounds and behaviour SREs allow the autoscaler, cluster-wide.

// The printcolumn(...) attributes repeat `type_`; clippy reads that as a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The bounds and behaviour within which the operator may scale pipelines. Owned by SREs. A
/// pipeline names its policy in spec.scaling.policyRef, or gets its region's default policy.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "impressions.dev",
    version = "v1alpha1",
    kind = "ScalingPolicy",
    shortname = "spol",
    category = "impressions",
    doc = "The bounds and behaviour within which the operator may scale pipelines, owned by SREs.",
    printcolumn(
        name = "Default-For",
        type_ = "string",
        json_path = ".spec.defaultForRegion"
    ),
    printcolumn(name = "Min", type_ = "integer", json_path = ".spec.minReplicas"),
    printcolumn(name = "Max", type_ = "integer", json_path = ".spec.maxReplicas"),
    printcolumn(
        name = "Target",
        type_ = "number",
        json_path = ".spec.targetUtilization"
    ),
    printcolumn(name = "Lag-SLO", type_ = "integer", json_path = ".spec.lagSloSeconds"),
    printcolumn(name = "Paused", type_ = "boolean", json_path = ".spec.paused"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self.minReplicas <= self.maxReplicas")
    .message("minReplicas must not exceed maxReplicas"))]
#[x_kube(validation = kube::core::Rule::new(
    "self.onMissingMetrics.action != 'Fixed' || !has(self.onMissingMetrics.replicas) || (self.onMissingMetrics.replicas >= self.minReplicas && self.onMissingMetrics.replicas <= self.maxReplicas)"
).message("onMissingMetrics.replicas must lie within [minReplicas, maxReplicas]"))]
#[x_kube(validation = kube::core::Rule::new("self.utilizationTolerance < self.targetUtilization")
    .message("utilizationTolerance must be smaller than targetUtilization"))]
#[x_kube(validation = kube::core::Rule::new("self.lagSloSeconds >= self.evaluationIntervalSeconds")
    .field_path(".lagSloSeconds")
    .message("lagSloSeconds must not be shorter than evaluationIntervalSeconds: the operator looks at the lag once per evaluation"))]
#[x_kube(validation = kube::core::Rule::new("self.catchUpSeconds >= self.evaluationIntervalSeconds")
    .field_path(".catchUpSeconds")
    .message("catchUpSeconds must not be shorter than evaluationIntervalSeconds: a backlog cannot be worked off faster than the operator evaluates"))]
pub struct ScalingPolicySpec {
    /// Marks this policy as the default of a region: pipelines of that region without a
    /// policyRef use it. `*` makes it the default of every region without one of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new(
        "self == '*' || self.matches('^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$')"
    ).message("must be * or a region: a label value of at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit"))]
    #[schemars(length(min = 1, max = 63))]
    pub default_for_region: Option<String>,

    /// The lowest replica count of any pipeline under this policy.
    #[serde(default = "default_min")]
    #[schemars(range(min = 0, max = 1000))]
    pub min_replicas: i32,

    /// The highest replica count of any pipeline under this policy.
    #[serde(default = "default_max")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,

    /// The busy fraction each replica should run at (0 < u ≤ 1); the rest is headroom.
    #[serde(default = "default_target")]
    #[x_kube(validation = kube::core::Rule::new("self > 0.0 && self <= 1.0")
        .message("targetUtilization must be in (0, 1]"))]
    pub target_utilization: f64,

    /// Hysteresis: no change while utilization stays within target ± this tolerance.
    #[serde(default = "default_tolerance")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub utilization_tolerance: f64,

    /// The hard ceiling of the busiest replica's busy fraction. With P partitions only some
    /// replica counts change how many partitions the busiest replica holds, so keeping it under
    /// target + tolerance can jump far (64 partitions: from ~34 replicas to 64). When that count
    /// is more than 10 % above the cheapest count whose busiest replica stays under this ceiling
    /// (and whose average stays at the target), the cheaper count is chosen and the decision says
    /// so. Load that cycles faster than a scaling round trip is held at the count that carries
    /// its recent peak at this utilization. In (0, 1]; a ceiling below targetUtilization +
    /// utilizationTolerance counts as that sum (it cannot be stricter than the soft limit).
    #[serde(default = "default_busiest_ceiling")]
    #[x_kube(validation = kube::core::Rule::new("self > 0.0 && self <= 1.0")
        .message("busiestReplicaCeiling must be in (0, 1]"))]
    pub busiest_replica_ceiling: f64,

    /// The lag SLO: the backlog, in seconds of input, a pipeline should stay under. At least
    /// evaluationIntervalSeconds.
    #[serde(default = "default_lag_slo")]
    #[schemars(range(min = 1, max = 86400))]
    pub lag_slo_seconds: u32,

    /// How fast a backlog should be worked off, in seconds: backlog / catch-up time is added to
    /// the target rate. At least evaluationIntervalSeconds.
    #[serde(default = "default_catch_up")]
    #[schemars(range(min = 1, max = 86400))]
    pub catch_up_seconds: u32,

    /// How often pipelines are evaluated, in seconds.
    #[serde(default = "default_interval")]
    #[schemars(range(min = 5, max = 3600))]
    pub evaluation_interval_seconds: u32,

    /// The consumption pause a consumer-group change costs, in seconds: a change must be worth it.
    #[serde(default = "default_rebalance")]
    #[schemars(range(min = 0, max = 3600))]
    pub rebalance_cost_seconds: u32,

    /// How scale-ups happen.
    #[serde(default = "ScaleBehavior::default_up")]
    pub scale_up: ScaleBehavior,

    /// How scale-downs happen.
    #[serde(default = "ScaleBehavior::default_down")]
    pub scale_down: ScaleBehavior,

    /// What to do when lag or throughput metrics are missing or stale. Never scales down.
    #[serde(default)]
    pub on_missing_metrics: MissingMetrics,

    /// Daily UTC windows in which no scale-down happens (scale-ups still do), each given once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["start".into(), "end".into()]))]
    #[schemars(length(max = 24))]
    pub freeze_windows: Vec<FreezeWindow>,

    /// Stops all scaling of the pipelines under this policy; their replicas stay as they are.
    #[serde(default)]
    pub paused: bool,

    /// PromQL templates for the worker signals. `{namespace}` and `{pipeline}` are substituted.
    #[serde(default)]
    pub queries: PrometheusQueries,

    /// Predictive pre-scaling: the arrival rate forecast one lead time ahead from the
    /// pipeline's own history (daily and weekly seasons). Off by default.
    #[serde(default)]
    pub predictive: PredictiveScaling,
}

/// Predictive pre-scaling from the pipeline's own arrival history in Prometheus: MSTL with a
/// daily and a weekly season (augurs), refitted every few minutes, forecasts the arrival rate one
/// lead time ahead (a pod's start + the rebalance + one evaluation). The forecast only raises
/// the replica count, never lowers it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self.minHistoryHours * 3600.0 >= 2.0 * double(self.seasonSeconds)")
    .field_path(".minHistoryHours")
    .message("minHistoryHours must cover two seasons (2 × seasonSeconds): a season is learnt from at least two of its cycles"))]
pub struct PredictiveScaling {
    /// Off: no forecast. ForecastOnly: the forecast is written to the pipeline's status and
    /// its error exported, nothing acts on it. Scale: the operator also scales up ahead of it.
    #[serde(default)]
    pub mode: PredictiveMode,
    /// Hours of the pipeline's history needed before a forecast is made (at least two
    /// seasons: the daily season is learnt from two days; the weekly one is added once two
    /// weeks are there). Fractions of an hour go with a compressed `seasonSeconds`.
    #[serde(default = "default_min_history_hours")]
    #[schemars(range(min = 0.0, max = 2016.0))]
    pub min_history_hours: f64,
    /// The forecast's recent error (the mean of |forecast − actual| / actual over the last
    /// hour's buckets) above which it is not acted on: the decision is the reactive one.
    #[serde(default = "default_max_forecast_error")]
    #[x_kube(validation = kube::core::Rule::new("self > 0.0 && self <= 10.0")
        .message("maxForecastError must be in (0, 10]"))]
    pub max_forecast_error: f64,
    /// The length of the traffic's daily cycle, in seconds (86400); the weekly season is seven
    /// of them. Shorter values compress a day, for tests and synthetic traffic.
    #[serde(default = "default_season_seconds")]
    #[schemars(range(min = 60, max = 86400))]
    pub season_seconds: u32,
}

impl Default for PredictiveScaling {
    fn default() -> Self {
        Self {
            mode: PredictiveMode::Off,
            min_history_hours: default_min_history_hours(),
            max_forecast_error: default_max_forecast_error(),
            season_seconds: default_season_seconds(),
        }
    }
}

/// What the forecast does.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PredictiveMode {
    /// No forecast.
    #[default]
    Off,
    /// Forecast and report (status, metric) without acting.
    ForecastOnly,
    /// Forecast, report, and scale up ahead of the forecast (never down on it).
    Scale,
}

/// Limits on one direction of scaling.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self.maxStepPercent > 0 || self.maxStepReplicas > 0")
    .message("at least one of maxStepPercent and maxStepReplicas must be positive"))]
pub struct ScaleBehavior {
    /// A change in this direction is made only after the recommendation held for this long
    /// (seconds); a scale-down then goes to the highest recommendation within the window. At
    /// most an hour: the operator keeps an hour of recommendations, a longer window never holds.
    #[schemars(range(min = 0, max = 3600))]
    pub stabilization_window_seconds: u32,
    /// The largest step of one decision, in percent of the current replicas.
    #[schemars(range(min = 0, max = 1000))]
    pub max_step_percent: u32,
    /// The largest step of one decision, in replicas (the larger of the two limits applies).
    #[schemars(range(min = 0, max = 1000))]
    pub max_step_replicas: u32,
    /// No further change in this direction for this long after a change (seconds).
    #[schemars(range(min = 0, max = 86400))]
    pub cooldown_seconds: u32,
}

impl ScalingPolicySpec {
    /// The built-in policy: every field at its default, as an SRE reads an empty ScalingPolicy.
    /// It applies to a pipeline with no policyRef in a region without a default policy.
    pub fn builtin() -> Self {
        serde_json::from_value(serde_json::json!({}))
            .expect("every ScalingPolicy field has a default")
    }
}

/// The default `rebalanceCostSeconds`: the backlog one scaling action adds, in seconds of the
/// group's arrival, under the workers' default group protocol (KIP-848), measured on the local
/// stack by `make bench-rebalance` (docs/results/bench-rebalance.json, run `stack`, protocol
/// Consumer, `lost_seconds`): medians 0.08 s (one worker leaving), 0.13 s (one joining),
/// 0.25 s (three leaving together) and 0.46 s (three joining), rounded up to the field's whole
/// seconds (it was 5, a stop-the-world rebalance's).
pub const DEFAULT_REBALANCE_COST_SECONDS: u32 = 1;

impl ScaleBehavior {
    /// Scale-ups: immediate, in one step to the computed need (up to 11× or +4 per decision),
    /// 30 s apart.
    pub fn default_up() -> Self {
        Self {
            stabilization_window_seconds: 0,
            max_step_percent: 1000,
            max_step_replicas: 4,
            cooldown_seconds: 30,
        }
    }
    /// Scale-downs: after 5 min of lower recommendations, in one step to the highest of them,
    /// 2 min apart.
    pub fn default_down() -> Self {
        Self {
            stabilization_window_seconds: 300,
            max_step_percent: 100,
            max_step_replicas: 0,
            cooldown_seconds: 120,
        }
    }
}

/// Behaviour on missing or stale metrics.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self.action != 'Fixed' || has(self.replicas)")
    .message("onMissingMetrics.replicas is required when action is Fixed"))]
pub struct MissingMetrics {
    /// Hold: keep the current replicas. Fixed: go up to `replicas` (never down).
    #[serde(default)]
    pub action: MissingMetricsAction,
    /// The replica count for action Fixed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: Option<i32>,
    /// Metrics older than this many seconds count as missing.
    #[serde(default = "default_stale")]
    #[schemars(range(min = 1, max = 3600))]
    pub stale_after_seconds: u32,
}

impl Default for MissingMetrics {
    fn default() -> Self {
        Self {
            action: MissingMetricsAction::Hold,
            replicas: None,
            stale_after_seconds: default_stale(),
        }
    }
}

/// What to do on missing metrics.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MissingMetricsAction {
    /// Keep the current replicas.
    #[default]
    Hold,
    /// Scale up to a fixed count if below it; never scale down.
    Fixed,
}

/// A daily UTC window without scale-downs, `HH:MM` to `HH:MM` (may wrap past midnight; the end
/// is not in the window, so a window cannot start and end at the same minute).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = kube::core::Rule::new("self.start != self.end")
    .field_path(".end")
    .message("a freeze window must not end when it starts: it would be empty"))]
pub struct FreezeWindow {
    /// Start of the window, `HH:MM` UTC.
    #[x_kube(validation = kube::core::Rule::new("self.matches('^([01][0-9]|2[0-3]):[0-5][0-9]$')")
        .message("must be a UTC time of day as HH:MM"))]
    #[schemars(length(min = 5, max = 5))]
    pub start: String,
    /// End of the window, `HH:MM` UTC.
    #[x_kube(validation = kube::core::Rule::new("self.matches('^([01][0-9]|2[0-3]):[0-5][0-9]$')")
        .message("must be a UTC time of day as HH:MM"))]
    #[schemars(length(min = 5, max = 5))]
    pub end: String,
}

/// Every `{name}` in a query template is one the operator substitutes (a misspelt one would reach
/// Prometheus as is and fail every query).
const QUERY_PLACEHOLDER_RULE: &str =
    "self.findAll('[{][A-Za-z_]+[}]').all(p, p in ['{namespace}', '{pipeline}', '{window}'])";
const QUERY_PLACEHOLDER_MESSAGE: &str =
    "the only placeholders are {namespace}, {pipeline} and {window}";

/// PromQL templates for the worker signals; the defaults match the worker's metric names.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusQueries {
    /// Events processed per second by the whole pipeline.
    #[serde(default = "default_processed_query")]
    #[x_kube(validation = kube::core::Rule::new(QUERY_PLACEHOLDER_RULE).message(QUERY_PLACEHOLDER_MESSAGE))]
    #[schemars(length(min = 1, max = 2048))]
    pub processed_rate: String,
    /// Average busy fraction (0..1) of the pipeline's workers.
    #[serde(default = "default_busy_query")]
    #[x_kube(validation = kube::core::Rule::new(QUERY_PLACEHOLDER_RULE).message(QUERY_PLACEHOLDER_MESSAGE))]
    #[schemars(length(min = 1, max = 2048))]
    pub busy_fraction: String,
    /// Average fraction (0..1) of their CPU limit the pipeline's workers use for events (all
    /// their threads' CPU time, less each worker's fixed CPU — what it uses idle — once the
    /// worker has measured it, over the limit); no series without a CPU limit. The busy fraction the capacity
    /// estimate divides by is the larger of this and `busyFraction`: under a CPU limit the
    /// processing threads' busy time leaves out what librdkafka's threads and CFS throttling
    /// take from the same quota.
    #[serde(default = "default_cpu_query")]
    #[x_kube(validation = kube::core::Rule::new(QUERY_PLACEHOLDER_RULE).message(QUERY_PLACEHOLDER_MESSAGE))]
    #[schemars(length(min = 1, max = 2048))]
    pub cpu_fraction: String,
    /// Total consumer lag as the workers report it; used with the two above to rebuild a
    /// pipeline's recent history after an operator restart.
    #[serde(default = "default_lag_query")]
    #[x_kube(validation = kube::core::Rule::new(QUERY_PLACEHOLDER_RULE).message(QUERY_PLACEHOLDER_MESSAGE))]
    #[schemars(length(min = 1, max = 2048))]
    pub lag: String,
    /// Running workers of the pipeline (for the rebuilt history).
    #[serde(default = "default_replicas_query")]
    #[x_kube(validation = kube::core::Rule::new(QUERY_PLACEHOLDER_RULE).message(QUERY_PLACEHOLDER_MESSAGE))]
    #[schemars(length(min = 1, max = 2048))]
    pub replicas: String,
    /// The window of the rate() in the default queries (`{window}`), e.g. `1m`; not zero.
    #[serde(default = "default_rate_window")]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^[0-9]+[smh]$')")
        .message("must be a Prometheus duration such as 30s, 1m or 1h"))]
    #[x_kube(validation = kube::core::Rule::new("!self.matches('^0+[smh]$')")
        .message("must not be zero: a rate() over an empty window has no value"))]
    #[schemars(length(min = 2, max = 8))]
    pub rate_window: String,
}

impl Default for PrometheusQueries {
    fn default() -> Self {
        Self {
            processed_rate: default_processed_query(),
            busy_fraction: default_busy_query(),
            cpu_fraction: default_cpu_query(),
            lag: default_lag_query(),
            replicas: default_replicas_query(),
            rate_window: default_rate_window(),
        }
    }
}

fn default_min() -> i32 {
    1
}
fn default_max() -> i32 {
    64
}
fn default_target() -> f64 {
    0.7
}
fn default_tolerance() -> f64 {
    0.1
}
fn default_busiest_ceiling() -> f64 {
    0.9
}
fn default_lag_slo() -> u32 {
    60
}
fn default_catch_up() -> u32 {
    120
}
fn default_interval() -> u32 {
    15
}
fn default_rebalance() -> u32 {
    DEFAULT_REBALANCE_COST_SECONDS
}
fn default_stale() -> u32 {
    60
}
fn default_processed_query() -> String {
    "sum(rate(impressions_worker_events_processed_total{namespace=\"{namespace}\",pipeline=\"{pipeline}\"}[{window}]))".to_owned()
}
fn default_busy_query() -> String {
    "avg(rate(impressions_worker_busy_seconds_total{namespace=\"{namespace}\",pipeline=\"{pipeline}\"}[{window}]))".to_owned()
}
fn default_cpu_query() -> String {
    // Per worker: (CPU − its fixed part) / limit: the CPU that grows with the events over the
    // whole limit (a saturated worker leaves no room for the fixed part: docs/autoscaling.md);
    // the whole CPU over the limit while the fixed part is unmeasured.
    let sel = "{namespace=\"{namespace}\",pipeline=\"{pipeline}\"}";
    let cpu = format!("rate(impressions_worker_cpu_seconds_total{sel}[{{window}}])");
    let (limit, idle) = (
        format!("impressions_worker_cpu_limit_cores{sel}"),
        format!("impressions_worker_cpu_idle_cores{sel}"),
    );
    format!("avg(clamp_min(({cpu} - {idle}) / {limit}, 0) or ({cpu} / {limit}))")
}
fn default_lag_query() -> String {
    "sum(impressions_worker_consumer_lag{namespace=\"{namespace}\",pipeline=\"{pipeline}\"})"
        .to_owned()
}
fn default_replicas_query() -> String {
    "count(impressions_worker_busy_seconds_total{namespace=\"{namespace}\",pipeline=\"{pipeline}\"})".to_owned()
}
fn default_min_history_hours() -> f64 {
    48.0
}
fn default_max_forecast_error() -> f64 {
    0.2
}
fn default_season_seconds() -> u32 {
    86_400
}
fn default_rate_window() -> String {
    "1m".to_owned()
}
