//! One contract, two vector stores: the embedded `qdrant-edge` shard and a real Qdrant 1.18.3
//! server through `qdrant-client` answer the same calls the same way (write, replace, delete,
//! delete by age, filtered search, exact scan, lookups, paging, restart). Then what only a
//! server store has: a collection of another dimension refused at open, an unreachable server
//! reported as unavailable, reads that fail fast while it is down and recover after.

#[path = "support/qdrant_server.rs"]
mod qdrant_server;

use qdrant_server::QdrantServer;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tidings_index::filter::SearchFilter;
use tidings_index::{
    EdgeVectorStore, IndexError, PostId, QdrantStoreConfig, QdrantVectorStore, StoredId,
    VectorPoint, VectorStore,
};

const DIM: usize = 8;
const HOUR_MS: i64 = 3_600_000;
const T0: i64 = 1_700_000_000_000;

/// A unit vector along `axis`, tilted by `amount` towards `tilt` (cosine stores normalise).
fn unit(axis: usize, tilt: usize, amount: f32) -> Vec<f32> {
    let mut v = [0.0; DIM];
    v[axis] = 1.0;
    v[tilt] += amount;
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / norm).collect()
}

fn point(id: &str, hours_ago: i64, author: &str, lang: &str, vector: Vec<f32>) -> VectorPoint {
    let post_id = PostId::parse(id).unwrap();
    VectorPoint {
        post_id: id.to_string(),
        id_hash: post_id.hash64(),
        created_at_ms: T0 - hours_ago * HOUR_MS,
        author: Some(author.to_string()),
        source: if lang == "ja" { "bluesky" } else { "file" }.into(),
        lang: Some(lang.to_string()),
        vector,
        // One post in a script other than Latin holds an interim vector: the mark round-trips.
        interim: id == "地震-3",
    }
}

/// Five posts: ids in several scripts, three authors, two languages, spread over 40 hours.
fn points() -> Vec<VectorPoint> {
    vec![
        point("quake-1", 1, "ana", "en", unit(0, 1, 0.1)),
        point("quake-2", 2, "bo", "en", unit(0, 1, 0.3)),
        point("地震-3", 3, "chie", "ja", unit(0, 1, 0.6)),
        point("flood-4", 30, "ana", "en", unit(4, 5, 0.1)),
        point("😀-5", 40, "bo", "en", unit(6, 7, 0.1)),
    ]
}

fn ids(hits: &[tidings_index::vectors::VectorHit]) -> Vec<&str> {
    hits.iter().map(|h| h.post_id.as_str()).collect()
}

