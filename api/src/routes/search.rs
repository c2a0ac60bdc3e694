//! `GET|POST /v1/search`: hybrid search with time window, filters and a per-hit score breakdown.

use crate::time::{parse_duration, parse_time};
use crate::{invalid, ErrorCode};
use crate::{ApiError, AppState};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tidings_index::{Post, Ranker, SearchFilter, SearchHit, SearchMode, SearchRequest};

/// The search request as clients send it (POST body; GET uses the same names, lists comma-separated).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SearchRequest)]
pub(crate) struct SearchBody {
    /// Query text (alias `query`).
    #[serde(alias = "query")]
    q: Option<String>,
    /// Relative window ending at `as_of`: `30m`, `2h`, `7d`.
    since: Option<String>,
    /// Window start: RFC 3339 or Unix seconds.
    from: Option<String>,
    /// Window end: RFC 3339 or Unix seconds.
    to: Option<String>,
    /// "Now" for the window and recency decay (default: the present).
    as_of: Option<String>,
    /// Handles (alias `handles`).
    #[serde(default, alias = "handles")]
    authors: Vec<String>,
    /// Handles to leave out (alias `exclude_handles`).
    #[serde(default, alias = "exclude_handles")]
    exclude_authors: Vec<String>,
    #[serde(default)]
    sources: Vec<String>,
    /// Language codes.
    #[serde(default)]
    langs: Vec<String>,
    /// 1..100 hits.
    limit: Option<usize>,
    /// `hybrid` (default), `text` or `vector`.
    mode: Option<String>,
    /// How hybrid candidates are ordered: `learned` (default) or `fusion`.
    ranker: Option<String>,
    /// Recency half-life (`1h`), or `off`.
    half_life: Option<String>,
    /// Collapse near-duplicates into their first post (default true).
    collapse: Option<bool>,
    /// The fields each hit carries (default: all): any of `id`, `source`, `url`, `author`,
    /// `author_name`, `text`, `created_at`, `ingested_at`, `lang`, `hashtags`, `mentions`,
    /// `links`, `labels`, `score`, `score_breakdown`, `duplicates`. A bot that needs only ids
    /// asks for `["id"]`: a tenth of the bytes to send and to parse.
    #[serde(default)]
    fields: Vec<String>,
}

/// `GET /v1/search`: the fields of [`SearchBody`], lists comma-separated.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct SearchParams {
    /// Query text (alias `query`).
    #[serde(alias = "query")]
    q: Option<String>,
    /// Window ending at `as_of`: `30m`, `2h`, `7d`.
    since: Option<String>,
    /// Window start: RFC 3339 or Unix seconds.
    from: Option<String>,
    /// Window end: RFC 3339 or Unix seconds.
    to: Option<String>,
    /// "Now" for the window and recency decay.
    as_of: Option<String>,
    /// Comma-separated handles (alias `handles`).
    #[serde(alias = "handles")]
    authors: Option<String>,
    /// Comma-separated handles to leave out (alias `exclude_handles`).
    #[serde(alias = "exclude_handles")]
    exclude_authors: Option<String>,
    /// Comma-separated sources.
    sources: Option<String>,
    /// Comma-separated language codes.
    langs: Option<String>,
    /// 1..100 hits.
    limit: Option<usize>,
    /// `hybrid` (default), `text` or `vector`.
    mode: Option<String>,
    /// `learned` (default) or `fusion`: how hybrid candidates are ordered.
    ranker: Option<String>,
    /// Recency half-life (`1h`), or `off`.
    half_life: Option<String>,
    /// Collapse near-duplicates (default true).
    collapse: Option<bool>,
    /// Comma-separated fields each hit carries (default: all; see the POST body).
    fields: Option<String>,
}

fn split(list: Option<String>) -> Vec<String> {
    list.map(|l| {
        l.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    })
    .unwrap_or_default()
}

impl From<SearchParams> for SearchBody {
    fn from(p: SearchParams) -> SearchBody {
        SearchBody {
            q: p.q,
            since: p.since,
            from: p.from,
            to: p.to,
            as_of: p.as_of,
            authors: split(p.authors),
            exclude_authors: split(p.exclude_authors),
            sources: split(p.sources),
            langs: split(p.langs),
            limit: p.limit,
            mode: p.mode,
            ranker: p.ranker,
            half_life: p.half_life,
            collapse: p.collapse,
            fields: split(p.fields),
        }
    }
}

/// A post as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Post)]
pub(crate) struct PostDto {
    id: String,
    source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    author: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    author_name: Option<String>,
    text: String,
    created_at: DateTime<Utc>,
    ingested_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lang: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hashtags: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    mentions: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    links: Vec<String>,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    labels: std::collections::BTreeMap<String, String>,
}

