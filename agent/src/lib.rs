//! `tidings-agent`: turns a question into a time-aware search, a grounded prompt and a cited
//! answer.
//!
//! Layout: [`when`] understands time expressions; [`plan`] turns a question into a search
//! (query words, window, author filters, entities); [`prompt`] builds the spotlighted prompt
//! with personas; [`model`] holds the inference backends behind [`ChatModel`] (remote
//! OpenAI-compatible, embedded llama.cpp); [`cite`] checks citations while and after the
//! answer streams; [`suggest`] proposes follow-up questions; [`agent`] wires them together.

pub mod agent;
pub mod cite;
pub mod conversation;
pub mod digest;
pub mod ground;
mod guard;
pub mod model;
pub mod plan;
pub mod prompt;
pub mod stories;
pub mod suggest;
pub mod when;

pub use agent::{
    post_url, Agent, AgentConfig, AgentError, AgentEvent, AgentStream, Answer, AskRequest,
    Citation, Grounding, Retrieval, Timings,
};
pub use model::{
    ChatMessage, ChatModel, FinishReason, GenerationParams, LocalChatModel, LocalModelConfig,
    ModelError, ModelEvent, ModelStream, OpenAiChatConfig, OpenAiChatModel, PrefixCacheStats,
    PromptProfile, Role, ToolCall, ToolMessage, ToolSpec, ToolTurn, Usage, DEFAULT_LOCAL_MODEL,
};
pub use plan::{SearchModeOption, SearchOptions};
pub use prompt::Personas;

/// The message a panic carried (`panic!("…")` payloads are `&str` or `String`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

#[cfg(test)]
pub(crate) fn suggest_test_post(id: &str) -> tidings_index::Post {
    use chrono::Utc;
    tidings_index::Post {
        id: tidings_index::PostId::parse(id).unwrap(),
        source: "test".into(),
        author: None,
        author_name: None,
        text: String::new(),
        created_at: Utc::now(),
        ingested_at: Utc::now(),
        lang: None,
        url: None,
        refs: Default::default(),
        hashtags: vec![],
        mentions: vec![],
        links: vec![],
        engagement: Default::default(),
        labels: Default::default(),
    }
}
