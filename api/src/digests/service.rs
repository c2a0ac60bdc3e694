//! What the digest routes, the scheduler and start-up recovery share: loading a stored
//! definition, running a digest from start to end (stored `running`, then `succeeded` or
//! `failed`), delivering finished runs to webhooks, and the digests declared in the settings.

use super::types::{DigestBody, WebhookBody};
use super::views::run_view;
use crate::lease::Lease;
use crate::routes::store_error;
use crate::store::records::{self, DigestRecord};
use crate::store::{DigestRow, RunRow, Store};
use crate::ErrorCode;
use crate::{ApiError, AppState};
use axum::http::StatusCode;
use chrono::Utc;
use futures::FutureExt;
use serde_json::{json, Value};
use std::panic::AssertUnwindSafe;
use tidings_agent::digest::{self, DigestSpec};
use tidings_agent::stories::StoryConfig;
use tidings_agent::AgentError;

pub(super) async fn load(store: &Store, id: &str) -> Result<DigestRow, ApiError> {
    store
        .digest(id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("digest {id} does not exist")))
}

/// The stored definition of a digest, read back. One that no longer parses (written by
/// another version, edited by hand) is logged loudly every time something needs it — it neither
/// runs on its schedule nor delivers until it is saved again — instead of being skipped quietly.
pub(super) fn stored_body(row: &DigestRow) -> Result<DigestBody, ApiError> {
    records::read::<DigestRecord>(&row.spec).map(DigestBody::from).map_err(|e| {
        tracing::error!(
            digest = %row.id, name = %row.name, error = %e,
            "a stored digest does not parse; it will not run, be scheduled or deliver until it is saved again (PUT /v1/digests/{{id}})"
        );
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::CorruptDigest,
            format!("stored digest {} does not parse: {e}", row.id),
        )
    })
}

fn spec_of(state: &AppState, row: &DigestRow) -> Result<DigestSpec, ApiError> {
    stored_body(row)?.validate(state)
}

/// Runs `spec` as of `as_of`, storing the run from start to end. With a schedule `slot`,
/// only when no run holds that slot yet (`Ok(None)` otherwise).
pub(crate) async fn execute(
    state: &AppState,
    row: &DigestRow,
    reason: &str,
    as_of: chrono::DateTime<Utc>,
    slot: Option<chrono::DateTime<Utc>>,
) -> Result<Option<RunRow>, ApiError> {
    let store = store(state)?;
    let spec = spec_of(state, row)?;
    let Some(run) = store
        .start_run(&row.id, reason, as_of, slot)
        .await
        .map_err(store_error)?
    else {
        return Ok(None);
    };
    // While this run is in progress its lease says so; if this process dies, the lease lapses
    // and a replica's recovery marks the run `failed` (`interrupted`) instead of leaving it
    // `running` for good. (A fresh run id: no one else can hold it.)
    let _lease = match Lease::acquire(store, &state.replica, format!("run:{}", run.id)).await {
        Ok(lease) => lease,
        Err(e) => {
            tracing::warn!(run = %run.id, error = %e, "could not take the run's lease; recovery may mark it interrupted after the grace period");
            None
        }
    };
    let result = match &state.agent {
        None => Err(
            json!({"code": "model_unavailable", "message": "no chat model is configured on this server; digests need one for their summaries"}),
        ),
        // A panic (a bug in story detection or text handling) fails this run, with a
        // reason, instead of leaving it `running` and killing the scheduler.
        Some(agent) => AssertUnwindSafe(digest::run(agent, &spec, as_of, &StoryConfig::default()))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| {
                Err(AgentError::Panicked(tidings_agent::panic_message(
                    panic.as_ref(),
                )))
            })
            .map_err(|e| {
                let err = crate::answer::agent_error(e);
                json!({"code": err.code, "message": err.message})
            }),
    };
    let finished = match &result {
        Ok(out) => {
            let output = crate::digest_json(out);
            store
                .finish_run(&run.id, Ok((&output, &out.markdown())))
                .await
        }
        Err(e) => {
            tracing::warn!(digest = %row.id, error = %e, "digest run failed");
            store.finish_run(&run.id, Err(e)).await
        }
    };
    let run = finished.map_err(store_error)?;
    deliver_run(state, row, &run);
    Ok(Some(run))
}

