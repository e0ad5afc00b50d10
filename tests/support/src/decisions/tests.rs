use super::*;

const ORIGIN: f64 = 1_796_000_000.0;

fn ts(t: f64) -> String {
    let ms = ((ORIGIN + t) * 1000.0).round() as i64;
    k8s_openapi::jiff::Timestamp::from_millisecond(ms)
        .unwrap()
        .to_string()
}

fn eval_line(t: f64, reason: &str, replicas: i32, rec: Option<i32>, tail: &str) -> String {
    let why = match rec {
        Some(r) => format!(
            "arrival 979/s, backlog 120 events (0 s to drain), capacity 450/s per replica, utilization 0.27 (target 0.70); target rate 1142/s → {r} replicas for 8 partitions; {tail}"
        ),
        None => format!("lag missing or stale: holding {replicas} replicas; {tail}"),
    };
    format!(
        "\u{1b}[2m{}\u{1b}[0m \u{1b}[34mDEBUG\u{1b}[0m \u{1b}[2mimpressions_operator::autoscale::evaluator\u{1b}[0m\u{1b}[2m:\u{1b}[0m evaluated \u{1b}[3mpipeline\u{1b}[0m\u{1b}[2m=\u{1b}[0mImpressionPipeline.v1alpha1.impressions.dev/chaos.ns-1 \u{1b}[3mreason\u{1b}[0m\u{1b}[2m=\u{1b}[0m\"{reason}\" \u{1b}[3mreplicas\u{1b}[0m\u{1b}[2m=\u{1b}[0m{replicas} {why}",
        ts(t)
    )
}

/// Evaluations every 5 s from `from` to `to` recommending `rec` at `replicas`.
fn steady(from: f64, to: f64, replicas: i32, rec: i32) -> Vec<String> {
    let mut out = Vec::new();
    let mut t = from;
    while t <= to {
        out.push(eval_line(
            t,
            "HoldStabilizing",
            replicas,
            Some(rec),
            "held: a lower count must hold",
        ));
        t += 5.0;
    }
    out
}

fn rules() -> Rules {
    Rules {
        down_window: 30.0,
        max_gap: 20.0,
        apply_within: 20.0,
        ..Rules::default()
    }
}

fn log(lines: &[String], source: usize) -> DecisionLog {
    DecisionLog::parse(&lines.join("\n"), source, ORIGIN)
}

fn down(t: f64) -> Change {
    Change {
        before: t - 1.5,
        t,
        from: 8,
        to: 4,
    }
}

#[test]
fn parses_an_evaluated_line_with_colours() {
    let l = log(
        &[eval_line(
            12.5,
            "ScaleDown",
            4,
            Some(4),
            "scaling down 8 → 4 (highest recommendation in the 30 s window: 4)",
        )],
        3,
    );
    assert_eq!(l.evaluations.len(), 1);
    let e = &l.evaluations[0];
    assert!((e.t - 12.5).abs() < 1e-6, "{}", e.t);
    assert_eq!(
        (e.source, e.namespace.as_str(), e.name.as_str()),
        (3, "ns-1", "chaos")
    );
    assert_eq!((e.reason.as_str(), e.replicas), ("ScaleDown", 4));
    assert_eq!(e.recommended, Some(4));
    assert!(e.message.ends_with("window: 4)"), "{}", e.message);
}

#[test]
fn parses_plain_lines_rebuilds_and_stand_ins() {
    let text = format!(
        "{} DEBUG impressions_operator::autoscale::evaluator: evaluated pipeline=ImpressionPipeline.v1alpha1.impressions.dev/side.ns-1 reason=\"HoldMetricsMissing\" replicas=1 processed rate, busy fraction missing or stale: holding 1 replicas (never scaling down on missing data)\n\
         {} INFO impressions_operator::autoscale::evaluator: rebuilt the scaling history from Prometheus pipeline=ImpressionPipeline.v1alpha1.impressions.dev/side.ns-1 points=12\n\
         {} DEBUG impressions_operator::autoscale::evaluator: using the last good read error=Kafka did not answer within 10s age=6.0\n\
         {} INFO impressions_operator::controller: something else",
        ts(1.0),
        ts(2.0),
        ts(3.0),
        ts(4.0)
    );
    let l = DecisionLog::parse(&text, 0, ORIGIN);
    assert_eq!(l.evaluations.len(), 1);
    assert_eq!(l.evaluations[0].recommended, None);
    assert_eq!(l.evaluations[0].reason, "HoldMetricsMissing");
    assert_eq!(l.rebuilds.len(), 1);
    assert_eq!(l.rebuilds[0].name, "side");
    assert_eq!(l.stand_ins.len(), 1);
    assert_eq!(l.stand_ins[0].error, "Kafka did not answer within 10s");
    assert_eq!(l.count("ns-1", "side", "HoldMetricsMissing", 0.0, 2.0), 1);
}

