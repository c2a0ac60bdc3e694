//! The writer: durability on acknowledgement, checkpoints in the commit payload, dedup outcomes.

use chrono::{TimeZone, Utc};
use std::time::Duration;
use tidings_index::{
    Checkpoint, IndexConfig, IndexService, Post, PostId, SearchMode, SearchRequest, UpsertOutcome,
    WriterConfig,
};

fn post(id: &str, text: &str) -> Post {
    Post {
        id: PostId::parse(id).unwrap(),
        source: "test".into(),
        author: None,
        author_name: None,
        text: text.into(),
        created_at: Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap(),
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

fn config(dir: &std::path::Path) -> IndexConfig {
    IndexConfig {
        data_dir: dir.to_path_buf(),
        writer: WriterConfig {
            commit_interval: Duration::from_millis(20),
            ..WriterConfig::default()
        },
        vector_worker: Default::default(),
    }
}

#[tokio::test]
async fn checkpoints_survive_restart_with_their_posts() {
    let dir = tempfile::tempdir().unwrap();
    let svc = IndexService::start(&config(dir.path()), None).unwrap();
    let checkpoint = Checkpoint {
        source: "jetstream".into(),
        position: "1700000000000000".into(),
    };
    let outcomes = svc
        .write
        .upsert(
            vec![post("c1", "first"), post("c2", "second")],
            Some(checkpoint),
        )
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        vec![UpsertOutcome::Inserted, UpsertOutcome::Inserted]
    );
    svc.shutdown().await;

    let svc = IndexService::start(&config(dir.path()), None).unwrap();
    assert_eq!(
        svc.checkpoints().get("jetstream").map(String::as_str),
        Some("1700000000000000")
    );
    assert_eq!(svc.search.num_posts(), 2);
    // The dedup map is rebuilt from the index: a known post is a duplicate after restart too.
    let again = svc
        .write
        .upsert(vec![post("c1", "first"), post("c3", "third")], None)
        .await
        .unwrap();
    assert_eq!(
        again,
        vec![UpsertOutcome::Duplicate, UpsertOutcome::Inserted]
    );
    let results = svc
        .search
        .search(SearchRequest {
            mode: SearchMode::Text,
            ..SearchRequest::new("third", Utc::now().timestamp_millis())
        })
        .await
        .unwrap();
    assert_eq!(results.hits.len(), 1);
    assert!(
        results.degraded.is_none()
            || results
                .degraded
                .as_deref()
                .unwrap()
                .contains("not configured")
    );
    svc.shutdown().await;
}

#[tokio::test]
async fn duplicates_inside_one_batch_are_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let svc = IndexService::start(&config(dir.path()), None).unwrap();
    let outcomes = svc
        .write
        .upsert(
            vec![
                post("d1", "same"),
                post("d1", "same"),
                post("d1", "changed"),
            ],
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        vec![
            UpsertOutcome::Inserted,
            UpsertOutcome::Duplicate,
            UpsertOutcome::Updated
        ]
    );
    assert_eq!(svc.search.num_posts(), 1);
    assert_eq!(
        svc.search
            .get(&PostId::parse("d1").unwrap())
            .unwrap()
            .unwrap()
            .text,
        "changed"
    );
    svc.shutdown().await;
}

#[tokio::test]
async fn a_stopped_writer_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let svc = IndexService::start(&config(dir.path()), None).unwrap();
    let write = svc.write.clone();
    svc.shutdown().await;
    let err = write
        .upsert(vec![post("z", "late")], None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, tidings_index::IndexError::Unavailable(_)),
        "{err}"
    );
}

#[tokio::test]
async fn equal_scores_rank_newest_first_before_and_after_a_restart() {
    // Six posts that BM25 scores alike for "flood" (one occurrence each, texts of one length),
    // written out of time order in three commits, so three segments hold them.
    let dir = tempfile::tempdir().unwrap();
    let at = |minutes: i64| {
        Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).unwrap() + chrono::Duration::minutes(minutes)
    };
    let texts = [
        ("t1", "flood near the mill road", 5),
        ("t2", "flood near the west gate", 50),
        ("t3", "flood near the old quays", 20),
        ("t4", "flood near the rail yard", 40),
        ("t5", "flood near the ring road", 10),
        ("t6", "flood near the town hall", 30),
    ];
    let order = |hits: &[tidings_index::SearchHit]| -> Vec<String> {
        hits.iter().map(|h| h.post.id.to_string()).collect()
    };
    let search = |svc: &IndexService| {
        let search = svc.search.clone();
        async move {
            search
                .search(SearchRequest {
                    mode: SearchMode::Text,
                    collapse_duplicates: false,
                    ..SearchRequest::new("flood", at(60).timestamp_millis())
                })
                .await
                .unwrap()
        }
    };
    let svc = IndexService::start(&config(dir.path()), None).unwrap();
    for pair in texts.chunks(2) {
        let posts = pair
            .iter()
            .map(|(id, text, minutes)| Post {
                created_at: at(*minutes),
                ..post(id, text)
            })
            .collect();
        svc.write.upsert(posts, None).await.unwrap();
        svc.write.commit().await.unwrap();
    }
    let before = search(&svc).await;
    let scores: Vec<f32> = before.hits.iter().map(|h| h.score).collect();
    assert!(
        scores.windows(2).all(|w| (w[0] - w[1]).abs() < 1e-6),
        "the posts should tie: {scores:?}"
    );
    assert_eq!(order(&before.hits), ["t2", "t4", "t6", "t3", "t5", "t1"]);
    svc.shutdown().await;

    let svc = IndexService::start(&config(dir.path()), None).unwrap();
    let after = search(&svc).await;
    assert_eq!(order(&after.hits), order(&before.hits));
    svc.shutdown().await;
}
