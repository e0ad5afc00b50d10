//! Leader election with a coordination.k8s.io/v1 Lease: only the holder reconciles. It follows
//! client-go's leaderelection:
//! - a holder renews every `renew_every`; when it has not renewed within `renew_deadline`
//!   (shorter than the lease), it stops acting as leader, before any standby may take over;
//! - a standby judges expiry by its *own* clock: the lease is expired once the record it
//!   observed (holder, renew time, transitions) has not changed for the lease's duration since
//!   it first observed it. The other holder's `renewTime` is never compared with the local
//!   clock, so clock skew cannot cause an early takeover;
//! - every API call has a deadline; a holder that stops cleanly releases the lease at once.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::Timestamp,
};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};

/// When to try renewing next: `renew_every` after the last success, and after a failed try not
/// before a retry interval has passed (an API server that refuses connections at once would
/// otherwise be asked in a tight loop until the renew deadline).
fn next_renewal(
    cfg: &LeaseConfig,
    last_ok: Instant,
    last_failed: Option<Instant>,
    now: Instant,
) -> Instant {
    let retry = cfg.retry_every.min(cfg.renew_every);
    let due = last_ok + cfg.renew_every;
    let due = last_failed.map_or(due, |f| due.max(f + retry));
    due.max(now)
}

/// Timing of the election.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    /// How long a lease is valid without renewal (a standby waits this long after it last saw
    /// the record change).
    pub duration: Duration,
    /// A holder that has not renewed for this long stops acting; shorter than `duration`.
    pub renew_deadline: Duration,
    pub renew_every: Duration,
    pub retry_every: Duration,
}

impl LeaseConfig {
    /// client-go's proportions for a lease of `duration`: renew every third of it, give up
    /// leading after two thirds, retry every 2 s.
    pub fn for_duration(namespace: &str, name: &str, identity: &str, duration: Duration) -> Self {
        LeaseConfig {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            identity: identity.to_owned(),
            duration,
            renew_deadline: duration * 2 / 3,
            renew_every: (duration / 3).max(Duration::from_millis(500)),
            retry_every: Duration::from_secs(2),
        }
    }

    /// The deadline of one API call: a hung API server must not hold a renewal past the renew
    /// deadline.
    fn call_deadline(&self) -> Duration {
        self.renew_every.max(Duration::from_secs(1))
    }
}

/// The part of the lease record that changes on every renewal or takeover.
#[derive(Debug, Clone, PartialEq)]
struct Record {
    holder: Option<String>,
    renew_time: Option<MicroTime>,
    transitions: Option<i32>,
}

impl Record {
    fn of(spec: &LeaseSpec) -> Record {
        Record {
            holder: spec.holder_identity.clone().filter(|h| !h.is_empty()),
            renew_time: spec.renew_time.clone(),
            transitions: spec.lease_transitions,
        }
    }
}

/// When this participant first saw a record: expiry is judged from here, on the local clock.
#[derive(Debug, Clone)]
struct Observed {
    record: Record,
    at: Instant,
}

/// What to do with a lease held by another participant (pure, for tests).
fn expired(observed: &Observed, duration: Duration, now: Instant) -> bool {
    now.duration_since(observed.at) >= duration
}

/// One participant.
#[derive(Debug)]
pub struct Elector {
    api: Api<Lease>,
    cfg: LeaseConfig,
    observed: Mutex<Option<Observed>>,
}

/// Why an attempt did not hold the lease.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("the API server did not answer within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

impl Elector {
    pub fn new(client: kube::Client, cfg: LeaseConfig) -> Self {
        Elector {
            api: Api::namespaced(client, &cfg.namespace),
            cfg,
            observed: Mutex::new(None),
        }
    }

    /// Returns once this participant holds the lease.
    pub async fn acquire(&self) {
        loop {
            match self.try_acquire().await {
                Ok(true) => {
                    tracing::info!(lease = %self.cfg.name, identity = %self.cfg.identity, "became leader");
                    return;
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "leader election"),
            }
            tokio::time::sleep(self.cfg.retry_every).await;
        }
    }