impl PostDto {
    /// The post without its `url` (for views that give the link themselves).
    pub(crate) fn without_url(mut self) -> PostDto {
        self.url = None;
        self
    }
}

impl From<&Post> for PostDto {
    fn from(p: &Post) -> PostDto {
        PostDto {
            id: p.id.to_string(),
            source: p.source.clone(),
            url: p.url.clone(),
            author: p.author.clone(),
            author_name: p.author_name.clone(),
            text: p.text.clone(),
            created_at: p.created_at,
            ingested_at: p.ingested_at,
            lang: p.lang.clone(),
            hashtags: p.hashtags.clone(),
            mentions: p.mentions.clone(),
            links: p.links.clone(),
            labels: p.labels.clone(),
        }
    }
}

/// How a hit's score was made: each retriever's score and rank, the fused and reranked
/// scores, and the recency and engagement factors.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ScoreBreakdown)]
struct BreakdownDto {
    #[serde(skip_serializing_if = "Option::is_none")]
    bm25: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bm25_rank: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dense: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dense_rank: Option<usize>,
    fused: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    rerank: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    answers: Option<f32>,
    recency: f32,
    engagement: f32,
}

/// A post found, with its score.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = SearchHit)]
struct HitDto {
    #[serde(flatten)]
    post: PostDto,
    score: f32,
    score_breakdown: BreakdownDto,
    /// Ids of near-duplicates collapsed into this hit.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    duplicates: Vec<String>,
}

impl From<&SearchHit> for HitDto {
    fn from(h: &SearchHit) -> HitDto {
        let b = &h.breakdown;
        HitDto {
            post: PostDto::from(&h.post),
            score: h.score,
            score_breakdown: BreakdownDto {
                bm25: b.bm25,
                bm25_rank: b.bm25_rank,
                dense: b.dense,
                dense_rank: b.dense_rank,
                fused: b.fused,
                rerank: b.rerank,
                answers: b.answers,
                recency: b.recency,
                engagement: b.engagement,
            },
            duplicates: h.duplicates.clone(),
        }
    }
}

/// A field of a hit a client may ask for (`fields`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HitField {
    Id,
    Source,
    Url,
    Author,
    AuthorName,
    Text,
    CreatedAt,
    IngestedAt,
    Lang,
    Hashtags,
    Mentions,
    Links,
    Labels,
    Score,
    ScoreBreakdown,
    Duplicates,
}

impl HitField {
    const ALL: [(&'static str, HitField); 16] = [
        ("id", HitField::Id),
        ("source", HitField::Source),
        ("url", HitField::Url),
        ("author", HitField::Author),
        ("author_name", HitField::AuthorName),
        ("text", HitField::Text),
        ("created_at", HitField::CreatedAt),
        ("ingested_at", HitField::IngestedAt),
        ("lang", HitField::Lang),
        ("hashtags", HitField::Hashtags),
        ("mentions", HitField::Mentions),
        ("links", HitField::Links),
        ("labels", HitField::Labels),
        ("score", HitField::Score),
        ("score_breakdown", HitField::ScoreBreakdown),
        ("duplicates", HitField::Duplicates),
    ];

    fn parse(name: &str) -> Result<HitField, ApiError> {
        HitField::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, f)| *f)
            .ok_or_else(|| {
                let names: Vec<&str> = HitField::ALL.iter().map(|(n, _)| *n).collect();
                invalid(format!(
                    "`fields` names `{name}`, which a hit does not have; use any of {}",
                    names.join(", ")
                ))
            })
    }

    fn name(self) -> &'static str {
        HitField::ALL
            .iter()
            .find(|(_, f)| *f == self)
            .map_or("", |(n, _)| n)
    }
}

/// A hit as sent: whole, or only the fields the client asked for (in the order asked; an
/// optional field the post lacks is left out, as in a whole hit).
#[derive(Debug)]
struct SentHit {
    hit: HitDto,
    fields: Option<std::sync::Arc<[HitField]>>,
}

