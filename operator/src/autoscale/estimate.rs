//! The estimate: one evaluation's signals + the limits + the history → arrival rate, capacity
//! per replica, backlog and the replica count the model recommends. Pure: no IO, no clock.
//!
//! The model (after DS2 and the Flink autoscaler, for stateless consumers):
//! - arrival rate = input rate from the topic's watermarks (else processed rate + d(lag)/dt);
//! - capacity per replica = processed rate / busy fraction / replicas (true capacity, not the
//!   observed rate of a half-idle worker);
//! - two demands: the steady rate, arrival × (1 + rebalance cost / catch-up), kept under the
//!   target utilization, and the catch-up rate, arrival + backlog / catch-up, which may use the
//!   headroom (full capacity), so a backlog left by a rebalance does not read as lasting demand;
//! - replicas are partition-aware: a replica holding m of P partitions carries m/P of the load,
//!   so the count keeps the average under the target utilization and the busiest replica under
//!   target + tolerance, choosing the smallest count for a given busiest share — or, when that
//!   is a jump of more than 10 %, the cheapest count whose busiest replica stays under the
//!   policy's hard ceiling (`busiestReplicaCeiling`).

use super::{
    history::History,
    model::{Estimate, Limits, Signals},
};

/// Why there is no estimate.
#[derive(Debug, Clone, PartialEq)]
pub enum NoEstimate {
    /// These signals are missing or stale.
    MetricsMissing(Vec<&'static str>),
    /// Nothing processed yet: capacity cannot be measured.
    NoCapacity {
        processed: f64,
        busy: f64,
        arrival: f64,
    },
}

/// Estimates demand and capacity from one evaluation's signals. `history` holds earlier
/// evaluations of this pipeline (lag for its growth, the last settled capacity).
pub fn estimate(s: &Signals, p: &Limits, h: &History) -> Result<Estimate, NoEstimate> {
    let cur = s.replicas.max(0);
    let (Some(lag), Some(processed), Some(busy)) = (s.lag, s.processed_rate, s.busy_fraction)
    else {
        return Err(NoEstimate::MetricsMissing(
            [
                ("lag", s.lag.is_none()),
                ("processed rate", s.processed_rate.is_none()),
                ("busy fraction", s.busy_fraction.is_none()),
            ]
            .iter()
            .filter(|(_, m)| *m)
            .map(|(n, _)| *n)
            .collect(),
        ));
    };

    // Rates. A worker that processed nothing has no measurable capacity yet.
    let lag_growth = h.lag_growth(s.now, lag);
    let arrival = s.input_rate.unwrap_or(processed + lag_growth).max(0.0);
    // Capacity is what the workers that report metrics process: pods that are pending or
    // crash-looping add nothing to the processed rate and must not divide it.
    // Prometheus keeps a removed pod's series for its lookback (5 min), so after a scale-down
    // more series than replicas are counted: the count is at most the replicas.
    let replicas = cur.max(1) as f64;
    let running = s
        .workers
        .filter(|w| *w >= 1.0)
        .map_or(replicas, |w| w.min(replicas));
    // After a change the rate window mixes the fleets before and after it until a whole window
    // has passed (after a scale-up, from when the new pods run).
    let settling = (h.since_last_change(s.now) < p.capacity_settle_seconds
        || h.since_last_up(s.now) < p.capacity_settle_seconds + p.pod_start_seconds)
        && h.last_capacity.is_some();
    let measured = if processed > 0.0 && busy > 0.01 && !settling {
        Some(processed / busy.min(1.0) / running)
    } else {
        None
    };
    // Time to drain the backlog at the rate it is being worked off (infinite if nothing moves).
    let drain_rate = processed.max(arrival);
    let backlog_s = if lag <= 0.0 {
        0.0
    } else if drain_rate > 0.0 {
        lag / drain_rate
    } else {
        f64::INFINITY
    };
    // One measure is noisy (two counters scraped apart, a rate window): the median of the
    // measures since the last change smooths it.
    let smoothed = measured.map(|m| h.capacity_median(s.now, m));
    let Some(cap) = smoothed.or(h.last_capacity) else {
        return Err(NoEstimate::NoCapacity {
            processed,
            busy,
            arrival,
        });
    };

    // Two demands. The steady one (arrival, plus the rebalance a change costs) is served at the
    // target utilization: that headroom absorbs bursts. Working off the backlog within the
    // catch-up time may use the headroom, so it is served at full capacity; otherwise the backlog
    // a scale-down's own rebalance leaves would read as demand and scale back up (flapping).
    let steady = arrival * (1.0 + p.rebalance_cost_seconds / p.catch_up_seconds);
    let catch_up = arrival + lag / p.catch_up_seconds;
    let target = steady.max(catch_up);
    let (for_steady, granularity) = granular(steady, cap, p, s.partitions);
    let recommended = for_steady
        .max(partition_aware(catch_up, cap, cap, s.partitions))
        .clamp(p.min, p.max.min(s.partitions.max(1)).max(p.min));
    let util = arrival / (running * cap);
    let why = format!(
        "arrival {arrival:.0}/s, backlog {lag:.0} events ({}), capacity {cap:.0}/s per replica, utilization {util:.2} (target {:.2}); target rate {target:.0}/s → {recommended} replicas for {} partitions{}",
        if backlog_s.is_finite() {
            format!("{backlog_s:.0} s to drain")
        } else {
            "not draining".into()
        },
        p.target_utilization,
        s.partitions,
        granularity.map(|g| format!(" ({g})")).unwrap_or_default()
    );
    Ok(Estimate {
        arrival,
        capacity: cap,
        measured_capacity: measured,
        capacity_measured: measured.is_some(),
        backlog_seconds: backlog_s,
        over_slo: backlog_s > p.lag_slo_seconds,
        utilization: util,
        recommended,
        why,
    })
}

/// The replicas for the steady demand: on average at the target utilization, the busiest
/// replica under target + tolerance — unless that count is a jump of more than 10 % over the
/// cheapest count whose busiest replica stays under the policy's hard ceiling (partition
/// granularity: with P partitions only some counts change the busiest replica's share), in
/// which case the cheaper count, and the reason in words.
pub fn granular(steady: f64, cap: f64, p: &Limits, partitions: i32) -> (i32, Option<String>) {
    let average = cap * p.target_utilization;
    let soft_peak = cap * (p.target_utilization + p.tolerance).min(1.0);
    let soft = partition_aware(steady, average, soft_peak, partitions);
    let hard = partition_aware(steady, average, cap * p.busiest_ceiling, partitions);
    let p_count = partitions.max(1);
    let (chosen, mut why) = if f64::from(soft) <= f64::from(hard) * 1.1 {
        (soft, None)
    } else {
        let held = (p_count + hard - 1) / hard.max(1);
        let busiest = f64::from(held) * steady / f64::from(p_count) / cap;
        (
            hard,
            Some(format!(
                "partition granularity: the busiest replica under {:.2} would take {soft} replicas; {hard} keep it at {busiest:.2}, under the {:.2} ceiling",
                (p.target_utilization + p.tolerance).min(1.0),
                p.busiest_ceiling
            )),
        )
    };
    // What the partition count costs now, and the topic that would cost least (up to twice the
    // partitions): only an SRE can change it, so it is said, not acted on.
    if average > 0.0 && steady > 0.0 {
        let by_rate = ((steady / average).ceil() as i32).clamp(1, p_count);
        if f64::from(chosen) > f64::from(by_rate) * 1.1 {
            let better = (p_count + 1..=2 * p_count)
                .map(|q| (q, partition_aware(steady, average, soft_peak, q)))
                .min_by_key(|(q, n)| (*n, *q))
                .filter(|(_, n)| *n < chosen);
            if let Some((q, n)) = better {
                let hint = format!(
                    "the partitions cost {} replicas over the {by_rate} the rate needs: a topic of {q} partitions would take {n}",
                    chosen - by_rate
                );
                why = Some(match why {
                    Some(w) => format!("{w}; {hint}"),
                    None => hint,
                });
            }
        }
    }
    (chosen, why)
}

/// The fewest replicas that carry `target` events/s at `average` per replica on average, with
/// the busiest one (holding ceil(P/n) of P equally loaded partitions) at most at `peak`. Among
/// counts that give the busiest replica the same number of partitions, the smallest is chosen,
/// so the count never jumps to a much larger divisor of P.
pub fn partition_aware(target: f64, average: f64, peak: f64, partitions: i32) -> i32 {
    let p = partitions.max(1);
    if target <= 0.0 {
        return 1;
    }
    if average <= 0.0 || peak <= 0.0 {
        return p;
    }
    let by_rate = (target / average).ceil().min(p as f64) as i32;
    // Most partitions one replica may hold.
    let m = ((peak.max(average) * p as f64) / target).floor() as i32;
    let by_partitions = if m <= 0 {
        p
    } else {
        (p + m.min(p) - 1) / m.min(p)
    };
    by_rate.max(by_partitions).clamp(1, p)
}
