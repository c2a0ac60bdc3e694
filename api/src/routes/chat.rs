//! `POST /v1/chat/completions` (OpenAI-compatible, streaming and not) and `GET /v1/models`.
//!
//! Extensions on the request: `search` {from, to, as_of, handles, exclude_handles, sources,
//! langs, max_results, mode: auto|on|off} and `persona`. Extensions on the response:
//! `citations` (URLs, or post ids where a post has no URL), `search_results` (the cited posts),
//! `related_questions`, `url_citation` annotations on the message, and `tidings` (as_of, the
//! window searched, timings). Streams end with the extensions in the last content chunk, a usage
//! chunk when `stream_options.include_usage` is set, and `data: [DONE]`.

use crate::routes::search::PostDto;
use crate::time::parse_time;
use crate::ErrorCode;
use crate::{ApiError, AppState};
use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};
use tidings_agent::{
    post_url, Agent, AgentError, AgentEvent, Answer, AskRequest, ChatMessage, ModelError, Role,
    SearchModeOption, SearchOptions,
};

/// Longest message content we accept, in characters.
const MAX_MESSAGE_CHARS: usize = 8_000;
const MAX_MESSAGES: usize = 64;

#[derive(Debug, Deserialize)]
pub(crate) struct ChatBody {
    model: Option<String>,
    messages: Vec<MessageBody>,
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    temperature: Option<f32>,
    seed: Option<i64>,
    search: Option<SearchBody>,
    persona: Option<String>,
    /// Accepted for compatibility; only 1 is supported.
    n: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Debug, Deserialize)]
struct MessageBody {
    role: String,
    #[serde(default)]
    content: Content,
}

/// OpenAI allows a string or a list of typed parts; text parts are joined.
#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
enum Content {
    #[default]
    None,
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

impl Content {
    fn text(self) -> Result<String, String> {
        match self {
            Content::None => Ok(String::new()),
            Content::Text(t) => Ok(t),
            Content::Parts(parts) => {
                let mut out = Vec::new();
                for p in parts {
                    match (p.kind.as_str(), p.text) {
                        ("text", Some(t)) => out.push(t),
                        (kind, _) => {
                            return Err(format!(
                                "content parts of type `{kind}` are not supported; send text"
                            ))
                        }
                    }
                }
                Ok(out.join("\n"))
            }
        }
    }
}

/// The `search` extension, also a conversation's stored search settings.
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SearchBody {
    /// A fixed look-back from `as_of` ("6h", "7d"); `auto` or absent: from the question.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) window: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) as_of: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    handles: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    exclude_handles: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    sources: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    langs: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_results: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mode: Option<String>,
}

impl SearchBody {
    /// Validates into the agent's options and the `as_of` time.
    pub(crate) fn options(
        self,
    ) -> Result<(SearchOptions, Option<chrono::DateTime<chrono::Utc>>), ApiError> {
        let search = self;
        let time = |field: &str, v: Option<String>| -> Result<_, ApiError> {
            v.map(|raw| parse_time(&raw).map_err(|e| invalid(format!("search.{field}: {e}"))))
                .transpose()
        };
        let mut from = time("from", search.from)?;
        let mut to = time("to", search.to)?;
        let as_of = time("as_of", search.as_of)?;
        if let Some(w) = search.window.as_deref().map(str::trim) {
            if !w.is_empty() && !w.eq_ignore_ascii_case("auto") {
                if from.is_some() || to.is_some() {
                    return Err(invalid(
                        "search.window cannot be combined with search.from/to",
                    ));
                }
                let d =
                    crate::parse_duration(w).map_err(|e| invalid(format!("search.window: {e}")))?;
                let d = chrono::Duration::from_std(d)
                    .map_err(|_| invalid("search.window is too long"))?;
                let end = as_of.unwrap_or_else(chrono::Utc::now);
                from = Some(end - d);
                to = Some(end);
            }
        }
        if let (Some(f), Some(t)) = (from, to) {
            if f >= t {
                return Err(invalid("search.from must be before search.to"));
            }
        }
        let mode = match search.mode.as_deref().map(str::to_lowercase).as_deref() {
            None | Some("auto") => SearchModeOption::Auto,
            Some("on") => SearchModeOption::On,
            Some("off") => SearchModeOption::Off,
            Some(other) => {
                return Err(invalid(format!(
                    "search.mode `{other}` is not one of auto, on, off"
                )))
            }
        };
        if search.max_results == Some(0) || search.max_results.is_some_and(|n| n > 50) {
            return Err(invalid("search.max_results must be between 1 and 50"));
        }
        Ok((
            SearchOptions {
                from,
                to,
                handles: search.handles,
                exclude_handles: search.exclude_handles,
                sources: search.sources,
                langs: search.langs,
                max_results: search.max_results,
                mode,
            },
            as_of,
        ))
    }
}

/// `unknown_persona` unless `persona` exists.
pub(crate) fn check_persona(agent: &Agent, persona: &str) -> Result<(), ApiError> {
    if agent.personas().get(persona).is_some() {
        return Ok(());
    }
    Err(ApiError::bad_request(
        ErrorCode::UnknownPersona,
        format!(
            "persona `{persona}` does not exist; available: {}",
            agent.personas().names().collect::<Vec<_>>().join(", ")
        ),
    ))
}

pub(crate) fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(ErrorCode::InvalidRequest, message)
}

