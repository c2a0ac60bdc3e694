//! Citations: markers like `[2]` or `[1, 3]` in the model's answer, checked against the posts
//! that were really in the prompt.
//!
//! While the answer streams, [`CitationFilter`] holds back a `[` until it knows what follows and
//! rewrites markers so only numbers of retrieved posts pass (`[1, 9]` → `[1]` when 9 posts were
//! not given; `[Post 2]` → `[2]`). After the answer, [`support`] measures how well each cited
//! post supports the sentence citing it, and [`infer`] attributes sentences to posts when a
//! small model cited nothing.

use regex::Regex;
use std::collections::{BTreeSet, HashSet};
use std::sync::LazyLock;
use tidings_index::script::terms;

static MARKER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\[\s*(?:posts?\s*)?#?(\d{1,3}(?:\s*(?:,|;|-|–|and)\s*(?:posts?\s*)?#?\d{1,3})*)\s*\]$")
        .expect("a valid built-in regex")
});

/// The numbers a marker names (`1, 3` → [1, 3]; `2-4` → [2, 3, 4]).
fn numbers(inner: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let cleaned = inner
        .to_lowercase()
        .replace("posts", "")
        .replace("post", "")
        .replace('#', "");
    for part in cleaned.split([',', ';']).flat_map(|p| p.split(" and ")) {
        let part = part.trim();
        if let Some((a, b)) = part.split_once(['-', '–']) {
            if let (Ok(a), Ok(b)) = (a.trim().parse::<usize>(), b.trim().parse::<usize>()) {
                if a <= b && b - a < 20 {
                    out.extend(a..=b);
                }
            }
        } else if let Ok(n) = part.parse::<usize>() {
            out.push(n);
        }
    }
    out
}

/// Rewrites one bracketed span: `Some(replacement)` for a citation marker (possibly empty when
/// none of its numbers is valid), `None` for ordinary bracketed text.
fn rewrite_marker(span: &str, valid: usize) -> Option<String> {
    let caps = MARKER.captures(span)?;
    let kept: Vec<usize> = numbers(&caps[1])
        .into_iter()
        .filter(|n| (1..=valid).contains(n))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    Some(kept.iter().map(|n| format!("[{n}]")).collect())
}

/// Streaming rewrite of citation markers. Feed deltas; emit what it returns.
pub struct CitationFilter {
    valid: usize,
    held: String,
    pub dropped: usize,
}

/// A `[` holding more than this many characters without `]` is plain text.
const MAX_MARKER_LEN: usize = 24;

impl CitationFilter {
    /// `valid`: how many posts were numbered in the prompt.
    pub fn new(valid: usize) -> CitationFilter {
        CitationFilter {
            valid,
            held: String::new(),
            dropped: 0,
        }
    }

    pub fn push(&mut self, delta: &str) -> String {
        let mut out = String::new();
        for c in delta.chars() {
            if self.held.is_empty() {
                if c == '[' {
                    self.held.push(c);
                } else {
                    out.push(c);
                }
                continue;
            }
            self.held.push(c);
            if c == ']' {
                let span = std::mem::take(&mut self.held);
                match rewrite_marker(&span, self.valid) {
                    Some(r) => {
                        if r.is_empty() {
                            self.dropped += 1;
                        }
                        out.push_str(&r)
                    }
                    None => out.push_str(&span),
                }
            } else if c == '[' {
                // "[4[1]": the first bracket is text. It becomes "(" so that dropping an invalid
                // marker after it can never splice "[4" and a later "]" into a new marker.
                let mut span = std::mem::take(&mut self.held);
                span.pop();
                out.push_str(&span.replacen('[', "(", 1));
                self.held.push('[');
            } else if self.held.chars().count() > MAX_MARKER_LEN || c == '\n' {
                out.push_str(&std::mem::take(&mut self.held));
            }
        }
        out
    }

