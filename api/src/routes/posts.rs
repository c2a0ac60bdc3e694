//! `POST /v1/posts` (JSON array, one object, or NDJSON; per-item results; idempotent by id),
//! `GET /v1/posts/{id}`, `DELETE /v1/posts/{id}`.
//!
//! Durability contract: the response to a push is sent only after the commit that holds its
//! posts, so every item reported `inserted`, `updated` or `duplicate` is durable and searchable
//! by BM25 when the client reads it (`"durable": true`). Vectors follow asynchronously.

use crate::error::{body_error, ErrorBody};
use crate::routes::search::PostDto;
use crate::routes::Deleted;
use crate::ErrorCode;
use crate::{ApiError, AppState};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use chrono::Utc;
use serde::Serialize;
use tidings_index::{PostId, UpsertOutcome};
use tidings_ingest::record::{self, Loose, Record, TopLevel};
use tidings_ingest::validate::validate_record;
use tidings_ingest::Rejection;

/// Why an item was rejected.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = PushItemError)]
struct ItemError {
    /// A stable rejection code (`missing_field`, `invalid_field`, `too_long`, ...).
    code: &'static str,
    /// The field at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'static str>,
    message: String,
}

/// One item's result, by its index in the request.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = PushItem)]
struct ItemResult {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    /// `inserted`, `updated`, `duplicate` or `rejected`.
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ItemError>,
}

/// A push's counts and per-item results.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct PushResponse {
    /// Whether any item was committed (durable and searchable by BM25).
    durable: bool,
    inserted: usize,
    updated: usize,
    duplicates: usize,
    rejected: usize,
    results: Vec<ItemResult>,
}

/// Splits a body into records: NDJSON by content type, else a JSON array or object (falling back
/// to NDJSON when the body is several JSON lines).
fn records<'a>(
    headers: &HeaderMap,
    body: &'a [u8],
) -> Result<Vec<Result<Record<'a>, Rejection>>, ApiError> {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let text = std::str::from_utf8(body).map_err(|e| {
        ApiError::bad_request(ErrorCode::InvalidBody, format!("body is not UTF-8: {e}"))
    })?;
    // Read straight into records (no `serde_json::Value` tree); strings borrow from the body.
    let ndjson = |text: &'a str| {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| match record::parse(l) {
                Ok(TopLevel::Record(r)) => Ok(r),
                Ok(TopLevel::NotAnObject) => Err(Rejection::not_an_object()),
                Err(e) => Err(Rejection::malformed(format!("not valid JSON: {e}"))),
            })
            .collect::<Vec<_>>()
    };
    if content_type.contains("ndjson")
        || content_type.contains("jsonl")
        || content_type.contains("json-seq")
    {
        return Ok(ndjson(text));
    }
    let one_of = |item: Loose<'a>| Record::from_loose(item).ok_or_else(Rejection::not_an_object);
    match serde_json::from_str::<Loose<'a>>(text) {
        Ok(Loose::List(items)) => Ok(items.into_iter().map(one_of).collect()),
        Ok(item @ Loose::Object(_)) => Ok(vec![one_of(item)]),
        Ok(_) => Err(ApiError::bad_request(
            ErrorCode::InvalidBody,
            "body must be a JSON array of posts, one post object, or NDJSON",
        )),
        Err(_) if text.trim().lines().count() > 1 => Ok(ndjson(text)),
        Err(e) => Err(ApiError::bad_request(
            ErrorCode::InvalidJson,
            format!("body is not valid JSON: {e}"),
        )),
    }
}

/// `POST /v1/posts`.
#[utoipa::path(post, path = "/v1/posts", tag = "posts",
    summary = "Push posts (JSON array, one object, or NDJSON); answered after the commit (scope: ingest)",
    request_body(content(
        (Vec<crate::openapi::PostInput> = "application/json"),
        (crate::openapi::PostInput = "application/x-ndjson"),
    ), description = "A JSON array of posts, one post, or NDJSON (one post per line)"),
    responses(
        (status = 200, description = "Per-item results; posts reported `inserted`, `updated` or `duplicate` are durable and searchable", body = PushResponse),
        (status = 413, description = "Body or post count over the limit (`payload_too_large`, `too_many_posts`)", body = ErrorBody),
        (status = 422, description = "Every item was rejected (each result says why)", body = PushResponse),
    ))]
