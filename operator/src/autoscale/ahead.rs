//! Scaling ahead of the load: the reactive decision ([`super::decide`]) raised by the arrival
//! forecast ([`super::forecast`]) and by planned surges ([`super::planned`]). Both only ever
//! raise a count: the forecast scales up ahead of a rise it trusts and holds off a scale-down
//! ahead of one, but never scales down by itself (as AWS predictive scaling does); a planned
//! surge sets a floor. Pure, table-tested below.

use impressions_crds::policy::PredictiveMode;

use super::{
    decide::max_step,
    estimate::granular,
    forecast::{Settings, State, View},
    history::History,
    model::{Decision, ForecastReport, Limits, Signals},
    planned::Floor,
};

/// The decision with the forecast and a planned surge's floor applied, and the forecast's
/// report (none when predictive scaling is off).
pub fn ahead(
    mut d: Decision,
    s: &Signals,
    p: &Limits,
    h: &History,
    forecast: Option<(&Settings, &View)>,
    floor: Option<&Floor>,
) -> (Decision, Option<ForecastReport>) {
    let cur = s.replicas.max(0);
    let max = p.max.min(s.partitions.max(1)).max(p.min);
    let report = forecast
        .filter(|(set, _)| set.mode != PredictiveMode::Off)
        .map(|(set, view)| with_forecast(&mut d, s, p, h, set, view, cur, max));
    if let Some(f) = floor.filter(|_| !p.paused) {
        let at_least = f.replicas.clamp(p.min, max);
        if at_least > d.replicas {
            let surge = describe(f);
            if at_least > cur {
                d.reason = "ScaleUpPlannedSurge";
                d.message = format!("{}; {surge}: scaling up {cur} → {at_least}", d.message);
            } else if at_least == cur {
                d.reason = "HoldPlannedSurge";
                d.message = format!("{}; held: {surge}", d.message);
            } else {
                d.message = format!("{} (not below the {at_least} of the {surge})", d.message);
            }
            d.replicas = at_least;
        }
    }
    (d, report)
}

/// The planned surge in words.
fn describe(f: &Floor) -> String {
    let at = |t: f64| {
        k8s_openapi::jiff::Timestamp::from_second(t as i64)
            .map_or_else(|_| format!("{t}"), |t| t.to_string())
    };
    format!(
        "planned surge ×{} from {} to {}: at least {} replicas ({} × the {} before it){}",
        f.surge.factor,
        at(f.surge.start),
        at(f.surge.end),
        f.replicas,
        f.surge.factor,
        f.from,
        if f.started {
            ""
        } else {
            ", pre-scaled a pod's start and a rebalance ahead"
        }
    )
}

