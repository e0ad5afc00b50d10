//! Probes of the stack: stack commands, worker processes, kill -9, whether a hung listener was
//! met, and reading recovery and replicas from the samples.

use super::*;

pub(super) fn stack_cmd(args: &[&str]) -> Result<(), String> {
    let ok = Command::new(repo_root().join("tests/stack/stack.sh"))
        .args(args)
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(())
    } else {
        Err(format!("stack.sh {} failed", args.join(" ")))
    }
}

/// Pids of the worker processes of `deploy` that the node agent runs: their program is the
/// worker, and they belong to a pod `<ns>_<deploy>-…` — a container's cgroup is the pod's
/// (`impressions-node-agent/<ns>_<pod>`), a process's working folder is (`pods/<ns>_<pod>`).
pub(super) fn worker_pids(state_dir: &Path, ns: &str, deploy: &str) -> Vec<u32> {
    let prefix = format!("{ns}_{deploy}-");
    let pods = state_dir.join("pods");
    let in_pod = |proc: &Path| -> Option<bool> {
        let cgroups = std::fs::read_to_string(proc.join("cgroup")).unwrap_or_default();
        if cgroups
            .lines()
            .any(|l| l.contains(&format!("/impressions-node-agent/{prefix}")))
        {
            return Some(true);
        }
        let cwd = std::fs::read_link(proc.join("cwd")).ok()?;
        let pod = cwd.strip_prefix(&pods).ok()?.components().next()?;
        Some(pod.as_os_str().to_str()?.starts_with(&prefix))
    };
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let exe = std::fs::read_link(e.path().join("exe")).ok()?;
            let is_worker = exe
                .file_name()?
                .to_str()?
                .split(' ')
                .next()
                .is_some_and(|n| n == "worker");
            (is_worker && in_pod(&e.path())? && !zombie(pid)).then_some(pid)
        })
        .collect()
}

/// A process that exited and was not reaped yet (or is gone).
pub(super) fn zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1.trim_start().chars().next()?;
            Some(after == 'Z' || after == 'X')
        })
        .unwrap_or(true)
}

/// SIGKILL, then proof that the process died within 5 s.
pub(super) fn kill9(pid: u32) -> Result<(), String> {
    let sent = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    if !sent {
        return Err(format!("kill -9 {pid} failed"));
    }
    for _ in 0..50 {
        if zombie(pid) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("process {pid} still runs 5 s after kill -9"))
}

/// Sends `request` to `addr` and tells whether anything came back within 3 s; an error when
/// the connection itself fails (refused: a stopped component, not a hung one).
pub(super) fn answers(addr: &str, request: &[u8]) -> Result<bool, String> {
    let sock: std::net::SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let mut s = TcpStream::connect_timeout(&sock, Duration::from_secs(2))
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    s.write_all(request)
        .map_err(|e| format!("writing to {addr}: {e}"))?;
    let mut buf = [0u8; 16];
    match s.read(&mut buf) {
        Ok(n) => Ok(n > 0),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(format!("reading from {addr}: {e}")),
    }
}

/// A Kafka ApiVersions v0 request (any live broker answers it).
pub(super) fn api_versions_request() -> Vec<u8> {
    let client = b"chaos";
    let mut body = Vec::new();
    body.extend_from_slice(&18i16.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&(client.len() as i16).to_be_bytes());
    body.extend_from_slice(client);
    let mut out = (body.len() as i32).to_be_bytes().to_vec();
    out.extend(body);
    out
}

pub(super) const HTTP_READY: &[u8] = b"GET /-/ready HTTP/1.0\r\n\r\n";

/// Proof of a hang: the port accepts the connection and nothing answers `request`.
pub(super) fn hang_met(addr: &str, request: &[u8]) -> Result<(), String> {
    match answers(addr, request)? {
        false => Ok(()),
        true => Err(format!("{addr} answered: it is not hung")),
    }
}

pub(super) fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

/// The lag above which a pipeline counts as behind: 2 s of input, and at least 1,000 events
/// (one worker's commit interval and batch at a low rate is not an excursion).
pub(super) fn behind(s: &Sample) -> bool {
    s.lag as f64 > (2.0 * s.input).max(1000.0)
}

/// Seconds from `to` until the last lag excursion that began between `from` and
/// `to + EFFECT_WITHIN` ended (0 if none outlasted `to`); `None` if one never ended.
pub(super) fn recovery(samples: &[Sample], from: f64, to: f64) -> Option<f64> {
    let mut rec = 0.0f64;
    let mut open = false;
    for s in samples.iter().filter(|s| s.t >= from) {
        match (behind(s), open) {
            (true, false) => {
                if s.t > to + EFFECT_WITHIN {
                    break;
                }
                open = true;
            }
            (false, true) => {
                rec = rec.max(s.t - to);
                open = false;
            }
            _ => {}
        }
    }
    (!open).then_some(rec)
}

/// The replica counts between two times, as a sequence of changes.
pub(super) fn replicas(samples: &[Sample], from: f64, until: f64) -> String {
    let mut out: Vec<i32> = Vec::new();
    for s in samples.iter().filter(|s| s.t >= from && s.t < until) {
        if out.last() != Some(&s.replicas) {
            out.push(s.replicas);
        }
    }
    out.iter().map(i32::to_string).collect::<Vec<_>>().join("→")
}
