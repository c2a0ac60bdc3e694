//! A static embedder distilled in-process from the local sentence model (model2vec's recipe,
//! with centring in place of its PCA step): every vocabulary token is embedded once by the
//! teacher (the output at the token's position in `[CLS] token [SEP]`), the vectors' common
//! mean is removed, then each is weighted by SIF with token probabilities from a
//! Zipf prior on the token's rank in the vocabulary; a text's vector is the mean of its tokens'
//! rows, normalised. Embedding is a table lookup: hundreds of times faster than the teacher, at
//! some cost in quality (BENCHMARKS.md has both, measured in one run).
//!
//! The table is distilled on first use and cached beside the teacher's weights
//! (`static-sif-v2.bin`: magic, vocabulary size, dimension, then little-endian `f32` rows);
//! a cache whose header does not match the teacher is distilled again.
//!
//! The interim table (in the teacher's own space) also learns while it runs: the vector worker
//! hands it every text the teacher embeds, with the teacher's vector, and from those pairs it
//! fits a correction of its own vectors toward the teacher's (see [`Adapt`]).

use super::{fit, normalize, Embedder, InterimFit, LocalEmbedder};
use crate::IndexError;
use futures::future::BoxFuture;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use tokenizers::Tokenizer;

const MAGIC: &[u8; 8] = b"TDSIFv2\0";
const CACHE_FILE: &str = "static-sif-v2.bin";
/// v2: fitted on bags of a text's own tokens (v1's bags held `[PAD]` rows up to 128 tokens).
const INTERIM_MAGIC: &[u8; 8] = b"TDINTv2\0";
const INTERIM_CACHE_FILE: &str = "static-interim-v2.bin";
/// Texts the interim table's map into the teacher's space is fitted on.
const INTERIM_FIT_TEXTS: usize = 4000;
/// The ridge penalty of that fit.
const INTERIM_RIDGE: f64 = 0.1;
/// SIF's `a`: a token with probability `p` weighs `a / (a + p)` (model2vec's default).
const SIF_A: f64 = 1e-4;
/// Tokens the teacher embeds per forward pass while distilling.
const DISTILL_BATCH: usize = 256;
/// Batches up to this size (a query) are embedded in place; larger ones (the vector worker's
/// batches, ~80 µs a post) off the async threads.
const INLINE_TEXTS: usize = 8;
/// The interim table's first refit from the teacher's pairs comes after this many; each later
/// one after as many new pairs as the last one had (doubling), at most [`REFIT_MAX_STEP`].
const REFIT_FIRST: u64 = 256;
const REFIT_MAX_STEP: u64 = 50_000;
/// The correction's ridge penalty toward the identity (a unit-length pair adds about
/// `1 / dim` to each diagonal entry of `XᵀX`, so this weighs like a few hundred pairs).
const REFIT_RIDGE: f64 = 1.0;
/// Every this-many-th pair is held out to judge a refit instead of being fitted on.
const HOLD_OUT_EVERY: u64 = 8;
/// The newest held-out pairs kept.
const HELD_OUT_MAX: usize = 512;

/// The distilled table and the teacher's tokenizer.
pub struct StaticEmbedder {
    inner: Arc<Inner>,
    name: String,
}

struct Inner {
    /// `vocab × dim`, row `i` = token `i`'s weighted vector (the interim table's is replaced
    /// whole when its correction is refitted).
    table: RwLock<Arc<Vec<f32>>>,
    dim: usize,
    tokenizer: Tokenizer,
    /// The interim table's learning from the teacher's pairs; `None` for the static table.
    adapt: Option<Adapt>,
}

/// The interim table's correction, learned from the pairs (a text, the teacher's vector for it)
/// the vector worker hands over whenever the teacher embeds. The fit is `y ≈ x C`: `x` is the
/// text's vector in the table as fitted on vocabulary texts (`base`, which never changes, so
/// the pairs gathered stay comparable), `y` the teacher's, `C` a `dim × dim` map fitted by
/// ridge toward the identity and folded into the live table. Vocabulary texts are not posts:
/// fitted on real posts, the map placed held-out posts clearly closer to the teacher's own
/// vectors (BENCHMARKS.md, `examples/approx_space.rs`).
///
/// A refit runs on a thread of its own (a few seconds: the fold is `vocab × dim²`) and is kept
/// only if it brings the held-out pairs (every [`HOLD_OUT_EVERY`]th, never fitted on) closer to
/// the teacher's vectors than the correction in use. What is learned lives in memory: after a
/// restart the first refit comes again after [`REFIT_FIRST`] pairs (seconds of the teacher's
/// time), and the vectors already stored keep what they were given until upgraded.
struct Adapt {
    base: Arc<Vec<f32>>,
    state: Mutex<AdaptState>,
    refitting: AtomicBool,
}

