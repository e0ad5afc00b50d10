//! From a Pod to what the agent starts (pure): command, arguments, environment, files and
//! mounts, the port the pod serves, its readiness and liveness probes and its termination grace.
//!
//! Each volume's files are written under the pod's own folder. In a container they are
//! bind-mounted at their mount paths. As a local process, two things a container runtime would
//! give each pod are stood in for:
//! - the mount namespace: absolute mount paths are rewritten to the pod folder in the arguments,
//!   environment values and mounted files;
//! - the network namespace (in both modes: containers share the host's network): each pod gets
//!   its own loopback address (its pod IP), and the variable named by `listen_env` is set to
//!   `podIP:port` so the process listens there.

use std::{collections::BTreeMap, net::Ipv4Addr, path::PathBuf, time::Duration};

use k8s_openapi::api::core::v1::{Container, EnvVar, Pod};

/// ConfigMap and Secret data the pod refers to, by name (Secret values decoded).
#[derive(Debug, Default, Clone)]
pub struct Sources {
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
    pub secrets: BTreeMap<String, BTreeMap<String, String>>,
}

/// Where a pod runs on this node.
#[derive(Debug, Clone)]
pub struct Placement {
    pub node_name: String,
    pub pod_ip: Ipv4Addr,
    /// The pod's own folder (where the volumes' files are written).
    pub pod_dir: PathBuf,
    /// As a local process: where the programs named by `command[0]` are found (mount paths are
    /// rewritten to the pod folder). `None`: the pod runs in a container from its image, with a
    /// mount namespace of its own.
    pub bin_dir: Option<PathBuf>,
    /// The variable that tells the process where to listen (`podIP:port`).
    pub listen_env: Option<String>,
}

/// An HTTP probe.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpProbe {
    pub path: String,
    pub port: u16,
    pub period: Duration,
    /// Before the first probe after the process starts (`initialDelaySeconds`).
    pub initial_delay: Duration,
    /// Failures in a row that count (`failureThreshold`, 3 by default as for a kubelet).
    pub failure_threshold: u32,
}

/// A file to write: its path and its text.
pub type File = (PathBuf, String);

/// A volume of the pod, bind-mounted into its container.
#[derive(Debug, Clone, PartialEq)]
pub struct Mount {
    /// The folder under the pod folder.
    pub source: PathBuf,
    /// The container's `mountPath`.
    pub destination: String,
    pub read_only: bool,
}

/// What to start for a pod.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    /// The container's `command` (`$(VAR)` expanded). As a local process, never empty: its
    /// first word is the program in the bin folder. In a container, empty means the image's
    /// entrypoint.
    pub command: Vec<String>,
    /// The container's `args`; `None` when it has none (a container then takes the image's
    /// `Cmd` when the command is the image's too).
    pub args: Option<Vec<String>>,
    pub env: Vec<(String, String)>,
    pub files: Vec<File>,
    /// Mount folders (created even when empty).
    pub dirs: Vec<PathBuf>,
    /// The volume mounts, parents before the mounts nested in them.
    pub mounts: Vec<Mount>,
    /// The first container port (the one Prometheus scrapes when it is named `metrics`).
    pub port: Option<(String, u16)>,
    pub readiness: Option<HttpProbe>,
    /// Failing `failure_threshold` times in a row restarts the process, as a kubelet does.
    pub liveness: Option<HttpProbe>,
    /// SIGTERM to SIGKILL when the agent stops the process (`terminationGracePeriodSeconds`).
    pub termination_grace: Duration,
}

/// Why a pod cannot be started (shown as the container's waiting reason).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LaunchError {
    #[error("the pod has no container")]
    NoContainer,
    #[error(
        "container has no command (a local process is a program of the bin folder; run the node agent with --runtime runc to start the image's entrypoint)"
    )]
    NoCommand,
    #[error("ConfigMap {0:?} not found")]
    ConfigMap(String),
    #[error("Secret {0:?} not found")]
    Secret(String),
    #[error("key {key:?} not found in {source_name}")]
    Key { source_name: String, key: String },
    #[error("env {0}: only value, fieldRef, secretKeyRef and configMapKeyRef are supported")]
    EnvSource(String),
    #[error("volume {0}: only configMap, secret and emptyDir volumes are supported")]
    Volume(String),
    #[error("probe port {0:?} is not a port of the container")]
    ProbePort(String),
}

