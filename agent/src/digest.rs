//! Digests: a standing question answered for a window — the top stories, each with a headline,
//! a short summary by the model and the posts it cites (checked like any answer).
//!
//! `run` reads the window's posts (the scope's query and filters), fetches their stored
//! embeddings, detects stories ([`crate::stories`]), measures each story's baseline (similar
//! posts in the seven windows before, from the vector index), ranks them and summarises the
//! best. A failed search or model call fails the run; an empty result is a quiet window, never a
//! failure in disguise.

use crate::agent::{Agent, AgentError, AskRequest, Citation};
use crate::stories::{self, Story, StoryConfig, StoryPost};
use chrono::{DateTime, Utc};
use std::time::{Duration, Instant};
use tidings_index::{IndexError, Post, SearchFilter, SearchMode, SearchRequest};

/// What a digest covers.
#[derive(Clone, Debug)]
pub struct DigestSpec {
    pub name: String,
    /// Words the posts should match; empty: every post in the window.
    pub query: String,
    pub handles: Vec<String>,
    /// Posts must carry one of these (without `#`, any case).
    pub hashtags: Vec<String>,
    pub sources: Vec<String>,
    pub langs: Vec<String>,
    pub window: Duration,
    pub persona: Option<String>,
    pub max_stories: usize,
    /// Most posts read from the window (the newest first).
    pub max_posts: usize,
    /// Tokens per summary.
    pub summary_tokens: u32,
}

impl Default for DigestSpec {
    fn default() -> Self {
        DigestSpec {
            name: "digest".into(),
            query: String::new(),
            handles: Vec::new(),
            hashtags: Vec::new(),
            sources: Vec::new(),
            langs: Vec::new(),
            window: Duration::from_secs(24 * 3600),
            persona: None,
            max_stories: 5,
            max_posts: 1000,
            summary_tokens: 160,
        }
    }
}

/// One story of a run.
#[derive(Clone, Debug)]
pub struct DigestStory {
    pub headline: String,
    pub summary: String,
    /// Checked citations (numbers refer to the summary's `[n]`).
    pub citations: Vec<Citation>,
    pub story: Story,
}

/// A finished run.
#[derive(Clone, Debug)]
pub struct DigestOutput {
    pub name: String,
    pub as_of: DateTime<Utc>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub posts_seen: usize,
    pub stories: Vec<DigestStory>,
    pub took: Duration,
}

/// How many windows before the digest's make its baseline.
const BASELINE_WINDOWS: u32 = 7;

fn chrono_span(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::days(1))
}

