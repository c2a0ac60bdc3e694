//! `tidings-tools bench`: throughput and latency on a corpus scaled from the real posts, each figure
//! beside a baseline measured in the same process.
//!
//! Corpus: `posts_{N}.jsonl` and `queries.txt` from `../shared/peers/gen.py` (deterministic, real
//! posts recombined; the method is in its docstring), generated into `/tmp/peers-data` when
//! missing, so the figures are comparable with `../shared/peers/results.md`.
//! Baselines: raw tantivy (default tokenizer, pre-parsed text, no validation or dedup) for
//! ingest and filtered BM25; the embedder alone for ingest with embeddings.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tidings::app;
use tidings::config::Settings;
use tidings_index::{
    Embedder, LocalEmbedder, Ranker, SearchFilter, SearchMode, SearchRequest, StaticEmbedder,
};
use tidings_ingest::ValidationConfig;

#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Also measure hybrid search at each size with synthetic vectors loaded straight into the
    /// vector index (embedding N real posts takes hours here).
    pub synthetic_vectors: bool,
    /// With `synthetic_vectors`: skip the HNSW build (windows small enough for an exact scan of
    /// their points do not use the graph; larger ones then scan).
    pub no_hnsw: bool,
    pub shared: PathBuf,
    /// Corpus sizes for text ingest and filtered BM25.
    pub sizes: Vec<usize>,
    /// Posts embedded for the embedder / ingest-with-embeddings / hybrid figures.
    pub embed_n: usize,
    /// Steady push rate and duration for the freshness figure.
    pub fresh_rate: f64,
    pub fresh_secs: u64,
    pub peers_data: PathBuf,
    /// With `synthetic_vectors`: also measure hybrid search with the vectors on this Qdrant
    /// server (gRPC URL), beside the embedded shard, in the same run.
    pub qdrant_url: Option<String>,
    /// Only the text figures (ingest and BM25 at each size); no embedder, no freshness.
    pub text_only: bool,
    /// Only the freshness figures, for each embedder.
    pub freshness_only: bool,
}

pub(crate) const WINDOW_END_MS: i64 = 1_711_843_200_000; // 2024-03-31T00:00:00Z, end of gen.py's window
pub(crate) const DAY_MS: i64 = 86_400_000;

pub(crate) fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The benchmark's BM25 search: top-10 in the last 24 h of the corpus, 6 h decay, collapse.
pub(crate) fn filtered_search(q: &str) -> SearchRequest {
    SearchRequest {
        query: q.to_string(),
        semantic_query: None,
        filter: SearchFilter {
            from_ms: Some(WINDOW_END_MS - DAY_MS),
            to_ms: Some(WINDOW_END_MS - 1),
            ..SearchFilter::default()
        },
        as_of_ms: WINDOW_END_MS,
        half_life: Some(Duration::from_secs(6 * 3600)),
        limit: 10,
        mode: SearchMode::Text,
        collapse_duplicates: true,
        ranker: Ranker::default(),
    }
}

pub(crate) fn summarize(mut xs: Vec<f64>) -> (f64, f64) {
    xs.sort_by(f64::total_cmp);
    (pct(&xs, 50.0), pct(&xs, 99.0))
}

pub(crate) fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

pub(crate) fn corpus(options: &BenchOptions, n: usize) -> anyhow::Result<PathBuf> {
    let path = options.peers_data.join(format!("posts_{n}.jsonl"));
    if !path.exists() || !options.peers_data.join("queries.txt").exists() {
        let gen = options.shared.join("../peers/gen.py");
        if !gen.exists() {
            bail!(
                "{} is missing and so is the generator {}",
                path.display(),
                gen.display()
            );
        }
        println!(
            "bench: generating {} with {}",
            path.display(),
            gen.display()
        );
        let status = std::process::Command::new("python3")
            .arg(&gen)
            .args(["--n", &n.to_string(), "--out"])
            .arg(&options.peers_data)
            .status()
            .context("run gen.py")?;
        if !status.success() {
            bail!("gen.py failed for n={n}");
        }
    }
    Ok(path)
}

fn queries(options: &BenchOptions) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(options.peers_data.join("queries.txt"))?;
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect())
}

