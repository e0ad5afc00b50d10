//! `kubectl impressions prescale NAME --factor F --from T --for D`: declares a planned surge on
//! the pipeline (`spec.scaling.plannedSurges`): from T (RFC 3339, `now`, or a duration from
//! now such as `10m`) for D (`2h`, `90m`), F × the usual load. The operator pre-scales a pod's
//! start and a rebalance before T and holds through the window. Surges that have ended are
//! dropped from the list; the write is a merge patch at the pipeline's resourceVersion, so a
//! concurrent change is never overwritten: on a conflict (the operator writes the status often,
//! and that moves the resourceVersion too) the pipeline is read again and the surge added to what
//! it holds then, for as long as the command's deadline allows.

use std::str::FromStr;

use impressions_crds::{ImpressionPipeline, scaling::PlannedSurge};
use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::{SignedDuration, Timestamp, Unit},
};
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};

use crate::{
    connect::{Cluster, is_conflict, is_not_found, within},
    error::Error,
};

/// The most planned surges a pipeline holds (the CRD's limit).
pub const MAX_SURGES: usize = 16;
/// The longest surge (the CRD's limit).
pub const MAX_SECONDS: i64 = 7 * 86_400;

/// The surge a command line asks for, at `now`.
pub fn surge(
    factor: f64,
    from: &str,
    duration: &str,
    now: Timestamp,
) -> Result<PlannedSurge, Error> {
    if !(factor > 1.0 && factor <= 100.0) {
        return Err(Error::Usage(format!(
            "--factor {factor}: must be above 1 and at most 100 (the load expected over the usual)"
        )));
    }
    let now = now.round(Unit::Second).unwrap_or(now);
    let start = match from.trim() {
        "now" => now,
        t => match Timestamp::from_str(t) {
            Ok(at) => at,
            Err(_) => {
                let d = parse_duration("--from", t.trim_start_matches('+'))?;
                now.checked_add(d)
                    .map_err(|e| Error::Usage(format!("--from {t}: {e}")))?
            }
        },
    };
    let length = parse_duration("--for", duration)?;
    if length <= SignedDuration::ZERO || length.as_secs() > MAX_SECONDS {
        return Err(Error::Usage(format!(
            "--for {duration}: must be above 0 and at most 168h (7 days)"
        )));
    }
    let end = start
        .checked_add(length)
        .map_err(|e| Error::Usage(format!("--for {duration}: {e}")))?;
    if end <= now {
        return Err(Error::Usage(format!(
            "the surge from {start} to {end} is over already"
        )));
    }
    Ok(PlannedSurge {
        start: Time(start),
        end: Time(end),
        factor,
    })
}

fn parse_duration(flag: &str, text: &str) -> Result<SignedDuration, Error> {
    SignedDuration::from_str(text).map_err(|e| {
        Error::Usage(format!(
            "{flag} {text}: not a time (RFC 3339, or a duration such as 10m, 2h, 1h30m): {e}"
        ))
    })
}

/// The pipeline's surges after adding `new`: those that ended before `now` are dropped.
pub fn with_surge(
    existing: &[PlannedSurge],
    new: PlannedSurge,
    now: Timestamp,
) -> Result<Vec<PlannedSurge>, Error> {
    let mut out: Vec<PlannedSurge> = existing.iter().filter(|s| s.end.0 > now).cloned().collect();
    out.push(new);
    if out.len() > MAX_SURGES {
        return Err(Error::Usage(format!(
            "the pipeline has {} planned surges that have not ended; at most {MAX_SURGES}",
            out.len() - 1
        )));
    }
    Ok(out)
}

/// Adds the surge to the pipeline; returns the line to print. A conflict is retried from a
/// fresh read for as long as the command's deadline allows.
pub async fn add(
    cluster: &Cluster,
    name: &str,
    new: PlannedSurge,
    now: Timestamp,
) -> Result<String, Error> {
    let started = std::time::Instant::now();
    loop {
        match add_once(cluster, name, new.clone(), now).await {
            Err(e) if is_conflict(&e) && started.elapsed() < cluster.deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            r => return r,
        }
    }
}

