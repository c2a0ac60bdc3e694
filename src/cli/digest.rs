//! `tidings digest add|list|show|run ID`: the digest API from the terminal. Talks to the running
//! server; without one, starts the app on a loopback port over the local data dir (its own
//! app database) for the one call.

use anyhow::bail;
use serde_json::Value;
use std::time::Duration;
use tidings::app::App;
use tidings::config::Settings;

/// One API call: `method` `path` with an optional JSON body; the JSON answer.
pub(crate) async fn call(
    settings: &Settings,
    server: &str,
    api_key: Option<&str>,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .build()?;
    let send = |base: String, key: Option<String>| {
        let mut r = client.request(
            method.clone(),
            format!("{}{path}", base.trim_end_matches('/')),
        );
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        if let Some(b) = &body {
            r = r.json(b);
        }
        async move {
            let response = r.send().await?;
            let status = response.status();
            let value: Value = response.json().await.unwrap_or(Value::Null);
            if !status.is_success() {
                bail!(
                    "{} {}: {}",
                    status.as_u16(),
                    value["error"]["code"].as_str().unwrap_or("error"),
                    value["error"]["message"].as_str().unwrap_or("")
                );
            }
            Ok(value)
        }
    };
    match send(server.to_string(), api_key.map(str::to_string)).await {
        Err(e) if super::ask::is_connect(&e) => {
            eprintln!(
                "no server at {server}; using the local data dir {}",
                settings.data.dir.display()
            );
            let mut settings = settings.clone();
            settings.server.bind = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
            let app = App::build(&settings, None).await?;
            let result = send(format!("http://{}", app.addr), None).await;
            app.stop().await?;
            result
        }
        other => other,
    }
}

/// Prints digests as a table.
pub(crate) fn print_list(list: &Value) {
    let data = list["data"].as_array().cloned().unwrap_or_default();
    if data.is_empty() {
        println!("no digests; add one with `tidings digest add --name NAME`");
    }
    for d in data {
        println!(
            "{}  {:<30} window {:<5} scope {}",
            d["id"].as_str().unwrap_or(""),
            d["name"].as_str().unwrap_or(""),
            d["window"].as_str().unwrap_or(""),
            d["scope"]
        );
    }
}

/// Prints a run: its markdown, or why it failed.
pub(crate) fn print_run(run: &Value) {
    match run["status"].as_str() {
        Some("succeeded") => print!("{}", run["markdown"].as_str().unwrap_or("")),
        Some("failed") => println!(
            "run {} as of {} FAILED: {} ({})",
            run["id"].as_str().unwrap_or(""),
            run["as_of"].as_str().unwrap_or(""),
            run["error"]["message"].as_str().unwrap_or(""),
            run["error"]["code"].as_str().unwrap_or("")
        ),
        _ => println!(
            "run {} is still running (started {})",
            run["id"].as_str().unwrap_or(""),
            run["started_at"].as_str().unwrap_or("")
        ),
    }
}

#[derive(clap::Subcommand)]
pub(crate) enum DigestCommand {
    /// Stores a digest definition (on the server, or in the local data dir without one).
    Add {
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        query: String,
        #[arg(long)]
        hashtag: Vec<String>,
        #[arg(long)]
        handle: Vec<String>,
        #[arg(long, default_value = "24h")]
        window: String,
        #[arg(long, default_value_t = 5)]
        max_stories: usize,
        #[arg(long)]
        persona: Option<String>,
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        server: String,
        #[arg(long, env = "TIDINGS_API_KEY")]
        api_key: Option<String>,
    },
    /// Lists the stored digests.
    List {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        server: String,
        #[arg(long, env = "TIDINGS_API_KEY")]
        api_key: Option<String>,
    },
    /// Shows a digest's latest run (markdown, or why it failed).
    Show {
        id: String,
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        server: String,
        #[arg(long, env = "TIDINGS_API_KEY")]
        api_key: Option<String>,
    },
    /// Runs a digest now and prints it as markdown (or JSON). With an ID: the stored digest,
    /// through the server (or the local data dir). Without: an ad-hoc digest over the local
    /// index (stop the server first: the index has one writer).
    Run {
        /// A stored digest to run.
        id: Option<String>,
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        server: String,
        #[arg(long, env = "TIDINGS_API_KEY")]
        api_key: Option<String>,
        /// Words the posts should match (default: every post in the window).
        #[arg(long, default_value = "")]
        query: String,
        /// Only posts with this hashtag (repeatable).
        #[arg(long)]
        hashtag: Vec<String>,
        /// Only posts by this handle (repeatable).
        #[arg(long)]
        handle: Vec<String>,
        /// The window before as_of, e.g. 24h.
        #[arg(long, default_value = "24h")]
        window: String,
        /// End of the window (RFC 3339); default: now.
        #[arg(long)]
        as_of: Option<String>,
        #[arg(long, default_value_t = 5)]
        max_stories: usize,
        #[arg(long)]
        persona: Option<String>,
        /// Print JSON instead of markdown.
        #[arg(long)]
        json: bool,
        /// Cosine to a story's centroid from which a post joins it (higher: finer stories).
        #[arg(long)]
        join_similarity: Option<f32>,
    },
}

