//! Story detection: group the posts of a window into stories (posts about the same thing),
//! then rank the stories by how much they burst above their baseline, how many accounts carry
//! them, and engagement.
//!
//! Grouping is a single pass in time order: a post joins the story whose centroid embedding is
//! most similar (cosine ≥ `join_similarity`), else starts a new one; then stories whose
//! centroids are very close (≥ `merge_similarity`) and share a topic word merge. Posts without a
//! vector (embedder off or behind) group by shared topic words instead. Near-duplicates
//! (retweets, copies: same `dup_key`) are folded before grouping and only add a little volume,
//! so a copy flood cannot make a story; a story carried by one account is dropped as spam.

use crate::plan::topic_words;
use crate::suggest::proper_phrases;
use std::collections::{HashMap, HashSet};
use tidings_index::Post;

/// Tuning of story detection.
#[derive(Clone, Debug)]
pub struct StoryConfig {
    /// Cosine to a story's centroid from which a post joins it.
    pub join_similarity: f32,
    /// Cosine between two centroids from which the stories merge (with a shared topic word).
    pub merge_similarity: f32,
    /// Share of a post's topic words a story must hold for the post to join it (no vectors).
    pub join_term_share: f32,
    /// Distinct posts (after folding copies) a story needs.
    pub min_posts: usize,
    /// Distinct accounts a story needs when posts name their authors.
    pub min_authors: usize,
    /// Volume one folded copy adds (a distinct post adds 1).
    pub duplicate_weight: f32,
}

impl Default for StoryConfig {
    fn default() -> Self {
        StoryConfig {
            join_similarity: 0.5,
            merge_similarity: 0.75,
            join_term_share: 0.5,
            min_posts: 3,
            min_authors: 2,
            duplicate_weight: 0.2,
        }
    }
}

/// A post and its embedding (when the vector index has it).
#[derive(Clone, Debug)]
pub struct StoryPost {
    pub post: Post,
    pub vector: Option<Vec<f32>>,
}

/// A detected story.
#[derive(Clone, Debug)]
pub struct Story {
    /// Its distinct posts, the most central first.
    pub posts: Vec<Post>,
    /// Copies folded into those posts.
    pub duplicates: usize,
    /// Distinct posts + `duplicate_weight` per copy.
    pub volume: f32,
    /// Distinct named accounts; posts without an author count one each.
    pub authors: usize,
    pub engagement: u64,
    /// The hashtags and names most of its posts use, most used first.
    pub labels: Vec<String>,
    /// Topic words most of its posts use.
    pub terms: Vec<String>,
    /// Mean embedding (unit length), empty when no post had a vector.
    pub centroid: Vec<f32>,
    /// Expected volume in a window of the same length, from the baseline (set by the caller).
    pub baseline: f32,
    /// `(volume + 1) / (baseline + 1)`.
    pub burst: f32,
    pub score: f32,
}

impl Story {
    /// A short headline from the labels, or from the most central post.
    pub fn headline(&self) -> String {
        if !self.labels.is_empty() {
            return self
                .labels
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join(" · ");
        }
        let text = self.posts.first().map_or("", |p| p.text.as_str());
        tidings_index::script::shorten(text, 80).into_owned()
    }

    /// Sets the baseline and derives burst and score.
    pub fn set_baseline(&mut self, baseline: f32) {
        self.baseline = baseline.max(0.0);
        self.burst = (self.volume + 1.0) / (self.baseline + 1.0);
        let spread = (self.authors as f32).ln_1p();
        let engagement = 1.0 + 0.05 * (self.engagement as f32).ln_1p();
        self.score = self.volume.ln_1p() * self.burst.ln_1p() * (1.0 + spread) * engagement;
    }
}

fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() || a.is_empty() {
        return 0.0;
    }
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

/// Words that say nothing about which story a post belongs to.
const STOP: &[&str] = &["rt", "http", "https", "amp", "via", "t.co", "co"];

fn terms_of(post: &Post) -> HashSet<String> {
    let mut out: HashSet<String> = topic_words(&post.text)
        .into_iter()
        .filter(|w| w.chars().count() >= 3 && !STOP.contains(&w.as_str()) && !w.starts_with('@'))
        .collect();
    for t in &post.hashtags {
        out.insert(format!("#{}", t.trim_start_matches('#').to_lowercase()));
    }
    out
}

/// A story while it grows.
#[derive(Default)]
struct Group {
    members: Vec<usize>,
    sum: Vec<f32>,
    terms: HashMap<String, usize>,
}