struct AdaptState {
    normal: fit::Normal,
    held_out: VecDeque<(Vec<f32>, Vec<f32>)>,
    /// Pairs seen (fitted on or held out).
    seen: u64,
    /// Pairs in `normal` when the last refit was tried.
    tried_at: u64,
    /// The correction in use; `None` is the identity.
    correction: Option<Arc<Vec<f32>>>,
    refits: u64,
    cosine: Option<f32>,
}

impl StaticEmbedder {
    /// The table for the teacher in `dir`: read from its cache, or distilled (and cached).
    pub fn load_or_distill(dir: &Path) -> Result<StaticEmbedder, IndexError> {
        load_or_make(dir, &STATIC_TABLE)
    }

    /// The interim embedder for the local model in `dir`: a static table in the model's own
    /// vector space, so that its vectors and the model's can share one collection and be
    /// searched with the model's query vector. Each token's row is its output in
    /// `[CLS] token [SEP]`, SIF-weighted, times a linear map fitted by ridge regression from
    /// the table's vectors to the model's on [`INTERIM_FIT_TEXTS`] texts of the model's own
    /// vocabulary (the map is folded into the rows, so embedding stays a table lookup). Fitted
    /// on first use (about a minute on two cores) and cached beside the model.
    pub fn load_or_fit_interim(dir: &Path) -> Result<StaticEmbedder, IndexError> {
        load_or_make(dir, &INTERIM_TABLE)
    }

    /// Embeds on the calling thread.
    pub fn embed_blocking(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, IndexError> {
        self.inner.embed_many(texts)
    }

    /// Gathers the pairs `(texts[i], vectors[i])`, the teacher's vectors for those texts; when
    /// enough new ones have come since the last refit, refits the interim correction on a
    /// thread of its own (or on this one with `wait`). A table that does not learn (the
    /// static one) ignores them.
    pub fn learn_from(&self, texts: &[String], vectors: &[Vec<f32>], wait: bool) {
        let Some(adapt) = &self.inner.adapt else {
            return;
        };
        let dim = self.inner.dim;
        let pairs: Vec<(Vec<f32>, Vec<f32>)> = texts
            .iter()
            .zip(vectors)
            // (A non-finite vector would poison the sums for good.)
            .filter(|(_, y)| y.len() == dim && y.iter().all(|v| v.is_finite()))
            .filter_map(|(t, y)| {
                let x = bag(&adapt.base, dim, &self.inner.tokenizer, t).ok()?;
                x.iter().any(|&v| v != 0.0).then(|| (x, y.clone()))
            })
            .collect();
        let due = {
            let mut state = adapt.state.lock().unwrap_or_else(PoisonError::into_inner);
            for (x, y) in pairs {
                state.seen += 1;
                if state.seen % HOLD_OUT_EVERY == 0 {
                    state.held_out.push_back((x, y));
                    if state.held_out.len() > HELD_OUT_MAX {
                        state.held_out.pop_front();
                    }
                } else {
                    state.normal.add(&x, &y);
                }
            }
            let step = state.tried_at.clamp(REFIT_FIRST, REFIT_MAX_STEP);
            state.normal.len() >= state.tried_at + step
        };
        if !due || adapt.refitting.swap(true, Ordering::AcqRel) {
            return;
        }
        let inner = self.inner.clone();
        if wait {
            inner.refit();
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("tidings-interim-fit".into())
            .spawn(move || inner.refit());
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "could not start the interim refit; will try again");
            adapt.refitting.store(false, Ordering::Release);
        }
    }

    /// What the interim table has learned from the teacher so far (`None` for the static one).
    pub fn fit_state(&self) -> Option<InterimFit> {
        let adapt = self.inner.adapt.as_ref()?;
        let state = adapt.state.lock().unwrap_or_else(PoisonError::into_inner);
        Some(InterimFit {
            pairs: state.seen,
            refits: state.refits,
            cosine: state.cosine,
        })
    }
}