    /// Renews the lease until it is taken by another participant or not renewed within the
    /// renew deadline; then returns (the caller must stop acting as leader at once).
    pub async fn hold(&self) {
        let mut last_ok = Instant::now();
        let mut last_failed: Option<Instant> = None;
        loop {
            let next = next_renewal(&self.cfg, last_ok, last_failed, Instant::now());
            let deadline = last_ok + self.cfg.renew_deadline;
            tokio::time::sleep_until(next.min(deadline).into()).await;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::error!(renew_deadline = ?self.cfg.renew_deadline, "lease not renewed within the renew deadline: stepping down");
                return;
            }
            // The attempt itself must end by the renew deadline.
            match tokio::time::timeout(left, self.try_acquire()).await {
                Ok(Ok(true)) => {
                    last_ok = Instant::now();
                    last_failed = None;
                }
                Ok(Ok(false)) => {
                    tracing::error!("lease taken by another participant");
                    return;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "renewing the lease");
                    last_failed = Some(Instant::now());
                }
                Err(_) => tracing::warn!("renewing the lease: no answer before the renew deadline"),
            }
        }
    }

    /// Gives the lease up (on a clean stop) so that a standby takes over at once.
    pub async fn release(&self) {
        let patch = serde_json::json!({"spec": {"holderIdentity": null, "renewTime": null}});
        let deadline = self.cfg.call_deadline();
        if let Ok(Ok(Some(l))) =
            tokio::time::timeout(deadline, self.api.get_opt(&self.cfg.name)).await
            && l.spec.as_ref().and_then(|s| s.holder_identity.as_deref())
                == Some(self.cfg.identity.as_str())
        {
            let _ = tokio::time::timeout(
                deadline,
                self.api.patch(
                    &self.cfg.name,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                ),
            )
            .await;
        }
    }

    async fn call<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, LeaseError> {
        let d = self.cfg.call_deadline();
        tokio::time::timeout(d, fut)
            .await
            .map_err(|_| LeaseError::Timeout(d))?
            .map_err(LeaseError::Kube)
    }

    /// Takes or renews the lease if it is free, expired (by local observation) or ours.
    /// Optimistic concurrency on the resourceVersion makes two participants racing for it safe.
    async fn try_acquire(&self) -> Result<bool, LeaseError> {
        let now = Timestamp::now();
        let secs = self.cfg.duration.as_secs().max(1) as i32;
        let Some(mut lease) = self.call(self.api.get_opt(&self.cfg.name)).await? else {
            let lease: Lease = serde_json::from_value(serde_json::json!({
                "metadata": {"name": self.cfg.name, "namespace": self.cfg.namespace},
                "spec": {"holderIdentity": self.cfg.identity, "leaseDurationSeconds": secs,
                         "acquireTime": MicroTime(now), "renewTime": MicroTime(now), "leaseTransitions": 0}
            }))
            .expect("a valid Lease");
            return match self
                .call(self.api.create(&PostParams::default(), &lease))
                .await
            {
                Ok(_) => Ok(true),
                Err(LeaseError::Kube(kube::Error::Api(e))) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        let record = Record::of(spec);
        let ours = record.holder.as_deref() == Some(self.cfg.identity.as_str());
        let observed = {
            let mut o = self.observed.lock().expect("observed lock");
            if o.as_ref().is_none_or(|o| o.record != record) {
                *o = Some(Observed {
                    record: record.clone(),
                    at: Instant::now(),
                });
            }
            o.clone().expect("just set")
        };
        let duration =
            Duration::from_secs(spec.lease_duration_seconds.unwrap_or(secs).max(1) as u64);
        if record.holder.is_some() && !ours && !expired(&observed, duration, Instant::now()) {
            return Ok(false);
        }
        if !ours {
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            spec.holder_identity = Some(self.cfg.identity.clone());
        }
        spec.renew_time = Some(MicroTime(now));
        spec.lease_duration_seconds = Some(secs);
        match self
            .call(
                self.api
                    .replace(&self.cfg.name, &PostParams::default(), &lease),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(LeaseError::Kube(kube::Error::Api(e))) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_judged_from_the_local_observation_not_the_holders_clock() {
        let t0 = Instant::now();
        // A renewTime far in the past (a holder whose clock is behind) does not expire the
        // lease: only the time since this participant saw the record change counts.
        let o = Observed {
            record: Record {
                holder: Some("other".into()),
                renew_time: Some(MicroTime(Timestamp::from_second(0).unwrap())),
                transitions: Some(1),
            },
            at: t0,
        };
        let d = Duration::from_secs(15);
        assert!(!expired(&o, d, t0 + Duration::from_secs(14)));
        assert!(expired(&o, d, t0 + Duration::from_secs(15)));
    }

    #[test]
    fn a_failed_renewal_is_retried_after_the_retry_interval_not_at_once() {
        let c = LeaseConfig::for_duration("ns", "l", "me", Duration::from_secs(15));
        let t0 = Instant::now();
        // On time: renew_every after the last success.
        assert_eq!(next_renewal(&c, t0, None, t0), t0 + c.renew_every);
        // Overdue and failing: the next try waits the retry interval after the failed one.
        let failed = t0 + c.renew_every + Duration::from_millis(3);
        let next = next_renewal(&c, t0, Some(failed), failed);
        assert_eq!(next, failed + c.retry_every.min(c.renew_every));
        assert!(next > failed);
        // Never in the past.
        let late = t0 + Duration::from_secs(60);
        assert_eq!(next_renewal(&c, t0, Some(failed), late), late);
    }

    #[test]
    fn the_renew_deadline_ends_leading_before_a_standby_may_take_over() {
        let c = LeaseConfig::for_duration("ns", "l", "me", Duration::from_secs(15));
        assert!(c.renew_deadline < c.duration);
        assert!(c.renew_every < c.renew_deadline);
        assert!(c.call_deadline() <= c.renew_every);
    }
}
