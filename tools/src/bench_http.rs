//! The figures of `tidings-tools bench` that go through the server: a filtered BM25 search's
//! cost at each layer of a request (async search, the API router in process, HTTP on
//! loopback), freshness of a steady HTTP push for an embedder, and the ingest's parse stage
//! alone.

use crate::bench::{filtered_search, summarize, BenchOptions, DAY_MS, WINDOW_END_MS};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tidings::app::{self, App};
use tidings::config::Settings;
use tidings_index::PostId;
use tidings_ingest::ValidationConfig;

/// Freshness: a steady push over HTTP with `kind` embeddings; the push is answered after the
/// commit that makes the post searchable, so its latency is the post → searchable (BM25) lag.
/// Vector lag: polled until nothing waits for its vector.
pub(crate) async fn freshness(
    base: &Settings,
    options: &BenchOptions,
    texts: &[String],
    kind: &str,
) -> anyhow::Result<Vec<String>> {
    let dir = tempfile::tempdir()?;
    let mut settings = base.clone();
    settings.data.dir = dir.path().to_path_buf();
    settings.server.bind = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    // `interim`: the local model, with interim vectors for what it cannot take at once.
    settings.embedder.kind = if kind == "interim" { "local" } else { kind }.into();
    settings.embedder.interim = if kind == "interim" { "static" } else { "none" }.into();
    let app = App::build(&settings, None).await?;
    let base_url = format!("http://{}", app.addr);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let total = (options.fresh_rate * options.fresh_secs as f64) as usize;
    let interval = Duration::from_secs_f64(1.0 / options.fresh_rate);
    let sample: Vec<String> = texts.iter().take(500).cloned().collect();
    let mut tasks = tokio::task::JoinSet::new();
    let started = tokio::time::Instant::now();
    for i in 0..total {
        tokio::time::sleep_until(started + interval * i as u32).await;
        let client = client.clone();
        let url = format!("{base_url}/v1/posts");
        let text = format!("{} fresh{i}", sample[i % sample.len().max(1)]);
        tasks.spawn(async move {
            let body = serde_json::json!([{ "id": format!("fresh-{i}"), "text": text, "created_at": chrono::Utc::now() }]);
            let t0 = Instant::now();
            let ok = client.post(url).json(&body).send().await.map(|r| r.status().is_success()).unwrap_or(false);
            (ok, t0.elapsed().as_secs_f64() * 1000.0, Instant::now())
        });
    }
    let mut lags = Vec::new();
    let mut failed = 0;
    while let Some(r) = tasks.join_next().await {
        let (ok, ms, _) = r?;
        if ok {
            lags.push(ms)
        } else {
            failed += 1
        }
    }
    let (f50, f99) = summarize(lags.clone());
    let pushed_at = Instant::now();
    let guard = app.index.lock().await;
    let vector_store = guard.as_ref().and_then(|s| s.vector_store());
    let stats = guard.as_ref().map(|s| s.stats.clone());
    drop(guard);
    let mut vector_catchup = f64::NAN;
    let mut upgraded = None;
    if let (Some(store), Some(stats)) = (vector_store, stats) {
        loop {
            if stats.vectors_pending.load(Ordering::Relaxed) == 0 {
                break;
            }
            if pushed_at.elapsed() > Duration::from_secs(600) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        vector_catchup = pushed_at.elapsed().as_secs_f64() * 1000.0;
        let last = PostId::parse(&format!("fresh-{}", total - 1)).map_err(anyhow::Error::msg)?;
        if store.vector_of(last.as_str())?.is_none() {
            println!("bench: warning: last fresh post has no vector after catch-up");
        }
        if kind == "interim" {
            while stats.vectors_interim.load(Ordering::Relaxed) > 0
                && pushed_at.elapsed() < Duration::from_secs(1800)
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            upgraded = Some((
                pushed_at.elapsed().as_secs_f64() * 1000.0,
                stats.vectors_upgraded.load(Ordering::Relaxed),
            ));
        }
    }
    let mut rows = Vec::new();
    rows.push(format!(
        "| post → searchable (BM25), HTTP push at {:.0} posts/s for {} s, `{kind}` vectors | {} | p50 {f50:.1} ms / p99 {f99:.1} ms ({failed} failed) | tantivy-py 250 ms commits: p50 141 / p99 264 ms (peers) | — |",
        options.fresh_rate,
        options.fresh_secs,
        lags.len()
    ));
    rows.push(format!(
        "| `{kind}` vectors caught up after the last push | {} | {vector_catchup:.0} ms after the push stream ended | — | — |",
        lags.len()
    ));
    if let Some((ms, n)) = upgraded {
        rows.push(format!(
            "| `{kind}`: every interim vector replaced by the local model's | {n} upgraded | {ms:.0} ms after the push stream ended | — | — |"
        ));
    }
    app.stop().await?;
    Ok(rows)
}

/// Posts per second through the ingest's first stage alone (JSON parse and validation, one
/// thread, as `jsonl::read_jsonl` does it), to tell how the whole ingest splits its time: the
/// shipped path (the text read straight into a typed record) and, as the baseline in the same
/// process, the text parsed into a `serde_json::Value` first and validated from it. Best of
/// three passes each.
pub(crate) fn parse_stage(path: &Path) -> anyhow::Result<(f64, f64)> {
    let content = std::fs::read_to_string(path)?;
    let lines: Vec<&str> = content.lines().filter(|l| !l.trim().is_empty()).collect();
    let config = ValidationConfig::default();
    let now = chrono::Utc::now();
    let rate = |accept: &dyn Fn(&str) -> bool| {
        let started = Instant::now();
        let accepted = lines.iter().filter(|l| accept(l)).count();
        accepted as f64 / started.elapsed().as_secs_f64()
    };
    let typed =
        |line: &str| tidings_ingest::validate_json_with_id(line, "bench", &config, now).is_ok();
    let via_value = |line: &str| {
        serde_json::from_str::<serde_json::Value>(line)
            .is_ok_and(|v| tidings_ingest::validate(v, "bench", &config, now).is_ok())
    };
    let (mut best_typed, mut best_value) = (0f64, 0f64);
    for _ in 0..3 {
        best_typed = best_typed.max(rate(&typed));
        best_value = best_value.max(rate(&via_value));
    }
    Ok((best_typed, best_value))
}

/// The filtered BM25 search of the figure above through each layer a client's request passes:
/// the async search (a blocking-pool hop), the API router in process (routing, key and metrics
/// middleware, JSON in and out, the post views), and HTTP on loopback with a keep-alive
/// client. Each layer's p50/p99 over the same queries (second pass of two).
pub(crate) async fn search_layers(
    settings: &Settings,
    service: &tidings_index::IndexService,
    queries: &[String],
) -> anyhow::Result<Vec<(&'static str, (f64, f64))>> {
    use tower::ServiceExt;
    let to_rfc3339 = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap_or_default()
            .to_rfc3339()
    };
    let body = |q: &str| {
        serde_json::json!({
            "q": q,
            "from": to_rfc3339(WINDOW_END_MS - DAY_MS),
            "to": to_rfc3339(WINDOW_END_MS - 1),
            "as_of": to_rfc3339(WINDOW_END_MS),
            "half_life": "6h",
            "limit": 10,
            "mode": "text",
            "collapse": true,
        })
        .to_string()
    };
    let mut out = Vec::new();
    // The async search: what the handler awaits.
    let mut lat = Vec::new();
    for pass in 0..2 {
        for q in queries {
            let t0 = Instant::now();
            service.search.search(filtered_search(q)).await?;
            if pass == 1 {
                lat.push(t0.elapsed().as_secs_f64() * 1000.0);
            }
        }
    }
    out.push(("async (what a handler awaits)", summarize(lat)));
    let state = tidings_api::AppState::new(
        service.search.clone(),
        service.write.clone(),
        service.stats.clone(),
        app::api_config(settings)?,
    );
    let router = tidings_api::router(state.clone());
    let mut lat = Vec::new();
    for pass in 0..2 {
        for q in queries {
            let t0 = Instant::now();
            let req = axum::http::Request::post("/v1/search")
                .header("content-type", "application/json")
                .body(axum::body::Body::from(body(q)))?;
            let response = router.clone().oneshot(req).await?;
            anyhow::ensure!(
                response.status() == 200,
                "search answered {}",
                response.status()
            );
            axum::body::to_bytes(response.into_body(), usize::MAX).await?;
            if pass == 1 {
                lat.push(t0.elapsed().as_secs_f64() * 1000.0);
            }
        }
    }
    out.push((
        "API router in process (routing, middleware, JSON)",
        summarize(lat),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/v1/search", listener.local_addr()?);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let stop = shutdown.clone();
    let server = tokio::spawn(tidings_api::serve(listener, state, async move {
        stop.cancelled().await
    }));
    let client = reqwest::Client::new();
    let mut lat = Vec::new();
    for pass in 0..2 {
        for q in queries {
            let t0 = Instant::now();
            let response = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body(q))
                .send()
                .await?;
            anyhow::ensure!(
                response.status() == 200,
                "search answered {}",
                response.status()
            );
            response.bytes().await?;
            if pass == 1 {
                lat.push(t0.elapsed().as_secs_f64() * 1000.0);
            }
        }
    }
    shutdown.cancel();
    let _ = server.await;
    out.push(("HTTP on loopback (keep-alive, Rust client)", summarize(lat)));
    Ok(out)
}
