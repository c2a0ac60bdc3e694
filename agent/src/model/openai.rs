//! Any OpenAI-compatible chat API (xAI, OpenAI, vLLM, llama.cpp server, Ollama) over reqwest,
//! streamed with server-sent events. Retries 429/5xx and connection failures with backoff before
//! the first token; after that a broken stream is reported, never silently cut short.

use super::{
    ChatMessage, ChatModel, FinishReason, GenerationParams, ModelError, ModelEvent, ModelStream,
    ToolCall, ToolMessage, ToolSpec, ToolTurn, Usage,
};
use eventsource_stream::Eventsource;
use futures::future::BoxFuture;
use futures::StreamExt;
use serde::Deserialize;
use std::time::Duration;
use tidings_index::backoff::Backoff;

/// Settings of a remote chat model.
#[derive(Clone, Debug)]
pub struct OpenAiChatConfig {
    /// Base URL up to and including `/v1`, e.g. `https://api.x.ai/v1`.
    pub base_url: String,
    pub api_key: Option<String>,
    pub model: String,
    pub connect_timeout: Duration,
    /// Longest wait for the response headers, and then between two stream chunks.
    pub read_timeout: Duration,
    /// Retries on 429, 5xx and connection errors, before any token was received.
    pub max_retries: u32,
    /// First backoff; doubles each retry (a `Retry-After` header wins when present).
    pub backoff: Duration,
    pub context_tokens: usize,
    /// Whether the agent may offer the `search_posts` tool to this model.
    pub tools: bool,
}

impl Default for OpenAiChatConfig {
    fn default() -> Self {
        OpenAiChatConfig {
            base_url: "http://127.0.0.1:8000/v1".into(),
            api_key: None,
            model: "gpt-4o-mini".into(),
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(60),
            max_retries: 2,
            backoff: Duration::from_millis(500),
            context_tokens: 32_768,
            tools: false,
        }
    }
}

pub struct OpenAiChatModel {
    config: OpenAiChatConfig,
    client: reqwest::Client,
}

impl OpenAiChatModel {
    pub fn new(config: OpenAiChatConfig) -> Result<OpenAiChatModel, ModelError> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(|e| ModelError::Internal(format!("http client: {e}")))?;
        Ok(OpenAiChatModel { config, client })
    }

    fn url(&self) -> String {
        format!(
            "{}/chat/completions",
            self.config.base_url.trim_end_matches('/')
        )
    }

    /// Sends the request, retrying what is worth retrying. Returns the streaming response.
    async fn send(&self, body: &serde_json::Value) -> Result<reqwest::Response, ModelError> {
        let mut attempt = 0u32;
        let mut backoff = Backoff::new(self.config.backoff, Duration::from_secs(30));
        loop {
            let mut request = self.client.post(self.url()).json(body);
            if let Some(key) = &self.config.api_key {
                request = request.bearer_auth(key);
            }
            let outcome = tokio::time::timeout(self.config.read_timeout, request.send()).await;
            let (error, retry_after) = match outcome {
                Err(_) => (
                    ModelError::Timeout(format!(
                        "no response from {} within {:?}",
                        self.config.base_url, self.config.read_timeout
                    )),
                    None,
                ),
                Ok(Err(e)) if e.is_connect() || e.is_timeout() => (
                    ModelError::Unavailable(format!("{}: {e}", self.config.base_url)),
                    None,
                ),
                Ok(Err(e)) => return Err(ModelError::Unavailable(e.to_string())),
                Ok(Ok(response)) if response.status().is_success() => return Ok(response),
                Ok(Ok(response)) => {
                    let status = response.status().as_u16();
                    let retry_after = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let text = tokio::time::timeout(Duration::from_secs(5), response.text())
                        .await
                        .ok()
                        .and_then(Result::ok)
                        .unwrap_or_default();
                    let error = ModelError::Upstream {
                        status,
                        message: upstream_message(&text),
                    };
                    if status != 429 && status < 500 {
                        return Err(error);
                    }
                    (error, retry_after)
                }
            };
            if attempt >= self.config.max_retries {
                return Err(error);
            }
            let wait = retry_after
                .unwrap_or_else(|| backoff.next_delay())
                .min(Duration::from_secs(30));
            tracing::warn!(attempt, ?wait, error = %error, "upstream model failed; retrying");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }
}

