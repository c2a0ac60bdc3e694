//! The fuzz targets' seed corpus (the captured messages in `../shared/data/formats/`) and
//! deterministic mutations of it, through the same entry points the cargo-fuzz targets call
//! (`tidings_ingest::fuzz`), in every `cargo test`: originals, every message cut at several
//! byte offsets (inside multi-byte characters too), bytes flipped, and the text replaced by
//! other scripts. No input may panic. The long fuzzing runs are `make fuzz` (see README).

use proptest::prelude::*;
use std::path::PathBuf;
use tidings_ingest::fuzz;

fn formats() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/formats")
}

fn lines(path: &str) -> Vec<Vec<u8>> {
    let text = std::fs::read(formats().join(path))
        .unwrap_or_else(|e| panic!("{path}: {e} (the shared data sits beside the repository)"));
    text.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// The Mastodon transcript as `event\ndata` messages.
fn mastodon_messages() -> Vec<Vec<u8>> {
    lines("mastodon_streaming/docs_streaming_sse_events.jsonl")
        .into_iter()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_slice(&l).ok()?;
            let event = v["event"].as_str()?;
            let data = v["data_raw"]
                .as_str()
                .or_else(|| v["data"].as_str())
                .unwrap_or("");
            Some(format!("{event}\n{data}").into_bytes())
        })
        .collect()
}

/// Cuts, flips and script swaps of one message.
fn mutations(raw: &[u8], seed: u64) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for k in 1..8 {
        out.push(raw[..raw.len() * k / 8].to_vec());
    }
    let mut state = seed | 1;
    for _ in 0..6 {
        let mut m = raw.to_vec();
        for _ in 0..3 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if !m.is_empty() {
                let i = (state as usize) % m.len();
                m[i] ^= (state >> 32) as u8 | 1;
            }
        }
        out.push(m);
    }
    let text = String::from_utf8_lossy(raw);
    for script in [
        "地震です 東京で大きな揺れ",
        "مرحبا بالعالم",
        "👨‍👩‍👧‍👦🏳️‍🌈",
        "e\u{301}\u{200b}\u{202e}",
        "\\ud800 lone",
    ] {
        out.push(
            text.replacen("\"text\":\"", &format!("\"text\":\"{script} "), 1)
                .into_bytes(),
        );
        out.push(
            text.replacen("\"text\": \"", &format!("\"text\": \"{script} "), 1)
                .into_bytes(),
        );
    }
    out
}

#[test]
fn jetstream_corpus_and_mutations() {
    let seeds = lines("bluesky_jetstream/golden_v1.jsonl");
    let produced: usize = seeds.iter().map(|s| fuzz::jetstream(s)).sum();
    assert!(produced > 0, "the capture holds posts");
    for (i, s) in seeds
        .iter()
        .chain(lines("bluesky_jetstream/expected_v1.jsonl").iter())
        .enumerate()
    {
        for m in mutations(s, i as u64) {
            fuzz::jetstream(&m);
        }
    }
}

#[test]
fn mastodon_corpus_and_mutations() {
    let seeds = mastodon_messages();
    let produced: usize = seeds.iter().map(|s| fuzz::mastodon(s)).sum();
    assert!(produced > 0, "the transcript holds statuses");
    for (i, s) in seeds.iter().enumerate() {
        for m in mutations(s, i as u64) {
            fuzz::mastodon(&m);
        }
    }
}

#[test]
fn x_corpus_and_mutations() {
    let mut seeds = lines("twitter_v2_stream/streaming_output.jsonl");
    seeds.extend(lines("twitter_v2_stream/streaming_output_with_error.jsonl"));
    let produced: usize = seeds.iter().map(|s| fuzz::x_stream(s)).sum();
    assert!(produced > 0, "the capture holds tweets");
    for (i, s) in seeds.iter().enumerate() {
        for m in mutations(s, i as u64) {
            fuzz::x_stream(&m);
        }
    }
}

#[test]
fn jsonl_and_validation_corpus() {
    let feed = std::fs::read(formats().join("../tweetqa/posts.jsonl")).expect("tweetqa posts");
    let head: Vec<u8> = feed
        .split(|b| *b == b'\n')
        .take(200)
        .collect::<Vec<_>>()
        .join(&b'\n');
    assert!(fuzz::jsonl(&head) > 0);
    for (i, line) in head.split(|b| *b == b'\n').enumerate().take(60) {
        fuzz::validate_record(line);
        for m in mutations(line, i as u64) {
            fuzz::validate_record(&m);
            fuzz::jsonl(&m);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Arbitrary bytes (invalid UTF-8, NULs, lone surrogate escapes in JSON) into every entry.
    #[test]
    fn arbitrary_bytes_never_panic(raw in prop::collection::vec(any::<u8>(), 0..600)) {
        fuzz::validate_record(&raw);
        fuzz::jsonl(&raw);
        fuzz::jetstream(&raw);
        fuzz::mastodon(&raw);
        fuzz::x_stream(&raw);
    }

    /// Records of arbitrary text in any script, as JSON with escapes a person never types.
    #[test]
    fn any_script_records(text in tidings_index::testing::any_text(), author in tidings_index::testing::short_text()) {
        let record = serde_json::json!({"id": "p1", "text": text, "author": author, "created_at": "2024-03-01T00:00:00Z"});
        let line = record.to_string();
        fuzz::validate_record(line.as_bytes());
        let escaped = line.replacen("\"text\":\"", "\"text\":\"\\ud800\\udfff\\u0000", 1);
        fuzz::validate_record(escaped.as_bytes());
        fuzz::jsonl(format!("{line}\n{escaped}\n").as_bytes());
        let jet = serde_json::json!({"did": "did:plc:x", "time_us": 1, "kind": "commit", "commit": {
            "operation": "create", "collection": "app.bsky.feed.post", "rkey": "k",
            "record": {"text": text, "createdAt": "2024-03-01T00:00:00Z",
                       "facets": [{"index": {"byteStart": 1, "byteEnd": 5}, "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": author}]}]}}});
        fuzz::jetstream(jet.to_string().as_bytes());
    }
}