    /// Whatever is still held at the end of the stream.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

/// Citation numbers in `text`, in order of first appearance.
pub fn cited_numbers(text: &str) -> Vec<usize> {
    static ANY: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\[[^\[\]\n]{1,24}\]").expect("a valid built-in regex"));
    let mut seen = Vec::new();
    for m in ANY.find_iter(text) {
        if let Some(c) = MARKER.captures(m.as_str()) {
            for n in numbers(&c[1]) {
                if !seen.contains(&n) {
                    seen.push(n);
                }
            }
        }
    }
    seen
}

const STOP: &[&str] = &[
    "a", "about", "after", "all", "also", "an", "and", "are", "as", "at", "be", "been", "but",
    "by", "can", "for", "from", "had", "has", "have", "he", "her", "his", "i", "in", "into", "is",
    "it", "its", "just", "more", "no", "not", "of", "on", "or", "our", "out", "over", "post",
    "posts", "report", "reported", "reports", "rt", "said", "says", "she", "so", "some", "that",
    "the", "their", "there", "they", "this", "to", "up", "was", "we", "were", "what", "which",
    "who", "will", "with", "you",
];

/// Content words, lowercased and crudely stemmed (trailing "s" dropped). Words come from
/// [`tidings_index::script::terms`]: marks stay in their word, CJK runs become bigrams.
pub fn content_words(text: &str) -> HashSet<String> {
    terms(text)
        .into_iter()
        .filter(|w| w.chars().count() > 1 && !STOP.contains(&w.as_str()))
        .map(|mut w| {
            // `s` is one byte, so the cut is on a char boundary.
            if w.len() > 3 && w.ends_with('s') {
                w.pop();
            }
            w
        })
        .collect()
}

/// Whether `c` ends a sentence on its own (CJK full stops need no space after them).
fn ends_sentence_alone(c: char) -> bool {
    matches!(c, '\n' | '。' | '！' | '？' | '｡' | '۔' | '؟' | '।' | '॥')
}

/// Titles and abbreviations a full stop does not end a sentence after (lowercase, no dot).
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "gen", "gov", "sen", "rep", "pres", "lt",
    "col", "capt", "sgt", "rev", "vs", "etc", "no", "approx", "dept", "est", "inc", "ltd", "co",
    "corp", "mt", "ft", "jan", "feb", "mar", "apr", "aug", "sept", "sep", "oct", "nov", "dec",
];

/// Whether the full stop at byte `dot` of `text` closes an abbreviation rather than a sentence:
/// an initial ("Donald J. Trump"), a dotted acronym ("U.S."), or a title ("Dr.").
pub(crate) fn is_abbreviation(text: &str, dot: usize) -> bool {
    let before = text.get(..dot).unwrap_or("");
    let word = before
        .rsplit(|c: char| c.is_whitespace() || c == '(' || c == '"' || c == '“')
        .next()
        .unwrap_or("");
    let mut chars = word.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => c.is_uppercase(),
        (Some(_), Some(_)) if word.contains('.') => {
            word.split('.').all(|part| part.chars().count() <= 2)
        }
        (Some(_), Some(_)) => ABBREVIATIONS.contains(&word.to_lowercase().as_str()),
        _ => false,
    }
}

/// Sentences of `text` with their byte ranges. A full stop after an initial, a dotted acronym
/// or a title does not end one.
pub fn sentences(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes: Vec<(usize, char)> = text.char_indices().collect();
    for (i, (pos, c)) in bytes.iter().enumerate() {
        let next_is_space = bytes.get(i + 1).map_or(true, |(_, n)| n.is_whitespace());
        let stop = match c {
            '.' => next_is_space && !is_abbreviation(text, *pos),
            '!' | '?' => next_is_space,
            _ => false,
        };
        if stop || ends_sentence_alone(*c) {
            let end = pos + c.len_utf8();
            if text[start..end].trim().len() > 1 {
                out.push((start, end));
            }
            start = end;
        }
    }
    if text[start..].trim().len() > 1 {
        out.push((start, text.len()));
    }
    out
}

