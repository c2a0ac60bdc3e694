//! Learned reranking of hybrid candidates.
//!
//! BM25 and the dense retriever each bring their candidates (see [`crate::search`]); relative
//! score fusion alone ranks them no better than BM25 on questions (TweetQA R@1 0.57 against
//! 0.55), because a question shares its filler words with many posts and the dense cosine of a
//! short question is flat. The reranker scores every candidate from features that say how well
//! the post answers the *words that matter* in the question:
//!
//! | # | feature | what it measures |
//! |---|---|---|
//! | 0 | `bm25_rel` | BM25 score / the best BM25 score among candidates (0 when BM25 did not find it) |
//! | 1 | `dense_rel` | cosine, min–max over the candidates |
//! | 2 | `dense_cos` | raw cosine of the query and post embeddings |
//! | 3 | `bm25_rr` | 1 / BM25 rank (0 when absent) |
//! | 4 | `dense_rr` | 1 / dense rank (0 when absent) |
//! | 5 | `idf_coverage` | share of the query's IDF mass whose terms the post holds |
//! | 6 | `rare_coverage` | share of the query's three rarest terms the post holds |
//! | 7 | `bigram` | share of the query's adjacent term pairs (IDF-weighted) adjacent in the post |
//! | 8 | `numbers` | share of the query's numbers the post holds (0 when it has none) |
//! | 9 | `missing_rare` | IDF of the rarest query term the post lacks / the query's top IDF |
//! | 10 | `length` | ln(1 + terms in the post) / 5 |
//! | 11 | `coverage_x_cos` | `idf_coverage · dense_cos` |
//!
//! The model is linear in these features, trained pairwise (logistic loss on "gold post above
//! another candidate of the same question") by `tidings-tools eval --train-reranker` on one
//! half of the public TweetQA questions (split by a hash of the gold post id); the other half
//! and the CrisisLex topics are never trained on and are what the figures report. A candidate's
//! fused score is `exp(z − z_best)`: the odds, under the model, that it beats the best candidate,
//! so the best is 1 and recency and engagement multiply it as they multiply plain fusion.

use crate::analyzer::social_analyzer;
use std::collections::{HashMap, HashSet};

/// Number of features per candidate.
pub const FEATURES: usize = 12;

/// Feature names, in order (for printing trained weights and score breakdowns).
pub const FEATURE_NAMES: [&str; FEATURES] = [
    "bm25_rel",
    "dense_rel",
    "dense_cos",
    "bm25_rr",
    "dense_rr",
    "idf_coverage",
    "rare_coverage",
    "bigram",
    "numbers",
    "missing_rare",
    "length",
    "coverage_x_cos",
];

/// A linear model over [`FEATURES`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinearModel {
    pub weights: [f32; FEATURES],
    pub bias: f32,
}

impl LinearModel {
    /// The model's score: a logit. For the ranking model only differences between candidates
    /// of one query matter; for the answerability model it is the log-odds that the post is
    /// the one the question was written about.
    pub fn score(&self, features: &[f32; FEATURES]) -> f32 {
        self.bias
            + self
                .weights
                .iter()
                .zip(features)
                .map(|(w, x)| w * x)
                .sum::<f32>()
    }

    /// `score` as a probability.
    pub fn probability(&self, features: &[f32; FEATURES]) -> f32 {
        1.0 / (1.0 + (-self.score(features)).exp())
    }
}

/// The shipped model: trained by `tidings-tools eval --train-reranker` on the train half of the
/// public TweetQA questions, 2026-12-07, on the agent's search (topic words for BM25, the
/// question as asked for the dense half) over an index whose filters no longer add to BM25.
/// Held-out half: R@1 0.632, R@10 0.780, against BM25's 0.526 / 0.667; see BENCHMARKS.md.
/// `length` weighs much because TweetQA questions were written from full tweets. The candidate
/// pool holds the gold post for ~0.82 of the questions; a pool of 100 or 200 holds it for 0.85 /
/// 0.87, but a model trained on it ranks no better in the top 10 (0.783 / 0.779 held-out).
pub const MODEL: LinearModel = LinearModel {
    weights: [
        0.5449,  // bm25_rel
        2.8119,  // dense_rel
        2.6089,  // dense_cos
        1.3894,  // bm25_rr
        1.5496,  // dense_rr
        1.7731,  // idf_coverage
        1.3576,  // rare_coverage
        1.4489,  // bigram
        0.4218,  // numbers
        -1.3530, // missing_rare
        6.4070,  // length
        1.6767,  // coverage_x_cos
    ],
    bias: 0.0,
};

