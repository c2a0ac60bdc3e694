//! The agent: plan → retrieve (widening when thin) → prompt → stream the model → check
//! citations → suggest follow-ups.
//!
//! Split by job: `types` (settings, request, answer, errors), `retrieve` (plan and search),
//! `extract` (quoted, extractive parts of an answer), `tools` (the remote model's tool loop);
//! this file holds the answer itself (`ask`).

mod extract;
mod retrieve;
mod tools;
mod types;

use extract::{closest_post_line, extractive_answer, main_reports, paragraph_gap};
pub use retrieve::post_url;
pub use types::{
    AgentConfig, AgentError, AgentEvent, Answer, AskRequest, Citation, Grounding, Retrieval,
    Timings,
};

use crate::cite::{self, CitationFilter};
use crate::ground::{GroundPost, SentenceGate, Strictness};
use crate::guard::EchoGuard;
use crate::model::{ChatModel, FinishReason, GenerationParams, ModelError, ModelEvent, Usage};
use crate::plan::Plan;
use crate::prompt::{self, Personas, PromptInput};
use crate::suggest;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tidings_index::{Post, SearchHandle};

/// Whether the learned ranker's answerability speaks for `plan`'s question. It was trained on
/// English questions: a Chinese, Japanese or Korean query becomes character bigrams whose
/// coverage features it never saw, so such questions (and queries without terms) go without it.
fn learned_applies(plan: &Plan) -> bool {
    !plan.query.trim().is_empty() && !plan.query.chars().any(tidings_index::script::is_cjk)
}

/// `stream` with any panic while polling it turned into one `Err` item that ends it.
fn contain_panics(mut stream: AgentStream) -> AgentStream {
    async_stream::stream! {
        loop {
            match AssertUnwindSafe(stream.next()).catch_unwind().await {
                Ok(Some(item)) => yield item,
                Ok(None) => break,
                Err(panic) => {
                    yield Err(AgentError::from_panic(panic));
                    break;
                }
            }
        }
    }
    .boxed()
}

pub type AgentStream = BoxStream<'static, Result<AgentEvent, AgentError>>;

/// The agent. Cheap to clone.
#[derive(Clone)]
pub struct Agent {
    search: SearchHandle,
    model: Arc<dyn ChatModel>,
    personas: Arc<Personas>,
    config: Arc<AgentConfig>,
}

impl Agent {
    pub fn new(
        search: SearchHandle,
        model: Arc<dyn ChatModel>,
        personas: Personas,
        config: AgentConfig,
    ) -> Agent {
        Agent {
            search,
            model,
            personas: Arc::new(personas),
            config: Arc::new(config),
        }
    }

    pub fn model(&self) -> &Arc<dyn ChatModel> {
        &self.model
    }

    pub fn personas(&self) -> &Personas {
        &self.personas
    }

    pub fn search_handle(&self) -> &SearchHandle {
        &self.search
    }

    /// Answers a question as a stream: `Retrieved`, then `Delta`s, then one `Done`. Errors
    /// that happen before any output (bad persona, search down, model busy) come back as `Err`.
    ///
    /// A panic anywhere in the answer (a bug, e.g. in text handling) never reaches the caller
    /// as a panic: before the stream it is `Err(AgentError::Panicked)`, inside it the last
    /// item, so every caller can store or answer the failure.
    pub async fn ask(&self, request: AskRequest) -> Result<AgentStream, AgentError> {
        match AssertUnwindSafe(self.ask_unguarded(request))
            .catch_unwind()
            .await
        {
            Ok(Ok(stream)) => Ok(contain_panics(stream)),
            Ok(Err(e)) => Err(e),
            Err(panic) => Err(AgentError::from_panic(panic)),
        }
    }

