//! Wiring: settings → index service (text + vectors + embedder) → HTTP app, plus the background
//! tasks `tidings serve` runs (replay source, retention, vector optimiser).

use crate::config::{duration, Settings};
use anyhow::{bail, Context};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tidings_agent::{
    Agent, AgentConfig, ChatModel, LocalChatModel, LocalModelConfig, OpenAiChatConfig,
    OpenAiChatModel, Personas,
};
use tidings_api::{auth, ApiConfig, AppState};
use tidings_index::{
    DenseParts, EdgeVectorStore, Embedder, IndexConfig, IndexService, LocalEmbedder,
    OpenAiEmbedder, OpenAiEmbedderConfig, QdrantVectorStore, StaticEmbedder, VectorStore,
    VectorWorkerConfig, WriterConfig,
};
use tidings_ingest::replay::{replay_file, Pace, ReplayConfig};
use tidings_ingest::sources::{run_source, DeadLetter, SourceEnv, SourceStatus};
use tidings_ingest::ValidationConfig;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Builds the embedder the settings ask for (`None` for `kind = "none"`).
pub fn embedder(settings: &Settings) -> anyhow::Result<Option<Arc<dyn Embedder>>> {
    let e = &settings.embedder;
    Ok(match e.kind.as_str() {
        "local" => Some(Arc::new(
            LocalEmbedder::load(&e.model_dir, e.instances).with_context(|| {
                format!(
                    "load the local embedding model from {}",
                    e.model_dir.display()
                )
            })?,
        )),
        "static" => Some(Arc::new(
            StaticEmbedder::load_or_distill(&e.model_dir).with_context(|| {
                format!(
                    "distil the static embedder from the local model in {}",
                    e.model_dir.display()
                )
            })?,
        )),
        "openai" => Some(Arc::new(OpenAiEmbedder::new(OpenAiEmbedderConfig {
            base_url: e.url.clone(),
            api_key: e.api_key.clone(),
            model: e.model.clone(),
            dim: e.dim,
            timeout: Duration::from_secs(e.timeout_secs),
        })?)),
        _ => None,
    })
}

/// The interim embedder the settings ask for: with the local model and `embedder.interim =
/// "static"`, the static table fitted to the model's own space (fitted on first use and cached
/// beside the model; `tidings models fetch` prepares it).
pub fn interim_embedder(settings: &Settings) -> anyhow::Result<Option<Arc<dyn Embedder>>> {
    let e = &settings.embedder;
    if e.kind != "local" || e.interim != "static" {
        return Ok(None);
    }
    Ok(Some(Arc::new(
        StaticEmbedder::load_or_fit_interim(&e.model_dir).with_context(|| {
            format!(
                "fit the interim embedder to the local model in {}",
                e.model_dir.display()
            )
        })?,
    )))
}

/// Opens the index in the data dir. `with_vectors = false` skips the dense half entirely
/// (a later start with vectors reconciles and embeds what is missing).
pub fn open_index(settings: &Settings, with_vectors: bool) -> anyhow::Result<IndexService> {
    let interim = if with_vectors {
        interim_embedder(settings)?
    } else {
        None
    };
    open_index_with(settings, with_vectors, interim)
}

/// [`open_index`] with this interim embedder instead of the one the settings make (the
/// evaluation's, taught beforehand).
pub fn open_index_with(
    settings: &Settings,
    with_vectors: bool,
    interim: Option<Arc<dyn Embedder>>,
) -> anyhow::Result<IndexService> {
    let config = IndexConfig {
        data_dir: settings.data.dir.clone(),
        writer: WriterConfig {
            commit_interval: Duration::from_millis(settings.index.commit_interval_ms),
            commit_docs: settings.index.commit_docs,
            memory_budget_bytes: settings.index.writer_memory_mb << 20,
            threads: settings.index.writer_threads,
        },
        vector_worker: VectorWorkerConfig {
            queue: settings.index.vector_queue,
            batch: settings.index.embed_batch,
            // Replicas may share a Qdrant collection (with a shared database to hold the
            // writer's lease): each starts as a standby until it holds the lease.
            shared: settings.vectors.kind == "qdrant" && settings.data.database_url.is_some(),
            upgrade: settings.embedder.upgrade,
            ..VectorWorkerConfig::default()
        },
    };
    let embedder = if with_vectors {
        embedder(settings)?
    } else {
        None
    };
    let dense = match (with_vectors, embedder) {
        (true, Some(embedder)) => {
            let store = vector_store(settings, embedder.dim())?;
            Some(DenseParts {
                store,
                embedder,
                interim,
            })
        }
        _ => None,
    };
    IndexService::start(&config, dense)
        .with_context(|| format!("open the index in {}", settings.data.dir.display()))
}