impl Inner {
    fn embed_many(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, IndexError> {
        let table = self
            .table
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        texts
            .iter()
            .map(|t| bag(&table, self.dim, &self.tokenizer, t))
            .collect()
    }

    /// Fits the correction on the pairs gathered so far and, when it brings the held-out
    /// pairs closer to the teacher than the one in use, folds it into the live table.
    fn refit(&self) {
        let Some(adapt) = &self.adapt else {
            return;
        };
        let started = std::time::Instant::now();
        let (normal, held_out, current) = {
            let mut state = adapt.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.tried_at = state.normal.len();
            (
                state.normal.clone(),
                state.held_out.clone(),
                state.correction.clone(),
            )
        };
        let outcome = normal.solve(REFIT_RIDGE, fit::Toward::Identity).map(|c| {
            let before = held_out_cosine(&held_out, current.as_deref().map(Vec::as_slice));
            let after = held_out_cosine(&held_out, Some(&c));
            (c, before, after)
        });
        match outcome {
            Ok((c, before, after)) if after >= before => {
                let mut table = Vec::with_capacity(adapt.base.len());
                for row in adapt.base.chunks_exact(self.dim) {
                    table.extend(fit::apply(&c, row));
                }
                *self.table.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(table);
                let mut state = adapt.state.lock().unwrap_or_else(PoisonError::into_inner);
                state.correction = Some(Arc::new(c));
                state.refits += 1;
                state.cosine = Some(after);
                tracing::info!(
                    pairs = normal.len(),
                    held_out = held_out.len(),
                    cosine_before = before,
                    cosine_after = after,
                    secs = started.elapsed().as_secs_f64(),
                    "refitted the interim embedder to the local model's vectors"
                );
            }
            Ok((_, before, after)) => {
                let mut state = adapt.state.lock().unwrap_or_else(PoisonError::into_inner);
                state.cosine = Some(before);
                tracing::info!(
                    pairs = normal.len(),
                    cosine_kept = before,
                    cosine_refit = after,
                    "kept the interim embedder's correction: a refit came no closer"
                );
            }
            Err(e) => tracing::warn!(error = %e, "the interim refit failed; the table is kept"),
        }
        adapt.refitting.store(false, Ordering::Release);
    }
}

/// Mean cosine between `x C` (or `x` without a correction) and `y` over `pairs`; 0 for none.
fn held_out_cosine(pairs: &VecDeque<(Vec<f32>, Vec<f32>)>, c: Option<&[f32]>) -> f32 {
    if pairs.is_empty() {
        return 0.0;
    }
    let sum: f32 = pairs
        .iter()
        .map(|(x, y)| {
            let mut v = match c {
                Some(c) => fit::apply(c, x),
                None => x.clone(),
            };
            normalize(&mut v);
            v.iter().zip(y).map(|(a, b)| a * b).sum::<f32>()
        })
        .sum();
    sum / pairs.len() as f32
}

/// One kind of table: how it is made from the teacher and where it is cached.
struct TableKind {
    magic: &'static [u8; 8],
    file: &'static str,
    /// The embedder's name before `:model`.
    prefix: &'static str,
    /// What the log says once it is made.
    made: &'static str,
    make: fn(&LocalEmbedder, &Tokenizer, usize) -> Result<Vec<f32>, IndexError>,
    /// Whether it learns from the teacher's pairs while it runs.
    learns: bool,
}

const STATIC_TABLE: TableKind = TableKind {
    magic: MAGIC,
    file: CACHE_FILE,
    prefix: "static",
    made: "distilled the static embedder from the local model",
    make: distill,
    learns: false,
};

const INTERIM_TABLE: TableKind = TableKind {
    magic: INTERIM_MAGIC,
    file: INTERIM_CACHE_FILE,
    prefix: "interim",
    made: "fitted the interim embedder to the local model",
    make: fit_interim,
    learns: true,
};

/// The table `kind` for the teacher in `dir`: read from its cache, or made (and cached).
fn load_or_make(dir: &Path, kind: &TableKind) -> Result<StaticEmbedder, IndexError> {
    let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|e| {
        IndexError::Unavailable(format!(
            "load {}/tokenizer.json: {e}; run `make setup` to fetch the model",
            dir.display()
        ))
    })?;
    // The shipped tokenizer pads every text to 128 tokens; a bag of tokens must hold the text's
    // own tokens only (padding added the `[PAD]` row once per missing token).
    tokenizer.with_padding(None);
    let vocab = tokenizer.get_vocab_size(true);
    let cache = dir.join(kind.file);
    let (table, dim) = match read_cache(&cache, kind.magic, vocab) {
        Some(found) => found,
        None => {
            let teacher = LocalEmbedder::load(dir, 1)?;
            let started = std::time::Instant::now();
            let table = (kind.make)(&teacher, &tokenizer, vocab)?;
            let dim = teacher.dim();
            tracing::info!(
                vocab,
                dim,
                secs = started.elapsed().as_secs_f64(),
                "{}",
                kind.made
            );
            if let Err(e) = write_cache(&cache, kind.magic, vocab, dim, &table) {
                tracing::warn!(error = %e, path = %cache.display(), "could not cache the {} table", kind.prefix);
            }
            (table, dim)
        }
    };
    let model = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bert".into());
    let table = Arc::new(table);
    let adapt = kind.learns.then(|| Adapt {
        base: table.clone(),
        state: Mutex::new(AdaptState {
            normal: fit::Normal::new(dim),
            held_out: VecDeque::new(),
            seen: 0,
            tried_at: 0,
            correction: None,
            refits: 0,
            cosine: None,
        }),
        refitting: AtomicBool::new(false),
    });
    Ok(StaticEmbedder {
        inner: Arc::new(Inner {
            table: RwLock::new(table),
            dim,
            tokenizer,
            adapt,
        }),
        name: format!("{}:{model}", kind.prefix),
    })
}

