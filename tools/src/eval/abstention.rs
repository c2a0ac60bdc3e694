//! Abstention: questions whose gold post is removed from the index and questions about events
//! absent from the feed; an answer abstains when it says it found nothing.

use super::answers::{seeded_sample, AnswerLog};
use super::{Question, Topic, ABSENT_EVENTS};
use std::path::Path;
use std::time::Instant;

/// The answer-log line of an unanswerable question.
pub(super) fn abstention_line(
    kind: &str,
    question: &str,
    retrieval: &tidings_agent::Retrieval,
    answer: &tidings_agent::Answer,
) -> serde_json::Value {
    serde_json::json!({
        "kind": kind,
        "question": question,
        "answer": answer.text,
        "abstains": abstains(answer),
        "found_nothing": answer.no_results,
        "top_post": retrieval.posts.first().map(|h| h.post.text.clone()),
        "top_answers": retrieval.posts.first().map(|h| h.breakdown.answers),
        "top_lacks_rarest": retrieval.posts.first().map(|h| h.breakdown.lacks_rarest),
        "plan_query": retrieval.plan.query,
    })
}

/// Whether an answer declines: the agent's own "I found no posts" or the model saying the
/// posts do not tell.
pub(super) fn abstains(answer: &tidings_agent::Answer) -> bool {
    if answer.no_results {
        return true;
    }
    let t = answer.text.to_lowercase();
    [
        "found no posts",
        "found nothing",
        "no posts about",
        "do not answer",
        "don't answer",
        "do not mention",
        "don't mention",
        "do not say",
        "no information",
        "not mentioned",
    ]
    .iter()
    .any(|p| t.contains(p))
}

/// Unanswerable questions: TweetQA questions (a seeded sample apart from the answered one)
/// whose gold posts are deleted from the index first, and questions about events absent from
/// both feeds. Returns the share answered with "found nothing".
pub(super) async fn abstention(
    agent: &tidings_agent::Agent,
    service: &tidings_index::IndexService,
    questions: &[Question],
    answered: Option<usize>,
    k: usize,
    topics: &[Topic],
    log_to: Option<&Path>,
) -> anyhow::Result<f64> {
    use tidings_agent::AskRequest;
    let mut log = AnswerLog::open(log_to, true)?;
    let started = Instant::now();
    let dated: Vec<&Question> = questions.iter().filter(|q| q.as_of.is_some()).collect();
    let skip = answered.unwrap_or(dated.len()).min(dated.len());
    let picked: Vec<&Question> = seeded_sample(dated.len(), dated.len(), 20_260_101)
        .into_iter()
        .skip(skip)
        .take(k)
        .map(|i| dated[i])
        .collect();
    let ids: Vec<tidings_index::PostId> = picked
        .iter()
        .flat_map(|q| q.gold_post_ids.iter())
        .filter_map(|id| tidings_index::PostId::parse(id).ok())
        .collect();
    service.write.delete(ids).await?;
    service.write.commit().await?;
    let (mut removed_asked, mut removed_abstained) = (0usize, 0usize);
    let mut examples = Vec::new();
    for q in &picked {
        let as_of = tidings_api::parse_time(q.as_of.as_deref().unwrap_or_default())
            .map_err(anyhow::Error::msg)?;
        let (retrieval, answer) = agent
            .answer(AskRequest {
                question: q.question.clone(),
                as_of: Some(as_of),
                max_tokens: Some(96),
                ..AskRequest::default()
            })
            .await?;
        log.record(abstention_line("removed", &q.question, &retrieval, &answer))?;
        removed_asked += 1;
        if abstains(&answer) {
            removed_abstained += 1;
        } else if examples.len() < 3 {
            examples.push(format!(
                "{} → {}",
                q.question,
                answer.text.replace('\n', " ")
            ));
        }
    }
    let (mut absent_asked, mut absent_abstained) = (0usize, 0usize);
    for (i, question) in ABSENT_EVENTS.iter().enumerate() {
        let topic = &topics[i % topics.len().max(1)];
        let as_of = tidings_api::parse_time(&topic.as_of).map_err(anyhow::Error::msg)?;
        let (retrieval, answer) = agent
            .answer(AskRequest {
                question: question.to_string(),
                as_of: Some(as_of),
                max_tokens: Some(96),
                ..AskRequest::default()
            })
            .await?;
        log.record(abstention_line("absent", question, &retrieval, &answer))?;
        absent_asked += 1;
        if abstains(&answer) {
            absent_abstained += 1;
        } else if examples.len() < 6 {
            examples.push(format!("{question} → {}", answer.text.replace('\n', " ")));
        }
    }
    log.flush()?;
    let rate = (removed_abstained + absent_abstained) as f64
        / (removed_asked + absent_asked).max(1) as f64;
    println!(
        "\nAbstention ({}, {:.1}s): {:<34} {:>8}",
        agent.model().id(),
        started.elapsed().as_secs_f64(),
        "",
        ""
    );
    println!(
        "{:<44} {:>8.3}  ({removed_abstained}/{removed_asked})",
        "TweetQA, gold post removed: 'found nothing'",
        removed_abstained as f64 / removed_asked.max(1) as f64
    );
    println!(
        "{:<44} {:>8.3}  ({absent_abstained}/{absent_asked})",
        "events absent from the feed: 'found nothing'",
        absent_abstained as f64 / absent_asked.max(1) as f64
    );
    println!("{:<44} {:>8.3}", "abstention, all unanswerable", rate);
    for e in examples {
        println!(
            "  answered anyway: {}",
            e.chars().take(240).collect::<String>()
        );
    }
    Ok(rate)
}
