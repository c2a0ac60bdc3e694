//! `/v1/conversations`: conversations as trees of messages, stored in the app database.
//!
//! Asking, regenerating and editing a question stream Server-Sent Events with named events:
//! `user` (the stored question, when one was added), `retrieved` (the numbered posts the answer
//! may cite), `delta` (answer text), then `done` (the stored answer with its citations, `as_of`,
//! follow-up questions and version position) or `error` (the failure, also stored as an answer
//! with status `error`, so it can be regenerated). With `"stream": false` the same calls answer
//! with one JSON object once the answer is stored.
//!
//! A generation runs in its own task and is stored even when the client goes away. One
//! generation per conversation at a time (`409 conversation_busy`); different conversations
//! generate concurrently and share the model's queue in arrival order.

use crate::routes::chat::{agent_error, check_persona, extensions, invalid, SearchBody};
use crate::routes::search::PostDto;
use crate::routes::{json_body, store_error};
use crate::store::{Conversation, ConversationPatch, NewMessage, Store, StoredMessage};
use crate::ErrorCode;
use crate::{ApiError, AppState};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::{FutureExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use tidings_agent::conversation::{Node, Tree};
use tidings_agent::{post_url, Agent, AgentEvent, AskRequest, Role};
use tidings_index::Post;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

const MAX_CONTENT_CHARS: usize = 8_000;
const MAX_TITLE_CHARS: usize = 200;

/// Conversations with a generation in flight.
#[derive(Clone, Default)]
pub(crate) struct Generating(Arc<Mutex<HashSet<String>>>);

/// Held while a conversation generates; frees the conversation when dropped.
struct GeneratingGuard {
    set: Generating,
    id: String,
}

impl Generating {
    fn claim(&self, id: &str) -> Result<GeneratingGuard, ApiError> {
        let mut set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !set.insert(id.to_string()) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::ConversationBusy,
                "this conversation is already answering; wait for that answer to finish",
            )
            .with_retry_after(2));
        }
        Ok(GeneratingGuard {
            set: self.clone(),
            id: id.to_string(),
        })
    }
}

impl Drop for GeneratingGuard {
    fn drop(&mut self) {
        let mut set = self.set.0.lock().unwrap_or_else(|e| e.into_inner());
        set.remove(&self.id);
    }
}

fn agent(state: &AppState) -> Result<Agent, ApiError> {
    state.agent.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ModelUnavailable,
            "no chat model is configured on this server",
        )
    })
}

fn check_content(field: &str, text: &str) -> Result<(), ApiError> {
    if text.trim().is_empty() {
        return Err(invalid(format!("`{field}` is empty")));
    }
    if text.chars().count() > MAX_CONTENT_CHARS {
        return Err(ApiError::bad_request(
            ErrorCode::MessageTooLong,
            format!("`{field}` is longer than {MAX_CONTENT_CHARS} characters"),
        ));
    }
    Ok(())
}

/// Settings a conversation stores: its search (a JSON object of [`SearchBody`] fields).
fn check_search(settings: &Value) -> Result<(), ApiError> {
    let body: SearchBody =
        serde_json::from_value(settings.clone()).map_err(|e| invalid(format!("search: {e}")))?;
    body.options().map(|_| ())
}

/// The conversation's search settings with `overrides` laid over them, field by field.
fn merged_search(conversation: &Value, overrides: Option<&Value>) -> Result<SearchBody, ApiError> {
    let mut merged: Map<String, Value> = conversation.as_object().cloned().unwrap_or_default();
    if let Some(Value::Object(o)) = overrides {
        for (k, v) in o {
            if v.is_null() {
                merged.remove(k);
            } else {
                merged.insert(k.clone(), v.clone());
            }
        }
    }
    serde_json::from_value(Value::Object(merged)).map_err(|e| invalid(format!("search: {e}")))
}

fn conversation_json(c: &Conversation) -> Value {
    json!({
        "id": c.id,
        "object": "conversation",
        "title": c.title,
        "persona": c.persona,
        "search": c.settings,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
    })
}

fn tree_of(conversation: &Conversation, messages: &[StoredMessage]) -> Tree {
    Tree::new(
        messages
            .iter()
            .map(|m| Node {
                id: m.id.clone(),
                parent: m.parent_id.clone(),
                role: if m.role == "user" {
                    Role::User
                } else {
                    Role::Assistant
                },
                content: m.content.clone(),
                active_child: m.active_child.clone(),
                seq: m.seq,
            })
            .collect(),
        conversation.active_root.clone(),
    )
}

