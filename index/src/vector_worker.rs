//! The vector worker: embeds committed posts in batches and writes them to the vector store.
//!
//! It never blocks the text writer: the writer hands jobs over with `try_send`, and when the
//! queue is full it only raises a flag; the worker then reconciles (finds text posts without a
//! vector and vectors without a text post) once it is idle. The same reconciliation runs at
//! start, so the two indexes converge after a crash or an `ingest --no-vectors`.
//! A near-duplicate (same dup key) reuses the vector of a recent copy instead of embedding again.
//!
//! With an interim embedder (a static table in the main embedder's own space, see
//! `embed::distilled`), posts the main embedder cannot take at once get the interim vector
//! straight away, marked as such in the store, so vectors keep up with the posts at any rate;
//! whenever nothing new waits, the main embedder replaces the interim vectors, newest first.
//! The marks are in the store, so reconciliation after a restart finds what is left to upgrade.

use crate::embed::Embedder;
use crate::post::Post;
use crate::stats::IndexStats;
use crate::text::TextIndex;
use crate::vectors::{VectorPoint, VectorStore};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

pub(crate) enum VectorJob {
    Upsert(Post),
    Delete(Vec<String>),
    DeleteOlderThan(i64),
}

/// The writer's end of the vector queue.
#[derive(Clone)]
pub(crate) struct VectorQueue {
    tx: mpsc::Sender<VectorJob>,
    overflow: Arc<AtomicBool>,
    stats: Arc<IndexStats>,
}

