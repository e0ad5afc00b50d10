//! The project's images (`make images`, images/Containerfile) in podman's local storage, and
//! running them with podman and runc as this machine allows (runc: crun refuses its cgroup
//! layout; rlimits at or below the current ones: the sandbox cannot raise them).

use std::{path::PathBuf, process::Command};

use serde_json::Value;

/// The image of a Containerfile target (`worker`, `operator`) at the workspace's version, as
/// `make images` tags it and the chart names it.
pub fn image(target: &str) -> String {
    format!("ghcr.io/impressions/{target}:{}", env!("CARGO_PKG_VERSION"))
}

/// The OCI archive `make images` saves the image of `target` to.
pub fn archive(target: &str) -> PathBuf {
    crate::repo_root()
        .join("out")
        .join(format!("{target}-{}.oci.tar", env!("CARGO_PKG_VERSION")))
}

/// Panics, naming `make images`, when the image is not in podman's local storage.
pub fn require(image: &str) {
    let exists = Command::new("podman")
        .args(["image", "exists", image])
        .status()
        .unwrap_or_else(|e| {
            panic!("podman is needed to run the images ({e}): apt-get install podman runc")
        });
    assert!(
        exists.success(),
        "image {image} is not built: run `make images` (it builds the worker and operator images into podman's local storage)"
    );
}

/// `podman image inspect` of the image.
pub fn inspect(image: &str) -> Value {
    require(image);
    let out = Command::new("podman")
        .args(["image", "inspect", image])
        .output()
        .expect("podman image inspect");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("inspect JSON");
    v[0].clone()
}

/// A file of the image, read from its mounted root filesystem.
pub fn file(image: &str, path: &str) -> Vec<u8> {
    require(image);
    let out = Command::new("podman")
        .args(["image", "mount", image])
        .output()
        .expect("podman image mount");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let root = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let read = std::fs::read(root.join(path.trim_start_matches('/')));
    let _ = Command::new("podman")
        .args(["image", "unmount", image])
        .output();
    read.unwrap_or_else(|e| panic!("{path} in {image}: {e}"))
}

/// `podman run` with runc, the host network and rlimits this machine allows; the rest of the
/// command (options, image, arguments) is the caller's.
pub fn podman_run() -> Command {
    let mut cmd = Command::new("podman");
    cmd.args([
        "--runtime",
        "runc",
        "run",
        "--ulimit",
        "nofile=4096:4096",
        "--ulimit",
        "nproc=4096:4096",
        "--network",
        "host",
    ]);
    cmd
}

/// The effective uid of a process (from `/proc/<pid>/status`).
pub fn uid_of(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    let line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .expect("a Uid line");
    line.split_whitespace()
        .nth(2)
        .and_then(|u| u.parse().ok())
        .expect("the effective uid")
}
