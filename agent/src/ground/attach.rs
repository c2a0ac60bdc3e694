//! Whether a number is said of what the sentence says it of.
//!
//! Word presence is not support. "The Miller Street bridge is closed to traffic until 9pm [1]"
//! has every word and number of the post "Flood warning until 9pm. The Miller Street bridge is
//! closed to traffic.", yet the post says 9pm of the warning, not of the bridge. So a number in
//! a sentence is *said of something else* when
//! - no clause of the posts that holds the number shares a content word with the sentence's
//!   clause around the number, while
//! - another clause of those posts, one without the number, shares at least two:
//!
//! the sentence took its subject from one clause and its number from another. When no clause
//! of the posts says what the sentence's clause says, the sentence is left to the word-share
//! rule: a paraphrase may share no word with its post's clause ("At least 12 people died" of
//! "Death toll rises to 12"), and this check only rejects what it can show.
//!
//! Clauses end where sentences do in any script (`.` only before a space, so "5.9" stays
//! whole; `;` `!` `?` `。` `；` `！` `？`, line breaks, `|` and `•` between a post's items) and
//! before the English conjunctions "and", "but", "while", "whereas". Commas, colons and dashes
//! do not end one: in "Derailment in the Bronx: 4 dead, dozens hurt" every part is said of the
//! derailment. Words of one state group ("killed", "dead") count as the same word.

use super::claims::{numbers_in, state_group};
use crate::cite::content_words;
use std::collections::HashSet;
use tidings_index::script::word_spans;

/// One clause of a text: its content words (without those holding a digit, which are the
/// numbers themselves, and the words that frame a number) and its numbers.
#[derive(Clone, Debug, Default)]
pub(super) struct Clause {
    words: HashSet<String>,
    numbers: Vec<String>,
}

/// Words that frame a number rather than say what it is of ("until 9pm", "at least 12", "9 pm
/// today"): sharing one of them ties nothing together.
const FRAME: &[&str] = &[
    "about",
    "after",
    "almost",
    "am",
    "approximately",
    "around",
    "before",
    "between",
    "by",
    "during",
    "each",
    "gmt",
    "least",
    "less",
    "more",
    "nearly",
    "only",
    "over",
    "per",
    "pm",
    "since",
    "than",
    "till",
    "today",
    "tonight",
    "under",
    "until",
    "utc",
    "within",
    "yesterday",
];

/// Words that start a new clause.
const CONJUNCTIONS: &[&str] = &["and", "but", "while", "whereas"];

/// Byte spans of the clauses of `text` (non-empty, covering it in order).
pub(super) fn clause_spans(text: &str) -> Vec<(usize, usize)> {
    let mut cuts = vec![0];
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let next = chars.peek().map(|&(_, n)| n);
        let end = i + c.len_utf8();
        let cut = match c {
            '\n' | ';' | '!' | '?' | '。' | '；' | '！' | '？' | '|' | '•' => true,
            '.' => next.is_none_or(char::is_whitespace),
            _ => false,
        };
        if cut {
            cuts.push(end);
        }
    }
    // Before a conjunction word.
    for (s, e) in word_spans(text) {
        if s > 0 && CONJUNCTIONS.contains(&text[s..e].to_lowercase().as_str()) {
            cuts.push(s);
        }
    }
    cuts.push(text.len());
    cuts.sort_unstable();
    cuts.dedup();
    cuts.windows(2)
        .map(|w| (w[0], w[1]))
        .filter(|(a, b)| !text[*a..*b].trim().is_empty())
        .collect()
}

/// The clauses of `text`.
pub(super) fn clauses(text: &str) -> Vec<Clause> {
    clause_spans(text)
        .into_iter()
        .map(|(a, b)| clause(&text[a..b]))
        .collect()
}

fn clause(text: &str) -> Clause {
    Clause {
        words: content_words(text)
            .into_iter()
            .filter(|w| !w.chars().any(|c| c.is_ascii_digit()) && !FRAME.contains(&w.as_str()))
            .map(|w| state_group(&w).map_or(w, str::to_string))
            .collect(),
        numbers: numbers_in(text),
    }
}