/// The contract. `reopen` drops the store and opens it again on the same data.
fn contract(mut store: Arc<dyn VectorStore>, reopen: &dyn Fn() -> Arc<dyn VectorStore>) {
    let backend = store.backend();
    assert_eq!(store.count().unwrap(), 0, "{backend}: starts empty");
    store.health().unwrap();
    store.upsert(points()).unwrap();
    store.upsert(Vec::new()).unwrap();
    assert_eq!(store.count().unwrap(), 5, "{backend}");

    for exact in [false, true] {
        let all = SearchFilter::default();
        let hits = store.search(&unit(0, 1, 0.1), &all, 3, exact).unwrap();
        assert_eq!(
            ids(&hits),
            ["quake-1", "quake-2", "地震-3"],
            "{backend} exact={exact}"
        );
        assert!(
            hits[0].score > 0.99 && hits[0].score >= hits[1].score,
            "{backend}: {hits:?}"
        );

        let by_author = SearchFilter {
            authors: vec!["ana".into()],
            ..SearchFilter::default()
        };
        let hits = store
            .search(&unit(0, 1, 0.1), &by_author, 10, exact)
            .unwrap();
        assert_eq!(
            ids(&hits),
            ["quake-1", "flood-4"],
            "{backend} exact={exact}"
        );

        let last_day = SearchFilter {
            from_ms: Some(T0 - 24 * HOUR_MS),
            to_ms: Some(T0),
            ..SearchFilter::default()
        };
        let hits = store
            .search(&unit(4, 5, 0.1), &last_day, 10, exact)
            .unwrap();
        assert_eq!(
            hits.len(),
            3,
            "{backend} exact={exact}: the 24 h window holds 3"
        );
        assert!(!ids(&hits).contains(&"flood-4"), "{backend}: {hits:?}");

        let japanese_not_chie = SearchFilter {
            langs: vec!["ja".into(), "en".into()],
            sources: vec!["bluesky".into(), "file".into()],
            exclude_authors: vec!["chie".into(), "bo".into()],
            ..SearchFilter::default()
        };
        let hits = store
            .search(&unit(0, 1, 0.6), &japanese_not_chie, 10, exact)
            .unwrap();
        assert_eq!(
            ids(&hits),
            ["quake-1", "flood-4"],
            "{backend} exact={exact}"
        );
    }

    // Lookups and the inventory.
    let v = store.vector_of("地震-3").unwrap().expect("a stored vector");
    let expected = unit(0, 1, 0.6);
    assert!(
        v.iter().zip(&expected).all(|(a, b)| (a - b).abs() < 1e-5),
        "{backend}: {v:?}"
    );
    assert_eq!(store.vector_of("never-stored").unwrap(), None, "{backend}");
    let mut all = store.all_ids().unwrap();
    all.sort_by(|a, b| a.post_id.cmp(&b.post_id));
    let expected: Vec<StoredId> = {
        let mut e: Vec<_> = points()
            .into_iter()
            .map(|p| StoredId {
                id_hash: p.id_hash,
                post_id: p.post_id,
                interim: p.interim,
            })
            .collect();
        e.sort_by(|a, b| a.post_id.cmp(&b.post_id));
        e
    };
    assert_eq!(all, expected, "{backend}");

    // Paging returns every point once, with its payload and vector.
    let mut paged = Vec::new();
    let mut cursor = None;
    loop {
        let (page, next) = store.page(cursor, 2).unwrap();
        assert!(page.len() <= 2, "{backend}");
        paged.extend(page);
        match next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    paged.sort_by(|a, b| a.post_id.cmp(&b.post_id));
    let mut original = points();
    original.sort_by(|a, b| a.post_id.cmp(&b.post_id));
    assert_eq!(paged.len(), 5, "{backend}");
    for (got, want) in paged.iter().zip(&original) {
        assert_eq!(
            (
                &got.post_id,
                got.id_hash,
                got.created_at_ms,
                &got.author,
                &got.source,
                &got.lang,
                got.interim
            ),
            (
                &want.post_id,
                want.id_hash,
                want.created_at_ms,
                &want.author,
                &want.source,
                &want.lang,
                want.interim
            ),
            "{backend}"
        );
        assert!(got
            .vector
            .iter()
            .zip(&want.vector)
            .all(|(a, b)| (a - b).abs() < 1e-5));
    }

    // An upsert of a stored id replaces it.
    store
        .upsert(vec![point("quake-2", 2, "bo", "en", unit(6, 7, 0.1))])
        .unwrap();
    assert_eq!(store.count().unwrap(), 5, "{backend}: replaced, not added");
    let hits = store
        .search(&unit(6, 7, 0.1), &SearchFilter::default(), 2, true)
        .unwrap();
    assert_eq!(ids(&hits).len(), 2);
    assert!(ids(&hits).contains(&"quake-2"), "{backend}: {hits:?}");

    // Deletes: by id (unknown ids are fine), then by age.
    store
        .delete(&["quake-1".to_string(), "never-stored".to_string()])
        .unwrap();
    store.delete(&[]).unwrap();
    assert_eq!(store.count().unwrap(), 4, "{backend}");
    store.delete_older_than(T0 - 24 * HOUR_MS).unwrap();
    assert_eq!(
        store.count().unwrap(),
        2,
        "{backend}: the two older posts went"
    );
    store.optimize().unwrap();
    assert!(
        !store.optimize_unfinished(),
        "{backend}: a finished optimisation is not left to redo"
    );

    // What was acknowledged survives a restart.
    drop(store);
    store = reopen();
    assert_eq!(store.count().unwrap(), 2, "{backend}: after reopening");
    let hits = store
        .search(&unit(0, 1, 0.6), &SearchFilter::default(), 5, false)
        .unwrap();
    assert_eq!(ids(&hits), ["地震-3", "quake-2"], "{backend}");
}

#[test]
fn edge_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vectors");
    let open = || -> Arc<dyn VectorStore> { Arc::new(EdgeVectorStore::open(&path, DIM).unwrap()) };
    contract(open(), &open);
}

