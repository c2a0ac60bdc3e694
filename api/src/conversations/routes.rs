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

use super::generation::{agent, Generation};
use super::types::{
    search_record, CreateBody, GenerateBody, ListQuery, Op, PatchBody, MAX_TITLE_CHARS,
};
use super::views::{
    conversation_json, find, load, message_json, store, tree_json, tree_of, ConversationView,
    Generated,
};
use crate::answer::check_persona;
use crate::error::ErrorBody;
use crate::invalid;
use crate::routes::{json_body, store_error, Deleted, List};
use crate::store::{ConversationPatch, MessageStatus, NewMessage, Origin, Role};
use crate::{ApiError, AppState, ErrorCode};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// `POST /v1/conversations`.
#[utoipa::path(post, path = "/v1/conversations", tag = "conversations",
    summary = "Create a conversation with a persona and search settings",
    request_body = CreateBody,
    responses((status = 201, description = "The new conversation", body = ConversationView)))]
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
    let search = search_record(&body.search.unwrap_or_else(|| json!({})))?;
    let c = store
        .create_conversation(title.trim(), body.persona.as_deref(), &search)
        .await
        .map_err(store_error)?;
    Ok((StatusCode::CREATED, Json(tree_json(&c, &[]))).into_response())
}

/// `GET /v1/conversations`: most recently active first.
#[utoipa::path(get, path = "/v1/conversations", tag = "conversations",
    summary = "Conversations, most recently active first", params(ListQuery),
    responses((status = 200, description = "Conversations without their messages", body = List<ConversationView>)))]
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
#[utoipa::path(get, path = "/v1/conversations/{id}", tag = "conversations",
    summary = "The conversation: every message (a tree) and the active path",
    params(("id" = String, Path)),
    responses((status = 200, description = "The conversation", body = ConversationView)))]
pub(crate) async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (c, messages) = load(store(&state)?, &id).await?;
    Ok(Json(tree_json(&c, &messages)))
}

/// `PATCH /v1/conversations/{id}`: title, persona, search settings; later answers use them.
#[utoipa::path(patch, path = "/v1/conversations/{id}", tag = "conversations",
    summary = "Change title, persona (null clears) or search settings; later answers use them",
    params(("id" = String, Path)), request_body = PatchBody,
    responses((status = 200, description = "The conversation", body = ConversationView)))]
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
    let settings = body.search.as_ref().map(search_record).transpose()?;
    store
        .update_conversation(
            &id,
            ConversationPatch {
                title: body.title.map(|t| t.trim().to_string()),
                persona: body.persona,
                settings,
            },
        )
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("conversation {id} does not exist")))?;
    let (c, messages) = load(store, &id).await?;
    Ok(Json(tree_json(&c, &messages)))
}

/// `DELETE /v1/conversations/{id}`.
#[utoipa::path(delete, path = "/v1/conversations/{id}", tag = "conversations",
    summary = "Delete a conversation and its messages", params(("id" = String, Path)),
    responses((status = 200, description = "Deleted", body = Deleted)))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Deleted>, ApiError> {
    let store = store(&state)?;
    if !store.delete_conversation(&id).await.map_err(store_error)? {
        return Err(ApiError::not_found(format!(
            "conversation {id} does not exist"
        )));
    }
    Ok(Json(Deleted::new(id, Some("conversation"))))
}

/// `POST /v1/conversations/{id}/messages`: asks a question.
#[utoipa::path(post, path = "/v1/conversations/{id}/messages", tag = "conversations",
    summary = "Ask: stores the question under `parent_id` (default: the end of the active path) and streams the answer",
    params(("id" = String, Path)), request_body = GenerateBody,
    responses(
        (status = 200, description = "Server-Sent Events: `user` (the stored question, when one was added), `retrieved` (numbered posts), `delta` ({content}), then `done` (the stored answer: citations in `search_results`, `as_of`, `related_questions`, `version`) or `error` ({error, message: the stored failed answer}). With `stream: false`, one JSON object once the answer is stored.",
            content((String = "text/event-stream"), (Generated = "application/json"))),
        (status = 409, description = "This conversation is already answering (`conversation_busy`, with `Retry-After`)", body = ErrorBody),
    ))]
pub(crate) async fn ask(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<GenerateBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let store = store(&state)?.clone();
    let agent = agent(&state)?;
    let body = json_body(body)?;
    let content = body.check(Op::Ask)?.unwrap_or_default();
    let (c, messages) = load(&store, &id).await?;
    let tree = tree_of(&c, &messages);
    let parent = match &body.parent_id {
        Some(p) => Some(p.clone()),
        None => tree.active_leaf().map(|n| n.id.clone()),
    };
    tree.can_ask_under(parent.as_deref())
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidParent, e))?;
    let plan = Generation::prepare(&agent, &c, &body)?;
    let guard = state.generating.claim(&state, &id).await?;
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
            role: Role::User,
            content: content.trim(),
            origin: Origin::Asked,
            edited_from: None,
            status: MessageStatus::Complete,
            meta: &json!({}),
        })
        .await
        .map_err(store_error)?;
    plan.run(
        &state.tasks,
        store,
        agent,
        guard,
        user,
        true,
        Origin::Generated,
    )
    .await
}

