//! X API v2 filtered stream: `GET /2/tweets/search/stream`, chunked JSON lines with a bearer token.
//!
//! At start the configured rules replace the stream's rules (`/2/tweets/search/stream/rules`);
//! with no rules configured the server's rules are left alone. Each line is a tweet with its
//! `includes` (authors), a keep-alive newline (about every 20 s), or an error object;
//! `operational-disconnect` and other stream errors end the connection and it reconnects with
//! X's documented backoff: network errors grow linearly by 250 ms up to 16 s, HTTP errors
//! double from 5 s up to 320 s, and 429 doubles from 1 minute.

use super::SourceError;
use super::{Backoff, Batcher, Filter, SourceCtx};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;
use tidings_index::Change;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct XSpec {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default = "default_url")]
    pub url: String,
    /// The app's bearer token (or `TIDINGS_X_BEARER_TOKEN` when unset).
    #[serde(default)]
    pub bearer_token: Option<String>,
    #[serde(default)]
    pub rules: Vec<XRule>,
    /// Reconnect when not even a keep-alive arrives for this long.
    #[serde(default = "default_stall")]
    pub stall_timeout_secs: u64,
    #[serde(default)]
    pub filter: Filter,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct XRule {
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

fn default_url() -> String {
    "https://api.x.com".into()
}

fn default_stall() -> u64 {
    30
}

const FIELDS: &str = "tweet.fields=created_at,lang,author_id,entities,public_metrics,referenced_tweets,conversation_id&expansions=author_id&user.fields=username,name";

impl XSpec {
    pub(crate) fn check(&self) -> Result<(), SourceError> {
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(SourceError::Config(format!(
                "url `{}` is not an http(s) URL",
                self.url
            )));
        }
        if self.token().is_none() {
            return Err(SourceError::Config(
                "a bearer_token is required (or TIDINGS_X_BEARER_TOKEN)".into(),
            ));
        }
        Ok(())
    }

    fn token(&self) -> Option<String> {
        self.bearer_token
            .clone()
            .or_else(|| std::env::var("TIDINGS_X_BEARER_TOKEN").ok())
            .filter(|t| !t.is_empty())
    }
}

/// What ended a connection, for the backoff rule that applies.
enum Ended {
    Network(String),
    Http(reqwest::StatusCode, String),
    /// The stream said it was disconnecting (operational-disconnect and the like).
    Stream(String),
}

/// Streams until `stop`.
pub async fn run(spec: XSpec, ctx: SourceCtx, stop: CancellationToken) -> Result<(), SourceError> {
    spec.check()?;
    let token = spec.token().unwrap_or_default();
    let base = spec.url.trim_end_matches('/').to_string();
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(15))
        .user_agent(concat!("tidings/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| SourceError::Setup(format!("http client: {e}")))?;
    let mut network = Backoff::linear(Duration::from_millis(250), Duration::from_secs(16));
    let mut http = Backoff::new(Duration::from_secs(5), Duration::from_secs(320));
    let mut limited = Backoff::new(Duration::from_secs(60), Duration::from_secs(960));
    let mut rules_set = spec.rules.is_empty();
    let mut batch = Batcher::new();
    let mut got_data = false;
    loop {
        let url = format!("{base}/2/tweets/search/stream?{FIELDS}");
        ctx.status.connecting(&url);
        let rules = if rules_set {
            Ok(())
        } else {
            sync_rules(&client, &base, &token, &spec.rules).await
        };
        let ended = match rules {
            Ok(()) => {
                rules_set = true;
                session(
                    &client,
                    &url,
                    &token,
                    &spec,
                    &ctx,
                    &stop,
                    &mut batch,
                    &mut got_data,
                )
                .await
            }
            Err(e) => Some(e),
        };
        let Some(ended) = ended else { return Ok(()) };
        if got_data {
            // A connection that delivered data starts the backoffs over.
            got_data = false;
            network.reset();
            http.reset();
            limited.reset();
        }
        if !batch.flush(&ctx).await {
            return Ok(());
        }
        let (wait, error) = match ended {
            Ended::Network(e) => (network.next_delay(), e),
            Ended::Http(status, e) if status.as_u16() == 429 => (limited.next_delay(), e),
            Ended::Http(status, e) if status.as_u16() == 401 || status.as_u16() == 403 => {
                // Credentials will not fix themselves quickly; keep trying slowly.
                (Duration::from_secs(320), e)
            }
            Ended::Http(_, e) => (http.next_delay(), e),
            Ended::Stream(e) => (network.next_delay(), e),
        };
        ctx.status.disconnected(&error, wait);
        tracing::warn!(source = %ctx.name, error = %error, retry_in = ?wait, "x stream disconnected");
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => return Ok(()),
        }
    }
}

