//! The HTTP API: routes, middleware and the OpenAPI document.

pub mod admin;
pub mod dto;
pub mod extract;
pub mod ops;
pub mod user;

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::routing::{get, post, put};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::config::HttpConfig;
use crate::error::error_response;
use crate::state::AppState;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "Lottery", description = "Prize-draw campaigns: admins deploy and review activities, users draw."),
    paths(
        admin::deploy, admin::list, admin::detail, admin::revise, admin::act, admin::create_tree, admin::list_trees,
        admin::get_tree, admin::simulate, admin::orders, user::activity, user::draw, user::draw_by_rules,
        user::my_orders, user::give_shipping, user::my_activity,
        ops::healthz, ops::readyz, ops::metrics
    ),
    modifiers(&BearerAuth),
    tags((name = "admin", description = "Needs an admin token"), (name = "user", description = "Needs a user token"),
        (name = "ops", description = "Operations"))
)]
pub struct ApiDoc;

/// The whole HTTP application.
pub fn router(state: AppState, http: &HttpConfig) -> Router {
    let api = Router::new()
        .route(
            "/api/v1/admin/activities",
            post(admin::deploy).get(admin::list),
        )
        .route(
            "/api/v1/admin/activities/{id}",
            get(admin::detail).put(admin::revise),
        )
        .route(
            "/api/v1/admin/activities/{id}/actions/{action}",
            post(admin::act),
        )
        .route(
            "/api/v1/admin/rule-trees",
            post(admin::create_tree).get(admin::list_trees),
        )
        .route("/api/v1/admin/rule-trees/{id}", get(admin::get_tree))
        .route("/api/v1/admin/strategies/simulate", post(admin::simulate))
        .route("/api/v1/admin/orders", get(admin::orders))
        .route("/api/v1/activities/{id}", get(user::activity))
        .route("/api/v1/activities/{id}/draw", post(user::draw))
        .route("/api/v1/draw", post(user::draw_by_rules))
        .route("/api/v1/me/orders", get(user::my_orders))
        .route(
            "/api/v1/me/orders/{order_id}/shipping",
            put(user::give_shipping),
        )
        .route("/api/v1/me/activities/{id}", get(user::my_activity))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .merge(crate::web::routes());
    let api = json_fallbacks(api).with_state(state);

    let cors = cors(http);

    Router::new()
        .merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
        .merge(api)
        .layer(TraceLayer::new_for_http())
        .layer(cors)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_millis(http.request_timeout_ms),
        ))
        .layer(axum::extract::DefaultBodyLimit::max(http.body_limit_bytes))
        .layer(axum::middleware::map_response(json_errors))
        .layer(axum::middleware::from_fn(
            crate::request_id::with_request_id,
        ))
}

/// Unknown paths and methods answer in the API's JSON error shape.
fn json_fallbacks(routes: Router<AppState>) -> Router<AppState> {
    routes
        .fallback(|| async {
            error_response(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        })
        .method_not_allowed_fallback(|| async {
            error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this endpoint",
            )
        })
}

/// Cross-origin access for the configured origins only (none: same origin only).
fn cors(http: &HttpConfig) -> CorsLayer {
    if http.cors_origins.is_empty() {
        return CorsLayer::new();
    }
    let origins: Vec<HeaderValue> = http
        .cors_origins
        .iter()
        .filter_map(|o| o.parse().ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::PUT])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("idempotency-key"),
        ])
}

/// What a worker serves: health, readiness and metrics only (it runs no API).
pub fn ops_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .fallback(|| async {
            error_response(
                StatusCode::NOT_FOUND,
                "not_found",
                "a worker serves only /healthz, /readyz and /metrics",
            )
        })
        .with_state(state)
        .layer(axum::middleware::map_response(json_errors))
        .layer(axum::middleware::from_fn(
            crate::request_id::with_request_id,
        ))
}

/// Gives every error answer the one JSON shape, including those produced below the
/// handlers (body limit, timeout, unsupported media type), which axum writes as plain text.
async fn json_errors(response: axum::response::Response) -> axum::response::Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => "timeout",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        s if s.is_client_error() => "invalid_request",
        _ => "internal",
    };
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "the request body is too large".to_owned(),
        StatusCode::SERVICE_UNAVAILABLE => {
            "the request took too long or the service is overloaded; retry later".to_owned()
        }
        s => s.canonical_reason().unwrap_or("error").to_lowercase(),
    };
    error_response(status, code, message)
}

/// The demo campaign of `lottery seed-demo`: a week long, three prizes and a consolation.
pub fn demo_command() -> lottery_app::DeployCommand {
    use lottery_app::{AwardSpec, DeployCommand, StrategySpec};
    use lottery_award::AwardKind;
    let now = chrono::Utc::now();
    let award = |kind: AwardKind, name: &str, content: &str, count: u32, rate: &str| AwardSpec {
        award_id: None,
        kind,
        name: name.into(),
        content: content.into(),
        count,
        rate: rate.parse().unwrap_or_default(),
    };
    DeployCommand {
        activity_id: None,
        strategy_id: None,
        name: "Demo prize draw".into(),
        description: "A demo campaign: a phone, coupons, redeem codes and a thank-you note.".into(),
        begin_time: now - chrono::Duration::minutes(1),
        end_time: now + chrono::Duration::days(7),
        stock: 10_000,
        take_limit: 3,
        strategy: StrategySpec {
            mode: lottery_strategy::DrawMode::Single,
            fallback_award_id: None,
            awards: vec![
                award(AwardKind::PHYSICAL, "Phone", "SKU-PHONE-1", 1, "0.0005"),
                award(AwardKind::COUPON, "10% off", "TEN-OFF", 500, "0.1"),
                award(
                    AwardKind::REDEEM_CODE,
                    "Streaming month",
                    "STREAM",
                    200,
                    "0.05",
                ),
                award(
                    AwardKind::DESCRIPTION,
                    "Thank you",
                    "Thanks for taking part!",
                    100_000,
                    "0.3",
                ),
            ],
        },
    }
}
