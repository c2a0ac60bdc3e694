//! JSONL / NDJSON from any byte stream (a file, stdin, an HTTP body): one record per line, each
//! validated on its own, so a bad line is reported with its number and the stream goes on.

use crate::validate::{validate_json_with_id, Rejection, ValidationConfig};
use crate::SourceEvent;
use chrono::Utc;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tokio::sync::mpsc;

/// Longest line we accept; longer lines are rejected (and skipped) without buffering them.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// One line's outcome.
pub enum Line {
    Text(String),
    /// The line was not usable as text: too long or not UTF-8.
    Bad(Rejection),
}

/// Reads the next line (without its `\n`), never holding more than `max` bytes of it.
pub async fn next_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<Line>> {
    buf.clear();
    let mut too_long = false;
    let mut saw_any = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            if !saw_any {
                return Ok(None);
            }
            break;
        }
        saw_any = true;
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], Some(i + 1)),
            None => (available, None),
        };
        if !too_long {
            if buf.len() + chunk.len() > max {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        let consumed = done.unwrap_or(available.len());
        reader.consume(consumed);
        if done.is_some() {
            break;
        }
    }
    if too_long {
        return Ok(Some(Line::Bad(Rejection {
            code: crate::RejectionCode::LineTooLong,
            field: None,
            message: format!("line is longer than {max} bytes"),
        })));
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    match std::str::from_utf8(buf) {
        Ok(s) => Ok(Some(Line::Text(s.to_string()))),
        Err(e) => Ok(Some(Line::Bad(Rejection {
            code: crate::RejectionCode::InvalidUtf8,
            field: None,
            message: format!("line is not valid UTF-8: {e}"),
        }))),
    }
}

/// Streams records from `reader` into `tx` as [`SourceEvent`]s, in batches of `batch` posts.
/// `position` after each batch is the number of lines read so far (a file checkpoint).
pub async fn read_jsonl<R: AsyncBufRead + Unpin>(
    mut reader: R,
    source: &str,
    config: &ValidationConfig,
    batch: usize,
    tx: &mpsc::Sender<SourceEvent>,
) -> std::io::Result<u64> {
    let mut buf = Vec::with_capacity(4096);
    let mut line_no = 0u64;
    let mut posts = Vec::with_capacity(batch);
    let mut bytes = 0u64;
    while let Some(line) = next_line(&mut reader, &mut buf, MAX_LINE_BYTES).await? {
        line_no += 1;
        bytes += buf.len() as u64 + 1;
        let rejection = match line {
            Line::Bad(r) => Some((r, None)),
            Line::Text(text) if text.trim().is_empty() => continue,
            Line::Text(text) => match validate_json_with_id(&text, source, config, Utc::now()) {
                Ok(post) => {
                    posts.push(post);
                    None
                }
                Err(refused) => Some(refused),
            },
        };
        if let Some((rejection, id)) = rejection {
            if tx
                .send(SourceEvent::Rejected {
                    line: line_no,
                    id,
                    rejection,
                })
                .await
                .is_err()
            {
                return Ok(line_no);
            }
        }
        if posts.len() >= batch {
            let full = std::mem::replace(&mut posts, Vec::with_capacity(batch));
            if tx
                .send(SourceEvent::Posts {
                    posts: full,
                    position: Some(line_no.to_string()),
                    bytes,
                })
                .await
                .is_err()
            {
                return Ok(line_no);
            }
            bytes = 0;
        }
    }
    if !posts.is_empty() || bytes > 0 {
        let _ = tx
            .send(SourceEvent::Posts {
                posts,
                position: Some(line_no.to_string()),
                bytes,
            })
            .await;
    }
    Ok(line_no)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bad_lines_do_not_stop_the_stream() {
        let mut input = Vec::new();
        input.extend_from_slice(
            b"{\"id\":\"1\",\"text\":\"ok one\",\"created_at\":\"2024-03-01T00:00:00Z\"}\n",
        );
        input.extend_from_slice(b"{\"id\":\"2\",\"text\":\"trunc");
        input.extend_from_slice(b"\n\xff\xfe garbage\n\n");
        input.extend_from_slice(b"{\"id\":\"3\",\"created_at\":\"2024-03-01T00:00:00Z\"}\n");
        input.extend_from_slice(&vec![b'x'; MAX_LINE_BYTES + 10]);
        input.extend_from_slice(
            b"\n{\"id\":\"4\",\"text\":\"ok two\",\"created_at\":\"2024-03-01T00:00:00Z\"}",
        );
        let (tx, mut rx) = mpsc::channel(100);
        let lines = read_jsonl(&input[..], "file", &ValidationConfig::default(), 10, &tx)
            .await
            .unwrap();
        drop(tx);
        assert_eq!(lines, 7);
        let mut accepted = Vec::new();
        let mut rejected = Vec::new();
        while let Some(ev) = rx.recv().await {
            match ev {
                SourceEvent::Posts { posts, .. } => {
                    accepted.extend(posts.into_iter().map(|p| p.id.to_string()))
                }
                SourceEvent::Rejected {
                    line,
                    id,
                    rejection,
                } => rejected.push((line, id, rejection.code.as_str())),
            }
        }
        assert_eq!(accepted, vec!["1", "4"]);
        assert_eq!(
            rejected,
            vec![
                (2, None, "malformed_json"),
                (3, None, "invalid_utf8"),
                (5, Some("3".to_string()), "missing_field"),
                (6, None, "line_too_long"),
            ]
        );
    }
}
