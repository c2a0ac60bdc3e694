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
//! With SQLite only this process uses the database, so everything left is from a dead one.
//! With PostgreSQL other replicas may be working right now: only work older than
//! [`SHARED_CUTOFF`] is taken as abandoned.

use crate::store::{Backend, NewMessage};
use crate::AppState;
use chrono::Utc;
use serde_json::json;

/// With a shared database, how old unfinished work must be to count as abandoned.
pub const SHARED_CUTOFF: chrono::Duration = chrono::Duration::minutes(10);

/// What recovery found and fixed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    pub runs_interrupted: u64,
    pub questions_answered: usize,
    pub deliveries_retried: usize,
}

/// Recovers the app database; errors are logged, never fatal (serving matters more).
pub async fn recover(state: &AppState) -> Recovered {
    let Some(store) = &state.store else {
        return Recovered::default();
    };
    let cutoff = match store.backend() {
        Backend::Sqlite => Utc::now(),
        Backend::Postgres => Utc::now() - SHARED_CUTOFF,
    };
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
    done.deliveries_retried =
        crate::digests::service::retry_pending_deliveries(state, cutoff).await;
    if done != Recovered::default() {
        tracing::warn!(
            runs = done.runs_interrupted,
            questions = done.questions_answered,
            deliveries = done.deliveries_retried,
            "recovered work a stopped process left unfinished"
        );
    }
    done
}