/// A message as the API shows it: its place in the tree, and for answers the checked
/// citations, `as_of`, the window and follow-up questions.
fn message_json(m: &StoredMessage, tree: &Tree) -> Value {
    let versions = tree.versions(&m.id);
    let mut out = json!({
        "id": m.id,
        "object": "conversation.message",
        "conversation_id": m.conversation_id,
        "parent_id": m.parent_id,
        "role": m.role,
        "content": m.content,
        "origin": m.origin,
        "edited_from": m.edited_from,
        "status": m.status,
        "created_at": m.created_at,
        "children": tree.children(Some(&m.id)),
        "active_child": tree.active_child(Some(&m.id)),
        "version": versions.map(|v| json!({"index": v.index, "count": v.count, "siblings": v.siblings})),
    });
    if let (Value::Object(o), Value::Object(meta)) = (&mut out, &m.meta) {
        for (k, v) in meta {
            if k != "posts" {
                o.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

fn tree_json(c: &Conversation, messages: &[StoredMessage]) -> Value {
    let tree = tree_of(c, messages);
    let mut out = conversation_json(c);
    out["messages"] = Value::Array(messages.iter().map(|m| message_json(m, &tree)).collect());
    out["active_path"] = json!(tree.active_path());
    out
}

async fn load(store: &Store, id: &str) -> Result<(Conversation, Vec<StoredMessage>), ApiError> {
    let c = store
        .conversation_by_id(id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("conversation {id} does not exist")))?;
    let messages = store.messages(id).await.map_err(store_error)?;
    Ok((c, messages))
}

fn find<'a>(messages: &'a [StoredMessage], id: &str) -> Result<&'a StoredMessage, ApiError> {
    messages
        .iter()
        .find(|m| m.id == id)
        .ok_or_else(|| ApiError::not_found(format!("message {id} is not in this conversation")))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateBody {
    title: Option<String>,
    persona: Option<String>,
    search: Option<Value>,
}

/// `POST /v1/conversations`.
pub(crate) async fn create(
    State(state): State<AppState>,
    body: Result<Json<CreateBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let store = store(&state)?;
    let body = json_body(body)?;
    let title = body.title.unwrap_or_default();
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(invalid(format!(
            "`title` is longer than {MAX_TITLE_CHARS} characters"
        )));
    }
    if let Some(p) = &body.persona {
        check_persona(&agent(&state)?, p)?;
    }
    let search = body.search.unwrap_or_else(|| json!({}));
    check_search(&search)?;
    let c = store
        .create_conversation(title.trim(), body.persona.as_deref(), &search)
        .await
        .map_err(store_error)?;
    Ok((StatusCode::CREATED, Json(tree_json(&c, &[]))).into_response())
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    limit: Option<i64>,
    offset: Option<i64>,
}

/// `GET /v1/conversations`: most recently active first.
pub(crate) async fn list(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let store = store(&state)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(invalid("limit must be between 1 and 200"));
    }
    let offset = q.offset.unwrap_or(0).max(0);
    let list = store
        .list_conversations(limit, offset)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({
        "object": "list",
        "data": list.iter().map(conversation_json).collect::<Vec<_>>(),
    })))
}

/// `GET /v1/conversations/{id}`: the conversation with every message and the active path.
pub(crate) async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (c, messages) = load(store(&state)?, &id).await?;
    Ok(Json(tree_json(&c, &messages)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchBody {
    title: Option<String>,
    /// `null` clears the persona.
    #[serde(default, deserialize_with = "present")]
    persona: Option<Option<String>>,
    search: Option<Value>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// `PATCH /v1/conversations/{id}`: title, persona, search settings; later answers use them.
pub(crate) async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<PatchBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let store = store(&state)?;
    let body = json_body(body)?;
    if body
        .title
        .as_ref()
        .is_some_and(|t| t.chars().count() > MAX_TITLE_CHARS)
    {
        return Err(invalid(format!(
            "`title` is longer than {MAX_TITLE_CHARS} characters"
        )));
    }
    if let Some(Some(p)) = &body.persona {
        check_persona(&agent(&state)?, p)?;
    }
    if let Some(s) = &body.search {
        check_search(s)?;
    }
    store
        .update_conversation(
            &id,
            ConversationPatch {
                title: body.title.map(|t| t.trim().to_string()),
                persona: body.persona,
                settings: body.search,
            },
        )
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("conversation {id} does not exist")))?;
    let (c, messages) = load(store, &id).await?;
    Ok(Json(tree_json(&c, &messages)))
}

