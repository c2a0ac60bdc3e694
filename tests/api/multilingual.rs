//! Posts in every script through every path that reads or shows them, with the real local
//! model: chat (streamed and not), a conversation (ask, regenerate, edit), search in every mode,
//! the live post stream, trending, and a digest run with its markdown and Atom feed. Nothing may
//! fail; a Japanese question must find the Japanese posts.
//!
//! The feed (`tests/fixtures/multilingual_feed.jsonl`) holds Japanese (the post from the crash
//! report among them), Chinese, Korean, Arabic, Hindi, Russian, Hebrew, Portuguese with
//! accents, an emoji-only post with ZWJ sequences, combining marks, zero-width and bidi
//! control characters, and a mixed post.

use crate::chat::{app_with_feed, AS_OF};
use crate::conversations::{event, parse_sse};
use serde_json::{json, Value};
use std::time::Duration;

const POSTS: u64 = 19;
const JAPANESE_QUAKE: [&str; 5] = ["ml:1", "ml:2", "ml:3", "ml:4", "ml:16"];

/// Questions in the feed's languages (and one of emoji alone).
const QUESTIONS: [&str; 9] = [
    "東京で何が起きていますか？",
    "北京暴雨怎么样了？",
    "서울 지하철은 어떻게 되었나요?",
    "ماذا يحدث في القاهرة؟",
    "दिल्ली में क्या हो रहा है?",
    "Что происходит в Москве?",
    "O que está acontecendo em São Paulo?",
    "🔥😱?",
    "What happened to the Miller Street bridge in Riverton?",
];

