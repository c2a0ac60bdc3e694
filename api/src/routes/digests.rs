//! `/v1/digests`: digest definitions (CRUD), running one now (optionally `as_of` a past time),
//! its stored runs, and an Atom feed of its runs.
//!
//! A run is stored as `running` before it starts and as `succeeded` (with its stories, or an
//! explicit "no notable stories") or `failed` (with the error) when it ends: a failed search or
//! model call is never reported as a quiet window.

use crate::routes::chat::{check_persona, invalid};
use crate::routes::{json_body, store_error};
use crate::scheduler::{Job, Missed, Runner, Schedule};
use crate::store::{DigestRow, RunRow, Store};
use crate::time::{parse_duration, parse_time};
use crate::ErrorCode;
use crate::{ApiError, AppState};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use futures::future::BoxFuture;
use futures::FutureExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::panic::AssertUnwindSafe;
use tidings_agent::digest::{self, DigestSpec};
use tidings_agent::stories::StoryConfig;
use tidings_agent::AgentError;

const MAX_STORIES: usize = 20;

/// What a digest covers.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScopeBody {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    query: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    handles: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    hashtags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    sources: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    langs: Vec<String>,
}

/// A digest definition as the API takes and stores it.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DigestBody {
    name: String,
    #[serde(default)]
    scope: ScopeBody,
    /// The window before each run's `as_of` ("24h", "7d").
    #[serde(default = "default_window")]
    window: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    persona: Option<String>,
    #[serde(default = "default_max_stories")]
    max_stories: usize,
    /// When it runs by itself; absent: only when asked (`POST /v1/digests/{id}/run`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    schedule: Option<ScheduleBody>,
    /// Where each run is POSTed, signed with the target's secret.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    webhooks: Vec<WebhookBody>,
}

/// A webhook target: its URL and the secret its signatures use (never shown back).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebhookBody {
    url: String,
    secret: String,
}

const MAX_WEBHOOKS: usize = 5;

/// `{"cron": "0 8 * * *", "timezone": "Europe/Berlin"}` or `{"every": "6h"}`, with
/// `missed`: `run_once` (default: the latest slot missed while the server was down runs once
/// at start) or `skip`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScheduleBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cron: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    every: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    missed: Option<String>,
}

impl ScheduleBody {
    fn parse(&self) -> Result<(Schedule, Missed), ApiError> {
        let every = self
            .every
            .as_deref()
            .map(parse_duration)
            .transpose()
            .map_err(|e| invalid(format!("schedule.every: {e}")))?;
        let schedule = Schedule::parse(self.cron.as_deref(), self.timezone.as_deref(), every)
            .map_err(|e| invalid(format!("schedule: {e}")))?;
        let missed = match self.missed.as_deref() {
            None | Some("run_once") => Missed::RunOnce,
            Some("skip") => Missed::Skip,
            Some(other) => {
                return Err(invalid(format!(
                    "schedule.missed `{other}` is not one of run_once, skip"
                )))
            }
        };
        Ok((schedule, missed))
    }
}

fn default_window() -> String {
    "24h".into()
}

fn default_max_stories() -> usize {
    5
}

impl DigestBody {
    fn validate(&self, state: &AppState) -> Result<DigestSpec, ApiError> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(invalid("`name` must be 1 to 200 characters"));
        }
        let window = parse_duration(&self.window).map_err(|e| invalid(format!("window: {e}")))?;
        if window.as_secs() < 60 || window.as_secs() > 31 * 86_400 {
            return Err(invalid("window must be between 1m and 31d"));
        }
        if !(1..=MAX_STORIES).contains(&self.max_stories) {
            return Err(invalid(format!(
                "max_stories must be between 1 and {MAX_STORIES}"
            )));
        }
        if let (Some(p), Some(agent)) = (&self.persona, &state.agent) {
            check_persona(agent, p)?;
        }
        if let Some(s) = &self.schedule {
            s.parse()?;
        }
        if self.webhooks.len() > MAX_WEBHOOKS {
            return Err(invalid(format!(
                "at most {MAX_WEBHOOKS} webhooks per digest"
            )));
        }
        for (i, w) in self.webhooks.iter().enumerate() {
            let url = reqwest::Url::parse(&w.url)
                .map_err(|e| invalid(format!("webhooks[{i}].url: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(invalid(format!(
                    "webhooks[{i}].url must be an http(s) URL with a host"
                )));
            }
            // An address written in the URL is checked now; names are checked when resolved.
            if let Some(ip) = url
                .host_str()
                .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
                .and_then(|h| h.parse::<std::net::IpAddr>().ok())
            {
                if let Err(e) = crate::webhook::check_ip(ip, &state.config.webhooks.allow) {
                    return Err(ApiError::bad_request(
                        ErrorCode::WebhookRefused,
                        format!("webhooks[{i}]: {e}"),
                    ));
                }
            }
            if !(16..=256).contains(&w.secret.chars().count()) {
                return Err(invalid(format!(
                    "webhooks[{i}].secret must be 16 to 256 characters"
                )));
            }
        }
        Ok(DigestSpec {
            name: name.to_string(),
            query: self.scope.query.clone(),
            handles: self
                .scope
                .handles
                .iter()
                .map(|h| h.trim_start_matches('@').to_lowercase())
                .collect(),
            hashtags: self.scope.hashtags.clone(),
            sources: self.scope.sources.clone(),
            langs: self.scope.langs.clone(),
            window,
            persona: self.persona.clone(),
            max_stories: self.max_stories,
            ..DigestSpec::default()
        })
    }
}

