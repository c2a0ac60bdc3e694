//! The prompt builder and the citation checks over arbitrary text: the bytes are split (at
//! 0xFF, which UTF-8 never uses) into a question, an answer and posts.
#![no_main]
use futures::future::BoxFuture;
use libfuzzer_sys::fuzz_target;
use tidings_agent::cite::{cited_numbers, infer, support, CitationFilter};
use tidings_agent::prompt::{build, post_block, prompt_text, PromptInput};
use tidings_agent::{ChatMessage, ChatModel, GenerationParams, ModelError, ModelStream, Role};

/// Counts tokens like a byte-level tokenizer; never generates (the builder only counts).
struct Counter;

impl ChatModel for Counter {
    fn id(&self) -> &str {
        "counter"
    }
    fn context_tokens(&self) -> usize {
        2048
    }
    fn count_tokens(&self, text: &str) -> usize {
        text.len().div_ceil(3)
    }
    fn stream(
        &self,
        _messages: Vec<ChatMessage>,
        _params: GenerationParams,
    ) -> BoxFuture<'_, Result<ModelStream, ModelError>> {
        Box::pin(async { Err(ModelError::Internal("counting only".into())) })
    }
}

fuzz_target!(|data: &[u8]| {
    let parts: Vec<String> = data
        .split(|b| *b == 0xFF)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    let question = parts.first().cloned().unwrap_or_default();
    let answer = parts.get(1).cloned().unwrap_or_default();
    let posts: Vec<tidings_index::Post> = parts
        .iter()
        .skip(2)
        .enumerate()
        .map(|(i, t)| tidings_index::testing::post(i + 1, t, Some(t.as_str()), i as i64))
        .collect();
    let as_of = "2024-05-10T18:00:00Z".parse().expect("a time");
    let window = tidings_agent::when::default_window(as_of);
    let history = vec![ChatMessage::new(Role::User, answer.clone())];
    let input = PromptInput {
        persona: "regular",
        question: &question,
        history: &history,
        posts: &posts,
        as_of,
        window: &window,
        searched: true,
    };
    let built = build(&Counter, &input, 1024);
    assert!(built.posts_used <= posts.len());
    for (i, p) in posts.iter().enumerate() {
        let line = post_block(i + 1, p, as_of);
        assert!(!line.contains('\n'));
        let _ = prompt_text(&p.text);
    }
    let texts: Vec<&str> = posts.iter().map(|p| p.text.as_str()).collect();
    let mut filter = CitationFilter::new(texts.len());
    let mut out = filter.push(&answer);
    out.push_str(&filter.finish());
    for n in cited_numbers(&out) {
        assert!(n >= 1 && n <= texts.len());
    }
    let _ = support(&answer, &texts);
    let _ = infer(&answer, &texts, 0.3);
});
