//! The autoscalers compared in a simulation: the project's (through the same decision code the
//! operator runs), KEDA's Kafka scaler with the HPA, the Flink autoscaler's decision, and static
//! provisioning at the peak. Facts on the baselines: `shared/reference/keda-hpa.md` and
//! `flink-autoscaler.md`.

use std::collections::VecDeque;

use super::model::{Cluster, Observation};
use crate::autoscale::{
    ahead::ahead,
    decide::decide,
    forecast::{Forecaster, Settings},
    history::History,
    model::{Limits, Signals},
    planned::{Planned, Surge},
};

/// One autoscaler.
pub trait Autoscaler {
    fn name(&self) -> String;
    /// Seconds between decisions.
    fn interval(&self) -> f64;
    /// The replica count wanted at `t`, or `None` to leave things as they are.
    fn decide(&mut self, t: f64, c: &Cluster) -> Option<i32>;
    /// Seconds of stopped processing a change costs beyond the consumer-group rebalance (a
    /// Flink job restarts; a stateless consumer does not).
    fn restart_pause(&self) -> f64 {
        0.0
    }
    /// What the run did beyond its figures, in words (none by default).
    fn notes(&self) -> Option<String> {
        None
    }
}

/// The project's decision, with its history, exactly as the operator evaluates it.
#[derive(Debug)]
pub struct Ours {
    pub policy: Limits,
    pub interval: f64,
    pub rate_window: f64,
    history: History,
    last: Option<Observation>,
    /// Print every decision that changes the count (`SIM_TRACE=1`), for tuning.
    trace: bool,
    /// Predictive scaling: the forecaster learns from the arrival rates the decisions saw.
    forecaster: Option<Forecaster>,
    forecast_ups: u32,
    forecast_holds: u32,
    forecast_fits: u32,
    /// When the forecast was first trusted (Ready), simulated seconds.
    forecast_ready_at: Option<f64>,
    forecast_errors: Vec<f64>,
    /// Planned surges declared ahead (`plannedSurges`), on the trace's clock, and the count
    /// their pre-scale began from.
    surges: Vec<Surge>,
    planned: Planned,
    surge_ups: u32,
    surge_holds: u32,
}

impl Ours {
    pub fn new(policy: Limits, interval: f64) -> Self {
        Ours {
            policy,
            interval,
            rate_window: 60.0,
            history: History::default(),
            last: None,
            trace: std::env::var_os("SIM_TRACE").is_some(),
            forecaster: None,
            forecast_ups: 0,
            forecast_holds: 0,
            forecast_fits: 0,
            forecast_ready_at: None,
            forecast_errors: Vec::new(),
            surges: Vec::new(),
            planned: Planned::default(),
            surge_ups: 0,
            surge_holds: 0,
        }
    }

    /// Ours with planned surges declared (the pipeline's `plannedSurges`), through the same
    /// floor the operator applies ([`crate::autoscale::planned`]).
    pub fn with_surges(self, surges: Vec<Surge>) -> Self {
        Ours { surges, ..self }
    }

    /// Ours with predictive scaling: the forecaster learns from the trace's earlier days (the
    /// arrival rates the decisions saw), refits every `refit_seconds` of its settings.
    pub fn predictive(policy: Limits, interval: f64, settings: Settings) -> Self {
        Ours {
            forecaster: Some(Forecaster::new(settings)),
            ..Ours::new(policy, interval)
        }
    }
}

