//! Bluesky Jetstream: JSON over WebSocket (`wss://jetstream*.bsky.network/subscribe`).
//!
//! Subscribes to `wantedCollections` (posts by default), maps post creates and updates to posts
//! (facets → hashtags, mentions and links; `langs`; reply and quote references; the `at://`
//! URI → a bsky.app URL), applies deletes, learns handles from `identity` events, and resumes
//! from the stored `time_us` cursor minus a small rewind (re-read posts are duplicates, which
//! the index ignores). Reconnects with jittered exponential backoff, moving to the next
//! configured endpoint each time.

use super::SourceError;
use super::{micros_to_time, Backoff, Batcher, Filter, SourceCtx};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;
use tidings_index::{Change, PostId};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

const POST_COLLECTION: &str = "app.bsky.feed.post";
/// Handles remembered from identity events before the map is cleared.
const MAX_HANDLES: usize = 200_000;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JetstreamSpec {
    #[serde(default)]
    pub name: Option<String>,
    /// `wss://…/subscribe` URLs, tried in turn.
    #[serde(default = "default_endpoints")]
    pub endpoints: Vec<String>,
    #[serde(default = "default_collections")]
    pub collections: Vec<String>,
    /// Seconds re-read before the stored cursor on resume.
    #[serde(default = "default_rewind")]
    pub rewind_secs: u64,
    /// Reconnect when nothing arrives for this long (the firehose is never quiet).
    #[serde(default = "default_idle")]
    pub idle_timeout_secs: u64,
    #[serde(default)]
    pub filter: Filter,
}

fn default_endpoints() -> Vec<String> {
    [
        "wss://jetstream2.us-east.bsky.network/subscribe",
        "wss://jetstream1.us-east.bsky.network/subscribe",
        "wss://jetstream1.us-west.bsky.network/subscribe",
        "wss://jetstream2.us-west.bsky.network/subscribe",
    ]
    .map(String::from)
    .to_vec()
}

fn default_collections() -> Vec<String> {
    vec![POST_COLLECTION.to_string()]
}

fn default_rewind() -> u64 {
    5
}

fn default_idle() -> u64 {
    60
}

impl Default for JetstreamSpec {
    fn default() -> Self {
        JetstreamSpec {
            name: None,
            endpoints: default_endpoints(),
            collections: default_collections(),
            rewind_secs: default_rewind(),
            idle_timeout_secs: default_idle(),
            filter: Filter::default(),
        }
    }
}

impl JetstreamSpec {
    pub(crate) fn check(&self) -> Result<(), SourceError> {
        if self.endpoints.is_empty() {
            return Err(SourceError::Config("endpoints is empty".into()));
        }
        for e in &self.endpoints {
            if !(e.starts_with("ws://") || e.starts_with("wss://")) {
                return Err(SourceError::Config(format!(
                    "endpoint `{e}` is not a ws:// or wss:// URL"
                )));
            }
        }
        if !self.collections.iter().any(|c| c == POST_COLLECTION) {
            return Err(SourceError::Config(format!(
                "collections must include {POST_COLLECTION}"
            )));
        }
        Ok(())
    }

    /// The subscribe URL for `endpoint`, resuming at `cursor` (microseconds) when given.
    pub fn url(&self, endpoint: &str, cursor: Option<i64>) -> String {
        let mut url = endpoint.to_string();
        let mut sep = if url.contains('?') { '&' } else { '?' };
        for c in &self.collections {
            url.push(sep);
            url.push_str("wantedCollections=");
            url.push_str(c);
            sep = '&';
        }
        if let Some(c) = cursor {
            url.push(sep);
            url.push_str(&format!("cursor={c}"));
        }
        url
    }
}

/// Reads the firehose until `stop`.
pub async fn run(
    spec: JetstreamSpec,
    ctx: SourceCtx,
    stop: CancellationToken,
) -> Result<(), SourceError> {
    spec.check()?;
    let mut state = State {
        cursor: ctx.resume_from.as_deref().and_then(|p| p.parse().ok()),
        handles: HashMap::new(),
        batch: Batcher::new(),
    };
    let rewind = spec.rewind_secs as i64 * 1_000_000;
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    let mut endpoint = 0usize;
    loop {
        let base = &spec.endpoints[endpoint % spec.endpoints.len()];
        let url = spec.url(base, state.cursor.map(|c| (c - rewind).max(0)));
        ctx.status.connecting(base);
        let error = match session(&url, &spec, &ctx, &stop, &mut state, &mut backoff).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if !state.batch.flush(&ctx).await {
            return Ok(());
        }
        endpoint += 1;
        let wait = backoff.next_delay();
        ctx.status.disconnected(&error.to_string(), wait);
        tracing::warn!(source = %ctx.name, endpoint = %base, error = %error, retry_in = ?wait, "jetstream disconnected");
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => return Ok(()),
        }
    }
}

