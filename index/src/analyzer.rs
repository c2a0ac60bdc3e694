//! The social-aware text analyzer: keeps `#hashtags`, `@mentions`, `$cashtags` and URL domains
//! as tokens, lowercases, and stems English.
//!
//! Each `#tag` / `@handle` / `$CASH` yields two tokens at the same position: the marked form
//! (`#boston`) and the bare word (`boston`), so a query for `boston` finds `#Boston` posts while
//! a query for `#boston` prefers them; a tag or handle in camel case also yields, at that
//! position, the words its capitals and digits mark (`@JessicaLange` → `jessica`, `lange`), so
//! a question that names Jessica Lange finds the post that tags her. A URL yields its host without `www.` (`bbc.co.uk`); its
//! path is dropped. Words are runs of alphanumeric characters with their combining marks and
//! zero-width joiners (apostrophes inside words kept out). Chinese, Japanese and Korean runs
//! are split into overlapping character bigrams (`東京で` → `東京`, `京で`), as Lucene's CJK
//! analyzer does: whitespace tokenization would make a whole Japanese sentence one token, and
//! bigrams need no dictionary (a dictionary tokenizer such as lindera would add ~50 MB of
//! dictionary for better precision on Japanese alone). A query runs through the same analyzer,
//! so `地震` finds `地震です`.

use crate::script::{cjk_bigrams, continues_word, split_cjk_runs, starts_word};
use foldhash::HashMap as FastMap;
use foldhash::HashMapExt;
use tantivy::tokenizer::{
    LowerCaser, RemoveLongFilter, TextAnalyzer, Token, TokenFilter, TokenStream, Tokenizer,
};

/// Name under which the analyzer is registered on the index.
pub const SOCIAL_ANALYZER: &str = "social";

/// The analyzer used for post text, at index and at query time.
pub fn social_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SocialTokenizer::default())
        .filter(RemoveLongFilter::limit(64))
        .filter(LowerCaser)
        .filter(CachedStemmer)
        .build()
}

/// The same analyzer with tantivy's own (uncached) stemmer filter: the terms are identical (a
/// property test checks it); the benchmark's baseline for the stem cache.
pub fn social_analyzer_uncached() -> TextAnalyzer {
    TextAnalyzer::builder(SocialTokenizer::default())
        .filter(RemoveLongFilter::limit(64))
        .filter(LowerCaser)
        .filter(tantivy::tokenizer::Stemmer::new(
            tantivy::tokenizer::Language::English,
        ))
        .build()
}

/// English Snowball stemming (the same `frostem` algorithm as tantivy's `Stemmer`, so the
/// terms are the same) with a cache of the stems already computed: words repeat (Zipf), and
/// stemming every token was ~13 % of bulk-indexing CPU. Each analyzer clone (one per indexing
/// thread) has its own cache, emptied when it reaches [`STEM_CACHE_MAX`] entries.
#[derive(Clone)]
pub struct CachedStemmer;

/// Entries a stem cache holds before it is emptied (~ a few MiB).
const STEM_CACHE_MAX: usize = 50_000;

impl TokenFilter for CachedStemmer {
    type Tokenizer<T: Tokenizer> = CachedStemmerFilter<T>;

    fn transform<T: Tokenizer>(self, inner: T) -> CachedStemmerFilter<T> {
        CachedStemmerFilter {
            inner,
            stems: FastMap::new(),
        }
    }
}

#[derive(Clone)]
pub struct CachedStemmerFilter<T> {
    inner: T,
    /// word → its stem, only for words the stemmer changes.
    stems: FastMap<String, Option<String>>,
}

impl<T: Tokenizer> Tokenizer for CachedStemmerFilter<T> {
    type TokenStream<'a> = CachedStemmerStream<'a, T::TokenStream<'a>>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        CachedStemmerStream {
            tail: self.inner.token_stream(text),
            stems: &mut self.stems,
        }
    }
}

