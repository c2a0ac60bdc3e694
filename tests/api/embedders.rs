//! The static embedder distilled from the local model: deterministic vectors of the right
//! dimension for text in any script, the same after a restart (read back from its cache), a
//! server that searches with it, and a data dir that refuses a second embedder's vectors.

use crate::helpers::{model_dir, post, settings, spawn_with_settings};
use serde_json::json;
use tidings_index::{Embedder, StaticEmbedder};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_static_embedder_is_deterministic_and_one_dir_keeps_one_embedder() {
    let texts: Vec<String> = [
        "Flooding closes the Brisbane river walk",
        "山手線は運転を見合わせています",
        "زلزال بقوة 5.9 يضرب شمال إيطاليا",
        "🌊🌊 evacuate now",
        "",
    ]
    .iter()
    .map(|t| t.to_string())
    .collect();
    let dir = model_dir();
    let first = tokio::task::block_in_place(|| StaticEmbedder::load_or_distill(&dir)).unwrap();
    assert_eq!(first.dim(), 384);
    assert_eq!(first.name(), "static:all-minilm-l6-v2");
    let a = first.embed(texts.clone()).await.unwrap();
    assert_eq!(
        a,
        first.embed(texts.clone()).await.unwrap(),
        "deterministic"
    );
    for (text, v) in texts.iter().zip(&a).take(4) {
        assert_eq!(v.len(), 384);
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{text:?} has norm {norm}");
    }
    // A text's vector is the bag of its own tokens: a word said twice points where it points
    // once (when the tokenizer padded every text to 128 tokens, the `[PAD]` rows it added
    // pulled short texts toward one direction, more the shorter they were).
    let once_twice = first
        .embed(vec!["flood".into(), "flood flood".into()])
        .await
        .unwrap();
    let cos: f32 = once_twice[0]
        .iter()
        .zip(&once_twice[1])
        .map(|(x, y)| x * y)
        .sum();
    assert!(cos > 0.9999, "cosine {cos}");
    // A restart reads the distilled table back: the same vectors.
    let again = tokio::task::block_in_place(|| StaticEmbedder::load_or_distill(&dir)).unwrap();
    assert_eq!(a, again.embed(texts.clone()).await.unwrap());
    // Related texts are closer than unrelated ones.
    let v = first
        .embed(vec![
            "flood waters rising in the city".into(),
            "the river flooded the town".into(),
            "new smartphone launch event".into(),
        ])
        .await
        .unwrap();
    let cos = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(a, b)| a * b).sum::<f32>();
    assert!(
        cos(&v[0], &v[1]) > cos(&v[0], &v[2]),
        "flood texts are not closer"
    );

    // A server on the static embedder finds a post by meaning alone.
    let data = tempfile::tempdir().unwrap();
    let mut s = settings(data.path());
    s.embedder.kind = "static".into();
    let mut app = spawn_with_settings(s.clone()).await;
    let (status, _) = app
        .push(&json!([
            post(
                "s1",
                "The river burst its banks and flooded the town centre",
                "2026-05-01T10:00:00Z"
            ),
            post(
                "s2",
                "Tickets for the concert go on sale on Friday",
                "2026-05-01T10:05:00Z"
            ),
        ]))
        .await;
    assert_eq!(status, 200);
    let mut found = None;
    for _ in 0..100 {
        let (status, body) = app
            .search(json!({"q": "water in the streets after the storm", "mode": "vector", "from": "2026-04-01T00:00:00Z", "as_of": "2026-05-02T00:00:00Z", "limit": 2}))
            .await;
        assert_eq!(status, 200, "{body}");
        if body["hits"].as_array().is_some_and(|h| h.len() == 2) {
            found = Some(body);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let body = found.expect("both posts got vectors");
    assert_eq!(body["hits"][0]["id"], "s1", "{body}");
    app.stop().await;

    // The same data dir with the local model: refused, with what to do.
    s.embedder.kind = "local".into();
    let err = match tidings::app::App::build(&s, None).await {
        Ok(_) => panic!("a second embedder's vectors were mixed into the index"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("cannot be compared"), "{err}");
    assert!(err.contains("tidings reembed"), "{err}");

    // `tidings reembed` replaces the static vectors with the local model's; then the server
    // starts on the local model and finds the post by meaning with the new vectors.
    let report = tidings::app::reembed(&s, |_| {}).await.unwrap();
    assert_eq!(report.previous.as_deref(), Some("static:all-minilm-l6-v2"));
    assert_eq!(report.embedder, "local:all-minilm-l6-v2");
    assert_eq!((report.posts, report.vectors), (2, 2));
    assert_eq!(
        tidings_index::recorded_embedder(data.path())
            .map(|(name, _)| name)
            .as_deref(),
        Some("local:all-minilm-l6-v2")
    );
    assert!(!data.path().join("vectors.replaced").exists());
    let mut app = spawn_with_settings(s.clone()).await;
    let (status, body) = app
        .search(json!({"q": "water in the streets after the storm", "mode": "vector", "from": "2026-04-01T00:00:00Z", "as_of": "2026-05-02T00:00:00Z", "limit": 2}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["hits"][0]["id"], "s1", "{body}");
    app.stop().await;

    // A Qdrant collection is not rebuilt this way: a clear error, nothing touched.
    let mut q = s.clone();
    q.vectors.kind = "qdrant".into();
    let err = format!("{:#}", tidings::app::reembed(&q, |_| {}).await.unwrap_err());
    assert!(err.contains("vectors.collection"), "{err}");
    assert!(data.path().join("vectors").exists());
}

/// The interim embedder: the static table fitted to the local model's own space. Posts the
/// model cannot take at once get its vectors straight away (marked interim in the store); the
/// model's query finds them by meaning; a restart with upgrades on replaces every interim
/// vector with the model's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interim_vectors_are_searchable_at_once_and_upgraded_later() {
    let dir = model_dir();
    let interim =
        tokio::task::block_in_place(|| StaticEmbedder::load_or_fit_interim(&dir)).unwrap();
    let local =
        tokio::task::block_in_place(|| tidings_index::LocalEmbedder::load(&dir, 1)).unwrap();
    assert_eq!(
        (interim.dim(), interim.name()),
        (384, "interim:all-minilm-l6-v2")
    );
    let texts: Vec<String> = [
        "The river burst its banks and flooded the town centre",
        "山手線は運転を見合わせています",
        "زلزال بقوة 5.9 يضرب شمال إيطاليا",
        "Café crème, naïve résumé — 🌊🌊 evacuate now",
    ]
    .iter()
    .map(|t| t.to_string())
    .collect();
    let a = interim.embed(texts.clone()).await.unwrap();
    let again = tokio::task::block_in_place(|| StaticEmbedder::load_or_fit_interim(&dir)).unwrap();
    assert_eq!(
        a,
        again.embed(texts.clone()).await.unwrap(),
        "read back the same"
    );
    let teacher = local.embed(texts.clone()).await.unwrap();
    let cos = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(a, b)| a * b).sum::<f32>();
    for ((text, v), t) in texts.iter().zip(&a).zip(&teacher) {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{text:?} has norm {norm}");
        // In the model's own space: close to the model's vector of the same text.
        assert!(
            cos(v, t) > 0.5,
            "{text:?}: cosine {} to the model's",
            cos(v, t)
        );
    }

    // A push larger than the model takes at once, with upgrades off: interim vectors.
    let data = tempfile::tempdir().unwrap();
    let mut s = settings(data.path());
    s.embedder.kind = "local".into();
    s.embedder.interim = "static".into();
    s.embedder.upgrade = false;
    let mut app = spawn_with_settings(s.clone()).await;
    let mut posts = vec![
        post(
            "s1",
            "The river burst its banks and flooded the town centre",
            "2026-05-01T10:00:00Z",
        ),
        post(
            "s2",
            "Tickets for the concert go on sale on Friday",
            "2026-05-01T10:05:00Z",
        ),
    ];
    let fillers = [
        "Quarterly earnings beat expectations",
        "新しいカフェが駅前にオープンしました",
        "مباراة كرة القدم انتهت بالتعادل",
        "The marathon route changes this year",
    ];
    for i in 0..58 {
        posts.push(post(
            &format!("f{i}"),
            &format!("{} #{i}", fillers[i % fillers.len()]),
            "2026-05-01T09:00:00Z",
        ));
    }
    let (status, _) = app.push(&json!(posts)).await;
    assert_eq!(status, 200);
    {
        let guard = app.app.as_ref().unwrap().index.lock().await;
        let service = guard.as_ref().unwrap();
        tokio::time::timeout(
            std::time::Duration::from_secs(60),
            service.wait_for_vectors(|_| {}),
        )
        .await
        .expect("interim vectors within a minute");
    }
    let (_, ready) = app.get("/readyz").await;
    let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
    let waiting = ready["checks"]["vector_index"]["interim"].as_u64().unwrap();
    assert!(
        waiting > 16,
        "most of the 60 posts hold interim vectors: {ready}"
    );
    let query = json!({"q": "water in the streets after the storm", "mode": "vector", "from": "2026-04-01T00:00:00Z", "as_of": "2026-05-02T00:00:00Z", "limit": 3});
    let (status, body) = app.search(query.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["hits"][0]["id"], "s1",
        "found by an interim vector: {body}"
    );
    app.stop().await;

    // Restarted with upgrades on: the marks in the store are found and every interim vector
    // is replaced by the model's own.
    s.embedder.upgrade = true;
    let mut app = spawn_with_settings(s.clone()).await;
    app.vectors_caught_up().await;
    let (_, ready) = app.get("/readyz").await;
    let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["checks"]["vector_index"]["interim"], 0, "{ready}");
    let (_, metrics) = app.get("/metrics").await;
    assert!(
        metrics.contains(&format!("index_vectors_upgraded_total {waiting}"))
            || metrics.contains(&format!("index_vectors_upgraded {waiting}")),
        "{waiting} upgraded: {metrics}"
    );
    {
        let guard = app.app.as_ref().unwrap().index.lock().await;
        let store = guard.as_ref().unwrap().vector_store().unwrap();
        assert!(store.all_ids().unwrap().iter().all(|s| !s.interim));
        let stored = store.vector_of("s1").unwrap().unwrap();
        let own = local.embed(vec![texts[0].clone()]).await.unwrap();
        assert!(
            cos(&stored, &own[0]) > 0.9999,
            "s1 holds the model's own vector"
        );
    }
    let (status, body) = app.search(query).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["hits"][0]["id"], "s1", "{body}");
    // Each text the model embedded for an upgrade was handed to the interim table to learn
    // from (too few here for a refit, which `the_interim_table_learns_the_models_space` covers).
    let (_, ready) = app.get("/readyz").await;
    let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
    let fit = &ready["checks"]["vector_index"]["interim_fit"];
    let pairs = fit["pairs"].as_u64().unwrap_or(0);
    assert!(
        pairs >= 1 && pairs <= waiting && fit["refits"] == 0,
        "{ready}"
    );
    let (_, metrics) = app.get("/metrics").await;
    assert!(
        metrics.contains(&format!("index_interim_pairs_total {pairs}")),
        "{metrics}"
    );
    app.stop().await;
}

