//! `tidings-ingest`: turns raw records from sources into validated posts and feeds them to the
//! index's single writer.
//!
//! Layout: [`validate`] checks and normalises one record (the only place that does);
//! [`jsonl`] reads JSONL/NDJSON from any byte stream (files, stdin, HTTP bodies); [`replay`]
//! replays a feed in timestamp order; [`pipeline`] batches [`SourceEvent`]s into the index and
//! counts what happened. A live source (firehose, broker) is one more producer of
//! [`SourceEvent`]s with a checkpoint `position`.

pub mod fuzz;
pub mod jsonl;
pub mod pipeline;
pub mod record;
pub mod replay;
pub mod sources;
pub mod validate;

pub use pipeline::{run_pipeline, IngestSummary, RejectedRecord};
pub use validate::{
    validate, validate_json, validate_json_with_id, Rejection, RejectionCode, ValidationConfig,
};

use tidings_index::Post;

/// What a source produces.
#[derive(Debug)]
pub enum SourceEvent {
    /// Valid posts, and the source position reached after them (stored with their commit).
    Posts {
        posts: Vec<Post>,
        position: Option<String>,
        bytes: u64,
    },
    /// A record that failed validation; the source goes on.
    Rejected {
        line: u64,
        id: Option<String>,
        rejection: Rejection,
    },
}
