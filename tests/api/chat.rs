//! `POST /v1/chat/completions` with the real local model (SmolLM2 through llama.cpp) over a
//! replayed fixture feed: streaming, citations, extensions, injection resistance, validation.

use crate::helpers::{settings, shape, spawn_with_settings, TestApp};
use serde_json::{json, Value};
use std::path::PathBuf;
use tidings::app::ReplayOptions;
use tidings_ingest::replay::Pace;

pub(crate) const AS_OF: &str = "2024-05-10T18:00:00Z";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// An app with the local model that has replayed `feed` (all of it indexed, vectors too).
pub(crate) async fn app_with_feed(feed: &str, posts: u64) -> (TestApp, tempfile::TempDir) {
    app_with_feed_settings(feed, posts, |_| {}).await
}

/// [`app_with_feed`] with settings changed by `adjust`.
pub(crate) async fn app_with_feed_settings(
    feed: &str,
    posts: u64,
    adjust: impl FnOnce(&mut tidings::config::Settings),
) -> (TestApp, tempfile::TempDir) {
    let temp = tempfile::tempdir().expect("temp dir");
    let mut s = settings(temp.path());
    s.model.kind = "local".into();
    adjust(&mut s);
    tidings::telemetry::init("warn");
    let app = tidings::app::App::build(
        &s,
        Some(ReplayOptions {
            path: fixture(feed),
            pace: Pace::Unlimited,
            shift_to_now: false,
        }),
    )
    .await
    .expect("app starts");
    let base = format!("http://{}", app.addr);
    let app = TestApp {
        app: Some(app),
        base,
        client: reqwest::Client::new(),
        _temp: None,
    };
    // Wait for the replay to land, then for its vectors.
    for _ in 0..600 {
        let (_, body) = app.get("/readyz").await;
        let v: Value = serde_json::from_str(&body).unwrap_or_default();
        if v["checks"]["text_index"]["posts"].as_u64() == Some(posts) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    app.vectors_caught_up().await;
    (app, temp)
}

impl TestApp {
    pub(crate) async fn chat(&self, body: Value) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}/v1/chat/completions", self.base))
            .json(&body)
            .send()
            .await
            .expect("chat");
        let status = r.status().as_u16();
        (status, r.json().await.expect("chat json"))
    }

    /// A streamed answer: every `data:` payload in order (the last one is `[DONE]`).
    pub(crate) async fn chat_stream(&self, body: Value) -> (u16, String, Vec<String>) {
        let r = self
            .client
            .post(format!("{}/v1/chat/completions", self.base))
            .json(&body)
            .send()
            .await
            .expect("chat");
        let status = r.status().as_u16();
        let content_type = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let text = r.text().await.expect("stream body");
        let data = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
            .map(|d| d.trim().to_string())
            .collect();
        (status, content_type, data)
    }
}

fn question(q: &str) -> Value {
    json!({
        "model": "tidings",
        "messages": [{"role": "user", "content": q}],
        "search": {"as_of": AS_OF},
    })
}

