//! `tidings migrate-vectors`: copies the vector index between the embedded shard
//! (`<data dir>/vectors`) and a Qdrant collection (`[vectors]`), in either direction.
//!
//! Resumable: after each page the source cursor is saved beside the data (`migrate-vectors-
//! <to>.cursor`); a run that stops (Ctrl-C, a crash, the server going away) starts again from
//! the last saved page, and upserts are idempotent (the point id is the post id's UUIDv5), so a
//! page copied twice is harmless. At the end the target must hold every source point: counts
//! and ids are compared, and the cursor file is removed only then.

use anyhow::{bail, Context};
use serde_json::json;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use tidings::config::Settings;
use tidings_index::{EdgeVectorStore, QdrantVectorStore, VectorStore};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Store {
    /// The embedded shard in `<data dir>/vectors`.
    Edge,
    /// The Qdrant collection of `[vectors]` (url, collection, …).
    Qdrant,
}

#[derive(clap::Args)]
pub(crate) struct MigrateVectorsArgs {
    /// Where the points go; they come from the other store.
    #[arg(long, value_enum)]
    to: Store,
    /// Points per page.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Start from the first page even if an earlier run left a cursor.
    #[arg(long)]
    restart: bool,
}

impl MigrateVectorsArgs {
    pub(crate) fn run(self, settings: &Settings) -> anyhow::Result<()> {
        let report = tokio::task::block_in_place(|| self.migrate(settings))?;
        println!("{}", serde_json::to_string_pretty(&report)?);
        if report["complete"] != serde_json::Value::Bool(true) {
            std::process::exit(1);
        }
        Ok(())
    }

    fn migrate(&self, settings: &Settings) -> anyhow::Result<serde_json::Value> {
        if self.batch == 0 {
            bail!("--batch must be at least 1");
        }
        let dim = match tidings_index::recorded_embedder(&settings.data.dir) {
            Some((_, dim)) => dim,
            None if settings.embedder.kind == "openai" => settings.embedder.dim,
            None => 384,
        };
        let edge_dir = settings.data.dir.join("vectors");
        if self.to == Store::Qdrant && !edge_dir.exists() {
            bail!(
                "there is no embedded vector index in {} to copy",
                edge_dir.display()
            );
        }
        let edge: Arc<dyn VectorStore> = Arc::new(EdgeVectorStore::open(&edge_dir, dim)?);
        let config = settings.vectors.qdrant();
        let qdrant: Arc<dyn VectorStore> = Arc::new(
            QdrantVectorStore::open(&config, dim)
                .with_context(|| format!("open the Qdrant collection `{}`", config.collection))?,
        );
        let (from, to) = match self.to {
            Store::Qdrant => (edge, qdrant),
            Store::Edge => (qdrant, edge),
        };
        let cursor_file = settings
            .data
            .dir
            .join(format!("migrate-vectors-{}.cursor", to.backend()));
        let mut cursor = if self.restart {
            None
        } else {
            read_cursor(&cursor_file)?
        };
        let resumed = cursor.is_some();
        let started = Instant::now();
        let mut copied = 0u64;
        loop {
            let (points, next) = from.page(cursor.clone(), self.batch)?;
            copied += points.len() as u64;
            to.upsert(points)?;
            match next {
                Some(next) => {
                    std::fs::write(&cursor_file, &next)
                        .with_context(|| format!("save {}", cursor_file.display()))?;
                    cursor = Some(next);
                    if copied % 10_000 < self.batch as u64 {
                        eprintln!("migrate-vectors: {copied} points copied");
                    }
                }
                None => break,
            }
        }
        // Counts and ids: the target must hold every source point.
        let source_ids: BTreeSet<String> = from.all_ids()?.into_iter().map(|s| s.post_id).collect();
        let target_ids: BTreeSet<String> = to.all_ids()?.into_iter().map(|s| s.post_id).collect();
        let missing: Vec<&String> = source_ids.difference(&target_ids).collect();
        let complete = missing.is_empty();
        if complete {
            let _ = std::fs::remove_file(&cursor_file);
        }
        Ok(json!({
            "from": from.backend(),
            "to": to.backend(),
            "collection": config.collection,
            "resumed": resumed,
            "copied": copied,
            "source_points": source_ids.len(),
            "target_points": to.count()?,
            "missing_in_target": missing.len(),
            "extra_in_target": target_ids.difference(&source_ids).count(),
            "complete": complete,
            "seconds": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        }))
    }
}

fn read_cursor(path: &PathBuf) -> anyhow::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => Ok(Some(text.trim().to_string())),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
    }
}

#[derive(clap::Args)]
pub(crate) struct ReembedArgs {
    /// The embedder to use (`local`, `static`, `openai`); default: the settings' `embedder.kind`.
    #[arg(long)]
    embedder: Option<String>,
}

impl ReembedArgs {
    pub(crate) async fn run(self, mut settings: Settings) -> anyhow::Result<()> {
        if let Some(kind) = self.embedder {
            settings.embedder.kind = kind;
        }
        let started = Instant::now();
        let bar = indicatif::ProgressBar::new_spinner().with_style(
            indicatif::ProgressStyle::with_template("{spinner} vectors {msg} [{elapsed}]")
                .context("progress template")?,
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        let report = tidings::app::reembed(&settings, |pending| {
            bar.set_message(format!("{pending} waiting for embedding"))
        })
        .await?;
        bar.finish_and_clear();
        println!(
            "{}",
            json!({
                "previous": report.previous,
                "embedder": report.embedder,
                "posts": report.posts,
                "vectors": report.vectors,
                "seconds": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
            })
        );
        Ok(())
    }
}