/// `POST /v1/conversations/{id}/messages/{message_id}/regenerate`: a new version of an answer
/// (or an answer for a question whose answer failed).
#[utoipa::path(post, path = "/v1/conversations/{id}/messages/{message_id}/regenerate", tag = "conversations",
    summary = "A new version of an answer (or an answer for a question whose answer failed)",
    params(("id" = String, Path), ("message_id" = String, Path)), request_body = GenerateBody,
    responses(
        (status = 200, description = "Server-Sent Events: `user` (the stored question, when one was added), `retrieved` (numbered posts), `delta` ({content}), then `done` (the stored answer: citations in `search_results`, `as_of`, `related_questions`, `version`) or `error` ({error, message: the stored failed answer}). With `stream: false`, one JSON object once the answer is stored.",
            content((String = "text/event-stream"), (Generated = "application/json"))),
        (status = 409, description = "This conversation is already answering (`conversation_busy`, with `Retry-After`)", body = ErrorBody),
    ))]
pub(crate) async fn regenerate(
    State(state): State<AppState>,
    Path((id, message_id)): Path<(String, String)>,
    body: Result<Json<GenerateBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let store = store(&state)?.clone();
    let agent = agent(&state)?;
    let body = json_body(body)?;
    body.check(Op::Regenerate)?;
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
    let guard = state.generating.claim(&state, &id).await?;
    plan.run(
        &state.tasks,
        store,
        agent,
        guard,
        question,
        false,
        Origin::Regenerated,
    )
    .await
}

/// `POST /v1/conversations/{id}/messages/{message_id}/edit`: adds an edited version beside the
/// message (the original is kept). An edited question is answered (unless `answer: false`);
/// an edited answer becomes the active version and the next question continues from its text.
#[utoipa::path(post, path = "/v1/conversations/{id}/messages/{message_id}/edit", tag = "conversations",
    summary = "An edited version beside the message (the original is kept)",
    description = "An edited question is answered (streamed, unless `answer: false`, which answers 201 with the message); an edited answer becomes active and the conversation continues from its text (201 with the message).",
    params(("id" = String, Path), ("message_id" = String, Path)), request_body = GenerateBody,
    responses(
        (status = 200, description = "The edited question's answer, as for ask",
            content((String = "text/event-stream"), (Generated = "application/json"))),
        (status = 201, description = "The edited message, not answered", body = Generated),
        (status = 409, description = "This conversation is already answering (`conversation_busy`, with `Retry-After`)", body = ErrorBody),
    ))]
pub(crate) async fn edit(
    State(state): State<AppState>,
    Path((id, message_id)): Path<(String, String)>,
    body: Result<Json<GenerateBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let store = store(&state)?.clone();
    let body = json_body(body)?;
    let content = body.check(Op::Edit)?.unwrap_or_default();
    let (c, messages) = load(&store, &id).await?;
    let original = find(&messages, &message_id)?.clone();
    if original.role == "assistant" {
        body.check_answer_edit()?;
        // Keep the original's citations and context: the edited text may still cite [n].
        let mut meta = original.meta.clone();
        if let Value::Object(m) = &mut meta {
            m.remove("error");
        }
        let edited = store
            .insert_message(NewMessage {
                conversation_id: &id,
                parent_id: original.parent_id.as_deref(),
                role: Role::Assistant,
                content: &content,
                origin: Origin::Edited,
                edited_from: Some(&original.id),
                status: MessageStatus::Complete,
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
        Some(_) => Some(state.generating.claim(&state, &id).await?),
        None => None,
    };
    let user = store
        .insert_message(NewMessage {
            conversation_id: &id,
            parent_id: original.parent_id.as_deref(),
            role: Role::User,
            content: content.trim(),
            origin: Origin::Edited,
            edited_from: Some(&original.id),
            status: MessageStatus::Complete,
            // Marks a question left unanswered on purpose, so recovery does not take it for
            // one whose generation died.
            meta: &if agent.is_some() {
                json!({})
            } else {
                crate::store::UNANSWERED_ON_PURPOSE.clone()
            },
        })
        .await
        .map_err(store_error)?;
    match (plan, agent, guard) {
        (Some(plan), Some(agent), Some(guard)) => {
            plan.run(
                &state.tasks,
                store,
                agent,
                guard,
                user,
                true,
                Origin::Generated,
            )
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
#[utoipa::path(post, path = "/v1/conversations/{id}/messages/{message_id}/activate", tag = "conversations",
    summary = "Make this version active; the active path continues below it",
    params(("id" = String, Path), ("message_id" = String, Path)),
    responses((status = 200, description = "The conversation", body = ConversationView)))]
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
