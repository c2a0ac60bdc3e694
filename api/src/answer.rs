//! What the answer routes share (chat completions, conversations, digests): the `search`
//! settings body and its checks, the persona check, agent errors as API errors, and an answer's
//! JSON extensions (citations, grounding, related questions, usage).

use crate::routes::search::PostDto;
use crate::store::records::SearchRecord;
use crate::time::parse_time;
use crate::{invalid, ApiError, ErrorCode};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use tidings_agent::{
    post_url, Agent, AgentError, Answer, ModelError, SearchModeOption, SearchOptions,
};

/// The `search` extension, and a conversation's search settings as the API takes and shows
/// them (stored as `store::records::SearchRecord`).
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

impl From<&SearchBody> for SearchRecord {
    fn from(b: &SearchBody) -> SearchRecord {
        SearchRecord {
            window: b.window.clone(),
            from: b.from.clone(),
            to: b.to.clone(),
            as_of: b.as_of.clone(),
            handles: b.handles.clone(),
            exclude_handles: b.exclude_handles.clone(),
            sources: b.sources.clone(),
            langs: b.langs.clone(),
            max_results: b.max_results,
            mode: b.mode.clone(),
        }
    }
}

impl From<SearchRecord> for SearchBody {
    fn from(r: SearchRecord) -> SearchBody {
        SearchBody {
            window: r.window,
            from: r.from,
            to: r.to,
            as_of: r.as_of,
            handles: r.handles,
            exclude_handles: r.exclude_handles,
            sources: r.sources,
            langs: r.langs,
            max_results: r.max_results,
            mode: r.mode,
        }
    }
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

/// The stable code of an answer's failure (exhaustive: a new failure needs a code).
pub(crate) fn agent_code(e: &AgentError) -> ErrorCode {
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

/// The citation link: the post's URL, or its id where it has none.
pub(crate) fn citation_ref(c: &tidings_agent::Citation) -> String {
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
pub(crate) fn annotations(answer: &Answer) -> Vec<Value> {
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

pub(crate) fn usage_json(answer: &Answer) -> Value {
    json!({
        "prompt_tokens": answer.usage.prompt_tokens,
        "completion_tokens": answer.usage.completion_tokens,
        "total_tokens": answer.usage.prompt_tokens + answer.usage.completion_tokens,
    })
}
