//! The judge: a check of answer and summary sentences that is stricter than, and separate
//! from, the agent's own gate (entity and number overlap with a cited post, and the embedder),
//! and whether an answer contains a gold answer.

/// The parts of an answer the strict judge looks at: each quoted line (an extractive bullet,
/// the closest-post line) whole, since a quote may hold several sentences under one citation;
/// the rest sentence by sentence. The agent's own lines (the extractive header, the inferred
/// "Sources" line, the note that the window was widened) and its single-source note are left
/// out.
pub(super) fn judged_units(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty()
            || t.ends_with(':')
            || t.starts_with("Sources:")
            || t.starts_with("(Little was posted")
        {
            continue;
        }
        if t.starts_with("- ") || t.starts_with("Closest post:") {
            // Judge the quote and its citation, not the agent's frame around it (the account's
            // handle, "(one account; unconfirmed)").
            let quote = match (t.find('“'), t.rfind('”')) {
                (Some(a), Some(b)) if a < b => &t[a + '“'.len_utf8()..b],
                _ => t,
            };
            let markers: String = tidings_agent::cite::cited_numbers(t)
                .iter()
                .map(|n| format!(" [{n}]"))
                .collect();
            out.push(format!("{quote}{markers}"));
            continue;
        }
        // A post the model copied, passed by the gate as a quote (`@who: “words” [n]`), is
        // judged whole with its marker like the lines above: a quote of several sentences has
        // one citation, after it.
        let (quotes, rest) = post_quotes(t);
        out.extend(quotes);
        for (a, b) in tidings_agent::cite::sentences(&rest) {
            // Judge what the sentence says of the world, not the agent's note on how many
            // accounts say it (its words would count against the sentence's share).
            out.push(
                rest[a..b]
                    .trim()
                    .replace(tidings_agent::ground::SINGLE_SOURCE_NOTE, " "),
            );
        }
    }
    out
}

/// The gate's quotes of a post in `line` (`@who: “words” (note) [n]`, or `A post: …`), each
/// as its words and marker, and the line without them.
fn post_quotes(line: &str) -> (Vec<String>, String) {
    let mut quotes = Vec::new();
    let mut rest = String::new();
    let mut from = 0;
    while let Some(open) = line[from..].find('“').map(|i| from + i) {
        let inner = open + '“'.len_utf8();
        // The closing mark is the one followed by the note (if any) and a citation marker.
        let close = line[inner..].match_indices('”').find_map(|(i, _)| {
            let after = &line[inner + i + '”'.len_utf8()..];
            let after = after.trim_start();
            let after = after
                .strip_prefix(tidings_agent::ground::SINGLE_SOURCE_NOTE)
                .unwrap_or(after)
                .trim_start();
            let digits = after.strip_prefix('[')?;
            let end = digits.find(']')?;
            let n: usize = digits[..end].parse().ok()?;
            let consumed = line.len() - after.len() + 1 + end + 1;
            Some((inner + i, n, consumed))
        });
        // Where `@who:` or `A post:` before the quote starts.
        let who = line[from..open]
            .trim_end()
            .strip_suffix(':')
            .and_then(|head| {
                if let Some(before) = head.strip_suffix("A post") {
                    return Some(from + before.len());
                }
                let start = head
                    .char_indices()
                    .rev()
                    .find(|(_, c)| c.is_whitespace())
                    .map_or(0, |(i, c)| i + c.len_utf8());
                head[start..].starts_with('@').then_some(from + start)
            });
        match (close, who) {
            (Some((close, n, end)), Some(who_start)) => {
                quotes.push(format!("{} [{n}]", &line[inner..close]));
                rest.push_str(&line[from..who_start]);
                rest.push(' ');
                from = end;
            }
            _ => {
                rest.push_str(&line[from..inner]);
                from = inner;
            }
        }
    }
    rest.push_str(&line[from..]);
    (quotes, rest)
}

#[cfg(test)]
mod quote_tests {
    use super::*;