/// The launch plan of a pod's first container.
pub fn plan(pod: &Pod, place: &Placement, src: &Sources) -> Result<Launch, LaunchError> {
    let spec = pod.spec.as_ref().ok_or(LaunchError::NoContainer)?;
    let c = spec.containers.first().ok_or(LaunchError::NoContainer)?;
    let command = c.command.clone().unwrap_or_default();
    if command.is_empty() && place.bin_dir.is_some() {
        return Err(LaunchError::NoCommand);
    }
    let (dirs, files) = volume_files(pod, c, place, src)?;
    let roots = mount_roots(c);
    // Only a local process needs its mount paths rewritten.
    let re = |s: &str| match place.bin_dir {
        Some(_) => rewrite(s, &roots, &place.pod_dir),
        None => s.to_owned(),
    };

    let env = environment(pod, c, place, src)?;
    let expand = |s: &str| re(&expand_vars(s, &env));
    let mut command: Vec<String> = command.iter().map(|a| expand(a)).collect();
    if let (Some(bin), Some(first)) = (&place.bin_dir, command.first_mut()) {
        *first = bin.join(&*first).to_string_lossy().into_owned();
    }
    let args = c
        .args
        .as_ref()
        .map(|a| a.iter().map(|a| expand(a)).collect());
    let env = env.iter().map(|(k, v)| (k.clone(), re(v))).collect();
    let files = files.into_iter().map(|(p, text)| (p, re(&text))).collect();
    let mut mounts: Vec<Mount> = c
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| Mount {
            source: place.pod_dir.join(m.mount_path.trim_start_matches('/')),
            destination: m.mount_path.clone(),
            read_only: m.read_only.unwrap_or(false),
        })
        .collect();
    mounts.sort_by_key(|m| m.destination.trim_end_matches('/').matches('/').count());

    let ports: Vec<(String, u16)> = c
        .ports
        .iter()
        .flatten()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                u16::try_from(p.container_port).unwrap_or(0),
            )
        })
        .collect();
    let probe = |p: &Option<k8s_openapi::api::core::v1::Probe>| -> Result<_, LaunchError> {
        let Some(p) = p else { return Ok(None) };
        let Some(get) = &p.http_get else {
            return Ok(None);
        };
        let port = match &get.port {
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n) => {
                u16::try_from(*n).map_err(|_| LaunchError::ProbePort(n.to_string()))?
            }
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(name) => ports
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, p)| *p)
                .ok_or_else(|| LaunchError::ProbePort(name.clone()))?,
        };
        Ok(Some(HttpProbe {
            path: get.path.clone().unwrap_or_else(|| "/".into()),
            port,
            period: Duration::from_secs(p.period_seconds.unwrap_or(10).max(1) as u64),
            initial_delay: Duration::from_secs(p.initial_delay_seconds.unwrap_or(0).max(0) as u64),
            failure_threshold: p.failure_threshold.unwrap_or(3).max(1) as u32,
        }))
    };
    Ok(Launch {
        command,
        args,
        env,
        files,
        dirs,
        mounts,
        port: ports.first().cloned(),
        readiness: probe(&c.readiness_probe)?,
        liveness: probe(&c.liveness_probe)?,
        termination_grace: Duration::from_secs(
            spec.termination_grace_period_seconds.unwrap_or(30).max(0) as u64,
        ),
    })
}

/// The environment in the runtime's order: `HOSTNAME`, `envFrom`, then `env` (later wins; `$(VAR)`
/// refers to variables defined before), then the listen address.
fn environment(
    pod: &Pod,
    c: &Container,
    place: &Placement,
    src: &Sources,
) -> Result<Vec<(String, String)>, LaunchError> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let mut env: Vec<(String, String)> = vec![("HOSTNAME".into(), name)];
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
        env.retain(|(n, _)| *n != k);
        env.push((k, v));
    };
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let data = match (&from.config_map_ref, &from.secret_ref) {
            (Some(r), _) => lookup(
                &src.config_maps,
                &r.name,
                r.optional,
                LaunchError::ConfigMap,
            )?,
            (_, Some(r)) => lookup(&src.secrets, &r.name, r.optional, LaunchError::Secret)?,
            _ => continue,
        };
        for (k, v) in data {
            set(&mut env, format!("{prefix}{k}"), v);
        }
    }
    for e in c.env.iter().flatten() {
        let v = env_value(e, pod, place, src)?;
        let v = expand_vars(&v, &env);
        set(&mut env, e.name.clone(), v);
    }
    if let (Some(var), Some(port)) = (&place.listen_env, c.ports.iter().flatten().next()) {
        set(
            &mut env,
            var.clone(),
            format!("{}:{}", place.pod_ip, port.container_port),
        );
    }
    Ok(env)
}

fn lookup(
    all: &BTreeMap<String, BTreeMap<String, String>>,
    name: &str,
    optional: Option<bool>,
    missing: fn(String) -> LaunchError,
) -> Result<BTreeMap<String, String>, LaunchError> {
    match all.get(name) {
        Some(d) => Ok(d.clone()),
        None if optional == Some(true) => Ok(BTreeMap::new()),
        None => Err(missing(name.to_owned())),
    }
}

