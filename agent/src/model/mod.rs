//! Inference backends behind one trait: [`ChatModel`]. Two real implementations:
//! [`OpenAiChatModel`] (any OpenAI-compatible chat API over HTTP, streamed) and
//! [`LocalChatModel`] (a GGUF chat model run in-process by llama.cpp, with a bounded queue).

pub mod catalog;
mod local;
mod openai;

pub use catalog::{KnownModel, PromptProfile, DEFAULT_LOCAL_MODEL};
pub use local::{LocalChatModel, LocalModelConfig, PrefixCacheStats};
pub use openai::{OpenAiChatConfig, OpenAiChatModel};

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

/// Who said a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One chat message as a backend sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: Role, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role,
            content: content.into(),
        }
    }
}

/// Sampling settings for one generation.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerationParams {
    pub max_tokens: u32,
    /// 0 means greedy.
    pub temperature: f32,
    pub top_p: f32,
    pub seed: u32,
}

impl Default for GenerationParams {
    fn default() -> Self {
        GenerationParams {
            max_tokens: 256,
            temperature: 0.2,
            top_p: 0.9,
            seed: 42,
        }
    }
}

/// Why generation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Stop,
    Length,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

/// Token counts of one generation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

/// What a backend's stream yields: text deltas, then exactly one `Done`.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelEvent {
    Delta(String),
    Done {
        finish_reason: FinishReason,
        usage: Usage,
    },
}

pub type ModelStream = BoxStream<'static, Result<ModelEvent, ModelError>>;

/// Failures of an inference backend, each with a stable code for API errors.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ModelError {
    /// The local model's queue is full: try again shortly.
    #[error("the model is busy: {0}")]
    Busy(String),
    #[error("the model timed out: {0}")]
    Timeout(String),
    /// The upstream answered with an error status.
    #[error("the upstream model answered {status}: {message}")]
    Upstream { status: u16, message: String },
    /// The upstream could not be reached.
    #[error("the upstream model is unreachable: {0}")]
    Unavailable(String),
    /// The upstream's answer could not be read (bad JSON, broken SSE).
    #[error("the upstream model sent a malformed response: {0}")]
    Malformed(String),
    /// The prompt does not fit the model's context window.
    #[error("{0}")]
    ContextTooLong(String),
    #[error("model error: {0}")]
    Internal(String),
}

impl ModelError {
    /// Stable code for API errors.
    pub fn code(&self) -> &'static str {
        match self {
            ModelError::Busy(_) => "model_busy",
            ModelError::Timeout(_) => "model_timeout",
            ModelError::Upstream { .. } => "upstream_error",
            ModelError::Unavailable(_) => "upstream_unavailable",
            ModelError::Malformed(_) => "upstream_malformed",
            ModelError::ContextTooLong(_) => "context_too_long",
            ModelError::Internal(_) => "model_error",
        }
    }
}

/// One round of a tool-calling exchange: the model either asks for tool calls or answers.
#[derive(Clone, Debug, PartialEq)]
pub enum ToolTurn {
    Calls(Vec<ToolCall>),
    Answer(String),
}

/// A tool call as the model asked for it (`arguments` is the model's JSON text).
#[derive(Clone, Debug, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// A message of a tool-calling exchange, in no backend's wire shape (each backend writes its
/// own: [`openai::OpenAiChatModel`] the OpenAI `tool_calls` / `tool` messages).
#[derive(Clone, Debug, PartialEq)]
pub enum ToolMessage {
    /// A system, user or assistant text.
    Chat(ChatMessage),
    /// The model asked for these calls.
    Calls(Vec<ToolCall>),
    /// What one call returned.
    Result { call_id: String, content: String },
}

/// A tool the model may call: its name, what it does, and a JSON Schema of its arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub parameters: serde_json::Value,
}

/// A chat model: counts tokens with its own tokenizer and streams a reply.
pub trait ChatModel: Send + Sync {
    /// The model's name as listed by `/v1/models`.
    fn id(&self) -> &str;
    /// Context window in tokens (prompt + reply).
    fn context_tokens(&self) -> usize;
    /// Tokens `text` takes in this model's tokenizer (an estimate where the backend's tokenizer
    /// is not available locally).
    fn count_tokens(&self, text: &str) -> usize;
    /// What the prompt-prefix KV cache spared, for models that keep one.
    fn prefix_cache(&self) -> Option<&PrefixCacheStats> {
        None
    }
    /// Most posts worth putting in a prompt for this model (`None`: as many as fit).
    fn preferred_posts(&self) -> Option<usize> {
        None
    }
    /// Whether the agent may offer tools (a bounded `search_posts` loop).
    fn supports_tools(&self) -> bool {
        false
    }
    /// One non-streamed round with tools offered; `messages` may hold earlier calls and their
    /// results. Only models for which [`Self::supports_tools`] is true implement it.
    fn complete_with_tools(
        &self,
        _messages: Vec<ToolMessage>,
        _tools: Vec<ToolSpec>,
        _params: GenerationParams,
    ) -> BoxFuture<'_, Result<ToolTurn, ModelError>> {
        Box::pin(async {
            Err(ModelError::Internal(
                "this model does not take tools".into(),
            ))
        })
    }
    /// Starts a generation. Errors before the first token (queue full, upstream down) come back
    /// here; errors mid-stream come as stream items.
    fn stream(
        &self,
        messages: Vec<ChatMessage>,
        params: GenerationParams,
    ) -> BoxFuture<'_, Result<ModelStream, ModelError>>;
}

/// Tokens a chat template adds around each message (role markers), for budgeting.
pub const TEMPLATE_TOKENS_PER_MESSAGE: usize = 8;
