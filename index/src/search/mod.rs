//! Hybrid search: BM25 and dense candidates under the same filters, relative score fusion,
//! recency decay, an engagement prior, near-duplicate collapse, top-k with a score breakdown.
//!
//! Fusion: each retriever's scores are normalised to [0, 1] over its own candidates (BM25 by its
//! best score, cosine by min–max) and averaged over the retrievers that ran. Unlike reciprocal
//! rank fusion this keeps *how much* better the best match is, so a post that clearly wins both
//! retrievers is not overtaken by a slightly fresher, barely relevant one once recency applies.
//!
//! This file gathers candidates and assembles hits; `score` scores them.

mod score;

use crate::embed::Embedder;
pub use crate::filter::SearchFilter;
use crate::post::Post;
use crate::text::{load_post, TextIndex, F_ID_HASH};
use crate::vectors::VectorReader;
use crate::IndexError;
pub use score::{cosine_of, engagement_multiplier, recency_multiplier, RECENCY_FLOOR};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tantivy::collector::DocSetCollector;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::IndexRecordOption;
use tantivy::{DocAddress, Searcher};

/// Which retrievers take part.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SearchMode {
    #[default]
    Hybrid,
    Text,
    Vector,
}

/// How hybrid candidates are ordered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Ranker {
    /// The learned reranker over BM25, dense and term-match features ([`crate::rerank`]).
    #[default]
    Learned,
    /// Relative score fusion of BM25 and dense alone (the baseline the reranker is measured
    /// against).
    Fusion,
}

/// A resolved search: times are absolute, the caller already parsed user input.
#[derive(Clone, Debug)]
pub struct SearchRequest {
    pub query: String,
    /// The text the dense half embeds when it differs from `query` (the agent sends the
    /// question as asked here and its topic words as `query`); `None` embeds `query`. The
    /// dense half runs only when `query` has words.
    pub semantic_query: Option<String>,
    pub filter: SearchFilter,
    /// "Now" for recency decay, Unix milliseconds.
    pub as_of_ms: i64,
    /// Half-life of the recency decay; `None` turns decay off.
    pub half_life: Option<Duration>,
    pub limit: usize,
    pub mode: SearchMode,
    /// Collapse near-duplicates (retweets, reposts, copies) into their best-scoring member.
    pub collapse_duplicates: bool,
    /// How hybrid candidates are ordered (text-only and vector-only searches ignore it).
    pub ranker: Ranker,
}

impl SearchRequest {
    pub fn new(query: impl Into<String>, as_of_ms: i64) -> SearchRequest {
        SearchRequest {
            query: query.into(),
            semantic_query: None,
            filter: SearchFilter::default(),
            as_of_ms,
            half_life: None,
            limit: 10,
            mode: SearchMode::Hybrid,
            collapse_duplicates: true,
            ranker: Ranker::default(),
        }
    }
}

/// How a hit's final score came about.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScoreBreakdown {
    pub bm25: Option<f32>,
    pub bm25_rank: Option<usize>,
    pub dense: Option<f32>,
    pub dense_rank: Option<usize>,
    /// Relevance in [0, 1] before the multipliers: relative score fusion, or with the learned
    /// ranker the odds that this post beats the best candidate.
    pub fused: f32,
    /// The learned ranker's logit, when it ranked this search.
    pub rerank: Option<f32>,
    /// With the learned ranker: the probability that this post is one the question was asked
    /// about (the answerability model of [`crate::rerank`]).
    pub answers: Option<f32>,
    /// With the learned ranker: whether the post lacks the query's rarest term that some post
    /// holds (by IDF) — a name typed in lower case ("mayci breaux"), a place — which other
    /// words cannot stand in for.
    pub lacks_rarest: Option<bool>,
    /// Recency multiplier in [RECENCY_FLOOR, 1].
    pub recency: f32,
    /// Engagement multiplier ≥ 1.
    pub engagement: f32,
}