/// POSTs a finished run to the digest's webhooks in the background, recording each delivery
/// (delivered, or dead with the reason).
fn deliver_run(state: &AppState, row: &DigestRow, run: &RunRow) {
    let Ok(body) = stored_body(row) else {
        return;
    };
    if body.webhooks.is_empty() {
        return;
    }
    let Some(store) = state.store.clone() else {
        return;
    };
    let payload = run_payload(row, run);
    for hook in body.webhooks {
        let store = store.clone();
        let config = state.config.webhooks.clone();
        let payload = payload.clone();
        let (digest_id, run_id) = (row.id.clone(), run.id.clone());
        state.tasks.spawn(async move {
            let id = match store.start_delivery(&digest_id, &run_id, &hook.url).await {
                Ok(id) => id,
                Err(e) => {
                    tracing::error!(error = %e, "could not record a webhook delivery");
                    return;
                }
            };
            deliver_one(&store, &config, &hook, &id, &payload).await;
        });
    }
}

/// What a webhook receives for a finished run.
fn run_payload(row: &DigestRow, run: &RunRow) -> String {
    json!({
        "event": "digest.run",
        "digest": {"id": row.id, "name": row.name},
        "run": run_view(run),
    })
    .to_string()
}

/// Delivers one recorded delivery (with retries) and records how it ended.
async fn deliver_one(
    store: &Store,
    config: &super::webhook::WebhookConfig,
    hook: &WebhookBody,
    id: &str,
    payload: &str,
) {
    let outcome = super::webhook::deliver(
        config,
        &hook.url,
        &hook.secret,
        "digest.run",
        id,
        payload.as_bytes(),
    )
    .await;
    if !outcome.delivered {
        tracing::warn!(url = %hook.url, attempts = outcome.attempts, error = ?outcome.last_error, "webhook delivery failed; dead-lettered");
    }
    if let Err(e) = store
        .finish_delivery(
            id,
            outcome.delivered,
            outcome.attempts,
            outcome.last_status,
            outcome.last_error.as_deref(),
        )
        .await
    {
        tracing::error!(error = %e, "could not record a webhook outcome");
    }
}

/// Retries deliveries a dead process left `pending` (at start): the same delivery id, the
/// run as stored, the digest's current secret for that URL. A delivery whose digest, run or
/// webhook is gone is recorded dead with the reason.
pub(crate) async fn retry_pending_deliveries(
    state: &AppState,
    cutoff: chrono::DateTime<Utc>,
) -> usize {
    let Some(store) = state.store.clone() else {
        return 0;
    };
    let pending = match store.pending_deliveries(cutoff).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "could not read pending webhook deliveries");
            return 0;
        }
    };
    let count = pending.len();
    for d in pending {
        let store = store.clone();
        let config = state.config.webhooks.clone();
        state.tasks.spawn(async move {
            let found = async {
                let row = store.digest(&d.digest_id).await.ok()??;
                let run = store.run(&d.run_id).await.ok()??;
                let body = stored_body(&row).ok()?;
                let hook = body.webhooks.into_iter().find(|h| h.url == d.url)?;
                Some((run_payload(&row, &run), hook))
            }
            .await;
            match found {
                Some((payload, hook)) => deliver_one(&store, &config, &hook, &d.id, &payload).await,
                None => {
                    let _ = store
                        .finish_delivery(
                            &d.id,
                            false,
                            d.attempts as u32,
                            None,
                            Some("the digest, run or webhook no longer exists"),
                        )
                        .await;
                }
            }
        });
    }
    count
}

/// Digests declared in the settings file: each is created, or updated when a digest of that
/// name exists with another definition. Digests created over the API are left alone.
pub async fn apply_declared(state: &AppState, declared: &[Value]) -> Result<usize, String> {
    let Some(store) = &state.store else {
        return Ok(0);
    };
    let existing = store.digests().await.map_err(|e| e.to_string())?;
    let mut changed = 0;
    for (i, raw) in declared.iter().enumerate() {
        let body: DigestBody =
            serde_json::from_value(raw.clone()).map_err(|e| format!("digests.define[{i}]: {e}"))?;
        body.validate(state)
            .map_err(|e| format!("digests.define[{i}] ({}): {}", body.name, e.message))?;
        let spec = records::write(&DigestRecord::from(&body));
        let name = body.name.trim();
        match existing.iter().find(|d| d.name == name) {
            Some(d) if d.spec == spec => {}
            Some(d) => {
                store
                    .update_digest(&d.id, name, &spec)
                    .await
                    .map_err(|e| e.to_string())?;
                changed += 1;
            }
            None => {
                store
                    .create_digest(name, &spec)
                    .await
                    .map_err(|e| e.to_string())?;
                changed += 1;
            }
        }
    }
    if changed > 0 {
        state.digests_changed.notify_one();
    }
    Ok(changed)
}

pub(super) fn store(state: &AppState) -> Result<&Store, ApiError> {
    crate::routes::app_store(state, "digests")
}
