//! The embedded chat model: any GGUF chat model run in-process by llama.cpp (`llama-cpp-2`).
//!
//! One worker thread owns the inference context; requests wait in a bounded FIFO queue, so
//! concurrent askers take turns instead of thrashing two cores, and a full queue answers
//! `model_busy` at once. Tokens stream back over a channel; when the caller goes away (a client
//! disconnects) generation stops at the next token.
//!
//! Prefix reuse: the worker keeps the tokens whose keys and values are in the context's KV
//! cache from the last generation. A new prompt that starts the same way (the rules and the
//! persona come first in every prompt, see `prompt::build`) only decodes what differs, which
//! cuts the time to first token by the length of the shared prefix.

use super::{
    ChatMessage, ChatModel, FinishReason, GenerationParams, ModelError, ModelEvent, ModelStream,
    PromptProfile, Usage,
};
use futures::future::BoxFuture;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use tokio::sync::mpsc;

/// Settings of the embedded model.
#[derive(Clone, Debug)]
pub struct LocalModelConfig {
    /// A GGUF chat model (its own chat template is used).
    pub path: PathBuf,
    /// Context window to allocate (prompt + reply), capped at what the model was trained on.
    pub context_tokens: u32,
    /// Inference threads; 0 = all cores.
    pub threads: usize,
    /// Requests that may wait for the model; one more is refused with `model_busy`.
    pub queue: usize,
    /// The name it is listed under (`/v1/models`); `None`: the file's stem.
    pub name: Option<String>,
    /// Per-model prompt settings (posts per prompt, repetition penalty).
    pub prompt: PromptProfile,
    /// Keep the KV cache of the previous prompt and decode only what differs.
    pub prefix_cache: bool,
}

impl Default for LocalModelConfig {
    fn default() -> Self {
        let known = super::catalog::find(super::DEFAULT_LOCAL_MODEL);
        LocalModelConfig {
            path: known.map_or_else(
                || PathBuf::from("model.gguf"),
                |k| k.path(std::path::Path::new("models")),
            ),
            context_tokens: 4096,
            threads: 0,
            queue: 16,
            name: known.map(|k| k.name.to_string()),
            prompt: known.map(|k| k.prompt).unwrap_or_default(),
            prefix_cache: true,
        }
    }
}

/// How much of the prompts the KV cache spared (for `bench --agent` and metrics).
#[derive(Debug, Default)]
pub struct PrefixCacheStats {
    /// Prompt tokens over all generations.
    pub prompt_tokens: AtomicUsize,
    /// Of those, the tokens already in the cache (not decoded again).
    pub reused_tokens: AtomicUsize,
}

struct Job {
    prompt: String,
    params: GenerationParams,
    tx: mpsc::Sender<Result<ModelEvent, ModelError>>,
    queued_at: Instant,
}

struct Shared {
    model: LlamaModel,
    template: Option<LlamaChatTemplate>,
    prompt: PromptProfile,
    prefix_cache: bool,
    stats: PrefixCacheStats,
}

/// The embedded llama.cpp model. Cheap to share behind an `Arc`.
pub struct LocalChatModel {
    id: String,
    shared: Arc<Shared>,
    jobs: mpsc::Sender<Job>,
    context_tokens: usize,
    waiting: Arc<AtomicUsize>,
}

/// llama.cpp's backend may be initialised once per process.
fn backend() -> Result<&'static LlamaBackend, ModelError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            let mut backend = LlamaBackend::init().map_err(|e| e.to_string())?;
            backend.void_logs();
            Ok(backend)
        })
        .as_ref()
        .map_err(|e| ModelError::Internal(format!("llama.cpp backend: {e}")))
}

