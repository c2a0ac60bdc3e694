//! Scoring hybrid candidates: relative score fusion or the learned ranker, times recency decay
//! and an engagement prior, with each hit's breakdown; and the reranker's features.

use super::{Candidate, Ranker, ScoreBreakdown, Scored, SearchHandle, SearchMode, SearchRequest};
use crate::post::Post;
use crate::rerank::{
    features, relative_odds, relative_score, CandidateSet, IdfCache, QueryTerms, RetrievalSignals,
    ANSWERS_MODEL, FEATURES, MODEL,
};
use crate::text::{load_post, F_CREATED_AT, F_DUP_KEY};
use crate::IndexError;
use std::collections::HashMap;
use std::time::Duration;
use tantivy::{DocAddress, Searcher};

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

/// Per candidate: relative odds, ranking logit, answerability probability.
/// Per candidate: odds of beating the best, logit, answerability, lacks the rarest term.
type LearnedScores = (Vec<f32>, Vec<f32>, Vec<f32>, Vec<bool>);

impl SearchHandle {
    /// Final score of every candidate, with its breakdown and near-duplicate key. Posts the
    /// learned ranker had to read are left in `loaded`.
    pub(super) fn score(
        &self,
        searcher: &Searcher,
        request: &SearchRequest,
        candidates: impl Iterator<Item = Candidate>,
        query_vector: Option<&[f32]>,
        loaded: &mut HashMap<DocAddress, Post>,
    ) -> Result<Vec<Scored>, IndexError> {
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
                    ff.u64(crate::text::F_ID_HASH)
                        .map_err(IndexError::tantivy)?,
                ));
            }
            let (created, dup, engagement, ids) = &columns[&seg];
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
            out.push(Scored {
                addr: c.addr,
                score: fused * recency * engagement,
                breakdown,
                dup_key,
                created_ms,
                id_hash: ids.first(c.addr.doc_id).unwrap_or(0),
            });
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
}
