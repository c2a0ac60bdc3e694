//! The server on a real Qdrant server (`vectors.kind = "qdrant"`): vectors written there and
//! searched by meaning; a Qdrant outage leaves search answering by BM25 with a `degraded` flag
//! and `/readyz` degraded, posts pushed meanwhile get their vectors once it is back; and
//! `tidings migrate-vectors` copies the collection into an embedded shard and back, counted.

use crate::helpers::{hit_ids, post, settings, spawn_with_settings, TestApp};
use crate::qdrant_server::QdrantServer;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn search_until(app: &TestApp, body: Value, found: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, response) = app.search(body.clone()).await;
        // 503 while the vector store comes back (reads fail fast for a short cool-down).
        assert!(status == 200 || status == 503, "{status} {response}");
        if status == 200 && found(&response) {
            return response;
        }
        assert!(Instant::now() < deadline, "not found in 60 s: {response}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn migrate(data_dir: &std::path::Path, url: &str, collection: &str, to: &str) -> Value {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(["migrate-vectors", "--to", to, "--batch", "2", "--data-dir"])
        .arg(data_dir)
        .env("TIDINGS__VECTORS__URL", url)
        .env("TIDINGS__VECTORS__COLLECTION", collection)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run tidings migrate-vectors");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "migrate-vectors --to {to} failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).expect("a JSON report")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vectors_on_a_qdrant_server_survive_its_outage_and_migrate_both_ways() {
    let mut qdrant = tokio::task::block_in_place(QdrantServer::start);
    let data = tempfile::tempdir().unwrap();
    let mut s = settings(data.path());
    s.vectors.kind = "qdrant".into();
    s.vectors.url = qdrant.url();
    s.vectors.collection = "api".into();
    let mut app = spawn_with_settings(s).await;

    let (status, body) = app
        .push(&json!([
            post(
                "q1",
                "The river burst its banks and flooded the town centre",
                "2026-05-01T10:00:00Z"
            ),
            post(
                "q2",
                "Tickets for the concert go on sale on Friday",
                "2026-05-01T10:05:00Z"
            ),
            post(
                "q3",
                "東京で震度5弱の地震がありました",
                "2026-05-01T10:10:00Z"
            ),
        ]))
        .await;
    assert_eq!(status, 200, "{body}");
    app.vectors_caught_up().await;
    let window = json!({"from": "2026-04-01T00:00:00Z", "as_of": "2026-05-02T00:00:00Z"});
    let by_meaning = |q: &str| {
        let mut b = json!({"q": q, "mode": "vector", "limit": 1});
        b.as_object_mut()
            .unwrap()
            .extend(window.as_object().unwrap().clone());
        b
    };
    let (status, body) = app
        .search(by_meaning("water in the streets after the storm"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(hit_ids(&body), ["q1"], "{body}");
    let (_, ready) = app.get("/readyz").await;
    let ready: Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(
        ready["checks"]["vector_index"]["backend"], "qdrant",
        "{ready}"
    );
    assert_eq!(ready["checks"]["vector_index"]["ok"], true, "{ready}");
    let (_, collection) = qdrant.nodes[0].get("/collections/api").unwrap();
    assert!(collection.contains("\"points_count\":3"), "{collection}");

    // Qdrant goes down: search still answers by BM25 and says so; /readyz is degraded; a post
    // pushed now is acknowledged (its vector waits).
    qdrant.nodes[0].kill();
    let mut hybrid = json!({"q": "concert tickets", "limit": 3});
    hybrid
        .as_object_mut()
        .unwrap()
        .extend(window.as_object().unwrap().clone());
    let (status, body) = app.search(hybrid.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        hit_ids(&body).first().map(String::as_str),
        Some("q2"),
        "{body}"
    );
    assert!(
        body["degraded"]
            .as_str()
            .is_some_and(|d| d.contains("dense")),
        "{body}"
    );
    let (status, body) = app.search(by_meaning("flood")).await;
    assert_eq!(status, 503, "vector-only search cannot answer: {body}");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    let (_, ready) = app.get("/readyz").await;
    let ready: Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert_eq!(ready["checks"]["vector_index"]["ok"], false, "{ready}");
    let (status, body) = app
        .push(&json!([post(
            "q4",
            "Volunteers hand out sandbags along the flooded river",
            "2026-05-01T10:20:00Z"
        )]))
        .await;
    assert_eq!(status, 200, "{body}");
    let mut text = json!({"q": "sandbags", "mode": "text"});
    text.as_object_mut()
        .unwrap()
        .extend(window.as_object().unwrap().clone());
    search_until(&app, text, |b| hit_ids(b) == ["q4"]).await;

    // Back: the waiting vector is written, search by meaning finds it.
    tokio::task::block_in_place(|| qdrant.nodes[0].restart());
    search_until(
        &app,
        by_meaning("people filling bags to hold back water"),
        |b| hit_ids(b) == ["q4"],
    )
    .await;
    app.vectors_caught_up().await;
    let (_, ready) = app.get("/readyz").await;
    assert!(ready.contains("\"status\":\"ready\""), "{ready}");
    app.stop().await;

    // migrate-vectors: the collection into an empty data dir's embedded shard, then that shard
    // into a new collection; every point arrives, with its vector.
    let url = qdrant.url();
    let copy = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(copy.path()).unwrap();
    let report = tokio::task::block_in_place(|| migrate(copy.path(), &url, "api", "edge"));
    assert_eq!(report["complete"], true, "{report}");
    assert_eq!(report["from"], "qdrant", "{report}");
    assert_eq!(report["copied"], 4, "{report}");
    assert_eq!(report["target_points"], 4, "{report}");
    let report = tokio::task::block_in_place(|| migrate(copy.path(), &url, "api-copy", "qdrant"));
    assert_eq!(report["complete"], true, "{report}");
    assert_eq!(
        (
            report["source_points"].as_u64(),
            report["target_points"].as_u64()
        ),
        (Some(4), Some(4)),
        "{report}"
    );
    assert!(!copy.path().join("migrate-vectors-qdrant.cursor").exists());
}
