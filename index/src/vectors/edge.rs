//! [`VectorStore`] over an embedded `qdrant-edge` shard in the data directory.
//!
//! Layout (same as a Qdrant server collection would use): one named dense vector `text`
//! (cosine), point id = UUIDv5 of the post id, payload `{post_id, h, created_at, author, source,
//! lang}` with integer/keyword payload indexes for the filters.

use super::{StoredId, VectorHit, VectorPoint, VectorReader, VectorStore};
use crate::filter::SearchFilter;
use crate::IndexError;
use qdrant_edge::external::ordered_float::OrderedFloat;
use qdrant_edge::external::serde_json::json;
use qdrant_edge::{
    AcornSearchParams, Condition, CreateIndex, Distance, EdgeConfigBuilder, EdgeShard,
    EdgeVectorParamsBuilder, FieldCondition, FieldIndexOperations, Filter, Match, NamedQuery,
    PayloadFieldSchema, PayloadSchemaType, PointId, PointInsertOperations, PointOperations,
    PointStruct, QueryEnum, QueryRequestBuilder, Range, RetrieveRequest, ScoringQuery,
    ScrollRequestBuilder, SearchParams, UpdateOperation, ValueVariants, VectorInternal, Vectors,
    WithPayloadInterface, WithVector,
};
use std::path::{Path, PathBuf};

const VECTOR_NAME: &str = "text";

/// Beside the shard while an optimisation runs: its presence at open means a stop cut one short.
const OPTIMIZING_MARKER: &str = "optimizing";

/// The embedded Qdrant shard.
pub struct EdgeVectorStore {
    shard: EdgeShard,
    /// [`OPTIMIZING_MARKER`] in the shard's directory.
    marker: PathBuf,
}

fn edge_err(what: &str) -> impl FnOnce(qdrant_edge::OperationError) -> IndexError + '_ {
    move |e| IndexError::Internal(format!("vector index: {what}: {e}"))
}

fn point_id(post_id: &str) -> Result<PointId, IndexError> {
    let id = crate::post::PostId::parse(post_id).map_err(IndexError::InvalidInput)?;
    Ok(PointId::Uuid(id.point_uuid()))
}

impl EdgeVectorStore {
    /// Opens the shard in `dir` (replaying its WAL), or creates it for `dim`-dimensional vectors.
    pub fn open(dir: &Path, dim: usize) -> Result<EdgeVectorStore, IndexError> {
        let exists = dir.join(qdrant_edge::WAL_PATH).exists();
        let shard = if exists {
            EdgeShard::load(dir, None).map_err(edge_err("load"))?
        } else {
            std::fs::create_dir_all(dir)
                .map_err(|e| IndexError::internal(format!("create {}: {e}", dir.display())))?;
            let config = EdgeConfigBuilder::new()
                .vector(
                    VECTOR_NAME,
                    EdgeVectorParamsBuilder::new(dim, Distance::Cosine).build(),
                )
                .build();
            let shard = EdgeShard::new(dir, config).map_err(edge_err("create"))?;
            for (field, schema) in [
                ("created_at", PayloadSchemaType::Integer),
                ("author", PayloadSchemaType::Keyword),
                ("source", PayloadSchemaType::Keyword),
                ("lang", PayloadSchemaType::Keyword),
            ] {
                let op = UpdateOperation::FieldIndexOperation(FieldIndexOperations::CreateIndex(
                    CreateIndex {
                        field_name: field
                            .parse()
                            .map_err(|_| IndexError::internal("payload field name"))?,
                        field_schema: Some(PayloadFieldSchema::FieldType(schema)),
                    },
                ));
                shard.update(op).map_err(edge_err("create payload index"))?;
            }
            shard.flush().map_err(edge_err("flush"))?;
            shard
        };
        Ok(EdgeVectorStore {
            shard,
            marker: dir.join(OPTIMIZING_MARKER),
        })
    }

