use super::*;

#[test]
fn classic_text_names_counters_with_total() {
    let m = Metrics::default();
    let mut r = Registry::default();
    m.register(&mut r);
    m.consumed.inc_by(3);
    let text = to_prometheus_text(&encode(&r));
    assert!(
        text.contains(
            "# HELP impressions_worker_events_consumed_total Events read from the raw topic.\n"
        ),
        "{text}"
    );
    assert!(text.contains("# TYPE impressions_worker_events_consumed_total counter\n"));
    assert!(text.contains("\nimpressions_worker_events_consumed_total 3\n"));
    assert!(!text.contains("# EOF"));
}

/// A cgroup folder with a 50m CPU limit (cgroup v1 files).
fn limited_cgroup() -> crate::cpu::CpuCgroup {
    let dir = std::env::temp_dir().join(format!("metrics-cgroup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cpu.cfs_quota_us"), "5000\n").unwrap();
    std::fs::write(dir.join("cpu.cfs_period_us"), "100000\n").unwrap();
    crate::cpu::CpuCgroup {
        hierarchy: crate::cpu::Hierarchy::V1,
        dirs: vec![dir],
    }
}

#[test]
fn cpu_time_from_readiness_and_the_limit_are_read_at_each_scrape() {
    let mut r = Registry::default();
    let since_ready = std::sync::Arc::new(crate::cpu::SinceReady::default());
    let idle = register_cpu(
        &mut r,
        Some(limited_cgroup()),
        since_ready.clone(),
        Counter::default(),
    );
    // Before the worker is ready: the limit, but no CPU series (start-up is not counted).
    let text = to_prometheus_text(&encode(&r));
    assert!(!text.contains("cpu_seconds_total"), "{text}");
    assert!(
        text.contains("\nimpressions_worker_cpu_limit_cores 0.05\n"),
        "{text}"
    );
    // The start-up's CPU (this test process's so far) is left out.
    let mut x = 0u64;
    let started = crate::cpu::process_seconds();
    while crate::cpu::process_seconds() < started + 0.02 {
        x = std::hint::black_box(x.wrapping_add(1));
    }
    since_ready.mark();
    let text = to_prometheus_text(&encode(&r));
    assert!(
        text.contains("# TYPE impressions_worker_cpu_seconds_total counter\n"),
        "{text}"
    );
    assert!(
        text.contains("\nimpressions_worker_cpu_limit_cores 0.05\n"),
        "{text}"
    );
    let used = |text: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix("impressions_worker_cpu_seconds_total "))
            .unwrap()
            .parse()
            .unwrap()
    };
    let before = used(&text);
    assert!(before < 0.01, "counted from readiness: {before}");
    let at = crate::cpu::process_seconds();
    while crate::cpu::process_seconds() < at + 0.005 {
        x = std::hint::black_box(x.wrapping_add(1));
    }
    assert!(used(&to_prometheus_text(&encode(&r))) >= before + 0.005);
    // No idle CPU series before an idle stretch was measured, then its value (an idle
    // stretch of 10 s at 4 ms/s, with 5 events processed before it: the scrape's own sample,
    // at 0 processed, begins a new stretch and leaves the measured one standing).
    assert!(!text.contains("cpu_idle_cores"), "{text}");
    idle.observe(-20.0, 0.0, 5.0);
    idle.observe(-10.0, 0.04, 5.0);
    let text = to_prometheus_text(&encode(&r));
    assert!(
        text.contains("\nimpressions_worker_cpu_idle_cores 0.004\n"),
        "{text}"
    );
    // Without a limit, no limit series: the operator's CPU fraction has no value.
    let mut r = Registry::default();
    let idle = register_cpu(&mut r, None, since_ready, Counter::default());
    idle.observe(0.0, 0.0, 0.0);
    idle.observe(10.0, 0.04, 0.0);
    let text = to_prometheus_text(&encode(&r));
    assert!(
        text.contains("impressions_worker_cpu_seconds_total "),
        "{text}"
    );
    assert!(!text.contains("cpu_limit_cores"), "{text}");
    assert!(!text.contains("cpu_idle_cores"), "{text}");
}

#[test]
fn names_are_exactly_the_registered_metrics() {
    let m = Metrics::default();
    let mut r = Registry::default();
    m.register(&mut r);
    let since_ready = std::sync::Arc::new(crate::cpu::SinceReady::default());
    since_ready.mark();
    let idle = register_cpu(
        &mut r,
        Some(limited_cgroup()),
        since_ready,
        m.processed.clone(),
    );
    idle.observe(-10.0, 0.0, 0.0);
    idle.observe(-4.0, 0.01, 0.0);
    // A family without a member is not rendered: the one register() leaves empty gets one.
    let _ = m.consumer_lag.get_or_create(&PartitionLabels {
        topic: "t".into(),
        partition: "0".into(),
    });
    let text = to_prometheus_text(&encode(&r));
    let registered: std::collections::BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let listed: std::collections::BTreeSet<&str> = NAMES.iter().copied().collect();
    assert_eq!(listed.len(), NAMES.len(), "NAMES lists a name twice");
    assert_eq!(
        listed, registered,
        "NAMES must list every registered metric, and nothing else"
    );
}
