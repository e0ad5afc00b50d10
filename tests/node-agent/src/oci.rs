//! From a pod's launch plan and its image to the OCI runtime spec of its container (the
//! `config.json` of a runc bundle), pure: the process (the pod's command and args over the
//! image's entrypoint and cmd, as Kubernetes combines them; the image's env under the pod's;
//! the user of the security context, else the image's), the volume mounts as bind mounts, the
//! CPU limit as a CFS quota over a 100 ms period and the CPU request as shares, the memory limit,
//! the capabilities the security context leaves, lowered rlimits, and no network namespace: the
//! container shares the host's network and listens on its pod IP, as a local process does.
//!
//! The root filesystem is the image's, unpacked once per image and shared by its pods, so it is
//! always mounted read-only (the worker's pods ask for `readOnlyRootFilesystem` anyway); `/tmp` is
//! a tmpfs unless a volume is mounted there.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Container, Pod, SecurityContext};
use serde_json::{Value, json};

use crate::launch::Launch;

/// What the runtime needs of an image's config (`podman image inspect`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Image {
    /// The image's ID (the key of its unpacked root filesystem).
    pub id: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `NAME=value` entries.
    pub env: Vec<String>,
    /// `uid[:gid]` (numeric) or empty (root).
    pub user: String,
    pub working_dir: String,
}

/// Where and how the bundle runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Bundle {
    /// The image's unpacked root filesystem.
    pub rootfs: PathBuf,
    pub hostname: String,
    /// The container's cgroup, relative to each v1 hierarchy (`/sys/fs/cgroup/cpu/<path>`).
    pub cgroups_path: String,
    /// RLIMIT_NOFILE, soft and hard: at most the agent's own (raising it needs a capability the
    /// sandbox may lack).
    pub nofile: u64,
}

/// The CFS period every CPU limit is a quota of, in microseconds.
pub const CPU_PERIOD_US: u64 = 100_000;

/// Why a container's spec cannot be made (shown as `CreateContainerConfigError`).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    #[error("the container names no command and its image has no entrypoint or cmd")]
    NoCommand,
    #[error("container has runAsNonRoot and image will run as root")]
    RunsAsRoot,
    #[error("image user {0:?} is not numeric: set securityContext.runAsUser")]
    UserName(String),
    #[error("resources.{field}: {value:?} is not a quantity")]
    Quantity { field: String, value: String },
}

/// The cgroup limits of a container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    /// CFS quota in microseconds per [`CPU_PERIOD_US`] (`limits.cpu`).
    pub cpu_quota_us: Option<i64>,
    /// CPU shares (`requests.cpu`, 1024 per core, at least 2).
    pub cpu_shares: Option<u64>,
    /// Bytes (`limits.memory`).
    pub memory_bytes: Option<i64>,
}

/// A CPU quantity in millicores: `500m`, `1`, `0.5`, `2.25`.
pub fn millicores(q: &str) -> Option<i64> {
    let q = q.trim();
    if let Some(m) = q.strip_suffix('m') {
        return m.parse::<i64>().ok().filter(|v| *v >= 0);
    }
    let v: f64 = q.parse().ok()?;
    (v.is_finite() && v >= 0.0).then(|| (v * 1000.0).ceil() as i64)
}

