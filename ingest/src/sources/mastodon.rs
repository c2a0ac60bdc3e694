//! Mastodon streaming API (Server-Sent Events): `GET /api/v1/streaming/<timeline>`.
//!
//! Public, local, hashtag and list timelines, with an optional access token. `update` adds a
//! status, `status.update` replaces it (an edit), `delete` removes it; other events are counted
//! and skipped. HTML content becomes text; a boost indexes the boosted status. The streaming API
//! has no resume position, so the newest status id seen is the checkpoint, and after a
//! reconnect or restart the matching REST timeline is read from it (`min_id`, up to 400
//! statuses) while the new stream buffers; what both deliver is a duplicate.

use super::SourceError;
use super::{html, Backoff, Batcher, Filter, SourceCtx};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::Duration;
use tidings_index::{Change, PostId};
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MastodonSpec {
    #[serde(default)]
    pub name: Option<String>,
    /// The instance, e.g. `https://mastodon.social`.
    pub url: String,
    /// `public`, `public:local`, `public:remote`, `hashtag`, `hashtag:local`, `list` or `user`.
    #[serde(default = "default_timeline")]
    pub timeline: String,
    /// For `hashtag` timelines.
    #[serde(default)]
    pub tag: Option<String>,
    /// For `list` timelines.
    #[serde(default)]
    pub list: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    /// Reconnect when nothing (not even a heartbeat) arrives for this long.
    #[serde(default = "default_idle")]
    pub idle_timeout_secs: u64,
    #[serde(default)]
    pub filter: Filter,
}

fn default_timeline() -> String {
    "public".into()
}

fn default_idle() -> u64 {
    90
}

impl MastodonSpec {
    /// The instance's host, used in post ids (`mastodon:<host>:<id>`).
    pub fn host(&self) -> String {
        let rest = self
            .url
            .split_once("://")
            .map_or(self.url.as_str(), |(_, r)| r);
        rest.split(['/', '?']).next().unwrap_or(rest).to_lowercase()
    }

    pub(crate) fn check(&self) -> Result<(), SourceError> {
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(SourceError::Config(format!(
                "url `{}` is not an http(s) URL",
                self.url
            )));
        }
        self.path().map(|_| ())
    }

    /// The REST timeline matching the streamed one (for backfill after a disconnect).
    fn rest_path(&self) -> Option<String> {
        let tag = || {
            self.tag
                .as_deref()
                .map(|t| t.trim_start_matches('#').to_string())
        };
        Some(match self.timeline.as_str() {
            "public" => "/api/v1/timelines/public".to_string(),
            "public:local" => "/api/v1/timelines/public?local=true".to_string(),
            "public:remote" => "/api/v1/timelines/public?remote=true".to_string(),
            "hashtag" => format!("/api/v1/timelines/tag/{}", tag()?),
            "hashtag:local" => format!("/api/v1/timelines/tag/{}?local=true", tag()?),
            "list" => format!("/api/v1/timelines/list/{}", self.list.as_deref()?),
            "user" => "/api/v1/timelines/home".to_string(),
            _ => return None,
        })
    }

    /// The streaming path and query for the timeline.
    fn path(&self) -> Result<String, SourceError> {
        let (path, need): (&str, Option<(&str, &Option<String>)>) = match self.timeline.as_str() {
            "public" => ("public", None),
            "public:local" => ("public/local", None),
            "public:remote" => ("public/remote", None),
            "hashtag" => ("hashtag", Some(("tag", &self.tag))),
            "hashtag:local" => ("hashtag/local", Some(("tag", &self.tag))),
            "list" => ("list", Some(("list", &self.list))),
            "user" => ("user", None),
            other => {
                return Err(SourceError::Config(format!(
                    "timeline `{other}`: use public, public:local, public:remote, hashtag, hashtag:local, list or user"
                )))
            }
        };
        let mut out = format!("/api/v1/streaming/{path}");
        if let Some((key, value)) = need {
            let v = value.as_deref().filter(|v| !v.is_empty()).ok_or_else(|| {
                SourceError::Config(format!("the {} timeline needs `{key}`", self.timeline))
            })?;
            let v: String = v
                .trim_start_matches('#')
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect();
            out.push_str(&format!("?{key}={v}"));
        }
        if matches!(self.timeline.as_str(), "user" | "list") && self.access_token.is_none() {
            return Err(SourceError::Config(format!(
                "the {} timeline needs an access_token",
                self.timeline
            )));
        }
        Ok(out)
    }
}

