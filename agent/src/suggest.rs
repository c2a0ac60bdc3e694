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
fn proper_phrases(text: &str) -> Vec<String> {
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
    out
}

/// Calendar words are capitalised but are not topics.
const CALENDAR: &[&str] = &[
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use tidings_index::PostId;

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
    }

    #[test]
    fn falls_back_to_generic_questions() {
        let q = related_questions("anything?", &[]);
        assert_eq!(q.len(), 3);
    }
}
