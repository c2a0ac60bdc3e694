//! `/healthz` (the process answers), `/readyz` (the index can take writes and answer reads).

use crate::{ApiError, AppState};
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::Json;
use std::sync::atomic::Ordering;

pub(crate) async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

pub(crate) async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let writer_ok = state.write.is_running();
    let stats = &state.stats;
    let database = match &state.store {
        Some(store) => {
            serde_json::json!({"backend": store.backend().as_str(), "ok": store.ping().await})
        }
        None => serde_json::json!({"backend": null, "ok": null}),
    };
    let body = serde_json::json!({
        "status": if writer_ok { "ready" } else { "not_ready" },
        "checks": {
            "text_index": { "ok": writer_ok, "posts": stats.posts.load(Ordering::Relaxed) },
            "vector_index": {
                "configured": state.search.has_vectors(),
                "caught_up": stats.vectors_ready.load(Ordering::Relaxed),
                "pending": stats.vectors_pending.load(Ordering::Relaxed),
            },
            "database": database,
        },
    });
    let status = if writer_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

pub(crate) async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!(
        "no route for {}; see README.md for the API",
        uri.path()
    ))
}
