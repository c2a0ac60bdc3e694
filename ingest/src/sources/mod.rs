//! Live sources: Bluesky Jetstream (WebSocket), Mastodon streaming (SSE), the X API v2 filtered
//! stream (chunked JSON lines) and NATS JetStream (durable pull consumer).
//!
//! Every connector turns protocol messages into [`Change`]s through the one edge validator
//! ([`crate::validate`]) and sends them, in order and with the source position they reach, into a
//! bounded channel. [`run_source`] drains that channel into the index writer: batches are applied
//! in order, a batch's checkpoint is committed together with its posts, and only then is the
//! source told (NATS messages are acknowledged there). A full channel, or an embedder that has
//! fallen too far behind, stops the connector from reading — the socket pushes back instead of
//! memory growing. A malformed message is counted, logged (rate-limited) and written to the
//! dead-letter file with its reason; the stream goes on. When the writer fails, the connector is
//! stopped and restarted from the last durable checkpoint, so nothing after a lost batch is
//! checkpointed.

mod deadletter;
pub mod html;
pub mod jetstream;
pub mod mastodon;
pub mod nats;
mod status;
pub mod xstream;

pub use deadletter::DeadLetter;
pub use status::{SourceSnapshot, SourceState, SourceStatus};
pub use tidings_index::backoff::Backoff;

use crate::validate::{validate, Rejection, ValidationConfig};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tidings_index::{Change, Checkpoint, IndexStats, Pending, Post, WriteHandle};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// One configured source (`[[sources.define]]` in `tidings.toml`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceSpec {
    Jetstream(jetstream::JetstreamSpec),
    Mastodon(mastodon::MastodonSpec),
    X(xstream::XSpec),
    Nats(nats::NatsSpec),
}

impl SourceSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            SourceSpec::Jetstream(_) => "jetstream",
            SourceSpec::Mastodon(_) => "mastodon",
            SourceSpec::X(_) => "x",
            SourceSpec::Nats(_) => "nats",
        }
    }

    /// The name its status and checkpoint go by (unique among the configured sources).
    pub fn name(&self) -> String {
        let (name, fallback) = match self {
            SourceSpec::Jetstream(s) => (&s.name, "bluesky".to_string()),
            SourceSpec::Mastodon(s) => (&s.name, format!("mastodon:{}", s.host())),
            SourceSpec::X(s) => (&s.name, "x".to_string()),
            SourceSpec::Nats(s) => (&s.name, format!("nats:{}", s.stream)),
        };
        name.clone().unwrap_or(fallback)
    }

    pub fn filter(&self) -> &Filter {
        match self {
            SourceSpec::Jetstream(s) => &s.filter,
            SourceSpec::Mastodon(s) => &s.filter,
            SourceSpec::X(s) => &s.filter,
            SourceSpec::Nats(s) => &s.filter,
        }
    }

    /// Checks what can be checked before connecting.
    pub fn check(&self) -> Result<(), SourceError> {
        let name = self.name();
        if name.is_empty() || name.len() > 100 || name.chars().any(char::is_whitespace) {
            return Err(SourceError::Config(format!(
                "source name `{name}` must be 1-100 characters without spaces"
            )));
        }
        match self {
            SourceSpec::Jetstream(s) => s.check(),
            SourceSpec::Mastodon(s) => s.check(),
            SourceSpec::X(s) => s.check(),
            SourceSpec::Nats(s) => s.check(),
        }
        .map_err(|e| e.in_source(&name))
    }
}

/// Why a source stopped or a connection of it ended.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SourceError {
    /// The source's settings cannot work: it does not start (or stops) until they are fixed.
    #[error("{0}")]
    Config(String),
    /// Something the source needs could not be set up in this process (its HTTP client).
    #[error("{0}")]
    Setup(String),
    /// A connection failed, went quiet or ended; the source reconnects after a backoff.
    #[error("{0}")]
    Disconnected(String),
}

