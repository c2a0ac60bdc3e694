//! The extractive parts of an answer: the answer made of quoted posts when nothing the model
//! wrote is supported, the closest post quoted after the model's sentences, and the main
//! reports of an overview with how many accounts carry each.

use crate::ground;
use tidings_index::Post;

/// The answer when nothing the model wrote is supported by the posts: the most corroborated
/// statements, quoted briefly and cited, with how many accounts carry each.
///
/// Here and below, `accounts` holds per post number (index + 1) the most independent accounts
/// a statement citing it has (`Citation::corroboration`); a quoted post's entry is raised to
/// the count its line states, so the API says what the answer's text says.
pub(super) fn extractive_answer(posts: &[Post], question: &str, accounts: &mut [usize]) -> String {
    let lines = extract_lines(posts, question, "", accounts);
    if lines.is_empty() {
        return String::new();
    }
    format!("Here is what the posts say:\n{lines}")
}

/// Up to three of `posts` quoted as list items (see [`ground::extractive`]), leaving out those
/// `answer` already says.
pub(super) fn extract_lines(
    posts: &[Post],
    question: &str,
    answer: &str,
    accounts: &mut [usize],
) -> String {
    let texts: Vec<&str> = posts.iter().map(|p| p.text.as_str()).collect();
    let authors: Vec<Option<&str>> = posts.iter().map(|p| p.author.as_deref()).collect();
    ground::extractive(&texts, &authors, question, 3)
        .iter()
        .filter(|e| answer.is_empty() || ground::already_says(answer, &e.quote) < REPEATS)
        .map(|e| format!("- {}\n", extract_line(posts, e, accounts)))
        .collect()
}

/// `@who: “quote” (backing) [n]`.
pub(super) fn extract_line(posts: &[Post], e: &ground::Extract, accounts: &mut [usize]) -> String {
    if let Some(a) = accounts.get_mut(e.number.wrapping_sub(1)) {
        *a = (*a).max(1 + e.corroborated_by.len());
    }
    let who = posts[e.number - 1]
        .author
        .as_deref()
        .map_or_else(|| "A post".to_string(), |a| format!("@{a}"));
    let backing = match e.corroborated_by.len() {
        0 => " (one account; unconfirmed)".to_string(),
        1 => " (another account says the same)".to_string(),
        n => format!(" ({n} other accounts say the same)"),
    };
    format!("{who}: “{}”{backing} [{}]", e.quote, e.number)
}

/// The primary source quoted: the best-ranked post's part closest to `question` (see
/// [`ground::primary`]), so a reader sees the source's own words next to the summary (a small
/// model often leaves out the one detail that was asked for). Empty when the answer already
/// says most of it.
pub(super) fn closest_post_line(
    posts: &[Post],
    question: &str,
    answer: &str,
    accounts: &mut [usize],
) -> String {
    let texts: Vec<&str> = posts.iter().map(|p| p.text.as_str()).collect();
    let authors: Vec<Option<&str>> = posts.iter().map(|p| p.author.as_deref()).collect();
    let Some(best) = ground::primary(&texts, &authors, question) else {
        return String::new();
    };
    if ground::already_says(answer, &best.quote) >= REPEATS {
        return String::new();
    }
    format!(
        "{}Closest post: {}",
        paragraph_gap(answer),
        extract_line(posts, &best, accounts)
    )
}

/// The main reports for an overview question ("What is happening in Boston?", see
/// [`Plan::overview`]): up to three distinct posts that most accounts carry, each quoted
/// briefly and cited, leaving out what `answer` already says. One closest post would show a
/// single account's view of a story many are telling.
pub(super) fn main_reports(posts: &[Post], answer: &str, accounts: &mut [usize]) -> String {
    // No question words: every given post already addresses the question, so the ranking is
    // by how many accounts carry a statement and how central it is.
    let lines = extract_lines(posts, "", answer, accounts);
    if lines.is_empty() {
        return String::new();
    }
    format!("{}Main reports:\n{lines}", paragraph_gap(answer))
}

/// Share of a quote's words an answer may hold before quoting it would only repeat it.
pub(super) const REPEATS: f32 = 0.8;

/// What to put after `text` so that what follows starts a paragraph of its own.
pub(super) fn paragraph_gap(text: &str) -> &'static str {
    if text.is_empty() || text.ends_with("\n\n") {
        ""
    } else if text.ends_with('\n') {
        "\n"
    } else {
        "\n\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_follows_the_answer_starts_one_paragraph() {
        assert_eq!(paragraph_gap("Closed [1]."), "\n\n");
        assert_eq!(paragraph_gap("閉鎖 [1]。\n"), "\n");
        assert_eq!(paragraph_gap("閉鎖 [1]。\n\n"), "");
        assert_eq!(paragraph_gap(""), "");
    }

    #[test]
    fn an_overview_shows_the_reports_most_accounts_carry() {
        let post = |id: &str, author: &str, text: &str| {
            let mut p = crate::suggest_test_post(id);
            p.text = text.into();
            p.author = Some(author.into());
            p
        };
        let posts = vec![
            post("t:1", "a", "so scary, praying for Boston"),
            post(
                "t:2",
                "b",
                "Two explosions at the Boston Marathon finish line, many injured",
            ),
            post(
                "t:3",
                "c",
                "Explosions at the Boston Marathon finish line: many injured",
            ),
            post(
                "t:4",
                "d",
                "Boston police: a third device found near the JFK Library",
            ),
            post(
                "t:5",
                "e",
                "BREAKING two explosions at Boston Marathon finish line, many injured",
            ),
        ];
        let mut accounts = vec![0; posts.len()];
        let out = main_reports(
            &posts,
            "Posts report explosions in Boston [2].",
            &mut accounts,
        );
        assert!(out.starts_with("\n\nMain reports:\n- @"), "{out}");
        let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("- ")).collect();
        // The story three accounts carry comes first, quoted once; then the other report.
        assert!(
            lines[0].contains("finish line") && lines[0].contains("2 other accounts say the same"),
            "{out}"
        );
        assert_eq!(
            lines.iter().filter(|l| l.contains("finish line")).count(),
            1,
            "{out}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains("JFK Library") && l.ends_with("[4]")),
            "{out}"
        );
        // The citations say what the lines say: the quoted story three accounts carry, the
        // JFK report one; the copies folded into the quoted line are left as they were.
        let quoted: usize = lines[0]
            .rsplit('[')
            .next()
            .and_then(|n| n.trim_end_matches(']').parse().ok())
            .unwrap();
        assert_eq!(accounts[quoted - 1], 3, "{accounts:?} {out}");
        assert_eq!(accounts[3], 1, "{accounts:?}");
        for n in 1..=posts.len() {
            if !out.contains(&format!("[{n}]")) {
                assert_eq!(accounts[n - 1], 0, "{n}: {accounts:?} {out}");
            }
        }
        // What the answer already says in full is not repeated.
        let said = "Two explosions at the Boston Marathon finish line, many injured [2]. A third device was found near the JFK Library, Boston police say [4].";
        let out = main_reports(&posts, said, &mut vec![0; posts.len()]);
        assert!(!out.contains("JFK"), "{out}");
    }
}
