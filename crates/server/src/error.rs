//! The one place where errors become HTTP answers. Every error body has one shape:
//! `{"code": "sold_out", "message": "the activity is sold out"}`, with a stable `code` for
//! programs and a `message` for people.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use lottery_activity::ParticipationError;
use lottery_app::{AppError, Failure, LogGate};
use serde::Serialize;
use tracing::{error, warn};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `sold_out`, `quota_exhausted`, `invalid_request`.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// The request's id (also in the `x-request-id` header): quote it when reporting a
    /// problem; the logs carry it too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    App(#[from] AppError),
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed JSON whose content is refused (a field missing, unknown or invalid).
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("too many draws; slow down")]
    RateLimited,
    #[error("the request body is too large")]
    PayloadTooLarge,
}

impl ApiError {
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            Self::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::App(e) => match e {
                AppError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
                AppError::BadAddress(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
                AppError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
                AppError::Participation(p) => match p {
                    ParticipationError::NotOpen { .. } => (StatusCode::CONFLICT, "not_open"),
                    ParticipationError::NotStarted { .. } => (StatusCode::CONFLICT, "not_started"),
                    ParticipationError::Ended { .. } => (StatusCode::GONE, "ended"),
                    ParticipationError::SoldOut => (StatusCode::CONFLICT, "sold_out"),
                    ParticipationError::QuotaExhausted { .. } => {
                        (StatusCode::CONFLICT, "quota_exhausted")
                    }
                },
                AppError::Transition(_) => (StatusCode::CONFLICT, "illegal_state_action"),
                AppError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
                AppError::Unavailable(_) | AppError::Stale => {
                    (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
                }
                AppError::OutcomeUnknown => (StatusCode::SERVICE_UNAVAILABLE, "outcome_unknown"),
                AppError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            },
        }
    }
}

impl ApiError {
    /// The message for the client. Backend failures are described in the client's terms
    /// (the same whichever database or store is behind them); their details go to the log
    /// under the request id.
    fn client_message(&self) -> String {
        let request = crate::request_id::current().unwrap_or_default();
        match self {
            Self::App(AppError::Internal(_)) => {
                error!(request_id = %request, error = %lottery_domain::Chain(self), "internal error");
                "internal error; it has been logged".to_owned()
            }
            Self::App(AppError::Unavailable(_)) => {
                // A dependency that is down fails every request alike: one line a second.
                static UNAVAILABLE: LogGate = LogGate::new(std::time::Duration::from_secs(1));
                let held_back = match UNAVAILABLE.failed() {
                    Failure::Started => Some(0),
                    Failure::Continuing { held_back } => Some(held_back),
                    Failure::Quiet => None,
                };
                if let Some(held_back) = held_back {
                    warn!(request_id = %request, error = %lottery_domain::Chain(self), held_back,
                        "request failed: a backing service is unavailable");
                }
                "a service the platform depends on is unavailable; retry later".to_owned()
            }
            other => other.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let mut response = error_response(status, code, self.client_message());
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}

/// Shorthand for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

/// An error answer built outside handlers (middleware, fallbacks).
pub fn error_response(
    status: StatusCode,
    code: &'static str,
    message: impl Into<String>,
) -> Response {
    (
        status,
        Json(ErrorBody {
            code,
            message: message.into(),
            request_id: crate::request_id::current(),
        }),
    )
        .into_response()
}