    async fn ask_unguarded(&self, request: AskRequest) -> Result<AgentStream, AgentError> {
        let started = Instant::now();
        let question = request.question.trim().to_string();
        if question.is_empty() {
            return Err(AgentError::InvalidRequest("the question is empty".into()));
        }
        let persona_name = request
            .persona
            .clone()
            .unwrap_or_else(|| self.config.default_persona.clone())
            .to_lowercase();
        let persona = self.personas.get(&persona_name).ok_or_else(|| {
            AgentError::InvalidRequest(format!(
                "unknown persona {persona_name:?}; available: {}",
                self.personas.names().collect::<Vec<_>>().join(", ")
            ))
        })?;
        let as_of = request.as_of.unwrap_or_else(Utc::now);
        let retrieval = self.retrieve(&request, as_of).await?;
        let retrieval_took = started.elapsed();
        let max_tokens = request
            .max_tokens
            .unwrap_or(self.config.max_answer_tokens)
            .clamp(16, 4096);
        let budget = self.config.prompt_budget.unwrap_or_else(|| {
            self.model
                .context_tokens()
                .saturating_sub(max_tokens as usize + 64)
                .max(256)
        });
        let posts: Vec<Post> = retrieval.posts.iter().map(|h| h.post.clone()).collect();
        let model_id = self.model.id().to_string();
        let related = suggest::related_questions(&question, &posts);

        // Nothing relevant: say so plainly instead of letting the model guess.
        if retrieval.searched && posts.is_empty() {
            let text = if retrieval.widest != retrieval.plan.window {
                format!(
                    "I found no posts about this in {}, nor when I widened the search to {}. I won't guess: try other words.",
                    retrieval.plan.window.label, retrieval.widest.label
                )
            } else {
                format!(
                    "I found no posts about this in {}. I won't guess: try other words or a wider time window.",
                    retrieval.window.label
                )
            };
            let answer = Answer {
                text: text.clone(),
                citations: Vec::new(),
                as_of,
                window: retrieval.window.clone(),
                widened_from: retrieval.widened_from.clone(),
                related_questions: related,
                persona: persona_name,
                model: model_id,
                usage: Usage::default(),
                finish_reason: FinishReason::Stop,
                no_results: true,
                dropped_citations: 0,
                grounding: Grounding::default(),
                timings: Timings {
                    retrieval: retrieval_took,
                    first_token: Some(started.elapsed()),
                    model_first_token: None,
                    model: Duration::ZERO,
                    total: started.elapsed(),
                },
            };
            let events = vec![
                Ok(AgentEvent::Retrieved(Box::new(retrieval))),
                Ok(AgentEvent::Delta(text)),
                Ok(AgentEvent::Done(Box::new(answer))),
            ];
            return Ok(futures::stream::iter(events).boxed());
        }

        let params = GenerationParams {
            max_tokens,
            temperature: request.temperature.unwrap_or(self.config.temperature),
            seed: request.seed.unwrap_or(42),
            ..GenerationParams::default()
        };
        let mut retrieval = retrieval;
        let mut posts = posts;
        let mut tool_answer = None;
        if retrieval.searched
            && request.fixed_posts.is_none()
            && self.model.supports_tools()
            && self.config.tool_rounds > 0
        {
            let built = self.build_prompt(
                persona, &question, &request, &posts, as_of, &retrieval, budget,
            );
            retrieval.posts.truncate(built.posts_used);
            tool_answer = self
                .tool_loop(built.messages, &mut retrieval, as_of, params.clone())
                .await?;
            posts = retrieval.posts.iter().map(|h| h.post.clone()).collect();
        }
        let built = self.build_prompt(
            persona, &question, &request, &posts, as_of, &retrieval, budget,
        );
        retrieval.posts.truncate(built.posts_used);
        if tracing::enabled!(tracing::Level::TRACE) {
            let json = serde_json::to_string(&built.messages).unwrap_or_default();
            tracing::trace!(prompt = %json, "prompt");
        }
        let prompt_tokens = built.prompt_tokens;
        let model_started = Instant::now();
        let mut model_stream = match tool_answer {
            // The model answered inside the tool loop: replay that answer through the filters.
            Some(text) => futures::stream::iter(vec![
                Ok(ModelEvent::Delta(text.clone())),
                Ok(ModelEvent::Done {
                    finish_reason: FinishReason::Stop,
                    usage: Usage {
                        prompt_tokens: prompt_tokens as u32,
                        completion_tokens: self.model.count_tokens(&text) as u32,
                    },
                }),
            ])
            .boxed(),
            None => self.model.stream(built.messages, params).await?,
        };
        let config = self.config.clone();
        let asked = question.clone();
        // Answers to searched questions quote the closest post when the model did not cite
        // it; summaries over given posts (digests) do not.
        let quote_closest = retrieval.searched && request.fixed_posts.is_none();
        let overview = retrieval.plan.overview;
        let stream = async_stream::stream! {
            let used: Vec<Post> = retrieval.posts.iter().map(|h| h.post.clone()).collect();
            let window = retrieval.window.clone();
            let widened_from = retrieval.widened_from.clone();
            yield Ok(AgentEvent::Retrieved(Box::new(retrieval)));
            let mut first_token = None;
            let mut text = String::new();
            if let Some(w) = &widened_from {
                let note = format!(
                    "(Little was posted about this in {}, so I searched {}.)\n\n",
                    w.label, window.label
                );
                first_token = Some(started.elapsed());
                text.push_str(&note);
                yield Ok(AgentEvent::Delta(note));
            }
            let mut filter = CitationFilter::new(used.len());
            let mut guard = EchoGuard::default();
            // Every sentence passes only when a given post supports it (see `ground`).
            let strictness = if persona_name == "fun" {
                Strictness::AllowAsides
            } else {
                Strictness::Strict
            };
            let mut gate = SentenceGate::with_posts(
                used.iter().map(|p| GroundPost::by(&p.text, p.author.as_deref())).collect(),
                strictness,
            );
            // A post the model copied is its pick among the ranked posts of a searched question.
            gate.quote_copies = quote_closest;
            let mut deltas = 0u32;
            let mut model_first_token = None;
            let mut usage = Usage::default();
            let mut finish = FinishReason::Stop;
            while let Some(event) = model_stream.next().await {
                match event {
                    Ok(ModelEvent::Delta(d)) => {
                        deltas += 1;
                        model_first_token.get_or_insert_with(|| started.elapsed());
                        let out = gate.push(&filter.push(&guard.push(&d)));
                        if !out.is_empty() {
                            first_token.get_or_insert_with(|| started.elapsed());
                            text.push_str(&out);
                            yield Ok(AgentEvent::Delta(out));
                        }
                        if guard.stopped() {
                            // The model began echoing the prompt: end the answer here (dropping
                            // the stream stops the generation).
                            usage = Usage {
                                prompt_tokens: prompt_tokens as u32,
                                completion_tokens: deltas,
                            };
                            finish = FinishReason::Stop;
                            break;
                        }
                    }
                    Ok(ModelEvent::Done { finish_reason, usage: u }) => {
                        usage = u;
                        finish = finish_reason;
                        break;
                    }
                    Err(e) => {
                        yield Err(AgentError::Model(e));
                        return;
                    }
                }
            }
            let rest = filter.push(&guard.finish()) + &filter.finish();
            let mut rest = gate.push(&rest) + &gate.finish();
            let extractive = gate.kept == 0 && !used.is_empty();
            if extractive {
                // Nothing the model wrote is supported: quote the posts instead (for an
                // overview, those the most accounts carry; see `main_reports`).
                rest = extractive_answer(
                    &used,
                    if overview { "" } else { &asked },
                    &mut gate.corroboration,
                );
            } else if !used.is_empty() && quote_closest {
                let so_far = format!("{text}{rest}");
                if overview {
                    rest.push_str(&main_reports(&used, &so_far, &mut gate.corroboration));
                } else {
                    rest.push_str(&closest_post_line(
                        &used,
                        &asked,
                        &so_far,
                        &mut gate.corroboration,
                    ));
                }
            }
            if !rest.is_empty() {
                first_token.get_or_insert_with(|| started.elapsed());
                text.push_str(&rest);
                yield Ok(AgentEvent::Delta(rest));
            }
            let grounding = Grounding {
                dropped: std::mem::take(&mut gate.dropped),
                kept: gate.kept,
                recited: gate.recited,
                quoted: gate.quoted,
                extractive,
            };
            let model_took = model_started.elapsed();
            let texts: Vec<&str> = used.iter().map(|p| p.text.as_str()).collect();
            let mut numbers: Vec<(usize, f32, bool)> = cite::support(&text, &texts)
                .into_iter()
                .filter(|(n, _)| (1..=used.len()).contains(n))
                .map(|(n, s)| (n, s, false))
                .collect();
            if numbers.is_empty() && !used.is_empty() {
                let inferred = cite::infer(&text, &texts, config.infer_min_overlap);
                if !inferred.is_empty() {
                    let markers: String = inferred.iter().map(|n| format!("[{n}]")).collect();
                    let sources = format!("{}Sources: {markers}", paragraph_gap(&text));
                    text.push_str(&sources);
                    yield Ok(AgentEvent::Delta(sources));
                    numbers = cite::support(&text, &texts)
                        .into_iter()
                        .map(|(n, s)| (n, s, true))
                        .collect();
                    // The "Sources" line is its own sentence: score against the whole answer.
                    let words = cite::content_words(&text);
                    for (n, s, _) in numbers.iter_mut() {
                        let pw = cite::content_words(texts[*n - 1]);
                        let common = words.intersection(&pw).count() as f32;
                        *s = (common / pw.len().max(1) as f32).min(1.0);
                    }
                }
            }
            let citations = numbers
                .into_iter()
                .map(|(n, support, inferred)| Citation {
                    number: n,
                    url: post_url(&used[n - 1]),
                    post: used[n - 1].clone(),
                    support,
                    inferred,
                    corroboration: gate.corroboration.get(n - 1).copied().unwrap_or(0).max(1),
                })
                .collect();
            let answer = Answer {
                text,
                citations,
                as_of,
                window,
                widened_from,
                related_questions: related,
                persona: persona_name,
                model: model_id,
                usage,
                finish_reason: finish,
                no_results: false,
                dropped_citations: filter.dropped,
                grounding,
                timings: Timings {
                    retrieval: retrieval_took,
                    first_token,
                    model_first_token,
                    model: model_took,
                    total: started.elapsed(),
                },
            };
            yield Ok(AgentEvent::Done(Box::new(answer)));
        };
        Ok(stream.boxed())
    }

