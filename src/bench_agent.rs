//! `tidings bench --agent`: the answering path on this machine with the local model.
//!
//! Index: the CrisisLexT26 posts (text and vectors). For each public topic, "What is happening
//! in <place>?" at its `as_of` with a 10-post context. Figures: time to first token and total
//! latency through the agent, the same prompt sent straight to the model (the baseline, same
//! process), the agent's own overhead (total − retrieval − model), and throughput with 8
//! concurrent askers sharing the model's queue.

use crate::app;
use crate::config::Settings;
use anyhow::Context;
use futures::StreamExt;
use std::path::Path;
use std::time::Instant;
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
/// `tidings eval --keep-index DIR`); without it the posts are ingested and embedded first.
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
        service.wait_for_vectors(|_| {}).await;
        return answer_figures(&settings, service, shared).await;
    }
    let accepted =
        crate::eval::ingest_file(&service, &shared.join("crisislex26/posts.jsonl")).await?;
    println!("bench agent: {} posts indexed; embedding…", accepted);
    service.wait_for_vectors(|_| {}).await;
    answer_figures(&settings, service, shared).await
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
                    max_results: Some(10),
                    ..SearchOptions::default()
                },
                max_tokens: Some(128),
                ..AskRequest::default()
            })
        })
        .collect::<anyhow::Result<_>>()?;

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
        "\nAgent benchmark: {} questions, mean {:.1} posts / {:.0} prompt tokens in the context, model {}",
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