/// What [`reembed`] did.
#[derive(Debug, serde::Serialize)]
pub struct ReembedReport {
    /// The embedder that had made the vectors (`None`: none recorded).
    pub previous: Option<String>,
    pub embedder: String,
    /// Posts of the text index, and vectors written for them.
    pub posts: usize,
    pub vectors: usize,
}

/// Embeds every post of the text index again with the embedder `settings` names, replacing the
/// embedded shard another embedder made (vectors of two embedders cannot be compared, so a
/// server refuses to start on a shard made by another one). The server must be stopped: the
/// data dir is locked by the one process using it.
///
/// Order, so that a run that stops part-way loses nothing: the old shard is moved aside
/// (`vectors.replaced`), the new embedder is recorded, then the index opens with an empty shard
/// and reconciliation embeds every post; the old shard is removed only at the end. After a stop
/// the next run (or the next server start) embeds what is still missing.
pub async fn reembed(settings: &Settings, progress: impl Fn(u64)) -> anyhow::Result<ReembedReport> {
    if settings.vectors.kind != "edge" {
        bail!(
            "`tidings reembed` rebuilds the embedded shard (`vectors.kind = \"edge\"`); for a \
             Qdrant collection, name a new `vectors.collection` and start the servers: the \
             vector writer embeds every post into it"
        );
    }
    if embedder(settings)?.is_none() {
        bail!(
            "`embedder.kind = \"none\"`: set the embedder to re-embed with (local, static, openai)"
        );
    }
    let data = &settings.data.dir;
    let previous = tidings_index::recorded_embedder(data).map(|(name, _)| name);
    let shard = data.join("vectors");
    let aside = data.join("vectors.replaced");
    if shard.exists() {
        if aside.exists() {
            std::fs::remove_dir_all(&aside)
                .with_context(|| format!("remove {}", aside.display()))?;
        }
        std::fs::rename(&shard, &aside)
            .with_context(|| format!("move {} aside", shard.display()))?;
    }
    tidings_index::forget_embedder(data)?;
    // Every post with the embedder's own vector: no interim ones to upgrade later.
    let mut settings = settings.clone();
    settings.embedder.interim = "none".into();
    let service = tokio::task::block_in_place(|| open_index(&settings, true))?;
    service.wait_for_vectors(progress).await;
    let inventory = tokio::task::block_in_place(|| service.inventory())?;
    let embedder = service
        .search
        .embedder_name()
        .unwrap_or_default()
        .to_string();
    service.shutdown().await;
    let vectors = inventory.vectors.map_or(0, |v| v.len());
    if vectors < inventory.text.len() {
        bail!(
            "{} of {} posts got a vector; run `tidings reembed` again (the embedder failed for \
             the others: see the log)",
            vectors,
            inventory.text.len()
        );
    }
    if aside.exists() {
        std::fs::remove_dir_all(&aside).with_context(|| format!("remove {}", aside.display()))?;
    }
    Ok(ReembedReport {
        previous,
        embedder,
        posts: inventory.text.len(),
        vectors,
    })
}

/// The vector store `[vectors]` names, for `dim`-dimensional vectors: the embedded shard in
/// `<data dir>/vectors`, or a collection on a Qdrant server (created when missing).
pub fn vector_store(settings: &Settings, dim: usize) -> anyhow::Result<Arc<dyn VectorStore>> {
    Ok(match settings.vectors.kind.as_str() {
        "qdrant" => {
            let config = settings.vectors.qdrant();
            Arc::new(
                QdrantVectorStore::open(&config, dim).with_context(|| {
                    format!("open the Qdrant collection `{}`", config.collection)
                })?,
            )
        }
        _ => Arc::new(EdgeVectorStore::open(
            &settings.data.dir.join("vectors"),
            dim,
        )?),
    })
}

