//! [`VectorStore`] over a Qdrant server or cluster, through `qdrant-client` (gRPC).
//!
//! The collection has the edge shard's layout ([`super::edge`]): one named dense vector `text`
//! (cosine), point id = UUIDv5 of the post id, payload `{post_id, h, created_at, author, source,
//! lang}` with integer/keyword payload indexes. It is created when missing and checked when
//! present: a collection whose `text` vector has another dimension or distance is refused at
//! startup, with what to do about it.
//!
//! The trait is blocking and `qdrant-client` is async, so the store owns a small runtime of its
//! own and waits on it; callers already run vector calls off the async threads.
//!
//! Failures: transient errors (unavailable, deadline, resource exhausted, aborted) are retried
//! with [`crate::backoff::Backoff`], a few times for writes and once for reads. When the server
//! cannot be reached, reads fail fast for a short cool-down instead of each waiting for a
//! connect timeout, so a search falls back to BM25 at BM25's speed during an outage; the vector
//! worker keeps its failed batches and retries them (writes are never dropped).

use super::{StoredId, VectorHit, VectorPoint, VectorReader, VectorStore};
use crate::backoff::Backoff;
use crate::filter::SearchFilter;
use crate::IndexError;
use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::r#match::MatchValue;
use qdrant_client::qdrant::value::Kind;
use qdrant_client::qdrant::vector_output::Vector as OutVector;
use qdrant_client::qdrant::vectors_config::Config as VectorsConfigKind;
use qdrant_client::qdrant::{
    AcornSearchParamsBuilder, Condition, CountPointsBuilder, CreateCollectionBuilder,
    CreateFieldIndexCollectionBuilder, DeletePointsBuilder, Distance, FieldType, Filter,
    GetPointsBuilder, PointId, PointStruct, PointsIdsList, QueryPointsBuilder, Range,
    RepeatedStrings, ScrollPointsBuilder, SearchParamsBuilder, UpsertPointsBuilder, Value,
    VectorParamsBuilder, VectorParamsMap, VectorsConfig,
};
use qdrant_client::{Qdrant, QdrantError};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const VECTOR_NAME: &str = "text";

/// The payload indexes the filters and reconciliation use, and their types.
const PAYLOAD_INDEXES: [(&str, FieldType); 6] = [
    ("created_at", FieldType::Integer),
    ("author", FieldType::Keyword),
    ("source", FieldType::Keyword),
    ("lang", FieldType::Keyword),
    ("post_id", FieldType::Keyword),
    ("h", FieldType::Integer),
];

/// Where the collection lives and how it is laid out (`[vectors]` in the settings).
#[derive(Clone, Debug)]
pub struct QdrantStoreConfig {
    /// The gRPC URL of any node, e.g. `http://127.0.0.1:6334`.
    pub url: String,
    pub api_key: Option<String>,
    pub collection: String,
    /// Used only when the collection is created.
    pub shard_number: u32,
    pub replication_factor: u32,
    pub write_consistency_factor: u32,
    /// Per request: searches and lookups.
    pub read_timeout: Duration,
    /// Per request: upserts, deletes, collection setup.
    pub write_timeout: Duration,
    pub connect_timeout: Duration,
    /// After the server could not be reached, reads fail at once for this long.
    pub down_cooldown: Duration,
}

impl Default for QdrantStoreConfig {
    fn default() -> Self {
        QdrantStoreConfig {
            url: "http://127.0.0.1:6334".into(),
            api_key: None,
            collection: "tidings".into(),
            shard_number: 1,
            replication_factor: 1,
            write_consistency_factor: 1,
            read_timeout: Duration::from_secs(2),
            write_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(2),
            down_cooldown: Duration::from_secs(2),
        }
    }
}

/// A Qdrant collection as the vector half of the index.
pub struct QdrantVectorStore {
    reads: Qdrant,
    writes: Qdrant,
    collection: String,
    url: String,
    /// Runs the client's futures; `Option` only so that `Drop` can shut it down without
    /// blocking (dropping a runtime inside another one's async context would panic).
    runtime: Option<tokio::runtime::Runtime>,
    /// Set when a read found the server unreachable: until then reads fail fast.
    down: Mutex<Option<(Instant, String)>>,
    down_cooldown: Duration,
}