impl Group {
    fn add(&mut self, i: usize, vector: Option<&[f32]>, terms: &HashSet<String>) {
        self.members.push(i);
        if let Some(v) = vector {
            if self.sum.is_empty() {
                self.sum = vec![0.0; v.len()];
            }
            if self.sum.len() == v.len() {
                self.sum.iter_mut().zip(v).for_each(|(s, x)| *s += x);
            }
        }
        for t in terms {
            *self.terms.entry(t.clone()).or_default() += 1;
        }
    }

    fn absorb(&mut self, other: Group) {
        self.members.extend(other.members);
        if self.sum.is_empty() {
            self.sum = other.sum;
        } else if self.sum.len() == other.sum.len() {
            self.sum
                .iter_mut()
                .zip(&other.sum)
                .for_each(|(s, x)| *s += x);
        }
        for (t, n) in other.terms {
            *self.terms.entry(t).or_default() += n;
        }
    }

    /// Terms held by at least a fifth of the members (and two of them).
    fn common_terms(&self) -> HashSet<&str> {
        let need = (self.members.len() / 5).max(1);
        self.terms
            .iter()
            .filter(|(_, n)| **n >= need)
            .map(|(t, _)| t.as_str())
            .collect()
    }
}

/// Groups `posts` into stories, best first by a provisional score (baseline 0); callers set
/// each story's baseline with [`Story::set_baseline`] and sort again.
pub fn detect(posts: Vec<StoryPost>, config: &StoryConfig) -> Vec<Story> {
    // Fold copies: the first post of each dup_key stands for the rest.
    let mut by_key: HashMap<u64, usize> = HashMap::new();
    let mut distinct: Vec<StoryPost> = Vec::new();
    let mut copies: Vec<usize> = Vec::new();
    let mut copy_authors: Vec<HashSet<String>> = Vec::new();
    let mut sorted = posts;
    sorted.sort_by_key(|p| p.post.created_at);
    for p in sorted {
        let key = p.post.dup_key();
        match by_key.get(&key) {
            Some(&i) => {
                copies[i] += 1;
                if let Some(a) = &p.post.author {
                    copy_authors[i].insert(a.clone());
                }
            }
            None => {
                by_key.insert(key, distinct.len());
                copies.push(0);
                copy_authors.push(HashSet::new());
                distinct.push(p);
            }
        }
    }
    let terms: Vec<HashSet<String>> = distinct.iter().map(|p| terms_of(&p.post)).collect();
    let mut vectors: Vec<Option<Vec<f32>>> = distinct.iter().map(|p| p.vector.clone()).collect();
    vectors.iter_mut().flatten().for_each(|v| normalise(v));

    // One pass in time order.
    let mut groups: Vec<Group> = Vec::new();
    for i in 0..distinct.len() {
        let best = match &vectors[i] {
            Some(v) => groups
                .iter()
                .enumerate()
                .filter(|(_, g)| !g.sum.is_empty())
                .map(|(gi, g)| (gi, cosine(v, &g.sum)))
                .filter(|(_, s)| *s >= config.join_similarity)
                .max_by(|a, b| a.1.total_cmp(&b.1)),
            None => {
                let mine = &terms[i];
                groups
                    .iter()
                    .enumerate()
                    .map(|(gi, g)| {
                        let common = g.common_terms();
                        let shared = mine.iter().filter(|t| common.contains(t.as_str())).count();
                        (gi, shared as f32 / mine.len().max(1) as f32)
                    })
                    .filter(|(_, s)| *s >= config.join_term_share)
                    .max_by(|a, b| a.1.total_cmp(&b.1))
            }
        };
        match best {
            Some((gi, _)) => groups[gi].add(i, vectors[i].as_deref(), &terms[i]),
            None => {
                let mut g = Group::default();
                g.add(i, vectors[i].as_deref(), &terms[i]);
                groups.push(g);
            }
        }
    }
    // Merge near-identical stories that share a topic word.
    loop {
        let mut pair = None;
        'find: for a in 0..groups.len() {
            for b in a + 1..groups.len() {
                if groups[a].sum.is_empty() || groups[b].sum.is_empty() {
                    continue;
                }
                if cosine(&groups[a].sum, &groups[b].sum) >= config.merge_similarity {
                    let ta = groups[a].common_terms();
                    if groups[b].common_terms().iter().any(|t| ta.contains(t)) {
                        pair = Some((a, b));
                        break 'find;
                    }
                }
            }
        }
        match pair {
            Some((a, b)) => {
                let other = groups.remove(b);
                groups[a].absorb(other);
            }
            None => break,
        }
    }

    drop_roundups(&mut groups, &distinct, config);

    let mut stories: Vec<Story> = groups
        .into_iter()
        .filter(|g| g.members.len() >= config.min_posts)
        .filter_map(|g| {
            let mut centroid = g.sum.clone();
            normalise(&mut centroid);
            let mut members = g.members.clone();
            members.sort_by(|&a, &b| {
                let sa = vectors[a].as_deref().map_or(0.0, |v| cosine(v, &centroid));
                let sb = vectors[b].as_deref().map_or(0.0, |v| cosine(v, &centroid));
                sb.total_cmp(&sa).then_with(|| {
                    distinct[b]
                        .post
                        .created_at
                        .cmp(&distinct[a].post.created_at)
                })
            });
            let mut named: HashSet<String> = HashSet::new();
            let mut anonymous = 0;
            let mut per_author: HashMap<String, usize> = HashMap::new();
            for &i in &members {
                match &distinct[i].post.author {
                    Some(a) => {
                        named.insert(a.clone());
                        *per_author.entry(a.clone()).or_default() += 1;
                    }
                    None => anonymous += 1,
                }
                named.extend(copy_authors[i].iter().cloned());
            }
            let authors = named.len() + anonymous;
            // Spam: a story one account carries.
            let top_share =
                per_author.values().max().copied().unwrap_or(0) as f32 / members.len() as f32;
            if anonymous == 0 && (authors < config.min_authors || top_share > 0.5) {
                return None;
            }
            let duplicates: usize = members.iter().map(|&i| copies[i]).sum();
            let engagement: u64 = members
                .iter()
                .map(|&i| distinct[i].post.engagement.total())
                .sum();
            let labels = labels_of(members.iter().map(|&i| &distinct[i].post));
            let mut terms: Vec<(String, usize)> = g
                .terms
                .iter()
                .filter(|(t, _)| !t.starts_with('#'))
                .map(|(t, n)| (t.clone(), *n))
                .collect();
            terms.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            let mut story = Story {
                posts: members.iter().map(|&i| distinct[i].post.clone()).collect(),
                duplicates,
                volume: members.len() as f32 + config.duplicate_weight * duplicates as f32,
                authors,
                engagement,
                labels,
                terms: terms.into_iter().take(8).map(|(t, _)| t).collect(),
                centroid,
                baseline: 0.0,
                burst: 0.0,
                score: 0.0,
            };
            story.set_baseline(0.0);
            Some(story)
        })
        .collect();
    sort(&mut stories);
    stories
}