    #[test]
    fn a_quoted_post_is_judged_whole_with_its_marker() {
        let answer = "@NWS: “Plant explosion in West. 12 confirmed dead.” \
                      (one account reports this; unconfirmed) [1] Police closed the roads [2]. \
                      A post: “地震です。東京で揺れ” [3]";
        assert_eq!(
            judged_units(answer),
            [
                "Plant explosion in West. 12 confirmed dead. [1]",
                "地震です。東京で揺れ [3]",
                "Police closed the roads [2].",
            ]
        );
        // After a space of any width (an ideographic space is three bytes).
        assert_eq!(
            judged_units("東京です。\u{3000}@nhk: “地震です” [1]"),
            ["地震です [1]", "東京です。"]
        );
        // A quotation mark the gate did not write is read as any sentence.
        assert_eq!(
            judged_units("He said “no comment”. Then he left [1]."),
            ["He said “no comment”.", "Then he left [1]."]
        );
    }
}

/// Lowercased, punctuation at the ends trimmed, spaces collapsed.
pub(super) fn norm(s: &str) -> String {
    s.to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .trim_matches(|c: char| !c.is_alphanumeric())
        .to_string()
}

pub(super) fn contains_answer(text: &str, answers: &[String]) -> bool {
    let t = norm(text);
    answers
        .iter()
        .map(|a| norm(a))
        .any(|a| !a.is_empty() && t.contains(&a))
}

/// The evaluation's own grounding judge, stricter than the agent's gate and written apart from
/// it: every capitalised word (the first one too, unless a function word), every number and
/// `#tag` of the sentence must be in the posts it cites, each number said near the same words
/// as in a cited post (see [`number_near_its_words`]), and one of them must hold at least half
/// of its content words. Returns `None` for a sentence with no words (a bare marker line).
pub(super) fn strictly_supported(sentence: &str, posts: &[&str]) -> Option<bool> {
    const FUNCTION: &[&str] = &[
        "a",
        "an",
        "the",
        "this",
        "that",
        "these",
        "there",
        "it",
        "its",
        "posts",
        "post",
        "in",
        "on",
        "at",
        "and",
        "but",
        "i",
        "here",
        "some",
        "one",
        "according",
        "as",
        "also",
        // Pronouns and question words open sentences; they name nothing.
        "he",
        "she",
        "they",
        "we",
        "you",
        "his",
        "her",
        "their",
        "what",
        "who",
        "when",
        "where",
    ];
    let cited: Vec<&str> = tidings_agent::cite::cited_numbers(sentence)
        .into_iter()
        .filter_map(|n| posts.get(n.wrapping_sub(1)).copied())
        .collect();
    let plain: String = sentence
        .split(['[', ']'])
        .enumerate()
        .filter(|(i, part)| {
            i % 2 == 0
                || !part
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == ',' || c == ' ')
        })
        .map(|(_, p)| p)
        .collect::<Vec<_>>()
        .join(" ");
    let words = tidings_agent::cite::content_words(&plain);
    if words.is_empty() {
        return None;
    }
    if cited.is_empty() {
        return Some(false);
    }
    let union = cited.join(" ").to_lowercase();
    let union_terms: std::collections::HashSet<String> =
        tidings_index::script::terms(&union).into_iter().collect();
    for raw in plain.split_whitespace() {
        let w = raw.trim_matches(|c: char| !c.is_alphanumeric());
        if w.is_empty() {
            continue;
        }
        let lower = w.to_lowercase();
        let claim = w.chars().any(|c| c.is_ascii_digit())
            || raw.starts_with('#')
            || (w.chars().next().is_some_and(char::is_uppercase)
                && !FUNCTION.contains(&lower.as_str()));
        if claim
            && !tidings_index::script::terms(&lower)
                .iter()
                .all(|t| union_terms.contains(t))
        {
            return Some(false);
        }
    }
    if plain
        .split_whitespace()
        .enumerate()
        .any(|(i, _)| !number_near_its_words(&plain, i, &cited))
    {
        return Some(false);
    }
    let best = cited
        .iter()
        .map(|p| {
            let pw = tidings_agent::cite::content_words(p);
            words.iter().filter(|w| pw.contains(*w)).count() as f64 / words.len() as f64
        })
        .fold(0.0, f64::max);
    Some(best >= 0.5)
}

