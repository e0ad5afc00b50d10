//! The condition types of an ImpressionPipeline and a pure helper to update them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The pipeline's workers run its current spec and its references resolve.
pub const READY: &str = "Ready";
/// A scaling change is in progress or blocked.
pub const SCALING: &str = "Scaling";
/// Lag and throughput metrics are fresh enough to scale on.
pub const METRICS_AVAILABLE: &str = "MetricsAvailable";
/// Data quality against the pipeline's thresholds: True with reason OK, False with reason Warning
/// or Critical, Unknown with reason NoData.
pub const DATA_QUALITY: &str = "DataQuality";
/// The raw events' schema against the accepted baseline (`RawEventSchema` of the same name):
/// True with the drift kinds as reason (e.g. `NewField,TypeChanged`) and the fields in the
/// message, False with reason NoDrift, Unknown with reason NoBaseline before the first window.
pub const SCHEMA_DRIFT: &str = "SchemaDrift";
/// Something keeps the pipeline from working as specified.
pub const DEGRADED: &str = "Degraded";
/// Pipelines with an archive: an archiver is ready and the commits to the table progress
/// (absent without an archive).
pub const ARCHIVE_HEALTHY: &str = "ArchiveHealthy";

/// Sets a condition in `conditions`, keeping `lastTransitionTime` when the status did not change
/// so that an unchanged condition never causes a write. Returns whether anything changed.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Time,
) -> bool {
    let status = if status { "True" } else { "False" };
    set_status(conditions, type_, status, reason, message, generation, now)
}

/// Like [`set`], with status `Unknown`: the operator cannot tell (e.g. no data to judge by).
pub fn set_unknown(
    conditions: &mut Vec<Condition>,
    type_: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Time,
) -> bool {
    set_status(
        conditions, type_, "Unknown", reason, message, generation, now,
    )
}

fn set_status(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Time,
) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            let changed = c.status != status
                || c.reason != reason
                || c.message != message
                || c.observed_generation != generation;
            if c.status != status {
                c.last_transition_time = now;
            }
            c.status = status.to_owned();
            c.reason = reason.to_owned();
            c.message = message.to_owned();
            c.observed_generation = generation;
            changed
        }
        None => {
            conditions.push(Condition {
                type_: type_.to_owned(),
                status: status.to_owned(),
                reason: reason.to_owned(),
                message: message.to_owned(),
                observed_generation: generation,
                last_transition_time: now,
            });
            true
        }
    }
}

/// The condition of a type, if present.
pub fn get<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn unchanged_condition_keeps_transition_time_and_reports_no_change() {
        let mut cs = Vec::new();
        assert!(set(
            &mut cs,
            READY,
            true,
            "Reconciled",
            "ok",
            Some(1),
            at(10)
        ));
        assert!(!set(
            &mut cs,
            READY,
            true,
            "Reconciled",
            "ok",
            Some(1),
            at(20)
        ));
        assert_eq!(get(&cs, READY).unwrap().last_transition_time, at(10));
    }

    #[test]
    fn status_flip_moves_transition_time() {
        let mut cs = Vec::new();
        set(&mut cs, READY, true, "Reconciled", "ok", Some(1), at(10));
        assert!(set(
            &mut cs,
            READY,
            false,
            "PolicyMissing",
            "no policy",
            Some(1),
            at(30)
        ));
        let c = get(&cs, READY).unwrap();
        assert_eq!(
            (c.status.as_str(), c.last_transition_time.clone()),
            ("False", at(30))
        );
    }

    #[test]
    fn unknown_is_a_third_status() {
        let mut cs = Vec::new();
        set(&mut cs, DATA_QUALITY, true, "OK", "fine", None, at(1));
        assert!(set_unknown(
            &mut cs,
            DATA_QUALITY,
            "NoData",
            "none",
            None,
            at(2)
        ));
        let c = get(&cs, DATA_QUALITY).unwrap();
        assert_eq!(
            (c.status.as_str(), c.last_transition_time.clone()),
            ("Unknown", at(2))
        );
        assert!(!set_unknown(
            &mut cs,
            DATA_QUALITY,
            "NoData",
            "none",
            None,
            at(3)
        ));
    }

    #[test]
    fn message_change_is_a_change_but_keeps_transition_time() {
        let mut cs = Vec::new();
        set(&mut cs, DEGRADED, true, "SinkSlow", "a", None, at(1));
        assert!(set(&mut cs, DEGRADED, true, "SinkSlow", "b", None, at(2)));
        assert_eq!(get(&cs, DEGRADED).unwrap().last_transition_time, at(1));
    }
}
