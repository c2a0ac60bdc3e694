//! NATS JetStream: the scale-out ingest log. A durable pull consumer reads posts (one JSON post
//! per message, the same shape as `POST /v1/posts`) published by any producer; a message is
//! acknowledged only after the commit that holds its post, so a crash before that redelivers
//! it, and a redelivered post is a duplicate the index ignores. A message with the header
//! `Tidings-Op: delete` deletes the post whose id is its body. Malformed messages are
//! dead-lettered and acknowledged (they would never get better).

use super::SourceError;
use super::{Backoff, Batcher, Filter, SourceCtx};
use async_nats::jetstream::{self, consumer::pull, message::Acker};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tidings_index::{Change, PostId};
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSpec {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default = "default_url")]
    pub url: String,
    #[serde(default = "default_stream")]
    pub stream: String,
    /// Subjects of the stream (used when Tidings creates it).
    #[serde(default = "default_subjects")]
    pub subjects: Vec<String>,
    /// The durable consumer's name.
    #[serde(default = "default_consumer")]
    pub consumer: String,
    /// Create the stream (file storage) when it does not exist.
    #[serde(default = "default_true")]
    pub create_stream: bool,
    /// How long the server waits for an acknowledgement before redelivering.
    #[serde(default = "default_ack_wait")]
    pub ack_wait_secs: u64,
    /// Messages delivered and not yet acknowledged, at most.
    #[serde(default = "default_max_ack_pending")]
    pub max_ack_pending: i64,
    #[serde(default)]
    pub filter: Filter,
}

fn default_url() -> String {
    "nats://127.0.0.1:4222".into()
}
fn default_stream() -> String {
    "TIDINGS".into()
}
fn default_subjects() -> Vec<String> {
    vec!["tidings.posts".into()]
}
fn default_consumer() -> String {
    "tidings".into()
}
fn default_true() -> bool {
    true
}
fn default_ack_wait() -> u64 {
    30
}
fn default_max_ack_pending() -> i64 {
    20_000
}

impl NatsSpec {
    pub(crate) fn check(&self) -> Result<(), SourceError> {
        let bad =
            |s: &str| s.is_empty() || s.chars().any(|c| c.is_whitespace() || ".*>".contains(c));
        if bad(&self.stream) {
            return Err(SourceError::Config(format!(
                "stream `{}` must be a name without spaces, dots or wildcards",
                self.stream
            )));
        }
        if bad(&self.consumer) {
            return Err(SourceError::Config(format!(
                "consumer `{}` must be a name without spaces, dots or wildcards",
                self.consumer
            )));
        }
        if self.subjects.is_empty() {
            return Err(SourceError::Config("subjects is empty".into()));
        }
        Ok(())
    }
}

/// Connects (or creates) the stream named in `spec`.
pub async fn open_stream(
    js: &jetstream::Context,
    spec: &NatsSpec,
) -> Result<jetstream::stream::Stream, SourceError> {
    if spec.create_stream {
        js.get_or_create_stream(jetstream::stream::Config {
            name: spec.stream.clone(),
            subjects: spec.subjects.clone(),
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| SourceError::Disconnected(format!("stream {}: {e}", spec.stream)))
    } else {
        js.get_stream(&spec.stream)
            .await
            .map_err(|e| SourceError::Disconnected(format!("stream {}: {e}", spec.stream)))
    }
}

/// Consumes until `stop`.
pub async fn run(
    spec: NatsSpec,
    ctx: SourceCtx,
    stop: CancellationToken,
) -> Result<(), SourceError> {
    spec.check()?;
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    loop {
        ctx.status.connecting(&spec.url);
        let error = match session(&spec, &ctx, &stop, &mut backoff).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let wait = backoff.next_delay();
        ctx.status.disconnected(&error.to_string(), wait);
        tracing::warn!(source = %ctx.name, error = %error, retry_in = ?wait, "nats consumer disconnected");
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => return Ok(()),
        }
    }
}

