//! The one task that owns tantivy's `IndexWriter`.
//!
//! Commands arrive on a bounded channel. Upserts and deletes are applied at once and committed by
//! size (`commit_docs`) or time (`commit_interval` after the first uncommitted change); the reader
//! reloads right after each commit, so a post is searchable when its caller hears back. Callers
//! are answered only after the commit that covers their change: an acknowledged post is durable.
//! Source checkpoints ride in the same commit's payload. After a commit, changed posts are handed
//! to the vector worker without waiting (text first, vectors follow).
//!
//! This file holds the commands and the handle callers use; `task` the writer task itself.

mod task;

pub(crate) use task::spawn;

use crate::post::{Post, PostId};
use crate::IndexError;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot};

/// What an upsert did to one post.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpsertOutcome {
    /// New id: stored.
    Inserted,
    /// Known id with new content (an edit): replaced.
    Updated,
    /// Known id with identical content: nothing to do.
    Duplicate,
}

/// One change a live source asks for, applied in order within its batch.
#[derive(Clone, Debug)]
pub enum Change {
    /// Insert, or replace when the content differs (an edit).
    Upsert(Post),
    /// Remove from both indexes (a no-op when the post is not there).
    Delete(PostId),
}

/// What a batch of [`Change`]s did, once committed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApplyOutcome {
    pub inserted: u64,
    pub updated: u64,
    pub duplicates: u64,
    pub deleted: u64,
    /// Deletes of posts the index did not hold.
    pub missing: u64,
}

/// A batch handed to the writer, waiting for the commit that makes it durable.
#[must_use = "a submitted batch is durable only once `committed` resolves"]
pub struct Pending<T>(oneshot::Receiver<Result<T, IndexError>>);

impl<T> Pending<T> {
    /// Resolves once the batch (and its checkpoint) is committed.
    pub async fn committed(self) -> Result<T, IndexError> {
        self.0.await.map_err(|_| IndexError::writer_gone())?
    }
}

impl<T> std::future::Future for Pending<T> {
    type Output = Result<T, IndexError>;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.map_err(|_| IndexError::writer_gone()).and_then(|r| r))
    }
}

/// A source position to store with the commit that covers a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub source: String,
    pub position: String,
}

/// Writer settings.
#[derive(Clone, Debug)]
pub struct WriterConfig {
    pub commit_interval: Duration,
    pub commit_docs: usize,
    pub memory_budget_bytes: usize,
    /// Indexing threads; 0 lets tantivy choose.
    pub threads: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            commit_interval: Duration::from_millis(200),
            commit_docs: 50_000,
            memory_budget_bytes: 256 << 20,
            threads: 0,
        }
    }
}

type Reply<T> = oneshot::Sender<Result<T, IndexError>>;

enum Command {
    Upsert {
        posts: Vec<Post>,
        checkpoint: Option<Checkpoint>,
        reply: Reply<Vec<UpsertOutcome>>,
    },
    Delete {
        ids: Vec<PostId>,
        reply: Reply<Vec<bool>>,
    },
    Apply {
        changes: Vec<Change>,
        checkpoint: Option<Checkpoint>,
        reply: Reply<ApplyOutcome>,
    },
    DeleteOlderThan {
        cutoff: DateTime<Utc>,
        reply: Reply<u64>,
    },
    Commit {
        reply: Reply<()>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// The write capability handed to `ingest` and `api`. Cheap to clone.
#[derive(Clone)]
pub struct WriteHandle {
    tx: mpsc::Sender<Command>,
    feed: broadcast::Sender<Arc<Post>>,
}

impl WriteHandle {
    /// Upserts posts; resolves once they are committed (durable and searchable).
    pub async fn upsert(
        &self,
        posts: Vec<Post>,
        checkpoint: Option<Checkpoint>,
    ) -> Result<Vec<UpsertOutcome>, IndexError> {
        self.call(|reply| Command::Upsert {
            posts,
            checkpoint,
            reply,
        })
        .await
    }

    /// Hands a source's batch to the writer and returns at once (batches are applied in the
    /// order they are submitted); the returned [`Pending`] resolves after the commit that holds
    /// the batch and its checkpoint. The checkpoint is stored only with its batch, so a restart
    /// resumes from the last batch that is durable.
    pub async fn submit(
        &self,
        changes: Vec<Change>,
        checkpoint: Option<Checkpoint>,
    ) -> Result<Pending<ApplyOutcome>, IndexError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Apply {
                changes,
                checkpoint,
                reply,
            })
            .await
            .map_err(|_| IndexError::writer_gone())?;
        Ok(Pending(rx))
    }

    /// Deletes posts by id from both indexes; `true` where the post existed.
    pub async fn delete(&self, ids: Vec<PostId>) -> Result<Vec<bool>, IndexError> {
        self.call(|reply| Command::Delete { ids, reply }).await
    }

    /// Deletes every post created before `cutoff`; returns how many went.
    pub async fn delete_older_than(&self, cutoff: DateTime<Utc>) -> Result<u64, IndexError> {
        self.call(|reply| Command::DeleteOlderThan { cutoff, reply })
            .await
    }

    /// Posts as they are committed (inserted or edited), for live feeds. A receiver that falls
    /// more than the channel's capacity behind gets `Lagged` and skips ahead.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Post>> {
        self.feed.subscribe()
    }

    /// Whether the writer still takes commands.
    pub fn is_running(&self) -> bool {
        !self.tx.is_closed()
    }

    /// Commits whatever is pending now.
    pub async fn commit(&self) -> Result<(), IndexError> {
        self.call(|reply| Command::Commit { reply }).await
    }

    /// Commits what is pending and stops the writer; later calls fail with `Unavailable`.
    pub async fn shutdown(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Command::Shutdown { reply }).await.is_ok() {
            let _ = rx.await;
        }
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, IndexError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| IndexError::writer_gone())?;
        rx.await.map_err(|_| IndexError::writer_gone())?
    }
}
