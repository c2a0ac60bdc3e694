//! Three follow-up questions, drawn from what the retrieved posts talk about that the question
//! did not: their hashtags, the accounts they mention, their most frequent topic words.
//! Deterministic and instant (no second model call), so every answer has them.

use crate::plan::topic_words;
use std::collections::HashMap;
use tidings_index::Post;

const GENERIC: &[&str] = &[
    "What are the most recent updates in the last hour?",
    "Which of these reports are confirmed by officials?",
    "How has this developed over the past day?",
];

/// Words too common in posts to make a good question topic.
const DULL: &[&str] = &[
    "rt", "http", "https", "amp", "via", "just", "like", "get", "got", "one", "now", "today",
    "new", "still", "live", "video", "photo", "pic", "watch", "breaking", "lol", "omg", "oh", "im",
    "u", "dont", "can't", "cant", "much", "many", "really", "here", "back", "go", "see", "good",
    "all", "out", "not", "but", "our", "my", "they", "them", "their", "his", "her", "he", "she",
    "we", "us", "been", "being", "after", "over", "into", "than", "then", "more", "most",
];

/// Runs of capitalised words ("Green Line", "Miller Street", "Riverton"): names of places,
/// people and organisations. A lone capitalised word opening a sentence is skipped (it is
/// usually just the first word).
pub(crate) fn proper_phrases(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut run: Vec<&str> = Vec::new();
    let mut run_starts_sentence = false;
    let mut sentence_start = true;
    let flush = |run: &mut Vec<&str>, starts: bool, out: &mut Vec<String>| {
        if !run.is_empty() && !(run.len() == 1 && starts) {
            out.push(run.join(" "));
        }
        run.clear();
    };
    for raw in text.split_whitespace() {
        let word = raw.trim_matches(|c: char| !c.is_alphanumeric());
        let capitalised = word.chars().count() >= 3
            && word.chars().next().is_some_and(char::is_uppercase)
            && !raw.starts_with(['#', '@', '$'])
            && !raw.contains("://");
        if capitalised {
            if run.is_empty() {
                run_starts_sentence = sentence_start;
            }
            run.push(word);
        } else {
            flush(&mut run, run_starts_sentence, &mut out);
        }
        sentence_start = raw.ends_with(['.', '!', '?', ':']);
        if sentence_start {
            flush(&mut run, run_starts_sentence, &mut out);
        }
    }
    flush(&mut run, run_starts_sentence, &mut out);
    // "The Miller Street" → "Miller Street": a leading article is not part of the name.
    out.into_iter()
        .map(|p| match p.split_once(' ') {
            Some((first, rest)) if ["The", "A", "An"].contains(&first) => rest.to_string(),
            _ => p,
        })
        .collect()
}

/// Calendar words are capitalised but are not topics.
pub(crate) const CALENDAR: &[&str] = &[
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "today",
    "tonight",
    "tomorrow",
    "yesterday",
];

/// Up to three follow-up questions for `question` given the posts put in front of the model.
pub fn related_questions(question: &str, posts: &[Post]) -> Vec<String> {
    let asked: Vec<String> = topic_words(question);
    let mut tags: HashMap<String, usize> = HashMap::new();
    let mut handles: HashMap<String, usize> = HashMap::new();
    let mut words: HashMap<String, usize> = HashMap::new();
    for post in posts {
        for t in &post.hashtags {
            let t = format!("#{}", t.trim_start_matches('#').to_lowercase());
            if !asked.contains(&t) {
                *tags.entry(t).or_default() += 1;
            }
        }
        for m in &post.mentions {
            let m = m.trim_start_matches('@').to_lowercase();
            if !asked.contains(&format!("@{m}")) {
                *handles.entry(m).or_default() += 1;
            }
        }
        let mut seen = std::collections::HashSet::new();
        for phrase in proper_phrases(&post.text) {
            let key = phrase.to_lowercase();
            if asked.iter().any(|a| key.split_whitespace().any(|w| w == a))
                || key.split_whitespace().all(|w| {
                    DULL.contains(&w)
                        || CALENDAR.contains(&w)
                        || crate::plan::topic_words(w).is_empty()
                })
                || !seen.insert(key)
            {
                continue;
            }
            *words.entry(phrase).or_default() += 1;
        }
    }
    let top = |m: HashMap<String, usize>| {
        let mut v: Vec<(String, usize)> = m.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.into_iter().map(|(k, _)| k).collect::<Vec<_>>()
    };
    let mut out: Vec<String> = Vec::new();
    if let Some(tag) = top(tags).into_iter().next() {
        out.push(format!("What are people saying about {tag}?"));
    }
    if let Some(h) = top(handles).into_iter().next() {
        out.push(format!("What has @{h} posted about this?"));
    }
    for w in top(words).into_iter().take(2) {
        if out.len() >= 3 {
            break;
        }
        out.push(format!("What is the latest on {w}?"));
    }
    for g in GENERIC {
        if out.len() >= 3 {
            break;
        }
        out.push((*g).to_string());
    }
    out.truncate(3);
    out
}

/// A topic many accounts post about in a window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trend {
    /// `#tag` or a name ("Green Line").
    pub label: String,
    /// Posts that mention it.
    pub posts: usize,
    /// Distinct accounts among them (posts without an author count as one each).
    pub authors: usize,
    /// A question to start a conversation with.
    pub question: String,
}