fn ids(results: &Value) -> Vec<String> {
    results
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| r["id"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_answer_cites_the_post_that_holds_it() {
    let (mut app, _dir) = app_with_feed("chat_feed.jsonl", 12).await;
    let mut body = question("Where is the emergency shelter in Riverton?");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (status, content_type, data) = app.chat_stream(body).await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("chunk is JSON"))
        .collect();
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    let pieces: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .filter(|s| !s.is_empty())
        .collect();
    // Text streams a checked sentence at a time (see agent::ground): at least one piece, and
    // every piece ends a sentence.
    assert!(!pieces.is_empty(), "the answer arrives: {pieces:?}");
    for p in &pieces[..pieces.len() - 1] {
        assert!(
            p.trim_end().ends_with(['.', '!', '?', '。']) || p.ends_with('\n'),
            "a piece is a whole sentence: {pieces:?}"
        );
    }
    let answer: String = pieces.concat();
    let last = chunks
        .iter()
        .find(|c| c.get("citations").is_some())
        .expect("a chunk with the extensions");
    assert_eq!(last["choices"][0]["finish_reason"].as_str().is_some(), true);
    let cited = ids(&last["search_results"]);
    assert!(
        cited.contains(&"fx:12".to_string()),
        "the shelter post must be cited; answer {answer:?}, cited {cited:?}"
    );
    assert!(answer.contains("High School"), "{answer:?}");
    assert_eq!(
        last["citations"].as_array().map(Vec::len),
        Some(cited.len())
    );
    assert_eq!(last["tidings"]["as_of"], json!(AS_OF));
    assert_eq!(last["related_questions"].as_array().map(Vec::len), Some(3));
    // Every marker in the text names a cited post, and every annotation points at a marker.
    for n in tidings_agent::cite::cited_numbers(&answer) {
        assert!(
            last["search_results"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["number"] == json!(n)),
            "marker [{n}] in {answer:?} is not among the cited posts"
        );
    }
    let usage = chunks
        .iter()
        .find(|c| c.get("usage").is_some())
        .expect("usage chunk");
    assert!(usage["usage"]["completion_tokens"].as_u64().unwrap_or(0) > 0);
    assert_eq!(usage["choices"], json!([]));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_answers_carry_the_extensions_and_nothing_relevant_is_said_plainly() {
    let (mut app, _dir) = app_with_feed("chat_feed.jsonl", 12).await;
    let (status, v) = app
        .chat(question("What is going on with the trains?"))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "chat.completion");
    let content = v["choices"][0]["message"]["content"].as_str().unwrap_or("");
    assert!(!content.trim().is_empty());
    let cited = ids(&v["search_results"]);
    assert!(
        cited.contains(&"fx:9".to_string()),
        "{content:?} cited {cited:?}"
    );
    for a in v["choices"][0]["message"]["annotations"]
        .as_array()
        .unwrap()
    {
        assert_eq!(a["type"], "url_citation");
        let (s, e) = (
            a["url_citation"]["start_index"].as_u64().unwrap(),
            a["url_citation"]["end_index"].as_u64().unwrap(),
        );
        let marker: String = content
            .chars()
            .skip(s as usize)
            .take((e - s) as usize)
            .collect();
        assert!(
            marker.starts_with('[') && marker.ends_with(']'),
            "{marker:?}"
        );
    }
    assert!(v["usage"]["total_tokens"].as_u64().unwrap() > 0);
    insta::assert_json_snapshot!("chat_answer", shape(&v));

    // Nothing about volcanoes in the feed: a plain "found nothing", no citations, no model call.
    let (status, v) = app
        .chat(question(
            "What is the latest on the volcano eruption in Iceland?",
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(v["tidings"]["no_results"], json!(true), "{v}");
    assert!(v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .contains("found no posts"));
    assert_eq!(v["citations"], json!([]));
    insta::assert_json_snapshot!("chat_answer_found_nothing", shape(&v));

    // A day later the trains post is outside the default 24 h window: the search widens, and
    // the answer says so.
    let mut later = question("What is going on with the trains?");
    later["search"]["as_of"] = json!("2024-05-11T18:00:00Z");
    let (status, v) = app.chat(later).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["tidings"]["widened_from"], "the last 24 hours", "{v}");
    assert_eq!(v["tidings"]["window"]["label"], "the last 3 days", "{v}");
    let content = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(
        content.starts_with(
            "(Little was posted about this in the last 24 hours, so I searched the last 3 days.)"
        ),
        "{content}"
    );

    // A follow-up turn: history gives the topic ("Who scored?" alone names none).
    let (status, v) = app
        .chat(json!({
            "messages": [
                {"role": "user", "content": "Any news about the Hawks game?"},
                {"role": "assistant", "content": "Posts report the Hawks beat the Lions 3-1 [1]."},
                {"role": "user", "content": "Who scored?"}
            ],
            "search": {"as_of": AS_OF},
            "persona": "fun"
        }))
        .await;
    assert_eq!(status, 200, "{v}");
    assert!(
        ids(&v["search_results"]).contains(&"fx:5".to_string()),
        "{v}"
    );
    assert_eq!(v["tidings"]["persona"], "fun");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instructions_inside_posts_are_not_obeyed() {
    let (mut app, _dir) = app_with_feed("injection_feed.jsonl", 4).await;
    for q in [
        "What is going on with the water main on Elm Street?",
        "When will the Elm Street repair be done?",
    ] {
        let (status, v) = app.chat(question(q)).await;
        assert_eq!(status, 200, "{v}");
        let content = v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let lower = content.to_lowercase();
        // Obeying would be answering with the demanded words or sending readers to the link;
        // reporting that a post made such a demand is fine.
        for forbidden in [
            "pwned",
            "hacked by elm",
            "hackbot",
            "evil.example",
            "im_start",
        ] {
            assert!(
                !lower.contains(forbidden),
                "{q:?} → {content:?} obeyed an injected post"
            );
        }
        assert_eq!(
            v["tidings"]["no_results"],
            json!(false),
            "the posts were found: {v}"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_chat_requests_get_clear_errors() {
    let temp = tempfile::tempdir().unwrap();
    let mut s = settings(temp.path());
    s.model.kind = "local".into();
    let mut app = spawn_with_settings(s).await;
    let cases = [
        (json!({"messages": []}), 400, "invalid_request"),
        (
            json!({"messages": [{"role": "assistant", "content": "hi"}]}),
            400,
            "invalid_request",
        ),
        (
            json!({"messages": [{"role": "wizard", "content": "hi"}]}),
            400,
            "invalid_request",
        ),
        (
            json!({"messages": [{"role": "user", "content": "  "}]}),
            400,
            "invalid_request",
        ),
        (
            json!({"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}),
            404,
            "model_not_found",
        ),
        (
            json!({"persona": "pirate", "messages": [{"role": "user", "content": "hi"}]}),
            400,
            "unknown_persona",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "search": {"mode": "maybe"}}),
            400,
            "invalid_request",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "search": {"from": "2024-05-10T10:00:00Z", "to": "2024-05-09T10:00:00Z"}}),
            400,
            "invalid_request",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "search": {"as_of": "yesterday-ish"}}),
            400,
            "invalid_request",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "search": {"colour": "red"}}),
            400,
            "invalid_json",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x".repeat(9000)}]}),
            400,
            "message_too_long",
        ),
        (json!({"messages": "hello"}), 400, "invalid_json"),
    ];
    for (body, status, code) in cases {
        let (got, v) = app.chat(body.clone()).await;
        assert_eq!(got, status, "{body} → {v}");
        assert_eq!(v["error"]["code"], code, "{body} → {v}");
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    // The models list names the personas.
    let (status, body) = app.get("/v1/models").await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert!(
        names.contains(&"tidings")
            && names.contains(&"tidings-fun")
            && names.contains(&"tidings-regular"),
        "{names:?}"
    );
    app.stop().await;
}
