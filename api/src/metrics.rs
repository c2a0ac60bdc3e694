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
use tidings_ingest::sources::SourceStatus;

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
        let fit = s.interim_fit();
        let counters: [(&str, &str, u64); 14] = [
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
            (
                "index_vectors_upgraded",
                "Interim vectors replaced by the main embedder's",
                s.vectors_upgraded.load(Ordering::Relaxed),
            ),
            (
                "index_interim_pairs",
                "Texts the main embedder embedded that the interim embedder learned from",
                fit.map_or(0, |f| f.pairs),
            ),
            (
                "index_interim_refits",
                "Corrections of the interim embedder fitted on them and put in use",
                fit.map_or(0, |f| f.refits),
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
        let gauges: [(&str, &str, i64); 4] = [
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
                "index_vectors_interim",
                "Posts whose vector is interim, waiting for the main embedder",
                s.vectors_interim.load(Ordering::Relaxed) as i64,
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
        if let Some(cosine) = fit.and_then(|f| f.cosine) {
            let gauge = ConstGauge::new(f64::from(cosine));
            gauge.encode(encoder.encode_descriptor(
                "index_interim_cosine",
                "Mean cosine between interim vectors and the main embedder's on held-out posts",
                None,
                gauge.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
    kind: String,
}

/// Per-source counters and gauges (`source_*{source, kind}`).
#[derive(Debug)]
struct SourcesCollector(Vec<Arc<SourceStatus>>);

impl prometheus_client::collector::Collector for SourcesCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snaps: Vec<_> = self.0.iter().map(|s| s.snapshot()).collect();
        let labels = |s: &tidings_ingest::sources::SourceSnapshot| SourceLabels {
            source: s.name.clone(),
            kind: s.kind.clone(),
        };
        type Pick = fn(&tidings_ingest::sources::SourceSnapshot) -> u64;
        let counters: [(&str, &str, Pick); 10] = [
            (
                "source_messages_received",
                "Messages read from the source",
                |s| s.received,
            ),
            (
                "source_posts_inserted",
                "New posts committed from the source",
                |s| s.inserted,
            ),
            (
                "source_posts_updated",
                "Edits committed from the source",
                |s| s.updated,
            ),
            (
                "source_posts_duplicate",
                "Re-read posts the index already held",
                |s| s.duplicates,
            ),
            (
                "source_posts_deleted",
                "Deletes applied from the source",
                |s| s.deleted,
            ),
            (
                "source_messages_filtered",
                "Posts left out by the source's filter",
                |s| s.filtered,
            ),
            (
                "source_messages_rejected",
                "Malformed or invalid messages (dead-lettered)",
                |s| s.rejected,
            ),
            (
                "source_messages_ignored",
                "Messages of kinds that are not indexed",
                |s| s.ignored,
            ),
            ("source_connects", "Connections made", |s| s.connects),
            ("source_disconnects", "Connections lost", |s| s.disconnects),
        ];
        for (name, help, pick) in counters {
            let mut family = encoder.encode_descriptor(
                name,
                help,
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?;
            for s in &snaps {
                ConstCounter::new(pick(s)).encode(family.encode_family(&labels(s))?)?;
            }
        }
        let mut connected = encoder.encode_descriptor(
            "source_connected",
            "1 while the source is connected",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for s in &snaps {
            ConstGauge::new(i64::from(s.connected)).encode(connected.encode_family(&labels(s))?)?;
        }
        let mut lag = encoder.encode_descriptor(
            "source_lag_seconds",
            "How far behind the source the last commit was",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for s in snaps.iter().filter(|s| s.lag_secs.is_some()) {
            ConstGauge::new(s.lag_secs.unwrap_or(0.0)).encode(lag.encode_family(&labels(s))?)?;
        }
        let mut backlog = encoder.encode_descriptor(
            "source_backlog_messages",
            "Messages waiting at the source (NATS)",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for s in snaps.iter().filter(|s| s.backlog.is_some()) {
            ConstGauge::new(s.backlog.unwrap_or(0) as i64)
                .encode(backlog.encode_family(&labels(s))?)?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReplicaLabels {
    replica: String,
}

/// Which replica this is and what it does: `replica_info{replica} 1` and
/// `replica_vector_writer{replica}` (1 while it writes the shared vectors).
#[derive(Debug)]
struct ReplicaCollector {
    name: String,
    writer: Option<tidings_index::VectorWriterRole>,
}

impl prometheus_client::collector::Collector for ReplicaCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let labels = ReplicaLabels {
            replica: self.name.clone(),
        };
        let mut info = encoder.encode_descriptor(
            "replica_info",
            "This process's replica name (1)",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        ConstGauge::new(1).encode(info.encode_family(&labels)?)?;
        if let Some(writer) = &self.writer {
            let mut role = encoder.encode_descriptor(
                "replica_vector_writer",
                "1 while this replica writes the vectors the replicas share",
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            ConstGauge::new(i64::from(writer.is_writer())).encode(role.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

impl Metrics {
    pub(crate) fn new(
        stats: Arc<IndexStats>,
        sources: Vec<Arc<SourceStatus>>,
        replica: &crate::lease::Replica,
        writer: Option<tidings_index::VectorWriterRole>,
    ) -> Metrics {
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
        registry.register_collector(Box::new(SourcesCollector(sources)));
        registry.register_collector(Box::new(ReplicaCollector {
            name: replica.name.clone(),
            writer,
        }));
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

/// `GET /metrics`.
#[utoipa::path(get, path = "/metrics", tag = "health", summary = "Prometheus metrics",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String)))]
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
