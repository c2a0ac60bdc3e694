//! Retrieval: plan → search (widening an implicit window while too few relevant posts turn
//! up) → relevance and answerability checks → posts carried over from earlier answers.

use super::{learned_applies, Agent, AgentError, AskRequest, Retrieval};
use crate::cite;
use crate::model::Role;
use crate::plan::{self, Plan};
use crate::when::TimeWindow;
use chrono::{DateTime, Utc};
use std::time::Instant;
use tidings_index::{Post, SearchFilter, SearchHit, SearchMode, SearchRequest};

/// A link a reader can open for a post: its own URL, or one built from a known id scheme.
pub fn post_url(post: &Post) -> Option<String> {
    if let Some(u) = &post.url {
        return Some(u.clone());
    }
    let id = post.id.as_str();
    if let Some(rest) = id.strip_prefix("x:") {
        if rest.chars().all(|c| c.is_ascii_digit()) {
            return Some(format!("https://x.com/i/status/{rest}"));
        }
    }
    if let Some(rest) = id.strip_prefix("bsky:at://") {
        // at://did/app.bsky.feed.post/rkey
        let parts: Vec<&str> = rest.split('/').collect();
        if parts.len() == 3 && parts[1] == "app.bsky.feed.post" {
            return Some(format!(
                "https://bsky.app/profile/{}/post/{}",
                parts[0], parts[2]
            ));
        }
    }
    None
}

/// `word` without a plural or verb ending, for matching "floods" to "flooding".
pub(super) fn light_stem(word: &str) -> &str {
    for suffix in ["ing", "ies", "es", "ed", "s"] {
        if let Some(stem) = word.strip_suffix(suffix) {
            if stem.chars().count() >= 3 {
                return stem;
            }
        }
    }
    word
}

/// Share of the topic words of `query` (the plan's search words) found in `text`, compared
/// light-stemmed. Scripts without spaces (CJK) are matched by bigrams, which do not measure
/// coverage well: there any match counts (1.0), as does an empty query.
pub(super) fn coverage(query: &str, text: &str) -> f32 {
    if query.chars().any(tidings_index::script::is_cjk) {
        return 1.0;
    }
    let asked: std::collections::HashSet<String> = cite::content_words(query)
        .iter()
        .map(|w| light_stem(w).to_string())
        .collect();
    if asked.is_empty() {
        return 1.0;
    }
    let have: std::collections::HashSet<String> = cite::content_words(text)
        .iter()
        .map(|w| light_stem(w).to_string())
        .collect();
    asked.iter().filter(|w| have.contains(*w)).count() as f32 / asked.len() as f32
}

/// Whether `post` names one of `anchors` (its text, hashtags, mentions or author), as whole
/// terms: every term of an anchor in the post's terms ("emilia-romagna" → emilia, romagna).
pub(super) fn mentions_any(post: &Post, anchors: &[String]) -> bool {
    let mut text = post.text.to_lowercase();
    for extra in post.hashtags.iter().chain(&post.mentions) {
        text.push(' ');
        text.push_str(&extra.to_lowercase());
    }
    for name in post.author.iter().chain(&post.author_name) {
        text.push(' ');
        text.push_str(&name.to_lowercase());
    }
    let terms: std::collections::HashSet<String> =
        tidings_index::script::terms(&text).into_iter().collect();
    anchors.iter().any(|a| {
        let wanted = tidings_index::script::terms(a);
        !wanted.is_empty() && wanted.iter().all(|t| terms.contains(t))
    })
}

/// Appends the earlier posts that still apply (inside `window`, sharing a query word, not
/// already found) until `plan.max_results` posts are in hand.
pub(super) fn carry_over(
    hits: &mut Vec<SearchHit>,
    earlier: &[Post],
    plan: &Plan,
    window: &TimeWindow,
) {
    let words: Vec<String> = plan
        .query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3)
        .map(str::to_lowercase)
        .collect();
    if words.is_empty() {
        return;
    }
    for post in earlier {
        if hits.len() >= plan.max_results {
            break;
        }
        if post.created_at < window.from
            || post.created_at > window.to
            || hits.iter().any(|h| h.post.id == post.id)
        {
            continue;
        }
        let text = post.text.to_lowercase();
        let shares = text
            .split(|c: char| !c.is_alphanumeric())
            .any(|t| words.iter().any(|w| w == t));
        if shares {
            hits.push(SearchHit {
                post: post.clone(),
                score: 0.0,
                breakdown: Default::default(),
                duplicates: Vec::new(),
            });
        }
    }
}