/// Streams the timeline until `stop`.
pub async fn run(
    spec: MastodonSpec,
    ctx: SourceCtx,
    stop: CancellationToken,
) -> Result<(), SourceError> {
    spec.check()?;
    let url = format!("{}{}", spec.url.trim_end_matches('/'), spec.path()?);
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(15))
        .user_agent(concat!("tidings/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| SourceError::Setup(format!("http client: {e}")))?;
    let host = spec.host();
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    let mut batch = Batcher::new();
    // The newest status id seen: stored as the checkpoint, and where backfill starts.
    let mut last_id = ctx.resume_from.clone();
    loop {
        ctx.status.connecting(&url);
        let error = match session(
            &client,
            &url,
            &spec,
            &host,
            &ctx,
            &stop,
            &mut batch,
            &mut backoff,
            &mut last_id,
        )
        .await
        {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if !batch.flush(&ctx).await {
            return Ok(());
        }
        let wait = backoff.next_delay();
        ctx.status.disconnected(&error.to_string(), wait);
        tracing::warn!(source = %ctx.name, error = %error, retry_in = ?wait, "mastodon stream disconnected");
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => return Ok(()),
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn session(
    client: &reqwest::Client,
    url: &str,
    spec: &MastodonSpec,
    host: &str,
    ctx: &SourceCtx,
    stop: &CancellationToken,
    batch: &mut Batcher,
    backoff: &mut Backoff,
    last_id: &mut Option<String>,
) -> Result<(), SourceError> {
    let mut request = client.get(url).header("accept", "text/event-stream");
    if let Some(token) = &spec.access_token {
        request = request.bearer_auth(token);
    }
    let response = tokio::select! {
        r = request.send() => r.map_err(|e| SourceError::Disconnected(format!("connect: {e}")))?,
        _ = stop.cancelled() => return Ok(()),
    };
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err(SourceError::Disconnected(format!(
            "HTTP {status}: {}",
            body.chars().take(200).collect::<String>()
        )));
    }
    ctx.status.connected();
    tracing::info!(source = %ctx.name, %url, "mastodon stream connected");
    let mut events = response.bytes_stream().eventsource();
    // The stream is open (and buffering): fetch what was missed since the last status seen.
    if last_id.is_some() {
        match backfill(client, spec, host, ctx, batch, last_id).await {
            Ok(n) if n > 0 => tracing::info!(source = %ctx.name, statuses = n, "mastodon backfill"),
            Ok(_) => {}
            Err(e) => {
                // Not fatal: some instances refuse anonymous timelines; the stream goes on.
                ctx.status.set_error(&e.to_string());
                tracing::warn!(source = %ctx.name, error = %e, "mastodon backfill failed");
            }
        }
    }
    let idle = Duration::from_secs(spec.idle_timeout_secs.max(1));
    loop {
        let deadline = batch.deadline(ctx.limits.batch_wait);
        let next = tokio::select! {
            _ = stop.cancelled() => { batch.flush(ctx).await; return Ok(()); }
            _ = async { tokio::time::sleep_until(deadline.expect("guarded")).await }, if deadline.is_some() => {
                if !batch.flush(ctx).await { return Ok(()); }
                continue;
            }
            n = tokio::time::timeout(idle, events.next()) => n,
        };
        let event = match next {
            Err(_) => {
                return Err(SourceError::Disconnected(format!(
                    "nothing for {} s",
                    idle.as_secs()
                )))
            }
            Ok(None) => return Err(SourceError::Disconnected("stream ended".into())),
            Ok(Some(Err(eventsource_stream::EventStreamError::Transport(e)))) => {
                return Err(SourceError::Disconnected(format!("read: {e}")))
            }
            Ok(Some(Err(e))) => {
                // Invalid UTF-8 or a line the SSE parser cannot read: dead-lettered, and the
                // stream goes on (a stream that cannot go on ends and is reconnected).
                ctx.status.count(|c| &c.received);
                let code = match e {
                    eventsource_stream::EventStreamError::Utf8(_) => {
                        crate::RejectionCode::InvalidUtf8
                    }
                    _ => crate::RejectionCode::MalformedEvent,
                };
                let message = e.to_string();
                ctx.reject(
                    &crate::Rejection {
                        code,
                        field: None,
                        message: format!("unreadable event: {message}"),
                    },
                    message.as_bytes(),
                );
                continue;
            }
            Ok(Some(Ok(ev))) => ev,
        };
        backoff.reset();
        handle(
            &ev_name(&event.event),
            &event.data,
            host,
            ctx,
            batch,
            last_id,
        );
        if batch.len() >= ctx.limits.batch_changes && !batch.flush(ctx).await {
            return Ok(());
        }
    }
}

fn ev_name(name: &str) -> String {
    if name.is_empty() {
        "message".into()
    } else {
        name.to_string()
    }
}

/// One streaming event (`event:` name and `data:`) through the live parser; returns the changes
/// it produced.
pub(crate) fn parse_one(event: &str, data: &str) -> usize {
    let ctx = SourceCtx::scratch("fuzz", "mastodon");
    let mut batch = Batcher::new();
    let mut last_id = None;
    handle(
        event,
        data,
        "mastodon.example",
        &ctx,
        &mut batch,
        &mut last_id,
    );
    SourceCtx::batch_len(&batch)
}

/// Applies one streaming event to the batch.
fn handle(
    event: &str,
    data: &str,
    host: &str,
    ctx: &SourceCtx,
    batch: &mut Batcher,
    last_id: &mut Option<String>,
) {
    let Some(data) = ctx.admit(data.as_bytes()) else {
        return;
    };
    match event {
        "update" | "status.update" => {
            let status: Value = match serde_json::from_str(data) {
                Ok(v) => v,
                Err(e) => {
                    ctx.reject(
                        &crate::Rejection::malformed(format!(
                            "`{event}` data is not valid JSON: {e}"
                        )),
                        data.as_bytes(),
                    );
                    return;
                }
            };
            apply_status(status, data.as_bytes(), host, ctx, batch, last_id);
        }
        "delete" => {
            let id = data.trim().trim_matches('"');
            match PostId::parse(&format!("mastodon:{host}:{id}")) {
                Ok(id) if !data.trim().is_empty() => batch.push(Change::Delete(id)),
                _ => ctx.reject(
                    &crate::Rejection::malformed("`delete` without a status id"),
                    data.as_bytes(),
                ),
            }
        }
        _ => ctx.status.count(|c| &c.ignored),
    }
}

/// Indexes one status (a boost indexes the boosted one) and moves the position to its id.
fn apply_status(
    status: Value,
    raw: &[u8],
    host: &str,
    ctx: &SourceCtx,
    batch: &mut Batcher,
    last_id: &mut Option<String>,
) {
    let outer_id = status.get("id").and_then(Value::as_str).map(String::from);
    let status = match status.get("reblog") {
        Some(inner) if inner.is_object() => inner.clone(),
        _ => status,
    };
    let created = status
        .get("created_at")
        .and_then(Value::as_str)
        .and_then(|t| t.parse().ok());
    match status_record(&status, host) {
        Some(record) => {
            if let Some(post) = ctx.post(record, raw) {
                batch.push(Change::Upsert(post));
            }
        }
        None => ctx.status.count(|c| &c.ignored),
    }
    if let Some(id) = outer_id {
        if last_id.as_deref().is_none_or(|last| newer(&id, last)) {
            *last_id = Some(id);
        }
    }
    batch.at(last_id.clone(), created);
}

/// Mastodon ids are decimal numbers in strings (snowflake-like): longer is newer.
fn newer(a: &str, b: &str) -> bool {
    (a.len(), a) > (b.len(), b)
}

/// Fetches what the timeline got since `last_id` (while disconnected, or before a restart)
/// through the REST timeline, oldest first, up to 10 pages of 40.
async fn backfill(
    client: &reqwest::Client,
    spec: &MastodonSpec,
    host: &str,
    ctx: &SourceCtx,
    batch: &mut Batcher,
    last_id: &mut Option<String>,
) -> Result<usize, SourceError> {
    let Some(path) = spec.rest_path() else {
        return Ok(0);
    };
    let base = spec.url.trim_end_matches('/');
    let mut added = 0;
    for _ in 0..10 {
        let Some(min) = last_id.clone() else { break };
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut request = client.get(format!("{base}{path}{sep}min_id={min}&limit=40"));
        if let Some(token) = &spec.access_token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .map_err(|e| SourceError::Disconnected(format!("backfill: {e}")))?;
        let status = response.status();
        if !status.is_success() {
            return Err(SourceError::Disconnected(format!(
                "backfill: HTTP {status}"
            )));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| SourceError::Disconnected(format!("backfill: {e}")))?;
        let statuses: Vec<Value> = serde_json::from_slice(&body)
            .map_err(|e| SourceError::Disconnected(format!("backfill: not a status list: {e}")))?;
        let page = statuses.len();
        // Newest first on the wire; applied oldest first.
        for status in statuses.into_iter().rev() {
            ctx.status.count(|c| &c.received);
            let raw = status.to_string();
            apply_status(status, raw.as_bytes(), host, ctx, batch, last_id);
            added += 1;
        }
        if !batch.flush(ctx).await || page < 40 {
            break;
        }
    }
    Ok(added)
}

/// A status in Tidings' shape; `None` when it has no text.
pub fn status_record(status: &Value, host: &str) -> Option<Value> {
    let id = status.get("id").and_then(Value::as_str)?;
    let (mut text, links) =
        html::to_text(status.get("content").and_then(Value::as_str).unwrap_or(""));
    if let Some(cw) = status
        .get("spoiler_text")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        text = format!("CW: {}\n\n{text}", html::decode(cw));
    }
    if text.trim().is_empty() {
        return None;
    }
    let account = status.get("account").cloned().unwrap_or(Value::Null);
    let mut out = json!({
        "id": format!("mastodon:{host}:{id}"),
        "source": "mastodon",
        "text": text,
        "created_at": status.get("created_at").cloned().unwrap_or(Value::Null),
        "author": account.get("acct").cloned().unwrap_or(Value::Null),
        "url": status.get("url").filter(|u| u.is_string()).or_else(|| status.get("uri")).cloned().unwrap_or(Value::Null),
        "likes": status.get("favourites_count").and_then(Value::as_u64).unwrap_or(0),
        "reposts": status.get("reblogs_count").and_then(Value::as_u64).unwrap_or(0),
        "replies": status.get("replies_count").and_then(Value::as_u64).unwrap_or(0),
    });
    if let Some(name) = account
        .get("display_name")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        out["author_name"] = json!(name);
    }
    if let Some(lang) = status.get("language").and_then(Value::as_str) {
        out["lang"] = json!(lang);
    }
    if let Some(parent) = status.get("in_reply_to_id").and_then(Value::as_str) {
        out["reply_to"] = json!(format!("mastodon:{host}:{parent}"));
    }
    let tags: Vec<&str> = status
        .get("tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("name").and_then(Value::as_str))
        .collect();
    if !tags.is_empty() {
        out["hashtags"] = json!(tags);
    }
    let mentions: Vec<&str> = status
        .get("mentions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("acct").and_then(Value::as_str))
        .collect();
    if !mentions.is_empty() {
        out["mentions"] = json!(mentions);
    }
    let mut links = links;
    if let Some(card) = status.pointer("/card/url").and_then(Value::as_str) {
        if !links.iter().any(|l| l == card) {
            links.push(card.to_string());
        }
    }
    if !links.is_empty() {
        out["links"] = json!(links);
    }
    Some(out)
}