pub struct CachedStemmerStream<'a, T> {
    tail: T,
    stems: &'a mut FastMap<String, Option<String>>,
}

fn english() -> frostem::Stemmer {
    frostem::Stemmer::new(frostem::Algorithm::English)
}

impl<T: TokenStream> TokenStream for CachedStemmerStream<'_, T> {
    fn advance(&mut self) -> bool {
        if !self.tail.advance() {
            return false;
        }
        let token = self.tail.token_mut();
        let stem = match self.stems.get(&token.text) {
            Some(stem) => stem,
            None => {
                if self.stems.len() >= STEM_CACHE_MAX {
                    self.stems.clear();
                }
                let stem = match english().stem(&token.text) {
                    std::borrow::Cow::Borrowed(s) if s == token.text => None,
                    other => Some(other.into_owned()),
                };
                self.stems.entry(token.text.clone()).or_insert(stem)
            }
        };
        if let Some(stem) = stem {
            token.text.clear();
            token.text.push_str(stem);
        }
        true
    }

    fn token(&self) -> &Token {
        self.tail.token()
    }

    fn token_mut(&mut self) -> &mut Token {
        self.tail.token_mut()
    }
}

/// Splits social text into tokens; see the module docs. Token buffers (and their strings) are
/// reused from one text to the next, so indexing allocates little per post.
#[derive(Clone, Default)]
pub struct SocialTokenizer {
    tokens: Vec<Token>,
}

/// Tokens of one text, produced eagerly and handed out one by one.
pub struct SocialTokenStream<'a> {
    tokens: &'a mut [Token],
    index: usize,
}

impl Tokenizer for SocialTokenizer {
    type TokenStream<'a> = SocialTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> SocialTokenStream<'a> {
        let used = tokenize_into(text, &mut self.tokens);
        SocialTokenStream {
            tokens: &mut self.tokens[..used],
            index: 0,
        }
    }
}

impl TokenStream for SocialTokenStream<'_> {
    fn advance(&mut self) -> bool {
        if self.index < self.tokens.len() {
            self.index += 1;
            true
        } else {
            false
        }
    }

    fn token(&self) -> &Token {
        &self.tokens[self.index - 1]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.index - 1]
    }
}

fn is_word_char(c: char) -> bool {
    continues_word(c)
}

/// Writes token number `*used` (reusing an old entry's string when there is one).
fn push(
    tokens: &mut Vec<Token>,
    used: &mut usize,
    text: &str,
    from: usize,
    to: usize,
    position: usize,
) {
    if let Some(t) = tokens.get_mut(*used) {
        t.offset_from = from;
        t.offset_to = to;
        t.position = position;
        t.position_length = 1;
        t.text.clear();
        t.text.push_str(&text[from..to]);
    } else {
        tokens.push(Token {
            offset_from: from,
            offset_to: to,
            position,
            text: text[from..to].to_string(),
            position_length: 1,
        });
    }
    *used += 1;
}

