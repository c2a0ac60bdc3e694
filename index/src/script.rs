//! Text helpers that are correct for every script: CJK detection and bigrams (Chinese,
//! Japanese and Korean are written without spaces between words, so a run of such characters
//! is indexed as overlapping character pairs, the way Lucene's `CJKBigramFilter` does), and
//! truncation by grapheme cluster (an emoji ZWJ sequence, a letter with its combining marks or
//! a Hangul syllable is never cut in half where a person will read it).
//!
//! Every offset these functions hand out is a `char` boundary of the input.

use std::borrow::Cow;
use unicode_normalization::char::is_combining_mark;
use unicode_segmentation::UnicodeSegmentation;

/// Whether `c` belongs to a script written without spaces between words: Han ideographs,
/// Hiragana, Katakana (full and half width), Hangul (syllables and jamo), Bopomofo.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x11FF       // Hangul Jamo
        | 0x2E80..=0x2FDF     // CJK radicals, Kangxi radicals
        | 0x3005..=0x3007     // 々 〆 〇
        | 0x3021..=0x3029     // Hangzhou numerals
        | 0x3031..=0x3035     // Kana repeat marks
        | 0x3038..=0x303C
        | 0x3040..=0x30FF     // Hiragana, Katakana
        | 0x3100..=0x312F     // Bopomofo
        | 0x3130..=0x318F     // Hangul compatibility jamo
        | 0x31A0..=0x31BF     // Bopomofo extended
        | 0x31F0..=0x31FF     // Katakana phonetic extensions
        | 0x3400..=0x4DBF     // CJK extension A
        | 0x4E00..=0x9FFF     // CJK unified ideographs
        | 0xA960..=0xA97F     // Hangul Jamo extended A
        | 0xAC00..=0xD7AF     // Hangul syllables
        | 0xD7B0..=0xD7FF     // Hangul Jamo extended B
        | 0xF900..=0xFAFF     // CJK compatibility ideographs
        | 0xFF66..=0xFF9F     // halfwidth Katakana
        | 0xFFA0..=0xFFDC     // halfwidth Hangul
        | 0x20000..=0x3FFFF   // CJK extensions B and later
    )
}

/// Whether `c` is the long-vowel mark or an iteration mark, which continue a CJK run.
fn continues_cjk(c: char) -> bool {
    is_cjk(c) || matches!(c, 'ー' | 'ｰ' | '゛' | '゜')
}

/// Splits a run of word characters into pieces: `(from, to, cjk)` byte ranges, where CJK
/// pieces are maximal runs of CJK characters and the others are the rest, in order.
pub fn split_cjk_runs(word: &str) -> Vec<(usize, usize, bool)> {
    // Most words are ASCII, and no ASCII character is CJK.
    if word.is_ascii() {
        return if word.is_empty() {
            Vec::new()
        } else {
            vec![(0, word.len(), false)]
        };
    }
    let mut out: Vec<(usize, usize, bool)> = Vec::new();
    for (i, c) in word.char_indices() {
        let cjk = match out.last() {
            Some(&(_, _, true)) => continues_cjk(c),
            _ => is_cjk(c),
        };
        let end = i + c.len_utf8();
        match out.last_mut() {
            Some(last) if last.2 == cjk => last.1 = end,
            _ => out.push((i, end, cjk)),
        }
    }
    out
}

/// The terms of a CJK run: overlapping character bigrams as byte ranges within `run`, or the
/// single character when the run has one. `東京で` → `東京`, `京で`.
pub fn cjk_bigrams(run: &str) -> Vec<(usize, usize)> {
    let starts: Vec<usize> = run.char_indices().map(|(i, _)| i).collect();
    match starts.len() {
        0 => Vec::new(),
        1 => vec![(0, run.len())],
        n => (0..n - 1)
            .map(|k| (starts[k], starts.get(k + 2).copied().unwrap_or(run.len())))
            .collect(),
    }
}

