//! End-to-end tests: the real server (tantivy, qdrant-edge, the local embedder) on 127.0.0.1:0,
//! driven over HTTP. One binary, one file per feature, shared helpers.

mod helpers;
#[path = "../../index/tests/support/qdrant_server.rs"]
mod qdrant_server;

mod chat;
mod conversations;
mod crash;
mod digests;
mod embedders;
mod errors;
mod keys;
mod lifecycle;
mod multilingual;
mod openai_sdk;
mod openapi;
mod posts;
mod qdrant;
mod recovery;
mod replicas;
mod search;
mod upstream;