#[allow(clippy::too_many_arguments)]
fn with_forecast(
    d: &mut Decision,
    s: &Signals,
    p: &Limits,
    h: &History,
    set: &Settings,
    view: &View,
    cur: i32,
    max: i32,
) -> ForecastReport {
    let lead = view.lead_seconds;
    let cap = d.capacity_per_replica.filter(|c| *c > 0.0);
    let need_of = |arrival: Option<f64>| match (arrival, cap) {
        (Some(f), Some(c)) => Some(
            granular(
                f * (1.0 + p.rebalance_cost_seconds / p.catch_up_seconds),
                c,
                p,
                s.partitions,
            )
            .0
            .clamp(p.min, max),
        ),
        _ => None,
    };
    let need = need_of(view.arrival);
    let error = view.recent_error.map_or("not scored yet".to_owned(), |e| {
        format!("recent error {e:.2}")
    });
    let message = match (view.state, view.arrival) {
        (State::Learning | State::Unavailable, _) | (_, None) => {
            view.problem.clone().unwrap_or_else(|| "no forecast".into())
        }
        (State::Ready, Some(f)) => format!(
            "{f:.0}/s expected within {lead:.0} s ({error}, at most {:.2}){}",
            set.max_error,
            need.map(|n| format!(" → {n} replicas")).unwrap_or_default()
        ),
        (State::ErrorTooHigh, Some(f)) => format!(
            "{f:.0}/s expected within {lead:.0} s, but the {error} is above {:.2}: not acted on, scaling is reactive",
            set.max_error
        ),
    };
    let report = ForecastReport {
        mode: set.mode,
        state: view.state.as_str(),
        arrival: view.arrival,
        lead_seconds: lead,
        recent_error: view.recent_error,
        history_seconds: view.history_seconds,
        replicas: need,
        message,
    };
    let (Some(f), Some(c), Some(need)) = (view.arrival, cap, need) else {
        return report;
    };
    if set.mode != PredictiveMode::Scale || !d.metrics_available || p.paused {
        return report;
    }
    // Does the forecast load take the current count out of its tolerance (the rule the reactive
    // decision scales up by once the load is there)?
    let busiest = if cur > 0 && s.partitions > 0 {
        f64::from((s.partitions + cur - 1) / cur) / f64::from(s.partitions) * f / c
    } else {
        f64::INFINITY
    };
    // ... and is it a rise at all? A forecast within the tolerance of the arrival now is the
    // load of now, which the reactive rules carry with their own band (a burst waits
    // `HoldBurst`); acting on it ahead would scale up on the capacity measure's noise near a
    // count where the partitions make the need jump, and the reactive rules would scale down
    // again after their window (weekly: 41 ↔ 64 at each daily peak).
    let above_now = d
        .arrival_rate
        .is_none_or(|now| f > now * (1.0 + p.tolerance));
    let rises = cur == 0
        || (above_now
            && (f / (f64::from(cur) * c) > p.target_utilization + p.tolerance
                || busiest > p.busiest_ceiling));
    match view.state {
        // Within a down window after a scale-down the forecast does not scale up again: the
        // forecast that let it through looked that far ahead (below), so a rise it sees now is
        // a revision within its noise — or the capacity measure's, on a count where the
        // partitions make the need jump — and the reactive rules still follow a real one.
        State::Ready
            if need > d.replicas.max(cur)
                && rises
                && h.since_last_up(s.now) >= p.up.cooldown_seconds
                && h.since_last_down(s.now) >= p.down.stabilization_seconds =>
        {
            let to = need.min(cur + max_step(cur, p.up));
            d.message = format!(
                "{}; forecast: {f:.0}/s expected within {lead:.0} s ({error}) needs {need} replicas: scaling up {cur} → {to} ahead of it",
                d.message
            );
            d.replicas = to;
            d.reason = "ScaleUpForecast";
        }
        // A scale-down looks as far ahead as the down window: one that a rise within it
        // would undo costs two actions for less than a window's saving (near a count where the
        // partitions make the need jump, a forecast within a few percent would otherwise
        // scale up ahead and be scaled down again every few minutes).
        State::Ready
            if d.replicas < cur
                && need_of(view.held_arrival).unwrap_or(need).max(need) > d.replicas =>
        {
            let held = need_of(view.held_arrival).unwrap_or(need).max(need);
            let (hf, within) = match view.held_arrival {
                Some(h) if h > f => (h, view.hold_seconds),
                _ => (f, lead),
            };
            if held >= cur {
                d.replicas = cur;
                d.reason = "HoldForecast";
                d.message = format!(
                    "{}; held: the forecast expects {hf:.0}/s within {within:.0} s, which needs {held} replicas: no scale-down ahead of it",
                    d.message
                );
            } else {
                d.replicas = held;
                d.message = format!(
                    "{} (not below the {held} replicas the forecast needs within {within:.0} s)",
                    d.message
                );
            }
        }
        State::ErrorTooHigh if need > d.replicas.max(cur) && rises => {
            d.message = format!(
                "{}; the forecast ({f:.0}/s within {lead:.0} s, {need} replicas) is not acted on: its {error} is above maxForecastError {:.2}",
                d.message, set.max_error
            );
        }
        _ => {}
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autoscale::{decide::decide, planned::Surge, tests::policy};

    /// 4 replicas of 1,000/s each at 2,600/s arriving: the count the target asks for.
    fn signals() -> Signals {
        Signals {
            now: 10_000.0,
            replicas: 4,
            partitions: 24,
            lag: Some(0.0),
            input_rate: Some(2600.0),
            processed_rate: Some(2600.0),
            busy_fraction: Some(0.65),
            workers: Some(4.0),
            lag_stale: false,
            throughput_stale: false,
        }
    }

    fn view(state: State, arrival: f64, error: f64) -> View {
        View {
            state,
            arrival: Some(arrival),
            lead_seconds: 50.0,
            held_arrival: Some(arrival),
            hold_seconds: 300.0,
            recent_error: Some(error),
            history_seconds: 3.0 * 86_400.0,
            problem: None,
        }
    }

    fn settings(mode: PredictiveMode) -> Settings {
        Settings {
            mode,
            ..Settings::off()
        }
    }

    fn run(mode: PredictiveMode, v: &View) -> (Decision, Option<ForecastReport>) {
        let (s, p, h) = (signals(), policy(), History::default());
        let d = decide(&s, &p, &h);
        assert_eq!(d.replicas, 4, "reactive holds: {}", d.message);
        ahead(d, &s, &p, &h, Some((&settings(mode), v)), None)
    }

    #[test]
    fn scale_mode_scales_up_ahead_of_a_trusted_forecast_and_says_so() {
        let (d, r) = run(PredictiveMode::Scale, &view(State::Ready, 6000.0, 0.05));
        // 9 for 6,000/s at 0.7 of 1,000/s each; one decision steps up by at most +4.
        assert_eq!(
            (d.replicas, d.reason),
            (8, "ScaleUpForecast"),
            "{}",
            d.message
        );
        assert!(
            d.message.contains(
                "forecast: 6000/s expected within 50 s (recent error 0.05) needs 9 replicas: scaling up 4 → 8 ahead of it"
            ),
            "{}",
            d.message
        );
        assert_eq!(r.unwrap().replicas, Some(9));
    }

    #[test]
    fn a_forecast_within_the_tolerance_of_the_load_now_is_left_to_the_reactive_rules() {
        // 10 partitions on 4 replicas: the busiest holds 3, at 0.87 of its capacity under
        // 2,900/s (the reactive rules hold). 3,100/s would take it over the 0.9 ceiling, but is
        // within the 10 % tolerance of the load now; 3,300/s is a rise.
        let (p, h) = (policy(), History::default());
        let mut s = signals();
        s.partitions = 10;
        s.input_rate = Some(2900.0);
        s.processed_rate = Some(2900.0);
        s.busy_fraction = Some(0.725);
        let settings = settings(PredictiveMode::Scale);
        for (forecast, up) in [(3100.0, false), (3300.0, true)] {
            let d = decide(&s, &p, &h);
            assert_eq!(
                (d.replicas, d.reason),
                (4, "HoldWithinTolerance"),
                "{}",
                d.message
            );
            let v = view(State::Ready, forecast, 0.05);
            let (d, _) = ahead(d, &s, &p, &h, Some((&settings, &v)), None);
            assert_eq!(
                d.reason == "ScaleUpForecast",
                up,
                "{forecast}/s against 2,900/s now: {}",
                d.message
            );
        }
    }

    #[test]
    fn forecast_only_reports_without_acting() {
        let (d, r) = run(
            PredictiveMode::ForecastOnly,
            &view(State::Ready, 6000.0, 0.05),
        );
        assert_eq!((d.replicas, d.reason), (4, "NoChange"));
        let r = r.unwrap();
        assert_eq!(r.replicas, Some(9));
        assert!(
            r.message.starts_with("6000/s expected within 50 s"),
            "{}",
            r.message
        );
    }

    #[test]
    fn off_reports_nothing() {
        let (d, r) = run(PredictiveMode::Off, &view(State::Ready, 6000.0, 0.05));
        assert_eq!((d.replicas, r), (4, None));
    }

    #[test]
    fn no_scale_up_ahead_of_the_forecast_within_a_down_window_after_a_scale_down() {
        let (s, p) = (signals(), policy());
        let v = view(State::Ready, 6000.0, 0.05);
        let settings = settings(PredictiveMode::Scale);
        for (down_ago, up) in [(100.0, false), (p.down.stabilization_seconds + 1.0, true)] {
            let mut h = History::default();
            h.note_change(s.now - down_ago, false);
            let d = decide(&s, &p, &h);
            let (d, _) = ahead(d, &s, &p, &h, Some((&settings, &v)), None);
            assert_eq!(
                d.reason == "ScaleUpForecast",
                up,
                "{down_ago} s: {}",
                d.message
            );
        }
    }

    #[test]
    fn a_forecast_with_a_high_recent_error_is_not_acted_on() {
        let (d, r) = run(
            PredictiveMode::Scale,
            &view(State::ErrorTooHigh, 6000.0, 0.5),
        );
        assert_eq!(d.replicas, 4);
        assert!(
            d.message
                .contains("not acted on: its recent error 0.50 is above maxForecastError"),
            "{}",
            d.message
        );
        assert!(r.unwrap().message.contains("scaling is reactive"));
    }

    #[test]
    fn a_forecast_never_scales_down_by_itself() {
        // The forecast expects a quarter of the load: the reactive hold stands.
        let (d, r) = run(PredictiveMode::Scale, &view(State::Ready, 600.0, 0.05));
        assert_eq!((d.replicas, d.reason), (4, "NoChange"));
        assert_eq!(r.unwrap().replicas, Some(1));
    }

    #[test]
    fn a_forecast_rise_holds_off_a_reactive_scale_down() {
        // Load fell to 800/s long enough for a scale-down to 2; the forecast expects 2,600/s.
        let p = policy();
        let mut h = History::default();
        let mut s = signals();
        s.input_rate = Some(800.0);
        s.processed_rate = Some(800.0);
        s.busy_fraction = Some(0.2);
        for i in 0..40 {
            s.now = 10_000.0 + 15.0 * f64::from(i);
            let d = decide(&s, &p, &h);
            h.record(s.now, s.lag, 4, &d, true);
        }
        s.now += 15.0;
        let d = decide(&s, &p, &h);
        assert_eq!(d.reason, "ScaleDown", "{}", d.message);
        let v = view(State::Ready, 2600.0, 0.05);
        let (d, _) = ahead(
            d,
            &s,
            &p,
            &h,
            Some((&settings(PredictiveMode::Scale), &v)),
            None,
        );
        assert_eq!((d.replicas, d.reason), (4, "HoldForecast"), "{}", d.message);
    }

    #[test]
    fn a_rise_within_the_down_window_holds_off_a_scale_down_beyond_the_lead() {
        // As above, with the forecast at the current load within the lead but 2,600/s within
        // the 300 s down window: the scale-down would be undone within it.
        let p = policy();
        let mut h = History::default();
        let mut s = signals();
        s.input_rate = Some(800.0);
        s.processed_rate = Some(800.0);
        s.busy_fraction = Some(0.2);
        for i in 0..40 {
            s.now = 10_000.0 + 15.0 * f64::from(i);
            let d = decide(&s, &p, &h);
            h.record(s.now, s.lag, 4, &d, true);
        }
        s.now += 15.0;
        let d = decide(&s, &p, &h);
        assert_eq!(d.reason, "ScaleDown", "{}", d.message);
        let mut v = view(State::Ready, 800.0, 0.05);
        v.held_arrival = Some(2600.0);
        let settings = settings(PredictiveMode::Scale);
        let (held, _) = ahead(d.clone(), &s, &p, &h, Some((&settings, &v)), None);
        assert_eq!(
            (held.replicas, held.reason),
            (4, "HoldForecast"),
            "{}",
            held.message
        );
        assert!(
            held.message.contains("expects 2600/s within 300 s"),
            "{}",
            held.message
        );
        // Nothing rises within the window: the scale-down goes ahead.
        v.held_arrival = Some(800.0);
        let (down, _) = ahead(d, &s, &p, &h, Some((&settings, &v)), None);
        assert_eq!(down.reason, "ScaleDown", "{}", down.message);
        assert!(down.replicas < 4);
    }

    #[test]
    fn a_planned_surge_floors_the_count_even_without_metrics() {
        let (p, h) = (policy(), History::default());
        let mut s = signals();
        s.processed_rate = None;
        let d = decide(&s, &p, &h);
        assert_eq!(d.reason, "HoldMetricsMissing");
        let floor = Floor {
            replicas: 12,
            from: 4,
            surge: Surge {
                start: 1.8e9,
                end: 1.8e9 + 3600.0,
                factor: 3.0,
            },
            started: false,
        };
        let (d, _) = ahead(d, &s, &p, &h, None, Some(&floor));
        assert_eq!((d.replicas, d.reason), (12, "ScaleUpPlannedSurge"));
        assert!(
            d.message
                .contains("planned surge ×3 from 2027-01-15T08:00:00Z"),
            "{}",
            d.message
        );
        let mut paused = p.clone();
        paused.paused = true;
        let d = decide(&s, &paused, &h);
        assert_eq!(ahead(d, &s, &paused, &h, None, Some(&floor)).0.replicas, 4);
    }
}