/// The topics most accounts post about in `posts` (hashtags and capitalised names), best first:
/// by distinct authors, then posts. A topic posted by a single account is not a trend.
pub fn trending(posts: &[Post], limit: usize) -> Vec<Trend> {
    use std::collections::HashSet;
    let mut seen: HashMap<String, (String, usize, HashSet<String>)> = HashMap::new();
    for (i, post) in posts.iter().enumerate() {
        let author = post.author.clone().unwrap_or_else(|| format!("anon-{i}"));
        let mut labels: Vec<String> = post
            .hashtags
            .iter()
            .map(|t| format!("#{}", t.trim_start_matches('#')))
            .collect();
        labels.extend(proper_phrases(&post.text).into_iter().filter(|p| {
            let key = p.to_lowercase();
            !key.split_whitespace().all(|w| {
                DULL.contains(&w) || CALENDAR.contains(&w) || crate::plan::topic_words(w).is_empty()
            })
        }));
        let mut once = HashSet::new();
        for label in labels {
            let key = label.to_lowercase();
            if !once.insert(key.clone()) {
                continue;
            }
            let entry = seen
                .entry(key)
                .or_insert_with(|| (label.clone(), 0, HashSet::new()));
            entry.1 += 1;
            entry.2.insert(author.clone());
        }
    }
    let mut out: Vec<Trend> = seen
        .into_values()
        .filter(|(_, _, authors)| authors.len() >= 2)
        .map(|(label, posts, authors)| {
            let question = if label.starts_with('#') {
                format!("What are people saying about {label}?")
            } else {
                format!("What is happening with {label}?")
            };
            Trend {
                label,
                posts,
                authors: authors.len(),
                question,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.authors
            .cmp(&a.authors)
            .then(b.posts.cmp(&a.posts))
            .then_with(|| a.label.cmp(&b.label))
    });
    out.truncate(limit);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use proptest::prelude::*;
    use tidings_index::PostId;

    proptest! {
        /// Any script: at most three follow-ups, none empty; trends within the limit, each
        /// with a label and a question.
        #[test]
        fn any_script_follow_ups_and_trends(
            question in tidings_index::testing::any_text(),
            posts in tidings_index::testing::any_posts(12),
        ) {
            let related = related_questions(&question, &posts);
            prop_assert!(related.len() <= 3);
            prop_assert!(related.iter().all(|q| !q.trim().is_empty()));
            let trends = trending(&posts, 5);
            prop_assert!(trends.len() <= 5);
            for t in trends {
                prop_assert!(!t.label.is_empty() && !t.question.is_empty());
            }
            for p in &posts {
                let _ = proper_phrases(&p.text);
            }
        }
    }

    fn post(text: &str, tags: &[&str], mentions: &[&str]) -> Post {
        Post {
            id: PostId::parse("t:1").unwrap(),
            source: "test".into(),
            author: None,
            author_name: None,
            text: text.into(),
            created_at: Utc::now(),
            ingested_at: Utc::now(),
            lang: None,
            url: None,
            refs: Default::default(),
            hashtags: tags.iter().map(|s| s.to_string()).collect(),
            mentions: mentions.iter().map(|s| s.to_string()).collect(),
            links: vec![],
            engagement: Default::default(),
            labels: Default::default(),
        }
    }

    #[test]
    fn three_questions_from_the_posts() {
        let posts = vec![
            post(
                "Evacuation ordered in Lyons as the river rises #cofloods",
                &["cofloods"],
                &["bouldercounty"],
            ),
            post(
                "Lyons evacuation continues, river still rising #cofloods",
                &["cofloods"],
                &[],
            ),
        ];
        let q = related_questions("What is happening in Boulder?", &posts);
        assert_eq!(q.len(), 3);
        assert_eq!(q[0], "What are people saying about #cofloods?");
        assert_eq!(q[1], "What has @bouldercounty posted about this?");
        assert_eq!(q[2], "What is the latest on Lyons?");
    }

    #[test]
    fn proper_phrases_are_runs_of_capitalised_words() {
        assert_eq!(
            proper_phrases(
                "Green Line trains are suspended between Central and Riverside. Shuttle buses run."
            ),
            vec!["Green Line", "Central", "Riverside"]
        );
        assert_eq!(
            proper_phrases("Water covers The Miller Street bridge."),
            vec!["Miller Street"]
        );
    }

    #[test]
    fn trends_need_several_accounts() {
        let mut a = post(
            "Flooding on Miller Street tonight #rivertonflood",
            &["rivertonflood"],
            &[],
        );
        a.author = Some("a".into());
        let mut b = post(
            "Miller Street is closed, water everywhere #RivertonFlood",
            &["RivertonFlood"],
            &[],
        );
        b.author = Some("b".into());
        let mut c = post("My cat Felix says hi", &[], &[]);
        c.author = Some("c".into());
        let mut d = post("Felix again", &[], &[]);
        d.author = Some("c".into());
        let t = trending(&[a, b, c, d], 5);
        let labels: Vec<&str> = t.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, vec!["#rivertonflood", "Miller Street"]);
        assert_eq!(t[0].authors, 2);
        assert_eq!(
            t[0].question,
            "What are people saying about #rivertonflood?"
        );
        assert_eq!(t[1].question, "What is happening with Miller Street?");
    }

    #[test]
    fn falls_back_to_generic_questions() {
        let q = related_questions("anything?", &[]);
        assert_eq!(q.len(), 3);
    }
}
