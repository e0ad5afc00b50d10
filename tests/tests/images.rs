//! The worker, operator and archiver images (`make images`, images/Containerfile) run as
//! containers (podman with runc): each is tagged as the chart names it, saved as an OCI archive,
//! labelled with its version and revision, carries its SBOM, answers `--version` through its
//! entrypoint, and runs as the non-root user 65532 — the worker against the stack's Kafka, the
//! operator against its API server, the archiver against Kafka and a SQLite catalog on a mounted
//! folder, each serving /healthz from inside the container and stopping cleanly on SIGTERM. A
//! missing image fails the test with the command that builds it.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use impressions_tests::{
    Stack,
    images::{self, podman_run},
    unique,
    worker::{self, free_port},
};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Checks what every image must have; returns its config.
fn check_image(target: &str) -> serde_json::Value {
    let image = images::image(target);
    let v = images::inspect(&image);
    let config = &v["Config"];
    assert_eq!(config["User"], "65532:65532", "{image}: {config}");
    assert_eq!(
        config["Entrypoint"],
        serde_json::json!([format!("/usr/local/bin/{target}")]),
        "{image}"
    );
    let labels = &config["Labels"];
    assert_eq!(
        labels["org.opencontainers.image.version"], VERSION,
        "{image}"
    );
    let revision = labels["org.opencontainers.image.revision"]
        .as_str()
        .unwrap_or_default();
    assert!(
        revision.len() >= 40 && revision.chars().take(40).all(|c| c.is_ascii_hexdigit()),
        "{image}: revision label {revision:?} is not a commit"
    );
    assert_eq!(labels["org.opencontainers.image.licenses"], "Apache-2.0");

    let archive = images::archive(target);
    let meta = std::fs::metadata(&archive).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: run `make images` (it saves the OCI archives)",
            archive.display()
        )
    });
    assert!(meta.len() > 1_000_000, "{} is too small", archive.display());

    let sbom: serde_json::Value = serde_json::from_slice(&images::file(
        &image,
        "/usr/share/doc/impressions/sbom.cdx.json",
    ))
    .expect("the SBOM is JSON");
    assert_eq!(sbom["bomFormat"], "CycloneDX", "{image}");
    let names: Vec<&str> = sbom["components"]
        .as_array()
        .expect("SBOM components")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    for dep in ["rdkafka", "tokio", "prometheus-client"] {
        assert!(names.contains(&dep), "{image}: SBOM lacks {dep}");
    }
    if target == "archiver" {
        assert!(names.contains(&"iceberg"), "{image}: SBOM lacks iceberg");
    }
    v
}

