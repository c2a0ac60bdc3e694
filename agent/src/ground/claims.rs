//! What a sentence claims: names (capitalised words in cased scripts), numbers (normalised),
//! `#tags`, `@handles` and changed states ("closed", "reopened", negations); and the opening
//! word a post never uses (an invented subject).

use super::GroundPost;
use crate::cite::content_words;
use regex::Regex;
use std::sync::LazyLock;
use tidings_index::script::word_spans;

/// Capitalised words that open sentences or hedge, never names.
pub(super) const NOT_NAMES: &[&str] = &[
    "a",
    "according",
    "after",
    "also",
    "an",
    "and",
    "another",
    "as",
    "at",
    "but",
    "by",
    "during",
    "for",
    "from",
    "he",
    "her",
    "here",
    "his",
    "however",
    "i",
    "if",
    "in",
    "it",
    "its",
    "many",
    "meanwhile",
    "more",
    "most",
    "no",
    "not",
    "on",
    "one",
    "other",
    "others",
    "people",
    "post",
    "posts",
    "reports",
    "several",
    "she",
    "so",
    "some",
    "sources",
    "still",
    "that",
    "the",
    "their",
    "there",
    "these",
    "they",
    "this",
    "those",
    "today",
    "tonight",
    "unconfirmed",
    "users",
    "we",
    "what",
    "when",
    "where",
    "while",
    "who",
    "with",
    "yes",
    "you",
];

pub(super) static NUMBER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\d+(?:[.,:]\d+)*").expect("a valid built-in regex"));
pub(super) static MARKER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\[[^\[\]\n]{1,24}\]").expect("a valid built-in regex"));

/// What a sentence asserts that a post must contain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Claims {
    /// Lowercased names, `#tags` and `@handles` (without their mark).
    pub names: Vec<String>,
    /// Numbers as written without thousands separators (`5,000` → `5000`, `5.9` stays).
    pub numbers: Vec<String>,
    /// Polarity and change of state ("not", "lifted", "reopened", "killed"): a supporting post
    /// must say the same kind of thing, or "the warning was lifted" passes on a post that
    /// announces the warning. Each is a group name from [`state_group`].
    pub states: Vec<&'static str>,
}

impl Claims {
    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.numbers.is_empty() && self.states.is_empty()
    }
}

/// The polarity or state-change group of a lowercased word, if it has one. A post carries the
/// claim when any word of the same group is in it ("killed" is carried by "dead").
pub fn state_group(word: &str) -> Option<&'static str> {
    const GROUPS: &[(&str, &[&str])] = &[
        (
            "not",
            &[
                "not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "cannot",
                "without",
            ],
        ),
        ("lifted", &["lift", "lifted", "lifts", "lifting"]),
        (
            "cancelled",
            &["cancel", "cancelled", "canceled", "cancels", "cancellation"],
        ),
        ("reopened", &["reopen", "reopened", "reopens", "reopening"]),
        ("ended", &["ended", "ends", "ceased", "finished"]),
        (
            "dead",
            &[
                "dead",
                "death",
                "deaths",
                "died",
                "dies",
                "die",
                "killed",
                "kill",
                "kills",
                "killing",
                "fatal",
                "fatalities",
                "fatality",
                "bodies",
                "toll",
            ],
        ),
        (
            "injured",
            &[
                "injured", "injury", "injuries", "injures", "hurt", "wounded", "wounds",
            ],
        ),
        (
            "arrested",
            &[
                "arrest", "arrested", "arrests", "detained", "custody", "captured", "caught",
            ],
        ),
        (
            "evacuated",
            &[
                "evacuate",
                "evacuated",
                "evacuates",
                "evacuating",
                "evacuation",
                "evacuations",
            ],
        ),
        (
            "confirmed",
            &["confirm", "confirmed", "confirms", "confirmation"],
        ),
        (
            "denied",
            &[
                "deny", "denied", "denies", "false", "fake", "hoax", "debunked",
            ],
        ),
        ("rescued", &["rescue", "rescued", "rescues", "saved"]),
        ("missing", &["missing", "unaccounted"]),
    ];
    if word.ends_with("n't") || word.ends_with("n\u{2019}t") {
        return Some("not");
    }
    GROUPS
        .iter()
        .find(|(_, forms)| forms.contains(&word))
        .map(|(group, _)| *group)
}

/// The state groups of every word of `text`.
pub(super) fn states_in(text: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    for (s, e) in word_spans(text) {
        let word = text[s..e].to_lowercase();
        // "didn't" may come as one span or as "didn" + "t".
        let word = if text[e..].starts_with("'t") || text[e..].starts_with("\u{2019}t") {
            format!("{word}'t")
        } else {
            word
        };
        if let Some(g) = state_group(&word) {
            if !out.contains(&g) {
                out.push(g);
            }
        }
    }
    out
}

pub(super) fn normalize_number(n: &str) -> String {
    // "5,000" → "5000"; "5.9" and "16:42" stay.
    let parts: Vec<&str> = n.split(',').collect();
    if parts.len() > 1 && parts[1..].iter().all(|p| p.len() == 3) {
        parts.concat()
    } else {
        n.to_string()
    }
}

pub(super) fn numbers_in(text: &str) -> Vec<String> {
    NUMBER
        .find_iter(text)
        .map(|m| normalize_number(m.as_str().trim_end_matches(['.', ',', ':'])))
        .collect()
}

/// The claims of one sentence (citation markers removed first).
pub fn claims(sentence: &str) -> Claims {
    let text = MARKER.replace_all(sentence, " ");
    let mut names = Vec::new();
    let mut first = true;
    for (s, e) in word_spans(&text) {
        let word = &text[s..e];
        let before = text[..s].chars().next_back();
        let marked = matches!(before, Some('#' | '@' | '$'));
        let starts_upper = word.chars().next().is_some_and(char::is_uppercase);
        let has_digit = word.chars().any(|c| c.is_ascii_digit());
        let lower = word.to_lowercase();
        // A sentence's first word is capitalised anyway: a name only when it is an acronym or
        // has inner capitals ("NATO", "McDonald").
        let inner_upper = word.chars().skip(1).any(char::is_uppercase);
        let is_name = !has_digit
            && !NOT_NAMES.contains(&lower.as_str())
            && (marked || (starts_upper && (!first || inner_upper)));
        if is_name && !names.contains(&lower) {
            names.push(lower);
        }
        first = false;
    }
    Claims {
        names,
        numbers: numbers_in(&text),
        states: states_in(&text),
    }
}

/// A sentence's first word escapes the name rule (it is capitalised anyway), but a subject
/// that no given post uses in any form ("Tidings lives in Winnipeg Jets [3].") is invented:
/// returns it, lowercased. A form is a term sharing the word's first five letters
/// ("Flooding" is heard in "floods").
pub(super) fn unheard_opening(sentence: &str, posts: &[GroundPost]) -> Option<String> {
    let text = MARKER.replace_all(sentence, " ");
    let (s, e) = word_spans(&text).into_iter().next()?;
    let word = &text[s..e];
    if !word.chars().next().is_some_and(char::is_uppercase)
        || word.chars().any(|c| c.is_ascii_digit())
    {
        return None;
    }
    let lower = word.to_lowercase();
    if NOT_NAMES.contains(&lower.as_str()) || content_words(&lower).is_empty() {
        return None;
    }
    let form: String = lower.chars().take(5).collect();
    let heard = posts
        .iter()
        .any(|p| p.terms.iter().any(|t| t.starts_with(&form)));
    (!heard).then_some(lower)
}
