//! `/openapi.json` describes the router: every documented operation is served (none answers
//! with the router's 404 or 405), and the document parses as OpenAPI 3.1.

use crate::helpers::spawn_app;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_routed() {
    let mut app = spawn_app().await;
    let (status, body) = app.get("/openapi.json").await;
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&body).expect("openapi.json is JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| *k != "parameters")
        {
            let url = format!(
                "{}{}",
                app.base,
                path.replace("{id}", "no-such-post")
                    .replace("{message_id}", "no-such-message")
                    .replace("{run_id}", "no-such-run")
            );
            let request = match method.as_str() {
                "get" => app.client.get(&url),
                "post" => app
                    .client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body("{}"),
                "delete" => app.client.delete(&url),
                "put" => app
                    .client
                    .put(&url)
                    .header("content-type", "application/json")
                    .body("{}"),
                "patch" => app
                    .client
                    .patch(&url)
                    .header("content-type", "application/json")
                    .body("{}"),
                other => panic!("unexpected method {other}"),
            };
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let streams = response
                .headers()
                .get("content-type")
                .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
            // A live stream never ends; its status is enough.
            let text = if streams {
                String::new()
            } else {
                response.text().await.unwrap_or_default()
            };
            assert_ne!(status, 405, "{method} {path} is documented but not routed");
            assert!(
                !(status == 404 && text.contains("no route")),
                "{method} {path} is documented but not routed: {text}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 22, "only {checked} operations described");
    app.stop().await;
}
