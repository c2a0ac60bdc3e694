//! `tidings-tools bench --agent`: the answering path on this machine with the local models.
//!
//! Index: the CrisisLexT26 posts (text and vectors). For each public topic, "What is happening
//! in <place>?" at its `as_of` with an 8-post context. Per local model that is fetched: time to
//! the model's first token and to the first text the asker sees (a whole checked sentence)
//! through the agent with the prompt-prefix KV cache, the same questions with the cache off
//! (the baseline, same process), how many prompt tokens the cache spared; for the configured
//! model also the same prompt sent straight to the model, the agent's own overhead
//! (total − retrieval − model) and throughput with 8 concurrent askers sharing the queue.

use anyhow::Context;
use futures::StreamExt;
use std::path::Path;
use std::time::Instant;
use tidings::app;
use tidings::config::Settings;
use tidings_agent::{
    AgentEvent, AskRequest, ChatMessage, GenerationParams, ModelEvent, Role, SearchOptions,
};

fn pct(mut xs: Vec<f64>, p: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    let i = ((xs.len() as f64 - 1.0) * p).round() as usize;
    xs[i.min(xs.len() - 1)]
}

/// `index`: an existing data dir holding the CrisisLex posts with vectors (e.g. one kept by
/// `tidings-tools eval --keep-index DIR`); without it the posts are ingested and embedded first.
pub async fn run(base: Settings, shared: &Path, index: Option<&Path>) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut settings = base.clone();
    settings.data.dir = index.map_or_else(|| dir.path().to_path_buf(), Path::to_path_buf);
    let service = tokio::task::block_in_place(|| app::open_index(&settings, true))?;
    if index.is_some() && service.search.num_posts() > 0 {
        println!(
            "bench agent: using the {} posts in {}",
            service.search.num_posts(),
            settings.data.dir.display()
        );
        service.wait_for_upgrades(|_| {}).await;
        return answer_figures(&settings, service, shared).await;
    }
    let accepted =
        crate::eval::ingest_file(&service, &shared.join("crisislex26/posts.jsonl")).await?;
    println!("bench agent: {} posts indexed; embedding…", accepted);
    service.wait_for_upgrades(|_| {}).await;
    answer_figures(&settings, service, shared).await
}

/// `settings` answering with the local model `name`, its prompt-prefix cache on or off.
fn local_settings(settings: &Settings, name: &str, prefix_cache: bool) -> Settings {
    let mut s = settings.clone();
    s.model.kind = "local".into();
    s.model.path = None;
    s.model.local = name.into();
    s.model.prefix_cache = prefix_cache;
    s
}

