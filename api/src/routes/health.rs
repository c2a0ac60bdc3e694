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
        (status = 200, description = "`{status: ready|degraded, replica, checks: {text_index, vector_index: {configured, backend, ok, error, writer, caught_up, pending, interim (posts searched by an interim vector until the embedder replaces it), interim_fit: {pairs, refits, cosine} (what the interim embedder learned from the embedder's vectors; null without one)}, database, sources}}`; `degraded`: serving, but a live source is not connected or the vector store does not answer (search falls back to BM25)", body = Object),
        (status = 503, description = "`status: not_ready`: the index writer stopped; `catching_up`: a live source (NATS) still holds posts that waited for this replica since it started", body = Object),
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
    let search = state.search.clone();
    let vectors = tokio::task::spawn_blocking(move || {
        search
            .vector_health()
            .map(|(backend, health)| (backend, health.err().map(|e| e.to_string())))
    })
    .await
    .ok()
    .flatten();
    let vectors_ok = vectors.as_ref().is_none_or(|(_, error)| error.is_none());
    let sources: Vec<_> = state.sources.iter().map(|s| s.snapshot()).collect();
    let all_connected = sources.iter().all(|s| s.connected) && vectors_ok;
    // A replica that started late reads what it missed before it takes traffic.
    let catching_up = sources.iter().any(|s| s.connected && !s.caught_up);
    let body = serde_json::json!({
        // "degraded": serving, but a live source is not connected or the vector store does not
        // answer (search still answers, by BM25 alone).
        "status": if !writer_ok { "not_ready" } else if catching_up { "catching_up" } else if all_connected { "ready" } else { "degraded" },
        "replica": state.replica.name,
        "checks": {
            "text_index": { "ok": writer_ok, "posts": stats.posts.load(Ordering::Relaxed) },
            "vector_index": {
                "configured": state.search.has_vectors(),
                "backend": vectors.as_ref().map(|(backend, _)| *backend),
                // Replicas sharing a vector store: whether this one writes the vectors.
                "writer": state.vector_writer.as_ref().map_or(state.search.has_vectors(), |r| r.is_writer()),
                "ok": vectors.as_ref().map(|(_, error)| error.is_none()),
                "error": vectors.as_ref().and_then(|(_, error)| error.clone()),
                "caught_up": stats.vectors_ready.load(Ordering::Relaxed),
                "pending": stats.vectors_pending.load(Ordering::Relaxed),
                // Posts searchable by an interim vector, waiting for the main embedder's.
                "interim": stats.vectors_interim.load(Ordering::Relaxed),
                // What the interim embedder has learned from the main one's vectors.
                "interim_fit": stats.interim_fit().map(|f| serde_json::json!({
                    "pairs": f.pairs,
                    "refits": f.refits,
                    "cosine": f.cosine,
                })),
            },
            "database": database,
            "sources": sources,
        },
    });
    let status = if writer_ok && !catching_up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// `GET /v1/sources`: each live source's state, lag, position and counters.
#[utoipa::path(get, path = "/v1/sources", tag = "live",
    summary = "Each live source's state, lag, position, last error, retry time and counters (Bluesky Jetstream, Mastodon, X, NATS)",
    responses((status = 200, description = "`{object: list, replica (this process among replicas), vector_writer (whether it writes the shared vectors; null when not shared), data: [{name, kind, state (connecting|connected|backoff|throttled|failed|stopped), connected, endpoint, since, last_error, last_error_at, retry_at, retry_in_secs, position, lag_secs, newest_event, backlog, caught_up, committed_at, received, inserted, updated, duplicates, deleted, filtered, rejected, ignored, connects, disconnects}]}`", body = Object)))]
pub(crate) async fn sources(State(state): State<AppState>) -> Json<serde_json::Value> {
    let data: Vec<_> = state.sources.iter().map(|s| s.snapshot()).collect();
    let vector_writer = state.vector_writer.as_ref().map(|r| r.is_writer());
    Json(
        serde_json::json!({"object": "list", "replica": state.replica.name, "vector_writer": vector_writer, "data": data}),
    )
}

pub(crate) async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!(
        "no route for {}; see README.md for the API",
        uri.path()
    ))
}