#[derive(Clone, Debug)]
pub struct SearchHit {
    pub post: Post,
    pub score: f32,
    pub breakdown: ScoreBreakdown,
    /// Ids of near-duplicates collapsed into this hit.
    pub duplicates: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct SearchResults {
    pub hits: Vec<SearchHit>,
    pub bm25_candidates: usize,
    pub dense_candidates: usize,
    /// Set when the dense half could not answer and results are BM25 only.
    pub degraded: Option<String>,
    pub took: Duration,
}

/// A filter that keeps at most this many posts is searched by an exact scan of those points
/// rather than the filtered HNSW graph: at 1M posts a 24 h window (~34k) took p50 ~30 ms through
/// the graph with ACORN.
const EXACT_SCAN_MAX_POSTS: usize = 50_000;

/// Read-only search capability handed to `agent` and `api`.
#[derive(Clone)]
pub struct SearchHandle {
    pub(crate) text: TextIndex,
    pub(crate) vectors: Option<Arc<dyn VectorReader>>,
    pub(crate) embedder: Option<Arc<dyn Embedder>>,
}

struct Gathered {
    candidates: Vec<Candidate>,
    bm25_count: usize,
    dense_count: usize,
    degraded: Option<String>,
}

struct Candidate {
    addr: DocAddress,
    bm25: Option<(usize, f32)>,
    dense: Option<(usize, f32)>,
}

/// A candidate's final score, with what ranking and collapsing need.
struct Scored {
    addr: DocAddress,
    score: f32,
    breakdown: ScoreBreakdown,
    /// Near-duplicate key: posts that share it collapse into one hit.
    dup_key: u64,
    created_ms: i64,
    /// The post id's hash: the last tie-break, a fact of the post (its doc address is not).
    id_hash: u64,
}

impl SearchHandle {
    /// Number of live posts in the text index (as of the last commit).
    pub fn num_posts(&self) -> u64 {
        self.text.reader.searcher().num_docs()
    }

    /// The vector index, read-only, when the dense half is configured.
    pub fn vectors(&self) -> Option<Arc<dyn VectorReader>> {
        self.vectors.clone()
    }

    /// Whether the dense half is configured.
    /// The name of the embedder that makes the vectors (`None` without a dense half).
    pub fn embedder_name(&self) -> Option<&str> {
        self.embedder.as_deref().map(|e| e.name())
    }

    pub fn has_vectors(&self) -> bool {
        self.vectors.is_some() && self.embedder.is_some()
    }

    /// The vector store's kind (`edge`, `qdrant`) and whether it answers now (`None` without a
    /// dense half). Blocks on a server store's ping: call it off the async threads.
    pub fn vector_health(&self) -> Option<(&'static str, Result<(), IndexError>)> {
        let store = self.vectors.as_ref()?;
        Some((store.backend(), store.health()))
    }

    /// Fetches one post by id.
    pub fn get(&self, id: &crate::PostId) -> Result<Option<Post>, IndexError> {
        self.text.get(&self.text.reader.searcher(), id)
    }

    /// Runs a search. The query embedding is awaited; index work runs on a blocking thread.
    pub async fn search(&self, request: SearchRequest) -> Result<SearchResults, IndexError> {
        let started = Instant::now();
        if request.limit == 0 {
            return Err(IndexError::InvalidInput("limit must be at least 1".into()));
        }
        let mut degraded = None;
        let mut query_vector = None;
        let wants_dense = request.mode != SearchMode::Text && !request.query.trim().is_empty();
        if wants_dense {
            match (&self.embedder, &self.vectors) {
                (Some(embedder), Some(_)) => {
                    let text = request.semantic_query.as_ref().unwrap_or(&request.query);
                    match embedder.embed(vec![text.clone()]).await {
                        Ok(mut v) => query_vector = v.pop(),
                        Err(e) if request.mode == SearchMode::Hybrid => {
                            degraded = Some(format!("dense search skipped: {e}"))
                        }
                        Err(e) => return Err(e),
                    }
                }
                _ if request.mode == SearchMode::Vector => {
                    return Err(IndexError::Unavailable(
                        "vector search is not configured on this server".into(),
                    ))
                }
                _ => degraded = Some("dense search is not configured; BM25 only".into()),
            }
        }
        // The search blocks (tantivy, stored posts) for a fraction of a millisecond. On a
        // multi-threaded runtime it runs in place (`block_in_place` hands this worker's other
        // tasks to another thread), which spares a request the two thread wake-ups of a hop
        // to the blocking pool (p50 0.37 → see BENCHMARKS.md); elsewhere it takes the hop.
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let mut results = if multi_thread {
            tokio::task::block_in_place(|| self.search_blocking(&request, query_vector.as_deref()))?
        } else {
            let this = self.clone();
            tokio::task::spawn_blocking(move || {
                this.search_blocking(&request, query_vector.as_deref())
            })
            .await
            .map_err(|e| IndexError::internal(format!("search task failed: {e}")))??
        };
        if results.degraded.is_none() {
            results.degraded = degraded;
        }
        results.took = started.elapsed();
        Ok(results)
    }

