//! `GET /v1/posts/stream` (Server-Sent Events of posts as they are indexed) and
//! `GET /v1/trending` (what many accounts post about in a window, with starter questions).

use crate::invalid;
use crate::routes::search::PostDto;
use crate::time::{parse_duration, parse_time};
use crate::{ApiError, AppState};
use axum::extract::{Query, State};
use axum::response::sse::Event;
use axum::response::Response;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tidings_agent::post_url;
use tidings_agent::suggest::trending as trends;
use tidings_index::{Post, SearchFilter, SearchMode, SearchRequest};
use tokio::sync::broadcast::error::RecvError;

/// Filters of the live stream; every given one must match.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct StreamQuery {
    /// Words that must all appear in the text (case-insensitive).
    q: Option<String>,
    /// Comma-separated handles (with or without `@`).
    handles: Option<String>,
    /// Comma-separated sources.
    sources: Option<String>,
    /// Comma-separated language codes.
    langs: Option<String>,
    /// How many recent posts to send first (0–200, default 20).
    backfill: Option<usize>,
}

fn list(raw: &Option<String>, strip: char) -> Vec<String> {
    raw.as_deref()
        .unwrap_or("")
        .split(',')
        .map(|s| s.trim().trim_start_matches(strip).to_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

/// A compiled stream filter.
struct Filter {
    words: Vec<String>,
    handles: Vec<String>,
    sources: Vec<String>,
    langs: Vec<String>,
}

impl Filter {
    fn new(q: &StreamQuery) -> Filter {
        Filter {
            words: q
                .q
                .as_deref()
                .unwrap_or("")
                .split_whitespace()
                .map(str::to_lowercase)
                .collect(),
            handles: list(&q.handles, '@'),
            sources: list(&q.sources, ' '),
            langs: list(&q.langs, ' '),
        }
    }

    fn matches(&self, p: &Post) -> bool {
        let any = |wanted: &[String], have: Option<&str>| {
            wanted.is_empty() || have.is_some_and(|h| wanted.iter().any(|w| w == h))
        };
        if !any(&self.handles, p.author.as_deref())
            || !any(&self.sources, Some(&p.source.to_lowercase()))
            || !any(&self.langs, p.lang.as_deref())
        {
            return false;
        }
        if self.words.is_empty() {
            return true;
        }
        let text = p.text.to_lowercase();
        self.words.iter().all(|w| text.contains(w.as_str()))
    }
}

async fn posts(state: &AppState, request: SearchRequest) -> Result<Vec<Post>, ApiError> {
    Ok(state
        .search
        .search(request)
        .await?
        .hits
        .into_iter()
        .map(|h| h.post)
        .collect())
}

fn post_event(p: &Post) -> Event {
    let mut v = serde_json::to_value(PostDto::from(p)).unwrap_or(Value::Null);
    v["url"] = json!(post_url(p));
    Event::default().event("post").data(v.to_string())
}

/// `GET /v1/posts/stream`: recent posts first (`backfill`), then every post as it is indexed.
/// A client that falls behind gets a `lagged` event with how many posts it missed.
#[utoipa::path(get, path = "/v1/posts/stream", tag = "live",
    summary = "Server-Sent Events of posts as they are indexed",
    description = "`post` for each newly indexed post (after a `backfill` of recent ones, then a `live` event); `lagged` when the client fell behind. Every given filter must match.",
    params(StreamQuery),
    responses((status = 200, description = "The stream", content_type = "text/event-stream", body = String)))]
