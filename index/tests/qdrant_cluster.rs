//! A three-node Qdrant cluster (`replication_factor = 2`) under the server store: one node is
//! SIGKILLed while posts are being written and searched. Every acknowledged write is still
//! there afterwards and searches keep answering through the surviving nodes.

#[path = "support/qdrant_server.rs"]
mod qdrant_server;

use qdrant_server::QdrantServer;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tidings_index::filter::SearchFilter;
use tidings_index::{
    PostId, QdrantStoreConfig, QdrantVectorStore, VectorPoint, VectorReader, VectorStore,
};

const DIM: usize = 16;

fn point(i: usize) -> VectorPoint {
    let id = format!("cluster-{i}");
    // Deterministic pseudo-random directions (splitmix64 of the point and dimension).
    let vector: Vec<f32> = (0..DIM)
        .map(|d| {
            let mut z = (i as u64 * DIM as u64 + d as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) % 10_000) as f32 / 10_000.0 - 0.5
        })
        .collect();
    VectorPoint {
        id_hash: PostId::parse(&id).unwrap().hash64(),
        post_id: id,
        created_at_ms: 1_700_000_000_000 + i as i64 * 1000,
        author: Some(format!("author{}", i % 7)),
        source: "test".into(),
        lang: Some("en".into()),
        vector,
        interim: false,
    }
}

#[test]
fn a_killed_node_loses_no_acknowledged_write_and_searches_keep_answering() {
    let mut cluster = QdrantServer::cluster(3);
    let config = QdrantStoreConfig {
        url: cluster.url(),
        collection: "cluster".into(),
        shard_number: 3,
        replication_factor: 2,
        write_consistency_factor: 1,
        ..QdrantStoreConfig::default()
    };
    let store = Arc::new(QdrantVectorStore::open(&config, DIM).unwrap());
    let (_, info) = cluster.nodes[0]
        .get("/collections/cluster/cluster")
        .unwrap();
    assert!(info.contains("\"shard_count\":3"), "{info}");

    let batches = 40;
    let per_batch = 25;
    let done = Arc::new(AtomicBool::new(false));
    let searcher = {
        let store = store.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0, Vec::new());
            let filter = SearchFilter {
                authors: vec!["author3".into()],
                ..SearchFilter::default()
            };
            while !done.load(Ordering::Acquire) {
                match store.search(&point(3).vector, &filter, 5, false) {
                    Ok(_) => ok += 1,
                    Err(e) => failed.push(e.to_string()),
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (ok, failed)
        })
    };
    let mut acknowledged = BTreeSet::new();
    for b in 0..batches {
        if b == batches / 3 {
            cluster.nodes[2].kill();
        }
        let points: Vec<VectorPoint> = (b * per_batch..(b + 1) * per_batch).map(point).collect();
        let ids: Vec<String> = points.iter().map(|p| p.post_id.clone()).collect();
        // The vector worker retries a failed batch until it lands; so does this loop.
        let mut attempts = 0;
        loop {
            attempts += 1;
            match store.upsert(points.clone()) {
                Ok(()) => break,
                Err(e) if attempts < 20 => {
                    eprintln!("batch {b}: {e}; retrying");
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(e) => panic!("batch {b} never landed: {e}"),
            }
        }
        acknowledged.extend(ids);
    }
    done.store(true, Ordering::Release);
    let (ok, failed) = searcher.join().unwrap();
    assert!(ok > 0, "no search answered");
    assert!(
        failed.is_empty(),
        "{} of {} searches failed after the kill: {:?}",
        failed.len(),
        ok + failed.len(),
        failed.first()
    );

    let stored: BTreeSet<String> = store
        .all_ids()
        .unwrap()
        .into_iter()
        .map(|s| s.post_id)
        .collect();
    let lost: Vec<_> = acknowledged.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged points lost: {lost:?}",
        lost.len()
    );
    assert_eq!(store.count().unwrap(), batches * per_batch);
    // Each surviving point is findable by its own vector.
    let hits = store
        .search(&point(777).vector, &SearchFilter::default(), 1, true)
        .unwrap();
    assert_eq!(hits[0].post_id, "cluster-777");
}