/// Lowercased hashtags and names a post uses.
fn keys_of(post: &Post) -> HashSet<String> {
    let mut keys: HashSet<String> = post
        .hashtags
        .iter()
        .map(|t| format!("#{}", t.trim_start_matches('#').to_lowercase()))
        .collect();
    for phrase in proper_phrases(&post.text) {
        keys.insert(phrase.to_lowercase());
    }
    keys
}

/// Whether `text` (lowercased) names `key`: as a whole word, or (with `in_hashtags`) inside a
/// hashtag (`#prayforboston` names `boston`).
fn mentions(text: &str, key: &str, in_hashtags: bool) -> bool {
    text.match_indices(key).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + key.len()..].chars().next();
        let bounded =
            !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric);
        let in_hashtag = in_hashtags
            && !key.starts_with('#')
            && key.chars().count() >= 4
            && text[..i]
                .rsplit(char::is_whitespace)
                .next()
                .is_some_and(|token| token.starts_with('#'));
        bounded || in_hashtag
    })
}

/// Removes roundup posts ("this week: Boston bombs, a Texas explosion…") from stories: a post
/// that names what sets another story apart from its own belongs to neither. What sets story B
/// apart from story A: the hashtags and names at least a quarter of B's posts mention that are
/// at least three times rarer in A.
fn drop_roundups(groups: &mut [Group], distinct: &[StoryPost], config: &StoryConfig) {
    let big: Vec<usize> = (0..groups.len())
        .filter(|&g| groups[g].members.len() >= config.min_posts)
        .collect();
    if big.len() < 2 {
        return;
    }
    let post_keys: HashMap<usize, HashSet<String>> = big
        .iter()
        .flat_map(|&g| groups[g].members.iter().copied())
        .map(|i| (i, keys_of(&distinct[i].post)))
        .collect();
    // Candidate keys: what any post of a story names; a post "has" a key when its text
    // mentions it anywhere (lowercase, sentence starts included).
    let texts: HashMap<usize, String> = post_keys
        .keys()
        .map(|&i| (i, distinct[i].post.text.to_lowercase()))
        .collect();
    let has = |i: usize, k: &str| post_keys[&i].contains(k) || mentions(&texts[&i], k, false);
    let names = |i: usize, k: &str| post_keys[&i].contains(k) || mentions(&texts[&i], k, true);
    let candidates: HashSet<&str> = post_keys.values().flatten().map(String::as_str).collect();
    let shares: Vec<HashMap<&str, f32>> = big
        .iter()
        .map(|&g| {
            let n = groups[g].members.len() as f32;
            candidates
                .iter()
                .map(|k| {
                    let c = groups[g].members.iter().filter(|&&i| has(i, k)).count();
                    (*k, c as f32 / n)
                })
                .filter(|(_, s)| *s > 0.0)
                .collect()
        })
        .collect();
    // What sets story b apart from story a: keys a quarter of b's posts name and that are at
    // least three times rarer in a.
    let apart = |a: usize, b: usize| -> Vec<&str> {
        shares[b]
            .iter()
            .filter(|(k, s)| **s >= 0.25 && shares[a].get(*k).copied().unwrap_or(0.0) * 3.0 <= **s)
            .map(|(k, _)| *k)
            .collect()
    };
    // Only stories that are really different count (fragments of one story share a centroid).
    let different = |a: usize, b: usize| {
        let (ga, gb) = (&groups[big[a]], &groups[big[b]]);
        if ga.sum.is_empty() || gb.sum.is_empty() {
            return true;
        }
        cosine(&ga.sum, &gb.sum) < config.merge_similarity - 0.15
    };
    let pairs: Vec<(usize, usize, Vec<&str>, Vec<&str>)> = (0..big.len())
        .flat_map(|a| (a + 1..big.len()).map(move |b| (a, b)))
        .filter(|&(a, b)| different(a, b))
        .map(|(a, b)| (a, b, apart(b, a), apart(a, b)))
        .collect();
    let roundup: Vec<Vec<usize>> = big
        .iter()
        .enumerate()
        .map(|(a, &g)| {
            let others: Vec<Vec<&str>> = (0..big.len())
                .filter(|&b| b != a)
                .map(|b| apart(a, b))
                .collect();
            groups[g]
                .members
                .iter()
                .copied()
                .filter(|&i| {
                    // Names what sets another story apart from this one.
                    others.iter().any(|keys| keys.iter().any(|k| has(i, k)))
                    // Or names two different stories at once (wherever it sits).
                        || pairs.iter().any(|(_, _, x_keys, y_keys)| {
                            x_keys.iter().any(|k| names(i, k)) && y_keys.iter().any(|k| names(i, k))
                        })
                })
                .collect()
        })
        .collect();
    for (&g, drop) in big.iter().zip(roundup) {
        groups[g].members.retain(|i| !drop.contains(i));
    }
}

