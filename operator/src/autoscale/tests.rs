//! Table tests of the scaling decision.

use super::{
    decide::decide,
    estimate::partition_aware,
    history::History,
    model::{Decision, Limits, Signals, Step},
};

pub(crate) fn policy() -> Limits {
    Limits {
        min: 1,
        max: 20,
        target_utilization: 0.7,
        tolerance: 0.1,
        busiest_ceiling: 0.9,
        lag_slo_seconds: 30.0,
        catch_up_seconds: 60.0,
        rebalance_cost_seconds: 0.0,
        capacity_settle_seconds: 0.0,
        pod_start_seconds: 30.0,
        up: Step {
            stabilization_seconds: 0.0,
            max_percent: 100.0,
            max_replicas: 4,
            cooldown_seconds: 30.0,
        },
        down: Step {
            stabilization_seconds: 120.0,
            max_percent: 50.0,
            max_replicas: 0,
            cooldown_seconds: 60.0,
        },
        missing_metrics_replicas: None,
        stale_after_seconds: 60.0,
        paused: false,
        frozen: false,
    }
}

/// Replicas each able to do 1000 events/s when fully busy, `rate` arriving, `lag` behind.
fn signals(now: f64, replicas: i32, rate: f64, lag: f64) -> Signals {
    let capacity = 1000.0 * replicas as f64;
    let processed = rate.min(capacity);
    Signals {
        now,
        replicas,
        partitions: 24,
        lag: Some(lag),
        input_rate: Some(rate),
        processed_rate: Some(processed),
        busy_fraction: Some((processed / capacity).clamp(0.02, 1.0)),
        workers: None,
        lag_stale: false,
        throughput_stale: false,
    }
}

/// Runs evaluations every 15 s at a steady state, applying decisions, returning the last.
fn settle(
    h: &mut History,
    p: &Limits,
    from: f64,
    until: f64,
    mut replicas: i32,
    rate: f64,
    lag: f64,
) -> (i32, Decision) {
    let mut t = from;
    let mut last = None;
    while t <= until {
        let d = decide(&signals(t, replicas, rate, lag), p, h);
        h.record(t, Some(lag), replicas, &d, true);
        replicas = d.replicas;
        last = Some(d);
        t += 15.0;
    }
    (replicas, last.expect("at least one evaluation"))
}

#[test]
fn partition_aware_counts() {
    // 24 partitions, 4.5 replicas' worth: 5 replicas hold at most 5 partitions each.
    assert_eq!(partition_aware(4500.0, 1000.0, 1000.0, 24), 5);
    // 12 partitions, 4.5 replicas' worth: 5 would put 3 on one replica (1125 > 1000) → 6.
    assert_eq!(partition_aware(4500.0, 1000.0, 1000.0, 12), 6);
    // With headroom for the busiest replica (1200), 5 is enough.
    assert_eq!(partition_aware(4500.0, 1000.0, 1200.0, 12), 5);
    // 64 partitions, 22.9 replicas' worth: 23, not the next even divisor (32).
    assert_eq!(partition_aware(400_000.0, 17_500.0, 20_000.0, 64), 23);
    // More load than all partitions can spread: capped at P.
    assert_eq!(partition_aware(1e9, 1000.0, 1000.0, 12), 12);
    assert_eq!(partition_aware(0.0, 1000.0, 1000.0, 12), 1);
}

#[test]
fn step_up_scales_at_once_within_the_step_limit() {
    let h = History::default();
    // 2 replicas at 1000/s each; the rate steps to 8000/s.
    let d = decide(&signals(0.0, 2, 8000.0, 0.0), &policy(), &h);
    assert_eq!(
        d.recommended, 12,
        "8000/(1000×0.7) = 11.4 → 12 (2 partitions each)"
    );
    assert_eq!(
        d.replicas, 6,
        "limited to +4 per decision (100 % of 2 is less)"
    );
    assert_eq!(d.reason, "ScaleUp");
    assert!(d.message.contains("limited to +4"), "{}", d.message);
}

#[test]
fn backlog_adds_catch_up_rate_and_says_so() {
    let h = History::default();
    // Steady 2000/s on 4 replicas, but 600k events behind (300 s > 30 s SLO).
    let d = decide(&signals(0.0, 4, 2000.0, 600_000.0), &policy(), &h);
    // Catch-up = 2000 + 600000/60 = 12000/s, served at full capacity (the backlog may use the
    // headroom): 12000/1000 = 12 → 12 (2 of 24 partitions each).
    assert_eq!(d.recommended, 12);
    assert_eq!(d.reason, "ScaleUpForBacklog");
    assert_eq!(d.replicas, 8);
}