/// Time to first token per fetched local model, with the prefix cache and without.
async fn model_table(
    settings: &Settings,
    service: &tidings_index::IndexService,
    requests: &[AskRequest],
) -> anyhow::Result<()> {
    // The same questions with exactly 8 posts in the prompt (the relevance rule passes fewer):
    // the hybrid search's top 8 in the week before `as_of`, given as fixed posts.
    let mut full: Vec<AskRequest> = Vec::new();
    for r in requests {
        let as_of = r.as_of.unwrap_or_else(chrono::Utc::now);
        let mut search =
            tidings_index::SearchRequest::new(r.question.clone(), as_of.timestamp_millis());
        search.filter.from_ms = Some((as_of - chrono::Duration::days(7)).timestamp_millis());
        search.filter.to_ms = Some(as_of.timestamp_millis());
        search.limit = 8;
        let hits = service.search.search(search).await?.hits;
        if hits.len() == 8 {
            full.push(AskRequest {
                fixed_posts: Some(hits.into_iter().map(|h| h.post).collect()),
                max_tokens: Some(48),
                ..r.clone()
            });
        }
    }
    println!("\nTime to first token per local model ({} questions, up to 8 posts that pass the relevance rule, 48 answer tokens, 2 threads unless set; last column: {} of them with exactly 8 posts):", requests.len(), full.len());
    println!("| model | posts / prompt tokens | model TTFT, prefix cache | first sentence shown | model TTFT, no cache (baseline) | ratio | prompt tokens reused | model TTFT, 8 posts / prompt tokens |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for known in tidings_agent::model::catalog::known_models() {
        let path = known.path(&settings.model.models_dir);
        if !path.is_file() {
            println!(
                "| {} | not fetched (`tidings models fetch {}`) | | | | | |",
                known.name, known.name
            );
            continue;
        }
        let mut row = Vec::new();
        let mut reused = String::new();
        let mut shape = String::new();
        for cache in [true, false] {
            let s = local_settings(settings, known.name, cache);
            let model =
                tokio::task::block_in_place(|| app::chat_model(&s))?.context("a local model")?;
            let agent = tokio::task::block_in_place(|| {
                app::agent_with_model(&s, service.search.clone(), model.clone())
            })?;
            let (mut first_model, mut first_shown, mut posts, mut tokens) =
                (vec![], vec![], vec![], vec![]);
            // Warm up: pages in the weights (and, with the cache, the fixed prefix).
            let mut warm = requests[0].clone();
            warm.max_tokens = Some(8);
            agent.answer(warm).await?;
            for r in requests {
                let mut r = r.clone();
                r.max_tokens = Some(48);
                let (retrieval, answer) = agent.answer(r).await?;
                if answer.no_results {
                    continue;
                }
                first_model.push(
                    answer
                        .timings
                        .model_first_token
                        .map_or(f64::NAN, |d| d.as_secs_f64()),
                );
                first_shown.push(
                    answer
                        .timings
                        .first_token
                        .map_or(f64::NAN, |d| d.as_secs_f64()),
                );
                posts.push(retrieval.posts.len() as f64);
                tokens.push(answer.usage.prompt_tokens as f64);
            }
            let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len().max(1) as f64;
            shape = format!("{:.1} / {:.0}", mean(&posts), mean(&tokens));
            row.push((pct(first_model.clone(), 0.5), pct(first_model, 0.99)));
            if cache {
                row.push((pct(first_shown.clone(), 0.5), pct(first_shown, 0.99)));
                if let Some(stats) = model.prefix_cache() {
                    let all = stats
                        .prompt_tokens
                        .load(std::sync::atomic::Ordering::Relaxed);
                    let kept = stats
                        .reused_tokens
                        .load(std::sync::atomic::Ordering::Relaxed);
                    reused = format!(
                        "{:.0} % ({kept} of {all})",
                        kept as f64 * 100.0 / all.max(1) as f64
                    );
                }
            }
        }
        // Exactly 8 posts, with the prefix cache (warm from the runs above).
        let s = local_settings(settings, known.name, true);
        let agent = tokio::task::block_in_place(|| app::agent(&s, service.search.clone()))?
            .context("a local model")?;
        let (mut eight, mut eight_tokens) = (vec![], vec![]);
        if let Some(first) = full.first() {
            // Warm up this model instance (weights paged in, the fixed prefix cached).
            agent
                .answer(AskRequest {
                    max_tokens: Some(8),
                    ..first.clone()
                })
                .await?;
        }
        for r in &full {
            let (_, answer) = agent.answer(r.clone()).await?;
            if let Some(d) = answer.timings.model_first_token {
                eight.push(d.as_secs_f64());
                eight_tokens.push(answer.usage.prompt_tokens as f64);
            }
        }
        let eight_mean = eight_tokens.iter().sum::<f64>() / eight_tokens.len().max(1) as f64;
        println!(
            "| {} | {shape} | p50 {:.2} s / p99 {:.2} s | p50 {:.2} s / p99 {:.2} s | p50 {:.2} s / p99 {:.2} s | {:.2}× | {reused} | p50 {:.2} s / p99 {:.2} s, {eight_mean:.0} tokens |",
            known.name, row[0].0, row[0].1, row[1].0, row[1].1, row[2].0, row[2].1, row[0].0 / row[2].0,
            pct(eight.clone(), 0.5), pct(eight, 0.99)
        );
    }
    Ok(())
}