struct State {
    /// The newest `time_us` read (not necessarily committed yet).
    cursor: Option<i64>,
    handles: HashMap<String, String>,
    batch: Batcher,
}

/// One connection: `Ok` when stopped, `Err` with the reason it ended otherwise.
async fn session(
    url: &str,
    spec: &JetstreamSpec,
    ctx: &SourceCtx,
    stop: &CancellationToken,
    state: &mut State,
    backoff: &mut Backoff,
) -> Result<(), SourceError> {
    let connect = tokio_tungstenite::connect_async(url);
    let (mut ws, _) = tokio::select! {
        r = tokio::time::timeout(Duration::from_secs(15), connect) => r
            .map_err(|_| SourceError::Disconnected("connect timed out".to_string()))?
            .map_err(|e| SourceError::Disconnected(format!("connect: {e}")))?,
        _ = stop.cancelled() => return Ok(()),
    };
    ctx.status.connected();
    tracing::info!(source = %ctx.name, %url, "jetstream connected");
    let idle = Duration::from_secs(spec.idle_timeout_secs.max(1));
    let mut first = true;
    loop {
        let deadline = state.batch.deadline(ctx.limits.batch_wait);
        let frame = tokio::select! {
            _ = stop.cancelled() => {
                let _ = ws.close(None).await;
                state.batch.flush(ctx).await;
                return Ok(());
            }
            _ = async { tokio::time::sleep_until(deadline.expect("guarded")).await }, if deadline.is_some() => {
                if !state.batch.flush(ctx).await { return Ok(()); }
                continue;
            }
            f = tokio::time::timeout(idle, ws.next()) => f,
        };
        let message = match frame {
            Err(_) => {
                return Err(SourceError::Disconnected(format!(
                    "no message for {} s",
                    idle.as_secs()
                )))
            }
            Ok(None) => return Err(SourceError::Disconnected("connection closed".into())),
            Ok(Some(Err(e))) => return Err(SourceError::Disconnected(format!("read: {e}"))),
            Ok(Some(Ok(m))) => m,
        };
        match message {
            Message::Text(text) => {
                if first {
                    first = false;
                    backoff.reset();
                }
                handle(text.as_bytes(), ctx, state);
            }
            Message::Binary(bytes) => {
                ctx.status.count(|c| &c.received);
                ctx.reject(
                    &crate::Rejection {
                        code: crate::RejectionCode::UnexpectedBinary,
                        field: None,
                        message: "binary frame (compression was not requested)".into(),
                    },
                    &bytes,
                );
            }
            Message::Close(frame) => {
                return Err(SourceError::Disconnected(match frame {
                    Some(f) => format!("closed by the server: {} {}", f.code, f.reason),
                    None => "closed by the server".into(),
                }))
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
        if state.batch.len() >= ctx.limits.batch_changes && !state.batch.flush(ctx).await {
            return Ok(());
        }
    }
}

/// One raw Jetstream message through the live parser; returns the changes it produced.
pub(crate) fn parse_one(raw: &[u8]) -> usize {
    let ctx = SourceCtx::scratch("fuzz", "jetstream");
    let mut state = State {
        cursor: None,
        handles: HashMap::new(),
        batch: Batcher::new(),
    };
    handle(raw, &ctx, &mut state);
    SourceCtx::batch_len(&state.batch)
}

/// Applies one Jetstream event to the batch.
fn handle(raw: &[u8], ctx: &SourceCtx, state: &mut State) {
    let Some(text) = ctx.admit(raw) else { return };
    let event: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            ctx.reject(
                &crate::Rejection::malformed(format!("not valid JSON: {e}")),
                raw,
            );
            return;
        }
    };
    let (Some(did), Some(time_us)) = (
        event.get("did").and_then(Value::as_str),
        event.get("time_us").and_then(Value::as_i64),
    ) else {
        ctx.reject(
            &crate::Rejection::malformed("a Jetstream event needs `did` and `time_us`"),
            raw,
        );
        return;
    };
    let newest = state.cursor.map_or(time_us, |c| c.max(time_us));
    state.cursor = Some(newest);
    match event.get("kind").and_then(Value::as_str) {
        Some("commit") => commit(did, &event, raw, ctx, state),
        Some("identity") => {
            if let Some(handle) = event.pointer("/identity/handle").and_then(Value::as_str) {
                if state.handles.len() >= MAX_HANDLES {
                    state.handles.clear();
                }
                state.handles.insert(did.to_string(), handle.to_string());
            }
            ctx.status.count(|c| &c.ignored);
        }
        _ => ctx.status.count(|c| &c.ignored),
    }
    state
        .batch
        .at(Some(newest.to_string()), micros_to_time(time_us));
}