impl SourceError {
    /// The same error, its message prefixed with the source it belongs to.
    pub fn in_source(self, name: &str) -> SourceError {
        match self {
            SourceError::Config(m) => SourceError::Config(format!("source {name}: {m}")),
            SourceError::Setup(m) => SourceError::Setup(format!("source {name}: {m}")),
            SourceError::Disconnected(m) => {
                SourceError::Disconnected(format!("source {name}: {m}"))
            }
        }
    }
}

/// Which posts of a source are kept (all lists empty: everything). Languages and handles must
/// match one entry; keywords match words, hashtags or phrases anywhere in the text.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Filter {
    pub langs: Vec<String>,
    pub keywords: Vec<String>,
    pub handles: Vec<String>,
}

impl Filter {
    pub fn keeps(&self, post: &Post) -> bool {
        if !self.langs.is_empty() {
            let lang = post.lang.as_deref().unwrap_or("");
            let primary = lang.split('-').next().unwrap_or("");
            if !self
                .langs
                .iter()
                .any(|l| l.eq_ignore_ascii_case(lang) || l.eq_ignore_ascii_case(primary))
            {
                return false;
            }
        }
        if !self.handles.is_empty() {
            let author = post.author.as_deref().unwrap_or("");
            if !self
                .handles
                .iter()
                .any(|h| h.trim_start_matches('@').eq_ignore_ascii_case(author))
            {
                return false;
            }
        }
        if !self.keywords.is_empty() {
            let text = post.text.to_lowercase();
            if !self.keywords.iter().any(|k| {
                let k = k.to_lowercase();
                let bare = k.trim_start_matches('#');
                text.contains(&k) || post.hashtags.iter().any(|h| h.eq_ignore_ascii_case(bare))
            }) {
                return false;
            }
        }
        true
    }
}

/// What a connector hands on: changes in source order, the position reached after them, and
/// what to do once they are durable.
pub struct Batch {
    pub changes: Vec<Change>,
    /// Stored with the commit that holds `changes` (`None`: the source has no positions).
    pub position: Option<String>,
    /// When the newest event of the batch happened at the source (for the lag figure).
    pub newest_event: Option<DateTime<Utc>>,
    /// Run after the commit (NATS acknowledges its messages here).
    pub on_commit: Option<Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>>,
}

/// Limits shared by the connectors.
#[derive(Clone, Debug)]
pub struct SourceLimits {
    /// Largest message accepted; bigger ones are dead-lettered unread.
    pub max_message_bytes: usize,
    /// Changes per batch, and how long a batch may wait to fill.
    pub batch_changes: usize,
    pub batch_wait: Duration,
    /// Batches queued between the connector and the writer.
    pub channel_batches: usize,
    /// Batches handed to the writer and not yet committed. Each waits for a commit (every
    /// `index.commit_interval_ms`), so this bounds throughput at about
    /// `in_flight_batches × batch size` per commit interval: at 4, a 500 posts/s stream of small
    /// batches queued up (p50 550 ms); at 32 it does not.
    pub in_flight_batches: usize,
    /// Pause reading while more posts than this wait for their vectors (0: never).
    pub max_vector_backlog: u64,
}

impl Default for SourceLimits {
    fn default() -> Self {
        SourceLimits {
            max_message_bytes: 1 << 20,
            batch_changes: 500,
            batch_wait: Duration::from_millis(50),
            channel_batches: 8,
            in_flight_batches: 32,
            max_vector_backlog: 20_000,
        }
    }
}

/// What a connector works with.
pub struct SourceCtx {
    pub name: String,
    pub status: Arc<SourceStatus>,
    pub dead: Arc<DeadLetter>,
    pub filter: Filter,
    pub validation: ValidationConfig,
    pub limits: SourceLimits,
    /// Where to resume: the position of the last durable batch.
    pub resume_from: Option<String>,
    out: mpsc::Sender<Batch>,
}

