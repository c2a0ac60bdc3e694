//! Start-up recovery: what a process that died (crash, SIGKILL, power loss) left half done is
//! put into a state a user can continue from.
//!
//! - digest runs still `running` → `failed` with code `interrupted` (their slot stays claimed,
//!   so a schedule does not run the same slot twice; "Run now" runs it again);
//! - questions with no answer at all → an answer with `status: error`, code `interrupted`, so
//!   the conversation can regenerate, edit or go on;
//! - webhook deliveries still `pending` → delivered again (same delivery id, so receivers can
//!   drop a duplicate).
//!
//! Work in progress holds a lease (`conversation:<id>`, `run:<id>`; see [`crate::lease`]), so
//! abandoned work is unfinished work whose lease is not held. With SQLite only this process
//! uses the database: at start every other holder's lease is from a dead process and dropped.
//! With PostgreSQL other replicas may be working right now: their leases are live, and work
//! younger than one lease time to live is left alone (it may not hold its lease yet). Besides
//! the start, [`recover_abandoned`] runs every lease time to live, so a replica that dies
//! mid-work has its runs and questions recovered by the others once its leases lapse.

use crate::store::{Backend, NewMessage, Store};
use crate::AppState;
use chrono::{DateTime, Utc};
use serde_json::json;

/// With a shared database, how long a webhook delivery must have been pending to be sent again
/// at start (deliveries hold no lease).
pub const SHARED_CUTOFF: chrono::Duration = chrono::Duration::minutes(10);

/// What recovery found and fixed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    pub runs_interrupted: u64,
    pub questions_answered: usize,
    pub deliveries_retried: usize,
}

/// Recovers the app database at start; errors are logged, never fatal (serving matters more).
pub async fn recover(state: &AppState) -> Recovered {
    let Some(store) = &state.store else {
        return Recovered::default();
    };
    let grace = chrono::Duration::from_std(state.replica.lease_ttl).unwrap_or_default();
    let (work, deliveries) = match store.backend() {
        Backend::Sqlite => {
            if let Err(e) = store.drop_leases_of_others(&state.replica.name).await {
                tracing::error!(error = %e, "could not drop the leases of a stopped process");
            }
            (Utc::now(), Utc::now())
        }
        Backend::Postgres => (Utc::now() - grace, Utc::now() - SHARED_CUTOFF),
    };
    let mut done = abandoned(store, work).await;
    done.deliveries_retried =
        crate::digests::service::retry_pending_deliveries(state, deliveries).await;
    log(done);
    done
}

/// Recovers runs and questions whose lease lapsed; the app calls it every lease time to live.
pub async fn recover_abandoned(state: &AppState) -> Recovered {
    let Some(store) = &state.store else {
        return Recovered::default();
    };
    let grace = chrono::Duration::from_std(state.replica.lease_ttl).unwrap_or_default();
    let done = abandoned(store, Utc::now() - grace).await;
    log(done);
    if let Err(e) = store.prune_leases(Utc::now() - grace).await {
        tracing::warn!(error = %e, "could not prune lapsed leases");
    }
    done
}

/// Runs and questions older than `cutoff` with no live lease: failed runs and error answers
/// (code `interrupted`).
async fn abandoned(store: &Store, cutoff: DateTime<Utc>) -> Recovered {
    let mut done = Recovered::default();
    match store.interrupt_runs(cutoff).await {
        Ok(n) => done.runs_interrupted = n,
        Err(e) => tracing::error!(error = %e, "could not mark interrupted digest runs"),
    }
    match store.unanswered_questions(cutoff).await {
        Ok(questions) => {
            for q in questions {
                let meta = json!({"error": {
                    "code": "interrupted",
                    "message": "the server stopped while answering; regenerate to try again",
                }});
                let stored = store
                    .insert_message(NewMessage {
                        conversation_id: &q.conversation_id,
                        parent_id: Some(&q.id),
                        role: crate::store::Role::Assistant,
                        content: "",
                        origin: crate::store::Origin::Generated,
                        edited_from: None,
                        status: crate::store::MessageStatus::Error,
                        meta: &meta,
                    })
                    .await;
                match stored {
                    Ok(_) => done.questions_answered += 1,
                    Err(e) => {
                        tracing::error!(error = %e, question = %q.id, "could not store an interrupted answer")
                    }
                }
            }
        }
        Err(e) => tracing::error!(error = %e, "could not look for unanswered questions"),
    }
    done
}

fn log(done: Recovered) {
    if done != Recovered::default() {
        tracing::warn!(
            runs = done.runs_interrupted,
            questions = done.questions_answered,
            deliveries = done.deliveries_retried,
            "recovered work a stopped process left unfinished"
        );
    }
}
