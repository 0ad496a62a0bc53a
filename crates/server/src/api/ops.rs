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
        degraded: Vec::new(),
    })
}

/// Whether this instance can do its role's work now: an API instance needs the databases,
/// the stock store and a worker id lease; a worker also needs the broker. Every check is
/// bounded in time, so a stalled dependency answers 503 rather than hanging the probe.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let (mut failing, mut degraded) = (Vec::new(), Vec::new());
    for d in state.probe.check().await {
        let Some(problem) = d.problem else { continue };
        let line = format!("{}: {problem}", d.name);
        if d.required {
            failing.push(line);
        } else {
            degraded.push(line);
        }
    }
    let ready = failing.is_empty();
    let body = Health {
        status: if ready { "ready" } else { "not_ready" },
        mode: mode_name(state.mode),
        failing,
        degraded,
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body))
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let gauges = state.gauges().await;
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(&gauges),
    )
}