    fn filter(filter: &SearchFilter) -> Result<Option<Filter>, IndexError> {
        let mut must = Vec::new();
        let key = |name: &str| {
            name.parse()
                .map_err(|_| IndexError::internal("payload field name"))
        };
        if filter.from_ms.is_some() || filter.to_ms.is_some() {
            must.push(Condition::Field(FieldCondition::new_range(
                key("created_at")?,
                Range {
                    gte: filter.from_ms.map(|v| OrderedFloat(v as f64)),
                    lte: filter.to_ms.map(|v| OrderedFloat(v as f64)),
                    gt: None,
                    lt: None,
                },
            )));
        }
        let any = |field: &str, values: &[String]| -> Result<Condition, IndexError> {
            let should = values
                .iter()
                .map(|v| {
                    Ok(Condition::Field(FieldCondition::new_match(
                        key(field)?,
                        Match::new_value(ValueVariants::String(v.clone())),
                    )))
                })
                .collect::<Result<Vec<_>, IndexError>>()?;
            Ok(Condition::Filter(Filter {
                should: Some(should),
                min_should: None,
                must: None,
                must_not: None,
            }))
        };
        if !filter.authors.is_empty() {
            must.push(any("author", &filter.authors)?);
        }
        if !filter.sources.is_empty() {
            must.push(any("source", &filter.sources)?);
        }
        if !filter.langs.is_empty() {
            must.push(any("lang", &filter.langs)?);
        }
        let must_not = filter
            .exclude_authors
            .iter()
            .map(|a| {
                Ok(Condition::Field(FieldCondition::new_match(
                    key("author")?,
                    Match::new_value(ValueVariants::String(a.clone())),
                )))
            })
            .collect::<Result<Vec<_>, IndexError>>()?;
        if must.is_empty() && must_not.is_empty() {
            return Ok(None);
        }
        Ok(Some(Filter {
            should: None,
            min_should: None,
            must: (!must.is_empty()).then_some(must),
            must_not: (!must_not.is_empty()).then_some(must_not),
        }))
    }
}

impl VectorReader for EdgeVectorStore {
    fn search(
        &self,
        vector: &[f32],
        filter: &SearchFilter,
        limit: usize,
        exact: bool,
    ) -> Result<Vec<VectorHit>, IndexError> {
        let query = ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery {
            query: VectorInternal::Dense(vector.to_vec()),
            using: Some(VECTOR_NAME.into()),
        }));
        let mut builder = QueryRequestBuilder::new(limit)
            .query(query)
            .with_payload(WithPayloadInterface::Bool(true));
        if let Some(f) = Self::filter(filter)? {
            // Time-filtered HNSW loses recall on large shards; ACORN keeps it (QDRANT_EDGE.md).
            builder = builder.filter(f).params(if exact {
                SearchParams {
                    exact: true,
                    ..SearchParams::default()
                }
            } else {
                SearchParams {
                    acorn: Some(AcornSearchParams {
                        enable: true,
                        max_selectivity: None,
                    }),
                    ..SearchParams::default()
                }
            });
        }
        let hits = self
            .shard
            .query(builder.build())
            .map_err(edge_err("query"))?;
        Ok(hits
            .into_iter()
            .filter_map(|h| {
                let post_id = h.payload.as_ref()?.0.get("post_id")?.as_str()?.to_string();
                Some(VectorHit {
                    post_id,
                    score: h.score,
                })
            })
            .collect())
    }

    fn vector_of(&self, post_id: &str) -> Result<Option<Vec<f32>>, IndexError> {
        let mut request = RetrieveRequest::new(vec![point_id(post_id)?]);
        request.with_payload = Some(WithPayloadInterface::Bool(false));
        request.with_vector = Some(WithVector::Bool(true));
        let records = self.shard.retrieve(request).map_err(edge_err("retrieve"))?;
        let Some(record) = records.into_iter().next() else {
            return Ok(None);
        };
        Ok(record.vector.and_then(dense))
    }

    fn all_ids(&self) -> Result<Vec<StoredId>, IndexError> {
        let mut out = Vec::new();
        let mut offset = None;
        loop {
            let mut builder = ScrollRequestBuilder::new()
                .limit(10_000)
                .with_payload(WithPayloadInterface::Bool(true));
            if let Some(o) = offset {
                builder = builder.offset(o);
            }
            let (records, next) = self
                .shard
                .scroll(builder.build())
                .map_err(edge_err("scroll"))?;
            for r in records {
                let Some(payload) = r.payload else { continue };
                let h = payload.0.get("h").and_then(|v| v.as_i64());
                let id = payload.0.get("post_id").and_then(|v| v.as_str());
                if let (Some(h), Some(id)) = (h, id) {
                    out.push(StoredId {
                        id_hash: h as u64,
                        post_id: id.to_string(),
                        interim: is_interim(&payload.0),
                    });
                }
            }
            match next {
                Some(n) => offset = Some(n),
                None => break,
            }
        }
        Ok(out)
    }

    fn count(&self) -> Result<usize, IndexError> {
        let info = self.shard.info().map_err(edge_err("info"))?;
        Ok(info.points_count)
    }

    fn page(
        &self,
        offset: Option<String>,
        limit: usize,
    ) -> Result<(Vec<VectorPoint>, Option<String>), IndexError> {
        let mut builder = ScrollRequestBuilder::new()
            .limit(limit)
            .with_payload(WithPayloadInterface::Bool(true))
            .with_vector(WithVector::Bool(true));
        if let Some(o) = offset {
            let uuid = uuid::Uuid::parse_str(&o)
                .map_err(|e| IndexError::InvalidInput(format!("page offset `{o}`: {e}")))?;
            builder = builder.offset(PointId::Uuid(uuid));
        }
        let (records, next) = self
            .shard
            .scroll(builder.build())
            .map_err(edge_err("scroll"))?;
        let points = records
            .into_iter()
            .filter_map(|r| {
                let payload = r.payload?.0;
                let text = |key: &str| {
                    payload
                        .get(key)
                        .and_then(|v| v.as_str())
                        .map(str::to_string)
                };
                Some(VectorPoint {
                    post_id: text("post_id")?,
                    id_hash: payload.get("h")?.as_i64()? as u64,
                    created_at_ms: payload.get("created_at")?.as_i64()?,
                    author: text("author"),
                    source: text("source").unwrap_or_default(),
                    lang: text("lang"),
                    vector: dense(r.vector?)?,
                    interim: is_interim(&payload),
                })
            })
            .collect();
        let next = next.map(|id| match id {
            PointId::Uuid(u) => u.to_string(),
            PointId::NumId(n) => n.to_string(),
        });
        Ok((points, next))
    }

    fn backend(&self) -> &'static str {
        "edge"
    }
}

