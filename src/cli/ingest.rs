//! `tidings ingest FILE|-`: loads a JSONL/NDJSON file (or stdin) into the local index with a
//! progress bar, prints what was inserted, updated, duplicated and rejected (and why), then
//! waits for the vectors to catch up.

use anyhow::{bail, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::time::{Duration, Instant};
use tidings::app;
use tidings::config::Settings;
use tidings_ingest::ValidationConfig;

#[derive(Args)]
pub(crate) struct IngestArgs {
    file: String,
    /// Source name for posts that carry none.
    #[arg(long, default_value = "file")]
    source: String,
    /// Index text only; the server embeds what is missing when it next starts.
    #[arg(long)]
    no_vectors: bool,
    /// Print every rejected line, not only the first 20.
    #[arg(long)]
    all_errors: bool,
}

impl IngestArgs {
    pub(crate) async fn run(self, settings: Settings) -> anyhow::Result<()> {
        ingest(
            settings,
            &self.file,
            &self.source,
            self.no_vectors,
            self.all_errors,
        )
        .await
    }
}

async fn ingest(
    settings: Settings,
    file: &str,
    source: &str,
    no_vectors: bool,
    all_errors: bool,
) -> anyhow::Result<()> {
    let service = tokio::task::block_in_place(|| app::open_index(&settings, !no_vectors))?;
    let started = Instant::now();
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let (total_bytes, reader): (Option<u64>, Box<dyn tokio::io::AsyncBufRead + Unpin + Send>) =
        if file == "-" {
            (
                None,
                Box::new(tokio::io::BufReader::with_capacity(
                    1 << 16,
                    tokio::io::stdin(),
                )),
            )
        } else {
            let f = tokio::fs::File::open(file)
                .await
                .with_context(|| format!("open {file}"))?;
            let len = f.metadata().await.ok().map(|m| m.len());
            (
                len,
                Box::new(tokio::io::BufReader::with_capacity(1 << 16, f)),
            )
        };
    let bar = match total_bytes {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template("{spinner} text  [{bar:30}] {bytes}/{total_bytes} {msg}")
                .context("progress template")?,
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} text  {msg}").context("progress template")?,
        ),
    };
    let source_name = source.to_string();
    let producer = tokio::spawn(async move {
        tidings_ingest::jsonl::read_jsonl(
            reader,
            &source_name,
            &ValidationConfig::default(),
            5_000,
            &tx,
        )
        .await
    });
    let keep = if all_errors { usize::MAX } else { 20 };
    let summary = tidings_ingest::run_pipeline(rx, &service.write, None, keep, 100_000, |s| {
        bar.set_position(s.bytes);
        bar.set_message(format!(
            "{} new, {} duplicate, {} rejected",
            s.accepted + s.updated,
            s.duplicates,
            s.rejected
        ));
    })
    .await?;
    let lines = producer
        .await
        .context("reader task")?
        .with_context(|| format!("read {file}"))?;
    bar.finish();
    let text_secs = started.elapsed().as_secs_f64();
    println!(
        "text: {lines} lines in {text_secs:.2}s ({:.0} lines/s): {} inserted, {} updated, {} duplicates, {} rejected",
        lines as f64 / text_secs.max(1e-9),
        summary.accepted,
        summary.updated,
        summary.duplicates,
        summary.rejected
    );
    for (code, n) in &summary.rejected_by_code {
        println!("  rejected {code}: {n}");
    }
    for r in &summary.rejections {
        println!(
            "  line {}{}: {}",
            r.line,
            r.id.as_deref()
                .map(|i| format!(" (id {i})"))
                .unwrap_or_default(),
            r.rejection
        );
    }
    if !no_vectors && service.search.has_vectors() {
        let vbar = ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} vectors {msg} [{elapsed}]")
                .context("progress template")?,
        );
        vbar.enable_steady_tick(Duration::from_millis(200));
        let vstart = Instant::now();
        service
            .wait_for_vectors(|pending| {
                vbar.set_message(format!("{pending} waiting for embedding"))
            })
            .await;
        vbar.finish_with_message("done");
        println!(
            "vectors: caught up in {:.1}s",
            vstart.elapsed().as_secs_f64()
        );
    }
    service.shutdown().await;
    if summary.accepted + summary.updated + summary.duplicates == 0 && summary.rejected > 0 {
        bail!("every record was rejected");
    }
    Ok(())
}
