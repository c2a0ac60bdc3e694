//! Sentence embedders behind one trait: a local all-MiniLM-L6-v2 run in-process with candle,
//! a static embedder distilled from it (`distilled.rs`), and any OpenAI-compatible
//! `/v1/embeddings` endpoint.

mod distilled;
/// The interim table's fit (public for `examples/approx_space.rs`).
#[doc(hidden)]
pub mod fit;
mod local;
mod openai;

pub use distilled::StaticEmbedder;
pub use local::LocalEmbedder;
pub use openai::{OpenAiEmbedder, OpenAiEmbedderConfig};

use crate::IndexError;
use futures::future::BoxFuture;

/// Turns texts into unit-length vectors. Implementations run their CPU or network work off the
/// async threads; callers may await them from any task.
pub trait Embedder: Send + Sync {
    /// Number of dimensions of every vector this embedder returns.
    fn dim(&self) -> usize;
    /// A short name for logs and metrics (`local:all-minilm-l6-v2`, `openai:text-embedding-3-small`).
    fn name(&self) -> &str;
    /// One L2-normalised vector per text, in order.
    fn embed(&self, texts: Vec<String>) -> BoxFuture<'_, Result<Vec<Vec<f32>>, IndexError>>;
    /// Texts another (better) embedder has just embedded, with its vectors: an interim embedder
    /// learns from them to come closer to it. Cheap; any slow work runs elsewhere. Embedders
    /// that do not learn ignore them (the default).
    fn learn(&self, _texts: &[String], _vectors: &[Vec<f32>]) {}
    /// What [`Embedder::learn`] has done so far; `None` for an embedder that does not learn.
    fn learned(&self) -> Option<InterimFit> {
        None
    }
}

/// What an interim embedder has learned from the main one.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct InterimFit {
    /// Pairs (a text, the main embedder's vector) seen.
    pub pairs: u64,
    /// Corrections fitted on them and put in use.
    pub refits: u64,
    /// Mean cosine between the interim and the main embedder's vectors on held-out pairs,
    /// with the correction in use (`None` before the first refit was tried).
    pub cosine: Option<f32>,
}

/// Scales `v` to unit length (no-op for the zero vector).
pub(crate) fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        for x in v.iter_mut() {
            *x /= norm;
        }
    }
}