#[test]
fn a_scale_down_justified_by_its_window_is_due() {
    let mut lines = steady(0.0, 60.0, 8, 4);
    lines.push(eval_line(
        62.0,
        "ScaleDown",
        4,
        Some(4),
        "scaling down 8 → 4",
    ));
    let v = log(&lines, 0).judge(&down(63.0), "ns-1", "chaos", &rules());
    assert!(v.due, "{v:?}");
}

#[test]
fn a_scale_down_applied_after_an_api_server_outage_is_due() {
    // Decided at 30 while the API server was away (25–60); the Deployment read again at 61
    // still shows 8, the change is seen at 63.
    let mut lines = steady(0.0, 25.0, 8, 4);
    lines.push(eval_line(
        30.0,
        "ScaleDown",
        4,
        Some(4),
        "scaling down 8 → 4",
    ));
    lines.extend(steady(35.0, 60.0, 8, 4));
    let c = Change {
        before: 61.0,
        t: 63.0,
        from: 8,
        to: 4,
    };
    let mut r = rules();
    assert!(!log(&lines, 0).judge(&c, "ns-1", "chaos", &r).due);
    r.stalls.push(Interval {
        from: 25.0,
        to: 60.0,
        what: "API server restart".into(),
    });
    let v = log(&lines, 0).judge(&c, "ns-1", "chaos", &r);
    assert!(v.due, "{v:?}");
}

#[test]
fn a_change_no_decision_explains_is_wrong() {
    let lines = steady(0.0, 60.0, 8, 4);
    let v = log(&lines, 0).judge(&down(61.0), "ns-1", "chaos", &rules());
    assert!(!v.due);
    assert!(v.why.contains("no scale decision"), "{}", v.why);
}

#[test]
fn a_scale_down_with_a_higher_recommendation_or_missing_metrics_in_its_window_is_wrong() {
    for (reason, rec) in [("HoldStabilizing", Some(6)), ("HoldMetricsMissing", None)] {
        let mut lines = steady(0.0, 40.0, 8, 4);
        lines.push(eval_line(45.0, reason, 8, rec, "held"));
        lines.extend(steady(50.0, 60.0, 8, 4));
        lines.push(eval_line(
            62.0,
            "ScaleDown",
            4,
            Some(4),
            "scaling down 8 → 4",
        ));
        let v = log(&lines, 0).judge(&down(63.0), "ns-1", "chaos", &rules());
        assert!(!v.due, "{reason}: {v:?}");
        assert!(v.why.contains("at 45.0"), "{}", v.why);
    }
}

fn hidden(from: f64, to: f64) -> Rules {
    let mut r = rules();
    r.blind.push(Interval {
        from,
        to,
        what: "a fault".into(),
    });
    r
}

#[test]
fn a_scale_down_due_before_a_fault_and_decided_on_a_stand_in_is_due() {
    // As in the chaos run of 2026-12-01: recommendations of 4 from fresh metrics since 22,
    // Prometheus hung at 41, the scale-down decided at 51 on a stand-in for it.
    let mut lines = vec![eval_line(16.0, "HoldMetricsMissing", 8, None, "holding")];
    lines.extend(steady(22.0, 40.0, 8, 4));
    lines.push(eval_line(
        51.0,
        "ScaleDown",
        4,
        Some(4),
        "scaling down 8 → 4",
    ));
    let v = log(&lines, 0).judge(&down(52.0), "ns-1", "chaos", &hidden(41.0, 170.0));
    assert!(v.due, "{v:?}");
    assert!(v.why.contains("due before it"), "{}", v.why);
}

#[test]
fn a_scale_down_the_fresh_metrics_before_the_fault_did_not_make_is_wrong() {
    // Fresh recommendations of 6 before the fault, stand-ins recommending 4 during it.
    let mut lines = steady(0.0, 40.0, 8, 6);
    lines.push(eval_line(46.0, "HoldStabilizing", 8, Some(4), "held"));
    lines.push(eval_line(
        51.0,
        "ScaleDown",
        4,
        Some(4),
        "scaling down 8 → 4",
    ));
    let v = log(&lines, 0).judge(&down(52.0), "ns-1", "chaos", &hidden(41.0, 170.0));
    assert!(!v.due, "{v:?}");
    assert!(v.why.contains("recommended 6 > 4"), "{}", v.why);
    // Nor one whose whole window fell in the fault.
    let v = log(&lines, 0).judge(&down(52.0), "ns-1", "chaos", &hidden(10.0, 170.0));
    assert!(!v.due, "{v:?}");
}

