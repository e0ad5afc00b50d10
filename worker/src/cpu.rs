//! The worker process's CPU: the CPU time of all its threads (the processing threads, librdkafka's,
//! the HTTP server's) and the CPU limit of its cgroup (cgroup v1 `cpu.cfs_quota_us` over
//! `cpu.cfs_period_us`, cgroup v2 `cpu.max`). Under a CPU limit the busy time of the processing
//! threads leaves out what the other threads take from the same quota; the operator compares the
//! two (the metrics module exports them as `impressions_worker_cpu_seconds_total` and
//! `impressions_worker_cpu_limit_cores`).
//!
//! The cgroup is found as the kernel names it: the process's path in `/proc/self/cgroup` under
//! the mount of that hierarchy in `/proc/self/mountinfo` (in a container without a cgroup
//! namespace the mount's root is the container's own cgroup, with one its path is `/`). The
//! limit is the smallest of the cgroup's and its ancestors' within the mount. Parsing is pure;
//! the files are read at each scrape, so a resized limit shows at once.

use std::{
    path::{Path, PathBuf},
    sync::OnceLock,
};

/// The CPU time of every thread of this process so far, in seconds.
pub fn process_seconds() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// The process's CPU time when the worker became ready: the exported CPU counter starts there.
/// Start-up (loading the catalog, connecting, joining the group) costs CPU that processing does
/// not; under a small CPU limit it fills a new pod's first rate window, and a capacity estimate
/// that divides the processed rate by it reads the pod as a fraction of what it is.
#[derive(Debug, Default)]
pub struct SinceReady(OnceLock<f64>);

impl SinceReady {
    /// The worker is ready now (the first call counts).
    pub fn mark(&self) {
        let _ = self.0.set(process_seconds());
    }

    /// CPU seconds used since the worker became ready; `None` before.
    pub fn seconds(&self) -> Option<f64> {
        self.0.get().map(|at| (process_seconds() - at).max(0.0))
    }
}

/// The cgroup hierarchy that holds the CPU limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hierarchy {
    /// cgroup v1, the `cpu` controller: `cpu.cfs_quota_us` and `cpu.cfs_period_us`.
    V1,
    /// cgroup v2 (unified): `cpu.max`.
    V2,
}

/// The folders of this process's CPU cgroup: its own, then each ancestor up to the mount point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuCgroup {
    pub hierarchy: Hierarchy,
    pub dirs: Vec<PathBuf>,
}

/// Cores from a v1 quota and period (`-1`: no limit).
pub fn limit_v1(quota_us: &str, period_us: &str) -> Option<f64> {
    let quota: i64 = quota_us.trim().parse().ok()?;
    let period: i64 = period_us.trim().parse().ok()?;
    (quota > 0 && period > 0).then(|| quota as f64 / period as f64)
}

/// Cores from a v2 `cpu.max` (`$MAX $PERIOD`; `max`: no limit).
pub fn limit_v2(cpu_max: &str) -> Option<f64> {
    let mut parts = cpu_max.split_whitespace();
    let quota: i64 = parts.next()?.parse().ok()?;
    let period: i64 = parts.next().map_or(Some(100_000), |p| p.parse().ok())?;
    (quota > 0 && period > 0).then(|| quota as f64 / period as f64)
}

/// A mount of a cgroup hierarchy: its root within the hierarchy and where it is mounted.
#[derive(Debug, PartialEq)]
struct Mount<'a> {
    root: &'a str,
    point: &'a str,
}

/// The mount of the v1 hierarchy with the `cpu` controller, or of the v2 hierarchy.
fn mount(mountinfo: &str, hierarchy: Hierarchy) -> Option<Mount<'_>> {
    mountinfo.lines().find_map(|line| {
        // `ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL…] - FSTYPE SOURCE SUPER_OPTIONS`
        let (mount, fs) = line.split_once(" - ")?;
        let mut m = mount.split(' ');
        let (root, point) = (m.nth(3)?, m.next()?);
        let mut fs = fs.split(' ');
        let (fstype, super_options) = (fs.next()?, fs.nth(1).unwrap_or(""));
        let wanted = match hierarchy {
            Hierarchy::V1 => fstype == "cgroup" && super_options.split(',').any(|o| o == "cpu"),
            Hierarchy::V2 => fstype == "cgroup2",
        };
        wanted.then_some(Mount { root, point })
    })
}