/// The digits of a word with their inner marks ("9pm." → "9", "5,000" → "5,000"), if it has any.
fn digits_of(word: &str) -> Option<String> {
    let d: String = word
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | ',' | ':'))
        .collect();
    let d = d.trim_end_matches(['.', ',', ':']);
    (!d.is_empty()).then(|| d.to_string())
}

/// The content words (no digits) of the up to four words on each side of word `i` of `words`,
/// within its sentence.
fn window(words: &[&str], i: usize) -> std::collections::HashSet<String> {
    let ends = |w: &str| w.ends_with(['.', ';', '!', '?', '。', '！', '？']);
    let mut from = i;
    while from > 0 && i - from < 4 && !ends(words[from - 1]) {
        from -= 1;
    }
    let mut to = i;
    while to + 1 < words.len() && to - i < 4 && !ends(words[to]) {
        to += 1;
    }
    // Prepositions and units of time that stand next to any number tie nothing together.
    const AROUND_ANY_NUMBER: &[&str] = &[
        "until", "till", "since", "before", "after", "than", "least", "about", "around", "nearly",
        "almost", "over", "under", "per", "by", "at", "to", "from", "pm", "am", "today", "tonight",
        "utc", "more", "less", "only",
    ];
    let text = words[from..=to].join(" ");
    tidings_agent::cite::content_words(&text)
        .into_iter()
        .filter(|w| {
            !w.chars().any(|c| c.is_ascii_digit()) && !AROUND_ANY_NUMBER.contains(&w.as_str())
        })
        .collect()
}

/// Whether word `i` of `sentence`, when it is a number, is said in a cited post near one of the
/// words it has near it in the sentence (up to four words each side, not across a sentence's end):
/// "the bridge is closed until 9pm" is not what "Flood warning until 9pm. The bridge is closed"
/// says. True for words without digits and for numbers with no content word around them.
pub(super) fn number_near_its_words(sentence: &str, i: usize, cited: &[&str]) -> bool {
    let words: Vec<&str> = sentence.split_whitespace().collect();
    let Some(number) = words.get(i).and_then(|w| digits_of(w)) else {
        return true;
    };
    let around = window(&words, i);
    if around.is_empty() {
        return true;
    }
    cited.iter().any(|post| {
        let theirs: Vec<&str> = post.split_whitespace().collect();
        (0..theirs.len()).any(|j| {
            digits_of(theirs[j]).as_deref() == Some(number.as_str())
                && window(&theirs, j).iter().any(|w| around.contains(w))
        })
    })
}

#[cfg(test)]
mod number_tests {
    use super::*;

    #[test]
    fn a_number_must_be_said_near_its_words() {
        let post =
            ["Flash flood warning for Riverton until 9pm. The Miller Street bridge is closed."];
        let sentence = "The Miller Street bridge is closed to traffic until 9pm [1].";
        assert_eq!(strictly_supported(sentence, &post), Some(false));
        assert_eq!(
            strictly_supported("A flood warning for Riverton runs until 9pm [1].", &post),
            Some(true)
        );
        // A number alone in its sentence has nothing to be near.
        assert!(number_near_its_words(
            "Magnitude. 5.9. Deep",
            1,
            &["a 5.9 quake"]
        ));
        // A headline's topic is near its details.
        assert!(number_near_its_words(
            "The Bronx train derailment killed 4 [1].",
            5,
            &["Train derailment in the Bronx: 4 dead, dozens hurt"]
        ));
        // In other scripts (no spaces inside a CJK run: the run is one window).
        assert!(number_near_its_words(
            "東京で 5 人 けが",
            1,
            &["東京で 5 人 けが"]
        ));
    }
}