    #[allow(clippy::too_many_arguments)]
    fn build_prompt(
        &self,
        persona: &str,
        question: &str,
        request: &AskRequest,
        posts: &[Post],
        as_of: DateTime<Utc>,
        retrieval: &Retrieval,
        budget: usize,
    ) -> prompt::BuiltPrompt {
        prompt::build(
            self.model.as_ref(),
            &PromptInput {
                persona,
                question,
                history: &request.history,
                posts,
                as_of,
                window: &retrieval.window,
                searched: retrieval.searched,
            },
            budget,
        )
    }

    /// Runs [`Self::ask`] to the end and returns the answer (for non-streaming callers).
    pub async fn answer(&self, request: AskRequest) -> Result<(Retrieval, Answer), AgentError> {
        let mut stream = self.ask(request).await?;
        let mut retrieval = None;
        while let Some(event) = stream.next().await {
            match event? {
                AgentEvent::Retrieved(r) => retrieval = Some(*r),
                AgentEvent::Delta(_) => {}
                AgentEvent::Done(a) => {
                    let r = retrieval.ok_or_else(|| {
                        AgentError::Model(ModelError::Internal("no retrieval event".into()))
                    })?;
                    return Ok((r, *a));
                }
            }
        }
        Err(AgentError::Model(ModelError::Malformed(
            "the answer stream ended early".into(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_inside_the_answer_stream_ends_it_with_an_error() {
        let events: AgentStream = futures::stream::iter(vec![Ok(AgentEvent::Delta("a".into()))])
            .chain(futures::stream::poll_fn(
                |_| -> std::task::Poll<Option<_>> { panic!("byte index 4 is not a char boundary") },
            ))
            .boxed();
        let items: Vec<_> = contain_panics(events).collect().await;
        assert_eq!(items.len(), 2);
        assert!(matches!(items[0], Ok(AgentEvent::Delta(_))));
        match &items[1] {
            Err(e @ AgentError::Panicked(m)) => {
                assert!(m.contains("char boundary"));
                assert_eq!(e.code(), "internal");
            }
            other => panic!("expected a contained panic, got {other:?}"),
        }
    }
}