/// This process's path in the hierarchy, from `/proc/self/cgroup`
/// (`ID:CONTROLLERS:PATH`; v2: `0::PATH`).
fn path(proc_cgroup: &str, hierarchy: Hierarchy) -> Option<&str> {
    proc_cgroup.lines().find_map(|line| {
        let mut f = line.splitn(3, ':');
        let (id, controllers, path) = (f.next()?, f.next()?, f.next()?);
        let wanted = match hierarchy {
            Hierarchy::V1 => controllers.split(',').any(|c| c == "cpu"),
            Hierarchy::V2 => id == "0" && controllers.is_empty(),
        };
        wanted.then_some(path)
    })
}

/// The CPU cgroup's folders from `/proc/self/cgroup` and `/proc/self/mountinfo`: the v1 `cpu`
/// controller's when it is mounted (a hybrid layout has an empty v2 hierarchy too), else v2's.
pub fn locate(proc_cgroup: &str, mountinfo: &str) -> Option<CpuCgroup> {
    [Hierarchy::V1, Hierarchy::V2].into_iter().find_map(|h| {
        let m = mount(mountinfo, h)?;
        let path = path(proc_cgroup, h)?;
        // Below the mount's root; a path outside it (another cgroup namespace) is the mount's.
        let below = match m.root {
            "/" => Some(path),
            root => path.strip_prefix(root),
        }
        .filter(|rest| rest.is_empty() || rest.starts_with('/'))
        .unwrap_or("");
        let point = Path::new(m.point);
        let mut dirs = vec![point.join(below.trim_start_matches('/'))];
        while let Some(parent) = dirs.last().and_then(|d| d.parent())
            && parent.starts_with(point)
        {
            dirs.push(parent.to_owned());
        }
        Some(CpuCgroup { hierarchy: h, dirs })
    })
}

impl CpuCgroup {
    /// This process's CPU cgroup; `None` when no cgroup hierarchy with the CPU controller is
    /// mounted (or `/proc` cannot be read).
    pub fn of_this_process() -> Option<CpuCgroup> {
        let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        locate(&cgroup, &mountinfo)
    }

