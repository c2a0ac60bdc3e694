//! Raw bytes through `tidings_ingest::fuzz::jsonl`, the code a live source runs.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tidings_ingest::fuzz::jsonl(data);
});
