//! Recovery after a crash: what a process that died mid-work left behind.

use super::{millis, DeliveryRow, Store, StoreError, StoredMessage};
use chrono::{DateTime, Utc};

/// Recovery after a crash: what a process that died mid-work left behind.
impl Store {
    /// Marks runs still `running` that started before `cutoff` and whose lease (`run:<id>`)
    /// is not held as failed with code `interrupted` (their process died); returns how many.
    pub async fn interrupt_runs(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let error = serde_json::json!({
            "code": "interrupted",
            "message": "the server stopped while this run was in progress; run the digest again",
        });
        let done = sqlx::query(
            "UPDATE digest_runs SET status = 'failed', finished_at = $1, error = $2 \
             WHERE status = 'running' AND started_at < $3 AND NOT EXISTS \
             (SELECT 1 FROM leases l WHERE l.name = 'run:' || digest_runs.id AND l.expires_at >= $1)",
        )
        .bind(millis(Utc::now()))
        .bind(error.to_string())
        .bind(millis(cutoff))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Forgets the leases of every other holder: with a database only this process uses
    /// (SQLite), any other holder is a process that died.
    pub async fn drop_leases_of_others(&self, me: &str) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM leases WHERE holder <> $1")
            .bind(me)
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

    /// Questions asked before `cutoff` that have no answer at all (not even a failed one) and
    /// whose conversation no replica is generating in (no held `conversation:<id>` lease):
    /// their generation died with its process.
    pub async fn unanswered_questions(
        &self,
        cutoff: DateTime<Utc>,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM messages q WHERE q.role = 'user' AND q.created_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM messages a WHERE a.parent_id = q.id) AND q.meta <> $3 \
             AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.name = 'conversation:' || q.conversation_id \
             AND l.expires_at >= $2) ORDER BY q.seq",
        )
        .bind(millis(cutoff))
        .bind(millis(Utc::now()))
        .bind(super::UNANSWERED_ON_PURPOSE.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Self::message).collect()
    }
}
