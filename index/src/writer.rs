//! The one task that owns tantivy's `IndexWriter`.
//!
//! Commands arrive on a bounded channel. Upserts and deletes are applied at once and committed by
//! size (`commit_docs`) or time (`commit_interval` after the first uncommitted change); the reader
//! reloads right after each commit, so a post is searchable when its caller hears back. Callers
//! are answered only after the commit that covers their change: an acknowledged post is durable.
//! Source checkpoints ride in the same commit's payload. After a commit, changed posts are handed
//! to the vector worker without waiting (text first, vectors follow).

use crate::post::{Post, PostId};
use crate::stats::IndexStats;
use crate::text::{encode_payload, TextIndex};
use crate::vector_worker::{VectorJob, VectorQueue};
use crate::IndexError;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tantivy::query::RangeQuery;
use tantivy::{IndexWriter, TantivyDocument, Term};
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

/// A change waiting for its commit.
enum Waiting {
    Upsert(Reply<Vec<UpsertOutcome>>, Vec<UpsertOutcome>),
    Delete(Reply<Vec<bool>>, Vec<bool>),
    Count(Reply<u64>, u64),
    Apply(Reply<ApplyOutcome>, ApplyOutcome),
    Unit(Reply<()>),
}

struct Writer {
    text: TextIndex,
    writer: IndexWriter<TantivyDocument>,
    config: WriterConfig,
    /// id hash → (content hash, dup key) of committed posts.
    committed: HashMap<u64, (u64, u64)>,
    /// Changes since the last commit: Some = upserted, None = deleted.
    staged: HashMap<u64, Option<(u64, u64)>>,
    checkpoints: BTreeMap<String, String>,
    /// The checkpoints of the last successful commit (restored when a commit fails, so a
    /// position is never stored without its batch).
    durable_checkpoints: BTreeMap<String, String>,
    waiting: Vec<Waiting>,
    changed_docs: usize,
    first_change: Option<Instant>,
    to_embed: Vec<Post>,
    to_unembed: Vec<String>,
    rebuild_map_after_commit: bool,
    vectors: Option<VectorQueue>,
    stats: Arc<IndexStats>,
    feed: broadcast::Sender<Arc<Post>>,
}

/// Starts the writer thread.
pub(crate) fn spawn(
    text: TextIndex,
    config: WriterConfig,
    vectors: Option<VectorQueue>,
    stats: Arc<IndexStats>,
) -> Result<(WriteHandle, std::thread::JoinHandle<()>), IndexError> {
    let writer = if config.threads > 0 {
        text.index
            .writer_with_num_threads(config.threads, config.memory_budget_bytes)
    } else {
        text.index.writer(config.memory_budget_bytes)
    }
    .map_err(|e| {
        IndexError::internal(format!(
            "open index writer (is another tidings process using this data dir?): {e}"
        ))
    })?;
    let committed = text.id_map()?;
    let checkpoints = text.checkpoints()?;
    stats.posts.store(committed.len() as u64, Ordering::Relaxed);
    let (tx, rx) = mpsc::channel(1024);
    let (feed, _) = broadcast::channel(4096);
    let mut state = Writer {
        text,
        writer,
        config,
        committed,
        staged: HashMap::new(),
        durable_checkpoints: checkpoints.clone(),
        checkpoints,
        waiting: Vec::new(),
        changed_docs: 0,
        first_change: None,
        to_embed: Vec::new(),
        to_unembed: Vec::new(),
        rebuild_map_after_commit: false,
        vectors,
        stats,
        feed: feed.clone(),
    };
    let thread = crate::thread::spawn_with_runtime("tidings-writer", false, move || async move {
        state.run(rx).await
    })?;
    Ok((WriteHandle { tx, feed }, thread))
}