/// Model ids we answer to: `tidings` (default persona), `tidings-<persona>`, and the backend's
/// own model id. Returns the persona the id selects, if any.
fn resolve_model(agent: &Agent, requested: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(m) = requested.map(str::trim).filter(|m| !m.is_empty()) else {
        return Ok(None);
    };
    let m = m.to_lowercase();
    if m == "tidings" || m == agent.model().id() {
        return Ok(None);
    }
    if let Some(p) = m.strip_prefix("tidings-") {
        if agent.personas().get(p).is_some() {
            return Ok(Some(p.to_string()));
        }
    }
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::ModelNotFound,
        format!(
            "model `{m}` does not exist here; GET /v1/models lists them (tidings, {})",
            agent
                .personas()
                .names()
                .map(|p| format!("tidings-{p}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ))
}

/// Validates the body into an agent request. `Ok` carries (request, model name to echo).
fn to_request(agent: &Agent, body: ChatBody) -> Result<(AskRequest, String), ApiError> {
    if body.n.is_some_and(|n| n != 1) {
        return Err(invalid("only n = 1 is supported"));
    }
    let model_persona = resolve_model(agent, body.model.as_deref())?;
    if body.messages.is_empty() {
        return Err(invalid(
            "`messages` is empty; send at least one user message",
        ));
    }
    if body.messages.len() > MAX_MESSAGES {
        return Err(invalid(format!(
            "`messages` has {} entries; the limit is {MAX_MESSAGES}",
            body.messages.len()
        )));
    }
    let mut history = Vec::new();
    let mut system_notes = Vec::new();
    let count = body.messages.len();
    let mut question = String::new();
    for (i, m) in body.messages.into_iter().enumerate() {
        let text = m
            .content
            .text()
            .map_err(|e| invalid(format!("messages[{i}]: {e}")))?;
        if text.chars().count() > MAX_MESSAGE_CHARS {
            return Err(ApiError::bad_request(
                ErrorCode::MessageTooLong,
                format!("messages[{i}] is longer than {MAX_MESSAGE_CHARS} characters"),
            ));
        }
        let role = match m.role.as_str() {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            // A caller's system/developer message is kept as a note to the assistant, below
            // Tidings' own rules (it cannot switch off grounding or citations).
            "system" | "developer" => {
                system_notes.push(text);
                continue;
            }
            "tool" | "function" => continue,
            other => {
                return Err(invalid(format!(
                    "messages[{i}].role `{other}` is not one of user, assistant, system, developer"
                )))
            }
        };
        if i + 1 == count {
            if role != Role::User {
                return Err(invalid(
                    "the last message must be from the user: it is the question",
                ));
            }
            question = text;
        } else {
            history.push(ChatMessage::new(role, text));
        }
    }
    if question.trim().is_empty() {
        return Err(invalid("the last user message is empty"));
    }
    if !system_notes.is_empty() {
        history.insert(
            0,
            ChatMessage::new(
                Role::User,
                format!("(Note from the app I am using: {})", system_notes.join(" ")),
            ),
        );
    }
    let (search, as_of) = body.search.unwrap_or_default().options()?;
    let persona = body.persona.or(model_persona);
    if let Some(p) = &persona {
        check_persona(agent, p)?;
    }
    if body.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
        return Err(invalid("temperature must be between 0 and 2"));
    }
    let echo = body.model.unwrap_or_else(|| "tidings".into());
    Ok((
        AskRequest {
            question,
            history,
            as_of,
            search,
            persona,
            max_tokens: body.max_completion_tokens.or(body.max_tokens),
            temperature: body.temperature,
            seed: body.seed.map(|s| s as u32),
            earlier_posts: Vec::new(),
            fixed_posts: None,
        },
        echo,
    ))
}

/// The stable code of an answer's failure (exhaustive: a new failure needs a code).
fn agent_code(e: &AgentError) -> ErrorCode {
    match e {
        AgentError::InvalidRequest(_) => ErrorCode::InvalidRequest,
        AgentError::Search(_) => ErrorCode::SearchFailed,
        AgentError::Panicked(_) => ErrorCode::Internal,
        AgentError::Model(m) => match m {
            ModelError::Busy(_) => ErrorCode::ModelBusy,
            ModelError::Timeout(_) => ErrorCode::ModelTimeout,
            ModelError::Upstream { .. } => ErrorCode::UpstreamError,
            ModelError::Unavailable(_) => ErrorCode::UpstreamUnavailable,
            ModelError::Malformed(_) => ErrorCode::UpstreamMalformed,
            ModelError::ContextTooLong(_) => ErrorCode::ContextTooLong,
            ModelError::Internal(_) => ErrorCode::ModelError,
        },
    }
}

pub(crate) fn agent_error(e: AgentError) -> ApiError {
    let code = agent_code(&e);
    match e {
        AgentError::InvalidRequest(m) => ApiError::bad_request(ErrorCode::InvalidRequest, m),
        // Logged where it was caught; clients get a stable code and no internals.
        AgentError::Panicked(_) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            code,
            "the answer failed inside the server (logged); ask again or regenerate",
        ),
        AgentError::Search(e) => {
            let mut err = ApiError::from(e);
            if err.status.is_server_error() {
                err.code = ErrorCode::SearchFailed;
            }
            err
        }
        AgentError::Model(m) => {
            let status = match &m {
                ModelError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
                ModelError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
                ModelError::ContextTooLong(_) => StatusCode::BAD_REQUEST,
                ModelError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::BAD_GATEWAY,
            };
            tracing::warn!(error = %m, code = code.as_str(), "answer failed");
            let busy = matches!(m, ModelError::Busy(_));
            let err = ApiError::new(status, code, m.to_string());
            if busy {
                err.with_retry_after(2)
            } else {
                err
            }
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn completion_id() -> String {
    let mut bytes = [0u8; 12];
    let _ = getrandom::fill(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("chatcmpl-{hex}")
}

/// The citation link: the post's URL, or its id where it has none.
fn citation_ref(c: &tidings_agent::Citation) -> String {
    c.url.clone().unwrap_or_else(|| c.post.id.to_string())
}

/// A cited post as the API shows it: the post, its number in the text, its link, how well the
/// citing sentence is supported, and whether the agent inferred it.
pub(crate) fn citation_json(c: &tidings_agent::Citation) -> Value {
    let mut v = serde_json::to_value(PostDto::from(&c.post)).unwrap_or(Value::Null);
    v["number"] = json!(c.number);
    v["url"] = json!(post_url(&c.post));
    v["support"] = json!((c.support * 100.0).round() / 100.0);
    v["inferred"] = json!(c.inferred);
    // Independent accounts among the given posts that carry what the citing sentence says
    // (1: a single source, which the answer marks as unconfirmed).
    v["corroboration"] = json!(c.corroboration);
    v
}

/// The extension fields shared by streamed and whole answers.
pub(crate) fn extensions(answer: &Answer) -> Value {
    let results: Vec<Value> = answer.citations.iter().map(citation_json).collect();
    json!({
        "citations": answer.citations.iter().map(citation_ref).collect::<Vec<_>>(),
        "search_results": results,
        "related_questions": answer.related_questions,
        "tidings": {
            "as_of": answer.as_of,
            "window": {
                "from": answer.window.from,
                "to": answer.window.to,
                "label": answer.window.label,
            },
            "widened_from": answer.widened_from.as_ref().map(|w| w.label.clone()),
            "no_results": answer.no_results,
            "persona": answer.persona,
            "backend_model": answer.model,
            "dropped_citations": answer.dropped_citations,
            "grounding": {
                "kept_sentences": answer.grounding.kept,
                "dropped_sentences": answer.grounding.dropped,
                "extractive": answer.grounding.extractive,
            },
            "timings_ms": {
                "retrieval": answer.timings.retrieval.as_secs_f64() * 1000.0,
                "first_token": answer.timings.first_token.map(|d| d.as_secs_f64() * 1000.0),
                "model_first_token": answer.timings.model_first_token.map(|d| d.as_secs_f64() * 1000.0),
                "model": answer.timings.model.as_secs_f64() * 1000.0,
                "total": answer.timings.total.as_secs_f64() * 1000.0,
            },
        },
    })
}

/// OpenAI-style `url_citation` annotations, one per marker in the text (character offsets).
fn annotations(answer: &Answer) -> Vec<Value> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = answer.text.char_indices().collect();
    let char_at = |byte: usize| chars.iter().position(|(b, _)| *b == byte).unwrap_or(0);
    for c in &answer.citations {
        let marker = format!("[{}]", c.number);
        for (start, _) in answer.text.match_indices(&marker) {
            let s = char_at(start);
            out.push(json!({
                "type": "url_citation",
                "url_citation": {
                    "url": c.url.clone().unwrap_or_else(|| format!("/v1/posts/{}", c.post.id)),
                    "title": format!(
                        "{} — {}",
                        c.post.author.as_deref().map(|a| format!("@{a}")).unwrap_or_else(|| "post".into()),
                        c.post.created_at.format("%Y-%m-%d %H:%M UTC")
                    ),
                    "start_index": s,
                    "end_index": s + marker.chars().count(),
                }
            }));
        }
    }
    out
}

fn usage_json(answer: &Answer) -> Value {
    json!({
        "prompt_tokens": answer.usage.prompt_tokens,
        "completion_tokens": answer.usage.completion_tokens,
        "total_tokens": answer.usage.prompt_tokens + answer.usage.completion_tokens,
    })
}

/// `POST /v1/chat/completions`.
pub(crate) async fn completions(
    State(state): State<AppState>,
    body: Result<Json<ChatBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let agent = state.agent.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ModelUnavailable,
            "no chat model is configured on this server",
        )
    })?;
    let Json(body) = body.map_err(|e| {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(status, ErrorCode::PayloadTooLarge, e.body_text())
        } else {
            ApiError::bad_request(ErrorCode::InvalidJson, e.body_text())
        }
    })?;
    let stream = body.stream;
    let include_usage = body
        .stream_options
        .as_ref()
        .is_some_and(|o| o.include_usage);
    let (request, model_name) = to_request(&agent, body)?;
    let events = agent.ask(request).await.map_err(agent_error)?;
    if stream {
        Ok(stream_response(events, model_name, include_usage).into_response())
    } else {
        whole_response(events, model_name).await
    }
}