/// `DELETE /v1/conversations/{id}`.
pub(crate) async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let store = store(&state)?;
    if !store.delete_conversation(&id).await.map_err(store_error)? {
        return Err(ApiError::not_found(format!(
            "conversation {id} does not exist"
        )));
    }
    Ok(Json(
        json!({"id": id, "object": "conversation", "deleted": true}),
    ))
}

/// Options of a generation, shared by ask, regenerate and edit.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GenerateBody {
    /// The question (ask) or the new text (edit).
    content: Option<String>,
    /// Ask: the answer this question follows (default: the end of the active path).
    parent_id: Option<String>,
    /// This answer only; the conversation's persona otherwise.
    persona: Option<String>,
    /// This answer only, laid over the conversation's search settings.
    search: Option<Value>,
    /// Default true: Server-Sent Events.
    stream: Option<bool>,
    /// Edit of a question: answer the edited question (default true).
    answer: Option<bool>,
    max_tokens: Option<u32>,
}

/// `POST /v1/conversations/{id}/messages`: asks a question.
pub(crate) async fn ask(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<GenerateBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let store = store(&state)?.clone();
    let agent = agent(&state)?;
    let body = json_body(body)?;
    let content = body.content.clone().unwrap_or_default();
    check_content("content", &content)?;
    let (c, messages) = load(&store, &id).await?;
    let tree = tree_of(&c, &messages);
    let parent = match &body.parent_id {
        Some(p) => Some(p.clone()),
        None => tree.active_leaf().map(|n| n.id.clone()),
    };
    tree.can_ask_under(parent.as_deref())
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidParent, e))?;
    let plan = Generation::prepare(&agent, &c, &body)?;
    let guard = state.generating.claim(&id)?;
    if c.title.is_empty() {
        let title = tidings_index::script::shorten(content.trim(), 80).into_owned();
        let _ = store
            .update_conversation(
                &id,
                ConversationPatch {
                    title: Some(title),
                    ..Default::default()
                },
            )
            .await;
    }
    let user = store
        .insert_message(NewMessage {
            conversation_id: &id,
            parent_id: parent.as_deref(),
            role: "user",
            content: content.trim(),
            origin: "asked",
            edited_from: None,
            status: "complete",
            meta: &json!({}),
        })
        .await
        .map_err(store_error)?;
    plan.run(&state.tasks, store, agent, guard, user, true, "generated")
        .await
}

/// `POST /v1/conversations/{id}/messages/{message_id}/regenerate`: a new version of an answer
/// (or an answer for a question whose answer failed).
pub(crate) async fn regenerate(
    State(state): State<AppState>,
    Path((id, message_id)): Path<(String, String)>,
    body: Result<Json<GenerateBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let store = store(&state)?.clone();
    let agent = agent(&state)?;
    let body = json_body(body)?;
    if body.content.is_some() || body.parent_id.is_some() {
        return Err(invalid(
            "regenerate takes no `content` or `parent_id`; use edit to change a message",
        ));
    }
    let (c, messages) = load(&store, &id).await?;
    let target = find(&messages, &message_id)?;
    let question = if target.role == "assistant" {
        let parent = target.parent_id.as_deref().ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::CorruptTree,
                "this answer has no question",
            )
        })?;
        find(&messages, parent)?.clone()
    } else {
        target.clone()
    };
    let plan = Generation::prepare(&agent, &c, &body)?;
    let guard = state.generating.claim(&id)?;
    plan.run(
        &state.tasks,
        store,
        agent,
        guard,
        question,
        false,
        "regenerated",
    )
    .await
}

