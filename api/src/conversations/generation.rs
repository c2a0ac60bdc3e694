//! The generation of an answer: one per conversation at a time, in a task of its own that
//! stores the answer (or its failure) even when the client went away; its events as SSE.

use super::types::{merged_search, GenerateBody};
use super::views::{load, message_json, tree_of, with_tree};
use crate::answer::{agent_error, check_persona, extensions, SearchBody};
use crate::invalid;
use crate::lease::Lease;
use crate::routes::search::PostDto;
use crate::routes::store_error;
use crate::store::{Conversation, MessageStatus, NewMessage, Origin, Role, Store, StoredMessage};
use crate::{ApiError, AppState, ErrorCode};
use axum::http::StatusCode;
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::{FutureExt, StreamExt};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use tidings_agent::{post_url, Agent, AgentEvent, AskRequest};
use tidings_index::Post;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

/// Conversations with a generation in flight in this process. Across replicas sharing the
/// database, a lease (`conversation:<id>`) says which one is generating.
#[derive(Clone, Default)]
pub(crate) struct Generating(Arc<Mutex<HashSet<String>>>);

/// Held while a conversation generates; frees the conversation (and its lease) when dropped.
pub(super) struct GeneratingGuard {
    set: Generating,
    id: String,
    _lease: Option<Lease>,
}

fn busy(elsewhere: bool) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        ErrorCode::ConversationBusy,
        if elsewhere {
            "this conversation is already answering on another replica; wait for that answer to finish"
        } else {
            "this conversation is already answering; wait for that answer to finish"
        },
    )
    .with_retry_after(2)
}

impl Generating {
    /// Claims the conversation in this process, then its lease in the database (when there is
    /// one), so that one generation runs per conversation across every replica.
    pub(super) async fn claim(
        &self,
        state: &AppState,
        id: &str,
    ) -> Result<GeneratingGuard, ApiError> {
        {
            let mut set = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if !set.insert(id.to_string()) {
                return Err(busy(false));
            }
        }
        let mut guard = GeneratingGuard {
            set: self.clone(),
            id: id.to_string(),
            _lease: None,
        };
        if let Some(store) = &state.store {
            match Lease::acquire(store, &state.replica, format!("conversation:{id}")).await {
                Ok(Some(lease)) => guard._lease = Some(lease),
                Ok(None) => return Err(busy(true)),
                Err(e) => return Err(store_error(e)),
            }
        }
        Ok(guard)
    }
}

impl Drop for GeneratingGuard {
    fn drop(&mut self) {
        let mut set = self.set.0.lock().unwrap_or_else(|e| e.into_inner());
        set.remove(&self.id);
    }
}

pub(super) fn agent(state: &AppState) -> Result<Agent, ApiError> {
    state.agent.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ModelUnavailable,
            "no chat model is configured on this server",
        )
    })
}

/// A validated generation, ready to run once the question is stored.
pub(super) struct Generation {
    persona: Option<String>,
    search: SearchBody,
    max_tokens: Option<u32>,
    stream: bool,
}

impl Generation {
    pub(super) fn prepare(
        agent: &Agent,
        c: &Conversation,
        body: &GenerateBody,
    ) -> Result<Generation, ApiError> {
        let persona = body.persona.clone().or_else(|| c.persona.clone());
        if let Some(p) = &persona {
            check_persona(agent, p)?;
        }
        let search = merged_search(&c.settings, body.search.as_ref())?;
        // Validate now, so a bad override fails before anything is stored.
        search.clone().options()?;
        if body.max_tokens.is_some_and(|t| !(16..=4096).contains(&t)) {
            return Err(invalid("max_tokens must be between 16 and 4096"));
        }
        Ok(Generation {
            persona,
            search,
            max_tokens: body.max_tokens,
            stream: body.stream.unwrap_or(true),
        })
    }

    /// Answers `question` (already stored) in a task of its own and streams or returns the
    /// stored answer.
    pub(super) async fn run(
        self,
        tasks: &TaskTracker,
        store: Store,
        agent: Agent,
        guard: GeneratingGuard,
        question: StoredMessage,
        announce_question: bool,
        origin: Origin,
    ) -> Result<Response, ApiError> {
        let (c, messages) = load(&store, &question.conversation_id).await?;
        let tree = tree_of(&c, &messages);
        let history = tree.history_until(question.parent_id.as_deref());
        // Posts cited along the way, newest answer first, for follow-ups about the same story.
        let mut earlier: Vec<Post> = Vec::new();
        for id in tree.lineage(&question.id).iter().rev() {
            if let Some(m) = messages.iter().find(|m| &m.id == id) {
                if let Some(Value::Array(posts)) = m.meta.get("posts") {
                    for p in posts {
                        if let Ok(post) = tidings_index::stored::from_value(p.clone()) {
                            if !earlier.iter().any(|e| e.id == post.id) {
                                earlier.push(post);
                            }
                        }
                    }
                }
            }
        }
        let (options, as_of) = self.search.clone().options()?;
        let request = AskRequest {
            question: question.content.clone(),
            history,
            as_of,
            search: options,
            persona: self.persona.clone(),
            max_tokens: self.max_tokens,
            earlier_posts: earlier,
            ..AskRequest::default()
        };
        let (tx, rx) = mpsc::channel::<(&'static str, Value)>(256);
        if announce_question {
            let _ = tx.try_send(("user", message_json(&question, &tree)));
        }
        let conversation_id = question.conversation_id.clone();
        // Tracked: shutdown waits (up to its grace) for answers being written.
        let task = tasks.spawn(async move {
            let _guard = guard;
            answer_task(store, agent, request, question, origin, tx).await
        });
        if self.stream {
            return Ok(sse(rx));
        }
        let mut rx = rx;
        let mut user = None;
        let mut last = None;
        while let Some((kind, value)) = rx.recv().await {
            match kind {
                "user" => user = Some(value),
                "done" | "error" => last = Some((kind, value)),
                _ => {}
            }
        }
        let _ = task.await;
        match last {
            Some(("done", message)) => {
                Ok(Json(json!({"user_message": user, "message": message})).into_response())
            }
            Some((_, failure)) => {
                let status = failure["status"].as_u64().unwrap_or(502) as u16;
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
                Ok((
                    status,
                    Json(json!({
                        "error": failure["error"],
                        "user_message": user,
                        "message": failure["message"],
                    })),
                )
                    .into_response())
            }
            None => Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                format!("the answer for conversation {conversation_id} ended without a result"),
            )),
        }
    }
}