/// The answerability model: pointwise logistic regression on the same features ("is this the
/// post the question was written about?"), trained on the same half. A search hit carries its
/// probability ([`crate::ScoreBreakdown::answers`]); the agent declines to answer from posts
/// below [`ANSWERS_THRESHOLD`].
pub const ANSWERS_MODEL: LinearModel = LinearModel {
    weights: [
        -0.4140, // bm25_rel
        -1.1268, // dense_rel
        -1.1157, // dense_cos
        3.9758,  // bm25_rr
        3.9833,  // dense_rr
        -0.4258, // idf_coverage
        -0.3220, // rare_coverage
        1.1542,  // bigram
        0.2702,  // numbers
        -2.0601, // missing_rare
        -1.7503, // length
        1.7119,  // coverage_x_cos
    ],
    bias: -1.9997,
};

/// The answerability probability below which a post is not taken to address the question.
/// Chosen on the train half (2026-12-07): with the gold post present the best candidate
/// reaches it for 0.901 of the questions, with it removed 0.689 of them fall below it (held-out
/// half: 0.906 / 0.650); 0.2 would decline 0.83 but lose 0.25 of the answerable ones.
pub const ANSWERS_THRESHOLD: f32 = 0.1;

/// A question-level answerability model measured beside [`ANSWERS_MODEL`], not used by the
/// agent: the best candidate's ranker logit and its lead over the runner-up, capped here. See
/// [`train_answerable`] and BENCHMARKS.md ("Answerability from the ranker's lead").
pub const ANSWERABLE_MARGIN_CAP: f32 = 5.0;

/// What a candidate brought from the retrievers.
#[derive(Clone, Copy, Debug, Default)]
pub struct RetrievalSignals {
    /// BM25 rank (1-based) and score.
    pub bm25: Option<(usize, f32)>,
    /// Dense rank (1-based) when the dense retriever found it.
    pub dense_rank: Option<usize>,
    /// Cosine of the query and the post, when known (from the dense retriever or the store).
    pub cosine: Option<f32>,
}

/// The query side of the features, computed once per search.
#[derive(Clone, Debug, Default)]
pub struct QueryTerms {
    /// Analyzed terms in query order (de-duplicated), with their IDF.
    terms: Vec<(String, f32)>,
    /// Adjacent pairs of analyzed terms (by position) in the query, each weighted by the
    /// smaller IDF of its two terms (so "when did" counts little, "boston marathon" much).
    bigrams: Vec<((String, String), f32)>,
    /// Analyzed terms that hold a digit.
    numbers: Vec<String>,
    /// The three rarest terms.
    rare: Vec<String>,
    idf_total: f32,
    idf_max: f32,
}

/// Analyzed tokens of `text` with their positions (hashtags give two tokens at one position).
fn tokens(text: &str) -> Vec<(usize, String)> {
    let mut analyzer = social_analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut out = Vec::new();
    while let Some(token) = stream.next() {
        out.push((token.position, token.text.clone()));
    }
    out
}

/// Adjacent pairs of tokens: every token at position p with every token at position p + 1.
fn adjacent_pairs(tokens: &[(usize, String)]) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for (i, (p, a)) in tokens.iter().enumerate() {
        for (q, b) in tokens.iter().skip(i + 1) {
            if *q == p + 1 {
                pairs.push((a.clone(), b.clone()));
            } else if *q > p + 1 {
                break;
            }
        }
    }
    pairs
}