async fn whole_response(
    mut events: tidings_agent::AgentStream,
    model: String,
) -> Result<Response, ApiError> {
    let mut answer = None;
    while let Some(e) = events.next().await {
        match e.map_err(agent_error)? {
            AgentEvent::Done(a) => answer = Some(a),
            AgentEvent::Retrieved(_) | AgentEvent::Delta(_) => {}
        }
    }
    let answer = answer.ok_or_else(|| {
        agent_error(AgentError::Model(ModelError::Malformed(
            "the answer ended early".into(),
        )))
    })?;
    let mut body = json!({
        "id": completion_id(),
        "object": "chat.completion",
        "created": unix_now(),
        "model": model,
        "choices": [{
            "index": 0,
            "message": {
                "role": "assistant",
                "content": answer.text,
                "annotations": annotations(&answer),
            },
            "finish_reason": answer.finish_reason.as_str(),
        }],
        "usage": usage_json(&answer),
    });
    if let (Value::Object(b), Value::Object(ext)) = (&mut body, extensions(&answer)) {
        b.extend(ext);
    }
    Ok(Json(body).into_response())
}

fn stream_response(
    events: tidings_agent::AgentStream,
    model: String,
    include_usage: bool,
) -> impl IntoResponse {
    let id = completion_id();
    let created = unix_now();
    let chunk = move |delta: Value, finish: Option<&str>| {
        json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        })
    };
    let sse = async_stream::stream! {
        let mut events = events;
        yield Ok::<Event, std::convert::Infallible>(
            Event::default().data(chunk(json!({"role": "assistant", "content": ""}), None).to_string()),
        );
        while let Some(event) = events.next().await {
            match event {
                Ok(AgentEvent::Retrieved(_)) => {}
                Ok(AgentEvent::Delta(d)) => {
                    yield Ok(Event::default().data(chunk(json!({"content": d}), None).to_string()));
                }
                Ok(AgentEvent::Done(answer)) => {
                    let mut last = chunk(
                        json!({"annotations": annotations(&answer)}),
                        Some(answer.finish_reason.as_str()),
                    );
                    if let (Value::Object(b), Value::Object(ext)) = (&mut last, extensions(&answer)) {
                        b.extend(ext);
                    }
                    yield Ok(Event::default().data(last.to_string()));
                    if include_usage {
                        let mut u = chunk(json!({}), None);
                        u["choices"] = json!([]);
                        u["usage"] = usage_json(&answer);
                        yield Ok(Event::default().data(u.to_string()));
                    }
                }
                Err(e) => {
                    let err = agent_error(e);
                    yield Ok(Event::default().data(
                        json!({"error": {"code": err.code, "message": err.message}}).to_string(),
                    ));
                    break;
                }
            }
        }
        yield Ok(Event::default().data("[DONE]"));
    };
    crate::routes::sse_response(sse)
}

/// `GET /v1/models`: `tidings` and one `tidings-<persona>` per persona, plus the backend model.
pub(crate) async fn models(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let Some(agent) = &state.agent else {
        return Ok(Json(json!({"object": "list", "data": []})));
    };
    let created = unix_now();
    let mut data = vec![json!({
        "id": "tidings", "object": "model", "created": created, "owned_by": "tidings",
        "persona": agent.personas().get("regular").map(|_| "regular"),
        "backend_model": agent.model().id(),
    })];
    for p in agent.personas().names() {
        data.push(json!({
            "id": format!("tidings-{p}"), "object": "model", "created": created,
            "owned_by": "tidings", "persona": p, "backend_model": agent.model().id(),
        }));
    }
    data.push(json!({
        "id": agent.model().id(), "object": "model", "created": created, "owned_by": "tidings",
        "context_tokens": agent.model().context_tokens(),
    }));
    Ok(Json(json!({"object": "list", "data": data})))
}
