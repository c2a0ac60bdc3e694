//! The extractive answer: the most central, most corroborated statements of the posts, quoted
//! briefly and cited; the primary source's quote; and the checks behind them (a post that tries
//! to instruct the model is never quoted; reactions count less than statements).

use super::claims::MARKER;
use super::{claims, word_share, GroundPost};
use crate::cite::content_words;
use regex::Regex;
use std::collections::HashSet;
use std::sync::LazyLock;
use tidings_index::script::prefix_graphemes;

/// One quoted statement of the extractive fallback.
#[derive(Clone, Debug, PartialEq)]
pub struct Extract {
    /// 1-based post number.
    pub number: usize,
    pub quote: String,
    /// Other posts (numbers) that share most of its words: independent accounts carrying it.
    pub corroborated_by: Vec<usize>,
}

/// Whether a post reads like an attempt to instruct a model (template tokens, "ignore previous
/// instructions", "you are now …"): such a post may be cited by an answer that reports it, but
/// is never quoted as the answer.
pub fn looks_like_injection(text: &str) -> bool {
    static INJECTION: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"(?i)<\||‹\||\|>|\|›|\[/?INST\]|<\|?im_|start_of_turn|\b(ignore|disregard|forget)\b.{0,20}\b(previous|prior|above|all|your)\b.{0,20}\b(instructions|rules|prompt)|\byou are now\b|\bsystem prompt\b|\bnew instructions\b",
        )
        .expect("a valid built-in regex")
    });
    INJECTION.is_match(text)
}

/// Other accounts' posts (1-based numbers) that carry most of post `i`'s words, and how central
/// it is (the sum of its word share with every other post). Posts by the same account
/// corroborate nothing.
pub(super) fn corroborators(
    i: usize,
    grounded: &[GroundPost],
    authors: &[Option<&str>],
) -> (Vec<usize>, f32) {
    let mut by = Vec::new();
    let mut centrality = 0.0f32;
    for (j, q) in grounded.iter().enumerate() {
        if i == j {
            continue;
        }
        let share = word_share(&grounded[i].words, q);
        centrality += share;
        let other_account = match (
            authors.get(i).copied().flatten(),
            authors.get(j).copied().flatten(),
        ) {
            (Some(a), Some(b)) => !a.eq_ignore_ascii_case(b),
            _ => true,
        };
        if share >= 0.5 && other_account {
            by.push(j + 1);
        }
    }
    (by, centrality)
}

/// Whether post text can be quoted as a statement: a few words, not a prompt injection.
pub(super) fn quotable(text: &str, post: &GroundPost) -> bool {
    post.words.len() >= 2 && !looks_like_injection(text)
}

/// How much a post reads as a statement (0–1): a few words of its own (not `#tags` or
/// `@handles`) with names or numbers, not a bare or shouted reaction ("so sad", "PRAY FOR
/// BOSTON #prayforboston"). Reactions are copied by many accounts, so corroboration alone
/// would put them first.
pub(super) fn informative(text: &str) -> f32 {
    let clean = crate::prompt::prompt_text(text);
    let own: String = clean
        .split_whitespace()
        .filter(|w| !w.starts_with(['#', '@']))
        .collect::<Vec<_>>()
        .join(" ");
    let words = content_words(&own).len() as f32;
    let facts = if claims(&clean).is_empty() { 0.6 } else { 1.0 };
    let (upper, cased) = own.chars().fold((0usize, 0usize), |(u, n), c| {
        if c.is_uppercase() {
            (u + 1, n + 1)
        } else if c.is_lowercase() {
            (u, n + 1)
        } else {
            (u, n)
        }
    });
    let shouted = if cased >= 12 && upper * 10 >= cased * 7 {
        0.5
    } else {
        1.0
    };
    // Laughter ("haha", "lmfaooo", "xD", "jajaja", "kkkk") marks a joke or a reaction, whatever
    // its names: a post that is a quarter laughter is not what a reader asked for.
    let tokens: Vec<String> = own
        .split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect();
    let laughs = tokens.iter().filter(|w| is_laughter(w)).count();
    let laughing = match laughs {
        0 => 1.0,
        n if n * 4 >= tokens.len() => 0.3,
        _ => 0.7,
    };
    (words / 6.0).min(1.0) * facts * shouted * laughing
}