impl Serialize for SentHit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let Some(fields) = &self.fields else {
            return self.hit.serialize(s);
        };
        let (h, p) = (&self.hit, &self.hit.post);
        let mut map = s.serialize_map(None)?;
        for &f in fields.iter() {
            let name = f.name();
            match f {
                HitField::Id => map.serialize_entry(name, &p.id)?,
                HitField::Source => map.serialize_entry(name, &p.source)?,
                HitField::Text => map.serialize_entry(name, &p.text)?,
                HitField::CreatedAt => map.serialize_entry(name, &p.created_at)?,
                HitField::IngestedAt => map.serialize_entry(name, &p.ingested_at)?,
                HitField::Score => map.serialize_entry(name, &h.score)?,
                HitField::ScoreBreakdown => map.serialize_entry(name, &h.score_breakdown)?,
                HitField::Url => optional(&mut map, name, &p.url)?,
                HitField::Author => optional(&mut map, name, &p.author)?,
                HitField::AuthorName => optional(&mut map, name, &p.author_name)?,
                HitField::Lang => optional(&mut map, name, &p.lang)?,
                HitField::Hashtags if !p.hashtags.is_empty() => {
                    map.serialize_entry(name, &p.hashtags)?
                }
                HitField::Mentions if !p.mentions.is_empty() => {
                    map.serialize_entry(name, &p.mentions)?
                }
                HitField::Links if !p.links.is_empty() => map.serialize_entry(name, &p.links)?,
                HitField::Labels if !p.labels.is_empty() => map.serialize_entry(name, &p.labels)?,
                HitField::Duplicates if !h.duplicates.is_empty() => {
                    map.serialize_entry(name, &h.duplicates)?
                }
                HitField::Hashtags
                | HitField::Mentions
                | HitField::Links
                | HitField::Labels
                | HitField::Duplicates => {}
            }
        }
        map.end()
    }
}

fn optional<M: serde::ser::SerializeMap>(
    map: &mut M,
    name: &'static str,
    value: &Option<String>,
) -> Result<(), M::Error> {
    match value {
        Some(v) => map.serialize_entry(name, v),
        None => Ok(()),
    }
}

/// How many candidates each retriever gave before fusion.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Candidates {
    bm25: usize,
    dense: usize,
}

/// Hits with their score breakdown, and the window searched.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct SearchResponse {
    query: String,
    /// `hybrid`, `text` or `vector`.
    mode: &'static str,
    as_of: DateTime<Utc>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    half_life_seconds: Option<u64>,
    took_ms: f64,
    candidates: Candidates,
    /// Why a retriever was left out (e.g. vectors unavailable): the hits are BM25's alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    degraded: Option<String>,
    /// Whole, or with the fields asked for.
    #[schema(value_type = Vec<HitDto>)]
    hits: Vec<SentHit>,
}

/// The fields each hit carries: `None` for all.
fn hit_fields(names: &[String]) -> Result<Option<std::sync::Arc<[HitField]>>, ApiError> {
    if names.is_empty() {
        return Ok(None);
    }
    let mut fields: Vec<HitField> = Vec::with_capacity(names.len());
    for name in names {
        let f = HitField::parse(name.trim())?;
        if !fields.contains(&f) {
            fields.push(f);
        }
    }
    Ok(Some(fields.into()))
}

/// Turns client input into a resolved [`SearchRequest`].
fn resolve(body: SearchBody, state: &AppState) -> Result<SearchRequest, ApiError> {
    let query = body.q.unwrap_or_default();
    if query.trim().is_empty() {
        return Err(invalid("`q` is required: the words to search for"));
    }
    if query.chars().count() > 1000 {
        return Err(invalid("`q` is longer than 1000 characters"));
    }
    let as_of = match body.as_of.as_deref() {
        Some(t) => parse_time(t).map_err(|e| invalid(format!("`as_of`: {e}")))?,
        None => Utc::now(),
    };
    let to = match body.to.as_deref() {
        Some(t) => Some(parse_time(t).map_err(|e| invalid(format!("`to`: {e}")))?),
        None => None,
    };
    let from = match (body.from.as_deref(), body.since.as_deref()) {
        (Some(_), Some(_)) => return Err(invalid("give either `from` or `since`, not both")),
        (Some(t), None) => Some(parse_time(t).map_err(|e| invalid(format!("`from`: {e}")))?),
        (None, Some(s)) => {
            let d = parse_duration(s).map_err(|e| invalid(format!("`since`: {e}")))?;
            let d = chrono::Duration::from_std(d).map_err(|_| invalid("`since` is too long"))?;
            Some(to.unwrap_or(as_of) - d)
        }
        (None, None) => None,
    };
    // A window given relative to `as_of` never reaches past it.
    let to = to.or(if from.is_some() || body.as_of.is_some() {
        Some(as_of)
    } else {
        None
    });
    if let (Some(f), Some(t)) = (from, to) {
        if f > t {
            return Err(invalid(format!(
                "the window starts ({f}) after it ends ({t})"
            )));
        }
    }
    let limit = body.limit.unwrap_or(10);
    let max = state.config.max_search_results;
    if limit == 0 || limit > max {
        return Err(invalid(format!("`limit` must be between 1 and {max}")));
    }
    let mode = match body.mode.as_deref().unwrap_or("hybrid") {
        "hybrid" | "auto" => SearchMode::Hybrid,
        "text" | "bm25" => SearchMode::Text,
        "vector" | "dense" | "semantic" => SearchMode::Vector,
        other => {
            return Err(invalid(format!(
                "`mode` is `{other}`; use hybrid, text or vector"
            )))
        }
    };
    let ranker = match body.ranker.as_deref().unwrap_or("learned") {
        "learned" | "rerank" => Ranker::Learned,
        "fusion" => Ranker::Fusion,
        other => {
            return Err(invalid(format!(
                "`ranker` is `{other}`; use learned or fusion"
            )))
        }
    };
    let half_life = match body.half_life.as_deref() {
        Some("off" | "none" | "0") => None,
        Some(h) => Some(parse_duration(h).map_err(|e| invalid(format!("`half_life`: {e}")))?),
        None => state.config.default_half_life,
    };
    let handles = |list: Vec<String>, field: &str| -> Result<Vec<String>, ApiError> {
        list.iter()
            .map(|h| {
                tidings_ingest::validate::normalize_handle(h)
                    .map_err(|e| invalid(format!("`{field}`: {e}")))
            })
            .collect()
    };
    let lower = |list: Vec<String>| {
        list.into_iter()
            .map(|s| s.to_lowercase())
            .collect::<Vec<_>>()
    };
    Ok(SearchRequest {
        query,
        semantic_query: None,
        filter: SearchFilter {
            from_ms: from.map(|t| t.timestamp_millis()),
            to_ms: to.map(|t| t.timestamp_millis()),
            authors: handles(body.authors, "authors")?,
            exclude_authors: handles(body.exclude_authors, "exclude_authors")?,
            sources: body.sources,
            langs: lower(body.langs),
        },
        as_of_ms: as_of.timestamp_millis(),
        half_life,
        limit,
        mode,
        collapse_duplicates: body.collapse.unwrap_or(true),
        ranker,
    })
}