fn client(config: &QdrantStoreConfig, timeout: Duration) -> Result<Qdrant, IndexError> {
    Qdrant::from_url(&config.url)
        .api_key(config.api_key.clone())
        .timeout(timeout)
        .connect_timeout(config.connect_timeout)
        // The client's own version check prints to stdout; `open` checks the server itself.
        .skip_compatibility_check()
        .build()
        .map_err(|e| IndexError::InvalidInput(format!("vectors.url `{}`: {e}", config.url)))
}

/// Errors worth another try: the server or a replica was briefly unreachable or busy.
fn transient(e: &QdrantError) -> bool {
    use tonic::Code;
    match e {
        QdrantError::ResponseError { status } => {
            matches!(
                status.code(),
                Code::Unavailable
                    | Code::DeadlineExceeded
                    | Code::Aborted
                    | Code::Cancelled
                    | Code::Unknown
                    | Code::ResourceExhausted
            )
                // The client reports a refused or failed connection as `Internal`.
                || (status.code() == Code::Internal
                    && status.message().starts_with("Failed to connect"))
        }
        QdrantError::ResourceExhaustedError { .. } | QdrantError::Io(_) => true,
        _ => false,
    }
}

fn point_id(post_id: &str) -> Result<PointId, IndexError> {
    let id = crate::post::PostId::parse(post_id).map_err(IndexError::InvalidInput)?;
    Ok(PointId::from(id.point_uuid().to_string()))
}

fn point_id_string(id: &PointId) -> Option<String> {
    match id.point_id_options.as_ref()? {
        PointIdOptions::Uuid(u) => Some(u.clone()),
        PointIdOptions::Num(n) => Some(n.to_string()),
    }
}

fn keywords(values: &[String]) -> MatchValue {
    // Not `From<String>`: that turns a value with a space into a full-text match.
    MatchValue::Keywords(RepeatedStrings {
        strings: values.to_vec(),
    })
}

fn filter(filter: &SearchFilter) -> Option<Filter> {
    let mut must = Vec::new();
    if filter.from_ms.is_some() || filter.to_ms.is_some() {
        must.push(Condition::range(
            "created_at",
            Range {
                gte: filter.from_ms.map(|v| v as f64),
                lte: filter.to_ms.map(|v| v as f64),
                lt: None,
                gt: None,
            },
        ));
    }
    for (field, values) in [
        ("author", &filter.authors),
        ("source", &filter.sources),
        ("lang", &filter.langs),
    ] {
        if !values.is_empty() {
            must.push(Condition::matches(field, keywords(values)));
        }
    }
    let must_not = if filter.exclude_authors.is_empty() {
        Vec::new()
    } else {
        vec![Condition::matches(
            "author",
            keywords(&filter.exclude_authors),
        )]
    };
    if must.is_empty() && must_not.is_empty() {
        return None;
    }
    Some(Filter {
        must,
        must_not,
        ..Filter::default()
    })
}

