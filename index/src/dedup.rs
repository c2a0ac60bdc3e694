//! Near-duplicate detection: a post and its retweets/reposts/quote-less copies share a key.
//!
//! The key is a hash of the text with the noise that differs between copies removed: a leading
//! `RT @user:` (possibly repeated), URLs (shorteners rewrite them per copy), trailing ellipses of
//! truncated retweets, case, punctuation and whitespace. Truncated retweets (`…` at the end) are
//! keyed on their first 12 words, and so is the original, so the two meet.

/// Number of leading words a key is built from; truncated retweets keep at least this many.
const KEY_WORDS: usize = 12;

/// Hash of the normalised text; equal keys mean "the same post, copied". Equal to hashing the
/// first [`KEY_WORDS`] of [`normalized_words`] joined by spaces (a property test checks it), but
/// reads only those words and builds one string: this runs for every ingested post.
pub fn near_duplicate_key(text: &str) -> u64 {
    let rest = strip_retweet_prefixes(text);
    let mut joined = String::with_capacity(rest.len().min(256));
    let mut count = 0usize;
    for raw in rest.split_whitespace() {
        if count == KEY_WORDS {
            break;
        }
        if is_url(raw) {
            continue;
        }
        let start = joined.len();
        if count > 0 {
            joined.push(' ');
        }
        let mark = joined.len();
        let keep = |c: char| c.is_alphanumeric() || c == '#' || c == '@' || c == '$';
        if raw.is_ascii() {
            joined.extend(
                raw.chars()
                    .map(|c| c.to_ascii_lowercase())
                    .filter(|c| keep(*c)),
            );
        } else {
            joined.extend(raw.to_lowercase().chars().filter(|c| keep(*c)));
        }
        if joined.len() == mark {
            joined.truncate(start);
            continue;
        }
        count += 1;
    }
    xxhash_rust::xxh3::xxh3_64(joined.as_bytes())
}

fn is_url(word: &str) -> bool {
    let starts = |p: &str| {
        word.get(..p.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(p))
    };
    starts("http://") || starts("https://") || starts("www.")
}

/// `text` without any number of leading "RT @user:" / "RT @user" prefixes.
fn strip_retweet_prefixes(text: &str) -> &str {
    let mut rest = text.trim();
    loop {
        let is_rt = rest.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("rt "));
        if !is_rt {
            return rest;
        }
        let after = rest[3..].trim_start();
        match after.strip_prefix('@') {
            Some(handle) => {
                let end = handle
                    .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.' || c == '-'))
                    .unwrap_or(handle.len());
                rest = handle[end..].trim_start_matches(':').trim_start();
            }
            None => return rest,
        }
    }
}

/// Lowercased words of `text` with retweet prefixes, URLs and punctuation removed.
pub fn normalized_words(text: &str) -> Vec<String> {
    let mut rest = text.trim();
    // Strip any number of leading "RT @user:" / "RT @user" prefixes.
    loop {
        let is_rt = rest.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("rt "));
        if !is_rt {
            break;
        }
        let after = rest[3..].trim_start();
        if let Some(handle) = after.strip_prefix('@') {
            let end = handle
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.' || c == '-'))
                .unwrap_or(handle.len());
            rest = handle[end..].trim_start_matches(':').trim_start();
        } else {
            break;
        }
    }
    let mut words = Vec::new();
    for raw in rest.split_whitespace() {
        let lower = raw.to_lowercase();
        if lower.starts_with("http://")
            || lower.starts_with("https://")
            || lower.starts_with("www.")
        {
            continue;
        }
        let cleaned: String = lower
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == '#' || *c == '@' || *c == '$')
            .collect();
        if !cleaned.is_empty() {
            words.push(cleaned);
        }
    }
    // A truncated copy ends in "..." or "…" glued to a partial word: drop that partial word.
    let trimmed = rest.trim_end();
    if (trimmed.ends_with("...") || trimmed.ends_with('…')) && words.len() > KEY_WORDS {
        words.pop();
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn retweet_matches_original() {
        let original =
            "Explosions at the Boston Marathon finish line, several injured http://t.co/abc";
        let rt = "RT @news: Explosions at the Boston Marathon finish line, several injured http://t.co/xyz";
        assert_eq!(near_duplicate_key(original), near_duplicate_key(rt));
    }

    #[test]
    fn truncated_retweet_matches_original() {
        let original = "Flooding in Calgary: evacuation order for 25 neighbourhoods along the Bow and Elbow rivers tonight, stay safe everyone";
        let rt = "RT @yyc: Flooding in Calgary: evacuation order for 25 neighbourhoods along the Bow and Elbow rivers ton...";
        assert_eq!(near_duplicate_key(original), near_duplicate_key(rt));
    }

    #[test]
    fn different_posts_differ() {
        assert_ne!(
            near_duplicate_key("fire in colorado"),
            near_duplicate_key("flood in colorado")
        );
    }

    proptest! {
        #[test]
        fn key_ignores_case_and_rt_prefix(text in "[a-zA-Z ]{1,80}", user in "[a-z_]{1,15}") {
            let rt = format!("RT @{user}: {}", text.to_uppercase());
            prop_assert_eq!(near_duplicate_key(&text), near_duplicate_key(&rt));
        }

        #[test]
        fn fast_key_matches_the_word_definition(text in "(RT @[a-z]{1,5}: )?([A-Za-zÀ-ÿΣσς#@$.,!]{1,9} |https?://x.y/z |www.a.b ){0,20}(\\.\\.\\.|…)?") {
            let words = normalized_words(&text);
            let joined = words[..words.len().min(KEY_WORDS)].join(" ");
            prop_assert_eq!(near_duplicate_key(&text), xxhash_rust::xxh3::xxh3_64(joined.as_bytes()));
        }

        #[test]
        fn key_never_panics(text in ".{0,300}") {
            let _ = near_duplicate_key(&text);
        }

        /// Any script: no panic, no empty word, and a retweet of the text keys like the text.
        #[test]
        fn any_script_keys_like_its_retweet(text in crate::testing::any_text()) {
            let words = normalized_words(&text);
            prop_assert!(words.iter().all(|w| !w.is_empty()));
            let plain = text.trim();
            let starts_rt = plain.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("rt "));
            if !starts_rt && !plain.is_empty() {
                prop_assert_eq!(near_duplicate_key(plain), near_duplicate_key(&format!("RT @someone: {plain}")));
            }
        }
    }
}