async fn answer_figures(
    settings: &Settings,
    service: tidings_index::IndexService,
    shared: &Path,
) -> anyhow::Result<()> {
    let agent = tokio::task::block_in_place(|| app::agent(settings, service.search.clone()))?
        .context("bench --agent needs a chat model")?;

    #[derive(serde::Deserialize)]
    struct Topic {
        event: String,
        as_of: String,
    }
    let topics: Vec<Topic> =
        std::fs::read_to_string(shared.join("crisislex26/relevance_public.jsonl"))?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?;
    let requests: Vec<AskRequest> = topics
        .iter()
        .map(|t| {
            let place = t
                .event
                .splitn(2, '_')
                .nth(1)
                .unwrap_or(&t.event)
                .replace('_', " ");
            Ok(AskRequest {
                question: format!("What is happening with the {place}?"),
                as_of: Some(tidings_api::parse_time(&t.as_of).map_err(anyhow::Error::msg)?),
                search: SearchOptions {
                    max_results: Some(8),
                    ..SearchOptions::default()
                },
                max_tokens: Some(128),
                ..AskRequest::default()
            })
        })
        .collect::<anyhow::Result<_>>()?;

    model_table(settings, &service, &requests).await?;

    // Warm up (model pages, caches).
    agent.answer(requests[0].clone()).await?;

    let (
        mut ttft,
        mut total,
        mut overhead,
        mut raw_ttft,
        mut raw_total,
        mut prompt_tokens,
        mut posts_in,
    ) = (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for r in &requests {
        let (retrieval, answer) = agent.answer(r.clone()).await?;
        if answer.no_results {
            continue;
        }
        ttft.push(
            answer
                .timings
                .model_first_token
                .map_or(f64::NAN, |d| d.as_secs_f64()),
        );
        total.push(answer.timings.total.as_secs_f64());
        overhead.push(answer.timings.overhead().as_secs_f64() * 1000.0);
        prompt_tokens.push(answer.usage.prompt_tokens as f64);
        posts_in.push(retrieval.posts.len() as f64);
        // Baseline: the same-sized prompt straight to the model, no retrieval, no agent.
        let blocks: Vec<String> = retrieval
            .posts
            .iter()
            .enumerate()
            .map(|(i, h)| tidings_agent::prompt::post_block(i + 1, &h.post, answer.as_of))
            .collect();
        let messages = vec![
            ChatMessage::new(Role::System, "Answer from the posts, citing them like [1]."),
            ChatMessage::new(
                Role::User,
                format!("{}\n\n{}", blocks.join("\n\n"), r.question),
            ),
        ];
        let t0 = Instant::now();
        let mut stream = agent
            .model()
            .stream(
                messages,
                GenerationParams {
                    max_tokens: 128,
                    temperature: 0.0,
                    ..GenerationParams::default()
                },
            )
            .await?;
        let mut first = None;
        while let Some(e) = stream.next().await {
            match e? {
                ModelEvent::Delta(_) => {
                    first.get_or_insert_with(|| t0.elapsed().as_secs_f64());
                }
                ModelEvent::Done { .. } => break,
            }
        }
        raw_ttft.push(first.unwrap_or(f64::NAN));
        raw_total.push(t0.elapsed().as_secs_f64());
    }
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len().max(1) as f64;

    // 8 concurrent askers, 2 questions each.
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..8 {
        let agent = agent.clone();
        let mine: Vec<AskRequest> = (0..2)
            .map(|k| requests[(w * 2 + k) % requests.len()].clone())
            .collect();
        tasks.spawn(async move {
            let mut lat = Vec::new();
            for r in mine {
                let t0 = Instant::now();
                let mut s = agent.ask(r).await?;
                while let Some(e) = s.next().await {
                    if let AgentEvent::Done(_) = e? {
                        break;
                    }
                }
                lat.push(t0.elapsed().as_secs_f64());
            }
            anyhow::Ok(lat)
        });
    }
    let mut conc = Vec::new();
    while let Some(r) = tasks.join_next().await {
        conc.extend(r??);
    }
    let wall = started.elapsed().as_secs_f64();
    service.shutdown().await;

    println!(
        "\nAgent benchmark with the configured model: {} questions, mean {:.1} posts / {:.0} prompt tokens in the context, model {}",
        ttft.len(),
        mean(&posts_in),
        mean(&prompt_tokens),
        agent.model().id()
    );
    println!("| figure | Tidings agent | baseline: same prompt straight to the model | ratio |\n|---|---:|---:|---:|");
    println!(
        "| time to first token | p50 {:.2} s / p99 {:.2} s | p50 {:.2} s / p99 {:.2} s | {:.2}× |",
        pct(ttft.clone(), 0.5),
        pct(ttft.clone(), 0.99),
        pct(raw_ttft.clone(), 0.5),
        pct(raw_ttft.clone(), 0.99),
        pct(ttft.clone(), 0.5) / pct(raw_ttft.clone(), 0.5)
    );
    println!(
        "| total latency (128 tokens max) | p50 {:.2} s / p99 {:.2} s | p50 {:.2} s / p99 {:.2} s | {:.2}× |",
        pct(total.clone(), 0.5), pct(total.clone(), 0.99), pct(raw_total.clone(), 0.5), pct(raw_total.clone(), 0.99),
        pct(total.clone(), 0.5) / pct(raw_total.clone(), 0.5)
    );
    println!(
        "| agent overhead (total − retrieval − model) | p50 {:.2} ms / p99 {:.2} ms | target ≤ 5 ms | — |",
        pct(overhead.clone(), 0.5), pct(overhead.clone(), 0.99)
    );
    println!(
        "| 8 concurrent askers × 2 questions | {:.2} answers/min, latency p50 {:.1} s / p99 {:.1} s | sequential: {:.2} answers/min | {:.2}× |",
        conc.len() as f64 / wall * 60.0,
        pct(conc.clone(), 0.5),
        pct(conc.clone(), 0.99),
        60.0 / mean(&total),
        (conc.len() as f64 / wall * 60.0) / (60.0 / mean(&total))
    );
    Ok(())
}
