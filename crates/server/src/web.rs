//! The admin console (`/console`) and the players' page (`/play/{activity_id}`): static pages
//! built from `web/` and embedded in the binary, so serving them needs no other server and no
//! files at run time. They talk to the REST API only, from the same origin.

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::error::error_response;

/// The built pages: `npm run build` in `web/` writes them to `crates/server/assets/`, where
/// they are committed (so a build needs nothing but Rust).
#[derive(rust_embed::Embed)]
#[folder = "assets/"]
struct Assets;

/// What the pages may load and where they may connect: their own origin only. No inline
/// script or style, no framing (the console must not be clickjacked), and no referrer (a
/// page address never leaks elsewhere).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// The routes of the two pages and their assets.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/console", get(console))
        .route("/console/", get(console))
        .route("/console/{*path}", get(console))
        .route("/play/{activity_id}", get(play))
        .route("/assets/{*path}", get(asset))
}

async fn console(headers: HeaderMap) -> Response {
    page("console.html", &headers)
}

async fn play(Path(_activity_id): Path<String>, headers: HeaderMap) -> Response {
    // The page reads the id from its address and asks the API; an unknown id is the API's
    // 404, shown on the page.
    page("play.html", &headers)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&format!("assets/{path}"), &headers, false)
}

fn page(name: &str, headers: &HeaderMap) -> Response {
    serve(name, headers, true)
}

fn serve(path: &str, headers: &HeaderMap, html: bool) -> Response {
    let Some(file) = Assets::get(path) else {
        return error_response(StatusCode::NOT_FOUND, "not_found", "no such file");
    };
    let etag = etag(&file.metadata.sha256_hash());
    // Assets carry their content hash in their names and never change; pages are checked
    // again on every visit so a new release is picked up at once.
    let cache = if html {
        "no-cache"
    } else {
        "public, max-age=31536000, immutable"
    };
    let mut response = if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = Response::new(Body::from(file.data.into_owned()));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(content_type(path)),
        );
        r
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if html {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    response
}

fn etag(hash: &[u8; 32]) -> String {
    let hex: String = hash[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("json" | "map") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_pages_are_embedded_and_reference_embedded_assets() {
        for page in ["console.html", "play.html"] {
            let file = Assets::get(page).unwrap_or_else(|| panic!("{page} is embedded"));
            let html = String::from_utf8_lossy(&file.data).into_owned();
            let mut referenced = 0;
            for part in html.split("\"/assets/").skip(1) {
                let name = part.split('"').next().unwrap_or_default();
                assert!(
                    Assets::get(&format!("assets/{name}")).is_some(),
                    "{page} refers to /assets/{name}, which is not embedded"
                );
                referenced += 1;
            }
            assert!(referenced >= 2, "{page} loads its script and style");
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("a/b.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("x.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("console.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("blob"), "application/octet-stream");
    }
}