impl Writer {
    async fn run(&mut self, mut rx: mpsc::Receiver<Command>) {
        loop {
            let command = match self.first_change {
                None => rx.recv().await,
                Some(first) => {
                    let deadline =
                        tokio::time::Instant::from_std(first + self.config.commit_interval);
                    tokio::select! {
                        c = rx.recv() => c,
                        _ = tokio::time::sleep_until(deadline) => { self.commit(); continue; }
                    }
                }
            };
            match command {
                None => {
                    self.commit();
                    return;
                }
                Some(Command::Shutdown { reply }) => {
                    self.commit();
                    let _ = reply.send(());
                    tracing::info!("index writer stopped after its final commit");
                    return;
                }
                Some(Command::Commit { reply }) => {
                    self.waiting.push(Waiting::Unit(reply));
                    self.commit();
                }
                Some(Command::Upsert {
                    posts,
                    checkpoint,
                    reply,
                }) => {
                    let staged = self.upsert(posts);
                    self.stage(staged, checkpoint, reply, Waiting::Upsert);
                }
                Some(Command::Apply {
                    changes,
                    checkpoint,
                    reply,
                }) => {
                    let staged = self.apply(changes);
                    self.stage(staged, checkpoint, reply, Waiting::Apply);
                }
                Some(Command::Delete { ids, reply }) => {
                    let found = self.delete(ids);
                    self.mark_changed();
                    self.waiting.push(Waiting::Delete(reply, found));
                }
                Some(Command::DeleteOlderThan { cutoff, reply }) => {
                    let ms = cutoff.timestamp_millis();
                    let term = Term::from_field_i64(self.text.fields.created_at, ms);
                    let query = RangeQuery::new(Bound::Unbounded, Bound::Excluded(term));
                    let searcher = self.text.reader.searcher();
                    let count = searcher
                        .search(&query, &tantivy::collector::Count)
                        .unwrap_or(0) as u64;
                    match self.writer.delete_query(Box::new(query)) {
                        Ok(_) => {
                            self.rebuild_map_after_commit = true;
                            if let Some(v) = &self.vectors {
                                v.send(VectorJob::DeleteOlderThan(ms));
                            }
                            self.mark_changed();
                            self.waiting.push(Waiting::Count(reply, count));
                        }
                        Err(e) => {
                            let _ = reply.send(Err(IndexError::tantivy(e)));
                        }
                    }
                }
            }
            if self.changed_docs >= self.config.commit_docs {
                self.commit();
            }
        }
    }

    fn mark_changed(&mut self) {
        if self.first_change.is_none() {
            self.first_change = Some(Instant::now());
        }
    }

    fn lookup(&self, id_hash: u64) -> Option<(u64, u64)> {
        match self.staged.get(&id_hash) {
            Some(state) => *state,
            None => self.committed.get(&id_hash).copied(),
        }
    }