impl Autoscaler for Ours {
    fn name(&self) -> String {
        format!(
            "impressions{}{} (u={:.2})",
            if self.forecaster.is_some() {
                " + predictive"
            } else {
                ""
            },
            if self.surges.is_empty() {
                ""
            } else {
                " + planned surges"
            },
            self.policy.target_utilization
        )
    }
    fn interval(&self) -> f64 {
        self.interval
    }
    fn notes(&self) -> Option<String> {
        if self.forecaster.is_none() && !self.surges.is_empty() {
            return Some(format!(
                "{} planned surges declared: {} scale-ups for them (ScaleUpPlannedSurge), {} evaluations held at their floor (HoldPlannedSurge)",
                self.surges.len(),
                self.surge_ups,
                self.surge_holds
            ));
        }
        let f = self.forecaster.as_ref()?;
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        Some(match self.forecast_ready_at {
            None => format!(
                "the forecast never became Ready: {:.0} h of history, {:.0} h needed (two seasons)",
                f.history_seconds() / 3600.0,
                f.settings().min_history_seconds / 3600.0
            ),
            Some(at) => format!(
                "forecast Ready from {:.1} h; {} fits; {} scale-ups ahead of the forecast, {} scale-downs held for it; mean recent error {:.3}",
                at / 3600.0,
                self.forecast_fits,
                self.forecast_ups,
                self.forecast_holds,
                mean(&self.forecast_errors)
            ),
        })
    }
    fn decide(&mut self, t: f64, c: &Cluster) -> Option<i32> {
        let o = c.observe(t, self.rate_window)?;
        let input_rate = self
            .last
            .filter(|l| o.at > l.at)
            .map(|l| (o.end_offsets - l.end_offsets) / (o.at - l.at));
        self.last = Some(o);
        let s = Signals {
            now: t,
            replicas: c.pods(),
            partitions: c.partitions(),
            lag: Some(o.lag),
            input_rate,
            processed_rate: Some(o.processed_rate),
            busy_fraction: Some(o.busy_fraction),
            // Prometheus has series of the pods that run (a starting pod reports nothing yet).
            workers: Some(f64::from(o.running)),
            lag_stale: false,
            throughput_stale: false,
        };
        let mut d = decide(&s, &self.policy, &self.history);
        let forecast = self.forecaster.as_mut().map(|f| {
            if let Some(a) = d.arrival_rate {
                f.observe(t, a);
            }
            let lead =
                self.policy.pod_start_seconds + self.policy.rebalance_cost_seconds + self.interval;
            if f.refit_due(t, lead) {
                let _ = f.refit(t, lead);
                self.forecast_fits += 1;
            }
            let view = f.view(t, lead, self.policy.down.stabilization_seconds);
            if view.state == crate::autoscale::forecast::State::Ready {
                self.forecast_ready_at.get_or_insert(t);
                if let Some(e) = view.recent_error {
                    self.forecast_errors.push(e);
                }
            }
            (*f.settings(), view)
        });
        // The operator's pre-scale lead (`evaluator::prescale_lead`): a pod's start and a
        // rebalance.
        let floor = (!self.surges.is_empty())
            .then(|| {
                let lead = self.policy.pod_start_seconds + self.policy.rebalance_cost_seconds;
                self.planned.floor(&self.surges, t, lead, c.pods())
            })
            .flatten();
        if forecast.is_some() || floor.is_some() {
            d = ahead(
                d,
                &s,
                &self.policy,
                &self.history,
                forecast.as_ref().map(|(s, v)| (s, v)),
                floor.as_ref(),
            )
            .0;
            match d.reason {
                "ScaleUpForecast" => self.forecast_ups += 1,
                "HoldForecast" => self.forecast_holds += 1,
                "ScaleUpPlannedSurge" => self.surge_ups += 1,
                "HoldPlannedSurge" => self.surge_holds += 1,
                _ => {}
            }
        }
        if self.trace && d.replicas != c.pods() {
            eprintln!(
                "{}: {t:>7.0} {} → {}: {} {}",
                self.name(),
                c.pods(),
                d.replicas,
                d.reason,
                d.message
            );
        }
        self.history.record(t, s.lag, c.pods(), &d, true);
        Some(d.replicas)
    }
}

/// KEDA's Kafka scaler (30 s polling, lagThreshold, partition cap with its off-by-one, and the
/// newer `limitToPartitionsWithLag` and `ensureEvenDistributionOfPartitions`) feeding the HPA
/// (15 s sync, 10 % tolerance, scale-down stabilization window, legacy scale-up limit).
#[derive(Debug)]
pub struct KedaHpa {
    pub lag_threshold: f64,
    /// The HPA's scale-down stabilization window (`behavior.scaleDown`; 300 s by default).
    pub down_window: f64,
    /// Cap the replicas at the partitions with lag rather than all partitions.
    pub limit_to_partitions_with_lag: bool,
    /// Round the replica count the metric asks for up to a factor of the partition count.
    pub even_distribution: bool,
    pub min: i32,
    pub max: i32,
    metric: Option<f64>,
    last_poll: f64,
    recs: VecDeque<(f64, i32)>,
}

impl KedaHpa {
    /// KEDA and the HPA at their defaults but for the lag threshold.
    pub fn new(lag_threshold: f64, min: i32, max: i32) -> Self {
        KedaHpa {
            lag_threshold,
            down_window: 300.0,
            limit_to_partitions_with_lag: false,
            even_distribution: false,
            min,
            max,
            metric: None,
            last_poll: f64::NEG_INFINITY,
            recs: VecDeque::new(),
        }
    }

