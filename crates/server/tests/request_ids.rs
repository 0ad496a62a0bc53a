//! Every answer carries a request id; error bodies quote it, so a client's report finds the
//! server's log line.

mod common;

use common::{App, Mode};
use reqwest::{Method, StatusCode};

#[tokio::test]
async fn error_bodies_and_headers_carry_the_request_id() {
    let app = App::spawn(Mode::Embedded).await;
    let resp = app
        .raw(
            Method::GET,
            "/api/v1/no-such-thing",
            None,
            None,
            &[("x-request-id", "client-chosen-42")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        resp.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("client-chosen-42")
    );
    let body: serde_json::Value = resp.json().await.expect("json body");
    assert_eq!(body["code"], "not_found");
    assert_eq!(body["request_id"], "client-chosen-42");

    // Without one (or with one that is not a sane token), the server makes one up.
    let resp = app
        .raw(
            Method::GET,
            "/api/v1/activities/1",
            None,
            None,
            &[("x-request-id", "no spaces allowed")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let header = resp
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("generated id");
    assert_ne!(header, "no spaces allowed");
    let body: serde_json::Value = resp.json().await.expect("json body");
    assert_eq!(body["request_id"], header.as_str());

    // Successful answers carry it in the header too.
    let resp = app.raw(Method::GET, "/healthz", None, None, &[]).await;
    assert!(resp.status().is_success());
    assert!(resp.headers().contains_key("x-request-id"));
}