/// Share of the sentence's content words found in the post (0..1).
fn overlap(sentence: &HashSet<String>, post: &HashSet<String>) -> f32 {
    if sentence.is_empty() {
        return 0.0;
    }
    sentence.intersection(post).count() as f32 / sentence.len() as f32
}

/// For each cited number, the best support any citing sentence finds in that post (0..1).
/// `posts[i]` is post number `i + 1`.
pub fn support(answer: &str, posts: &[&str]) -> Vec<(usize, f32)> {
    let post_words: Vec<HashSet<String>> = posts.iter().map(|p| content_words(p)).collect();
    let mut best: Vec<(usize, f32)> = Vec::new();
    for (s, e) in sentences(answer) {
        let sentence = &answer[s..e];
        let cited = cited_numbers(sentence);
        if cited.is_empty() {
            continue;
        }
        let words = content_words(&MARKER_ANY.replace_all(sentence, " "));
        for n in cited {
            let Some(pw) = post_words.get(n.wrapping_sub(1)) else {
                continue;
            };
            let score = overlap(&words, pw);
            match best.iter_mut().find(|(m, _)| *m == n) {
                Some(entry) => entry.1 = entry.1.max(score),
                None => best.push((n, score)),
            }
        }
    }
    best
}

static MARKER_ANY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\[[^\[\]\n]{1,24}\]").expect("a valid built-in regex"));

