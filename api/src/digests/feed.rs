//! The Atom 1.0 feed of a digest's runs: the document is written by `atom_syndication`; each
//! entry's content is HTML made here (escaped, and without the characters XML 1.0 forbids,
//! which no XML writer removes for us).

use crate::store::{DigestRow, RunRow};
#[cfg(test)]
use chrono::Utc;
#[cfg(test)]
use serde_json::json;

/// The feed document for `row` and its finished `runs` (newest first).
pub(super) fn atom(row: &DigestRow, runs: &[RunRow]) -> Result<String, String> {
    use atom_syndication::{Content, Entry, Feed, Generator, Link, Person, Text, WriteConfig};
    let updated = runs
        .iter()
        .filter_map(|r| r.finished_at)
        .max()
        .unwrap_or(row.updated_at);
    let entries = runs
        .iter()
        .map(|r| {
            let when = r.finished_at.unwrap_or(r.started_at);
            let failed = if r.status == "failed" {
                " (failed)"
            } else {
                ""
            };
            Entry {
                id: format!("urn:tidings:run:{}", xml_chars(&r.id)),
                title: Text::plain(xml_chars(&format!(
                    "{} — {}{failed}",
                    row.name,
                    r.as_of.format("%Y-%m-%d %H:%M UTC")
                ))),
                updated: when.fixed_offset(),
                published: Some(r.started_at.fixed_offset()),
                links: vec![Link {
                    href: format!(
                        "/v1/digests/{}/runs/{}",
                        xml_chars(&row.id),
                        xml_chars(&r.id)
                    ),
                    rel: "alternate".into(),
                    ..Link::default()
                }],
                content: Some(Content {
                    value: Some(entry_html(r)),
                    content_type: Some("html".into()),
                    ..Content::default()
                }),
                ..Entry::default()
            }
        })
        .collect();
    let feed = Feed {
        id: format!("urn:tidings:digest:{}", xml_chars(&row.id)),
        title: Text::plain(xml_chars(&row.name)),
        updated: updated.fixed_offset(),
        authors: vec![Person {
            name: "Tidings".into(),
            ..Person::default()
        }],
        generator: Some(Generator {
            value: "Tidings".into(),
            ..Generator::default()
        }),
        links: vec![Link {
            href: format!("/v1/digests/{}/feed.atom", xml_chars(&row.id)),
            rel: "self".into(),
            ..Link::default()
        }],
        entries,
        ..Feed::default()
    };
    let config = WriteConfig {
        write_document_declaration: true,
        indent_size: Some(2),
    };
    let bytes = feed
        .write_with_config(Vec::new(), config)
        .map_err(|e| format!("writing the Atom feed: {e}"))?;
    String::from_utf8(bytes).map_err(|e| format!("the Atom feed is not UTF-8: {e}"))
}

/// `text` without the characters XML 1.0 forbids (most C0 controls, U+FFFE, U+FFFF): the
/// XML writer escapes markup but passes those through, and one of them makes the whole feed
/// unreadable.
fn xml_chars(text: &str) -> String {
    text.chars().filter(|c| xml_allowed(*c)).collect()
}

fn xml_allowed(c: char) -> bool {
    !(((c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t'))
        || matches!(c, '\u{FFFE}' | '\u{FFFF}'))
}

/// `text` escaped for HTML inside the feed (and without the characters XML forbids).
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if !xml_allowed(c) => {}
            c => out.push(c),
        }
    }
    out
}

