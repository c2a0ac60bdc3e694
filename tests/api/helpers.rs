//! `spawn_app` and a `TestApp` with a method per endpoint.

use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;
use tidings::app::App;
use tidings::config::Settings;

pub(crate) struct TestApp {
    pub(crate) app: Option<App>,
    pub(crate) base: String,
    pub(crate) client: reqwest::Client,
    pub(crate) _temp: Option<tempfile::TempDir>,
}

/// The repository's model folder (fetched by `make setup`).
pub(crate) fn model_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/all-minilm-l6-v2")
}

pub(crate) fn settings(data_dir: &std::path::Path) -> Settings {
    let mut s = Settings::default();
    s.data.dir = data_dir.to_path_buf();
    s.server.bind = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    s.embedder.model_dir = model_dir();
    s.embedder.instances = 1;
    s.index.commit_interval_ms = 50;
    s.server.max_body_bytes = 256 * 1024;
    s.server.max_posts_per_request = 100;
    s.index.optimize_every = 0;
    // Tests that answer questions opt in with `spawn_app_with(.., model = true)`.
    s.model.kind = "none".into();
    // The smallest known model keeps the suite fast; `tidings-tools eval` answers with the default.
    s.model.models_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
    s.model.local = "smollm2-135m".into();
    s.model.context_tokens = 2048;
    s
}

/// An app with the given settings (the caller keeps the data dir alive).
pub(crate) async fn spawn_with_settings(settings: Settings) -> TestApp {
    tidings::telemetry::init("warn");
    let app = App::build(&settings, None).await.expect("app starts");
    let base = format!("http://{}", app.addr);
    TestApp {
        app: Some(app),
        base,
        client: reqwest::Client::new(),
        _temp: None,
    }
}

pub(crate) async fn spawn_app() -> TestApp {
    let temp = tempfile::tempdir().expect("temp dir");
    let mut app = spawn_app_in(temp.path().to_path_buf()).await;
    app._temp = Some(temp);
    app
}

pub(crate) async fn spawn_app_in(data_dir: PathBuf) -> TestApp {
    spawn_with_settings(settings(&data_dir)).await
}

pub(crate) fn post(id: &str, text: &str, created_at: &str) -> Value {
    json!({ "id": id, "text": text, "created_at": created_at })
}

impl TestApp {
    pub(crate) async fn push(&self, body: &Value) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}/v1/posts", self.base))
            .json(body)
            .send()
            .await
            .expect("push");
        let status = r.status().as_u16();
        (status, r.json().await.expect("push json"))
    }

    pub(crate) async fn push_raw(&self, body: Vec<u8>, content_type: &str) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}/v1/posts", self.base))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("push");
        let status = r.status().as_u16();
        (status, r.json().await.expect("push json"))
    }

    pub(crate) async fn search(&self, body: Value) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}/v1/search", self.base))
            .json(&body)
            .send()
            .await
            .expect("search");
        let status = r.status().as_u16();
        (status, r.json().await.expect("search json"))
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("get");
        let status = r.status().as_u16();
        (status, r.text().await.expect("body"))
    }

    pub(crate) async fn delete(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .delete(format!("{}{path}", self.base))
            .send()
            .await
            .expect("delete");
        let status = r.status().as_u16();
        (status, r.json().await.expect("delete json"))
    }

    /// Waits until every committed post has the embedder's own vector (interim ones upgraded),
    /// so that what a test then finds by meaning does not depend on the push's timing.
    pub(crate) async fn vectors_caught_up(&self) {
        let guard = self.app.as_ref().expect("running").index.lock().await;
        let service = guard.as_ref().expect("index open");
        tokio::time::timeout(Duration::from_secs(120), service.wait_for_upgrades(|_| {}))
            .await
            .expect("vectors caught up within 2 minutes");
    }

    pub(crate) async fn stop(&mut self) {
        if let Some(app) = self.app.take() {
            app.stop().await.expect("clean stop");
        }
    }
}

pub(crate) fn hit_ids(response: &Value) -> Vec<String> {
    response["hits"]
        .as_array()
        .map(|h| {
            h.iter()
                .map(|x| x["id"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The shape of a JSON body for snapshot tests: every leaf replaced by its type (`"string"`,
/// `"number"`, `"bool"`, `"null"`), an array by the distinct shapes of its items (sorted), an
/// object by its keys' shapes. Values change from run to run (ids, times, the model's words);
/// the shape is the contract the snapshots hold while code moves.
pub(crate) fn shape(value: &Value) -> Value {
    match value {
        Value::Null => json!("null"),
        Value::Bool(_) => json!("bool"),
        Value::Number(_) => json!("number"),
        Value::String(_) => json!("string"),
        Value::Array(items) => {
            let mut shapes: Vec<Value> = Vec::new();
            for item in items {
                let s = shape(item);
                if !shapes.contains(&s) {
                    shapes.push(s);
                }
            }
            shapes.sort_by_key(|s| s.to_string());
            Value::Array(shapes)
        }
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
        }
    }
}
