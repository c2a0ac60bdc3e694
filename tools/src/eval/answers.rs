//! Answers with the agent and the local model: TweetQA (gold answer in the answer, gold post
//! cited, sentence support, against a top-post baseline) and CrisisLex place questions.

use super::judge::{contains_answer, judged_units, strictly_supported};
use super::retrieval::read_jsonl;
use super::{held_out, Question, Topic};
use anyhow::Context;
use serde::Deserialize;
use std::path::Path;
use std::time::Instant;

/// Answer-quality figures the floors look at.
pub(super) struct AnswerFigures {
    pub(super) citation_validity: f64,
    pub(super) cited_relevant_share: f64,
    /// Share of answer sentences the strict judge finds supported by a cited post.
    pub(super) sentence_support: f64,
    /// Answer sentences without a citation.
    pub(super) uncited: usize,
    /// "What is happening in <place>?" topics answered with at least two related citations.
    pub(super) places_with_two_related: usize,
    pub(super) places: usize,
    /// Share of unanswerable questions answered "found nothing".
    pub(super) abstention: Option<f64>,
    /// Share of answers that contain a gold answer string.
    pub(super) gold_answer: f64,
    /// Share of questions whose top retrieved post contains one (what showing that post alone
    /// would give).
    pub(super) top_post_baseline: f64,
}

/// One JSON line per answer the evaluation asks for (`--answers-out`), so that a person can
/// read what it said: TweetQA answers (`kind` "tweetqa"), place questions ("place") and
/// unanswerable questions ("removed", "absent").
pub(super) struct AnswerLog(Option<std::io::BufWriter<std::fs::File>>);

impl AnswerLog {
    /// Nothing is written without a path; `append` keeps what an earlier part wrote.
    pub(super) fn open(path: Option<&Path>, append: bool) -> anyhow::Result<AnswerLog> {
        let Some(path) = path else {
            return Ok(AnswerLog(None));
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(path)
            .with_context(|| format!("open {}", path.display()))?;
        Ok(AnswerLog(Some(std::io::BufWriter::new(file))))
    }

    pub(super) fn record(&mut self, line: serde_json::Value) -> anyhow::Result<()> {
        use std::io::Write as _;
        if let Some(out) = self.0.as_mut() {
            writeln!(out, "{line}")?;
        }
        Ok(())
    }

    pub(super) fn flush(&mut self) -> anyhow::Result<()> {
        use std::io::Write as _;
        if let Some(out) = self.0.as_mut() {
            out.flush()?;
        }
        Ok(())
    }
}

/// A small deterministic shuffle (xorshift), so the sample is the same on every machine.
pub(super) fn seeded_sample(n: usize, k: usize, seed: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    let mut state = seed.max(1);
    for i in (1..n).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        idx.swap(i, (state % (i as u64 + 1)) as usize);
    }
    idx.truncate(k);
    idx
}

#[derive(Deserialize)]
pub(super) struct EventInfo {
    pub(super) event: String,
    pub(super) description: EventDescription,
}

#[derive(Deserialize)]
pub(super) struct EventDescription {
    pub(super) location: EventLocation,
}

#[derive(Deserialize)]
pub(super) struct EventLocation {
    pub(super) location_description: Option<String>,
}

