//! `/metrics`: Prometheus text. HTTP request counts and search latency are recorded here; index
//! counters are read from [`IndexStats`] at scrape time.

use crate::AppState;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use prometheus_client::encoding::{text::encode, DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tidings_index::IndexStats;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    search_seconds: Histogram,
}

#[derive(Debug)]
struct IndexCollector(Arc<IndexStats>);

impl prometheus_client::collector::Collector for IndexCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        let counters: [(&str, &str, u64); 11] = [
            (
                "index_posts_inserted",
                "Posts inserted",
                s.inserted.load(Ordering::Relaxed),
            ),
            (
                "index_posts_updated",
                "Posts replaced by an edit",
                s.updated.load(Ordering::Relaxed),
            ),
            (
                "index_posts_duplicate",
                "Upserts that were exact duplicates",
                s.duplicates.load(Ordering::Relaxed),
            ),
            (
                "index_commits",
                "Text index commits",
                s.commits.load(Ordering::Relaxed),
            ),
            (
                "index_commit_errors",
                "Failed text index commits",
                s.commit_errors.load(Ordering::Relaxed),
            ),
            (
                "index_vectors_upserted",
                "Vectors written",
                s.vectors_upserted.load(Ordering::Relaxed),
            ),
            (
                "index_embedded",
                "Texts run through the embedder",
                s.embedded.load(Ordering::Relaxed),
            ),
            (
                "index_embeddings_reused",
                "Vectors reused from a near-duplicate",
                s.embeddings_reused.load(Ordering::Relaxed),
            ),
            (
                "index_embed_errors",
                "Failed vector batches",
                s.embed_errors.load(Ordering::Relaxed),
            ),
            (
                "index_vector_queue_overflow",
                "Jobs left to reconciliation because the vector queue was full",
                s.vector_queue_overflow.load(Ordering::Relaxed),
            ),
            (
                "index_reconciled",
                "Posts repaired by reconciliation",
                s.reconciled.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        let gauges: [(&str, &str, i64); 3] = [
            (
                "index_posts",
                "Live posts in the text index",
                s.posts.load(Ordering::Relaxed) as i64,
            ),
            (
                "index_vectors_pending",
                "Posts waiting for their vector",
                s.vectors_pending.load(Ordering::Relaxed) as i64,
            ),
            (
                "index_last_commit_microseconds",
                "Duration of the last commit",
                s.last_commit_micros.load(Ordering::Relaxed) as i64,
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

impl Metrics {
    pub(crate) fn new(stats: Arc<IndexStats>) -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "api_http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        let search_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        registry.register(
            "api_search_duration_seconds",
            "Search latency inside the server",
            search_seconds.clone(),
        );
        registry.register_collector(Box::new(IndexCollector(stats)));
        Metrics {
            registry,
            requests,
            search_seconds,
        }
    }

    pub(crate) fn observe_request(&self, route: String, method: String, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status,
            })
            .inc();
    }

    pub(crate) fn observe_search(&self, took: Duration) {
        self.search_seconds.observe(took.as_secs_f64());
    }
}

pub(crate) async fn render(State(state): State<AppState>) -> impl IntoResponse {
    let mut body = String::new();
    if let Err(e) = encode(&mut body, &state.metrics.registry) {
        tracing::error!(error = %e, "could not encode metrics");
    }
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
}