/// One run as HTML for a feed entry (escaped; feed readers sanitise too).
fn entry_html(run: &RunRow) -> String {
    let mut html = String::new();
    if run.status == "failed" {
        let message = run
            .error
            .as_ref()
            .and_then(|e| e["message"].as_str())
            .unwrap_or("unknown error");
        html.push_str(&format!(
            "<p><strong>This digest run failed</strong>: {}. It is not a quiet day: the stories could not be read.</p>",
            xml(message)
        ));
        return html;
    }
    let Some(out) = &run.output else {
        return "<p>Still running.</p>".into();
    };
    let stories = out["stories"].as_array().cloned().unwrap_or_default();
    if stories.is_empty() {
        html.push_str("<p>No notable stories in this window.</p>");
    }
    for s in stories {
        html.push_str(&format!(
            "<h2>{}</h2><p>{}</p><ul>",
            xml(s["headline"].as_str().unwrap_or("")),
            xml(s["summary"].as_str().unwrap_or(""))
        ));
        for c in s["citations"].as_array().cloned().unwrap_or_default() {
            let text = tidings_index::script::shorten(c["text"].as_str().unwrap_or(""), 200);
            let who = c["author"].as_str().map_or_else(
                || c["source"].as_str().unwrap_or("post").to_string(),
                |a| format!("@{a}"),
            );
            match c["url"].as_str().filter(|u| u.starts_with("http")) {
                Some(url) => html.push_str(&format!(
                    "<li>[{}] <a href=\"{}\">{}</a>: {}</li>",
                    c["number"],
                    xml(url),
                    xml(&who),
                    xml(&text)
                )),
                None => html.push_str(&format!(
                    "<li>[{}] {}: {}</li>",
                    c["number"],
                    xml(&who),
                    xml(&text)
                )),
            }
        }
        html.push_str("</ul>");
    }
    html
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Whether `c` may appear in an XML 1.0 document.
    fn xml_char(c: char) -> bool {
        matches!(c, '\t' | '\n' | '\r')
            || ('\u{20}'..='\u{D7FF}').contains(&c)
            || ('\u{E000}'..='\u{FFFD}').contains(&c)
            || c >= '\u{10000}'
    }

    proptest! {
        /// Any text, any script: the escaped form holds only characters XML allows, no markup,
        /// and every character of the input that XML allows.
        #[test]
        fn atom_text_is_valid_xml(text in tidings_index::testing::any_text()) {
            let out = xml(&text);
            prop_assert!(out.chars().all(xml_char), "{out:?}");
            prop_assert!(!out.contains('<') && !out.contains('>') && !out.contains('"'));
            let kept: String = text.chars().filter(|c| xml_char(*c)).collect();
            let back = out
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&");
            prop_assert_eq!(back, kept);
        }

        /// A stored run's entry renders whatever its stories hold.
        #[test]
        fn any_script_run_entries_render(headline in tidings_index::testing::any_text(), text in tidings_index::testing::any_text()) {
            let run = RunRow {
                id: "r".into(),
                digest_id: "d".into(),
                status: crate::store::RunStatus::Succeeded,
                reason: "manual".into(),
                as_of: Utc::now(),
                scheduled_for: None,
                started_at: Utc::now(),
                finished_at: Some(Utc::now()),
                output: Some(json!({"stories": [{"headline": headline, "summary": text,
                    "citations": [{"number": 1, "text": text, "author": headline, "url": "https://x.example/1"}]}]})),
                markdown: None,
                error: None,
            };
            let html = entry_html(&run);
            prop_assert!(html.chars().all(xml_char));

            // The whole document, with the digest named in any script, reads back as Atom.
            let row = DigestRow {
                id: "d".into(),
                name: headline.clone(),
                spec: json!({}),
                created_at: Utc::now(),
                updated_at: Utc::now(),
            };
            let doc = atom(&row, &[run]).map_err(TestCaseError::fail)?;
            prop_assert!(doc.chars().all(xml_char));
            let back: atom_syndication::Feed = doc
                .parse()
                .map_err(|e| TestCaseError::fail(format!("{e}: {doc}")))?;
            prop_assert_eq!(back.entries.len(), 1);
            let name: String = xml_chars(&headline).chars().filter(|c| *c != '\r').collect();
            let title: String = back.title.value.chars().filter(|c| *c != '\r').collect();
            prop_assert_eq!(title.trim(), name.trim());
        }
    }
}
