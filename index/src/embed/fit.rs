//! Fitting a static table to its teacher's vector space: texts made of the teacher's own
//! vocabulary (drawn by a Zipf prior on the token's rank, deterministic), embedded by both, and
//! the linear map from the table's vectors to the teacher's by ridge regression; and the normal
//! equations of such a fit gathered from a stream of pairs (the interim table's correction from
//! the posts the teacher embeds while it runs).

use crate::IndexError;
use tokenizers::Tokenizer;

/// `n` texts of 6 to 30 vocabulary words each, the same for the same tokenizer and `seed`.
pub fn pseudo_texts(tokenizer: &Tokenizer, n: usize, seed: u64) -> Vec<String> {
    let vocab = tokenizer.get_vocab_size(true) as u32;
    // Whole words of letters only, from "the" on: a WordPiece vocabulary lists its special
    // tokens (`[CLS]`, `[unused0]`), single characters and symbols first, then words by
    // frequency; word pieces (`##s`) would not come back as themselves from decoded text.
    // (Texts of symbols fitted a map that placed real posts worse: `examples/approx_space.rs`.)
    let first = tokenizer.token_to_id("the").unwrap_or(0);
    let words: Vec<u32> = (first..vocab)
        .filter(|&id| {
            tokenizer
                .id_to_token(id)
                .is_some_and(|t| !t.is_empty() && t.chars().all(char::is_alphabetic))
        })
        .collect();
    if words.is_empty() {
        return Vec::new();
    }
    // The cumulative Zipf weights of the words in vocabulary order (frequent words come first
    // in a WordPiece vocabulary after its special tokens and characters).
    let mut cumulative = Vec::with_capacity(words.len());
    let mut total = 0.0f64;
    for rank in 0..words.len() {
        total += 1.0 / (rank + 10) as f64;
        cumulative.push(total);
    }
    let mut state = seed;
    let mut next = move || {
        // splitmix64
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let len = 6 + (next() * 25.0) as usize;
            let ids: Vec<u32> = (0..len)
                .map(|_| {
                    let u = next() * total;
                    words[cumulative.partition_point(|&c| c < u).min(words.len() - 1)]
                })
                .collect();
            tokenizer.decode(&ids, true).unwrap_or_default()
        })
        .collect()
}

/// The `d × d` matrix `M` (row-major) minimising `|XM − Y|² + λ|M|²`, for rows `x` of `X`
/// and `y` of `Y`, all `d` long: `M = (XᵀX + λI)⁻¹ XᵀY`, solved by Cholesky in `f64`.
pub fn ridge(x: &[Vec<f32>], y: &[Vec<f32>], lambda: f64) -> Result<Vec<f32>, IndexError> {
    let d = x.first().map_or(0, Vec::len);
    if d == 0 || x.len() != y.len() || x.iter().chain(y).any(|r| r.len() != d) {
        return Err(IndexError::internal(
            "ridge fit: rows of different lengths or none",
        ));
    }
    let mut normal = Normal::new(d);
    for (xi, yi) in x.iter().zip(y) {
        normal.add(xi, yi);
    }
    normal.solve(lambda, Toward::Zero)
}

/// What a ridge fit shrinks its map toward where the pairs say little.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Toward {
    /// `M = 0`: the plain ridge.
    Zero,
    /// `M = I`: a correction of vectors that are already close, left as they are where the
    /// pairs do not say otherwise.
    Identity,
}

/// The normal equations of the least-squares fit `y ≈ x M` (`XᵀX` and `XᵀY`), gathered one
/// pair at a time: their size does not grow with the pairs, so a fit can learn from a stream.
#[derive(Clone, Debug)]
pub struct Normal {
    d: usize,
    /// Upper triangle of `XᵀX` (row-major, `j ≥ i`), mirrored when solving.
    xtx: Vec<f64>,
    xty: Vec<f64>,
    n: u64,
}

impl Normal {
    pub fn new(d: usize) -> Normal {
        Normal {
            d,
            xtx: vec![0.0; d * d],
            xty: vec![0.0; d * d],
            n: 0,
        }
    }

