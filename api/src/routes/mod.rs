//! One module per route family.

pub(crate) mod chat;
pub(crate) mod health;
pub(crate) mod live;
pub(crate) mod posts;
pub(crate) mod search;

use crate::ErrorCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};

/// A Server-Sent Events response with a keep-alive comment every 15 s and proxy buffering off
/// (`X-Accel-Buffering: no`), so tokens reach the client as they are made.
pub(crate) fn sse_response<S>(events: S) -> Response
where
    S: futures::Stream<Item = Result<Event, std::convert::Infallible>> + Send + 'static,
{
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15)))
        .into_response();
    response.headers_mut().insert(
        "x-accel-buffering",
        axum::http::HeaderValue::from_static("no"),
    );
    response
}

/// The app database, or `503 store_unavailable` saying what this server therefore keeps none
/// of (`what`: "conversations", "digests").
pub(crate) fn app_store<'a>(
    state: &'a crate::AppState,
    what: &str,
) -> Result<&'a crate::store::Store, crate::ApiError> {
    state.store.as_ref().ok_or_else(|| {
        crate::ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            crate::error::ErrorCode::StoreUnavailable,
            format!("this server runs without an app database, so it keeps no {what}"),
        )
    })
}

/// A failed database call as `503 store_unavailable` (logged).
pub(crate) fn store_error(e: crate::store::StoreError) -> crate::ApiError {
    tracing::error!(error = %e, "app database");
    crate::ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        crate::error::ErrorCode::StoreUnavailable,
        format!("the app database failed: {e}"),
    )
}

/// A JSON body, or `400 invalid_json` (`413 payload_too_large` when over the limit).
pub(crate) fn json_body<T>(
    body: Result<axum::Json<T>, axum::extract::rejection::JsonRejection>,
) -> Result<T, crate::ApiError> {
    body.map(|axum::Json(b)| b).map_err(|e| {
        let status = e.status();
        if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            crate::ApiError::new(status, ErrorCode::PayloadTooLarge, e.body_text())
        } else {
            crate::ApiError::bad_request(ErrorCode::InvalidJson, e.body_text())
        }
    })
}

/// `{"object": "list", "data": [...]}`: every list the API returns.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct List<T> {
    /// `list`.
    object: &'static str,
    data: Vec<T>,
}

impl<T> List<T> {
    pub(crate) fn of(data: Vec<T>) -> List<T> {
        List {
            object: "list",
            data,
        }
    }
}

/// What a `DELETE` answers: the id and `deleted: true`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Deleted {
    id: String,
    /// The kind of thing deleted (absent for posts).
    #[serde(skip_serializing_if = "Option::is_none")]
    object: Option<&'static str>,
    deleted: bool,
}

impl Deleted {
    pub(crate) fn new(id: impl Into<String>, object: Option<&'static str>) -> Deleted {
        Deleted {
            id: id.into(),
            object,
            deleted: true,
        }
    }
}