fn ids(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|h| h["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_script_through_every_path() {
    let (mut app, _dir) = app_with_feed("multilingual_feed.jsonl", POSTS).await;

    // Search in every mode, in every script: never an error; Japanese finds Japanese.
    for q in QUESTIONS
        .iter()
        .copied()
        .chain(["地震", "東京 地震", "🔥", "\u{200b}", "e\u{301}"])
    {
        for mode in ["text", "vector", "hybrid"] {
            let (status, body) = app
                .search(json!({"q": q, "mode": mode, "as_of": AS_OF, "since": "24h", "limit": 10}))
                .await;
            assert_eq!(status, 200, "search {q:?} in {mode}: {body}");
        }
    }
    let (_, quake) = app
        .search(json!({"q": "地震", "mode": "text", "as_of": AS_OF, "since": "24h", "limit": 10}))
        .await;
    let found = ids(&quake, "hits");
    for id in ["ml:1", "ml:2", "ml:3", "ml:4"] {
        assert!(
            found.contains(&id.to_string()),
            "地震 finds {id}: {found:?}"
        );
    }
    assert!(
        found
            .iter()
            .all(|id| JAPANESE_QUAKE.contains(&id.as_str()) || id == "ml:13"),
        "{found:?}"
    );
    let (_, tokyo) = app
        .search(
            json!({"q": "東京で何が起きていますか", "as_of": AS_OF, "since": "24h", "limit": 3}),
        )
        .await;
    let top = ids(&tokyo, "hits");
    assert!(
        top.first()
            .is_some_and(|id| JAPANESE_QUAKE.contains(&id.as_str())),
        "a Japanese question ranks a Japanese quake post first: {top:?}"
    );

    // Chat completions, not streamed and streamed, in every language.
    for q in QUESTIONS {
        let body = json!({"model": "tidings", "messages": [{"role": "user", "content": q}],
                          "search": {"as_of": AS_OF}, "max_tokens": 60});
        let (status, answer) = app.chat(body.clone()).await;
        assert_eq!(status, 200, "chat {q:?}: {answer}");
        let text = answer["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or("");
        assert!(!text.trim().is_empty(), "an answer to {q:?}: {answer}");
        let mut body = body;
        body["stream"] = json!(true);
        let (status, _, data) = app.chat_stream(body).await;
        assert_eq!(status, 200, "stream {q:?}");
        assert_eq!(
            data.last().map(String::as_str),
            Some("[DONE]"),
            "stream {q:?}: {data:?}"
        );
        assert!(
            !data.iter().any(|d| d.contains("\"error\"")),
            "no error in the stream of {q:?}: {data:?}"
        );
    }

    // The Japanese question answered in a conversation: the posts it is given are the quake
    // posts, and the answer is stored.
    let (status, c) = app
        .call(
            "POST",
            "/v1/conversations",
            Some(json!({"search": {"as_of": AS_OF}})),
        )
        .await;
    assert_eq!(status, 201, "{c}");
    let cid = c["id"].as_str().expect("id").to_string();
    let mut last_answer = String::new();
    for q in QUESTIONS {
        let (status, events) = app
            .generate(
                &format!("/v1/conversations/{cid}/messages"),
                json!({"content": q, "max_tokens": 60}),
            )
            .await;
        assert_eq!(status, 200, "{q:?}: {events:?}");
        assert!(
            event(&events, "error").is_none(),
            "{q:?} failed: {events:?}"
        );
        let done =
            event(&events, "done").unwrap_or_else(|| panic!("{q:?} has an answer: {events:?}"));
        assert_eq!(done["status"], "complete", "{done}");
        last_answer = done["id"].as_str().expect("answer id").to_string();
        if q == QUESTIONS[0] {
            let given: Vec<String> = event(&events, "retrieved").expect("retrieved")["posts"]
                .as_array()
                .expect("posts")
                .iter()
                .filter_map(|p| p["id"].as_str().map(str::to_string))
                .collect();
            assert!(
                given
                    .iter()
                    .take(3)
                    .all(|id| JAPANESE_QUAKE.contains(&id.as_str()) || id == "ml:13"),
                "the Japanese question is answered from Japanese posts: {given:?}"
            );
            let cited: Vec<&str> = done["citations"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            eprintln!("ja answer: {} cited {cited:?}", done["content"]);
            assert!(!cited.is_empty(), "the Japanese answer cites: {done}");
            assert!(
                cited
                    .iter()
                    .all(|id| JAPANESE_QUAKE.contains(id) || *id == "ml:13"),
                "and cites the Japanese quake posts: {cited:?}"
            );
        }
    }
    // Regenerate the last answer, then edit the last question into Japanese.
    let (status, events) = app
        .generate(
            &format!("/v1/conversations/{cid}/messages/{last_answer}/regenerate"),
            json!({"max_tokens": 40}),
        )
        .await;
    assert_eq!(status, 200, "{events:?}");
    assert!(event(&events, "done").is_some(), "regenerated: {events:?}");
    let tree = app
        .call("GET", &format!("/v1/conversations/{cid}"), None)
        .await
        .1;
    let question = tree["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .expect("a question")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (status, events) = app
        .generate(
            &format!("/v1/conversations/{cid}/messages/{question}/edit"),
            json!({"content": "大阪の揺れは？ 🙏🏽 e\u{301}", "max_tokens": 40}),
        )
        .await;
    assert_eq!(status, 200, "{events:?}");
    assert!(
        event(&events, "done").is_some(),
        "edited and answered: {events:?}"
    );
    let tree = app
        .call("GET", &format!("/v1/conversations/{cid}"), None)
        .await
        .1;
    for m in tree["messages"].as_array().expect("messages") {
        assert_ne!(m["status"], "error", "no stored failure: {m}");
    }
    assert!(
        tree["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("東京")),
        "{tree}"
    );

    // The live post stream: the backfill carries every script intact.
    let r = app
        .client
        .get(format!("{}/v1/posts/stream?backfill=50", app.base))
        .send()
        .await
        .expect("stream");
    assert_eq!(r.status().as_u16(), 200);
    let mut body = r.bytes_stream();
    let mut seen = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        use futures::StreamExt;
        while let Some(Ok(chunk)) = body.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains("\"live\"") || seen.contains("event: live") {
                break;
            }
        }
    })
    .await;
    let backfill = parse_sse(&seen);
    for needle in [
        "地震です 東京で大きな揺れ",
        "São Paulo",
        "👨‍👩‍👧‍👦",
        "القاهرة",
        "दिल्ली",
    ] {
        assert!(
            backfill.iter().any(|(_, v)| v.to_string().contains(needle)),
            "the live stream carries {needle:?}"
        );
    }

    // Trending over the window.
    let (status, trending) = app
        .call(
            "GET",
            &format!("/v1/trending?as_of={AS_OF}&window=24h"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{trending}");

    // A digest over the feed: a succeeded run, its markdown and its Atom feed.
    let (status, d) = app
        .call(
            "POST",
            "/v1/digests",
            Some(json!({"name": "世界 · world", "window": "24h", "max_stories": 4})),
        )
        .await;
    assert_eq!(status, 201, "{d}");
    let did = d["id"].as_str().expect("id").to_string();
    let (status, run) = app
        .call(
            "POST",
            &format!("/v1/digests/{did}/run"),
            Some(json!({"as_of": AS_OF})),
        )
        .await;
    assert_eq!(status, 201, "{run}");
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["output"]["posts_seen"], POSTS);
    let (status, feed) = app.get(&format!("/v1/digests/{did}/feed.atom")).await;
    assert_eq!(status, 200, "{feed}");
    assert!(feed.contains("世界 · world"), "{feed}");
    app.stop().await;
}