#[test]
fn no_scale_down_while_a_backlog_above_the_slo_is_worked_off() {
    let mut h = History::default();
    let p = policy();
    // Low arrival, large backlog: the recommendation is lower than 10 but the backlog blocks it.
    let (replicas, d) = settle(&mut h, &p, 0.0, 300.0, 10, 100.0, 50_000.0);
    assert_eq!(replicas, 10);
    assert_eq!(d.reason, "HoldBacklog", "{}", d.message);
}

#[test]
fn step_down_waits_for_the_stabilization_window_then_takes_the_highest() {
    let mut h = History::default();
    let p = policy();
    // 8 replicas, load drops to 1400/s → 2 replicas recommended.
    let d = decide(&signals(0.0, 8, 1400.0, 0.0), &p, &h);
    assert_eq!((d.replicas, d.reason), (8, "HoldStabilizing"));
    h.record(0.0, Some(0.0), 8, &d, true);
    let (replicas, _) = settle(&mut h, &p, 15.0, 105.0, 8, 1400.0, 0.0);
    assert_eq!(replicas, 8, "still inside the 120 s window");
    let (replicas, d) = settle(&mut h, &p, 120.0, 120.0, 8, 1400.0, 0.0);
    assert_eq!((replicas, d.reason), (4, "ScaleDown"), "{}", d.message);
    assert!(
        d.message.contains("8 → 4"),
        "at most 50 % per decision: {}",
        d.message
    );
}

#[test]
fn a_short_spike_scales_up_and_does_not_flap_down() {
    let mut h = History::default();
    let p = policy();
    let (replicas, _) = settle(&mut h, &p, 0.0, 150.0, 3, 1500.0, 0.0);
    assert_eq!(replicas, 3, "steady load holds");
    let (replicas, _) = settle(&mut h, &p, 165.0, 195.0, replicas, 6000.0, 0.0);
    assert!(replicas >= 8, "the spike scales up: {replicas}");
    // The spike ends; within the down window nothing moves.
    let (after, d) = settle(&mut h, &p, 210.0, 300.0, replicas, 1500.0, 0.0);
    assert_eq!(after, replicas, "{}", d.message);
}

#[test]
fn missing_metrics_hold_or_go_up_to_the_fallback_never_down() {
    let h = History::default();
    let mut s = signals(0.0, 5, 1000.0, 0.0);
    s.processed_rate = None;
    let d = decide(&s, &policy(), &h);
    assert_eq!(
        (d.replicas, d.reason, d.metrics_available),
        (5, "HoldMetricsMissing", false)
    );
    assert!(d.message.contains("processed rate"), "{}", d.message);
    let mut p = policy();
    p.missing_metrics_replicas = Some(8);
    assert_eq!(decide(&s, &p, &h).replicas, 8);
    p.missing_metrics_replicas = Some(2);
    assert_eq!(
        decide(&s, &p, &h).replicas,
        5,
        "the fallback never scales down"
    );
}

#[test]
fn partition_count_caps_replicas() {
    let h = History::default();
    let mut s = signals(0.0, 4, 50_000.0, 0.0);
    s.partitions = 6;
    let mut p = policy();
    p.up.max_replicas = 100;
    let d = decide(&s, &p, &h);
    assert_eq!(
        (d.recommended, d.replicas),
        (6, 6),
        "never more replicas than partitions"
    );
}

#[test]
fn freeze_window_blocks_scale_down_but_not_up() {
    let mut h = History::default();
    let mut p = policy();
    p.frozen = true;
    let (replicas, d) = settle(&mut h, &p, 0.0, 600.0, 8, 700.0, 0.0);
    assert_eq!((replicas, d.reason), (8, "HoldFreezeWindow"));
    let d = decide(&signals(615.0, 8, 20_000.0, 0.0), &p, &h);
    assert!(d.replicas > 8, "scale-up still allowed: {}", d.message);
}

#[test]
fn paused_policy_holds() {
    let mut p = policy();
    p.paused = true;
    let d = decide(&signals(0.0, 2, 50_000.0, 1e6), &p, &History::default());
    assert_eq!((d.replicas, d.reason), (2, "HoldPaused"));
}

