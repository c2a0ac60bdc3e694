//! Feeds [`SourceEvent`]s into the index writer and counts what happened.
//!
//! Batches go to the writer with a few in flight at once (the writer commits by size or time,
//! and answers after the commit), so a bulk load keeps the writer busy while every batch is
//! still acknowledged only once durable.

use crate::validate::Rejection;
use crate::SourceEvent;
use std::collections::BTreeMap;
use std::collections::VecDeque;
use tidings_index::{ApplyOutcome, Change, Checkpoint, IndexError, Pending, WriteHandle};
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
    fn add(&mut self, outcome: &ApplyOutcome) {
        self.accepted += outcome.inserted;
        self.updated += outcome.updated;
        self.duplicates += outcome.duplicates;
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
    let mut pending: VecDeque<(usize, Pending<ApplyOutcome>)> = VecDeque::new();
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
                waiting_posts += posts.len();
                let n = posts.len();
                // Handed to the writer here, one batch after the other, so batches are applied
                // in the order they were read (a later copy of a post wins); only the wait for
                // the commit overlaps.
                let changes = posts.into_iter().map(Change::Upsert).collect();
                pending.push_back((n, write.submit(changes, checkpoint).await?));
                while waiting_posts >= in_flight_posts.max(1) {
                    let Some((n, done)) = pending.pop_front() else {
                        break;
                    };
                    waiting_posts -= n;
                    summary.add(&done.committed().await?);
                    progress(&summary);
                }
            }
        }
    }
    while let Some((_, done)) = pending.pop_front() {
        summary.add(&done.committed().await?);
        progress(&summary);
    }
    progress(&summary);
    Ok(summary)
}