fn env_value(
    e: &EnvVar,
    pod: &Pod,
    place: &Placement,
    src: &Sources,
) -> Result<String, LaunchError> {
    let Some(from) = &e.value_from else {
        return Ok(e.value.clone().unwrap_or_default());
    };
    let key = |all: &BTreeMap<String, BTreeMap<String, String>>,
               name: &str,
               key: &str,
               missing: fn(String) -> LaunchError| {
        let data = lookup(all, name, None, missing)?;
        data.get(key).cloned().ok_or_else(|| LaunchError::Key {
            source_name: name.to_owned(),
            key: key.to_owned(),
        })
    };
    if let Some(f) = &from.field_ref {
        let m = &pod.metadata;
        return Ok(match f.field_path.as_str() {
            "metadata.name" => m.name.clone().unwrap_or_default(),
            "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
            "metadata.uid" => m.uid.clone().unwrap_or_default(),
            "spec.nodeName" => place.node_name.clone(),
            "status.podIP" | "status.hostIP" => place.pod_ip.to_string(),
            _ => return Err(LaunchError::EnvSource(e.name.clone())),
        });
    }
    if let Some(r) = &from.secret_key_ref {
        return key(&src.secrets, &r.name, &r.key, LaunchError::Secret);
    }
    if let Some(r) = &from.config_map_key_ref {
        return key(&src.config_maps, &r.name, &r.key, LaunchError::ConfigMap);
    }
    Err(LaunchError::EnvSource(e.name.clone()))
}

/// Replaces `$(NAME)` with an earlier variable's value; unknown references stay as written.
fn expand_vars(s: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("$(") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find(')') {
            Some(j) => {
                let name = &after[..j];
                match env.iter().rev().find(|(k, _)| k == name) {
                    Some((_, v)) => out.push_str(v),
                    None => out.push_str(&rest[i..i + 3 + j]),
                }
                rest = &after[j + 1..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The mount folders and the files of the container's ConfigMap and Secret mounts, under the
/// pod folder.
fn volume_files(
    pod: &Pod,
    c: &Container,
    place: &Placement,
    src: &Sources,
) -> Result<(Vec<PathBuf>, Vec<File>), LaunchError> {
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default();
    let (mut dirs, mut files) = (Vec::new(), Vec::new());
    for m in c.volume_mounts.iter().flatten() {
        let Some(v) = volumes.iter().find(|v| v.name == m.name) else {
            return Err(LaunchError::Volume(m.name.clone()));
        };
        let dir = place.pod_dir.join(m.mount_path.trim_start_matches('/'));
        let data = if let Some(cm) = &v.config_map {
            lookup(
                &src.config_maps,
                &cm.name,
                cm.optional,
                LaunchError::ConfigMap,
            )?
        } else if let Some(s) = &v.secret {
            let name = s.secret_name.clone().unwrap_or_default();
            lookup(&src.secrets, &name, s.optional, LaunchError::Secret)?
        } else if v.empty_dir.is_some() {
            BTreeMap::new()
        } else {
            return Err(LaunchError::Volume(m.name.clone()));
        };
        files.extend(data.into_iter().map(|(k, text)| (dir.join(k), text)));
        dirs.push(dir);
    }
    Ok((dirs, files))
}

/// Mount paths not nested in another mount (rewriting those covers the nested ones).
fn mount_roots(c: &Container) -> Vec<String> {
    let paths: Vec<String> = c
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| m.mount_path.trim_end_matches('/').to_owned())
        .collect();
    paths
        .iter()
        .filter(|p| {
            !paths
                .iter()
                .any(|q| q != *p && p.starts_with(&format!("{q}/")))
        })
        .cloned()
        .collect()
}

/// Rewrites each absolute mount path in `s` to its place under `pod_dir`, in one pass.
fn rewrite(s: &str, roots: &[String], pod_dir: &std::path::Path) -> String {
    let is_path_char = |c: char| c.is_alphanumeric() || "/._-".contains(c);
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let at_start = s[..i].chars().next_back().is_none_or(|c| !is_path_char(c));
        let hit = roots.iter().find(|r| {
            at_start
                && s[i..].starts_with(r.as_str())
                && s[i + r.len()..]
                    .chars()
                    .next()
                    .is_none_or(|c| c == '/' || !is_path_char(c))
        });
        if let Some(r) = hit {
            out.push_str(&pod_dir.join(r.trim_start_matches('/')).to_string_lossy());
            i += r.len();
        } else {
            let c = s[i..].chars().next().unwrap_or_default();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

#[cfg(test)]
mod tests;
