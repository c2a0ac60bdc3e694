//! `/v1/conversations`: the message tree (ask, regenerate, edit a question or an answer, switch
//! versions, continue from an edited answer), concurrent streams, persistence across restarts,
//! on SQLite and on the real PostgreSQL at 127.0.0.1:5432.
//!
//! Answers come from the real local model (SmolLM2) over the replayed fixture feed. One test
//! uses a recording OpenAI-compatible upstream to see exactly which history the model receives
//! after an answer was edited, and to hold an answer open for the busy check.

use crate::chat::{app_with_feed, AS_OF};
use crate::helpers::{post, settings, shape, spawn_with_settings, TestApp};
use axum::extract::State;
use axum::response::IntoResponse;
use futures::StreamExt;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Events of one SSE response: (event name, JSON data).
pub(crate) fn parse_sse(text: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for block in text.replace("\r\n", "\n").split("\n\n") {
        let mut name = "message".to_string();
        let mut data = String::new();
        for line in block.lines() {
            if let Some(n) = line.strip_prefix("event:") {
                name = n.trim().to_string();
            } else if let Some(d) = line.strip_prefix("data:") {
                data.push_str(d.trim_start());
            }
        }
        if !data.is_empty() {
            out.push((
                name,
                serde_json::from_str(&data).unwrap_or(Value::String(data)),
            ));
        }
    }
    out
}

/// Reads a streaming body into `seen` until it holds `needle` (panics if the stream ends first).
async fn read_until(
    body: &mut (impl futures::Stream<Item = reqwest::Result<axum::body::Bytes>> + Unpin),
    seen: &mut String,
    needle: &str,
) {
    while !seen.contains(needle) {
        let chunk = body
            .next()
            .await
            .unwrap_or_else(|| panic!("the stream ended before {needle:?}: {seen}"))
            .expect("chunk");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

/// Reads the rest of a streaming body.
async fn read_rest(
    body: &mut (impl futures::Stream<Item = reqwest::Result<axum::body::Bytes>> + Unpin),
    seen: &mut String,
) {
    while let Some(chunk) = body.next().await {
        seen.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
    }
}

pub(crate) fn event<'a>(events: &'a [(String, Value)], name: &str) -> Option<&'a Value> {
    events.iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

impl TestApp {
    pub(crate) async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let mut r = match method {
            "GET" => self.client.get(url),
            "POST" => self.client.post(url),
            "PATCH" => self.client.patch(url),
            "PUT" => self.client.put(url),
            "DELETE" => self.client.delete(url),
            other => panic!("method {other}"),
        };
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// A streamed generation: status and its events, read to the end.
    pub(crate) async fn generate(&self, path: &str, body: Value) -> (u16, Vec<(String, Value)>) {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .expect("generate");
        let status = r.status().as_u16();
        let text = r.text().await.expect("body");
        if status != 200 {
            return (
                status,
                vec![(
                    "http".into(),
                    serde_json::from_str(&text).unwrap_or_default(),
                )],
            );
        }
        (status, parse_sse(&text))
    }

    async fn tree(&self, id: &str) -> Value {
        let (status, v) = self
            .call("GET", &format!("/v1/conversations/{id}"), None)
            .await;
        assert_eq!(status, 200, "{v}");
        v
    }
}

fn message<'a>(tree: &'a Value, id: &str) -> &'a Value {
    tree["messages"]
        .as_array()
        .and_then(|m| m.iter().find(|x| x["id"] == id))
        .unwrap_or_else(|| panic!("message {id} in {tree}"))
}