/// Whether a lowercased word is laughter or a bare interjection, in the spellings of several
/// languages: haha/hehe/ahah, lol, lmao/lmfao, rofl, xd, omg, wtf, jaja/jeje (Spanish), kkkk
/// (Portuguese), 555 (Thai), www (Japanese).
fn is_laughter(word: &str) -> bool {
    let only = |allowed: &[char]| word.chars().all(|c| allowed.contains(&c));
    let n = word.chars().count();
    match word {
        "lol" | "rofl" | "roflmao" | "xd" | "omg" | "omfg" | "wtf" => return true,
        _ => {}
    }
    (n >= 4 && only(&['h', 'a', 'e']) && word.contains('h') && !word.contains("hh"))
        || (n >= 3 && word.starts_with('l') && word.ends_with('l') && only(&['l', 'o']))
        || (n >= 4
            && word.starts_with("lm")
            && only(&['l', 'm', 'f', 'a', 'o'])
            && word.ends_with('o'))
        || (n >= 4 && only(&['j', 'a', 'e']) && word.starts_with('j'))
        || (n >= 4 && only(&['k']))
        || (n >= 3 && only(&['5']))
        || (n >= 3 && only(&['w']))
}

/// The fallback answer: up to `max` posts' first sentences, most corroborated (shared by other
/// accounts' posts) first, then those closest to `question` and most central, quoted briefly.
/// `authors[i]` names post `i + 1`'s account (posts by the same account corroborate nothing).
/// Posts that look like prompt injection are never quoted.
pub fn extractive(
    posts: &[&str],
    authors: &[Option<&str>],
    question: &str,
    max: usize,
) -> Vec<Extract> {
    let grounded: Vec<GroundPost> = posts.iter().map(|p| GroundPost::new(p)).collect();
    let asked = content_words(question);
    let mut scored: Vec<(usize, f32, Vec<usize>)> = Vec::new();
    for (i, p) in grounded.iter().enumerate() {
        if !quotable(posts[i], p) {
            continue;
        }
        let relevance = if asked.is_empty() {
            0.0
        } else {
            asked.iter().filter(|w| p.words.contains(*w)).count() as f32 / asked.len() as f32
        };
        let informative = informative(posts[i]);
        let (by, centrality) = corroborators(i, &grounded, authors);
        // Rank: a question with words of its own wants the posts closest to them first;
        // "what is happening?" wants what most accounts say. Then centrality, retrieval order.
        let corroboration = by.len().min(3) as f32;
        let score = if asked.is_empty() {
            (corroboration * 10.0 + centrality) * informative
        } else {
            (relevance * 10.0 + corroboration * 2.0 + centrality) * informative
        } - i as f32 * 0.01;
        scored.push((i + 1, score, by));
    }
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut out: Vec<Extract> = Vec::new();
    for (n, _, by) in scored {
        if out.len() >= max {
            break;
        }
        // Skip a post that repeats one already quoted.
        if out
            .iter()
            .any(|e| e.corroborated_by.contains(&n) && by.contains(&e.number))
        {
            continue;
        }
        out.push(Extract {
            number: n,
            quote: quote_for(posts[n - 1], &asked),
            corroborated_by: by,
        });
    }
    out
}

/// The primary source: the first post in `posts`' order (the ranker's best first) that can be
/// quoted, with its part closest to `question` and the accounts that corroborate it.
pub fn primary(posts: &[&str], authors: &[Option<&str>], question: &str) -> Option<Extract> {
    let grounded: Vec<GroundPost> = posts.iter().map(|p| GroundPost::new(p)).collect();
    let i = (0..posts.len()).find(|&i| quotable(posts[i], &grounded[i]))?;
    let (by, _) = corroborators(i, &grounded, authors);
    Some(Extract {
        number: i + 1,
        quote: quote_for(posts[i], &content_words(question)),
        corroborated_by: by,
    })
}

/// Share of `quote`'s content words that `text` already holds (1 when it has none).
pub fn already_says(text: &str, quote: &str) -> f32 {
    let said = content_words(&MARKER.replace_all(text, " "));
    let quoted = content_words(quote);
    if quoted.is_empty() {
        return 1.0;
    }
    quoted.iter().filter(|w| said.contains(*w)).count() as f32 / quoted.len() as f32
}

/// What to quote of a post: all of it (without links or a retweet prefix) when it is short;
/// else its sentence that shares most words with the question (the first on a tie), at most
/// 200 graphemes.
pub(super) fn quote_for(text: &str, asked: &HashSet<String>) -> String {
    const MAX: usize = 200;
    let clean = crate::prompt::prompt_text(text);
    let clean = clean.trim();
    if clean.chars().count() <= MAX {
        return clean.to_string();
    }
    let mut best = clean;
    let mut best_score = -1i64;
    for (a, b) in crate::cite::sentences(clean) {
        let sentence = clean[a..b].trim();
        if sentence.is_empty() {
            continue;
        }
        let words = content_words(sentence);
        let score = asked.iter().filter(|w| words.contains(*w)).count() as i64;
        if score > best_score {
            best = sentence;
            best_score = score;
        }
    }
    let cut = prefix_graphemes(best, MAX);
    if cut.len() < best.len() {
        format!("{}…", cut.trim_end())
    } else {
        cut.to_string()
    }
}