/// Makes the stream's rules equal to `wanted` (deletes the others, adds the missing).
async fn sync_rules(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    wanted: &[XRule],
) -> Result<(), Ended> {
    let url = format!("{base}/2/tweets/search/stream/rules");
    let current: Value = call(client.get(&url).bearer_auth(token)).await?;
    let mut existing: HashMap<String, String> = HashMap::new();
    for r in current
        .get("data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let (Some(id), Some(value)) = (
            r.get("id").and_then(Value::as_str),
            r.get("value").and_then(Value::as_str),
        ) {
            existing.insert(value.to_string(), id.to_string());
        }
    }
    let stale: Vec<&String> = existing
        .iter()
        .filter(|(value, _)| !wanted.iter().any(|w| &w.value == *value))
        .map(|(_, id)| id)
        .collect();
    if !stale.is_empty() {
        call(
            client
                .post(&url)
                .bearer_auth(token)
                .json(&json!({"delete": {"ids": stale}})),
        )
        .await?;
    }
    let add: Vec<&XRule> = wanted
        .iter()
        .filter(|w| !existing.contains_key(&w.value))
        .collect();
    if !add.is_empty() {
        let answer = call(
            client
                .post(&url)
                .bearer_auth(token)
                .json(&json!({"add": add})),
        )
        .await?;
        if let Some(errors) = answer
            .get("errors")
            .and_then(Value::as_array)
            .filter(|e| !e.is_empty())
        {
            return Err(Ended::Stream(format!(
                "rules refused: {}",
                Value::Array(errors.clone())
            )));
        }
    }
    Ok(())
}

async fn call(request: reqwest::RequestBuilder) -> Result<Value, Ended> {
    let response = request
        .send()
        .await
        .map_err(|e| Ended::Network(format!("rules: {e}")))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|e| Ended::Network(format!("rules: {e}")))?;
    if !status.is_success() {
        return Err(Ended::Http(
            status,
            format!(
                "rules: HTTP {status}: {}",
                body.chars().take(200).collect::<String>()
            ),
        ));
    }
    serde_json::from_str(&body).map_err(|e| Ended::Stream(format!("rules: not JSON: {e}")))
}

/// One connection; `None` when stopped.
#[allow(clippy::too_many_arguments)]
async fn session(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    spec: &XSpec,
    ctx: &SourceCtx,
    stop: &CancellationToken,
    batch: &mut Batcher,
    got_data: &mut bool,
) -> Option<Ended> {
    let response = tokio::select! {
        r = client.get(url).bearer_auth(token).send() => match r {
            Ok(r) => r,
            Err(e) => return Some(Ended::Network(format!("connect: {e}"))),
        },
        _ = stop.cancelled() => return None,
    };
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Some(Ended::Http(
            status,
            format!(
                "HTTP {status}: {}",
                body.chars().take(300).collect::<String>()
            ),
        ));
    }
    ctx.status.connected();
    tracing::info!(source = %ctx.name, "x stream connected");
    let mut body = response.bytes_stream();
    let mut line: Vec<u8> = Vec::new();
    let stall = Duration::from_secs(spec.stall_timeout_secs.max(1));
    loop {
        let deadline = batch.deadline(ctx.limits.batch_wait);
        let next = tokio::select! {
            _ = stop.cancelled() => { batch.flush(ctx).await; return None; }
            _ = async { tokio::time::sleep_until(deadline.expect("guarded")).await }, if deadline.is_some() => {
                if !batch.flush(ctx).await { return None; }
                continue;
            }
            n = tokio::time::timeout(stall, body.next()) => n,
        };
        let chunk = match next {
            Err(_) => {
                return Some(Ended::Network(format!(
                    "stalled: nothing, not even a keep-alive, for {} s",
                    stall.as_secs()
                )))
            }
            Ok(None) => return Some(Ended::Network("the stream ended".into())),
            Ok(Some(Err(e))) => return Some(Ended::Network(format!("read: {e}"))),
            Ok(Some(Ok(c))) => c,
        };
        *got_data = true;
        for piece in chunk.split_inclusive(|b| *b == b'\n') {
            if line.len() + piece.len() > ctx.limits.max_message_bytes + 2 {
                // An endless line: drop what we have, dead-letter an excerpt, and resync on the
                // next newline.
                if !line.is_empty() {
                    ctx.status.count(|c| &c.received);
                    ctx.reject(
                        &crate::Rejection {
                            code: crate::RejectionCode::TooLarge,
                            field: None,
                            message: format!("line over {} bytes", ctx.limits.max_message_bytes),
                        },
                        &line[..line.len().min(4096)],
                    );
                }
                line.clear();
                if !piece.ends_with(b"\n") {
                    continue;
                }
            }
            line.extend_from_slice(piece);
            if !line.ends_with(b"\n") {
                continue;
            }
            let raw = std::mem::take(&mut line);
            let trimmed = raw.trim_ascii();
            if trimmed.is_empty() {
                continue; // keep-alive
            }
            if let Some(e) = handle(trimmed, ctx, batch) {
                batch.flush(ctx).await;
                return Some(e);
            }
        }
        if batch.len() >= ctx.limits.batch_changes && !batch.flush(ctx).await {
            return None;
        }
    }
}

