//! Planning: a question (and the conversation before it) becomes a search: query words, time
//! window, author filters, and the entities to boost.

use crate::when::{self, TimeWindow};
use chrono::{DateTime, Utc};
use regex::Regex;
use std::sync::LazyLock;

/// Search settings a caller may pass with a question (the `search` extension of the chat API).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SearchOptions {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Only posts by these handles.
    pub handles: Vec<String>,
    pub exclude_handles: Vec<String>,
    pub sources: Vec<String>,
    pub langs: Vec<String>,
    /// Posts to put in front of the model (default: 5 for small-context models, 8 otherwise).
    pub max_results: Option<usize>,
    pub mode: SearchModeOption,
}

/// Whether to search at all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SearchModeOption {
    /// Search unless the message is small talk ("hi", "thanks").
    #[default]
    Auto,
    On,
    Off,
}

/// Posts in the prompt when the caller names no number (the agent lowers it for small models).
pub const DEFAULT_MAX_RESULTS: usize = 8;

/// What the agent will look for.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Words for the search engine: the question without time words and question filler.
    pub query: String,
    /// What the dense half embeds: the question as asked, without its time words (a follow-up
    /// that borrows the previous question's topic words is preceded by that question). A
    /// sentence model places a question near the posts that answer it better than it places
    /// its bare topic words (TweetQA held-out R@10 0.762 → 0.777 with the same ranker weights,
    /// BENCHMARKS.md).
    pub semantic: String,
    pub window: TimeWindow,
    pub authors: Vec<String>,
    pub exclude_authors: Vec<String>,
    pub sources: Vec<String>,
    pub langs: Vec<String>,
    pub hashtags: Vec<String>,
    pub cashtags: Vec<String>,
    pub mentions: Vec<String>,
    /// Quoted phrases: posts containing them rank first.
    pub phrases: Vec<String>,
    /// What the question is about by name: capitalised words past the first of a sentence,
    /// `#tags`, `@mentions`, `$CASH`, as lowercase terms. A post that holds none of them does
    /// not address the question (the agent then says it found nothing rather than answering
    /// from posts that only share common words with it). In Japanese, the katakana and kanji
    /// runs between kana (`ボストン`, `東京`). Empty when the question names nothing (all
    /// lowercase, or Chinese and Korean, which have neither case nor kana): then any search
    /// hit counts.
    pub anchors: Vec<String>,
    /// Whether the question asks what is going on ("What is happening in Boston?", "any news
    /// on the floods?") rather than for one fact ("Who was arrested?"): its search words are
    /// only the names it asks about (or none), or it asks for news or updates; and it has no
    /// who/which/when/where/why. Such an answer shows the main reports, not one post.
    pub overview: bool,
    pub search: bool,
    pub max_results: usize,
}

static HANDLE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:^|[^\w@])@([a-z0-9_][a-z0-9_.\-]{0,63}[a-z0-9_])")
        .expect("a valid built-in regex")
});
static AUTHOR_CUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:from|by)\s+@([a-z0-9_][a-z0-9_.\-]{0,63}[a-z0-9_])|@([a-z0-9_][a-z0-9_.\-]{0,63}[a-z0-9_])\s+(?:say|says|said|post|posts|posted|tweet|tweets|tweeted|write|writes|wrote|report|reports|reported)\b").expect("a valid built-in regex")
});
static HASHTAG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"#(\w{1,100})").expect("a valid built-in regex"));
static CASHTAG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\$([A-Za-z][A-Za-z0-9.]{0,9})\b").expect("a valid built-in regex")
});
static QUOTED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"["“”]([^"“”]{2,120})["“”]"#).expect("a valid built-in regex"));
/// Words that ask what is going on rather than for one fact.
static OVERVIEW_CUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(?:happening|going on|latest|news|updates?|summari[sz]e|summary|what'?s new)\b|何が起き|何があ|最新|ニュース|发生了什么|最新消息|무슨 일",
    )
    .expect("a valid built-in regex")
});
/// Words that ask for one fact.
static FACT_CUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(?:who|whom|whose|which|when|where|why|how (?:many|much|long|old|far|big))\b",
    )
    .expect("a valid built-in regex")
});

