//! Pushing posts: per-item results, idempotency, edits, deletes, NDJSON.

use crate::helpers::{hit_ids, post, spawn_app};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_posts_are_searchable_when_acknowledged() {
    let mut app = spawn_app().await;
    let (status, body) = app
        .push(&json!([
            post(
                "a1",
                "Flood warning issued for the Bow river in Calgary",
                "2024-03-01T10:00:00Z"
            ),
            post(
                "a2",
                "Marathon results are in, great day for runners",
                "2024-03-01T10:05:00Z"
            ),
        ]))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["durable"], true);
    assert_eq!(body["inserted"], 2);
    assert_eq!(body["results"][0]["status"], "inserted");
    // Durable means committed and the reader reloaded: visible to the very next read.
    let (status, found) = app
        .search(json!({ "q": "flood calgary", "mode": "text" }))
        .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(hit_ids(&found), vec!["a1"]);
    let (status, one) = app.get("/v1/posts/a2").await;
    assert_eq!(status, 200);
    assert!(one.contains("Marathon"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeat_pushes_are_idempotent_and_edits_replace() {
    let mut app = spawn_app().await;
    let p = post(
        "d1",
        "Power outage downtown after the storm",
        "2024-03-01T10:00:00Z",
    );
    assert_eq!(app.push(&json!([p.clone()])).await.1["inserted"], 1);
    let (_, again) = app.push(&json!([p.clone(), p.clone()])).await;
    assert_eq!(again["duplicates"], 2, "{again}");
    let edited = post(
        "d1",
        "Power restored downtown after the storm",
        "2024-03-01T10:00:00Z",
    );
    let (_, body) = app.push(&json!([edited])).await;
    assert_eq!(body["updated"], 1, "{body}");
    let (_, found) = app
        .search(json!({ "q": "power downtown storm", "mode": "text" }))
        .await;
    let hits = found["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 1, "one post per id: {found}");
    assert!(hits[0]["text"].as_str().unwrap().contains("restored"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_items_are_rejected_one_by_one_and_neighbours_survive() {
    let mut app = spawn_app().await;
    let (status, body) = app
        .push(&json!([
            post("ok1", "Bridge closed on highway 1", "2024-03-01T10:00:00Z"),
            { "id": "bad1", "created_at": "2024-03-01T10:00:00Z" },
            post("bad2", "future", "2999-01-01T00:00:00Z"),
            post("ok2", "Bridge reopened on highway 1", "2024-03-01T11:00:00Z"),
        ]))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["inserted"].as_u64(), body["rejected"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(body["results"][1]["error"]["code"], "missing_field");
    assert_eq!(body["results"][1]["error"]["field"], "text");
    assert_eq!(body["results"][2]["error"]["field"], "created_at");
    let (status, all_bad) = app.push(&json!([{ "text": "no id" }])).await;
    assert_eq!(status, 422, "{all_bad}");
    assert_eq!(all_bad["results"][0]["error"]["code"], "missing_field");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndjson_with_a_truncated_line() {
    let mut app = spawn_app().await;
    let body = b"{\"id\":\"n1\",\"text\":\"Evacuation centre open at the school\",\"created_at\":\"2024-03-01T10:00:00Z\"}\n{\"id\":\"n2\",\"text\":\"trunc\n{\"id\":\"n3\",\"text\":\"Shelter needs blankets\",\"created_at\":\"2024-03-01T10:01:00Z\"}\n".to_vec();
    let (status, result) = app.push_raw(body, "application/x-ndjson").await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["inserted"], 2);
    assert_eq!(result["results"][1]["error"]["code"], "malformed_json");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_reaches_both_indexes() {
    let mut app = spawn_app().await;
    app.push(&json!([post(
        "x1",
        "Wildfire smoke over the valley this morning",
        "2024-03-01T10:00:00Z"
    )]))
    .await;
    app.vectors_caught_up().await;
    let (_, dense) = app
        .search(json!({ "q": "forest fire haze", "mode": "vector" }))
        .await;
    assert_eq!(hit_ids(&dense), vec!["x1"], "{dense}");
    let (status, deleted) = app.delete("/v1/posts/x1").await;
    assert_eq!((status, deleted["deleted"].as_bool()), (200, Some(true)));
    app.vectors_caught_up().await;
    let (_, text) = app.search(json!({ "q": "wildfire", "mode": "text" })).await;
    assert!(hit_ids(&text).is_empty(), "{text}");
    let (_, dense) = app
        .search(json!({ "q": "forest fire haze", "mode": "vector" }))
        .await;
    assert!(hit_ids(&dense).is_empty(), "{dense}");
    let (status, again) = app.delete("/v1/posts/x1").await;
    assert_eq!(
        (status, again["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    app.stop().await;
}
