//! Counters the index keeps for `/metrics` and `/readyz`.

use crate::InterimFit;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Mutex;

/// Monotonic counters and gauges, updated by the writer and the vector worker.
#[derive(Debug, Default)]
pub struct IndexStats {
    /// Live posts in the text index (gauge).
    pub posts: AtomicU64,
    pub inserted: AtomicU64,
    pub updated: AtomicU64,
    pub duplicates: AtomicU64,
    pub commits: AtomicU64,
    pub commit_errors: AtomicU64,
    pub last_commit_micros: AtomicU64,
    /// Points written to the vector index (an interim vector replaced later counts once, here;
    /// the replacement in `vectors_upgraded`).
    pub vectors_upserted: AtomicU64,
    /// Texts actually run through an embedder: the interim one's and the model's (a post given
    /// an interim vector and upgraded later counts twice).
    pub embedded: AtomicU64,
    /// Vectors reused from a near-duplicate instead of embedding again.
    pub embeddings_reused: AtomicU64,
    pub embed_errors: AtomicU64,
    /// Vector jobs (posts to embed, deletes) not yet applied (gauge).
    pub vectors_pending: AtomicU64,
    /// Jobs that did not fit the vector queue; reconciliation picks them up.
    pub vector_queue_overflow: AtomicU64,
    /// Posts repaired by reconciliation (missing vectors embedded, stray vectors removed).
    pub reconciled: AtomicU64,
    /// Posts whose stored vector is interim, waiting for the main embedder (gauge).
    pub vectors_interim: AtomicU64,
    /// Interim vectors replaced by the main embedder's.
    pub vectors_upgraded: AtomicU64,
    /// Whether the vector half has caught up since start (reconciliation done).
    pub vectors_ready: AtomicBool,
    /// What the interim embedder has learned from the main one (`None` without one).
    pub interim_fit: Mutex<Option<InterimFit>>,
}

impl IndexStats {
    /// [`IndexStats::interim_fit`] now.
    pub fn interim_fit(&self) -> Option<InterimFit> {
        *self
            .interim_fit
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