impl LocalChatModel {
    /// Loads the model and starts its worker thread.
    pub fn load(config: &LocalModelConfig) -> Result<LocalChatModel, ModelError> {
        if !config.path.is_file() {
            return Err(ModelError::Internal(format!(
                "chat model file {} not found (run `tidings models fetch {}` to fetch it, or set model.local to a GGUF path)",
                config.path.display(),
                config.name.as_deref().unwrap_or("NAME")
            )));
        }
        let backend = backend()?;
        let model = LlamaModel::load_from_file(backend, &config.path, &LlamaModelParams::default())
            .map_err(|e| ModelError::Internal(format!("load {}: {e}", config.path.display())))?;
        let template = model.chat_template(None).ok();
        if template.is_none() {
            tracing::warn!(path = %config.path.display(), "the model has no chat template; using ChatML");
        }
        let trained = model.n_ctx_train().max(512);
        let context_tokens = config.context_tokens.clamp(512, trained);
        let id = config.name.clone().unwrap_or_else(|| {
            config
                .path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("local")
                .to_lowercase()
        });
        let shared = Arc::new(Shared {
            model,
            template,
            prompt: config.prompt,
            prefix_cache: config.prefix_cache,
            stats: PrefixCacheStats::default(),
        });
        let (jobs, rx) = mpsc::channel(config.queue.max(1));
        let threads = if config.threads == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            config.threads
        };
        let waiting = Arc::new(AtomicUsize::new(0));
        let worker_shared = shared.clone();
        let worker_waiting = waiting.clone();
        std::thread::Builder::new()
            .name("tidings-llm".into())
            .spawn(move || worker(worker_shared, rx, context_tokens, threads, worker_waiting))
            .map_err(|e| ModelError::Internal(format!("start the model thread: {e}")))?;
        tracing::info!(model = %id, context_tokens, threads, "local chat model loaded");
        Ok(LocalChatModel {
            id,
            shared,
            jobs,
            context_tokens: context_tokens as usize,
            waiting,
        })
    }

    /// Requests waiting for or being served by the model.
    pub fn queue_depth(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Prompt tokens decoded and reused from the KV cache so far.
    pub fn prefix_cache_stats(&self) -> &PrefixCacheStats {
        &self.shared.stats
    }

    /// The prompt the model will see: the model's own chat template (ChatML when it has none).
    pub fn render(&self, messages: &[ChatMessage]) -> Result<String, ModelError> {
        if let Some(template) = &self.shared.template {
            let chat: Result<Vec<LlamaChatMessage>, _> = messages
                .iter()
                .map(|m| {
                    LlamaChatMessage::new(m.role.as_str().to_string(), m.content.replace('\0', ""))
                })
                .collect();
            let chat = chat.map_err(|e| ModelError::Internal(format!("chat message: {e}")))?;
            if let Ok(prompt) = self.shared.model.apply_chat_template(template, &chat, true) {
                return Ok(prompt);
            }
        }
        let mut prompt = String::new();
        for m in messages {
            prompt.push_str(&format!(
                "<|im_start|>{}\n{}<|im_end|>\n",
                m.role.as_str(),
                m.content
            ));
        }
        prompt.push_str("<|im_start|>assistant\n");
        Ok(prompt)
    }
}

impl ChatModel for LocalChatModel {
    fn id(&self) -> &str {
        &self.id
    }

    fn context_tokens(&self) -> usize {
        self.context_tokens
    }

    fn prefix_cache(&self) -> Option<&PrefixCacheStats> {
        Some(&self.shared.stats)
    }

    fn preferred_posts(&self) -> Option<usize> {
        Some(self.shared.prompt.max_posts.max(1))
    }

    fn count_tokens(&self, text: &str) -> usize {
        self.shared
            .model
            .vocab()
            .tokenize(text.as_bytes(), false, false)
            .len()
    }

    fn stream(
        &self,
        messages: Vec<ChatMessage>,
        params: GenerationParams,
    ) -> BoxFuture<'_, Result<ModelStream, ModelError>> {
        Box::pin(async move {
            let prompt = self.render(&messages)?;
            let (tx, rx) = mpsc::channel(256);
            let job = Job {
                prompt,
                params,
                tx,
                queued_at: Instant::now(),
            };
            self.jobs.try_send(job).map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => ModelError::Busy(
                    "too many requests are waiting for the local model; retry in a few seconds"
                        .into(),
                ),
                mpsc::error::TrySendError::Closed(_) => {
                    ModelError::Internal("the local model thread has stopped".into())
                }
            })?;
            self.waiting.fetch_add(1, Ordering::Relaxed);
            let stream = futures::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            });
            Ok(Box::pin(stream) as ModelStream)
        })
    }
}

