//! Replays a JSONL feed in timestamp order at a chosen speed, for demos and benchmarks.
//!
//! The feed is read and validated up front (bad lines are reported, not replayed), sorted by
//! `created_at`, then emitted with the original gaps divided by `speed` (capped at `max_gap`),
//! or at a fixed `rate` of posts per second. With `shift_to_now`, timestamps move so that the
//! first post is "now", which makes an old feed look live to time-aware questions.

use crate::validate::{record_id, validate, Rejection, ValidationConfig};
use crate::SourceEvent;
use chrono::Utc;
use std::path::Path;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::sleep_until;

/// How fast to replay.
#[derive(Clone, Debug)]
pub enum Pace {
    /// Original gaps divided by this factor (60 = one feed hour per minute).
    Speed(f64),
    /// Fixed posts per second, ignoring the original gaps.
    Rate(f64),
    /// As fast as the index takes them.
    Unlimited,
}

#[derive(Clone, Debug)]
pub struct ReplayConfig {
    pub pace: Pace,
    /// Longest pause between two posts, whatever the feed's gap.
    pub max_gap: Duration,
    pub shift_to_now: bool,
}

/// Reads `path`, then emits its posts in order at `config.pace`.
pub async fn replay_file(
    path: &Path,
    source: &str,
    validation: &ValidationConfig,
    config: &ReplayConfig,
    tx: &mpsc::Sender<SourceEvent>,
) -> std::io::Result<u64> {
    let content = tokio::fs::read_to_string(path).await?;
    let now = Utc::now();
    let mut posts = Vec::new();
    for (i, line) in content.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        // Replayed feeds are historical: validate against a "now" far enough in the future.
        let outcome = serde_json::from_str::<serde_json::Value>(line)
            .map_err(|e| (Rejection::malformed(format!("not valid JSON: {e}")), None))
            .and_then(|v| {
                let id = record_id(&v);
                validate(v, source, validation, now).map_err(|r| (r, id))
            });
        match outcome {
            Ok(p) => posts.push(p),
            Err((rejection, id)) => {
                let _ = tx
                    .send(SourceEvent::Rejected {
                        line: i as u64 + 1,
                        id,
                        rejection,
                    })
                    .await;
            }
        }
    }
    posts.sort_by_key(|p| p.created_at);
    let shift = match (config.shift_to_now, posts.first()) {
        (true, Some(first)) => now - first.created_at,
        _ => chrono::Duration::zero(),
    };
    let start = tokio::time::Instant::now();
    let mut at = start;
    let mut previous = posts.first().map(|p| p.created_at);
    let total = posts.len() as u64;
    let mut batch = Vec::new();
    for (i, mut post) in posts.into_iter().enumerate() {
        let gap = match &config.pace {
            Pace::Speed(s) => {
                let g = previous.map_or(Duration::ZERO, |p| {
                    (post.created_at - p).to_std().unwrap_or_default()
                });
                g.div_f64(s.max(1e-9)).min(config.max_gap)
            }
            Pace::Rate(r) => Duration::from_secs_f64(1.0 / r.max(1e-9)),
            Pace::Unlimited => Duration::ZERO,
        };
        previous = Some(post.created_at);
        post.created_at += shift;
        post.ingested_at = Utc::now();
        at += gap;
        if at > tokio::time::Instant::now() + Duration::from_millis(2) {
            if !batch.is_empty() {
                let posts = std::mem::take(&mut batch);
                if tx
                    .send(SourceEvent::Posts {
                        posts,
                        position: Some(i.to_string()),
                        bytes: 0,
                    })
                    .await
                    .is_err()
                {
                    return Ok(i as u64);
                }
            }
            sleep_until(at).await;
        }
        batch.push(post);
        if batch.len() >= 1000 {
            let posts = std::mem::take(&mut batch);
            if tx
                .send(SourceEvent::Posts {
                    posts,
                    position: Some((i + 1).to_string()),
                    bytes: 0,
                })
                .await
                .is_err()
            {
                return Ok(i as u64 + 1);
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx
            .send(SourceEvent::Posts {
                posts: batch,
                position: Some(total.to_string()),
                bytes: 0,
            })
            .await;
    }
    Ok(total)
}