/// The tokenizer's core, separate from tantivy's traits so it is easy to test. Fills
/// `tokens[..n]` (reusing entries) and returns `n`.
fn tokenize_into(text: &str, tokens: &mut Vec<Token>) -> usize {
    let mut used = 0usize;
    let bytes = text.as_bytes();
    let mut position = 0usize;
    let mut i = 0usize;
    while i < bytes.len() {
        let c = match text[i..].chars().next() {
            Some(c) => c,
            None => break,
        };
        // URL: emit the host only.
        if (c == 'h' || c == 'H') && starts_with_ignore_case(&text[i..], "http") {
            if let Some(scheme_len) = url_scheme_len(&text[i..]) {
                let host_start = i + scheme_len;
                let host_end = text[host_start..]
                    .find(|ch: char| !(ch.is_alphanumeric() || ch == '.' || ch == '-'))
                    .map_or(text.len(), |n| host_start + n);
                let url_end = text[host_start..]
                    .find(char::is_whitespace)
                    .map_or(text.len(), |n| host_start + n);
                let mut from = host_start;
                if starts_with_ignore_case(&text[from..host_end], "www.") {
                    from += 4;
                }
                let host = text[from..host_end].trim_end_matches('.');
                if !host.is_empty() {
                    push(tokens, &mut used, text, from, from + host.len(), position);
                    position += 1;
                }
                i = url_end;
                continue;
            }
        }
        // Marked tokens: #tag, @handle, $CASH.
        if c == '#' || c == '@' || c == '$' {
            let start = i + 1;
            let end = text[start..]
                .find(|ch: char| !is_word_char(ch))
                .map_or(text.len(), |n| start + n);
            let valid = end > start
                && match c {
                    '$' => {
                        let word = &text[start..end];
                        word.len() <= 6 && word.chars().all(|ch| ch.is_ascii_alphabetic())
                    }
                    _ => true,
                };
            if valid {
                push(tokens, &mut used, text, i, end, position);
                push(tokens, &mut used, text, start, end, position);
                // `#BruceJenner` is also found by `bruce jenner`, `@realDonaldTrump` by
                // `donald trump`: the words its capitals mark share the position.
                // (A word with CJK runs gets its bigrams below instead.)
                let pieces = split_cjk_runs(&text[start..end]);
                let parts = camel_parts(&text[start..end]);
                if parts.len() > 1 && !pieces.iter().any(|p| p.2) {
                    for (a, b) in parts {
                        push(tokens, &mut used, text, start + a, start + b, position);
                    }
                }
                // `#東京地震` is also found by `地震`: its CJK bigrams share the position.
                if pieces.iter().any(|p| p.2) {
                    for (from, to, cjk) in pieces {
                        let spans = if cjk {
                            cjk_bigrams(&text[start + from..start + to])
                        } else {
                            vec![(0, to - from)]
                        };
                        for (a, b) in spans {
                            if (start + from + a, start + from + b) != (start, end) {
                                push(
                                    tokens,
                                    &mut used,
                                    text,
                                    start + from + a,
                                    start + from + b,
                                    position,
                                );
                            }
                        }
                    }
                }
                position += 1;
                i = end;
                continue;
            }
            i += c.len_utf8();
            continue;
        }
        if starts_word(c) {
            let end = text[i..]
                .find(|ch: char| !continues_word(ch))
                .map_or(text.len(), |n| i + n);
            // CJK runs inside the word become overlapping bigrams at consecutive positions
            // (so phrase queries still work); the other pieces are words of their own.
            for (from, to, cjk) in split_cjk_runs(&text[i..end]) {
                if cjk {
                    for (a, b) in cjk_bigrams(&text[i + from..i + to]) {
                        push(
                            tokens,
                            &mut used,
                            text,
                            i + from + a,
                            i + from + b,
                            position,
                        );
                        position += 1;
                    }
                } else {
                    push(tokens, &mut used, text, i + from, i + to, position);
                    position += 1;
                }
            }
            i = end;
            continue;
        }
        i += c.len_utf8();
    }
    used
}

