//! Crash test: posts are published to the real NATS JetStream at 127.0.0.1:4222 while
//! `tidings serve` (the real binary, real tantivy, qdrant-edge and embedder) consumes them and is
//! killed with SIGKILL at random moments, several times, and restarted each time. At the end
//! every acknowledged post must be searchable exactly once, and the text and vector indexes must
//! hold the same ids. Malformed messages in the stream are dead-lettered, never block it.

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const N: usize = 1200;
const KILLS: usize = 4;
const RATE_PER_SEC: u64 = 150;

pub(crate) fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("random bytes");
    u64::from_le_bytes(b)
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub(crate) fn start(config: &Path, port: u16, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("server log");
    Command::new(env!("CARGO_BIN_EXE_tidings"))
        .arg("--config")
        .arg(config)
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start tidings serve")
}

/// A JetStream context on the NATS at 127.0.0.1:4222, with the test's own stream created.
pub(crate) async fn test_stream(stream: &str, subject: &str) -> async_nats::jetstream::Context {
    let nats = async_nats::connect("127.0.0.1:4222")
        .await
        .expect("NATS JetStream runs at 127.0.0.1:4222 (see README: scale-out ingest)");
    let js = async_nats::jetstream::new(nats);
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: stream.to_string(),
        subjects: vec![subject.to_string()],
        storage: async_nats::jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await
    .expect("create the test stream");
    js
}

