//! `tidings-index`: the post record and the two indexes it lives in.
//!
//! Layout: [`post`] is the record every source converts into; [`analyzer`] the social-aware
//! tokenizer; `text` the tantivy half (schema, BM25, filters) whose stored document is the
//! versioned record in [`stored`]; [`vectors`] the vector half behind [`VectorStore`] (embedded
//! `qdrant-edge` by default; the search side holds only its [`VectorReader`] half, the writer
//! side the whole store); [`embed`] the embedders behind
//! [`Embedder`]; `writer` the single task that owns the text `IndexWriter` and hands
//! committed posts to `vector_worker`, which embeds them asynchronously; [`search`] hybrid
//! retrieval over both. [`IndexService::start`] opens everything and hands out a
//! [`WriteHandle`] (for ingest) and a [`SearchHandle`] (read-only, for agent and api).

pub mod analyzer;
pub mod backoff;
pub mod dedup;
pub mod embed;
mod error;
pub mod filter;
pub mod post;
pub mod rerank;
pub mod script;
pub mod search;
mod stats;
pub mod stored;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod text;
mod thread;
mod vector_worker;
pub mod vectors;
mod writer;

pub use embed::{
    Embedder, InterimFit, LocalEmbedder, OpenAiEmbedder, OpenAiEmbedderConfig, StaticEmbedder,
};
pub use error::IndexError;
pub use post::{Engagement, Post, PostId, PostRefs};
pub use search::{
    Ranker, ScoreBreakdown, SearchFilter, SearchHandle, SearchHit, SearchMode, SearchRequest,
    SearchResults,
};
pub use stats::IndexStats;
pub use vector_worker::VectorWorkerConfig;
pub use vectors::{
    EdgeVectorStore, QdrantStoreConfig, QdrantVectorStore, StoredId, VectorPoint, VectorReader,
    VectorStore,
};
pub use writer::{
    ApplyOutcome, Change, Checkpoint, Pending, UpsertOutcome, WriteHandle, WriterConfig,
};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Everything the index needs to start.
#[derive(Clone, Debug)]
pub struct IndexConfig {
    /// The text index lives in `<data_dir>/text`, the embedded vector index in `<data_dir>/vectors`.
    pub data_dir: PathBuf,
    pub writer: WriterConfig,
    pub vector_worker: VectorWorkerConfig,
}

/// What the two indexes hold (see [`IndexService::inventory`]).
#[derive(Clone, Debug, Default)]
pub struct Inventory {
    /// Live post ids of the text index, each with the number of live documents that carry it
    /// (more than one would be a duplicate).
    pub text: BTreeMap<String, u32>,
    /// Point ids (post ids) of the vector index; `None` without a dense half.
    pub vectors: Option<std::collections::BTreeSet<String>>,
}

/// Which embedder made the vectors of a data dir (`embedder.json` beside `text/`).
const EMBEDDER_MARK: &str = "embedder.json";

/// The embedder name and dimension recorded in a data dir, if any vectors were made there.
pub fn recorded_embedder(data_dir: &std::path::Path) -> Option<(String, usize)> {
    let text = std::fs::read_to_string(data_dir.join(EMBEDDER_MARK)).ok()?;
    let recorded: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some((
        recorded["name"].as_str()?.to_string(),
        usize::try_from(recorded["dim"].as_u64()?).ok()?,
    ))
}

/// Forgets which embedder made the vectors of a data dir (for a rebuild that replaces them).
pub fn forget_embedder(data_dir: &std::path::Path) -> Result<(), IndexError> {
    match std::fs::remove_file(data_dir.join(EMBEDDER_MARK)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(IndexError::internal(format!(
            "remove {}: {e}",
            data_dir.join(EMBEDDER_MARK).display()
        ))),
        _ => Ok(()),
    }
}

