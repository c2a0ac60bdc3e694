//! The app database (sqlx): conversations and their messages.
//!
//! One code path for both backends through sqlx's `Any` driver: a SQLite file in the data
//! directory by default, PostgreSQL when the URL says so. The schema is portable SQL
//! (`api/migrations/`), embedded in the binary and applied at start. Times are stored as
//! milliseconds since the Unix epoch, JSON as text.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Row};
use std::borrow::Cow;
use std::path::Path;
use std::time::Duration;

/// The migrations, in order. Each file is checked in under `api/migrations/`.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "conversations",
        include_str!("../migrations/0001_conversations.sql"),
    ),
    (2, "digests", include_str!("../migrations/0002_digests.sql")),
    (
        3,
        "webhook deliveries",
        include_str!("../migrations/0003_webhook_deliveries.sql"),
    ),
];

/// The checked-in migrations, compiled into the binary.
#[derive(Debug)]
struct Embedded;

impl<'s> sqlx::migrate::MigrationSource<'s> for Embedded {
    fn resolve(
        self,
    ) -> futures::future::BoxFuture<'s, Result<Vec<Migration>, sqlx::error::BoxDynError>> {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|(version, name, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*name),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// Which database the URL named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

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
    pub role: String,
    pub content: String,
    pub origin: String,
    pub edited_from: Option<String>,
    pub status: String,
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
    pub role: &'a str,
    pub content: &'a str,
    pub origin: &'a str,
    pub edited_from: Option<&'a str>,
    pub status: &'a str,
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

/// The app database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

fn json(text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("JSON column: {e}")))
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl Store {
    /// The default database for a data directory: `<dir>/tidings.db` (SQLite).
    pub fn default_url(data_dir: &Path) -> String {
        format!(
            "sqlite://{}?mode=rwc",
            data_dir.join("tidings.db").display()
        )
    }

    /// Connects to `url` (`sqlite://…` or `postgres://…`) and applies the migrations.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(StoreError::Db(sqlx::Error::Configuration(
                format!("database URL must start with sqlite:// or postgres:// (got {url:?})")
                    .into(),
            )));
        };
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 8 })
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        if backend == Backend::Sqlite {
            // WAL: readers never wait for the writer; the setting persists in the file.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        let migrator = Migrator::new(Embedded).await?;
        migrator.run(&pool).await?;
        Ok(Store { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    fn conversation(row: &AnyRow) -> Result<Conversation, StoreError> {
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

    fn message(row: &AnyRow) -> Result<StoredMessage, StoreError> {
        Ok(StoredMessage {
            id: row.try_get("id")?,
            conversation_id: row.try_get("conversation_id")?,
            parent_id: row.try_get("parent_id")?,
            role: row.try_get("role")?,
            content: row.try_get("content")?,
            origin: row.try_get("origin")?,
            edited_from: row.try_get("edited_from")?,
            status: row.try_get("status")?,
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
        .bind(m.role)
        .bind(m.content)
        .bind(m.origin)
        .bind(m.edited_from)
        .bind(m.status)
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

/// A stored digest definition.
#[derive(Clone, Debug)]
pub struct DigestRow {
    pub id: String,
    pub name: String,
    pub spec: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A stored digest run.
#[derive(Clone, Debug)]
pub struct RunRow {
    pub id: String,
    pub digest_id: String,
    pub status: String,
    pub reason: String,
    pub as_of: DateTime<Utc>,
    pub scheduled_for: Option<DateTime<Utc>>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub output: Option<Value>,
    pub markdown: Option<String>,
    pub error: Option<Value>,
}

impl Store {
    fn digest_row(row: &AnyRow) -> Result<DigestRow, StoreError> {
        Ok(DigestRow {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            spec: json(&row.try_get::<String, _>("spec")?)?,
            created_at: time(row.try_get("created_at")?),
            updated_at: time(row.try_get("updated_at")?),
        })
    }

    fn run_row(row: &AnyRow) -> Result<RunRow, StoreError> {
        let opt_json = |col: &str| -> Result<Option<Value>, StoreError> {
            row.try_get::<Option<String>, _>(col)?
                .map(|t| json(&t))
                .transpose()
        };
        Ok(RunRow {
            id: row.try_get("id")?,
            digest_id: row.try_get("digest_id")?,
            status: row.try_get("status")?,
            reason: row.try_get("reason")?,
            as_of: time(row.try_get("as_of")?),
            scheduled_for: row.try_get::<Option<i64>, _>("scheduled_for")?.map(time),
            started_at: time(row.try_get("started_at")?),
            finished_at: row.try_get::<Option<i64>, _>("finished_at")?.map(time),
            output: opt_json("output")?,
            markdown: row.try_get("markdown")?,
            error: opt_json("error")?,
        })
    }

    pub async fn create_digest(&self, name: &str, spec: &Value) -> Result<DigestRow, StoreError> {
        let id = new_id();
        let now = millis(Utc::now());
        sqlx::query(
            "INSERT INTO digests (id, name, spec, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(&id)
        .bind(name)
        .bind(spec.to_string())
        .bind(now)
        .execute(&self.pool)
        .await?;
        self.digest(&id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("a digest vanished after insert".into()))
    }

    pub async fn digest(&self, id: &str) -> Result<Option<DigestRow>, StoreError> {
        let row = sqlx::query("SELECT * FROM digests WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::digest_row).transpose()
    }

    pub async fn digests(&self) -> Result<Vec<DigestRow>, StoreError> {
        let rows = sqlx::query("SELECT * FROM digests ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Self::digest_row).collect()
    }

    pub async fn update_digest(
        &self,
        id: &str,
        name: &str,
        spec: &Value,
    ) -> Result<Option<DigestRow>, StoreError> {
        let done =
            sqlx::query("UPDATE digests SET name = $1, spec = $2, updated_at = $3 WHERE id = $4")
                .bind(name)
                .bind(spec.to_string())
                .bind(millis(Utc::now()))
                .bind(id)
                .execute(&self.pool)
                .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.digest(id).await
    }

    pub async fn delete_digest(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        for table in ["webhook_deliveries", "digest_runs"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE digest_id = $1"))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        let done = sqlx::query("DELETE FROM digests WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records a run as started. A run for a schedule `slot` is claimed: `None` when a run for
    /// that slot already exists (another replica, or before a restart).
    pub async fn start_run(
        &self,
        digest_id: &str,
        reason: &str,
        as_of: DateTime<Utc>,
        slot: Option<DateTime<Utc>>,
    ) -> Result<Option<RunRow>, StoreError> {
        let id = new_id();
        let done = sqlx::query(
            "INSERT INTO digest_runs (id, digest_id, status, reason, as_of, scheduled_for, started_at) \
             VALUES ($1, $2, 'running', $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(&id)
        .bind(digest_id)
        .bind(reason)
        .bind(millis(as_of))
        .bind(slot.map(millis))
        .bind(millis(Utc::now()))
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.run(&id).await
    }

    /// The latest schedule slot with a run, per digest.
    pub async fn last_slots(&self) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT digest_id, MAX(scheduled_for) AS slot FROM digest_runs WHERE scheduled_for IS NOT NULL GROUP BY digest_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("digest_id")?, time(r.try_get("slot")?))))
            .collect()
    }

    /// Records how a run ended: its output (succeeded) or its error (failed).
    pub async fn finish_run(
        &self,
        id: &str,
        result: Result<(&Value, &str), &Value>,
    ) -> Result<RunRow, StoreError> {
        let (status, output, markdown, error) = match result {
            Ok((out, md)) => ("succeeded", Some(out.to_string()), Some(md), None),
            Err(e) => ("failed", None, None, Some(e.to_string())),
        };
        sqlx::query(
            "UPDATE digest_runs SET status = $1, finished_at = $2, output = $3, markdown = $4, error = $5 WHERE id = $6",
        )
        .bind(status)
        .bind(millis(Utc::now()))
        .bind(output)
        .bind(markdown)
        .bind(error)
        .bind(id)
        .execute(&self.pool)
        .await?;
        self.run(id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("a run vanished after update".into()))
    }

    pub async fn run(&self, id: &str) -> Result<Option<RunRow>, StoreError> {
        let row = sqlx::query("SELECT * FROM digest_runs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::run_row).transpose()
    }

    /// A digest's runs, newest first.
    pub async fn runs(&self, digest_id: &str, limit: i64) -> Result<Vec<RunRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM digest_runs WHERE digest_id = $1 ORDER BY started_at DESC, id LIMIT $2",
        )
        .bind(digest_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Self::run_row).collect()
    }
}

/// A webhook delivery (or its dead-letter record).
#[derive(Clone, Debug)]
pub struct DeliveryRow {
    pub id: String,
    pub digest_id: String,
    pub run_id: String,
    pub url: String,
    pub status: String,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Store {
    fn delivery_row(row: &AnyRow) -> Result<DeliveryRow, StoreError> {
        Ok(DeliveryRow {
            id: row.try_get("id")?,
            digest_id: row.try_get("digest_id")?,
            run_id: row.try_get("run_id")?,
            url: row.try_get("url")?,
            status: row.try_get("status")?,
            attempts: row.try_get("attempts")?,
            last_status: row.try_get("last_status")?,
            last_error: row.try_get("last_error")?,
            created_at: time(row.try_get("created_at")?),
            updated_at: time(row.try_get("updated_at")?),
        })
    }

    /// Records a delivery as pending; returns its id.
    pub async fn start_delivery(
        &self,
        digest_id: &str,
        run_id: &str,
        url: &str,
    ) -> Result<String, StoreError> {
        let id = new_id();
        let now = millis(Utc::now());
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, digest_id, run_id, url, status, attempts, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5)",
        )
        .bind(&id)
        .bind(digest_id)
        .bind(run_id)
        .bind(url)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    /// Records how a delivery ended: `delivered`, or `dead` (the dead letter).
    pub async fn finish_delivery(
        &self,
        id: &str,
        delivered: bool,
        attempts: u32,
        last_status: Option<u16>,
        last_error: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE webhook_deliveries SET status = $1, attempts = $2, last_status = $3, last_error = $4, updated_at = $5 WHERE id = $6",
        )
        .bind(if delivered { "delivered" } else { "dead" })
        .bind(i64::from(attempts))
        .bind(last_status.map(i64::from))
        .bind(last_error)
        .bind(millis(Utc::now()))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A digest's deliveries, newest first.
    pub async fn deliveries(&self, digest_id: &str) -> Result<Vec<DeliveryRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM webhook_deliveries WHERE digest_id = $1 ORDER BY created_at DESC, id LIMIT 200",
        )
        .bind(digest_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Self::delivery_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn sqlite_roundtrip_and_versions() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&Store::default_url(dir.path()))
            .await
            .unwrap();
        let c = store
            .create_conversation("t", Some("fun"), &json!({"window": "6h"}))
            .await
            .unwrap();
        let meta = json!({});
        let new = |parent: Option<&'static str>, role, content| NewMessage {
            conversation_id: "",
            parent_id: parent,
            role,
            content,
            origin: "asked",
            edited_from: None,
            status: "complete",
            meta: &meta,
        };
        let q = store
            .insert_message(NewMessage {
                conversation_id: &c.id,
                ..new(None, "user", "q")
            })
            .await
            .unwrap();
        let a1 = store
            .insert_message(NewMessage {
                conversation_id: &c.id,
                parent_id: Some(&q.id),
                ..new(None, "assistant", "a1")
            })
            .await
            .unwrap();
        let a2 = store
            .insert_message(NewMessage {
                conversation_id: &c.id,
                parent_id: Some(&q.id),
                ..new(None, "assistant", "a2")
            })
            .await
            .unwrap();
        assert!(a2.seq > a1.seq);
        let msgs = store.messages(&c.id).await.unwrap();
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs[0].active_child.as_deref(), Some(a2.id.as_str()));
        store.activate(&c.id, Some(&q.id), &a1.id).await.unwrap();
        let msgs = store.messages(&c.id).await.unwrap();
        assert_eq!(msgs[0].active_child.as_deref(), Some(a1.id.as_str()));
        let c2 = store.conversation_by_id(&c.id).await.unwrap().unwrap();
        assert_eq!(c2.active_root.as_deref(), Some(q.id.as_str()));
        assert_eq!(c2.settings, json!({"window": "6h"}));
        // Reopen: everything survives.
        store.close().await;
        let store = Store::connect(&Store::default_url(dir.path()))
            .await
            .unwrap();
        assert_eq!(store.messages(&c.id).await.unwrap().len(), 3);
        assert!(store.delete_conversation(&c.id).await.unwrap());
        assert!(store.messages(&c.id).await.unwrap().is_empty());
        assert!(!store.delete_conversation(&c.id).await.unwrap());
    }

    #[tokio::test]
    async fn a_schedule_slot_runs_once_across_replicas() {
        let dir = tempfile::tempdir().unwrap();
        let url = Store::default_url(dir.path());
        let (a, b) = (
            Store::connect(&url).await.unwrap(),
            Store::connect(&url).await.unwrap(),
        );
        let d = a.create_digest("d", &json!({"name": "d"})).await.unwrap();
        let slot: DateTime<Utc> = "2026-05-10T08:00:00Z".parse().unwrap();
        let (ra, rb) = tokio::join!(
            a.start_run(&d.id, "schedule", slot, Some(slot)),
            b.start_run(&d.id, "schedule", slot, Some(slot))
        );
        let claimed = [ra.unwrap(), rb.unwrap()];
        assert_eq!(claimed.iter().filter(|r| r.is_some()).count(), 1);
        // Manual runs never collide.
        for _ in 0..2 {
            assert!(a
                .start_run(&d.id, "manual", slot, None)
                .await
                .unwrap()
                .is_some());
        }
        assert_eq!(a.last_slots().await.unwrap(), vec![(d.id.clone(), slot)]);
    }

    #[tokio::test]
    async fn refuses_unknown_url_schemes() {
        let err = Store::connect("mysql://x").await.unwrap_err();
        assert!(err.to_string().contains("sqlite://"));
    }
}

/// Recovery after a crash: what a process that died mid-work left behind.
impl Store {
    /// Marks runs still `running` that started before `cutoff` as failed with code
    /// `interrupted` (their process died); returns how many.
    pub async fn interrupt_runs(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let error = serde_json::json!({
            "code": "interrupted",
            "message": "the server stopped while this run was in progress; run the digest again",
        });
        let done = sqlx::query(
            "UPDATE digest_runs SET status = 'failed', finished_at = $1, error = $2 \
             WHERE status = 'running' AND started_at < $3",
        )
        .bind(millis(Utc::now()))
        .bind(error.to_string())
        .bind(millis(cutoff))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Deliveries still `pending` since before `cutoff` (their process died mid-delivery).
    pub async fn pending_deliveries(
        &self,
        cutoff: DateTime<Utc>,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM webhook_deliveries WHERE status = 'pending' AND updated_at < $1 ORDER BY created_at, id",
        )
        .bind(millis(cutoff))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Self::delivery_row).collect()
    }

    /// Questions asked before `cutoff` that have no answer at all (not even a failed one):
    /// their generation died with its process.
    pub async fn unanswered_questions(
        &self,
        cutoff: DateTime<Utc>,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM messages q WHERE q.role = 'user' AND q.created_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM messages a WHERE a.parent_id = q.id) ORDER BY q.seq",
        )
        .bind(millis(cutoff))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Self::message).collect()
    }
}
