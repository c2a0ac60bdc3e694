//! Grounding: whether each sentence of an answer says only what a post it cites says.
//!
//! A valid citation marker is not grounding. A sentence is *supported* by a post when every
//! claim it makes — names (capitalised words in cased scripts), numbers, `#tags` and
//! `@handles` — appears in that post, and enough of its other content words do too (CJK runs
//! compare as bigrams). A sentence that cites posts must be supported by the union of the posts
//! it cites for its claims and by one of them for its words; a sentence that cites nothing is
//! checked against every post given and, when one supports it, gets that citation.
//!
//! [`SentenceGate`] applies this while the answer streams: text is held until a sentence ends,
//! then passed (with its citations) or dropped. [`extractive`] is the fallback when nothing a
//! model wrote survives: the most corroborated statements from the posts, quoted, each cited.
//!
//! Files: `claims` (what a sentence claims), `extractive` (the quoted fallback and the
//! primary source), `tests`.

mod claims;
mod extractive;
#[cfg(test)]
mod tests;

pub use claims::{claims, state_group, Claims};
pub use extractive::{already_says, extractive, looks_like_injection, primary, Extract};

use crate::cite::{cited_numbers, content_words};
use claims::{numbers_in, states_in, unheard_opening, MARKER};
use std::collections::HashSet;

/// How much of a sentence's content words (beyond its claims) a supporting post must share:
/// half. (A third let through sentences that kept a post's names but said something else with
/// them, about one in ten of the local model's kept sentences in `tidings-tools eval`.)
pub const MIN_WORD_SHARE: f32 = 0.5;

/// A post as the grounding check sees it.
#[derive(Clone, Debug)]
pub struct GroundPost {
    pub words: HashSet<String>,
    /// All lowercased terms (not only content words), for names.
    pub terms: HashSet<String>,
    pub numbers: HashSet<String>,
    /// Polarity and state-change groups it carries (see [`Claims::states`]).
    pub states: HashSet<&'static str>,
    /// The account (lowercased), when known.
    pub author: Option<String>,
    /// Near-duplicate key: retweets and copies of one post share it (one source, not several).
    pub dup: u64,
}

impl GroundPost {
    pub fn new(text: &str) -> GroundPost {
        GroundPost::by(text, None)
    }

    pub fn by(text: &str, author: Option<&str>) -> GroundPost {
        // As the model read it: without links and a retweet prefix.
        let clean = crate::prompt::prompt_text(text);
        GroundPost {
            words: content_words(&clean),
            terms: tidings_index::script::terms(&clean).into_iter().collect(),
            numbers: numbers_in(&clean).into_iter().collect(),
            states: states_in(&clean).into_iter().collect(),
            author: author.map(str::to_lowercase),
            dup: tidings_index::dedup::near_duplicate_key(text),
        }
    }

    fn has_name(&self, name: &str) -> bool {
        // A name can be several terms ("São" "Paulo" are two words; CJK names are bigrams).
        let parts = tidings_index::script::terms(name);
        !parts.is_empty() && parts.iter().all(|p| self.terms.contains(p))
    }
}

/// Share of `words` found in `post` (1 when the sentence has no content words).
fn word_share(words: &HashSet<String>, post: &GroundPost) -> f32 {
    if words.is_empty() {
        return 1.0;
    }
    words.iter().filter(|w| post.words.contains(*w)).count() as f32 / words.len() as f32
}

/// The verdict on one sentence.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// Posts (1-based) that support it: all its claims are in them together, and the best of
    /// them shares enough words.
    pub supported_by: Vec<usize>,
    /// Claims no candidate post holds.
    pub missing: Vec<String>,
    /// Whether the sentence makes any factual claim (names or numbers).
    pub factual: bool,
}

impl Verdict {
    pub fn supported(&self) -> bool {
        !self.supported_by.is_empty()
    }
}