pub(crate) async fn readyz(client: &reqwest::Client, port: u16) -> Option<Value> {
    client
        .get(format!("http://127.0.0.1:{port}/readyz"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

/// Waits until the server answers and its NATS source is connected.
async fn wait_connected(client: &reqwest::Client, port: u16, log: &Path) {
    for _ in 0..600 {
        if let Some(v) = readyz(client, port).await {
            if v["checks"]["sources"][0]["connected"] == json!(true) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the server never connected to NATS; log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

fn post(i: usize) -> Value {
    json!({
        "id": format!("crash-{i}"),
        "author": format!("crasher{}", i % 17),
        "text": format!("crash test post {i} about the river gauge tok{i}x reading"),
        "created_at": (chrono::Utc::now() - chrono::Duration::seconds((N - i) as i64)).to_rfc3339(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_ingesting_from_nats_loses_nothing_and_duplicates_nothing() {
    let temp = tempfile::tempdir().expect("temp dir");
    let tag = format!("{:x}", random_u64());
    let stream = format!("TIDINGS_CRASH_{tag}");
    let subject = format!("tidings.crash.{tag}");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = temp.path().join("data");
    let config = temp.path().join("tidings.toml");
    let log = temp.path().join("server.log");
    std::fs::write(
        &config,
        format!(
            r#"[data]
dir = "{data}"
[model]
kind = "none"
[embedder]
model_dir = "{models}"
instances = 1
[index]
commit_interval_ms = 100
optimize_every = 0
[[sources.define]]
kind = "nats"
stream = "{stream}"
subjects = ["{subject}"]
consumer = "crash"
ack_wait_secs = 3
"#,
            data = data.display(),
            models = repo.join("models/all-minilm-l6-v2").display(),
        ),
    )
    .expect("write settings");

    let js = test_stream(&stream, &subject).await;

    // The producer: N posts at a steady rate, plus malformed messages among them; a post counts
    // as acknowledged once JetStream confirms it.
    let producer = {
        let js = js.clone();
        let subject = subject.clone();
        tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(1000 / RATE_PER_SEC));
            for i in 0..N {
                tick.tick().await;
                if i % 300 == 150 {
                    for bad in [
                        &b"{\"id\": \"broken"[..],
                        &[0xff, 0xfe, 0x00][..],
                        &b"{\"id\": \"no-text\"}"[..],
                    ] {
                        js.publish(subject.clone(), bad.to_vec().into())
                            .await
                            .expect("publish")
                            .await
                            .expect("ack");
                    }
                }
                let body = post(i).to_string();
                js.publish(subject.clone(), body.into_bytes().into())
                    .await
                    .expect("publish")
                    .await
                    .expect("publish acknowledged");
                acked.push(format!("crash-{i}"));
            }
            acked
        })
    };

    let client = reqwest::Client::new();
    let mut kills = 0;
    let mut at_kill = Vec::new();
    while kills < KILLS {
        let port = free_port();
        let mut child = start(&config, port, &log);
        wait_connected(&client, port, &log).await;
        // A random moment while it ingests.
        let ms = 300 + random_u64() % 1700;
        tokio::time::sleep(Duration::from_millis(ms)).await;
        let posts = readyz(&client, port)
            .await
            .map(|v| v["checks"]["text_index"]["posts"].clone());
        at_kill.push(posts.unwrap_or(Value::Null));
        child.kill().expect("SIGKILL the server");
        child.wait().expect("reap the server");
        kills += 1;
    }
    let acked = producer.await.expect("producer");

    // Last start: let it drain the stream and embed everything, then stop it cleanly.
    let port = free_port();
    let mut child = start(&config, port, &log);
    wait_connected(&client, port, &log).await;
    let mut settled = false;
    for _ in 0..1800 {
        let consumer_idle = match js.get_stream(&stream).await {
            Ok(s) => match s.consumer_info("crash").await {
                Ok(info) => info.num_pending == 0 && info.num_ack_pending == 0,
                Err(_) => false,
            },
            Err(_) => false,
        };
        if let Some(v) = readyz(&client, port).await {
            let vi = &v["checks"]["vector_index"];
            if consumer_idle
                && v["checks"]["text_index"]["posts"] == json!(N)
                && vi["caught_up"] == json!(true)
                && vi["pending"] == json!(0)
            {
                settled = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ready = readyz(&client, port).await;
    assert!(
        settled,
        "the server did not settle: {ready:?}\nlog tail:\n{}",
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Searchable: a few posts by their unique word.
    for i in [0, N / 2, N - 1] {
        let r: Value = client
            .get(format!("http://127.0.0.1:{port}/v1/search"))
            .query(&[("q", format!("tok{i}x")), ("mode", "text".into())])
            .send()
            .await
            .expect("search")
            .json()
            .await
            .expect("search json");
        let ids: Vec<&str> = r["hits"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| h["id"].as_str().or(h["post"]["id"].as_str()))
            .collect();
        assert_eq!(
            ids,
            vec![format!("crash-{i}")],
            "post {i} is searchable once: {r}"
        );
    }
    // The source's status is in /readyz (its counters are per process: the malformed
    // messages may all have been handled by a run that was killed, so they are checked in the
    // dead-letter file below).
    let source = &ready.as_ref().expect("readyz")["checks"]["sources"][0];
    assert_eq!(source["connected"], json!(true), "{source}");
    assert!(source["rejected"].is_u64(), "{source}");
    let metrics = client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    assert!(
        metrics.lines().any(|l| l.starts_with("source_connected{")
            && l.contains(&stream)
            && l.ends_with(" 1")),
        "the source's state is in /metrics"
    );
    assert!(
        metrics.contains("source_messages_rejected_total{"),
        "rejections are in /metrics"
    );
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("send SIGTERM");
    child.wait().expect("server exits");

    let out = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .arg("--config")
        .arg(&config)
        .args(["verify", "--ids"])
        .output()
        .expect("tidings verify");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify printed JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let held: BTreeSet<String> = report["ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    let expected: BTreeSet<String> = acked.iter().cloned().collect();
    let lost = expected.difference(&held).count();
    let extra = held.difference(&expected).count();
    let duplicates = report["duplicate_ids"].as_array().map_or(0, Vec::len);
    let dead = std::fs::read_to_string(data.join("dead-letter.jsonl")).unwrap_or_default();
    println!(
        "crash test: N={} acknowledged, kills={kills}, lost={lost}, duplicates={duplicates}, unexpected={extra}, \
         vectors={}, missing vectors={}, stray vectors={}, dead-lettered lines={}; posts indexed when killed: {at_kill:?}",
        acked.len(),
        report["vector_points"],
        report["missing_vectors"],
        report["stray_vectors"],
        dead.lines().count()
    );
    assert_eq!(acked.len(), N);
    assert_eq!(lost, 0, "acknowledged posts lost");
    assert_eq!(duplicates, 0, "posts stored twice");
    assert_eq!(extra, 0);
    assert_eq!(
        report["consistent"],
        json!(true),
        "text and vector indexes hold the same ids: {report}"
    );
    assert_eq!(report["vector_points"], json!(N));
    assert!(
        dead.contains("malformed_json") && dead.contains("invalid_utf8"),
        "dead letters: {dead}"
    );
    let _ = js.delete_stream(&stream).await;
}