impl DigestCommand {
    pub(crate) async fn run(self, settings: &Settings) -> anyhow::Result<()> {
        match self {
            DigestCommand::Add {
                name,
                query,
                hashtag,
                handle,
                window,
                max_stories,
                persona,
                server,
                api_key,
            } => {
                let body = serde_json::json!({
                    "name": name,
                    "scope": {"query": query, "hashtags": hashtag, "handles": handle},
                    "window": window,
                    "max_stories": max_stories,
                    "persona": persona,
                });
                let d = call(
                    settings,
                    &server,
                    api_key.as_deref(),
                    reqwest::Method::POST,
                    "/v1/digests",
                    Some(body),
                )
                .await?;
                println!("{}", d["id"].as_str().unwrap_or(""));
                Ok(())
            }
            DigestCommand::List { server, api_key } => {
                let list = call(
                    settings,
                    &server,
                    api_key.as_deref(),
                    reqwest::Method::GET,
                    "/v1/digests",
                    None,
                )
                .await?;
                print_list(&list);
                Ok(())
            }
            DigestCommand::Show {
                id,
                server,
                api_key,
            } => {
                let runs = call(
                    settings,
                    &server,
                    api_key.as_deref(),
                    reqwest::Method::GET,
                    &format!("/v1/digests/{id}/runs?limit=1"),
                    None,
                )
                .await?;
                match runs["data"].as_array().and_then(|r| r.first()) {
                    Some(run) => print_run(run),
                    None => {
                        println!(
                            "digest {id} has not run yet; `tidings digest run {id}` runs it now"
                        )
                    }
                }
                Ok(())
            }
            DigestCommand::Run {
                id: Some(id),
                server,
                api_key,
                as_of,
                json,
                ..
            } => {
                let body = serde_json::json!({"as_of": as_of});
                let run = call(
                    settings,
                    &server,
                    api_key.as_deref(),
                    reqwest::Method::POST,
                    &format!("/v1/digests/{id}/run"),
                    Some(body),
                )
                .await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&run)?);
                } else {
                    print_run(&run);
                }
                if run["status"] == "failed" {
                    anyhow::bail!("the digest run failed");
                }
                Ok(())
            }
            DigestCommand::Run {
                id: None,
                query,
                hashtag,
                handle,
                window,
                as_of,
                max_stories,
                persona,
                json,
                join_similarity,
                ..
            } => {
                let mut stories = tidings_agent::stories::StoryConfig::default();
                if let Some(j) = join_similarity {
                    stories.join_similarity = j;
                }
                let spec = tidings_agent::digest::DigestSpec {
                    name: if query.is_empty() && hashtag.is_empty() {
                        "Top stories".into()
                    } else {
                        format!(
                            "Top stories: {}",
                            [
                                query.clone(),
                                hashtag
                                    .iter()
                                    .map(|h| format!("#{h}"))
                                    .collect::<Vec<_>>()
                                    .join(" ")
                            ]
                            .join(" ")
                            .trim()
                        )
                    },
                    query,
                    hashtags: hashtag,
                    handles: handle,
                    window: humantime::parse_duration(&window)
                        .map_err(|e| anyhow::anyhow!("--window: {e}"))?,
                    persona,
                    max_stories,
                    ..Default::default()
                };
                let as_of = match as_of {
                    Some(t) => tidings_api::parse_time(&t).map_err(anyhow::Error::msg)?,
                    None => chrono::Utc::now(),
                };
                tidings::app::digest_once(settings, spec, as_of, json, &stories).await
            }
        }
    }
}
