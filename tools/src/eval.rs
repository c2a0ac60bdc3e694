//! `tidings-tools eval`: retrieval quality on the real data in `../shared/data`.
//!
//! Ingests CrisisLexT26 and TweetQA posts into a fresh index (text and vectors, with the real
//! local embedder), then reports, for BM25 alone, dense alone and hybrid:
//! - CrisisLex: nDCG@10 (graded gains 0/1/2) and recall@50 (grade ≥ 1) per public topic, with a
//!   window of the 60 days ending at the topic's `as_of`;
//! - TweetQA: recall@1 / @10 of the gold post for every public question, with the window ending
//!   at the question's `as_of`.
//!
//! Ranking is evaluated with recency decay and duplicate collapse off, so the figures measure
//! retrieval rather than presentation. `--check-floors` fails on figures a broken index would give.
//!
//! Files: `retrieval` (ingest, nDCG, recall, the reranker), `answers`, `abstention`,
//! `digests`, `judge` (the separate check the answer figures use); this file the options,
//! floors and the run.

mod abstention;
mod answers;
mod digests;
mod judge;
mod retrieval;

use abstention::abstention;
use answers::answers;
use digests::digests;
pub(crate) use retrieval::ingest_file;
use retrieval::{ids, ndcg_at, read_jsonl, recall_at, request, time_ms, train_reranker};

use anyhow::{bail, Context};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;
use tidings::app;
use tidings::config::Settings;
use tidings_index::{Ranker, SearchMode};

#[derive(Deserialize)]
struct Topic {
    #[serde(default)]
    event: String,
    id: String,
    query: String,
    as_of: String,
    qrels: HashMap<String, u8>,
}

#[derive(Deserialize)]
struct Question {
    question: String,
    #[serde(default)]
    answers: Vec<String>,
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
    /// Answer this many TweetQA questions (a seeded sample) with the agent and the local model;
    /// 0 skips the answer evaluation. `None`: all of them.
    pub answer_sample: Option<usize>,
    /// Local models to answer with (names or GGUF paths); empty: the configured one.
    pub models: Vec<String>,
    /// Unanswerable questions to ask (a seeded sample of TweetQA questions whose gold post is
    /// removed from the index, plus every question about an event absent from the feed).
    pub abstention_sample: usize,
    /// Train the learned ranker on the train half of the TweetQA questions and print its
    /// weights and both halves' figures.
    pub train_reranker: bool,
    /// Also write every candidate's features (TSV) here.
    pub features_out: Option<PathBuf>,
    /// Write one JSON line per answered TweetQA question here (question, gold, answer, the
    /// top post, what was found): for reading the answers, not for scoring.
    pub answers_out: Option<PathBuf>,
    /// The embedder of the dense half: `local`, `interim` (the local model's queries against
    /// interim vectors only), `interim-learned` (the same, from a table that first learned
    /// from the model's vectors of every 11th post) or `static`.
    pub embedder: String,
}

/// Questions about events that are in neither feed (each checked: its names occur in no post),
/// asked at the CrisisLex topics' times. Three are typed in lower case, as people often do.
const ABSENT_EVENTS: &[&str] = &[
    "Is there a tsunami warning for Reykjavik?",
    "Why was the Zurich marathon cancelled?",
    "Who won the presidential election in Kyrgyzstan?",
    "Is the Gotthard tunnel closed after the rockfall?",
    "What caused the blackout in Montevideo?",
    "What happened at the Helsinki chess olympiad?",
    "Are there floods in Ljubljana right now?",
    "Why did the ferry sink near Vukovar?",
    "Has the avalanche in Tromsø trapped anyone?",
    "How bad is the cholera outbreak in Lusaka?",
    "What did the central bank of Mongolia announce about interest rates?",
    "What did Greta Thunberg say at the climate march?",
    "Is the Danube flooding the old town?",
    "How many people were hurt in the Tbilisi metro fire?",
    "What is happening with the protests in Yerevan?",
    "Why is the Tallinn airport closed?",
    "Did the earthquake in Cusco damage Machu Picchu?",
    "what caused the gas explosion in the tbilisi market",
    "is the ferry strike in zurich over",
    "how many tourists are stranded in tallinn",
];

