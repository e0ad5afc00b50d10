//! The policy's `predictive` section as the forecast reads it: the bucket the history is kept
//! in, the seasons in buckets, how often the model is refitted, and the thresholds.

use impressions_crds::policy::{PredictiveMode, PredictiveScaling};

/// Buckets per season: 288 (5 minutes) with the default 86,400 s season.
pub const BUCKETS_PER_SEASON: u32 = 288;
/// Seasons of history kept: two weeks (the weekly season is learnt from two of its cycles) and
/// a day, at most 15 × 288 buckets per pipeline.
pub const SEASONS_KEPT: usize = 15;
/// The refit period in seasons: hourly with a day-long season.
pub const REFITS_PER_SEASON: f64 = 24.0;

/// What the forecast needs of the policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    pub mode: PredictiveMode,
    /// Seconds of history before a forecast is made.
    pub min_history_seconds: f64,
    /// The recent error above which the forecast is not acted on.
    pub max_error: f64,
    /// The daily season, in seconds.
    pub season_seconds: f64,
}

impl Settings {
    pub fn of(p: &PredictiveScaling) -> Self {
        Settings {
            mode: p.mode,
            min_history_seconds: p.min_history_hours * 3600.0,
            max_error: p.max_forecast_error,
            season_seconds: f64::from(p.season_seconds),
        }
    }

    /// Predictive scaling off.
    pub fn off() -> Self {
        Self::of(&PredictiveScaling::default())
    }

    /// The bucket, in whole seconds: a 288th of the season (300 s by default), at least 1 s.
    pub fn step_seconds(&self) -> f64 {
        (self.season_seconds / f64::from(BUCKETS_PER_SEASON))
            .round()
            .max(1.0)
    }

    /// The daily season in buckets.
    pub fn season_buckets(&self) -> usize {
        (self.season_seconds / self.step_seconds()).round().max(2.0) as usize
    }

    /// Buckets kept (bounded memory).
    pub fn capacity_buckets(&self) -> usize {
        SEASONS_KEPT * self.season_buckets()
    }

    /// Seconds between two fits of the model.
    pub fn refit_seconds(&self) -> f64 {
        (self.season_seconds / REFITS_PER_SEASON).max(self.step_seconds())
    }

    /// The window over which the forecast's recent error is averaged: the refit period (an hour
    /// with the default season), at least three buckets.
    pub fn error_window_seconds(&self) -> f64 {
        self.refit_seconds().max(3.0 * self.step_seconds())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_season_is_kept_in_five_minute_buckets_refitted_hourly() {
        let s = Settings::off();
        assert_eq!(s.mode, PredictiveMode::Off);
        assert_eq!(s.step_seconds(), 300.0);
        assert_eq!(s.season_buckets(), 288);
        assert_eq!(s.capacity_buckets(), 15 * 288);
        assert_eq!(s.refit_seconds(), 3600.0);
        assert_eq!(s.min_history_seconds, 48.0 * 3600.0);
    }

    #[test]
    fn a_compressed_season_compresses_the_buckets() {
        let s = Settings {
            season_seconds: 600.0,
            ..Settings::off()
        };
        assert_eq!(s.step_seconds(), 2.0);
        assert_eq!(s.season_buckets(), 300);
        assert_eq!(s.refit_seconds(), 25.0);
    }
}