/// Checks `sentence` against `posts` (1-based numbering): against the posts it cites when it
/// cites any, else against every post.
pub fn check(sentence: &str, posts: &[GroundPost]) -> Verdict {
    let c = claims(sentence);
    let words = content_words(&MARKER.replace_all(sentence, " "));
    let cited: Vec<usize> = cited_numbers(sentence)
        .into_iter()
        .filter(|n| (1..=posts.len()).contains(n))
        .collect();
    // A sentence that cites several posts may draw its claims from all of them; one that cites
    // nothing gets one citation, so that one post must hold every claim by itself.
    let uncited = cited.is_empty();
    let candidates: Vec<usize> = if cited.is_empty() {
        (1..=posts.len()).collect()
    } else {
        cited
    };
    let mut missing = Vec::new();
    for name in &c.names {
        if !candidates.iter().any(|n| posts[n - 1].has_name(name)) {
            missing.push(name.clone());
        }
    }
    if let Some(word) = unheard_opening(sentence, posts) {
        missing.push(word);
    }
    for number in &c.numbers {
        if !candidates
            .iter()
            .any(|n| posts[n - 1].numbers.contains(number))
        {
            missing.push(number.clone());
        }
    }
    for state in &c.states {
        if !candidates
            .iter()
            .any(|n| posts[n - 1].states.contains(state))
        {
            missing.push((*state).to_string());
        }
    }
    // The same share for every script: a sentence without names in an uncased script
    // (Japanese, Arabic: no capitals to find names by) is anchored by its words alone, and half
    // of them is already what a Japanese sentence keeps of its post once verb endings add
    // bigrams of their own.
    let min_share = MIN_WORD_SHARE;
    // A sentence that says nothing checkable ("posts report [1]", "Re-tweet [1].") is not
    // support for anything: it has fewer than two content words and no claim.
    let says_nothing = c.is_empty() && words.len() < 2;
    let supported_by = if missing.is_empty() && !says_nothing {
        // Posts that hold at least one of the claims (or any, without claims) and share
        // enough of the sentence's words.
        candidates
            .into_iter()
            .filter(|n| {
                let p = &posts[n - 1];
                let holds = if uncited {
                    c.names.iter().all(|x| p.has_name(x))
                        && c.numbers.iter().all(|x| p.numbers.contains(x))
                        && c.states.iter().all(|x| p.states.contains(x))
                } else {
                    c.is_empty()
                        || c.names.iter().any(|x| p.has_name(x))
                        || c.numbers.iter().any(|x| p.numbers.contains(x))
                        || c.states.iter().any(|x| p.states.contains(x))
                };
                holds && word_share(&words, p) >= min_share
            })
            .collect()
    } else {
        Vec::new()
    };
    Verdict {
        supported_by,
        missing,
        factual: !c.is_empty(),
    }
}

/// What the gate does with sentences that no post supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strictness {
    /// Drop them.
    Strict,
    /// Keep those that make no factual claim (the `fun` persona's asides).
    AllowAsides,
}

/// Independent sources among `supporters` (1-based): copies of one post count once, and so
/// do several posts of one account; posts without an author count one each.
pub fn independent_accounts(posts: &[GroundPost], supporters: &[usize]) -> usize {
    let mut dups: Vec<u64> = Vec::new();
    let mut accounts: Vec<&str> = Vec::new();
    let mut anonymous = 0;
    for n in supporters {
        let Some(p) = posts.get(n.wrapping_sub(1)) else {
            continue;
        };
        if dups.contains(&p.dup) {
            continue;
        }
        dups.push(p.dup);
        match &p.author {
            Some(a) if accounts.contains(&a.as_str()) => {}
            Some(a) => accounts.push(a),
            None => anonymous += 1,
        }
    }
    accounts.len() + anonymous
}

/// What single-source sentences get, before their citation.
pub const SINGLE_SOURCE_NOTE: &str = "(one account reports this; unconfirmed)";

/// Holds streamed answer text until each sentence ends, then passes it (citing its supporting
/// post when the model cited none, and marking what only one account says) or drops it.
pub struct SentenceGate {
    posts: Vec<GroundPost>,
    strictness: Strictness,
    held: String,
    pub kept: usize,
    pub dropped: Vec<String>,
    /// Per post number (index + 1): the most independent accounts any sentence citing it had.
    pub corroboration: Vec<usize>,
}

impl SentenceGate {
    pub fn new(posts: &[&str], strictness: Strictness) -> SentenceGate {
        SentenceGate::with_posts(
            posts.iter().map(|p| GroundPost::new(p)).collect(),
            strictness,
        )
    }

    pub fn with_posts(posts: Vec<GroundPost>, strictness: Strictness) -> SentenceGate {
        SentenceGate {
            corroboration: vec![0; posts.len()],
            posts,
            strictness,
            held: String::new(),
            kept: 0,
            dropped: Vec::new(),
        }
    }