impl QueryTerms {
    /// Analyzes `query`; `idf` gives each term's inverse document frequency.
    pub fn new(query: &str, mut idf: impl FnMut(&str) -> f32) -> QueryTerms {
        let toks = tokens(query);
        let mut seen = HashSet::new();
        let mut terms = Vec::new();
        for (_, t) in &toks {
            if seen.insert(t.clone()) {
                let w = idf(t).max(0.0);
                terms.push((t.clone(), w));
            }
        }
        let weight = |t: &str| terms.iter().find(|(u, _)| u == t).map_or(0.0, |(_, w)| *w);
        let bigrams = adjacent_pairs(&toks)
            .into_iter()
            .map(|(a, b)| {
                let w = weight(&a).min(weight(&b));
                ((a, b), w)
            })
            .collect();
        let numbers = terms
            .iter()
            .filter(|(t, _)| t.chars().any(|c| c.is_ascii_digit()))
            .map(|(t, _)| t.clone())
            .collect();
        let mut by_rarity: Vec<&(String, f32)> = terms.iter().collect();
        by_rarity.sort_by(|a, b| b.1.total_cmp(&a.1));
        let rare = by_rarity.iter().take(3).map(|(t, _)| t.clone()).collect();
        let idf_total = terms.iter().map(|(_, w)| w).sum();
        let idf_max = terms.iter().map(|(_, w)| *w).fold(0.0f32, f32::max);
        QueryTerms {
            terms,
            bigrams,
            numbers,
            rare,
            idf_total,
            idf_max,
        }
    }

    /// Whether the query has any term at all.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The analyzed terms, in query order.
    pub fn terms(&self) -> impl Iterator<Item = &str> {
        self.terms.iter().map(|(t, _)| t.as_str())
    }

    /// The query's rarest term (highest IDF) among those some post holds; `unseen_idf` is the
    /// IDF of a term in no post ([`idf`] of 0). A term no post holds (a misspelling, a word
    /// nobody used) tells no post from another, so it is never the rarest.
    pub fn rarest_known(&self, unseen_idf: f32) -> Option<&str> {
        self.terms
            .iter()
            .filter(|(_, w)| *w < unseen_idf - 1e-4)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(t, _)| t.as_str())
    }
}

/// A post's text analyzed as the index analyzes posts, once for its features and its term
/// checks.
#[derive(Clone, Debug, Default)]
pub struct PostTerms {
    count: usize,
    held: HashSet<String>,
    pairs: HashSet<(String, String)>,
}

impl PostTerms {
    pub fn new(text: &str) -> PostTerms {
        let toks = tokens(text);
        PostTerms {
            count: toks.len(),
            pairs: adjacent_pairs(&toks).into_iter().collect(),
            held: toks.into_iter().map(|(_, t)| t).collect(),
        }
    }

    /// Whether the post holds the analyzed `term`.
    pub fn holds(&self, term: &str) -> bool {
        self.held.contains(term)
    }
}

/// Candidate-set statistics the relative features need.
#[derive(Clone, Copy, Debug)]
pub struct CandidateSet {
    pub bm25_max: f32,
    pub cos_min: f32,
    pub cos_max: f32,
}

