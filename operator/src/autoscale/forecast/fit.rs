//! The model: augurs' MSTL over the bucketed arrival history, with a daily season and, once
//! two weeks are known, a weekly one; the deseasonalised rest is forecast by AutoETS (augurs'
//! exponential smoothing, the error/trend/damping chosen by likelihood). Missing buckets inside
//! the history are interpolated linearly by augurs' forecaster pipeline; missing ones at its end
//! are forecast like the buckets after it. Pure.

use augurs::{
    ets::{AutoETS, trend::AutoETSTrendModel},
    forecaster::{Forecaster, transforms::LinearInterpolator},
    mstl::MSTLModel,
};

/// Why a fit gave no forecast.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FitError {
    /// Fewer than two cycles of the daily season: MSTL cannot learn it.
    #[error("{buckets} buckets of history, fewer than two seasons of {season}")]
    TooShort { buckets: usize, season: usize },
    /// The crate refused the series (too few known points, a failed optimisation).
    #[error("the model could not be fitted: {0}")]
    Model(String),
}

impl FitError {
    /// The reason, for status and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            FitError::TooShort { .. } => "Learning",
            FitError::Model(_) => "FitFailed",
        }
    }
}

/// The seasons MSTL is given for `buckets` of history: the daily one, and the weekly one (7 ×)
/// once two weeks are there.
pub fn periods(buckets: usize, season: usize) -> Vec<usize> {
    let mut p = vec![season];
    if buckets >= 14 * season {
        p.push(7 * season);
    }
    p
}

/// The next `horizon` buckets after `values` (oldest first, NaN where unknown), never below 0.
pub fn forecast(values: &[f64], season: usize, horizon: usize) -> Result<Vec<f64>, FitError> {
    if values.len() < 2 * season {
        return Err(FitError::TooShort {
            buckets: values.len(),
            season,
        });
    }
    if values.iter().filter(|v| v.is_finite()).count() < season {
        return Err(FitError::Model(
            "fewer known buckets than one season".into(),
        ));
    }
    // Unknown buckets at the end are forecast too (then dropped): the interpolation needs a
    // known value on both sides.
    let known = values
        .iter()
        .rposition(|v| v.is_finite())
        .map_or(0, |i| i + 1);
    let missing_tail = values.len() - known;
    let trend: AutoETSTrendModel = AutoETS::non_seasonal().into_trend_model();
    let model = MSTLModel::new(periods(known, season), trend);
    let mut f = Forecaster::new(model).with_transformers(vec![Box::new(LinearInterpolator::new())]);
    f.fit(&values[..known])
        .map_err(|e| FitError::Model(e.to_string()))?;
    let out = f
        .predict(horizon + missing_tail, None)
        .map_err(|e| FitError::Model(e.to_string()))?;
    Ok(out
        .point
        .into_iter()
        .skip(missing_tail)
        .map(|v| v.max(0.0))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A day of `season` buckets: low at night, a peak in the evening.
    fn daily(days: usize, season: usize, level: f64) -> Vec<f64> {
        (0..days * season)
            .map(|i| {
                let x = (i % season) as f64 / season as f64 * std::f64::consts::TAU;
                level * (1.0 + 0.6 * (x - 2.0).sin())
            })
            .collect()
    }

    #[test]
    fn two_days_learn_the_daily_shape_and_forecast_the_next_rise() {
        let season = 96;
        let history = daily(3, season, 1000.0);
        let (past, next) = history.split_at(2 * season);
        let f = forecast(past, season, season).unwrap();
        let worst = f
            .iter()
            .zip(next)
            .map(|(f, a)| (f - a).abs() / a)
            .fold(0.0, f64::max);
        assert!(worst < 0.05, "worst relative error {worst}");
    }

    #[test]
    fn one_day_is_not_enough_and_says_so() {
        let e = forecast(&daily(1, 96, 1000.0), 96, 4).unwrap_err();
        assert_eq!(
            e,
            FitError::TooShort {
                buckets: 96,
                season: 96
            }
        );
        assert_eq!(e.reason(), "Learning");
    }

    #[test]
    fn the_weekly_season_joins_after_two_weeks() {
        assert_eq!(periods(13 * 288, 288), [288]);
        assert_eq!(periods(14 * 288, 288), [288, 2016]);
    }

    #[test]
    fn missing_buckets_are_interpolated_and_a_missing_end_is_forecast() {
        let season = 48;
        let full = daily(4, season, 500.0);
        let mut history = full[..3 * season].to_vec();
        for v in history.iter_mut().skip(30).step_by(7).take(10) {
            *v = f64::NAN;
        }
        // The last two buckets were not scraped.
        let n = history.len();
        history[n - 2] = f64::NAN;
        history[n - 1] = f64::NAN;
        let f = forecast(&history, season, 3).unwrap();
        assert_eq!(f.len(), 3);
        for (got, want) in f.iter().zip(&full[3 * season..]) {
            assert!((got - want).abs() / want < 0.05, "{f:?}");
        }
    }
}
