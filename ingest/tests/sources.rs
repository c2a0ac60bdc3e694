//! Live connectors against local servers that speak the real protocols (WebSocket, SSE over
//! chunked HTTP, chunked JSON lines) and replay real captured messages (`tests/fixtures/`, cut
//! from `../shared/data/formats/`), into a real tantivy index: posts as produced, deletes and
//! edits applied, resume after a forced disconnect and after a restart, garbage survived.

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tidings_index::{IndexConfig, IndexService, PostId, WriterConfig};
use tidings_ingest::sources::{
    run_source, DeadLetter, SourceEnv, SourceLimits, SourceSpec, SourceStatus,
};
use tidings_ingest::ValidationConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn fixture_lines(name: &str) -> Vec<String> {
    fixture(name).lines().map(String::from).collect()
}

struct Harness {
    dir: tempfile::TempDir,
    service: IndexService,
    env: SourceEnv,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let service = IndexService::start(
            &IndexConfig {
                data_dir: dir.path().join("data"),
                writer: WriterConfig {
                    commit_interval: Duration::from_millis(20),
                    ..WriterConfig::default()
                },
                vector_worker: Default::default(),
            },
            None,
        )
        .expect("index starts");
        let env = SourceEnv {
            write: service.write.clone(),
            stats: service.stats.clone(),
            dead: Arc::new(DeadLetter::new(Some(&dir.path().join("dead-letter.jsonl")))),
            validation: ValidationConfig::default(),
            limits: SourceLimits {
                batch_wait: Duration::from_millis(10),
                ..SourceLimits::default()
            },
        };
        Harness { dir, service, env }
    }

    fn start(&self, spec: Value, resume: Option<String>) -> Running {
        let spec: SourceSpec = serde_json::from_value(spec).expect("valid source spec");
        spec.check().expect("spec passes its checks");
        let status = Arc::new(SourceStatus::new(&spec.name(), spec.kind()));
        let stop = CancellationToken::new();
        let task = tokio::spawn(run_source(
            spec,
            status.clone(),
            self.env.clone(),
            resume,
            stop.clone(),
        ));
        Running { status, stop, task }
    }

    fn post(&self, id: &str) -> Option<tidings_index::Post> {
        self.service
            .search
            .get(&PostId::parse(id).expect("id"))
            .expect("lookup")
    }

    fn dead_letters(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("dead-letter.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("dead letter is JSON"))
            .collect()
    }
}

struct Running {
    status: Arc<SourceStatus>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn stop(self) -> Arc<SourceStatus> {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("source stops")
            .expect("source task");
        self.status
    }
}

async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..600 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("gave up waiting for {what}");
}

// ---------- Bluesky Jetstream over WebSocket ----------

enum Frame {
    Text(String),
    Binary(Vec<u8>),
}

/// A WebSocket server: connection `i` gets `script[i].0`, then stays open when `script[i].1`
/// (until the client leaves) or is dropped without a close frame (a forced disconnect).
/// Connections beyond the script get nothing and stay open. Records each request URI.
async fn ws_server(script: Vec<(Vec<Frame>, bool)>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let uris = Arc::new(Mutex::new(Vec::new()));
    let seen = uris.clone();
    tokio::spawn(async move {
        let mut script = script.into_iter();
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let uris = seen.clone();
            let (frames, hold) = match script.next() {
                Some((frames, hold)) => (Some(frames), hold),
                None => (None, true),
            };
            tokio::spawn(async move {
                let callback = |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
                                resp: tokio_tungstenite::tungstenite::handshake::server::Response| {
                    uris.lock().expect("lock").push(req.uri().to_string());
                    Ok(resp)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(socket, callback).await else {
                    return;
                };
                for f in frames.into_iter().flatten() {
                    let m = match f {
                        Frame::Text(t) => Message::Text(t.into()),
                        Frame::Binary(b) => Message::Binary(b.into()),
                    };
                    if ws.send(m).await.is_err() {
                        return;
                    }
                }
                if hold {
                    while let Some(Ok(_)) = ws.next().await {}
                }
                // Otherwise: dropped here, mid-stream.
            });
        }
    });
    (format!("ws://{addr}/subscribe"), uris)
}

