//! What a worker serves for a window at `GET /schema` (and `GET /schema/windows`, the last
//! few): the observation with the pipeline, the pod and the window, so that a collector can
//! de-duplicate the reports by (pod, window start) before merging them (the merge is not
//! idempotent) and group the pods' windows by the multiple of `windowSeconds` they end at.

use serde::{Deserialize, Serialize};

use super::observation::{Budget, Observation};

/// One window of one worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaReport {
    pub pipeline: PipelineRef,
    /// The worker's instance: `$POD_NAME`, else `$HOSTNAME`, else the kernel's host name.
    pub pod: String,
    /// The window as the worker's clock saw it: from the end of the previous window (or the
    /// subscription) to the moment this one was taken. A pod's windows are contiguous; they end
    /// at the first turn of the main loop after each multiple of `windowSeconds`.
    pub window: WindowBounds,
    /// The window's length (`schema.windowSeconds`): windows end just after its multiples.
    #[serde(default)]
    pub window_seconds: u32,
    /// The sampling and budget the observation was learned with.
    pub sample_one_in: u32,
    pub budget: Budget,
    /// Its `window` is the span of the sampled events (absent when none was sampled).
    pub observation: Observation,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineRef {
    pub namespace: String,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowBounds {
    pub start_ms: i64,
    pub end_ms: i64,
}

impl SchemaReport {
    /// The multiple of `windowSeconds` (in ms since the Unix epoch) the window ended at: the
    /// workers of a pipeline end their windows at the first turn of their main loop after it, so
    /// their reports of one window share it. `None` without a window length.
    pub fn boundary_ms(&self) -> Option<i64> {
        let w = i64::from(self.window_seconds) * 1000;
        (w > 0).then(|| self.window.end_ms.div_euclid(w) * w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_belongs_to_the_multiple_it_ended_after() {
        let mut r = SchemaReport {
            pipeline: PipelineRef {
                namespace: "n".into(),
                name: "p".into(),
            },
            pod: "a".into(),
            window: WindowBounds {
                start_ms: 12_040,
                end_ms: 17_100,
            },
            window_seconds: 2,
            sample_one_in: 1,
            budget: Budget::default(),
            observation: Observation::default(),
        };
        assert_eq!(r.boundary_ms(), Some(16_000));
        r.window.end_ms = 18_000;
        assert_eq!(r.boundary_ms(), Some(18_000));
        r.window_seconds = 0;
        assert_eq!(r.boundary_ms(), None);
    }
}
