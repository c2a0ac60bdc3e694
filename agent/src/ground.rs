//! Grounding: whether each sentence of an answer says only what a post it cites says.
//!
//! A valid citation marker is not grounding. A sentence is *supported* by a post when every
//! claim it makes — names (capitalised words in cased scripts), numbers, `#tags` and
//! `@handles` — appears in that post, and enough of its other content words do too (CJK runs
//! compare as bigrams). A sentence that cites posts must be supported by the union of the posts
//! it cites for its claims and by one of them for its words; a sentence that cites nothing is
//! checked against every post given and, when one supports it, gets that citation. A number
//! must also be said of what the sentence says it of: one a post says in another clause than
//! the words the sentence puts around it ("the bridge is closed until 9pm" of "Flood warning
//! until 9pm. The bridge is closed.") is not supported (`attach`). A sentence
//! its own citations do not support, but other given posts do (a model that combined two posts
//! and cited one, or cited the wrong post), is re-cited to those posts rather than dropped.
//!
//! [`SentenceGate`] applies this while the answer streams: text is held until a sentence ends,
//! then passed (with its citations) or dropped. [`extractive`] is the fallback when nothing a
//! model wrote survives: the most corroborated statements from the posts, quoted, each cited.
//!
//! Files: `attach` (what a number is said of), `claims` (what a sentence claims), `extractive` (the quoted fallback and the
//! primary source), `tests`.

mod attach;
mod claims;
mod extractive;
#[cfg(test)]
mod tests;

pub use claims::{claims, state_group, Claims};
pub use extractive::{already_says, extractive, looks_like_injection, primary, Extract};