/// Runs the agent, forwards its events, and stores the answer (or the failure).
pub(super) async fn answer_task(
    store: Store,
    agent: Agent,
    request: AskRequest,
    question: StoredMessage,
    origin: Origin,
    tx: mpsc::Sender<(&'static str, Value)>,
) {
    // A client that went away must not stop the answer from being stored.
    let send = |kind: &'static str, value: Value| {
        let tx = tx.clone();
        async move {
            let _ = tx.send((kind, value)).await;
        }
    };
    let mut text = String::new();
    let mut retrieved_meta = json!({});
    // The agent contains its own panics; this catches any in the code below (storing, JSON),
    // so that whatever happens the question gets an answer: the real one or a stored error.
    let generation = AssertUnwindSafe(async {
        match agent.ask(request).await {
        Err(e) => Some(agent_error(e)),
        Ok(mut events) => {
            let mut failure = None;
            while let Some(event) = events.next().await {
                match event {
                    Ok(AgentEvent::Retrieved(r)) => {
                        let posts: Vec<Value> = r
                            .posts
                            .iter()
                            .enumerate()
                            .map(|(i, h)| {
                                let mut v = serde_json::to_value(PostDto::from(&h.post))
                                    .unwrap_or(Value::Null);
                                v["number"] = json!(i + 1);
                                v["url"] = json!(post_url(&h.post));
                                v
                            })
                            .collect();
                        retrieved_meta = json!({
                            "window": {"from": r.window.from, "to": r.window.to, "label": r.window.label},
                        });
                        send(
                            "retrieved",
                            json!({"posts": posts, "window": retrieved_meta["window"], "searched": r.searched}),
                        )
                        .await;
                    }
                    Ok(AgentEvent::Delta(d)) => {
                        text.push_str(&d);
                        send("delta", json!({"content": d})).await;
                    }
                    Ok(AgentEvent::Done(answer)) => {
                        let mut meta = serde_json::to_value(extensions(&answer))
                            .unwrap_or_else(|_| json!({}));
                        meta["posts"] = answer
                            .citations
                            .iter()
                            .map(|c| tidings_index::stored::to_value(&c.post))
                            .collect();
                        meta["as_of"] = json!(answer.as_of);
                        meta["usage"] = json!({
                            "prompt_tokens": answer.usage.prompt_tokens,
                            "completion_tokens": answer.usage.completion_tokens,
                        });
                        meta["finish_reason"] = json!(answer.finish_reason.as_str());
                        let stored = store
                            .insert_message(NewMessage {
                                conversation_id: &question.conversation_id,
                                parent_id: Some(&question.id),
                                role: Role::Assistant,
                                content: &answer.text,
                                origin,
                                edited_from: None,
                                status: MessageStatus::Complete,
                                meta: &meta,
                            })
                            .await;
                        match stored {
                            Ok(m) => {
                                let value = with_tree(&store, &m).await;
                                send("done", value).await;
                            }
                            Err(e) => failure = Some(store_error(e)),
                        }
                        break;
                    }
                    Err(e) => {
                        failure = Some(agent_error(e));
                        break;
                    }
                }
            }
            failure
        }
        }
    })
    .catch_unwind()
    .await;
    let failure = generation.unwrap_or_else(|panic| {
        let message = tidings_agent::panic_message(panic.as_ref());
        tracing::error!(panic = %message, "a conversation answer panicked");
        Some(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "the answer failed inside the server (logged); regenerate to try again",
        ))
    });
    let Some(err) = failure else { return };
    let mut meta = retrieved_meta;
    meta["error"] = json!({"code": err.code, "message": err.message});
    let stored = store
        .insert_message(NewMessage {
            conversation_id: &question.conversation_id,
            parent_id: Some(&question.id),
            role: Role::Assistant,
            content: &text,
            origin,
            edited_from: None,
            status: MessageStatus::Error,
            meta: &meta,
        })
        .await;
    let message = match stored {
        Ok(m) => with_tree(&store, &m).await,
        Err(e) => {
            tracing::error!(error = %e, "could not store a failed answer");
            Value::Null
        }
    };
    send(
        "error",
        json!({
            "error": {"code": err.code, "message": err.message},
            "status": err.status.as_u16(),
            "message": message,
        }),
    )
    .await;
}

pub(super) fn sse(rx: mpsc::Receiver<(&'static str, Value)>) -> Response {
    let events = tokio_stream_from(rx).map(|(kind, value)| {
        Ok::<Event, std::convert::Infallible>(Event::default().event(kind).data(value.to_string()))
    });
    crate::routes::sse_response(events)
}

pub(super) fn tokio_stream_from<T: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    async_stream::stream! {
        while let Some(item) = rx.recv().await {
            yield item;
        }
    }
}
