//! Digest output as JSON (the API's and `tidings digest run --json`'s shape).

use crate::answer::CitationView;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tidings_agent::digest::{DigestOutput, DigestStory};

/// A digest run's output: the stories of its window, or an explicit quiet window.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = DigestOutput)]
pub(crate) struct OutputView {
    name: String,
    as_of: DateTime<Utc>,
    window: WindowView,
    /// Posts in the window that matched the scope.
    posts_seen: usize,
    /// Whether any story was found.
    notable: bool,
    /// "No notable stories in this window." when there are none.
    message: Option<&'static str>,
    stories: Vec<StoryView>,
    took_ms: f64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = DigestWindow)]
struct WindowView {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

/// One story: a headline, a checked summary with its citations, and why it was picked.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = DigestStory)]
struct StoryView {
    rank: usize,
    headline: String,
    summary: String,
    citations: Vec<CitationView>,
    labels: Vec<String>,
    terms: Vec<String>,
    /// Distinct posts in the story.
    posts: usize,
    /// Near-copies folded into them.
    copies: usize,
    /// Distinct accounts.
    accounts: usize,
    volume: f32,
    /// The story's usual volume before the window.
    baseline: f32,
    burst: f32,
    score: f32,
    post_ids: Vec<String>,
}

impl StoryView {
    fn new(rank: usize, s: &DigestStory) -> StoryView {
        StoryView {
            rank,
            headline: s.headline.clone(),
            summary: s.summary.clone(),
            citations: s.citations.iter().map(CitationView::from).collect(),
            labels: s.story.labels.clone(),
            terms: s.story.terms.clone(),
            posts: s.story.posts.len(),
            copies: s.story.duplicates,
            accounts: s.story.authors,
            volume: s.story.volume,
            baseline: s.story.baseline,
            burst: s.story.burst,
            score: s.story.score,
            post_ids: s.story.posts.iter().map(|p| p.id.to_string()).collect(),
        }
    }
}

impl From<&DigestOutput> for OutputView {
    fn from(out: &DigestOutput) -> OutputView {
        OutputView {
            name: out.name.clone(),
            as_of: out.as_of,
            window: WindowView {
                from: out.from,
                to: out.to,
            },
            posts_seen: out.posts_seen,
            notable: !out.stories.is_empty(),
            message: out
                .stories
                .is_empty()
                .then_some("No notable stories in this window."),
            stories: out
                .stories
                .iter()
                .enumerate()
                .map(|(i, s)| StoryView::new(i + 1, s))
                .collect(),
            took_ms: out.took.as_secs_f64() * 1000.0,
        }
    }
}

/// `{name, as_of, window, posts_seen, notable, stories: [{headline, summary, citations, ...}]}`.
pub fn digest_json(out: &DigestOutput) -> Value {
    serde_json::to_value(OutputView::from(out)).unwrap_or(Value::Null)
}
