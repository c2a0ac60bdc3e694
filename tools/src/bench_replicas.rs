//! `tidings-tools bench --nats --replicas --qdrant-url URL`: two replicas (two apps in this
//! process, each with its own data dir, tantivy index and durable consumer) sharing the NATS
//! JetStream at 127.0.0.1:4222, a fresh PostgreSQL database and a collection on the Qdrant
//! server. At each rate: publish → searchable by BM25 on each replica, and publish → its vector
//! written to the shared collection by whichever replica holds the writer's lease, p50/p99.

use crate::bench::{summarize, BenchOptions};
use anyhow::Context;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tidings::app::App;
use tidings::config::Settings;
use tidings_ingest::sources::nats::NatsSpec;
use tidings_ingest::sources::SourceSpec;

const NATS_URL: &str = "nats://127.0.0.1:4222";

fn tag() -> anyhow::Result<String> {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("random: {e}"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// A database of its own on the PostgreSQL server (`TIDINGS_TEST_POSTGRES_URL`, default the
/// local one), dropped at the end.
struct Database {
    admin: String,
    name: String,
    url: String,
}

impl Database {
    async fn create() -> anyhow::Result<Database> {
        let admin = std::env::var("TIDINGS_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("tidings_bench_{}", tag()?);
        sqlx::any::install_default_drivers();
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
            .await
            .with_context(|| format!("PostgreSQL at {admin}"))?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await?;
        let base = admin
            .rsplit_once('/')
            .map(|(b, _)| b.to_string())
            .context("a database URL with a path")?;
        Ok(Database {
            url: format!("{base}/{name}"),
            admin,
            name,
        })
    }

    async fn drop_it(self) {
        if let Ok(mut conn) = <sqlx::AnyConnection as sqlx::Connection>::connect(&self.admin).await
        {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut conn)
            .await;
        }
    }
}

/// One rate: two replicas, `rate` posts/s for `secs`.
async fn steady(
    base: &Settings,
    texts: &[String],
    rate: f64,
    secs: u64,
    qdrant_url: &str,
) -> anyhow::Result<Vec<String>> {
    let db = Database::create().await?;
    let tag = tag()?;
    let (stream, subject) = (
        format!("TIDINGS_REPLICAS_{tag}"),
        format!("tidings.replicas.{tag}"),
    );
    let js = async_nats::jetstream::new(
        async_nats::connect(NATS_URL)
            .await
            .context("NATS JetStream at 127.0.0.1:4222")?,
    );
    js.create_stream(async_nats::jetstream::stream::Config {
        name: stream.clone(),
        subjects: vec![subject.clone()],
        storage: async_nats::jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await
    .context("create the bench stream")?;
    let dirs = [tempfile::tempdir()?, tempfile::tempdir()?];
    let mut apps = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let mut s = base.clone();
        s.data.dir = dir.path().to_path_buf();
        s.data.database_url = Some(db.url.clone());
        s.server.bind = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        s.server.replica = Some(format!("bench-{i}"));
        s.model.kind = "none".into();
        s.index.optimize_every = 0;
        s.vectors.kind = "qdrant".into();
        s.vectors.url = qdrant_url.to_string();
        s.vectors.collection = format!("tidings_replicas_{tag}");
        let spec: NatsSpec = serde_json::from_value(serde_json::json!({
            "url": NATS_URL, "stream": stream, "subjects": [subject], "consumer": format!("bench-{i}"),
        }))?;
        s.sources.define = vec![SourceSpec::Nats(spec)];
        s.sources.enabled = true;
        apps.push(App::build_with_sources(&s, None, true).await?);
    }
    // Each replica's commits (BM25-searchable), and the vectors written by both.
    let total = (rate * secs as f64) as usize;
    let mut seen = Vec::new();
    let mut stats = Vec::new();
    for app in &apps {
        let guard = app.index.lock().await;
        let service = guard.as_ref().context("index open")?;
        let mut feed = service.write.subscribe();
        stats.push(service.stats.clone());
        seen.push(tokio::spawn(async move {
            let mut at: HashMap<String, Instant> = HashMap::with_capacity(total);
            while at.len() < total {
                match tokio::time::timeout(Duration::from_secs(60), feed.recv()).await {
                    Ok(Ok(p)) => {
                        at.insert(p.id.to_string(), Instant::now());
                    }
                    Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => continue,
                    _ => break,
                }
            }
            at
        }));
    }
    let sampler = crate::bench_nats::sample_vectors(stats.clone(), total);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = crate::bench_nats::publish_steady(&js, &subject, total, rate, |i| {
        crate::bench_nats::post("rb", i, &texts[i % texts.len()])
    })
    .await?;
    let published = Instant::now();
    let mut rows = Vec::new();
    for (r, handle) in seen.into_iter().enumerate() {
        let at = handle.await?;
        let lags: Vec<f64> = sent
            .iter()
            .enumerate()
            .filter_map(|(i, t0)| {
                at.get(&format!("rb-{i}"))
                    .map(|t1| t1.duration_since(*t0).as_secs_f64() * 1000.0)
            })
            .collect();
        let missing = total - lags.len();
        let (p50, p99) = summarize(lags);
        rows.push(format!(
            "| two replicas: NATS publish → searchable (BM25) on replica {r} at {rate:.0} posts/s for {secs} s | {total} | p50 {p50:.1} ms / p99 {p99:.1} ms{} | — |",
            if missing > 0 { format!(" ({missing} not seen)") } else { String::new() }
        ));
    }
    let samples = sampler.await?;
    let vector_lags = crate::bench_nats::vector_lags(&sent, &samples);
    let written: u64 = samples.last().map_or(0, |s| s.1);
    let caught_up = samples.last().map_or(f64::NAN, |(t, _)| {
        t.saturating_duration_since(published).as_secs_f64()
    });
    let (v50, v99) = summarize(vector_lags);
    let embedded: Vec<u64> = stats
        .iter()
        .map(|s| s.embedded.load(Ordering::Relaxed))
        .collect();
    rows.push(format!(
        "| two replicas: NATS publish → vector in the shared Qdrant collection ({} embedder) at {rate:.0} posts/s | {total} | p50 {v50:.0} ms / p99 {v99:.0} ms; caught up {caught_up:.1} s after the last publish | {written} written; embedded per replica {embedded:?} |",
        base.embedder.kind
    ));
    for app in apps {
        app.stop().await?;
    }
    let _ = js.delete_stream(&stream).await;
    db.drop_it().await;
    Ok(rows)
}

pub async fn run(
    base: Settings,
    options: BenchOptions,
    rates: &[f64],
    secs: u64,
) -> anyhow::Result<()> {
    let url = options
        .qdrant_url
        .clone()
        .context("--replicas needs --qdrant-url (a Qdrant server's gRPC URL)")?;
    println!(
        "Tidings two-replica benchmark on {} cores: NATS {NATS_URL}, PostgreSQL, Qdrant {url}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let texts = crate::bench_nats::texts(&options, 20_000)?;
    let mut rows = Vec::new();
    for &rate in rates {
        for row in steady(&base, &texts, rate, secs, &url).await? {
            println!("{row}");
            rows.push(row);
        }
    }
    println!("\n| figure | N | Tidings | notes |\n|---|---:|---:|---|");
    for r in rows {
        println!("{r}");
    }
    Ok(())
}