#[test]
fn ineffective_scale_up_stops_further_scale_ups() {
    let mut h = History::default();
    let p = policy();
    // 2 replicas saturated by a slow sink: capacity 1000/s in total whatever the count.
    let sink_bound = |t: f64, replicas: i32| Signals {
        now: t,
        replicas,
        partitions: 24,
        lag: Some(10_000.0 + t * 100.0),
        input_rate: Some(3000.0),
        processed_rate: Some(1000.0),
        busy_fraction: Some(1.0),
        workers: None,
        lag_stale: false,
        throughput_stale: false,
    };
    let d = decide(&sink_bound(0.0, 2), &p, &h);
    assert!(d.replicas > 2);
    h.record(0.0, Some(10_000.0), 2, &d, true);
    let scaled = d.replicas;
    // A minute later the new replicas run but total capacity did not grow.
    let d = decide(&sink_bound(75.0, scaled), &p, &h);
    h.record(75.0, Some(17_500.0), scaled, &d, d.replicas != scaled);
    let d = decide(&sink_bound(90.0, scaled), &p, &h);
    assert!(d.ineffective_scale_up, "{}", d.message);
    assert_eq!((d.replicas, d.reason), (scaled, "HoldIneffectiveScaleUp"));

    // The same, but the source cluster stopped answering while the new replicas settled (the
    // lag a stand-in, the workers blocked on it): their low rate is the outage's, and the
    // scale-up is not judged by it.
    let mut h = History::default();
    let d = decide(&sink_bound(0.0, 2), &p, &h);
    h.record(0.0, Some(10_000.0), 2, &d, true);
    let mut blind = sink_bound(40.0, scaled);
    blind.lag_stale = true;
    let d = decide(&blind, &p, &h);
    h.record(40.0, Some(14_000.0), scaled, &d, d.replicas != scaled);
    let d = decide(&sink_bound(75.0, scaled), &p, &h);
    h.record(75.0, Some(17_500.0), scaled, &d, d.replicas != scaled);
    let d = decide(&sink_bound(90.0, scaled), &p, &h);
    assert!(!d.ineffective_scale_up, "{}", d.message);
}

#[test]
fn within_tolerance_does_not_flap() {
    let mut h = History::default();
    let p = policy();
    // 4 replicas at 0.66 utilization (target 0.7 ± 0.1): hold for a long time.
    let (replicas, d) = settle(&mut h, &p, 0.0, 1800.0, 4, 2640.0, 0.0);
    assert_eq!(replicas, 4, "{}", d.message);
}

#[test]
fn capacity_measured_while_the_fleet_settles_is_not_trusted() {
    let mut p = policy();
    p.capacity_settle_seconds = 30.0;
    let mut h = History::default();
    h.last_capacity = Some(1000.0);
    h.note_change(100.0, false);
    // 10 s after a scale-down the rate window still mixes two fleets: it reads 300/s per replica.
    let mut s = signals(110.0, 1, 250.0, 0.0);
    s.processed_rate = Some(250.0);
    s.busy_fraction = Some(250.0 / 300.0);
    let d = decide(&s, &p, &h);
    assert!(!d.capacity_measured);
    assert_eq!(d.capacity_per_replica, Some(1000.0));
    assert_eq!(d.recommended, 1, "{}", d.message);
    // Once settled, the same reading counts.
    s.now = 140.0;
    let d = decide(&s, &p, &h);
    assert!(d.capacity_measured);
    assert_eq!(d.capacity_per_replica.map(f64::round), Some(300.0));
    assert_eq!(d.recommended, 2, "{}", d.message);
}

#[test]
fn no_scale_down_until_a_whole_window_of_metrics_follows_an_outage() {
    let mut h = History::default();
    let p = policy();
    // The fleet settles on a high load.
    let (replicas, _) = settle(&mut h, &p, 0.0, 300.0, 10, 7000.0, 0.0);
    // Prometheus goes away for 2 minutes: hold.
    for t in (315..=435).step_by(15) {
        let mut s = signals(t as f64, replicas, 7000.0, 0.0);
        s.processed_rate = None;
        s.busy_fraction = None;
        let d = decide(&s, &p, &h);
        assert_eq!(d.reason, "HoldMetricsMissing");
        h.record(t as f64, Some(0.0), replicas, &d, true);
    }
    // It comes back on a load that needs 3: nothing moves until the 120 s window is covered
    // by fresh recommendations.
    let (during, d) = settle(&mut h, &p, 450.0, 540.0, replicas, 2000.0, 0.0);
    assert_eq!(during, replicas, "{}", d.message);
    let (after, d) = settle(&mut h, &p, 555.0, 600.0, during, 2000.0, 0.0);
    assert!(after < replicas, "{}", d.message);
}

