//! A request id on every request: taken from the client's `x-request-id` when it is a sane
//! token, generated otherwise, returned in the same header and in every error body, and
//! attached to the log lines of the request's failures, so a client's report finds its log.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use rand::Rng;

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being served, if any.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

fn accepted(value: &HeaderValue) -> Option<String> {
    let s = value.to_str().ok()?;
    let sane = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    sane.then(|| s.to_owned())
}

use tracing::Instrument;

fn generated() -> String {
    format!("{:016x}", rand::rng().random::<u64>())
}

/// Middleware: runs the rest of the stack with the request's id in scope.
pub async fn with_request_id(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&HEADER)
        .and_then(accepted)
        .unwrap_or_else(generated);
    // Every log line of the request, down to the draw it starts, carries its id.
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path()
    );
    let mut response = REQUEST_ID
        .scope(id.clone(), next.run(request).instrument(span))
        .await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sane_ids_are_taken_from_clients() {
        let ok = HeaderValue::from_static("abc-123_x.y");
        assert_eq!(accepted(&ok).as_deref(), Some("abc-123_x.y"));
        for bad in ["", "has space", "semi;colon", &"x".repeat(65)] {
            let v = HeaderValue::from_str(bad).expect("header value");
            assert_eq!(accepted(&v), None, "{bad:?}");
        }
        assert_eq!(generated().len(), 16);
    }
}
