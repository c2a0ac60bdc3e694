//! Feeds [`SourceEvent`]s into the index writer and counts what happened.
//!
//! Batches go to the writer with a few in flight at once (the writer commits by size or time,
//! and answers after the commit), so a bulk load keeps the writer busy while every batch is
//! still acknowledged only once durable.

use crate::validate::Rejection;
use crate::SourceEvent;
use std::collections::BTreeMap;
use std::collections::VecDeque;
use tidings_index::{Checkpoint, IndexError, UpsertOutcome, WriteHandle};
use tokio::sync::mpsc;

/// A refused record, for the report.
#[derive(Clone, Debug)]
pub struct RejectedRecord {
    pub line: u64,
    pub id: Option<String>,
    pub rejection: Rejection,
}

/// Totals of one ingest run.
#[derive(Clone, Debug, Default)]
pub struct IngestSummary {
    pub accepted: u64,
    pub updated: u64,
    pub duplicates: u64,
    pub rejected: u64,
    /// Rejections by code.
    pub rejected_by_code: BTreeMap<String, u64>,
    /// The first rejections in full (at most `keep_rejections`).
    pub rejections: Vec<RejectedRecord>,
    pub bytes: u64,
}

impl IngestSummary {
    fn add(&mut self, outcomes: &[UpsertOutcome]) {
        for o in outcomes {
            match o {
                UpsertOutcome::Inserted => self.accepted += 1,
                UpsertOutcome::Updated => self.updated += 1,
                UpsertOutcome::Duplicate => self.duplicates += 1,
            }
        }
    }
}

/// Drains `rx` into the index. `checkpoint_source` names the checkpoint stored with each batch's
/// commit (`None` for one-off loads). Up to `in_flight_posts` posts wait for their commit at
/// once; keep it above the writer's `commit_docs` so a bulk load fills whole commits instead of
/// waiting for the commit timer. `progress` sees the running summary after each batch.
pub async fn run_pipeline(
    mut rx: mpsc::Receiver<SourceEvent>,
    write: &WriteHandle,
    checkpoint_source: Option<&str>,
    keep_rejections: usize,
    in_flight_posts: usize,
    mut progress: impl FnMut(&IngestSummary),
) -> Result<IngestSummary, IndexError> {
    let mut summary = IngestSummary::default();
    let mut waiting_posts = 0usize;
    let mut pending: VecDeque<(
        usize,
        tokio::task::JoinHandle<Result<Vec<UpsertOutcome>, IndexError>>,
    )> = VecDeque::new();
    while let Some(event) = rx.recv().await {
        match event {
            SourceEvent::Rejected {
                line,
                id,
                rejection,
            } => {
                summary.rejected += 1;
                *summary
                    .rejected_by_code
                    .entry(rejection.code.to_string())
                    .or_default() += 1;
                if summary.rejections.len() < keep_rejections {
                    summary.rejections.push(RejectedRecord {
                        line,
                        id,
                        rejection,
                    });
                }
            }
            SourceEvent::Posts {
                posts,
                position,
                bytes,
            } => {
                summary.bytes += bytes;
                if posts.is_empty() {
                    continue;
                }
                let checkpoint = match (checkpoint_source, position) {
                    (Some(source), Some(position)) => Some(Checkpoint {
                        source: source.to_string(),
                        position,
                    }),
                    _ => None,
                };
                let write = write.clone();
                waiting_posts += posts.len();
                let n = posts.len();
                pending.push_back((
                    n,
                    tokio::spawn(async move { write.upsert(posts, checkpoint).await }),
                ));
                while waiting_posts >= in_flight_posts.max(1) {
                    let Some((n, done)) = pending.pop_front() else {
                        break;
                    };
                    waiting_posts -= n;
                    let outcomes = join(done).await?;
                    summary.add(&outcomes);
                    progress(&summary);
                }
            }
        }
    }
    while let Some((_, done)) = pending.pop_front() {
        let outcomes = join(done).await?;
        summary.add(&outcomes);
        progress(&summary);
    }
    progress(&summary);
    Ok(summary)
}

async fn join(
    handle: tokio::task::JoinHandle<Result<Vec<UpsertOutcome>, IndexError>>,
) -> Result<Vec<UpsertOutcome>, IndexError> {
    handle
        .await
        .map_err(|e| IndexError::Internal(format!("ingest task failed: {e}")))?
}
