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

use super::{fit, normalize, Embedder, LocalEmbedder};
use crate::IndexError;
use futures::future::BoxFuture;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokenizers::Tokenizer;

const MAGIC: &[u8; 8] = b"TDSIFv2\0";
const CACHE_FILE: &str = "static-sif-v2.bin";
const INTERIM_MAGIC: &[u8; 8] = b"TDINTv1\0";
const INTERIM_CACHE_FILE: &str = "static-interim-v1.bin";
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

/// The distilled table and the teacher's tokenizer.
pub struct StaticEmbedder {
    inner: Arc<Inner>,
    name: String,
}

struct Inner {
    /// `vocab × dim`, row `i` = token `i`'s weighted vector.
    table: Vec<f32>,
    dim: usize,
    tokenizer: Tokenizer,
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
        texts.iter().map(|t| self.inner.embed_one(t)).collect()
    }
}

impl Inner {
    fn embed_one(&self, text: &str) -> Result<Vec<f32>, IndexError> {
        bag(&self.table, self.dim, &self.tokenizer, text)
    }
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
}

const STATIC_TABLE: TableKind = TableKind {
    magic: MAGIC,
    file: CACHE_FILE,
    prefix: "static",
    made: "distilled the static embedder from the local model",
    make: distill,
};

const INTERIM_TABLE: TableKind = TableKind {
    magic: INTERIM_MAGIC,
    file: INTERIM_CACHE_FILE,
    prefix: "interim",
    made: "fitted the interim embedder to the local model",
    make: fit_interim,
};

/// The table `kind` for the teacher in `dir`: read from its cache, or made (and cached).
fn load_or_make(dir: &Path, kind: &TableKind) -> Result<StaticEmbedder, IndexError> {
    let tokenizer = Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|e| {
        IndexError::Unavailable(format!(
            "load {}/tokenizer.json: {e}; run `make setup` to fetch the model",
            dir.display()
        ))
    })?;
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
    Ok(StaticEmbedder {
        inner: Arc::new(Inner {
            table,
            dim,
            tokenizer,
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
                return texts.iter().map(|t| inner.embed_one(t)).collect();
            }
            tokio::task::spawn_blocking(move || texts.iter().map(|t| inner.embed_one(t)).collect())
                .await
                .map_err(|e| IndexError::internal(format!("embedder task failed: {e}")))?
        })
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
