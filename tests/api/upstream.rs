//! Failure paths of a remote OpenAI-compatible model, against a small fake upstream on
//! 127.0.0.1 (a test double for failures only; answering itself is proven with the real local
//! model in `chat.rs`): 500s with retries, 429 then success, a stalled response, a malformed
//! stream, a stream that stalls half-way, an upstream that is down.

use crate::helpers::{post, settings, spawn_with_settings};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post as route_post;
use axum::Router;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Default)]
struct Calls(Arc<AtomicUsize>);

fn sse(parts: &[&str]) -> String {
    parts.iter().map(|p| format!("data: {p}\n\n")).collect()
}

fn good_stream() -> String {
    let chunk = |t: &str| {
        json!({"choices": [{"index": 0, "delta": {"content": t}, "finish_reason": null}]})
            .to_string()
    };
    let end = json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}).to_string();
    let usage =
        json!({"choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": 6}}).to_string();
    sse(&[
        &chunk("The Miller Street bridge "),
        &chunk("is closed [1]."),
        &end,
        &usage,
        "[DONE]",
    ])
}

fn event_stream(body: impl Into<axum::body::Body>) -> Response {
    ([("content-type", "text/event-stream")], body.into()).into_response()
}

async fn fake(
    State(calls): State<Calls>,
    Path(mode): Path<String>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let n = calls.0.fetch_add(1, Ordering::SeqCst);
    match mode.as_str() {
        // A tool-calling model: asks for search_posts once, then answers from what it found.
        "tools" => {
            let has_tool_result = body["messages"]
                .as_array()
                .is_some_and(|m| m.iter().any(|x| x["role"] == "tool"));
            if body.get("tools").is_none() {
                return event_stream(good_stream());
            }
            if !has_tool_result {
                return axum::Json(json!({"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                    "role": "assistant", "content": null,
                    "tool_calls": [{"id": "call_1", "type": "function", "function": {
                        "name": "search_posts", "arguments": "{\"query\": \"bridge closed\"}"}}]}}]}))
                .into_response();
            }
            let result = body["messages"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["role"] == "tool")
                .unwrap()["content"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let answer = if result.contains("[2]") && result.contains("Miller Street") {
                "Posts report the Miller Street bridge is closed [2]."
            } else {
                "I found nothing about a bridge."
            };
            axum::Json(json!({"choices": [{"index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": answer}}]}))
            .into_response()
        }
        "ok" => event_stream(good_stream()),
        "fail500" => (
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"error":{"message":"upstream exploded"}}"#,
        )
            .into_response(),
        "bad401" => (
            StatusCode::UNAUTHORIZED,
            r#"{"error":{"message":"bad key"}}"#,
        )
            .into_response(),
        "limited" if n == 0 => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "0")],
            "slow down",
        )
            .into_response(),
        "limited" => event_stream(good_stream()),
        "hang" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            event_stream(good_stream())
        }
        "malformed" => event_stream(sse(&[
            &json!({"choices": [{"index": 0, "delta": {"content": "Partial"}}]}).to_string(),
            "{this is not json",
        ])),
        "stall" => {
            let first = sse(&[
                &json!({"choices": [{"index": 0, "delta": {"content": "Starting"}}]}).to_string(),
            ]);
            let stream = async_stream::stream! {
                yield Ok::<_, std::io::Error>(axum::body::Bytes::from(first));
                tokio::time::sleep(Duration::from_secs(30)).await;
            };
            event_stream(axum::body::Body::from_stream(stream))
        }
        "cut" => event_stream(sse(&[
            &json!({"choices": [{"index": 0, "delta": {"content": "Half"}}]}).to_string(),
        ])),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn start_fake() -> (String, Calls) {
    let calls = Calls::default();
    let app = Router::new()
        .route("/{mode}/v1/chat/completions", route_post(fake))
        .with_state(calls.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), calls)
}

async fn ask(mode: &str, base: &str, stream: bool) -> (u16, Value, String) {
    ask_with(mode, base, stream, "Which bridge is closed?", false).await
}

async fn ask_with(
    mode: &str,
    base: &str,
    stream: bool,
    question: &str,
    tools: bool,
) -> (u16, Value, String) {
    let temp = tempfile::tempdir().unwrap();
    let mut s = settings(temp.path());
    s.embedder.kind = "none".into();
    s.model.kind = "openai".into();
    s.model.url = Some(format!("{base}/{mode}/v1"));
    s.model.read_timeout_secs = 1;
    s.model.max_retries = 1;
    s.model.tools = tools;
    let mut app = spawn_with_settings(s).await;
    let (status, _) = app
        .push(&json!([
            post(
                "p1",
                "The Miller Street bridge is closed in Riverton",
                "2024-05-10T17:00:00Z"
            ),
            post(
                "p2",
                "Heavy flooding downtown, water rising fast",
                "2024-05-10T17:10:00Z"
            ),
        ]))
        .await;
    assert_eq!(status, 200);
    let r = app
        .client
        .post(format!("{}/v1/chat/completions", app.base))
        .json(&json!({
            "messages": [{"role": "user", "content": question}],
            "search": {"as_of": "2024-05-10T18:00:00Z"},
            "stream": stream,
        }))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap_or("").to_string())
        .unwrap_or_default();
    let text = r.text().await.unwrap();
    app.stop().await;
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value, retry_after)
}