impl SourceCtx {
    /// A context that keeps nothing: no dead-letter file, a channel nobody reads. For running
    /// one raw message through a connector's parser (the fuzz targets, corpus tests).
    pub(crate) fn scratch(name: &str, kind: &str) -> SourceCtx {
        let (out, _) = mpsc::channel(1);
        SourceCtx {
            name: name.to_string(),
            status: Arc::new(SourceStatus::new(name, kind)),
            dead: Arc::new(DeadLetter::new(None)),
            filter: Filter::default(),
            validation: ValidationConfig::default(),
            limits: SourceLimits::default(),
            resume_from: None,
            out,
        }
    }

    /// Changes a batch holds (for [`crate::fuzz`]).
    pub(crate) fn batch_len(batch: &Batcher) -> usize {
        batch.changes.len()
    }

    /// Validates a record in Tidings' post shape and applies the source's filter. A rejected
    /// record is dead-lettered with `raw`; a filtered one is counted.
    pub fn post(&self, record: Value, raw: &[u8]) -> Option<Post> {
        match validate(record, &self.name, &self.validation, Utc::now()) {
            Ok(post) if self.filter.keeps(&post) => Some(post),
            Ok(_) => {
                self.status.count(|c| &c.filtered);
                None
            }
            Err(rejection) => {
                self.reject(&rejection, raw);
                None
            }
        }
    }

    /// Counts, logs (rate-limited) and dead-letters a message the source could not use.
    pub fn reject(&self, rejection: &Rejection, raw: &[u8]) {
        self.status.count(|c| &c.rejected);
        self.dead
            .record(&self.name, rejection.code.as_str(), &rejection.message, raw);
    }

    /// Checks a raw message's size and encoding before parsing.
    pub fn admit<'a>(&self, raw: &'a [u8]) -> Option<&'a str> {
        self.status.count(|c| &c.received);
        if raw.len() > self.limits.max_message_bytes {
            self.reject(
                &Rejection {
                    code: crate::RejectionCode::TooLarge,
                    field: None,
                    message: format!(
                        "message of {} bytes is over the {} byte limit",
                        raw.len(),
                        self.limits.max_message_bytes
                    ),
                },
                &raw[..raw.len().min(4096)],
            );
            return None;
        }
        match std::str::from_utf8(raw) {
            Ok(s) => Some(s),
            Err(e) => {
                self.reject(
                    &Rejection {
                        code: crate::RejectionCode::InvalidUtf8,
                        field: None,
                        message: format!("message is not UTF-8: {e}"),
                    },
                    raw,
                );
                None
            }
        }
    }

    /// Hands a batch on; waits while the writer or the embedder is behind. `false` when the
    /// source is being stopped.
    pub async fn send(&self, batch: Batch) -> bool {
        self.out.send(batch).await.is_ok()
    }
}

/// Accumulates changes until a batch is full or old enough.
pub struct Batcher {
    changes: Vec<Change>,
    position: Option<String>,
    newest: Option<DateTime<Utc>>,
    started: Option<tokio::time::Instant>,
    /// A position reached since the last batch even without changes (likes, follows).
    moved: bool,
}

impl Batcher {
    pub fn new() -> Self {
        Batcher {
            changes: Vec::new(),
            position: None,
            newest: None,
            started: None,
            moved: false,
        }
    }

    pub fn push(&mut self, change: Change) {
        self.started.get_or_insert_with(tokio::time::Instant::now);
        self.changes.push(change);
    }

    /// Records the position reached (after the changes pushed so far).
    pub fn at(&mut self, position: Option<String>, event_time: Option<DateTime<Utc>>) {
        if position.is_some() {
            self.started.get_or_insert_with(tokio::time::Instant::now);
            self.position = position;
            self.moved = true;
        }
        if event_time.is_some() {
            self.newest = event_time;
        }
    }

    /// When the current batch must go out.
    pub fn deadline(&self, wait: Duration) -> Option<tokio::time::Instant> {
        self.started.map(|s| s + wait)
    }

