//! Digests: the top stories of a window, summarised and cited, on demand or on a schedule.
//!
//! `routes` (thin handlers) over `service` (load, run, deliver, declared digests); `types` the
//! request bodies and their validation; `views` the JSON shapes; `feed` the Atom feed;
//! `schedule` what the scheduler runs; `scheduler` the clock (cron in IANA zones, intervals,
//! missed slots); `webhook` signing and delivery; `output` a run's stories as JSON.

mod feed;
pub(crate) mod output;
pub(crate) mod routes;
pub(crate) mod schedule;
pub mod scheduler;
pub(crate) mod service;
mod types;
mod views;
pub mod webhook;
