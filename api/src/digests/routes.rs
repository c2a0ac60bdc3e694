//! `/v1/digests` handlers: parse the request, call the service, render the view.
//!
//! Definitions (CRUD), running one now (optionally `as_of` a past time), its stored runs, webhook
//! deliveries, and an Atom feed of its runs. A run is stored as `running` before it starts and
//! as `succeeded` (with its stories, or an explicit "no notable stories") or `failed` (with the
//! error) when it ends: a failed search or model call is never reported as a quiet window.

use super::service::{execute, load, store};
use super::types::{DigestBody, RunBody, RunsQuery};
use super::views::{digest_view, run_view};
use crate::invalid;
use crate::routes::{json_body, store_error};
use crate::store::records::{self, DigestRecord};
use crate::store::RunRow;
use crate::time::parse_time;
use crate::ErrorCode;
use crate::{ApiError, AppState};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde_json::{json, Value};

/// `POST /v1/digests`.
pub(crate) async fn create(
    State(state): State<AppState>,
    body: Result<Json<DigestBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let store = store(&state)?;
    let body = json_body(body)?;
    body.validate(&state)?;
    let spec = records::write(&DigestRecord::from(&body));
    let row = store
        .create_digest(body.name.trim(), &spec)
        .await
        .map_err(store_error)?;
    state.digests_changed.notify_one();
    Ok((StatusCode::CREATED, Json(digest_view(&row))).into_response())
}

/// `GET /v1/digests`.
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let rows = store(&state)?.digests().await.map_err(store_error)?;
    Ok(Json(json!({
        "object": "list",
        "data": rows.iter().map(digest_view).collect::<Vec<_>>(),
    })))
}

/// `GET /v1/digests/{id}`.
pub(crate) async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(digest_view(&load(store(&state)?, &id).await?)))
}

/// `PUT /v1/digests/{id}`: replaces the definition.
pub(crate) async fn replace(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<DigestBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let store = store(&state)?;
    let body = json_body(body)?;
    body.validate(&state)?;
    let spec = records::write(&DigestRecord::from(&body));
    let row = store
        .update_digest(&id, body.name.trim(), &spec)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("digest {id} does not exist")))?;
    state.digests_changed.notify_one();
    Ok(Json(digest_view(&row)))
}

/// `DELETE /v1/digests/{id}`.
pub(crate) async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if !store(&state)?
        .delete_digest(&id)
        .await
        .map_err(store_error)?
    {
        return Err(ApiError::not_found(format!("digest {id} does not exist")));
    }
    state.digests_changed.notify_one();
    Ok(Json(json!({"id": id, "object": "digest", "deleted": true})))
}

/// `GET /v1/digests/{id}/deliveries`: webhook deliveries, newest first (`dead` ones are the
/// dead letters, with the last status and error).
pub(crate) async fn deliveries(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let store = store(&state)?;
    load(store, &id).await?;
    let rows = store.deliveries(&id).await.map_err(store_error)?;
    Ok(Json(json!({
        "object": "list",
        "data": rows.iter().map(|d| json!({
            "id": d.id, "run_id": d.run_id, "url": d.url, "status": d.status,
            "attempts": d.attempts, "last_status": d.last_status, "last_error": d.last_error,
            "created_at": d.created_at, "updated_at": d.updated_at,
        })).collect::<Vec<_>>(),
    })))
}

/// `POST /v1/digests/{id}/run`: runs the digest now (or `as_of` a past time) and returns the
/// stored run (status `succeeded` or `failed`).
pub(crate) async fn run_now(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Option<Json<RunBody>>,
) -> Result<Response, ApiError> {
    let row = load(store(&state)?, &id).await?;
    let as_of = match body.and_then(|Json(b)| b.as_of) {
        Some(raw) => parse_time(&raw).map_err(|e| invalid(format!("as_of: {e}")))?,
        None => Utc::now(),
    };
    // In a tracked task of its own: a client that goes away does not cancel the run halfway
    // (which would leave it `running`), and shutdown waits for it.
    let task_state = state.clone();
    let run = state
        .tasks
        .spawn(async move { execute(&task_state, &row, "manual", as_of, None).await })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "a digest run task failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "internal error; see the server log",
            )
        })??
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "a manual run was not stored",
            )
        })?;
    Ok((StatusCode::CREATED, Json(run_view(&run))).into_response())
}

/// `GET /v1/digests/{id}/runs`: newest first.
pub(crate) async fn runs(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<RunsQuery>,
) -> Result<Json<Value>, ApiError> {
    let store = store(&state)?;
    load(store, &id).await?;
    let limit = q.limit.unwrap_or(20);
    if !(1..=200).contains(&limit) {
        return Err(invalid("limit must be between 1 and 200"));
    }
    let rows = store.runs(&id, limit).await.map_err(store_error)?;
    Ok(Json(json!({
        "object": "list",
        "data": rows.iter().map(run_view).collect::<Vec<_>>(),
    })))
}

/// `GET /v1/digests/{id}/runs/{run_id}`.
pub(crate) async fn run(
    State(state): State<AppState>,
    Path((id, run_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let store = store(&state)?;
    match store.run(&run_id).await.map_err(store_error)? {
        Some(r) if r.digest_id == id => Ok(Json(run_view(&r))),
        _ => Err(ApiError::not_found(format!(
            "run {run_id} of digest {id} does not exist"
        ))),
    }
}

/// `GET /v1/digests/{id}/feed.atom`: the latest finished runs as an Atom 1.0 feed.
pub(crate) async fn feed(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let store = store(&state)?;
    let row = load(store, &id).await?;
    let runs: Vec<RunRow> = store
        .runs(&id, 30)
        .await
        .map_err(store_error)?
        .into_iter()
        .filter(|r| r.status != "running")
        .collect();
    let body = super::feed::atom(&row, &runs)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, e))?;
    Ok((
        [(header::CONTENT_TYPE, "application/atom+xml; charset=utf-8")],
        body,
    )
        .into_response())
}
