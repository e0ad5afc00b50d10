//! Leader election with a coordination.k8s.io/v1 Lease: only the holder reconciles. A holder
//! renews every few seconds; a standby takes over once the lease has not been renewed for its
//! duration (about 15 s), and a holder that stops cleanly releases it at once.

use std::time::Duration;

use k8s_openapi::{
    api::coordination::v1::Lease,
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::{SignedDuration, Timestamp},
};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};

/// Timing of the election.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub duration: Duration,
    pub renew_every: Duration,
    pub retry_every: Duration,
}

/// One participant.
#[derive(Debug, Clone)]
pub struct Elector {
    api: Api<Lease>,
    cfg: LeaseConfig,
}

impl Elector {
    pub fn new(client: kube::Client, cfg: LeaseConfig) -> Self {
        Elector {
            api: Api::namespaced(client, &cfg.namespace),
            cfg,
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

    /// Renews the lease until a renewal fails for longer than the lease duration; then returns
    /// (the caller must stop acting as leader).
    pub async fn hold(&self) {
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.cfg.renew_every).await;
            match self.try_acquire().await {
                Ok(true) => last_ok = tokio::time::Instant::now(),
                Ok(false) => {
                    tracing::error!("lease taken by another participant");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "renewing the lease");
                    if last_ok.elapsed() >= self.cfg.duration {
                        tracing::error!("lease not renewed within its duration");
                        return;
                    }
                }
            }
        }
    }

    /// Gives the lease up (on a clean stop) so that a standby takes over at once.
    pub async fn release(&self) {
        let patch = serde_json::json!({"spec": {"holderIdentity": null, "renewTime": null}});
        if let Ok(Some(l)) = self.api.get_opt(&self.cfg.name).await
            && l.spec.as_ref().and_then(|s| s.holder_identity.as_deref())
                == Some(self.cfg.identity.as_str())
        {
            let _ = self
                .api
                .patch(
                    &self.cfg.name,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await;
        }
    }

    /// Takes or renews the lease if it is free, expired or ours. Optimistic concurrency on the
    /// resourceVersion makes two participants racing for it safe.
    async fn try_acquire(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let secs = self.cfg.duration.as_secs() as i32;
        let Some(mut lease) = self.api.get_opt(&self.cfg.name).await? else {
            let lease: Lease = serde_json::from_value(serde_json::json!({
                "metadata": {"name": self.cfg.name, "namespace": self.cfg.namespace},
                "spec": {"holderIdentity": self.cfg.identity, "leaseDurationSeconds": secs,
                         "acquireTime": MicroTime(now), "renewTime": MicroTime(now), "leaseTransitions": 0}
            }))
            .expect("a valid Lease");
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        let ours = spec.holder_identity.as_deref() == Some(self.cfg.identity.as_str());
        let held = spec
            .holder_identity
            .as_deref()
            .is_some_and(|h| !h.is_empty());
        let expired = spec.renew_time.as_ref().is_none_or(|t| {
            let d =
                SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(secs)));
            t.0.checked_add(d).is_ok_and(|end| end < now)
        });
        if held && !ours && !expired {
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
            .api
            .replace(&self.cfg.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }
}