/// The error object a stream ended with, if any.
fn stream_error(body: &Value) -> Option<Value> {
    body.as_str()?
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find_map(|v| v.get("error").cloned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_map_to_clear_errors() {
    let (base, calls) = start_fake().await;

    let (status, v, _) = ask("ok", &base, false).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["citations"], json!(["p1"]), "{v}");
    assert_eq!(v["usage"]["completion_tokens"], 6);

    // A tool-capable model searches again with search_posts; what it finds is numbered after
    // the first retrieval's posts and can be cited.
    let (status, v, _) = ask_with(
        "tools",
        &base,
        false,
        "How bad is the flooding downtown?",
        true,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    // The model answered about the bridge; the post closest to the question (the flooding) is
    // quoted after it, so the asker sees what was asked about in the source's own words.
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Posts report the Miller Street bridge is closed (one account reports this; unconfirmed) [2].\n\n\
         Closest post: A post: “Heavy flooding downtown, water rising fast” (one account; unconfirmed) [1]"
    );
    let mut cited: Vec<&str> = v["citations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    cited.sort();
    assert_eq!(
        cited,
        ["p1", "p2"],
        "the tool-found post is cited as [2], the closest post as [1]: {v}"
    );

    calls.0.store(0, Ordering::SeqCst);
    let (status, v, _) = ask("fail500", &base, false).await;
    assert_eq!(status, 502, "{v}");
    assert_eq!(v["error"]["code"], "upstream_error");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("upstream exploded"));
    assert_eq!(calls.0.load(Ordering::SeqCst), 2, "one try and one retry");

    calls.0.store(0, Ordering::SeqCst);
    let (status, v, _) = ask("bad401", &base, false).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (502, Some("upstream_error")),
        "{v}"
    );
    assert_eq!(calls.0.load(Ordering::SeqCst), 1, "a 401 is not retried");

    calls.0.store(0, Ordering::SeqCst);
    let (status, v, _) = ask("limited", &base, false).await;
    assert_eq!(status, 200, "a 429 is retried: {v}");
    assert_eq!(calls.0.load(Ordering::SeqCst), 2);

    let (status, v, _) = ask("hang", &base, false).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (504, Some("model_timeout")),
        "{v}"
    );

    let (status, v, _) = ask("malformed", &base, true).await;
    assert_eq!(status, 200);
    let e = stream_error(&v).expect("the stream reports the failure");
    assert_eq!(e["code"], "upstream_malformed", "{v}");

    let (status, v, _) = ask("stall", &base, true).await;
    assert_eq!(status, 200);
    assert_eq!(
        stream_error(&v).expect("stall reported")["code"],
        "model_timeout"
    );

    let (status, v, _) = ask("cut", &base, true).await;
    assert_eq!(status, 200);
    assert_eq!(
        stream_error(&v).expect("cut reported")["code"],
        "upstream_malformed"
    );
    assert!(v.as_str().unwrap().trim_end().ends_with("data: [DONE]"));

    // Nothing listening at all.
    let (status, v, _) = ask("ok", "http://127.0.0.1:9", false).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (502, Some("upstream_unavailable")),
        "{v}"
    );
}

/// A conversation whose model fails mid-answer: the failure is stored as an answer with
/// `status: error` and its code, so the conversation can go on (a new question under it), and
/// the failed answer can be regenerated. Never a question left without an answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_generation_leaves_a_conversation_that_goes_on() {
    let (base, _calls) = start_fake().await;
    let temp = tempfile::tempdir().unwrap();
    let mut s = settings(temp.path());
    s.embedder.kind = "none".into();
    s.model.kind = "openai".into();
    s.model.url = Some(format!("{base}/cut/v1"));
    s.model.read_timeout_secs = 1;
    s.model.max_retries = 0;
    let mut app = spawn_with_settings(s).await;
    app.push(&json!([post(
        "p1",
        "地震です 東京で大きな揺れ #earthquake — the Miller Street bridge is closed",
        "2024-05-10T17:00:00Z"
    )]))
    .await;
    let (status, c) = app
        .call(
            "POST",
            "/v1/conversations",
            Some(json!({"search": {"as_of": "2024-05-10T18:00:00Z"}})),
        )
        .await;
    assert_eq!(status, 201, "{c}");
    let id = c["id"].as_str().unwrap().to_string();
    let mut parent = None::<String>;
    for q in ["東京で何が起きていますか？", "And the bridge?"] {
        let mut body = json!({"content": q, "stream": false});
        if let Some(p) = &parent {
            body["parent_id"] = json!(p);
        }
        let (status, v) = app
            .call(
                "POST",
                &format!("/v1/conversations/{id}/messages"),
                Some(body),
            )
            .await;
        assert_eq!(status, 502, "the upstream cut the answer: {v}");
        assert_eq!(v["error"]["code"], "upstream_malformed", "{v}");
        let stored = &v["message"];
        assert_eq!(stored["status"], "error", "{v}");
        assert_eq!(stored["error"]["code"], "upstream_malformed", "{v}");
        // "Half" never ended a sentence, so the grounding gate never checked it: an unchecked
        // fragment is not shown or stored.
        assert_eq!(stored["content"], "", "{v}");
        parent = Some(stored["id"].as_str().unwrap().to_string());
    }
    // The failed answer can be regenerated (it fails again here, and is stored again).
    let failed = parent.unwrap();
    let (status, v) = app
        .call(
            "POST",
            &format!("/v1/conversations/{id}/messages/{failed}/regenerate"),
            Some(json!({"stream": false})),
        )
        .await;
    assert_eq!(status, 502, "{v}");
    assert_eq!(v["message"]["version"]["count"], 2, "{v}");
    let (_, tree) = app
        .call("GET", &format!("/v1/conversations/{id}"), None)
        .await;
    let messages = tree["messages"].as_array().unwrap();
    for q in messages.iter().filter(|m| m["role"] == "user") {
        assert!(
            messages.iter().any(|a| a["parent_id"] == q["id"]),
            "every question has an answer: {tree}"
        );
    }
    app.stop().await;
}
