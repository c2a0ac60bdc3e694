//! Searching: text and semantic queries, time windows, filters, duplicate collapse, breakdown.

use crate::helpers::{hit_ids, post, spawn_app};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semantic_search_finds_paraphrases_and_hybrid_fuses() {
    let mut app = spawn_app().await;
    app.push(&json!([
        post(
            "s1",
            "Firefighters are battling a huge wildfire near the canyon, homes evacuated",
            "2024-03-01T10:00:00Z"
        ),
        post(
            "s2",
            "The central bank raised interest rates by a quarter point today",
            "2024-03-01T10:00:00Z"
        ),
        post(
            "s3",
            "Our team won the championship game last night",
            "2024-03-01T10:00:00Z"
        ),
    ]))
    .await;
    app.vectors_caught_up().await;
    // No word in common with s1: only the dense half can find it.
    let (status, dense) = app
        .search(json!({ "q": "forest blaze forces people to leave", "mode": "vector", "limit": 1 }))
        .await;
    assert_eq!(status, 200, "{dense}");
    assert_eq!(hit_ids(&dense), vec!["s1"]);
    let (_, dense) = app
        .search(json!({ "q": "monetary policy and borrowing costs", "mode": "vector", "limit": 1 }))
        .await;
    assert_eq!(hit_ids(&dense), vec!["s2"]);
    let (_, hybrid) = app
        .search(json!({ "q": "wildfire evacuation", "limit": 3 }))
        .await;
    assert_eq!(hit_ids(&hybrid)[0], "s1");
    let b = &hybrid["hits"][0]["score_breakdown"];
    assert_eq!(b["bm25_rank"], 1, "{hybrid}");
    assert_eq!(b["dense_rank"], 1, "{hybrid}");
    assert!(hybrid["degraded"].is_null(), "{hybrid}");
    // The learned ranker scored it: its logit and answerability are shown, and the best
    // candidate's relative odds are 1.
    assert!(b["rerank"].is_number(), "{hybrid}");
    let answers = b["answers"].as_f64().expect("answerability");
    assert!((0.0..=1.0).contains(&answers), "{hybrid}");
    assert!(
        (b["fused"].as_f64().unwrap() - 1.0).abs() < 1e-6,
        "{hybrid}"
    );
    // Plain fusion on request: same winner, no learned scores.
    let (status, fusion) = app
        .search(json!({ "q": "wildfire evacuation", "limit": 3, "ranker": "fusion" }))
        .await;
    assert_eq!(status, 200, "{fusion}");
    assert_eq!(hit_ids(&fusion)[0], "s1");
    assert!(
        fusion["hits"][0]["score_breakdown"]["rerank"].is_null(),
        "{fusion}"
    );
    let (status, bad) = app
        .search(json!({ "q": "wildfire", "ranker": "magic" }))
        .await;
    assert_eq!(status, 400, "{bad}");
    assert_eq!(bad["error"]["code"], "invalid_request", "{bad}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_windows_and_filters() {
    let mut app = spawn_app().await;
    app.push(&json!([
        { "id": "t1", "text": "storm update: trees down", "created_at": "2024-03-01T08:00:00Z", "author": "@Alice", "lang": "en" },
        { "id": "t2", "text": "storm update: roads flooded", "created_at": "2024-03-01T11:30:00Z", "author": "bob", "lang": "en" },
        { "id": "t3", "text": "storm update: schools closed", "created_at": "2024-03-02T09:00:00Z", "author": "carol", "lang": "fr" },
    ]))
    .await;
    let as_of = "2024-03-01T12:00:00Z";
    let (_, r) = app
        .search(json!({ "q": "storm update", "mode": "text", "as_of": as_of, "since": "2h" }))
        .await;
    assert_eq!(hit_ids(&r), vec!["t2"], "{r}");
    let (_, r) = app
        .search(json!({ "q": "storm update", "mode": "text", "as_of": as_of }))
        .await;
    let mut ids = hit_ids(&r);
    ids.sort();
    assert_eq!(ids, vec!["t1", "t2"], "as_of hides later posts: {r}");
    let (_, r) = app.search(json!({ "q": "storm", "mode": "text", "from": "2024-03-01T00:00:00Z", "to": "2024-03-03T00:00:00Z", "authors": ["@ALICE", "carol"] })).await;
    let mut ids = hit_ids(&r);
    ids.sort();
    assert_eq!(ids, vec!["t1", "t3"], "{r}");
    let (_, r) = app
        .search(json!({ "q": "storm", "mode": "text", "langs": ["fr"] }))
        .await;
    assert_eq!(hit_ids(&r), vec!["t3"]);
    let (_, r) = app
        .search(json!({ "q": "storm", "mode": "text", "exclude_authors": ["bob", "carol"] }))
        .await;
    assert_eq!(hit_ids(&r), vec!["t1"]);
    // GET takes the same parameters, lists comma-separated.
    let (status, body) = app
        .get("/v1/search?q=storm&mode=text&authors=alice,bob&as_of=2024-03-01T12:00:00Z&since=1h")
        .await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(hit_ids(&v), vec!["t2"]);
    // Only the fields asked for, in the order asked; a field the post lacks is left out.
    let (_, r) = app
        .search(
            json!({ "q": "storm", "mode": "text", "as_of": as_of, "since": "1h",
                        "fields": ["id", "score", "lang", "url", "author"] }),
        )
        .await;
    let hit = &r["hits"][0];
    let keys: Vec<&str> = hit
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["id", "score", "lang", "author"], "{r}");
    assert_eq!(hit["id"], "t2");
    assert_eq!(hit["author"], "bob");
    let (status, body) = app
        .get("/v1/search?q=storm&mode=text&as_of=2024-03-01T12:00:00Z&since=1h&fields=id,%20text")
        .await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["hits"][0],
        json!({ "id": "t2", "text": "storm update: roads flooded" })
    );
    // A field a hit does not have is refused, with the names it could be.
    let (status, r) = app
        .search(json!({ "q": "storm", "fields": ["id", "body"] }))
        .await;
    assert_eq!(status, 400, "{r}");
    assert_eq!(r["error"]["code"], "invalid_request", "{r}");
    let message = r["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`body`") && message.contains("score_breakdown"),
        "{message}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recency_decay_prefers_fresh_posts() {
    let mut app = spawn_app().await;
    app.push(&json!([
        post(
            "old",
            "earthquake felt across the city",
            "2024-03-01T00:00:00Z"
        ),
        post(
            "new",
            "earthquake felt across the city again",
            "2024-03-01T11:50:00Z"
        ),
    ]))
    .await;
    let (_, r) = app.search(json!({ "q": "earthquake felt city", "mode": "text", "as_of": "2024-03-01T12:00:00Z", "half_life": "30m" })).await;
    assert_eq!(hit_ids(&r)[0], "new", "{r}");
    let recency_new = r["hits"][0]["score_breakdown"]["recency"].as_f64().unwrap();
    let recency_old = r["hits"][1]["score_breakdown"]["recency"].as_f64().unwrap();
    assert!(recency_new > recency_old, "{r}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retweets_collapse_into_one_hit() {
    let mut app = spawn_app().await;
    app.push(&json!([
        post(
            "o1",
            "Explosions at the finish line of the marathon, many hurt http://t.co/aaa",
            "2024-03-01T10:00:00Z"
        ),
        post(
            "r1",
            "RT @news: Explosions at the finish line of the marathon, many hurt http://t.co/bbb",
            "2024-03-01T10:01:00Z"
        ),
        post(
            "r2",
            "RT @other: RT @news: Explosions at the finish line of the marathon, many hurt",
            "2024-03-01T10:02:00Z"
        ),
        post(
            "u1",
            "Marathon finish line reopened days after the explosions",
            "2024-03-05T10:00:00Z"
        ),
    ]))
    .await;
    let (_, r) = app
        .search(
            json!({ "q": "explosions finish line marathon", "mode": "text", "half_life": "off" }),
        )
        .await;
    let ids = hit_ids(&r);
    assert_eq!(ids.len(), 2, "{r}");
    let group = r["hits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["id"] != "u1")
        .unwrap();
    assert_eq!(group["duplicates"].as_array().unwrap().len(), 2, "{r}");
    let (_, all) = app
        .search(
            json!({ "q": "explosions finish line marathon", "mode": "text", "collapse": false }),
        )
        .await;
    assert_eq!(hit_ids(&all).len(), 4);
    app.stop().await;
}
