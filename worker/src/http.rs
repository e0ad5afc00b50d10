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
        .route("/schema/windows", get(schema_windows))
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
    if let Some(refused) = schema_refused(&s) {
        return refused;
    }
    json_body(&s.health.schema.latest().as_deref())
}

/// The last windows the board keeps (`schema_report::RECENT`), oldest first, as a JSON array
/// of `SchemaReport`: what a collector polling less often than once a window reads. 404 and
/// 503 as for `/schema`.
async fn schema_windows(State(s): State<AppState>) -> axum::response::Response {
    if let Some(refused) = schema_refused(&s) {
        return refused;
    }
    let recent = s.health.schema.recent();
    let reports: Vec<&crate::schema_report::SchemaReport> = recent.iter().map(|r| &**r).collect();
    json_body(&reports)
}

/// Why the schema cannot be served: learning disabled (404) or no window ended yet (503).
fn schema_refused(s: &AppState) -> Option<axum::response::Response> {
    if !s.health.schema.enabled {
        return Some(
            (
                StatusCode::NOT_FOUND,
                "schema learning is disabled (schema.enabled: false)",
            )
                .into_response(),
        );
    }
    s.health.schema.latest().is_none().then(|| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the first schema window has not ended",
        )
            .into_response()
    })
}

fn json_body(value: &impl serde::Serialize) -> axum::response::Response {
    match serde_json::to_vec(value) {
        Ok(body) => ([("content-type", "application/json")], body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