/// The features of one candidate post.
pub fn features(
    query: &QueryTerms,
    set: &CandidateSet,
    signals: &RetrievalSignals,
    post: &PostTerms,
) -> [f32; FEATURES] {
    let held = &post.held;
    let pairs = &post.pairs;
    let share = |hit: usize, of: usize| if of == 0 { 0.0 } else { hit as f32 / of as f32 };

    let bm25_rel = signals.bm25.map_or(0.0, |(_, s)| {
        if set.bm25_max > 0.0 {
            (s / set.bm25_max).clamp(0.0, 1.0)
        } else {
            0.0
        }
    });
    let cos = signals.cosine.unwrap_or(set.cos_min);
    let dense_rel = relative_score(cos, set.cos_min, set.cos_max);
    let bm25_rr = signals.bm25.map_or(0.0, |(r, _)| 1.0 / r.max(1) as f32);
    let dense_rr = signals.dense_rank.map_or(0.0, |r| 1.0 / r.max(1) as f32);
    let matched_idf: f32 = query
        .terms
        .iter()
        .filter(|(t, _)| held.contains(t.as_str()))
        .map(|(_, w)| w)
        .sum();
    let idf_coverage = if query.idf_total > 0.0 {
        matched_idf / query.idf_total
    } else {
        0.0
    };
    let rare_coverage = share(
        query
            .rare
            .iter()
            .filter(|t| held.contains(t.as_str()))
            .count(),
        query.rare.len(),
    );
    let bigram_total: f32 = query.bigrams.iter().map(|(_, w)| w).sum();
    let bigram = if bigram_total > 0.0 {
        query
            .bigrams
            .iter()
            .filter(|(p, _)| pairs.contains(p))
            .map(|(_, w)| w)
            .sum::<f32>()
            / bigram_total
    } else {
        0.0
    };
    let numbers = share(
        query
            .numbers
            .iter()
            .filter(|t| held.contains(t.as_str()))
            .count(),
        query.numbers.len(),
    );
    let missing = query
        .terms
        .iter()
        .filter(|(t, _)| !held.contains(t.as_str()))
        .map(|(_, w)| *w)
        .fold(0.0f32, f32::max);
    let missing_rare = if query.idf_max > 0.0 {
        missing / query.idf_max
    } else {
        0.0
    };
    let length = (1.0 + post.count as f32).ln() / 5.0;
    [
        bm25_rel,
        dense_rel,
        cos,
        bm25_rr,
        dense_rr,
        idf_coverage,
        rare_coverage,
        bigram,
        numbers,
        missing_rare,
        length,
        idf_coverage * cos,
    ]
}

/// `score` normalised to [0, 1] between `min` and `max` (1 when they coincide).
pub fn relative_score(score: f32, min: f32, max: f32) -> f32 {
    if max - min <= f32::EPSILON {
        1.0
    } else {
        ((score - min) / (max - min)).clamp(0.0, 1.0)
    }
}

/// One training query: its candidates' features and which of them are gold.
#[derive(Clone, Debug, Default)]
pub struct TrainingGroup {
    pub candidates: Vec<[f32; FEATURES]>,
    pub gold: Vec<bool>,
}

/// Minimises the mean logistic loss `ln(1 + e^(−y·(w·x + b)))` over `rows` (label `y` ±1) with
/// L2 regularisation, by full-batch Adam. Deterministic.
fn fit_logistic(
    rows: &[([f32; FEATURES], f64)],
    epochs: usize,
    l2: f32,
    with_bias: bool,
) -> LinearModel {
    const P: usize = FEATURES + 1;
    let mut w = [0.0f64; P];
    let (mut m, mut v) = ([0.0f64; P], [0.0f64; P]);
    let (lr, b1, b2, eps) = (0.05f64, 0.9f64, 0.999f64, 1e-8f64);
    let n = rows.len().max(1) as f64;
    for epoch in 1..=epochs {
        let mut grad = [0.0f64; P];
        for (x, y) in rows {
            let mut z = if with_bias { w[FEATURES] } else { 0.0 };
            for (k, xk) in x.iter().enumerate() {
                z += w[k] * f64::from(*xk);
            }
            // d/dz of ln(1 + e^(−y·z)) = −y / (1 + e^(y·z))
            let g = -y / (1.0 + (y * z).exp());
            for (k, xk) in x.iter().enumerate() {
                grad[k] += g * f64::from(*xk) / n;
            }
            if with_bias {
                grad[FEATURES] += g / n;
            }
        }
        for k in 0..P {
            if k < FEATURES {
                grad[k] += f64::from(l2) * w[k];
            }
            m[k] = b1 * m[k] + (1.0 - b1) * grad[k];
            v[k] = b2 * v[k] + (1.0 - b2) * grad[k] * grad[k];
            let mh = m[k] / (1.0 - b1.powi(epoch as i32));
            let vh = v[k] / (1.0 - b2.powi(epoch as i32));
            w[k] -= lr * mh / (vh.sqrt() + eps);
        }
    }
    let mut weights = [0.0f32; FEATURES];
    for (o, x) in weights.iter_mut().zip(w) {
        *o = x as f32;
    }
    LinearModel {
        weights,
        bias: if with_bias { w[FEATURES] as f32 } else { 0.0 },
    }
}

