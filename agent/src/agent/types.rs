//! The agent's public types: settings, a request, what it retrieved, the answer with its
//! citations and grounding, the events of a streamed answer and its errors.

use crate::model::{ChatMessage, FinishReason, ModelError, Usage};
use crate::plan::{Plan, SearchOptions};
use crate::when::TimeWindow;
use chrono::{DateTime, Utc};
use std::time::Duration;
use tidings_index::{IndexError, Post, SearchHit};

/// Agent settings.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub default_persona: String,
    pub max_answer_tokens: u32,
    pub temperature: f32,
    /// Fewer relevant posts than this makes an implicit window widen.
    pub min_relevant: usize,
    /// A post found only by the dense retriever counts as relevant from this cosine up (when
    /// it also covers the question, see `min_coverage`).
    pub min_dense_score: f32,
    /// From this cosine up a post is relevant whatever words it shares (a paraphrase).
    pub strong_dense_score: f32,
    /// Share of the question's topic words (light-stemmed) a post must hold to address it.
    pub min_coverage: f32,
    /// The learned ranker's answerability probability the best relevant post must reach for
    /// the agent to answer at all (below it: "found nothing"). Searches the learned ranker did
    /// not score (BM25 only, a query without terms) skip the check.
    pub min_answerability: f32,
    /// From this answerability up a post is relevant whatever share of the question's words
    /// it repeats: the ranker weighed its words, rare terms and cosine together (a question's
    /// frame, "which soccer team does Tim Cahill play on?", is seldom in the post that answers
    /// it). Anchors (names the question asks about) still apply.
    pub sure_answerability: f32,
    /// Tokens for the prompt; `None`: the model's window minus the answer and a margin.
    pub prompt_budget: Option<usize>,
    /// How many times an implicit window may widen.
    pub max_widen_steps: usize,
    /// Share of a sentence's words a post must hold to be cited for it when the model cited
    /// nothing.
    pub infer_min_overlap: f32,
    /// Rounds of `search_posts` tool calls a tool-capable (remote) model may make; 0 = off.
    pub tool_rounds: usize,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            default_persona: "regular".into(),
            max_answer_tokens: 200,
            temperature: 0.0,
            min_relevant: 3,
            min_dense_score: 0.35,
            strong_dense_score: 0.6,
            min_coverage: 0.5,
            min_answerability: tidings_index::rerank::ANSWERS_THRESHOLD,
            sure_answerability: 0.3,
            prompt_budget: None,
            max_widen_steps: 4,
            infer_min_overlap: 0.3,
            tool_rounds: 2,
        }
    }
}

/// A question to answer.
#[derive(Clone, Debug, Default)]
pub struct AskRequest {
    pub question: String,
    /// Earlier turns, oldest first.
    pub history: Vec<ChatMessage>,
    pub as_of: Option<DateTime<Utc>>,
    pub search: SearchOptions,
    pub persona: Option<String>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub seed: Option<u32>,
    /// Posts cited earlier in the conversation. Those inside the new window that share a word
    /// with the new search join the prompt after the fresh hits (a follow-up about the same
    /// story keeps its sources even when the new search misses them).
    pub earlier_posts: Vec<Post>,
    /// Answer over exactly these posts instead of searching (digest summaries).
    pub fixed_posts: Option<Vec<Post>>,
}

/// What retrieval found, sent before the first token.
#[derive(Clone, Debug)]
pub struct Retrieval {
    pub plan: Plan,
    /// The window finally searched (wider than the plan's when it had to widen).
    pub window: TimeWindow,
    /// The first window, when the search had to widen.
    pub widened_from: Option<TimeWindow>,
    /// The widest window tried (what "found nothing" covers).
    pub widest: TimeWindow,
    /// Posts in the prompt, numbered from 1 in this order.
    pub posts: Vec<SearchHit>,
    pub searched: bool,
    pub degraded: Option<String>,
    pub took: Duration,
}

/// A checked citation.
#[derive(Clone, Debug)]
pub struct Citation {
    /// The number used in the answer (`[n]`).
    pub number: usize,
    pub post: Post,
    pub url: Option<String>,
    /// Share of the citing sentence's words found in the post (0..1).
    pub support: f32,
    /// The model did not cite; the agent attributed the answer's sentences to this post.
    pub inferred: bool,
    /// Independent accounts (copies and repeat posts of one account count once) among the
    /// given posts that support what the citing sentence says; 1 means a single source.
    pub corroboration: usize,
}

/// What the grounding check did to the model's text.
#[derive(Clone, Debug, Default)]
pub struct Grounding {
    /// Sentences of the model removed because no post given supports them.
    pub dropped: Vec<String>,
    /// Sentences kept.
    pub kept: usize,
    /// Of those, sentences whose citations were replaced by the posts that support them (the
    /// model combined two posts' facts and cited one, or cited the wrong post).
    pub recited: usize,
    /// Of those, a post of the prompt the model copied with its header, passed as a quote.
    pub quoted: usize,
    /// Nothing the model wrote survived: the answer quotes the posts instead.
    pub extractive: bool,
}

/// The finished answer.
#[derive(Clone, Debug)]
pub struct Answer {
    pub text: String,
    pub citations: Vec<Citation>,
    pub as_of: DateTime<Utc>,
    pub window: TimeWindow,
    pub widened_from: Option<TimeWindow>,
    pub related_questions: Vec<String>,
    pub persona: String,
    pub model: String,
    pub usage: Usage,
    pub finish_reason: FinishReason,
    /// True when nothing relevant was found and the model was not asked.
    pub no_results: bool,
    /// Citation markers the filter removed (numbers outside the retrieved set).
    pub dropped_citations: usize,
    pub grounding: Grounding,
    pub timings: Timings,
}

/// Where the time went.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timings {
    pub retrieval: Duration,
    /// From the start of the request to the first text the caller sees (which may be the
    /// agent's own note that it widened the window).
    pub first_token: Option<Duration>,
    /// From the start of the request to the model's first token.
    pub model_first_token: Option<Duration>,
    /// Time inside the model's stream (queue wait included).
    pub model: Duration,
    pub total: Duration,
}

impl Timings {
    /// What the agent itself added beyond retrieval and the model.
    pub fn overhead(&self) -> Duration {
        self.total.saturating_sub(self.retrieval + self.model)
    }
}

/// Streamed output of [`Agent::ask`].
#[derive(Clone, Debug)]
pub enum AgentEvent {
    Retrieved(Box<Retrieval>),
    Delta(String),
    Done(Box<Answer>),
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("search failed: {0}")]
    Search(#[from] IndexError),
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A bug: the answer panicked. The panic is contained to this answer (see [`Agent::ask`]);
    /// the message is for the log, not for clients.
    #[error("the answer failed inside the server: {0}")]
    Panicked(String),
}

impl AgentError {
    pub fn code(&self) -> &'static str {
        match self {
            AgentError::InvalidRequest(_) => "invalid_request",
            AgentError::Search(_) => "search_failed",
            AgentError::Model(e) => e.code(),
            AgentError::Panicked(_) => "internal",
        }
    }

    pub(super) fn from_panic(panic: Box<dyn std::any::Any + Send>) -> AgentError {
        let message = crate::panic_message(panic.as_ref());
        tracing::error!(panic = %message, "an answer panicked; the failure is contained to it");
        AgentError::Panicked(message)
    }
}