fn path(tree: &Value) -> Vec<String> {
    tree["active_path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// The whole tree workflow with the real model, against the database at `database_url`
/// (`None`: SQLite in the data dir).
async fn tree_workflow(database_url: Option<String>) {
    let (mut app, temp) = app_with_feed_db("chat_feed.jsonl", 12, database_url.clone()).await;
    let (status, conv) = app
        .call(
            "POST",
            "/v1/conversations",
            Some(json!({"search": {"as_of": AS_OF}, "persona": "regular"})),
        )
        .await;
    assert_eq!(status, 201, "{conv}");
    let id = conv["id"].as_str().unwrap().to_string();
    let base = format!("/v1/conversations/{id}");

    // Ask: the question, the posts, streamed text, then the stored answer.
    let (status, events) = app
        .generate(
            &format!("{base}/messages"),
            json!({"content": "Is the Miller Street bridge open?", "max_tokens": 60}),
        )
        .await;
    assert_eq!(status, 200);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"user"), "{names:?}");
    assert!(
        names.contains(&"retrieved") && names.contains(&"delta"),
        "{names:?}"
    );
    assert_eq!(names.last(), Some(&"done"), "{events:?}");
    let question = event(&events, "user").unwrap().clone();
    let first = event(&events, "done").unwrap().clone();
    assert_eq!(first["role"], "assistant");
    assert_eq!(first["status"], "complete");
    assert_eq!(first["parent_id"], question["id"]);
    assert_eq!(first["as_of"], "2024-05-10T18:00:00Z");
    assert_eq!(first["version"]["index"], 1);
    assert_eq!(first["related_questions"].as_array().unwrap().len(), 3);
    let cited: Vec<&str> = first["search_results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(cited.contains(&"fx:1"), "the bridge post is cited: {first}");
    let streamed: String = events
        .iter()
        .filter(|(n, _)| n == "delta")
        .map(|(_, v)| v["content"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(streamed, first["content"].as_str().unwrap());

    // Regenerate: a second version beside the first, now active.
    let first_id = first["id"].as_str().unwrap().to_string();
    let (status, events) = app
        .generate(
            &format!("{base}/messages/{first_id}/regenerate"),
            json!({"max_tokens": 60, "persona": "fun"}),
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        event(&events, "user").is_none(),
        "regenerate adds no question"
    );
    let second = event(&events, "done").expect("regenerated").clone();
    let second_id = second["id"].as_str().unwrap().to_string();
    assert_eq!(second["parent_id"], question["id"]);
    assert_eq!(second["origin"], "regenerated");
    assert_eq!(second["tidings"]["persona"], "fun");
    assert_eq!(
        second["version"],
        json!({"index": 2, "count": 2, "siblings": [first_id, second_id]})
    );
    let tree = app.tree(&id).await;
    assert_eq!(
        path(&tree),
        vec![question["id"].as_str().unwrap(), &second_id]
    );

    // Step back to version 1.
    let (status, tree) = app
        .call(
            "POST",
            &format!("{base}/messages/{first_id}/activate"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(path(&tree).last().unwrap(), &first_id);

    // Edit the answer: a third version with the edited text, citations kept, now active.
    let edited_text = "**Edited:** the Miller Street bridge is closed [1].";
    let (status, v) = app
        .call(
            "POST",
            &format!("{base}/messages/{first_id}/edit"),
            Some(json!({"content": edited_text})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let edited = v["message"].clone();
    let edited_id = edited["id"].as_str().unwrap().to_string();
    assert_eq!(edited["origin"], "edited");
    assert_eq!(edited["edited_from"], first_id.as_str());
    assert_eq!(edited["content"], edited_text);
    assert_eq!(edited["version"]["index"], 3);
    assert_eq!(edited["version"]["count"], 3);
    assert_eq!(edited["search_results"], first["search_results"]);
    let tree = app.tree(&id).await;
    assert_eq!(path(&tree).last().unwrap(), &edited_id);
    assert_eq!(
        message(&tree, &first_id)["content"],
        first["content"],
        "the original is kept"
    );

    // Continue from the edited answer: the follow-up hangs under it.
    let (status, events) = app
        .generate(
            &format!("{base}/messages"),
            json!({"content": "Are the schools open tomorrow?", "max_tokens": 60}),
        )
        .await;
    assert_eq!(status, 200);
    let follow_q = event(&events, "user").unwrap().clone();
    assert_eq!(follow_q["parent_id"], edited_id.as_str());
    let follow_a = event(&events, "done").expect("answered").clone();
    let cited: Vec<&str> = follow_a["search_results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(
        cited.contains(&"fx:4"),
        "the schools post is cited: {follow_a}"
    );

    // Edit the first question: a sibling question with its own answer; the old branch stays.
    let qid = question["id"].as_str().unwrap().to_string();
    let (status, events) = app
        .generate(
            &format!("{base}/messages/{qid}/edit"),
            json!({"content": "Were people rescued from the flood?", "max_tokens": 60}),
        )
        .await;
    assert_eq!(status, 200);
    let new_q = event(&events, "user").unwrap().clone();
    assert_eq!(new_q["origin"], "edited");
    assert_eq!(new_q["edited_from"], qid.as_str());
    assert_eq!(new_q["version"]["index"], 2);
    let new_a = event(&events, "done").expect("answered").clone();
    let tree = app.tree(&id).await;
    assert_eq!(
        path(&tree),
        vec![new_q["id"].as_str().unwrap(), new_a["id"].as_str().unwrap()]
    );
    assert_eq!(tree["messages"].as_array().unwrap().len(), 8);
    // Back to the original question: its branch (ending in the follow-up) comes back.
    app.call("POST", &format!("{base}/messages/{qid}/activate"), None)
        .await;
    let tree = app.tree(&id).await;
    assert_eq!(
        path(&tree),
        vec![
            qid.clone(),
            edited_id.clone(),
            follow_q["id"].as_str().unwrap().to_string(),
            follow_a["id"].as_str().unwrap().to_string()
        ]
    );

    // Per-conversation settings change mid-conversation.
    let (status, v) = app
        .call(
            "PATCH",
            &base,
            Some(json!({"persona": "fun", "search": {"as_of": AS_OF, "window": "6h"}, "title": "Riverton"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["persona"], "fun");
    assert_eq!(v["search"]["window"], "6h");

    // Restart: everything is still there, in the same order, with the same active path.
    let before = app.tree(&id).await;
    app.stop().await;
    let mut s = settings(temp.path());
    s.data.database_url = database_url;
    let mut app = spawn_with_settings(s).await;
    let after = app.tree(&id).await;
    assert_eq!(before, after);
    // The tree's JSON shape (the same on SQLite and PostgreSQL), and a streamed answer's events.
    insta::assert_json_snapshot!("conversation_tree", shape(&after));
    insta::assert_json_snapshot!("conversation_answer_done", shape(&first));
    let (_, list) = app.call("GET", "/v1/conversations?limit=200", None).await;
    assert!(list["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["id"] == id.as_str()));
    let (status, _) = app.call("DELETE", &base, None).await;
    assert_eq!(status, 200);
    let (status, v) = app.call("GET", &base, None).await;
    assert_eq!(status, 404);
    assert_eq!(v["error"]["code"], "not_found");
    app.stop().await;
}

/// `app_with_feed` with a chosen app database.
async fn app_with_feed_db(
    feed: &str,
    posts: u64,
    database_url: Option<String>,
) -> (TestApp, tempfile::TempDir) {
    match database_url {
        None => app_with_feed(feed, posts).await,
        Some(url) => {
            crate::chat::app_with_feed_settings(feed, posts, move |s| {
                s.data.database_url = Some(url)
            })
            .await
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_on_sqlite() {
    tree_workflow(None).await;
}

/// A fresh database on the PostgreSQL server for this test, dropped at the end.
pub(crate) struct PgDatabase {
    admin: String,
    name: String,
    pub(crate) url: String,
}

impl PgDatabase {
    pub(crate) async fn create() -> PgDatabase {
        let admin = std::env::var("TIDINGS_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("tidings_test_{}", uuid_like());
        sqlx::any::install_default_drivers();
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
            .await
            .unwrap_or_else(|e| {
                panic!("PostgreSQL at {admin} (set TIDINGS_TEST_POSTGRES_URL): {e}")
            });
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create database");
        let url = match admin.rfind('/') {
            Some(i) => format!("{}/{name}", &admin[..i]),
            None => panic!("database URL without a path: {admin}"),
        };
        PgDatabase { admin, name, url }
    }

    pub(crate) async fn drop_it(self) {
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&self.admin)
            .await
            .expect("admin connection");
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut conn)
        .await
        .expect("drop database");
    }
}

fn uuid_like() -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("random");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_on_postgres() {
    let db = PgDatabase::create().await;
    tree_workflow(Some(db.url.clone())).await;
    db.drop_it().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_conversations_stream_at_once() {
    let (mut app, _temp) = app_with_feed("chat_feed.jsonl", 12).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (_, c) = app
            .call(
                "POST",
                "/v1/conversations",
                Some(json!({"search": {"as_of": AS_OF}})),
            )
            .await;
        ids.push(c["id"].as_str().unwrap().to_string());
    }
    let open = |id: &str, q: &str| {
        app.client
            .post(format!("{}/v1/conversations/{id}/messages", app.base))
            .json(&json!({"content": q, "max_tokens": 48}))
            .send()
    };
    // Open the first stream and read until its question is stored; then open the second while
    // the first is still streaming.
    let a = open(&ids[0], "Is the Miller Street bridge open?")
        .await
        .unwrap();
    let mut a_body = a.bytes_stream();
    let mut a_text = String::new();
    read_until(&mut a_body, &mut a_text, "event: user").await;
    let b = open(&ids[1], "Who won the game tonight?").await.unwrap();
    assert_eq!(b.status(), 200);
    let (a_rest, b_text) = tokio::join!(
        async {
            let mut t = String::new();
            read_rest(&mut a_body, &mut t).await;
            t
        },
        b.text()
    );
    a_text.push_str(&a_rest);
    let a_events = parse_sse(&a_text);
    let b_events = parse_sse(&b_text.unwrap());
    let a_done = event(&a_events, "done").expect("first answered");
    let b_done = event(&b_events, "done").expect("second answered");
    assert_eq!(a_done["conversation_id"], ids[0].as_str());
    assert_eq!(b_done["conversation_id"], ids[1].as_str());
    // Each answer came from its own conversation's question and posts (what the small model
    // makes of them is its own business; `tree_workflow` checks citations).
    let retrieved = |events: &[(String, Value)]| -> Vec<String> {
        event(events, "retrieved").expect("retrieved")["posts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(retrieved(&a_events).contains(&"fx:1".to_string()));
    assert!(retrieved(&b_events).contains(&"fx:5".to_string()));
    assert!(!a_done["content"].as_str().unwrap().is_empty());
    assert!(!b_done["content"].as_str().unwrap().is_empty());
    app.stop().await;
}

/// A recording OpenAI-compatible upstream: keeps every request and answers with a short
/// streamed reply; while `gate` is closed it holds its answers open.
#[derive(Clone)]
struct Recorder {
    requests: Arc<Mutex<Vec<Value>>>,
    gate: Arc<Notify>,
    gated: Arc<std::sync::atomic::AtomicBool>,
}

async fn recorder_answer(
    State(r): State<Recorder>,
    axum::Json(body): axum::Json<Value>,
) -> axum::response::Response {
    r.requests.lock().unwrap().push(body);
    if r.gated.load(std::sync::atomic::Ordering::SeqCst) {
        r.gate.notified().await;
    }
    let chunk = |t: &str| {
        format!(
            "data: {}\n\n",
            json!({"choices": [{"index": 0, "delta": {"content": t}, "finish_reason": null}]})
        )
    };
    let body = format!(
        "{}{}data: [DONE]\n\n",
        chunk("The bridge is closed "),
        chunk("[1].")
    );
    ([("content-type", "text/event-stream")], body).into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_receives_the_edited_answer_and_one_answer_at_a_time() {
    let recorder = Recorder {
        requests: Arc::default(),
        gate: Arc::new(Notify::new()),
        gated: Arc::default(),
    };
    let upstream = axum::Router::new()
        .route("/v1/chat/completions", axum::routing::post(recorder_answer))
        .with_state(recorder.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, upstream).await });

    let temp = tempfile::tempdir().unwrap();
    let mut s = settings(temp.path());
    s.embedder.kind = "none".into();
    s.model.kind = "openai".into();
    s.model.url = Some(format!("http://{addr}/v1"));
    let mut app = spawn_with_settings(s).await;
    app.push(&json!([
        post(
            "p1",
            "The Miller Street bridge is closed in Riverton",
            "2024-05-10T17:00:00Z"
        ),
        post(
            "p2",
            "Riverton schools closed tomorrow because of the flood",
            "2024-05-10T17:10:00Z"
        ),
    ]))
    .await;
    let (_, c) = app
        .call(
            "POST",
            "/v1/conversations",
            Some(json!({"search": {"as_of": AS_OF}})),
        )
        .await;
    let id = c["id"].as_str().unwrap().to_string();
    let (status, v) = app
        .call(
            "POST",
            &format!("/v1/conversations/{id}/messages"),
            Some(json!({"content": "Is the Miller Street bridge open?", "stream": false})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let answer_id = v["message"]["id"].as_str().expect("an answer").to_string();
    // The model's sentence, then the primary source in its own words (the answer holds too
    // few of them to stand for it).
    assert_eq!(
        v["message"]["content"],
        "The bridge is closed [1].\n\nClosest post: A post: “The Miller Street bridge is closed in Riverton” (one account; unconfirmed) [1]"
    );

    let edited = "EDITED BY HAND: the bridge reopened at noon [1].";
    let (status, _) = app
        .call(
            "POST",
            &format!("/v1/conversations/{id}/messages/{answer_id}/edit"),
            Some(json!({"content": edited})),
        )
        .await;
    assert_eq!(status, 201);
    let (status, v) = app
        .call(
            "POST",
            &format!("/v1/conversations/{id}/messages"),
            Some(json!({"content": "And the Riverton schools?", "stream": false})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let last = recorder.requests.lock().unwrap().last().cloned().unwrap();
    let messages = last["messages"].as_array().unwrap();
    let assistant: Vec<&str> = messages
        .iter()
        .filter(|m| m["role"] == "assistant")
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        assistant,
        vec![edited],
        "the model sees the edited answer only: {last}"
    );
    let user_text: String = messages
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert!(user_text.contains("Is the Miller Street bridge open?"));
    assert!(user_text.contains("And the Riverton schools?"));

    // One answer at a time per conversation: while one is held open, a second is refused.
    recorder
        .gated
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let r = app
        .client
        .post(format!("{}/v1/conversations/{id}/messages", app.base))
        .json(&json!({"content": "What else is closed?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut body = r.bytes_stream();
    let mut seen = String::new();
    // The question is stored and the answer is waiting on the held upstream.
    read_until(&mut body, &mut seen, "event: user").await;
    let (status, v) = app
        .call(
            "POST",
            &format!("/v1/conversations/{id}/messages/{answer_id}/regenerate"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 409, "{v}");
    assert_eq!(v["error"]["code"], "conversation_busy");
    recorder
        .gated
        .store(false, std::sync::atomic::Ordering::SeqCst);
    // notify_one keeps a permit if the held request has not reached the upstream yet.
    recorder.gate.notify_one();
    read_rest(&mut body, &mut seen).await;
    assert!(seen.contains("event: done"), "{seen}");
    // Now free again.
    let (status, _) = app
        .call(
            "POST",
            &format!("/v1/conversations/{id}/messages/{answer_id}/regenerate"),
            Some(json!({"stream": false})),
        )
        .await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversation_requests_are_validated() {
    let (mut app, _temp) = app_with_feed("chat_feed.jsonl", 12).await;
    let cases = [
        (
            "POST",
            "/v1/conversations".to_string(),
            json!({"persona": "pirate"}),
            400,
            "unknown_persona",
        ),
        (
            "POST",
            "/v1/conversations".to_string(),
            json!({"search": {"window": "soon"}}),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/conversations".to_string(),
            json!({"colour": "red"}),
            400,
            "invalid_json",
        ),
        (
            "GET",
            "/v1/conversations/nope".to_string(),
            Value::Null,
            404,
            "not_found",
        ),
        (
            "GET",
            "/v1/conversations?limit=0".to_string(),
            Value::Null,
            400,
            "invalid_request",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let (s, v) = app
            .call(method, &path, (!body.is_null()).then_some(body))
            .await;
        assert_eq!(
            (s, v["error"]["code"].as_str().unwrap_or("")),
            (status, code),
            "{method} {path}: {v}"
        );
    }
    let (_, c) = app.call("POST", "/v1/conversations", Some(json!({}))).await;
    let id = c["id"].as_str().unwrap();
    let base = format!("/v1/conversations/{id}");
    let cases = [
        (
            format!("{base}/messages"),
            json!({"content": "  "}),
            400,
            "invalid_request",
        ),
        (
            format!("{base}/messages"),
            json!({"content": "x".repeat(8001)}),
            400,
            "message_too_long",
        ),
        (
            format!("{base}/messages"),
            json!({"content": "hi", "parent_id": "nope"}),
            400,
            "invalid_parent",
        ),
        (
            format!("{base}/messages"),
            json!({"content": "hi", "search": {"mode": "maybe"}}),
            400,
            "invalid_request",
        ),
        (
            format!("{base}/messages/nope/regenerate"),
            json!({}),
            404,
            "not_found",
        ),
        (
            format!("{base}/messages/nope/edit"),
            json!({"content": "x"}),
            404,
            "not_found",
        ),
        (
            format!("{base}/messages/nope/activate"),
            Value::Null,
            404,
            "not_found",
        ),
        (
            "/v1/conversations/nope/messages".to_string(),
            json!({"content": "hi"}),
            404,
            "not_found",
        ),
    ];
    for (path, body, status, code) in cases {
        let (s, v) = app
            .call("POST", &path, (!body.is_null()).then_some(body))
            .await;
        assert_eq!(
            (s, v["error"]["code"].as_str().unwrap_or("")),
            (status, code),
            "POST {path}: {v}"
        );
    }
    // A question cannot hang under a question.
    let (status, v) = app
        .call(
            "POST",
            &format!("{base}/messages"),
            Some(json!({"content": "Is the Miller Street bridge open?", "stream": false, "search": {"as_of": AS_OF}, "max_tokens": 32})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let qid = v["user_message"]["id"].as_str().unwrap();
    let (status, v) = app
        .call(
            "POST",
            &format!("{base}/messages"),
            Some(json!({"content": "hi", "parent_id": qid})),
        )
        .await;
    assert_eq!(
        (status, v["error"]["code"].as_str().unwrap()),
        (400, "invalid_parent")
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_stream_and_trending() {
    let (mut app, _temp) = app_with_feed("chat_feed.jsonl", 12).await;
    // Trending: topics posted by several accounts in the fixture's window.
    let (status, v) = app
        .call(
            "GET",
            &format!("/v1/trending?window=6h&as_of={AS_OF}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let labels: Vec<&str> = v["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["label"].as_str().unwrap())
        .collect();
    assert!(
        labels.iter().any(|l| l.eq_ignore_ascii_case("Riverton")),
        "{v}"
    );
    assert!(v["topics"][0]["question"].as_str().unwrap().ends_with('?'));

    // The live stream: a backfill, then posts as they are indexed, filtered.
    let r = app
        .client
        .get(format!("{}/v1/posts/stream?backfill=3&q=kayak", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut body = r.bytes_stream();
    let mut seen = String::new();
    read_until(&mut body, &mut seen, "event: live").await;
    assert!(
        !seen.contains("event: post"),
        "no fixture post mentions kayaks: {seen}"
    );
    app.push(&json!([
        post("k1", "Nothing to see here", "2024-05-10T18:01:00Z"),
        post(
            "k2",
            "Someone is paddling a kayak down Miller Street!",
            "2024-05-10T18:02:00Z"
        ),
    ]))
    .await;
    read_until(&mut body, &mut seen, "k2").await;
    let events = parse_sse(&seen);
    let posts: Vec<&Value> = events
        .iter()
        .filter(|(n, _)| n == "post")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(posts.len(), 1, "{events:?}");
    assert_eq!(posts[0]["id"], "k2");
    assert_eq!(
        posts[0]["text"],
        "Someone is paddling a kayak down Miller Street!"
    );
    let (status, v) = app.call("GET", "/v1/posts/stream?backfill=999", None).await;
    assert_eq!(
        (status, v["error"]["code"].as_str().unwrap()),
        (400, "invalid_request")
    );
    app.stop().await;
}
