//! all-MiniLM-L6-v2 through llama.cpp beside the candle embedder the index uses, in one process:
//! posts/s of each on the same posts, and how close llama.cpp's vectors are to candle's (mean
//! and lowest cosine), for a GGUF of the same weights (`scripts/minilm-to-gguf.py` writes F16
//! or Q8_0).
//! `llama_embed GGUF MODEL_DIR POSTS_JSONL [N] [THREADS] [TOKENS_PER_DECODE]`
use llama_cpp_2::context::params::{LlamaContextParams, LlamaPoolingType};
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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (gguf, dir, posts) = (Path::new(&args[1]), Path::new(&args[2]), &args[3]);
    let n: usize = args.get(4).map_or(400, |a| a.parse().unwrap());
    let threads: i32 = args.get(5).map_or(2, |a| a.parse().unwrap());
    // Tokens per decode: llama.cpp attends over the whole batch (masked per sequence), so a
    // large batch costs quadratically.
    let per_decode: usize = args.get(6).map_or(512, |a| a.parse().unwrap());
    let texts: Vec<String> = std::fs::read_to_string(posts)
        .unwrap()
        .lines()
        .take(n)
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["text"].as_str().unwrap_or_default().to_string()
        })
        .collect();

    let mut backend = LlamaBackend::init().unwrap();
    backend.void_logs();
    let model = LlamaModel::load_from_file(&backend, gguf, &LlamaModelParams::default()).unwrap();
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(BATCH_TOKENS as u32))
        .with_n_batch(BATCH_TOKENS as u32)
        .with_n_ubatch(BATCH_TOKENS as u32)
        .with_n_seq_max(64)
        .with_embeddings(true)
        .with_pooling_type(LlamaPoolingType::Mean)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let mut ctx = model.new_context(&backend, params).unwrap();

    let llama = |ctx: &mut llama_cpp_2::context::LlamaContext<'_>| -> Vec<Vec<f32>> {
        let mut out = Vec::with_capacity(texts.len());
        let mut batch = LlamaBatch::new(BATCH_TOKENS, 64);
        let mut pending = 0usize;
        let flush = |ctx: &mut llama_cpp_2::context::LlamaContext<'_>,
                     batch: &mut LlamaBatch,
                     pending: &mut usize,
                     out: &mut Vec<Vec<f32>>| {
            if *pending == 0 {
                return;
            }
            ctx.clear_kv_cache();
            ctx.decode(batch).unwrap();
            for s in 0..*pending {
                let mut v = ctx.embeddings_seq_ith(s as i32).unwrap().to_vec();
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.iter_mut().for_each(|x| *x /= norm.max(1e-12));
                out.push(v);
            }
            batch.clear();
            *pending = 0;
        };
        for text in &texts {
            let mut tokens = model.vocab().tokenize(text.as_bytes(), true, false);
            if tokens.len() > MAX_TOKENS {
                let last = *tokens.last().unwrap();
                tokens.truncate(MAX_TOKENS - 1);
                tokens.push(last);
            }
            if batch.n_tokens() as usize + tokens.len() > per_decode || pending == 64 {
                flush(ctx, &mut batch, &mut pending, &mut out);
            }
            batch.add_sequence(&tokens, pending as i32, false).unwrap();
            pending += 1;
        }
        flush(ctx, &mut batch, &mut pending, &mut out);
        out
    };

    let candle = tidings_index::LocalEmbedder::load(dir, 1).unwrap();
    // Warm both, then time them alternately.
    let _ = candle
        .embed_blocking(&texts[..texts.len().min(32)])
        .unwrap();
    let (mut t_candle, mut t_llama) = (f64::MAX, f64::MAX);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        let started = Instant::now();
        a = candle.embed_blocking(&texts).unwrap();
        t_candle = t_candle.min(started.elapsed().as_secs_f64());
        let started = Instant::now();
        b = llama(&mut ctx);
        t_llama = t_llama.min(started.elapsed().as_secs_f64());
    }
    let cos: Vec<f32> = a
        .iter()
        .zip(&b)
        .map(|(x, y)| x.iter().zip(y).map(|(p, q)| p * q).sum())
        .collect();
    let mean = cos.iter().sum::<f32>() / cos.len() as f32;
    let min = cos.iter().copied().fold(f32::MAX, f32::min);
    println!(
        "| {} | {} posts | candle {:.1} posts/s | llama.cpp {:.1} posts/s ({:.2}×) | cosine to candle mean {mean:.4}, lowest {min:.4} |",
        gguf.file_name().unwrap().to_string_lossy(),
        texts.len(),
        texts.len() as f64 / t_candle,
        texts.len() as f64 / t_llama,
        t_candle / t_llama
    );
}