use crate::cite::{cited_numbers, content_words};
use claims::{numbers_in, states_in, unheard_opening, MARKER};
use regex::Regex;
use std::collections::HashSet;
use std::sync::LazyLock;

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
    /// The text as the model read it (links and a retweet prefix removed, spaces collapsed).
    pub shown: String,
    /// The account as written, for quoting it.
    pub handle: Option<String>,
    /// Its clauses, to tell what each number is said of (see `attach`).
    clauses: Vec<attach::Clause>,
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
            handle: author.map(str::to_string),
            clauses: attach::clauses(&clean),
            shown: clean,
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
    /// Claims no candidate post holds, or holds only said of something else (a number the
    /// sentence takes from another clause of its post, see `attach`).
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
    let plain = MARKER.replace_all(sentence, " ");
    let said_else = |number: &str, among: &[usize]| {
        let clauses: Vec<&[attach::Clause]> = among
            .iter()
            .map(|n| posts[n - 1].clauses.as_slice())
            .collect();
        attach::said_of_something_else(&plain, number, &clauses)
    };
    for number in &c.numbers {
        if !candidates
            .iter()
            .any(|n| posts[n - 1].numbers.contains(number))
        {
            missing.push(number.clone());
        } else if !uncited && said_else(number, &candidates) {
            // The cited posts say it, but of something else.
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
                        && c.numbers
                            .iter()
                            .all(|x| p.numbers.contains(x) && !said_else(x, &[*n]))
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
    /// Kept sentences whose citations were replaced by the posts that support them.
    pub recited: usize,
    /// Kept sentences that were a post of the prompt copied with its header, now quoted.
    pub quoted: usize,
    /// Whether such a copy passes as a quote of its post (answers to a searched question, where
    /// it is the model's pick among ranked posts) or is dropped like any unsupported sentence
    /// (a summary of given posts, where the extractive fallback shows the story's main posts).
    pub quote_copies: bool,
    pub dropped: Vec<String>,
    /// Per post number (index + 1): the most independent accounts any sentence citing it had.
    pub corroboration: Vec<usize>,
    /// A quoted copy of a post, held while the model's next sentences go on copying the same
    /// post word for word, so that a copied post of several sentences is one quote.
    open_quote: Option<OpenQuote>,
}

/// A quote of post `n` not yet passed on: its words so far and what followed them (spaces).
struct OpenQuote {
    n: usize,
    words: String,
    tail: String,
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
            recited: 0,
            quoted: 0,
            quote_copies: false,
            dropped: Vec::new(),
            open_quote: None,
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
        let out = self.judge(&rest);
        out + &self.close_quote()
    }

    fn judge(&mut self, sentence: &str) -> String {
        let Some(open) = &mut self.open_quote else {
            return self.judge_one(sentence);
        };
        let body = sentence.trim();
        if body.chars().all(|c| !c.is_alphanumeric()) && cited_numbers(body).is_empty() {
            open.tail.push_str(sentence);
            return String::new();
        }
        let post = &self.posts[open.n - 1].shown;
        let words = CITE_MARK
            .replace_all(body, "")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let joined = [" ", ""]
            .into_iter()
            .flat_map(|gap| {
                let base = format!("{}{gap}", open.words);
                [
                    format!("{base}{words}"),
                    format!("{base}{}", words.trim_end_matches(['.', '。'])),
                ]
            })
            // As for the copy's start: no words that read as a citation marker.
            .find(|w| {
                !words.is_empty() && post.contains(w.as_str()) && cited_numbers(w).is_empty()
            });
        match joined {
            Some(longer) => {
                // The copy goes on: the same post, word for word.
                open.words = longer;
                open.tail = sentence[sentence.trim_end().len()..].to_string();
                String::new()
            }
            None => self.close_quote() + &self.judge_one(sentence),
        }
    }

    fn judge_one(&mut self, sentence: &str) -> String {
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
        if self.quote_copies {
            if let Some((n, quote)) = echoed_post(body, &self.posts) {
                self.kept += 1;
                self.quoted += 1;
                self.open_quote = Some(OpenQuote {
                    n,
                    words: quote,
                    tail: sentence[sentence.trim_end().len()..].to_string(),
                });
                return String::new();
            }
        }
        let verdict = check(body, &self.posts);
        if verdict.supported() {
            let cited = cited_numbers(body);
            // The model cited nothing: cite the best support.
            let add: Vec<usize> = if cited.is_empty() {
                vec![verdict.supported_by[0]]
            } else {
                Vec::new()
            };
            return self.keep(sentence, body, &verdict, &cited, &add);
        }
        if let Some(set) = recite(body, &self.posts) {
            // Right, but citing the wrong post or too few: the sentence without its markers,
            // cited by the posts that support it.
            let bare = CITE_MARK.replace_all(sentence, "").into_owned();
            let marked = format!("{} {}", bare.trim(), marks(&set));
            let verdict = check(&marked, &self.posts);
            if verdict.supported() {
                self.recited += 1;
                return self.keep(&bare, bare.trim(), &verdict, &set, &set);
            }
        }
        if self.strictness == Strictness::AllowAsides && !verdict.factual {
            self.kept += 1;
            return sentence.to_string();
        }
        self.dropped.push(body.to_string());
        String::new()
    }

    /// Passes the open quote on, if any: the model's copy of post `n`'s words as a quote of
    /// that post.
    fn close_quote(&mut self) -> String {
        let Some(OpenQuote { n, words, tail }) = self.open_quote.take() else {
            return String::new();
        };
        // Counted as for the extractive answer's quotes: other accounts' posts that carry most
        // of this one's words.
        let authors: Vec<Option<&str>> = self.posts.iter().map(|p| p.author.as_deref()).collect();
        let accounts = 1 + extractive::corroborators(n - 1, &self.posts, &authors)
            .0
            .len();
        if let Some(c) = self.corroboration.get_mut(n - 1) {
            *c = (*c).max(accounts);
        }
        let who = self.posts[n - 1]
            .handle
            .as_deref()
            .map_or_else(|| "A post".to_string(), |h| format!("@{h}"));
        let note = if accounts == 1 {
            format!(" {SINGLE_SOURCE_NOTE}")
        } else {
            String::new()
        };
        format!("{who}: “{words}”{note} [{n}]{tail}")
    }

    /// Passes a supported sentence: counts who else says it, marks what one account alone
    /// says, and adds the markers `add` (the sentence's citations are then `cited`).
    fn keep(
        &mut self,
        sentence: &str,
        body: &str,
        verdict: &Verdict,
        cited: &[usize],
        add: &[usize],
    ) -> String {
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
        annotate(sentence, note, add)
    }
}

