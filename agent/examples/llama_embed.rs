//! all-MiniLM-L6-v2 through llama.cpp beside the candle embedder the index uses, in one process:
//! posts/s of each on the same posts, and how close llama.cpp's vectors are to candle's (mean
//! and lowest cosine), for a GGUF of the same weights (`scripts/minilm-to-gguf.py` writes F16
//! or Q8_0).
//! `llama_embed GGUF MODEL_DIR POSTS_JSONL [N] [THREADS] [TOKENS_PER_DECODE]`
use anyhow::Context as _;
use llama_cpp_2::context::params::{LlamaContextParams, LlamaPoolingType};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use std::num::NonZeroU32;
use std::path::Path;
use std::time::Instant;

/// The candle embedder's limit, so both see the same tokens.
const MAX_TOKENS: usize = 128;
/// Room for one longest text in a llama.cpp batch (every sequence of a batch must fit one
/// micro-batch).
const BATCH_TOKENS: usize = 2048;
/// Sequences per decode at most.
const SEQUENCES: usize = 64;

/// Decodes the sequences in `batch` and appends their mean-pooled, unit-length vectors.
fn flush(
    ctx: &mut LlamaContext<'_>,
    batch: &mut LlamaBatch,
    pending: &mut usize,
    out: &mut Vec<Vec<f32>>,
) -> anyhow::Result<()> {
    if *pending == 0 {
        return Ok(());
    }
    ctx.clear_kv_cache();
    ctx.decode(batch)?;
    for s in 0..*pending {
        let mut v = ctx.embeddings_seq_ith(s as i32)?.to_vec();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm.max(1e-12));
        out.push(v);
    }
    batch.clear();
    *pending = 0;
    Ok(())
}

/// Every text's vector through llama.cpp, about `per_decode` tokens per decode.
fn embed_llama(
    model: &LlamaModel,
    ctx: &mut LlamaContext<'_>,
    texts: &[String],
    per_decode: usize,
) -> anyhow::Result<Vec<Vec<f32>>> {
    let mut out = Vec::with_capacity(texts.len());
    let mut batch = LlamaBatch::new(BATCH_TOKENS, SEQUENCES as i32);
    let mut pending = 0usize;
    for text in texts {
        let mut tokens = model.vocab().tokenize(text.as_bytes(), true, false);
        if tokens.len() > MAX_TOKENS {
            // Keep the closing [SEP], as the candle embedder's truncation does.
            let last = tokens[tokens.len() - 1];
            tokens.truncate(MAX_TOKENS - 1);
            tokens.push(last);
        }
        if batch.n_tokens() as usize + tokens.len() > per_decode || pending == SEQUENCES {
            flush(ctx, &mut batch, &mut pending, &mut out)?;
        }
        batch.add_sequence(&tokens, pending as i32, false)?;
        pending += 1;
    }
    flush(ctx, &mut batch, &mut pending, &mut out)?;
    Ok(out)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(
        args.len() >= 4,
        "usage: llama_embed GGUF MODEL_DIR POSTS_JSONL [N] [THREADS] [TOKENS_PER_DECODE]"
    );
    let (gguf, dir, posts) = (Path::new(&args[1]), Path::new(&args[2]), &args[3]);
    let number = |i: usize, default: usize| -> anyhow::Result<usize> {
        args.get(i).map_or(Ok(default), |a| {
            a.parse().with_context(|| format!("argument {i}: {a}"))
        })
    };
    let n = number(4, 400)?;
    let threads = number(5, 2)? as i32;
    // Tokens per decode: llama.cpp attends over the whole batch (masked per sequence), so a
    // large batch costs quadratically.
    let per_decode = number(6, 512)?.min(BATCH_TOKENS);
    let texts: Vec<String> = std::fs::read_to_string(posts)
        .with_context(|| format!("read {posts}"))?
        .lines()
        .take(n)
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)?;
            Ok(v["text"].as_str().unwrap_or_default().to_string())
        })
        .collect::<anyhow::Result<_>>()?;

    let mut backend = LlamaBackend::init()?;
    backend.void_logs();
    let model = LlamaModel::load_from_file(&backend, gguf, &LlamaModelParams::default())
        .with_context(|| format!("load {}", gguf.display()))?;
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(BATCH_TOKENS as u32))
        .with_n_batch(BATCH_TOKENS as u32)
        .with_n_ubatch(BATCH_TOKENS as u32)
        .with_n_seq_max(SEQUENCES as u32)
        .with_embeddings(true)
        .with_pooling_type(LlamaPoolingType::Mean)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let mut ctx = model.new_context(&backend, params)?;

    let candle = tidings_index::LocalEmbedder::load(dir, 1)?;
    // Warm both, then time them alternately.
    candle.embed_blocking(&texts[..texts.len().min(32)])?;
    let (mut t_candle, mut t_llama) = (f64::MAX, f64::MAX);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        let started = Instant::now();
        a = candle.embed_blocking(&texts)?;
        t_candle = t_candle.min(started.elapsed().as_secs_f64());
        let started = Instant::now();
        b = embed_llama(&model, &mut ctx, &texts, per_decode)?;
        t_llama = t_llama.min(started.elapsed().as_secs_f64());
    }
    let cos: Vec<f32> = a
        .iter()
        .zip(&b)
        .map(|(x, y)| x.iter().zip(y).map(|(p, q)| p * q).sum())
        .collect();
    let mean = cos.iter().sum::<f32>() / cos.len().max(1) as f32;
    let min = cos.iter().copied().fold(f32::MAX, f32::min);
    println!(
        "| {} | {} posts | candle {:.1} posts/s | llama.cpp {:.1} posts/s ({:.2}×) | cosine to candle mean {mean:.4}, lowest {min:.4} |",
        gguf.display(),
        texts.len(),
        texts.len() as f64 / t_candle,
        texts.len() as f64 / t_llama,
        t_candle / t_llama
    );
    Ok(())
}
