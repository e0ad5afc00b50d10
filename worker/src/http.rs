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
/// of `SchemaReport`: what a collector polling less often than once a window reads. With
/// `?endAfterMs=T`, only the windows that ended after `T` (what a collector has not closed
/// yet). 404 and 503 as for `/schema`; 400 for another query.
async fn schema_windows(
    State(s): State<AppState>,
    uri: axum::http::Uri,
) -> axum::response::Response {
    if let Some(refused) = schema_refused(&s) {
        return refused;
    }
    let after = match end_after(uri.query()) {
        Ok(a) => a,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    let recent = s.health.schema.recent();
    let reports: Vec<&crate::schema_report::SchemaReport> = recent
        .iter()
        .map(|r| &**r)
        .filter(|r| after.is_none_or(|t| r.window.end_ms > t))
        .collect();
    json_body(&reports)
}

/// The `endAfterMs` of a `/schema/windows` query.
fn end_after(query: Option<&str>) -> Result<Option<i64>, String> {
    let Some(q) = query.filter(|q| !q.is_empty()) else {
        return Ok(None);
    };
    match q.split_once('=') {
        Some(("endAfterMs", v)) => v
            .parse()
            .map(Some)
            .map_err(|_| format!("endAfterMs={v}: not a whole number of milliseconds")),
        _ => Err(format!(
            "{q}: the only query is endAfterMs=<ms since the epoch>"
        )),
    }
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

#[cfg(test)]
mod tests {
    use super::end_after;

    #[test]
    fn the_windows_query_is_end_after_ms_or_nothing() {
        assert_eq!(end_after(None), Ok(None));
        assert_eq!(end_after(Some("")), Ok(None));
        assert_eq!(
            end_after(Some("endAfterMs=1764590400000")),
            Ok(Some(1_764_590_400_000))
        );
        assert!(
            end_after(Some("endAfterMs=soon"))
                .unwrap_err()
                .contains("endAfterMs=soon")
        );
        assert!(end_after(Some("since=1")).is_err());
    }
}
