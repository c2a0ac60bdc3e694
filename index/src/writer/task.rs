//! The writer task: applies commands to tantivy's `IndexWriter`, commits by size or time,
//! answers each caller after the commit that covers its change, hands changed posts to the
//! vector worker.

use super::{
    ApplyOutcome, Change, Checkpoint, Command, Reply, UpsertOutcome, WriteHandle, WriterConfig,
};
use crate::post::{Post, PostId};
use crate::stats::IndexStats;
use crate::text::{encode_payload, TextIndex};
use crate::vector_worker::{VectorJob, VectorQueue};
use crate::IndexError;
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use tantivy::query::RangeQuery;
use tantivy::{IndexWriter, TantivyDocument, Term};
use tokio::sync::{broadcast, mpsc};
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

/// Segments of one size level that tantivy merges into one (its default is 8): a live stream
/// commits every second, and each search visits every segment.
const MERGE_MIN_SEGMENTS: usize = 4;

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
    let mut policy = tantivy::merge_policy::LogMergePolicy::default();
    policy.set_min_num_segments(MERGE_MIN_SEGMENTS);
    writer.set_merge_policy(Box::new(policy));
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