    pub fn len(&self) -> usize {
        self.changes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && !self.moved
    }

    pub fn take(&mut self) -> Batch {
        self.started = None;
        self.moved = false;
        Batch {
            changes: std::mem::take(&mut self.changes),
            position: self.position.clone(),
            newest_event: self.newest.take(),
            on_commit: None,
        }
    }

    /// Sends what is there (if anything); `false` when the source is being stopped.
    pub async fn flush(&mut self, ctx: &SourceCtx) -> bool {
        if self.is_empty() {
            return true;
        }
        ctx.send(self.take()).await
    }
}

impl Default for Batcher {
    fn default() -> Self {
        Batcher::new()
    }
}

/// Starts the connector a spec describes: it runs until `stop`, reconnecting by itself, and
/// returns early only for a configuration it cannot use.
fn connect(
    spec: &SourceSpec,
    ctx: SourceCtx,
    stop: CancellationToken,
) -> BoxFuture<'static, Result<(), SourceError>> {
    match spec.clone() {
        SourceSpec::Jetstream(s) => Box::pin(jetstream::run(s, ctx, stop)),
        SourceSpec::Mastodon(s) => Box::pin(mastodon::run(s, ctx, stop)),
        SourceSpec::X(s) => Box::pin(xstream::run(s, ctx, stop)),
        SourceSpec::Nats(s) => Box::pin(nats::run(s, ctx, stop)),
    }
}

/// Everything a running source needs from the outside.
#[derive(Clone)]
pub struct SourceEnv {
    pub write: WriteHandle,
    pub stats: Arc<IndexStats>,
    pub dead: Arc<DeadLetter>,
    pub validation: ValidationConfig,
    pub limits: SourceLimits,
}

/// Runs one source until `stop`: its connector, and the loop that commits what it produces.
/// A writer failure stops the connector and restarts it from the last durable checkpoint.
pub async fn run_source(
    spec: SourceSpec,
    status: Arc<SourceStatus>,
    env: SourceEnv,
    resume_from: Option<String>,
    stop: CancellationToken,
) {
    let name = spec.name();
    let mut resume = resume_from;
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        let (tx, rx) = mpsc::channel(env.limits.channel_batches.max(1));
        let ctx = SourceCtx {
            name: name.clone(),
            status: status.clone(),
            dead: env.dead.clone(),
            filter: spec.filter().clone(),
            validation: env.validation.clone(),
            limits: env.limits.clone(),
            resume_from: resume.clone(),
            out: tx,
        };
        let inner = stop.child_token();
        let connector = tokio::spawn(connect(&spec, ctx, inner.clone()));
        let committed = commit_loop(rx, &name, &status, &env, &inner).await;
        inner.cancel();
        match connector.await {
            Ok(Err(e)) => {
                status.set_error(&e.to_string());
                status.set_state(SourceState::Failed);
                tracing::error!(source = %name, error = %e, "source stopped");
                return;
            }
            Err(e) => tracing::error!(source = %name, error = %e, "source task failed"),
            Ok(Ok(())) => {}
        }
        if stop.is_cancelled() {
            status.set_state(SourceState::Stopped);
            return;
        }
        if let Err(e) = committed {
            status.set_error(&format!("index writer: {e}"));
            resume = status.committed_position().or(resume);
            let wait = backoff.next_delay();
            status.set_retry(SourceState::Backoff, wait);
            tracing::error!(source = %name, error = %e, retry_in = ?wait, "could not commit a batch; restarting the source from its last durable position");
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.cancelled() => { status.set_state(SourceState::Stopped); return; }
            }
        }
    }
}

struct InFlight {
    pending: Pending<tidings_index::ApplyOutcome>,
    position: Option<String>,
    newest_event: Option<DateTime<Utc>>,
    on_commit: Option<Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>>,
}