    /// The scaler's metric: total lag, capped at partitions × threshold when floor(lag /
    /// threshold) exceeds the partition count (so a lag just above the cap is not capped).
    pub fn metric(lag: f64, threshold: f64, partitions: i32) -> f64 {
        if (lag / threshold).floor() > partitions as f64 {
            partitions as f64 * threshold
        } else {
            lag
        }
    }

    /// `ensureEvenDistributionOfPartitions`: the metric is raised so that the replica count it
    /// asks for is the next factor of the partition count.
    pub fn even(metric: f64, threshold: f64, partitions: i32) -> f64 {
        let wanted = (metric / threshold).ceil().max(1.0) as i32;
        let factor = (wanted..=partitions.max(1))
            .find(|d| partitions % d == 0)
            .unwrap_or(partitions.max(1));
        metric.max(factor as f64 * threshold)
    }

    /// The HPA's recommendation for an External AverageValue metric.
    pub fn hpa_desired(metric: f64, threshold: f64, current: i32) -> i32 {
        let ratio = metric / (threshold * current.max(1) as f64);
        if (ratio - 1.0).abs() <= 0.1 {
            current
        } else {
            (metric / threshold).ceil() as i32
        }
    }

    /// The settings that differ from the defaults.
    pub fn settings(&self) -> String {
        let mut s = format!("lagThreshold={}", self.lag_threshold);
        if self.down_window != 300.0 {
            s.push_str(&format!(" scaleDown.window={}s", self.down_window));
        }
        if self.limit_to_partitions_with_lag {
            s.push_str(" limitToPartitionsWithLag");
        }
        if self.even_distribution {
            s.push_str(" evenPartitions");
        }
        s
    }
}

impl Autoscaler for KedaHpa {
    fn name(&self) -> String {
        format!("KEDA+HPA ({})", self.settings())
    }
    fn interval(&self) -> f64 {
        15.0
    }
    fn decide(&mut self, t: f64, c: &Cluster) -> Option<i32> {
        if t - self.last_poll >= 30.0 {
            self.last_poll = t;
            self.metric = c.observe(t, 0.0).map(|o| {
                let cap = if self.limit_to_partitions_with_lag {
                    o.partitions_with_lag.max(1)
                } else {
                    c.partitions()
                };
                let m = Self::metric(o.lag, self.lag_threshold, cap);
                if self.even_distribution {
                    Self::even(m, self.lag_threshold, c.partitions())
                } else {
                    m
                }
            });
        }
        let metric = self.metric?;
        let current = c.pods();
        if self.recs.is_empty() {
            // The HPA starts its recommendation history with the current count.
            self.recs.push_back((t, current));
        }
        let raw =
            Self::hpa_desired(metric, self.lag_threshold, current).clamp(self.min.max(1), self.max);
        self.recs.push_back((t, raw));
        while self
            .recs
            .front()
            .is_some_and(|(at, _)| t - at > self.down_window)
        {
            self.recs.pop_front();
        }
        let down_floor = self.recs.iter().map(|(_, r)| *r).max().unwrap_or(raw);
        let mut desired = if raw < current {
            down_floor.min(current)
        } else {
            raw
        };
        desired = desired.min((2 * current).max(4));
        Some(desired.clamp(self.min.max(1), self.max))
    }
}

/// The Flink autoscaler's decision for one source vertex, with its defaults: metric window,
/// stabilization after each change, catch-up, utilization bounds (`utilization.min/max`, the
/// target ± 0.3 by default), delayed scale-down with the maximum over the interval, no
/// scale-down under backlog, EVENLY_SPREAD partition alignment. On the common actuator a change
/// costs what it costs every policy (the consumer group's rebalance); "as deployed", a rescale
/// also restarts the job (`restart_pause`).
#[derive(Debug)]
pub struct Flink {
    pub target: f64,
    /// `utilization.min` and `utilization.max`: no change while the capacity needed at these
    /// utilizations brackets the capacity there is.
    pub utilization_min: f64,
    pub utilization_max: f64,
    pub catch_up: f64,
    pub restart_time: f64,
    pub window: f64,
    pub stabilization: f64,
    pub scale_down_interval: f64,
    pub min: i32,
    pub max: i32,
    /// How long a rescale stops the job (0 on the common actuator; 60 s as deployed).
    pub restart_pause: f64,
    last_change: f64,
    lower_since: Option<f64>,
    recs: VecDeque<(f64, i32)>,
}