/// The window's posts in scope, newest first, at most `spec.max_posts`.
async fn window_posts(
    agent: &Agent,
    spec: &DigestSpec,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Post>, IndexError> {
    let mut request = SearchRequest::new(spec.query.clone(), to.timestamp_millis());
    request.mode = SearchMode::Text;
    request.limit = spec.max_posts.max(1);
    request.collapse_duplicates = false;
    request.filter = SearchFilter {
        from_ms: Some(from.timestamp_millis()),
        to_ms: Some(to.timestamp_millis()),
        authors: spec.handles.clone(),
        sources: spec.sources.clone(),
        langs: spec.langs.clone(),
        ..SearchFilter::default()
    };
    let tags: Vec<String> = spec
        .hashtags
        .iter()
        .map(|t| t.trim_start_matches('#').to_lowercase())
        .collect();
    let results = agent.search_handle().search(request).await?;
    Ok(results
        .hits
        .into_iter()
        .map(|h| h.post)
        .filter(|p| {
            tags.is_empty()
                || p.hashtags
                    .iter()
                    .any(|h| tags.contains(&h.trim_start_matches('#').to_lowercase()))
        })
        .collect())
}

/// Runs a digest for the window ending at `as_of`.
pub async fn run(
    agent: &Agent,
    spec: &DigestSpec,
    as_of: DateTime<Utc>,
    config: &StoryConfig,
) -> Result<DigestOutput, AgentError> {
    let started = Instant::now();
    let span = chrono_span(spec.window);
    let (from, to) = (as_of - span, as_of);
    let posts = window_posts(agent, spec, from, to).await?;
    let posts_seen = posts.len();
    let store = agent.search_handle().vectors();
    // Stored embeddings (none when the vector index is off); blocking reads, off the runtime.
    let with_vectors: Vec<StoryPost> = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            posts
                .into_iter()
                .map(|post| {
                    let vector = store
                        .as_ref()
                        .and_then(|s| s.vector_of(post.id.as_str()).ok().flatten());
                    StoryPost { post, vector }
                })
                .collect()
        })
        .await
        .map_err(|e| IndexError::Internal(format!("reading vectors failed: {e}")))?
    };
    let mut found = stories::detect(with_vectors, config);
    // Baselines: similar posts in the windows before, per window.
    let base_from = from - span * BASELINE_WINDOWS as i32;
    for story in &mut found {
        let similar = match (&store, story.centroid.is_empty()) {
            (Some(store), false) => {
                let store = store.clone();
                let centroid = story.centroid.clone();
                let filter = SearchFilter {
                    from_ms: Some(base_from.timestamp_millis()),
                    to_ms: Some(from.timestamp_millis() - 1),
                    authors: spec.handles.clone(),
                    sources: spec.sources.clone(),
                    langs: spec.langs.clone(),
                    ..SearchFilter::default()
                };
                let join = config.join_similarity;
                tokio::task::spawn_blocking(move || {
                    store
                        .search(&centroid, &filter, 1000, false)
                        .map(|hits| hits.iter().filter(|h| h.score >= join).count())
                })
                .await
                .map_err(|e| IndexError::Internal(format!("baseline search failed: {e}")))??
            }
            _ => {
                // No vectors: posts before that hold the story's top words.
                let terms: Vec<String> = story.terms.iter().take(3).cloned().collect();
                let mut request = SearchRequest::new(terms.join(" "), from.timestamp_millis());
                request.mode = SearchMode::Text;
                request.limit = 1000;
                request.collapse_duplicates = false;
                request.filter = SearchFilter {
                    from_ms: Some(base_from.timestamp_millis()),
                    to_ms: Some(from.timestamp_millis() - 1),
                    ..SearchFilter::default()
                };
                let hits = agent.search_handle().search(request).await?.hits;
                hits.iter()
                    .filter(|h| {
                        let t = h.post.text.to_lowercase();
                        terms.iter().filter(|w| t.contains(w.as_str())).count() >= 2
                    })
                    .count()
            }
        };
        story.set_baseline(similar as f32 / BASELINE_WINDOWS as f32);
    }
    stories::sort(&mut found);
    found.truncate(spec.max_stories);

    let mut out = Vec::new();
    for story in found {
        let headline = story.headline();
        let posts: Vec<Post> = story.posts.iter().take(5).cloned().collect();
        let (_, answer) = agent
            .answer(AskRequest {
                question: format!(
                    "What happened in this story ({headline})? Summarize the posts in 2 to 4 sentences."
                ),
                as_of: Some(as_of),
                persona: spec.persona.clone(),
                max_tokens: Some(spec.summary_tokens),
                fixed_posts: Some(posts),
                ..AskRequest::default()
            })
            .await?;
        out.push(DigestStory {
            headline,
            summary: answer.text,
            citations: answer.citations,
            story,
        });
    }
    Ok(DigestOutput {
        name: spec.name.clone(),
        as_of,
        from,
        to,
        posts_seen,
        stories: out,
        took: started.elapsed(),
    })
}

impl DigestOutput {
    /// The digest as markdown: a heading, then per story its headline, summary and sources.
    pub fn markdown(&self) -> String {
        let mut md = format!(
            "# {}\n\n_{} to {} (UTC) · {} posts read · as of {}_\n\n",
            self.name,
            self.from.format("%Y-%m-%d %H:%M"),
            self.to.format("%Y-%m-%d %H:%M"),
            self.posts_seen,
            self.as_of.to_rfc3339()
        );
        if self.stories.is_empty() {
            md.push_str("No notable stories in this window.\n");
            return md;
        }
        for (i, s) in self.stories.iter().enumerate() {
            md.push_str(&format!(
                "## {}. {}\n\n{}\n\n_{} posts ({} copies), {} accounts, {:.1}× its usual volume._\n\n",
                i + 1,
                s.headline,
                s.summary.trim(),
                s.story.posts.len(),
                s.story.duplicates,
                s.story.authors,
                s.story.burst
            ));
            for c in &s.citations {
                let who = c
                    .post
                    .author
                    .as_deref()
                    .map_or_else(|| c.post.source.clone(), |a| format!("@{a}"));
                let text = tidings_index::script::shorten(&c.post.text, 200);
                let link = crate::post_url(&c.post).unwrap_or_else(|| c.post.id.to_string());
                md.push_str(&format!(
                    "- [{}] {} ({}): {} — {}\n",
                    c.number,
                    who,
                    c.post.created_at.format("%Y-%m-%d %H:%M"),
                    text.replace('\n', " "),
                    link
                ));
            }
            md.push('\n');
        }
        md
    }
}