async fn session(
    spec: &NatsSpec,
    ctx: &SourceCtx,
    stop: &CancellationToken,
    backoff: &mut Backoff,
) -> Result<(), SourceError> {
    let connect = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(5))
        .name(format!("tidings:{}", ctx.name))
        .connect(spec.url.as_str());
    let client = tokio::select! {
        c = connect => c.map_err(|e| SourceError::Disconnected(format!("connect {}: {e}", spec.url)))?,
        _ = stop.cancelled() => return Ok(()),
    };
    let js = jetstream::new(client);
    let stream = open_stream(&js, spec).await?;
    let consumer = stream
        .get_or_create_consumer(
            &spec.consumer,
            pull::Config {
                durable_name: Some(spec.consumer.clone()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(spec.ack_wait_secs.max(1)),
                max_ack_pending: spec.max_ack_pending,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| SourceError::Disconnected(format!("consumer {}: {e}", spec.consumer)))?;
    // What waits for this consumer now: a replica that was down (or started late) is not
    // caught up until it has committed up to the stream's last message as of now.
    match consumer.get_info().await {
        Ok(info) => {
            ctx.status.set_backlog(Some(info.num_pending));
            let target = if info.num_pending > 0 {
                let mut stream = stream.clone();
                match stream.info().await {
                    Ok(s) => Some(s.state.last_sequence),
                    Err(e) => {
                        tracing::warn!(source = %ctx.name, error = %e, "could not read the stream's last sequence");
                        None
                    }
                }
            } else {
                None
            };
            ctx.status.catch_up_to(target);
        }
        Err(e) => {
            tracing::warn!(source = %ctx.name, error = %e, "could not read the consumer's backlog")
        }
    }
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(ctx.limits.batch_changes.max(1))
        .heartbeat(Duration::from_secs(5))
        .messages()
        .await
        .map_err(|e| SourceError::Disconnected(format!("pull: {e}")))?;
    ctx.status.connected();
    backoff.reset();
    tracing::info!(source = %ctx.name, stream = %spec.stream, consumer = %spec.consumer, "nats consumer connected");
    let mut batch = Batcher::new();
    let mut acks: Vec<Acker> = Vec::new();
    loop {
        let deadline = batch.deadline(ctx.limits.batch_wait);
        let next = tokio::select! {
            _ = stop.cancelled() => {
                flush(&mut batch, &mut acks, ctx).await;
                return Ok(());
            }
            _ = async { tokio::time::sleep_until(deadline.expect("guarded")).await }, if deadline.is_some() => {
                if !flush(&mut batch, &mut acks, ctx).await { return Ok(()); }
                continue;
            }
            n = messages.next() => n,
        };
        let message = match next {
            None => {
                flush(&mut batch, &mut acks, ctx).await;
                return Err(SourceError::Disconnected(
                    "the consumer's message stream ended".into(),
                ));
            }
            Some(Err(e)) => {
                flush(&mut batch, &mut acks, ctx).await;
                return Err(SourceError::Disconnected(format!("pull: {e}")));
            }
            Some(Ok(m)) => m,
        };
        let (seq, published, pending) = match message.info() {
            Ok(i) => (
                Some(i.stream_sequence),
                chrono::DateTime::from_timestamp_nanos(i.published.unix_timestamp_nanos() as i64),
                i.pending,
            ),
            Err(_) => (None, chrono::Utc::now(), 0),
        };
        ctx.status.set_backlog(Some(pending));
        let delete = message
            .headers
            .as_ref()
            .and_then(|h| h.get("Tidings-Op"))
            .is_some_and(|v| v.as_str().eq_ignore_ascii_case("delete"));
        let (message, acker) = message.split();
        apply(&message.payload, delete, ctx, &mut batch);
        acks.push(acker);
        batch.at(seq.map(|s| s.to_string()), Some(published));
        if batch.len() >= ctx.limits.batch_changes && !flush(&mut batch, &mut acks, ctx).await {
            return Ok(());
        }
    }
}

fn apply(payload: &[u8], delete: bool, ctx: &SourceCtx, batch: &mut Batcher) {
    let Some(text) = ctx.admit(payload) else {
        return;
    };
    if delete {
        match PostId::parse(text) {
            Ok(id) => batch.push(Change::Delete(id)),
            Err(e) => ctx.reject(
                &crate::Rejection::malformed(format!("delete: {e}")),
                payload,
            ),
        }
        return;
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value) => {
            if let Some(post) = ctx.post(value, payload) {
                batch.push(Change::Upsert(post));
            }
        }
        Err(e) => ctx.reject(
            &crate::Rejection::malformed(format!("not valid JSON: {e}")),
            payload,
        ),
    }
}

/// Sends the batch with its acknowledgements attached (run after its commit).
async fn flush(batch: &mut Batcher, acks: &mut Vec<Acker>, ctx: &SourceCtx) -> bool {
    if batch.is_empty() && acks.is_empty() {
        return true;
    }
    let mut b = batch.take();
    let ackers = std::mem::take(acks);
    let name = ctx.name.clone();
    b.on_commit = Some(Box::new(move || {
        Box::pin(async move {
            for a in ackers {
                if let Err(e) = a.ack().await {
                    // Unacknowledged messages are redelivered after ack_wait; the index treats
                    // them as duplicates.
                    tracing::warn!(source = %name, error = %e, "could not acknowledge a message");
                }
            }
        })
    }));
    ctx.send(b).await
}
