//! Real Qdrant servers for tests: the 1.18.3 binary in `../shared/bin/qdrant`, started on free
//! loopback ports with its storage in a temporary directory, stopped by process id (SIGKILL on
//! drop). One node, or a cluster whose nodes join the first. Shared by the index's contract
//! tests and the server's HTTP tests (`#[path]`-included: std and `tempfile` only).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the binary is: `TIDINGS_QDRANT_BIN`, else `../shared/bin/qdrant` beside the repo.
pub(crate) fn binary() -> PathBuf {
    if let Ok(path) = std::env::var("TIDINGS_QDRANT_BIN") {
        return PathBuf::from(path);
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // index/ or the repo root, depending on which crate includes this file.
    let repo = if repo.join("Cargo.lock").exists() {
        repo
    } else {
        repo.parent().map(PathBuf::from).unwrap_or(repo)
    };
    repo.join("../shared/bin/qdrant")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// One Qdrant process.
pub(crate) struct QdrantNode {
    child: Option<Child>,
    pub(crate) http_port: u16,
    pub(crate) grpc_port: u16,
    pub(crate) p2p_port: u16,
    storage: PathBuf,
    bootstrap: Option<u16>,
    log: PathBuf,
}

impl QdrantNode {
    /// The gRPC URL `qdrant-client` connects to.
    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    fn spawn(&mut self) {
        let bin = binary();
        assert!(
            bin.exists(),
            "the Qdrant server binary is missing at {} (../shared/bin/qdrant; set \
             TIDINGS_QDRANT_BIN to use another)",
            bin.display()
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the Qdrant log");
        let mut command = Command::new(&bin);
        command
            .env("QDRANT__SERVICE__HOST", "127.0.0.1")
            .env("QDRANT__SERVICE__HTTP_PORT", self.http_port.to_string())
            .env("QDRANT__SERVICE__GRPC_PORT", self.grpc_port.to_string())
            .env("QDRANT__STORAGE__STORAGE_PATH", &self.storage)
            .env("QDRANT__TELEMETRY_DISABLED", "true")
            .env("QDRANT__LOG_LEVEL", "WARN")
            // Keeps the snapshots and temp files inside the test's directory.
            .current_dir(self.storage.parent().expect("storage has a parent"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log);
        if self.p2p_port != 0 {
            command
                .env("QDRANT__CLUSTER__ENABLED", "true")
                .env("QDRANT__CLUSTER__P2P__PORT", self.p2p_port.to_string())
                .arg("--uri")
                .arg(format!("http://127.0.0.1:{}", self.p2p_port));
            if let Some(first) = self.bootstrap {
                command
                    .arg("--bootstrap")
                    .arg(format!("http://127.0.0.1:{first}"));
            }
        }
        self.child = Some(command.spawn().expect("start the Qdrant server"));
        self.wait_ready();
    }

    /// Waits until the HTTP API answers `/readyz` with 200 (at most 60 s).
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "Qdrant exited with {status} before it was ready; its log: {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if http_get(self.http_port, "/readyz").is_some_and(|(code, _)| code == 200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "Qdrant did not become ready in 60 s; its log: {}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// SIGKILL, as a crash would.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the node again on the same ports and storage.
    pub(crate) fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub(crate) fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// `GET path` on the node's HTTP API: status code and body.
    pub(crate) fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.http_port, path)
    }
}

impl Drop for QdrantNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One node or a cluster, with the directory that holds their storage.
pub(crate) struct QdrantServer {
    pub(crate) nodes: Vec<QdrantNode>,
    _dir: tempfile::TempDir,
}

impl QdrantServer {
    /// A single node.
    pub(crate) fn start() -> QdrantServer {
        QdrantServer::start_nodes(1, false)
    }

    /// `n` nodes with clustering on; nodes 2.. bootstrap from node 1. Returns once every node
    /// answers and the cluster has `n` peers.
    pub(crate) fn cluster(n: usize) -> QdrantServer {
        let server = QdrantServer::start_nodes(n, true);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let peers = server.nodes[0]
                .get("/cluster")
                .map(|(_, body)| body.matches("\"uri\"").count())
                .unwrap_or(0);
            if peers >= n {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "the Qdrant cluster has {peers} of {n} peers after 60 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn start_nodes(n: usize, cluster: bool) -> QdrantServer {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut nodes: Vec<QdrantNode> = Vec::new();
        for i in 0..n {
            let mut node = QdrantNode {
                child: None,
                http_port: free_port(),
                grpc_port: free_port(),
                p2p_port: if cluster { free_port() } else { 0 },
                storage: dir.path().join(format!("node{i}/storage")),
                bootstrap: nodes.first().map(|first| first.p2p_port),
                log: dir.path().join(format!("node{i}.log")),
            };
            std::fs::create_dir_all(&node.storage).expect("create the storage dir");
            node.spawn();
            nodes.push(node);
        }
        QdrantServer { nodes, _dir: dir }
    }

    /// The gRPC URL of the first node.
    pub(crate) fn url(&self) -> String {
        self.nodes[0].url()
    }
}

/// A tiny HTTP/1.0 GET (no client library needed for a readiness probe).
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((code, body))
}
