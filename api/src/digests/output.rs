//! Digest output as JSON (the API's and `tidings digest run --json`'s shape).

use serde_json::{json, Value};
use tidings_agent::digest::DigestOutput;

/// `{name, as_of, window, posts_seen, notable, stories: [{headline, summary, citations, ...}]}`.
pub fn digest_json(out: &DigestOutput) -> Value {
    let stories: Vec<Value> = out
        .stories
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let citations: Vec<Value> = s
                .citations
                .iter()
                .map(crate::answer::citation_json)
                .collect();
            json!({
                "rank": i + 1,
                "headline": s.headline,
                "summary": s.summary,
                "citations": citations,
                "labels": s.story.labels,
                "terms": s.story.terms,
                "posts": s.story.posts.len(),
                "copies": s.story.duplicates,
                "accounts": s.story.authors,
                "volume": s.story.volume,
                "baseline": s.story.baseline,
                "burst": s.story.burst,
                "score": s.story.score,
                "post_ids": s.story.posts.iter().map(|p| p.id.to_string()).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "name": out.name,
        "as_of": out.as_of,
        "window": {"from": out.from, "to": out.to},
        "posts_seen": out.posts_seen,
        "notable": !out.stories.is_empty(),
        "message": if out.stories.is_empty() { Some("No notable stories in this window.") } else { None },
        "stories": stories,
        "took_ms": out.took.as_secs_f64() * 1000.0,
    })
}