/// The retrieval configurations compared: BM25 alone, dense alone, hybrid by plain relative
/// score fusion, and hybrid with the learned ranker (the product's default).
/// The last, the product, searches with the agent's query (the question without question words
/// and time expressions, see `tidings_agent::plan`); the others with the text as given.
const MODES: [(SearchMode, Ranker, &str); 5] = [
    (SearchMode::Text, Ranker::Fusion, "bm25"),
    (SearchMode::Vector, Ranker::Fusion, "dense"),
    (SearchMode::Hybrid, Ranker::Fusion, "fusion"),
    (SearchMode::Hybrid, Ranker::Learned, "learned"),
    (SearchMode::Hybrid, Ranker::Learned, "hybrid"),
];

/// Whether row `m` of [`MODES`] searches with the agent's planned query.
fn planned_row(m: usize) -> bool {
    m + 1 == MODES.len()
}

/// The search words the agent would use for `question` asked at `as_of_ms`, and the text its
/// dense half would embed.
fn agent_query(question: &str, as_of_ms: Option<i64>) -> (String, String) {
    let as_of = as_of_ms
        .and_then(chrono::DateTime::from_timestamp_millis)
        .unwrap_or_else(chrono::Utc::now);
    let plan = tidings_agent::plan::plan(question, &[], as_of, &Default::default());
    if plan.query.trim().is_empty() {
        (question.to_string(), question.to_string())
    } else {
        (plan.query, plan.semantic)
    }
}

/// Whether a TweetQA question belongs to the held-out half: decided by an FNV-1a hash of its
/// first gold post id, so every question about one tweet falls on the same side, and the
/// reranker is trained only on the other half.
fn held_out(q: &Question) -> bool {
    let key = q.gold_post_ids.first().map_or("", String::as_str);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h % 2 == 1
}

