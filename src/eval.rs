//! `tidings eval`: retrieval quality on the real data in `../shared/data`.
//!
//! Ingests CrisisLexT26 and TweetQA posts into a fresh index (text and vectors, with the real
//! local embedder), then reports, for BM25 alone, dense alone and hybrid:
//! - CrisisLex: nDCG@10 (graded gains 0/1/2) and recall@50 (grade ≥ 1) per public topic, with a
//!   window of the 60 days ending at the topic's `as_of`;
//! - TweetQA: recall@1 / @10 of the gold post for every public question, with the window ending
//!   at the question's `as_of`.
//! Ranking is evaluated with recency decay and duplicate collapse off, so the figures measure
//! retrieval rather than presentation. `--check-floors` fails on figures a broken index would give.

use crate::app;
use crate::config::Settings;
use anyhow::{bail, Context};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tidings_index::{
    Embedder, LocalEmbedder, SearchFilter, SearchHandle, SearchMode, SearchRequest,
};
use tidings_ingest::ValidationConfig;

#[derive(Deserialize)]
struct Topic {
    id: String,
    query: String,
    as_of: String,
    qrels: HashMap<String, u8>,
}

#[derive(Deserialize)]
struct Question {
    question: String,
    gold_post_ids: Vec<String>,
    /// Null when the gold tweet has no date; such posts are rejected at ingest (a post needs
    /// `created_at`), so these questions count as misses.
    as_of: Option<String>,
}

/// What to evaluate.
pub struct EvalOptions {
    pub shared: PathBuf,
    pub check_floors: bool,
    /// Keep the built index here instead of a temporary folder.
    pub data_dir: Option<PathBuf>,
    /// Evaluate at most this many TweetQA questions (all by default).
    pub max_questions: Option<usize>,
}

const MODES: [(SearchMode, &str); 3] = [
    (SearchMode::Text, "bm25"),
    (SearchMode::Vector, "dense"),
    (SearchMode::Hybrid, "hybrid"),
];

/// Floors a working index clears easily and a broken one (empty, unfiltered, misaligned) does not.
const FLOOR_NDCG10: f64 = 0.25;
const FLOOR_TWEETQA_R10: f64 = 0.05;

fn read_jsonl<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<Vec<T>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{}:{}", path.display(), i + 1))
        })
        .collect()
}

fn time_ms(raw: &str) -> anyhow::Result<i64> {
    Ok(tidings_api::parse_time(raw)
        .map_err(anyhow::Error::msg)?
        .timestamp_millis())
}

fn ndcg_at(ranked: &[String], qrels: &HashMap<String, u8>, k: usize) -> f64 {
    let dcg: f64 = ranked
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, id)| f64::from(*qrels.get(id).unwrap_or(&0)) / ((i + 2) as f64).log2())
        .sum();
    let mut ideal: Vec<u8> = qrels.values().copied().filter(|g| *g > 0).collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let idcg: f64 = ideal
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, g)| f64::from(*g) / ((i + 2) as f64).log2())
        .sum();
    if idcg == 0.0 {
        0.0
    } else {
        dcg / idcg
    }
}

fn recall_at(ranked: &[String], relevant: &[&String], k: usize) -> f64 {
    if relevant.is_empty() {
        return 0.0;
    }
    let top: std::collections::HashSet<&String> = ranked.iter().take(k).collect();
    relevant.iter().filter(|r| top.contains(*r)).count() as f64 / relevant.len() as f64
}

async fn ingest_file(service: &tidings_index::IndexService, path: &Path) -> anyhow::Result<u64> {
    let file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("open {}", path.display()))?;
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let reader = tokio::io::BufReader::new(file);
    let producer = tokio::spawn(async move {
        tidings_ingest::jsonl::read_jsonl(reader, "eval", &ValidationConfig::default(), 5_000, &tx)
            .await
    });
    let summary =
        tidings_ingest::run_pipeline(rx, &service.write, None, 5, 100_000, |_| {}).await?;
    producer.await??;
    if summary.rejected > 0 {
        eprintln!(
            "eval: {} rejected in {} (first: {:?})",
            summary.rejected,
            path.display(),
            summary.rejections.first().map(|r| r.rejection.to_string())
        );
    }
    Ok(summary.accepted + summary.updated)
}