/// The interim table corrects itself toward the model's space from the pairs (a text, the
/// model's vector) a running server hands it: after enough real posts it refits, and posts it
/// never saw come closer to the model's own vectors than with the table as fitted on
/// vocabulary texts. What it learned is in memory only: a table loaded again starts afresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_interim_table_learns_the_models_space() {
    let dir = model_dir();
    let posts = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/crisislex26/posts.jsonl");
    // Real posts in several languages, two of every three taught, the rest held out.
    let texts: Vec<String> = std::fs::read_to_string(&posts)
        .expect("../shared/data (the public posts)")
        .lines()
        .step_by(37)
        .take(600)
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["text"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    assert_eq!(texts.len(), 600);
    let (taught, unseen): (Vec<_>, Vec<_>) =
        texts.iter().enumerate().partition(|(i, _)| i % 3 != 2);
    let taught: Vec<String> = taught.into_iter().map(|(_, t)| t.clone()).collect();
    let unseen: Vec<String> = unseen.into_iter().map(|(_, t)| t.clone()).collect();
    let local =
        tokio::task::block_in_place(|| tidings_index::LocalEmbedder::load(&dir, 1)).unwrap();
    let model_taught = local.embed(taught.clone()).await.unwrap();
    let model_unseen = local.embed(unseen.clone()).await.unwrap();
    let mean_cos = |a: &[Vec<f32>], b: &[Vec<f32>]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>())
            .sum::<f32>()
            / a.len() as f32
    };

    let interim =
        tokio::task::block_in_place(|| StaticEmbedder::load_or_fit_interim(&dir)).unwrap();
    let before = interim.embed_blocking(&unseen).unwrap();
    assert_eq!(
        interim.fit_state().map(|f| (f.pairs, f.refits)),
        Some((0, 0))
    );
    // In batches as the vector worker hands them over, the refit on this thread.
    for (t, y) in taught.chunks(16).zip(model_taught.chunks(16)) {
        tokio::task::block_in_place(|| interim.learn_from(t, y, true));
    }
    let fit = interim.fit_state().unwrap();
    assert_eq!(fit.pairs, 400);
    assert_eq!(
        fit.refits, 1,
        "one refit after 256 pairs fitted on: {fit:?}"
    );
    let after = interim.embed_blocking(&unseen).unwrap();
    let (was, now) = (
        mean_cos(&before, &model_unseen),
        mean_cos(&after, &model_unseen),
    );
    assert!(
        now > was + 0.02,
        "posts it never saw come closer to the model's vectors: {was:.3} -> {now:.3} ({fit:?})"
    );
    for v in &after {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!(
            (norm - 1.0).abs() < 1e-4 || norm == 0.0,
            "unit length: {norm}"
        );
    }
    // Text in any script is learned from, without a panic.
    let scripts: Vec<String> = [
        "山手線は運転を見合わせています",
        "زلزال بقوة 5.9 يضرب شمال إيطاليا",
        "Café crème, naïve résumé — 🌊🌊 evacuate now",
        "",
    ]
    .iter()
    .map(|t| t.to_string())
    .collect();
    let vectors = local.embed(scripts.clone()).await.unwrap();
    tokio::task::block_in_place(|| interim.learn_from(&scripts, &vectors, true));
    let pairs = interim.fit_state().unwrap().pairs;
    assert!(
        (403..=404).contains(&pairs),
        "the three with words: {pairs}"
    );
    // The static table (its own space) does not learn; a table loaded again starts afresh.
    let own = tokio::task::block_in_place(|| StaticEmbedder::load_or_distill(&dir)).unwrap();
    own.learn_from(&taught, &model_taught, true);
    assert_eq!(own.fit_state(), None);
    let again = tokio::task::block_in_place(|| StaticEmbedder::load_or_fit_interim(&dir)).unwrap();
    assert_eq!(again.embed_blocking(&unseen).unwrap(), before);
}
