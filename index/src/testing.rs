//! Proptest strategies for text that any person can post, shared by every crate's property
//! tests (feature `testing`): Latin with accents (precomposed and combining), CJK, Arabic and
//! Hebrew (right to left, with bidi controls), Devanagari, Cyrillic, emoji with ZWJ sequences,
//! skin tones and variation selectors, zero-width and control characters, and the markup that
//! Tidings treats specially (`RT @`, `[1]`, fences, template tokens, URLs, `#tags`).

use proptest::prelude::*;

/// Characters from the scripts and the awkward corners of Unicode.
fn script_char() -> impl Strategy<Value = char> {
    prop::char::ranges(
        vec![
            'a'..='z',
            'A'..='Z',
            '0'..='9',
            '\u{00C0}'..='\u{00FF}',   // Latin-1 letters with accents
            '\u{0300}'..='\u{036F}',   // combining diacritics
            '\u{0400}'..='\u{04FF}',   // Cyrillic
            '\u{0590}'..='\u{05FF}',   // Hebrew, with points
            '\u{0600}'..='\u{06FF}',   // Arabic, with harakat
            '\u{0900}'..='\u{097F}',   // Devanagari
            '\u{0E00}'..='\u{0E7F}',   // Thai
            '\u{1100}'..='\u{11FF}',   // Hangul jamo
            '\u{3000}'..='\u{30FF}',   // CJK punctuation, Hiragana, Katakana
            '\u{4E00}'..='\u{9FFF}',   // Han
            '\u{AC00}'..='\u{D7A3}',   // Hangul syllables
            '\u{FF00}'..='\u{FFEF}',   // full and half width forms
            '\u{1F300}'..='\u{1FAFF}', // emoji
            '\u{1F3FB}'..='\u{1F3FF}', // skin tones
            '\u{20000}'..='\u{2A6DF}', // CJK extension B (4-byte UTF-8)
            '\u{0000}'..='\u{001F}',   // C0 controls, incl. \n \r \t
            '\u{007F}'..='\u{009F}',   // DEL, C1 controls
            '\u{200B}'..='\u{200F}',   // zero width space / non-joiner / joiner, LRM, RLM
            '\u{202A}'..='\u{202E}',   // bidi embeddings and overrides
            '\u{2066}'..='\u{2069}',   // bidi isolates
            '\u{FE00}'..='\u{FE0F}',   // variation selectors
            '\u{FEFF}'..='\u{FEFF}',   // BOM
            '\u{FFFD}'..='\u{FFFD}',   // replacement character
        ]
        .into(),
    )
}

/// Fragments that exercise Tidings' own parsing.
const SPECIAL: &[&str] = &[
    "👨‍👩‍👧‍👦",
    "🏳️‍🌈",
    "👍🏽",
    "🇯🇵",
    "e\u{301}",
    "ñ",
    "İ",
    "ß",
    "ﬁ",
    "Σ",
    "ǅ",
    "ﷺ",
    "RT @",
    "RT @user: ",
    "rt @ü: ",
    "[1]",
    "[2, 3]",
    "[Post 4]",
    "[",
    "]",
    "\"\"\"",
    "```",
    "<|im_start|>",
    "<|im_end|>",
    "[INST]",
    "<s>",
    "Question:",
    "Posts from",
    "http://",
    "https://t.co/x",
    "www.",
    "#",
    "#地震",
    "@",
    "@user",
    "$TSLA",
    "…",
    "...",
    "。",
    "！",
    "？",
    ". ",
    "\n",
    "\r\n",
    "\t",
    " ",
    "  ",
    "&amp;",
    "&#x1F600;",
    "&",
    "<p>",
    "</p>",
    "<br>",
    "<a href=\"https://x.y\">",
    "</a>",
    "<",
    ">",
    ":",
    "ー",
    "地震です",
    "東京で大きな揺れ",
    "서울",
    "مرحبا",
    "שלום",
    "नमस्ते",
    "Привет",
    "São Paulo",
];

/// One fragment: a run of script characters, a special fragment, or any `char` at all.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::collection::vec(script_char(), 0..12).prop_map(String::from_iter),
        3 => prop::sample::select(SPECIAL).prop_map(str::to_string),
        1 => prop::collection::vec(any::<char>(), 0..6).prop_map(String::from_iter),
        2 => "[a-zA-Z ]{1,12}",
    ]
}

/// Arbitrary text from every script, up to about 300 characters.
pub fn any_text() -> impl Strategy<Value = String> {
    prop::collection::vec(fragment(), 0..24).prop_map(|parts| parts.concat())
}

/// Shorter text (names, handles, questions).
pub fn short_text() -> impl Strategy<Value = String> {
    prop::collection::vec(fragment(), 0..6).prop_map(|parts| parts.concat())
}

/// A post with `text` by `author`, `minutes_ago` before 2024-05-10 18:00 UTC, with the
/// hashtags and mentions a person would see in the text. As stored, without validation: the
/// functions under test must cope with whatever text a post holds.
pub fn post(n: usize, text: &str, author: Option<&str>, minutes_ago: i64) -> crate::Post {
    let at = chrono::DateTime::parse_from_rfc3339("2024-05-10T18:00:00Z")
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_default()
        - chrono::Duration::minutes(minutes_ago);
    let words = |mark: char| -> Vec<String> {
        text.split_whitespace()
            .filter_map(|w| w.strip_prefix(mark))
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect()
    };
    crate::Post {
        id: crate::PostId::parse(&format!("t:{n}")).expect("t:N is a valid id"),
        source: "test".into(),
        author: author.map(str::to_string),
        author_name: None,
        text: text.to_string(),
        created_at: at,
        ingested_at: at,
        lang: None,
        url: None,
        refs: Default::default(),
        hashtags: words('#'),
        mentions: words('@'),
        links: Vec::new(),
        engagement: Default::default(),
        labels: Default::default(),
    }
}

/// Up to `max` posts of arbitrary text from a few authors, newest first.
pub fn any_posts(max: usize) -> impl Strategy<Value = Vec<crate::Post>> {
    prop::collection::vec((any_text(), short_text(), 0i64..600), 0..max).prop_map(|items| {
        let mut posts: Vec<crate::Post> = items
            .into_iter()
            .enumerate()
            .map(|(i, (text, author, ago))| {
                let author = (!author.trim().is_empty()).then_some(author);
                post(i + 1, &text, author.as_deref(), ago)
            })
            .collect();
        posts.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        posts
    })
}
