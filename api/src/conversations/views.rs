//! Reading a conversation back (with its message tree) and its JSON views.

use crate::routes::store_error;
use crate::store::{self, Conversation, Store, StoredMessage};
use crate::{ApiError, AppState};
use serde_json::{json, Value};
use tidings_agent::conversation::{Node, Tree};
use tidings_agent::Role;

pub(super) fn conversation_json(c: &Conversation) -> Value {
    // Settings that do not read (logged by `search_view`) are shown as stored.
    let search = super::types::search_view(&c.settings).unwrap_or_else(|_| c.settings.clone());
    json!({
        "id": c.id,
        "object": "conversation",
        "title": c.title,
        "persona": c.persona,
        "search": search,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
    })
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
pub(super) fn message_json(m: &StoredMessage, tree: &Tree) -> Value {
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

pub(super) fn tree_json(c: &Conversation, messages: &[StoredMessage]) -> Value {
    let tree = tree_of(c, messages);
    let mut out = conversation_json(c);
    out["messages"] = Value::Array(messages.iter().map(|m| message_json(m, &tree)).collect());
    out["active_path"] = json!(tree.active_path());
    out
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
