//! Replaying a real pipeline (`operator simulate --prometheus URL --pipeline NS/NAME`): the
//! simulated cluster takes the pipeline's own figures where they can be read — the per-replica
//! capacity measured from its busy time (Prometheus), its topic's partition count (Kafka), its
//! effective ScalingPolicy and bounds (the cluster) — and the defaults only where they cannot,
//! saying for each value which it used and where it came from. The reads are the caller's (IO
//! in `main.rs`, `kubectl impressions what-if`); what is made of them is here, pure.

use impressions_crds::{ImpressionPipeline, ScalingPolicy, ScalingPolicySpec};

use super::model::ModelConfig;
use crate::{
    autoscale::{bounds::bounds, model::HistoryPoint},
    reconcile::resolved::pick_policy,
};

/// One value of the replay and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Sourced<T> {
    pub value: T,
    pub from: String,
}

/// The pipeline's effective policy as read from the cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterPolicy {
    pub spec: ScalingPolicySpec,
    /// The ScalingPolicy's name (`None`: the built-in defaults apply to the pipeline).
    pub name: Option<String>,
    /// The pipeline's bounds within the policy (min, max).
    pub min: i32,
    pub max: i32,
}

impl ClusterPolicy {
    /// The pipeline's effective policy among the cluster's ScalingPolicies (its policyRef, else
    /// the default of its region or of the operator's `region`, else the built-in one) and the
    /// pipeline's bounds within it.
    pub fn of(
        pipeline: &ImpressionPipeline,
        region: &str,
        policies: &[ScalingPolicy],
    ) -> Result<ClusterPolicy, String> {
        let resolved = pick_policy(pipeline, region, policies).map_err(|e| e.to_string())?;
        let b = bounds(&pipeline.spec, &resolved.spec);
        Ok(ClusterPolicy {
            spec: resolved.spec,
            name: resolved.name,
            min: b.min,
            max: b.max,
        })
    }
}

/// What a replay runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    pub cfg: ModelConfig,
    pub policy: ScalingPolicySpec,
    /// One line per value: name, value, source.
    pub provenance: Vec<String>,
}

/// The per-replica capacity the history shows: the median over its points of processed / busy
/// fraction / workers, on points where the workers were busy enough to measure (≥ 5 %).
/// `None` without such a point. Also returns how many points it used.
pub fn measured_capacity(points: &[HistoryPoint]) -> Option<(f64, usize)> {
    let mut caps: Vec<f64> = points
        .iter()
        .filter(|p| p.busy_fraction >= 0.05 && p.processed_rate > 0.0 && p.replicas > 0)
        .map(|p| p.processed_rate / p.busy_fraction.min(1.0) / f64::from(p.replicas))
        .collect();
    if caps.is_empty() {
        return None;
    }
    caps.sort_by(f64::total_cmp);
    let n = caps.len();
    let median = if n % 2 == 1 {
        caps[n / 2]
    } else {
        (caps[n / 2 - 1] + caps[n / 2]) / 2.0
    };
    Some((median, n))
}

