use super::*;
use serde_json::json;

fn pod() -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "p-1", "namespace": "ns", "uid": "u"},
        "spec": {
            "containers": [{
                "name": "worker", "command": ["worker"],
                "args": ["run", "--config", "/etc/impressions/worker.yaml", "--pod=$(POD)"],
                "env": [
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "kafka", "key": "password"}}},
                    {"name": "WORKER__SOURCE__KAFKA__x", "value": "env-wins"},
                ],
                "envFrom": [{"prefix": "WORKER__SOURCE__KAFKA__", "secretRef": {"name": "kafka"}}],
                "ports": [{"name": "metrics", "containerPort": 9464}],
                "readinessProbe": {"httpGet": {"path": "/readyz", "port": "metrics"}, "periodSeconds": 5},
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": 9464}, "initialDelaySeconds": 4, "failureThreshold": 2},
                "volumeMounts": [
                    {"name": "config", "mountPath": "/etc/impressions"},
                    {"name": "catalog", "mountPath": "/etc/impressions/catalog"},
                ],
            }],
            "volumes": [
                {"name": "config", "configMap": {"name": "cfg"}},
                {"name": "catalog", "configMap": {"name": "titles"}},
            ],
        },
    }))
    .unwrap()
}

fn place() -> Placement {
    Placement {
        node_name: "n".into(),
        pod_ip: Ipv4Addr::new(127, 70, 0, 2),
        pod_dir: "/tmp/pods/ns_p-1".into(),
        bin_dir: Some("/bin-dir".into()),
        listen_env: Some("WORKER__METRICS__LISTEN".into()),
    }
}

fn sources() -> Sources {
    let map = |kv: &[(&str, &str)]| {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    Sources {
        config_maps: BTreeMap::from([
            (
                "cfg".into(),
                map(&[("worker.yaml", "catalog: /etc/impressions/catalog/t.json")]),
            ),
            ("titles".into(), map(&[("t.json", "[]")])),
        ]),
        secrets: BTreeMap::from([(
            "kafka".into(),
            map(&[("password", "s3cret"), ("x", "from-secret")]),
        )]),
    }
}

#[test]
fn plan_maps_command_env_mounts_ports_and_probe() {
    let l = plan(&pod(), &place(), &sources()).unwrap();
    assert_eq!(l.command, ["/bin-dir/worker"]);
    assert_eq!(
        l.args.unwrap(),
        [
            "run",
            "--config",
            "/tmp/pods/ns_p-1/etc/impressions/worker.yaml",
            "--pod=p-1"
        ]
    );
    let env: BTreeMap<_, _> = l.env.iter().cloned().collect();
    assert_eq!(env["HOSTNAME"], "p-1");
    assert_eq!(env["PASS"], "s3cret");
    assert_eq!(env["WORKER__SOURCE__KAFKA__password"], "s3cret");
    assert_eq!(env["WORKER__SOURCE__KAFKA__x"], "env-wins");
    assert_eq!(env["WORKER__METRICS__LISTEN"], "127.70.0.2:9464");
    let file = |p: &str| {
        l.files
            .iter()
            .find(|(f, _)| f == &PathBuf::from(p))
            .map(|x| x.1.clone())
    };
    assert_eq!(
        file("/tmp/pods/ns_p-1/etc/impressions/worker.yaml").unwrap(),
        "catalog: /tmp/pods/ns_p-1/etc/impressions/catalog/t.json"
    );
    assert_eq!(
        file("/tmp/pods/ns_p-1/etc/impressions/catalog/t.json").unwrap(),
        "[]"
    );
    assert_eq!(l.port, Some(("metrics".into(), 9464)));
    assert_eq!(
        l.readiness,
        Some(HttpProbe {
            path: "/readyz".into(),
            port: 9464,
            period: Duration::from_secs(5),
            initial_delay: Duration::ZERO,
            failure_threshold: 3,
        })
    );
    assert_eq!(
        l.liveness,
        Some(HttpProbe {
            path: "/healthz".into(),
            port: 9464,
            period: Duration::from_secs(10),
            initial_delay: Duration::from_secs(4),
            failure_threshold: 2,
        })
    );
    assert_eq!(l.termination_grace, Duration::from_secs(30));
}

#[test]
fn in_a_container_paths_stay_and_volumes_are_mounted_parents_first() {
    let place = Placement {
        bin_dir: None,
        ..place()
    };
    let l = plan(&pod(), &place, &sources()).unwrap();
    assert_eq!(l.command, ["worker"]);
    assert_eq!(
        l.args.as_deref().unwrap()[2],
        "/etc/impressions/worker.yaml"
    );
    assert!(l.files.iter().any(|(p, text)| p
        == &PathBuf::from("/tmp/pods/ns_p-1/etc/impressions/worker.yaml")
        && text == "catalog: /etc/impressions/catalog/t.json"));
    let mounts: Vec<_> = l
        .mounts
        .iter()
        .map(|m| (m.source.clone(), m.destination.as_str()))
        .collect();
    assert_eq!(
        mounts,
        [
            (
                "/tmp/pods/ns_p-1/etc/impressions".into(),
                "/etc/impressions"
            ),
            (
                "/tmp/pods/ns_p-1/etc/impressions/catalog".into(),
                "/etc/impressions/catalog"
            ),
        ]
    );
    // Without a command a container runs its image's entrypoint; a process cannot.
    let mut p = pod();
    p.spec.as_mut().unwrap().containers[0].command = None;
    assert_eq!(
        plan(&p, &place, &sources()).unwrap().command,
        Vec::<String>::new()
    );
    assert_eq!(
        plan(&p, &self::place(), &sources()),
        Err(LaunchError::NoCommand)
    );
}

#[test]
fn missing_sources_are_named() {
    let mut s = sources();
    s.secrets.clear();
    assert_eq!(
        plan(&pod(), &place(), &s),
        Err(LaunchError::Secret("kafka".into()))
    );
    let mut s = sources();
    s.config_maps.remove("titles");
    assert_eq!(
        plan(&pod(), &place(), &s),
        Err(LaunchError::ConfigMap("titles".into()))
    );
}

#[test]
fn rewrite_matches_whole_paths_only_once() {
    let roots = vec!["/etc/a".to_owned(), "/data".to_owned()];
    let dir = std::path::Path::new("/x/data");
    assert_eq!(
        rewrite("/etc/a/f /etc/ab /data", &roots, dir),
        "/x/data/etc/a/f /etc/ab /x/data/data"
    );
    assert_eq!(rewrite("file=/data/q", &roots, dir), "file=/x/data/data/q");
}

#[test]
fn unknown_references_stay_as_written() {
    let env = vec![("A".to_owned(), "1".to_owned())];
    assert_eq!(expand_vars("$(A)-$(B)-$(", &env), "1-$(B)-$(");
}
