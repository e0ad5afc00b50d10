//! Stopping: SIGTERM or Ctrl-C, and the time each phase of a stop may take.
//!
//! A stop must be quick in every state (a rollout waits for it, and a standby waits for the
//! Lease): before leading, the operator exits at once; while leading, in-flight reconciles get
//! [`RECONCILE_GRACE`], then the Lease is released within [`RELEASE_GRACE`], and blocking work
//! still running (a Kafka call) is abandoned after [`RUNTIME_GRACE`].

use std::{future::Future, pin::Pin, time::Duration};

use futures::{FutureExt, future::Shared};

/// How long in-flight reconciles may run on after a stop was requested.
pub const RECONCILE_GRACE: Duration = Duration::from_secs(5);
/// How long releasing the Lease may take.
pub const RELEASE_GRACE: Duration = Duration::from_secs(3);
/// How long the runtime waits for blocking calls (Kafka, in threads of their own) on exit.
pub const RUNTIME_GRACE: Duration = Duration::from_secs(1);

/// A cloneable future that resolves once a stop was requested.
pub type Stop = Shared<Pin<Box<dyn Future<Output = ()> + Send + Sync>>>;

/// Resolves on SIGTERM or Ctrl-C.
pub async fn signal() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "no SIGTERM handler; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The stop of this process: installs the signal handlers now (so that a signal that comes
/// before anything awaits it is not lost) and logs the request once.
pub fn stop() -> Stop {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        signal().await;
        tracing::info!("stop requested");
        let _ = tx.send(());
    });
    let fut: Pin<Box<dyn Future<Output = ()> + Send + Sync>> = Box::pin(async move {
        // A dropped sender (the runtime is going away) also means stop.
        let _ = rx.await;
    });
    fut.shared()
}