/// One read of the pipeline and one patch at its resourceVersion.
async fn add_once(
    cluster: &Cluster,
    name: &str,
    new: PlannedSurge,
    now: Timestamp,
) -> Result<String, Error> {
    let ns = &cluster.namespace;
    let api: Api<ImpressionPipeline> = Api::namespaced(cluster.client.clone(), ns);
    let not_found = || Error::PipelineNotFound {
        namespace: ns.clone(),
        name: name.to_owned(),
    };
    let p = match within(
        cluster.deadline,
        format!("reading ImpressionPipeline {ns}/{name}"),
        api.get(name),
    )
    .await
    {
        Ok(p) => p,
        Err(e) if is_not_found(&e) => return Err(not_found()),
        Err(e) => return Err(e),
    };
    let surges = with_surge(&p.spec.scaling.planned_surges, new.clone(), now)?;
    let patch = serde_json::json!({
        "metadata": {"resourceVersion": p.resource_version()},
        "spec": {"scaling": {"plannedSurges": surges}},
    });
    match within(
        cluster.deadline,
        format!("adding a planned surge to ImpressionPipeline {ns}/{name}"),
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)),
    )
    .await
    {
        Ok(_) => Ok(format!(
            "impressionpipeline {ns}/{name}: planned surge ×{} from {} to {} added ({} planned); the operator pre-scales a pod's start and a rebalance before it starts\n",
            new.factor,
            new.start.0,
            new.end.0,
            surges.len()
        )),
        Err(e) if is_not_found(&e) => Err(not_found()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-12-24T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn from_takes_a_time_now_or_a_duration_from_now() {
        let s = surge(2.0, "2026-12-24T18:00:00Z", "2h", now()).unwrap();
        assert_eq!(s.start.0.to_string(), "2026-12-24T18:00:00Z");
        assert_eq!(s.end.0.to_string(), "2026-12-24T20:00:00Z");
        let s = surge(2.0, "now", "90m", now()).unwrap();
        assert_eq!(s.start.0, now());
        assert_eq!(s.end.0.to_string(), "2026-12-24T13:30:00Z");
        let s = surge(3.0, "+10m", "1h30m", now()).unwrap();
        assert_eq!(s.start.0.to_string(), "2026-12-24T12:10:00Z");
        assert_eq!(s.end.0.to_string(), "2026-12-24T13:40:00Z");
        assert_eq!(s.factor, 3.0);
    }

    #[test]
    fn bad_values_are_refused_with_the_flag_named() {
        let e = |f: f64, from: &str, d: &str| surge(f, from, d, now()).unwrap_err().to_string();
        assert!(e(1.0, "now", "1h").starts_with("--factor 1: must be above 1"));
        assert!(e(2.0, "tomorrow", "1h").starts_with("--from tomorrow: not a time"));
        assert!(e(2.0, "now", "169h").starts_with("--for 169h: must be above 0 and at most 168h"));
        assert!(e(2.0, "now", "0s").starts_with("--for 0s: must be above 0"));
        assert!(e(2.0, "2026-12-24T09:00:00Z", "1h").contains("is over already"));
    }

    #[test]
    fn ended_surges_are_dropped_and_the_list_is_bounded() {
        let at = |from: &str, to: &str| PlannedSurge {
            start: Time(from.parse().unwrap()),
            end: Time(to.parse().unwrap()),
            factor: 2.0,
        };
        let old = at("2026-12-23T10:00:00Z", "2026-12-23T11:00:00Z");
        let on = at("2026-12-24T11:00:00Z", "2026-12-24T13:00:00Z");
        let new = at("2026-12-25T11:00:00Z", "2026-12-25T13:00:00Z");
        let out = with_surge(&[old, on.clone()], new.clone(), now()).unwrap();
        assert_eq!(out, [on.clone(), new.clone()]);
        let full = vec![on; MAX_SURGES];
        let e = with_surge(&full, new, now()).unwrap_err().to_string();
        assert!(e.contains("at most 16"), "{e}");
    }
}
