//! Replays a JSONL feed in timestamp order at a chosen speed, for demos and benchmarks.
//!
//! The feed is read and validated up front (bad lines are reported, not replayed), sorted by
//! `created_at`, then emitted with the original gaps divided by `speed` (capped at `max_gap`),
//! or at a fixed `rate` of posts per second. With `shift_to_now`, each post is stamped with the
//! wall-clock moment it is replayed: the feed's gaps shrink with the speed, the first post is
//! "now" when the replay starts and every later one "now" when it arrives, so an old feed looks
//! live to time-aware questions ("what is happening right now?") and no post is ever dated in
//! the future. At unlimited pace the original gaps are kept and the last post is "now".

use crate::validate::{validate_json_with_id, ValidationConfig};
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
        match validate_json_with_id(line, source, validation, now) {
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
    // Unlimited pace: keep the feed's gaps, ending now.
    let shift = match (config.shift_to_now, &config.pace, posts.last()) {
        (true, Pace::Unlimited, Some(last)) => now - last.created_at,
        _ => chrono::Duration::zero(),
    };
    // Paced: a post is stamped with the moment it is due (wall clock at start + its offset).
    let stamp_when_due = config.shift_to_now && !matches!(config.pace, Pace::Unlimited);
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
        at += gap;
        if stamp_when_due {
            let offset = chrono::Duration::from_std(at - start).unwrap_or_default();
            post.created_at = now + offset;
        } else {
            post.created_at += shift;
        }
        post.ingested_at = Utc::now();
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
        // Unlimited pace: the feed's gaps, the last post now.
        assert!(posts[2].2 >= before && posts[2].2 <= Utc::now());
        assert_eq!(posts[2].2 - posts[0].2, chrono::Duration::seconds(20));
    }

    /// At 10× a feed's 10 s gaps become 1 s, and each post is stamped when it is replayed:
    /// the feed's "now" is the wall clock's now, never ahead of it.
    #[tokio::test(start_paused = true)]
    async fn shifted_times_compress_with_the_speed() {
        let f = feed();
        let (tx, rx) = mpsc::channel(16);
        let config = ReplayConfig {
            pace: Pace::Speed(10.0),
            max_gap: Duration::from_secs(60),
            shift_to_now: true,
        };
        let before = Utc::now();
        let path = f.path().to_path_buf();
        let producer = tokio::spawn(async move {
            replay_file(&path, "replay", &ValidationConfig::default(), &config, &tx).await
        });
        let (posts, _) = collect(rx).await;
        producer.await.unwrap().unwrap();
        let start = posts[0].2;
        assert!(start >= before - chrono::Duration::seconds(1) && start <= Utc::now());
        assert_eq!(posts[1].2 - start, chrono::Duration::seconds(1));
        assert_eq!(posts[2].2 - start, chrono::Duration::seconds(2));
    }

    /// A day of feed at 600×: 144 s of replay, and the newest post is dated no later than the
    /// moment it arrived (the old shift dated posts up to a day ahead of the wall clock).
    #[tokio::test(start_paused = true)]
    async fn a_fast_replay_never_dates_posts_in_the_future() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        for h in 0..24 {
            writeln!(
                f,
                r#"{{"id":"h{h}","text":"hour {h}","created_at":"2024-03-01T{h:02}:00:00Z"}}"#
            )
            .unwrap();
        }
        let (tx, rx) = mpsc::channel(64);
        let config = ReplayConfig {
            pace: Pace::Speed(600.0),
            max_gap: Duration::from_secs(60),
            shift_to_now: true,
        };
        let path = f.path().to_path_buf();
        let replay_start = tokio::time::Instant::now();
        let wall_start = Utc::now();
        let producer = tokio::spawn(async move {
            replay_file(&path, "replay", &ValidationConfig::default(), &config, &tx).await
        });
        let (posts, _) = collect(rx).await;
        producer.await.unwrap().unwrap();
        for (_, arrived, stamped) in &posts {
            let wall_at_arrival =
                wall_start + chrono::Duration::from_std(*arrived - replay_start).unwrap();
            assert!(
                *stamped <= wall_at_arrival + chrono::Duration::seconds(1),
                "a post dated in the future"
            );
        }
        let span = posts[23].2 - posts[0].2;
        assert_eq!(span, chrono::Duration::seconds(23 * 3600 / 600));
    }
}