/// Keeps (or takes over) the vector writer's lease every third of its time to live and sets
/// this replica's role from it; gives the lease up at shutdown.
async fn vector_writer_lease(
    store: tidings_api::store::Store,
    replica: tidings_api::lease::Replica,
    lease: String,
    role: tidings_index::VectorWriterRole,
    token: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(replica.lease_ttl / 3) => {}
            _ = token.cancelled() => break,
        }
        match store
            .acquire_lease(&lease, &replica.name, replica.lease_ttl)
            .await
        {
            Ok(writer) => role.set(writer),
            // The lease may lapse meanwhile; stop writing rather than risk two writers.
            Err(e) => {
                tracing::warn!(error = %e, "could not renew the vector writer's lease");
                role.set(false);
            }
        }
    }
    if role.is_writer() {
        role.set(false);
        let _ = store.release_lease(&lease, &replica.name).await;
    }
}

/// The chat model the settings ask for (`None` for `kind = "none"`): remote when a URL is
/// configured (or `kind = "openai"`), else the embedded llama.cpp model.
pub fn chat_model(settings: &Settings) -> anyhow::Result<Option<Arc<dyn ChatModel>>> {
    let m = &settings.model;
    let remote = match m.kind.as_str() {
        "none" => return Ok(None),
        "openai" => true,
        "local" => false,
        _ => m.url.is_some(),
    };
    if remote {
        let url = m
            .url
            .clone()
            .context("model.url is required for a remote model")?;
        let model = OpenAiChatModel::new(OpenAiChatConfig {
            base_url: url,
            api_key: m.api_key.clone(),
            model: m.name.clone(),
            connect_timeout: Duration::from_secs(m.connect_timeout_secs),
            read_timeout: Duration::from_secs(m.read_timeout_secs),
            max_retries: m.max_retries,
            context_tokens: m.remote_context_tokens,
            tools: m.tools,
            ..OpenAiChatConfig::default()
        })?;
        return Ok(Some(Arc::new(model)));
    }
    let local = match &m.path {
        Some(path) => path.to_string_lossy().into_owned(),
        None => m.local.clone(),
    };
    let resolved = tidings_agent::model::catalog::resolve(&local, &m.models_dir)
        .map_err(anyhow::Error::msg)?;
    let model = LocalChatModel::load(&LocalModelConfig {
        path: resolved.path,
        context_tokens: m
            .context_tokens
            .min(resolved.prompt.context_tokens.max(512)),
        threads: m.threads,
        queue: m.queue,
        name: resolved.known.map(|k| k.name.to_string()),
        prompt: resolved.prompt,
        prefix_cache: m.prefix_cache,
    })?;
    Ok(Some(Arc::new(model)))
}

/// Personas: the shipped ones plus those from config (`@file` reads a file).
pub fn personas(settings: &Settings) -> anyhow::Result<Personas> {
    let mut personas = Personas::default();
    for (name, template) in &settings.agent.personas {
        let text = match template.strip_prefix('@') {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("read persona {name} from {path}"))?,
            None => template.clone(),
        };
        personas.insert(name, &text);
    }
    if personas.get(&settings.agent.default_persona).is_none() {
        bail!(
            "agent.default_persona `{}` is not a persona",
            settings.agent.default_persona
        );
    }
    Ok(personas)
}

/// The agent over `service`, or `None` when no chat model is configured.
pub fn agent(
    settings: &Settings,
    search: tidings_index::SearchHandle,
) -> anyhow::Result<Option<Agent>> {
    let Some(model) = chat_model(settings)? else {
        return Ok(None);
    };
    agent_with_model(settings, search, model).map(Some)
}

/// The agent over `search` answering with `model` (benchmarks compare models this way).
pub fn agent_with_model(
    settings: &Settings,
    search: tidings_index::SearchHandle,
    model: Arc<dyn ChatModel>,
) -> anyhow::Result<Agent> {
    let config = AgentConfig {
        default_persona: settings.agent.default_persona.clone(),
        max_answer_tokens: settings.agent.max_answer_tokens,
        temperature: settings.agent.temperature,
        min_relevant: settings.agent.min_relevant,
        tool_rounds: settings.agent.tool_rounds.min(5),
        ..AgentConfig::default()
    };
    Ok(Agent::new(search, model, personas(settings)?, config))
}

/// Where API keys live.
pub fn keys_path(settings: &Settings) -> PathBuf {
    settings.data.dir.join("keys.json")
}

