//! Start-up recovery: a process that died mid-work leaves a question without an answer, a
//! digest run `running` and a webhook delivery `pending`. The next start turns them into states
//! a user can continue from: an error answer (code `interrupted`), a failed run (`interrupted`),
//! and the delivery sent again under the same id.

use crate::helpers::{settings, spawn_with_settings};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tidings_api::store::{MessageStatus, NewMessage, Origin, Role, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_recovers_what_a_dead_process_left() {
    // A webhook receiver that records delivery ids.
    let seen: Arc<Mutex<Vec<String>>> = Default::default();
    let record = seen.clone();
    let hook = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let record = record.clone();
            async move {
                let id = headers
                    .get("x-tidings-delivery")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                record.lock().unwrap().push(id);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, hook).await });

    let temp = tempfile::tempdir().unwrap();
    let configure = || {
        let mut s = settings(temp.path());
        s.embedder.kind = "none".into();
        s.digests.webhook_allow = vec!["127.0.0.1".into()];
        s.digests.webhook_backoff_ms = 10;
        s
    };
    // A first life: a digest with a webhook.
    let mut app = spawn_with_settings(configure()).await;
    let (status, d) = app
        .call(
            "POST",
            "/v1/digests",
            Some(json!({"name": "地震 digest", "window": "24h",
                        "webhooks": [{"url": format!("http://{hook_addr}/hook"), "secret": "a-long-shared-secret-123"}]})),
        )
        .await;
    assert_eq!(status, 201, "{d}");
    let digest = d["id"].as_str().unwrap().to_string();
    app.stop().await;

    // What a process killed mid-work leaves behind.
    let store = Store::connect(&Store::default_url(temp.path()))
        .await
        .unwrap();
    let c = store
        .create_conversation("東京", None, &json!({}))
        .await
        .unwrap();
    let question = store
        .insert_message(NewMessage {
            conversation_id: &c.id,
            parent_id: None,
            role: Role::User,
            content: "東京で何が起きていますか？",
            origin: Origin::Asked,
            edited_from: None,
            status: MessageStatus::Complete,
            meta: &json!({}),
        })
        .await
        .unwrap();
    let run = store
        .start_run(&digest, "manual", chrono::Utc::now(), None)
        .await
        .unwrap()
        .expect("a run");
    let delivery = store
        .start_delivery(&digest, &run.id, &format!("http://{hook_addr}/hook"))
        .await
        .unwrap();
    store.close().await;
    tokio::time::sleep(Duration::from_millis(5)).await;

    // The next start recovers all three.
    let mut app = spawn_with_settings(configure()).await;
    let (status, tree) = app
        .call("GET", &format!("/v1/conversations/{}", c.id), None)
        .await;
    assert_eq!(status, 200, "{tree}");
    let answer = tree["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["parent_id"] == question.id.as_str())
        .unwrap_or_else(|| panic!("the question has an answer: {tree}"))
        .clone();
    assert_eq!(answer["status"], "error", "{answer}");
    assert_eq!(answer["error"]["code"], "interrupted", "{answer}");
    // The conversation is not stuck: a new question is not refused as `invalid_parent` (this
    // server has no model, so it says that instead).
    let (status, refused) = app
        .call(
            "POST",
            &format!("/v1/conversations/{}/messages", c.id),
            Some(json!({"content": "それで？", "stream": false})),
        )
        .await;
    assert_ne!(
        refused["error"]["code"], "invalid_parent",
        "{status} {refused}"
    );

    let (status, r) = app
        .call(
            "GET",
            &format!("/v1/digests/{digest}/runs/{}", run.id),
            None,
        )
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["error"]["code"], "interrupted", "{r}");

    let mut delivered = false;
    for _ in 0..100 {
        let (_, list) = app
            .call("GET", &format!("/v1/digests/{digest}/deliveries"), None)
            .await;
        let d: Vec<Value> = list["data"].as_array().cloned().unwrap_or_default();
        if d.iter()
            .any(|x| x["id"] == delivery.as_str() && x["status"] == "delivered")
        {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(delivered, "the pending delivery was sent again");
    assert_eq!(seen.lock().unwrap().as_slice(), [delivery.clone()]);
    app.stop().await;
}