/// Floors a working index clears easily and a broken one (empty, unfiltered, misaligned) does not.
const FLOOR_NDCG10: f64 = 0.25;
const FLOOR_TWEETQA_R10: f64 = 0.05;
/// Share of posts cited in CrisisLex answers that are graded related; a random pick from the
/// window is far below, a working agent far above.
const FLOOR_CITED_RELEVANT: f64 = 0.3;
/// Share of answer sentences the strict judge finds supported (the target is 0.95; measured
/// 0.931–0.946 on the 100-question sample with qwen2.5-0.5b, 2026-12-03).
const FLOOR_SENTENCE_SUPPORT: f64 = 0.9;
/// Digest summary sentences supported (measured 0.90; target 0.95, not reached yet).
const FLOOR_SUMMARY_SUPPORT: f64 = 0.85;
/// "What is happening in <place>?" topics allowed to miss two related citations (measured:
/// 8 of 10 reach two since overview questions show the main reports; the target is all of
/// them: at two topics' `as_of` the window holds at most two related posts that name the
/// place).
const FLOOR_PLACES_SLACK: usize = 3;
/// Unanswerable questions answered "found nothing" (target 0.9, not reached: lexical coverage
/// cannot tell a TweetQA question without its tweet from one with it; see the note in
/// README "Answer quality").
const FLOOR_ABSTENTION: f64 = 0.65;

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
    anyhow::ensure!(
        ["local", "static", "interim", "interim-learned"].contains(&options.embedder.as_str()),
        "--embedder is `{}`; use local, static, interim or interim-learned",
        options.embedder
    );
    // `local`: every post with the local model's own vector (what the product holds once the
    // interim vectors are upgraded); `interim`: every post with the interim table's vector in
    // the local model's space, never upgraded, queries by the local model (what it holds
    // while the model cannot keep up); `interim-learned`: the same after the table learned
    // from the model's vectors of every 11th post (what a server holds once the model has
    // embedded that many, counting those posts as interim too); `static`: the static table's
    // own space throughout.
    let learned = options.embedder == "interim-learned";
    let (kind, interim) = match options.embedder.as_str() {
        "interim" | "interim-learned" => ("local", "static"),
        other => (other, "none"),
    };
    settings.embedder.kind = kind.into();
    settings.embedder.interim = interim.into();
    settings.embedder.upgrade = !options.embedder.starts_with("interim");
    println!("eval: dense half embedded by `{}`", options.embedder);
    let service = if learned {
        let texts: Vec<String> = [crisis.join("posts.jsonl"), tweetqa.join("posts.jsonl")]
            .iter()
            .map(|p| post_texts(p))
            .collect::<anyhow::Result<Vec<_>>>()?
            .into_iter()
            .flatten()
            .step_by(11)
            .collect();
        let taught = taught_interim(&settings, &texts).await?;
        tokio::task::block_in_place(|| app::open_index_with(&settings, true, Some(taught)))?
    } else {
        tokio::task::block_in_place(|| app::open_index(&settings, true))?
    };
    let started = Instant::now();
    let n1 = ingest_file(&service, &crisis.join("posts.jsonl")).await?;
    let n2 = ingest_file(&service, &tweetqa.join("posts.jsonl")).await?;
    println!(
        "eval: indexed {} posts (text) in {:.1}s; embedding…",
        n1 + n2,
        started.elapsed().as_secs_f64()
    );
    let vstart = Instant::now();
    service.wait_for_upgrades(|_| {}).await;
    let stats = &service.stats;
    println!(
        "eval: vectors caught up in {:.1}s ({} embedded, {} reused from near-duplicates)",
        vstart.elapsed().as_secs_f64(),
        stats.embedded.load(std::sync::atomic::Ordering::Relaxed),
        stats
            .embeddings_reused
            .load(std::sync::atomic::Ordering::Relaxed)
    );
    let embedder = app::embedder(&settings)?.context("the eval needs an embedder")?;
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
        "{:<40} {:>6} | {}",
        "topic",
        "rel",
        MODES
            .iter()
            .map(|(_, _, name)| format!("{:>9} {:>9}", format!("{name} nDCG"), "R@50"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let mut sums = [[0.0f64; 2]; MODES.len()];
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
        let (planned, semantic) = agent_query(&topic.query, Some(to));
        let planned_vector = embedder.embed(vec![semantic]).await?;
        for (m, (mode, ranker, _)) in MODES.iter().enumerate() {
            let (query, vector) = match (planned_row(m), planned_vector.first()) {
                (true, Some(pv)) => (&planned, pv),
                _ => (&topic.query, vector),
            };
            let ranked = ids(
                &search,
                &request(query, Some(to), Some(from), (*mode, *ranker), 50),
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
    let (planned_queries, semantic): (Vec<String>, Vec<String>) = questions
        .iter()
        .map(|q| {
            let to = q.as_of.as_deref().and_then(|t| time_ms(t).ok());
            agent_query(&q.question, to)
        })
        .unzip();
    let pvectors = embedder.embed(semantic).await?;
    // hits[mode][split][k]: split 0 = train half, 1 = held-out half; k 0 = R@1, 1 = R@10.
    let mut hits = [[[0usize; 2]; 2]; MODES.len()];
    let mut split_sizes = [0usize; 2];
    for (i, (q, v)) in questions.iter().zip(&qvectors).enumerate() {
        let to = q.as_of.as_deref().map(time_ms).transpose()?;
        let split = usize::from(held_out(q));
        split_sizes[split] += 1;
        for (m, (mode, ranker, _)) in MODES.iter().enumerate() {
            let (query, v) = match (planned_row(m), planned_queries.get(i), pvectors.get(i)) {
                (true, Some(p), Some(pv)) => (p, pv),
                _ => (&q.question, v),
            };
            let ranked = ids(
                &search,
                &request(query, to, None, (*mode, *ranker), 10),
                Some(v),
            )?;
            if ranked.first().is_some_and(|r| q.gold_post_ids.contains(r)) {
                hits[m][split][0] += 1;
            }
            if ranked.iter().any(|r| q.gold_post_ids.contains(r)) {
                hits[m][split][1] += 1;
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
    println!(
        "The learned ranker is trained on the train half only (split by gold post); the held-out half is what it is judged on."
    );
    println!(
        "{:<8} {:>9} {:>9} | {:>12} {:>12} | {:>9} {:>9}",
        "mode", "R@1 all", "R@10 all", "R@1 held-out", "R@10 held-out", "R@1 train", "R@10 train"
    );
    let mut r10 = Vec::new();
    let mut held_r1 = Vec::new();
    for (m, (_, _, name)) in MODES.iter().enumerate() {
        let h = &hits[m];
        let all = |k: usize| (h[0][k] + h[1][k]) as f64 / nq;
        let part = |s: usize, k: usize| h[s][k] as f64 / split_sizes[s].max(1) as f64;
        r10.push(all(1));
        held_r1.push(part(1, 0));
        println!(
            "{name:<8} {:>9.3} {:>9.3} | {:>12.3} {:>12.3} | {:>9.3} {:>9.3}",
            all(0),
            all(1),
            part(1, 0),
            part(1, 1),
            part(0, 0),
            part(0, 1)
        );
    }
    if options.train_reranker {
        train_reranker(
            &search,
            &questions,
            &planned_queries,
            &pvectors,
            options.features_out.as_deref(),
        )?;
    }
    let answer_figures = if options.answer_sample != Some(0) {
        let models = if options.models.is_empty() {
            vec![None]
        } else {
            options.models.iter().cloned().map(Some).collect()
        };
        let mut kept = None;
        for (i, name) in models.iter().enumerate() {
            let mut s = settings.clone();
            if let Some(name) = name {
                s.model.kind = "local".into();
                s.model.path = None;
                s.model.local = name.clone();
            }
            let agent = tokio::task::block_in_place(|| app::agent(&s, search.clone()))?
                .context("the answer evaluation needs a chat model (model.kind is none)")?;
            println!("\n=== answers with {} ===", agent.model().id());
            let figures = answers(
                &agent,
                &questions,
                options.answer_sample,
                &crisis,
                &topics,
                options.answers_out.as_deref(),
            )
            .await?;
            let digest = digests(&agent).await?;
            // The floors judge the first model; the others are reported.
            if i == 0 {
                kept = Some((figures, digest));
            }
        }
        // Last, as it deletes posts from the index: unanswerable questions.
        if options.abstention_sample > 0 {
            let agent = tokio::task::block_in_place(|| app::agent(&settings, search.clone()))?
                .context("the abstention evaluation needs a chat model")?;
            let rate = abstention(
                &agent,
                &service,
                &questions,
                options.answer_sample,
                options.abstention_sample,
                &topics,
                options.answers_out.as_deref(),
            )
            .await?;
            if let Some((f, _)) = kept.as_mut() {
                f.abstention = Some(rate);
            }
        }
        kept
    } else {
        None
    };
    service.shutdown().await;
    if options.check_floors {
        let mut failures = Vec::new();
        for ((_, _, name), ((ndcg, _), r)) in MODES.iter().zip(means.iter().zip(&r10)) {
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
        let mut checks = MODES.len() * 2 + 1;
        // The product's ranking must beat plain BM25 on the questions it was not trained on.
        if let (Some(bm25), Some(hybrid)) = (held_r1.first(), held_r1.last()) {
            if hybrid < bm25 {
                failures.push(format!(
                    "hybrid: TweetQA held-out recall@1 {hybrid:.3} < BM25's {bm25:.3}"
                ));
            }
        }
        if let Some((f, d)) = &answer_figures {
            checks += 4;
            if !d.boston_and_west_apart {
                failures.push(
                    "digest of 2013-04-19: the Boston manhunt and the West explosion are not two separate stories".into(),
                );
            }
            if d.mixed_stories > 0 {
                failures.push(format!(
                    "digests: {} stories mix two events",
                    d.mixed_stories
                ));
            }
            checks += 1;
            let summary_support = d.summary_supported as f64 / d.summary_sentences.max(1) as f64;
            if summary_support < FLOOR_SUMMARY_SUPPORT {
                failures.push(format!(
                    "digest summary sentences supported by a cited post {summary_support:.3} < {FLOOR_SUMMARY_SUPPORT}"
                ));
            }
            if f.citation_validity < 1.0 {
                failures.push(format!(
                    "citation validity {:.3} < 1.0: an answer cited a post it was not given",
                    f.citation_validity
                ));
            }
            checks += 3;
            if f.sentence_support < FLOOR_SENTENCE_SUPPORT {
                failures.push(format!(
                    "answer sentences supported by a cited post {:.3} < {FLOOR_SENTENCE_SUPPORT}",
                    f.sentence_support
                ));
            }
            // The answer must say the asked-for thing at least as often as the top post alone.
            checks += 1;
            if f.gold_answer < f.top_post_baseline {
                failures.push(format!(
                    "answers contain a gold answer {:.3} < the top post's {:.3}",
                    f.gold_answer, f.top_post_baseline
                ));
            }
            if f.uncited > 0 {
                failures.push(format!(
                    "{} answer sentences carry no citation (must be 0)",
                    f.uncited
                ));
            }
            if f.places_with_two_related < f.places.saturating_sub(FLOOR_PLACES_SLACK) {
                failures.push(format!(
                    "only {}/{} \"What is happening in <place>?\" answers cite two related posts",
                    f.places_with_two_related, f.places
                ));
            }
            if let Some(rate) = f.abstention {
                checks += 1;
                if rate < FLOOR_ABSTENTION {
                    failures.push(format!(
                        "abstention on unanswerable questions {rate:.3} < {FLOOR_ABSTENTION}"
                    ));
                }
            }
            if f.cited_relevant_share < FLOOR_CITED_RELEVANT {
                failures.push(format!(
                    "CrisisLex: {:.3} of cited posts relevant < {FLOOR_CITED_RELEVANT}",
                    f.cited_relevant_share
                ));
            }
        }
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

/// The `text` of every post in a JSONL file, in order.
fn post_texts(path: &std::path::Path) -> anyhow::Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Text {
        #[serde(default)]
        text: Option<String>,
    }
    Ok(read_jsonl::<Text>(path)?
        .into_iter()
        .map(|t| t.text.unwrap_or_default())
        .collect())
}

/// The interim table after learning from the local model's vectors of `texts`, handed over in
/// batches of 16 as the vector worker does (so it refits on the shipped schedule).
async fn taught_interim(
    settings: &Settings,
    texts: &[String],
) -> anyhow::Result<std::sync::Arc<dyn tidings_index::Embedder>> {
    let started = Instant::now();
    let model = app::embedder(settings)?.context("the eval needs an embedder")?;
    let table = tokio::task::block_in_place(|| {
        tidings_index::StaticEmbedder::load_or_fit_interim(&settings.embedder.model_dir)
    })?;
    for batch in texts.chunks(16) {
        let vectors = model.embed(batch.to_vec()).await?;
        tokio::task::block_in_place(|| table.learn_from(batch, &vectors, true));
    }
    let fit = table.fit_state().unwrap_or_default();
    println!(
        "eval: the interim table learned from {} posts in {:.1}s ({} refits, held-out cosine {:.3})",
        fit.pairs,
        started.elapsed().as_secs_f64(),
        fit.refits,
        fit.cosine.unwrap_or(0.0)
    );
    Ok(std::sync::Arc::new(table))
}
