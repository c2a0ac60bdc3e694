//! Two replicas of `tidings serve` (real processes) sharing the NATS JetStream at
//! 127.0.0.1:4222, a fresh PostgreSQL database and a real Qdrant server:
//! - both find every published post by BM25 (each keeps its own tantivy index from its own
//!   durable consumer), while the Qdrant collection holds each post once and the two embedders
//!   together embedded each post once (one replica holds the vector writer's lease);
//! - a conversation generating on one replica is refused on the other (`conversation_busy`);
//! - SIGKILL of a replica mid-generation and mid-digest-run: once its leases lapse, the other
//!   stores an `interrupted` answer and marks the run failed, so nothing stays `running`; and
//!   it takes over the vector writer's lease, so posts published after still get their vectors.

use crate::conversations::PgDatabase;
use crate::crash::{free_port, random_u64, readyz, start, test_stream};
use crate::qdrant_server::QdrantServer;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

const N: usize = 120;
const LEASE_TTL_SECS: u64 = 3;

struct Replica {
    name: &'static str,
    config: PathBuf,
    log: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Replica {
    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn start(&mut self, client: &reqwest::Client) {
        self.port = free_port();
        self.child = Some(start(&self.config, self.port, &self.log));
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(v) = readyz(client, self.port).await {
                if v["checks"]["sources"][0]["connected"] == json!(true) {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "replica {} did not start; log:\n{}",
                self.name,
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL the replica");
            child.wait().expect("reap the replica");
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().rev().take(40).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    async fn get(&self, client: &reqwest::Client, path: &str) -> Value {
        client
            .get(format!("{}{path}", self.base()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path} on {}: {e}", self.name))
            .json()
            .await
            .expect("JSON")
    }

    async fn post(&self, client: &reqwest::Client, path: &str, body: Value) -> Value {
        client
            .post(format!("{}{path}", self.base()))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path} on {}: {e}", self.name))
            .json()
            .await
            .expect("JSON")
    }

    /// `index_embedded` from `/metrics`: texts this replica's embedder turned into vectors.
    async fn embedded(&self, client: &reqwest::Client) -> u64 {
        let metrics = client
            .get(format!("{}/metrics", self.base()))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        metrics
            .lines()
            .find(|l| l.starts_with("index_embedded"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no index_embedded in /metrics:\n{metrics}"))
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

fn write_config(
    dir: &Path,
    name: &str,
    database: &str,
    qdrant: &str,
    stream: &str,
    subject: &str,
) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            r#"[server]
replica = "{name}"
lease_ttl_secs = {LEASE_TTL_SECS}
[data]
dir = "{data}"
database_url = "{database}"
[model]
kind = "local"
local = "smollm2-135m"
models_dir = "{models}"
context_tokens = 2048
[embedder]
model_dir = "{minilm}"
instances = 1
# The model alone: this test counts texts embedded across the replicas (each post once), and
# an interim vector upgraded later is two runs of an embedder for one post, by design.
interim = "none"
[vectors]
kind = "qdrant"
url = "{qdrant}"
collection = "replicas"
[index]
commit_interval_ms = 100
optimize_every = 0
[[sources.define]]
kind = "nats"
stream = "{stream}"
subjects = ["{subject}"]
consumer = "{name}"
"#,
            data = dir.join(format!("data-{name}")).display(),
            models = repo.join("models").display(),
            minilm = repo.join("models/all-minilm-l6-v2").display(),
        ),
    )
    .expect("write settings");
    config
}

fn post(i: usize) -> Value {
    json!({
        "id": format!("replica-{i}"),
        "author": format!("harbour{}", i % 13),
        "text": format!("Harbour update {i}: the ferry terminal reopened after the storm, tokr{i}x"),
        "created_at": (chrono::Utc::now() - chrono::Duration::seconds((N + 10 - i) as i64)).to_rfc3339(),
    })
}

async fn publish(
    js: &async_nats::jetstream::Context,
    subject: &str,
    range: std::ops::Range<usize>,
) {
    for i in range {
        js.publish(subject.to_string(), post(i).to_string().into_bytes().into())
            .await
            .expect("publish")
            .await
            .expect("publish acknowledged");
    }
}

fn points(qdrant: &QdrantServer) -> u64 {
    let (_, body) = qdrant.nodes[0]
        .get("/collections/replicas")
        .expect("collection info");
    let v: Value = serde_json::from_str(&body).expect("collection JSON");
    v["result"]["points_count"].as_u64().unwrap_or(0)
}

/// Waits until `check` holds (polling every 200 ms), or fails with `what`.
async fn until<F, Fut>(what: &str, secs: u64, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match check().await {
            Ok(()) => return,
            Err(state) if Instant::now() < deadline => {
                let _ = state;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(state) => panic!("{what} did not happen in {secs} s: {state}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_the_work_and_recover_each_other() {
    let qdrant = tokio::task::block_in_place(QdrantServer::start);
    let db = PgDatabase::create().await;
    let temp = tempfile::tempdir().unwrap();
    let tag = format!("{:x}", random_u64());
    let (stream, subject) = (
        format!("TIDINGS_REPLICAS_{tag}"),
        format!("tidings.replicas.{tag}"),
    );
    let js = test_stream(&stream, &subject).await;

    let client = reqwest::Client::new();
    let make = |name: &'static str| Replica {
        name,
        config: write_config(temp.path(), name, &db.url, &qdrant.url(), &stream, &subject),
        log: temp.path().join(format!("{name}.log")),
        port: 0,
        child: None,
    };
    let (mut a, mut b) = (make("replica-a"), make("replica-b"));
    a.start(&client).await;
    b.start(&client).await;
    publish(&js, &subject, 0..N).await;

    // Both index every post; Qdrant holds each once; the two embedders embedded N in all.
    until(
        "both replicas index every post and Qdrant holds N points",
        180,
        || async {
            let (ra, rb) = (
                a.get(&client, "/readyz").await,
                b.get(&client, "/readyz").await,
            );
            let posts = |r: &Value| r["checks"]["text_index"]["posts"].as_u64().unwrap_or(0);
            let n = points(&qdrant);
            // The writer counts a batch as embedded once its upsert has returned, a moment
            // after Qdrant already holds the points: wait for the count too (the exact figure
            // is checked below, so a post embedded twice still fails).
            let embedded = a.embedded(&client).await + b.embedded(&client).await;
            if posts(&ra) == N as u64
                && posts(&rb) == N as u64
                && n == N as u64
                && embedded >= N as u64
            {
                Ok(())
            } else {
                Err(format!(
                    "a {} posts, b {} posts, qdrant {n} points, {embedded} embedded",
                    posts(&ra),
                    posts(&rb)
                ))
            }
        },
    )
    .await;
    let (sa, sb) = (
        a.get(&client, "/v1/sources").await,
        b.get(&client, "/v1/sources").await,
    );
    assert_eq!(
        (sa["replica"].as_str(), sb["replica"].as_str()),
        (Some("replica-a"), Some("replica-b"))
    );
    let writers = [&sa, &sb]
        .iter()
        .filter(|s| s["vector_writer"] == json!(true))
        .count();
    assert_eq!(writers, 1, "one vector writer: {sa} {sb}");
    let a_writes = sa["vector_writer"] == json!(true);
    let embedded = a.embedded(&client).await + b.embedded(&client).await;
    assert_eq!(
        embedded, N as u64,
        "each post embedded once across the replicas"
    );
    for i in [0, N / 2, N - 1] {
        for r in [&a, &b] {
            let found = r
                .get(&client, &format!("/v1/search?q=tokr{i}x&mode=text"))
                .await;
            assert_eq!(
                found["hits"][0]["id"],
                format!("replica-{i}"),
                "{} finds post {i}: {found}",
                r.name
            );
        }
    }

    // One generation per conversation across the replicas, then SIGKILL mid-generation.
    let conversation = a
        .post(&client, "/v1/conversations", json!({"title": "港 harbour"}))
        .await;
    let cid = conversation["id"]
        .as_str()
        .expect("conversation id")
        .to_string();
    let mut streaming = client
        .post(format!("{}/v1/conversations/{cid}/messages", a.base()))
        .json(&json!({"content": "What happened at the ferry terminal?", "stream": true, "max_tokens": 400}))
        .send()
        .await
        .expect("ask on replica a");
    assert_eq!(streaming.status(), 200);
    let mut events = String::new();
    let question = loop {
        let chunk = streaming
            .chunk()
            .await
            .expect("an event")
            .expect("the stream is open");
        events.push_str(&String::from_utf8_lossy(&chunk));
        // `event: user` then `data: {the stored question}`.
        let data = events
            .split("event: user")
            .nth(1)
            .and_then(|rest| rest.lines().find_map(|l| l.strip_prefix("data: ")))
            .and_then(|d| serde_json::from_str::<Value>(d).ok());
        if let Some(q) = data {
            break q["id"].as_str().expect("the question's id").to_string();
        }
    };
    // Regenerating the same question on the other replica while this one answers it.
    let refused = client
        .post(format!(
            "{}/v1/conversations/{cid}/messages/{question}/regenerate",
            b.base()
        ))
        .json(&json!({"stream": false}))
        .send()
        .await
        .expect("regenerate on replica b");
    assert_eq!(refused.status(), 409);
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(refused["error"]["code"], "conversation_busy", "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("another replica"),
        "{refused}"
    );
    a.kill();
    drop(streaming);
    until("replica b stores an interrupted answer", 60, || async {
        let tree = b.get(&client, &format!("/v1/conversations/{cid}")).await;
        let answered = tree["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["role"] == "assistant");
        match answered {
            Some(m) if m["status"] == "error" && m["error"]["code"] == "interrupted" => Ok(()),
            Some(m) => panic!("the generation finished before the kill, or failed otherwise: {m}"),
            None => Err("no answer yet".into()),
        }
    })
    .await;

    // The vector writer's lease moves to b if a held it: new posts still get their vectors.
    until("replica b writes the vectors", 30, || async {
        let s = b.get(&client, "/v1/sources").await;
        if s["vector_writer"] == json!(true) {
            Ok(())
        } else {
            Err(s.to_string())
        }
    })
    .await;
    let before = b.embedded(&client).await;
    publish(&js, &subject, N..N + 10).await;
    until(
        "b embeds the new posts and Qdrant holds them",
        120,
        || async {
            let n = points(&qdrant);
            let embedded = b.embedded(&client).await - before;
            if n == N as u64 + 10 && embedded >= 10 {
                Ok(())
            } else {
                Err(format!(
                    "{n} points, b embedded {embedded} (writer before the kill: {})",
                    if a_writes { "a" } else { "b" }
                ))
            }
        },
    )
    .await;

    // a comes back after 10 posts it did not see: it reports ready only once it has read them.
    a.start(&client).await;
    until("replica a is ready", 60, || async {
        let r = client
            .get(format!("{}/readyz", a.base()))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let code = r.status().as_u16();
        let body: Value = r.json().await.map_err(|e| e.to_string())?;
        match code {
            200 => {
                assert_eq!(
                    body["checks"]["text_index"]["posts"],
                    json!(N + 10),
                    "ready before it caught up with the stream: {body}"
                );
                Ok(())
            }
            503 if body["status"] == "catching_up" => Err(body.to_string()),
            _ => panic!("{code} {body}"),
        }
    })
    .await;

    // SIGKILL mid-digest-run: the run is marked failed (interrupted) by the other replica.
    let digest = b
        .post(
            &client,
            "/v1/digests",
            json!({"name": "Harbour", "window": "24h"}),
        )
        .await;
    let did = digest["id"].as_str().expect("digest id").to_string();
    let mut interrupted = None;
    for _attempt in 0..3 {
        let run = {
            let (client, url) = (client.clone(), format!("{}/v1/digests/{did}/run", a.base()));
            tokio::spawn(async move { client.post(url).json(&json!({})).send().await })
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut running = None;
        while Instant::now() < deadline && !run.is_finished() {
            let runs = b.get(&client, &format!("/v1/digests/{did}/runs")).await;
            running = runs["data"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|r| r["status"] == "running")
                .and_then(|r| r["id"].as_str().map(String::from));
            if running.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if let Some(id) = running {
            a.kill();
            interrupted = Some(id);
            break;
        }
        // The run finished before it was seen running: try again.
        let _ = run.await;
    }
    let run_id = interrupted.expect("a digest run was seen running on replica a");
    until(
        "replica b marks the run failed (interrupted)",
        60,
        || async {
            let run = b
                .get(&client, &format!("/v1/digests/{did}/runs/{run_id}"))
                .await;
            match run["status"].as_str() {
                Some("failed") if run["error"]["code"] == "interrupted" => Ok(()),
                Some("running") => Err("still running".into()),
                _ => panic!("the run ended otherwise: {run}"),
            }
        },
    )
    .await;

    b.kill();
    let _ = js.delete_stream(&stream).await;
    db.drop_it().await;
}
