//! The `tidings` binary's library half: configuration, telemetry and the wiring of the crates,
//! so integration tests build exactly what `tidings serve` runs.
//!
//! Layout: [`config`] loads layered settings; [`app`] opens the index and serves the API;
//! [`ask`] is the terminal client of the chat API; [`bench`] and [`eval`] are the benchmark and retrieval-evaluation commands.

pub mod app;
pub mod ask;
pub mod bench;
pub mod bench_agent;
pub mod bench_nats;
pub mod config;
pub mod digest_cli;
pub mod eval;
pub mod live_cli;
pub mod models;
pub mod telemetry;
