//! Measures the local embedder on a JSONL file: `cargo run --example embed_speed -- MODEL_DIR FILE N`.
use std::time::Instant;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let e = tidings_index::LocalEmbedder::load(std::path::Path::new(&args[1]), 1).expect("load");
    let n: usize = args[3].parse().expect("n");
    let texts: Vec<String> = std::fs::read_to_string(&args[2])
        .expect("read")
        .lines()
        .take(n)
        .filter_map(|l| {
            serde_json::from_str::<serde_json::Value>(l).ok()?["text"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    e.embed_blocking(&texts[..32]).expect("warm");
    for batch in [1usize, 4, 8, 16, 32, 64] {
        let t = Instant::now();
        for c in texts.chunks(batch) {
            e.embed_blocking(c).expect("embed");
        }
        println!(
            "batch {batch}: {:.1} posts/s",
            texts.len() as f64 / t.elapsed().as_secs_f64()
        );
    }
}