/// Raw tantivy, the way a user of the bare library would do it: default tokenizer, text and
/// timestamp only, one commit at the end. Returns (posts/s, p50 ms, p99 ms) of the filtered query.
fn tantivy_baseline(
    path: &Path,
    queries: &[String],
    dir: &Path,
) -> anyhow::Result<(f64, f64, f64)> {
    use tantivy::collector::TopDocs;
    use tantivy::query::{BooleanQuery, Occur, Query, RangeQuery, TermQuery};
    use tantivy::schema::{IndexRecordOption, Schema, FAST, INDEXED, STORED, TEXT};
    use tantivy::{doc, Index, Term};
    let content = std::fs::read_to_string(path)?;
    let rows: Vec<(String, i64)> = content
        .lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            Some((v["text"].as_str()?.to_string(), v["ts"].as_i64()?))
        })
        .collect();
    let mut b = Schema::builder();
    let text = b.add_text_field("text", TEXT);
    let id = b.add_u64_field("id", STORED);
    let ts = b.add_i64_field("ts", INDEXED | FAST);
    let index = Index::create_in_dir(dir, b.build())?;
    let started = Instant::now();
    let mut writer: tantivy::IndexWriter = index.writer(256 << 20)?;
    for (i, (t, s)) in rows.iter().enumerate() {
        writer.add_document(doc!(text => t.as_str(), id => i as u64, ts => *s))?;
    }
    writer.commit()?;
    let rate = rows.len() as f64 / started.elapsed().as_secs_f64();
    let reader = index.reader()?;
    let searcher = reader.searcher();
    let tokenizer_index = index.clone();
    let mut lat = Vec::new();
    for pass in 0..2 {
        for q in queries {
            let t0 = Instant::now();
            let mut analyzer = tokenizer_index.tokenizer_for_field(text)?;
            let mut stream = analyzer.token_stream(q);
            let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
            while let Some(tok) = stream.next() {
                clauses.push((
                    Occur::Should,
                    Box::new(TermQuery::new(
                        Term::from_field_text(text, &tok.text),
                        IndexRecordOption::WithFreqs,
                    )),
                ));
            }
            let range = RangeQuery::new(
                std::ops::Bound::Included(Term::from_field_i64(
                    ts,
                    (WINDOW_END_MS - DAY_MS) / 1000,
                )),
                std::ops::Bound::Excluded(Term::from_field_i64(ts, WINDOW_END_MS / 1000)),
            );
            let query = BooleanQuery::new(vec![
                (
                    Occur::Must,
                    Box::new(BooleanQuery::new(clauses)) as Box<dyn Query>,
                ),
                (Occur::Must, Box::new(range)),
            ]);
            let hits = searcher.search(&query, &TopDocs::with_limit(10).order_by_score())?;
            for (_, addr) in &hits {
                let _: tantivy::TantivyDocument = searcher.doc(*addr)?;
            }
            if pass == 1 {
                lat.push(t0.elapsed().as_secs_f64() * 1000.0);
            }
        }
    }
    let (p50, p99) = summarize(lat);
    Ok((rate, p50, p99))
}

