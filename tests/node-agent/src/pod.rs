//! One pod's life on the node: fetch what it refers to (and in a container, its image), start
//! its container or process, probe it, report its status, restart it with back-off when it
//! exits, and on deletion send SIGTERM, wait the grace period, SIGKILL, and remove the pod as a
//! kubelet does.

use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::Stdio,
    sync::Arc,
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, Preconditions},
};
use serde_json::Value;
use tokio::{process::Child, sync::watch};

use super::{
    Agent, Runtime, file_sd,
    launch::{self, HttpProbe, Launch, Placement, Sources},
    oci,
    pod_status::{self, ContainerState},
    runc::{self, Runc},
};

/// What a pod runs as, once what it refers to is resolved.
enum Start {
    Process(Launch),
    Container {
        launch: Launch,
        runc: Runc,
        /// The runc container ID (`<namespace>_<pod>`), also its cgroup's name.
        id: String,
        bundle: PathBuf,
    },
}

impl Start {
    fn launch(&self) -> &Launch {
        match self {
            Start::Process(l) | Start::Container { launch: l, .. } => l,
        }
    }

    async fn spawn(&self, pod_dir: &Path) -> std::io::Result<Child> {
        match self {
            Start::Process(l) => spawn(l, pod_dir),
            Start::Container {
                runc, id, bundle, ..
            } => runc.start(id, bundle, &pod_dir.join("container.log")).await,
        }
    }

    /// SIGTERM, then SIGKILL after `grace`.
    async fn stop(&self, child: &mut Child, grace: Duration) {
        match self {
            Start::Process(_) => stop(child, grace).await,
            Start::Container { runc, id, .. } => runc.stop(id, child, grace).await,
        }
    }
}

/// The cgroup parent of the containers (`/sys/fs/cgroup/<controller>/<CGROUP_PARENT>/<id>`).
pub const CGROUP_PARENT: &str = "impressions-node-agent";

/// The runc container ID of a pod.
pub fn container_id(ns: &str, name: &str) -> String {
    format!("{ns}_{name}")
}

/// Resolves what the pod refers to into what to start, or the waiting reason and message.
async fn prepare(
    agent: &Agent,
    pod: &Pod,
    place: &Placement,
    c: &mut ContainerState,
) -> Result<Start, (String, String)> {
    let config_error = |e: String| ("CreateContainerConfigError".to_owned(), e);
    let (ns, name) = (pod.namespace().unwrap_or_default(), pod.name_any());
    let plan = || async {
        let src = sources(agent, &ns, pod)
            .await
            .map_err(|e| config_error(e.to_string()))?;
        launch::plan(pod, place, &src).map_err(|e| config_error(e.to_string()))
    };
    let Runtime::Runc(runc) = &agent.runtime else {
        return Ok(Start::Process(plan().await?));
    };
    // The image first, as a kubelet does: its config is part of the container's.
    let image_name = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    let image = match runc::inspect(&image_name).await {
        Ok(Some(image)) => image,
        Ok(None) => {
            return Err((
                "ErrImageNeverPull".into(),
                format!(
                    "Container image {image_name:?} is not present on the node, which pulls no \
                     image (`make images` builds the project's images; `podman load` loads others)"
                ),
            ));
        }
        Err(e) => return Err(("ImageInspectError".into(), format!("{e:#}"))),
    };
    c.image = Some((image_name, image.id.clone()));
    let launch = plan().await?;
    let rootfs = runc
        .rootfs(&image)
        .await
        .map_err(|e| ("CreateContainerError".to_owned(), format!("{e:#}")))?;
    let id = container_id(&ns, &name);
    let bundle = oci::Bundle {
        rootfs,
        hostname: name,
        cgroups_path: format!("/{CGROUP_PARENT}/{id}"),
        nofile: runc.nofile,
    };
    let spec = oci::spec(pod, &launch, &image, &bundle).map_err(|e| config_error(e.to_string()))?;
    let dir = place.pod_dir.join("bundle");
    Runc::write_bundle(&dir, &spec)
        .map_err(|e| ("CreateContainerError".to_owned(), e.to_string()))?;
    Ok(Start::Container {
        launch,
        runc: runc.clone(),
        id,
        bundle: dir,
    })
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn deleting(p: &Option<Pod>) -> bool {
    p.as_ref()
        .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
}

/// Sends the pod's status when it changed.
struct Reporter {
    api: Api<Pod>,
    name: String,
    ip: String,
    start_time: String,
    last: Value,
}

impl Reporter {
    async fn push(&mut self, c: &ContainerState) {
        let s = pod_status::status(c, &self.ip, &self.start_time, &now());
        if !pod_status::differs(&s, &self.last) {
            return;
        }
        let patch = serde_json::json!({ "status": s });
        match self
            .api
            .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => self.last = s,
            Err(e) => tracing::debug!(pod = %self.name, error = %e, "status not sent"),
        }
    }
}

