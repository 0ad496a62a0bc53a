//! The one place where errors become HTTP answers. Every error body has one shape:
//! `{"code": "sold_out", "message": "the activity is sold out"}`, with a stable `code` for
//! programs and a `message` for people.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use lottery_activity::ParticipationError;
use lottery_app::AppError;
use serde::Serialize;
use tracing::error;
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `sold_out`, `quota_exhausted`, `invalid_request`.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    App(#[from] AppError),
    #[error("{0}")]
    BadRequest(String),
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
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::App(e) => match e {
                AppError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
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
                AppError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
                AppError::OutcomeUnknown => (StatusCode::SERVICE_UNAVAILABLE, "outcome_unknown"),
                AppError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            // Details of stored-data problems are for the logs, not for callers.
            error!(error = %self, "internal error");
            "internal error; it has been logged".to_owned()
        } else {
            self.to_string()
        };
        let mut response = (status, Json(ErrorBody { code, message })).into_response();
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
        }),
    )
        .into_response()
}
