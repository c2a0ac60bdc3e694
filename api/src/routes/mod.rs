//! One module per route family.

pub(crate) mod chat;
pub(crate) mod conversations;
pub(crate) mod digests;
pub(crate) mod health;
pub(crate) mod live;
pub(crate) mod posts;
pub(crate) mod search;

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