    fn upsert(&mut self, posts: Vec<Post>) -> Result<Vec<UpsertOutcome>, IndexError> {
        let mut outcomes = Vec::with_capacity(posts.len());
        for post in posts {
            let id_hash = post.id.hash64();
            let content = post.content_hash();
            let outcome = match self.lookup(id_hash) {
                Some((c, _)) if c == content => UpsertOutcome::Duplicate,
                Some(_) => UpsertOutcome::Updated,
                None => UpsertOutcome::Inserted,
            };
            if outcome != UpsertOutcome::Duplicate {
                let dup_key = post.dup_key();
                let doc = self.text.document(&post, content, dup_key)?;
                if outcome == UpsertOutcome::Updated {
                    self.writer.delete_term(self.text.id_term(&post.id));
                }
                self.writer.add_document(doc).map_err(IndexError::tantivy)?;
                self.staged.insert(id_hash, Some((content, dup_key)));
                self.changed_docs += 1;
                self.to_embed.push(post);
            }
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    /// After a batch is staged: its checkpoint moves with it and the reply waits for the commit
    /// (a batch that could not be staged is answered at once, and its checkpoint is dropped).
    fn stage<T>(
        &mut self,
        staged: Result<T, IndexError>,
        checkpoint: Option<Checkpoint>,
        reply: Reply<T>,
        waiting: fn(Reply<T>, T) -> Waiting,
    ) {
        match staged {
            Ok(outcome) => {
                if let Some(c) = checkpoint {
                    self.checkpoints.insert(c.source, c.position);
                }
                self.mark_changed();
                self.waiting.push(waiting(reply, outcome));
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    fn apply(&mut self, changes: Vec<Change>) -> Result<ApplyOutcome, IndexError> {
        let mut out = ApplyOutcome::default();
        for change in changes {
            match change {
                Change::Upsert(post) => match self.upsert(vec![post])?.first() {
                    Some(UpsertOutcome::Inserted) => out.inserted += 1,
                    Some(UpsertOutcome::Updated) => out.updated += 1,
                    Some(UpsertOutcome::Duplicate) => out.duplicates += 1,
                    None => {}
                },
                Change::Delete(id) => {
                    if self.delete(vec![id]).first() == Some(&true) {
                        out.deleted += 1;
                    } else {
                        out.missing += 1;
                    }
                }
            }
        }
        Ok(out)
    }

    fn delete(&mut self, ids: Vec<PostId>) -> Vec<bool> {
        ids.into_iter()
            .map(|id| {
                let h = id.hash64();
                let existed = self.lookup(h).is_some();
                if existed {
                    self.writer.delete_term(self.text.id_term(&id));
                    self.staged.insert(h, None);
                    self.changed_docs += 1;
                    self.to_embed.retain(|p| p.id != id);
                    self.to_unembed.push(id.to_string());
                }
                existed
            })
            .collect()
    }

    /// Commits pending changes, reloads the reader, hands changes to the vector worker and
    /// answers every waiting caller.
    fn commit(&mut self) {
        self.first_change = None;
        if self.waiting.is_empty() && self.changed_docs == 0 {
            return;
        }
        let started = Instant::now();
        let result = self.try_commit();
        let elapsed = started.elapsed();
        match &result {
            Ok(()) => {
                for (h, state) in self.staged.drain() {
                    match state {
                        Some(v) => {
                            self.committed.insert(h, v);
                        }
                        None => {
                            self.committed.remove(&h);
                        }
                    }
                }
                if self.rebuild_map_after_commit {
                    self.rebuild_map_after_commit = false;
                    match self.text.id_map() {
                        Ok(map) => self.committed = map,
                        Err(e) => {
                            tracing::error!(error = %e, "could not rebuild the dedup map after a retention pass")
                        }
                    }
                }
                self.durable_checkpoints.clone_from(&self.checkpoints);
                self.stats.commits.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .posts
                    .store(self.committed.len() as u64, Ordering::Relaxed);
                self.stats
                    .last_commit_micros
                    .store(elapsed.as_micros() as u64, Ordering::Relaxed);
                if self.feed.receiver_count() > 0 {
                    for post in &self.to_embed {
                        let _ = self.feed.send(Arc::new(post.clone()));
                    }
                }
                if let Some(v) = &self.vectors {
                    if !self.to_unembed.is_empty() {
                        v.send(VectorJob::Delete(std::mem::take(&mut self.to_unembed)));
                    }
                    for post in self.to_embed.drain(..) {
                        v.send(VectorJob::Upsert(post));
                    }
                } else {
                    self.to_embed.clear();
                    self.to_unembed.clear();
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "index commit failed; the uncommitted changes were rolled back");
                self.stats.commit_errors.fetch_add(1, Ordering::Relaxed);
                self.staged.clear();
                self.checkpoints.clone_from(&self.durable_checkpoints);
                self.to_embed.clear();
                self.to_unembed.clear();
                if let Err(e) = self.writer.rollback() {
                    tracing::error!(error = %e, "index rollback failed");
                }
            }
        }
        self.changed_docs = 0;
        for w in self.waiting.drain(..) {
            let err = || match &result {
                Ok(()) => None,
                Err(e) => Some(IndexError::Internal(format!("commit failed: {e}"))),
            };
            match w {
                Waiting::Upsert(r, v) => {
                    if result.is_ok() {
                        for o in &v {
                            let counter = match o {
                                UpsertOutcome::Inserted => &self.stats.inserted,
                                UpsertOutcome::Updated => &self.stats.updated,
                                UpsertOutcome::Duplicate => &self.stats.duplicates,
                            };
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    let _ = r.send(err().map_or(Ok(v), Err));
                }
                Waiting::Delete(r, v) => {
                    let _ = r.send(err().map_or(Ok(v), Err));
                }
                Waiting::Count(r, n) => {
                    let _ = r.send(err().map_or(Ok(n), Err));
                }
                Waiting::Apply(r, o) => {
                    if result.is_ok() {
                        self.stats.inserted.fetch_add(o.inserted, Ordering::Relaxed);
                        self.stats.updated.fetch_add(o.updated, Ordering::Relaxed);
                        self.stats
                            .duplicates
                            .fetch_add(o.duplicates, Ordering::Relaxed);
                    }
                    let _ = r.send(err().map_or(Ok(o), Err));
                }
                Waiting::Unit(r) => {
                    let _ = r.send(err().map_or(Ok(()), Err));
                }
            }
        }
    }

    fn try_commit(&mut self) -> Result<(), IndexError> {
        let mut prepared = self.writer.prepare_commit().map_err(IndexError::tantivy)?;
        prepared.set_payload(&encode_payload(&self.checkpoints));
        prepared.commit().map_err(IndexError::tantivy)?;
        self.text.reader.reload().map_err(IndexError::tantivy)?;
        Ok(())
    }
}