/// Citation markers as [`crate::cite::CitationFilter`] leaves them (`[2]`), with the space
/// before each.
static CITE_MARK: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\s*\[\d{1,3}\]").expect("a valid built-in regex"));

fn marks(numbers: &[usize]) -> String {
    numbers.iter().map(|n| format!("[{n}]")).collect()
}

/// A small model's answer often opens with a post of the prompt copied with its header
/// (`[3] @nws (22 hours ago): 12 confirmed dead, …`): it picked post 3 as the answer, but the
/// header's age is no claim of the post, so the sentence fails the check. When what follows
/// the header is that post's own words, verbatim (two content words at least, and not a post
/// that looks like an injection), returns the post's number and the words, to be quoted.
fn echoed_post(sentence: &str, posts: &[GroundPost]) -> Option<(usize, String)> {
    static HEADER: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^\[(\d{1,3})\]\s*(?:@[^\s()]{1,64}\s*)?\([^()\n]{1,40}\)\s*:\s*")
            .expect("a valid built-in regex")
    });
    let header = HEADER.captures(sentence)?;
    let n: usize = header[1].parse().ok()?;
    let post = posts.get(n.checked_sub(1)?)?;
    let rest = CITE_MARK.replace_all(&sentence[header.get(0)?.end()..], "");
    let words = rest.split_whitespace().collect::<Vec<_>>().join(" ");
    if content_words(&words).len() < 2 || extractive::looks_like_injection(&post.shown) {
        return None;
    }
    // The model may end the copy with a full stop the post does not have.
    let quote = [words.as_str(), words.trim_end_matches(['.', '。'])]
        .into_iter()
        .find(|w| !w.is_empty() && post.shown.contains(*w))?
        .to_string();
    // A post whose own words read as a citation marker ("[2, 3]") is not quoted: the marker
    // would cite another post from inside the quote.
    if !cited_numbers(&quote).is_empty() {
        return None;
    }
    Some((n, quote))
}

/// The given posts that support a sentence its own citations do not: a model that combines
/// two posts' facts often cites one of them ("40 people died in the West Texas explosion [2]",
/// where "West" is only in post 3), or cites the wrong one. One post that supports the whole
/// sentence by itself wins; otherwise the cited posts plus, for each name, number or state they
/// lack, the first given post that holds it. `None` when the sentence cites nothing (it was
/// already checked against every post) or no post holds a claim. The caller checks the set.
fn recite(sentence: &str, posts: &[GroundPost]) -> Option<Vec<usize>> {
    let cited: Vec<usize> = cited_numbers(sentence)
        .into_iter()
        .filter(|n| (1..=posts.len()).contains(n))
        .collect();
    if cited.is_empty() {
        return None;
    }
    let bare = CITE_MARK.replace_all(sentence, "");
    if let Some(&n) = check(&bare, posts).supported_by.first() {
        return Some(vec![n]);
    }
    let c = claims(&bare);
    let mut set = cited.clone();
    let mut cover = |holds: &dyn Fn(&GroundPost) -> bool| -> Option<()> {
        if !set.iter().any(|n| holds(&posts[n - 1])) {
            set.push((1..=posts.len()).find(|n| holds(&posts[n - 1]))?);
        }
        Some(())
    };
    for name in &c.names {
        cover(&|p| p.has_name(name))?;
    }
    for number in &c.numbers {
        cover(&|p| p.numbers.contains(number))?;
    }
    for state in &c.states {
        cover(&|p| p.states.contains(state))?;
    }
    (set.len() > cited.len()).then_some(set)
}

/// `sentence` with `note` and ` [n]` inserted before its closing punctuation (the note goes
/// before the sentence's own citation markers, if it has some).
fn annotate(sentence: &str, note: Option<&str>, cite: &[usize]) -> String {
    if note.is_none() && cite.is_empty() {
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
    if !cite.is_empty() {
        out.push(' ');
        out.push_str(&marks(cite));
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