    /// Feeds text; returns the checked sentences that end in it.
    pub fn push(&mut self, delta: &str) -> String {
        self.held.push_str(delta);
        let mut out = String::new();
        while let Some(end) = sentence_end(&self.held) {
            let sentence: String = self.held[..end].to_string();
            self.held.replace_range(..end, "");
            out.push_str(&self.judge(&sentence));
        }
        out
    }

    /// Checks what is still held at the end of the answer.
    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.held);
        self.judge(&rest)
    }

    fn judge(&mut self, sentence: &str) -> String {
        let body = sentence.trim();
        if body.is_empty() || body.chars().all(|c| !c.is_alphanumeric()) {
            // Whitespace and punctuation between sentences pass (they carry no claim), but only
            // after something was kept.
            return if self.kept > 0 {
                sentence.to_string()
            } else {
                String::new()
            };
        }
        let verdict = check(body, &self.posts);
        if verdict.supported() {
            self.kept += 1;
            // Who else says it: the same check against every post, without its markers.
            let everyone = check(&MARKER.replace_all(body, " "), &self.posts).supported_by;
            let mut supporters = verdict.supported_by.clone();
            supporters.extend(
                everyone
                    .iter()
                    .filter(|n| !verdict.supported_by.contains(n)),
            );
            let accounts = independent_accounts(&self.posts, &supporters).max(1);
            let cited = cited_numbers(body);
            for n in cited.iter().chain(verdict.supported_by.iter()) {
                if let Some(c) = self.corroboration.get_mut(n.wrapping_sub(1)) {
                    *c = (*c).max(accounts);
                }
            }
            let single =
                verdict.factual && accounts == 1 && !body.to_lowercase().contains("unconfirmed");
            let note = if single {
                Some(SINGLE_SOURCE_NOTE)
            } else {
                None
            };
            if cited.is_empty() {
                // Cite the best support, before the sentence's closing punctuation.
                return annotate(sentence, note, Some(verdict.supported_by[0]));
            }
            return annotate(sentence, note, None);
        }
        if self.strictness == Strictness::AllowAsides && !verdict.factual {
            self.kept += 1;
            return sentence.to_string();
        }
        self.dropped.push(body.to_string());
        String::new()
    }
}

/// `sentence` with `note` and ` [n]` inserted before its closing punctuation (the note goes
/// before the sentence's own citation markers, if it has some).
fn annotate(sentence: &str, note: Option<&str>, cite: Option<usize>) -> String {
    if note.is_none() && cite.is_none() {
        return sentence.to_string();
    }
    let trimmed = sentence.trim_end();
    let tail = &sentence[trimmed.len()..];
    let core = trimmed.trim_end_matches(['.', '!', '?', '。', '！', '？']);
    let punct = &trimmed[core.len()..];
    // Markers at the end of the core ("… closed [2][3]") stay after the note.
    let mut split = core.len();
    while let Some(m) = MARKER
        .find_iter(&core[..split])
        .last()
        .filter(|m| m.end() == core[..split].trim_end().len())
    {
        split = m.start();
    }
    let (words, markers) = core.split_at(split);
    let mut out = words.trim_end().to_string();
    if let Some(note) = note {
        out.push(' ');
        out.push_str(note);
    }
    if !markers.trim().is_empty() {
        out.push(' ');
        out.push_str(markers.trim());
    }
    if let Some(n) = cite {
        out.push_str(&format!(" [{n}]"));
    }
    format!("{out}{punct}{tail}")
}

/// Byte offset just past the first complete sentence in `text` (its end mark and the space
/// after it), if one is complete.
fn sentence_end(text: &str) -> Option<usize> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for (i, &(pos, c)) in chars.iter().enumerate() {
        let end = pos + c.len_utf8();
        match c {
            '\n' | '。' | '！' | '？' => return Some(end),
            '.' if crate::cite::is_abbreviation(text, pos) => {}
            '.' | '!' | '?' => {
                // Needs the next character to know ("5.9" is not an end); a citation marker
                // right after the mark belongs to the sentence ("… closed. [2]" is rare, but
                // "… closed [2]." is the norm). A full stop after an initial, a dotted acronym
                // or a title ("Donald J. Trump") ends nothing (see `cite::sentences`).
                match chars.get(i + 1) {
                    Some((_, n)) if n.is_whitespace() => return Some(end + n.len_utf8()),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    None
}
