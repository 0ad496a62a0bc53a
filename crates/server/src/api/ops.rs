//! Operations endpoints: liveness, readiness, metrics.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use super::dto::Health;
use crate::config::Mode;
use crate::state::AppState;

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Embedded => "embedded",
        Mode::Cluster => "cluster",
    }
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = Health)))]
pub async fn healthz(State(state): State<AppState>) -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok",
        mode: mode_name(state.mode),
        failing: Vec::new(),
    })
}

/// The database, the stock store and the broker are reachable.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let failing: Vec<String> = state
        .probe
        .check()
        .await
        .into_iter()
        .filter_map(|(name, problem)| problem.map(|p| format!("{name}: {p}")))
        .collect();
    let status = if failing.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Health {
        status: if failing.is_empty() {
            "ready"
        } else {
            "not_ready"
        },
        mode: mode_name(state.mode),
        failing,
    };
    (status, axum::Json(body))
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let gauges = state.gauges().await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(&gauges),
    )
}
