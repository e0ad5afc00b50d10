use super::*;

#[test]
fn every_scenario_runs_and_the_project_policy_stays_under_the_slo() {
    let cfg = ModelConfig::default();
    for name in ["step", "spike", "ramp", "failover"] {
        let c = compare(name, &traces::scenario(name).unwrap(), &cfg);
        assert_eq!(c.rows.len(), 9, "{name}");
        assert_eq!(
            c.runs,
            ours_targets(0.7).len() + keda_grid().len() + flink_grid().len() + 9
        );
        assert_eq!(c.rows[0].seconds_over_slo, 0, "{}", table(&c));
        for r in &c.rows {
            assert!(
                // A policy that lets a small backlog ride a rise can beat the oracle, which
                // never has one, by a little.
                r.efficiency > 0.0 && r.efficiency <= 1.05,
                "{}",
                table(&c)
            );
        }
    }
}

#[test]
fn deterministic_and_the_project_policy_keeps_a_step_under_the_slo() {
    let arrivals = traces::step(6000);
    let cfg = ModelConfig::default();
    let mut a = compare("step", &arrivals, &cfg);
    let mut b = compare("step", &arrivals, &cfg);
    for c in [&mut a, &mut b] {
        c.wall_seconds = 0.0;
        for r in c.rows.iter_mut() {
            r.wall_seconds = 0.0;
        }
    }
    assert_eq!(a, b, "the same inputs give the same run");
    let ours = &a.rows[0];
    assert!(ours.policy.starts_with("impressions"));
    assert_eq!(ours.seconds_over_slo, 0, "{}", table(&a));
}

#[test]
fn a_replay_runs_ours_with_the_pipeline_s_policy_as_the_pipeline_narrows_it() {
    let pipeline: impressions_crds::ImpressionPipelineSpec =
        serde_json::from_value(serde_json::json!({
            "source": {"bootstrapServers": "k:9092", "topic": "raw"},
            "sink": {"topic": "out", "deadLetterTopic": "dlq"},
            "enrichment": {"catalog": {"topic": "titles"}},
            "scaling": {"overrides": {"targetUtilization": 0.5, "lagSloSeconds": 30}}
        }))
        .unwrap();
    let spec = impressions_crds::ScalingPolicySpec::builtin();
    let arrivals = traces::step(3000);
    let cfg = ModelConfig::default();
    let c = compare_with("step", &arrivals, &cfg, &spec, Some(&pipeline));
    assert_eq!(c.slo_seconds, 30.0, "the pipeline's SLO is the one counted");
    assert!(c.rows[0].policy.contains("u=0.50"), "{}", table(&c));
    let plain = compare("step", &arrivals, &cfg);
    assert!(
        c.rows[0].replica_hours > plain.rows[0].replica_hours,
        "a lower target costs more"
    );
}

#[test]
fn a_declared_surge_pre_scales_through_the_operator_s_floor_before_the_load_arrives() {
    // The step's 4× rise at 1,200 s, declared as a surge ×4 from 1,200 s to 4,800 s.
    let arrivals = traces::step(6000);
    let cfg = ModelConfig::default();
    let limits = crate::autoscale::effective::from_policy(
        &impressions_crds::ScalingPolicySpec::builtin(),
        &crate::autoscale::bounds::Bounds {
            min: cfg.min_replicas,
            max: cfg.max_replicas,
            widened: vec![],
        },
        0,
    );
    let surge = crate::autoscale::planned::Surge {
        start: 1200.0,
        end: 4800.0,
        factor: 4.0,
    };
    let plain = run(
        &arrivals,
        &cfg,
        &mut Ours::new(limits.clone(), 15.0),
        60.0,
        6,
    );
    let mut declared = Ours::new(limits, 15.0).with_surges(vec![surge]);
    let planned = run(&arrivals, &cfg, &mut declared, 60.0, 6);
    let before = plain.ticks[1100].replicas;
    // Pre-scaled a pod's start and a rebalance ahead: ×4 by the time the step arrives.
    assert!(
        planned.ticks[1200].replicas >= 4 * before,
        "{} at the step, {before} before",
        planned.ticks[1200].replicas
    );
    assert!(plain.ticks[1200].replicas <= before);
    assert!(
        planned.max_lag_seconds < plain.max_lag_seconds,
        "{} vs {}",
        planned.max_lag_seconds,
        plain.max_lag_seconds
    );
    let notes = planned.notes.unwrap();
    assert!(
        notes.contains("scale-ups for them") && !notes.contains(": 0 scale-ups"),
        "{notes}"
    );
}

#[test]
fn the_grids_start_with_the_defaults() {
    assert!(matches!(
        keda_grid()[0],
        Setting::Keda {
            lag_threshold: 10.0,
            down_window: 300.0,
            limit_to_partitions_with_lag: false,
            even_distribution: false
        }
    ));
    assert!(matches!(
        flink_grid()[0],
        Setting::Flink {
            target: 0.7,
            boundary: 0.3,
            scale_down_interval: 3600.0,
            window: 900.0
        }
    ));
}

#[test]
fn the_frontier_keeps_only_undominated_settings_and_the_headline_is_the_cheapest_clean() {
    let r = |policy: &str, rh: f64, over: u64| Report {
        replica_hours: rh,
        seconds_over_slo: over,
        ..Report::of_ticks(policy, vec![])
    };
    let reports = [
        r("a", 10.0, 50),
        r("b", 12.0, 0),
        r("c", 11.0, 60),
        r("d", 20.0, 0),
    ];
    let f: Vec<String> = frontier(&reports).into_iter().map(|p| p.policy).collect();
    assert_eq!(f, ["a", "b"]);
    assert_eq!(headline(&reports), Some((1, true)));
    assert_eq!(headline(&reports[..1]), Some((0, false)));
}
