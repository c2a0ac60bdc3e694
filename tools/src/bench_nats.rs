//! `tidings-tools bench --nats`: NATS JetStream → both indexes. Publish-to-searchable lag (p50/p99)
//! at steady rates (the Bluesky firehose's ~50 posts/s, 10× and 100× that), by BM25 and by
//! vector (with the configured embedder), how long the vectors take to catch up, and how fast a backlog drains (text only, and text + vectors), each beside the
//! same posts written straight into the index writer in the same process.

use crate::bench::{corpus, peak_rss_mb, summarize, BenchOptions};
use anyhow::Context;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tidings::app::App;
use tidings::config::Settings;
use tidings_ingest::sources::nats::NatsSpec;
use tidings_ingest::sources::SourceSpec;

const NATS_URL: &str = "nats://127.0.0.1:4222";

pub(crate) fn texts(options: &BenchOptions, n: usize) -> anyhow::Result<Vec<String>> {
    let path = corpus(options, 100_000)?;
    let file =
        std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let mut texts = crate::bench::post_texts(&file, usize::MAX);
    texts.truncate(n);
    Ok(texts)
}

/// The `i`-th benchmark post: id `<prefix>-<i>`, and `<prefix><i>` in its text so each post can
/// be searched for on its own.
pub(crate) fn post(prefix: &str, i: usize, text: &str) -> String {
    serde_json::json!({
        "id": format!("{prefix}-{i}"),
        "author": format!("bench{}", i % 997),
        "text": format!("{text} {prefix}{i}"),
        "created_at": chrono::Utc::now(),
    })
    .to_string()
}

struct Run {
    stream: String,
    subject: String,
    js: async_nats::jetstream::Context,
    _dir: tempfile::TempDir,
    settings: Settings,
}

async fn setup(base: &Settings, vectors: bool) -> anyhow::Result<Run> {
    let dir = tempfile::tempdir()?;
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("random: {e}"))?;
    let tag: String = b.iter().map(|x| format!("{x:02x}")).collect();
    let stream = format!("TIDINGS_BENCH_{tag}");
    let subject = format!("tidings.bench.{tag}");
    let mut settings = base.clone();
    settings.data.dir = dir.path().to_path_buf();
    settings.server.bind = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    settings.model.kind = "none".into();
    // With vectors: the configured embedder (`TIDINGS__EMBEDDER__KIND=static` for the
    // distilled table), the local model when none is configured.
    settings.embedder.kind = match (vectors, base.embedder.kind.as_str()) {
        (false, _) => "none".into(),
        (true, "none") => "local".into(),
        (true, kind) => kind.into(),
    };
    settings.index.optimize_every = 0;
    let spec: NatsSpec = serde_json::from_value(serde_json::json!({
        "url": NATS_URL, "stream": stream, "subjects": [subject], "consumer": "bench",
    }))?;
    settings.sources.define = vec![SourceSpec::Nats(spec)];
    settings.sources.enabled = true;
    let client = async_nats::connect(NATS_URL)
        .await
        .context("NATS JetStream at 127.0.0.1:4222")?;
    let js = async_nats::jetstream::new(client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: stream.clone(),
        subjects: vec![subject.clone()],
        storage: async_nats::jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await
    .context("create the bench stream")?;
    Ok(Run {
        stream,
        subject,
        js,
        _dir: dir,
        settings,
    })
}

impl Run {
    async fn finish(self) {
        let _ = self.js.delete_stream(&self.stream).await;
    }
}

/// Publishes `total` messages (`body(i)`) at `rate` per second; returns when each was sent.
/// Acknowledgements are awaited as they come (JetStream caps how many may be pending), and all
/// of them before it returns.
pub(crate) async fn publish_steady(
    js: &async_nats::jetstream::Context,
    subject: &str,
    total: usize,
    rate: f64,
    body: impl Fn(usize) -> String,
) -> anyhow::Result<Vec<Instant>> {
    let interval = Duration::from_secs_f64(1.0 / rate);
    let started = tokio::time::Instant::now();
    let mut sent: Vec<Instant> = Vec::with_capacity(total);
    let mut acks = std::collections::VecDeque::new();
    for i in 0..total {
        tokio::time::sleep_until(started + interval * i as u32).await;
        sent.push(Instant::now());
        acks.push_back(
            js.publish(subject.to_string(), body(i).into_bytes().into())
                .await?,
        );
        while acks.len() > 256 {
            if let Some(a) = acks.pop_front() {
                a.await?;
            }
        }
    }
    for a in acks {
        a.await?;
    }
    Ok(sent)
}