/// Runs the pod until it is deleted or the agent stops (`None`).
pub async fn run(agent: Arc<Agent>, ip: Ipv4Addr, rx: watch::Receiver<Option<Pod>>) {
    use tracing::Instrument;
    let Some(pod) = rx.borrow().clone() else {
        return;
    };
    let span = tracing::info_span!("pod", ns = %pod.namespace().unwrap_or_default(), name = %pod.name_any(), %ip);
    lifecycle(agent, ip, pod, rx).instrument(span).await;
}

async fn lifecycle(
    agent: Arc<Agent>,
    ip: Ipv4Addr,
    pod: Pod,
    mut rx: watch::Receiver<Option<Pod>>,
) {
    let (ns, name) = (pod.namespace().unwrap_or_default(), pod.name_any());
    let api: Api<Pod> = Api::namespaced(agent.client.clone(), &ns);
    let pod_dir = pod_dir(&agent.state_dir, &ns, &name);
    let place = Placement {
        node_name: agent.node.clone(),
        pod_ip: ip,
        pod_dir: pod_dir.clone(),
        bin_dir: match &agent.runtime {
            Runtime::Process { bin_dir } => Some(bin_dir.clone()),
            Runtime::Runc(_) => None,
        },
        listen_env: agent.listen_env.clone(),
    };
    let container = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .map(|c| c.name.clone())
        .unwrap_or_default();
    let mut c = ContainerState {
        name: container,
        ..Default::default()
    };
    let mut reporter = Reporter {
        api: api.clone(),
        name: name.clone(),
        ip: ip.to_string(),
        start_time: now(),
        last: Value::Null,
    };
    let pipeline = pod.labels().get(file_sd::PIPELINE_LABEL).cloned();

    // Resolve the launch plan (and the image); a missing ConfigMap, Secret or image is retried,
    // as a kubelet does.
    let start = loop {
        if deleting(&rx.borrow()) {
            {
                let p = rx.borrow().clone();
                return finish(&api, &p, &pod_dir).await;
            }
        }
        match prepare(&agent, &pod, &place, &mut c).await {
            Ok(start) => break start,
            Err((reason, message)) => {
                tracing::warn!(%reason, error = %message, "cannot start");
                c.waiting = Some((reason, message));
                reporter.push(&c).await;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = rx.changed() => {}
                }
            }
        }
    };
    let plan = start.launch();
    if let Err(e) = write_files(plan, &pod_dir) {
        tracing::error!(error = %e, "cannot write the pod's files");
    }

    let mut backoff = Duration::from_secs(1);
    loop {
        let started = Instant::now();
        match start.spawn(&pod_dir).await {
            Ok(mut child) => {
                c.running_since = Some(now());
                c.waiting = None;
                c.ready = false;
                reporter.push(&c).await;
                if let (Some(dir), Some(("metrics", port))) = (
                    &agent.file_sd_dir,
                    plan.port.as_ref().map(|(n, p)| (n.as_str(), *p)),
                ) {
                    file_sd::write(
                        dir,
                        &ns,
                        &name,
                        pipeline.as_deref(),
                        &format!("{ip}:{port}"),
                    );
                }
                let exit = supervise(&mut child, &start, ip, &mut c, &mut reporter, &mut rx).await;
                if let Some(dir) = &agent.file_sd_dir {
                    file_sd::remove(dir, &ns, &name);
                }
                let Some(code) = exit else {
                    {
                        let p = rx.borrow().clone();
                        return finish(&api, &p, &pod_dir).await;
                    }
                };
                tracing::warn!(code, "process exited; restarting after back-off");
                c.last_exit = Some((code, now()));
                c.restarts += 1;
            }
            Err(e) => {
                tracing::error!(error = %e, command = ?plan.command, "cannot start");
                c.last_exit = None;
                c.waiting = Some(("RunContainerError".into(), e.to_string()));
            }
        }
        c.running_since = None;
        c.ready = false;
        backoff = if started.elapsed() > Duration::from_secs(60) {
            Duration::from_secs(1)
        } else {
            (backoff * 2).min(Duration::from_secs(30))
        };
        if c.waiting.is_none() {
            c.waiting = Some((
                "CrashLoopBackOff".into(),
                format!("back-off {}s restarting the process", backoff.as_secs()),
            ));
        }
        reporter.push(&c).await;
        let until = tokio::time::Instant::now() + backoff;
        while tokio::time::Instant::now() < until {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {}
                _ = rx.changed() => {}
            }
            if deleting(&rx.borrow()) {
                {
                    let p = rx.borrow().clone();
                    return finish(&api, &p, &pod_dir).await;
                }
            }
        }
    }
}

