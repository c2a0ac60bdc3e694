//! Entry points for the fuzz targets (`fuzz/`, cargo-fuzz) and the corpus test that replays
//! their seeds in every `cargo test`: each runs raw bytes through exactly the code a live
//! source runs (validation, the JSONL reader, the Jetstream, Mastodon and X parsers), with a
//! context that keeps nothing. They return what was produced so the optimiser keeps the work.

use crate::validate::{validate_json, ValidationConfig};
use crate::SourceEvent;
use chrono::Utc;

/// One record (as bytes; invalid UTF-8 is a rejection, as at the HTTP edge) through validation.
pub fn validate_record(raw: &[u8]) -> bool {
    match std::str::from_utf8(raw) {
        Ok(text) => validate_json(text, "fuzz", &ValidationConfig::default(), Utc::now()).is_ok(),
        Err(_) => false,
    }
}

/// A JSONL byte stream through the reader (line splitting, UTF-8 and size checks, validation);
/// returns the events it produced.
pub fn jsonl(raw: &[u8]) -> usize {
    let runtime = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(r) => r,
        Err(_) => return 0,
    };
    runtime.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<SourceEvent>(4096);
        let reader = async {
            let _ =
                crate::jsonl::read_jsonl(raw, "fuzz", &ValidationConfig::default(), 7, &tx).await;
            drop(tx);
        };
        let mut events = 0usize;
        let drain = async {
            while rx.recv().await.is_some() {
                events += 1;
            }
        };
        tokio::join!(reader, drain);
        events
    })
}

/// One Jetstream WebSocket message.
pub fn jetstream(raw: &[u8]) -> usize {
    crate::sources::jetstream::parse_one(raw)
}

/// One Mastodon streaming event: the first line of `raw` is the event name, the rest its data.
pub fn mastodon(raw: &[u8]) -> usize {
    let text = String::from_utf8_lossy(raw);
    let (event, data) = text.split_once('\n').unwrap_or((&text, ""));
    crate::sources::mastodon::parse_one(event, data)
}

/// One line of the X filtered stream.
pub fn x_stream(raw: &[u8]) -> usize {
    crate::sources::xstream::parse_one(raw)
}
