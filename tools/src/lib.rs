//! The evaluation and benchmarks of Tidings, as a library for the `tidings-tools` binary.
//!
//! [`eval`] measures retrieval and answer quality on the real data and holds CI's floors;
//! [`bench`] measures ingest, search and embedders against raw tantivy in the same process,
//! with [`bench_http`] the figures through the server (a search's cost per layer, freshness);
//! [`bench_agent`] the answering path (time to first token per local model, agent overhead);
//! [`bench_nats`] ingest from NATS JetStream; [`bench_replicas`] two replicas sharing NATS,
//! PostgreSQL and a Qdrant collection.

pub mod bench;
pub mod bench_agent;
pub mod bench_http;
pub mod bench_nats;
pub mod bench_replicas;
pub mod eval;