/// The SIF weight of the token of vocabulary rank `rank` under a Zipf prior.
fn sif_weight(rank: usize, harmonic: f64) -> f32 {
    let p = 1.0 / ((rank + 2) as f64 * harmonic);
    (SIF_A / (SIF_A + p)) as f32
}

/// Every vocabulary token's own output in `[CLS] token [SEP]`, unit length, row `i` = token `i`.
fn token_rows(
    teacher: &LocalEmbedder,
    tokenizer: &Tokenizer,
    vocab: usize,
) -> Result<Vec<f32>, IndexError> {
    let dim = teacher.dim();
    let special = |t: &str| tokenizer.token_to_id(t);
    let (Some(cls), Some(sep)) = (special("[CLS]"), special("[SEP]")) else {
        return Err(IndexError::internal(
            "the teacher's tokenizer has no [CLS]/[SEP] tokens",
        ));
    };
    let mut table = vec![0f32; vocab * dim];
    let ids: Vec<u32> = (0..vocab as u32).collect();
    for chunk in ids.chunks(DISTILL_BATCH) {
        let inputs: Vec<[u32; 3]> = chunk.iter().map(|&id| [cls, id, sep]).collect();
        let vectors = teacher.embed_ids_blocking(&inputs)?;
        for (&id, vector) in chunk.iter().zip(vectors) {
            table[id as usize * dim..(id as usize + 1) * dim].copy_from_slice(&vector);
        }
    }
    Ok(table)
}

/// Embeds every token of the vocabulary with the teacher and weights it.
fn distill(
    teacher: &LocalEmbedder,
    tokenizer: &Tokenizer,
    vocab: usize,
) -> Result<Vec<f32>, IndexError> {
    let dim = teacher.dim();
    let mut table = token_rows(teacher, tokenizer, vocab)?;
    // Token vectors share a large common direction (what every token looks like to the
    // model); it says nothing about a text, so it is removed before weighting.
    let mut mean = vec![0f32; dim];
    for row in table.chunks_exact(dim) {
        for (m, x) in mean.iter_mut().zip(row) {
            *m += x / vocab as f32;
        }
    }
    for row in table.chunks_exact_mut(dim) {
        for (x, m) in row.iter_mut().zip(&mean) {
            *x -= m;
        }
        normalize(row);
    }
    weigh(&mut table, dim, vocab);
    Ok(table)
}

/// Scales each token's row by its SIF weight.
fn weigh(table: &mut [f32], dim: usize, vocab: usize) {
    let harmonic: f64 = (0..vocab).map(|r| 1.0 / (r + 2) as f64).sum();
    for (id, row) in table.chunks_exact_mut(dim).enumerate() {
        let w = sif_weight(id, harmonic);
        for x in row.iter_mut() {
            *x *= w;
        }
    }
}

