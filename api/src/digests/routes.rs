//! `/v1/digests` handlers: parse the request, call the service, render the view.
//!
//! Definitions (CRUD), running one now (optionally `as_of` a past time), its stored runs, webhook
//! deliveries, and an Atom feed of its runs. A run is stored as `running` before it starts and
//! as `succeeded` (with its stories, or an explicit "no notable stories") or `failed` (with the
//! error) when it ends: a failed search or model call is never reported as a quiet window.

use super::service::{execute, load, store};
use super::types::{DigestBody, RunBody, RunsQuery};
use super::views::{delivery_view, digest_view, run_view, DeliveryView, DigestView, RunView};
use crate::invalid;
use crate::routes::{json_body, store_error, Deleted, List};
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

/// `POST /v1/digests`.
#[utoipa::path(post, path = "/v1/digests", tag = "digests",
    summary = "Create a digest (scope: admin)",
    description = "A name, a scope {query, handles, hashtags, sources, langs}, a window, a persona, max_stories, an optional schedule and webhooks.",
    request_body = DigestBody,
    responses((status = 201, description = "The new digest", body = DigestView)))]
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
#[utoipa::path(get, path = "/v1/digests", tag = "digests", summary = "Digest definitions",
    responses((status = 200, description = "Every digest", body = List<DigestView>)))]
pub(crate) async fn list(
    State(state): State<AppState>,
) -> Result<Json<List<DigestView>>, ApiError> {
    let rows = store(&state)?.digests().await.map_err(store_error)?;
    Ok(Json(List::of(rows.iter().map(digest_view).collect())))
}

/// `GET /v1/digests/{id}`.
#[utoipa::path(get, path = "/v1/digests/{id}", tag = "digests", summary = "One digest",
    params(("id" = String, Path)),
    responses((status = 200, description = "The digest", body = DigestView)))]
pub(crate) async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DigestView>, ApiError> {
    Ok(Json(digest_view(&load(store(&state)?, &id).await?)))
}

/// `PUT /v1/digests/{id}`: replaces the definition.
#[utoipa::path(put, path = "/v1/digests/{id}", tag = "digests",
    summary = "Replace a digest's definition (scope: admin)",
    params(("id" = String, Path)), request_body = DigestBody,
    responses((status = 200, description = "The digest as it now is", body = DigestView)))]
pub(crate) async fn replace(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<DigestBody>, JsonRejection>,
) -> Result<Json<DigestView>, ApiError> {
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
#[utoipa::path(delete, path = "/v1/digests/{id}", tag = "digests",
    summary = "Delete a digest and its runs (scope: admin)",
    params(("id" = String, Path)),
    responses((status = 200, description = "Deleted", body = Deleted)))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Deleted>, ApiError> {
    if !store(&state)?
        .delete_digest(&id)
        .await
        .map_err(store_error)?
    {
        return Err(ApiError::not_found(format!("digest {id} does not exist")));
    }
    state.digests_changed.notify_one();
    Ok(Json(Deleted::new(id, Some("digest"))))
}

/// `GET /v1/digests/{id}/deliveries`: webhook deliveries, newest first (`dead` ones are the
/// dead letters, with the last status and error).
#[utoipa::path(get, path = "/v1/digests/{id}/deliveries", tag = "digests",
    summary = "Webhook deliveries, newest first",
    description = "Delivered, or dead (the dead letters) with attempts, last status and error.",
    params(("id" = String, Path)),
    responses((status = 200, description = "The deliveries", body = List<DeliveryView>)))]
pub(crate) async fn deliveries(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<List<DeliveryView>>, ApiError> {
    let store = store(&state)?;
    load(store, &id).await?;
    let rows = store.deliveries(&id).await.map_err(store_error)?;
    Ok(Json(List::of(rows.iter().map(delivery_view).collect())))
}

/// `POST /v1/digests/{id}/run`: runs the digest now (or `as_of` a past time) and returns the
/// stored run (status `succeeded` or `failed`).
#[utoipa::path(post, path = "/v1/digests/{id}/run", tag = "digests",
    summary = "Run now, or `as_of` a past time (scope: admin)",
    description = "Returns the stored run: `succeeded` with stories or an explicit quiet window, or `failed` with the error.",
    params(("id" = String, Path)), request_body(content = Option<RunBody>),
    responses((status = 201, description = "The stored run", body = RunView)))]
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
#[utoipa::path(get, path = "/v1/digests/{id}/runs", tag = "digests",
    summary = "A digest's runs, newest first", params(("id" = String, Path), RunsQuery),
    responses((status = 200, description = "The runs", body = List<RunView>)))]
pub(crate) async fn runs(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<RunsQuery>,
) -> Result<Json<List<RunView>>, ApiError> {
    let store = store(&state)?;
    load(store, &id).await?;
    let limit = q.limit.unwrap_or(20);
    if !(1..=200).contains(&limit) {
        return Err(invalid("limit must be between 1 and 200"));
    }
    let rows = store.runs(&id, limit).await.map_err(store_error)?;
    Ok(Json(List::of(rows.iter().map(run_view).collect())))
}

/// `GET /v1/digests/{id}/runs/{run_id}`.
#[utoipa::path(get, path = "/v1/digests/{id}/runs/{run_id}", tag = "digests",
    summary = "One run: status, output (stories with headline, summary, citations), markdown, error",
    params(("id" = String, Path), ("run_id" = String, Path)),
    responses((status = 200, description = "The run", body = RunView)))]
pub(crate) async fn run(
    State(state): State<AppState>,
    Path((id, run_id)): Path<(String, String)>,
) -> Result<Json<RunView>, ApiError> {
    let store = store(&state)?;
    match store.run(&run_id).await.map_err(store_error)? {
        Some(r) if r.digest_id == id => Ok(Json(run_view(&r))),
        _ => Err(ApiError::not_found(format!(
            "run {run_id} of digest {id} does not exist"
        ))),
    }
}

/// `GET /v1/digests/{id}/feed.atom`: the latest finished runs as an Atom 1.0 feed.
#[utoipa::path(get, path = "/v1/digests/{id}/feed.atom", tag = "digests",
    summary = "Atom 1.0 feed of the digest's finished runs", params(("id" = String, Path)),
    responses((status = 200, description = "The feed", content_type = "application/atom+xml", body = String)))]
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
