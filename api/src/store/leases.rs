//! Leases: a row per piece of work a replica is doing (`conversation:<id>`, `run:<id>`,
//! `vectors:<collection>`), held until `expires_at` unless renewed. Taking one is a single
//! upsert that succeeds only when the row is free, expired or already ours, so two replicas
//! sharing the database cannot both hold it; a replica that dies stops renewing, and its
//! leases lapse after their time to live.

use super::{millis, Store, StoreError};
use chrono::Utc;
use std::time::Duration;

impl Store {
    /// Takes or renews `name` for `holder` for `ttl`; `false` when another holder has it.
    pub async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = millis(Utc::now());
        let until = now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        let done = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at < $4",
        )
        .bind(name)
        .bind(holder)
        .bind(until)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Gives `name` up if `holder` has it.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Who holds `name` now, if anyone (an expired lease is held by no one).
    pub async fn lease_holder(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT holder FROM leases WHERE name = $1 AND expires_at >= $2")
                .bind(name)
                .bind(millis(Utc::now()))
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(h,)| h))
    }

    /// Deletes leases that expired before `before` (housekeeping; an expired row is free anyway).
    pub async fn prune_leases(&self, before: chrono::DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM leases WHERE expires_at < $1")
            .bind(millis(before))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_holder_at_a_time_until_the_lease_lapses() {
        let dir = tempfile::tempdir().unwrap();
        let url = Store::default_url(dir.path());
        let (a, b) = (
            Store::connect(&url).await.unwrap(),
            Store::connect(&url).await.unwrap(),
        );
        let ttl = Duration::from_millis(300);
        let name = "conversation:会話-1";
        assert!(a.acquire_lease(name, "replica-a", ttl).await.unwrap());
        assert!(!b.acquire_lease(name, "replica-b", ttl).await.unwrap());
        // Renewing is taking it again.
        assert!(a.acquire_lease(name, "replica-a", ttl).await.unwrap());
        assert_eq!(
            a.lease_holder(name).await.unwrap().as_deref(),
            Some("replica-a")
        );
        // A release by someone else does nothing; by the holder frees it.
        b.release_lease(name, "replica-b").await.unwrap();
        assert!(!b.acquire_lease(name, "replica-b", ttl).await.unwrap());
        a.release_lease(name, "replica-a").await.unwrap();
        assert!(b.acquire_lease(name, "replica-b", ttl).await.unwrap());
        // A holder that stops renewing loses it once it lapses.
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(a.lease_holder(name).await.unwrap(), None);
        assert!(a.acquire_lease(name, "replica-a", ttl).await.unwrap());
        // Racing for a free lease: exactly one wins.
        let (x, y) = tokio::join!(
            a.acquire_lease("run:r1", "replica-a", ttl),
            b.acquire_lease("run:r1", "replica-b", ttl)
        );
        assert_eq!([x.unwrap(), y.unwrap()].iter().filter(|w| **w).count(), 1);
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(a.prune_leases(Utc::now()).await.unwrap(), 2);
    }
}