/// An optimisation that a stop cut short (its marker left beside the shard) is reported by the
/// next open, the shard still loads with every point, and a finished one clears it.
#[test]
fn edge_store_remembers_an_unfinished_optimisation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vectors");
    let open = || -> Arc<dyn VectorStore> { Arc::new(EdgeVectorStore::open(&path, DIM).unwrap()) };
    let store = open();
    store.upsert(points()).unwrap();
    assert!(!store.optimize_unfinished());
    drop(store);
    // What `optimize` writes before its build and removes after it.
    std::fs::write(path.join("optimizing"), b"").unwrap();
    let store = open();
    assert!(store.optimize_unfinished());
    assert_eq!(store.count().unwrap(), points().len());
    store.optimize().unwrap();
    assert!(!store.optimize_unfinished());
    drop(store);
    let store = open();
    assert!(!store.optimize_unfinished());
    assert_eq!(store.count().unwrap(), points().len());
}

fn config(url: String, collection: &str) -> QdrantStoreConfig {
    QdrantStoreConfig {
        url,
        collection: collection.into(),
        down_cooldown: Duration::from_secs(2),
        ..QdrantStoreConfig::default()
    }
}

#[test]
fn qdrant_server_store_keeps_the_contract_and_fails_clearly() {
    let mut server = QdrantServer::start();
    let url = server.url();
    let open = || -> Arc<dyn VectorStore> {
        Arc::new(QdrantVectorStore::open(&config(url.clone(), "contract"), DIM).unwrap())
    };
    contract(open(), &open);

    // The collection was created with the payload indexes the filters use.
    let (_, body) = server.nodes[0].get("/collections/contract").unwrap();
    for field in ["created_at", "author", "source", "lang", "post_id", "h"] {
        assert!(
            body.contains(&format!("\"{field}\"")),
            "{field} index: {body}"
        );
    }

    // A collection of another dimension is refused, saying what to do.
    let err = QdrantVectorStore::open(&config(url.clone(), "contract"), DIM * 2)
        .err()
        .expect("a different dimension is refused");
    assert!(matches!(err, IndexError::InvalidInput(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("8-dimensional") && message.contains("16-dimensional"),
        "{message}"
    );

    // Nothing listening: a clear unavailable error that names the URL.
    let nowhere = format!("http://127.0.0.1:{}", server.nodes[0].http_port + 1);
    let err = QdrantVectorStore::open(
        &QdrantStoreConfig {
            connect_timeout: Duration::from_millis(300),
            ..config(nowhere.clone(), "contract")
        },
        DIM,
    )
    .err()
    .expect("no server");
    assert!(matches!(err, IndexError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains(&nowhere), "{err}");

    // The server goes away: reads fail (unavailable), then fail fast during the cool-down,
    // and work again once it is back; the points are still there.
    let store = open();
    server.nodes[0].kill();
    let err = store
        .search(&unit(0, 1, 0.1), &SearchFilter::default(), 3, false)
        .unwrap_err();
    assert!(matches!(err, IndexError::Unavailable(_)), "{err:?}");
    assert!(store.health().is_err());
    let started = Instant::now();
    let err = store
        .search(&unit(0, 1, 0.1), &SearchFilter::default(), 3, false)
        .unwrap_err();
    assert!(err.to_string().contains("unreachable"), "{err}");
    assert!(
        started.elapsed() < Duration::from_millis(50),
        "{:?}",
        started.elapsed()
    );
    server.nodes[0].restart();
    std::thread::sleep(Duration::from_secs(2));
    let deadline = Instant::now() + Duration::from_secs(30);
    let hits = loop {
        match store.search(&unit(0, 1, 0.6), &SearchFilter::default(), 5, false) {
            Ok(hits) => break hits,
            Err(e) if Instant::now() < deadline => {
                eprintln!("waiting for Qdrant to come back: {e}");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => panic!("Qdrant did not come back: {e}"),
        }
    };
    assert_eq!(ids(&hits), ["地震-3", "quake-2"]);
    store.health().unwrap();
}
