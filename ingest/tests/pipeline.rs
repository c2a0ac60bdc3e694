//! File and stdin ingest: batches reach the writer in the order they were read, so a later
//! copy of a post wins however many batches are in flight.

use std::time::Duration;
use tidings_index::{IndexConfig, IndexService, PostId, WriterConfig};
use tidings_ingest::jsonl::read_jsonl;
use tidings_ingest::{run_pipeline, ValidationConfig};
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_lines_win_with_many_batches_in_flight() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = IndexConfig {
        data_dir: dir.path().to_path_buf(),
        writer: WriterConfig {
            commit_interval: Duration::from_millis(5),
            ..WriterConfig::default()
        },
        vector_worker: Default::default(),
    };
    let svc = IndexService::start(&config, None).expect("index");
    // 40 versions of each of 25 posts, in batches of 3 lines, with up to 2,000 posts in
    // flight: every version but the last must lose.
    let mut jsonl = String::new();
    for version in 0..40 {
        for id in 0..25 {
            jsonl.push_str(&format!(
                "{{\"id\": \"p{id}\", \"text\": \"post {id} 版 {version} 東京\", \"created_at\": \"2024-03-01T00:00:00Z\"}}\n"
            ));
        }
    }
    let (tx, rx) = mpsc::channel(64);
    let write = svc.write.clone();
    let pipeline =
        tokio::spawn(async move { run_pipeline(rx, &write, None, 10, 2_000, |_| {}).await });
    read_jsonl(
        jsonl.as_bytes(),
        "file",
        &ValidationConfig::default(),
        3,
        &tx,
    )
    .await
    .expect("read");
    drop(tx);
    let summary = pipeline.await.expect("join").expect("pipeline");
    assert_eq!(summary.accepted, 25, "{summary:?}");
    assert_eq!(
        summary.accepted + summary.updated + summary.duplicates,
        1000
    );
    for id in 0..25 {
        let post = svc
            .search
            .get(&PostId::parse(&format!("p{id}")).expect("id"))
            .expect("get")
            .expect("stored");
        assert_eq!(
            post.text,
            format!("post {id} 版 39 東京"),
            "an older version won"
        );
    }
    svc.shutdown().await;
}