#[test]
fn capacity_divides_by_the_workers_reporting_not_the_deployment() {
    // 4 replicas wanted, 2 running (2 pending): 1,000/s processed at 50 % busy is 1,000/s per
    // worker, not 500/s per replica.
    let mut s = signals(0.0, 4, 1000.0, 0.0);
    s.processed_rate = Some(1000.0);
    s.busy_fraction = Some(0.5);
    s.workers = Some(2.0);
    let with_workers = decide(&s, &policy(), &History::default());
    assert_eq!(with_workers.capacity_per_replica, Some(1000.0));
    s.workers = None;
    let by_deployment = decide(&s, &policy(), &History::default());
    assert_eq!(by_deployment.capacity_per_replica, Some(500.0));
    assert!(
        with_workers.recommended < by_deployment.recommended,
        "pending pods made each replica look weaker: {} vs {}",
        with_workers.recommended,
        by_deployment.recommended
    );
}

#[test]
fn a_stand_in_for_a_failed_read_never_scales_down_and_breaks_the_down_window() {
    // The load fell to a quarter: with fresh metrics the window would scale down.
    let mut h = History::default();
    let p = policy();
    let mut s = signals(0.0, 8, 2000.0, 0.0);
    s.throughput_stale = true;
    let d = decide(&s, &p, &h);
    assert_eq!(d.replicas, 8, "{}", d.message);
    // Even with a down window that held on fresh metrics, a stand-in does not scale down.
    let mut held = History::default();
    for t in (0..=150).step_by(15) {
        let fresh = decide(&signals(f64::from(t), 8, 2000.0, 0.0), &p, &held);
        held.record(f64::from(t), Some(0.0), 8, &fresh, false);
    }
    let mut late = signals(165.0, 8, 2000.0, 0.0);
    late.throughput_stale = true;
    let late = decide(&late, &p, &held);
    assert_eq!(
        (late.reason, late.replicas),
        ("HoldStaleMetrics", 8),
        "{}",
        late.message
    );
    assert!(!d.metrics_available, "a gap in the down window");
    h.record(0.0, None, 8, &d, true);
    // Fresh again at 130 s: the 120 s down window must be refilled before any scale-down.
    let fresh = decide(&signals(130.0, 8, 2000.0, 0.0), &p, &h);
    assert_eq!(fresh.replicas, 8, "{}", fresh.message);
    // A stand-in for Prometheus may still justify a scale-up (the lag is read fresh) ...
    let mut up = signals(0.0, 2, 8000.0, 0.0);
    up.throughput_stale = true;
    assert!(decide(&up, &p, &History::default()).replicas > 2);
    // ... a stand-in for the lag may not: the source cluster did not answer the operator.
    up.lag_stale = true;
    let held = decide(&up, &p, &History::default());
    assert_eq!(
        (held.reason, held.replicas),
        ("HoldStaleMetrics", 2),
        "{}",
        held.message
    );
    assert!(
        held.message.contains("the source cluster did not answer"),
        "{}",
        held.message
    );
}

/// `signals` on a topic of `partitions` partitions.
fn on_partitions(s: Signals, partitions: i32) -> Signals {
    Signals { partitions, ..s }
}

