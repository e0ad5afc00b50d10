//! The `ArchiveHealthy` condition of a pipeline with an archive (pure): True while at least one
//! archiver of its Deployment is ready, False when none is, absent without an archive.

use impressions_crds::{ImpressionPipelineStatus, conditions};
use k8s_openapi::{api::apps::v1::Deployment, apimachinery::pkg::apis::meta::v1::Time};

/// Folds the archiver Deployment as applied (None: the pipeline has no archive) into `s`.
pub fn with_archive(
    s: &mut ImpressionPipelineStatus,
    generation: Option<i64>,
    archivers: Option<&Deployment>,
    now: &Time,
) {
    let Some(d) = archivers else {
        s.conditions
            .retain(|c| c.type_ != conditions::ARCHIVE_HEALTHY);
        return;
    };
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    let st = d.status.clone().unwrap_or_default();
    let ready = st.ready_replicas.unwrap_or(0);
    let (ok, reason, msg) = if ready > 0 {
        (
            true,
            "ArchiverReady",
            format!("{ready}/{desired} archivers ready"),
        )
    } else if st.replicas.unwrap_or(0) > 0 {
        (
            false,
            "ArchiverUnavailable",
            format!("none of {desired} archivers is ready"),
        )
    } else {
        (
            false,
            "ArchiverStarting",
            format!("{desired} archivers requested, none running yet"),
        )
    };
    conditions::set(
        &mut s.conditions,
        conditions::ARCHIVE_HEALTHY,
        ok,
        reason,
        &msg,
        generation,
        now.clone(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(replicas: i32, ready: i32) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "imp-archiver"},
            "spec": {"replicas": 1, "selector": {}, "template": {}},
            "status": {"replicas": replicas, "readyReplicas": ready}
        }))
        .unwrap()
    }

    fn condition(s: &ImpressionPipelineStatus) -> Option<(String, String)> {
        conditions::get(&s.conditions, conditions::ARCHIVE_HEALTHY)
            .map(|c| (c.status.clone(), c.reason.clone()))
    }

    fn now() -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(1_000).unwrap())
    }

    #[test]
    fn ready_unavailable_starting_and_absent() {
        let mut s = ImpressionPipelineStatus::default();
        with_archive(&mut s, Some(1), Some(&deployment(1, 1)), &now());
        assert_eq!(condition(&s), Some(("True".into(), "ArchiverReady".into())));
        with_archive(&mut s, Some(1), Some(&deployment(1, 0)), &now());
        assert_eq!(
            condition(&s),
            Some(("False".into(), "ArchiverUnavailable".into()))
        );
        with_archive(&mut s, Some(1), Some(&deployment(0, 0)), &now());
        assert_eq!(
            condition(&s),
            Some(("False".into(), "ArchiverStarting".into()))
        );
        with_archive(&mut s, Some(2), None, &now());
        assert_eq!(condition(&s), None, "no archive, no condition");
    }
}
