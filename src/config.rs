//! Settings: built-in defaults → `tidings.toml` → `TIDINGS__SECTION__KEY` environment variables,
//! deserialised once into typed settings (unknown keys are errors), validated at startup.

use anyhow::{bail, Context};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub server: ServerSettings,
    pub data: DataSettings,
    pub index: IndexSettings,
    pub embedder: EmbedderSettings,
    pub vectors: VectorsSettings,
    pub search: SearchSettings,
    pub model: ModelSettings,
    pub agent: AgentSettings,
    pub digests: DigestSettings,
    pub sources: SourcesSettings,
}

/// Live sources `tidings serve` reads (`[sources]`, with `[[sources.define]]` entries).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourcesSettings {
    /// Start the live sources with `tidings serve` (`--no-sources` turns them off for one run).
    pub enabled: bool,
    /// The sources; by default the Bluesky Jetstream firehose (no API key needed). Defining
    /// any replaces the default.
    pub define: Vec<tidings_ingest::sources::SourceSpec>,
    /// Where unusable messages go with their reason (default `<data>/dead-letter.jsonl`).
    pub dead_letter: Option<PathBuf>,
    /// Largest message a source accepts.
    pub max_message_bytes: usize,
    /// Changes per batch, and the longest a batch waits to fill.
    pub batch_changes: usize,
    pub batch_wait_ms: u64,
    /// Sources pause while more posts than this wait for their vectors (0: never pause).
    pub max_vector_backlog: u64,
}

impl Default for SourcesSettings {
    fn default() -> Self {
        SourcesSettings {
            enabled: true,
            define: vec![tidings_ingest::sources::SourceSpec::Jetstream(
                tidings_ingest::sources::jetstream::JetstreamSpec::default(),
            )],
            dead_letter: None,
            max_message_bytes: 1 << 20,
            batch_changes: 500,
            batch_wait_ms: 50,
            max_vector_backlog: 20_000,
        }
    }
}

impl SourcesSettings {
    pub fn limits(&self) -> tidings_ingest::sources::SourceLimits {
        tidings_ingest::sources::SourceLimits {
            max_message_bytes: self.max_message_bytes.max(1024),
            batch_changes: self.batch_changes.max(1),
            batch_wait: Duration::from_millis(self.batch_wait_ms.max(1)),
            max_vector_backlog: self.max_vector_backlog,
            ..Default::default()
        }
    }
}

/// Digest delivery.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DigestSettings {
    /// Hosts, addresses or CIDR blocks webhooks may reach although they are private, loopback
    /// or link-local (refused otherwise).
    pub webhook_allow: Vec<String>,
    /// Attempts per delivery before it is dead-lettered.
    pub webhook_attempts: u32,
    /// Backoff before the first retry; doubles each time.
    pub webhook_backoff_ms: u64,
    pub webhook_timeout_secs: u64,
    /// Digests declared here (`[[digests.define]]`, the same fields as `POST /v1/digests`):
    /// created at start, or updated when one of that name differs.
    pub define: Vec<serde_json::Value>,
}