/// The payload key marking an interim vector (absent on the main embedder's own).
const INTERIM_KEY: &str = "i";

fn is_interim(
    payload: &qdrant_edge::external::serde_json::Map<
        String,
        qdrant_edge::external::serde_json::Value,
    >,
) -> bool {
    payload.get(INTERIM_KEY).and_then(|v| v.as_bool()) == Some(true)
}

/// The `text` vector of a stored point.
fn dense(vectors: qdrant_edge::VectorStructInternal) -> Option<Vec<f32>> {
    match vectors {
        qdrant_edge::VectorStructInternal::Named(map) => match map.get(VECTOR_NAME) {
            Some(VectorInternal::Dense(v)) => Some(v.clone()),
            _ => None,
        },
        qdrant_edge::VectorStructInternal::Single(v) => Some(v),
        _ => None,
    }
}

impl VectorStore for EdgeVectorStore {
    fn upsert(&self, points: Vec<VectorPoint>) -> Result<(), IndexError> {
        if points.is_empty() {
            return Ok(());
        }
        let mut batch = Vec::with_capacity(points.len());
        for p in points {
            let mut payload = json!({
                "post_id": p.post_id,
                "h": p.id_hash as i64,
                "created_at": p.created_at_ms,
                "author": p.author,
                "source": p.source,
                "lang": p.lang,
            });
            if p.interim {
                payload[INTERIM_KEY] = json!(true);
            }
            let id = point_id(&p.post_id)?;
            batch.push(
                PointStruct::new(id, Vectors::new_named([(VECTOR_NAME, p.vector)]), payload).into(),
            );
        }
        let op = UpdateOperation::PointOperation(PointOperations::UpsertPoints(
            PointInsertOperations::PointsList(batch),
        ));
        self.shard.update(op).map_err(edge_err("upsert"))?;
        self.shard.flush().map_err(edge_err("flush"))
    }

    fn delete(&self, post_ids: &[String]) -> Result<(), IndexError> {
        if post_ids.is_empty() {
            return Ok(());
        }
        let ids = post_ids
            .iter()
            .map(|p| point_id(p))
            .collect::<Result<Vec<_>, _>>()?;
        let op = UpdateOperation::PointOperation(PointOperations::DeletePoints { ids });
        self.shard.update(op).map_err(edge_err("delete"))?;
        self.shard.flush().map_err(edge_err("flush"))
    }

    fn delete_older_than(&self, cutoff_ms: i64) -> Result<(), IndexError> {
        let filter = Self::filter(&SearchFilter {
            to_ms: Some(cutoff_ms - 1),
            ..SearchFilter::default()
        })?
        .ok_or_else(|| IndexError::internal("retention filter is empty"))?;
        let op = UpdateOperation::PointOperation(PointOperations::DeletePointsByFilter(filter));
        self.shard.update(op).map_err(edge_err("delete by age"))?;
        self.shard.flush().map_err(edge_err("flush"))
    }

    fn optimize(&self) -> Result<(), IndexError> {
        // Written before and removed after: a build cut short by a stop leaves it behind.
        std::fs::write(&self.marker, b"")
            .map_err(|e| IndexError::internal(format!("write {}: {e}", self.marker.display())))?;
        self.shard.optimize().map_err(edge_err("optimize"))?;
        match std::fs::remove_file(&self.marker) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(IndexError::internal(format!(
                "remove {}: {e}",
                self.marker.display()
            ))),
        }
    }

    fn optimize_unfinished(&self) -> bool {
        self.marker.exists()
    }
}
