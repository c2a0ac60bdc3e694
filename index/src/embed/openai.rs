//! Any OpenAI-compatible `/v1/embeddings` endpoint (OpenAI, vLLM, Ollama, llama.cpp server).

use super::{normalize, Embedder};
use crate::IndexError;
use futures::future::BoxFuture;
use serde::Deserialize;
use std::time::Duration;

/// Where and how to call the remote embedder.
#[derive(Clone, Debug)]
pub struct OpenAiEmbedderConfig {
    /// Base URL up to and including `/v1`, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    pub api_key: Option<String>,
    pub model: String,
    pub dim: usize,
    pub timeout: Duration,
}

/// Calls `{base_url}/embeddings` with a timeout; vectors are re-normalised on arrival.
pub struct OpenAiEmbedder {
    config: OpenAiEmbedderConfig,
    client: reqwest::Client,
    name: String,
}

#[derive(Deserialize)]
struct EmbeddingsResponse {
    data: Vec<EmbeddingItem>,
}

#[derive(Deserialize)]
struct EmbeddingItem {
    index: usize,
    embedding: Vec<f32>,
}

impl OpenAiEmbedder {
    pub fn new(config: OpenAiEmbedderConfig) -> Result<OpenAiEmbedder, IndexError> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| IndexError::internal(format!("build http client: {e}")))?;
        let name = format!("openai:{}", config.model);
        Ok(OpenAiEmbedder {
            config,
            client,
            name,
        })
    }

    async fn call(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, IndexError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let url = format!("{}/embeddings", self.config.base_url.trim_end_matches('/'));
        let mut request = self.client.post(&url).json(&serde_json::json!({
            "model": self.config.model,
            "input": texts,
        }));
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                IndexError::Timeout(format!("embeddings endpoint {url} timed out"))
            } else {
                IndexError::Unavailable(format!("embeddings endpoint {url} unreachable: {e}"))
            }
        })?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            let body: String = body.chars().take(300).collect();
            return Err(IndexError::Unavailable(format!(
                "embeddings endpoint answered {status}: {body}"
            )));
        }
        let parsed: EmbeddingsResponse = response.json().await.map_err(|e| {
            IndexError::Unavailable(format!("embeddings endpoint sent a malformed body: {e}"))
        })?;
        let mut out = vec![Vec::new(); texts.len()];
        for mut item in parsed.data {
            if item.index >= out.len() || item.embedding.len() != self.config.dim {
                return Err(IndexError::Unavailable(format!(
                    "embeddings endpoint returned index {} with {} dimensions (expected < {} and {})",
                    item.index,
                    item.embedding.len(),
                    out.len(),
                    self.config.dim
                )));
            }
            normalize(&mut item.embedding);
            out[item.index] = item.embedding;
        }
        if out.iter().any(Vec::is_empty) {
            return Err(IndexError::Unavailable(
                "embeddings endpoint left some inputs without a vector".into(),
            ));
        }
        Ok(out)
    }
}

impl Embedder for OpenAiEmbedder {
    fn dim(&self) -> usize {
        self.config.dim
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn embed(&self, texts: Vec<String>) -> BoxFuture<'_, Result<Vec<Vec<f32>>, IndexError>> {
        Box::pin(self.call(texts))
    }
}
