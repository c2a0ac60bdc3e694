//! What the answer routes share (chat completions, conversations, digests): the `search`
//! settings body and its checks, the persona check, agent errors as API errors, and an answer's
//! JSON extensions (citations, grounding, related questions, usage).

use crate::routes::search::PostDto;
use crate::store::records::SearchRecord;
use crate::time::parse_time;
use crate::{invalid, ApiError, ErrorCode};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tidings_agent::{
    post_url, Agent, AgentError, Answer, ModelError, SearchModeOption, SearchOptions,
};

/// The `search` extension, and a conversation's search settings as the API takes and shows
/// them (stored as `store::records::SearchRecord`).
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SearchSettings)]
pub(crate) struct SearchBody {
    /// A fixed look-back from `as_of` ("6h", "7d"); `auto` or absent: from the question.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) window: Option<String>,
    /// Window start: RFC 3339 or Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<String>,
    /// Window end: RFC 3339 or Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<String>,
    /// "Now" for the question (default: the present): past times replay history.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) as_of: Option<String>,
    /// Only these accounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    handles: Vec<String>,
    /// Never these accounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    exclude_handles: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    sources: Vec<String>,
    /// Language codes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    langs: Vec<String>,
    /// Posts given to the model: 1..50.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 50)]
    max_results: Option<usize>,
    /// `auto` (default: search when the question needs posts), `on` or `off`.
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
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Citation)]
pub(crate) struct CitationView {
    #[serde(flatten)]
    post: PostDto,
    /// The `[n]` marker in the answer.
    number: usize,
    /// The post's link (null where the source gives none).
    url: Option<String>,
    /// How well the citing sentence is supported by this post (0..1, two decimals).
    support: f32,
    /// Whether the agent inferred this citation for a sentence that named none.
    inferred: bool,
    /// Independent accounts among the given posts that carry what the citing sentence says
    /// (1: a single source, which the answer marks as unconfirmed).
    corroboration: usize,
}

impl From<&tidings_agent::Citation> for CitationView {
    fn from(c: &tidings_agent::Citation) -> CitationView {
        CitationView {
            post: PostDto::from(&c.post).without_url(),
            number: c.number,
            url: post_url(&c.post),
            support: (c.support * 100.0).round() / 100.0,
            inferred: c.inferred,
            corroboration: c.corroboration,
        }
    }
}

/// The answer's fields beside OpenAI's: citations, the posts behind them, follow-up
/// questions, and Tidings' own report (`tidings`). Shared by streamed and whole answers and
/// stored with a conversation's answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = AnswerExtensions)]
pub(crate) struct Extensions {
    /// Links of the cited posts (the post id where a post has no URL), in citation order.
    citations: Vec<String>,
    search_results: Vec<CitationView>,
    related_questions: Vec<String>,
    tidings: Report,
}

/// What Tidings did to answer: the window searched, grounding, timings.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = AnswerReport)]
struct Report {
    as_of: chrono::DateTime<chrono::Utc>,
    window: WindowView,
    /// The window the question named, when nothing was in it and a wider one was searched.
    widened_from: Option<String>,
    no_results: bool,
    persona: String,
    backend_model: String,
    /// Citation markers removed because they named no given post.
    dropped_citations: usize,
    grounding: GroundingView,
    timings_ms: TimingsView,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Window)]
struct WindowView {
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
    /// In words: "the last 2 hours", "yesterday (2013-04-15)".
    label: String,
}

/// The sentence check: sentences kept, the ones removed for want of support, and whether
/// the answer was built from the posts' own words instead.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Grounding)]
struct GroundingView {
    kept_sentences: usize,
    /// Kept sentences whose citations the check replaced with the posts that support them.
    recited_sentences: usize,
    /// Kept sentences that copied a post with its prompt header, shown as a quote of it.
    quoted_sentences: usize,
    dropped_sentences: Vec<String>,
    extractive: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Timings)]
struct TimingsView {
    retrieval: f64,
    first_token: Option<f64>,
    model_first_token: Option<f64>,
    model: f64,
    total: f64,
}

/// The extension fields shared by streamed and whole answers.
pub(crate) fn extensions(answer: &Answer) -> Extensions {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    Extensions {
        citations: answer.citations.iter().map(citation_ref).collect(),
        search_results: answer.citations.iter().map(CitationView::from).collect(),
        related_questions: answer.related_questions.clone(),
        tidings: Report {
            as_of: answer.as_of,
            window: WindowView {
                from: answer.window.from,
                to: answer.window.to,
                label: answer.window.label.clone(),
            },
            widened_from: answer.widened_from.as_ref().map(|w| w.label.clone()),
            no_results: answer.no_results,
            persona: answer.persona.clone(),
            backend_model: answer.model.clone(),
            dropped_citations: answer.dropped_citations,
            grounding: GroundingView {
                kept_sentences: answer.grounding.kept,
                recited_sentences: answer.grounding.recited,
                quoted_sentences: answer.grounding.quoted,
                dropped_sentences: answer.grounding.dropped.clone(),
                extractive: answer.grounding.extractive,
            },
            timings_ms: TimingsView {
                retrieval: ms(answer.timings.retrieval),
                first_token: answer.timings.first_token.map(ms),
                model_first_token: answer.timings.model_first_token.map(ms),
                model: ms(answer.timings.model),
                total: ms(answer.timings.total),
            },
        },
    }
}

/// An OpenAI-style `url_citation` annotation: where a `[n]` marker stands in the text.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Annotation {
    /// Always `url_citation`.
    #[serde(rename = "type")]
    kind: &'static str,
    url_citation: UrlCitation,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct UrlCitation {
    url: String,
    /// "@author — date".
    title: String,
    /// Character offsets of the marker in the content.
    start_index: usize,
    end_index: usize,
}

/// OpenAI-style `url_citation` annotations, one per marker in the text (character offsets).
pub(crate) fn annotations(answer: &Answer) -> Vec<Annotation> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = answer.text.char_indices().collect();
    let char_at = |byte: usize| chars.iter().position(|(b, _)| *b == byte).unwrap_or(0);
    for c in &answer.citations {
        let marker = format!("[{}]", c.number);
        for (start, _) in answer.text.match_indices(&marker) {
            let s = char_at(start);
            out.push(Annotation {
                kind: "url_citation",
                url_citation: UrlCitation {
                    url: c
                        .url
                        .clone()
                        .unwrap_or_else(|| format!("/v1/posts/{}", c.post.id)),
                    title: format!(
                        "{} — {}",
                        c.post
                            .author
                            .as_deref()
                            .map(|a| format!("@{a}"))
                            .unwrap_or_else(|| "post".into()),
                        c.post.created_at.format("%Y-%m-%d %H:%M UTC")
                    ),
                    start_index: s,
                    end_index: s + marker.chars().count(),
                },
            });
        }
    }
    out
}

/// Token counts as OpenAI reports them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct UsageView {
    prompt_tokens: u32,
    completion_tokens: u32,
    total_tokens: u32,
}

pub(crate) fn usage(answer: &Answer) -> UsageView {
    UsageView {
        prompt_tokens: answer.usage.prompt_tokens,
        completion_tokens: answer.usage.completion_tokens,
        total_tokens: answer.usage.prompt_tokens + answer.usage.completion_tokens,
    }
}
