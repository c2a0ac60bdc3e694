//! Stops an answer when a small model starts echoing the prompt instead of answering: a new
//! line that begins like a quoted post (`[3] @handle`), the fence (`"""`), or the prompt's own
//! headings (`Question:`, `Posts from`). The current line is held back only while it could still
//! become one of those, so ordinary text streams without delay.

/// What to do with the text seen so far on the current line.
#[derive(Debug, PartialEq, Eq)]
enum LineState {
    /// Cannot become an echo: emit it.
    Flush,
    /// Might become an echo: wait for more.
    Hold,
    /// Is an echo: stop the answer before this line.
    Stop,
}

const HEADINGS: &[&str] = &["\"\"\"", "Question:", "Posts from", "<<<"];

fn classify(line: &str) -> LineState {
    let t = line.trim_start();
    if t.is_empty() {
        return LineState::Hold;
    }
    for h in HEADINGS {
        if t.starts_with(h) {
            return LineState::Stop;
        }
        if h.starts_with(t) {
            return LineState::Hold;
        }
    }
    // "[12] @handle": a numbered post line.
    if let Some(rest) = t.strip_prefix('[') {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        let after = &rest[digits..];
        if after.is_empty() {
            return LineState::Hold;
        }
        if digits > 0 {
            if let Some(tail) = after.strip_prefix(']') {
                let tail = tail.trim_start();
                if tail.is_empty() {
                    return LineState::Hold;
                }
                if tail.starts_with('@') || tail.starts_with('(') {
                    return LineState::Stop;
                }
            }
        }
    }
    LineState::Flush
}

/// Feed model text in; get the text to pass on, and whether the answer should stop.
#[derive(Default)]
pub(crate) struct EchoGuard {
    /// The held part of the current line (only after the first line).
    held: String,
    /// Whether a newline was seen (the first line is never held).
    past_first_line: bool,
    stopped: bool,
}

impl EchoGuard {
    /// Returns the text to emit; after it returns with `stopped()` true, ignore further input.
    pub(crate) fn push(&mut self, delta: &str) -> String {
        let mut out = String::new();
        if self.stopped {
            return out;
        }
        for c in delta.chars() {
            if !self.past_first_line {
                out.push(c);
                if c == '\n' {
                    self.past_first_line = true;
                }
                continue;
            }
            if self.held.is_empty() && c == '\n' {
                out.push(c);
                continue;
            }
            self.held.push(c);
            match classify(&self.held) {
                LineState::Flush => {
                    let done = c == '\n';
                    out.push_str(&std::mem::take(&mut self.held));
                    if !done {
                        // The rest of this line passes straight through.
                        self.past_first_line = false;
                    }
                }
                LineState::Hold => {
                    if c == '\n' {
                        out.push_str(&std::mem::take(&mut self.held));
                    }
                }
                LineState::Stop => {
                    self.held.clear();
                    self.stopped = true;
                    return out;
                }
            }
        }
        out
    }

    pub(crate) fn stopped(&self) -> bool {
        self.stopped
    }

    /// Whatever is still held when the stream ends (a harmless partial line).
    pub(crate) fn finish(&mut self) -> String {
        if self.stopped {
            return String::new();
        }
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// However the text is split, what passes is a prefix of the input, and all of it when
        /// the guard did not stop.
        #[test]
        fn passes_a_prefix_of_any_text(text in tidings_index::testing::any_text(), cuts in prop::collection::vec(0usize..400, 0..6)) {
            let mut bounds: Vec<usize> = cuts.into_iter().map(|c| {
                let mut c = c.min(text.len());
                while !text.is_char_boundary(c) { c -= 1; }
                c
            }).collect();
            bounds.push(0);
            bounds.push(text.len());
            bounds.sort_unstable();
            let parts: Vec<&str> = bounds.windows(2).map(|w| &text[w[0]..w[1]]).collect();
            let (out, stopped) = run(&parts);
            prop_assert!(text.starts_with(&out), "{out:?} is not a prefix of {text:?}");
            if !stopped {
                prop_assert_eq!(out, text);
            }
        }
    }

    fn run(parts: &[&str]) -> (String, bool) {
        let mut g = EchoGuard::default();
        let mut out: String = parts.iter().map(|p| g.push(p)).collect();
        out.push_str(&g.finish());
        (out, g.stopped())
    }

    #[test]
    fn echoed_post_lines_stop_the_answer() {
        let (out, stopped) = run(&[
            "The bridge is closed [1].\n",
            "[",
            "2",
            "] @",
            "x (16:42): echo",
        ]);
        assert_eq!(out, "The bridge is closed [1].\n");
        assert!(stopped);
        let (out, stopped) = run(&["Answer.\n\n\"\"\"\n[1] @x"]);
        assert_eq!(out, "Answer.\n\n");
        assert!(stopped);
        assert!(run(&["A.\nQuestion: what"]).1);
        assert!(run(&["A.\n[3] (20:57, 2 hours ago): echo"]).1);
    }

    #[test]
    fn ordinary_lines_pass() {
        let (out, stopped) = run(&[
            "First line.\n",
            "Second [2] line.\n",
            "[3] shows more.\n",
            "Que",
            "ues",
        ]);
        assert_eq!(
            out,
            "First line.\nSecond [2] line.\n[3] shows more.\nQueues"
        );
        assert!(!stopped);
        // The first line is never held, even if it looks like a post.
        let (out, _) = run(&["[1] @x said so"]);
        assert_eq!(out, "[1] @x said so");
    }
}
