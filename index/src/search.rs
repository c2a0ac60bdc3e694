//! Hybrid search: BM25 and dense candidates under the same filters, relative score fusion,
//! recency decay, an engagement prior, near-duplicate collapse, top-k with a score breakdown.
//!
//! Fusion: each retriever's scores are normalised to [0, 1] over its own candidates (BM25 by its
//! best score, cosine by min–max) and averaged over the retrievers that ran. Unlike reciprocal
//! rank fusion this keeps *how much* better the best match is, so a post that clearly wins both
//! retrievers is not overtaken by a slightly fresher, barely relevant one once recency applies.

use crate::embed::Embedder;
pub use crate::filter::SearchFilter;
use crate::post::Post;
use crate::rerank::{
    features, relative_odds, relative_score, CandidateSet, IdfCache, QueryTerms, RetrievalSignals,
    ANSWERS_MODEL, FEATURES, MODEL,
};
use crate::text::{load_post, TextIndex, F_CREATED_AT, F_DUP_KEY, F_ID_HASH};
use crate::vectors::VectorReader;
use crate::IndexError;
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

/// An old post keeps this share of its score however old it is, so relevance still counts.
pub const RECENCY_FLOOR: f32 = 0.3;

/// Cosine similarity of two vectors (0 when either is zero or their lengths differ).
pub fn cosine_of(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    let (mut dot, mut na, mut nb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na <= 0.0 || nb <= 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

/// Recency multiplier for a post `age_ms` old: `floor + (1 - floor) · 2^(-age / half_life)`.
/// Posts from the future (relative to `as_of`) count as age 0.
pub fn recency_multiplier(age_ms: i64, half_life: Option<Duration>) -> f32 {
    match half_life {
        None => 1.0,
        Some(h) => {
            let h = h.as_millis().max(1) as f64;
            let age = age_ms.max(0) as f64;
            RECENCY_FLOOR + (1.0 - RECENCY_FLOOR) * (0.5f64.powf(age / h)) as f32
        }
    }
}

/// Mild prior: `1 + 0.05 · ln(1 + engagement)`.
pub fn engagement_multiplier(total: u64) -> f32 {
    1.0 + 0.05 * (1.0 + total as f32).ln()
}

/// Read-only search capability handed to `agent` and `api`.
#[derive(Clone)]
pub struct SearchHandle {
    pub(crate) text: TextIndex,
    pub(crate) vectors: Option<Arc<dyn VectorReader>>,
    pub(crate) embedder: Option<Arc<dyn Embedder>>,
}

/// Per candidate: relative odds, ranking logit, answerability probability.
/// Per candidate: odds of beating the best, logit, answerability, lacks the rarest term.
type LearnedScores = (Vec<f32>, Vec<f32>, Vec<f32>, Vec<bool>);

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
    pub fn has_vectors(&self) -> bool {
        self.vectors.is_some() && self.embedder.is_some()
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
                    match embedder.embed(vec![request.query.clone()]).await {
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
        let this = self.clone();
        let mut results = tokio::task::spawn_blocking(move || {
            this.search_blocking(&request, query_vector.as_deref())
        })
        .await
        .map_err(|e| IndexError::internal(format!("search task failed: {e}")))??;
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
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut hits: Vec<SearchHit> = Vec::new();
        let mut by_dup: HashMap<u64, usize> = HashMap::new();
        let mut pending_dups: Vec<(usize, DocAddress)> = Vec::new();
        for (addr, score, breakdown, dup_key) in scored {
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

    /// Final score of every candidate, with its breakdown and near-duplicate key. Posts the
    /// learned ranker had to read are left in `loaded`.
    fn score(
        &self,
        searcher: &Searcher,
        request: &SearchRequest,
        candidates: impl Iterator<Item = Candidate>,
        query_vector: Option<&[f32]>,
        loaded: &mut HashMap<DocAddress, Post>,
    ) -> Result<Vec<(DocAddress, f32, ScoreBreakdown, u64)>, IndexError> {
        let candidates: Vec<Candidate> = candidates.collect();
        let learned = if request.mode == SearchMode::Hybrid
            && request.ranker == Ranker::Learned
            && !request.query.trim().is_empty()
        {
            self.learned_scores(searcher, request, &candidates, query_vector, loaded)?
        } else {
            None
        };
        let bm25_max = candidates
            .iter()
            .filter_map(|c| c.bm25.map(|b| b.1))
            .fold(0.0f32, f32::max);
        let dense: Vec<f32> = candidates
            .iter()
            .filter_map(|c| c.dense.map(|d| d.1))
            .collect();
        let dense_min = dense.iter().copied().fold(f32::INFINITY, f32::min);
        let dense_max = dense.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let retrievers = (bm25_max > 0.0) as u8 + (!dense.is_empty()) as u8;
        let mut columns = HashMap::new();
        let mut out = Vec::new();
        for (i, c) in candidates.into_iter().enumerate() {
            let seg = c.addr.segment_ord;
            if let std::collections::hash_map::Entry::Vacant(e) = columns.entry(seg) {
                let ff = searcher.segment_reader(seg).fast_fields();
                e.insert((
                    ff.i64(F_CREATED_AT).map_err(IndexError::tantivy)?,
                    ff.u64(F_DUP_KEY).map_err(IndexError::tantivy)?,
                    ff.u64(crate::text::F_ENGAGEMENT)
                        .map_err(IndexError::tantivy)?,
                ));
            }
            let (created, dup, engagement) = &columns[&seg];
            let created_ms = created.first(c.addr.doc_id).unwrap_or(0);
            let dup_key = dup.first(c.addr.doc_id).unwrap_or(0);
            let engagement_total = engagement.first(c.addr.doc_id).unwrap_or(0);
            let (fused, rerank, answers, lacks_rarest) = match &learned {
                Some((odds, logits, answers, lacks)) => (
                    odds.get(i).copied().unwrap_or(0.0),
                    logits.get(i).copied(),
                    answers.get(i).copied(),
                    lacks.get(i).copied(),
                ),
                None => (
                    (c.bm25
                        .map_or(0.0, |(_, b)| relative_score(b, 0.0, bm25_max))
                        + c.dense
                            .map_or(0.0, |(_, d)| relative_score(d, dense_min, dense_max)))
                        / f32::from(retrievers.max(1)),
                    None,
                    None,
                    None,
                ),
            };
            let recency = recency_multiplier(request.as_of_ms - created_ms, request.half_life);
            let engagement = engagement_multiplier(engagement_total);
            let breakdown = ScoreBreakdown {
                bm25: c.bm25.map(|b| b.1),
                bm25_rank: c.bm25.map(|b| b.0),
                dense: c.dense.map(|d| d.1),
                dense_rank: c.dense.map(|d| d.0),
                fused,
                rerank,
                answers,
                lacks_rarest,
                recency,
                engagement,
            };
            out.push((c.addr, fused * recency * engagement, breakdown, dup_key));
        }
        Ok(out)
    }

    /// The learned ranker's relative odds, logits and answerability for `candidates` (in
    /// order), and whether each lacks the query's rarest known term; `None` when the query
    /// has no analyzable term.
    fn learned_scores(
        &self,
        searcher: &Searcher,
        request: &SearchRequest,
        candidates: &[Candidate],
        query_vector: Option<&[f32]>,
        loaded: &mut HashMap<DocAddress, Post>,
    ) -> Result<Option<LearnedScores>, IndexError> {
        let Some((rows, lacks)) =
            self.rerank_features(searcher, request, candidates, query_vector, loaded)?
        else {
            return Ok(None);
        };
        let logits: Vec<f32> = rows.iter().map(|f| MODEL.score(f)).collect();
        let answers = rows.iter().map(|f| ANSWERS_MODEL.probability(f)).collect();
        Ok(Some((relative_odds(&logits), logits, answers, lacks)))
    }

    /// The reranker's features of `candidates` (in order), and whether each lacks the query's
    /// rarest known term ([`QueryTerms::rarest_known`]); `None` when the query has no
    /// analyzable term. Reads each candidate post (kept in `loaded` for the hits) and, for
    /// candidates only BM25 found, their stored vectors to get the cosine.
    fn rerank_features(
        &self,
        searcher: &Searcher,
        request: &SearchRequest,
        candidates: &[Candidate],
        query_vector: Option<&[f32]>,
        loaded: &mut HashMap<DocAddress, Post>,
    ) -> Result<Option<(Vec<[f32; FEATURES]>, Vec<bool>)>, IndexError> {
        let field = self.text.fields.text;
        let mut idf = IdfCache::new(searcher.num_docs(), |t: &str| {
            searcher
                .doc_freq(&tantivy::Term::from_field_text(field, t))
                .unwrap_or(0)
        });
        let query = QueryTerms::new(&request.query, |t| idf.get(t));
        if query.is_empty() || candidates.is_empty() {
            return Ok(None);
        }
        let mut signals = Vec::with_capacity(candidates.len());
        for c in candidates {
            if let std::collections::hash_map::Entry::Vacant(e) = loaded.entry(c.addr) {
                e.insert(load_post(searcher, &self.text.fields, c.addr)?);
            }
            let mut cosine = c.dense.map(|d| d.1);
            if let (None, Some(q), Some(store), Some(post)) =
                (cosine, query_vector, &self.vectors, loaded.get(&c.addr))
            {
                // A post not embedded yet (or a store that fails) simply has no cosine.
                if let Ok(Some(v)) = store.vector_of(post.id.as_str()) {
                    cosine = Some(cosine_of(q, &v));
                }
            }
            signals.push(RetrievalSignals {
                bm25: c.bm25,
                dense_rank: c.dense.map(|d| d.0),
                cosine,
            });
        }
        let cosines: Vec<f32> = signals.iter().filter_map(|s| s.cosine).collect();
        let (cos_min, cos_max) = if cosines.is_empty() {
            (0.0, 0.0)
        } else {
            (
                cosines.iter().copied().fold(f32::INFINITY, f32::min),
                cosines.iter().copied().fold(f32::NEG_INFINITY, f32::max),
            )
        };
        let set = CandidateSet {
            bm25_max: candidates
                .iter()
                .filter_map(|c| c.bm25.map(|b| b.1))
                .fold(0.0f32, f32::max),
            cos_min,
            cos_max,
        };
        let rarest = query.rarest_known(crate::rerank::idf(0, searcher.num_docs()));
        let mut rows = Vec::with_capacity(candidates.len());
        let mut lacks = Vec::with_capacity(candidates.len());
        for (c, s) in candidates.iter().zip(&signals) {
            let post =
                crate::rerank::PostTerms::new(loaded.get(&c.addr).map_or("", |p| p.text.as_str()));
            rows.push(features(&query, &set, s, &post));
            lacks.push(rarest.is_some_and(|r| !post.holds(r)));
        }
        Ok(Some((rows, lacks)))
    }

    /// The learned ranker's features of every hybrid candidate of `request`, with each
    /// candidate's post id, in retrieval order (for training the ranker and inspecting it).
    pub fn candidate_features(
        &self,
        request: &SearchRequest,
        query_vector: Option<&[f32]>,
    ) -> Result<Vec<(String, [f32; FEATURES])>, IndexError> {
        let searcher = self.text.reader.searcher();
        let gathered = self.gather(&searcher, request, query_vector)?;
        let mut loaded = HashMap::new();
        let (rows, _) = self
            .rerank_features(
                &searcher,
                request,
                &gathered.candidates,
                query_vector,
                &mut loaded,
            )?
            .unwrap_or_default();
        Ok(gathered
            .candidates
            .iter()
            .zip(rows)
            .filter_map(|(c, f)| loaded.get(&c.addr).map(|p| (p.id.to_string(), f)))
            .collect())
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