impl Default for DigestSettings {
    fn default() -> Self {
        DigestSettings {
            webhook_allow: Vec::new(),
            webhook_attempts: 5,
            webhook_backoff_ms: 2000,
            webhook_timeout_secs: 10,
            define: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSettings {
    /// `auto` (remote when `url` is set, else local), `local` (llama.cpp in-process), `openai`
    /// (any OpenAI-compatible chat API), or `none` (no answers, search only).
    pub kind: String,
    /// The chat model for `local`: a known name (`tidings models list`: smollm2-135m,
    /// qwen2.5-0.5b, qwen2.5-1.5b; fetched into `models_dir`) or a path to any GGUF chat model.
    pub local: String,
    /// Where `tidings models fetch` puts the known models.
    pub models_dir: PathBuf,
    /// Older configs' name for a GGUF path; overrides `local` when set.
    pub path: Option<PathBuf>,
    /// Reuse the KV cache of the prompt's fixed prefix (rules, persona) across requests.
    pub prefix_cache: bool,
    /// Context window for `local` (prompt + answer), in tokens.
    pub context_tokens: u32,
    /// Inference threads for `local`; 0 = all cores.
    pub threads: usize,
    /// Requests that may wait for the local model before `model_busy`.
    pub queue: usize,
    /// Base URL of a remote OpenAI-compatible API, up to `/v1`.
    pub url: Option<String>,
    pub api_key: Option<String>,
    /// Remote model name.
    pub name: String,
    pub connect_timeout_secs: u64,
    /// Longest wait for the first byte, and between two streamed chunks.
    pub read_timeout_secs: u64,
    pub max_retries: u32,
    /// Context window of the remote model, in tokens.
    pub remote_context_tokens: usize,
    /// Offer the remote model a `search_posts` tool (bounded by `agent.tool_rounds`). The local
    /// model never gets tools.
    pub tools: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentSettings {
    pub default_persona: String,
    pub max_answer_tokens: u32,
    pub temperature: f32,
    /// Fewer relevant posts than this widen an implicit time window.
    pub min_relevant: usize,
    /// Custom personas: name → instructions (or `@path/to/file.md`).
    pub personas: std::collections::BTreeMap<String, String>,
    /// Rounds of `search_posts` calls a tool-capable remote model may make.
    pub tool_rounds: usize,
}

impl Default for ModelSettings {
    fn default() -> Self {
        ModelSettings {
            kind: "auto".into(),
            local: tidings_agent::DEFAULT_LOCAL_MODEL.into(),
            models_dir: PathBuf::from("models"),
            path: None,
            prefix_cache: true,
            context_tokens: 4096,
            threads: 0,
            queue: 16,
            url: None,
            api_key: None,
            name: "gpt-4o-mini".into(),
            connect_timeout_secs: 5,
            read_timeout_secs: 60,
            max_retries: 2,
            remote_context_tokens: 32_768,
            tools: false,
        }
    }
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            default_persona: "regular".into(),
            max_answer_tokens: 200,
            temperature: 0.0,
            min_relevant: 3,
            personas: Default::default(),
            tool_rounds: 2,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    pub bind: SocketAddr,
    pub max_body_bytes: usize,
    pub max_posts_per_request: usize,
    /// How long shutdown waits for open requests before stopping anyway.
    pub shutdown_grace: String,
    /// This process's name among replicas sharing a database (default: host name and pid).
    pub replica: Option<String>,
    /// How long a lease on shared work (a generation, a digest run) lasts without renewal: a
    /// replica that dies has its work recovered by the others this long after.
    pub lease_ttl_secs: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataSettings {
    pub dir: PathBuf,
    /// The app database (conversations): `postgres://…` or `sqlite://…`; default: the SQLite
    /// file `<dir>/tidings.db`.
    pub database_url: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IndexSettings {
    pub commit_interval_ms: u64,
    pub commit_docs: usize,
    pub writer_memory_mb: usize,
    pub writer_threads: usize,
    /// Posts older than this are deleted from both indexes (`30d`), or `off`.
    pub retention: String,
    pub retention_check_interval: String,
    pub vector_queue: usize,
    pub embed_batch: usize,
    /// Run the vector index optimiser (HNSW build) after this many new vectors; 0 = never.
    pub optimize_every: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbedderSettings {
    /// `local` (in-process all-MiniLM-L6-v2), `static` (a token table distilled from it, in a
    /// space of its own), `openai` (any OpenAI-compatible endpoint), or `none`.
    pub kind: String,
    /// With `kind = "local"`: `static` (posts the local model cannot take at once get a vector
    /// from a static table fitted to the model's own space, replaced by the model's when it has
    /// time, so vectors keep up with any rate) or `none` (every post waits for the model).
    pub interim: String,
    /// Replace interim vectors with the model's own when nothing new waits (`false` keeps
    /// them: less CPU, lower quality).
    pub upgrade: bool,
    pub model_dir: PathBuf,
    /// Model instances for the local embedder (one serves queries while another embeds a batch).
    pub instances: usize,
    pub url: String,
    pub api_key: Option<String>,
    pub model: String,
    pub dim: usize,
    pub timeout_secs: u64,
}

/// Where the vectors live (`[vectors]`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VectorsSettings {
    /// `edge` (an embedded Qdrant shard in `<data dir>/vectors`, the default) or `qdrant` (a
    /// Qdrant server or cluster over gRPC).
    pub kind: String,
    /// `qdrant`: the gRPC URL of any node.
    pub url: String,
    pub api_key: Option<String>,
    pub collection: String,
    /// Used when Tidings creates the collection; an existing one keeps its own.
    pub shard_number: u32,
    pub replication_factor: u32,
    pub write_consistency_factor: u32,
    pub read_timeout_ms: u64,
    pub write_timeout_ms: u64,
    pub connect_timeout_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchSettings {
    /// Recency half-life when a search names none (`24h`), or `off`.
    pub default_half_life: String,
    pub max_results: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            server: ServerSettings::default(),
            data: DataSettings::default(),
            index: IndexSettings::default(),
            embedder: EmbedderSettings::default(),
            vectors: VectorsSettings::default(),
            search: SearchSettings::default(),
            model: ModelSettings::default(),
            agent: AgentSettings::default(),
            digests: DigestSettings::default(),
            sources: SourcesSettings::default(),
        }
    }
}

impl Default for DataSettings {
    fn default() -> Self {
        DataSettings {
            dir: PathBuf::from("data"),
            database_url: None,
        }
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 10 << 20,
            max_posts_per_request: 10_000,
            shutdown_grace: "10s".into(),
            replica: None,
            lease_ttl_secs: 15,
        }
    }
}

impl Default for IndexSettings {
    fn default() -> Self {
        IndexSettings {
            commit_interval_ms: 200,
            commit_docs: 50_000,
            writer_memory_mb: 256,
            writer_threads: 0,
            retention: "off".into(),
            retention_check_interval: "10m".into(),
            vector_queue: 100_000,
            embed_batch: 64,
            optimize_every: 20_000,
        }
    }
}

impl Default for EmbedderSettings {
    fn default() -> Self {
        EmbedderSettings {
            kind: "local".into(),
            interim: "static".into(),
            upgrade: true,
            model_dir: PathBuf::from("models/all-minilm-l6-v2"),
            instances: 2,
            url: "http://127.0.0.1:11434/v1".into(),
            api_key: None,
            model: "all-minilm".into(),
            dim: 384,
            timeout_secs: 30,
        }
    }
}

impl Default for VectorsSettings {
    fn default() -> Self {
        let store = tidings_index::QdrantStoreConfig::default();
        VectorsSettings {
            kind: "edge".into(),
            url: store.url,
            api_key: None,
            collection: store.collection,
            shard_number: store.shard_number,
            replication_factor: store.replication_factor,
            write_consistency_factor: store.write_consistency_factor,
            read_timeout_ms: store.read_timeout.as_millis() as u64,
            write_timeout_ms: store.write_timeout.as_millis() as u64,
            connect_timeout_ms: store.connect_timeout.as_millis() as u64,
        }
    }
}

impl VectorsSettings {
    /// The Qdrant store's settings (`kind = "qdrant"`).
    pub fn qdrant(&self) -> tidings_index::QdrantStoreConfig {
        tidings_index::QdrantStoreConfig {
            url: self.url.clone(),
            api_key: self.api_key.clone(),
            collection: self.collection.clone(),
            shard_number: self.shard_number,
            replication_factor: self.replication_factor,
            write_consistency_factor: self.write_consistency_factor,
            read_timeout: Duration::from_millis(self.read_timeout_ms),
            write_timeout: Duration::from_millis(self.write_timeout_ms),
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
            ..tidings_index::QdrantStoreConfig::default()
        }
    }
}

impl Default for SearchSettings {
    fn default() -> Self {
        SearchSettings {
            default_half_life: "24h".into(),
            max_results: 100,
        }
    }
}

impl Settings {
    /// Loads the layers; `file` is used when it exists (it must exist when given explicitly).
    pub fn load(file: Option<&Path>) -> anyhow::Result<Settings> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        match file {
            Some(path) => {
                if !path.exists() {
                    bail!("config file {} does not exist", path.display());
                }
                figment = figment.merge(Toml::file(path));
            }
            None => figment = figment.merge(Toml::file("tidings.toml")),
        }
        figment = figment.merge(Env::prefixed("TIDINGS__").split("__"));
        let settings: Settings = figment.extract().context("invalid configuration")?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if !["local", "static", "openai", "none"].contains(&self.embedder.kind.as_str()) {
            bail!(
                "embedder.kind is `{}`; use local, static, openai or none",
                self.embedder.kind
            );
        }
        if !["static", "none"].contains(&self.embedder.interim.as_str()) {
            bail!(
                "embedder.interim is `{}`; use static or none",
                self.embedder.interim
            );
        }
        if !(1..=3600).contains(&self.server.lease_ttl_secs) {
            bail!("server.lease_ttl_secs must be between 1 and 3600");
        }
        if !["edge", "qdrant"].contains(&self.vectors.kind.as_str()) {
            bail!(
                "vectors.kind is `{}`; use edge (embedded) or qdrant (a Qdrant server)",
                self.vectors.kind
            );
        }
        if self.vectors.kind == "qdrant" {
            if self.vectors.collection.trim().is_empty() {
                bail!("vectors.collection must not be empty");
            }
            if self.vectors.read_timeout_ms == 0 || self.vectors.write_timeout_ms == 0 {
                bail!("vectors.read_timeout_ms and vectors.write_timeout_ms must be above 0");
            }
        }
        if !["auto", "local", "openai", "none"].contains(&self.model.kind.as_str()) {
            bail!(
                "model.kind is `{}`; use auto, local, openai or none",
                self.model.kind
            );
        }
        if self.model.kind == "openai" && self.model.url.is_none() {
            bail!("model.kind is openai but model.url is not set");
        }
        if !(0.0..=2.0).contains(&self.agent.temperature) {
            bail!("agent.temperature must be between 0 and 2");
        }
        if self.index.commit_interval_ms == 0 || self.index.commit_interval_ms > 60_000 {
            bail!("index.commit_interval_ms must be between 1 and 60000");
        }
        let mut names = std::collections::HashSet::new();
        for source in &self.sources.define {
            source.check().map_err(anyhow::Error::msg)?;
            if !names.insert(source.name()) {
                bail!(
                    "two sources are named `{}`; give each a distinct `name`",
                    source.name()
                );
            }
        }
        self.retention()?;
        self.default_half_life()?;
        duration(&self.index.retention_check_interval).context("index.retention_check_interval")?;
        duration(&self.server.shutdown_grace).context("server.shutdown_grace")?;
        Ok(())
    }

    pub fn retention(&self) -> anyhow::Result<Option<Duration>> {
        optional_duration(&self.index.retention).context("index.retention")
    }

    pub fn default_half_life(&self) -> anyhow::Result<Option<Duration>> {
        optional_duration(&self.search.default_half_life).context("search.default_half_life")
    }
}

pub fn duration(raw: &str) -> anyhow::Result<Duration> {
    tidings_api::parse_duration(raw).map_err(anyhow::Error::msg)
}

fn optional_duration(raw: &str) -> anyhow::Result<Option<Duration>> {
    match raw.trim() {
        "off" | "none" | "" => Ok(None),
        other => duration(other).map(Some),
    }
}