/// When the answer cites nothing: for each sentence, the post that supports it best (at least
/// `min_overlap` of its content words and two words in common). Returns post numbers.
pub fn infer(answer: &str, posts: &[&str], min_overlap: f32) -> Vec<usize> {
    let post_words: Vec<HashSet<String>> = posts.iter().map(|p| content_words(p)).collect();
    let mut found = Vec::new();
    for (s, e) in sentences(answer) {
        let words = content_words(&answer[s..e]);
        let best = post_words
            .iter()
            .enumerate()
            .map(|(i, pw)| (i + 1, overlap(&words, pw), words.intersection(pw).count()))
            .filter(|(_, o, common)| *o >= min_overlap && *common >= 2)
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((n, _, _)) = best {
            if !found.contains(&n) {
                found.push(n);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(filter: &mut CitationFilter, parts: &[&str]) -> String {
        let mut out: String = parts.iter().map(|p| filter.push(p)).collect();
        out.push_str(&filter.finish());
        out
    }

    #[test]
    fn keeps_valid_drops_invalid_across_chunk_boundaries() {
        let mut f = CitationFilter::new(3);
        let out = run(
            &mut f,
            &[
                "Floods hit [",
                "1] and [2, ",
                "9] then [7",
                "]. Odd [note] here.",
            ],
        );
        assert_eq!(out, "Floods hit [1] and [2] then . Odd [note] here.");
        assert_eq!(f.dropped, 1);
    }

    #[test]
    fn normalises_post_words_and_ranges() {
        let mut f = CitationFilter::new(5);
        assert_eq!(
            run(&mut f, &["a [Post 2] b [1-3] c [post #4]"]),
            "a [2] b [1][2][3] c [4]"
        );
    }

    #[test]
    fn unclosed_brackets_flush() {
        let mut f = CitationFilter::new(2);
        assert_eq!(
            run(&mut f, &["array[0 is the first"]),
            "array[0 is the first"
        );
        let mut f = CitationFilter::new(2);
        assert_eq!(run(&mut f, &["[[1]"]), "([1]");
        let mut f = CitationFilter::new(0);
        assert_eq!(run(&mut f, &["[4[0]]"]), "(4]");
    }

    #[test]
    fn cited_numbers_in_order() {
        assert_eq!(cited_numbers("x [3] y [1][3] z [2, 4]"), vec![3, 1, 2, 4]);
        assert!(cited_numbers("[note] [a1]").is_empty());
    }

    #[test]
    fn support_and_inference() {
        let posts = [
            "Flash flood warning for Boulder County until 8pm",
            "Marathon explosions near the finish line in Boston",
        ];
        let s = support(
            "A flash flood warning covers Boulder [1]. Blasts hit Boston [1].",
            &posts,
        );
        assert_eq!(s.len(), 1);
        assert!(s[0].1 > 0.5, "{s:?}");
        let inferred = infer(
            "There were explosions at the Boston Marathon finish line. Boulder has a flood warning.",
            &posts,
            0.3,
        );
        assert_eq!(inferred, vec![2, 1]);
        assert!(infer("Nothing relevant at all.", &posts, 0.3).is_empty());
    }

    #[test]
    fn japanese_sentences_and_support() {
        let posts = ["地震です 東京で大きな揺れ #earthquake", "Flood in Calgary"];
        let s = support(
            "東京で大きな揺れがありました[1]。カルガリーで洪水[2]。",
            &posts,
        );
        assert!(s.iter().any(|(n, v)| *n == 1 && *v > 0.3), "{s:?}");
        assert_eq!(sentences("東京で揺れ。大阪は無事！ok").len(), 3);
        let text = "Donald J. Trump spoke in the U.S. Senate. Dr. Smith left. It rained.";
        let got: Vec<&str> = sentences(text)
            .into_iter()
            .map(|(s, e)| text[s..e].trim())
            .collect();
        assert_eq!(
            got,
            [
                "Donald J. Trump spoke in the U.S. Senate.",
                "Dr. Smith left.",
                "It rained."
            ]
        );
        assert_eq!(
            infer("東京で大きな揺れがありました。", &posts, 0.3),
            vec![1]
        );
    }

    proptest! {
        /// Any script, any chunking: the filter never cites outside the prompt, and the
        /// scores name posts that exist and lie in 0..=1.
        #[test]
        fn any_script_citations(
            text in tidings_index::testing::any_text(),
            posts in prop::collection::vec(tidings_index::testing::any_text(), 0..5),
            cut in 0usize..400,
        ) {
            let mut cut = cut.min(text.len());
            while !text.is_char_boundary(cut) { cut -= 1; }
            let mut f = CitationFilter::new(posts.len());
            let mut out = f.push(&text[..cut]);
            out.push_str(&f.push(&text[cut..]));
            out.push_str(&f.finish());
            for n in cited_numbers(&out) {
                prop_assert!(n >= 1 && n <= posts.len());
            }
            let refs: Vec<&str> = posts.iter().map(String::as_str).collect();
            for (n, s) in support(&text, &refs) {
                prop_assert!(n >= 1 && n <= posts.len() && (0.0..=1.0).contains(&s));
            }
            for n in infer(&text, &refs, 0.3) {
                prop_assert!(n >= 1 && n <= posts.len());
            }
            let mut last = 0;
            for (s, e) in sentences(&text) {
                prop_assert!(s >= last && s < e && text.is_char_boundary(s) && text.is_char_boundary(e));
                last = e;
            }
        }

        /// Whatever the model writes and however it is chunked, every marker that comes out
        /// names a post that was in the prompt.
        #[test]
        fn filtered_output_never_cites_outside_the_prompt(
            text in "[a-z \\[\\],0-9\\-]{0,80}",
            cut in 0usize..80,
            valid in 0usize..6,
        ) {
            let cut = text.char_indices().map(|(i, _)| i).find(|i| *i >= cut).unwrap_or(text.len());
            let mut f = CitationFilter::new(valid);
            let mut out = f.push(&text[..cut]);
            out.push_str(&f.push(&text[cut..]));
            out.push_str(&f.finish());
            for n in cited_numbers(&out) {
                prop_assert!(n >= 1 && n <= valid, "{out:?} cites {n} with {valid} posts");
            }
        }
    }
}