/// Whether `number` (as [`numbers_in`] writes it), which `sentence` says, is said of something
/// else in every one of `posts`' clauses that hold it (see the module's comment). Numbers the
/// sentence does not hold, or the posts do not, are not this check's business (`false`).
pub(super) fn said_of_something_else(sentence: &str, number: &str, posts: &[&[Clause]]) -> bool {
    // The sentence's words around the number: those of every clause of it that holds it.
    let mut around: HashSet<&str> = HashSet::new();
    let own = clauses(sentence);
    for c in own.iter().filter(|c| c.numbers.iter().any(|n| n == number)) {
        around.extend(c.words.iter().map(String::as_str));
    }
    if around.is_empty() {
        return false;
    }
    let shared = |c: &Clause| {
        c.words
            .iter()
            .filter(|w| around.contains(w.as_str()))
            .count()
    };
    let mut holders = posts
        .iter()
        .flat_map(|p| p.iter())
        .filter(|c| c.numbers.iter().any(|n| n == number))
        .peekable();
    if holders.peek().is_none() {
        return false;
    }
    if holders.any(|c| shared(c) > 0) {
        return false;
    }
    posts
        .iter()
        .flat_map(|p| p.iter())
        .any(|c| !c.numbers.iter().any(|n| n == number) && shared(c) >= 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn said_else(sentence: &str, number: &str, posts: &[&str]) -> bool {
        let cl: Vec<Vec<Clause>> = posts.iter().map(|p| clauses(p)).collect();
        let refs: Vec<&[Clause]> = cl.iter().map(Vec::as_slice).collect();
        said_of_something_else(sentence, number, &refs)
    }

    #[test]
    fn a_time_taken_from_another_clause_is_said_of_something_else() {
        let post = [
            "Flash flood warning for Riverton until 9pm. The Miller Street bridge is \
                     closed to traffic.",
        ];
        assert!(said_else(
            "The Miller Street bridge is closed to traffic until 9pm.",
            "9",
            &post
        ));
        // What the post does say.
        assert!(!said_else(
            "A flash flood warning is in effect until 9pm.",
            "9",
            &post
        ));
        assert!(!said_else(
            "The warning runs until 9pm and the Miller Street bridge is closed.",
            "9",
            &post
        ));
        // Two numbers in two clauses joined by "and".
        let post = ["Bridge closed at 5pm and reopened at 9pm"];
        assert!(said_else("The bridge closed at 9pm.", "9", &post));
        assert!(!said_else("The bridge reopened at 9pm.", "9", &post));
        assert!(!said_else("The bridge closed at 5pm.", "5", &post));
    }

    #[test]
    fn a_paraphrase_with_no_shared_clause_is_left_to_the_word_share_rule() {
        let post = ["Death toll rises to 12 in Italy quake"];
        assert!(!said_else("At least 12 people have died.", "12", &post));
        // Numbers keep their inner marks.
        let post = ["A 5.9 quake hit Emilia at 04:03. 5,000 homeless"];
        assert_eq!(
            clauses(post[0])
                .iter()
                .map(|c| c.numbers.clone())
                .collect::<Vec<_>>(),
            [vec!["5.9".to_string(), "04:03".into()], vec!["5000".into()]]
        );
        assert!(!said_else("A 5.9 quake hit Emilia.", "5.9", &post));
        // A headline's topic and its details are one clause; "killed" is said as "dead".
        let post = ["Train derailment in the Bronx: 4 dead, dozens hurt"];
        assert!(!said_else(
            "The Bronx train derailment killed 4.",
            "4",
            &post
        ));
    }

    #[test]
    fn clauses_in_other_scripts() {
        // Japanese: the number's clause says 震度5 of 東京; the sentence says it of 大阪.
        let post = ["東京で震度5の地震。大阪では電車が止まっています"];
        assert!(!said_else("東京で震度5の地震がありました。", "5", &post));
        assert_eq!(
            clauses("東京で震度5の地震。大阪では電車が止まっています").len(),
            2
        );
    }

    proptest! {
        #[test]
        fn a_clause_of_a_post_is_never_said_of_something_else(
            post in tidings_index::testing::any_text(),
            other in tidings_index::testing::any_text(),
        ) {
            // Each clause of a post, said as a sentence, holds its numbers where the post does.
            let text = format!("{post}. {other}");
            let spans = clause_spans(&text);
            let mut at = 0;
            for &(a, b) in &spans {
                prop_assert!(a >= at && a < b && b <= text.len());
                prop_assert!(text.is_char_boundary(a) && text.is_char_boundary(b));
                at = b;
                let sentence = &text[a..b];
                for n in numbers_in(sentence) {
                    prop_assert!(!said_else(sentence, &n, &[&text]), "{sentence:?} of {text:?}");
                }
            }
        }
    }
}
