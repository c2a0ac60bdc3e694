//! Conversations and their message trees: rows, the active path, versions.

use super::{json, millis, new_id, time, MessageStatus, Origin, Role, Store, StoreError};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::Row;

/// A conversation's own row.
#[derive(Clone, Debug)]
pub struct Conversation {
    pub id: String,
    pub title: String,
    pub persona: Option<String>,
    pub settings: Value,
    pub active_root: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A stored message.
#[derive(Clone, Debug)]
pub struct StoredMessage {
    pub id: String,
    pub conversation_id: String,
    pub parent_id: Option<String>,
    pub role: Role,
    pub content: String,
    pub origin: Origin,
    pub edited_from: Option<String>,
    pub status: MessageStatus,
    pub active_child: Option<String>,
    pub meta: Value,
    pub seq: i64,
    pub created_at: DateTime<Utc>,
}

/// A message to insert.
#[derive(Clone, Debug)]
pub struct NewMessage<'a> {
    pub conversation_id: &'a str,
    pub parent_id: Option<&'a str>,
    pub role: Role,
    pub content: &'a str,
    pub origin: Origin,
    pub edited_from: Option<&'a str>,
    pub status: MessageStatus,
    pub meta: &'a Value,
}

/// Changes to a conversation; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct ConversationPatch {
    pub title: Option<String>,
    /// `Some(None)` clears the persona (the server default applies).
    pub persona: Option<Option<String>>,
    pub settings: Option<Value>,
}

impl Store {
    pub(super) fn conversation(row: &AnyRow) -> Result<Conversation, StoreError> {
        Ok(Conversation {
            id: row.try_get("id")?,
            title: row.try_get("title")?,
            persona: row.try_get("persona")?,
            settings: json(&row.try_get::<String, _>("settings")?)?,
            active_root: row.try_get("active_root")?,
            created_at: time(row.try_get("created_at")?),
            updated_at: time(row.try_get("updated_at")?),
        })
    }

    pub(super) fn message(row: &AnyRow) -> Result<StoredMessage, StoreError> {
        Ok(StoredMessage {
            id: row.try_get("id")?,
            conversation_id: row.try_get("conversation_id")?,
            parent_id: row.try_get("parent_id")?,
            role: Role::parse(&row.try_get::<String, _>("role")?)?,
            content: row.try_get("content")?,
            origin: Origin::parse(&row.try_get::<String, _>("origin")?)?,
            edited_from: row.try_get("edited_from")?,
            status: MessageStatus::parse(&row.try_get::<String, _>("status")?)?,
            active_child: row.try_get("active_child")?,
            meta: json(&row.try_get::<String, _>("meta")?)?,
            seq: row.try_get("seq")?,
            created_at: time(row.try_get("created_at")?),
        })
    }

    pub async fn create_conversation(
        &self,
        title: &str,
        persona: Option<&str>,
        settings: &Value,
    ) -> Result<Conversation, StoreError> {
        let id = new_id();
        let now = millis(Utc::now());
        sqlx::query(
            "INSERT INTO conversations (id, title, persona, settings, active_root, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, NULL, $5, $5)",
        )
        .bind(&id)
        .bind(title)
        .bind(persona)
        .bind(settings.to_string())
        .bind(now)
        .execute(&self.pool)
        .await?;
        self.conversation_by_id(&id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("a conversation vanished after insert".into()))
    }

    pub async fn conversation_by_id(&self, id: &str) -> Result<Option<Conversation>, StoreError> {
        let row = sqlx::query("SELECT * FROM conversations WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::conversation).transpose()
    }

    /// Conversations, most recently active first.
    pub async fn list_conversations(
        &self,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Conversation>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM conversations ORDER BY updated_at DESC, id LIMIT $1 OFFSET $2",
        )
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Self::conversation).collect()
    }

    pub async fn update_conversation(
        &self,
        id: &str,
        patch: ConversationPatch,
    ) -> Result<Option<Conversation>, StoreError> {
        let Some(mut c) = self.conversation_by_id(id).await? else {
            return Ok(None);
        };
        if let Some(t) = patch.title {
            c.title = t;
        }
        if let Some(p) = patch.persona {
            c.persona = p;
        }
        if let Some(s) = patch.settings {
            c.settings = s;
        }
        sqlx::query(
            "UPDATE conversations SET title = $1, persona = $2, settings = $3, updated_at = $4 WHERE id = $5",
        )
        .bind(&c.title)
        .bind(c.persona.as_deref())
        .bind(c.settings.to_string())
        .bind(millis(Utc::now()))
        .bind(id)
        .execute(&self.pool)
        .await?;
        self.conversation_by_id(id).await
    }

    /// Deletes a conversation and its messages; `false` when it did not exist.
    pub async fn delete_conversation(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM messages WHERE conversation_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM conversations WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// All messages of a conversation, in creation order.
    pub async fn messages(&self, conversation_id: &str) -> Result<Vec<StoredMessage>, StoreError> {
        let rows =
            sqlx::query("SELECT * FROM messages WHERE conversation_id = $1 ORDER BY seq, id")
                .bind(conversation_id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(Self::message).collect()
    }

    /// Inserts a message and makes it the active version under its parent, in one transaction.
    pub async fn insert_message(&self, m: NewMessage<'_>) -> Result<StoredMessage, StoreError> {
        let id = new_id();
        let now = millis(Utc::now());
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO messages (id, conversation_id, parent_id, role, content, origin, edited_from, status, active_child, meta, seq, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9, \
                     (SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE conversation_id = $2), $10)",
        )
        .bind(&id)
        .bind(m.conversation_id)
        .bind(m.parent_id)
        .bind(m.role.as_str())
        .bind(m.content)
        .bind(m.origin.as_str())
        .bind(m.edited_from)
        .bind(m.status.as_str())
        .bind(m.meta.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        Self::set_active(&mut tx, m.conversation_id, m.parent_id, &id).await?;
        tx.commit().await?;
        let row = sqlx::query("SELECT * FROM messages WHERE id = $1")
            .bind(&id)
            .fetch_one(&self.pool)
            .await?;
        Self::message(&row)
    }

    async fn set_active(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        conversation_id: &str,
        parent_id: Option<&str>,
        child: &str,
    ) -> Result<(), StoreError> {
        match parent_id {
            Some(p) => {
                sqlx::query(
                    "UPDATE messages SET active_child = $1 WHERE id = $2 AND conversation_id = $3",
                )
                .bind(child)
                .bind(p)
                .bind(conversation_id)
                .execute(&mut **tx)
                .await?;
            }
            None => {
                sqlx::query("UPDATE conversations SET active_root = $1 WHERE id = $2")
                    .bind(child)
                    .bind(conversation_id)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        sqlx::query("UPDATE conversations SET updated_at = $1 WHERE id = $2")
            .bind(millis(Utc::now()))
            .bind(conversation_id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Makes `message` the active version among its siblings.
    pub async fn activate(
        &self,
        conversation_id: &str,
        parent_id: Option<&str>,
        message_id: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        Self::set_active(&mut tx, conversation_id, parent_id, message_id).await?;
        tx.commit().await?;
        Ok(())
    }
}
