//! Reading a conversation back (with its message tree) and its JSON views.

use crate::routes::store_error;
use crate::store::{self, Conversation, Store, StoredMessage};
use crate::{ApiError, AppState};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tidings_agent::conversation::{Node, Tree};
use tidings_agent::Role;

/// A conversation as the API shows it; with its messages (a tree) and active path when read
/// whole, without them in lists.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Conversation)]
pub(crate) struct ConversationView {
    id: String,
    /// `conversation`.
    object: &'static str,
    title: String,
    persona: Option<String>,
    /// The conversation's search settings, laid under each answer's own.
    #[schema(value_type = crate::answer::SearchBody)]
    search: Value,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// Every message, in the order they were written: follow `children` and `active_child`.
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<Vec<MessageView>>,
    /// The ids from the first question to the newest active message.
    #[serde(skip_serializing_if = "Option::is_none")]
    active_path: Option<Vec<String>>,
}

fn conversation_view(c: &Conversation) -> ConversationView {
    // Settings that do not read (logged by `search_view`) are shown as stored.
    let search = super::types::search_view(&c.settings).unwrap_or_else(|_| c.settings.clone());
    ConversationView {
        id: c.id.clone(),
        object: "conversation",
        title: c.title.clone(),
        persona: c.persona.clone(),
        search,
        created_at: c.created_at,
        updated_at: c.updated_at,
        messages: None,
        active_path: None,
    }
}

pub(super) fn conversation_json(c: &Conversation) -> Value {
    serde_json::to_value(conversation_view(c)).unwrap_or(Value::Null)
}

pub(super) fn tree_of(conversation: &Conversation, messages: &[StoredMessage]) -> Tree {
    Tree::new(
        messages
            .iter()
            .map(|m| Node {
                id: m.id.clone(),
                parent: m.parent_id.clone(),
                role: match m.role {
                    store::Role::User => Role::User,
                    store::Role::Assistant => Role::Assistant,
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
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Message)]
pub(crate) struct MessageView {
    id: String,
    /// `conversation.message`.
    object: &'static str,
    conversation_id: String,
    parent_id: Option<String>,
    /// `user` or `assistant`.
    role: store::Role,
    content: String,
    /// `asked`, `generated`, `regenerated` or `edited`.
    origin: store::Origin,
    /// The message this one is an edited version of.
    edited_from: Option<String>,
    /// `complete` or `error` (an answer that failed; regenerate it).
    status: store::MessageStatus,
    created_at: DateTime<Utc>,
    /// The versions of the next message.
    children: Vec<String>,
    /// The version of the next message on the active path.
    active_child: Option<String>,
    /// Where this message stands among its versions.
    version: Option<VersionView>,
    /// Answers: what was stored with them.
    #[serde(flatten)]
    #[schema(value_type = AnswerMeta)]
    meta: serde_json::Map<String, Value>,
}

/// Where a message stands among the versions beside it (regenerated answers, edits).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = MessageVersion)]
struct VersionView {
    /// 1-based.
    index: usize,
    count: usize,
    siblings: Vec<String>,
}

/// What an answer carries beside its text: the extensions of a chat answer, the `as_of` it
/// answered for, token usage and why it finished. An answer that failed (status `error`)
/// carries `error` and the window it searched instead.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[allow(dead_code)] // documents `MessageView::meta`, which is stored JSON
pub(crate) struct AnswerMeta {
    #[serde(flatten)]
    extensions: crate::answer::Extensions,
    as_of: Option<DateTime<Utc>>,
    usage: Option<StoredUsage>,
    /// `stop` or `length`.
    finish_reason: Option<String>,
    error: Option<crate::error::ErrorDetail>,
    /// A failed answer: the window it searched (`{from, to, label}`).
    #[schema(value_type = Option<Object>)]
    window: Option<Value>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
struct StoredUsage {
    prompt_tokens: u32,
    completion_tokens: u32,
}

/// A generation's result with `stream: false`: the stored question (when one was added) and
/// the stored answer; an edit that is not answered: the edited message.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)] // documents the JSON the generation routes build from stored messages
pub(crate) struct Generated {
    user_message: Option<MessageView>,
    message: MessageView,
    /// A failed answer (stored with status `error`): why.
    error: Option<crate::error::ErrorDetail>,
}

pub(super) fn message_view(m: &StoredMessage, tree: &Tree) -> MessageView {
    let meta = match &m.meta {
        Value::Object(meta) => meta
            .iter()
            .filter(|(k, _)| k.as_str() != "posts")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        _ => serde_json::Map::new(),
    };
    MessageView {
        id: m.id.clone(),
        object: "conversation.message",
        conversation_id: m.conversation_id.clone(),
        parent_id: m.parent_id.clone(),
        role: m.role,
        content: m.content.clone(),
        origin: m.origin,
        edited_from: m.edited_from.clone(),
        status: m.status,
        created_at: m.created_at,
        children: tree.children(Some(&m.id)).to_vec(),
        active_child: tree.active_child(Some(&m.id)).map(str::to_string),
        version: tree.versions(&m.id).map(|v| VersionView {
            index: v.index,
            count: v.count,
            siblings: v.siblings,
        }),
        meta,
    }
}

pub(super) fn message_json(m: &StoredMessage, tree: &Tree) -> Value {
    serde_json::to_value(message_view(m, tree)).unwrap_or(Value::Null)
}

pub(super) fn tree_json(c: &Conversation, messages: &[StoredMessage]) -> Value {
    let tree = tree_of(c, messages);
    let mut view = conversation_view(c);
    view.messages = Some(messages.iter().map(|m| message_view(m, &tree)).collect());
    view.active_path = Some(tree.active_path());
    serde_json::to_value(view).unwrap_or(Value::Null)
}

pub(super) async fn load(
    store: &Store,
    id: &str,
) -> Result<(Conversation, Vec<StoredMessage>), ApiError> {
    let c = store
        .conversation_by_id(id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("conversation {id} does not exist")))?;
    let messages = store.messages(id).await.map_err(store_error)?;
    Ok((c, messages))
}

pub(super) fn find<'a>(
    messages: &'a [StoredMessage],
    id: &str,
) -> Result<&'a StoredMessage, ApiError> {
    messages
        .iter()
        .find(|m| m.id == id)
        .ok_or_else(|| ApiError::not_found(format!("message {id} is not in this conversation")))
}

/// The message JSON with its version position, read back with the conversation's tree.
pub(super) async fn with_tree(store: &Store, m: &StoredMessage) -> Value {
    match load(store, &m.conversation_id).await {
        Ok((c, messages)) => message_json(m, &tree_of(&c, &messages)),
        Err(_) => message_json(m, &Tree::default()),
    }
}

pub(super) fn store(state: &AppState) -> Result<&Store, ApiError> {
    crate::routes::app_store(state, "conversations")
}
