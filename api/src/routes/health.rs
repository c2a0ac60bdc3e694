//! `/healthz` (the process answers), `/readyz` (the index can take writes and answer reads).

use crate::{ApiError, AppState};
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::Json;
use std::sync::atomic::Ordering;

/// `GET /healthz`.
#[utoipa::path(get, path = "/healthz", tag = "health", summary = "Liveness",
    responses((status = 200, description = "`{\"status\": \"ok\"}`")))]
pub(crate) async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// `GET /readyz`.
#[utoipa::path(get, path = "/readyz", tag = "health",
    summary = "Readiness: index writer alive, vector backlog, database, live sources",
    responses(
        (status = 200, description = "`{status: ready|degraded, checks: {text_index, vector_index, database, sources}}`; `degraded`: serving, but a live source is not connected", body = Object),
        (status = 503, description = "`status: not_ready`: the index writer stopped", body = Object),
    ))]
pub(crate) async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let writer_ok = state.write.is_running();
    let stats = &state.stats;
    let database = match &state.store {
        Some(store) => {
            serde_json::json!({"backend": store.backend().as_str(), "ok": store.ping().await})
        }
        None => serde_json::json!({"backend": null, "ok": null}),
    };
    let sources: Vec<_> = state.sources.iter().map(|s| s.snapshot()).collect();
    let all_connected = sources.iter().all(|s| s.connected);
    let body = serde_json::json!({
        // "degraded": serving, but a live source is not connected (search still answers).
        "status": if !writer_ok { "not_ready" } else if all_connected { "ready" } else { "degraded" },
        "checks": {
            "text_index": { "ok": writer_ok, "posts": stats.posts.load(Ordering::Relaxed) },
            "vector_index": {
                "configured": state.search.has_vectors(),
                "caught_up": stats.vectors_ready.load(Ordering::Relaxed),
                "pending": stats.vectors_pending.load(Ordering::Relaxed),
            },
            "database": database,
            "sources": sources,
        },
    });
    let status = if writer_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// `GET /v1/sources`: each live source's state, lag, position and counters.
#[utoipa::path(get, path = "/v1/sources", tag = "live",
    summary = "Each live source's state, lag, position, last error, retry time and counters (Bluesky Jetstream, Mastodon, X, NATS)",
    responses((status = 200, description = "`{object: list, data: [{name, kind, state (connecting|connected|backoff|throttled|failed|stopped), connected, endpoint, since, last_error, last_error_at, retry_at, retry_in_secs, position, lag_secs, newest_event, backlog, committed_at, received, inserted, updated, duplicates, deleted, filtered, rejected, ignored, connects, disconnects}]}`", body = Object)))]
pub(crate) async fn sources(State(state): State<AppState>) -> Json<serde_json::Value> {
    let data: Vec<_> = state.sources.iter().map(|s| s.snapshot()).collect();
    Json(serde_json::json!({"object": "list", "data": data}))
}

pub(crate) async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!(
        "no route for {}; see README.md for the API",
        uri.path()
    ))
}
