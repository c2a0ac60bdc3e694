//! all-MiniLM-L6-v2 (or any BERT sentence-embedding model in the same layout) run with candle:
//! batch-longest padding, mean pooling over the attention mask, L2 normalisation.

use super::{normalize, Embedder};
use crate::IndexError;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use futures::future::BoxFuture;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// Longest input in tokens; posts are short, and MiniLM was trained on 128-token inputs.
const MAX_TOKENS: usize = 128;

struct Model {
    bert: BertModel,
    tokenizer: Tokenizer,
}

/// The local embedder: a small pool of model instances sharing the same memory-mapped weights,
/// so a query's embedding never waits behind a large ingest batch on the other instance.
pub struct LocalEmbedder {
    models: Arc<Vec<Mutex<Model>>>,
    dim: usize,
    name: String,
}

impl LocalEmbedder {
    /// Loads the model in `dir` (`config.json`, `tokenizer.json`, `model.safetensors`) with
    /// `instances` independent instances (at least 1).
    pub fn load(dir: &Path, instances: usize) -> Result<LocalEmbedder, IndexError> {
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name)).map_err(|e| {
                IndexError::Unavailable(format!(
                    "embedding model file {} is missing ({e}); run `make setup` to fetch it",
                    dir.join(name).display()
                ))
            })
        };
        let config: Config = serde_json::from_str(&read("config.json")?).map_err(|e| {
            IndexError::internal(format!("parse {}/config.json: {e}", dir.display()))
        })?;
        let dim = config.hidden_size;
        let weights = dir.join("model.safetensors");
        if !weights.exists() {
            return Err(IndexError::Unavailable(format!(
                "embedding weights {} are missing; run `make setup` to fetch them",
                weights.display()
            )));
        }
        let mut models = Vec::new();
        for _ in 0..instances.max(1) {
            let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|e| {
                IndexError::internal(format!("load {}/tokenizer.json: {e}", dir.display()))
            })?;
            // The shipped tokenizer pads to 128; pad each batch to its longest input instead.
            tokenizer.with_padding(Some(PaddingParams {
                strategy: PaddingStrategy::BatchLongest,
                ..Default::default()
            }));
            tokenizer
                .with_truncation(Some(TruncationParams {
                    max_length: MAX_TOKENS,
                    ..Default::default()
                }))
                .map_err(|e| IndexError::internal(format!("configure truncation: {e}")))?;
            // SAFETY: the weights file is opened read-only and not modified while mapped.
            let vb = unsafe {
                VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &Device::Cpu)
            }
            .map_err(|e| IndexError::internal(format!("map {}: {e}", weights.display())))?;
            let bert = BertModel::load(vb, &config)
                .map_err(|e| IndexError::internal(format!("load bert: {e}")))?;
            models.push(Mutex::new(Model { bert, tokenizer }));
        }
        let model_name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "bert".into());
        Ok(LocalEmbedder {
            models: Arc::new(models),
            dim,
            name: format!("local:{model_name}"),
        })
    }

    /// Embeds on the calling thread (blocking). Picks a free instance, or waits for the first.
    pub fn embed_blocking(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, IndexError> {
        embed_with_pool(&self.models, texts)
    }

    /// Embeds inputs given as token ids, each of the same length (no padding): the mean of the
    /// outputs between the first and last position (the special tokens), normalised. What
    /// distilling a static embedder feeds the model.
    #[doc(hidden)]
    pub fn embed_ids_blocking<const N: usize>(
        &self,
        inputs: &[[u32; N]],
    ) -> Result<Vec<Vec<f32>>, IndexError> {
        let model = self.models[0]
            .lock()
            .map_err(|_| IndexError::internal("embedder poisoned by an earlier panic"))?;
        let run = || -> Result<Vec<Vec<f32>>, Box<dyn std::error::Error + Send + Sync>> {
            let ids: Vec<u32> = inputs.iter().flatten().copied().collect();
            let device = Device::Cpu;
            let ids = Tensor::from_vec(ids, (inputs.len(), N), &device)?;
            let mask = ids.ones_like()?;
            let hidden = model.bert.forward(&ids, &ids.zeros_like()?, Some(&mask))?;
            // The positions between the first and the last ([CLS] and [SEP]): the tokens'
            // own outputs, not the special tokens' shared ones.
            let inner = if N > 2 {
                hidden.narrow(1, 1, N - 2)?
            } else {
                hidden
            };
            let mut vectors: Vec<Vec<f32>> = inner.mean(1)?.to_vec2()?;
            for v in &mut vectors {
                normalize(v);
            }
            Ok(vectors)
        };
        run().map_err(|e| IndexError::internal(format!("embed token ids: {e}")))
    }
}

fn embed_with_pool(models: &[Mutex<Model>], texts: &[String]) -> Result<Vec<Vec<f32>>, IndexError> {
    if texts.is_empty() {
        return Ok(Vec::new());
    }
    for m in models {
        if let Ok(model) = m.try_lock() {
            return run(&model, texts);
        }
    }
    let model = models[0]
        .lock()
        .map_err(|_| IndexError::internal("embedder poisoned by an earlier panic"))?;
    run(&model, texts)
}

fn run(model: &Model, texts: &[String]) -> Result<Vec<Vec<f32>>, IndexError> {
    // Sort by length so each sub-batch pads little; restore the order at the end.
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&i| texts[i].len());
    let mut out = vec![Vec::new(); texts.len()];
    for chunk in order.chunks(32) {
        let batch: Vec<&str> = chunk.iter().map(|&i| texts[i].as_str()).collect();
        let vectors =
            run_batch(model, &batch).map_err(|e| IndexError::internal(format!("embed: {e}")))?;
        for (&i, v) in chunk.iter().zip(vectors) {
            out[i] = v;
        }
    }
    Ok(out)
}

fn run_batch(
    model: &Model,
    texts: &[&str],
) -> Result<Vec<Vec<f32>>, Box<dyn std::error::Error + Send + Sync>> {
    let encodings = model.tokenizer.encode_batch(texts.to_vec(), true)?;
    let len = encodings.first().map_or(0, |e| e.get_ids().len());
    let n = encodings.len();
    let mut ids = Vec::with_capacity(n * len);
    let mut mask = Vec::with_capacity(n * len);
    for e in &encodings {
        ids.extend(e.get_ids().iter().copied());
        mask.extend(e.get_attention_mask().iter().copied());
    }
    let device = Device::Cpu;
    let ids = Tensor::from_vec(ids, (n, len), &device)?;
    let mask = Tensor::from_vec(mask, (n, len), &device)?;
    let type_ids = ids.zeros_like()?;
    let hidden = model.bert.forward(&ids, &type_ids, Some(&mask))?; // (n, len, dim)
    let mask_f = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // (n, len, 1)
    let summed = hidden.broadcast_mul(&mask_f)?.sum(1)?; // (n, dim)
    let counts = mask_f.sum(1)?.clamp(1e-9, f64::MAX)?; // (n, 1)
    let pooled = summed.broadcast_div(&counts)?;
    let mut vectors: Vec<Vec<f32>> = pooled.to_vec2()?;
    for v in &mut vectors {
        normalize(v);
    }
    Ok(vectors)
}

impl Embedder for LocalEmbedder {
    fn dim(&self) -> usize {
        self.dim
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn embed(&self, texts: Vec<String>) -> BoxFuture<'_, Result<Vec<Vec<f32>>, IndexError>> {
        let models = self.models.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || embed_with_pool(&models, &texts))
                .await
                .map_err(|e| IndexError::internal(format!("embedder task failed: {e}")))?
        })
    }
}