/// A tool-exchange message in OpenAI's shape.
fn tool_message_json(m: &ToolMessage) -> serde_json::Value {
    match m {
        ToolMessage::Chat(c) => serde_json::json!({"role": c.role.as_str(), "content": c.content}),
        ToolMessage::Calls(calls) => serde_json::json!({
            "role": "assistant",
            "content": null,
            "tool_calls": calls.iter().map(|c| serde_json::json!({
                "id": c.id, "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            })).collect::<Vec<_>>(),
        }),
        ToolMessage::Result { call_id, content } => {
            serde_json::json!({"role": "tool", "tool_call_id": call_id, "content": content})
        }
    }
}

/// A tool in OpenAI's `tools` shape.
fn tool_spec_json(t: &ToolSpec) -> serde_json::Value {
    serde_json::json!({
        "type": "function",
        "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
    })
}

/// The `error.message` of an OpenAI-style error body, or the body itself (shortened).
fn upstream_message(body: &str) -> String {
    #[derive(Deserialize)]
    struct Body {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        message: String,
    }
    match serde_json::from_str::<Body>(body) {
        Ok(b) => b.error.message,
        Err(_) => {
            let t = body.trim();
            if t.is_empty() {
                "(empty body)".into()
            } else {
                t.chars().take(300).collect()
            }
        }
    }
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    usage: Option<ChunkUsage>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Option<ChunkDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChunkDelta {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct ChunkUsage {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
}

impl ChatModel for OpenAiChatModel {
    fn id(&self) -> &str {
        &self.config.model
    }

    fn context_tokens(&self) -> usize {
        self.config.context_tokens
    }

    /// Remote tokenizers are not available offline: about 4 characters a token, rounded up,
    /// which over-counts English slightly and so keeps prompts inside the window.
    fn count_tokens(&self, text: &str) -> usize {
        text.chars().count().div_ceil(4) + 1
    }

    fn supports_tools(&self) -> bool {
        self.config.tools
    }

    fn complete_with_tools(
        &self,
        messages: Vec<ToolMessage>,
        tools: Vec<ToolSpec>,
        params: GenerationParams,
    ) -> BoxFuture<'_, Result<ToolTurn, ModelError>> {
        Box::pin(async move {
            let body = serde_json::json!({
                "model": self.config.model,
                "messages": messages.iter().map(tool_message_json).collect::<Vec<_>>(),
                "tools": tools.iter().map(tool_spec_json).collect::<Vec<_>>(),
                "tool_choice": "auto",
                "stream": false,
                "max_tokens": params.max_tokens,
                "temperature": params.temperature,
                "seed": params.seed,
            });
            let response = self.send(&body).await?;
            let value: serde_json::Value =
                tokio::time::timeout(self.config.read_timeout, response.json())
                    .await
                    .map_err(|_| ModelError::Timeout("the tool round's body stalled".into()))?
                    .map_err(|e| ModelError::Malformed(format!("tool round: {e}")))?;
            let message = &value["choices"][0]["message"];
            if message.is_null() {
                return Err(ModelError::Malformed(
                    "tool round: no choices[0].message".into(),
                ));
            }
            let calls: Vec<ToolCall> = message["tool_calls"]
                .as_array()
                .map(|calls| {
                    calls
                        .iter()
                        .filter_map(|c| {
                            Some(ToolCall {
                                id: c["id"].as_str()?.to_string(),
                                name: c["function"]["name"].as_str()?.to_string(),
                                arguments: c["function"]["arguments"]
                                    .as_str()
                                    .unwrap_or("{}")
                                    .to_string(),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            if !calls.is_empty() {
                return Ok(ToolTurn::Calls(calls));
            }
            Ok(ToolTurn::Answer(
                message["content"].as_str().unwrap_or_default().to_string(),
            ))
        })
    }

    fn stream(
        &self,
        messages: Vec<ChatMessage>,
        params: GenerationParams,
    ) -> BoxFuture<'_, Result<ModelStream, ModelError>> {
        Box::pin(async move {
            let body = serde_json::json!({
                "model": self.config.model,
                "messages": messages,
                "stream": true,
                "stream_options": {"include_usage": true},
                "max_tokens": params.max_tokens,
                "temperature": params.temperature,
                "top_p": params.top_p,
                "seed": params.seed,
            });
            let response = self.send(&body).await?;
            let read_timeout = self.config.read_timeout;
            let events = response.bytes_stream().eventsource();
            let stream = async_stream::stream! {
                let mut events = std::pin::pin!(events);
                let mut finish: Option<FinishReason> = None;
                let mut usage = Usage::default();
                loop {
                    let next = match tokio::time::timeout(read_timeout, events.next()).await {
                        Err(_) => {
                            yield Err(ModelError::Timeout(format!(
                                "the upstream stream stalled for {read_timeout:?}"
                            )));
                            return;
                        }
                        Ok(next) => next,
                    };
                    let event = match next {
                        None => {
                            if finish.is_some() {
                                // Some servers end without [DONE] after the finish chunk.
                                yield Ok(ModelEvent::Done {
                                    finish_reason: finish.unwrap_or(FinishReason::Stop),
                                    usage,
                                });
                            } else {
                                yield Err(ModelError::Malformed(
                                    "the stream ended before the model finished".into(),
                                ));
                            }
                            return;
                        }
                        Some(Err(e)) => {
                            yield Err(ModelError::Malformed(format!("reading the stream: {e}")));
                            return;
                        }
                        Some(Ok(event)) => event,
                    };
                    let data = event.data.trim();
                    if data.is_empty() {
                        continue;
                    }
                    if data == "[DONE]" {
                        yield Ok(ModelEvent::Done {
                            finish_reason: finish.unwrap_or(FinishReason::Stop),
                            usage,
                        });
                        return;
                    }
                    let chunk: Chunk = match serde_json::from_str(data) {
                        Ok(c) => c,
                        Err(e) => {
                            let shown: String = data.chars().take(120).collect();
                            yield Err(ModelError::Malformed(format!(
                                "a stream chunk is not valid JSON ({e}): {shown}"
                            )));
                            return;
                        }
                    };
                    if let Some(u) = chunk.usage {
                        usage = Usage {
                            prompt_tokens: u.prompt_tokens,
                            completion_tokens: u.completion_tokens,
                        };
                    }
                    for choice in chunk.choices {
                        if let Some(text) = choice.delta.and_then(|d| d.content) {
                            if !text.is_empty() {
                                yield Ok(ModelEvent::Delta(text));
                            }
                        }
                        if let Some(reason) = choice.finish_reason {
                            finish = Some(if reason == "length" {
                                FinishReason::Length
                            } else {
                                FinishReason::Stop
                            });
                        }
                    }
                }
            };
            Ok(Box::pin(stream) as ModelStream)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{tool_message_json, tool_spec_json, upstream_message};
    use crate::model::{ChatMessage, Role, ToolCall, ToolMessage, ToolSpec};
    use serde_json::json;

    #[test]
    fn tool_messages_are_written_in_openai_shapes() {
        let call = ToolCall {
            id: "call_1".into(),
            name: "search_posts".into(),
            arguments: "{\"query\": \"東京\"}".into(),
        };
        assert_eq!(
            tool_message_json(&ToolMessage::Chat(ChatMessage::new(
                Role::User,
                "何が起きた？"
            ))),
            json!({"role": "user", "content": "何が起きた？"})
        );
        assert_eq!(
            tool_message_json(&ToolMessage::Calls(vec![call])),
            json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "search_posts", "arguments": "{\"query\": \"東京\"}"}}]})
        );
        assert_eq!(
            tool_message_json(&ToolMessage::Result {
                call_id: "call_1".into(),
                content: "[2] …".into()
            }),
            json!({"role": "tool", "tool_call_id": "call_1", "content": "[2] …"})
        );
        let spec = ToolSpec {
            name: "search_posts".into(),
            description: "d".into(),
            parameters: json!({"type": "object"}),
        };
        assert_eq!(
            tool_spec_json(&spec),
            json!({"type": "function", "function": {"name": "search_posts", "description": "d", "parameters": {"type": "object"}}})
        );
    }

    #[test]
    fn upstream_errors_are_read_from_openai_bodies() {
        assert_eq!(
            upstream_message(r#"{"error":{"message":"rate limited","type":"x"}}"#),
            "rate limited"
        );
        assert_eq!(upstream_message("  "), "(empty body)");
        assert_eq!(upstream_message("Bad Gateway"), "Bad Gateway");
    }
}