fn commit(did: &str, event: &Value, raw: &[u8], ctx: &SourceCtx, state: &mut State) {
    let c = &event["commit"];
    let (Some(collection), Some(op), Some(rkey)) = (
        c.get("collection").and_then(Value::as_str),
        c.get("operation").and_then(Value::as_str),
        c.get("rkey").and_then(Value::as_str),
    ) else {
        ctx.reject(
            &crate::Rejection::malformed("a commit needs `collection`, `operation` and `rkey`"),
            raw,
        );
        return;
    };
    if collection != POST_COLLECTION {
        ctx.status.count(|c| &c.ignored);
        return;
    }
    let uri = format!("at://{did}/{POST_COLLECTION}/{rkey}");
    match op {
        "delete" => match PostId::parse(&format!("bsky:{uri}")) {
            Ok(id) => state.batch.push(Change::Delete(id)),
            Err(e) => ctx.reject(&crate::Rejection::malformed(e), raw),
        },
        "create" | "update" => {
            let Some(record) = c.get("record") else {
                ctx.reject(
                    &crate::Rejection::malformed("a post commit without `record`"),
                    raw,
                );
                return;
            };
            let Some(mapped) = post_record(did, rkey, record, state.handles.get(did)) else {
                // Image-only posts and the like: nothing to search.
                ctx.status.count(|c| &c.ignored);
                return;
            };
            if let Some(post) = ctx.post(mapped, raw) {
                state.batch.push(Change::Upsert(post));
            }
        }
        _ => ctx.status.count(|c| &c.ignored),
    }
}

/// A post record in Tidings' shape; `None` when it has no text.
pub fn post_record(
    did: &str,
    rkey: &str,
    record: &Value,
    handle: Option<&String>,
) -> Option<Value> {
    let text = record.get("text").and_then(Value::as_str).unwrap_or("");
    if text.trim().is_empty() {
        return None;
    }
    let uri = format!("at://{did}/{POST_COLLECTION}/{rkey}");
    let mut hashtags = Vec::new();
    let mut mentions = Vec::new();
    let mut links = Vec::new();
    for facet in record
        .get("facets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let slice = || {
            let start = facet.pointer("/index/byteStart")?.as_u64()? as usize;
            let end = facet.pointer("/index/byteEnd")?.as_u64()? as usize;
            text.get(start..end)
        };
        for feature in facet
            .get("features")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            match feature.get("$type").and_then(Value::as_str) {
                Some("app.bsky.richtext.facet#tag") => {
                    if let Some(tag) = feature.get("tag").and_then(Value::as_str) {
                        hashtags.push(tag.trim_start_matches('#').to_string());
                    }
                }
                Some("app.bsky.richtext.facet#mention") => {
                    let handle = slice()
                        .map(|s| s.trim().trim_start_matches('@').to_string())
                        .filter(|s| !s.is_empty());
                    if let Some(h) = handle
                        .or_else(|| feature.get("did").and_then(Value::as_str).map(String::from))
                    {
                        mentions.push(h);
                    }
                }
                Some("app.bsky.richtext.facet#link") => {
                    if let Some(uri) = feature.get("uri").and_then(Value::as_str) {
                        links.push(uri.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    let embed = record.get("embed");
    if let Some(uri) = embed
        .and_then(|e| e.pointer("/external/uri"))
        .and_then(Value::as_str)
    {
        if !links.iter().any(|l| l == uri) {
            links.push(uri.to_string());
        }
    }
    let quote = embed.and_then(|e| match e.get("$type").and_then(Value::as_str) {
        Some("app.bsky.embed.record") => e.pointer("/record/uri"),
        Some("app.bsky.embed.recordWithMedia") => e.pointer("/record/record/uri"),
        _ => None,
    });
    let mut out = json!({
        "id": format!("bsky:{uri}"),
        "source": "bsky",
        "text": text,
        "created_at": record.get("createdAt").cloned().unwrap_or(Value::Null),
        "author": handle.map_or(did, String::as_str),
        "url": format!("https://bsky.app/profile/{did}/post/{rkey}"),
    });
    if let Some(lang) = record.pointer("/langs/0").and_then(Value::as_str) {
        out["lang"] = json!(lang);
    }
    if let Some(parent) = record.pointer("/reply/parent/uri").and_then(Value::as_str) {
        out["reply_to"] = json!(format!("bsky:{parent}"));
    }
    if let Some(q) = quote.and_then(Value::as_str) {
        out["quote_of"] = json!(format!("bsky:{q}"));
    }
    if !hashtags.is_empty() {
        out["hashtags"] = json!(hashtags);
    }
    if !mentions.is_empty() {
        out["mentions"] = json!(mentions);
    }
    if !links.is_empty() {
        out["links"] = json!(links);
    }
    Some(out)
}
