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