pub fn api_config(settings: &Settings) -> anyhow::Result<ApiConfig> {
    Ok(ApiConfig {
        max_body_bytes: settings.server.max_body_bytes,
        max_posts_per_request: settings.server.max_posts_per_request,
        max_search_results: settings.search.max_results,
        default_half_life: settings.default_half_life()?,
        validation: ValidationConfig::default(),
        webhooks: tidings_api::webhook::WebhookConfig {
            allow: settings.digests.webhook_allow.clone(),
            attempts: settings.digests.webhook_attempts.max(1),
            backoff: Duration::from_millis(settings.digests.webhook_backoff_ms),
            timeout: Duration::from_secs(settings.digests.webhook_timeout_secs.max(1)),
            max_redirects: 3,
        },
    })
}

/// A feed to replay into the index while serving.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    pub path: PathBuf,
    pub pace: Pace,
    pub shift_to_now: bool,
}

/// Runs one digest over the local index and model, printing markdown or JSON.
pub async fn digest_once(
    settings: &Settings,
    spec: tidings_agent::digest::DigestSpec,
    as_of: chrono::DateTime<chrono::Utc>,
    json: bool,
    stories: &tidings_agent::stories::StoryConfig,
) -> anyhow::Result<()> {
    let service = tokio::task::block_in_place(|| open_index(settings, true))?;
    if service.search.has_vectors() {
        eprintln!("digest: waiting for the vector index to catch up…");
        service.wait_for_vectors(|_| {}).await;
    }
    let agent = tokio::task::block_in_place(|| agent(settings, service.search.clone()))?
        .context("digests need a chat model for their summaries (model.kind is none)")?;
    let out = tidings_agent::digest::run(&agent, &spec, as_of, stories).await;
    service.shutdown().await;
    let out = out?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&tidings_api::digest_json(&out))?
        );
    } else {
        print!("{}", out.markdown());
    }
    Ok(())
}

/// Connects to the app database (and applies its migrations).
pub async fn open_store(settings: &Settings) -> anyhow::Result<tidings_api::store::Store> {
    let url = match &settings.data.database_url {
        Some(url) => url.clone(),
        None => {
            std::fs::create_dir_all(&settings.data.dir)
                .with_context(|| format!("create {}", settings.data.dir.display()))?;
            tidings_api::store::Store::default_url(&settings.data.dir)
        }
    };
    let store = tidings_api::store::Store::connect(&url)
        .await
        .with_context(|| format!("open the app database {}", redact(&url)))?;
    tracing::info!(backend = store.backend().as_str(), "app database ready");
    Ok(store)
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => match url[s + 3..at].find(':') {
            Some(colon) => format!("{}:***{}", &url[..s + 3 + colon], &url[at..]),
            None => url.to_string(),
        },
        _ => url.to_string(),
    }
}

/// A running server: its address, and what stops it.
pub struct App {
    pub addr: SocketAddr,
    pub index: Arc<tokio::sync::Mutex<Option<IndexService>>>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    grace: Duration,
}

impl App {
    /// Opens the index, binds `settings.server.bind` (port 0 picks one), and starts serving
    /// (without the live sources; see [`App::build_with_sources`]).
    pub async fn build(settings: &Settings, replay: Option<ReplayOptions>) -> anyhow::Result<App> {
        App::build_with_sources(settings, replay, false).await
    }