pub(crate) async fn stream(
    State(state): State<AppState>,
    query: Result<Query<StreamQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| invalid(e.body_text()))?;
    let backfill = query.backfill.unwrap_or(20);
    if backfill > 200 {
        return Err(invalid("backfill must be between 0 and 200"));
    }
    let filter = Filter::new(&query);
    // Subscribe before reading the backfill so nothing falls between the two.
    let mut live = state.write.subscribe();
    let mut recent = Vec::new();
    if backfill > 0 {
        let now = Utc::now();
        let mut request = SearchRequest::new(filter.words.join(" "), now.timestamp_millis());
        request.mode = SearchMode::Text;
        request.limit = backfill;
        request.filter = SearchFilter {
            // An upper bound makes a word-less request browse the newest posts (posts may be
            // dated up to 10 minutes ahead).
            to_ms: Some((now + chrono::Duration::minutes(10)).timestamp_millis()),
            authors: filter.handles.clone(),
            sources: filter.sources.clone(),
            langs: filter.langs.clone(),
            ..SearchFilter::default()
        };
        let mut hits: Vec<Post> = posts(&state, request).await?;
        hits.retain(|p| filter.matches(p));
        // Oldest first, so a client can prepend each event as it comes.
        hits.sort_by_key(|p| p.created_at);
        recent = hits;
    }
    let events = async_stream::stream! {
        for p in &recent {
            yield Ok::<Event, std::convert::Infallible>(post_event(p));
        }
        yield Ok(Event::default().event("live").data(json!({"backfilled": recent.len()}).to_string()));
        loop {
            match live.recv().await {
                Ok(p) => {
                    if filter.matches(&p) {
                        yield Ok(post_event(&p));
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    yield Ok(Event::default().event("lagged").data(json!({"skipped": n}).to_string()));
                }
                Err(RecvError::Closed) => break,
            }
        }
    };
    Ok(crate::routes::sse_response(events))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct TrendingQuery {
    /// Look-back from `as_of` (default 6h).
    window: Option<String>,
    /// The end of the window (RFC 3339 or Unix seconds; default now).
    as_of: Option<String>,
    /// Topics to return (1–20, default 6).
    limit: Option<usize>,
}

/// Topics many accounts post about in a window.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Trending {
    as_of: DateTime<Utc>,
    window: TrendingWindow,
    /// Posts in the window.
    posts_seen: usize,
    topics: Vec<Topic>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct TrendingWindow {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

/// A topic: its label, how many posts and accounts carry it, and a question to ask about it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Topic {
    label: String,
    posts: usize,
    authors: usize,
    question: String,
}

/// `GET /v1/trending`: topics many accounts post about in the window, each with a question.
#[utoipa::path(get, path = "/v1/trending", tag = "live",
    summary = "Topics many accounts post about in a window, each with a starter question",
    params(TrendingQuery),
    responses((status = 200, description = "The topics", body = Trending)))]
pub(crate) async fn trending(
    State(state): State<AppState>,
    query: Result<Query<TrendingQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Trending>, ApiError> {
    let Query(query) = query.map_err(|e| invalid(e.body_text()))?;
    let limit = query.limit.unwrap_or(6);
    if !(1..=20).contains(&limit) {
        return Err(invalid("limit must be between 1 and 20"));
    }
    let window = parse_duration(query.window.as_deref().unwrap_or("6h"))
        .map_err(|e| invalid(format!("window: {e}")))?;
    let as_of = match &query.as_of {
        Some(raw) => parse_time(raw).map_err(|e| invalid(format!("as_of: {e}")))?,
        None => Utc::now(),
    };
    let from =
        as_of - chrono::Duration::from_std(window).map_err(|_| invalid("window is too long"))?;
    let mut request = SearchRequest::new("", as_of.timestamp_millis());
    request.mode = SearchMode::Text;
    request.limit = 500;
    request.collapse_duplicates = false;
    request.filter = SearchFilter {
        from_ms: Some(from.timestamp_millis()),
        to_ms: Some(as_of.timestamp_millis()),
        ..SearchFilter::default()
    };
    let posts = posts(&state, request).await?;
    let topics = trends(&posts, limit)
        .into_iter()
        .map(|t| Topic {
            label: t.label,
            posts: t.posts,
            authors: t.authors,
            question: t.question,
        })
        .collect();
    Ok(Json(Trending {
        as_of,
        window: TrendingWindow { from, to: as_of },
        posts_seen: posts.len(),
        topics,
    }))
}