fn request(
    query: &str,
    to_ms: Option<i64>,
    from_ms: Option<i64>,
    mode: SearchMode,
    limit: usize,
) -> SearchRequest {
    SearchRequest {
        query: query.to_string(),
        filter: SearchFilter {
            from_ms,
            to_ms,
            ..SearchFilter::default()
        },
        as_of_ms: to_ms.unwrap_or(i64::MAX / 2),
        half_life: None,
        limit,
        mode,
        collapse_duplicates: false,
    }
}

fn ids(
    search: &SearchHandle,
    req: &SearchRequest,
    vector: Option<&[f32]>,
) -> anyhow::Result<Vec<String>> {
    let vector = if req.mode == SearchMode::Text {
        None
    } else {
        vector
    };
    Ok(search
        .search_blocking(req, vector)?
        .hits
        .into_iter()
        .map(|h| h.post.id.to_string())
        .collect())
}

/// Runs the evaluation and prints its tables.
pub async fn run(mut settings: Settings, options: EvalOptions) -> anyhow::Result<()> {
    let crisis = options.shared.join("crisislex26");
    let tweetqa = options.shared.join("tweetqa");
    for p in [
        crisis.join("posts.jsonl"),
        crisis.join("relevance_public.jsonl"),
        tweetqa.join("posts.jsonl"),
        tweetqa.join("qa_public.jsonl"),
    ] {
        if !p.exists() {
            bail!(
                "real data missing: {} (the real-data suite needs ../shared/data)",
                p.display()
            );
        }
    }
    let temp = tempfile::tempdir()?;
    settings.data.dir = options
        .data_dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    settings.embedder.kind = "local".into();
    let service = tokio::task::block_in_place(|| app::open_index(&settings, true))?;
    let started = Instant::now();
    let n1 = ingest_file(&service, &crisis.join("posts.jsonl")).await?;
    let n2 = ingest_file(&service, &tweetqa.join("posts.jsonl")).await?;
    println!(
        "eval: indexed {} posts (text) in {:.1}s; embedding…",
        n1 + n2,
        started.elapsed().as_secs_f64()
    );
    let vstart = Instant::now();
    service.wait_for_vectors(|_| {}).await;
    let stats = &service.stats;
    println!(
        "eval: vectors caught up in {:.1}s ({} embedded, {} reused from near-duplicates)",
        vstart.elapsed().as_secs_f64(),
        stats.embedded.load(std::sync::atomic::Ordering::Relaxed),
        stats
            .embeddings_reused
            .load(std::sync::atomic::Ordering::Relaxed)
    );
    let embedder = LocalEmbedder::load(&settings.embedder.model_dir, 1)?;
    let search = service.search.clone();

    // CrisisLex topics.
    let topics: Vec<Topic> = read_jsonl(&crisis.join("relevance_public.jsonl"))?;
    let topic_vectors = embedder
        .embed(topics.iter().map(|t| t.query.clone()).collect())
        .await?;
    println!(
        "\nCrisisLexT26 public topics (window: 60 days ending at as_of; no decay, no collapse)"
    );
    println!("(R@50 cannot exceed 50/rel, about 0.054 here: each topic has ~900 related posts)");
    println!(
        "{:<40} {:>6} | {:>9} {:>9} | {:>9} {:>9} | {:>9} {:>9}",
        "topic", "rel", "bm25 nDCG", "R@50", "dense nDCG", "R@50", "hyb nDCG", "R@50"
    );
    let mut sums = [[0.0f64; 2]; 3];
    for (topic, vector) in topics.iter().zip(&topic_vectors) {
        let to = time_ms(&topic.as_of)?;
        let from = to - 60 * 86_400_000;
        let relevant: Vec<&String> = topic
            .qrels
            .iter()
            .filter(|(_, g)| **g > 0)
            .map(|(id, _)| id)
            .collect();
        let mut row = Vec::new();
        for (m, (mode, _)) in MODES.iter().enumerate() {
            let ranked = ids(
                &search,
                &request(&topic.query, Some(to), Some(from), *mode, 50),
                Some(vector),
            )?;
            let (ndcg, recall) = (
                ndcg_at(&ranked, &topic.qrels, 10),
                recall_at(&ranked, &relevant, 50),
            );
            sums[m][0] += ndcg;
            sums[m][1] += recall;
            row.push(format!("{ndcg:>9.3} {recall:>9.3}"));
        }
        let name = topic.id.trim_start_matches("crisislext26-");
        println!("{:<40} {:>6} | {}", name, relevant.len(), row.join(" | "));
    }
    let nt = topics.len().max(1) as f64;
    let means: Vec<(f64, f64)> = sums.iter().map(|s| (s[0] / nt, s[1] / nt)).collect();
    println!(
        "{:<40} {:>6} | {}",
        "MEAN",
        "",
        means
            .iter()
            .map(|(n, r)| format!("{n:>9.3} {r:>9.3}"))
            .collect::<Vec<_>>()
            .join(" | ")
    );

    // TweetQA gold-post recall.
    let mut questions: Vec<Question> = read_jsonl(&tweetqa.join("qa_public.jsonl"))?;
    if let Some(max) = options.max_questions {
        questions.truncate(max);
    }
    let qstart = Instant::now();
    let qvectors = embedder
        .embed(questions.iter().map(|q| q.question.clone()).collect())
        .await?;
    let mut hits = [[0usize; 2]; 3];
    for (q, v) in questions.iter().zip(&qvectors) {
        let to = q.as_of.as_deref().map(time_ms).transpose()?;
        for (m, (mode, _)) in MODES.iter().enumerate() {
            let ranked = ids(&search, &request(&q.question, to, None, *mode, 10), Some(v))?;
            if ranked.first().is_some_and(|r| q.gold_post_ids.contains(r)) {
                hits[m][0] += 1;
            }
            if ranked.iter().any(|r| q.gold_post_ids.contains(r)) {
                hits[m][1] += 1;
            }
        }
    }
    let nq = questions.len().max(1) as f64;
    let undated = questions.iter().filter(|q| q.as_of.is_none()).count();
    println!(
        "\nTweetQA qa_public: {} questions (window ends at as_of; {undated} have an undated gold post, which ingest rejects for lack of created_at: counted as misses), {:.1}s",
        questions.len(),
        qstart.elapsed().as_secs_f64()
    );
    println!("{:<8} {:>9} {:>9}", "mode", "R@1", "R@10");
    let mut r10 = Vec::new();
    for (m, (_, name)) in MODES.iter().enumerate() {
        let (a, b) = (hits[m][0] as f64 / nq, hits[m][1] as f64 / nq);
        r10.push(b);
        println!("{name:<8} {a:>9.3} {b:>9.3}");
    }
    service.shutdown().await;
    if options.check_floors {
        let mut failures = Vec::new();
        for ((_, name), ((ndcg, _), r)) in MODES.iter().zip(means.iter().zip(&r10)) {
            if *ndcg < FLOOR_NDCG10 {
                failures.push(format!(
                    "{name}: CrisisLex mean nDCG@10 {ndcg:.3} < {FLOOR_NDCG10}"
                ));
            }
            if *r < FLOOR_TWEETQA_R10 {
                failures.push(format!(
                    "{name}: TweetQA recall@10 {r:.3} < {FLOOR_TWEETQA_R10}"
                ));
            }
        }
        let checks = MODES.len() * 2;
        println!(
            "\nreal-data floors: {} passed, {} failed",
            checks - failures.len(),
            failures.len()
        );
        if !failures.is_empty() {
            bail!("real-data floors failed:\n  {}", failures.join("\n  "));
        }
    }
    Ok(())
}
