//! Every bad request gets a JSON error with a stable code and the right status.

use crate::helpers::{post, spawn_app};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_bodies_have_stable_codes() {
    let mut app = spawn_app().await;
    let cases: Vec<(u16, &str, (u16, Value))> = vec![
        (
            400,
            "invalid_json",
            app.push_raw(b"{oops".to_vec(), "application/json").await,
        ),
        (
            400,
            "empty_body",
            app.push_raw(b"  ".to_vec(), "application/json").await,
        ),
        (
            400,
            "invalid_body",
            app.push_raw(b"42".to_vec(), "application/json").await,
        ),
        (
            413,
            "payload_too_large",
            app.push_raw(vec![b' '; 300 * 1024], "application/json")
                .await,
        ),
        (
            413,
            "too_many_posts",
            app.push(&Value::Array(
                (0..101)
                    .map(|i| post(&format!("m{i}"), "x", "2024-03-01T00:00:00Z"))
                    .collect(),
            ))
            .await,
        ),
        (400, "invalid_request", app.search(json!({})).await),
        (
            400,
            "invalid_request",
            app.search(json!({ "q": "x", "since": "soon" })).await,
        ),
        (
            400,
            "invalid_request",
            app.search(json!({ "q": "x", "limit": 0 })).await,
        ),
        (
            400,
            "invalid_request",
            app.search(json!({ "q": "x", "mode": "magic" })).await,
        ),
        (
            400,
            "invalid_request",
            app.search(
                json!({ "q": "x", "from": "2024-03-02T00:00:00Z", "to": "2024-03-01T00:00:00Z" }),
            )
            .await,
        ),
        (
            400,
            "invalid_json",
            app.search(json!({ "q": "x", "unknown_field": 1 })).await,
        ),
        (404, "not_found", app.delete("/v1/posts/nope").await),
    ];
    // The whole error bodies: codes, messages and their shape are the contract.
    let bodies: Vec<Value> = cases
        .iter()
        .map(|(_, _, (status, body))| json!({"status": status, "body": body}))
        .collect();
    insta::assert_json_snapshot!("error_bodies", bodies);
    for (status, code, (got_status, body)) in cases {
        assert_eq!(
            (got_status, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}"
        );
        assert!(
            !body["error"]["message"].as_str().unwrap_or("").is_empty(),
            "{body}"
        );
    }
    let (status, body) = app.get("/v1/search?q=x&limit=abc").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = app.get("/nowhere").await;
    assert_eq!(status, 404);
    assert!(body.contains("not_found"));
    app.stop().await;
}