fn worker(
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<Job>,
    context_tokens: u32,
    threads: usize,
    waiting: Arc<AtomicUsize>,
) {
    let backend = match backend() {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "local model worker cannot start");
            return;
        }
    };
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(context_tokens))
        .with_n_batch(512)
        .with_n_threads(threads as i32)
        .with_n_threads_batch(threads as i32);
    let mut ctx = match shared.model.new_context(backend, params) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "could not create the llama.cpp context");
            while let Some(job) = rx.blocking_recv() {
                let _ = job
                    .tx
                    .blocking_send(Err(ModelError::Internal(format!("llama.cpp context: {e}"))));
                waiting.fetch_sub(1, Ordering::Relaxed);
            }
            return;
        }
    };
    // The tokens whose keys and values sit in the KV cache, in position order.
    let mut cached: Vec<LlamaToken> = Vec::new();
    while let Some(job) = rx.blocking_recv() {
        let waited = job.queued_at.elapsed();
        if job.tx.is_closed() {
            waiting.fetch_sub(1, Ordering::Relaxed);
            continue;
        }
        if !shared.prefix_cache {
            ctx.clear_kv_cache();
            cached.clear();
        }
        let started = Instant::now();
        // A panic inside one generation fails that request only; the thread serves the next.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            generate(
                &shared,
                &mut ctx,
                &job,
                context_tokens as usize,
                &mut cached,
            )
        }))
        .unwrap_or_else(|panic| {
            let message = crate::panic_message(panic.as_ref());
            tracing::error!(panic = %message, "the local model panicked in a generation");
            // What the cache holds is unknown now: start the next one from scratch.
            ctx.clear_kv_cache();
            cached.clear();
            Err(ModelError::Internal(format!(
                "the local model failed: {message}"
            )))
        });
        match result {
            Ok(usage) => tracing::debug!(
                waited_ms = waited.as_millis() as u64,
                took_ms = started.elapsed().as_millis() as u64,
                prompt_tokens = usage.prompt_tokens,
                completion_tokens = usage.completion_tokens,
                "local generation done"
            ),
            Err(e) => {
                ctx.clear_kv_cache();
                cached.clear();
                let _ = job.tx.blocking_send(Err(e));
            }
        }
        waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How many leading tokens of `prompt` can stay in a cache that holds `cached`: the common
/// prefix, less one so that the last prompt token is always decoded (its logits are sampled).
pub(crate) fn reusable_prefix(cached: &[LlamaToken], prompt: &[LlamaToken]) -> usize {
    let common = cached
        .iter()
        .zip(prompt)
        .take_while(|(a, b)| a == b)
        .count();
    common.min(prompt.len().saturating_sub(1))
}