pub(crate) async fn push(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<PushResponse>), ApiError> {
    let body = body.map_err(|e| body_error(e, state.config.max_body_bytes))?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            ErrorCode::EmptyBody,
            "send a JSON array of posts, one post object, or NDJSON",
        ));
    }
    let items = records(&headers, &body)?;
    let max = state.config.max_posts_per_request;
    if items.len() > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::TooManyPosts,
            format!("{} posts in one request; the limit is {max}", items.len()),
        ));
    }
    let now = Utc::now();
    let mut results: Vec<ItemResult> = Vec::with_capacity(items.len());
    let mut posts = Vec::new();
    let mut post_slots = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let outcome =
            item.and_then(|record| validate_record(record, "push", &state.config.validation, now));
        match outcome {
            Ok(post) => {
                results.push(ItemResult {
                    index,
                    id: Some(post.id.to_string()),
                    status: "pending",
                    error: None,
                });
                post_slots.push(index);
                posts.push(post);
            }
            Err(r) => results.push(ItemResult {
                index,
                id: None,
                status: "rejected",
                error: Some(ItemError {
                    code: r.code.as_str(),
                    field: r.field,
                    message: r.message,
                }),
            }),
        }
    }
    let rejected = results.len() - posts.len();
    let (mut inserted, mut updated, mut duplicates) = (0, 0, 0);
    if !posts.is_empty() {
        let outcomes = state.write.upsert(posts, None).await?;
        for (slot, outcome) in post_slots.into_iter().zip(outcomes) {
            results[slot].status = match outcome {
                UpsertOutcome::Inserted => {
                    inserted += 1;
                    "inserted"
                }
                UpsertOutcome::Updated => {
                    updated += 1;
                    "updated"
                }
                UpsertOutcome::Duplicate => {
                    duplicates += 1;
                    "duplicate"
                }
            };
        }
    }
    let status = if rejected > 0 && rejected == results.len() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(PushResponse {
            durable: inserted + updated + duplicates > 0,
            inserted,
            updated,
            duplicates,
            rejected,
            results,
        }),
    ))
}

fn parse_id(raw: &str) -> Result<PostId, ApiError> {
    PostId::parse(raw).map_err(|e| ApiError::bad_request(ErrorCode::InvalidId, e))
}

/// `GET /v1/posts/{id}`.
#[utoipa::path(get, path = "/v1/posts/{id}", tag = "posts", summary = "One post",
    params(("id" = String, Path)),
    responses((status = 200, description = "The post", body = PostDto)))]
pub(crate) async fn fetch(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<PostDto>, ApiError> {
    let id = parse_id(&id)?;
    let search = state.search.clone();
    let lookup = id.clone();
    let post = tokio::task::spawn_blocking(move || search.get(&lookup))
        .await
        .map_err(|e| {
            ApiError::from(tidings_index::IndexError::Internal(format!(
                "lookup task failed: {e}"
            )))
        })??;
    match post {
        Some(p) => Ok(Json(PostDto::from(&p))),
        None => Err(ApiError::not_found(format!(
            "no post with id `{id}` (deleted, expired, or not committed yet)"
        ))),
    }
}

/// `DELETE /v1/posts/{id}`.
#[utoipa::path(delete, path = "/v1/posts/{id}", tag = "posts",
    summary = "Delete a post from both indexes (scope: ingest)", params(("id" = String, Path)),
    responses((status = 200, description = "Deleted", body = Deleted)))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Deleted>, ApiError> {
    let id = parse_id(&id)?;
    let found = state.write.delete(vec![id.clone()]).await?;
    if found.first().copied().unwrap_or(false) {
        Ok(Json(Deleted::new(id.as_str(), None)))
    } else {
        Err(ApiError::not_found(format!("no post with id `{id}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_bodies() {
        let h = HeaderMap::new();
        assert_eq!(records(&h, br#"[{"a":1},{"b":2}]"#).unwrap().len(), 2);
        assert_eq!(records(&h, br#"{"a":1}"#).unwrap().len(), 1);
        assert_eq!(records(&h, b"{\"a\":1}\n{\"b\":2}\n").unwrap().len(), 2);
        let mut nd = HeaderMap::new();
        nd.insert("content-type", "application/x-ndjson".parse().unwrap());
        let items = records(&nd, b"{\"a\":1}\nnope\n").unwrap();
        assert!(items[0].is_ok() && items[1].is_err());
        assert_eq!(records(&h, b"42").unwrap_err().code, "invalid_body");
        assert_eq!(records(&h, b"{oops").unwrap_err().code, "invalid_json");
    }
}