/// Samples the vectors written by `stats` (summed) every 10 ms until `total` are written (or
/// 30 minutes pass). Vectors land in publish order (one writer, batches in commit order), so
/// the samples give each post's vector time within the sampling step.
pub(crate) fn sample_vectors(
    stats: Vec<std::sync::Arc<tidings_index::IndexStats>>,
    total: usize,
) -> tokio::task::JoinHandle<Vec<(Instant, u64)>> {
    tokio::spawn(async move {
        let started = Instant::now();
        let mut samples: Vec<(Instant, u64)> = Vec::new();
        loop {
            let written: u64 = stats
                .iter()
                .map(|s| s.vectors_upserted.load(Ordering::Relaxed))
                .sum();
            samples.push((Instant::now(), written));
            if written >= total as u64 || started.elapsed() > Duration::from_secs(1800) {
                return samples;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
}

/// Each post's publish → vector written lag (ms), from the send times and the samples of
/// [`sample_vectors`]; posts whose vector was not seen are left out.
pub(crate) fn vector_lags(sent: &[Instant], samples: &[(Instant, u64)]) -> Vec<f64> {
    let mut lags = Vec::with_capacity(sent.len());
    let mut k = 0;
    for (i, t0) in sent.iter().enumerate() {
        while k < samples.len() && samples[k].1 < (i + 1) as u64 {
            k += 1;
        }
        if let Some((t1, _)) = samples.get(k) {
            lags.push(t1.saturating_duration_since(*t0).as_secs_f64() * 1000.0);
        }
    }
    lags
}

/// Steady publishing at `rate` for `secs`: lag from publish to committed (searchable by BM25)
/// and, with an embedder, to the post's vector written (searchable by meaning).
async fn steady(base: &Settings, texts: &[String], rate: f64, secs: u64) -> anyhow::Result<String> {
    let run = setup(base, true).await?;
    let app = App::build_with_sources(&run.settings, None, true).await?;
    let guard = app.index.lock().await;
    let service = guard.as_ref().context("index open")?;
    let mut feed = service.write.subscribe();
    let stats = service.stats.clone();
    drop(guard);
    // Wait for the consumer to be connected.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let total = (rate * secs as f64) as usize;
    let sampler = sample_vectors(vec![stats.clone()], total);
    let seen = tokio::spawn(async move {
        let mut at: HashMap<String, Instant> = HashMap::with_capacity(total);
        while at.len() < total {
            match tokio::time::timeout(Duration::from_secs(60), feed.recv()).await {
                Ok(Ok(p)) => {
                    at.insert(p.id.to_string(), Instant::now());
                }
                Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => continue,
                _ => break,
            }
        }
        at
    });
    let sent = publish_steady(&run.js, &run.subject, total, rate, |i| {
        post("nb", i, &texts[i % texts.len()])
    })
    .await?;
    let published_at = Instant::now();
    let at = seen.await?;
    let mut lags = Vec::with_capacity(total);
    for (i, t0) in sent.iter().enumerate() {
        if let Some(t1) = at.get(&format!("nb-{i}")) {
            lags.push(t1.duration_since(*t0).as_secs_f64() * 1000.0);
        }
    }
    let missing = total - lags.len();
    let (p50, p99) = summarize(lags);
    while stats.vectors_pending.load(Ordering::Relaxed) > 0
        || !stats.vectors_ready.load(Ordering::Relaxed)
    {
        if published_at.elapsed() > Duration::from_secs(900) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let catchup = published_at.elapsed().as_secs_f64();
    let samples = sampler.await?;
    let vlags = vector_lags(&sent, &samples);
    let vmissing = total - vlags.len();
    let (v50, v99) = summarize(vlags);
    let embedder = run.settings.embedder.kind.clone();
    app.stop().await?;
    run.finish().await;
    Ok(format!(
        "| NATS publish → searchable (BM25) at {rate:.0} posts/s for {secs} s | {total} | p50 {p50:.1} ms / p99 {:.1} ms{} | — |\n\
         | NATS publish → vector written ({} embedder) at {rate:.0} posts/s | {total} | p50 {v50:.0} ms / p99 {v99:.0} ms{} | caught up {catchup:.1} s after the last publish |",
        p99,
        if missing > 0 { format!(" ({missing} not seen)") } else { String::new() },
        embedder,
        if vmissing > 0 { format!(" ({vmissing} not written)") } else { String::new() },
    ))
}

/// A backlog of `n` posts already in the stream when the server starts: time until all are
/// committed (and, with vectors, embedded); beside the same posts upserted straight into the
/// writer in batches of 500.
async fn drain(
    base: &Settings,
    texts: &[String],
    n: usize,
    vectors: bool,
) -> anyhow::Result<String> {
    let run = setup(base, vectors).await?;
    let mut acks = Vec::with_capacity(n);
    for i in 0..n {
        let body = post("nb", i, &texts[i % texts.len()]);
        acks.push(
            run.js
                .publish(run.subject.clone(), body.into_bytes().into())
                .await?,
        );
        if acks.len() >= 256 {
            for a in acks.drain(..) {
                a.await?;
            }
        }
    }
    for a in acks {
        a.await?;
    }
    let started = Instant::now();
    let app = App::build_with_sources(&run.settings, None, true).await?;
    let guard = app.index.lock().await;
    let stats = guard.as_ref().context("index open")?.stats.clone();
    drop(guard);
    let mut text_done = None;
    loop {
        if text_done.is_none() && stats.posts.load(Ordering::Relaxed) >= n as u64 {
            text_done = Some(started.elapsed().as_secs_f64());
            if !vectors {
                break;
            }
        }
        if text_done.is_some()
            && stats.vectors_pending.load(Ordering::Relaxed) == 0
            && stats.vectors_ready.load(Ordering::Relaxed)
        {
            break;
        }
        if started.elapsed() > Duration::from_secs(1800) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let both = started.elapsed().as_secs_f64();
    app.stop().await?;
    run.finish().await;
    let text_secs = text_done.unwrap_or(f64::NAN);
    // Baseline: the same posts straight into the writer (no broker, no source loop).
    let dir = tempfile::tempdir()?;
    let mut settings = base.clone();
    settings.data.dir = dir.path().to_path_buf();
    settings.embedder.kind = "none".into();
    let service = tokio::task::block_in_place(|| tidings::app::open_index(&settings, false))?;
    let validation = tidings_ingest::ValidationConfig::default();
    let posts: Vec<_> = (0..n)
        .filter_map(|i| {
            tidings_ingest::validate_json(
                &post("nb", i, &texts[i % texts.len()]),
                "bench",
                &validation,
                chrono::Utc::now(),
            )
            .ok()
        })
        .collect();
    let t0 = Instant::now();
    let mut pending = Vec::new();
    for chunk in posts.chunks(500) {
        pending.push(
            service
                .write
                .submit(
                    chunk
                        .iter()
                        .cloned()
                        .map(tidings_index::Change::Upsert)
                        .collect(),
                    None,
                )
                .await?,
        );
    }
    for p in pending {
        p.committed().await?;
    }
    let direct = t0.elapsed().as_secs_f64();
    service.shutdown().await;
    let rate = n as f64 / text_secs;
    let mut row = format!(
        "| NATS backlog drained into the text index{} | {n} | {rate:.0} posts/s ({text_secs:.1} s incl. start) | writer alone {:.0} posts/s | {:.2}× |",
        if vectors { " (embedder on)" } else { "" },
        n as f64 / direct,
        rate / (n as f64 / direct)
    );
    if vectors {
        row.push_str(&format!(
            "\n| NATS backlog into both indexes (vectors done) | {n} | {:.0} posts/s ({both:.1} s) | — | — |",
            n as f64 / both
        ));
    }
    Ok(row)
}

pub async fn run(
    base: Settings,
    options: BenchOptions,
    rates: &[f64],
    secs: u64,
) -> anyhow::Result<()> {
    println!(
        "Tidings NATS benchmark on {} cores against {NATS_URL}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let texts = texts(&options, 20_000)?;
    let mut rows = Vec::new();
    for &rate in rates {
        let row = steady(&base, &texts, rate, secs).await?;
        println!("{row}");
        rows.push(row);
    }
    for (n, vectors) in [(20_000usize, false), (2_000, true)] {
        let row = drain(&base, &texts, n, vectors).await?;
        println!("{row}");
        rows.push(row);
    }
    println!("\n| figure | N | Tidings | beside | ratio |\n|---|---:|---:|---:|---:|");
    for r in rows {
        println!("{r}");
    }
    println!("peak RSS {:.0} MiB", peak_rss_mb());
    Ok(())
}