/// See [`Plan::overview`]: `query` holds the search words, `anchors` the names asked about.
fn is_overview(question: &str, query: &str, anchors: &[String]) -> bool {
    let named: std::collections::HashSet<String> = anchors
        .iter()
        .flat_map(|a| crate::cite::content_words(a))
        .collect();
    let only_names = crate::cite::content_words(query)
        .iter()
        .all(|w| named.contains(w) || named.contains(w.trim_start_matches('#')));
    !FACT_CUE.is_match(question) && (only_names || OVERVIEW_CUE.is_match(question))
}

static SMALL_TALK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*(?:hi|hello|hey|yo|thanks|thank you|thx|ok|okay|cool|great|bye|good (?:morning|night|evening)|who are you|what are you|how are you)[\s!.?]*$").expect("a valid built-in regex")
});

/// Question words that carry no topic ("what is going on with ...").
const FILLER: &[&str] = &[
    "a",
    "about",
    "an",
    "and",
    "any",
    "anything",
    "are",
    "as",
    "at",
    "be",
    "can",
    "could",
    "did",
    "do",
    "does",
    "for",
    "from",
    "give",
    "going",
    "happen",
    "happened",
    "happening",
    "has",
    "have",
    "how",
    "i",
    "in",
    "is",
    "it",
    "its",
    "it's",
    "know",
    "latest",
    "me",
    "new",
    "news",
    "of",
    "on",
    "or",
    "people",
    "please",
    "right",
    "say",
    "saying",
    "says",
    "so",
    "summarize",
    "summary",
    "tell",
    "that",
    "the",
    "there",
    "this",
    "to",
    "up",
    "update",
    "updates",
    "was",
    "we",
    "were",
    "what",
    "what's",
    "whats",
    "when",
    "where",
    "which",
    "who",
    "why",
    "will",
    "with",
    "you",
    "your",
];

fn is_filler(word: &str) -> bool {
    FILLER.contains(&word)
}

/// The topic words of `text`: lowercased, punctuation trimmed, filler dropped. Keeps `#tags`,
/// `@handles` and `$CASH` intact.
pub fn topic_words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !(c.is_alphanumeric() || c == '#' || c == '@' || c == '$'))
                .trim_end_matches("'s")
                .to_lowercase()
        })
        .filter(|w| !w.is_empty() && !is_filler(w))
        .collect()
}

/// Words that are capitalised in questions without naming anything (calendar words, the
/// same list the trending topics skip, are checked too).
const NOT_NAMES: &[&str] = &[
    "i",
    "i'm",
    "i've",
    "i'd",
    "utc",
    "gmt",
    "ok",
    "okay",
    "please",
    "thanks",
    "news",
    "latest",
    "today",
    "tonight",
    "yesterday",
    "tomorrow",
    "now",
    "what",
    "who",
    "when",
    "where",
    "why",
    "how",
    "which",
    "is",
    "are",
    "was",
    "were",
    "any",
    "the",
    "a",
    "an",
    "tell",
    "show",
    "give",
];

/// Japanese words that are written in katakana or kanji without naming anything.
const JAPANESE_NOT_NAMES: &[&str] = &[
    "ニュース",
    "最新",
    "速報",
    "情報",
    "状況",
    "現在",
    "最近",
    "今日",
    "昨日",
    "明日",
    "今朝",
    "今夜",
    "今週",
    "先週",
    "投稿",
    "時間",
    "場所",
    "本当",
    "一体",
];

fn is_katakana(c: char) -> bool {
    matches!(c as u32, 0x30A1..=0x30FA | 0x30FC | 0xFF66..=0xFF9F)
}

fn is_kanji(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x3005)
}