/// The replay's configuration: each read that succeeded replaces the default in `base` (the
/// command line's values), each that failed says why the default stands.
pub fn resolve(
    points: &[HistoryPoint],
    partitions: Result<i32, String>,
    policy: Result<ClusterPolicy, String>,
    base: &ModelConfig,
) -> Replay {
    let mut cfg = base.clone();
    let mut provenance = Vec::new();
    let capacity = match measured_capacity(points) {
        Some((c, n)) => Sourced {
            value: c,
            from: format!(
                "Prometheus: median of processed / busy / workers over {n} of {} points",
                points.len()
            ),
        },
        None => Sourced {
            value: base.capacity,
            from: "default (--capacity): no point of the history with workers ≥ 5 % busy".into(),
        },
    };
    cfg.capacity = capacity.value;
    provenance.push(format!(
        "capacity per replica: {:.0} events/s ({})",
        capacity.value, capacity.from
    ));
    match partitions {
        Ok(p) if p > 0 => {
            cfg.partitions = p;
            provenance.push(format!(
                "partitions: {p} (Kafka: the source topic's metadata)"
            ));
        }
        Ok(_) | Err(_) => provenance.push(format!(
            "partitions: {} (default (--partitions): {})",
            base.partitions,
            partitions
                .err()
                .unwrap_or_else(|| "the topic has none".into())
        )),
    }
    let spec = match policy {
        Ok(p) => {
            cfg.min_replicas = p.min.max(1);
            cfg.max_replicas = p.max.min(cfg.partitions).max(cfg.min_replicas);
            provenance.push(format!(
                "policy: {} (the cluster: the pipeline's effective policy); bounds {}..{} (the pipeline within the policy, at most the partitions)",
                p.name
                    .as_deref()
                    .map_or("built-in defaults".to_owned(), |n| format!("ScalingPolicy {n}")),
                cfg.min_replicas,
                cfg.max_replicas
            ));
            p.spec
        }
        Err(e) => {
            cfg.max_replicas = base.max_replicas.min(cfg.partitions);
            provenance.push(format!(
                "policy: built-in defaults; bounds {}..{} (default: {e})",
                cfg.min_replicas, cfg.max_replicas
            ));
            ScalingPolicySpec::builtin()
        }
    };
    Replay {
        cfg,
        policy: spec,
        provenance,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(processed: f64, busy: f64, replicas: i32) -> HistoryPoint {
        HistoryPoint {
            at: 0.0,
            processed_rate: processed,
            busy_fraction: busy,
            lag: 0.0,
            replicas,
        }
    }

    #[test]
    fn a_replay_of_the_demo_pipeline_uses_its_capacity_partitions_and_policy() {
        // The demo: ~930 events/s per worker, 8 partitions.
        let points = [
            point(930.0, 0.5, 1),
            point(1_860.0, 0.5, 2),
            point(0.0, 0.0, 2),
            point(900.0, 0.02, 2),
        ];
        let mut spec = ScalingPolicySpec::builtin();
        spec.lag_slo_seconds = 30;
        let r = resolve(
            &points,
            Ok(8),
            Ok(ClusterPolicy {
                spec: spec.clone(),
                name: Some("demo".into()),
                min: 1,
                max: 16,
            }),
            &ModelConfig::default(),
        );
        assert_eq!(r.cfg.capacity, 1_860.0);
        assert_eq!(r.cfg.partitions, 8);
        assert_eq!(r.cfg.max_replicas, 8, "never above the partitions");
        assert_eq!(r.policy, spec);
        let text = r.provenance.join("\n");
        assert!(text.contains("Prometheus: median"), "{text}");
        assert!(text.contains("Kafka"), "{text}");
        assert!(text.contains("ScalingPolicy demo"), "{text}");
    }

    #[test]
    fn the_cluster_policy_is_the_one_the_pipeline_names_within_its_bounds() {
        let pipeline: ImpressionPipeline = serde_json::from_value(serde_json::json!({
            "apiVersion": "impressions.dev/v1alpha1", "kind": "ImpressionPipeline",
            "metadata": {"name": "p", "namespace": "n"},
            "spec": {"source": {"bootstrapServers": "k:9092", "topic": "raw"},
                     "sink": {"topic": "out", "deadLetterTopic": "dlq"},
                     "enrichment": {"catalog": {"topic": "titles"}},
                     "scaling": {"policyRef": "fast", "minReplicas": 2, "maxReplicas": 6}}
        }))
        .unwrap();
        let mut spec = ScalingPolicySpec::builtin();
        spec.lag_slo_seconds = 20;
        let fast = ScalingPolicy::new("fast", spec.clone());
        let p = ClusterPolicy::of(&pipeline, "local", &[fast]).unwrap();
        assert_eq!((p.name.as_deref(), p.min, p.max), (Some("fast"), 2, 6));
        assert_eq!(p.spec, spec);
        let missing = ClusterPolicy::of(&pipeline, "local", &[]).unwrap_err();
        assert!(missing.contains("fast"), "{missing}");
    }

    #[test]
    fn what_could_not_be_read_falls_back_to_the_defaults_and_says_why() {
        let r = resolve(
            &[point(0.0, 0.0, 1)],
            Err("Kafka unreachable".into()),
            Err("no cluster".into()),
            &ModelConfig::default(),
        );
        assert_eq!(r.cfg, ModelConfig::default());
        assert_eq!(r.policy, ScalingPolicySpec::builtin());
        let text = r.provenance.join("\n");
        for why in ["no point", "Kafka unreachable", "no cluster"] {
            assert!(text.contains(why), "{text}");
        }
    }
}
