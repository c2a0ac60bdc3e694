//! `tidings digest add|list|show|run ID`: the digest API from the terminal. Talks to the running
//! server; without one, starts the app on a loopback port over the local data dir (its own
//! app database) for the one call.

use crate::app::App;
use crate::config::Settings;
use anyhow::bail;
use serde_json::Value;
use std::time::Duration;

/// One API call: `method` `path` with an optional JSON body; the JSON answer.
pub async fn call(
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
        Err(e) if crate::ask::is_connect(&e) => {
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
pub fn print_list(list: &Value) {
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
pub fn print_run(run: &Value) {
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