    /// The CPU limit in cores: the smallest of the cgroup's and its ancestors'; `None` without
    /// a limit.
    pub fn limit_cores(&self) -> Option<f64> {
        let read = |d: &Path, f: &str| std::fs::read_to_string(d.join(f)).ok();
        self.dirs
            .iter()
            .filter_map(|d| match self.hierarchy {
                Hierarchy::V1 => limit_v1(
                    &read(d, "cpu.cfs_quota_us")?,
                    &read(d, "cpu.cfs_period_us")?,
                ),
                Hierarchy::V2 => limit_v2(&read(d, "cpu.max")?),
            })
            .min_by(f64::total_cmp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This machine's layout: cgroup v1 controllers each on its own hierarchy, and an empty v2.
    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn quotas_are_cores() {
        assert_eq!(limit_v1("50000\n", "100000\n"), Some(0.5));
        assert_eq!(limit_v1("5000", "100000"), Some(0.05));
        assert_eq!(limit_v1("-1", "100000"), None, "no limit");
        assert_eq!(limit_v1("x", "100000"), None);
        assert_eq!(limit_v2("150000 100000\n"), Some(1.5));
        assert_eq!(limit_v2("max 100000\n"), None, "no limit");
        assert_eq!(limit_v2(""), None);
    }

    #[test]
    fn a_v1_cgroup_on_the_host_is_its_path_under_the_cpu_mount_with_its_ancestors() {
        let c = locate("2:cpuacct:/a/b\n1:cpu:/a/b\n0::/\n", HYBRID).unwrap();
        assert_eq!(c.hierarchy, Hierarchy::V1);
        assert_eq!(
            c.dirs,
            [
                "/sys/fs/cgroup/cpu/a/b",
                "/sys/fs/cgroup/cpu/a",
                "/sys/fs/cgroup/cpu"
            ]
            .map(PathBuf::from)
        );
    }

    #[test]
    fn a_runc_container_sees_its_own_cgroup_at_the_mount_point() {
        // runc bind-mounts the container's cgroup of each controller; no cgroup namespace.
        let mountinfo = "\
600 590 0:29 /impressions-node-agent/ns_p /sys/fs/cgroup/cpu,cpuacct ro,nosuid - cgroup cgroup rw,cpuacct,cpu
";
        let c = locate(
            "4:cpu,cpuacct:/impressions-node-agent/ns_p\n0::/\n",
            mountinfo,
        )
        .unwrap();
        assert_eq!(c.hierarchy, Hierarchy::V1);
        assert_eq!(c.dirs, [PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")]);
    }

    #[test]
    fn v2_alone_and_a_cgroup_namespace() {
        let mountinfo = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        let c = locate("0::/kubepods/pod1/c1\n", mountinfo).unwrap();
        assert_eq!(c.hierarchy, Hierarchy::V2);
        assert_eq!(c.dirs[0], PathBuf::from("/sys/fs/cgroup/kubepods/pod1/c1"));
        assert_eq!(c.dirs.last().unwrap(), &PathBuf::from("/sys/fs/cgroup"));
        // In a cgroup namespace the container's cgroup is `/`.
        let c = locate("0::/\n", mountinfo).unwrap();
        assert_eq!(c.dirs, [PathBuf::from("/sys/fs/cgroup")]);
    }

    #[test]
    fn no_cpu_hierarchy_no_cgroup() {
        assert_eq!(
            locate("0::/\n", "1 0 0:1 / / rw - ext4 /dev/vda rw\n"),
            None
        );
    }

    #[test]
    fn the_limit_is_the_smallest_along_the_ancestors() {
        let root = std::env::temp_dir().join(format!("cpu-cgroup-{}", std::process::id()));
        let leaf = root.join("pod/c");
        std::fs::create_dir_all(&leaf).unwrap();
        let write = |d: &Path, f: &str, v: &str| std::fs::write(d.join(f), v).unwrap();
        let v1 = CpuCgroup {
            hierarchy: Hierarchy::V1,
            dirs: vec![leaf.clone(), root.join("pod"), root.clone()],
        };
        assert_eq!(v1.limit_cores(), None, "no files: no limit");
        write(&leaf, "cpu.cfs_quota_us", "-1\n");
        write(&leaf, "cpu.cfs_period_us", "100000\n");
        assert_eq!(v1.limit_cores(), None);
        write(&root.join("pod"), "cpu.cfs_quota_us", "25000\n");
        write(&root.join("pod"), "cpu.cfs_period_us", "100000\n");
        assert_eq!(v1.limit_cores(), Some(0.25), "the pod's limit");
        write(&leaf, "cpu.cfs_quota_us", "5000\n");
        assert_eq!(v1.limit_cores(), Some(0.05), "the container's, smaller");
        let v2 = CpuCgroup {
            hierarchy: Hierarchy::V2,
            dirs: vec![leaf.clone()],
        };
        write(&leaf, "cpu.max", "max 100000\n");
        assert_eq!(v2.limit_cores(), None);
        write(&leaf, "cpu.max", "200000 100000\n");
        assert_eq!(v2.limit_cores(), Some(2.0));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn process_cpu_time_counts_this_threads_work_in_seconds() {
        let thread = || {
            let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
            t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
        };
        let (p0, t0) = (process_seconds(), thread());
        // 20 ms of this thread's CPU, however busy the machine is (at most 20 s of waiting).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut x = 0u64;
        while thread() - t0 < 0.02 && std::time::Instant::now() < deadline {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
        }
        let (process, this_thread) = (process_seconds() - p0, thread() - t0);
        assert!(this_thread >= 0.02, "the thread got {this_thread} s of CPU");
        assert!(
            process >= this_thread * 0.999 && process < 20.0,
            "the process counted {process} s for the thread's {this_thread} s"
        );
    }
}