#[test]
fn partition_granularity_takes_the_cheapest_count_under_the_ceiling_and_says_so() {
    let mut p = policy();
    p.max = 64;
    // 64 partitions, 27 replicas' worth arriving on 34 replicas. Keeping the busiest replica
    // under 0.8 needs one partition each (64 replicas); 39 keep it at 2 × 27000/64 = 844/s,
    // 0.84, under the 0.9 ceiling, with the average at the 0.7 target.
    let s = on_partitions(signals(0.0, 34, 27_000.0, 0.0), 64);
    let d = decide(&s, &p, &History::default());
    assert_eq!(d.recommended, 39, "{}", d.message);
    assert!(
        d.message.contains("partition granularity")
            && d.message.contains("would take 64 replicas")
            && d.message.contains("0.84"),
        "{}",
        d.message
    );
    // What the partitions cost is said: 39 replicas' worth of rate, 39 chosen — nothing to say.
    assert!(!d.message.contains("a topic of"), "{}", d.message);
    // With the ceiling at target + tolerance the jump stands, and the message says which
    // partition count would avoid it.
    p.busiest_ceiling = 0.8;
    let d = decide(&s, &p, &History::default());
    assert_eq!(d.recommended, 64, "{}", d.message);
    assert!(
        d.message
            .contains("the partitions cost 25 replicas over the 39 the rate needs: a topic of"),
        "{}",
        d.message
    );
}

#[test]
fn the_ceiling_is_a_policy_field_with_a_default() {
    use crate::autoscale::{bounds::Bounds, effective::from_policy};
    let b = Bounds {
        min: 1,
        max: 64,
        widened: vec![],
    };
    let builtin = impressions_crds::ScalingPolicySpec::builtin();
    assert_eq!(from_policy(&builtin, &b, 0).busiest_ceiling, 0.9);
    let mut spec = builtin;
    spec.busiest_replica_ceiling = 0.95;
    assert_eq!(from_policy(&spec, &b, 0).busiest_ceiling, 0.95);
}

#[test]
fn the_built_in_policy_scales_up_in_one_step_to_the_need() {
    use crate::autoscale::{bounds::Bounds, effective::from_policy};
    let b = Bounds {
        min: 1,
        max: 64,
        widened: vec![],
    };
    let p = from_policy(&impressions_crds::ScalingPolicySpec::builtin(), &b, 0);
    // 4 replicas at 1000/s each; the rate steps to 16000/s: one step to the need (up to 11×).
    let d = decide(&signals(0.0, 4, 16_000.0, 0.0), &p, &History::default());
    assert_eq!(d.replicas, d.recommended, "{}", d.message);
    assert!(d.replicas >= 23, "{}", d.message);
}

#[test]
fn within_tolerance_does_not_scale_up_either() {
    // 4 replicas at 0.78 (target 0.7 + 0.1), the busiest (6 of 24 partitions) at 0.78.
    let d = decide(
        &signals(0.0, 4, 3120.0, 0.0),
        &policy(),
        &History::default(),
    );
    assert_eq!(
        (d.replicas, d.reason),
        (4, "HoldWithinTolerance"),
        "{}",
        d.message
    );
    // Above the tolerance it does, once the need held for 90 s (the fleet keeps up meanwhile).
    let mut h = History::default();
    let (replicas, d) = settle(&mut h, &policy(), 0.0, 90.0, 4, 3400.0, 0.0);
    assert_eq!((replicas, d.reason), (5, "ScaleUp"), "{}", d.message);
    // When it cannot keep up, at once.
    let d = decide(
        &signals(0.0, 4, 4400.0, 0.0),
        &policy(),
        &History::default(),
    );
    assert_eq!(d.reason, "ScaleUp", "{}", d.message);
}

#[test]
fn a_burst_within_the_headroom_is_no_reason_to_scale_up() {
    let mut h = History::default();
    let p = policy();
    let (replicas, _) = settle(&mut h, &p, 0.0, 600.0, 12, 8000.0, 0.0);
    assert_eq!(replicas, 12);
    // A minute at +30 %: the 12 replicas carry it at 0.87 (2 of 24 partitions each).
    let (during, d) = settle(&mut h, &p, 615.0, 675.0, replicas, 10_400.0, 0.0);
    assert_eq!((during, d.reason), (12, "HoldBurst"), "{}", d.message);
    let (after, _) = settle(&mut h, &p, 690.0, 1200.0, during, 8000.0, 0.0);
    assert_eq!(after, 12);
}

#[test]
fn a_sudden_drop_to_near_zero_is_no_reason_to_scale_down() {
    let mut h = History::default();
    let mut p = policy();
    p.down.max_percent = 100.0;
    let (replicas, _) = settle(&mut h, &p, 0.0, 600.0, 10, 7000.0, 0.0);
    assert_eq!(replicas, 10);
    // The producers stop for 15 minutes: held.
    let (during, d) = settle(&mut h, &p, 615.0, 1500.0, replicas, 0.0, 0.0);
    assert_eq!(
        (during, d.reason),
        (10, "HoldInputStopped"),
        "{}",
        d.message
    );
    assert!(d.message.contains("flush"), "{}", d.message);
    // Half an hour later they have not come back: the input is what it is.
    let (after, d) = settle(&mut h, &p, 1515.0, 2700.0, during, 0.0, 0.0);
    assert!(after < 10, "{}", d.message);
}