impl Flink {
    /// The Flink decision at its defaults but for the target, on the common actuator.
    pub fn new(target: f64, min: i32, max: i32) -> Self {
        Flink {
            target,
            utilization_min: (target - 0.3).max(0.05),
            utilization_max: (target + 0.3).min(1.0),
            catch_up: 1800.0,
            restart_time: 300.0,
            window: 900.0,
            stabilization: 300.0,
            scale_down_interval: 3600.0,
            min,
            max,
            restart_pause: 0.0,
            last_change: 0.0,
            lower_since: None,
            recs: VecDeque::new(),
        }
    }

    /// The Flink autoscaler as deployed: its defaults, and a job restart on every rescale.
    pub fn as_deployed(min: i32, max: i32) -> Self {
        let mut f = Flink::new(0.7, min, max);
        f.restart_pause = 60.0;
        f
    }

    /// EVENLY_SPREAD: the first divisor of P at or above `n` (P when `n` exceeds it).
    pub fn align(n: i32, partitions: i32) -> i32 {
        (n.max(1)..=partitions)
            .find(|d| partitions % d == 0)
            .unwrap_or(partitions)
    }

    /// The settings that differ from the defaults.
    pub fn settings(&self) -> String {
        let mut s = format!("target={:.2}", self.target);
        let (lo, hi) = ((self.target - 0.3).max(0.05), (self.target + 0.3).min(1.0));
        if (self.utilization_min - lo).abs() > 1e-9 || (self.utilization_max - hi).abs() > 1e-9 {
            s.push_str(&format!(
                " min/max={:.2}/{:.2}",
                self.utilization_min, self.utilization_max
            ));
        }
        if self.scale_down_interval != 3600.0 {
            s.push_str(&format!(
                " scale-down.interval={}s",
                self.scale_down_interval
            ));
        }
        if self.window != 900.0 {
            s.push_str(&format!(" metrics.window={}s", self.window));
        }
        if self.restart_pause > 0.0 {
            s.push_str(&format!(
                ", restarts {:.0} s per rescale",
                self.restart_pause
            ));
        }
        s
    }
}

impl Autoscaler for Flink {
    fn name(&self) -> String {
        if self.restart_pause > 0.0 {
            format!("Flink as deployed ({})", self.settings())
        } else {
            format!("Flink decision ({})", self.settings())
        }
    }
    fn interval(&self) -> f64 {
        60.0
    }
    fn restart_pause(&self) -> f64 {
        self.restart_pause
    }
    fn decide(&mut self, t: f64, c: &Cluster) -> Option<i32> {
        if t - self.last_change < self.stabilization + self.window {
            return None;
        }
        let o = c.observe(t, self.window)?;
        let first = c.observe(t - self.window, 0.0)?;
        let arrival = ((o.end_offsets - first.end_offsets) / self.window).max(0.0);
        let running = c.pods().max(1);
        if o.busy_fraction <= 0.0 {
            return None;
        }
        let true_rate = o.processed_rate / o.busy_fraction.min(1.0);
        let needed = |u: f64| {
            o.lag / self.catch_up + arrival * self.restart_time / self.catch_up + arrival / u
        };
        if true_rate >= needed(self.utilization_max) && true_rate <= needed(self.utilization_min) {
            self.lower_since = None;
            return None;
        }
        let factor = needed(self.target) / true_rate;
        let mut n = (factor * running as f64).ceil() as i32;
        n = n.max((running as f64 * 0.4).ceil() as i32);
        n = Self::align(n, c.partitions()).clamp(self.min, self.max);
        self.recs.push_back((t, n));
        while self
            .recs
            .front()
            .is_some_and(|(at, _)| t - at > self.scale_down_interval)
        {
            self.recs.pop_front();
        }
        if n < running {
            if arrival > 0.0 && o.lag / arrival > 300.0 {
                return None;
            }
            let since = *self.lower_since.get_or_insert(t);
            if t - since < self.scale_down_interval {
                return None;
            }
            n = self
                .recs
                .iter()
                .map(|(_, r)| *r)
                .max()
                .unwrap_or(n)
                .min(running);
        } else {
            self.lower_since = None;
        }
        if n != running {
            self.last_change = t;
            self.lower_since = None;
        }
        Some(n)
    }
}

/// Static provisioning for the trace's peak at 80 % utilization.
#[derive(Debug)]
pub struct Static {
    pub replicas: i32,
}

impl Autoscaler for Static {
    fn name(&self) -> String {
        format!("static at peak ({})", self.replicas)
    }
    fn interval(&self) -> f64 {
        3600.0
    }
    fn decide(&mut self, _t: f64, _c: &Cluster) -> Option<i32> {
        Some(self.replicas)
    }
}

#[cfg(test)]
mod tests;