/// Trains the ranking [`LinearModel`] with pairwise logistic loss: every gold candidate against
/// every other candidate of its query. Groups without a gold candidate (or with only gold)
/// teach nothing. Deterministic.
pub fn train(groups: &[TrainingGroup], epochs: usize, l2: f32) -> LinearModel {
    let mut diffs: Vec<([f32; FEATURES], f64)> = Vec::new();
    for g in groups {
        for (gi, gold) in g.candidates.iter().zip(&g.gold) {
            if !gold {
                continue;
            }
            for (oi, other) in g.candidates.iter().zip(&g.gold) {
                if *other {
                    continue;
                }
                let mut d = [0.0f32; FEATURES];
                for (k, v) in d.iter_mut().enumerate() {
                    *v = gi[k] - oi[k];
                }
                diffs.push((d, 1.0));
            }
        }
    }
    fit_logistic(&diffs, epochs, l2, false)
}

/// Trains the answerability model: pointwise logistic regression, gold candidates against the
/// others (unweighted, so probabilities are on the scale of one gold post among ~100
/// candidates; the threshold is chosen on the same scale).
pub fn train_answerability(groups: &[TrainingGroup], epochs: usize, l2: f32) -> LinearModel {
    let mut rows: Vec<([f32; FEATURES], f64)> = Vec::new();
    for g in groups {
        for (x, gold) in g.candidates.iter().zip(&g.gold) {
            rows.push((*x, if *gold { 1.0 } else { -1.0 }));
        }
    }
    fit_logistic(&rows, epochs, l2, true)
}

/// `group` as a search would have found it without its gold posts: those candidates dropped
/// and the relative features of the rest recomputed (BM25 score over the new best, ranks moved
/// up past the removed ones, cosine min–max over what is left). `None` when nothing is left.
/// The pool does not gain the candidate that would have moved into the last place.
pub fn without_gold(group: &TrainingGroup) -> Option<TrainingGroup> {
    let kept: Vec<[f32; FEATURES]> = group
        .candidates
        .iter()
        .zip(&group.gold)
        .filter(|(_, gold)| !**gold)
        .map(|(f, _)| *f)
        .collect();
    if kept.is_empty() {
        return None;
    }
    let rank = |rr: f32| if rr > 0.0 { (1.0 / rr).round() } else { 0.0 };
    let removed_ranks = |col: usize| -> Vec<f32> {
        group
            .candidates
            .iter()
            .zip(&group.gold)
            .filter(|(f, gold)| **gold && f[col] > 0.0)
            .map(|(f, _)| rank(f[col]))
            .collect()
    };
    let (bm25_removed, dense_removed) = (removed_ranks(3), removed_ranks(4));
    let bm25_max = kept.iter().map(|f| f[0]).fold(0.0f32, f32::max);
    let cos_min = kept.iter().map(|f| f[2]).fold(f32::INFINITY, f32::min);
    let cos_max = kept.iter().map(|f| f[2]).fold(f32::NEG_INFINITY, f32::max);
    let moved_up = |rr: f32, removed: &[f32]| {
        let r = rank(rr);
        if r <= 0.0 {
            return 0.0;
        }
        let r = r - removed.iter().filter(|g| **g < r).count() as f32;
        1.0 / r.max(1.0)
    };
    let candidates = kept
        .into_iter()
        .map(|mut f| {
            if bm25_max > 0.0 {
                f[0] = (f[0] / bm25_max).clamp(0.0, 1.0);
            }
            f[1] = relative_score(f[2], cos_min, cos_max);
            f[3] = moved_up(f[3], &bm25_removed);
            f[4] = moved_up(f[4], &dense_removed);
            f
        })
        .collect::<Vec<_>>();
    Some(TrainingGroup {
        gold: vec![false; candidates.len()],
        candidates,
    })
}