/// Watches the running process: probes readiness and liveness (failing `failureThreshold`
/// times in a row stops it, SIGTERM then SIGKILL after the termination grace, to be restarted
/// as a kubelet would), and stops it when the pod is deleted. Returns the exit code when it
/// exited by itself or was stopped for its liveness, `None` when it was stopped for deletion.
async fn supervise(
    child: &mut Child,
    start: &Start,
    ip: Ipv4Addr,
    c: &mut ContainerState,
    reporter: &mut Reporter,
    rx: &mut watch::Receiver<Option<Pod>>,
) -> Option<i32> {
    let plan = start.launch();
    let period = plan.readiness.as_ref().map_or(Duration::from_secs(1), |p| {
        p.period.min(Duration::from_secs(1))
    });
    let mut tick = tokio::time::interval(period);
    let mut liveness = plan.liveness.as_ref().map(|p| {
        let first = tokio::time::Instant::now() + p.initial_delay + p.period;
        (p, tokio::time::interval_at(first, p.period), 0u32)
    });
    loop {
        let live_tick = async {
            match &mut liveness {
                Some((_, t, _)) => t.tick().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            status = child.wait() => {
                return Some(status.map_or(-1, exit_code));
            }
            _ = tick.tick() => {
                c.ready = match &plan.readiness {
                    Some(p) => probe(ip, p).await,
                    None => true,
                };
                reporter.push(c).await;
            }
            _ = live_tick => {
                let Some((p, _, failures)) = &mut liveness else { continue };
                if probe(ip, p).await {
                    *failures = 0;
                    continue;
                }
                *failures += 1;
                tracing::warn!(failures = *failures, path = %p.path, "liveness probe failed");
                if *failures >= p.failure_threshold {
                    tracing::warn!(
                        failures = *failures,
                        grace = ?plan.termination_grace,
                        "liveness probe failed {} times in a row; restarting the process",
                        *failures
                    );
                    c.ready = false;
                    reporter.push(c).await;
                    start.stop(child, plan.termination_grace).await;
                    return Some(child.wait().await.map_or(-1, exit_code));
                }
            }
            _ = rx.changed() => {
                if deleting(&rx.borrow()) {
                    let grace = rx.borrow().as_ref()
                        .and_then(|p| p.metadata.deletion_grace_period_seconds)
                        .unwrap_or(30);
                    start.stop(child, Duration::from_secs(grace.max(0) as u64)).await;
                    return None;
                }
            }
        }
    }
}

fn exit_code(s: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
}

/// SIGTERM, then SIGKILL after `grace`.
pub async fn stop(child: &mut Child, grace: Duration) {
    if let Some(pid) = child.id() {
        let _ = tokio::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
    }
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        tracing::warn!(
            ?grace,
            "process did not stop within the grace period; SIGKILL"
        );
        let _ = child.kill().await;
    }
}

/// After the process stopped: a deleted pod is removed (grace 0, as a kubelet confirms it).
async fn finish(api: &Api<Pod>, pod: &Option<Pod>, pod_dir: &Path) {
    keep_log(pod_dir);
    let _ = std::fs::remove_dir_all(pod_dir);
    let Some(pod) = pod else { return };
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    if let Err(e) = api.delete(&pod.name_any(), &dp).await {
        tracing::debug!(error = %e, "pod already gone");
    }
}

