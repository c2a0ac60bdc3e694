//! The vector half of the index behind one trait: embedded `qdrant-edge` by default
//! ([`EdgeVectorStore`]), or a Qdrant server or cluster through `qdrant-client`
//! ([`QdrantVectorStore`], `vectors.kind = "qdrant"`). Both keep the same layout, so
//! `tidings migrate-vectors` copies points between them with [`VectorReader::page`].

mod edge;
mod qdrant;

pub use edge::EdgeVectorStore;
pub use qdrant::{QdrantStoreConfig, QdrantVectorStore};

use crate::filter::SearchFilter;
use crate::post::Post;
use crate::IndexError;

/// One post's vector and the payload that filters need.
#[derive(Clone, Debug)]
pub struct VectorPoint {
    pub post_id: String,
    pub id_hash: u64,
    pub created_at_ms: i64,
    pub author: Option<String>,
    pub source: String,
    pub lang: Option<String>,
    pub vector: Vec<f32>,
    /// The vector is an interim approximation (the static table in the main embedder's
    /// space), to be replaced by the main embedder's own when it has time. Kept in the payload
    /// (`"i": true`) so that a restart still upgrades it.
    pub interim: bool,
}

impl VectorPoint {
    pub fn new(post: &Post, vector: Vec<f32>) -> VectorPoint {
        VectorPoint {
            post_id: post.id.to_string(),
            id_hash: post.id.hash64(),
            created_at_ms: post.created_at.timestamp_millis(),
            author: post.author.clone(),
            source: post.source.clone(),
            lang: post.lang.clone(),
            vector,
            interim: false,
        }
    }
}

/// One stored point, without its vector (for reconciliation with the text index).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredId {
    pub id_hash: u64,
    pub post_id: String,
    /// The point holds an interim vector ([`VectorPoint::interim`]).
    pub interim: bool,
}

/// A nearest-neighbour hit.
#[derive(Clone, Debug)]
pub struct VectorHit {
    pub post_id: String,
    pub score: f32,
}

/// The read side of the vector index: filtered nearest-neighbour queries and lookups. This is
/// all that the search side ([`crate::SearchHandle`]) holds. Calls block; callers run them off
/// the async threads.
pub trait VectorReader: Send + Sync {
    /// Top-`limit` nearest points to `vector` under `filter`. `exact` asks for a scan of the
    /// filtered points instead of the HNSW graph (faster and exact when the filter keeps few).
    fn search(
        &self,
        vector: &[f32],
        filter: &SearchFilter,
        limit: usize,
        exact: bool,
    ) -> Result<Vec<VectorHit>, IndexError>;
    /// The stored vector of one post, if present (used to reuse a near-duplicate's embedding).
    fn vector_of(&self, post_id: &str) -> Result<Option<Vec<f32>>, IndexError>;
    /// Post id hash, post id and interim mark of every stored point (for reconciliation with
    /// the text index).
    fn all_ids(&self) -> Result<Vec<StoredId>, IndexError>;
    /// Number of stored points.
    fn count(&self) -> Result<usize, IndexError>;
    /// Every point with its vector, a page of up to `limit` at a time from `offset` (an opaque
    /// cursor, `None` for the first page); the next page's cursor comes back with it.
    fn page(
        &self,
        offset: Option<String>,
        limit: usize,
    ) -> Result<(Vec<VectorPoint>, Option<String>), IndexError>;
    /// `edge` or `qdrant`, for `/readyz`, `/v1/sources` and metrics.
    fn backend(&self) -> &'static str;
    /// Whether the store answers now (a server store pings its server).
    fn health(&self) -> Result<(), IndexError> {
        Ok(())
    }
}

/// The whole vector index, write side included. Only the index's writer side holds it (the
/// vector worker, retention, the optimizer through [`crate::IndexService::vector_store`]);
/// everything else sees it as a [`VectorReader`].
pub trait VectorStore: VectorReader {
    /// Inserts or replaces points and makes them durable before returning.
    fn upsert(&self, points: Vec<VectorPoint>) -> Result<(), IndexError>;
    /// Deletes points by post id (missing ids are fine).
    fn delete(&self, post_ids: &[String]) -> Result<(), IndexError>;
    /// Deletes every point created before `cutoff_ms`.
    fn delete_older_than(&self, cutoff_ms: i64) -> Result<(), IndexError>;
    /// Builds ANN structures; slow, call it off the request path.
    fn optimize(&self) -> Result<(), IndexError>;
    /// Whether an optimisation was started and did not finish (a stop cut it short), so the
    /// next process should run one without waiting for more vectors. A server store's own
    /// optimiser runs on the server: never.
    fn optimize_unfinished(&self) -> bool {
        false
    }
}