    /// The synchronous part of [`Self::search`], given the query vector (if any).
    pub fn search_blocking(
        &self,
        request: &SearchRequest,
        query_vector: Option<&[f32]>,
    ) -> Result<SearchResults, IndexError> {
        let started = Instant::now();
        let searcher = self.text.reader.searcher();
        let Gathered {
            candidates,
            bm25_count,
            dense_count,
            degraded,
        } = self.gather(&searcher, request, query_vector)?;
        let mut loaded: HashMap<DocAddress, Post> = HashMap::new();
        let mut scored = self.score(
            &searcher,
            request,
            candidates.into_iter(),
            query_vector,
            &mut loaded,
        )?;
        // Equal scores are common (BM25 of short posts: field norms are stored in 256 steps), and
        // tantivy breaks them by where a post sits in the segments, which merges, restarts and
        // the indexing threads change: the newer post comes first, then the lower id hash, so a
        // search answers the same before and after a restart, and on every replica.
        scored.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(b.created_ms.cmp(&a.created_ms))
                .then(a.id_hash.cmp(&b.id_hash))
                .then(a.addr.cmp(&b.addr))
        });
        let mut hits: Vec<SearchHit> = Vec::new();
        let mut by_dup: HashMap<u64, usize> = HashMap::new();
        let mut pending_dups: Vec<(usize, DocAddress)> = Vec::new();
        for Scored {
            addr,
            score,
            breakdown,
            dup_key,
            ..
        } in scored
        {
            if request.collapse_duplicates {
                if let Some(&i) = by_dup.get(&dup_key) {
                    pending_dups.push((i, addr));
                    continue;
                }
            }
            if hits.len() == request.limit {
                continue;
            }
            let post = match loaded.remove(&addr) {
                Some(post) => post,
                None => load_post(&searcher, &self.text.fields, addr)?,
            };
            by_dup.insert(dup_key, hits.len());
            hits.push(SearchHit {
                post,
                score,
                breakdown,
                duplicates: Vec::new(),
            });
        }
        for (i, addr) in pending_dups {
            if let Some(hit) = hits.get_mut(i) {
                if hit.duplicates.len() < 20 {
                    hit.duplicates.push(
                        load_post(&searcher, &self.text.fields, addr)?
                            .id
                            .to_string(),
                    );
                }
            }
        }
        Ok(SearchResults {
            hits,
            bm25_candidates: bm25_count,
            dense_candidates: dense_count,
            degraded,
            took: started.elapsed(),
        })
    }

    /// BM25 and dense candidates of `request`, merged by post, in a stable order (BM25 rank,
    /// then dense rank).
    fn gather(
        &self,
        searcher: &Searcher,
        request: &SearchRequest,
        query_vector: Option<&[f32]>,
    ) -> Result<Gathered, IndexError> {
        // Collapsing needs more raw candidates than hits: retweet floods collapse to one.
        let pool = (request.limit * 5).clamp(50, 1000);
        let mut candidates: HashMap<DocAddress, Candidate> = HashMap::new();
        let mut bm25_count = 0;
        if request.mode != SearchMode::Vector {
            let hits = self
                .text
                .bm25(searcher, &request.query, &request.filter, pool)?;
            bm25_count = hits.len();
            for (rank, (score, addr)) in hits.into_iter().enumerate() {
                candidates.insert(
                    addr,
                    Candidate {
                        addr,
                        bm25: Some((rank + 1, score)),
                        dense: None,
                    },
                );
            }
        }
        let mut dense_count = 0;
        let mut degraded = None;
        if let (Some(vector), Some(store)) = (query_vector, &self.vectors) {
            let exact = self
                .filtered_count(searcher, &request.filter)?
                .is_some_and(|n| n <= EXACT_SCAN_MAX_POSTS);
            match store.search(vector, &request.filter, pool, exact) {
                Ok(hits) => {
                    dense_count = hits.len();
                    let addrs =
                        self.addresses_of(searcher, hits.iter().map(|h| h.post_id.as_str()))?;
                    for (rank, hit) in hits.iter().enumerate() {
                        let Some(&addr) = addrs.get(&hit.post_id) else {
                            continue;
                        };
                        candidates
                            .entry(addr)
                            .or_insert(Candidate {
                                addr,
                                bm25: None,
                                dense: None,
                            })
                            .dense = Some((rank + 1, hit.score));
                    }
                }
                Err(e) if request.mode == SearchMode::Hybrid => {
                    degraded = Some(format!("dense search failed: {e}"))
                }
                Err(e) => return Err(e),
            }
        }
        let mut candidates: Vec<Candidate> = candidates.into_values().collect();
        candidates.sort_by_key(|c| {
            (
                c.bm25.map_or(usize::MAX, |b| b.0),
                c.dense.map_or(usize::MAX, |d| d.0),
            )
        });
        Ok(Gathered {
            candidates,
            bm25_count,
            dense_count,
            degraded,
        })
    }

    /// How many live posts pass `filter` (`None` without any filter), counted in tantivy.
    fn filtered_count(
        &self,
        searcher: &Searcher,
        filter: &SearchFilter,
    ) -> Result<Option<usize>, IndexError> {
        let mut clauses = self.text.filter_clauses(filter);
        if clauses.is_empty() {
            return Ok(None);
        }
        clauses.push((Occur::Must, Box::new(tantivy::query::AllQuery)));
        searcher
            .search(&BooleanQuery::new(clauses), &tantivy::collector::Count)
            .map(Some)
            .map_err(IndexError::tantivy)
    }

    /// Doc addresses of live posts with the given ids, in one index pass.
    fn addresses_of<'a>(
        &self,
        searcher: &Searcher,
        ids: impl Iterator<Item = &'a str>,
    ) -> Result<HashMap<String, DocAddress>, IndexError> {
        let mut by_hash = HashMap::new();
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for id in ids {
            let Ok(post_id) = crate::PostId::parse(id) else {
                continue;
            };
            by_hash.insert(post_id.hash64(), id.to_string());
            clauses.push((
                Occur::Should,
                Box::new(TermQuery::new(
                    self.text.id_term(&post_id),
                    IndexRecordOption::Basic,
                )),
            ));
        }
        if clauses.is_empty() {
            return Ok(HashMap::new());
        }
        let docs = searcher
            .search(&BooleanQuery::new(clauses), &DocSetCollector)
            .map_err(IndexError::tantivy)?;
        let mut out = HashMap::new();
        for addr in docs {
            let ids = searcher
                .segment_reader(addr.segment_ord)
                .fast_fields()
                .u64(F_ID_HASH)
                .map_err(IndexError::tantivy)?;
            if let Some(id) = ids.first(addr.doc_id).and_then(|h| by_hash.get(&h)) {
                out.insert(id.clone(), addr);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rerank::relative_score;
    use proptest::prelude::*;

    #[test]
    fn recency_halves_at_half_life() {
        let h = Some(Duration::from_secs(3600));
        assert_eq!(recency_multiplier(0, h), 1.0);
        let half = recency_multiplier(3_600_000, h);
        assert!((half - (RECENCY_FLOOR + (1.0 - RECENCY_FLOOR) * 0.5)).abs() < 1e-6);
        assert_eq!(recency_multiplier(123, None), 1.0);
        assert_eq!(
            recency_multiplier(-5_000, h),
            1.0,
            "future posts are not boosted past 1"
        );
    }

    proptest! {
        #[test]
        fn relative_score_is_monotonic_and_bounded(a in -10.0f32..10.0, b in -10.0f32..10.0, lo in -5.0f32..0.0, hi in 0.1f32..5.0) {
            let (ra, rb) = (relative_score(a, lo, hi), relative_score(b, lo, hi));
            prop_assert!((0.0..=1.0).contains(&ra));
            if a <= b { prop_assert!(ra <= rb); }
            prop_assert_eq!(relative_score(hi, lo, hi), 1.0);
        }

        #[test]
        fn recency_is_bounded_and_decreasing(age1 in 0i64..10_000_000_000, age2 in 0i64..10_000_000_000, h in 1u64..1_000_000) {
            let half = Some(Duration::from_secs(h));
            let (m1, m2) = (recency_multiplier(age1, half), recency_multiplier(age2, half));
            prop_assert!((RECENCY_FLOOR..=1.0).contains(&m1));
            if age1 <= age2 { prop_assert!(m1 >= m2); }
        }
    }
}