fn string_of(payload: &HashMap<String, Value>, key: &str) -> Option<String> {
    match payload.get(key)?.kind.as_ref()? {
        Kind::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

fn integer_of(payload: &HashMap<String, Value>, key: &str) -> Option<i64> {
    match payload.get(key)?.kind.as_ref()? {
        Kind::IntegerValue(i) => Some(*i),
        Kind::DoubleValue(d) => Some(*d as i64),
        _ => None,
    }
}

fn dense(vectors: Option<&qdrant_client::qdrant::VectorsOutput>) -> Option<Vec<f32>> {
    match vectors?.get_vector_by_name(VECTOR_NAME)? {
        OutVector::Dense(d) => Some(d.data),
        _ => None,
    }
}

/// The payload of one point (what [`super::edge`] stores too).
fn payload(p: &VectorPoint) -> HashMap<String, Value> {
    let mut out = HashMap::from([
        ("post_id".to_string(), Value::from(p.post_id.clone())),
        ("h".to_string(), Value::from(p.id_hash as i64)),
        ("created_at".to_string(), Value::from(p.created_at_ms)),
        ("source".to_string(), Value::from(p.source.clone())),
    ]);
    if let Some(author) = &p.author {
        out.insert("author".into(), Value::from(author.clone()));
    }
    if let Some(lang) = &p.lang {
        out.insert("lang".into(), Value::from(lang.clone()));
    }
    if p.interim {
        out.insert(INTERIM_KEY.into(), Value::from(true));
    }
    out
}

/// The payload key marking an interim vector (absent on the main embedder's own).
const INTERIM_KEY: &str = "i";

fn is_interim(payload: &HashMap<String, Value>) -> bool {
    matches!(
        payload.get(INTERIM_KEY).and_then(|v| v.kind.as_ref()),
        Some(Kind::BoolValue(true))
    )
}

/// A stored point back as a [`VectorPoint`] (for `migrate-vectors`).
fn vector_point(
    payload: &HashMap<String, Value>,
    vectors: Option<&qdrant_client::qdrant::VectorsOutput>,
) -> Option<VectorPoint> {
    Some(VectorPoint {
        post_id: string_of(payload, "post_id")?,
        id_hash: integer_of(payload, "h")? as u64,
        created_at_ms: integer_of(payload, "created_at")?,
        author: string_of(payload, "author"),
        source: string_of(payload, "source").unwrap_or_default(),
        lang: string_of(payload, "lang"),
        vector: dense(vectors)?,
        interim: is_interim(payload),
    })
}

impl QdrantVectorStore {
    /// Connects, checks the server, and creates the collection (with its payload indexes) when
    /// it is missing, or checks that an existing one holds `dim`-dimensional cosine vectors.
    pub fn open(config: &QdrantStoreConfig, dim: usize) -> Result<QdrantVectorStore, IndexError> {
        if config.collection.trim().is_empty() {
            return Err(IndexError::InvalidInput(
                "vectors.collection must not be empty".into(),
            ));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("qdrant-client")
            .enable_all()
            .build()
            .map_err(|e| IndexError::internal(format!("start the Qdrant client runtime: {e}")))?;
        let store = QdrantVectorStore {
            reads: client(config, config.read_timeout)?,
            writes: client(config, config.write_timeout)?,
            collection: config.collection.clone(),
            url: config.url.clone(),
            runtime: Some(runtime),
            down: Mutex::new(None),
            down_cooldown: config.down_cooldown,
        };
        let version = store
            .call(&store.writes, "health check", 3, |c| async move {
                c.health_check().await
            })
            .map_err(|e| {
                IndexError::Unavailable(format!(
                    "cannot reach the Qdrant server at {} (vectors.url): {e}",
                    config.url
                ))
            })?
            .version;
        tracing::info!(url = %config.url, %version, collection = %config.collection, "connected to Qdrant");
        store.ensure_collection(config, dim)?;
        Ok(store)
    }

    fn ensure_collection(&self, config: &QdrantStoreConfig, dim: usize) -> Result<(), IndexError> {
        let name = self.collection.clone();
        let exists = self.write("check the collection", {
            let name = name.clone();
            move |c| {
                let name = name.clone();
                async move { c.collection_exists(name).await }
            }
        })?;
        if !exists {
            let mut vectors = HashMap::new();
            vectors.insert(
                VECTOR_NAME.to_string(),
                VectorParamsBuilder::new(dim as u64, Distance::Cosine).build(),
            );
            let request = CreateCollectionBuilder::new(name.clone())
                .vectors_config(VectorsConfig {
                    config: Some(VectorsConfigKind::ParamsMap(VectorParamsMap {
                        map: vectors,
                    })),
                })
                .shard_number(config.shard_number.max(1))
                .replication_factor(config.replication_factor.max(1))
                .write_consistency_factor(config.write_consistency_factor.max(1));
            let created = self.write("create the collection", move |c| {
                let request = request.clone();
                async move { c.create_collection(request).await }
            });
            match created {
                Ok(_) => tracing::info!(collection = %name, dim, "created the Qdrant collection"),
                // Another replica created it first: check it like any existing one.
                Err(e) if e.to_string().contains("already exists") => {}
                Err(e) => return Err(e),
            }
        }
        let info = self
            .write("read the collection", {
                let name = name.clone();
                move |c| {
                    let name = name.clone();
                    async move { c.collection_info(name).await }
                }
            })?
            .result
            .ok_or_else(|| IndexError::internal("Qdrant returned no collection info"))?;
        check_layout(&name, &info, dim)?;
        for (field, kind) in PAYLOAD_INDEXES {
            if info.payload_schema.contains_key(field) {
                continue;
            }
            let request =
                CreateFieldIndexCollectionBuilder::new(name.clone(), field, kind).wait(true);
            self.write("create a payload index", move |c| {
                let request = request.clone();
                async move { c.create_field_index(request).await }
            })?;
        }
        Ok(())
    }

    /// Runs one client call on the store's runtime and waits for it, retrying transient errors
    /// up to `attempts` times with the one backoff policy. (The client's error type is large;
    /// callers turn it into an `IndexError` at once.)
    #[allow(clippy::result_large_err)]
    fn call<T, F, Fut>(
        &self,
        client: &Qdrant,
        what: &str,
        attempts: u32,
        make: F,
    ) -> Result<T, QdrantError>
    where
        F: Fn(Qdrant) -> Fut,
        Fut: Future<Output = Result<T, QdrantError>> + Send + 'static,
        T: Send + 'static,
    {
        let Some(runtime) = &self.runtime else {
            return Err(QdrantError::ConversionError(
                "the store is shut down".into(),
            ));
        };
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let mut attempt = 1;
        loop {
            let handle = runtime.spawn(make(client.clone()));
            let result = match futures::executor::block_on(handle) {
                Ok(result) => result,
                Err(e) => Err(QdrantError::ConversionError(format!("{what}: {e}"))),
            };
            match result {
                Err(e) if transient(&e) && attempt < attempts => {
                    let wait = backoff.next_delay();
                    tracing::debug!(error = %e, what, attempt, retry_in_ms = wait.as_millis() as u64, "Qdrant call failed; retrying");
                    std::thread::sleep(wait);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn write<T, F, Fut>(&self, what: &str, make: F) -> Result<T, IndexError>
    where
        F: Fn(Qdrant) -> Fut,
        Fut: Future<Output = Result<T, QdrantError>> + Send + 'static,
        T: Send + 'static,
    {
        self.call(&self.writes, what, 5, make)
            .map_err(|e| self.error(what, e))
    }

    /// A read: fails at once while the server is known to be down, and marks it down when the
    /// call finds it unreachable.
    fn read<T, F, Fut>(&self, what: &str, make: F) -> Result<T, IndexError>
    where
        F: Fn(Qdrant) -> Fut,
        Fut: Future<Output = Result<T, QdrantError>> + Send + 'static,
        T: Send + 'static,
    {
        if let Ok(down) = self.down.lock() {
            if let Some((since, error)) = down.as_ref() {
                if since.elapsed() < self.down_cooldown {
                    return Err(IndexError::Unavailable(format!(
                        "the Qdrant server at {} is unreachable ({error})",
                        self.url
                    )));
                }
            }
        }
        let result = self.call(&self.reads, what, 2, make);
        if let Ok(mut down) = self.down.lock() {
            *down = match &result {
                Err(e) if transient(e) => Some((Instant::now(), e.to_string())),
                _ => None,
            };
        }
        result.map_err(|e| self.error(what, e))
    }

    fn error(&self, what: &str, e: QdrantError) -> IndexError {
        let message = format!("Qdrant {what} (collection `{}`): {e}", self.collection);
        if transient(&e) {
            IndexError::Unavailable(message)
        } else {
            IndexError::Internal(message)
        }
    }
}

/// Refuses a collection whose `text` vector is not `dim`-dimensional cosine.
fn check_layout(
    name: &str,
    info: &qdrant_client::qdrant::CollectionInfo,
    dim: usize,
) -> Result<(), IndexError> {
    let vectors = info
        .config
        .as_ref()
        .and_then(|c| c.params.as_ref())
        .and_then(|p| p.vectors_config.as_ref())
        .and_then(|v| v.config.as_ref());
    let params = match vectors {
        Some(VectorsConfigKind::ParamsMap(map)) => map.map.get(VECTOR_NAME),
        _ => None,
    };
    let Some(params) = params else {
        return Err(IndexError::InvalidInput(format!(
            "the Qdrant collection `{name}` has no named vector `{VECTOR_NAME}`: it was not \
             made by Tidings; set vectors.collection to another name"
        )));
    };
    let distance = Distance::try_from(params.distance).unwrap_or(Distance::UnknownDistance);
    if params.size != dim as u64 || distance != Distance::Cosine {
        return Err(IndexError::InvalidInput(format!(
            "the Qdrant collection `{name}` holds {}-dimensional {} vectors, but the embedder \
             makes {dim}-dimensional cosine ones; set vectors.collection to another name, or \
             delete the collection to re-embed every post into it",
            params.size,
            distance.as_str_name()
        )));
    }
    Ok(())
}

impl Drop for QdrantVectorStore {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl VectorReader for QdrantVectorStore {
    fn search(
        &self,
        vector: &[f32],
        search_filter: &SearchFilter,
        limit: usize,
        exact: bool,
    ) -> Result<Vec<VectorHit>, IndexError> {
        let collection = self.collection.clone();
        let vector = vector.to_vec();
        let filter = filter(search_filter);
        let response = self.read("search", move |c| {
            let mut request = QueryPointsBuilder::new(collection.clone())
                .query(vector.clone())
                .using(VECTOR_NAME)
                .limit(limit as u64)
                .with_payload(true);
            if let Some(f) = filter.clone() {
                // As in the edge store: exact for small windows, ACORN keeps a filtered HNSW
                // search's recall otherwise.
                let params = if exact {
                    SearchParamsBuilder::default().exact(true)
                } else {
                    SearchParamsBuilder::default().acorn(AcornSearchParamsBuilder::new(true))
                };
                request = request.filter(f).params(params);
            }
            async move { c.query(request).await }
        })?;
        Ok(response
            .result
            .into_iter()
            .filter_map(|p| {
                Some(VectorHit {
                    post_id: string_of(&p.payload, "post_id")?,
                    score: p.score,
                })
            })
            .collect())
    }

    fn vector_of(&self, post_id: &str) -> Result<Option<Vec<f32>>, IndexError> {
        let collection = self.collection.clone();
        let id = point_id(post_id)?;
        let response = self.read("retrieve", move |c| {
            let request = GetPointsBuilder::new(collection.clone(), vec![id.clone()])
                .with_payload(false)
                .with_vectors(true);
            async move { c.get_points(request).await }
        })?;
        Ok(response
            .result
            .first()
            .and_then(|p| dense(p.vectors.as_ref())))
    }

    fn all_ids(&self) -> Result<Vec<StoredId>, IndexError> {
        let mut out = Vec::new();
        let mut offset: Option<PointId> = None;
        loop {
            let collection = self.collection.clone();
            let from = offset.clone();
            let response = self.read("scroll", move |c| {
                let mut request = ScrollPointsBuilder::new(collection.clone())
                    .limit(10_000)
                    .with_payload(true)
                    .with_vectors(false);
                if let Some(o) = from.clone() {
                    request = request.offset(o);
                }
                async move { c.scroll(request).await }
            })?;
            for r in &response.result {
                if let (Some(h), Some(id)) = (
                    integer_of(&r.payload, "h"),
                    string_of(&r.payload, "post_id"),
                ) {
                    out.push(StoredId {
                        id_hash: h as u64,
                        post_id: id,
                        interim: is_interim(&r.payload),
                    });
                }
            }
            match response.next_page_offset {
                Some(next) => offset = Some(next),
                None => break,
            }
        }
        Ok(out)
    }

    fn count(&self) -> Result<usize, IndexError> {
        let collection = self.collection.clone();
        let response = self.read("count", move |c| {
            let request = CountPointsBuilder::new(collection.clone()).exact(true);
            async move { c.count(request).await }
        })?;
        Ok(response.result.map(|r| r.count as usize).unwrap_or(0))
    }

    fn backend(&self) -> &'static str {
        "qdrant"
    }

    fn health(&self) -> Result<(), IndexError> {
        self.read("health check", |c| async move { c.health_check().await })
            .map(|_| ())
    }

    /// Every point with its vector, a page at a time from `offset` (a point id); the next
    /// page's offset comes back with it.
    fn page(
        &self,
        offset: Option<String>,
        limit: usize,
    ) -> Result<(Vec<VectorPoint>, Option<String>), IndexError> {
        let collection = self.collection.clone();
        let response = self.read("scroll", move |c| {
            let mut request = ScrollPointsBuilder::new(collection.clone())
                .limit(limit as u32)
                .with_payload(true)
                .with_vectors(true);
            if let Some(o) = offset.clone() {
                request = request.offset(PointId::from(o));
            }
            async move { c.scroll(request).await }
        })?;
        let points = response
            .result
            .iter()
            .filter_map(|r| vector_point(&r.payload, r.vectors.as_ref()))
            .collect();
        Ok((
            points,
            response.next_page_offset.as_ref().and_then(point_id_string),
        ))
    }
}

impl VectorStore for QdrantVectorStore {
    fn upsert(&self, points: Vec<VectorPoint>) -> Result<(), IndexError> {
        if points.is_empty() {
            return Ok(());
        }
        let mut batch = Vec::with_capacity(points.len());
        for p in &points {
            let vectors = HashMap::from([(VECTOR_NAME.to_string(), p.vector.clone())]);
            batch.push(PointStruct::new(point_id(&p.post_id)?, vectors, payload(p)));
        }
        let collection = self.collection.clone();
        // `wait`: acknowledged only once applied (and, with replicas, by
        // `write_consistency_factor` of them): what the trait promises.
        self.write("upsert", move |c| {
            let request = UpsertPointsBuilder::new(collection.clone(), batch.clone()).wait(true);
            async move { c.upsert_points(request).await }
        })?;
        Ok(())
    }

    fn delete(&self, post_ids: &[String]) -> Result<(), IndexError> {
        if post_ids.is_empty() {
            return Ok(());
        }
        let ids = post_ids
            .iter()
            .map(|p| point_id(p))
            .collect::<Result<Vec<_>, _>>()?;
        let collection = self.collection.clone();
        self.write("delete", move |c| {
            let request = DeletePointsBuilder::new(collection.clone())
                .points(PointsIdsList { ids: ids.clone() })
                .wait(true);
            async move { c.delete_points(request).await }
        })?;
        Ok(())
    }

    fn delete_older_than(&self, cutoff_ms: i64) -> Result<(), IndexError> {
        let collection = self.collection.clone();
        self.write("delete by age", move |c| {
            let older = Filter::must([Condition::range(
                "created_at",
                Range {
                    lt: Some(cutoff_ms as f64),
                    ..Range::default()
                },
            )]);
            let request = DeletePointsBuilder::new(collection.clone())
                .points(older)
                .wait(true);
            async move { c.delete_points(request).await }
        })?;
        Ok(())
    }

    /// The server builds its HNSW graphs itself, in the background: this waits (up to ten
    /// minutes) until it reports the collection green, i.e. indexed.
    fn optimize(&self) -> Result<(), IndexError> {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let collection = self.collection.clone();
            let status = self
                .write("read the collection", move |c| {
                    let collection = collection.clone();
                    async move { c.collection_info(collection).await }
                })?
                .result
                .map(|info| info.status);
            if status == Some(qdrant_client::qdrant::CollectionStatus::Green as i32)
                || Instant::now() > deadline
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