fn digest_view(d: &DigestRow) -> Value {
    let mut v = json!({
        "id": d.id,
        "object": "digest",
        "created_at": d.created_at,
        "updated_at": d.updated_at,
    });
    if let (Value::Object(o), Value::Object(spec)) = (&mut v, &d.spec) {
        o.extend(spec.clone());
    }
    if let Some(hooks) = v.get_mut("webhooks").and_then(Value::as_array_mut) {
        for h in hooks {
            if let Some(o) = h.as_object_mut() {
                o.remove("secret");
                o.insert("secret_set".into(), Value::Bool(true));
            }
        }
    }
    v["feed_url"] = json!(format!("/v1/digests/{}/feed.atom", d.id));
    v
}

fn run_view(r: &RunRow) -> Value {
    json!({
        "id": r.id,
        "object": "digest.run",
        "digest_id": r.digest_id,
        "status": r.status,
        "reason": r.reason,
        "scheduled_for": r.scheduled_for,
        "as_of": r.as_of,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "output": r.output,
        "markdown": r.markdown,
        "error": r.error,
    })
}

async fn load(store: &Store, id: &str) -> Result<DigestRow, ApiError> {
    store
        .digest(id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("digest {id} does not exist")))
}

/// The stored definition of a digest, read back. One that no longer parses (written by
/// another version, edited by hand) is logged loudly every time something needs it — it neither
/// runs on its schedule nor delivers until it is saved again — instead of being skipped quietly.
fn stored_body(row: &DigestRow) -> Result<DigestBody, ApiError> {
    serde_json::from_value(row.spec.clone()).map_err(|e| {
        tracing::error!(
            digest = %row.id, name = %row.name, error = %e,
            "a stored digest does not parse; it will not run, be scheduled or deliver until it is saved again (PUT /v1/digests/{{id}})"
        );
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::CorruptDigest,
            format!("stored digest {} does not parse: {e}", row.id),
        )
    })
}

fn spec_of(state: &AppState, row: &DigestRow) -> Result<DigestSpec, ApiError> {
    stored_body(row)?.validate(state)
}

/// `POST /v1/digests`.
pub(crate) async fn create(
    State(state): State<AppState>,
    body: Result<Json<DigestBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let store = store(&state)?;
    let body = json_body(body)?;
    body.validate(&state)?;
    let spec = serde_json::to_value(&body).unwrap_or(Value::Null);
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
    let spec = serde_json::to_value(&body).unwrap_or(Value::Null);
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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunBody {
    /// End of the window (RFC 3339 or Unix seconds); default now. Past times replay history.
    as_of: Option<String>,
}

/// Runs `spec` as of `as_of`, storing the run from start to end. With a schedule `slot`,
/// only when no run holds that slot yet (`Ok(None)` otherwise).
pub(crate) async fn execute(
    state: &AppState,
    row: &DigestRow,
    reason: &str,
    as_of: chrono::DateTime<Utc>,
    slot: Option<chrono::DateTime<Utc>>,
) -> Result<Option<RunRow>, ApiError> {
    let store = store(state)?;
    let spec = spec_of(state, row)?;
    let Some(run) = store
        .start_run(&row.id, reason, as_of, slot)
        .await
        .map_err(store_error)?
    else {
        return Ok(None);
    };
    let result = match &state.agent {
        None => Err(
            json!({"code": "model_unavailable", "message": "no chat model is configured on this server; digests need one for their summaries"}),
        ),
        // A panic (a bug in story detection or text handling) fails this run, with a
        // reason, instead of leaving it `running` and killing the scheduler.
        Some(agent) => AssertUnwindSafe(digest::run(agent, &spec, as_of, &StoryConfig::default()))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| {
                Err(AgentError::Panicked(tidings_agent::panic_message(
                    panic.as_ref(),
                )))
            })
            .map_err(|e| {
                let err = crate::routes::chat::agent_error(e);
                json!({"code": err.code, "message": err.message})
            }),
    };
    let finished = match &result {
        Ok(out) => {
            let output = crate::digest_json(out);
            store
                .finish_run(&run.id, Ok((&output, &out.markdown())))
                .await
        }
        Err(e) => {
            tracing::warn!(digest = %row.id, error = %e, "digest run failed");
            store.finish_run(&run.id, Err(e)).await
        }
    };
    let run = finished.map_err(store_error)?;
    deliver_run(state, row, &run);
    Ok(Some(run))
}