/// Moves a finished pod's `container.log` to `<state>/logs/<ns>_<pod>.log`: the pod's folder
/// goes, what its process said stays for whoever looks into a run afterwards.
fn keep_log(pod_dir: &Path) {
    let (Some(pods), Some(name)) = (pod_dir.parent(), pod_dir.file_name()) else {
        return;
    };
    let Some(state) = pods.parent() else { return };
    let logs = state.join("logs");
    let kept = std::fs::create_dir_all(&logs).and_then(|()| {
        std::fs::rename(
            pod_dir.join("container.log"),
            logs.join(format!("{}.log", name.to_string_lossy())),
        )
    });
    if let Err(e) = kept {
        tracing::debug!(error = %e, "the pod's log was not kept");
    }
}

/// The ConfigMaps and Secrets the pod refers to (those that exist).
async fn sources(agent: &Agent, ns: &str, pod: &Pod) -> kube::Result<Sources> {
    let mut src = Sources::default();
    let Some(spec) = &pod.spec else {
        return Ok(src);
    };
    let (mut cms, mut secrets) = (Vec::new(), Vec::new());
    for v in spec.volumes.iter().flatten() {
        cms.extend(v.config_map.as_ref().map(|c| c.name.clone()));
        secrets.extend(v.secret.as_ref().and_then(|s| s.secret_name.clone()));
    }
    for c in &spec.containers {
        for f in c.env_from.iter().flatten() {
            cms.extend(f.config_map_ref.as_ref().map(|r| r.name.clone()));
            secrets.extend(f.secret_ref.as_ref().map(|r| r.name.clone()));
        }
        for e in c.env.iter().flatten() {
            let from = e.value_from.as_ref();
            cms.extend(
                from.and_then(|f| f.config_map_key_ref.as_ref())
                    .map(|r| r.name.clone()),
            );
            secrets.extend(
                from.and_then(|f| f.secret_key_ref.as_ref())
                    .map(|r| r.name.clone()),
            );
        }
    }
    let cm_api: Api<ConfigMap> = Api::namespaced(agent.client.clone(), ns);
    for name in cms {
        if let Some(cm) = cm_api.get_opt(&name).await? {
            src.config_maps
                .insert(name, cm.data.unwrap_or_default().into_iter().collect());
        }
    }
    let secret_api: Api<Secret> = Api::namespaced(agent.client.clone(), ns);
    for name in secrets {
        if let Some(s) = secret_api.get_opt(&name).await? {
            let data = s.data.unwrap_or_default().into_iter();
            let data = data.map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()));
            src.secrets.insert(name, data.collect());
        }
    }
    Ok(src)
}

fn write_files(plan: &Launch, pod_dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(pod_dir)?;
    for dir in &plan.dirs {
        std::fs::create_dir_all(dir)?;
    }
    for (path, text) in &plan.files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, text)?;
    }
    Ok(())
}

fn spawn(plan: &Launch, pod_dir: &Path) -> std::io::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(pod_dir.join("container.log"))?;
    // setpriv sets the parent-death signal, then execs the program: the process dies with the
    // agent even when the agent is killed.
    let (program, args) = plan
        .command
        .split_first()
        .ok_or_else(|| std::io::Error::other("no command"))?;
    let mut cmd = tokio::process::Command::new("setpriv");
    cmd.args(["--pdeathsig", "KILL", "--"])
        .arg(program)
        .args(args)
        .args(plan.args.iter().flatten())
        .env_clear()
        .envs(plan.env.iter().cloned())
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .current_dir(pod_dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true);
    cmd.spawn()
}

/// One HTTP GET; 2xx and 3xx are success, as for a kubelet.
async fn probe(ip: Ipv4Addr, p: &HttpProbe) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let get = async {
        let mut s = tokio::net::TcpStream::connect((ip, p.port)).await.ok()?;
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: {ip}\r\nConnection: close\r\n\r\n",
            p.path
        );
        s.write_all(req.as_bytes()).await.ok()?;
        let mut head = [0u8; 16];
        let n = s.read(&mut head).await.ok()?;
        let line = std::str::from_utf8(&head[..n]).ok()?;
        line.split_whitespace().nth(1)?.parse::<u16>().ok()
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), get).await,
        Ok(Some(200..=399))
    )
}

/// The pod folder of a pod (its files and `container.log`).
pub fn pod_dir(state_dir: &Path, ns: &str, name: &str) -> PathBuf {
    state_dir.join("pods").join(format!("{ns}_{name}"))
}
