//! `tidings search QUERY`: searches through the running server's API, or, when none answers,
//! starts the app over the local data dir on a loopback port for the one query.

use anyhow::{bail, Context};
use clap::Args;
use std::time::Duration;
use tidings::app::App;
use tidings::config::Settings;

#[derive(Args)]
pub(crate) struct SearchArgs {
    query: String,
    /// Window ending at --as-of (or now): 30m, 2h, 7d.
    #[arg(long)]
    since: Option<String>,
    #[arg(long)]
    as_of: Option<String>,
    #[arg(long, default_value_t = 10)]
    limit: usize,
    /// hybrid, text or vector.
    #[arg(long, default_value = "hybrid")]
    mode: String,
    /// Only posts by these handles (repeatable).
    #[arg(long)]
    author: Vec<String>,
    /// Server to ask.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Print the raw JSON response.
    #[arg(long)]
    json: bool,
}

impl SearchArgs {
    pub(crate) async fn run(self, settings: Settings) -> anyhow::Result<()> {
        let mut body = serde_json::json!({
            "q": self.query,
            "limit": self.limit,
            "mode": self.mode,
            "authors": self.author,
        });
        if let Some(s) = self.since {
            body["since"] = s.into();
        }
        if let Some(a) = self.as_of {
            body["as_of"] = a.into();
        }
        search(settings, &self.server, body, self.json).await
    }
}

async fn search(
    settings: Settings,
    server: &str,
    body: serde_json::Value,
    json: bool,
) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let response = match client
        .post(format!("{}/v1/search", server.trim_end_matches('/')))
        .json(&body)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) if e.is_connect() => {
            eprintln!(
                "no server at {server}; searching the local index in {}",
                settings.data.dir.display()
            );
            return search_local(settings, body, json).await;
        }
        Err(e) => return Err(e).context("search request"),
    };
    let status = response.status();
    let value: serde_json::Value = response.json().await.context("search response")?;
    if !status.is_success() {
        bail!(
            "server answered {status}: {}",
            value["error"]["message"]
                .as_str()
                .unwrap_or("unknown error")
        );
    }
    print_results(&value, json)
}

async fn search_local(
    mut settings: Settings,
    body: serde_json::Value,
    json: bool,
) -> anyhow::Result<()> {
    settings.server.bind = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let app = App::build(&settings, None).await?;
    let client = reqwest::Client::new();
    let response = client
        .post(format!("http://{}/v1/search", app.addr))
        .json(&body)
        .send()
        .await?;
    let status = response.status();
    let value: serde_json::Value = response.json().await?;
    app.stop().await?;
    if !status.is_success() {
        bail!(
            "{}",
            value["error"]["message"]
                .as_str()
                .unwrap_or("search failed")
        );
    }
    print_results(&value, json)
}

fn print_results(value: &serde_json::Value, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
        return Ok(());
    }
    let hits = value["hits"].as_array().cloned().unwrap_or_default();
    println!(
        "{} hits in {:.1} ms ({})",
        hits.len(),
        value["took_ms"].as_f64().unwrap_or(0.0),
        value["mode"].as_str().unwrap_or("")
    );
    if let Some(d) = value["degraded"].as_str() {
        println!("note: {d}");
    }
    for (i, h) in hits.iter().enumerate() {
        println!(
            "[{}] {} @{} {}  (score {:.4})\n    {}",
            i + 1,
            h["created_at"].as_str().unwrap_or(""),
            h["author"].as_str().unwrap_or("?"),
            h["url"].as_str().unwrap_or(h["id"].as_str().unwrap_or("")),
            h["score"].as_f64().unwrap_or(0.0),
            h["text"].as_str().unwrap_or("").replace('\n', " ")
        );
    }
    Ok(())
}