/// POSTs a finished run to the digest's webhooks in the background, recording each delivery
/// (delivered, or dead with the reason).
fn deliver_run(state: &AppState, row: &DigestRow, run: &RunRow) {
    let Ok(body) = stored_body(row) else {
        return;
    };
    if body.webhooks.is_empty() {
        return;
    }
    let Some(store) = state.store.clone() else {
        return;
    };
    let payload = run_payload(row, run);
    for hook in body.webhooks {
        let store = store.clone();
        let config = state.config.webhooks.clone();
        let payload = payload.clone();
        let (digest_id, run_id) = (row.id.clone(), run.id.clone());
        state.tasks.spawn(async move {
            let id = match store.start_delivery(&digest_id, &run_id, &hook.url).await {
                Ok(id) => id,
                Err(e) => {
                    tracing::error!(error = %e, "could not record a webhook delivery");
                    return;
                }
            };
            deliver_one(&store, &config, &hook, &id, &payload).await;
        });
    }
}

/// What a webhook receives for a finished run.
fn run_payload(row: &DigestRow, run: &RunRow) -> String {
    json!({
        "event": "digest.run",
        "digest": {"id": row.id, "name": row.name},
        "run": run_view(run),
    })
    .to_string()
}

/// Delivers one recorded delivery (with retries) and records how it ended.
async fn deliver_one(
    store: &Store,
    config: &crate::webhook::WebhookConfig,
    hook: &WebhookBody,
    id: &str,
    payload: &str,
) {
    let outcome = crate::webhook::deliver(
        config,
        &hook.url,
        &hook.secret,
        "digest.run",
        id,
        payload.as_bytes(),
    )
    .await;
    if !outcome.delivered {
        tracing::warn!(url = %hook.url, attempts = outcome.attempts, error = ?outcome.last_error, "webhook delivery failed; dead-lettered");
    }
    if let Err(e) = store
        .finish_delivery(
            id,
            outcome.delivered,
            outcome.attempts,
            outcome.last_status,
            outcome.last_error.as_deref(),
        )
        .await
    {
        tracing::error!(error = %e, "could not record a webhook outcome");
    }
}

/// Retries deliveries a dead process left `pending` (at start): the same delivery id, the
/// run as stored, the digest's current secret for that URL. A delivery whose digest, run or
/// webhook is gone is recorded dead with the reason.
pub(crate) async fn retry_pending_deliveries(
    state: &AppState,
    cutoff: chrono::DateTime<Utc>,
) -> usize {
    let Some(store) = state.store.clone() else {
        return 0;
    };
    let pending = match store.pending_deliveries(cutoff).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "could not read pending webhook deliveries");
            return 0;
        }
    };
    let count = pending.len();
    for d in pending {
        let store = store.clone();
        let config = state.config.webhooks.clone();
        state.tasks.spawn(async move {
            let found = async {
                let row = store.digest(&d.digest_id).await.ok()??;
                let run = store.run(&d.run_id).await.ok()??;
                let body = stored_body(&row).ok()?;
                let hook = body.webhooks.into_iter().find(|h| h.url == d.url)?;
                Some((run_payload(&row, &run), hook))
            }
            .await;
            match found {
                Some((payload, hook)) => deliver_one(&store, &config, &hook, &d.id, &payload).await,
                None => {
                    let _ = store
                        .finish_delivery(
                            &d.id,
                            false,
                            d.attempts as u32,
                            None,
                            Some("the digest, run or webhook no longer exists"),
                        )
                        .await;
                }
            }
        });
    }
    count
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

