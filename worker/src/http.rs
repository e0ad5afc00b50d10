//! /metrics, /healthz, /readyz and /schema.

use std::sync::{Arc, atomic::Ordering};

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
    routing::get,
};
use prometheus_client::registry::Registry;

use crate::{now_ms, run::Health};

#[derive(Clone)]
struct AppState {
    registry: Arc<Registry>,
    health: Arc<Health>,
}

/// Serves the endpoints on `listener` until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    health: Arc<Health>,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/schema", get(schema))
        .with_state(AppState { registry, health });
    axum::serve(listener, app).await
}

/// OpenMetrics when the client asks for it (Prometheus does), the classic text format otherwise.
async fn metrics(State(s): State<AppState>, headers: HeaderMap) -> impl IntoResponse {
    let text = crate::metrics::encode(&s.registry);
    let wants_openmetrics = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    if wants_openmetrics {
        (
            [(
                "content-type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
    } else {
        (
            [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
            crate::metrics::to_prometheus_text(&text),
        )
    }
}

/// Live while the main loop turned within the last 30 s.
async fn healthz(State(s): State<AppState>) -> impl IntoResponse {
    let age = now_ms() - s.health.heartbeat_ms.load(Ordering::Acquire);
    if age < 30_000 {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "main loop stalled")
    }
}

/// Ready once the catalog is loaded and the consumer joined; not while draining.
async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    if s.health.draining.load(Ordering::Acquire) {
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    } else if s.health.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}

/// The schema learner's last window as JSON (`schema_report::SchemaReport`): 404 when schema
/// learning is disabled, 503 until the first window ends.
async fn schema(State(s): State<AppState>) -> axum::response::Response {
    if !s.health.schema.enabled {
        return (
            StatusCode::NOT_FOUND,
            "schema learning is disabled (schema.enabled: false)",
        )
            .into_response();
    }
    let Some(report) = s.health.schema.latest() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the first schema window has not ended",
        )
            .into_response();
    };
    match serde_json::to_vec(&*report) {
        Ok(body) => ([("content-type", "application/json")], body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
