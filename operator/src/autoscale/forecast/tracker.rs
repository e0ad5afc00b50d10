//! One pipeline's forecast over time: its arrival history, the path the last fit forecast, the
//! forecast's recent error (each bucket that completes is scored against what the path said of
//! it) and when to fit again. Pure: the clock is an input (the simulator's seconds, or Unix
//! seconds in the operator).

use std::collections::VecDeque;

use super::{
    fit::{FitError, forecast},
    series::Series,
    settings::Settings,
};

/// Whether the forecast can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Less history than `minHistoryHours`: no forecast yet.
    Learning,
    /// A forecast whose recent error is within `maxForecastError`.
    Ready,
    /// A forecast whose recent error is above `maxForecastError`: scaling stays reactive.
    ErrorTooHigh,
    /// No forecast: the history could not be read or the model not fitted.
    Unavailable,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Learning => "Learning",
            State::Ready => "Ready",
            State::ErrorTooHigh => "ErrorTooHigh",
            State::Unavailable => "Unavailable",
        }
    }
}

/// What the decision reads of the forecast at one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub state: State,
    /// The highest forecast arrival (events/s) between now and one lead time ahead.
    pub arrival: Option<f64>,
    pub lead_seconds: f64,
    /// The highest forecast arrival between now and the hold horizon (the scale-down
    /// window, at least the lead), as far as the forecast reaches: what a scale-down is held
    /// for.
    pub held_arrival: Option<f64>,
    pub hold_seconds: f64,
    /// The mean relative error of the forecast over the last error window.
    pub recent_error: Option<f64>,
    /// Seconds of history known.
    pub history_seconds: f64,
    /// Why there is no forecast, when there is none.
    pub problem: Option<String>,
}

/// The forecast of the buckets from `start` on.
#[derive(Debug, Clone, PartialEq)]
struct Path {
    start: f64,
    values: Vec<f64>,
}

/// One pipeline's forecaster.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecaster {
    settings: Settings,
    series: Series,
    path: Option<Path>,
    /// (bucket start, relative error) of the scored buckets within the error window.
    errors: VecDeque<(f64, f64)>,
    last_fit: Option<f64>,
    problem: Option<String>,
}

