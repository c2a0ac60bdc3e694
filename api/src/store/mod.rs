//! The app database (sqlx): one `Store` over a pool, split by aggregate: `conversations`
//! (conversations and their message trees), `digests` (definitions, runs, webhook deliveries),
//! `recovery` (what a dead process left behind), `leases` (work a replica is doing now);
//! `records` the versioned JSON records that digest definitions and conversation settings are
//! stored as.
//!
//! One code path for both backends through sqlx's `Any` driver: a SQLite file in the data
//! directory by default, PostgreSQL when the URL says so. The schema is portable SQL
//! (`api/migrations/`), embedded in the binary and applied at start. Times are stored as
//! milliseconds since the Unix epoch, JSON as text.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::AnyPool;
use std::borrow::Cow;
use std::path::Path;
use std::time::Duration;

/// The migrations, in order. Each file is checked in under `api/migrations/`.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "conversations",
        include_str!("../../migrations/0001_conversations.sql"),
    ),
    (
        2,
        "digests",
        include_str!("../../migrations/0002_digests.sql"),
    ),
    (
        3,
        "webhook deliveries",
        include_str!("../../migrations/0003_webhook_deliveries.sql"),
    ),
    (
        4,
        "leases",
        include_str!("../../migrations/0004_leases.sql"),
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

/// A string column with a closed set of values, as an enum: written with `as_str`, read back
/// with `parse` (an unknown value is [`StoreError::Corrupt`], never a silent default), shown in
/// JSON as its string.
macro_rules! stored_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
        }

        impl $name {
            /// The value as stored and shown.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// Reads a stored value back.
            pub fn parse(text: &str) -> Result<$name, StoreError> {
                match text {
                    $($text => Ok($name::$variant),)*
                    other => Err(StoreError::Corrupt(format!(
                        concat!("unknown ", stringify!($name), " `{}`"),
                        other
                    ))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        /// In the OpenAPI document: a string, one of the values above.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text,)*]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

stored_enum! {
    /// Who wrote a message.
    Role {
        User => "user",
        Assistant => "assistant",
    }
}

stored_enum! {
    /// How a message came to be.
    Origin {
        /// A question as asked.
        Asked => "asked",
        /// An answer to a question.
        Generated => "generated",
        /// Another version of an answer.
        Regenerated => "regenerated",
        /// A question or answer edited by the user.
        Edited => "edited",
    }
}

stored_enum! {
    /// Whether a message is whole or the record of a failure.
    MessageStatus {
        Complete => "complete",
        /// The generation failed; `meta.error` says why, and it can be regenerated.
        Error => "error",
    }
}

stored_enum! {
    /// Where a digest run is.
    RunStatus {
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
    }
}

stored_enum! {
    /// Where a webhook delivery is.
    DeliveryStatus {
        Pending => "pending",
        Delivered => "delivered",
        /// Given up on: the dead letter, with the last status and error.
        Dead => "dead",
    }
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

mod conversations;
mod digests;
mod leases;
pub mod records;
mod recovery;

pub use conversations::{Conversation, ConversationPatch, NewMessage, StoredMessage};
pub use digests::{DeliveryRow, DigestRow, RunRow};

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

/// The `meta` of a question stored without asking for an answer (an edit with
/// `answer: false`): recovery leaves it unanswered.
pub static UNANSWERED_ON_PURPOSE: std::sync::LazyLock<Value> =
    std::sync::LazyLock::new(|| serde_json::json!({"answer": false}));

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
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stored_enums_round_trip_and_refuse_unknown_values() {
        for r in [RunStatus::Running, RunStatus::Succeeded, RunStatus::Failed] {
            assert_eq!(RunStatus::parse(r.as_str()).unwrap(), r);
            assert_eq!(serde_json::to_value(r).unwrap(), json!(r.as_str()));
        }
        for o in [
            Origin::Asked,
            Origin::Generated,
            Origin::Regenerated,
            Origin::Edited,
        ] {
            assert_eq!(Origin::parse(o.as_str()).unwrap(), o);
        }
        assert!(Role::User == "user" && Role::Assistant == "assistant");
        let err = MessageStatus::parse("streaming").unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt(m) if m.contains("MessageStatus") && m.contains("streaming")),
            "{err}"
        );
        assert!(DeliveryStatus::parse("").is_err());
    }

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
        let new = |parent: Option<&'static str>, role: &str, content| NewMessage {
            conversation_id: "",
            parent_id: parent,
            role: Role::parse(role).expect("a known role"),
            content,
            origin: Origin::Asked,
            edited_from: None,
            status: MessageStatus::Complete,
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
