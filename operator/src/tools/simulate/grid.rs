//! The baselines' tuning grids (KEDA+HPA, the Flink decision, our own target) and how a
//! setting becomes an autoscaler.

use super::{
    model::ModelConfig,
    scalers::{Autoscaler, Flink, KedaHpa},
};

/// One setting of a baseline's grid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Setting {
    Keda {
        lag_threshold: f64,
        down_window: f64,
        limit_to_partitions_with_lag: bool,
        even_distribution: bool,
    },
    Flink {
        target: f64,
        boundary: f64,
        scale_down_interval: f64,
        window: f64,
    },
}

impl Setting {
    pub(super) fn scaler(&self, cfg: &ModelConfig) -> Box<dyn Autoscaler + Send> {
        match *self {
            Setting::Keda {
                lag_threshold,
                down_window,
                limit_to_partitions_with_lag,
                even_distribution,
            } => {
                let mut k = KedaHpa::new(lag_threshold, cfg.min_replicas, cfg.max_replicas);
                k.down_window = down_window;
                k.limit_to_partitions_with_lag = limit_to_partitions_with_lag;
                k.even_distribution = even_distribution;
                Box::new(k)
            }
            Setting::Flink {
                target,
                boundary,
                scale_down_interval,
                window,
            } => {
                let mut f = Flink::new(target, cfg.min_replicas, cfg.max_replicas);
                f.utilization_min = (target - boundary).max(0.05);
                f.utilization_max = (target + boundary).min(1.0);
                f.scale_down_interval = scale_down_interval;
                f.window = window;
                Box::new(f)
            }
        }
    }
}

/// Our grid: the policy's target utilization first, then 0.75 to 0.9 (the other knobs as the
/// policy has them).
pub fn ours_targets(policy_target: f64) -> Vec<f64> {
    let mut out = vec![policy_target];
    out.extend(
        [0.75, 0.8, 0.85, 0.9]
            .into_iter()
            .filter(|t| (t - policy_target).abs() > 1e-9),
    );
    out
}

/// KEDA+HPA's grid: the default lag threshold (10) and thresholds up to 10⁶, with the HPA's
/// default 300 s scale-down window and 60 s, and KEDA 2.18's `ensureEvenDistributionOfPartitions`
/// and `limitToPartitionsWithLag` off and on. The first setting is the default.
pub fn keda_grid() -> Vec<Setting> {
    let mut out = Vec::new();
    for lag_threshold in [10.0, 1e3, 1e4, 5e4, 1e5, 2.5e5, 5e5, 1e6] {
        for down_window in [300.0, 60.0] {
            for (limit_to_partitions_with_lag, even_distribution) in
                [(false, false), (false, true), (true, false)]
            {
                out.push(Setting::Keda {
                    lag_threshold,
                    down_window,
                    limit_to_partitions_with_lag,
                    even_distribution,
                });
            }
        }
    }
    out
}

/// The Flink decision's grid: target utilization 0.7 (default) and 0.4–0.9, utilization
/// min/max at target ± 0.3 (default) and ± 0.1, scale-down interval 1 h (default) and 15 min,
/// metric window 15 min (default) and 5 min. The first setting is the default.
pub fn flink_grid() -> Vec<Setting> {
    let mut out = Vec::new();
    for target in [0.7, 0.4, 0.5, 0.6, 0.8, 0.9] {
        for boundary in [0.3, 0.1] {
            for scale_down_interval in [3600.0, 900.0] {
                for window in [900.0, 300.0] {
                    out.push(Setting::Flink {
                        target,
                        boundary,
                        scale_down_interval,
                        window,
                    });
                }
            }
        }
    }
    out
}