fn cursor_of(uri: &str) -> Option<i64> {
    uri.split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("cursor="))
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_posts_deletes_resume_and_garbage() {
    let lines: Vec<String> = fixture_lines("jetstream.jsonl");
    let events: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("fixture json"))
        .collect();
    let time = |e: &Value| e["time_us"].as_i64().expect("time_us");
    let is_post = |e: &Value| {
        e["commit"]["collection"] == "app.bsky.feed.post" && e["commit"]["operation"] == "create"
    };
    let half = lines.len() / 2;
    let first_max = events[..half].iter().map(time).max().expect("events");
    let all_max = events.iter().map(time).max().expect("events");
    // A post created in the first half, deleted in the second connection.
    let victim = events[..half]
        .iter()
        .find(|e| {
            is_post(e)
                && e["commit"]["record"]["text"]
                    .as_str()
                    .is_some_and(|t| !t.is_empty())
        })
        .expect("a post in the first half");
    let (vdid, vrkey) = (
        victim["did"].as_str().expect("did"),
        victim["commit"]["rkey"].as_str().expect("rkey"),
    );
    let delete = json!({"did": vdid, "time_us": all_max + 1, "kind": "commit",
        "commit": {"rev": "3zzz", "operation": "delete", "collection": "app.bsky.feed.post", "rkey": vrkey}});

    let mut first: Vec<Frame> = lines[..half].iter().cloned().map(Frame::Text).collect();
    first.insert(
        3,
        Frame::Binary(vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x13, 0x37]),
    );
    first.insert(
        5,
        Frame::Text("{\"did\": \"did:plc:x\", \"time_us\": ".into()),
    );
    first.insert(7, Frame::Text("[1, 2, 3]".into()));
    first.insert(
        9,
        Frame::Text(format!(
            "{{\"did\": \"did:plc:big\", \"pad\": \"{}\"}}",
            "x".repeat(70_000)
        )),
    );
    let mut second: Vec<Frame> = lines[half..].iter().cloned().map(Frame::Text).collect();
    second.push(Frame::Text(delete.to_string()));
    // After the restart: the server replays its last lines again (the rewind re-reads them).
    let third: Vec<Frame> = lines[lines.len() - 3..]
        .iter()
        .cloned()
        .map(Frame::Text)
        .collect();
    let (url, uris) = ws_server(vec![(first, false), (second, true), (third, true)]).await;

    let mut h = Harness::new();
    h.env.limits.max_message_bytes = 64 * 1024;
    // The first endpoint refuses connections: the source moves on to the next.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let a = l.local_addr().expect("addr");
        drop(l);
        format!("ws://{a}/subscribe")
    };
    let spec = json!({"kind": "jetstream", "name": "bsky-test", "endpoints": [dead, url], "rewind_secs": 5});
    let running = h.start(spec.clone(), None);
    let expected_posts: Vec<&Value> = events
        .iter()
        .filter(|e| {
            is_post(e)
                && e["commit"]["record"]["text"]
                    .as_str()
                    .is_some_and(|t| !t.trim().is_empty())
        })
        .collect();
    let want = expected_posts.len() as u64 - 1;
    let status = running.status.clone();
    wait_until("all posts and the delete committed", || {
        let s = status.snapshot();
        s.inserted >= want + 1
            && s.deleted == 1
            && s.position.as_deref() == Some(&(all_max + 1).to_string())
    })
    .await;
    let snap = status.snapshot();
    assert_eq!(
        snap.connects, 2,
        "reconnected once after the forced disconnect: {snap:?}"
    );
    assert!(
        snap.disconnects >= 2,
        "the refused endpoint counted as a failed attempt: {snap:?}"
    );
    assert!(snap.rejected >= 4, "garbage counted: {snap:?}");
    {
        let uris = uris.lock().expect("lock").clone();
        assert_eq!(
            cursor_of(&uris[0]),
            None,
            "a fresh start has no cursor: {uris:?}"
        );
        assert!(uris[0].contains("wantedCollections=app.bsky.feed.post"));
        assert_eq!(
            cursor_of(&uris[1]),
            Some(first_max - 5_000_000),
            "resumed from the newest event read minus the rewind: {uris:?}"
        );
    }
    // The posts as produced.
    assert_eq!(h.service.search.num_posts(), want);
    let vid = format!("bsky:at://{vdid}/app.bsky.feed.post/{vrkey}");
    assert!(h.post(&vid).is_none(), "the deleted post is gone");
    let sample = expected_posts
        .iter()
        .find(|e| e["did"] != vdid || e["commit"]["rkey"] != vrkey)
        .expect("another post");
    let (did, rkey) = (
        sample["did"].as_str().expect("did"),
        sample["commit"]["rkey"].as_str().expect("rkey"),
    );
    let record = &sample["commit"]["record"];
    let post = h
        .post(&format!("bsky:at://{did}/app.bsky.feed.post/{rkey}"))
        .expect("post indexed");
    assert_eq!(post.text, record["text"].as_str().expect("text"));
    assert_eq!(post.author.as_deref(), Some(did));
    assert_eq!(post.source, "bsky");
    assert_eq!(
        post.url.as_deref(),
        Some(format!("https://bsky.app/profile/{did}/post/{rkey}").as_str())
    );
    assert_eq!(
        post.created_at,
        record["createdAt"]
            .as_str()
            .expect("createdAt")
            .parse::<chrono::DateTime<chrono::Utc>>()
            .expect("time")
    );
    assert_eq!(post.lang.as_deref(), record["langs"][0].as_str());
    // Facet links, hashtags and replies come through wherever the capture has them.
    for e in &expected_posts {
        let r = &e["commit"]["record"];
        let id = format!(
            "bsky:at://{}/app.bsky.feed.post/{}",
            e["did"].as_str().unwrap_or(""),
            e["commit"]["rkey"].as_str().unwrap_or("")
        );
        let Some(p) = h.post(&id) else { continue };
        for f in r["facets"].as_array().into_iter().flatten() {
            for feat in f["features"].as_array().into_iter().flatten() {
                if feat["$type"] == "app.bsky.richtext.facet#link" {
                    assert!(
                        p.links
                            .iter()
                            .any(|l| Some(l.as_str()) == feat["uri"].as_str()),
                        "link of {id}: {:?}",
                        p.links
                    );
                }
                if feat["$type"] == "app.bsky.richtext.facet#tag" {
                    let tag = feat["tag"].as_str().unwrap_or("").to_lowercase();
                    assert!(
                        p.hashtags.iter().any(|t| t.to_lowercase() == tag),
                        "tag of {id}: {:?}",
                        p.hashtags
                    );
                }
            }
        }
        if let Some(parent) = r["reply"]["parent"]["uri"].as_str() {
            assert_eq!(
                p.refs.reply_to.as_deref(),
                Some(format!("bsky:{parent}").as_str())
            );
        }
    }
    let dead = h.dead_letters();
    let codes: Vec<&str> = dead.iter().filter_map(|d| d["code"].as_str()).collect();
    assert!(
        codes.contains(&"unexpected_binary")
            && codes.contains(&"malformed_json")
            && codes.contains(&"too_large"),
        "dead letters: {codes:?}"
    );

    // Restart from the durable checkpoint: the cursor is the committed position minus the
    // rewind, and what is read again is a duplicate, not a second copy.
    let status = running.stop().await;
    let committed = status.committed_position().expect("a committed position");
    assert_eq!(committed, (all_max + 1).to_string());
    let running = h.start(spec, Some(committed.clone()));
    let status = running.status.clone();
    wait_until("the re-read lines committed", || {
        status.snapshot().duplicates + status.snapshot().inserted >= 1
    })
    .await;
    assert_eq!(
        status.snapshot().inserted,
        0,
        "nothing new after the restart"
    );
    assert_eq!(h.service.search.num_posts(), want);
    let uris = uris.lock().expect("lock").clone();
    assert_eq!(
        cursor_of(&uris[2]),
        Some(all_max + 1 - 5_000_000),
        "{uris:?}"
    );
    running.stop().await;
}

