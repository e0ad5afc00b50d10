//! The container runtime (IO): images from podman's local storage (nothing is pulled), each
//! unpacked once per image ID under the agent's state folder; a runc bundle per pod
//! (`config.json` from [`crate::oci`]); `runc run` in the foreground, which forwards the signals
//! it gets to the container and exits with the container's exit code; `runc kill` and
//! `runc delete` to end it.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::Context;
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::oci::Image;

/// The deadline of each podman or runc command but `runc run` (an image's unpacking has its own).
const COMMAND_DEADLINE: Duration = Duration::from_secs(30);
/// The deadline of unpacking an image's root filesystem.
const UNPACK_DEADLINE: Duration = Duration::from_secs(120);

/// Where the runtime keeps its state.
#[derive(Debug, Clone)]
pub struct Runc {
    /// runc's state folder (`runc --root`): this agent's containers only.
    pub root: PathBuf,
    /// Unpacked images, `<images>/<image id>/rootfs`.
    pub images: PathBuf,
    /// RLIMIT_NOFILE of the containers.
    pub nofile: u64,
}

async fn output(cmd: &mut Command, deadline: Duration) -> anyhow::Result<std::process::Output> {
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    let out = tokio::time::timeout(deadline, cmd.output())
        .await
        .map_err(|_| anyhow::anyhow!("{cmd:?}: no answer within {deadline:?}"))?
        .with_context(|| format!("{cmd:?}"))?;
    Ok(out)
}

async fn checked(cmd: &mut Command, deadline: Duration) -> anyhow::Result<String> {
    let out = output(cmd, deadline).await?;
    anyhow::ensure!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The image's config from podman's local storage; `None` when it is not there.
pub async fn inspect(image: &str) -> anyhow::Result<Option<Image>> {
    let exists = output(
        Command::new("podman").args(["image", "exists", image]),
        COMMAND_DEADLINE,
    )
    .await?;
    if !exists.status.success() {
        return Ok(None);
    }
    let text = checked(
        Command::new("podman").args(["image", "inspect", image]),
        COMMAND_DEADLINE,
    )
    .await?;
    let v: Value = serde_json::from_str(&text).context("podman image inspect")?;
    Ok(Some(image_config(&v[0])))
}

/// The fields of `podman image inspect` the spec needs.
pub fn image_config(v: &Value) -> Image {
    let c = &v["Config"];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    };
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    Image {
        id: text(&v["Id"]),
        entrypoint: strings(&c["Entrypoint"]),
        cmd: strings(&c["Cmd"]),
        env: strings(&c["Env"]),
        user: text(&c["User"]),
        working_dir: text(&c["WorkingDir"]),
    }
}

impl Runc {
    fn runc(&self) -> Command {
        let mut cmd = Command::new("runc");
        cmd.arg("--root").arg(&self.root);
        cmd
    }

    /// The image's root filesystem, unpacked from podman's storage the first time.
    pub async fn rootfs(&self, image: &Image) -> anyhow::Result<PathBuf> {
        let dir = self.images.join(image.id.trim_start_matches("sha256:"));
        let rootfs = dir.join("rootfs");
        if rootfs.is_dir() {
            return Ok(rootfs);
        }
        std::fs::create_dir_all(&dir)?;
        // A folder of this call's own: two pods of an image not unpacked yet start at once, in
        // the same agent process (one shared folder interleaved their copies).
        static UNPACKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = UNPACKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dir.join(format!("rootfs.{}.{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let mounted = checked(
            Command::new("podman").args(["image", "mount", &image.id]),
            COMMAND_DEADLINE,
        )
        .await?;
        let copied = output(
            Command::new("cp")
                .arg("-a")
                .arg(format!("{}/.", mounted.trim()))
                .arg(&tmp),
            UNPACK_DEADLINE,
        )
        .await;
        let _ = output(
            Command::new("podman").args(["image", "unmount", &image.id]),
            COMMAND_DEADLINE,
        )
        .await;
        let copied = copied?;
        anyhow::ensure!(
            copied.status.success(),
            "unpacking {}: {}",
            image.id,
            String::from_utf8_lossy(&copied.stderr).trim()
        );
        // Another pod of the same image may have unpacked it meanwhile.
        if std::fs::rename(&tmp, &rootfs).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        anyhow::ensure!(rootfs.is_dir(), "unpacking {}: no rootfs", image.id);
        Ok(rootfs)
    }

    /// Writes the bundle's `config.json`.
    pub fn write_bundle(bundle: &Path, spec: &Value) -> std::io::Result<()> {
        std::fs::create_dir_all(bundle)?;
        std::fs::write(
            bundle.join("config.json"),
            serde_json::to_vec_pretty(spec).expect("a JSON value"),
        )
    }

    /// Starts the container with `runc run` in the foreground, its output appended to `log`.
    pub async fn start(&self, id: &str, bundle: &Path, log: &Path) -> std::io::Result<Child> {
        self.delete(id).await;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        // setpriv: runc dies with the agent (the agent deletes what is left on its next start).
        let mut cmd = Command::new("setpriv");
        cmd.args(["--pdeathsig", "KILL", "--", "runc", "--root"])
            .arg(&self.root)
            .args(["run", "--bundle"])
            .arg(bundle)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        cmd.spawn()
    }

    /// SIGTERM through runc, then SIGKILL after `grace`; the container is deleted.
    pub async fn stop(&self, id: &str, child: &mut Child, grace: Duration) {
        if let Some(pid) = child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        if tokio::time::timeout(grace, child.wait()).await.is_err() {
            tracing::warn!(
                ?grace,
                "container did not stop within the grace period; SIGKILL"
            );
            let _ = output(self.runc().args(["kill", id, "KILL"]), COMMAND_DEADLINE).await;
            if tokio::time::timeout(Duration::from_secs(5), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
        self.delete(id).await;
    }

    /// Deletes the container (killing it if it still runs).
    pub async fn delete(&self, id: &str) {
        let _ = output(
            self.runc().args(["delete", "--force", id]),
            COMMAND_DEADLINE,
        )
        .await;
    }

    /// Deletes every container of this agent (those a killed agent left running).
    pub async fn delete_all(&self) {
        let Ok(out) = output(self.runc().args(["list", "-q"]), COMMAND_DEADLINE).await else {
            return;
        };
        for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            tracing::info!(id, "deleting a container left by an earlier run");
            self.delete(id).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_config_reads_podmans_inspect() {
        let v = serde_json::json!({
            "Id": "sha256:abc",
            "Config": {
                "User": "65532:65532",
                "Env": ["PATH=/usr/local/bin"],
                "Entrypoint": ["/usr/local/bin/worker"],
                "Labels": {"org.opencontainers.image.version": "0.1.0"},
            },
        });
        assert_eq!(
            image_config(&v),
            Image {
                id: "sha256:abc".into(),
                entrypoint: vec!["/usr/local/bin/worker".into()],
                cmd: vec![],
                env: vec!["PATH=/usr/local/bin".into()],
                user: "65532:65532".into(),
                working_dir: String::new(),
            }
        );
    }
}