impl VectorQueue {
    /// Hands a job over without waiting; a full queue marks the worker for reconciliation.
    pub(crate) fn send(&self, job: VectorJob) {
        match self.tx.try_send(job) {
            Ok(()) => {
                self.stats.vectors_pending.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                // Reconciliation (when the worker is idle) finds what was dropped here.
                self.stats.vectors_ready.store(false, Ordering::Release);
                self.overflow.store(true, Ordering::Release);
                self.stats
                    .vector_queue_overflow
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Vector worker settings.
#[derive(Clone, Debug)]
pub struct VectorWorkerConfig {
    pub queue: usize,
    pub batch: usize,
    /// How many recent near-duplicate vectors to remember for reuse.
    pub reuse_cache: usize,
    /// The vector store is shared with other replicas: start as a standby (the app makes this
    /// process the writer when it holds the writer's lease), and never delete points that this
    /// text index lacks (another replica may hold posts this one has not read yet).
    pub shared: bool,
    /// Replace interim vectors with the main embedder's when nothing new waits (`false`
    /// keeps them, which saves the main embedder's CPU at the cost of quality).
    pub upgrade: bool,
    /// How many posts one interim batch takes.
    pub interim_batch: usize,
}

/// Interim vectors remembered for an upgrade (about 50 MB of hashes).
const MAX_UPGRADES_QUEUED: usize = 1_000_000;

/// Posts the main embedder takes at once when an interim embedder stands by: few, so a post
/// that arrives meanwhile waits at most one such batch before the interim embedder takes it.
const MAIN_BATCH_WITH_INTERIM: usize = 16;

/// Interim vectors the main embedder replaces at a time. New posts wait while it runs (they
/// are looked at between batches), so a batch must stay short even when the CPU is shared
/// with an ingest and an HNSW build: with 16, the peers' freshness run (500 posts/s over a
/// 100k backlog being upgraded) saw vectors trail by p99 2.3–2.6 s; the model embeds as
/// many posts/s in batches of 4 (`examples/embed_speed.rs`).
const UPGRADE_BATCH: usize = 4;

impl Default for VectorWorkerConfig {
    fn default() -> Self {
        VectorWorkerConfig {
            queue: 100_000,
            batch: 64,
            reuse_cache: 20_000,
            shared: false,
            upgrade: true,
            interim_batch: 4096,
        }
    }
}

struct Worker {
    text: TextIndex,
    store: Arc<dyn VectorStore>,
    embedder: Arc<dyn Embedder>,
    /// A fast approximation of `embedder` in the same space, for posts it cannot take now.
    interim: Option<Arc<dyn Embedder>>,
    config: VectorWorkerConfig,
    backlog: VecDeque<VectorJob>,
    /// Id hashes of posts whose stored vector is interim, oldest first (upgraded newest first).
    upgrades: VecDeque<u64>,
    upgrade_set: HashSet<u64>,
    cache: HashMap<u64, Arc<Vec<f32>>>,
    cache_order: VecDeque<u64>,
    overflow: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    /// Whether this process writes the vectors. Replicas sharing one Qdrant collection take
    /// turns through a lease; the others leave the vectors to the one that holds it.
    active: Arc<AtomicBool>,
    stats: Arc<IndexStats>,
}

/// What one embedded batch did, for the counters and the reuse cache.
struct BatchStats {
    /// New points written (upgrades are not new points).
    points: usize,
    /// Texts run through an embedder.
    embedded: usize,
    reused: usize,
    fresh: HashMap<u64, Arc<Vec<f32>>>,
}

/// Handle to stop the worker, and to make it the vector writer or a standby.
pub(crate) struct VectorWorkerHandle {
    /// Whether interim vectors are upgraded ([`VectorWorkerConfig::upgrade`]).
    pub(crate) upgrades: bool,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) active: Arc<AtomicBool>,
    pub(crate) thread: std::thread::JoinHandle<()>,
}

pub(crate) fn spawn(
    text: TextIndex,
    store: Arc<dyn VectorStore>,
    embedder: Arc<dyn Embedder>,
    interim: Option<Arc<dyn Embedder>>,
    config: VectorWorkerConfig,
    stats: Arc<IndexStats>,
) -> Result<(VectorQueue, VectorWorkerHandle), crate::IndexError> {
    let (tx, rx) = mpsc::channel(config.queue.max(1));
    let overflow = Arc::new(AtomicBool::new(true)); // reconcile once at start
    let stop = Arc::new(AtomicBool::new(false));
    let active = Arc::new(AtomicBool::new(!config.shared));
    let upgrades = config.upgrade;
    let mut worker = Worker {
        text,
        store,
        embedder,
        interim,
        config,
        backlog: VecDeque::new(),
        upgrades: VecDeque::new(),
        upgrade_set: HashSet::new(),
        cache: HashMap::new(),
        cache_order: VecDeque::new(),
        overflow: overflow.clone(),
        stop: stop.clone(),
        active: active.clone(),
        stats: stats.clone(),
    };
    crate::thread::background_rayon_pool();
    let thread = crate::thread::spawn_with_runtime("tidings-vectors", true, move || async move {
        worker.run(rx).await
    })?;
    Ok((
        VectorQueue {
            tx,
            overflow,
            stats,
        },
        VectorWorkerHandle {
            upgrades,
            stop,
            active,
            thread,
        },
    ))
}

impl Worker {
    async fn run(&mut self, mut rx: mpsc::Receiver<VectorJob>) {
        let mut backoff =
            crate::backoff::Backoff::new(Duration::from_millis(500), Duration::from_secs(15));
        while !self.stop.load(Ordering::Acquire) {
            if !self.active.load(Ordering::Acquire) {
                self.stand_by(&mut rx).await;
                continue;
            }
            while let Ok(job) = rx.try_recv() {
                self.backlog.push_back(job);
            }
            if self.backlog.is_empty() {
                if self.overflow.swap(false, Ordering::AcqRel) {
                    self.reconcile();
                    continue;
                }
                self.stats.vectors_ready.store(true, Ordering::Release);
                if self.config.upgrade && !self.upgrades.is_empty() {
                    let result = self.upgrade().await;
                    self.settle(result, &mut backoff, "upgrading interim vectors")
                        .await;
                    continue;
                }
                match tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
                    Ok(Some(job)) => {
                        self.backlog.push_back(job);
                        // Let a burst arrive so it is embedded as one batch.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Ok(None) => return,
                    Err(_) => self.note_fit(),
                }
                continue;
            }
            let result = self.step().await;
            self.settle(result, &mut backoff, "vector batch").await;
        }
    }

    /// Resets the backoff after a success; after a failure counts it, says so and waits (the
    /// work stays queued and is tried again).
    async fn settle(
        &self,
        result: Result<(), crate::IndexError>,
        backoff: &mut crate::backoff::Backoff,
        what: &str,
    ) {
        match result {
            Ok(()) => backoff.reset(),
            Err(e) => {
                let wait = backoff.next_delay();
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "{what} failed; will retry");
                self.stats.embed_errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(wait).await;
            }
        }
    }

    /// Another replica writes the vectors: drop what would be written here, and reconcile once
    /// this process becomes the writer again (the other may have stopped mid-way).
    async fn stand_by(&mut self, rx: &mut mpsc::Receiver<VectorJob>) {
        while rx.try_recv().is_ok() {}
        self.backlog.clear();
        self.upgrades.clear();
        self.upgrade_set.clear();
        self.stats.vectors_interim.store(0, Ordering::Relaxed);
        self.stats.vectors_pending.store(0, Ordering::Relaxed);
        self.stats.vectors_ready.store(true, Ordering::Release);
        self.overflow.store(true, Ordering::Release);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    /// Processes the next batch from the backlog; on error the batch stays queued.
    async fn step(&mut self) -> Result<(), crate::IndexError> {
        match self.backlog.front() {
            Some(VectorJob::Delete(ids)) => {
                self.store.delete(ids)?;
                self.backlog.pop_front();
                self.stats.vectors_pending.fetch_sub(1, Ordering::Relaxed);
                return Ok(());
            }
            Some(VectorJob::DeleteOlderThan(ms)) => {
                self.store.delete_older_than(*ms)?;
                self.backlog.pop_front();
                self.stats.vectors_pending.fetch_sub(1, Ordering::Relaxed);
                return Ok(());
            }
            _ => {}
        }
        // With an interim embedder, the main one takes only a small batch, and only when no
        // more than that waits; anything more gets interim vectors now.
        let interim = match &self.interim {
            Some(e) if self.backlog.len() > MAIN_BATCH_WITH_INTERIM => Some(e.clone()),
            _ => None,
        };
        let limit = match (&interim, &self.interim) {
            (Some(_), _) => self.config.interim_batch.max(1),
            (None, Some(_)) => MAIN_BATCH_WITH_INTERIM.min(self.config.batch),
            (None, None) => self.config.batch,
        };
        let mut batch: Vec<&Post> = Vec::new();
        for job in &self.backlog {
            match job {
                VectorJob::Upsert(p) if batch.len() < limit => batch.push(p),
                _ => break,
            }
        }
        let (points, stats) = self.embed_batch(&batch, interim.as_deref()).await?;
        let taken = batch.len();
        let interim_hashes: Vec<u64> = points
            .iter()
            .filter(|p| p.interim)
            .map(|p| p.id_hash)
            .collect();
        self.write(points).await?;
        self.count(stats);
        for h in interim_hashes {
            self.queue_upgrade(h);
        }
        self.stats
            .vectors_interim
            .store(self.upgrades.len() as u64, Ordering::Relaxed);
        self.backlog.drain(..taken);
        self.stats
            .vectors_pending
            .fetch_sub(taken as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Replaces the interim vectors of the newest posts that hold one with the main embedder's.
    /// A post gone from the text index meanwhile is skipped.
    async fn upgrade(&mut self) -> Result<(), crate::IndexError> {
        let take = UPGRADE_BATCH
            .min(self.config.batch)
            .min(self.upgrades.len());
        let hashes: HashSet<u64> = self.upgrades.iter().rev().take(take).copied().collect();
        let posts = self.text.posts_with_hashes(&hashes)?;
        let batch: Vec<&Post> = posts.iter().collect();
        let (points, stats) = self.embed_batch(&batch, None).await?;
        self.write(points).await?;
        self.count(BatchStats {
            // Not new points: `vectors_upgraded` counts these.
            points: 0,
            ..stats
        });
        for _ in 0..take {
            if let Some(h) = self.upgrades.pop_back() {
                self.upgrade_set.remove(&h);
            }
        }
        self.stats
            .vectors_upgraded
            .fetch_add(posts.len() as u64, Ordering::Relaxed);
        self.stats
            .vectors_interim
            .store(self.upgrades.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    async fn write(&self, points: Vec<VectorPoint>) -> Result<(), crate::IndexError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.upsert(points))
            .await
            .map_err(|e| crate::IndexError::internal(format!("vector upsert task failed: {e}")))?
    }

    fn count(&mut self, stats: BatchStats) {
        for (key, v) in stats.fresh {
            self.remember(key, v);
        }
        let n = stats.points;
        self.stats
            .embedded
            .fetch_add(stats.embedded as u64, Ordering::Relaxed);
        self.stats
            .embeddings_reused
            .fetch_add(stats.reused as u64, Ordering::Relaxed);
        self.stats
            .vectors_upserted
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Vectors for `batch`: a near-duplicate's cached main vector where there is one, else
    /// from `interim` when given (marked interim) or the main embedder. The main embedder's
    /// fresh vectors come back for the reuse cache; interim ones never enter it.
    async fn embed_batch(
        &self,
        batch: &[&Post],
        interim: Option<&dyn Embedder>,
    ) -> Result<(Vec<VectorPoint>, BatchStats), crate::IndexError> {
        let mut vectors: Vec<Option<Arc<Vec<f32>>>> = Vec::with_capacity(batch.len());
        let mut to_embed: Vec<String> = Vec::new();
        let mut embed_keys: Vec<u64> = Vec::new();
        let mut seen: HashSet<u64> = HashSet::new();
        for post in batch {
            let key = post.dup_key();
            let cached = self.cache.get(&key).cloned();
            if cached.is_none() && seen.insert(key) {
                embed_keys.push(key);
                to_embed.push(post.text.clone());
            }
            vectors.push(cached);
        }
        let reused = batch.len() - to_embed.len();
        let embedded = match (to_embed.is_empty(), interim) {
            (true, _) => Vec::new(),
            (false, Some(e)) => e.embed(to_embed).await?,
            (false, None) => {
                // Every text the main embedder takes teaches the interim one its space.
                let texts = self.interim.as_ref().map(|_| to_embed.clone());
                let vectors = self.embedder.embed(to_embed).await?;
                if let (Some(i), Some(texts)) = (&self.interim, texts) {
                    i.learn(&texts, &vectors);
                    self.note_fit();
                }
                vectors
            }
        };
        let fresh: HashMap<u64, Arc<Vec<f32>>> = embed_keys
            .iter()
            .copied()
            .zip(embedded.into_iter().map(Arc::new))
            .collect();
        let points: Vec<VectorPoint> = batch
            .iter()
            .zip(vectors)
            .filter_map(|(post, cached)| {
                let (v, approximate) = match cached {
                    Some(v) => (v, false),
                    None => (fresh.get(&post.dup_key()).cloned()?, interim.is_some()),
                };
                let mut point = VectorPoint::new(post, v.as_ref().clone());
                point.interim = approximate;
                Some(point)
            })
            .collect();
        let stats = BatchStats {
            points: points.len(),
            embedded: embed_keys.len(),
            reused,
            fresh: if interim.is_some() {
                HashMap::new()
            } else {
                fresh
            },
        };
        Ok((points, stats))
    }

    /// Publishes what the interim embedder has learned (a refit finishes on its own thread).
    fn note_fit(&self) {
        if let Some(i) = &self.interim {
            *self
                .stats
                .interim_fit
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = i.learned();
        }
    }

    /// Queues a post whose stored vector is interim for an upgrade. Under a sustained rate the
    /// model cannot follow the queue would grow without end: past [`MAX_UPGRADES_QUEUED`] the
    /// oldest are forgotten here (upgrades go newest first, so they were last in line anyway);
    /// their marks stay in the store, and the next reconciliation queues them again.
    fn queue_upgrade(&mut self, h: u64) {
        if self.upgrade_set.insert(h) {
            self.upgrades.push_back(h);
        }
        while self.upgrades.len() > MAX_UPGRADES_QUEUED {
            if let Some(old) = self.upgrades.pop_front() {
                self.upgrade_set.remove(&old);
            }
        }
    }

    fn remember(&mut self, key: u64, vector: Arc<Vec<f32>>) {
        if self.config.reuse_cache == 0 {
            return;
        }
        if self.cache.insert(key, vector).is_none() {
            self.cache_order.push_back(key);
            while self.cache_order.len() > self.config.reuse_cache {
                if let Some(old) = self.cache_order.pop_front() {
                    self.cache.remove(&old);
                }
            }
        }
    }

    /// Makes the vector store hold exactly the text index's posts, and queues the posts whose
    /// stored vector is interim for an upgrade.
    fn reconcile(&mut self) {
        let result = (|| -> Result<(usize, usize), crate::IndexError> {
            self.text
                .reader
                .reload()
                .map_err(crate::IndexError::tantivy)?;
            let text_ids: HashSet<u64> = self.text.id_map()?.into_keys().collect();
            let stored = self.store.all_ids()?;
            let stored_hashes: HashSet<u64> = stored.iter().map(|s| s.id_hash).collect();
            for s in &stored {
                if s.interim && text_ids.contains(&s.id_hash) {
                    self.queue_upgrade(s.id_hash);
                }
            }
            self.stats
                .vectors_interim
                .store(self.upgrades.len() as u64, Ordering::Relaxed);
            let stray: Vec<String> = stored
                .into_iter()
                .filter(|s| !text_ids.contains(&s.id_hash))
                .map(|s| s.post_id)
                .collect();
            let missing: HashSet<u64> = text_ids.difference(&stored_hashes).copied().collect();
            let queued: HashSet<u64> = self
                .backlog
                .iter()
                .filter_map(|j| match j {
                    VectorJob::Upsert(p) => Some(p.id.hash64()),
                    _ => None,
                })
                .collect();
            let missing: HashSet<u64> = missing.difference(&queued).copied().collect();
            if self.config.shared {
                if !stray.is_empty() {
                    tracing::debug!(
                        stray = stray.len(),
                        "points without a post here are left alone: the store is shared"
                    );
                }
            } else if !stray.is_empty() {
                self.store.delete(&stray)?;
            }
            let posts = if missing.is_empty() {
                Vec::new()
            } else {
                self.text.posts_with_hashes(&missing)?
            };
            let n = posts.len();
            self.stats
                .vectors_pending
                .fetch_add(n as u64, Ordering::Relaxed);
            self.backlog
                .extend(posts.into_iter().map(VectorJob::Upsert));
            Ok((n, if self.config.shared { 0 } else { stray.len() }))
        })();
        match result {
            Ok((missing, stray)) => {
                if missing + stray > 0 {
                    tracing::info!(missing, stray, "reconciled vector index with text index");
                    self.stats
                        .reconciled
                        .fetch_add((missing + stray) as u64, Ordering::Relaxed);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "vector reconciliation failed; will retry");
                self.overflow.store(true, Ordering::Release);
            }
        }
    }
}
