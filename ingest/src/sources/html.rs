//! Mastodon's status HTML to plain text: paragraphs and line breaks kept, tags dropped,
//! character references decoded, and the links in the content collected.

/// The text of `html`, and the `href`s of its links that are not mentions or hashtags.
pub fn to_text(html: &str) -> (String, Vec<String>) {
    let mut out = String::with_capacity(html.len());
    let mut links = Vec::new();
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        out.push_str(&decode(&rest[..lt]));
        let Some(gt) = rest[lt..].find('>') else {
            // A stray '<' without a closing '>': keep it as text.
            out.push_str(&decode(&rest[lt..]));
            rest = "";
            break;
        };
        let tag = &rest[lt + 1..lt + gt];
        rest = &rest[lt + gt + 1..];
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        match name.as_str() {
            "br" => out.push('\n'),
            "p" | "div" | "blockquote" | "li" | "ul" | "ol" | "pre" if tag.starts_with('/') => {
                out.push_str("\n\n")
            }
            "a" if !tag.starts_with('/') => {
                let class = attr(tag, "class").unwrap_or_default();
                if !class.contains("mention") && !class.contains("hashtag") {
                    if let Some(href) = attr(tag, "href") {
                        if href.starts_with("http://") || href.starts_with("https://") {
                            links.push(href);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    out.push_str(&decode(rest));
    // Collapse runs of blank lines and trim.
    let mut text = String::with_capacity(out.len());
    let mut newlines = 0;
    for ch in out.trim().chars() {
        if ch == '\n' {
            newlines += 1;
            if newlines <= 2 {
                text.push(ch);
            }
        } else {
            newlines = 0;
            text.push(ch);
        }
    }
    (text, links)
}

/// The value of attribute `name` in a tag's inside (`a href="…" class="…"`), decoded.
fn attr(tag: &str, name: &str) -> Option<String> {
    let mut search = tag;
    loop {
        let at = search.find(name)?;
        let before_ok = at == 0 || search.as_bytes()[at - 1].is_ascii_whitespace();
        let after = search[at + name.len()..].trim_start();
        if before_ok {
            if let Some(v) = after.strip_prefix('=') {
                let v = v.trim_start();
                let (quote, body) = match v.chars().next() {
                    Some(q @ ('"' | '\'')) => (Some(q), &v[1..]),
                    _ => (None, v),
                };
                let end = match quote {
                    Some(q) => body.find(q).unwrap_or(body.len()),
                    None => body
                        .find(|c: char| c.is_ascii_whitespace())
                        .unwrap_or(body.len()),
                };
                return Some(decode(&body[..end]));
            }
        }
        search = &search[at + name.len()..];
    }
}

/// Decodes `&amp;`-style and numeric character references.
pub fn decode(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let end = rest
            .char_indices()
            .take(12)
            .find(|(_, c)| *c == ';')
            .map(|(i, _)| i);
        let decoded = end.and_then(|end| {
            let name = &rest[1..end];
            let ch = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" | "#39" => Some('\''),
                "nbsp" => Some(' '),
                _ => {
                    let num = name.strip_prefix('#')?;
                    let code = match num.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => num.parse().ok()?,
                    };
                    char::from_u32(code).filter(|c| !c.is_control() || *c == '\n')
                }
            }?;
            Some((ch, end + 1))
        });
        match decoded {
            Some((ch, len)) => {
                out.push(ch);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any text, markup or not: no panic, no three newlines in a row, trimmed, and only
        /// http(s) links collected.
        #[test]
        fn any_html_in_any_script(html in tidings_index::testing::any_text()) {
            let (text, links) = to_text(&html);
            prop_assert!(!text.contains("\n\n\n"));
            prop_assert_eq!(text.trim(), text.as_str());
            for l in links {
                prop_assert!(l.starts_with("http://") || l.starts_with("https://"));
            }
            let _ = decode(&html);
        }
    }

    #[test]
    fn paragraphs_breaks_entities_and_links() {
        let html = r#"<p>Flood at <a href="https://example.org/a?b=1&amp;c=2" rel="nofollow">example.org/a</a> &amp; more</p><p>Line one<br>line two &#127754; &lt;b&gt;</p><p><span class="h-card"><a class="u-url mention" href="https://m.example/@ann">@<span>ann</span></a></span> <a class="mention hashtag" href="https://m.example/tags/flood">#<span>flood</span></a></p>"#;
        let (text, links) = to_text(html);
        assert_eq!(
            text,
            "Flood at example.org/a & more\n\nLine one\nline two \u{1F30A} <b>\n\n@ann #flood"
        );
        assert_eq!(links, vec!["https://example.org/a?b=1&c=2".to_string()]);
    }

    #[test]
    fn stray_markup_and_unknown_entities_stay_text() {
        assert_eq!(to_text("a < b &bogus; c &").0, "a < b &bogus; c &");
        assert_eq!(decode("&#x41;&#66;"), "AB");
    }
}
