//! `tidings publish` (a JSONL file into a NATS JetStream subject) and `tidings verify` (what the
//! text and vector indexes hold, and whether they agree).

use anyhow::Context;
use serde_json::json;
use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};
use tidings::config::Settings;
use tidings_index::{IndexConfig, IndexService};
use tidings_ingest::sources::nats::{open_stream, NatsSpec};
use tokio::io::AsyncBufReadExt;

/// Publishes every non-empty line of `file` (`-`: stdin) as one message, waiting for JetStream's
/// acknowledgement of each (a few hundred in flight). `rate` paces it (posts per second).
pub(crate) async fn publish(
    file: &str,
    url: &str,
    stream: &str,
    subject: &str,
    rate: Option<f64>,
) -> anyhow::Result<u64> {
    let spec = NatsSpec {
        url: url.to_string(),
        stream: stream.to_string(),
        subjects: vec![subject.to_string()],
        ..serde_json::from_value(json!({})).context("default NATS settings")?
    };
    let client = async_nats::connect(url)
        .await
        .with_context(|| format!("connect to NATS at {url}"))?;
    let js = async_nats::jetstream::new(client);
    open_stream(&js, &spec).await.map_err(anyhow::Error::msg)?;
    let input: Box<dyn tokio::io::AsyncRead + Unpin + Send> = if file == "-" {
        Box::new(tokio::io::stdin())
    } else {
        Box::new(
            tokio::fs::File::open(file)
                .await
                .with_context(|| format!("open {file}"))?,
        )
    };
    let mut lines = tokio::io::BufReader::new(input).lines();
    let started = Instant::now();
    let mut in_flight = VecDeque::new();
    let mut sent = 0u64;
    while let Some(line) = lines.next_line().await.context("read input")? {
        if line.trim().is_empty() {
            continue;
        }
        if let Some(rate) = rate.filter(|r| *r > 0.0) {
            let due = started + Duration::from_secs_f64(sent as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        let ack = js
            .publish(subject.to_string(), line.into_bytes().into())
            .await
            .context("publish")?;
        in_flight.push_back(ack);
        sent += 1;
        if in_flight.len() >= 256 {
            if let Some(ack) = in_flight.pop_front() {
                ack.await.context("publish acknowledgement")?;
            }
        }
    }
    for ack in in_flight {
        ack.await.context("publish acknowledgement")?;
    }
    Ok(sent)
}

/// What the indexes hold, as JSON; `ids` adds every id. Needs the data dir to itself (stop the
/// server first); it reads, and repairs nothing.
pub(crate) fn verify(settings: &Settings, ids: bool) -> anyhow::Result<serde_json::Value> {
    let config = IndexConfig {
        data_dir: settings.data.dir.clone(),
        writer: Default::default(),
        vector_worker: Default::default(),
    };
    let service = IndexService::start(&config, None)
        .with_context(|| format!("open the index in {}", settings.data.dir.display()))?;
    let inventory = service.inventory()?;
    let checkpoints = service.checkpoints().clone();
    let vectors_dir = settings.data.dir.join("vectors");
    let vectors: Option<BTreeSet<String>> =
        if settings.vectors.kind == "qdrant" || vectors_dir.exists() {
            let dim = match tidings_index::recorded_embedder(&settings.data.dir) {
                Some((_, dim)) => dim,
                None => tidings::app::embedder(settings)?.map_or(384, |e| e.dim()),
            };
            let store = tidings::app::vector_store(settings, dim)?;
            Some(store.all_ids()?.into_iter().map(|s| s.post_id).collect())
        } else {
            None
        };
    let text: BTreeSet<String> = inventory.text.keys().cloned().collect();
    let duplicates: Vec<&String> = inventory
        .text
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| id)
        .collect();
    let (missing, stray): (Vec<&String>, Vec<&String>) = match &vectors {
        Some(v) => (text.difference(v).collect(), v.difference(&text).collect()),
        None => (Vec::new(), Vec::new()),
    };
    let mut out = json!({
        "text_posts": text.len(),
        "text_documents": inventory.text.values().map(|n| u64::from(*n)).sum::<u64>(),
        "duplicate_ids": duplicates,
        "vector_points": vectors.as_ref().map(BTreeSet::len),
        "missing_vectors": missing.len(),
        "stray_vectors": stray.len(),
        "consistent": duplicates.is_empty() && missing.is_empty() && stray.is_empty(),
        "checkpoints": checkpoints,
    });
    if ids {
        out["ids"] = json!(text);
        out["missing_vector_ids"] = json!(missing);
        out["stray_vector_ids"] = json!(stray);
    }
    Ok(out)
}

#[derive(clap::Args)]
pub(crate) struct PublishArgs {
    file: String,
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    url: String,
    #[arg(long, default_value = "TIDINGS")]
    stream: String,
    #[arg(long, default_value = "tidings.posts")]
    subject: String,
    /// Posts per second (default: as fast as JetStream acknowledges).
    #[arg(long)]
    rate: Option<f64>,
}

impl PublishArgs {
    pub(crate) async fn run(self) -> anyhow::Result<()> {
        let started = Instant::now();
        let sent = publish(
            &self.file,
            &self.url,
            &self.stream,
            &self.subject,
            self.rate,
        )
        .await?;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "published {sent} posts to {} (stream {}) in {secs:.1} s ({:.0}/s)",
            self.subject,
            self.stream,
            sent as f64 / secs.max(1e-9)
        );
        Ok(())
    }
}

#[derive(clap::Args)]
pub(crate) struct VerifyArgs {
    /// List every id.
    #[arg(long)]
    ids: bool,
}

impl VerifyArgs {
    pub(crate) fn run(self, settings: &Settings) -> anyhow::Result<()> {
        let report = tokio::task::block_in_place(|| verify(settings, self.ids))?;
        println!("{}", serde_json::to_string_pretty(&report)?);
        if report["consistent"] != serde_json::Value::Bool(true) {
            std::process::exit(1);
        }
        Ok(())
    }
}