#[test]
fn a_scale_down_after_a_fault_whose_window_rests_on_stand_ins_is_wrong() {
    // As in a chaos run of 2026-12-01: the broker hung 18–48; stand-in reads gave arrival
    // 0/s and recommendations of 1; at 56, with a capacity misread right after the hang,
    // the operator scaled 8 → 4 with a backlog of 36,392 events.
    let mut lines = steady(0.0, 14.0, 8, 4);
    for t in [25.0, 36.0, 47.0] {
        lines.push(eval_line(t, "HoldBacklog", 8, Some(1), "arrival 0/s"));
    }
    lines.push(eval_line(
        56.0,
        "ScaleDown",
        4,
        Some(2),
        "scaling down 8 → 4",
    ));
    let v = log(&lines, 0).judge(&down(57.0), "ns-1", "chaos", &hidden(18.0, 47.0));
    assert!(!v.due, "{v:?}");
    assert!(v.why.contains("overlaps a fault"), "{}", v.why);
}

#[test]
fn a_scale_up_on_a_stand_in_is_due_only_if_fresh_metrics_had_made_it() {
    let up = Change {
        before: 9.5,
        t: 11.0,
        from: 4,
        to: 6,
    };
    let stand_in = eval_line(10.0, "ScaleUp", 6, Some(6), "scaling up 4 → 6");
    let l = log(std::slice::from_ref(&stand_in), 0);
    assert!(!l.judge(&up, "ns-1", "chaos", &hidden(5.0, 15.0)).due);
    assert!(l.judge(&up, "ns-1", "chaos", &rules()).due);
    let l = log(
        &[
            eval_line(2.0, "HoldCooldown", 4, Some(6), "held: cooldown"),
            stand_in,
        ],
        0,
    );
    assert!(l.judge(&up, "ns-1", "chaos", &hidden(5.0, 15.0)).due);
}

#[test]
fn a_gap_in_the_window_is_covered_only_by_a_new_leader_that_rebuilt_the_history() {
    // The old leader (source 0) until 35; the new one (source 1) from 55.
    let old = steady(0.0, 35.0, 8, 4);
    let mut new = steady(58.0, 58.0, 8, 4);
    new.push(eval_line(
        62.0,
        "ScaleDown",
        4,
        Some(4),
        "scaling down 8 → 4",
    ));
    let without = {
        let mut l = log(&old, 0);
        let n = log(&new, 1);
        l.evaluations.extend(n.evaluations);
        l
    };
    let v = without.judge(&down(63.0), "ns-1", "chaos", &rules());
    assert!(!v.due, "{v:?}");
    assert!(
        v.why.contains("no evaluation logged from 35.0"),
        "{}",
        v.why
    );
    let mut with = without.clone();
    with.rebuilds.push(Rebuild {
        t: 57.0,
        source: 1,
        namespace: "ns-1".into(),
        name: "chaos".into(),
    });
    let v = with.judge(&down(63.0), "ns-1", "chaos", &rules());
    assert!(v.due, "{v:?}");
}

#[test]
fn the_longest_gap_counts_from_the_last_evaluation_before_the_interval() {
    let mut lines = steady(0.0, 20.0, 2, 2);
    lines.extend(steady(36.0, 60.0, 2, 2));
    let l = log(&lines, 0);
    let (gap, at) = l.longest_gap("ns-1", "chaos", 22.0, 50.0);
    assert!(
        (gap - 16.0).abs() < 1e-6 && (at - 20.0).abs() < 1e-6,
        "{gap} {at}"
    );
    let (gap, _) = l.longest_gap("ns-1", "chaos", 40.0, 50.0);
    assert!((gap - 5.0).abs() < 1e-6, "{gap}");
}

#[test]
fn changes_skip_the_creation_of_the_deployment() {
    let s = |t: f64, replicas: i32, deployment: bool| Sample {
        t,
        input: 0.0,
        replicas,
        ready: 0,
        lag: 0,
        deployment,
    };
    let c = changes(&[
        s(0.0, 0, false),
        s(1.0, 1, true),
        s(2.0, 4, true),
        s(3.0, 4, true),
        s(4.0, 0, false),
    ]);
    assert_eq!(
        c,
        vec![Change {
            before: 1.0,
            t: 2.0,
            from: 1,
            to: 4
        }]
    );
}