/// Best story first.
pub fn sort(stories: &mut [Story]) {
    stories.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| b.posts.len().cmp(&a.posts.len()))
    });
}

/// Hashtags and capitalised names used by at least a fifth of the posts (and two), most used
/// first.
fn labels_of<'a>(posts: impl Iterator<Item = &'a Post>) -> Vec<String> {
    let mut counts: HashMap<String, (String, usize)> = HashMap::new();
    let mut n = 0;
    for post in posts {
        n += 1;
        let mut seen = HashSet::new();
        let tags = post
            .hashtags
            .iter()
            .map(|t| format!("#{}", t.trim_start_matches('#')));
        for label in tags.chain(proper_phrases(&post.text)) {
            let key = label.to_lowercase();
            if key.len() < 3 || !seen.insert(key.clone()) {
                continue;
            }
            counts.entry(key).or_insert((label, 0)).1 += 1;
        }
    }
    let need = (n / 5).max(2);
    let mut out: Vec<(String, usize)> = counts.into_values().filter(|(_, c)| *c >= need).collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    // Drop a label contained in a better one ("Texas" under "West Texas").
    let mut kept: Vec<String> = Vec::new();
    for (label, _) in out {
        let l = label.to_lowercase();
        if kept.iter().any(|k| k.to_lowercase().contains(&l)) {
            continue;
        }
        kept.push(label);
        if kept.len() >= 5 {
            break;
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, Utc};
    use proptest::prelude::*;

    proptest! {
        /// Story detection over posts in any script, with and without vectors: no panic,
        /// every story's posts come from the input, headlines stay short, and the digest's
        /// markdown renders.
        #[test]
        fn any_script_stories_and_markdown(
            posts in tidings_index::testing::any_posts(16),
            with_vectors in any::<bool>(),
            summary in tidings_index::testing::any_text(),
        ) {
            let input: Vec<StoryPost> = posts
                .iter()
                .enumerate()
                .map(|(i, p)| StoryPost {
                    post: p.clone(),
                    vector: with_vectors.then(|| {
                        let mut v = vec![0.0f32; 8];
                        v[i % 8] = 1.0;
                        v
                    }),
                })
                .collect();
            let config = StoryConfig { min_posts: 2, min_authors: 1, ..StoryConfig::default() };
            let mut found = detect(input, &config);
            sort(&mut found);
            for s in &found {
                for p in &s.posts {
                    prop_assert!(posts.iter().any(|q| q.id == p.id));
                }
                let headline = s.headline();
                if s.labels.is_empty() {
                    prop_assert_eq!(tidings_index::script::prefix_graphemes(&headline, 81), headline.as_str());
                }
            }
            let output = crate::digest::DigestOutput {
                name: "any".into(),
                as_of: Utc::now(),
                from: Utc::now() - Duration::hours(1),
                to: Utc::now(),
                posts_seen: posts.len(),
                stories: found
                    .into_iter()
                    .map(|story| crate::digest::DigestStory {
                        headline: story.headline(),
                        summary: summary.clone(),
                        citations: story
                            .posts
                            .iter()
                            .enumerate()
                            .map(|(i, p)| crate::Citation {
                                number: i + 1,
                                post: p.clone(),
                                url: None,
                                support: 1.0,
                                inferred: false,
                                corroboration: 1,
                            })
                            .collect(),
                        story,
                    })
                    .collect(),
                took: std::time::Duration::ZERO,
            };
            let md = output.markdown();
            prop_assert!(md.starts_with("# any"));
        }
    }

    fn post(id: &str, author: Option<&str>, text: &str, minutes: usize) -> Post {
        let mut p = crate::suggest_test_post(id);
        p.author = author.map(Into::into);
        p.text = text.into();
        p.created_at = Utc::now() - Duration::minutes(600 - minutes as i64);
        p.hashtags = text
            .split_whitespace()
            .filter_map(|w| w.strip_prefix('#'))
            .map(|w| w.to_lowercase())
            .collect();
        p
    }

    const WORDS: [&str; 6] = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"];

    fn axis(i: usize, noise: f32) -> Vec<f32> {
        let mut v = vec![noise; 8];
        v[i] = 1.0;
        v
    }

    #[test]
    fn separates_stories_by_embedding_and_folds_copies() {
        let mut posts = Vec::new();
        for k in 0..6 {
            posts.push(StoryPost {
                post: post(
                    &format!("t:a{k}"),
                    Some(&format!("u{k}")),
                    &format!("Explosion at the West fertilizer plant, update {k} #westexplosion"),
                    k,
                ),
                vector: Some(axis(0, 0.05 * k as f32)),
            });
            posts.push(StoryPost {
                post: post(
                    &format!("t:b{k}"),
                    Some(&format!("v{k}")),
                    &format!("Police search Watertown for the Boston suspect, report {k} #manhunt"),
                    k,
                ),
                vector: Some(axis(1, 0.04 * k as f32)),
            });
        }
        // A copy flood of one Boston post: folded, adds a little volume only.
        for c in 0..10 {
            posts.push(StoryPost {
                post: post(
                    &format!("t:c{c}"),
                    Some(&format!("w{c}")),
                    "Police search Watertown for the Boston suspect, report 0 #manhunt",
                    20,
                ),
                vector: Some(axis(1, 0.0)),
            });
        }
        let stories = detect(posts, &StoryConfig::default());
        assert_eq!(stories.len(), 2);
        let boston = stories
            .iter()
            .find(|s| s.labels.contains(&"#manhunt".to_string()))
            .unwrap();
        let west = stories
            .iter()
            .find(|s| s.labels.contains(&"#westexplosion".to_string()))
            .unwrap();
        assert!(boston.posts.iter().all(|p| p.text.contains("Watertown")));
        assert!(west.posts.iter().all(|p| p.text.contains("West")));
        assert_eq!(boston.posts.len(), 6);
        assert_eq!(boston.duplicates, 10);
        assert!((boston.volume - 8.0).abs() < 1e-4);
        assert!(
            boston.headline().contains("#manhunt"),
            "{}",
            boston.headline()
        );
    }

    #[test]
    fn roundup_posts_naming_two_stories_belong_to_neither() {
        let mut posts = Vec::new();
        for k in 0..6 {
            posts.push(StoryPost {
                post: post(
                    &format!("t:w{k}"),
                    None,
                    &format!(
                        "Fertilizer plant explosion in West Texas, witness {}",
                        WORDS[k]
                    ),
                    k,
                ),
                vector: Some(axis(0, 0.02 * k as f32)),
            });
            posts.push(StoryPost {
                post: post(
                    &format!("t:b{k}"),
                    None,
                    &format!(
                        "Manhunt in Watertown near Boston tonight, says {}",
                        WORDS[k]
                    ),
                    k,
                ),
                vector: Some(axis(1, 0.02 * k as f32)),
            });
        }
        // Close to the Boston posts in embedding space, but it names Texas too.
        posts.push(StoryPost {
            post: post(
                "t:r1",
                None,
                "What a week: bombs in Boston, an explosion in Texas, a manhunt",
                30,
            ),
            vector: Some(axis(1, 0.1)),
        });
        let stories = detect(posts, &StoryConfig::default());
        assert_eq!(stories.len(), 2);
        for s in &stories {
            assert!(
                s.posts.iter().all(|p| p.id.as_str() != "t:r1"),
                "{:?}",
                s.headline()
            );
            assert_eq!(s.posts.len(), 6);
        }
    }

    #[test]
    fn one_account_is_not_a_story_and_small_groups_are_dropped() {
        let mut posts = Vec::new();
        for k in 0..8 {
            posts.push(StoryPost {
                post: post(
                    &format!("t:s{k}"),
                    Some("spammer"),
                    &format!("Buy cheap followers now offer {k}"),
                    k,
                ),
                vector: Some(axis(2, 0.01 * k as f32)),
            });
        }
        posts.push(StoryPost {
            post: post("t:x1", Some("a"), "Lonely post about gardening", 1),
            vector: Some(axis(3, 0.0)),
        });
        assert!(detect(posts, &StoryConfig::default()).is_empty());
    }

    #[test]
    fn without_vectors_posts_group_by_shared_words() {
        let mut posts = Vec::new();
        for k in 0..4 {
            posts.push(StoryPost {
                post: post(
                    &format!("t:f{k}"),
                    None,
                    &format!(
                        "Flooding closes Riverton bridge downtown, says {}",
                        WORDS[k]
                    ),
                    k,
                ),
                vector: None,
            });
            posts.push(StoryPost {
                post: post(
                    &format!("t:g{k}"),
                    None,
                    &format!("Hawks beat Lions in overtime thriller, cheers {}", WORDS[k]),
                    k,
                ),
                vector: None,
            });
        }
        let stories = detect(posts, &StoryConfig::default());
        assert_eq!(
            stories.len(),
            2,
            "{:?}",
            stories.iter().map(|s| s.headline()).collect::<Vec<_>>()
        );
        for s in &stories {
            let first = s.posts[0]
                .text
                .split_whitespace()
                .next()
                .unwrap()
                .to_string();
            assert!(s.posts.iter().all(|p| p.text.starts_with(&first)));
        }
    }

    #[test]
    fn burst_ranks_a_new_story_above_a_steady_one() {
        let mut a = detect(
            (0..5)
                .map(|k| StoryPost {
                    post: post(
                        &format!("t:n{k}"),
                        None,
                        &format!("New bridge collapse downtown, witness {}", WORDS[k]),
                        k,
                    ),
                    vector: Some(axis(4, 0.01 * k as f32)),
                })
                .chain((0..5).map(|k| StoryPost {
                    post: post(
                        &format!("t:o{k}"),
                        None,
                        &format!("Traffic on the ring road again near {}", WORDS[k]),
                        k,
                    ),
                    vector: Some(axis(5, 0.01 * k as f32)),
                }))
                .collect(),
            &StoryConfig::default(),
        );
        for s in &mut a {
            let steady = s.posts[0].text.contains("Traffic");
            s.set_baseline(if steady { 5.0 } else { 0.0 });
        }
        sort(&mut a);
        assert!(a[0].posts[0].text.contains("bridge"));
        assert!(a[0].burst > 5.0 && a[1].burst < 1.1);
    }
}
