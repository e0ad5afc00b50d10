//! Replica bounds: the policy's, narrowed by the pipeline's (never widened), and the replica
//! count the operator applies before any autoscaling decision.

use impressions_crds::{ImpressionPipelineSpec, ScalingPolicySpec, scaling::ScalingMode};

/// The bounds in force, and any pipeline setting that tried to widen the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounds {
    pub min: i32,
    pub max: i32,
    /// Human-readable notes on pipeline settings ignored because they were wider than the policy.
    pub widened: Vec<String>,
}

/// The policy's bounds narrowed by the pipeline's minReplicas/maxReplicas.
pub fn bounds(spec: &ImpressionPipelineSpec, policy: &ScalingPolicySpec) -> Bounds {
    let mut widened = Vec::new();
    let mut min = policy.min_replicas;
    let mut max = policy.max_replicas;
    if let Some(m) = spec.scaling.min_replicas {
        if m < policy.min_replicas {
            widened.push(format!(
                "minReplicas {m} is below the policy's {}",
                policy.min_replicas
            ));
        } else {
            min = m.min(policy.max_replicas);
        }
    }
    if let Some(m) = spec.scaling.max_replicas {
        if m > policy.max_replicas {
            widened.push(format!(
                "maxReplicas {m} is above the policy's {}",
                policy.max_replicas
            ));
        } else {
            max = m.max(min);
        }
    }
    Bounds {
        min,
        max: max.max(min),
        widened,
    }
}

/// The replica count before autoscaling: spec.replicas in Manual and External modes, otherwise
/// the operator's last decision (status.desiredReplicas); always within the bounds. The
/// Deployment's own replica field is never read back, so a manual edit of it is put back.
pub fn base_replicas(spec: &ImpressionPipelineSpec, b: &Bounds, last_desired: Option<i32>) -> i32 {
    let wanted = match spec.scaling.mode {
        ScalingMode::Manual | ScalingMode::External => spec.replicas.or(last_desired),
        ScalingMode::Auto | ScalingMode::Recommend => last_desired,
    };
    wanted.unwrap_or(b.min).clamp(b.min, b.max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: serde_json::Value) -> ImpressionPipelineSpec {
        let mut v = serde_json::json!({
            "source": {"bootstrapServers": "k:9092", "topic": "raw"},
            "sink": {"topic": "out", "deadLetterTopic": "dlq"},
            "enrichment": {"catalog": {"topic": "titles"}}
        });
        for (k, val) in extra.as_object().unwrap() {
            v[k] = val.clone();
        }
        serde_json::from_value(v).unwrap()
    }

    fn policy(min: i32, max: i32) -> ScalingPolicySpec {
        serde_json::from_value(serde_json::json!({"minReplicas": min, "maxReplicas": max})).unwrap()
    }

    #[test]
    fn pipeline_bounds_narrow_the_policy() {
        let b = bounds(
            &spec(serde_json::json!({"scaling": {"minReplicas": 2, "maxReplicas": 6}})),
            &policy(1, 10),
        );
        assert_eq!((b.min, b.max, b.widened.len()), (2, 6, 0));
    }

    #[test]
    fn wider_pipeline_bounds_are_reported_not_applied() {
        let b = bounds(
            &spec(serde_json::json!({"scaling": {"minReplicas": 0, "maxReplicas": 50}})),
            &policy(1, 10),
        );
        assert_eq!((b.min, b.max), (1, 10));
        assert_eq!(b.widened.len(), 2, "{:?}", b.widened);
    }

    #[test]
    fn manual_follows_spec_replicas_within_bounds() {
        let s = spec(serde_json::json!({"scaling": {"mode": "Manual"}, "replicas": 4}));
        let b = bounds(&s, &policy(1, 10));
        assert_eq!(base_replicas(&s, &b, Some(7)), 4);
        let s = spec(serde_json::json!({"scaling": {"mode": "External"}, "replicas": 40}));
        assert_eq!(base_replicas(&s, &b, None), 10);
    }

    #[test]
    fn auto_keeps_the_last_decision_within_bounds() {
        let s = spec(serde_json::json!({"replicas": 9}));
        let b = bounds(&s, &policy(2, 5));
        assert_eq!(
            base_replicas(&s, &b, None),
            2,
            "starts at min, ignoring spec.replicas"
        );
        assert_eq!(base_replicas(&s, &b, Some(4)), 4);
        assert_eq!(base_replicas(&s, &b, Some(8)), 5);
    }
}
