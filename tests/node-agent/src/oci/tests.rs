use std::{collections::BTreeMap, net::Ipv4Addr};

use super::*;
use crate::launch::{self, Placement, Sources};

fn pod(resources: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "p-1", "namespace": "ns", "uid": "u"},
        "spec": {
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532},
            "containers": [{
                "name": "worker", "image": "ghcr.io/impressions/worker:0.1.0",
                "command": ["worker"],
                "args": ["run", "--config", "/etc/impressions/worker.yaml"],
                "env": [{"name": "A", "value": "pod"}],
                "ports": [{"name": "metrics", "containerPort": 9464}],
                "resources": resources,
                "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}},
                "volumeMounts": [{"name": "config", "mountPath": "/etc/impressions", "readOnly": true}],
            }],
            "volumes": [{"name": "config", "configMap": {"name": "cfg"}}],
        },
    }))
    .unwrap()
}

fn plan(p: &Pod) -> Launch {
    let place = Placement {
        node_name: "n".into(),
        pod_ip: Ipv4Addr::new(127, 70, 0, 2),
        pod_dir: "/state/pods/ns_p-1".into(),
        bin_dir: None,
        listen_env: Some("WORKER__METRICS__LISTEN".into()),
    };
    let src = Sources {
        config_maps: BTreeMap::from([(
            "cfg".into(),
            BTreeMap::from([("worker.yaml".into(), "x: 1".into())]),
        )]),
        ..Sources::default()
    };
    launch::plan(p, &place, &src).unwrap()
}

fn image() -> Image {
    Image {
        id: "sha256:abc".into(),
        entrypoint: vec!["/usr/local/bin/worker".into()],
        cmd: vec![],
        env: vec![
            "PATH=/usr/local/bin".into(),
            "A=image".into(),
            "B=image".into(),
        ],
        user: "65532:65532".into(),
        working_dir: String::new(),
    }
}

fn bundle() -> Bundle {
    Bundle {
        rootfs: "/state/images/abc/rootfs".into(),
        hostname: "p-1".into(),
        cgroups_path: "/impressions-node-agent/ns_p-1".into(),
        nofile: 4096,
    }
}