async fn run(state: AppState, mut body: SearchBody) -> Result<Json<SearchResponse>, ApiError> {
    let fields = hit_fields(&std::mem::take(&mut body.fields))?;
    let request = resolve(body, &state)?;
    let to_time = |ms: Option<i64>| ms.and_then(DateTime::from_timestamp_millis);
    let (query, mode, as_of, from, to, half_life) = (
        request.query.clone(),
        request.mode,
        DateTime::from_timestamp_millis(request.as_of_ms).unwrap_or_else(Utc::now),
        to_time(request.filter.from_ms),
        to_time(request.filter.to_ms),
        request.half_life,
    );
    let results = state.search.search(request).await?;
    state.metrics.observe_search(results.took);
    Ok(Json(SearchResponse {
        query,
        mode: match mode {
            SearchMode::Hybrid => "hybrid",
            SearchMode::Text => "text",
            SearchMode::Vector => "vector",
        },
        as_of,
        from,
        to,
        half_life_seconds: half_life.map(|h| h.as_secs()),
        took_ms: results.took.as_secs_f64() * 1000.0,
        candidates: Candidates {
            bm25: results.bm25_candidates,
            dense: results.dense_candidates,
        },
        degraded: results.degraded,
        hits: results
            .hits
            .iter()
            .map(|h| SentHit {
                hit: HitDto::from(h),
                fields: fields.clone(),
            })
            .collect(),
    }))
}

/// `GET /v1/search`.
#[utoipa::path(get, path = "/v1/search", tag = "search", summary = "Hybrid search (query parameters)",
    params(SearchParams),
    responses((status = 200, description = "Hits with score breakdown", body = SearchResponse)))]
pub(crate) async fn search_get(
    State(state): State<AppState>,
    params: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Json<SearchResponse>, ApiError> {
    let Query(params) =
        params.map_err(|e| invalid(format!("bad query string: {}", e.body_text())))?;
    run(state, params.into()).await
}

/// `POST /v1/search`.
#[utoipa::path(post, path = "/v1/search", tag = "search", summary = "Hybrid search (JSON body)",
    request_body = SearchBody,
    responses((status = 200, description = "Hits with score breakdown", body = SearchResponse)))]
pub(crate) async fn search_post(
    State(state): State<AppState>,
    body: Result<Json<SearchBody>, JsonRejection>,
) -> Result<Json<SearchResponse>, ApiError> {
    let Json(body) = body.map_err(|e| match e {
        JsonRejection::MissingJsonContentType(_) => ApiError::bad_request(
            ErrorCode::InvalidContentType,
            "send the search as JSON with `content-type: application/json`",
        ),
        e => ApiError::bad_request(ErrorCode::InvalidJson, e.body_text()),
    })?;
    run(state, body).await
}