/// Refuses to mix two embedders' vectors in one index: the first start with vectors records
/// the embedder's name and dimension; a later start with another one fails with what to do.
/// (Vectors of two models live in different spaces, so their cosines mean nothing together.)
pub fn check_embedder(
    data_dir: &std::path::Path,
    embedder: &dyn Embedder,
) -> Result<(), IndexError> {
    let path = data_dir.join(EMBEDDER_MARK);
    let current = serde_json::json!({"name": embedder.name(), "dim": embedder.dim()});
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let recorded: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                IndexError::internal(format!("{} is not valid JSON: {e}", path.display()))
            })?;
            if recorded["name"] != current["name"] || recorded["dim"] != current["dim"] {
                return Err(IndexError::InvalidInput(format!(
                    "the vectors in {} were made by `{}` ({} dimensions), and this server is set \
                     to embed with `{}` ({} dimensions); vectors of two embedders cannot be \
                     compared. Use the same embedder, or run `tidings reembed` (server \
                     stopped) so every post is embedded again by the new one (it replaces {}/vectors \
                     and {})",
                    data_dir.display(),
                    recorded["name"].as_str().unwrap_or("?"),
                    recorded["dim"],
                    embedder.name(),
                    embedder.dim(),
                    data_dir.display(),
                    path.display(),
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir_all(data_dir)
            .and_then(|()| std::fs::write(&path, current.to_string()))
            .map_err(|e| IndexError::internal(format!("write {}: {e}", path.display()))),
        Err(e) => Err(IndexError::internal(format!(
            "read {}: {e}",
            path.display()
        ))),
    }
}

/// The dense half: where vectors live and what makes them.
pub struct DenseParts {
    pub store: Arc<dyn VectorStore>,
    pub embedder: Arc<dyn Embedder>,
    /// A fast approximation of `embedder` in the same vector space (the static table fitted to
    /// it): posts the embedder cannot take at once get its vectors, replaced later.
    pub interim: Option<Arc<dyn Embedder>>,
}

/// Whether this process writes the vectors (the default) or is a standby that leaves them to
/// another replica sharing the vector store. Cheap to clone.
#[derive(Clone, Debug)]
pub struct VectorWriterRole(Arc<std::sync::atomic::AtomicBool>);

impl VectorWriterRole {
    /// Becomes the writer (`true`) or a standby. Becoming the writer reconciles: posts the text
    /// index holds without a vector are embedded.
    pub fn set(&self, writer: bool) {
        if self.0.swap(writer, Ordering::AcqRel) != writer {
            tracing::info!(writer, "vector writer role changed");
        }
    }

    pub fn is_writer(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The running index: its handles, stats and background threads.
pub struct IndexService {
    pub write: WriteHandle,
    pub search: SearchHandle,
    pub stats: Arc<IndexStats>,
    /// The vector index's write side: the search handle only reads it.
    vector_store: Option<Arc<dyn VectorStore>>,
    writer_thread: Option<std::thread::JoinHandle<()>>,
    vector_worker: Option<vector_worker::VectorWorkerHandle>,
    checkpoints: BTreeMap<String, String>,
}

impl IndexService {
    /// Opens the text index (and the dense parts, when given), starts the writer and the vector
    /// worker, and starts reconciling the two indexes in the background.
    pub fn start(
        config: &IndexConfig,
        dense: Option<DenseParts>,
    ) -> Result<IndexService, IndexError> {
        let text = text::TextIndex::open(&config.data_dir.join("text"))?;
        let checkpoints = text.checkpoints()?;
        let stats = Arc::new(IndexStats::default());
        let (queue, worker, vectors, embedder) = match dense {
            Some(DenseParts {
                store,
                embedder,
                interim,
            }) => {
                check_embedder(&config.data_dir, embedder.as_ref())?;
                if let Some(i) = &interim {
                    if i.dim() != embedder.dim() {
                        return Err(IndexError::InvalidInput(format!(
                            "the interim embedder {} makes {}-d vectors, the embedder {} {}-d",
                            i.name(),
                            i.dim(),
                            embedder.name(),
                            embedder.dim()
                        )));
                    }
                }
                let (queue, worker) = vector_worker::spawn(
                    text.clone(),
                    store.clone(),
                    embedder.clone(),
                    interim,
                    config.vector_worker.clone(),
                    stats.clone(),
                )?;
                (Some(queue), Some(worker), Some(store), Some(embedder))
            }
            None => {
                stats.vectors_ready.store(true, Ordering::Release);
                (None, None, None, None)
            }
        };
        let (write, writer_thread) =
            writer::spawn(text.clone(), config.writer.clone(), queue, stats.clone())?;
        Ok(IndexService {
            write,
            search: SearchHandle {
                text,
                vectors: vectors.clone().map(|v| v as Arc<dyn VectorReader>),
                embedder,
            },
            vector_store: vectors,
            stats,
            writer_thread: Some(writer_thread),
            vector_worker: worker,
            checkpoints,
        })
    }

    /// The switch between writing vectors here and leaving them to another replica (`None`
    /// without a dense half).
    pub fn vector_writer_role(&self) -> Option<VectorWriterRole> {
        self.vector_worker
            .as_ref()
            .map(|w| VectorWriterRole(w.active.clone()))
    }

    /// The vector index with its write side (for the optimizer and tools), when configured.
    pub fn vector_store(&self) -> Option<Arc<dyn VectorStore>> {
        self.vector_store.clone()
    }

    /// Source checkpoints as of the last durable commit before start.
    pub fn checkpoints(&self) -> &BTreeMap<String, String> {
        &self.checkpoints
    }

    /// What both indexes hold, for `tidings verify` and the crash test: every live post id in
    /// the text index (with how often each occurs) and every id in the vector index.
    pub fn inventory(&self) -> Result<Inventory, IndexError> {
        self.search
            .text
            .reader
            .reload()
            .map_err(IndexError::tantivy)?;
        let text = self.search.text.live_ids()?;
        let vectors = match &self.search.vectors {
            Some(store) => Some(store.all_ids()?.into_iter().map(|s| s.post_id).collect()),
            None => None,
        };
        Ok(Inventory { text, vectors })
    }

    /// Commits what is pending, stops the writer, then the vector worker (posts still waiting for
    /// a vector are picked up by reconciliation at the next start).
    pub async fn shutdown(mut self) {
        self.write.shutdown().await;
        let writer = self.writer_thread.take();
        let worker = self.vector_worker.take();
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(t) = writer {
                let _ = t.join();
            }
            if let Some(w) = worker {
                w.stop.store(true, Ordering::Release);
                let _ = w.thread.join();
            }
        })
        .await;
    }

    /// Waits until every committed post has its vector and no interim vector waits for the
    /// main embedder (for the evaluation of the main embedder's vectors).
    pub async fn wait_for_upgrades(&self, progress: impl Fn(u64)) {
        self.wait_for_vectors(&progress).await;
        if !self.vector_worker.as_ref().is_some_and(|w| w.upgrades) {
            return;
        }
        loop {
            let interim = self.stats.vectors_interim.load(Ordering::Relaxed);
            progress(interim);
            if interim == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Waits until every committed post has its vector, interim or the embedder's own (for CLI
    /// ingest and tests).
    pub async fn wait_for_vectors(&self, progress: impl Fn(u64)) {
        if self.vector_worker.is_none() {
            return;
        }
        loop {
            let pending = self.stats.vectors_pending.load(Ordering::Relaxed);
            progress(pending);
            if self.stats.vectors_ready.load(Ordering::Acquire) && pending == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

#[cfg(test)]
mod embedder_mark_tests {
    use super::*;

    struct Named(&'static str, usize);

    impl Embedder for Named {
        fn dim(&self) -> usize {
            self.1
        }
        fn name(&self) -> &str {
            self.0
        }
        fn embed(
            &self,
            texts: Vec<String>,
        ) -> futures::future::BoxFuture<'_, Result<Vec<Vec<f32>>, IndexError>> {
            Box::pin(async move { Ok(texts.iter().map(|_| vec![1.0; self.1]).collect()) })
        }
    }

    #[test]
    fn one_data_dir_keeps_one_embedder() {
        let dir = tempfile::tempdir().unwrap();
        let minilm = Named("local:all-minilm-l6-v2", 384);
        check_embedder(dir.path(), &minilm).unwrap();
        check_embedder(dir.path(), &minilm).unwrap();
        let err = check_embedder(dir.path(), &Named("static:all-minilm-l6-v2", 384)).unwrap_err();
        assert!(err.to_string().contains("cannot be compared"), "{err}");
        assert!(check_embedder(dir.path(), &Named("local:all-minilm-l6-v2", 256)).is_err());
    }
}