/// `podman run IMAGE ARGS…` to completion: (exit code, stdout, stderr).
fn run_to_end(extra: &[&str], image: &str, args: &[&str]) -> (i32, String, String) {
    let out = podman_run()
        .arg("--rm")
        .args(extra)
        .arg(image)
        .args(args)
        .output()
        .expect("podman run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn podman(args: &[&str]) -> String {
    let out = Command::new("podman")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("podman");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn http_status(port: u16, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split_whitespace().nth(1)?.parse().ok()
}

/// A detached container that is removed when dropped.
struct Running(String);

impl Running {
    fn start(name: &str, extra: &[String], image: &str, args: &[String]) -> Running {
        let out = podman_run()
            .args(["-d", "--name", name])
            .args(extra)
            .arg(image)
            .args(args)
            .output()
            .expect("podman run -d");
        assert!(
            out.status.success(),
            "podman run {image}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Running(name.to_owned())
    }

    fn logs(&self) -> String {
        let out = Command::new("podman")
            .args(["logs", &self.0])
            .output()
            .expect("podman logs");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Waits for /healthz on `port`; then the uid of the container's process.
    fn healthy_uid(&self, port: u16, timeout: Duration) -> u32 {
        let t0 = Instant::now();
        while http_status(port, "/healthz") != Some(200) {
            let state = podman(&["inspect", "--format", "{{.State.Status}}", &self.0]);
            assert!(
                t0.elapsed() < timeout && state == "running",
                "{}: not healthy within {timeout:?} (state {state}):\n{}",
                self.0,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let pid: u32 = podman(&["inspect", "--format", "{{.State.Pid}}", &self.0])
            .parse()
            .expect("the container's pid");
        images::uid_of(pid)
    }

    /// `podman stop` (SIGTERM, then SIGKILL after 20 s): the exit code.
    fn stop(&self) -> i32 {
        podman(&["stop", "-t", "20", &self.0]);
        podman(&["inspect", "--format", "{{.State.ExitCode}}", &self.0])
            .parse()
            .expect("exit code")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rm", "-f", &self.0])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn images_answer_version_through_their_entrypoints() {
    for target in ["worker", "operator", "archiver"] {
        check_image(target);
        let (code, out, err) = run_to_end(&[], &images::image(target), &["--version"]);
        assert_eq!(code, 0, "{target} --version: {err}");
        assert_eq!(out.trim(), format!("{target} {VERSION}"));
    }
    // loadgen shares the worker's image.
    let (code, out, err) = run_to_end(
        &["--entrypoint", "loadgen"],
        &images::image("worker"),
        &["--version"],
    );
    assert_eq!(code, 0, "loadgen --version: {err}");
    assert_eq!(out.trim(), format!("loadgen {VERSION}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_worker_image_runs_as_nonroot_against_kafka_and_drains_on_sigterm() {
    let stack = Stack::get();
    let image = images::image("worker");
    images::require(&image);
    let t = worker::topics(stack, "image", 2, 10).await;
    let dir = std::env::temp_dir()
        .join("impressions-tests")
        .join(unique("image-worker"));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    std::fs::write(
        dir.join("worker.yaml"),
        format!(
            "{}\nmetrics: {{listen: \"127.0.0.1:{port}\"}}\n",
            worker::config(stack, &t, "")
        ),
    )
    .unwrap();
    let name = unique("image-worker");
    let c = Running::start(
        &name,
        &[
            "-v".into(),
            format!("{}:/etc/impressions:ro", dir.display()),
            "--read-only".into(),
            "--cap-drop".into(),
            "ALL".into(),
        ],
        &image,
        &[
            "run".into(),
            "--config".into(),
            "/etc/impressions/worker.yaml".into(),
        ],
    );
    let uid = tokio::task::block_in_place(|| c.healthy_uid(port, Duration::from_secs(60)));
    assert_eq!(uid, 65532, "the worker's process runs as nonroot");
    // Ready once it has its partitions and the catalog.
    let t0 = Instant::now();
    while http_status(port, "/readyz") != Some(200) {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "not ready:\n{}",
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let code = tokio::task::block_in_place(|| c.stop());
    assert_eq!(
        code,
        0,
        "the worker drains and exits 0 on SIGTERM:\n{}",
        c.logs()
    );
}

#[test]
fn the_operator_image_runs_as_nonroot_against_the_api_server() {
    let stack = Stack::get();
    let image = images::image("operator");
    images::require(&image);
    let port = free_port();
    let ca = stack.dir.join("certs/ca.crt");
    let name = unique("image-operator");
    let ns = unique("image-op");
    let c = Running::start(
        &name,
        &[
            "-v".into(),
            format!("{}:/kube/config:ro", stack.kubeconfig.display()),
            "-v".into(),
            format!("{}:{}:ro", ca.display(), ca.display()),
            "-e".into(),
            "KUBECONFIG=/kube/config".into(),
            "--read-only".into(),
            "--cap-drop".into(),
            "ALL".into(),
        ],
        &image,
        &[
            "run".into(),
            "--region".into(),
            "image-test".into(),
            "--namespace".into(),
            ns,
            "--metrics-listen".into(),
            format!("127.0.0.1:{port}"),
        ],
    );
    let uid = c.healthy_uid(port, Duration::from_secs(60));
    assert_eq!(uid, 65532, "the operator's process runs as nonroot");
    let code = c.stop();
    assert_eq!(code, 0, "the operator exits 0 on SIGTERM:\n{}", c.logs());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_archiver_image_runs_as_nonroot_against_kafka_and_a_catalog() {
    use impressions_tests::archive::{Catalog, config};
    let stack = Stack::get();
    let image = images::image("archiver");
    images::require(&image);
    let t = worker::topics(stack, "image-archiver", 1, 0).await;
    // the catalog and warehouse on a folder the container's user may write, at the same path
    let catalog = Catalog::new("image-archiver");
    std::process::Command::new("chmod")
        .args(["-R", "a+rwx"])
        .arg(&catalog.dir)
        .status()
        .expect("chmod");
    let port = free_port();
    std::fs::write(
        catalog.dir.join("archiver.yaml"),
        format!(
            "{}\nmetrics: {{listen: \"127.0.0.1:{port}\"}}\n",
            config(
                stack,
                &t.out,
                &t.dlq,
                &format!("{}-archiver", t.group),
                &catalog,
                ""
            )
        ),
    )
    .unwrap();
    let dir = catalog.dir.display().to_string();
    let c = Running::start(
        &unique("image-archiver"),
        &[
            "-v".into(),
            format!("{dir}:{dir}"),
            "--read-only".into(),
            "--cap-drop".into(),
            "ALL".into(),
        ],
        &image,
        &["--config".into(), format!("{dir}/archiver.yaml")],
    );
    let uid = tokio::task::block_in_place(|| c.healthy_uid(port, Duration::from_secs(60)));
    assert_eq!(uid, 65532, "the archiver's process runs as nonroot");
    // Ready once the table is loaded (created in the catalog) and the consumer subscribed.
    let t0 = Instant::now();
    while http_status(port, "/readyz") != Some(200) {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "not ready:\n{}",
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        catalog.try_read(stack).is_ok(),
        "the container created the table in the mounted catalog"
    );
    let code = tokio::task::block_in_place(|| c.stop());
    assert_eq!(code, 0, "the archiver exits 0 on SIGTERM:\n{}", c.logs());
}