/// `POST /v1/conversations/{id}/messages/{message_id}/edit`: adds an edited version beside the
/// message (the original is kept). An edited question is answered (unless `answer: false`);
/// an edited answer becomes the active version and the next question continues from its text.
pub(crate) async fn edit(
    State(state): State<AppState>,
    Path((id, message_id)): Path<(String, String)>,
    body: Result<Json<GenerateBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let store = store(&state)?.clone();
    let body = json_body(body)?;
    let content = body.content.clone().unwrap_or_default();
    check_content("content", &content)?;
    if body.parent_id.is_some() {
        return Err(invalid(
            "edit takes no `parent_id`: the edit sits beside the message",
        ));
    }
    let (c, messages) = load(&store, &id).await?;
    let original = find(&messages, &message_id)?.clone();
    if original.role == "assistant" {
        if body.persona.is_some() || body.search.is_some() || body.answer.is_some() {
            return Err(invalid(
                "an edited answer is not regenerated: send only `content`",
            ));
        }
        // Keep the original's citations and context: the edited text may still cite [n].
        let mut meta = original.meta.clone();
        if let Value::Object(m) = &mut meta {
            m.remove("error");
        }
        let edited = store
            .insert_message(NewMessage {
                conversation_id: &id,
                parent_id: original.parent_id.as_deref(),
                role: "assistant",
                content: &content,
                origin: "edited",
                edited_from: Some(&original.id),
                status: "complete",
                meta: &meta,
            })
            .await
            .map_err(store_error)?;
        let (c, messages) = load(&store, &id).await?;
        let tree = tree_of(&c, &messages);
        return Ok((
            StatusCode::CREATED,
            Json(json!({"message": message_json(&edited, &tree)})),
        )
            .into_response());
    }
    let answer = body.answer.unwrap_or(true);
    let agent = if answer { Some(agent(&state)?) } else { None };
    let plan = match &agent {
        Some(a) => Some(Generation::prepare(a, &c, &body)?),
        None => None,
    };
    let guard = match &agent {
        Some(_) => Some(state.generating.claim(&id)?),
        None => None,
    };
    let user = store
        .insert_message(NewMessage {
            conversation_id: &id,
            parent_id: original.parent_id.as_deref(),
            role: "user",
            content: content.trim(),
            origin: "edited",
            edited_from: Some(&original.id),
            status: "complete",
            meta: &json!({}),
        })
        .await
        .map_err(store_error)?;
    match (plan, agent, guard) {
        (Some(plan), Some(agent), Some(guard)) => {
            plan.run(&state.tasks, store, agent, guard, user, true, "generated")
                .await
        }
        _ => {
            let (c, messages) = load(&store, &id).await?;
            let tree = tree_of(&c, &messages);
            Ok((
                StatusCode::CREATED,
                Json(json!({"message": message_json(&user, &tree)})),
            )
                .into_response())
        }
    }
}

/// `POST /v1/conversations/{id}/messages/{message_id}/activate`: makes this version the
/// active one; the conversation continues below it.
pub(crate) async fn activate(
    State(state): State<AppState>,
    Path((id, message_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let store = store(&state)?;
    let (_, messages) = load(store, &id).await?;
    let m = find(&messages, &message_id)?;
    store
        .activate(&id, m.parent_id.as_deref(), &m.id)
        .await
        .map_err(store_error)?;
    let (c, messages) = load(store, &id).await?;
    Ok(Json(tree_json(&c, &messages)))
}

/// A validated generation, ready to run once the question is stored.
struct Generation {
    persona: Option<String>,
    search: SearchBody,
    max_tokens: Option<u32>,
    stream: bool,
}

impl Generation {
    fn prepare(
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
    async fn run(
        self,
        tasks: &TaskTracker,
        store: Store,
        agent: Agent,
        guard: GeneratingGuard,
        question: StoredMessage,
        announce_question: bool,
        origin: &'static str,
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
                        if let Ok(post) = serde_json::from_value::<Post>(p.clone()) {
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
async fn answer_task(
    store: Store,
    agent: Agent,
    request: AskRequest,
    question: StoredMessage,
    origin: &'static str,
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
                        let mut meta = extensions(&answer);
                        meta["posts"] = json!(answer
                            .citations
                            .iter()
                            .map(|c| c.post.clone())
                            .collect::<Vec<_>>());
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
                                role: "assistant",
                                content: &answer.text,
                                origin,
                                edited_from: None,
                                status: "complete",
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
            role: "assistant",
            content: &text,
            origin,
            edited_from: None,
            status: "error",
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

/// The message JSON with its version position, read back with the conversation's tree.
async fn with_tree(store: &Store, m: &StoredMessage) -> Value {
    match load(store, &m.conversation_id).await {
        Ok((c, messages)) => message_json(m, &tree_of(&c, &messages)),
        Err(_) => message_json(m, &Tree::default()),
    }
}

fn sse(rx: mpsc::Receiver<(&'static str, Value)>) -> Response {
    let events = tokio_stream_from(rx).map(|(kind, value)| {
        Ok::<Event, std::convert::Infallible>(Event::default().event(kind).data(value.to_string()))
    });
    crate::routes::sse_response(events)
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    async_stream::stream! {
        while let Some(item) = rx.recv().await {
            yield item;
        }
    }
}

fn store(state: &AppState) -> Result<&Store, ApiError> {
    crate::routes::app_store(state, "conversations")
}