/// One stream line through the live parser; returns the changes it produced.
pub(crate) fn parse_one(raw: &[u8]) -> usize {
    let ctx = SourceCtx::scratch("fuzz", "x");
    let mut batch = Batcher::new();
    let _ = handle(raw, &ctx, &mut batch);
    SourceCtx::batch_len(&batch)
}

/// Applies one line; `Some` when the stream says it is disconnecting.
fn handle(raw: &[u8], ctx: &SourceCtx, batch: &mut Batcher) -> Option<Ended> {
    let text = ctx.admit(raw)?;
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            ctx.reject(
                &crate::Rejection::malformed(format!("not valid JSON: {e}")),
                raw,
            );
            return None;
        }
    };
    if value.get("data").is_none() {
        if let Some(errors) = value.get("errors").and_then(Value::as_array) {
            let first = errors.first().cloned().unwrap_or(Value::Null);
            let title = first
                .get("title")
                .and_then(Value::as_str)
                .unwrap_or("error");
            let detail = first.get("detail").and_then(Value::as_str).unwrap_or("");
            ctx.status.count(|c| &c.ignored);
            ctx.status.set_error(&format!("{title}: {detail}"));
            if title == "operational-disconnect" || first.get("disconnect_type").is_some() {
                return Some(Ended::Stream(format!("{title}: {detail}")));
            }
            return None;
        }
        ctx.reject(
            &crate::Rejection::malformed("a line with neither `data` nor `errors`"),
            raw,
        );
        return None;
    }
    let Some(record) = tweet_record(&value) else {
        ctx.reject(&crate::Rejection::malformed("a tweet without `id`"), raw);
        return None;
    };
    let created = value
        .pointer("/data/created_at")
        .and_then(Value::as_str)
        .and_then(|t| t.parse().ok());
    if let Some(post) = ctx.post(record, raw) {
        batch.push(Change::Upsert(post));
        batch.at(None, created);
    }
    None
}

/// A stream line (`data` + `includes`) in Tidings' shape.
pub fn tweet_record(line: &Value) -> Option<Value> {
    let data = line.get("data")?;
    let id = data.get("id").and_then(Value::as_str)?;
    let author_id = data.get("author_id").and_then(Value::as_str);
    let user = line
        .pointer("/includes/users")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|u| u.get("id").and_then(Value::as_str) == author_id);
    let username = user.and_then(|u| u.get("username")).and_then(Value::as_str);
    let mut out = json!({
        "id": format!("x:{id}"),
        "source": "x",
        "text": data.get("text").cloned().unwrap_or(Value::Null),
        "created_at": data.get("created_at").cloned().unwrap_or(Value::Null),
    });
    if let Some(u) = username {
        out["author"] = json!(u);
        out["url"] = json!(format!("https://x.com/{u}/status/{id}"));
    } else if let Some(a) = author_id {
        out["author"] = json!(format!("x:{a}"));
        out["url"] = json!(format!("https://x.com/i/web/status/{id}"));
    }
    if let Some(name) = user.and_then(|u| u.get("name")).and_then(Value::as_str) {
        out["author_name"] = json!(name);
    }
    if let Some(lang) = data.get("lang").and_then(Value::as_str) {
        out["lang"] = json!(lang);
    }
    for r in data
        .get("referenced_tweets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (Some(kind), Some(rid)) = (
            r.get("type").and_then(Value::as_str),
            r.get("id").and_then(Value::as_str),
        ) else {
            continue;
        };
        let field = match kind {
            "replied_to" => "reply_to",
            "quoted" => "quote_of",
            "retweeted" => "repost_of",
            _ => continue,
        };
        out[field] = json!(format!("x:{rid}"));
    }
    let entities = data.get("entities");
    let list = |key: &str, field: &str| -> Vec<String> {
        entities
            .and_then(|e| e.get(key))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.get(field).and_then(Value::as_str).map(String::from))
            .collect()
    };
    let tags = list("hashtags", "tag");
    if !tags.is_empty() {
        out["hashtags"] = json!(tags);
    }
    let mentions = list("mentions", "username");
    if !mentions.is_empty() {
        out["mentions"] = json!(mentions);
    }
    let links = list("urls", "expanded_url");
    if !links.is_empty() {
        out["links"] = json!(links);
    }
    if let Some(m) = data.get("public_metrics") {
        let n = |k: &str| m.get(k).and_then(Value::as_u64).unwrap_or(0);
        out["likes"] = json!(n("like_count"));
        out["reposts"] = json!(n("retweet_count"));
        out["replies"] = json!(n("reply_count"));
        out["quotes"] = json!(n("quote_count"));
    }
    Some(out)
}
