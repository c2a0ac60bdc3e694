//! `POST /v1/chat/completions` (OpenAI-compatible, streaming and not) and `GET /v1/models`.
//!
//! Extensions on the request: `search` {from, to, as_of, handles, exclude_handles, sources,
//! langs, max_results, mode: auto|on|off} and `persona`. Extensions on the response:
//! `citations` (URLs, or post ids where a post has no URL), `search_results` (the cited posts),
//! `related_questions`, `url_citation` annotations on the message, and `tidings` (as_of, the
//! window searched, timings). Streams end with the extensions in the last content chunk, a usage
//! chunk when `stream_options.include_usage` is set, and `data: [DONE]`.

use crate::answer::{
    agent_error, annotations, check_persona, extensions, usage, Annotation, Extensions, SearchBody,
    UsageView,
};
use crate::error::ErrorBody;
use crate::invalid;
use crate::ErrorCode;
use crate::{ApiError, AppState};
use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};
use tidings_agent::{Agent, AgentError, AgentEvent, AskRequest, ChatMessage, ModelError, Role};

/// Longest message content we accept, in characters.
const MAX_MESSAGE_CHARS: usize = 8_000;
const MAX_MESSAGES: usize = 64;

/// OpenAI's chat request, with Tidings' `search` and `persona`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = ChatRequest)]
pub(crate) struct ChatBody {
    /// `tidings`, `tidings-<persona>`, or the backend model's id.
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
    /// `regular`, `fun`, or a persona the server defines.
    persona: Option<String>,
    /// Accepted for compatibility; only 1 is supported.
    n: Option<u32>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = ChatMessage)]
struct MessageBody {
    /// `system`, `developer`, `user` or `assistant`.
    role: String,
    /// A string, or a list of parts whose `text` parts are joined.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
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

/// `POST /v1/chat/completions`.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "chat",
    summary = "OpenAI-compatible grounded answer with citations",
    request_body = ChatBody,
    responses(
        (status = 200, description = "A chat completion; with `stream: true` an SSE stream of `chat.completion.chunk` objects ending in `data: [DONE]`. The last content chunk carries the extension fields.",
            content((ChatCompletion = "application/json"), (String = "text/event-stream"))),
        (status = 404, description = "Unknown model (`model_not_found`)", body = ErrorBody),
        (status = 502, description = "The upstream model failed (`upstream_error`, `upstream_malformed`, `upstream_unavailable`)", body = ErrorBody),
        (status = 503, description = "The local model's queue is full (`model_busy`, with `Retry-After`) or no model is configured (`model_unavailable`)", body = ErrorBody),
        (status = 504, description = "The model timed out (`model_timeout`)", body = ErrorBody),
    ))]
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
    Ok(Json(ChatCompletion {
        id: completion_id(),
        object: "chat.completion",
        created: unix_now(),
        model,
        choices: vec![Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant",
                annotations: annotations(&answer),
                content: answer.text.clone(),
            },
            finish_reason: answer.finish_reason.as_str(),
        }],
        usage: usage(&answer),
        extensions: extensions(&answer),
    })
    .into_response())
}

/// A whole (not streamed) answer: OpenAI's `chat.completion` with Tidings' extensions.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ChatCompletion {
    id: String,
    /// `chat.completion`.
    object: &'static str,
    created: u64,
    model: String,
    choices: Vec<Choice>,
    usage: UsageView,
    #[serde(flatten)]
    extensions: Extensions,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ChatChoice)]
struct Choice {
    index: u32,
    message: AssistantMessage,
    /// `stop` or `length`.
    finish_reason: &'static str,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct AssistantMessage {
    /// `assistant`.
    role: &'static str,
    /// The answer, with `[n]` citation markers.
    content: String,
    annotations: Vec<Annotation>,
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
                    if let (Value::Object(b), Ok(Value::Object(ext))) =
                        (&mut last, serde_json::to_value(extensions(&answer)))
                    {
                        b.extend(ext);
                    }
                    yield Ok(Event::default().data(last.to_string()));
                    if include_usage {
                        let mut u = chunk(json!({}), None);
                        u["choices"] = json!([]);
                        u["usage"] = json!(usage(&answer));
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
#[utoipa::path(get, path = "/v1/models", tag = "chat", summary = "Models and personas",
    responses((status = 200, description = "`tidings`, `tidings-<persona>`, the backend model", body = ModelList)))]
pub(crate) async fn models(State(state): State<AppState>) -> Json<ModelList> {
    let Some(agent) = &state.agent else {
        return Json(ModelList {
            object: "list",
            data: Vec::new(),
        });
    };
    let created = unix_now();
    let backend = agent.model().id().to_string();
    let model = |id: String, persona: Option<&str>| ModelView {
        id,
        object: "model",
        created,
        owned_by: "tidings",
        persona: persona.map(str::to_string),
        backend_model: Some(backend.clone()),
        context_tokens: None,
    };
    let regular = agent.personas().get("regular").map(|_| "regular");
    let mut data = vec![model("tidings".into(), regular)];
    for p in agent.personas().names() {
        data.push(model(format!("tidings-{p}"), Some(p)));
    }
    data.push(ModelView {
        id: backend.clone(),
        object: "model",
        created,
        owned_by: "tidings",
        persona: None,
        backend_model: None,
        context_tokens: Some(agent.model().context_tokens()),
    });
    Json(ModelList {
        object: "list",
        data,
    })
}

/// `GET /v1/models`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ModelList {
    /// `list`.
    object: &'static str,
    data: Vec<ModelView>,
}

/// A model clients can name: `tidings`, `tidings-<persona>`, or the backend model itself.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Model)]
pub(crate) struct ModelView {
    id: String,
    /// `model`.
    object: &'static str,
    created: u64,
    owned_by: &'static str,
    /// The persona this name answers with.
    #[serde(skip_serializing_if = "Option::is_none")]
    persona: Option<String>,
    /// The model behind the persona names.
    #[serde(skip_serializing_if = "Option::is_none")]
    backend_model: Option<String>,
    /// The backend model's context window, in tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    context_tokens: Option<usize>,
}