    /// As [`App::build`], and with `live` also the configured live sources (`tidings serve`).
    pub async fn build_with_sources(
        settings: &Settings,
        replay: Option<ReplayOptions>,
        live: bool,
    ) -> anyhow::Result<App> {
        let keys_file = keys_path(settings);
        let keys_on = auth::keys_configured(&keys_file);
        if !settings.server.bind.ip().is_loopback() && !keys_on {
            bail!(
                "refusing to bind {}: no API keys exist, so Tidings serves loopback only. \
                 Create one with `tidings keys create --name NAME --scopes read` and start again",
                settings.server.bind
            );
        }
        let service = tokio::task::block_in_place(|| open_index(settings, true))?;
        let agent = tokio::task::block_in_place(|| agent(settings, service.search.clone()))?;
        let mut state = AppState::new(
            service.search.clone(),
            service.write.clone(),
            service.stats.clone(),
            api_config(settings)?,
        )
        .with_keys(auth::KeyStore::new(Some(keys_file)))
        .with_store(open_store(settings).await?)
        .with_replica(tidings_api::lease::Replica::new(
            settings.server.replica.clone(),
            Duration::from_secs(settings.server.lease_ttl_secs),
        ));
        if let Some(agent) = agent {
            state = state.with_agent(agent);
        }
        let sources = if live && settings.sources.enabled {
            settings.sources.define.clone()
        } else {
            Vec::new()
        };
        let statuses: Vec<Arc<SourceStatus>> = sources
            .iter()
            .map(|s| Arc::new(SourceStatus::new(&s.name(), s.kind())))
            .collect();
        state = state.with_sources(statuses.clone());
        let declared = tidings_api::apply_declared_digests(&state, &settings.digests.define)
            .await
            .map_err(|e| anyhow::anyhow!("digests in the settings: {e}"))?;
        if declared > 0 {
            tracing::info!(declared, "digests from the settings created or updated");
        }
        let tracker = TaskTracker::new();
        state = state.with_tasks(tracker.clone());
        tidings_api::recover(&state).await;
        let listener = tokio::net::TcpListener::bind(settings.server.bind)
            .await
            .with_context(|| format!("bind {}", settings.server.bind))?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        if let Some(replay) = replay {
            let write = service.write.clone();
            let token = shutdown.clone();
            tracker.spawn(async move {
                tokio::select! {
                    r = run_replay(replay, write) => if let Err(e) = r { tracing::error!(error = %e, "replay failed") },
                    _ = token.cancelled() => {}
                }
            });
        }
        if let Some(max_age) = settings.retention()? {
            let write = service.write.clone();
            let every = duration(&settings.index.retention_check_interval)?;
            let token = shutdown.clone();
            tracker.spawn(async move {
                loop {
                    if let Err(e) = retention_once(&write, max_age).await {
                        tracing::error!(error = %e, "retention pass failed");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {}
                        _ = token.cancelled() => return,
                    }
                }
            });
        }
        if settings.index.optimize_every > 0 {
            if let Some(store) = service.vector_store() {
                let stats = service.stats.clone();
                let every = settings.index.optimize_every;
                let token = shutdown.clone();
                tracker.spawn(optimizer(store, stats, every, token));
            }
        }
        // Replicas sharing a Qdrant collection: one writes the vectors (embedding each post
        // once per deployment), the others stand by; a lease in the database says which.
        if let (Some(role), Some(store), true) = (
            service.vector_writer_role(),
            state.store.clone(),
            settings.vectors.kind == "qdrant" && settings.data.database_url.is_some(),
        ) {
            let lease = format!("vectors:{}", settings.vectors.collection);
            let replica = state.replica.clone();
            let writer = store
                .acquire_lease(&lease, &replica.name, replica.lease_ttl)
                .await
                .unwrap_or(false);
            role.set(writer);
            state = state.with_vector_writer(role.clone());
            tracker.spawn(vector_writer_lease(
                store,
                replica,
                lease,
                role,
                shutdown.clone(),
            ));
        }
        if state.store.is_some() {
            tracker.spawn(tidings_api::run_scheduler(state.clone(), shutdown.clone()));
            // Work another replica (or this one, before a crash) left when its lease lapsed.
            let (state, token) = (state.clone(), shutdown.clone());
            tracker.spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(state.replica.lease_ttl) => {}
                        _ = token.cancelled() => return,
                    }
                    tidings_api::recover_abandoned(&state).await;
                }
            });
        }
        if !sources.is_empty() {
            let dead_letter = settings
                .sources
                .dead_letter
                .clone()
                .unwrap_or_else(|| settings.data.dir.join("dead-letter.jsonl"));
            let env = SourceEnv {
                write: service.write.clone(),
                stats: service.stats.clone(),
                dead: Arc::new(DeadLetter::new(Some(&dead_letter))),
                validation: ValidationConfig::default(),
                limits: settings.sources.limits(),
            };
            for (spec, status) in sources.into_iter().zip(statuses) {
                let resume = service.checkpoints().get(&spec.name()).cloned();
                tracing::info!(source = %spec.name(), kind = spec.kind(), resume = ?resume, "starting live source");
                tracker.spawn(run_source(
                    spec,
                    status,
                    env.clone(),
                    resume,
                    shutdown.clone(),
                ));
            }
        }
        let token = shutdown.clone();
        let server = tokio::spawn(tidings_api::serve(listener, state, async move {
            token.cancelled().await
        }));
        if keys_on {
            tracing::info!(%addr, posts = service.search.num_posts(), vectors = service.search.has_vectors(), "tidings is serving; API keys are required");
        } else {
            tracing::info!(%addr, posts = service.search.num_posts(), vectors = service.search.has_vectors(), "tidings is serving on loopback only: no API keys exist, so the API is open to local callers");
        }
        Ok(App {
            addr,
            index: Arc::new(tokio::sync::Mutex::new(Some(service))),
            shutdown,
            tracker,
            server,
            grace: duration(&settings.server.shutdown_grace)?,
        })
    }

    /// A token that stops the app when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops in order: sources, the scheduler and new requests first; then background work
    /// (generations, digest runs, webhook deliveries) and open requests get up to the grace
    /// period to finish; then the index commits and closes (the vector worker drains there).
    /// Work still running after the grace period is dropped; what it left half done is
    /// recovered at the next start ([`tidings_api::recover`]).
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.tracker.close();
        if tokio::time::timeout(self.grace, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                tasks = self.tracker.len(),
                "background work did not finish within the grace period; it is recovered at the next start"
            );
        }
        match tokio::time::timeout(self.grace, self.server).await {
            Ok(joined) => joined.context("server task")?.context("server")?,
            Err(_) => tracing::warn!("open requests did not finish within the grace period"),
        }
        if let Some(service) = self.index.lock().await.take() {
            service.shutdown().await;
        }
        Ok(())
    }
}

