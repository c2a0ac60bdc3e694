//! How well a static (token-table) vector stands in for the local model's own vector in one
//! collection searched with the model's query vectors: TweetQA questions whose gold post is in
//! the odd half of the posts, every post as the candidate set, dense retrieval alone.
//! `approx_space MODEL_DIR TWEETQA_DIR [OTHER_POSTS_JSONL]` (about five minutes on two cores: the
//! model embeds the 6,732 posts once). The interim table's correction learned while it runs
//! (`StaticEmbedder::learn_from`, its shipped schedule) is measured after pairs from the even
//! half of the posts and, given another corpus, after pairs from its first 3,000 posts.
use std::collections::HashMap;
use std::path::Path;
use tidings_index::embed::fit;
use tidings_index::{Embedder as _, LocalEmbedder, StaticEmbedder};

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
    v
}

/// "N pairs (R refits, held-out cosine C)" for an interim table that learned.
fn learned(table: &StaticEmbedder) -> String {
    let f = table.fit_state().expect("the interim table learns");
    format!(
        "{} pairs ({} refits, held-out cosine {:.3})",
        f.pairs,
        f.refits,
        f.cosine.unwrap_or(0.0)
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (dir, data) = (Path::new(&args[1]), Path::new(&args[2]));
    let teacher = LocalEmbedder::load(dir, 1).expect("the local model");
    let own = StaticEmbedder::load_or_distill(dir).expect("the static table");
    let interim = StaticEmbedder::load_or_fit_interim(dir).expect("the interim table");
    let tok = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).expect("tokenizer");
    let (vocab, d) = (tok.get_vocab_size(true), teacher.dim());
    let (cls, sep) = (
        tok.token_to_id("[CLS]").unwrap(),
        tok.token_to_id("[SEP]").unwrap(),
    );
    // The interim table's rows before its map: each token's own output, SIF-weighted.
    let harmonic: f64 = (0..vocab).map(|r| 1.0 / (r + 2) as f64).sum();
    let mut rows = vec![0f32; vocab * d];
    let ids: Vec<u32> = (0..vocab as u32).collect();
    for chunk in ids.chunks(256) {
        let inputs: Vec<[u32; 3]> = chunk.iter().map(|&id| [cls, id, sep]).collect();
        for (&id, v) in chunk
            .iter()
            .zip(teacher.embed_ids_blocking(&inputs).unwrap())
        {
            let p = 1.0 / ((id as usize + 2) as f64 * harmonic);
            let w = (1e-4 / (1e-4 + p)) as f32;
            let row = &mut rows[id as usize * d..(id as usize + 1) * d];
            row.iter_mut().zip(v).for_each(|(r, x)| *r = w * x);
        }
    }
    let bag = |text: &str| -> Vec<f32> {
        let mut v = vec![0f32; d];
        for &id in tok.encode(text, false).unwrap().get_ids() {
            let row = &rows[id as usize * d..(id as usize + 1) * d];
            v.iter_mut().zip(row).for_each(|(x, r)| *x += r);
        }
        unit(v)
    };

    let mut post_ids = Vec::new();
    let mut texts = Vec::new();
    for line in std::fs::read_to_string(data.join("posts.jsonl"))
        .unwrap()
        .lines()
    {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        post_ids.push(v["id"].as_str().unwrap().to_string());
        texts.push(v["text"].as_str().unwrap().to_string());
    }
    let index: HashMap<&str, usize> = post_ids
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    let model_posts = teacher.embed_blocking(&texts).unwrap();
    let mut questions = Vec::new();
    for line in std::fs::read_to_string(data.join("qa_public.jsonl"))
        .unwrap()
        .lines()
    {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let gold: Vec<usize> = v["gold_post_ids"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|g| index.get(g.as_str()?).copied())
            .collect();
        if !gold.is_empty() && gold.iter().all(|g| g % 2 == 1) {
            questions.push((v["question"].as_str().unwrap().to_string(), gold));
        }
    }
    questions.truncate(800);
    let qtexts: Vec<String> = questions.iter().map(|q| q.0.clone()).collect();
    let model_queries = teacher.embed_blocking(&qtexts).unwrap();

    let odd: Vec<usize> = (1..texts.len()).step_by(2).collect();
    let report = |name: &str, posts: &[Vec<f32>], queries: &[Vec<f32>]| {
        let (mut r1, mut r10) = (0, 0);
        for ((_, gold), q) in questions.iter().zip(queries) {
            let mut s: Vec<(f32, usize)> = posts
                .iter()
                .enumerate()
                .map(|(i, p)| (dot(q, p), i))
                .collect();
            s.sort_by(|a, b| b.0.total_cmp(&a.0));
            r1 += usize::from(gold.contains(&s[0].1));
            r10 += usize::from(s[..10].iter().any(|(_, i)| gold.contains(i)));
        }
        let cos = odd
            .iter()
            .map(|&i| dot(&posts[i], &model_posts[i]))
            .sum::<f32>()
            / odd.len() as f32;
        let n = questions.len() as f64;
        println!(
            "| {name} | {:.3} | {:.3} | {cos:.3} |",
            r1 as f64 / n,
            r10 as f64 / n
        );
    };
    println!("{} questions, {} posts", questions.len(), texts.len());
    println!(
        "| posts embedded by | R@1 | R@10 | mean cosine to the model's own vector (odd half) |"
    );
    println!("|---|---:|---:|---:|");
    report("the local model", &model_posts, &model_queries);
    let own_posts = own.embed_blocking(&texts).unwrap();
    report(
        "`static` (own space; its own query vectors)",
        &own_posts,
        &own.embed_blocking(&qtexts).unwrap(),
    );
    report(
        "`static` (own space; the model's queries)",
        &own_posts,
        &model_queries,
    );
    let bags: Vec<Vec<f32>> = texts.iter().map(|t| bag(t)).collect();
    report("SIF-weighted token outputs, no map", &bags, &model_queries);
    report(
        "interim: the same, mapped by a fit on vocabulary texts (shipped)",
        &interim.embed_blocking(&texts).unwrap(),
        &model_queries,
    );
    // The map fitted on the even half of the real posts instead (the questions' gold posts
    // are all in the odd half).
    let even: Vec<usize> = (0..texts.len()).step_by(2).collect();
    let x: Vec<Vec<f32>> = even.iter().map(|&i| bags[i].clone()).collect();
    let y: Vec<Vec<f32>> = even.iter().map(|&i| model_posts[i].clone()).collect();
    let map = fit::ridge(&x, &y, 0.1).unwrap();
    let mapped: Vec<Vec<f32>> = bags.iter().map(|b| unit(fit::apply(&map, b))).collect();
    report(
        "the same, mapped by a fit on real posts (even half)",
        &mapped,
        &model_queries,
    );
    // The shipped correction, learned from the pairs a running server would see: the even
    // half's posts (the questions' gold posts are all in the odd half), in order.
    let learner = StaticEmbedder::load_or_fit_interim(dir).expect("the interim table");
    let mut fed = 0;
    for stop in [256, 1024, even.len()] {
        let stop = stop.min(even.len());
        let idx = &even[fed..stop];
        let t: Vec<String> = idx.iter().map(|&i| texts[i].clone()).collect();
        let y: Vec<Vec<f32>> = idx.iter().map(|&i| model_posts[i].clone()).collect();
        learner.learn_from(&t, &y, true);
        fed = stop;
        report(
            &format!(
                "interim, corrected while running: {} of the even half",
                learned(&learner)
            ),
            &learner.embed_blocking(&texts).unwrap(),
            &model_queries,
        );
    }
    // Pairs from another stream altogether (what a server fed by one feed learns, searched
    // for posts of another).
    if let Some(other) = args.get(3) {
        let other_texts: Vec<String> = std::fs::read_to_string(other)
            .unwrap()
            .lines()
            .take(3000)
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["text"].as_str().unwrap_or_default().to_string()
            })
            .collect();
        let other_vectors = teacher.embed_blocking(&other_texts).unwrap();
        let cross = StaticEmbedder::load_or_fit_interim(dir).expect("the interim table");
        cross.learn_from(&other_texts, &other_vectors, true);
        report(
            &format!(
                "interim, corrected on {} of another corpus",
                learned(&cross)
            ),
            &cross.embed_blocking(&texts).unwrap(),
            &model_queries,
        );
    }
}