    /// Pairs added so far.
    pub fn len(&self) -> u64 {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Adds the pair `(x, y)`; rows of another length are ignored.
    pub fn add(&mut self, x: &[f32], y: &[f32]) {
        let d = self.d;
        if x.len() != d || y.len() != d {
            return;
        }
        for (i, &xv) in x.iter().enumerate() {
            if xv == 0.0 {
                continue;
            }
            let xv = xv as f64;
            for (a, &xj) in self.xtx[i * d + i..(i + 1) * d].iter_mut().zip(&x[i..]) {
                *a += xv * xj as f64;
            }
            for (b, &yj) in self.xty[i * d..(i + 1) * d].iter_mut().zip(y) {
                *b += xv * yj as f64;
            }
        }
        self.n += 1;
    }

    /// The `d × d` map (row-major) minimising `|XM − Y|² + λ|M − P|²` for `P` chosen by
    /// `toward`: `M = (XᵀX + λI)⁻¹ (XᵀY + λP)`, solved by Cholesky in `f64`.
    pub fn solve(&self, lambda: f64, toward: Toward) -> Result<Vec<f32>, IndexError> {
        let d = self.d;
        if d == 0 {
            return Err(IndexError::internal("ridge fit: no dimensions"));
        }
        let mut a = vec![0f64; d * d];
        for i in 0..d {
            for j in i..d {
                a[i * d + j] = self.xtx[i * d + j];
                a[j * d + i] = self.xtx[i * d + j];
            }
            a[i * d + i] += lambda;
        }
        let mut b = self.xty.clone();
        if toward == Toward::Identity {
            for i in 0..d {
                b[i * d + i] += lambda;
            }
        }
        cholesky_solve(d, &a, &b)
    }
}

/// `A⁻¹ B` for a symmetric positive definite `d × d` `A` and a `d × d` `B`, as `f32`.
fn cholesky_solve(d: usize, a: &[f64], b: &[f64]) -> Result<Vec<f32>, IndexError> {
    // a = L Lᵀ; positive definite for λ > 0.
    let mut l = vec![0f64; d * d];
    for i in 0..d {
        for j in 0..=i {
            let s = a[i * d + j] - (0..j).map(|k| l[i * d + k] * l[j * d + k]).sum::<f64>();
            if i == j {
                if s <= 0.0 {
                    return Err(IndexError::internal(
                        "ridge fit: the system is not positive definite",
                    ));
                }
                l[i * d + i] = s.sqrt();
            } else {
                l[i * d + j] = s / l[j * d + j];
            }
        }
    }
    let mut m = vec![0f32; d * d];
    let mut z = vec![0f64; d];
    let mut w = vec![0f64; d];
    for c in 0..d {
        for i in 0..d {
            let s = b[i * d + c] - (0..i).map(|k| l[i * d + k] * z[k]).sum::<f64>();
            z[i] = s / l[i * d + i];
        }
        for i in (0..d).rev() {
            let s = z[i] - (i + 1..d).map(|k| l[k * d + i] * w[k]).sum::<f64>();
            w[i] = s / l[i * d + i];
        }
        for i in 0..d {
            m[i * d + c] = w[i] as f32;
        }
    }
    Ok(m)
}

/// `v M` for a `d`-long row `v` and a `d × d` row-major `M`.
pub fn apply(m: &[f32], v: &[f32]) -> Vec<f32> {
    let d = v.len();
    let mut out = vec![0f32; d];
    for (i, &x) in v.iter().enumerate() {
        if x != 0.0 {
            for (o, &mij) in out.iter_mut().zip(&m[i * d..(i + 1) * d]) {
                *o += x * mij;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ridge_recovers_a_linear_map() {
        // y = x M for a known M; with a tiny λ the fit gives M back.
        let d = 4;
        let truth: Vec<f32> = (0..d * d)
            .map(|i| ((i * 7 % 11) as f32 - 5.0) / 5.0)
            .collect();
        let x: Vec<Vec<f32>> = (0..50)
            .map(|n| {
                (0..d)
                    .map(|i| (((n * 31 + i * 17) % 23) as f32 - 11.0) / 11.0)
                    .collect()
            })
            .collect();
        let y: Vec<Vec<f32>> = x.iter().map(|r| apply(&truth, r)).collect();
        let m = ridge(&x, &y, 1e-9).unwrap();
        for (got, want) in m.iter().zip(&truth) {
            assert!((got - want).abs() < 1e-3, "{m:?} vs {truth:?}");
        }
        assert!(ridge(&x, &y[..3], 1.0).is_err(), "rows must pair up");
        // Without pairs a correction is the identity; with many, the truth.
        let empty = Normal::new(d);
        let id = empty.solve(1.0, Toward::Identity).unwrap();
        for i in 0..d {
            for j in 0..d {
                assert_eq!(id[i * d + j], f32::from(u8::from(i == j)));
            }
        }
        let mut normal = Normal::new(d);
        for (xi, yi) in x.iter().zip(&y) {
            normal.add(xi, yi);
        }
        assert_eq!(normal.len(), 50);
        let m = normal.solve(1e-9, Toward::Identity).unwrap();
        for (got, want) in m.iter().zip(&truth) {
            assert!((got - want).abs() < 1e-3, "{m:?} vs {truth:?}");
        }
        assert!(ridge(&[], &[], 1.0).is_err());
    }
}