/// The inputs of the question-level answerability model for a group under `ranker`: the best logit and its lead over the
/// runner-up, capped (a lone candidate leads by the cap).
pub fn answerable_inputs(ranker: &LinearModel, group: &TrainingGroup) -> Option<[f32; 2]> {
    let mut z: Vec<f32> = group.candidates.iter().map(|f| ranker.score(f)).collect();
    z.sort_by(|a, b| b.total_cmp(a));
    let best = *z.first()?;
    let margin = z.get(1).map_or(ANSWERABLE_MARGIN_CAP, |s| {
        (best - s).min(ANSWERABLE_MARGIN_CAP)
    });
    Some([best, margin])
}

/// Trains the question-level answerability model: logistic regression (Newton's method, a little L2) of "the gold
/// post is among the candidates" on [`answerable_inputs`], every group that holds its gold post
/// counted as searched (1) and [`without_gold`] (0). Returns `[w_best, w_margin, bias]`.
pub fn train_answerable(ranker: &LinearModel, groups: &[TrainingGroup]) -> [f32; 3] {
    let mut rows: Vec<([f64; 3], f64)> = Vec::new();
    for g in groups.iter().filter(|g| g.gold.iter().any(|x| *x)) {
        let (Some(with), Some(without)) = (
            answerable_inputs(ranker, g),
            without_gold(g).and_then(|w| answerable_inputs(ranker, &w)),
        ) else {
            continue;
        };
        for (x, y) in [(with, 1.0), (without, 0.0)] {
            rows.push(([f64::from(x[0]), f64::from(x[1]), 1.0], y));
        }
    }
    let mut w = [0.0f64; 3];
    let l2 = 1e-4;
    for _ in 0..50 {
        let mut grad = [0.0f64; 3];
        let mut hess = [[0.0f64; 3]; 3];
        for (x, y) in &rows {
            let z: f64 = x.iter().zip(&w).map(|(a, b)| a * b).sum();
            let p = 1.0 / (1.0 + (-z).exp());
            for i in 0..3 {
                grad[i] += (p - y) * x[i];
                for j in 0..3 {
                    hess[i][j] += p * (1.0 - p) * x[i] * x[j];
                }
            }
        }
        let n = rows.len().max(1) as f64;
        let mut a = [[0.0f64; 3]; 3];
        let mut b = [0.0f64; 3];
        for i in 0..3 {
            b[i] = grad[i] / n + l2 * w[i];
            for j in 0..3 {
                a[i][j] = hess[i][j] / n + if i == j { l2 } else { 0.0 };
            }
        }
        let Some(step) = solve3(&a, &b) else {
            break;
        };
        for i in 0..3 {
            w[i] -= step[i];
        }
    }
    [w[0] as f32, w[1] as f32, w[2] as f32]
}