/// Runs evaluations every 15 s of a load `rate(t)`, applying decisions; returns the times of
/// the changes and the last count.
fn follow(
    h: &mut History,
    p: &Limits,
    until: f64,
    mut replicas: i32,
    rate: impl Fn(f64) -> f64,
) -> (Vec<f64>, i32, Decision) {
    let (mut t, mut changes, mut last) = (0.0, Vec::new(), None);
    while t <= until {
        let d = decide(&signals(t, replicas, rate(t), 0.0), p, h);
        h.record(t, Some(0.0), replicas, &d, true);
        if d.replicas != replicas {
            changes.push(t);
        }
        replicas = d.replicas;
        last = Some(d);
        t += 15.0;
    }
    (changes, replicas, last.expect("an evaluation"))
}

#[test]
fn load_cycling_faster_than_a_round_trip_holds_at_the_peak() {
    let mut p = policy();
    p.down.stabilization_seconds = 300.0;
    p.down.max_percent = 100.0;
    // A 10-minute sawtooth from 2000 to 6000/s: low for ~6 minutes per cycle, shorter than
    // twice the round trip (300 s down window + 30 s pod start).
    let saw = |period: f64| move |t: f64| 2000.0 + 4000.0 * (t % period) / period;
    let mut h = History::default();
    let (changes, replicas, d) = follow(&mut h, &p, 7200.0, 3, saw(600.0));
    let late: Vec<f64> = changes.iter().copied().filter(|t| *t > 3600.0).collect();
    assert!(late.is_empty(), "changes in the second hour: {late:?}");
    // The peak at the 0.9 ceiling: 6000/900 → 7, 4 of 24 partitions on the busiest (1000/s)
    // is too many → 8.
    assert_eq!(replicas, 8, "{}", d.message);
    assert!(d.message.contains("load cycles"), "{}", d.message);
    // A half-hour sawtooth is slow enough to follow.
    let mut h = History::default();
    let (changes, _, d) = follow(&mut h, &p, 7200.0, 3, saw(1800.0));
    assert!(
        changes.iter().filter(|t| **t > 3600.0).count() >= 2,
        "{changes:?} {}",
        d.message
    );
    assert!(!d.message.contains("load cycles"), "{}", d.message);
}

#[test]
fn a_scale_down_waits_for_the_load_to_settle_and_goes_in_one_step() {
    let mut h = History::default();
    let mut p = policy();
    p.down.max_percent = 100.0;
    let (replicas, _) = settle(&mut h, &p, 0.0, 300.0, 10, 7000.0, 0.0);
    // The load falls to 1000/s; the first two evaluations still read it half-way (4000/s).
    let rate = |t: f64| if t < 345.0 { 4000.0 } else { 1000.0 };
    let mut changes = Vec::new();
    let mut n = replicas;
    let mut t = 315.0;
    while t <= 900.0 {
        let d = decide(&signals(t, n, rate(t), 0.0), &p, &h);
        h.record(t, Some(0.0), n, &d, true);
        if d.replicas != n {
            changes.push((t, n, d.replicas));
        }
        n = d.replicas;
        t += 15.0;
    }
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(n, 2);
}

#[test]
fn capacity_is_the_median_of_the_measures_since_the_last_change() {
    let mut h = History::default();
    let p = policy();
    for (t, busy) in [(0.0, 0.5), (15.0, 0.4), (30.0, 0.6), (45.0, 0.5)] {
        // 4 replicas processing 2000/s: capacity 1000 at busy 0.5, 1250 at 0.4, 833 at 0.6.
        let mut s = signals(t, 4, 2000.0, 0.0);
        s.busy_fraction = Some(busy);
        let d = decide(&s, &p, &h);
        h.record(t, Some(0.0), 4, &d, false);
    }
    let mut s = signals(60.0, 4, 2000.0, 0.0);
    s.busy_fraction = Some(0.25);
    let d = decide(&s, &p, &h);
    // Measures 1000, 1250, 833, 1000 and now 2000: the median is 1000.
    assert!(d.message.contains("capacity 1000/s"), "{}", d.message);
    assert_eq!(
        d.capacity_per_replica,
        Some(2000.0),
        "the status shows this evaluation's measure"
    );
}

