//! A pod's status as a kubelet reports it (pure): phase, conditions, IPs and the container state.

use serde_json::{Value, json};

/// What the agent knows of a pod's one container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerState {
    pub name: String,
    /// RFC 3339 time the current process started, while it runs.
    pub running_since: Option<String>,
    /// The last readiness probe succeeded.
    pub ready: bool,
    pub restarts: i32,
    /// Exit code and finish time of the previous process.
    pub last_exit: Option<(i32, String)>,
    /// Why it is not running (reason, message).
    pub waiting: Option<(String, String)>,
    /// The image and its ID, once found (a container); `None` for a local process.
    pub image: Option<(String, String)>,
}

/// The `status` of the pod.
pub fn status(c: &ContainerState, pod_ip: &str, start_time: &str, now: &str) -> Value {
    let started = c.running_since.is_some();
    let phase = if started || c.restarts > 0 || c.last_exit.is_some() {
        "Running"
    } else {
        "Pending"
    };
    let cond = |t: &str, ok: bool| json!({"type": t, "status": if ok { "True" } else { "False" }, "lastTransitionTime": now});
    let state = match (&c.running_since, &c.waiting) {
        (Some(since), _) => json!({"running": {"startedAt": since}}),
        (None, Some((reason, message))) => {
            json!({"waiting": {"reason": reason, "message": message}})
        }
        (None, None) => json!({"waiting": {"reason": "ContainerCreating"}}),
    };
    let mut container = json!({
        "name": c.name,
        "ready": c.ready,
        "started": started,
        "restartCount": c.restarts,
        "image": c.image.as_ref().map_or("local-process", |i| i.0.as_str()),
        "imageID": c.image.as_ref().map_or("", |i| i.1.as_str()),
        "state": state,
    });
    if let Some((code, at)) = &c.last_exit {
        container["lastState"] = json!({"terminated": {"exitCode": code, "finishedAt": at, "reason": if *code == 0 { "Completed" } else { "Error" }}});
    }
    json!({
        "phase": phase,
        "hostIP": "127.0.0.1",
        "hostIPs": [{"ip": "127.0.0.1"}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": start_time,
        "conditions": [
            cond("PodScheduled", true),
            cond("Initialized", true),
            cond("ContainersReady", c.ready),
            cond("Ready", c.ready),
        ],
        "containerStatuses": [container],
    })
}

/// Whether two statuses differ in anything but transition times.
pub fn differs(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(cs) = v["conditions"].as_array_mut() {
            for c in cs {
                c.as_object_mut().map(|o| o.remove("lastTransitionTime"));
            }
        }
        v
    };
    strip(a) != strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_ready_container_makes_a_ready_pod() {
        let c = ContainerState {
            name: "worker".into(),
            running_since: Some("t1".into()),
            ready: true,
            ..Default::default()
        };
        let s = status(&c, "127.70.0.2", "t0", "t1");
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["podIP"], "127.70.0.2");
        assert_eq!(s["conditions"][3]["type"], "Ready");
        assert_eq!(s["conditions"][3]["status"], "True");
        assert_eq!(
            s["containerStatuses"][0]["state"]["running"]["startedAt"],
            "t1"
        );
    }

    #[test]
    fn a_config_error_is_pending_with_the_reason() {
        let c = ContainerState {
            name: "worker".into(),
            waiting: Some((
                "CreateContainerConfigError".into(),
                "Secret \"x\" not found".into(),
            )),
            ..Default::default()
        };
        let s = status(&c, "127.70.0.2", "t0", "t1");
        assert_eq!(s["phase"], "Pending");
        assert_eq!(s["conditions"][3]["status"], "False");
        assert_eq!(
            s["containerStatuses"][0]["state"]["waiting"]["reason"],
            "CreateContainerConfigError"
        );
    }

    #[test]
    fn a_crashed_process_keeps_the_pod_running_and_counts_restarts() {
        let c = ContainerState {
            name: "worker".into(),
            restarts: 2,
            last_exit: Some((137, "t2".into())),
            waiting: Some(("CrashLoopBackOff".into(), "back-off 2s".into())),
            ..Default::default()
        };
        let s = status(&c, "ip", "t0", "t3");
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["containerStatuses"][0]["restartCount"], 2);
        assert_eq!(
            s["containerStatuses"][0]["lastState"]["terminated"]["exitCode"],
            137
        );
        assert!(!differs(&s, &status(&c, "ip", "t0", "t9")));
        assert!(differs(
            &s,
            &status(&ContainerState::default(), "ip", "t0", "t3")
        ));
    }
}
