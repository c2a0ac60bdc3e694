//! The `tidings` binary's library half: configuration, telemetry and the wiring of the crates,
//! so integration tests (and `tidings-tools`) build exactly what `tidings serve` runs.
//!
//! Layout: [`config`] loads layered settings; [`app`] opens the index and serves the API;
//! [`telemetry`] sets up logging. The command line itself is the binary's `cli/` folder.

pub mod app;
pub mod config;
pub mod telemetry;