impl Forecaster {
    pub fn new(settings: Settings) -> Self {
        Forecaster {
            series: Series::new(settings.step_seconds(), settings.capacity_buckets()),
            settings,
            path: None,
            errors: VecDeque::new(),
            last_fit: None,
            problem: None,
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Takes a policy's new settings; a new bucket or season starts over.
    pub fn reconfigure(&mut self, settings: Settings) {
        if settings.season_seconds != self.settings.season_seconds {
            *self = Forecaster::new(settings);
        } else {
            self.settings = settings;
        }
    }

    /// Seconds of history known.
    pub fn history_seconds(&self) -> f64 {
        self.series.known_seconds()
    }

    /// When the last complete bucket ends (where a refresh from Prometheus continues).
    pub fn history_end(&self) -> f64 {
        self.series.end()
    }

    /// An arrival rate measured at `t` (the simulator and tests; the operator reads buckets).
    pub fn observe(&mut self, t: f64, arrival: f64) {
        if let Some(closed) = self.series.push(t, arrival) {
            self.score(closed);
        }
    }

    /// Buckets read from Prometheus (points at bucket ends); the new ones are scored.
    pub fn insert_bucket_ends(&mut self, points: &[(f64, f64)]) {
        for b in self.series.insert_bucket_ends(points) {
            self.score(b);
        }
        self.problem = None;
    }

    /// The history could not be read.
    pub fn failed(&mut self, problem: String) {
        self.problem = Some(problem);
    }

    fn score(&mut self, (start, actual): (f64, f64)) {
        let step = self.series.step();
        let Some(p) = &self.path else { return };
        let j = ((start - p.start) / step).round();
        if j < 0.0 {
            return;
        }
        let Some(f) = p.values.get(j as usize) else {
            return;
        };
        self.errors
            .push_back((start, (f - actual).abs() / actual.max(1.0)));
        let window = self.settings.error_window_seconds();
        while self
            .errors
            .front()
            .is_some_and(|(t, _)| start - t >= window)
        {
            self.errors.pop_front();
        }
    }

    /// Whether a fit is due at `t`: enough history, and none yet, or the last one is a refit
    /// period old, or its path ends before one lead time ahead.
    pub fn refit_due(&self, t: f64, lead: f64) -> bool {
        if self.history_seconds() < self.settings.min_history_seconds {
            return false;
        }
        let covers = self
            .path
            .as_ref()
            .is_some_and(|p| p.start + p.values.len() as f64 * self.series.step() >= t + lead);
        self.last_fit
            .is_none_or(|f| t - f >= self.settings.refit_seconds())
            || !covers
    }

    /// Fits the model on the history and forecasts through the next refit plus a lead time.
    pub fn refit(&mut self, t: f64, lead: f64) -> Result<(), FitError> {
        self.last_fit = Some(t);
        let step = self.series.step();
        let start = self.series.end();
        let until = t + self.settings.refit_seconds() + lead;
        let horizon = (((until - start) / step).ceil().max(1.0) as usize) + 1;
        match forecast(
            &self.series.values(),
            self.settings.season_buckets(),
            horizon,
        ) {
            Ok(values) => {
                self.path = Some(Path { start, values });
                self.problem = None;
                Ok(())
            }
            Err(e) => {
                self.problem = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// The mean relative error of the scored buckets in the error window.
    pub fn recent_error(&self) -> Option<f64> {
        (!self.errors.is_empty())
            .then(|| self.errors.iter().map(|(_, e)| e).sum::<f64>() / self.errors.len() as f64)
    }

    /// The highest forecast bucket from `t` until `until`; `None` unless the path reaches
    /// `until` (or, `partial`, at least `t`).
    fn highest(&self, t: f64, until: f64, partial: bool) -> Option<f64> {
        let p = self.path.as_ref()?;
        let step = self.series.step();
        let first = ((t - p.start) / step).floor().max(0.0) as usize;
        let mut last = ((until - p.start) / step).floor().max(0.0) as usize;
        if last >= p.values.len() {
            if !partial || first >= p.values.len() {
                return None;
            }
            last = p.values.len() - 1;
        }
        Some(p.values[first..=last].iter().copied().fold(0.0, f64::max))
    }

    /// The forecast at `t` for the next `lead` seconds, and for the next `hold` seconds (the
    /// scale-down window) as far as it reaches.
    pub fn view(&self, t: f64, lead: f64, hold: f64) -> View {
        let history_seconds = self.history_seconds();
        let recent_error = self.recent_error();
        let hold = hold.max(lead);
        let arrival = self.highest(t, t + lead, false);
        let held_arrival = arrival.and_then(|a| Some(a.max(self.highest(t, t + hold, true)?)));
        let (state, problem) = if history_seconds < self.settings.min_history_seconds {
            (
                State::Learning,
                Some(format!(
                    "learning: {:.1} h of history of the {:.1} h needed",
                    history_seconds / 3600.0,
                    self.settings.min_history_seconds / 3600.0
                )),
            )
        } else if arrival.is_none() {
            (
                State::Unavailable,
                Some(
                    self.problem
                        .clone()
                        .unwrap_or_else(|| "no forecast covers the lead time yet".into()),
                ),
            )
        } else if recent_error.is_some_and(|e| e > self.settings.max_error) {
            (State::ErrorTooHigh, None)
        } else {
            (State::Ready, None)
        };
        View {
            state,
            arrival: arrival.filter(|_| state != State::Learning),
            lead_seconds: lead,
            held_arrival: held_arrival.filter(|_| state != State::Learning),
            hold_seconds: hold,
            recent_error,
            history_seconds,
            problem,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use impressions_crds::policy::PredictiveMode;

    /// A compressed day of 2,880 s (10 s buckets), 1,000 → 3,000 events/s.
    fn day(t: f64) -> f64 {
        let x = (t % 2880.0) / 2880.0 * std::f64::consts::TAU;
        2000.0 + 1000.0 * (x - 2.0).sin()
    }

    fn settings(min_history_seconds: f64, max_error: f64) -> Settings {
        Settings {
            mode: PredictiveMode::Scale,
            min_history_seconds,
            max_error,
            season_seconds: 2880.0,
        }
    }

    fn learnt(f: &mut Forecaster, until: f64, rate: impl Fn(f64) -> f64) {
        let mut t = 0.0;
        while t < until {
            f.observe(t, rate(t));
            if f.refit_due(t, 60.0) {
                f.refit(t, 60.0).unwrap();
            }
            t += 5.0;
        }
    }

    #[test]
    fn min_history_decides_when_the_forecast_starts() {
        for (min_history, state) in [
            (2.0 * 2880.0, State::Ready),
            (4.0 * 2880.0, State::Learning),
        ] {
            let mut f = Forecaster::new(settings(min_history, 0.2));
            learnt(&mut f, 3.0 * 2880.0, day);
            let v = f.view(3.0 * 2880.0, 60.0, 60.0);
            assert_eq!(v.state, state, "{v:?}");
            assert_eq!(v.arrival.is_some(), state == State::Ready);
        }
    }

    #[test]
    fn a_learnt_day_is_forecast_within_a_few_percent() {
        let mut f = Forecaster::new(settings(2.0 * 2880.0, 0.2));
        learnt(&mut f, 3.5 * 2880.0, day);
        let t = 3.5 * 2880.0;
        let v = f.view(t, 60.0, 60.0);
        let expected = (0..=6)
            .map(|i| day(t + 10.0 * f64::from(i)))
            .fold(0.0, f64::max);
        let got = v.arrival.unwrap();
        assert!(
            (got - expected).abs() / expected < 0.05,
            "{got} vs {expected}"
        );
        assert!(v.recent_error.unwrap() < 0.05, "{v:?}");
        assert_eq!(v.state, State::Ready);
    }

    #[test]
    fn a_pattern_that_breaks_raises_the_error_above_max_forecast_error() {
        // Two learnt days, then the traffic halves: the forecast fitted before is twice what
        // arrives (until the next fit learns the new level).
        let t = 2.0 * 2880.0 + 110.0;
        for (max_error, state) in [(0.2, State::ErrorTooHigh), (5.0, State::Ready)] {
            let mut f = Forecaster::new(settings(2.0 * 2880.0, max_error));
            learnt(&mut f, t, |t| {
                if t < 2.0 * 2880.0 {
                    day(t)
                } else {
                    day(t) / 2.0
                }
            });
            let v = f.view(t, 60.0, 60.0);
            assert!(v.recent_error.unwrap() > 0.5, "{v:?}");
            assert_eq!(v.state, state, "maxForecastError {max_error}");
        }
    }

    #[test]
    fn the_hold_horizon_sees_a_rise_beyond_the_lead() {
        let mut f = Forecaster::new(settings(2.0 * 2880.0, 0.2));
        // On the third day's rise (200 s after the trough): the forecast within 300 s (as far
        // as the path reaches, a refit period and a lead) is well above the one within 60 s.
        let t = 2.0 * 2880.0
            + (2.0 - std::f64::consts::FRAC_PI_2) / std::f64::consts::TAU * 2880.0
            + 200.0;
        learnt(&mut f, t, day);
        let v = f.view(t, 60.0, 300.0);
        let (now, held) = (v.arrival.unwrap(), v.held_arrival.unwrap());
        assert_eq!(v.hold_seconds, 300.0);
        assert!(held > now * 1.03, "{held} within 300 s, {now} within 60 s");
        // A hold shorter than the lead is the lead.
        let v = f.view(t, 60.0, 30.0);
        assert_eq!((v.held_arrival, v.hold_seconds), (v.arrival, 60.0));
    }

    #[test]
    fn fits_are_hourly_not_every_evaluation() {
        let mut f = Forecaster::new(settings(2.0 * 2880.0, 0.2));
        let mut fits = 0;
        let mut t = 0.0;
        while t < 3.0 * 2880.0 {
            f.observe(t, day(t));
            if f.refit_due(t, 60.0) {
                f.refit(t, 60.0).unwrap();
                fits += 1;
            }
            t += 5.0;
        }
        // One day of forecasts at 24 refits per season.
        assert!((24..=26).contains(&fits), "{fits}");
    }
}
