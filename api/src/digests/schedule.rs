//! The scheduler's view of the app: scheduled digests from the database, each run through
//! [`super::service::execute`] once per slot.

use super::scheduler::{Job, Runner};
use super::service::{execute, stored_body};
use crate::AppState;
use chrono::Utc;
use futures::future::BoxFuture;

/// The scheduler's view of the app: scheduled digests from the database, runs through
/// [`execute`].
pub(crate) struct ScheduledDigests(pub(crate) AppState);

impl Runner for ScheduledDigests {
    fn jobs(&self) -> BoxFuture<'_, Vec<Job>> {
        Box::pin(async move {
            let Some(store) = &self.0.store else {
                return Vec::new();
            };
            let (rows, slots) = match (store.digests().await, store.last_slots().await) {
                (Ok(r), Ok(s)) => (r, s),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::error!(error = %e, "the scheduler could not read digests");
                    return Vec::new();
                }
            };
            rows.into_iter()
                .filter_map(|row| {
                    let body = stored_body(&row).ok()?;
                    let (schedule, missed) = match body.schedule.as_ref()?.parse() {
                        Ok(parsed) => parsed,
                        Err(e) => {
                            tracing::error!(
                                digest = %row.id, error = %e.message,
                                "a stored digest's schedule does not parse; it will not run by itself until it is saved again"
                            );
                            return None;
                        }
                    };
                    Some(Job {
                        last_slot: slots.iter().find(|(id, _)| *id == row.id).map(|(_, t)| *t),
                        digest_id: row.id,
                        schedule,
                        missed,
                    })
                })
                .collect()
        })
    }

    fn run<'a>(
        &'a self,
        digest_id: &'a str,
        slot: chrono::DateTime<Utc>,
        reason: &'static str,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let Some(store) = &self.0.store else { return };
            let row = match store.digest(digest_id).await {
                Ok(Some(row)) => row,
                Ok(None) => return,
                Err(e) => {
                    tracing::error!(error = %e, digest = digest_id, "the scheduler could not read a digest");
                    return;
                }
            };
            match execute(&self.0, &row, reason, slot, Some(slot)).await {
                Ok(Some(run)) => {
                    tracing::info!(digest = digest_id, run = %run.id, status = %run.status, %slot, "scheduled digest ran")
                }
                Ok(None) => tracing::debug!(digest = digest_id, %slot, "slot already claimed"),
                Err(e) => {
                    tracing::error!(digest = digest_id, error = %e.message, "scheduled digest could not run")
                }
            }
        })
    }
}