impl Agent {
    /// Plans and retrieves, widening an implicit window step by step while fewer than
    /// `min_relevant` relevant posts turn up.
    pub async fn retrieve(
        &self,
        request: &AskRequest,
        as_of: DateTime<Utc>,
    ) -> Result<Retrieval, AgentError> {
        let started = Instant::now();
        let earlier: Vec<String> = request
            .history
            .iter()
            .filter(|m| m.role == Role::User)
            .map(|m| m.content.clone())
            .collect();
        let mut options = request.search.clone();
        if options.max_results.is_none() {
            // Small local models lose the thread with many posts: each says how many focus it.
            options.max_results = self.model.preferred_posts();
        }
        let plan = plan::plan(&request.question, &earlier, as_of, &options);
        if let Some(posts) = &request.fixed_posts {
            let window = match (
                posts.iter().map(|p| p.created_at).min(),
                posts.iter().map(|p| p.created_at).max(),
            ) {
                (Some(from), Some(to)) if from < to => {
                    TimeWindow::between(from, to, plan.window.label.clone())
                }
                _ => plan.window.clone(),
            };
            return Ok(Retrieval {
                window: window.clone(),
                widest: window,
                plan,
                widened_from: None,
                posts: posts
                    .iter()
                    .map(|p| SearchHit {
                        post: p.clone(),
                        score: 1.0,
                        breakdown: Default::default(),
                        duplicates: Vec::new(),
                    })
                    .collect(),
                searched: true,
                degraded: None,
                took: started.elapsed(),
            });
        }
        if !plan.search {
            return Ok(Retrieval {
                window: plan.window.clone(),
                widest: plan.window.clone(),
                plan,
                widened_from: None,
                posts: Vec::new(),
                searched: false,
                degraded: None,
                took: started.elapsed(),
            });
        }
        // Widen while too little is found; keep the narrowest window that found the most.
        let mut window = plan.window.clone();
        let mut best: Option<(TimeWindow, Vec<SearchHit>, Option<String>)> = None;
        let mut steps = 0;
        loop {
            let results = self
                .search
                .search(self.search_request(&plan, &window, as_of))
                .await?;
            let relevant: Vec<SearchHit> = results
                .hits
                .into_iter()
                .filter(|h| self.is_relevant(h, &plan))
                .collect();
            let relevant = if self.answerable(&relevant, &plan) {
                relevant
            } else {
                Vec::new()
            };
            let found = relevant.len();
            if best.as_ref().is_none_or(|(_, b, _)| found > b.len()) {
                best = Some((window.clone(), relevant, results.degraded));
            }
            if found >= self.config.min_relevant || steps >= self.config.max_widen_steps {
                break;
            }
            match window.widen(as_of) {
                Some(wider) => {
                    window = wider;
                    steps += 1;
                }
                None => break,
            }
        }
        let widest = window.clone();
        let (window, mut relevant, degraded) = best.unwrap_or((window, Vec::new(), None));
        let first = (window != plan.window).then(|| plan.window.clone());
        // Quoted phrases: posts holding one come first.
        if !plan.phrases.is_empty() {
            relevant.sort_by_key(|h| {
                let t = h.post.text.to_lowercase();
                !plan.phrases.iter().any(|p| t.contains(p.as_str()))
            });
        }
        relevant.truncate(plan.max_results);
        carry_over(&mut relevant, &request.earlier_posts, &plan, &window);
        Ok(Retrieval {
            plan,
            window,
            widest,
            widened_from: first,
            posts: relevant,
            searched: true,
            degraded,
            took: started.elapsed(),
        })
    }

    pub(super) fn search_request(
        &self,
        plan: &Plan,
        window: &TimeWindow,
        as_of: DateTime<Utc>,
    ) -> SearchRequest {
        let mut request = SearchRequest::new(plan.query.clone(), as_of.timestamp_millis());
        request.semantic_query = Some(plan.semantic.clone());
        request.filter = SearchFilter {
            from_ms: Some(window.from.timestamp_millis()),
            to_ms: Some(window.to.timestamp_millis()),
            authors: plan.authors.clone(),
            exclude_authors: plan.exclude_authors.clone(),
            sources: plan.sources.clone(),
            langs: plan.langs.clone(),
        };
        request.half_life = Some(window.half_life);
        // Ask for more than needed: irrelevant dense neighbours are dropped afterwards.
        request.limit = (plan.max_results * 2).max(10);
        request.mode = SearchMode::Hybrid;
        request
    }