/// Whether `c` starts a word: a letter, a digit or `_`.
pub fn starts_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whether `c` continues a word: a word character, a combining mark (Devanagari vowel signs
/// and virama, Arabic harakat, Hebrew points, accents written apart), or a zero-width
/// (non-)joiner, which Persian and Indic spelling puts inside words.
pub fn continues_word(c: char) -> bool {
    starts_word(c) || is_combining_mark(c) || matches!(c, '\u{200C}' | '\u{200D}')
}

/// Byte ranges of the words of `text`: a word starts at [`starts_word`] and runs while
/// [`continues_word`].
pub fn word_spans(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    for (i, c) in text.char_indices() {
        match start {
            Some(_) if continues_word(c) => {}
            Some(s) => {
                out.push((s, i));
                start = starts_word(c).then_some(i);
            }
            None => start = starts_word(c).then_some(i),
        }
    }
    if let Some(s) = start {
        out.push((s, text.len()));
    }
    out
}

/// Words of `text` as lowercase terms for overlap measures (support, grounding, stories):
/// [`word_spans`], with CJK runs split into bigrams.
pub fn terms(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (s, e) in word_spans(text) {
        let word = &text[s..e];
        for (from, to, cjk) in split_cjk_runs(word) {
            let piece = &word[from..to];
            if cjk {
                out.extend(
                    cjk_bigrams(piece)
                        .into_iter()
                        .map(|(a, b)| piece[a..b].to_string()),
                );
            } else {
                out.push(piece.to_lowercase());
            }
        }
    }
    out
}

/// The longest prefix of `text` with at most `max` grapheme clusters.
pub fn prefix_graphemes(text: &str, max: usize) -> &str {
    // A grapheme cluster is at least one byte, so a text of at most `max` bytes fits whole
    // (most labels, tags and names: this runs for each of them at ingest).
    if text.len() <= max {
        return text;
    }
    match text.grapheme_indices(true).nth(max) {
        Some((cut, _)) => &text[..cut],
        None => text,
    }
}

/// `text` cut to at most `max` grapheme clusters for a person to read: when cut, trailing
/// whitespace is dropped and "…" appended (the result then has at most `max + 1` graphemes).
pub fn shorten(text: &str, max: usize) -> Cow<'_, str> {
    let prefix = prefix_graphemes(text, max);
    if prefix.len() == text.len() {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(format!("{}…", prefix.trim_end()))
    }
}

/// The longest prefix of `text` of at most `max_bytes` bytes that ends on a `char` boundary
/// (for byte limits: log lines, dead letters, stored raw messages).
pub fn prefix_bytes(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut cut = max_bytes;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    &text[..cut]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::any_text;
    use proptest::prelude::*;

    #[test]
    fn japanese_runs_become_bigrams() {
        assert_eq!(
            terms("地震です 東京で大きな揺れ #earthquake"),
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
                "earthquake"
            ]
        );
        assert_eq!(terms("Tokyo東京"), vec!["tokyo", "東京"]);
        assert_eq!(terms("雨"), vec!["雨"]);
        assert_eq!(terms("서울 지진"), vec!["서울", "지진"]);
        assert_eq!(terms("ラーメン"), vec!["ラー", "ーメ", "メン"]);
        // Marks and joiners stay inside their word.
        assert_eq!(terms("नमस्ते दुनिया"), vec!["नमस्ते", "दुनिया"]);
        assert_eq!(terms("می‌خواهم"), vec!["می‌خواهم"]);
        assert_eq!(terms("שָׁלוֹם עולם"), vec!["שָׁלוֹם", "עולם"]);
    }

    #[test]
    fn shortening_keeps_graphemes_whole() {
        let family = "👨‍👩‍👧‍👦";
        let text = format!("{family}{family}{family}");
        assert_eq!(prefix_graphemes(&text, 2), format!("{family}{family}"));
        assert_eq!(shorten("e\u{301}e\u{301}e\u{301}", 2), "e\u{301}e\u{301}…");
        assert_eq!(shorten("short", 10), "short");
        assert_eq!(prefix_bytes("日本", 4), "日");
    }

    proptest! {
        #[test]
        fn every_helper_keeps_char_boundaries(text in any_text(), max in 0usize..60) {
            let p = prefix_graphemes(&text, max);
            prop_assert!(text.starts_with(p));
            prop_assert!(p.graphemes(true).count() <= max);
            // The short-text shortcut gives what walking the graphemes gives.
            let walked = text.grapheme_indices(true).nth(max).map_or(&text[..], |(cut, _)| &text[..cut]);
            prop_assert_eq!(p, walked);
            let s = shorten(&text, max);
            prop_assert!(s.graphemes(true).count() <= max + 1);
            let b = prefix_bytes(&text, max);
            prop_assert!(b.len() <= max && text.starts_with(b));
            for (from, to, _) in split_cjk_runs(&text) {
                prop_assert!(text.is_char_boundary(from) && text.is_char_boundary(to));
                for (a, c) in cjk_bigrams(&text[from..to]) {
                    prop_assert!(a < c && c <= to - from);
                }
            }
            for t in terms(&text) {
                prop_assert!(!t.is_empty());
            }
            for (a, b) in word_spans(&text) {
                prop_assert!(a < b && text.is_char_boundary(a) && text.is_char_boundary(b));
            }
        }
    }
}