/// The `text` of each JSONL line of `content` among the first `lines` (lines without one are
/// skipped).
pub(crate) fn post_texts(content: &str, lines: usize) -> Vec<String> {
    content
        .lines()
        .take(lines)
        .filter_map(|l| {
            serde_json::from_str::<serde_json::Value>(l).ok()?["text"]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

/// Posts/s of the social analyzer over every text of the corpus on one thread: with the stem
/// cache, and with tantivy's stemmer (same terms), alternating, best of three each.
fn analyzer_rates(path: &Path) -> anyhow::Result<(f64, f64)> {
    let texts = post_texts(&std::fs::read_to_string(path)?, usize::MAX);
    let run = |analyzer: &mut tantivy::tokenizer::TextAnalyzer| {
        let started = Instant::now();
        let mut tokens = 0usize;
        for t in &texts {
            let mut stream = analyzer.token_stream(t);
            while stream.advance() {
                tokens += stream.token().text.len();
            }
        }
        std::hint::black_box(tokens);
        texts.len() as f64 / started.elapsed().as_secs_f64()
    };
    let (mut cached, mut uncached) = (0f64, 0f64);
    for _ in 0..3 {
        cached = cached.max(run(&mut tidings_index::analyzer::social_analyzer()));
        uncached = uncached.max(run(&mut tidings_index::analyzer::social_analyzer_uncached()));
    }
    Ok((cached, uncached))
}

async fn ingest_path(
    service: &tidings_index::IndexService,
    path: &Path,
    limit: Option<usize>,
) -> anyhow::Result<u64> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let content = tokio::fs::read(path).await?;
    let content = match limit {
        Some(n) => content
            .split(|b| *b == b'\n')
            .take(n)
            .collect::<Vec<_>>()
            .join(&b'\n'),
        None => content,
    };
    let producer = tokio::spawn(async move {
        tidings_ingest::jsonl::read_jsonl(
            &content[..],
            "bench",
            &ValidationConfig::default(),
            5_000,
            &tx,
        )
        .await
    });
    let summary =
        tidings_ingest::run_pipeline(rx, &service.write, None, 0, 100_000, |_| {}).await?;
    producer.await??;
    Ok(summary.accepted)
}

/// A deterministic pseudo-random unit vector (xorshift), for the synthetic-vector figure.
fn random_unit(state: &mut u64, dim: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..dim)
        .map(|_| {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            (*state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-9);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

/// Hybrid latency at `n` posts: real text index, synthetic vectors upserted straight into
/// qdrant-edge and its HNSW index built, queries embedded by the real local model. The dense
/// hits are meaningless (random vectors); the latency of filtered HNSW search at this size is
/// what the figure shows.
async fn hybrid_synthetic(
    base: &Settings,
    options: &BenchOptions,
    n: usize,
    qdrant_url: Option<&str>,
) -> anyhow::Result<Vec<String>> {
    use tidings_index::vectors::VectorPoint;
    let path = corpus(options, n)?;
    let queries = queries(options)?;
    let dir = tempfile::tempdir()?;
    let mut settings = base.clone();
    settings.data.dir = dir.path().to_path_buf();
    settings.embedder.kind = "none".into();
    let store_name = match qdrant_url {
        Some(url) => {
            settings.vectors.kind = "qdrant".into();
            settings.vectors.url = url.to_string();
            settings.vectors.collection = format!("tidings_bench_{n}_{}", std::process::id());
            "Qdrant server"
        }
        None => "embedded shard",
    };
    let service = tokio::task::block_in_place(|| app::open_index(&settings, false))?;
    ingest_path(&service, &path, None).await?;
    service.shutdown().await;
    let started = Instant::now();
    let load = tokio::task::block_in_place(|| -> anyhow::Result<(f64, f64)> {
        let store = app::vector_store(&settings, 384)?;
        let content = std::fs::read_to_string(&path)?;
        let config = ValidationConfig::default();
        let now = chrono::Utc::now();
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut batch = Vec::with_capacity(2_000);
        for line in content.lines() {
            let post = tidings_ingest::validate_json(line, "bench", &config, now)
                .map_err(|e| anyhow::anyhow!("corpus line: {e}"))?;
            batch.push(VectorPoint::new(&post, random_unit(&mut state, 384)));
            if batch.len() == 2_000 {
                store.upsert(std::mem::take(&mut batch))?;
            }
        }
        store.upsert(batch)?;
        let upserted = started.elapsed().as_secs_f64();
        if !options.no_hnsw {
            store.optimize()?;
        }
        Ok((upserted, started.elapsed().as_secs_f64() - upserted))
    })?;
    settings.embedder.kind = "local".into();
    settings.embedder.interim = "none".into();
    settings.embedder.instances = 1;
    let service = tokio::task::block_in_place(|| app::open_index(&settings, true))?;
    service.wait_for_vectors(|_| {}).await;
    let search = service.search.clone();
    let (mut hybrid, mut text) = (Vec::new(), Vec::new());
    for pass in 0..2 {
        for q in &queries {
            for (mode, out) in [
                (SearchMode::Hybrid, &mut hybrid),
                (SearchMode::Text, &mut text),
            ] {
                let mut req = SearchRequest::new(q.clone(), WINDOW_END_MS);
                req.mode = mode;
                req.filter.from_ms = Some(WINDOW_END_MS - DAY_MS);
                req.filter.to_ms = Some(WINDOW_END_MS - 1);
                req.half_life = Some(Duration::from_secs(6 * 3600));
                let t0 = Instant::now();
                search.search(req).await?;
                if pass == 1 {
                    out.push(t0.elapsed().as_secs_f64() * 1000.0);
                }
            }
        }
    }
    service.shutdown().await;
    let (p50, p99) = summarize(hybrid);
    let (t50, t99) = summarize(text);
    Ok(vec![format!(
        "| hybrid top-10 incl. query embedding, last-24h filter, vectors on the {store_name} (synthetic vectors: upsert {:.0} s = {:.0} vectors/s, {}) | {n} | p50 {p50:.2} ms / p99 {p99:.2} ms | BM25 alone p50 {t50:.2} / p99 {t99:.2} ms | — |",
        load.0,
        n as f64 / load.0.max(1e-9),
        if options.no_hnsw { "no HNSW build".to_string() } else { format!("HNSW build {:.0} s", load.1) }
    )])
}

/// Runs every figure and prints a table.
pub async fn run(base: Settings, options: BenchOptions) -> anyhow::Result<()> {
    println!(
        "Tidings benchmark on {} cores; corpus from {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        options.peers_data.display()
    );
    let mut rows: Vec<String> = Vec::new();
    if options.freshness_only {
        let n = options.sizes.first().copied().unwrap_or(100_000);
        let content = std::fs::read_to_string(corpus(&options, n)?)?;
        let texts = post_texts(&content, options.embed_n);
        for kind in ["local", "static", "interim"] {
            rows.extend(crate::bench_http::freshness(&base, &options, &texts, kind).await?);
        }
        print_table(rows);
        return Ok(());
    }
    for &n in &options.sizes {
        let path = corpus(&options, n)?;
        let queries = queries(&options)?;
        let base_dir = tempfile::tempdir()?;
        let (base_rate, base_p50, base_p99) =
            tokio::task::block_in_place(|| tantivy_baseline(&path, &queries, base_dir.path()))?;
        drop(base_dir);
        let dir = tempfile::tempdir()?;
        let mut settings = base.clone();
        settings.data.dir = dir.path().to_path_buf();
        settings.embedder.kind = "none".into();
        settings.index.commit_interval_ms = 1000;
        let service = tokio::task::block_in_place(|| app::open_index(&settings, false))?;
        let started = Instant::now();
        let accepted = ingest_path(&service, &path, None).await?;
        let rate = accepted as f64 / started.elapsed().as_secs_f64();
        rows.push(format!("| text ingest (parse+validate+dedup+index+commit) | {n} | {rate:.0} posts/s | raw tantivy {base_rate:.0} posts/s | {:.2}× |", rate / base_rate));
        let (parse_rate, value_rate) =
            tokio::task::block_in_place(|| crate::bench_http::parse_stage(&path))?;
        let (cached, uncached) = tokio::task::block_in_place(|| analyzer_rates(&path))?;
        rows.push(format!("| the text analyzer alone (one thread; tokens, lowercase, cached stems) | {n} | {cached:.0} posts/s | with tantivy's uncached stemmer {uncached:.0} posts/s | {:.2}× |", cached / uncached));
        rows.push(format!("| its parse + validate stage alone (one thread, typed record) | {n} | {parse_rate:.0} posts/s | raw tantivy {base_rate:.0} posts/s | {:.2}× |", parse_rate / base_rate));
        rows.push(format!("| the same stage through a `serde_json::Value` (one thread) | {n} | {value_rate:.0} posts/s | the typed record {parse_rate:.0} posts/s | {:.2}× |", value_rate / parse_rate));
        let search = service.search.clone();
        let mut lat = Vec::new();
        for pass in 0..2 {
            for q in &queries {
                let req = filtered_search(q);
                let t0 = Instant::now();
                search.search_blocking(&req, None)?;
                if pass == 1 {
                    lat.push(t0.elapsed().as_secs_f64() * 1000.0);
                }
            }
        }
        let (p50, p99) = summarize(lat);
        rows.push(format!(
            "| BM25 top-10, last-24h filter (+decay, collapse, stored posts) | {n} | p50 {p50:.3} ms / p99 {p99:.3} ms | raw tantivy p50 {base_p50:.3} / p99 {base_p99:.3} ms | {:.2}× / {:.2}× |",
            p50 / base_p50,
            p99 / base_p99
        ));
        for (layer, (l50, l99)) in
            crate::bench_http::search_layers(&settings, &service, &queries).await?
        {
            rows.push(format!(
                "| same search, {layer} | {n} | p50 {l50:.3} ms / p99 {l99:.3} ms | raw tantivy p50 {base_p50:.3} / p99 {base_p99:.3} ms | {:.2}× / {:.2}× |",
                l50 / base_p50,
                l99 / base_p99
            ));
        }
        service.shutdown().await;
        if options.synthetic_vectors {
            rows.extend(hybrid_synthetic(&base, &options, n, None).await?);
            if let Some(url) = options.qdrant_url.as_deref() {
                rows.extend(hybrid_synthetic(&base, &options, n, Some(url)).await?);
            }
        }
        println!("bench: n={n} done");
    }
    if options.text_only {
        print_table(rows);
        return Ok(());
    }

    // Embeddings: the embedder alone vs ingest with embeddings, same posts, same process.
    let n = options.sizes.first().copied().unwrap_or(100_000);
    let path = corpus(&options, n)?;
    let content = std::fs::read_to_string(&path)?;
    let texts = post_texts(&content, options.embed_n);
    let embedder = LocalEmbedder::load(&base.embedder.model_dir, 1)?;
    let started = Instant::now();
    for chunk in texts.chunks(64) {
        embedder.embed(chunk.to_vec()).await?;
    }
    let embed_rate = texts.len() as f64 / started.elapsed().as_secs_f64();
    drop(embedder);
    // The static embedder distilled from the same model (distilled on its first use, cached):
    // every post of the corpus, in the batches the vector worker sends.
    let all_texts = post_texts(&content, usize::MAX);
    let distilled =
        tokio::task::block_in_place(|| StaticEmbedder::load_or_distill(&base.embedder.model_dir))?;
    let started = Instant::now();
    for chunk in all_texts.chunks(64) {
        distilled.embed(chunk.to_vec()).await?;
    }
    let static_rate = all_texts.len() as f64 / started.elapsed().as_secs_f64();
    rows.push(format!(
        "| static embedder (distilled from the local model) alone | {} | {static_rate:.0} posts/s | local model alone {embed_rate:.1} posts/s | {:.0}× |",
        all_texts.len(),
        static_rate / embed_rate
    ));
    drop(distilled);
    let dir = tempfile::tempdir()?;
    let mut settings = base.clone();
    settings.data.dir = dir.path().to_path_buf();
    settings.embedder.kind = "local".into();
    settings.embedder.interim = "none".into();
    settings.embedder.instances = 1;
    let service = tokio::task::block_in_place(|| app::open_index(&settings, true))?;
    service.wait_for_vectors(|_| {}).await;
    let started = Instant::now();
    let accepted = ingest_path(&service, &path, Some(options.embed_n)).await?;
    service.wait_for_vectors(|_| {}).await;
    let with_vectors = accepted as f64 / started.elapsed().as_secs_f64();
    rows.push(format!(
        "| ingest with local embeddings (text + vectors durable) | {accepted} | {with_vectors:.1} posts/s | embedder alone {embed_rate:.1} posts/s | {:.2}× |",
        with_vectors / embed_rate
    ));
    // Hybrid search over that index, including the query embedding.
    let queries = queries(&options)?;
    let search = service.search.clone();
    let mut lat = Vec::new();
    let mut text_lat = Vec::new();
    for pass in 0..2 {
        for q in &queries {
            for (mode, out) in [
                (SearchMode::Hybrid, &mut lat),
                (SearchMode::Text, &mut text_lat),
            ] {
                let mut req = SearchRequest::new(q.clone(), WINDOW_END_MS);
                req.mode = mode;
                req.half_life = Some(Duration::from_secs(6 * 3600));
                let t0 = Instant::now();
                search.search(req).await?;
                if pass == 1 {
                    out.push(t0.elapsed().as_secs_f64() * 1000.0);
                }
            }
        }
    }
    let (p50, p99) = summarize(lat);
    let (t50, t99) = summarize(text_lat);
    rows.push(format!(
        "| hybrid top-10 incl. query embedding (no filter) | {accepted} | p50 {p50:.2} ms / p99 {p99:.2} ms | BM25 alone p50 {t50:.2} / p99 {t99:.2} ms | {:.1}× / {:.1}× |",
        p50 / t50,
        p99 / t99
    ));
    service.shutdown().await;
    drop(dir);

    for kind in ["local", "static", "interim"] {
        rows.extend(crate::bench_http::freshness(&base, &options, &texts, kind).await?);
    }
    print_table(rows);
    Ok(())
}

/// The figures as a Markdown table, with the process's peak memory as the last row.
fn print_table(mut rows: Vec<String>) {
    rows.push(format!(
        "| peak RSS of this process | — | {:.0} MiB | — | — |",
        peak_rss_mb()
    ));
    println!(
        "\n| figure | N | Tidings | baseline (same process) | ratio |\n|---|---:|---:|---:|---:|"
    );
    for r in rows {
        println!("{r}");
    }
}
