//! One file per `tidings` command: its arguments (clap) and its body. `main.rs` only parses
//! and dispatches.

pub(crate) mod ask;
pub(crate) mod digest;
pub(crate) mod ingest;
pub(crate) mod keys;
pub(crate) mod live;
pub(crate) mod models;
pub(crate) mod search;
pub(crate) mod serve;
pub(crate) mod vectors;