/// A memory quantity in bytes: `512Mi`, `1Gi`, `256M`, `1e6`, `1000`.
pub fn bytes(q: &str) -> Option<i64> {
    let q = q.trim();
    const SUFFIXES: [(&str, f64); 12] = [
        ("Ki", 1024.0),
        ("Mi", 1024.0 * 1024.0),
        ("Gi", 1024.0 * 1024.0 * 1024.0),
        ("Ti", 1024.0 * 1024.0 * 1024.0 * 1024.0),
        ("Pi", 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0),
        ("Ei", 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    let (num, mult) = SUFFIXES
        .iter()
        .find_map(|(s, m)| q.strip_suffix(s).map(|n| (n, *m)))
        .unwrap_or((q, 1.0));
    let v: f64 = num.parse().ok()?;
    (v.is_finite() && v >= 0.0).then(|| (v * mult).ceil() as i64)
}

/// The container's cgroup limits from its resources.
pub fn limits(c: &Container) -> Result<Limits, SpecError> {
    let get = |kind: &str, name: &str| {
        let r = c.resources.as_ref()?;
        let m = if kind == "limits" {
            r.limits.as_ref()
        } else {
            r.requests.as_ref()
        }?;
        m.get(name).map(|q| q.0.clone())
    };
    let parse = |kind: &str, name: &str, f: fn(&str) -> Option<i64>| {
        get(kind, name)
            .map(|v| {
                f(&v).ok_or(SpecError::Quantity {
                    field: format!("{kind}.{name}"),
                    value: v,
                })
            })
            .transpose()
    };
    let cpu_limit = parse("limits", "cpu", millicores)?;
    // Kubernetes takes the limit as the request when only the limit is set.
    let cpu_request = parse("requests", "cpu", millicores)?.or(cpu_limit);
    Ok(Limits {
        cpu_quota_us: cpu_limit.map(|m| (m * CPU_PERIOD_US as i64 / 1000).max(1000)),
        cpu_shares: cpu_request.map(|m| ((m * 1024 / 1000) as u64).max(2)),
        memory_bytes: parse("limits", "memory", bytes)?,
    })
}

/// The process's arguments: the pod's command (else the image's entrypoint), then the pod's args
/// (else the image's cmd, when the command is the image's too).
pub fn argv(launch: &Launch, image: &Image) -> Result<Vec<String>, SpecError> {
    let argv: Vec<String> = match (launch.command.is_empty(), &launch.args) {
        (false, args) => launch
            .command
            .iter()
            .chain(args.iter().flatten())
            .cloned()
            .collect(),
        (true, Some(args)) => image.entrypoint.iter().chain(args).cloned().collect(),
        (true, None) => image.entrypoint.iter().chain(&image.cmd).cloned().collect(),
    };
    if argv.is_empty() {
        return Err(SpecError::NoCommand);
    }
    Ok(argv)
}

/// The container's security context over the pod's (the container's fields win).
fn security(pod: &Pod, c: &Container) -> (Option<i64>, Option<i64>, Option<bool>) {
    let p = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let s = c.security_context.as_ref();
    (
        s.and_then(|s| s.run_as_user)
            .or(p.and_then(|p| p.run_as_user)),
        s.and_then(|s| s.run_as_group)
            .or(p.and_then(|p| p.run_as_group)),
        s.and_then(|s| s.run_as_non_root)
            .or(p.and_then(|p| p.run_as_non_root)),
    )
}

/// The uid and gid the process runs as.
pub fn user(pod: &Pod, c: &Container, image: &Image) -> Result<(u32, u32), SpecError> {
    let (uid, gid, non_root) = security(pod, c);
    let mut parts = image.user.splitn(2, ':');
    let (image_uid, image_gid) = (parts.next().unwrap_or(""), parts.next());
    let numeric = |s: &str| -> Result<u32, SpecError> {
        if s.is_empty() {
            return Ok(0);
        }
        s.parse()
            .map_err(|_| SpecError::UserName(image.user.clone()))
    };
    let uid = match uid {
        Some(u) => u as u32,
        None => numeric(image_uid)?,
    };
    let gid = match (gid, image_gid) {
        (Some(g), _) => g as u32,
        (None, Some(g)) => numeric(g)?,
        (None, None) => 0,
    };
    if non_root == Some(true) && uid == 0 {
        return Err(SpecError::RunsAsRoot);
    }
    Ok((uid, gid))
}

/// The capabilities left: runc's default set less `drop` (`ALL` drops every one) plus `add`.
fn capabilities(s: Option<&SecurityContext>) -> Vec<String> {
    let caps = s.and_then(|s| s.capabilities.as_ref());
    let names = |v: Option<&Vec<String>>| -> Vec<String> {
        v.into_iter()
            .flatten()
            .map(|c| format!("CAP_{}", c.trim_start_matches("CAP_").to_uppercase()))
            .collect()
    };
    let drop = names(caps.and_then(|c| c.drop.as_ref()));
    let mut set: Vec<String> = if drop.iter().any(|d| d == "CAP_ALL") {
        Vec::new()
    } else {
        ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
            .iter()
            .map(|c| c.to_string())
            .filter(|c| !drop.contains(c))
            .collect()
    };
    for a in names(caps.and_then(|c| c.add.as_ref())) {
        if !set.contains(&a) {
            set.push(a);
        }
    }
    set
}

/// The environment: the image's, then the pod's (the pod's win); a `PATH` always.
fn environment(launch: &Launch, image: &Image) -> Vec<String> {
    let mut env: Vec<(String, String)> = image
        .env
        .iter()
        .filter_map(|e| e.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    for (k, v) in &launch.env {
        env.retain(|(n, _)| n != k);
        env.push((k.clone(), v.clone()));
    }
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.insert(
            0,
            (
                "PATH".into(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            ),
        );
    }
    env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// The runtime spec of the pod's first container.
pub fn spec(
    pod: &Pod,
    launch: &Launch,
    image: &Image,
    bundle: &Bundle,
) -> Result<Value, SpecError> {
    let c = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .cloned()
        .unwrap_or_default();
    let (uid, gid) = user(pod, &c, image)?;
    let limits = limits(&c)?;
    let caps = capabilities(c.security_context.as_ref());
    let no_new_privileges = c
        .security_context
        .as_ref()
        .and_then(|s| s.allow_privilege_escalation)
        != Some(true);
    let cwd = match c.working_dir.as_deref().unwrap_or(&image.working_dir) {
        "" => "/",
        d => d,
    };

    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
        // The host's name resolution: the container shares its network.
        json!({"destination": "/etc/hosts", "type": "bind", "source": "/etc/hosts", "options": ["rbind", "ro"]}),
        json!({"destination": "/etc/resolv.conf", "type": "bind", "source": "/etc/resolv.conf", "options": ["rbind", "ro"]}),
    ];
    if !launch.mounts.iter().any(|m| m.destination == "/tmp") {
        mounts.push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777", "size=65536k"]}));
    }
    for m in &launch.mounts {
        let mut options = vec!["rbind", "nosuid", "nodev"];
        if m.read_only {
            options.push("ro");
        }
        mounts.push(json!({"destination": m.destination, "type": "bind", "source": m.source, "options": options}));
    }

    let mut resources = json!({"devices": [{"allow": false, "access": "rwm"}]});
    let mut cpu = serde_json::Map::new();
    if let Some(q) = limits.cpu_quota_us {
        cpu.insert("quota".into(), json!(q));
        cpu.insert("period".into(), json!(CPU_PERIOD_US));
    }
    if let Some(s) = limits.cpu_shares {
        cpu.insert("shares".into(), json!(s));
    }
    if !cpu.is_empty() {
        resources["cpu"] = Value::Object(cpu);
    }
    if let Some(m) = limits.memory_bytes {
        resources["memory"] = json!({"limit": m});
    }

    let meta = &pod.metadata;
    Ok(json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": uid, "gid": gid},
            "args": argv(launch, image)?,
            "env": environment(launch, image),
            "cwd": cwd,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": bundle.nofile, "soft": bundle.nofile}],
            "noNewPrivileges": no_new_privileges,
        },
        "root": {"path": bundle.rootfs, "readonly": true},
        "hostname": bundle.hostname,
        "mounts": mounts,
        "annotations": {
            "io.kubernetes.pod.namespace": meta.namespace.clone().unwrap_or_default(),
            "io.kubernetes.pod.name": meta.name.clone().unwrap_or_default(),
            "io.kubernetes.pod.uid": meta.uid.clone().unwrap_or_default(),
            "io.kubernetes.container.name": c.name,
            "org.opencontainers.image.id": image.id,
        },
        "linux": {
            "cgroupsPath": bundle.cgroups_path,
            "resources": resources,
            // No network namespace: the host's network, each pod on its own pod IP.
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/proc/scsi",
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
            ],
        },
    }))
}

#[cfg(test)]
mod tests;