#[derive(Debug, Deserialize)]
pub(crate) struct RunsQuery {
    limit: Option<i64>,
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

fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 forbids most control characters.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => {}
            '\u{FFFE}' | '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// One run as HTML for a feed entry (escaped; feed readers sanitise too).
fn entry_html(run: &RunRow) -> String {
    let mut html = String::new();
    if run.status == "failed" {
        let message = run
            .error
            .as_ref()
            .and_then(|e| e["message"].as_str())
            .unwrap_or("unknown error");
        html.push_str(&format!(
            "<p><strong>This digest run failed</strong>: {}. It is not a quiet day: the stories could not be read.</p>",
            xml(message)
        ));
        return html;
    }
    let Some(out) = &run.output else {
        return "<p>Still running.</p>".into();
    };
    let stories = out["stories"].as_array().cloned().unwrap_or_default();
    if stories.is_empty() {
        html.push_str("<p>No notable stories in this window.</p>");
    }
    for s in stories {
        html.push_str(&format!(
            "<h2>{}</h2><p>{}</p><ul>",
            xml(s["headline"].as_str().unwrap_or("")),
            xml(s["summary"].as_str().unwrap_or(""))
        ));
        for c in s["citations"].as_array().cloned().unwrap_or_default() {
            let text = tidings_index::script::shorten(c["text"].as_str().unwrap_or(""), 200);
            let who = c["author"].as_str().map_or_else(
                || c["source"].as_str().unwrap_or("post").to_string(),
                |a| format!("@{a}"),
            );
            match c["url"].as_str().filter(|u| u.starts_with("http")) {
                Some(url) => html.push_str(&format!(
                    "<li>[{}] <a href=\"{}\">{}</a>: {}</li>",
                    c["number"],
                    xml(url),
                    xml(&who),
                    xml(&text)
                )),
                None => html.push_str(&format!(
                    "<li>[{}] {}: {}</li>",
                    c["number"],
                    xml(&who),
                    xml(&text)
                )),
            }
        }
        html.push_str("</ul>");
    }
    html
}

/// `GET /v1/digests/{id}/feed.atom`: the latest runs as an Atom 1.0 feed.
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
    let updated = runs
        .iter()
        .filter_map(|r| r.finished_at)
        .max()
        .unwrap_or(row.updated_at);
    let mut body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">\n  <id>urn:tidings:digest:{}</id>\n  <title>{}</title>\n  <updated>{}</updated>\n  <author><name>Tidings</name></author>\n  <generator>Tidings</generator>\n  <link rel=\"self\" href=\"/v1/digests/{}/feed.atom\"/>\n",
        xml(&row.id),
        xml(&row.name),
        updated.to_rfc3339(),
        xml(&row.id)
    );
    for r in &runs {
        let when = r.finished_at.unwrap_or(r.started_at);
        let title = if r.status == "failed" {
            format!(
                "{} — {} (failed)",
                row.name,
                r.as_of.format("%Y-%m-%d %H:%M UTC")
            )
        } else {
            format!("{} — {}", row.name, r.as_of.format("%Y-%m-%d %H:%M UTC"))
        };
        body.push_str(&format!(
            "  <entry>\n    <id>urn:tidings:run:{}</id>\n    <title>{}</title>\n    <updated>{}</updated>\n    <published>{}</published>\n    <link rel=\"alternate\" href=\"/v1/digests/{}/runs/{}\"/>\n    <content type=\"html\">{}</content>\n  </entry>\n",
            xml(&r.id),
            xml(&title),
            when.to_rfc3339(),
            r.started_at.to_rfc3339(),
            xml(&row.id),
            xml(&r.id),
            xml(&entry_html(r))
        ));
    }
    body.push_str("</feed>\n");
    Ok((
        [(header::CONTENT_TYPE, "application/atom+xml; charset=utf-8")],
        body,
    )
        .into_response())
}

/// The scheduler's view of the app: scheduled digests from the database, runs through
/// [`execute`].
pub(crate) struct ScheduledDigests(pub(crate) AppState);