#[test]
fn after_a_blind_spell_the_down_window_counts_from_the_first_fresh_read() {
    // Fresh and low for long, then blind (a hung broker) from 200 s to 230 s, fresh again from
    // 240 s: what happened between 230 s and 240 s was not seen either, so a window that
    // reaches back before 240 s has not held.
    let p = policy();
    let mut h = History::default();
    let mut t = 0.0;
    while t <= 190.0 {
        let d = decide(&signals(t, 8, 2000.0, 0.0), &p, &h);
        h.record(t, Some(0.0), 8, &d, false);
        t += 10.0;
    }
    for t in [200.0, 210.0, 220.0, 230.0] {
        let mut s = signals(t, 8, 2000.0, 0.0);
        s.throughput_stale = true;
        let d = decide(&s, &p, &h);
        h.record(t, None, 8, &d, false);
    }
    let window = p.down.stabilization_seconds;
    let first_fresh = 240.0;
    let mut t = first_fresh;
    while t < first_fresh + window {
        let d = decide(&signals(t, 8, 2000.0, 0.0), &p, &h);
        assert_eq!(d.replicas, 8, "{t}: {}", d.message);
        h.record(t, Some(0.0), 8, &d, false);
        t += 10.0;
    }
    let d = decide(&signals(first_fresh + window, 8, 2000.0, 0.0), &p, &h);
    assert!(
        d.replicas < 8,
        "a full window of fresh reads: {}",
        d.message
    );
}

#[test]
fn a_fleet_that_processes_nothing_while_the_backlog_grows_is_held_as_stalled() {
    let mut h = History::default();
    let p = policy();
    // 2 replicas carry 1000/s (capacity 1000/s each, measured while they worked).
    let (replicas, _) = settle(&mut h, &p, 0.0, 150.0, 2, 1000.0, 0.0);
    assert_eq!(replicas, 2);
    // Then they stop: nothing processed, the backlog grows by the input.
    let stalled = |t: f64, lag: f64| Signals {
        processed_rate: Some(0.0),
        busy_fraction: Some(0.0),
        ..signals(t, replicas, 1000.0, lag)
    };
    let mut reasons = Vec::new();
    for (i, t) in (165..=300).step_by(15).enumerate() {
        let s = stalled(f64::from(t), 15_000.0 * (i + 1) as f64);
        let d = decide(&s, &p, &h);
        assert!(d.stalled, "{}", d.message);
        h.record(s.now, s.lag, replicas, &d, false);
        reasons.push((t, d.reason, d.replicas));
    }
    // Before a minute of it the ordinary rules apply; after, the decision holds and says why.
    assert!(
        reasons[..4].iter().all(|r| r.1 != "HoldStalled"),
        "{reasons:?}"
    );
    let held: Vec<_> = reasons.iter().filter(|r| r.1 == "HoldStalled").collect();
    assert_eq!(held.first().map(|r| r.0), Some(225), "{reasons:?}");
    assert!(held.iter().all(|r| r.2 == replicas));
    assert!(
        reasons
            .iter()
            .skip_while(|r| r.0 < 225)
            .all(|r| r.1 == "HoldStalled")
    );
    let d = decide(&stalled(315.0, 200_000.0), &p, &h);
    assert!(
        d.message
            .contains("processed 0/s for 150 s while 200000 events waited"),
        "{}",
        d.message
    );
    // It moves again: the ordinary rules are back at once.
    h.record(315.0, Some(200_000.0), replicas, &d, false);
    let d = decide(&signals(330.0, replicas, 1000.0, 190_000.0), &p, &h);
    assert!(!d.stalled);
    assert_eq!(d.reason, "ScaleUpForBacklog", "{}", d.message);
}

#[test]
fn a_fleet_that_processes_little_is_not_stalled() {
    let h = History::default();
    // 5 events/s of a 1000/s replica still moves: a slow fleet, not a stalled one.
    let s = Signals {
        processed_rate: Some(15.0),
        busy_fraction: Some(0.015),
        ..signals(0.0, 1, 15.0, 50_000.0)
    };
    assert!(!decide(&s, &policy(), &h).stalled);
}
