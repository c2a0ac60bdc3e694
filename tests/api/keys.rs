//! API keys over HTTP: without keys the API is open on loopback and a public bind is refused;
//! with keys every `/v1` route needs one with the right scope, and each key is rate limited.

use crate::helpers::{post, settings, spawn_with_settings};
use serde_json::json;
use tidings_api::auth::{create_key, Scope};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_scopes_and_rate_limits() {
    let temp = tempfile::tempdir().unwrap();

    // No keys: a non-loopback bind is refused with a helpful message.
    let mut public = settings(temp.path());
    public.server.bind = "0.0.0.0:0".parse().unwrap();
    let err = match tidings::app::App::build(&public, None).await {
        Ok(_) => panic!("a public bind without keys must be refused"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("no API keys exist") && err.contains("tidings keys create"),
        "{err}"
    );

    let keys = temp.path().join("keys.json");
    let (reader, _) = create_key(&keys, "reader", vec![Scope::Read], 3).unwrap();
    let (ingester, _) = create_key(&keys, "ingester", vec![Scope::Ingest], 0).unwrap();
    let mut app = spawn_with_settings(settings(temp.path())).await;
    let url = |p: &str| format!("{}{p}", app.base);
    let body = json!([post("k1", "keys test post", "2024-05-10T17:00:00Z")]);

    // Health stays open; /v1 needs a key.
    assert_eq!(
        app.client
            .get(url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let r = app
        .client
        .post(url("/v1/search"))
        .json(&json!({"q": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "missing_api_key");
    let r = app
        .client
        .post(url("/v1/search"))
        .bearer_auth("tdk_0000_wrong")
        .json(&json!({"q": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Scopes: the reader cannot push, the ingester can.
    let r = app
        .client
        .post(url("/v1/posts"))
        .bearer_auth(&reader)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "insufficient_scope");
    let r = app
        .client
        .post(url("/v1/posts"))
        .bearer_auth(&ingester)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The reader's 3 requests a minute: the 4th is 429 with Retry-After.
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..4 {
        let r = app
            .client
            .post(url("/v1/search"))
            .bearer_auth(&reader)
            .json(&json!({"q": "keys"}))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            retry_after = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let v: serde_json::Value = r.json().await.unwrap();
            assert_eq!(v["error"]["code"], "rate_limited");
        }
    }
    assert_eq!(statuses, vec![200, 200, 200, 429]);
    assert!(retry_after.is_some_and(|s| s.parse::<u64>().unwrap_or(0) >= 1));
    app.stop().await;
}