/// Drains batches into the writer, a few in flight, in order; acknowledges after each commit.
async fn commit_loop(
    mut rx: mpsc::Receiver<Batch>,
    name: &str,
    status: &SourceStatus,
    env: &SourceEnv,
    stop: &CancellationToken,
) -> Result<(), tidings_index::IndexError> {
    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    let max = env.limits.in_flight_batches.max(1);
    loop {
        let room = in_flight.len() < max;
        tokio::select! {
            biased;
            done = async { (&mut in_flight.front_mut().expect("checked non-empty").pending).await }, if !in_flight.is_empty() => {
                let f = in_flight.pop_front().expect("checked non-empty");
                let outcome = done?;
                status.committed(&outcome, f.position, f.newest_event);
                if let Some(ack) = f.on_commit {
                    ack().await;
                }
            }
            batch = rx.recv(), if room => {
                let Some(batch) = batch else { break };
                throttle(status, env, stop).await;
                let checkpoint = batch.position.clone().map(|position| Checkpoint {
                    source: name.to_string(),
                    position,
                });
                let pending = env.write.submit(batch.changes, checkpoint).await?;
                in_flight.push_back(InFlight {
                    pending,
                    position: batch.position,
                    newest_event: batch.newest_event,
                    on_commit: batch.on_commit,
                });
            }
            _ = stop.cancelled(), if in_flight.is_empty() => break,
        }
    }
    while let Some(f) = in_flight.pop_front() {
        let outcome = f.pending.committed().await?;
        status.committed(&outcome, f.position, f.newest_event);
        if let Some(ack) = f.on_commit {
            ack().await;
        }
    }
    Ok(())
}

/// Waits while the embedder is too far behind (the connector stops reading meanwhile).
async fn throttle(status: &SourceStatus, env: &SourceEnv, stop: &CancellationToken) {
    let limit = env.limits.max_vector_backlog;
    if limit == 0 {
        return;
    }
    let mut throttled = false;
    while env.stats.vectors_pending.load(Ordering::Relaxed) > limit && !stop.is_cancelled() {
        if !throttled {
            throttled = true;
            status.set_throttled(true);
            tracing::info!(source = %status.name, backlog = env.stats.vectors_pending.load(Ordering::Relaxed), "pausing the source until the embedder catches up");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if throttled {
        status.set_throttled(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(author: &str, lang: Option<&str>, text: &str, tags: &[&str]) -> Post {
        let mut v = serde_json::json!({"id": "p1", "text": text, "author": author,
            "created_at": "2024-05-10T12:00:00Z", "hashtags": tags});
        if let Some(l) = lang {
            v["lang"] = serde_json::json!(l);
        }
        crate::validate(v, "test", &ValidationConfig::default(), Utc::now()).expect("valid")
    }

    #[test]
    fn filters_by_language_handle_and_keyword() {
        let all = Filter::default();
        let p = post("Alice", Some("en-GB"), "Storm over the Bay", &["weather"]);
        assert!(all.keeps(&p));
        let langs = Filter {
            langs: vec!["en".into()],
            ..Filter::default()
        };
        assert!(langs.keeps(&p));
        assert!(!langs.keeps(&post("bob", Some("de"), "Sturm", &[])));
        assert!(!langs.keeps(&post("bob", None, "no language", &[])));
        let handles = Filter {
            handles: vec!["@alice".into()],
            ..Filter::default()
        };
        assert!(handles.keeps(&p));
        assert!(!handles.keeps(&post("bob", Some("en"), "Storm", &[])));
        let words = Filter {
            keywords: vec!["storm".into(), "#flood".into()],
            ..Filter::default()
        };
        assert!(words.keeps(&p));
        assert!(words.keeps(&post("bob", None, "the river rises", &["Flood"])));
        assert!(!words.keeps(&post("bob", None, "sunny day", &["beach"])));
    }
}

/// Turns a `time_us`-style position into a time (for lag figures).
pub(crate) fn micros_to_time(us: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(us)
}