/// Answers with the agent and the local model: TweetQA (gold answer in the answer, citation
/// validity, against a top-post baseline) and CrisisLex ("What is happening in <place>?").
pub(super) async fn answers(
    agent: &tidings_agent::Agent,
    questions: &[Question],
    sample: Option<usize>,
    crisis: &Path,
    topics: &[Topic],
    log_to: Option<&Path>,
) -> anyhow::Result<AnswerFigures> {
    use tidings_agent::{AskRequest, SearchOptions};
    let mut log = AnswerLog::open(log_to, false)?;
    let dated: Vec<&Question> = questions.iter().filter(|q| q.as_of.is_some()).collect();
    let k = sample.unwrap_or(dated.len()).min(dated.len());
    let picked = seeded_sample(dated.len(), k, 20_260_101);
    let started = Instant::now();
    let (mut with_answer, mut baseline, mut gold_cited, mut markers, mut valid_markers) =
        (0usize, 0usize, 0usize, 0usize, 0usize);
    let (mut citations, mut valid_citations, mut no_results) = (0usize, 0usize, 0usize);
    let (mut sentences, mut supported, mut uncited, mut extractive, mut dropped) =
        (0usize, 0usize, 0usize, 0usize, 0usize);
    let (mut recited, mut quoted) = (0usize, 0usize);
    let mut first_token = Vec::new();
    let mut unsupported_examples: Vec<String> = Vec::new();
    for &i in &picked {
        let q = dated[i];
        let as_of = tidings_api::parse_time(q.as_of.as_deref().unwrap_or_default())
            .map_err(anyhow::Error::msg)?;
        let request = AskRequest {
            question: q.question.clone(),
            as_of: Some(as_of),
            search: SearchOptions {
                max_results: Some(5),
                ..SearchOptions::default()
            },
            max_tokens: Some(96),
            ..AskRequest::default()
        };
        let (retrieval, answer) = agent.answer(request).await?;
        if answer.no_results {
            no_results += 1;
        }
        if answer.grounding.extractive {
            extractive += 1;
        }
        dropped += answer.grounding.dropped.len();
        recited += answer.grounding.recited;
        quoted += answer.grounding.quoted;
        if !answer.no_results {
            let given: Vec<&str> = retrieval
                .posts
                .iter()
                .map(|h| h.post.text.as_str())
                .collect();
            for sentence in judged_units(&answer.text) {
                match strictly_supported(&sentence, &given) {
                    None => {}
                    Some(ok) => {
                        sentences += 1;
                        supported += usize::from(ok);
                        let bare = tidings_agent::cite::cited_numbers(&sentence).is_empty();
                        uncited += usize::from(bare);
                        if (!ok || bare) && unsupported_examples.len() < 6 {
                            unsupported_examples.push(format!(
                                "{}{} | Q: {}",
                                if bare { "UNCITED " } else { "" },
                                sentence.trim(),
                                q.question
                            ));
                        }
                    }
                }
            }
        }
        if let Some(t) = answer.timings.model_first_token {
            first_token.push(t.as_secs_f64());
        }
        if contains_answer(&answer.text, &q.answers) {
            with_answer += 1;
        }
        if retrieval
            .posts
            .first()
            .is_some_and(|h| contains_answer(&h.post.text, &q.answers))
        {
            baseline += 1;
        }
        if answer
            .citations
            .iter()
            .any(|c| q.gold_post_ids.contains(&c.post.id.to_string()))
        {
            gold_cited += 1;
        }
        let given: Vec<String> = retrieval
            .posts
            .iter()
            .map(|h| h.post.id.to_string())
            .collect();
        for n in tidings_agent::cite::cited_numbers(&answer.text) {
            markers += 1;
            if (1..=given.len()).contains(&n) {
                valid_markers += 1;
            }
        }
        for c in &answer.citations {
            citations += 1;
            if given.get(c.number.wrapping_sub(1)) == Some(&c.post.id.to_string()) {
                valid_citations += 1;
            }
        }
        {
            log.record(serde_json::json!({
                "kind": "tweetqa",
                "question": q.question,
                "answers": q.answers,
                "gold_post_ids": q.gold_post_ids,
                "held_out": held_out(q),
                "answer": answer.text,
                "contains_answer": contains_answer(&answer.text, &q.answers),
                "found_nothing": answer.no_results,
                "extractive": answer.grounding.extractive,
                "dropped": answer.grounding.dropped,
                "recited": answer.grounding.recited,
                "quoted": answer.grounding.quoted,
                "given": given,
                "gold_rank": given.iter().position(|id| q.gold_post_ids.contains(id)),
                "top_post": retrieval.posts.first().map(|h| h.post.text.clone()),
                "top_answers": retrieval.posts.first().map(|h| h.breakdown.answers),
                "plan_query": retrieval.plan.query,
            }))?;
        }
    }
    let n = picked.len().max(1) as f64;
    first_token.sort_by(f64::total_cmp);
    let p50 = first_token
        .get(first_token.len() / 2)
        .copied()
        .unwrap_or(f64::NAN);
    println!(
        "\nTweetQA answers: {} questions (seeded sample of {} dated), local model, {:.1}s",
        picked.len(),
        dated.len(),
        started.elapsed().as_secs_f64()
    );
    println!("{:<44} {:>8}", "figure", "value");
    println!(
        "{:<44} {:>8.3}",
        "answer contains a gold answer (agent)",
        with_answer as f64 / n
    );
    println!(
        "{:<44} {:>8.3}",
        "top retrieved post contains it (baseline)",
        baseline as f64 / n
    );
    println!(
        "{:<44} {:>8.3}",
        "gold post among the citations",
        gold_cited as f64 / n
    );
    println!(
        "{:<44} {:>8.3}",
        "answered 'found nothing'",
        no_results as f64 / n
    );
    let validity = if markers + citations == 0 {
        1.0
    } else {
        (valid_markers + valid_citations) as f64 / (markers + citations) as f64
    };
    println!(
        "{:<44} {:>8.3}  ({valid_markers}/{markers} markers, {valid_citations}/{citations} citations)",
        "citation validity", validity
    );
    println!(
        "{:<44} {:>8.3}  ({supported}/{sentences}, the evaluation's stricter judge)",
        "answer sentences supported by a cited post",
        supported as f64 / sentences.max(1) as f64
    );
    println!(
        "{:<44} {:>8}",
        "answer sentences without a citation", uncited
    );
    println!(
        "{:<44} {:>8.3}",
        "answers quoting posts (nothing the model wrote held)",
        extractive as f64 / n
    );
    println!(
        "{:<44} {:>8.2}",
        "model sentences dropped per answer",
        dropped as f64 / n
    );
    println!(
        "{:<44} {:>8.2}",
        "model sentences re-cited per answer",
        recited as f64 / n
    );
    println!(
        "{:<44} {:>8.2}",
        "model's copies of a post, quoted, per answer",
        quoted as f64 / n
    );
    println!("{:<44} {:>8.2}", "model's first token p50 (s)", p50);
    for e in &unsupported_examples {
        println!(
            "  not supported: {}",
            e.chars().take(220).collect::<String>()
        );
    }

    // CrisisLex: "What is happening in <place>?" at each topic's as_of.
    let events: Vec<EventInfo> = read_jsonl(&crisis.join("events.jsonl"))?;
    println!("\nCrisisLexT26: \"What is happening in <place>?\" at each public topic's as_of");
    println!(
        "{:<40} {:<22} {:>6} {:>9}",
        "topic", "place", "cited", "relevant"
    );
    let (mut cited_total, mut relevant_total, mut two_related) = (0usize, 0usize, 0usize);
    for topic in topics {
        let place = events
            .iter()
            .find(|e| e.event == topic.event)
            .and_then(|e| e.description.location.location_description.clone())
            .unwrap_or_else(|| topic.query.clone());
        let as_of = tidings_api::parse_time(&topic.as_of).map_err(anyhow::Error::msg)?;
        let (_, answer) = agent
            .answer(AskRequest {
                question: format!("What is happening in {place}?"),
                as_of: Some(as_of),
                max_tokens: Some(96),
                ..AskRequest::default()
            })
            .await?;
        let cited = answer.citations.len();
        let relevant = answer
            .citations
            .iter()
            .filter(|c| {
                topic
                    .qrels
                    .get(&c.post.id.to_string())
                    .is_some_and(|g| *g > 0)
            })
            .count();
        log.record(serde_json::json!({
            "kind": "place",
            "question": format!("What is happening in {place}?"),
            "topic": topic.id,
            "answer": answer.text,
            "found_nothing": answer.no_results,
            "cited": answer.citations.iter().map(|c| c.post.id.to_string()).collect::<Vec<_>>(),
            "relevant": relevant,
        }))?;
        cited_total += cited;
        relevant_total += relevant;
        two_related += usize::from(relevant >= 2);
        println!(
            "{:<40} {:<22} {:>6} {:>9}",
            topic.id.trim_start_matches("crisislext26-"),
            place.chars().take(22).collect::<String>(),
            cited,
            relevant
        );
    }
    log.flush()?;
    let share = if cited_total == 0 {
        0.0
    } else {
        relevant_total as f64 / cited_total as f64
    };
    println!(
        "{:<40} {:<22} {:>6} {:>9}  ({share:.3} relevant; {two_related}/{} topics with ≥ 2 related)",
        "TOTAL", "", cited_total, relevant_total, topics.len()
    );
    Ok(AnswerFigures {
        citation_validity: validity,
        cited_relevant_share: share,
        sentence_support: supported as f64 / sentences.max(1) as f64,
        uncited,
        places_with_two_related: two_related,
        places: topics.len(),
        abstention: None,
        gold_answer: with_answer as f64 / n,
        top_post_baseline: baseline as f64 / n,
    })
}