// ---------- HTTP streams (Mastodon SSE, X chunked JSON lines) ----------

/// What a connection gets back.
enum Reply {
    Json(u16, String),
    /// A chunked body: the chunks, then either held open (`hold`) or cut without the final
    /// chunk (a forced disconnect).
    Stream {
        content_type: &'static str,
        chunks: Vec<Vec<u8>>,
        hold: bool,
    },
}

type Handler = Arc<dyn Fn(&str, &str, &[u8]) -> Reply + Send + Sync>;

/// Stream bodies handed to connections in order; a connection past the end gets none.
struct Scripts {
    next: AtomicUsize,
    bodies: Mutex<Vec<Option<Vec<Vec<u8>>>>>,
}

impl Scripts {
    fn new(bodies: Vec<Vec<Vec<u8>>>) -> Arc<Scripts> {
        Arc::new(Scripts {
            next: AtomicUsize::new(0),
            bodies: Mutex::new(bodies.into_iter().map(Some).collect()),
        })
    }

    /// This connection's index and its chunks.
    fn take(&self) -> (usize, Vec<Vec<u8>>) {
        let i = self.next.fetch_add(1, Ordering::SeqCst);
        let chunks = self
            .bodies
            .lock()
            .expect("lock")
            .get_mut(i)
            .and_then(Option::take)
            .unwrap_or_default();
        (i, chunks)
    }
}

