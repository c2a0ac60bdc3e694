//! `tidings ask`: streams an answer from the chat API into the terminal, then lists the cited
//! posts. Talks to the running server; without one, starts the app on a loopback port over the
//! local data dir for the one question.

use anyhow::{bail, Context};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use std::io::Write;
use std::time::Duration;
use tidings::app::App;
use tidings::config::Settings;

pub(crate) async fn ask(
    settings: Settings,
    server: &str,
    api_key: Option<&str>,
    body: serde_json::Value,
) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .build()?;
    let url = format!("{}/v1/chat/completions", server.trim_end_matches('/'));
    match stream_answer(&client, &url, api_key, &body).await {
        Err(e) if is_connect(&e) => {
            eprintln!(
                "no server at {server}; answering from the local index in {}",
                settings.data.dir.display()
            );
            let mut settings = settings;
            settings.server.bind = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
            let app = App::build(&settings, None).await?;
            let url = format!("http://{}/v1/chat/completions", app.addr);
            let result = stream_answer(&client, &url, None, &body).await;
            app.stop().await?;
            result
        }
        other => other,
    }
}

pub(crate) fn is_connect(e: &anyhow::Error) -> bool {
    e.downcast_ref::<reqwest::Error>()
        .is_some_and(|r| r.is_connect())
}

async fn stream_answer(
    client: &reqwest::Client,
    url: &str,
    api_key: Option<&str>,
    body: &serde_json::Value,
) -> anyhow::Result<()> {
    let mut request = client.post(url).json(body);
    if let Some(k) = api_key {
        request = request.bearer_auth(k);
    }
    let response = request.send().await?;
    let status = response.status();
    if !status.is_success() {
        let v: serde_json::Value = response.json().await.unwrap_or_default();
        bail!(
            "server answered {status}: {} ({})",
            v["error"]["message"].as_str().unwrap_or("unknown error"),
            v["error"]["code"].as_str().unwrap_or("?")
        );
    }
    let mut events = response.bytes_stream().eventsource();
    let mut last: Option<serde_json::Value> = None;
    let mut out = std::io::stdout();
    while let Some(event) = events.next().await {
        let event = event.context("reading the answer stream")?;
        if event.data == "[DONE]" {
            break;
        }
        let chunk: serde_json::Value =
            serde_json::from_str(&event.data).context("a stream chunk is not JSON")?;
        if let Some(err) = chunk.get("error") {
            bail!(
                "the answer failed: {} ({})",
                err["message"].as_str().unwrap_or("?"),
                err["code"].as_str().unwrap_or("?")
            );
        }
        if let Some(text) = chunk["choices"][0]["delta"]["content"].as_str() {
            write!(out, "{text}")?;
            out.flush()?;
        }
        if chunk.get("citations").is_some() {
            last = Some(chunk);
        }
    }
    writeln!(out)?;
    let Some(last) = last else {
        bail!("the stream ended without the answer's citations");
    };
    let t = &last["tidings"];
    println!(
        "\nas of {} · searched {}",
        t["as_of"].as_str().unwrap_or("?"),
        t["window"]["label"].as_str().unwrap_or("?")
    );
    let results = last["search_results"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if results.is_empty() {
        println!("(no posts cited)");
    }
    for r in results {
        println!(
            "[{}] {} {} {}\n    {}",
            r["number"],
            r["author"]
                .as_str()
                .map_or_else(|| "(no author)".to_string(), |a| format!("@{a}")),
            r["created_at"].as_str().unwrap_or(""),
            r["url"].as_str().unwrap_or(r["id"].as_str().unwrap_or("")),
            r["text"].as_str().unwrap_or("").replace('\n', " ")
        );
    }
    if let Some(qs) = last["related_questions"].as_array() {
        println!("\nYou could also ask:");
        for q in qs {
            println!("  - {}", q.as_str().unwrap_or(""));
        }
    }
    Ok(())
}

#[derive(clap::Args)]
pub(crate) struct AskArgs {
    question: String,
    /// "Now" for the question (RFC 3339 or Unix seconds); default: now.
    #[arg(long)]
    as_of: Option<String>,
    /// regular, fun, or a custom persona.
    #[arg(long)]
    persona: Option<String>,
    /// Only posts by these handles (repeatable).
    #[arg(long)]
    handle: Vec<String>,
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// API key for the server (or TIDINGS_API_KEY).
    #[arg(long, env = "TIDINGS_API_KEY")]
    api_key: Option<String>,
}

impl AskArgs {
    pub(crate) async fn run(self, settings: Settings) -> anyhow::Result<()> {
        let mut body = serde_json::json!({
            "model": "tidings",
            "stream": true,
            "messages": [{"role": "user", "content": self.question}],
            "search": {"handles": self.handle},
        });
        if let Some(a) = self.as_of {
            body["search"]["as_of"] = a.into();
        }
        if let Some(p) = self.persona {
            body["persona"] = p.into();
        }
        ask(settings, &self.server, self.api_key.as_deref(), body).await
    }
}