/// The words a hashtag's or handle's capitals and digits mark, as byte spans of `word`:
/// `BruceJenner` → `Bruce` `Jenner`, `NYPDNews` → `NYPD` `News`, `Covid19` → `Covid` `19`. A
/// new word starts at a capital after a small letter, at the last capital of a run followed by
/// a small letter, and where letters and digits meet; marks stay with their letter. One span
/// (the whole word) when nothing marks a boundary; in scripts without case, only digits do. (A
/// tag with CJK runs gets their bigrams instead.)
fn camel_parts(word: &str) -> Vec<(usize, usize)> {
    #[derive(Clone, Copy, PartialEq)]
    enum Kind {
        Upper,
        Lower,
        /// A letter of a script without case (Arabic, Hebrew, Thai).
        Caseless,
        Digit,
        Other,
    }
    let kind = |c: char| {
        if c.is_uppercase() {
            Kind::Upper
        } else if c.is_lowercase() {
            Kind::Lower
        } else if c.is_numeric() {
            Kind::Digit
        } else if c.is_alphabetic() {
            Kind::Caseless
        } else {
            Kind::Other
        }
    };
    let chars: Vec<(usize, Kind)> = word.char_indices().map(|(i, c)| (i, kind(c))).collect();
    let mut cuts = vec![0];
    // The kind of the last letter or digit before each char (marks take their base's kind).
    let mut last: Option<Kind> = None;
    for (n, &(i, k)) in chars.iter().enumerate() {
        if k == Kind::Other {
            continue;
        }
        if let Some(prev) = last {
            let next = chars[n + 1..]
                .iter()
                .map(|&(_, k)| k)
                .find(|&k| k != Kind::Other);
            let cut = match (prev, k) {
                (Kind::Lower, Kind::Upper) => true,
                (Kind::Upper, Kind::Upper) => next == Some(Kind::Lower),
                (Kind::Digit, Kind::Upper | Kind::Lower | Kind::Caseless)
                | (Kind::Upper | Kind::Lower | Kind::Caseless, Kind::Digit) => true,
                _ => false,
            };
            if cut && i > 0 {
                cuts.push(i);
            }
        }
        last = Some(k);
    }
    cuts.push(word.len());
    cuts.dedup();
    cuts.windows(2).map(|w| (w[0], w[1])).collect()
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

fn url_scheme_len(text: &str) -> Option<usize> {
    if starts_with_ignore_case(text, "https://") {
        Some(8)
    } else if starts_with_ignore_case(text, "http://") {
        Some(7)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn analyze(text: &str) -> Vec<String> {
        analyze_with(&mut social_analyzer(), text)
    }

    fn analyze_with(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
        let mut stream = analyzer.token_stream(text);
        let mut out = Vec::new();
        while stream.advance() {
            out.push(stream.token().text.clone());
        }
        out
    }

    fn uncached_analyzer() -> TextAnalyzer {
        social_analyzer_uncached()
    }

    #[test]
    fn the_stem_cache_gives_tantivys_stems_when_full_too() {
        let words: Vec<String> = (0..STEM_CACHE_MAX + 10)
            .map(|i| format!("running{i} flooding"))
            .collect();
        let mut cached = social_analyzer();
        let mut plain = uncached_analyzer();
        for text in words.iter().chain(words.iter().take(20)) {
            assert_eq!(
                analyze_with(&mut cached, text),
                analyze_with(&mut plain, text)
            );
        }
    }

    #[test]
    fn keeps_social_tokens() {
        let tokens = analyze(
            "RT @BostonPolice: #Breaking suspects $TSLA see https://www.BBC.co.uk/news/1 now",
        );
        for expected in [
            "rt",
            "@bostonpolic",
            "bostonpolic",
            "#break",
            "break",
            "suspect",
            "$tsla",
            "tsla",
            "see",
            "bbc.co.uk",
            "now",
        ] {
            assert!(
                tokens.contains(&expected.to_string()),
                "{expected} missing from {tokens:?}"
            );
        }
        assert!(
            !tokens.iter().any(|t| t.contains("news")),
            "url path leaked: {tokens:?}"
        );
    }

    #[test]
    fn camel_case_tags_and_handles_also_give_their_words() {
        let tokens = analyze(
            "#BruceJenner looks like @JessicaLange says @realDonaldTrump #NYPDNews #Covid19",
        );
        for expected in [
            "#brucejenn",
            "brucejenn",
            "bruce",
            "jenner",
            "jessica",
            "lang",
            "real",
            "donald",
            "trump",
            "nypd",
            "news",
            "covid",
            "19",
        ] {
            assert!(
                tokens.contains(&expected.to_string()),
                "{expected} missing from {tokens:?}"
            );
        }
        // One word: no parts of its own; a plain word is never split.
        assert_eq!(analyze("#boston iPhone"), ["#boston", "boston", "iphon"]);
        assert_eq!(camel_parts("NYPD"), [(0, 4)]);
        assert_eq!(camel_parts("СлаваУкраїні"), [(0, 10), (10, 24)]);
        assert_eq!(camel_parts("عاجل2024"), [(0, 8), (8, 12)]);
    }

    #[test]
    fn stems_english() {
        assert_eq!(analyze("floods flooding"), vec!["flood", "flood"]);
    }

    #[test]
    fn dollar_amounts_are_not_cashtags() {
        let tokens = analyze("raised $5000 today");
        assert!(!tokens.iter().any(|t| t.starts_with('$')), "{tokens:?}");
        assert!(tokens.contains(&"5000".to_string()));
    }

    #[test]
    fn marked_and_bare_share_a_position() {
        let mut tokens = Vec::new();
        let n = tokenize_into("#yyc flood", &mut tokens);
        assert_eq!(n, 3);
        assert_eq!(tokens[0].position, tokens[1].position);
        assert_eq!(tokens[2].position, tokens[0].position + 1);
    }

    #[test]
    fn cjk_runs_become_bigrams_and_marks_stay_in_words() {
        assert_eq!(
            analyze("地震です 東京で大きな揺れ #earthquake"),
            vec![
                "地震",
                "震で",
                "です",
                "東京",
                "京で",
                "で大",
                "大き",
                "きな",
                "な揺",
                "揺れ",
                "#earthquak",
                "earthquak"
            ]
        );
        assert_eq!(
            analyze("서울에서 지진"),
            vec!["서울", "울에", "에서", "지진"]
        );
        assert_eq!(analyze("नमस्ते दुनिया"), vec!["नमस्ते", "दुनिया"]);
        assert_eq!(analyze("Tokyo東京"), vec!["tokyo", "東京"]);
        assert_eq!(
            analyze("#東京地震"),
            vec!["#東京地震", "東京地震", "東京", "京地", "地震"]
        );
    }

    proptest! {
        #[test]
        fn camel_parts_cover_the_word_in_order(word in "\\PC{0,40}") {
            let parts = camel_parts(&word);
            let mut at = 0;
            for (a, b) in parts {
                prop_assert!(a == at && a < b && word.is_char_boundary(b), "{word:?}");
                at = b;
            }
            prop_assert_eq!(at, word.len());
        }

        #[test]
        fn never_panics_on_any_script(text in crate::testing::any_text()) {
            let mut tokens = Vec::new();
            let n = tokenize_into(&text, &mut tokens);
            for t in &tokens[..n] {
                prop_assert!(t.offset_from < t.offset_to && t.offset_to <= text.len());
                prop_assert!(text.is_char_boundary(t.offset_from) && text.is_char_boundary(t.offset_to));
                prop_assert!(!t.text.is_empty());
            }
            let _ = analyze(&text);
        }

        /// The cached stemmer changes nothing but speed: the same terms as tantivy's stemmer
        /// for any text, also when the cache already holds the words (an index built with one
        /// is searched with the other).
        #[test]
        fn cached_stems_equal_tantivys(texts in proptest::collection::vec(crate::testing::any_text(), 1..4)) {
            let mut cached = social_analyzer();
            let mut plain = uncached_analyzer();
            for text in texts.iter().chain(texts.iter()) {
                prop_assert_eq!(analyze_with(&mut cached, text), analyze_with(&mut plain, text));
            }
        }

        #[test]
        fn never_panics_and_offsets_are_valid(text in "\\PC{0,200}") {
            // Reuse a buffer holding an earlier text's tokens, as the analyzer does.
            let mut tokens = Vec::new();
            tokenize_into("some earlier #text with https://a.example/x tokens", &mut tokens);
            let n = tokenize_into(&text, &mut tokens);
            for t in &tokens[..n] {
                prop_assert!(t.offset_from < t.offset_to && t.offset_to <= text.len());
                prop_assert!(text.is_char_boundary(t.offset_from) && text.is_char_boundary(t.offset_to));
            }
        }
    }
}