    /// Whether the best of `relevant` is likely enough to be what the question is about
    /// (see `min_answerability` and [`learned_applies`]).
    pub(super) fn answerable(&self, relevant: &[SearchHit], plan: &Plan) -> bool {
        if relevant.is_empty() || !learned_applies(plan) {
            return true;
        }
        let mut best = None::<f32>;
        for hit in relevant {
            match hit.breakdown.answers {
                Some(p) => best = Some(best.map_or(p, |b| b.max(p))),
                None => return true,
            }
        }
        best.is_none_or(|b| b >= self.config.min_answerability)
    }

    pub(super) fn is_relevant(&self, hit: &SearchHit, plan: &Plan) -> bool {
        if plan.query.trim().is_empty() {
            return true;
        }
        // A question that names something is addressed only by posts that name it too.
        if !plan.anchors.is_empty() && !mentions_any(&hit.post, &plan.anchors) {
            return false;
        }
        let learned = learned_applies(plan);
        // The question's rarest word (a name typed in lower case, a place) is not stood in for
        // by its common ones: a post without it counts only as a close paraphrase.
        let lacks_rarest = learned && hit.breakdown.lacks_rarest == Some(true);
        if learned
            && !lacks_rarest
            && hit
                .breakdown
                .answers
                .is_some_and(|p| p >= self.config.sure_answerability)
        {
            return true;
        }
        let dense = hit.breakdown.dense.unwrap_or(0.0);
        // A close paraphrase counts whatever words it uses.
        if dense >= self.config.strong_dense_score {
            return true;
        }
        if lacks_rarest {
            return false;
        }
        // Otherwise the post must carry enough of what was asked: sharing one common word
        // with a question ("awesome", "photo") is not addressing it.
        let covered = coverage(&plan.query, &hit.post.text) >= self.config.min_coverage;
        if hit.breakdown.bm25.is_some() {
            return covered;
        }
        covered && dense >= self.config.min_dense_score
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::SearchOptions;

    #[test]
    fn a_post_addresses_a_question_when_it_covers_its_words() {
        assert_eq!(light_stem("flooding"), "flood");
        assert_eq!(light_stem("floods"), "flood");
        assert_eq!(light_stem("gas"), "gas");
        let q = "kaine took hundreds thousands dollars gifts";
        assert!(
            coverage(
                q,
                "Tim Kaine took thousands of dollars in gifts as governor"
            ) >= 0.5
        );
        assert!(coverage("awesome sight", "An awesome gif of the meteor") < 0.6);
        assert!(coverage("awesome sight", "What an awesome sight over the bay") >= 0.99);
        assert_eq!(coverage("", "anything"), 1.0);
        assert_eq!(coverage("東京 地震", "大阪の天気"), 1.0);
    }

    #[test]
    fn earlier_posts_carry_over_when_they_still_apply() {
        let as_of = "2024-05-10T18:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let post = |id: &str, text: &str, hours_ago: i64| {
            let mut p = crate::suggest_test_post(id);
            p.text = text.into();
            p.created_at = as_of - chrono::Duration::hours(hours_ago);
            p
        };
        let earlier = vec![
            post("t:1", "The Miller Street bridge is closed", 2),
            post("t:2", "The Miller Street bridge closed last week", 24 * 8),
            post("t:3", "Schools are closed tomorrow", 1),
        ];
        let plan = plan::plan(
            "Is the bridge still closed on Miller Street?",
            &[],
            as_of,
            &SearchOptions::default(),
        );
        let mut hits = Vec::new();
        carry_over(&mut hits, &earlier, &plan, &plan.window);
        let ids: Vec<String> = hits.iter().map(|h| h.post.id.to_string()).collect();
        // t:2 is outside the 24 h window; the bridge post shares the question's words.
        assert!(ids.contains(&"t:1".to_string()), "{ids:?}");
        assert!(!ids.contains(&"t:2".to_string()), "{ids:?}");
        // Nothing twice, and never more than the plan allows.
        carry_over(&mut hits, &earlier, &plan, &plan.window);
        let again: Vec<String> = hits.iter().map(|h| h.post.id.to_string()).collect();
        assert_eq!(ids, again);
        assert!(hits.len() <= plan.max_results);
    }

    #[test]
    fn urls_from_known_id_schemes() {
        let mut p = crate::suggest_test_post("x:123");
        assert_eq!(post_url(&p).as_deref(), Some("https://x.com/i/status/123"));
        p.id = tidings_index::PostId::parse("bsky:at://did:plc:abc/app.bsky.feed.post/3k").unwrap();
        assert_eq!(
            post_url(&p).as_deref(),
            Some("https://bsky.app/profile/did:plc:abc/post/3k")
        );
        p.url = Some("https://example.org/p".into());
        assert_eq!(post_url(&p).as_deref(), Some("https://example.org/p"));
    }
}