/// A small HTTP/1.1 server; `handler(request line, headers, body)` decides each reply.
/// Records every request line with its Authorization header.
async fn http_server(handler: Handler) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut tmp = [0u8; 4096];
                let head_end = loop {
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break p;
                    }
                    match socket.read(&mut tmp).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&tmp[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let (line, headers) = head.split_once("\r\n").unwrap_or((&head, ""));
                let length: usize = headers
                    .lines()
                    .find_map(|h| {
                        h.to_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap_or(0))
                    })
                    .unwrap_or(0);
                let mut body = buf[head_end + 4..].to_vec();
                while body.len() < length {
                    match socket.read(&mut tmp).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => body.extend_from_slice(&tmp[..n]),
                    }
                }
                let auth = headers
                    .lines()
                    .find(|h| h.to_lowercase().starts_with("authorization:"))
                    .unwrap_or("");
                seen.lock().expect("lock").push(format!(
                    "{line} | {auth} | {}",
                    String::from_utf8_lossy(&body)
                ));
                match handler(line, headers, &body) {
                    Reply::Json(status, text) => {
                        let reply = format!("HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}", text.len());
                        let _ = socket.write_all(reply.as_bytes()).await;
                    }
                    Reply::Stream {
                        content_type,
                        chunks,
                        hold,
                    } => {
                        let head = format!("HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ntransfer-encoding: chunked\r\n\r\n");
                        if socket.write_all(head.as_bytes()).await.is_err() {
                            return;
                        }
                        for c in chunks {
                            let mut frame = format!("{:x}\r\n", c.len()).into_bytes();
                            frame.extend_from_slice(&c);
                            frame.extend_from_slice(b"\r\n");
                            if socket.write_all(&frame).await.is_err() {
                                return;
                            }
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        }
                        if hold {
                            let _ = socket.read(&mut tmp).await;
                        }
                        // Dropped without the terminating chunk: the client sees a broken stream.
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mastodon_updates_edits_deletes_reconnect_and_garbage() {
    let transcript = fixture("mastodon.txt");
    // Cut the real transcript between two events; the first connection ends there abruptly.
    let blocks: Vec<&str> = transcript
        .split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .collect();
    let cut = blocks
        .iter()
        .position(|b| b.starts_with("event: delete"))
        .expect("a delete event");
    let to_bytes = |bs: &[&str]| -> Vec<Vec<u8>> {
        bs.iter().map(|b| format!("{b}\n\n").into_bytes()).collect()
    };
    let mut first = vec![b":thump\n\n".to_vec()];
    first.extend(to_bytes(&blocks[..cut]));
    first.push(b"event: update\ndata: {\"id\": \"broken\n\n".to_vec());
    let mut second = to_bytes(&blocks[cut..]);
    second.insert(1, b":thump\n\n".to_vec());
    let scripts = Scripts::new(vec![first, second]);
    // A status posted while the source was disconnected, served by the REST timeline.
    let missed = json!([{"id": "109348677773283999", "created_at": "2022-11-15T16:07:40.000Z",
        "content": "<p>Posted while the stream was down <a href=\"https://m.example/tags/test\" class=\"mention hashtag\">#<span>test</span></a></p>",
        "language": "en", "account": {"acct": "gauge@m.example", "display_name": "Gauge"},
        "tags": [{"name": "test"}], "mentions": [], "reblog": null}]);
    let backfills = Arc::new(AtomicUsize::new(0));
    let served = backfills.clone();
    let handler: Handler = Arc::new(move |line: &str, _headers: &str, _body: &[u8]| {
        if line.starts_with("GET /api/v1/timelines/tag/test?") {
            let first = served.fetch_add(1, Ordering::SeqCst) == 0;
            let body = if first { missed.clone() } else { json!([]) };
            return Reply::Json(200, body.to_string());
        }
        assert!(
            line.starts_with("GET /api/v1/streaming/hashtag?tag=test "),
            "{line}"
        );
        let (i, chunks) = scripts.take();
        Reply::Stream {
            content_type: "text/event-stream",
            chunks,
            hold: i >= 1,
        }
    });
    let (url, requests) = http_server(handler).await;
    let h = Harness::new();
    let running = h.start(json!({"kind": "mastodon", "url": url, "timeline": "hashtag", "tag": "#test", "access_token": "tok123"}), None);
    let host = url.trim_start_matches("http://").to_string();
    let status = running.status.clone();
    // The transcript holds 9 updates and edits and 3 deletes (one of a status never seen);
    // the backfill adds one.
    wait_until("the whole transcript applied", || {
        let s = status.snapshot();
        s.inserted + s.updated + s.duplicates >= 10 && s.deleted >= 2
    })
    .await;
    // After the forced disconnect the REST timeline was read from the newest id seen before it.
    let log = requests.lock().expect("lock").clone();
    let backfill: Vec<&String> = log
        .iter()
        .filter(|r| r.contains("/api/v1/timelines/"))
        .collect();
    assert_eq!(
        backfill.len(),
        1,
        "one backfill page (it was short): {backfill:?}"
    );
    assert!(
        backfill[0]
            .starts_with("GET /api/v1/timelines/tag/test?min_id=109348677773283527&limit=40 "),
        "{backfill:?}"
    );
    let p = h
        .post(&format!("mastodon:{host}:109348677773283999"))
        .expect("the missed status was backfilled");
    assert_eq!(p.text, "Posted while the stream was down #test");
    assert_eq!(
        status.committed_position().as_deref(),
        Some("109348699525106378"),
        "the newest id is the checkpoint"
    );
    let snap = status.snapshot();
    assert_eq!(snap.connects, 2, "{snap:?}");
    assert!(snap.rejected >= 1, "the broken event was counted: {snap:?}");
    assert!(
        snap.ignored >= 5,
        "notifications, announcements, filters_changed, conversation skipped: {snap:?}"
    );
    assert!(requests
        .lock()
        .expect("lock")
        .iter()
        .all(|r| r.contains("Bearer tok123")));
    let id = |n: &str| format!("mastodon:{host}:{n}");
    // A plain update: HTML gone, author, language, link.
    let p = h
        .post(&id("108914354907984653"))
        .expect("the mstdn.jp status");
    assert!(p.text.starts_with("処女の子が"), "{}", p.text);
    assert!(!p.text.contains('<'));
    assert_eq!(p.author.as_deref(), Some("aiueohisama@mstdn.jp"));
    // Mention markup becomes text.
    let p = h.post(&id("108914327388663283")).expect("freon's status");
    assert!(p.text.contains("@disarray"), "{}", p.text);
    // Update then delete: gone. Update, delete, then edit: the edit brings it back.
    assert!(h.post(&id("108914398911648589")).is_none(), "deleted");
    let edited = h.post(&id("109348677773283527")).expect("an edited status");
    assert_eq!(edited.text, "edited");
    assert!(
        h.post(&id("108914430312582020")).is_some(),
        "re-added by its edit"
    );
    let p = h.post(&id("109348684737626801")).expect("tagged status");
    assert!(
        p.hashtags
            .iter()
            .any(|t| t.eq_ignore_ascii_case("musictuesday")),
        "{:?}",
        p.hashtags
    );
    let dead = h.dead_letters();
    assert!(
        dead.iter().any(|d| d["code"] == "malformed_json"
            && d["raw"].as_str().is_some_and(|r| r.contains("broken"))),
        "{dead:?}"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_filtered_stream_rules_keepalives_disconnects_and_garbage() {
    let lines: Vec<String> = fixture_lines("x_stream.jsonl");
    let truncated = fixture("x_truncated_line.jsonl");
    let disconnect_at = lines
        .iter()
        .position(|l| l.contains("operational-disconnect"))
        .expect("the capture holds a disconnect");
    let chunk = |l: &str| format!("{l}\r\n").into_bytes();
    let mut first: Vec<Vec<u8>> = lines[..=disconnect_at].iter().map(|l| chunk(l)).collect();
    first.insert(1, b"\r\n".to_vec()); // keep-alive
                                       // A line split across chunks arrives whole.
    let split = first.remove(2);
    let (a, b) = split.split_at(split.len() / 2);
    first.insert(2, b.to_vec());
    first.insert(2, a.to_vec());
    let mut second: Vec<Vec<u8>> = vec![
        b"\r\n".to_vec(),
        truncated.trim_end().as_bytes().to_vec(),
        b"\r\n".to_vec(),
    ];
    second.push(vec![0xde, 0xad, 0xbe, 0xef, 0xff, b'\r', b'\n']);
    second.extend(lines[disconnect_at + 1..].iter().map(|l| chunk(l)));
    let scripts = Scripts::new(vec![first, second]);
    let handler: Handler = Arc::new(move |line: &str, _h: &str, body: &[u8]| {
        if line.starts_with("GET /2/tweets/search/stream/rules") {
            return Reply::Json(200, json!({"data": [{"id": "111", "value": "old rule"}, {"id": "222", "value": "flood OR storm"}], "meta": {"result_count": 2}}).to_string());
        }
        if line.starts_with("POST /2/tweets/search/stream/rules") {
            let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            return Reply::Json(
                200,
                json!({"meta": {"summary": {"created": v["add"].as_array().map_or(0, Vec::len)}}})
                    .to_string(),
            );
        }
        assert!(line.starts_with("GET /2/tweets/search/stream?"), "{line}");
        assert!(line.contains("expansions=author_id"));
        let (_, chunks) = scripts.take();
        Reply::Stream {
            content_type: "application/json",
            chunks,
            hold: true,
        }
    });
    let (url, requests) = http_server(handler).await;
    let h = Harness::new();
    let running = h.start(json!({"kind": "x", "url": url, "bearer_token": "AAAA", "rules": [{"value": "flood OR storm"}, {"value": "earthquake", "tag": "quakes"}]}), None);
    let status = running.status.clone();
    let tweets: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("data").is_some())
        .collect();
    let distinct: std::collections::BTreeSet<&str> = tweets
        .iter()
        .filter_map(|t| t["data"]["id"].as_str())
        .collect();
    wait_until("every tweet committed after the reconnect", || {
        let s = status.snapshot();
        s.inserted + s.duplicates >= tweets.len() as u64 && s.connects >= 2
    })
    .await;
    let snap = status.snapshot();
    assert_eq!(snap.inserted, distinct.len() as u64, "{snap:?}");
    assert!(
        snap.rejected >= 2,
        "the truncated line and the random bytes: {snap:?}"
    );
    assert_eq!(
        snap.connects, 2,
        "reconnected after operational-disconnect: {snap:?}"
    );
    let log = requests.lock().expect("lock").clone();
    assert!(log.iter().all(|r| r.contains("Bearer AAAA")));
    let posts: Vec<&String> = log.iter().filter(|r| r.starts_with("POST")).collect();
    assert!(
        posts
            .iter()
            .any(|r| r.contains("\"delete\"") && r.contains("111") && !r.contains("222")),
        "stale rule deleted: {posts:?}"
    );
    assert!(
        posts.iter().any(|r| r.contains("\"add\"")
            && r.contains("earthquake")
            && !r.contains("flood OR storm")),
        "missing rule added: {posts:?}"
    );
    // The posts as produced, authors from `includes`.
    let t = &tweets[0];
    let id = t["data"]["id"].as_str().expect("id");
    let p = h.post(&format!("x:{id}")).expect("first tweet");
    let author = t["includes"]["users"]
        .as_array()
        .and_then(|u| u.iter().find(|u| u["id"] == t["data"]["author_id"]))
        .expect("author in includes");
    let username = author["username"].as_str().expect("username");
    assert_eq!(p.author.as_deref(), Some(username.to_lowercase().as_str()));
    assert_eq!(
        p.url.as_deref(),
        Some(format!("https://x.com/{username}/status/{id}").as_str())
    );
    assert_eq!(p.text, t["data"]["text"].as_str().expect("text"));
    assert_eq!(p.lang.as_deref(), t["data"]["lang"].as_str());
    assert!(
        p.links
            .iter()
            .any(|l| l.contains("twitter.com/Manie_DS/status/1377640162566496258")),
        "{:?}",
        p.links
    );
    assert_eq!(p.refs.quote_of.as_deref(), Some("x:1377640162566496258"));
    let dead = h.dead_letters();
    let codes: Vec<&str> = dead.iter().filter_map(|d| d["code"].as_str()).collect();
    assert!(
        codes.contains(&"malformed_json") && codes.contains(&"invalid_utf8"),
        "{codes:?}"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_pauses_while_the_embedder_is_behind() {
    let lines: Vec<String> = fixture_lines("jetstream.jsonl");
    let (url, _) = ws_server(vec![(lines.into_iter().map(Frame::Text).collect(), true)]).await;
    let mut h = Harness::new();
    h.env.limits.max_vector_backlog = 10;
    // As if 500 posts were waiting for their vectors.
    h.env.stats.vectors_pending.store(500, Ordering::Relaxed);
    let running = h.start(json!({"kind": "jetstream", "endpoints": [url]}), None);
    let status = running.status.clone();
    wait_until("the source reports that it is throttled", || {
        status.snapshot().state == tidings_ingest::sources::SourceState::Throttled
    })
    .await;
    assert_eq!(
        status.snapshot().inserted,
        0,
        "nothing is committed while throttled"
    );
    assert_eq!(h.service.search.num_posts(), 0);
    h.env.stats.vectors_pending.store(0, Ordering::Relaxed);
    wait_until("posts committed once the embedder caught up", || {
        status.snapshot().inserted > 0
    })
    .await;
    assert_eq!(
        status.snapshot().state,
        tidings_ingest::sources::SourceState::Connected
    );
    running.stop().await;
}

#[test]
fn source_specs_are_checked() {
    let bad = [
        json!({"kind": "jetstream", "endpoints": ["https://example.org"]}),
        json!({"kind": "jetstream", "collections": ["app.bsky.feed.like"]}),
        json!({"kind": "mastodon", "url": "https://m.example", "timeline": "hashtag"}),
        json!({"kind": "mastodon", "url": "https://m.example", "timeline": "list", "list": "1"}),
        json!({"kind": "mastodon", "url": "m.example"}),
        json!({"kind": "x", "url": "https://api.x.com", "bearer_token": ""}),
        json!({"kind": "nats", "stream": "a.b"}),
    ];
    for spec in bad {
        let parsed: SourceSpec = serde_json::from_value(spec.clone()).expect("parses");
        assert!(parsed.check().is_err(), "{spec} should be refused");
    }
    assert!(
        serde_json::from_value::<SourceSpec>(json!({"kind": "jetstream", "endpoint": "x"}))
            .is_err(),
        "unknown fields are errors"
    );
    assert!(serde_json::from_value::<SourceSpec>(json!({"kind": "carrier-pigeon"})).is_err());
    let ok: SourceSpec = serde_json::from_value(json!({"kind": "nats"})).expect("defaults");
    assert_eq!(ok.name(), "nats:TIDINGS");
}
