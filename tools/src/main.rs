//! `tidings-tools`: the real-data evaluation and the benchmarks of Tidings. A development tool
//! beside the product (the `tidings` binary does not link it); it builds the same app the
//! server runs through the `tidings` library.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use tidings::config::Settings;
use tidings_tools::{bench, bench_agent, bench_nats, bench_replicas, eval};

#[derive(Parser)]
#[command(
    name = "tidings-tools",
    version,
    about = "Evaluation and benchmarks of Tidings on the real data"
)]
struct Cli {
    /// Settings file (default: ./tidings.toml when it exists).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Retrieval and answer quality on the real data (CrisisLexT26, TweetQA): BM25, dense,
    /// hybrid, the agent's answers, digests and abstention; `--check-floors` fails below the
    /// floors CI holds.
    Eval {
        /// The real-data folder (the `data/` of the shared folder: crisislex26/, tweetqa/).
        #[arg(long, env = "TIDINGS_SHARED_DATA")]
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
        /// The embedder for the dense half: `local` (the sentence model's own vectors for every
        /// post), `interim` (the interim table's vectors for every post, never upgraded,
        /// searched with the sentence model's query vectors), `interim-learned` (the same from
        /// a table that first learned from the model's vectors of every 11th post) or `static`
        /// (the table distilled from it, in its own space).
        #[arg(long, default_value = "local")]
        embedder: String,
    },
    /// Throughput and latency figures against same-process baselines.
    Bench {
        /// The real-data folder (the `data/` of the shared folder: crisislex26/, tweetqa/).
        #[arg(long, env = "TIDINGS_SHARED_DATA")]
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
        /// Where the peers harness's generated corpora live (generated there when missing;
        /// default: `tidings-peers-data` in the system's temporary folder).
        #[arg(long)]
        peers_data: Option<PathBuf>,
        /// Also measure hybrid search at each size with synthetic vectors (HNSW build: minutes).
        #[arg(long)]
        synthetic_vectors: bool,
        /// With --synthetic-vectors: skip the HNSW build.
        #[arg(long)]
        no_hnsw: bool,
        /// Only the text figures at each size (ingest, BM25); no embedder, no freshness.
        #[arg(long)]
        text_only: bool,
        /// Only the freshness figures: a steady HTTP push at --fresh-rate for --fresh-secs with
        /// each embedder (local alone, static, local with interim vectors).
        #[arg(long)]
        freshness_only: bool,
        /// With --synthetic-vectors: also run the hybrid figure with the vectors on this Qdrant
        /// server (gRPC URL, e.g. http://127.0.0.1:6334), beside the embedded shard.
        #[arg(long)]
        qdrant_url: Option<String>,
        /// Benchmark the answering path (local model, agent overhead, concurrency) instead.
        #[arg(long)]
        agent: bool,
        /// Benchmark ingest from NATS JetStream (127.0.0.1:4222) instead: lag at the
        /// --nats-rate rates (posts/s) for --fresh-secs each, and backlog drain.
        #[arg(long)]
        nats: bool,
        #[arg(long = "nats-rate", default_values_t = [50.0f64, 500.0])]
        nats_rates: Vec<f64>,
        /// With --nats: two replicas sharing NATS, a fresh PostgreSQL database and a collection
        /// on the Qdrant server at --qdrant-url; publish → searchable on each, and → its vector.
        #[arg(long)]
        replicas: bool,
        /// With --agent: an existing data dir with the CrisisLex posts and their vectors
        /// (`tidings-tools eval --keep-index DIR` makes one).
        #[arg(long)]
        index: Option<PathBuf>,
    },
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
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.command {
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
            embedder,
        } => {
            eval::run(
                settings,
                eval::EvalOptions {
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
                    embedder,
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
            replicas,
            index,
            synthetic_vectors,
            no_hnsw,
            qdrant_url,
            text_only,
            freshness_only,
        } => {
            if agent {
                return bench_agent::run(settings, &shared, index.as_deref()).await;
            }
            let options = bench::BenchOptions {
                synthetic_vectors,
                no_hnsw,
                shared,
                sizes,
                embed_n,
                fresh_rate,
                fresh_secs,
                peers_data: peers_data
                    .unwrap_or_else(|| std::env::temp_dir().join("tidings-peers-data")),
                qdrant_url,
                text_only,
                freshness_only,
            };
            if nats && replicas {
                return bench_replicas::run(settings, options, &nats_rates, fresh_secs).await;
            }
            if nats {
                return bench_nats::run(settings, options, &nats_rates, fresh_secs).await;
            }
            bench::run(settings, options).await
        }
    }
}
