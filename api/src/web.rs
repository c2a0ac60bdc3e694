//! The web page at `/`: one HTML file, a script, a stylesheet and two vendored libraries
//! (marked for markdown, DOMPurify to sanitise it), all compiled into the binary so the page
//! works without any CDN. A strict Content-Security-Policy allows scripts from this origin
//! only, so even markup that slipped through sanitising could not run.

use crate::ErrorCode;
use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// (name, content type, body)
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../assets/app.css"),
    ),
    (
        "marked.min.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/vendor/marked.min.js"),
    ),
    (
        "purify.min.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/vendor/purify.min.js"),
    ),
];

fn secured(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// `GET /`.
#[utoipa::path(get, path = "/", tag = "page",
    summary = "The web page (conversations, digests, live sidebar with source status)",
    responses((status = 200, description = "The page", content_type = "text/html", body = String)))]
pub(crate) async fn index() -> Response {
    secured(
        (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            include_str!("../assets/index.html"),
        )
            .into_response(),
    )
}

/// `GET /assets/{file}`.
pub(crate) async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, kind, body)) => secured(
            (
                [
                    (header::CONTENT_TYPE, *kind),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                *body,
            )
                .into_response(),
        ),
        None => crate::ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("no asset named {file:?}"),
        )
        .into_response(),
    }
}