/// Decodes the prompt (after the part the KV cache already holds), then samples until
/// end-of-generation, `max_tokens`, or a closed channel. `cached` is kept equal to the tokens
/// in the cache.
fn generate(
    shared: &Shared,
    ctx: &mut llama_cpp_2::context::LlamaContext<'_>,
    job: &Job,
    n_ctx: usize,
    cached: &mut Vec<LlamaToken>,
) -> Result<Usage, ModelError> {
    let model = &shared.model;
    let vocab = model.vocab();
    let tokens = vocab.tokenize(job.prompt.as_bytes(), true, true);
    if tokens.len() + 16 >= n_ctx {
        return Err(ModelError::ContextTooLong(format!(
            "the prompt takes {} tokens; the model's context is {n_ctx}",
            tokens.len()
        )));
    }
    let max_new = (job.params.max_tokens as usize).min(n_ctx - tokens.len() - 1);
    // Drop what differs from the cached tokens; keep the shared prefix.
    let mut keep = reusable_prefix(cached, &tokens);
    if keep < cached.len() {
        let removed = ctx
            .clear_kv_cache_seq(Some(0), Some(keep as u32), None)
            .unwrap_or(false);
        if !removed {
            ctx.clear_kv_cache();
            keep = 0;
        }
        cached.truncate(keep);
    }
    shared
        .stats
        .prompt_tokens
        .fetch_add(tokens.len(), Ordering::Relaxed);
    shared
        .stats
        .reused_tokens
        .fetch_add(keep, Ordering::Relaxed);
    let n_batch = 512usize;
    let mut batch = LlamaBatch::new(n_batch, 1);
    let last = tokens.len() - 1;
    for (chunk_no, chunk) in tokens[keep..].chunks(n_batch).enumerate() {
        batch.clear();
        for (j, token) in chunk.iter().enumerate() {
            let pos = keep + chunk_no * n_batch + j;
            batch
                .add(*token, pos as i32, &[0], pos == last)
                .map_err(|e| ModelError::Internal(format!("batch: {e}")))?;
        }
        ctx.decode(&mut batch)
            .map_err(|e| ModelError::Internal(format!("decode the prompt: {e}")))?;
        cached.extend_from_slice(chunk);
    }
    let penalty = shared.prompt.repeat_penalty.max(1.0);
    let mut sampler = if job.params.temperature <= 0.0 {
        LlamaSampler::chain_simple([
            LlamaSampler::penalties(model.n_vocab(), 64, penalty, 0.0, 0.0),
            LlamaSampler::greedy(),
        ])
    } else {
        LlamaSampler::chain_simple([
            LlamaSampler::penalties(model.n_vocab(), 64, penalty, 0.0, 0.0),
            LlamaSampler::top_p(job.params.top_p.clamp(0.05, 1.0), 1),
            LlamaSampler::temp(job.params.temperature),
            LlamaSampler::dist(job.params.seed),
        ])
    };
    let mut pos = tokens.len();
    let mut pending_bytes: Vec<u8> = Vec::new();
    let mut generated = 0usize;
    let mut finish = FinishReason::Length;
    let mut logits_index = batch.n_tokens() - 1;
    while generated < max_new {
        let token: LlamaToken = sampler.sample(ctx, logits_index);
        if vocab.is_eog(token) {
            finish = FinishReason::Stop;
            break;
        }
        generated += 1;
        pending_bytes.extend(vocab.token_to_piece(token, false, None));
        let text = take_valid_utf8(&mut pending_bytes);
        if !text.is_empty() && job.tx.blocking_send(Ok(ModelEvent::Delta(text))).is_err() {
            // The caller went away: stop spending the CPU on it.
            return Ok(Usage {
                prompt_tokens: tokens.len() as u32,
                completion_tokens: generated as u32,
            });
        }
        batch.clear();
        batch
            .add(token, pos as i32, &[0], true)
            .map_err(|e| ModelError::Internal(format!("batch: {e}")))?;
        pos += 1;
        logits_index = 0;
        ctx.decode(&mut batch)
            .map_err(|e| ModelError::Internal(format!("decode: {e}")))?;
        cached.push(token);
    }
    if !pending_bytes.is_empty() {
        let rest = String::from_utf8_lossy(&pending_bytes).into_owned();
        let _ = job.tx.blocking_send(Ok(ModelEvent::Delta(rest)));
    }
    let usage = Usage {
        prompt_tokens: tokens.len() as u32,
        completion_tokens: generated as u32,
    };
    let _ = job.tx.blocking_send(Ok(ModelEvent::Done {
        finish_reason: finish,
        usage,
    }));
    Ok(usage)
}

/// Takes the longest valid UTF-8 prefix out of `bytes`, leaving an incomplete trailing
/// character (a multi-byte emoji split across tokens) for the next token.
fn take_valid_utf8(bytes: &mut Vec<u8>) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => {
            let s = s.to_string();
            bytes.clear();
            s
        }
        Err(e) => {
            let valid = e.valid_up_to();
            if e.error_len().is_some() {
                // Really invalid bytes (not just incomplete): replace them.
                let s = String::from_utf8_lossy(bytes).into_owned();
                bytes.clear();
                return s;
            }
            let s = String::from_utf8_lossy(&bytes[..valid]).into_owned();
            bytes.drain(..valid);
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{reusable_prefix, take_valid_utf8};
    use llama_cpp_2::token::LlamaToken;

    #[test]
    fn the_shared_prefix_is_reused_but_the_last_prompt_token_is_decoded() {
        let t = |v: &[i32]| v.iter().map(|&i| LlamaToken::new(i)).collect::<Vec<_>>();
        assert_eq!(reusable_prefix(&t(&[1, 2, 3, 9, 9]), &t(&[1, 2, 3, 4])), 3);
        assert_eq!(reusable_prefix(&t(&[]), &t(&[1, 2])), 0);
        // The same prompt again: everything but the last token.
        assert_eq!(reusable_prefix(&t(&[1, 2, 3]), &t(&[1, 2, 3])), 2);
        assert_eq!(reusable_prefix(&t(&[5]), &t(&[1, 2])), 0);
        assert_eq!(reusable_prefix(&t(&[1]), &t(&[])), 0);
    }

    #[test]
    fn split_multibyte_characters_wait_for_their_rest() {
        let emoji = "🔥".as_bytes();
        let mut buf = b"hot ".to_vec();
        buf.extend_from_slice(&emoji[..2]);
        assert_eq!(take_valid_utf8(&mut buf), "hot ");
        buf.extend_from_slice(&emoji[2..]);
        assert_eq!(take_valid_utf8(&mut buf), "🔥");
        assert!(buf.is_empty());
    }
}