/// Deletes posts older than `max_age` from both indexes; returns how many went.
pub async fn retention_once(
    write: &tidings_index::WriteHandle,
    max_age: Duration,
) -> anyhow::Result<u64> {
    let cutoff =
        chrono::Utc::now() - chrono::Duration::from_std(max_age).context("retention too long")?;
    let removed = write.delete_older_than(cutoff).await?;
    if removed > 0 {
        tracing::info!(removed, %cutoff, "retention removed old posts");
    }
    Ok(removed)
}

async fn optimizer(
    store: Arc<dyn VectorStore>,
    stats: Arc<tidings_index::IndexStats>,
    every: u64,
    token: CancellationToken,
) {
    use std::sync::atomic::Ordering;
    let mut last = stats.vectors_upserted.load(Ordering::Relaxed);
    // A build that an earlier process's stop cut short runs again at the first check.
    let mut unfinished = store.optimize_unfinished();
    if unfinished {
        tracing::info!("an earlier vector index optimisation was left unfinished; it runs again");
    }
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(30)) => {}
            _ = token.cancelled() => return,
        }
        let now = stats.vectors_upserted.load(Ordering::Relaxed);
        if now - last < every && !unfinished {
            continue;
        }
        last = now;
        unfinished = false;
        let store = store.clone();
        // An HNSW build cannot be interrupted and takes minutes at 100k vectors on 2 cores: a
        // stop does not wait for it (a stop used to wait out the grace period and then the
        // build). Qdrant's optimiser builds new segments beside the ones it replaces and swaps
        // them in at its end, so a build cut short leaves the shard as it was before it (checked:
        // 100k posts, stopped mid-build, reopened with every vector and hybrid search working);
        // the store remembers it, and the next process builds again at its first check.
        let build = tokio::task::spawn_blocking(move || store.optimize());
        tokio::select! {
            done = build => match done {
                Ok(Ok(())) => tracing::info!("vector index optimised"),
                Ok(Err(e)) => tracing::warn!(error = %e, "vector index optimisation failed"),
                Err(e) => tracing::warn!(error = %e, "vector optimiser task failed"),
            },
            _ = token.cancelled() => {
                tracing::info!("stopping during a vector index optimisation; it is left unfinished");
                return;
            }
        }
    }
}

async fn run_replay(
    replay: ReplayOptions,
    write: tidings_index::WriteHandle,
) -> anyhow::Result<()> {
    let (tx, rx) = mpsc::channel(64);
    let path = replay.path.clone();
    let config = ReplayConfig {
        pace: replay.pace,
        max_gap: Duration::from_secs(5),
        shift_to_now: replay.shift_to_now,
    };
    let producer = tokio::spawn(async move {
        replay_file(&path, "replay", &ValidationConfig::default(), &config, &tx).await
    });
    let summary = tidings_ingest::run_pipeline(rx, &write, None, 20, 100_000, |_| {}).await?;
    producer
        .await
        .context("replay task")?
        .with_context(|| format!("read {}", replay.path.display()))?;
    tracing::info!(
        accepted = summary.accepted,
        duplicates = summary.duplicates,
        rejected = summary.rejected,
        file = %replay.path.display(),
        "replay finished"
    );
    for r in &summary.rejections {
        tracing::warn!(line = r.line, id = ?r.id, reason = %r.rejection, "replay skipped a record");
    }
    Ok(())
}