/// The interim table: SIF-weighted token rows times the fitted map into the teacher's space.
fn fit_interim(
    teacher: &LocalEmbedder,
    tokenizer: &Tokenizer,
    vocab: usize,
) -> Result<Vec<f32>, IndexError> {
    let dim = teacher.dim();
    let mut rows = token_rows(teacher, tokenizer, vocab)?;
    weigh(&mut rows, dim, vocab);
    let texts = fit::pseudo_texts(tokenizer, INTERIM_FIT_TEXTS, 0x7ced_1295);
    let targets = teacher.embed_blocking(&texts)?;
    let bags: Vec<Vec<f32>> = texts
        .iter()
        .map(|t| bag(&rows, dim, tokenizer, t))
        .collect::<Result<_, _>>()?;
    let map = fit::ridge(&bags, &targets, INTERIM_RIDGE)?;
    let mut table = Vec::with_capacity(rows.len());
    for row in rows.chunks_exact(dim) {
        table.extend(fit::apply(&map, row));
    }
    Ok(table)
}

/// The normalised sum of `text`'s token rows in `table`.
fn bag(
    table: &[f32],
    dim: usize,
    tokenizer: &Tokenizer,
    text: &str,
) -> Result<Vec<f32>, IndexError> {
    let encoding = tokenizer
        .encode(text, false)
        .map_err(|e| IndexError::internal(format!("tokenize: {e}")))?;
    let mut v = vec![0f32; dim];
    for &id in encoding.get_ids() {
        let start = id as usize * dim;
        if let Some(row) = table.get(start..start + dim) {
            for (x, r) in v.iter_mut().zip(row) {
                *x += r;
            }
        }
    }
    normalize(&mut v);
    Ok(v)
}

fn read_cache(path: &Path, magic: &[u8; 8], vocab: usize) -> Option<(Vec<f32>, usize)> {
    let bytes = std::fs::read(path).ok()?;
    let header = bytes.get(..24)?;
    if &header[..8] != magic {
        return None;
    }
    let stored_vocab = u64::from_le_bytes(header[8..16].try_into().ok()?) as usize;
    let dim = u64::from_le_bytes(header[16..24].try_into().ok()?) as usize;
    let body = bytes.get(24..)?;
    if stored_vocab != vocab || dim == 0 || body.len() != vocab * dim * 4 {
        return None;
    }
    let table = body
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Some((table, dim))
}

fn write_cache(
    path: &PathBuf,
    magic: &[u8; 8],
    vocab: usize,
    dim: usize,
    table: &[f32],
) -> std::io::Result<()> {
    let mut bytes = Vec::with_capacity(24 + table.len() * 4);
    bytes.extend_from_slice(magic);
    bytes.extend_from_slice(&(vocab as u64).to_le_bytes());
    bytes.extend_from_slice(&(dim as u64).to_le_bytes());
    for x in table {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, path)
}

impl Embedder for StaticEmbedder {
    fn dim(&self) -> usize {
        self.inner.dim
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn embed(&self, texts: Vec<String>) -> BoxFuture<'_, Result<Vec<Vec<f32>>, IndexError>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            if texts.len() <= INLINE_TEXTS {
                return inner.embed_many(&texts);
            }
            tokio::task::spawn_blocking(move || inner.embed_many(&texts))
                .await
                .map_err(|e| IndexError::internal(format!("embedder task failed: {e}")))?
        })
    }

    fn learn(&self, texts: &[String], vectors: &[Vec<f32>]) {
        self.learn_from(texts, vectors, false);
    }

    fn learned(&self) -> Option<InterimFit> {
        self.fit_state()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequent_tokens_weigh_less_than_rare_ones() {
        let h: f64 = (0..30_000).map(|r| 1.0 / (r + 2) as f64).sum();
        let (frequent, rare) = (sif_weight(0, h), sif_weight(20_000, h));
        assert!(frequent < rare, "{frequent} vs {rare}");
        assert!((0.0..=1.0).contains(&frequent) && (0.0..=1.0).contains(&rare));
    }

    #[test]
    fn the_cache_round_trips_and_refuses_another_vocabulary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CACHE_FILE);
        let table: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 1.0).collect();
        write_cache(&path, MAGIC, 4, 3, &table).unwrap();
        assert_eq!(read_cache(&path, MAGIC, 4), Some((table, 3)));
        assert_eq!(
            read_cache(&path, MAGIC, 5),
            None,
            "another vocabulary is distilled again"
        );
        assert_eq!(
            read_cache(&path, INTERIM_MAGIC, 4),
            None,
            "the interim table is another table"
        );
        std::fs::write(&path, b"not a table").unwrap();
        assert_eq!(read_cache(&path, MAGIC, 4), None);
    }
}