impl Runner for ScheduledDigests {
    fn jobs(&self) -> BoxFuture<'_, Vec<Job>> {
        Box::pin(async move {
            let Some(store) = &self.0.store else {
                return Vec::new();
            };
            let (rows, slots) = match (store.digests().await, store.last_slots().await) {
                (Ok(r), Ok(s)) => (r, s),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::error!(error = %e, "the scheduler could not read digests");
                    return Vec::new();
                }
            };
            rows.into_iter()
                .filter_map(|row| {
                    let body = stored_body(&row).ok()?;
                    let (schedule, missed) = match body.schedule.as_ref()?.parse() {
                        Ok(parsed) => parsed,
                        Err(e) => {
                            tracing::error!(
                                digest = %row.id, error = %e.message,
                                "a stored digest's schedule does not parse; it will not run by itself until it is saved again"
                            );
                            return None;
                        }
                    };
                    Some(Job {
                        last_slot: slots.iter().find(|(id, _)| *id == row.id).map(|(_, t)| *t),
                        digest_id: row.id,
                        schedule,
                        missed,
                    })
                })
                .collect()
        })
    }

    fn run<'a>(
        &'a self,
        digest_id: &'a str,
        slot: chrono::DateTime<Utc>,
        reason: &'static str,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let Some(store) = &self.0.store else { return };
            let row = match store.digest(digest_id).await {
                Ok(Some(row)) => row,
                Ok(None) => return,
                Err(e) => {
                    tracing::error!(error = %e, digest = digest_id, "the scheduler could not read a digest");
                    return;
                }
            };
            match execute(&self.0, &row, reason, slot, Some(slot)).await {
                Ok(Some(run)) => {
                    tracing::info!(digest = digest_id, run = %run.id, status = %run.status, %slot, "scheduled digest ran")
                }
                Ok(None) => tracing::debug!(digest = digest_id, %slot, "slot already claimed"),
                Err(e) => {
                    tracing::error!(digest = digest_id, error = %e.message, "scheduled digest could not run")
                }
            }
        })
    }
}

/// Digests declared in the settings file: each is created, or updated when a digest of that
/// name exists with another definition. Digests created over the API are left alone.
pub async fn apply_declared(state: &AppState, declared: &[Value]) -> Result<usize, String> {
    let Some(store) = &state.store else {
        return Ok(0);
    };
    let existing = store.digests().await.map_err(|e| e.to_string())?;
    let mut changed = 0;
    for (i, raw) in declared.iter().enumerate() {
        let body: DigestBody =
            serde_json::from_value(raw.clone()).map_err(|e| format!("digests.define[{i}]: {e}"))?;
        body.validate(state)
            .map_err(|e| format!("digests.define[{i}] ({}): {}", body.name, e.message))?;
        let spec = serde_json::to_value(&body).map_err(|e| e.to_string())?;
        let name = body.name.trim();
        match existing.iter().find(|d| d.name == name) {
            Some(d) if d.spec == spec => {}
            Some(d) => {
                store
                    .update_digest(&d.id, name, &spec)
                    .await
                    .map_err(|e| e.to_string())?;
                changed += 1;
            }
            None => {
                store
                    .create_digest(name, &spec)
                    .await
                    .map_err(|e| e.to_string())?;
                changed += 1;
            }
        }
    }
    if changed > 0 {
        state.digests_changed.notify_one();
    }
    Ok(changed)
}

fn store(state: &AppState) -> Result<&Store, ApiError> {
    crate::routes::app_store(state, "digests")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Whether `c` may appear in an XML 1.0 document.
    fn xml_char(c: char) -> bool {
        matches!(c, '\t' | '\n' | '\r')
            || ('\u{20}'..='\u{D7FF}').contains(&c)
            || ('\u{E000}'..='\u{FFFD}').contains(&c)
            || c >= '\u{10000}'
    }

    proptest! {
        /// Any text, any script: the escaped form holds only characters XML allows, no markup,
        /// and every character of the input that XML allows.
        #[test]
        fn atom_text_is_valid_xml(text in tidings_index::testing::any_text()) {
            let out = xml(&text);
            prop_assert!(out.chars().all(xml_char), "{out:?}");
            prop_assert!(!out.contains('<') && !out.contains('>') && !out.contains('"'));
            let kept: String = text.chars().filter(|c| xml_char(*c)).collect();
            let back = out
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&");
            prop_assert_eq!(back, kept);
        }

        /// A stored run's entry renders whatever its stories hold.
        #[test]
        fn any_script_run_entries_render(headline in tidings_index::testing::any_text(), text in tidings_index::testing::any_text()) {
            let run = RunRow {
                id: "r".into(),
                digest_id: "d".into(),
                status: "succeeded".into(),
                reason: "manual".into(),
                as_of: Utc::now(),
                scheduled_for: None,
                started_at: Utc::now(),
                finished_at: Some(Utc::now()),
                output: Some(json!({"stories": [{"headline": headline, "summary": text,
                    "citations": [{"number": 1, "text": text, "author": headline, "url": "https://x.example/1"}]}]})),
                markdown: None,
                error: None,
            };
            let html = entry_html(&run);
            prop_assert!(html.chars().all(xml_char));
        }
    }
}
