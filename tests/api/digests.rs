//! `/v1/digests`: definitions, runs (now and `as_of` a past time), stored runs, the Atom feed
//! (read back with the `feedparser` library), and failures recorded as failures.

use crate::chat::{app_with_feed, AS_OF};
use crate::helpers::{post, settings, shape, spawn_with_settings, TestApp};
use serde_json::{json, Value};
use std::path::PathBuf;

/// The feed parsed by Python's feedparser: (bozo flag, feed title, entry titles).
fn parse_feed(xml: &str) -> (bool, String, Vec<String>) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "run `make setup` first: {} is missing",
        python.display()
    );
    let script = r#"
import json, sys, feedparser
d = feedparser.parse(sys.stdin.read())
print(json.dumps({"bozo": bool(d.bozo), "error": str(d.get("bozo_exception", "")), "version": d.version,
                  "title": d.feed.get("title", ""), "entries": [e.title for e in d.entries],
                  "content": [e.content[0].value for e in d.entries]}))
"#;
    let mut child = std::process::Command::new(python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python runs");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(xml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).expect("feedparser output");
    assert_eq!(v["version"], "atom10", "{v}");
    assert_eq!(v["bozo"], false, "feedparser found the feed malformed: {v}");
    (
        v["bozo"].as_bool().unwrap(),
        v["title"].as_str().unwrap().to_string(),
        v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap().to_string())
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digests_run_now_and_in_the_past_and_feed_their_runs() {
    let (mut app, _temp) = app_with_feed("chat_feed.jsonl", 12).await;
    let (status, d) = app
        .call(
            "POST",
            "/v1/digests",
            Some(json!({"name": "Riverton & co <daily>", "window": "24h", "max_stories": 3})),
        )
        .await;
    assert_eq!(status, 201, "{d}");
    let id = d["id"].as_str().unwrap().to_string();
    assert_eq!(d["window"], "24h");
    let (status, list) = app.call("GET", "/v1/digests", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["data"].as_array().unwrap().len(), 1);

    // A run over the fixture's day.
    let (status, run) = app
        .call(
            "POST",
            &format!("/v1/digests/{id}/run"),
            Some(json!({"as_of": AS_OF})),
        )
        .await;
    assert_eq!(status, 201, "{run}");
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["as_of"], "2024-05-10T18:00:00Z");
    let out = &run["output"];
    assert_eq!(out["posts_seen"], 12);
    let stories = out["stories"].as_array().unwrap();
    assert!(!stories.is_empty(), "the flood is a story: {out}");
    for s in stories {
        assert!(!s["headline"].as_str().unwrap().is_empty());
        let members: Vec<&str> = s["post_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        for c in s["citations"].as_array().unwrap() {
            assert!(
                members.contains(&c["id"].as_str().unwrap()),
                "a summary cites only its story's posts: {s}"
            );
        }
    }
    let flood = stories
        .iter()
        .find(|s| {
            s["post_ids"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p == "fx:1")
        })
        .expect("the bridge post is in a story");
    assert!(
        !flood["post_ids"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "fx:5"),
        "the football result is not part of the flood story: {flood}"
    );
    assert!(run["markdown"].as_str().unwrap().contains("## 1."));
    insta::assert_json_snapshot!("digest_run", shape(&run));

    // A window with no posts is a quiet window, said explicitly.
    let (status, quiet) = app
        .call(
            "POST",
            &format!("/v1/digests/{id}/run"),
            Some(json!({"as_of": "2020-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(quiet["status"], "succeeded");
    assert_eq!(quiet["output"]["notable"], false);
    assert!(quiet["markdown"]
        .as_str()
        .unwrap()
        .contains("No notable stories"));

    let (_, runs) = app
        .call("GET", &format!("/v1/digests/{id}/runs"), None)
        .await;
    let ids: Vec<&str> = runs["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    let (status, one) = app
        .call("GET", &format!("/v1/digests/{id}/runs/{}", ids[1]), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(one["id"], ids[1]);

    // The Atom feed: one entry per run, accepted by a real feed parser.
    let (status, xml) = app.get(&format!("/v1/digests/{id}/feed.atom")).await;
    assert_eq!(status, 200);
    let (_, title, entries) = parse_feed(&xml);
    assert_eq!(title, "Riverton & co <daily>");
    assert_eq!(entries.len(), 2, "{xml}");
    assert!(entries
        .iter()
        .all(|e| e.starts_with("Riverton & co <daily> — ")));

    // Replace, then delete.
    let (status, d2) = app
        .call(
            "PUT",
            &format!("/v1/digests/{id}"),
            Some(json!({
                "name": "Floods", "scope": {"hashtags": ["rivertonflood"]}, "window": "6h",
                "schedule": {"cron": "0 8 * * *", "timezone": "Europe/Berlin", "missed": "skip"}
            })),
        )
        .await;
    assert_eq!(status, 200, "{d2}");
    assert_eq!(d2["schedule"]["timezone"], "Europe/Berlin");
    assert_eq!(d2["scope"]["hashtags"], json!(["rivertonflood"]));
    let (status, run) = app
        .call(
            "POST",
            &format!("/v1/digests/{id}/run"),
            Some(json!({"as_of": AS_OF})),
        )
        .await;
    assert_eq!(status, 201);
    assert!(
        run["output"]["posts_seen"].as_u64().unwrap() < 12,
        "the hashtag scope narrows the posts: {run}"
    );
    let (status, _) = app.call("DELETE", &format!("/v1/digests/{id}"), None).await;
    assert_eq!(status, 200);
    let (status, v) = app.call("GET", &format!("/v1/digests/{id}"), None).await;
    assert_eq!(
        (status, v["error"]["code"].as_str().unwrap()),
        (404, "not_found")
    );
    app.stop().await;
}

async fn app_with_failing_model() -> (TestApp, tempfile::TempDir) {
    // An upstream that always answers 500 (a test double for the failure path only).
    let upstream = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(|| async {
            (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"error":{"message":"upstream exploded"}}"#,
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, upstream).await });
    let temp = tempfile::tempdir().unwrap();
    let mut s = settings(temp.path());
    s.embedder.kind = "none".into();
    s.model.kind = "openai".into();
    s.model.url = Some(format!("http://{addr}/v1"));
    s.model.max_retries = 0;
    let app = spawn_with_settings(s).await;
    (app, temp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_model_is_a_failed_run_not_a_quiet_day() {
    let (mut app, _temp) = app_with_failing_model().await;
    let posts: Vec<Value> = ["ann", "bob", "cy", "dee"]
        .iter()
        .enumerate()
        .map(|(i, who)| {
            let mut p = post(
                &format!("f{i}"),
                &format!("Flooding closes the Riverton bridge downtown, reports {who}"),
                &format!("2024-05-10T1{i}:00:00Z"),
            );
            p["author"] = json!(who);
            p
        })
        .collect();
    let (status, _) = app.push(&json!(posts)).await;
    assert_eq!(status, 200);
    let (_, d) = app
        .call("POST", "/v1/digests", Some(json!({"name": "Floods"})))
        .await;
    let id = d["id"].as_str().unwrap();
    let (status, run) = app
        .call(
            "POST",
            &format!("/v1/digests/{id}/run"),
            Some(json!({"as_of": AS_OF})),
        )
        .await;
    assert_eq!(status, 201, "{run}");
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["error"]["code"], "upstream_error");
    assert!(run["output"].is_null() && run["markdown"].is_null());
    let (_, xml) = app.get(&format!("/v1/digests/{id}/feed.atom")).await;
    let (_, _, entries) = parse_feed(&xml);
    assert_eq!(entries.len(), 1);
    assert!(entries[0].ends_with("(failed)"), "{entries:?}");
    assert!(xml.contains("failed"));
    assert!(!xml.contains("No notable stories"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_requests_are_validated() {
    let (mut app, _temp) = app_with_failing_model().await;
    let cases = [
        (json!({"name": ""}), "invalid_request"),
        (json!({"name": "x", "window": "soon"}), "invalid_request"),
        (json!({"name": "x", "window": "90d"}), "invalid_request"),
        (json!({"name": "x", "max_stories": 0}), "invalid_request"),
        (json!({"name": "x", "persona": "pirate"}), "unknown_persona"),
        (json!({"name": "x", "colour": "red"}), "invalid_json"),
        (
            json!({"name": "x", "schedule": {"cron": "0 8 * * *", "colour": 1}}),
            "invalid_json",
        ),
        (
            json!({"name": "x", "scope": {"colour": "red"}}),
            "invalid_json",
        ),
    ];
    for (body, code) in cases {
        let (status, v) = app.call("POST", "/v1/digests", Some(body.clone())).await;
        assert_eq!(
            (status, v["error"]["code"].as_str().unwrap_or("")),
            (400, code),
            "{body}: {v}"
        );
    }
    for path in [
        "/v1/digests/nope",
        "/v1/digests/nope/runs",
        "/v1/digests/nope/feed.atom",
    ] {
        let (status, v) = app.call("GET", path, None).await;
        assert_eq!(
            (status, v["error"]["code"].as_str().unwrap_or("")),
            (404, "not_found"),
            "{path}"
        );
    }
    let (status, _) = app
        .call("POST", "/v1/digests/nope/run", Some(json!({})))
        .await;
    assert_eq!(status, 404);
    let (_, d) = app
        .call("POST", "/v1/digests", Some(json!({"name": "x"})))
        .await;
    let (status, v) = app
        .call(
            "POST",
            &format!("/v1/digests/{}/run", d["id"].as_str().unwrap()),
            Some(json!({"as_of": "yesterday-ish"})),
        )
        .await;
    assert_eq!(
        (status, v["error"]["code"].as_str().unwrap()),
        (400, "invalid_request")
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sharing_postgres_run_a_slot_once() {
    let db = crate::conversations::PgDatabase::create().await;
    let stores: Vec<tidings_api::store::Store> =
        futures::future::join_all((0..3).map(|_| tidings_api::store::Store::connect(&db.url)))
            .await
            .into_iter()
            .map(|s| s.expect("connect"))
            .collect();
    let d = stores[0]
        .create_digest("d", &json!({"name": "d", "schedule": {"every": "1h"}}))
        .await
        .unwrap();
    let slot: chrono::DateTime<chrono::Utc> = "2026-05-10T08:00:00Z".parse().unwrap();
    let claims = futures::future::join_all(
        stores
            .iter()
            .map(|s| s.start_run(&d.id, "schedule", slot, Some(slot))),
    )
    .await;
    let won = claims
        .into_iter()
        .map(|c| c.expect("claim"))
        .filter(|c| c.is_some())
        .count();
    assert_eq!(won, 1, "exactly one replica runs the slot");
    for s in &stores {
        s.close().await;
    }
    db.drop_it().await;
}

/// What the webhook receiver saw: (path, signature valid, body).
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, bool, Value)>>>;

const SECRET: &str = "a-long-shared-secret-123";

async fn receiver(
    axum::extract::State((seen, flaky_calls)): axum::extract::State<(
        Seen,
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
    )>,
    axum::extract::Path(kind): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let ts: i64 = header("x-tidings-timestamp").parse().unwrap_or(0);
    let valid = header("x-tidings-signature") == tidings_api::webhook::signature(SECRET, ts, &body)
        && (chrono::Utc::now().timestamp() - ts).abs() < 300;
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    seen.lock().unwrap().push((kind.clone(), valid, value));
    match kind.as_str() {
        "flaky" if flaky_calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 => {
            axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        "flaky" => axum::http::StatusCode::NO_CONTENT.into_response(),
        "down" => axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response(),
        "redirect" => (
            axum::http::StatusCode::FOUND,
            [("location", "http://10.255.255.1/hook")],
        )
            .into_response(),
        _ => axum::http::StatusCode::NOT_FOUND.into_response(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_retried_and_dead_lettered() {
    let seen: Seen = Default::default();
    let app_router = axum::Router::new()
        .route("/hook/{kind}", axum::routing::post(receiver))
        .with_state((seen.clone(), Default::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app_router).await });

    // The failing model makes the run fail: a failure is delivered as a failure.
    let upstream = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "no") }),
    );
    let up = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up_addr = up.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(up, upstream).await });
    let temp = tempfile::tempdir().unwrap();
    let mut s = settings(temp.path());
    s.embedder.kind = "none".into();
    s.model.kind = "openai".into();
    s.model.url = Some(format!("http://{up_addr}/v1"));
    s.model.max_retries = 0;
    s.digests.webhook_allow = vec!["127.0.0.1".into()];
    s.digests.webhook_attempts = 3;
    s.digests.webhook_backoff_ms = 10;
    let mut app = spawn_with_settings(s).await;
    let posts: Vec<Value> = ["ann", "bob", "cy"]
        .iter()
        .enumerate()
        .map(|(i, who)| {
            let mut p = post(
                &format!("w{i}"),
                &format!("Flooding closes the Riverton bridge downtown, reports {who}"),
                &format!("2024-05-10T1{i}:00:00Z"),
            );
            p["author"] = json!(who);
            p
        })
        .collect();
    app.push(&json!(posts)).await;

    // A private address written in the URL is refused at once.
    let (status, v) = app
        .call(
            "POST",
            "/v1/digests",
            Some(json!({"name": "x", "webhooks": [{"url": "http://192.168.1.20/hook", "secret": SECRET}]})),
        )
        .await;
    assert_eq!(
        (status, v["error"]["code"].as_str().unwrap()),
        (400, "webhook_refused"),
        "{v}"
    );

    let hook = |kind: &str| json!({"url": format!("http://{addr}/hook/{kind}"), "secret": SECRET});
    let (status, d) = app
        .call(
            "POST",
            "/v1/digests",
            Some(json!({"name": "Floods", "webhooks": [hook("flaky"), hook("down"), hook("redirect")]})),
        )
        .await;
    assert_eq!(status, 201, "{d}");
    assert!(d["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h.get("secret").is_none() && h["secret_set"] == true));
    let id = d["id"].as_str().unwrap().to_string();
    let (_, run) = app
        .call(
            "POST",
            &format!("/v1/digests/{id}/run"),
            Some(json!({"as_of": AS_OF})),
        )
        .await;
    assert_eq!(run["status"], "failed");

    // Wait until no delivery is pending (a condition, not a duration).
    let mut deliveries = Value::Null;
    for _ in 0..600 {
        let (_, v) = app
            .call("GET", &format!("/v1/digests/{id}/deliveries"), None)
            .await;
        let data = v["data"].as_array().cloned().unwrap_or_default();
        if data.len() == 3 && data.iter().all(|d| d["status"] != "pending") {
            deliveries = v;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let by_kind = |kind: &str| {
        deliveries["data"]
            .as_array()
            .expect("deliveries finished")
            .iter()
            .find(|d| d["url"].as_str().unwrap().ends_with(kind))
            .cloned()
            .unwrap()
    };
    let flaky = by_kind("flaky");
    assert_eq!(
        (flaky["status"].as_str(), flaky["attempts"].as_i64()),
        (Some("delivered"), Some(2)),
        "{flaky}"
    );
    let down = by_kind("down");
    assert_eq!(down["status"], "dead", "{down}");
    assert_eq!(down["attempts"], 3);
    assert_eq!(down["last_status"], 503);
    let redirect = by_kind("redirect");
    assert_eq!(redirect["status"], "dead");
    assert!(
        redirect["last_error"].as_str().unwrap().contains("private"),
        "{redirect}"
    );

    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter().all(|(_, valid, _)| *valid),
        "every request carries a valid signature"
    );
    let delivered = seen.iter().find(|(k, _, _)| k == "flaky").unwrap();
    assert_eq!(delivered.2["event"], "digest.run");
    assert_eq!(delivered.2["run"]["status"], "failed");
    assert_eq!(delivered.2["run"]["error"]["code"], "upstream_error");
    assert_eq!(seen.iter().filter(|(k, _, _)| k == "down").count(), 3);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digests_declared_in_the_settings_are_created_once_and_updated() {
    let temp = tempfile::tempdir().unwrap();
    let declare = |window: &str| {
        let mut s = settings(temp.path());
        s.digests.define = vec![json!({
            "name": "Declared daily", "window": window,
            "schedule": {"cron": "0 8 * * *", "timezone": "Europe/Berlin"}
        })];
        s
    };
    let mut app = spawn_with_settings(declare("24h")).await;
    let (_, list) = app.call("GET", "/v1/digests", None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    app.stop().await;
    // Restart with a changed window: the same digest, updated, not a second one.
    let mut app = spawn_with_settings(declare("12h")).await;
    let (_, list) = app.call("GET", "/v1/digests", None).await;
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["window"], "12h");
    assert_eq!(data[0]["schedule"]["timezone"], "Europe/Berlin");
    app.stop().await;
    // A bad declaration stops the start with a clear message.
    let mut bad = settings(temp.path());
    bad.digests.define = vec![json!({"name": "Broken", "schedule": {"cron": "not cron"}})];
    let err = tidings::app::App::build(&bad, None)
        .await
        .err()
        .expect("refused");
    assert!(format!("{err:#}").contains("Broken"), "{err:#}");
}

/// A stored definition that no longer parses (another version wrote it, someone edited the
/// database) fails loudly with a stable code, does not hide the other digests, and is mended
/// by saving it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_digest_that_does_not_parse_fails_loudly_and_can_be_saved_again() {
    let temp = tempfile::tempdir().expect("temp dir");
    let mut app = spawn_with_settings(settings(temp.path())).await;
    let (status, d) = app
        .call("POST", "/v1/digests", Some(json!({"name": "Floods"})))
        .await;
    assert_eq!(status, 201, "{d}");
    let id = d["id"].as_str().unwrap().to_string();
    let db = format!("sqlite://{}", temp.path().join("tidings.db").display());
    let store = tidings_api::store::Store::connect(&db).await.expect("open");
    store
        .update_digest(&id, "Floods", &json!({"name": "Floods", "windw": "24h"}))
        .await
        .expect("write a spec of another shape");
    store.close().await;

    let (status, v) = app
        .call("POST", &format!("/v1/digests/{id}/run"), Some(json!({})))
        .await;
    assert_eq!(status, 500, "{v}");
    assert_eq!(v["error"]["code"], "corrupt_digest", "{v}");
    assert!(
        !v["error"]["message"].as_str().unwrap().contains("windw"),
        "the parse detail stays in the log: {v}"
    );
    let (status, list) = app.call("GET", "/v1/digests", None).await;
    assert_eq!(status, 200, "one bad row does not hide the list: {list}");
    assert_eq!(list["data"].as_array().unwrap().len(), 1);

    let (status, v) = app
        .call(
            "PUT",
            &format!("/v1/digests/{id}"),
            Some(json!({"name": "Floods", "window": "24h"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let (_, v) = app
        .call("POST", &format!("/v1/digests/{id}/run"), Some(json!({})))
        .await;
    assert_ne!(v["error"]["code"], "corrupt_digest", "saved again: {v}");
    app.stop().await;
}
