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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn feed() -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        for (id, t) in [
            ("c", "2024-03-01T00:00:20Z"),
            ("a", "2024-03-01T00:00:00Z"),
            ("b", "2024-03-01T00:00:10Z"),
        ] {
            writeln!(
                f,
                r#"{{"id":"{id}","text":"post {id}","created_at":"{t}"}}"#
            )
            .unwrap();
        }
        writeln!(f, "not json").unwrap();
        f
    }

    async fn collect(
        mut rx: mpsc::Receiver<SourceEvent>,
    ) -> (
        Vec<(String, tokio::time::Instant, chrono::DateTime<Utc>)>,
        usize,
    ) {
        let mut posts = Vec::new();
        let mut rejected = 0;
        while let Some(ev) = rx.recv().await {
            match ev {
                SourceEvent::Posts { posts: p, .. } => {
                    let now = tokio::time::Instant::now();
                    posts.extend(p.into_iter().map(|p| (p.id.to_string(), now, p.created_at)));
                }
                SourceEvent::Rejected { .. } => rejected += 1,
            }
        }
        (posts, rejected)
    }

    #[tokio::test(start_paused = true)]
    async fn replays_in_time_order_at_speed() {
        let f = feed();
        let (tx, rx) = mpsc::channel(16);
        let config = ReplayConfig {
            pace: Pace::Speed(10.0),
            max_gap: Duration::from_secs(60),
            shift_to_now: false,
        };
        let start = tokio::time::Instant::now();
        let path = f.path().to_path_buf();
        let producer = tokio::spawn(async move {
            replay_file(&path, "replay", &ValidationConfig::default(), &config, &tx).await
        });
        let (posts, rejected) = collect(rx).await;
        assert_eq!(producer.await.unwrap().unwrap(), 3);
        assert_eq!(rejected, 1);
        let ids: Vec<&str> = posts.iter().map(|p| p.0.as_str()).collect();
        assert_eq!(ids, vec!["a", "b", "c"]);
        // 10 s gaps at 10× speed: one second apart (paused clock, so exact).
        assert_eq!(posts[1].1 - start, Duration::from_secs(1));
        assert_eq!(posts[2].1 - start, Duration::from_secs(2));
    }

    #[tokio::test]
    async fn shift_to_now_moves_the_feed_start_to_now() {
        let f = feed();
        let (tx, rx) = mpsc::channel(16);
        let config = ReplayConfig {
            pace: Pace::Unlimited,
            max_gap: Duration::from_secs(1),
            shift_to_now: true,
        };
        let before = Utc::now();
        replay_file(
            f.path(),
            "replay",
            &ValidationConfig::default(),
            &config,
            &tx,
        )
        .await
        .unwrap();
        drop(tx);
        let (posts, _) = collect(rx).await;
        assert!(posts[0].2 >= before - chrono::Duration::seconds(1));
        assert_eq!(posts[2].2 - posts[0].2, chrono::Duration::seconds(20));
    }
}
