//! Digest definitions, their runs (a schedule slot claimed once across replicas), and webhook
//! deliveries with their dead letters.

use super::{json, millis, new_id, time, DeliveryStatus, RunStatus, Store, StoreError};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::Row;

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
    pub status: RunStatus,
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
    pub(super) fn digest_row(row: &AnyRow) -> Result<DigestRow, StoreError> {
        Ok(DigestRow {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            spec: json(&row.try_get::<String, _>("spec")?)?,
            created_at: time(row.try_get("created_at")?),
            updated_at: time(row.try_get("updated_at")?),
        })
    }

    pub(super) fn run_row(row: &AnyRow) -> Result<RunRow, StoreError> {
        let opt_json = |col: &str| -> Result<Option<Value>, StoreError> {
            row.try_get::<Option<String>, _>(col)?
                .map(|t| json(&t))
                .transpose()
        };
        Ok(RunRow {
            id: row.try_get("id")?,
            digest_id: row.try_get("digest_id")?,
            status: RunStatus::parse(&row.try_get::<String, _>("status")?)?,
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
            Ok((out, md)) => (RunStatus::Succeeded, Some(out.to_string()), Some(md), None),
            Err(e) => (RunStatus::Failed, None, None, Some(e.to_string())),
        };
        sqlx::query(
            "UPDATE digest_runs SET status = $1, finished_at = $2, output = $3, markdown = $4, error = $5 WHERE id = $6",
        )
        .bind(status.as_str())
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
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Store {
    pub(super) fn delivery_row(row: &AnyRow) -> Result<DeliveryRow, StoreError> {
        Ok(DeliveryRow {
            id: row.try_get("id")?,
            digest_id: row.try_get("digest_id")?,
            run_id: row.try_get("run_id")?,
            url: row.try_get("url")?,
            status: DeliveryStatus::parse(&row.try_get::<String, _>("status")?)?,
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
        .bind(if delivered {
            DeliveryStatus::Delivered.as_str()
        } else {
            DeliveryStatus::Dead.as_str()
        })
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