#[test]
fn a_worker_pod_becomes_a_limited_non_root_container_on_the_host_network() {
    let p = pod(json!({"requests": {"cpu": "250m"}, "limits": {"cpu": "500m", "memory": "512Mi"}}));
    let s = spec(&p, &plan(&p), &image(), &bundle()).unwrap();
    let cpu = &s["linux"]["resources"]["cpu"];
    assert_eq!(cpu["quota"], 50_000);
    assert_eq!(cpu["period"], 100_000);
    assert_eq!(cpu["shares"], 256);
    assert_eq!(
        s["linux"]["resources"]["memory"]["limit"],
        512 * 1024 * 1024
    );
    assert_eq!(s["linux"]["cgroupsPath"], "/impressions-node-agent/ns_p-1");
    let ns: Vec<&str> = s["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert!(!ns.contains(&"network"), "{ns:?}");
    let proc = &s["process"];
    assert_eq!(proc["user"], json!({"uid": 65532, "gid": 65532}));
    assert_eq!(
        proc["args"],
        json!(["worker", "run", "--config", "/etc/impressions/worker.yaml"])
    );
    let env: Vec<&str> = proc["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(env.contains(&"PATH=/usr/local/bin"));
    assert!(
        env.contains(&"A=pod") && env.contains(&"B=image"),
        "{env:?}"
    );
    assert!(env.contains(&"WORKER__METRICS__LISTEN=127.70.0.2:9464"));
    assert_eq!(proc["capabilities"]["bounding"], json!([]));
    assert_eq!(proc["noNewPrivileges"], true);
    assert_eq!(
        proc["rlimits"][0],
        json!({"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 4096})
    );
    assert_eq!(
        s["root"],
        json!({"path": "/state/images/abc/rootfs", "readonly": true})
    );
    let mounts = s["mounts"].as_array().unwrap();
    let config = mounts
        .iter()
        .find(|m| m["destination"] == "/etc/impressions")
        .unwrap();
    assert_eq!(config["source"], "/state/pods/ns_p-1/etc/impressions");
    assert_eq!(config["options"], json!(["rbind", "nosuid", "nodev", "ro"]));
    assert!(
        mounts
            .iter()
            .any(|m| m["destination"] == "/tmp" && m["type"] == "tmpfs")
    );
}

#[test]
fn without_limits_there_is_no_quota_and_a_limit_alone_is_the_request() {
    let p = pod(json!({}));
    assert!(
        spec(&p, &plan(&p), &image(), &bundle()).unwrap()["linux"]["resources"]["cpu"].is_null()
    );
    let c = &pod(json!({"limits": {"cpu": "2"}}))
        .spec
        .unwrap()
        .containers[0];
    assert_eq!(
        limits(c).unwrap(),
        Limits {
            cpu_quota_us: Some(200_000),
            cpu_shares: Some(2048),
            memory_bytes: None
        }
    );
    let c = &pod(json!({"limits": {"memory": "lots"}}))
        .spec
        .unwrap()
        .containers[0];
    assert_eq!(
        limits(c),
        Err(SpecError::Quantity {
            field: "limits.memory".into(),
            value: "lots".into()
        })
    );
}

#[test]
fn quantities() {
    assert_eq!(millicores("500m"), Some(500));
    assert_eq!(millicores("1"), Some(1000));
    assert_eq!(millicores("0.25"), Some(250));
    assert_eq!(millicores("-1"), None);
    assert_eq!(bytes("512Mi"), Some(536_870_912));
    assert_eq!(bytes("1G"), Some(1_000_000_000));
    assert_eq!(bytes("64k"), Some(64_000));
    assert_eq!(bytes("1e3"), Some(1000));
    assert_eq!(bytes("x"), None);
}

#[test]
fn command_and_args_over_entrypoint_and_cmd() {
    let img = Image {
        entrypoint: vec!["/e".into()],
        cmd: vec!["c".into()],
        ..image()
    };
    let l = |command: &[&str], args: Option<&[&str]>| Launch {
        command: command.iter().map(|s| s.to_string()).collect(),
        args: args.map(|a| a.iter().map(|s| s.to_string()).collect()),
        env: vec![],
        files: vec![],
        dirs: vec![],
        mounts: vec![],
        port: None,
        readiness: None,
        liveness: None,
        termination_grace: std::time::Duration::from_secs(30),
    };
    assert_eq!(argv(&l(&["x"], Some(&["a"])), &img).unwrap(), ["x", "a"]);
    assert_eq!(argv(&l(&["x"], None), &img).unwrap(), ["x"]);
    assert_eq!(argv(&l(&[], Some(&["a"])), &img).unwrap(), ["/e", "a"]);
    assert_eq!(argv(&l(&[], None), &img).unwrap(), ["/e", "c"]);
    assert_eq!(
        argv(&l(&[], None), &Image::default()),
        Err(SpecError::NoCommand)
    );
}

#[test]
fn the_user_comes_from_the_security_context_else_the_image() {
    let mut p = pod(json!({}));
    let c = p.spec.as_ref().unwrap().containers[0].clone();
    assert_eq!(user(&p, &c, &image()), Ok((65532, 65532)));
    p.spec.as_mut().unwrap().security_context = None;
    assert_eq!(
        user(
            &p,
            &c,
            &Image {
                user: "1000:1001".into(),
                ..image()
            }
        ),
        Ok((1000, 1001))
    );
    assert_eq!(
        user(
            &p,
            &c,
            &Image {
                user: "app".into(),
                ..image()
            }
        ),
        Err(SpecError::UserName("app".into()))
    );
    p.spec.as_mut().unwrap().security_context =
        Some(serde_json::from_value(json!({"runAsNonRoot": true})).unwrap());
    assert_eq!(
        user(
            &p,
            &c,
            &Image {
                user: String::new(),
                ..image()
            }
        ),
        Err(SpecError::RunsAsRoot)
    );
}
