//! The index crate's error type: one variant per case a caller branches on.

/// What can go wrong in the index; `api` maps each variant to a status and a stable code.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The caller asked for something malformed (bad filter, bad time range).
    #[error("{0}")]
    InvalidInput(String),
    /// A component is not available (the writer stopped, the embedder endpoint is down).
    #[error("{0}")]
    Unavailable(String),
    /// A call did not finish in time.
    #[error("{0}")]
    Timeout(String),
    /// Anything else: a bug or an I/O failure, with its cause in the message.
    #[error("{0}")]
    Internal(String),
}

impl IndexError {
    pub(crate) fn internal(msg: impl Into<String>) -> IndexError {
        IndexError::Internal(msg.into())
    }

    pub(crate) fn tantivy(e: tantivy::TantivyError) -> IndexError {
        IndexError::Internal(format!("text index: {e}"))
    }

    pub(crate) fn writer_gone() -> IndexError {
        IndexError::Unavailable("the index writer has stopped".into())
    }
}
