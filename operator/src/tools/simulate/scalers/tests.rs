use super::*;

#[test]
fn keda_gets_stuck_one_below_the_partition_count() {
    // 64 partitions, threshold 10: a lag in [641, 649] is not capped (off-by-one), and the
    // capped metric 640 at 63 replicas is within the HPA's 10 % tolerance: stuck at 63.
    assert_eq!(KedaHpa::metric(645.0, 10.0, 64), 645.0);
    assert_eq!(KedaHpa::metric(5_000.0, 10.0, 64), 640.0);
    assert_eq!(
        KedaHpa::hpa_desired(640.0, 10.0, 63),
        63,
        "ratio 1.016 is within tolerance"
    );
}

#[test]
fn hpa_waits_300_s_before_scaling_down() {
    let cfg = super::super::model::ModelConfig {
        partitions: 8,
        metric_delay_seconds: 0.0,
        ..Default::default()
    };
    let mut c = Cluster::new(cfg, 8);
    let mut k = KedaHpa::new(10.0, 1, 8);
    let mut t = 0.0;
    // No lag: the HPA recommends 1 but holds 8 for the 300 s window.
    let mut first_down = None;
    while t < 400.0 {
        c.step(t, 0.0);
        if (t as i64) % 15 == 0
            && let Some(d) = k.decide(t, &c)
        {
            if d < 8 && first_down.is_none() {
                first_down = Some(t);
            }
            c.scale_to(t, d);
        }
        t += 1.0;
    }
    let at = first_down.expect("scaled down eventually");
    assert!(at >= 300.0, "scaled down after {at} s");
}

#[test]
fn keda_even_distribution_asks_for_a_factor_of_the_partition_count() {
    // 64 partitions, threshold 100: a lag of 2,050 asks for 21 replicas → 32.
    assert_eq!(KedaHpa::even(2_050.0, 100.0, 64), 3_200.0);
    assert_eq!(KedaHpa::even(800.0, 100.0, 64), 800.0);
}

#[test]
fn flink_on_the_common_actuator_does_not_restart_as_deployed_does() {
    assert_eq!(Flink::new(0.7, 1, 64).restart_pause(), 0.0);
    let deployed = Flink::as_deployed(1, 64);
    assert_eq!(deployed.restart_pause(), 60.0);
    assert!(deployed.name().starts_with("Flink as deployed"));
}

#[test]
fn flink_aligns_to_divisors_of_the_partition_count() {
    assert_eq!(Flink::align(30, 100), 50);
    assert_eq!(Flink::align(7, 64), 8);
    assert_eq!(Flink::align(65, 64), 64);
}