/// The names in a Japanese question: kana in it mark the grammar, so runs of two or more
/// katakana ("ボストン") or kanji ("東京", "地震") between them are its words, of which the
/// generic ones ("ニュース", "最新") are not names. Chinese (no kana) has no such marks, and
/// Korean spaces its words: both give none.
fn japanese_names(text: &str) -> Vec<String> {
    if !text
        .chars()
        .any(|c| matches!(c as u32, 0x3041..=0x309F) || is_katakana(c))
    {
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::new();
    let mut run = String::new();
    let mut kind = None::<bool>;
    for c in text.chars().chain(std::iter::once(' ')) {
        let this = if is_katakana(c) {
            Some(true)
        } else if is_kanji(c) {
            Some(false)
        } else {
            None
        };
        if this != kind || this.is_none() {
            if run.chars().count() >= 2
                && !JAPANESE_NOT_NAMES.contains(&run.as_str())
                && !run.chars().all(|c| c == 'ー')
                && !out.contains(&run)
            {
                out.push(std::mem::take(&mut run));
            }
            run.clear();
        }
        kind = this;
        if this.is_some() {
            run.push(c);
        }
    }
    out
}

/// The names in `text` (see [`Plan::anchors`]): each a lowercase term.
pub fn anchors(text: &str) -> Vec<String> {
    let mut out: Vec<String> = japanese_names(text);
    let mut sentence_start = true;
    for raw in text.split_whitespace() {
        let word = raw.trim_matches(|c: char| {
            !(c.is_alphanumeric() || c == '#' || c == '@' || c == '$' || c == '-' || c == '\'')
        });
        let word = word.trim_end_matches("'s").trim_end_matches('\'');
        let first = sentence_start;
        sentence_start = raw.ends_with(['.', '?', '!', ':', ';']);
        if word.is_empty() {
            continue;
        }
        let tagged = word.starts_with(['#', '@', '$']) && word.chars().count() > 1;
        let capital = !first
            && word.chars().next().is_some_and(char::is_uppercase)
            && !NOT_NAMES.contains(&word.to_lowercase().as_str())
            && !crate::suggest::CALENDAR.contains(&word.to_lowercase().as_str())
            && !is_filler(&word.to_lowercase());
        if tagged || capital {
            let term = word.trim_start_matches(['#', '@', '$']).to_lowercase();
            if !term.is_empty() && !out.contains(&term) {
                out.push(term);
            }
        }
    }
    out
}

/// Builds the plan for `question`, asked at `as_of`, after `earlier_questions` (oldest first).
pub fn plan(
    question: &str,
    earlier_questions: &[String],
    as_of: DateTime<Utc>,
    options: &SearchOptions,
) -> Plan {
    // Time: the request's explicit from/to win, then words in the question, then the default.
    let expression = when::understand(question, as_of);
    let window = match (options.from, options.to) {
        (None, None) => expression
            .as_ref()
            .map(|e| e.window.clone())
            .unwrap_or_else(|| when::default_window(as_of)),
        (from, to) => {
            let to = to.unwrap_or(as_of);
            let from = from.unwrap_or(to - chrono::Duration::hours(24));
            TimeWindow::between(
                from,
                to,
                format!(
                    "{} to {}",
                    from.format("%Y-%m-%d %H:%M UTC"),
                    to.format("%Y-%m-%d %H:%M UTC")
                ),
            )
        }
    };
    let mut text = question.to_string();
    if let Some(e) = &expression {
        text.replace_range(e.start..e.end, " ");
    }

    let mut authors: Vec<String> = options
        .handles
        .iter()
        .map(|h| normalize_handle(h))
        .collect();
    for c in AUTHOR_CUE.captures_iter(question) {
        if let Some(h) = c.get(1).or_else(|| c.get(2)) {
            let h = normalize_handle(h.as_str());
            if !authors.contains(&h) {
                authors.push(h);
            }
        }
    }
    let mentions: Vec<String> = HANDLE
        .captures_iter(question)
        .map(|c| normalize_handle(&c[1]))
        .filter(|h| !authors.contains(h))
        .collect();
    let hashtags: Vec<String> = HASHTAG
        .captures_iter(question)
        .map(|c| format!("#{}", c[1].to_lowercase()))
        .collect();
    let cashtags: Vec<String> = CASHTAG
        .captures_iter(question)
        .map(|c| format!("${}", c[1].to_uppercase()))
        .collect();
    let phrases: Vec<String> = QUOTED
        .captures_iter(question)
        .map(|c| c[1].trim().to_lowercase())
        .filter(|p| !p.is_empty())
        .collect();

    // Query words: drop author handles (they became filters) and filler.
    let mut words: Vec<String> = topic_words(&text)
        .into_iter()
        .filter(|w| !(w.starts_with('@') && authors.contains(&normalize_handle(w))))
        .collect();
    let mut semantic = text.split_whitespace().collect::<Vec<_>>().join(" ");
    // A follow-up like "what about yesterday?" or "and the police?" leans on the previous
    // question for its topic.
    if words.len() < 2 {
        if let Some(previous) = earlier_questions.last() {
            let mut prev_text = previous.clone();
            if let Some(e) = when::understand(previous, as_of) {
                prev_text.replace_range(e.start..e.end, " ");
            }
            let prev_text = prev_text.split_whitespace().collect::<Vec<_>>().join(" ");
            if !prev_text.is_empty() {
                semantic = format!("{prev_text} {semantic}").trim_end().to_string();
            }
            for w in topic_words(&prev_text) {
                if !words.contains(&w) {
                    words.push(w);
                }
            }
        }
    }
    let search = match options.mode {
        SearchModeOption::On => true,
        SearchModeOption::Off => false,
        SearchModeOption::Auto => !SMALL_TALK.is_match(question),
    };
    let mut query = words.join(" ");
    // Names the question asks about (a follow-up without one keeps none: "and the police?").
    let anchors: Vec<String> = anchors(&text)
        .into_iter()
        .filter(|a| !authors.contains(a))
        .collect();
    if query.is_empty() && !authors.is_empty() {
        // "What did @nws post today?": everything by the author in the window.
        query = question.to_string();
    }
    let overview = is_overview(&text, &query, &anchors);
    if semantic.is_empty() {
        semantic = query.clone();
    }
    Plan {
        query,
        semantic,
        window,
        authors,
        exclude_authors: options
            .exclude_handles
            .iter()
            .map(|h| normalize_handle(h))
            .collect(),
        sources: options.sources.clone(),
        langs: options.langs.clone(),
        hashtags,
        cashtags,
        mentions,
        phrases,
        anchors,
        overview,
        search,
        max_results: options
            .max_results
            .unwrap_or(DEFAULT_MAX_RESULTS)
            .clamp(1, 50),
    }
}

/// `@NWS` → `nws`.
pub fn normalize_handle(h: &str) -> String {
    h.trim().trim_start_matches('@').to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2013, 4, 17, 15, 0, 0).unwrap()
    }

    #[test]
    fn anchors_are_the_names_a_question_asks_about() {
        assert_eq!(
            anchors("Is there a tsunami warning for Tasmania?"),
            ["tasmania"]
        );
        assert_eq!(
            anchors("What is happening in Emilia-Romagna, Italy? Any news from #Ferrara or @ansa"),
            ["emilia-romagna", "italy", "ferrara", "ansa"]
        );
        assert!(anchors("what did the author say about the floods").is_empty());
        assert!(anchors("What is happening right now? I want News.").is_empty());
        assert_eq!(anchors("東京で何が起きていますか"), ["東京"]);
        assert_eq!(
            anchors("ボストンマラソンの爆発について最新のニュースは？"),
            ["ボストンマラソン", "爆発"]
        );
        assert!(anchors("何が起きているの？").is_empty());
        assert!(anchors("北京发生了什么").is_empty());
        assert_eq!(anchors("What did Obama's team say?"), ["obama"]);
    }

    #[test]
    fn drops_time_words_and_filler() {
        let p = plan(
            "What's happening in Boston right now?",
            &[],
            at(),
            &SearchOptions::default(),
        );
        assert_eq!(p.query, "boston");
        // The dense half gets the question as asked, without its time words.
        assert_eq!(p.semantic, "What's happening in Boston ?");
        assert_eq!(p.window.span(), chrono::Duration::hours(2));
        assert!(p.search);
    }

    proptest::proptest! {
        /// Any question in any script: Japanese names are pieces of it, and planning (anchors,
        /// overview) does not panic.
        #[test]
        fn any_script_question(question in tidings_index::testing::any_text()) {
            for name in japanese_names(&question) {
                proptest::prop_assert!(question.contains(&name), "{name:?} of {question:?}");
                proptest::prop_assert!(name.chars().count() >= 2);
            }
            let p = plan(&question, &[], at(), &SearchOptions::default());
            let _ = p.overview;
            // What the dense half embeds is the question's own words, and there is some
            // whenever there are search words.
            for w in p.semantic.split_whitespace() {
                proptest::prop_assert!(question.contains(w), "{w:?} of {question:?}");
            }
            proptest::prop_assert!(p.query.trim().is_empty() || !p.semantic.trim().is_empty());
        }
    }

    #[test]
    fn overview_questions_ask_what_is_going_on() {
        let overview = |q: &str| plan(q, &[], at(), &SearchOptions::default()).overview;
        assert!(overview("What's happening in Boston right now?"));
        assert!(overview("What is happening right now?"));
        assert!(overview("What is happening in Lac-Megantic, Quebec?"));
        assert!(overview("Any news on the floods in Colorado?"));
        assert!(overview("Latest on #COfire"));
        assert!(!overview("Which soccer team does Tim Cahill play on?"));
        assert!(!overview("How many people died in the Glasgow crash?"));
        assert!(!overview("Where is the latest fire in Colorado?"));
        assert!(!overview("did the bridge collapse"));
        assert!(!overview("where does he live?"));
        assert!(overview("ボストンで何が起きていますか？"));
    }

    #[test]
    fn entities_become_filters_or_boosts() {
        let p = plan(
            "What did @NWS say about #Sandy and $AAPL, \"storm surge\" warnings?",
            &[],
            at(),
            &SearchOptions::default(),
        );
        assert_eq!(p.authors, vec!["nws"]);
        assert_eq!(p.hashtags, vec!["#sandy"]);
        assert_eq!(p.cashtags, vec!["$AAPL"]);
        assert_eq!(p.phrases, vec!["storm surge"]);
        assert!(p.query.contains("#sandy") && p.query.contains("surge"));
        assert!(!p.query.contains("@nws"));
        let p = plan(
            "tweets mentioning @bostonpolice",
            &[],
            at(),
            &SearchOptions::default(),
        );
        assert!(p.authors.is_empty());
        assert_eq!(p.mentions, vec!["bostonpolice"]);
    }

    #[test]
    fn follow_ups_borrow_the_previous_topic() {
        let p = plan(
            "and yesterday?",
            &["What is happening with the Boston marathon explosions?".into()],
            at(),
            &SearchOptions::default(),
        );
        assert!(p.query.contains("boston") && p.query.contains("marathon"));
        assert_eq!(
            p.semantic,
            "What is happening with the Boston marathon explosions? and ?"
        );
        assert!(p.window.explicit);
    }

    #[test]
    fn request_window_wins_and_small_talk_skips_search() {
        let opts = SearchOptions {
            from: Some(at() - chrono::Duration::hours(5)),
            ..Default::default()
        };
        let p = plan("floods today", &[], at(), &opts);
        assert_eq!(p.window.span(), chrono::Duration::hours(5));
        assert!(!plan("thanks!", &[], at(), &SearchOptions::default()).search);
        let off = SearchOptions {
            mode: SearchModeOption::Off,
            ..Default::default()
        };
        assert!(!plan("floods", &[], at(), &off).search);
    }
}
