//! Health, readiness, metrics, restart persistence and reconciliation, retention.

use crate::helpers::{hit_ids, post, spawn_app, spawn_app_in};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_and_metrics() {
    let mut app = spawn_app().await;
    let (status, body) = app.get("/healthz").await;
    assert_eq!((status, body.contains("ok")), (200, true));
    app.push(&json!([post(
        "h1",
        "hello metrics",
        "2024-03-01T00:00:00Z"
    )]))
    .await;
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["checks"]["text_index"]["posts"], 1);
    let (status, metrics) = app.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("index_posts_inserted_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "api_http_requests_total{route=\"/v1/posts\",method=\"POST\",status=\"200\"} 1"
        ),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_survive_restart_and_indexes_reconcile() {
    let temp = tempfile::tempdir().unwrap();
    let mut app = spawn_app_in(temp.path().to_path_buf()).await;
    app.push(&json!([
        post(
            "p1",
            "Tornado warning for the county until 9pm",
            "2024-03-01T10:00:00Z"
        ),
        post(
            "p2",
            "Hail the size of golf balls reported downtown",
            "2024-03-01T10:05:00Z"
        ),
    ]))
    .await;
    app.stop().await;
    // Text only (no vectors yet), as `tidings ingest --no-vectors` would leave it.
    {
        let mut s = crate::helpers::settings(temp.path());
        s.embedder.kind = "none".into();
        let svc = tidings::app::open_index(&s, false).unwrap();
        let posts = vec![tidings_ingest::validate_json(
            r#"{"id":"p3","text":"Funnel cloud spotted west of town","created_at":"2024-03-01T10:10:00Z"}"#,
            "test",
            &Default::default(),
            chrono::Utc::now(),
        )
        .unwrap()];
        svc.write.upsert(posts, None).await.unwrap();
        svc.shutdown().await;
    }
    let mut app = spawn_app_in(temp.path().to_path_buf()).await;
    let (_, r) = app
        .search(json!({ "q": "tornado hail funnel", "mode": "text" }))
        .await;
    assert_eq!(hit_ids(&r).len(), 3, "{r}");
    app.vectors_caught_up().await;
    // p3 had no vector: reconciliation at start embedded it.
    let (_, r) = app
        .search(json!({ "q": "rotating cloud seen near the town", "mode": "vector", "limit": 1 }))
        .await;
    assert_eq!(hit_ids(&r), vec!["p3"], "{r}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_posts_from_both_indexes() {
    let mut app = spawn_app().await;
    let recent = chrono::Utc::now() - chrono::Duration::hours(1);
    app.push(&json!([
        post("old1", "ancient news about the harbour", "2020-01-01T00:00:00Z"),
        { "id": "new1", "text": "fresh news about the harbour", "created_at": recent },
    ]))
    .await;
    app.vectors_caught_up().await;
    let write = app
        .app
        .as_ref()
        .unwrap()
        .index
        .lock()
        .await
        .as_ref()
        .unwrap()
        .write
        .clone();
    let removed = tidings::app::retention_once(&write, std::time::Duration::from_secs(30 * 86_400))
        .await
        .unwrap();
    assert_eq!(removed, 1);
    app.vectors_caught_up().await;
    let (_, r) = app
        .search(json!({ "q": "harbour news", "mode": "text" }))
        .await;
    assert_eq!(hit_ids(&r), vec!["new1"]);
    let (_, r) = app
        .search(json!({ "q": "harbour news", "mode": "vector" }))
        .await;
    assert_eq!(hit_ids(&r), vec!["new1"], "{r}");
    // Re-pushing the expired post inserts it again (the dedup map forgot it).
    let (_, body) = app
        .push(&json!([post(
            "old1",
            "ancient news about the harbour",
            "2020-01-01T00:00:00Z"
        )]))
        .await;
    assert_eq!(body["inserted"], 1, "{body}");
    app.stop().await;
}
