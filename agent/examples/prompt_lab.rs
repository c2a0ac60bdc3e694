//! Sends a prompt (a JSON array of {role, content}) to the local model and prints the answer,
//! with prompt size and time to first token. A development aid for prompt work:
//! `cargo run -p tidings-agent --example prompt_lab -- MODEL.gguf messages.json`
use futures::StreamExt;
use tidings_agent::{
    ChatMessage, ChatModel, GenerationParams, LocalChatModel, LocalModelConfig, ModelEvent,
};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(model_path), Some(messages_path)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: prompt_lab MODEL.gguf messages.json");
        std::process::exit(2);
    };
    let config = LocalModelConfig {
        path: model_path.into(),
        context_tokens: 4096,
        ..Default::default()
    };
    let model = LocalChatModel::load(&config).expect("load the model");
    let text = std::fs::read_to_string(messages_path).expect("read the messages");
    let messages: Vec<ChatMessage> = serde_json::from_str(&text).expect("messages JSON");
    let params = GenerationParams {
        max_tokens: 160,
        temperature: 0.0,
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let mut stream = model.stream(messages, params).await.expect("start");
    let mut out = String::new();
    let mut first = None;
    while let Some(event) = stream.next().await {
        match event.expect("generate") {
            ModelEvent::Delta(d) => {
                first.get_or_insert(started.elapsed());
                out.push_str(&d);
            }
            ModelEvent::Done { usage, .. } => println!(
                "--- {} prompt tokens, first token {:?}, total {:?}",
                usage.prompt_tokens,
                first,
                started.elapsed()
            ),
        }
    }
    println!("{out}");
}