/// `x` with `a x = b` for a 3 × 3 `a` (Cramer's rule); `None` when `a` is singular.
fn solve3(a: &[[f64; 3]; 3], b: &[f64; 3]) -> Option<[f64; 3]> {
    let det = |m: &[[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let d = det(a);
    if d.abs() < 1e-12 || !d.is_finite() {
        return None;
    }
    let mut x = [0.0; 3];
    for (c, xc) in x.iter_mut().enumerate() {
        let mut m = *a;
        for r in 0..3 {
            m[r][c] = b[r];
        }
        *xc = det(&m) / d;
    }
    Some(x)
}

/// Scores a candidate list: `exp(z − z_best)` per candidate, in the input order.
pub fn relative_odds(logits: &[f32]) -> Vec<f32> {
    let best = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    logits.iter().map(|z| (z - best).exp()).collect()
}

/// Inverse document frequency as BM25 uses it: `ln(1 + (N − df + 0.5) / (df + 0.5))`.
pub fn idf(doc_freq: u64, num_docs: u64) -> f32 {
    let (df, n) = (doc_freq as f64, num_docs as f64);
    (1.0 + (n - df + 0.5).max(0.0) / (df + 0.5)).ln() as f32
}

/// Per-term IDF lookups, cached for one query.
pub(crate) struct IdfCache<F: FnMut(&str) -> u64> {
    doc_freq: F,
    num_docs: u64,
    cache: HashMap<String, f32>,
}

impl<F: FnMut(&str) -> u64> IdfCache<F> {
    pub(crate) fn new(num_docs: u64, doc_freq: F) -> Self {
        IdfCache {
            doc_freq,
            num_docs,
            cache: HashMap::new(),
        }
    }

    pub(crate) fn get(&mut self, term: &str) -> f32 {
        if let Some(v) = self.cache.get(term) {
            return *v;
        }
        let v = idf((self.doc_freq)(term), self.num_docs);
        self.cache.insert(term.to_string(), v);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Features with the given BM25 (relative score, rank) and cosine, the rest fixed.
    fn row(bm25: (f32, usize), cos: f32, dense_rank: usize) -> [f32; FEATURES] {
        let mut f = [0.5; FEATURES];
        (f[0], f[3]) = (bm25.0, 1.0 / bm25.1 as f32);
        (f[2], f[4]) = (cos, 1.0 / dense_rank as f32);
        f
    }

    #[test]
    fn removing_the_gold_post_recomputes_its_neighbours_relative_features() {
        let group = TrainingGroup {
            candidates: vec![
                row((1.0, 1), 0.9, 1),
                row((0.5, 2), 0.5, 3),
                row((0.25, 3), 0.7, 2),
            ],
            gold: vec![true, false, false],
        };
        let removed = without_gold(&group).unwrap();
        assert_eq!(removed.gold, vec![false, false]);
        let [a, b] = [removed.candidates[0], removed.candidates[1]];
        // BM25 over the new best, ranks moved up past the gold post, cosine min–max anew.
        assert_eq!((a[0], a[3]), (1.0, 1.0));
        assert_eq!((b[0], b[3]), (0.5, 0.5));
        assert_eq!((a[1], b[1]), (0.0, 1.0));
        assert_eq!((a[4], b[4]), (0.5, 1.0));
        // Everything else is the post's own.
        assert_eq!(a[5..], group.candidates[1][5..]);
        assert!(without_gold(&TrainingGroup {
            candidates: vec![row((1.0, 1), 0.9, 1)],
            gold: vec![true],
        })
        .is_none());
    }

    #[test]
    fn the_answerable_model_learns_that_a_gold_post_stands_out() {
        // Gold posts lead their pool by a wide margin; without them the rest is a close pack.
        let ranker = LinearModel {
            weights: [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            bias: 0.0,
        };
        let groups: Vec<TrainingGroup> = (0..200)
            .map(|i| {
                let jitter = (i % 7) as f32 * 0.1;
                let mut candidates = vec![row((8.0 + jitter, 1), 0.9, 1)];
                candidates.extend(
                    (0..5).map(|k| row((4.0 + jitter - k as f32 * 0.2, k + 2), 0.5, k + 2)),
                );
                let mut gold = vec![false; candidates.len()];
                gold[0] = true;
                TrainingGroup { candidates, gold }
            })
            .collect();
        let [w_best, w_margin, _] = train_answerable(&ranker, &groups);
        assert!(w_best.is_finite() && w_margin > 0.0, "{w_best} {w_margin}");
    }

    #[test]
    fn the_rarest_known_term_skips_terms_no_post_holds() {
        let n = 1000;
        let df = |t: &str| match t {
            "bad" => 0,
            "flood" => 3,
            _ => 200,
        };
        let q = QueryTerms::new("How bad is the flooding downtown?", |t| idf(df(t), n));
        assert_eq!(q.rarest_known(idf(0, n)), Some("flood"));
        assert!(PostTerms::new("Heavy flooding downtown, water rising fast").holds("flood"));
        assert!(!PostTerms::new("The Miller Street bridge is closed").holds("flood"));
        let none = QueryTerms::new("bad", |t| idf(df(t), n));
        assert_eq!(none.rarest_known(idf(0, n)), None);
    }

    fn flat_idf(_: &str) -> f32 {
        1.0
    }

    fn set() -> CandidateSet {
        CandidateSet {
            bm25_max: 10.0,
            cos_min: 0.1,
            cos_max: 0.9,
        }
    }

    #[test]
    fn coverage_and_bigrams_see_the_words_that_matter() {
        let q = QueryTerms::new("when did the Boston marathon bombing happen", |t| {
            if ["boston", "marathon", "bomb"].contains(&t) {
                5.0
            } else {
                0.5
            }
        });
        let s = RetrievalSignals::default();
        let good = features(
            &q,
            &set(),
            &s,
            &PostTerms::new("Bombing at the Boston Marathon finish line"),
        );
        let bad = features(
            &q,
            &set(),
            &s,
            &PostTerms::new("When did the party happen?"),
        );
        assert!(good[5] > bad[5], "idf coverage {good:?} vs {bad:?}");
        assert!(good[6] > bad[6]);
        assert!(good[7] > 0.0, "boston marathon is an adjacent pair");
        assert!(bad[7] < good[7], "filler pairs weigh little");
        assert!(good[9] < bad[9], "the bad post lacks a rare term");
    }

    #[test]
    fn numbers_count_only_when_asked() {
        let q = QueryTerms::new("what happened on route 66", flat_idf);
        let s = RetrievalSignals::default();
        assert_eq!(
            features(&q, &set(), &s, &PostTerms::new("Crash on route 66"))[8],
            1.0
        );
        assert_eq!(
            features(&q, &set(), &s, &PostTerms::new("Crash on route 9"))[8],
            0.0
        );
        let q = QueryTerms::new("what happened", flat_idf);
        assert_eq!(
            features(&q, &set(), &s, &PostTerms::new("Crash on route 66"))[8],
            0.0
        );
    }

    #[test]
    fn training_learns_the_feature_that_separates_gold() {
        // Gold posts have feature 5 high; feature 0 is noise.
        let mut groups = Vec::new();
        for i in 0..40 {
            let mut g = TrainingGroup::default();
            for j in 0..10 {
                let mut x = [0.0f32; FEATURES];
                x[0] = ((i * 7 + j * 3) % 10) as f32 / 10.0;
                let gold = j == i % 10;
                x[5] = if gold {
                    0.9
                } else {
                    0.2 + (j % 3) as f32 / 10.0
                };
                g.candidates.push(x);
                g.gold.push(gold);
            }
            groups.push(g);
        }
        let model = train(&groups, 200, 1e-4);
        assert!(model.weights[5] > 1.0, "{model:?}");
        for g in &groups {
            let best = g
                .candidates
                .iter()
                .enumerate()
                .max_by(|a, b| model.score(a.1).total_cmp(&model.score(b.1)))
                .map(|(i, _)| i);
            assert_eq!(best, g.gold.iter().position(|x| *x));
        }
    }

    #[test]
    fn relative_odds_put_the_best_at_one() {
        let odds = relative_odds(&[0.0, 2.0, 1.0]);
        assert_eq!(odds[1], 1.0);
        assert!(odds[0] < odds[2] && odds[2] < 1.0);
        assert!(relative_odds(&[]).is_empty());
    }

    #[test]
    fn idf_falls_with_document_frequency() {
        assert!(idf(1, 1000) > idf(100, 1000));
        assert!(idf(1000, 1000) >= 0.0);
        assert!(idf(0, 0).is_finite());
    }

    proptest! {
        #[test]
        fn features_are_finite_and_bounded_for_any_text(
            query in crate::testing::any_text(),
            post in crate::testing::any_text(),
            bm25 in proptest::option::of((1usize..100, 0.0f32..50.0)),
            cosine in proptest::option::of(-1.0f32..1.0),
        ) {
            let q = QueryTerms::new(&query, |t| t.len() as f32 / 3.0);
            let s = RetrievalSignals { bm25, dense_rank: bm25.map(|b| b.0), cosine };
            let f = features(&q, &set(), &s, &PostTerms::new(&post));
            for (i, x) in f.iter().enumerate() {
                prop_assert!(x.is_finite(), "feature {} is {}", FEATURE_NAMES[i], x);
            }
            for i in [0usize, 1, 3, 4, 5, 6, 7, 8, 9] {
                prop_assert!((0.0..=1.0).contains(&f[i]), "feature {} is {}", FEATURE_NAMES[i], f[i]);
            }
            prop_assert!(MODEL.score(&f).is_finite());
        }
    }
}
