//! The dead-letter file: every message a source could not use, with its reason, one JSON line
//! each (`<data>/dead-letter.jsonl`), plus rate-limited logging so a flood of bad input does not
//! flood the log.

use chrono::Utc;
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Longest excerpt of a bad message kept in the file.
const MAX_RAW: usize = 16 * 1024;
/// At most one log line per source per this interval; the rest are counted.
const LOG_EVERY: Duration = Duration::from_secs(10);

pub struct DeadLetter {
    path: Option<PathBuf>,
    file: Mutex<Option<std::fs::File>>,
    log: Mutex<std::collections::HashMap<String, (Option<Instant>, u64)>>,
    written: AtomicU64,
}

impl DeadLetter {
    /// Appends to `path` (created on first use); `None` only logs and counts.
    pub fn new(path: Option<&Path>) -> DeadLetter {
        DeadLetter {
            path: path.map(Path::to_path_buf),
            file: Mutex::new(None),
            log: Mutex::new(Default::default()),
            written: AtomicU64::new(0),
        }
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Records lines written so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Records one bad message: appended to the file, logged at most once per interval.
    pub fn record(&self, source: &str, code: &str, reason: &str, raw: &[u8]) {
        self.log_limited(source, code, reason);
        let Some(path) = &self.path else { return };
        let cut = &raw[..raw.len().min(MAX_RAW)];
        let line = json!({
            "at": Utc::now(),
            "source": source,
            "code": code,
            "reason": reason,
            "bytes": raw.len(),
            "truncated": raw.len() > MAX_RAW,
            // Lossy for invalid UTF-8 (the reason says so); the excerpt is for people.
            "raw": String::from_utf8_lossy(cut),
        });
        let Ok(mut guard) = self.file.lock() else {
            return;
        };
        if guard.is_none() {
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                Ok(f) => *guard = Some(f),
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "cannot open the dead-letter file");
                    return;
                }
            }
        }
        if let Some(f) = guard.as_mut() {
            let mut bytes = line.to_string().into_bytes();
            bytes.push(b'\n');
            match f.write_all(&bytes) {
                Ok(()) => {
                    self.written.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => tracing::error!(error = %e, "cannot write the dead-letter file"),
            }
        }
    }

    fn log_limited(&self, source: &str, code: &str, reason: &str) {
        let Ok(mut log) = self.log.lock() else { return };
        let now = Instant::now();
        let entry = log.entry(source.to_string()).or_insert((None, 0));
        if entry
            .0
            .is_none_or(|last| now.duration_since(last) >= LOG_EVERY)
        {
            let suppressed = entry.1;
            *entry = (Some(now), 0);
            tracing::warn!(
                source,
                code,
                reason,
                suppressed,
                "a source message was rejected and dead-lettered"
            );
        } else {
            entry.1 += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_one_json_line_per_bad_message_with_its_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dl").join("dead-letter.jsonl");
        let dl = DeadLetter::new(Some(&path));
        dl.record("x", "malformed_json", "not valid JSON", b"{\"data\": {");
        dl.record("x", "invalid_utf8", "not UTF-8", &[0xff, 0xfe, b'a']);
        let text = std::fs::read_to_string(&path).expect("file written");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["code"], "malformed_json");
        assert_eq!(lines[0]["raw"], "{\"data\": {");
        assert_eq!(lines[1]["bytes"], 3);
        assert_eq!(dl.written(), 2);
    }
}
