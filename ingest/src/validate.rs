//! Validation at the edge: a raw JSON record becomes a [`Post`] or a [`Rejection`] with a stable
//! code and a message a person can act on. Every source goes through here, exactly once.

use crate::record::{self, Field, Loose, Record, TopLevel};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::LazyLock;
use tidings_index::{Engagement, Post, PostId, PostRefs};

/// Limits a record must respect.
#[derive(Clone, Debug)]
pub struct ValidationConfig {
    pub max_text_chars: usize,
    /// How far in the future `created_at` may be (clock skew between sources).
    pub max_future_skew: chrono::Duration,
    /// Nothing older than this is a plausible social post.
    pub earliest: DateTime<Utc>,
    pub max_labels: usize,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        ValidationConfig {
            max_text_chars: 10_000,
            max_future_skew: chrono::Duration::minutes(10),
            earliest: Utc
                .with_ymd_and_hms(2000, 1, 1, 0, 0, 0)
                .single()
                .expect("valid constant date"),
            max_labels: 32,
        }
    }
}

/// The stable code of a refused record (what dead letters, push results and ingest summaries
/// report; clients may branch on it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectionCode {
    /// Not JSON, or JSON that is not an object.
    MalformedJson,
    /// A record of a shape no source produces.
    InvalidRecord,
    MissingField,
    InvalidField,
    /// The text is longer than the limit.
    TooLong,
    TooManyLabels,
    /// A line of a file or stdin over the limit.
    LineTooLong,
    /// A source's message over the limit.
    TooLarge,
    InvalidUtf8,
    /// A binary WebSocket frame where text was asked for.
    UnexpectedBinary,
    /// A server-sent event the SSE parser cannot read.
    MalformedEvent,
}

impl RejectionCode {
    pub const ALL: [RejectionCode; 11] = [
        RejectionCode::MalformedJson,
        RejectionCode::InvalidRecord,
        RejectionCode::MissingField,
        RejectionCode::InvalidField,
        RejectionCode::TooLong,
        RejectionCode::TooManyLabels,
        RejectionCode::LineTooLong,
        RejectionCode::TooLarge,
        RejectionCode::InvalidUtf8,
        RejectionCode::UnexpectedBinary,
        RejectionCode::MalformedEvent,
    ];

    /// The stable string.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectionCode::MalformedJson => "malformed_json",
            RejectionCode::InvalidRecord => "invalid_record",
            RejectionCode::MissingField => "missing_field",
            RejectionCode::InvalidField => "invalid_field",
            RejectionCode::TooLong => "too_long",
            RejectionCode::TooManyLabels => "too_many_labels",
            RejectionCode::LineTooLong => "line_too_long",
            RejectionCode::TooLarge => "too_large",
            RejectionCode::InvalidUtf8 => "invalid_utf8",
            RejectionCode::UnexpectedBinary => "unexpected_binary",
            RejectionCode::MalformedEvent => "malformed_event",
        }
    }
}

impl std::fmt::Display for RejectionCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for RejectionCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl serde::Serialize for RejectionCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Why a record was refused. `code` is stable; `message` explains.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub code: RejectionCode,
    pub field: Option<&'static str>,
    pub message: String,
}

impl Rejection {
    fn new(
        code: RejectionCode,
        field: Option<&'static str>,
        message: impl Into<String>,
    ) -> Rejection {
        Rejection {
            code,
            field,
            message: message.into(),
        }
    }
    fn missing(field: &'static str) -> Rejection {
        Rejection::new(
            RejectionCode::MissingField,
            Some(field),
            format!("`{field}` is required"),
        )
    }
    fn invalid(field: &'static str, message: impl Into<String>) -> Rejection {
        Rejection::new(
            RejectionCode::InvalidField,
            Some(field),
            format!("`{field}` {}", message.into()),
        )
    }
    pub fn malformed(message: impl Into<String>) -> Rejection {
        Rejection::new(RejectionCode::MalformedJson, None, message)
    }
    /// Valid JSON that is not an object.
    pub fn not_an_object() -> Rejection {
        Rejection::new(
            RejectionCode::InvalidRecord,
            None,
            "a post must be a JSON object",
        )
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

// Unbounded repetitions on purpose: a bounded repeat of a Unicode class (`\w{1,100}`) compiles
// into an automaton large enough to make matching ~10× slower; lengths are capped afterwards.
static HASHTAG: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"(?:^|[^\w&])#(\w+)").expect("valid hashtag regex"));
static MENTION: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"(?:^|[^\w])@(\w[\w.\-]*\w|\w)").expect("valid mention regex")
});
static LINK: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"https?://[^\s<>\x22]+").expect("valid link regex"));

/// Parses one JSON text into a post.
pub fn validate_json(
    line: &str,
    default_source: &str,
    config: &ValidationConfig,
    now: DateTime<Utc>,
) -> Result<Post, Rejection> {
    validate_json_with_id(line, default_source, config, now).map_err(|(r, _)| r)
}

/// Parses one JSON text into a post, reading it straight into a [`Record`] (no `Value` tree);
/// a refused record comes back with its id when it had a usable one.
pub fn validate_json_with_id(
    line: &str,
    default_source: &str,
    config: &ValidationConfig,
    now: DateTime<Utc>,
) -> Result<Post, (Rejection, Option<String>)> {
    match record::parse(line) {
        Err(e) => Err((Rejection::malformed(format!("not valid JSON: {e}")), None)),
        Ok(TopLevel::NotAnObject) => Err((Rejection::not_an_object(), None)),
        Ok(TopLevel::Record(record)) => {
            let id = record.id();
            validate_record(record, default_source, config, now).map_err(|r| (r, id))
        }
    }
}

/// Checks and normalises one record already parsed into a `Value`.
pub fn validate(
    value: Value,
    default_source: &str,
    config: &ValidationConfig,
    now: DateTime<Utc>,
) -> Result<Post, Rejection> {
    let record = Record::from_value(value).ok_or_else(Rejection::not_an_object)?;
    validate_record(record, default_source, config, now)
}

/// Checks and normalises one record: the only place that does.
pub fn validate_record(
    mut record: Record<'_>,
    default_source: &str,
    config: &ValidationConfig,
    now: DateTime<Utc>,
) -> Result<Post, Rejection> {
    let id = match record.take(Field::Id) {
        Some(Loose::Str(s)) => PostId::parse(&s).map_err(|e| Rejection::invalid("id", e))?,
        Some(Loose::Number(n)) if n.is_u64() || n.is_i64() => {
            PostId::parse(&n.to_string()).map_err(|e| Rejection::invalid("id", e))?
        }
        None | Some(Loose::Null) => return Err(Rejection::missing("id")),
        Some(_) => return Err(Rejection::invalid("id", "must be a string or an integer")),
    };
    let text = match record.take(Field::Text) {
        // Platforms hand out text HTML-escaped (the X API's `&amp;`, `&lt;`, `&gt;`; archives
        // such as CrisisLex keep them) and a post is plain text, so character references are
        // decoded here for every source. A post that spells one out literally ("write &amp;")
        // loses it, which is far rarer than escaped text shown to readers as `&amp;`.
        Some(Loose::Str(s)) => clean_text(&crate::sources::html::decode(&s)),
        None | Some(Loose::Null) => return Err(Rejection::missing("text")),
        Some(_) => return Err(Rejection::invalid("text", "must be a string")),
    };
    if text.trim().is_empty() {
        return Err(Rejection::invalid("text", "is empty"));
    }
    // A text of at most `max_text_chars` bytes has at most that many characters: only longer
    // ones need counting.
    if text.len() > config.max_text_chars {
        let chars = text.chars().count();
        if chars > config.max_text_chars {
            return Err(Rejection::new(
                RejectionCode::TooLong,
                Some("text"),
                format!(
                    "`text` has {chars} characters; the limit is {}",
                    config.max_text_chars
                ),
            ));
        }
    }
    let created_at = match record.take(Field::CreatedAt) {
        Some(v) if v != Loose::Null => {
            parse_loose_time(&v).map_err(|e| Rejection::invalid("created_at", e))?
        }
        _ => return Err(Rejection::missing("created_at")),
    };
    if created_at > now + config.max_future_skew {
        return Err(Rejection::invalid(
            "created_at",
            format!(
                "is in the future ({created_at}, now {now}); check the source's clock or time zone"
            ),
        ));
    }
    if created_at < config.earliest {
        return Err(Rejection::invalid(
            "created_at",
            format!(
                "is before {}; is it in seconds rather than milliseconds?",
                config.earliest
            ),
        ));
    }
    let author = match take_string(&mut record, Field::Author)? {
        Some(a) => Some(normalize_handle(&a).map_err(|e| Rejection::invalid("author", e))?),
        None => None,
    };
    let author_name =
        take_string(&mut record, Field::AuthorName)?.map(|s| truncate_chars(&clean_text(&s), 200));
    let lang = match take_string(&mut record, Field::Lang)? {
        Some(l) => normalize_lang(&l).map_err(|e| Rejection::invalid("lang", e))?,
        None => None,
    };
    let url = match take_string(&mut record, Field::Url)? {
        Some(u) => Some(check_url(&u).map_err(|e| Rejection::invalid("url", e))?),
        None => None,
    };
    let source = match take_string(&mut record, Field::Source)? {
        Some(s) => {
            let s = s.trim();
            if s.is_empty()
                || s.len() > 64
                || s.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(Rejection::invalid(
                    "source",
                    "must be 1-64 characters without spaces",
                ));
            }
            s.to_string()
        }
        None => default_source.to_string(),
    };
    let refs = PostRefs {
        reply_to: take_string(&mut record, Field::ReplyTo)?.map(Cow::into_owned),
        quote_of: take_string(&mut record, Field::QuoteOf)?.map(Cow::into_owned),
        repost_of: take_string(&mut record, Field::RepostOf)?.map(Cow::into_owned),
    };
    let mut engagement = match record.take(Field::Engagement) {
        Some(e @ Loose::Object(_)) => Engagement {
            likes: count(e.get("likes"), "engagement.likes")?,
            reposts: count(e.get("reposts"), "engagement.reposts")?,
            replies: count(e.get("replies"), "engagement.replies")?,
            quotes: count(e.get("quotes"), "engagement.quotes")?,
        },
        None | Some(Loose::Null) => Engagement::default(),
        Some(_) => {
            return Err(Rejection::invalid(
                "engagement",
                "must be an object of counts",
            ))
        }
    };
    for (field, slot) in [
        (Field::Likes, &mut engagement.likes),
        (Field::Reposts, &mut engagement.reposts),
        (Field::Replies, &mut engagement.replies),
        (Field::Quotes, &mut engagement.quotes),
    ] {
        if let Some(v) = record.take(field) {
            *slot = count(Some(&v), field.name())?;
        }
    }
    // Each pattern needs its marker, and most posts have none: the cheap scan skips the regex.
    let hashtags = take_list(&mut record, Field::Hashtags)?.unwrap_or_else(|| {
        if !text.contains('#') {
            return Vec::new();
        }
        HASHTAG
            .captures_iter(&text)
            .map(|c| truncate_chars(&c[1].to_lowercase(), 100))
            .collect()
    });
    let mentions = take_list(&mut record, Field::Mentions)?.unwrap_or_else(|| {
        if !text.contains('@') {
            return Vec::new();
        }
        MENTION
            .captures_iter(&text)
            .map(|c| truncate_chars(&c[1].to_lowercase(), 100))
            .collect()
    });
    let links = take_list(&mut record, Field::Links)?.unwrap_or_else(|| {
        if !text.contains("http") {
            return Vec::new();
        }
        LINK.find_iter(&text)
            .map(|m| {
                let link = m.as_str().trim_end_matches(['.', ',', ')', '…']);
                truncate_chars(link, 2048)
            })
            .collect()
    });
    let mut labels = BTreeMap::new();
    match record.take(Field::Labels) {
        Some(Loose::Object(map)) => {
            for (k, v) in map {
                insert_label(&mut labels, &k, &v);
            }
        }
        None | Some(Loose::Null) => {}
        Some(_) => return Err(Rejection::invalid("labels", "must be an object")),
    }
    // Unknown fields become labels (e.g. a data set's `event`), so nothing a pusher sent is
    // lost; `ingested_at` is set here, never taken from the record.
    for (k, v) in &record.extra {
        insert_label(&mut labels, k, v);
    }
    if labels.len() > config.max_labels {
        return Err(Rejection::new(
            RejectionCode::TooManyLabels,
            Some("labels"),
            format!(
                "{} labels; the limit is {}",
                labels.len(),
                config.max_labels
            ),
        ));
    }
    Ok(Post {
        id,
        source,
        author,
        author_name,
        text,
        created_at,
        ingested_at: now,
        lang,
        url,
        refs,
        hashtags: dedup_list(hashtags),
        mentions: dedup_list(mentions),
        links: dedup_list(links),
        engagement,
        labels,
    })
}

fn insert_label(labels: &mut BTreeMap<String, String>, key: &str, value: &Loose<'_>) {
    let text = match value {
        Loose::Str(s) => truncate_chars(s, 512),
        Loose::Number(n) => n.to_string(),
        Loose::Bool(b) => b.to_string(),
        Loose::List(items) => truncate_chars(
            &items
                .iter()
                .filter_map(|i| match i {
                    Loose::Str(s) => Some(s.to_string()),
                    Loose::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join(","),
            512,
        ),
        Loose::Null | Loose::Object(_) => return,
    };
    let key: String = key.chars().take(64).collect();
    labels.insert(key, text);
}

fn dedup_list(mut items: Vec<String>) -> Vec<String> {
    if items.len() > 1 {
        let mut seen = std::collections::HashSet::new();
        items.retain(|i| seen.insert(i.clone()));
    }
    items.truncate(64);
    items
}

fn take_string<'a>(
    record: &mut Record<'a>,
    field: Field,
) -> Result<Option<Cow<'a, str>>, Rejection> {
    match record.take(field) {
        None | Some(Loose::Null) => Ok(None),
        Some(Loose::Str(s)) if s.trim().is_empty() => Ok(None),
        Some(Loose::Str(s)) => Ok(Some(s)),
        Some(Loose::Number(n)) => Ok(Some(Cow::Owned(n.to_string()))),
        Some(_) => Err(Rejection::invalid(field.name(), "must be a string")),
    }
}

fn take_list(record: &mut Record<'_>, field: Field) -> Result<Option<Vec<String>>, Rejection> {
    // Hashtags and mentions compare case-insensitively; links keep their case (paths and
    // query strings are case-sensitive).
    let lowercase = field != Field::Links;
    let name = field.name();
    match record.take(field) {
        None | Some(Loose::Null) => Ok(None),
        Some(Loose::List(items)) => items
            .into_iter()
            .map(|i| match i {
                Loose::Str(s) if lowercase => Ok(s.trim_start_matches(['#', '@']).to_lowercase()),
                Loose::Str(s) => Ok(s.trim().to_string()),
                _ => Err(Rejection::invalid(name, "must be a list of strings")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(Rejection::invalid(name, "must be a list of strings")),
    }
}

fn count(v: Option<&Loose<'_>>, field: &'static str) -> Result<u64, Rejection> {
    match v {
        None | Some(Loose::Null) => Ok(0),
        Some(Loose::Number(n)) => n
            .as_u64()
            .ok_or_else(|| Rejection::invalid(field, "must be a non-negative integer")),
        Some(_) => Err(Rejection::invalid(field, "must be a non-negative integer")),
    }
}

/// RFC 3339 (with or without zone: naive means UTC), or Unix seconds / milliseconds.
pub fn parse_time(v: &Value) -> Result<DateTime<Utc>, String> {
    match v {
        Value::String(s) => parse_time_text(s),
        Value::Number(n) => parse_unix_time(n),
        _ => Err(TIME_TYPE.into()),
    }
}

const TIME_TYPE: &str = "must be an RFC 3339 string or a Unix timestamp";

fn parse_loose_time(v: &Loose<'_>) -> Result<DateTime<Utc>, String> {
    match v {
        Loose::Str(s) => parse_time_text(s),
        Loose::Number(n) => parse_unix_time(n),
        _ => Err(TIME_TYPE.into()),
    }
}

fn parse_time_text(s: &str) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            return Ok(t.and_utc());
        }
    }
    if let Ok(t) = DateTime::parse_from_rfc2822(s) {
        return Ok(t.with_timezone(&Utc));
    }
    Err(format!(
        "`{s}` is not an RFC 3339 time such as 2024-03-01T12:00:00Z"
    ))
}

fn parse_unix_time(n: &serde_json::Number) -> Result<DateTime<Utc>, String> {
    let secs = n.as_f64().ok_or("is not a number")?;
    // Values above 1e11 can only be milliseconds (1e11 s is the year 5138).
    let ms = if secs.abs() > 1e11 {
        secs
    } else {
        secs * 1000.0
    };
    Utc.timestamp_millis_opt(ms as i64)
        .single()
        .ok_or_else(|| format!("{n} is out of range"))
}

/// `@Alice` → `alice`; handles are 1-100 chars of letters, digits, `_ . - :` and an inner `@`.
pub fn normalize_handle(raw: &str) -> Result<String, String> {
    let h = raw.trim().trim_start_matches('@').to_lowercase();
    if h.is_empty() || h.len() > 100 {
        return Err("must be 1-100 characters".into());
    }
    if !h
        .chars()
        // `@` inside: fediverse accounts (`user@example.social`).
        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | ':' | '@'))
    {
        return Err(format!("`{raw}` has characters a handle cannot have"));
    }
    Ok(h)
}

fn normalize_lang(raw: &str) -> Result<Option<String>, String> {
    let l = raw.trim().to_lowercase().replace('_', "-");
    if l == "und" || l.is_empty() {
        return Ok(None);
    }
    let primary = l.split('-').next().unwrap_or("");
    if !(2..=3).contains(&primary.len())
        || !primary.chars().all(|c| c.is_ascii_lowercase())
        || l.len() > 16
    {
        return Err(format!(
            "`{raw}` is not a language tag such as `en` or `pt-br`"
        ));
    }
    Ok(Some(l))
}

fn check_url(raw: &str) -> Result<String, String> {
    let u = raw.trim();
    if u.len() > 2048 {
        return Err("is longer than 2048 bytes".into());
    }
    let lower = u.to_ascii_lowercase();
    if !(lower.starts_with("https://")
        || lower.starts_with("http://")
        || lower.starts_with("at://"))
    {
        return Err("must start with http://, https:// or at://".into());
    }
    if u.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains whitespace".into());
    }
    Ok(u.to_string())
}

/// Drops control characters other than newline and tab, and trims.
fn clean_text(s: &str) -> String {
    // Most text has no control characters to drop: then trimming is all there is to do.
    if !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return s.trim().to_string();
    }
    s.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect::<String>()
        .trim()
        .to_string()
}

fn truncate_chars(s: &str, n: usize) -> String {
    tidings_index::script::prefix_graphemes(s, n).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejection_codes_are_distinct_snake_case_strings() {
        let mut seen = std::collections::HashSet::new();
        for c in RejectionCode::ALL {
            let s = c.as_str();
            assert!(
                s.chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_'),
                "{s}"
            );
            assert!(seen.insert(s), "{s} twice");
            assert_eq!(serde_json::to_value(c).unwrap(), serde_json::json!(s));
        }
    }
    use proptest::prelude::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).unwrap()
    }

    fn check(v: Value) -> Result<Post, Rejection> {
        validate(v, "push", &ValidationConfig::default(), now())
    }

    #[test]
    fn accepts_a_full_record_and_extracts_entities() {
        let post = check(json!({
            "id": 42, "text": "Flooding on #Main st, @CityOfBoston says stay away https://bbc.co.uk/x.",
            "created_at": "2024-03-01T11:00:00+01:00", "author": "@Reporter", "lang": "EN", "url": "https://x.com/r/42",
            "likes": 3, "event": "flood", "splits": ["a", "b"]
        }))
        .unwrap();
        assert_eq!(post.id.as_str(), "42");
        assert_eq!(post.author.as_deref(), Some("reporter"));
        assert_eq!(
            post.created_at,
            Utc.with_ymd_and_hms(2024, 3, 1, 10, 0, 0).unwrap()
        );
        assert_eq!(post.lang.as_deref(), Some("en"));
        assert_eq!(post.hashtags, vec!["main"]);
        assert_eq!(post.mentions, vec!["cityofboston"]);
        assert_eq!(post.links, vec!["https://bbc.co.uk/x"]);
        assert_eq!(post.engagement.likes, 3);
        assert_eq!(post.labels.get("event").map(String::as_str), Some("flood"));
        assert_eq!(post.labels.get("splits").map(String::as_str), Some("a,b"));
        assert_eq!(post.source, "push");
    }

    #[test]
    fn rejections_have_stable_codes() {
        let cases = [
            (
                json!({"text": "x", "created_at": "2024-03-01T00:00:00Z"}),
                "missing_field",
                Some("id"),
            ),
            (
                json!({"id": "1", "created_at": "2024-03-01T00:00:00Z"}),
                "missing_field",
                Some("text"),
            ),
            (
                json!({"id": "1", "text": "  ", "created_at": "2024-03-01T00:00:00Z"}),
                "invalid_field",
                Some("text"),
            ),
            (
                json!({"id": "1", "text": "x"}),
                "missing_field",
                Some("created_at"),
            ),
            (
                json!({"id": "1", "text": "x", "created_at": "yesterday"}),
                "invalid_field",
                Some("created_at"),
            ),
            (
                json!({"id": "1", "text": "x", "created_at": "2031-01-01T00:00:00Z"}),
                "invalid_field",
                Some("created_at"),
            ),
            (
                json!({"id": "1", "text": "x", "created_at": 5}),
                "invalid_field",
                Some("created_at"),
            ),
            (
                json!({"id": "1", "text": "x", "created_at": "2024-03-01T00:00:00Z", "url": "javascript:alert(1)"}),
                "invalid_field",
                Some("url"),
            ),
            (
                json!({"id": "1", "text": "x", "created_at": "2024-03-01T00:00:00Z", "author": "a b"}),
                "invalid_field",
                Some("author"),
            ),
            (
                json!({"id": "1", "text": "x", "created_at": "2024-03-01T00:00:00Z", "likes": -1}),
                "invalid_field",
                Some("likes"),
            ),
            (
                json!({"id": "a b", "text": "x", "created_at": "2024-03-01T00:00:00Z"}),
                "invalid_field",
                Some("id"),
            ),
            (json!(["not", "an", "object"]), "invalid_record", None),
        ];
        for (value, code, field) in cases {
            let err = check(value.clone()).expect_err(&value.to_string());
            assert_eq!(
                (err.code.as_str(), err.field),
                (code, field),
                "{value}: {err}"
            );
        }
        let long = "x".repeat(10_001);
        assert_eq!(
            check(json!({"id": "1", "text": long, "created_at": "2024-03-01T00:00:00Z"}))
                .unwrap_err()
                .code,
            "too_long"
        );
        assert_eq!(
            validate_json("{not json", "push", &ValidationConfig::default(), now())
                .unwrap_err()
                .code,
            "malformed_json"
        );
    }

    #[test]
    fn html_escapes_in_text_are_decoded_once() {
        let p = check(
            json!({"id": "p1", "text": "Rain &amp; wind &lt;3 &amp;amp; caf&#233; &bogus; AT&T",
            "created_at": "2024-03-01T00:00:00Z"}),
        )
        .unwrap();
        assert_eq!(p.text, "Rain & wind <3 &amp; café &bogus; AT&T");
    }

    #[test]
    fn unix_times_in_seconds_and_milliseconds() {
        let s = parse_time(&json!(1_709_294_400)).unwrap();
        let ms = parse_time(&json!(1_709_294_400_000i64)).unwrap();
        assert_eq!(s, ms);
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_text(text in "\\PC{0,400}", id in "\\PC{0,40}") {
            let _ = check(json!({"id": id, "text": text, "created_at": "2024-03-01T00:00:00Z"}));
        }

        /// Any script in any field: validation answers (accept or a coded rejection), never
        /// panics, and an accepted post keeps its invariants.
        /// Whatever type each field has, the JSON text read straight into a record and the
        /// same text parsed into a `Value` first are accepted or refused alike.
        #[test]
        fn text_and_value_paths_agree_on_fields_of_any_type(
            fields in prop::collection::vec((
                prop::sample::select(crate::record::Field::ALL.map(|f| f.name()).to_vec()),
                prop_oneof![
                    Just(json!(null)), any::<bool>().prop_map(|b| json!(b)),
                    any::<i64>().prop_map(|n| json!(n)), (0u64..2_000_000_000_000).prop_map(|n| json!(n)),
                    tidings_index::testing::short_text().prop_map(|s| json!(s)),
                    Just(json!("2024-03-01T00:00:00Z")), Just(json!(["a", "#B"])), Just(json!({"likes": 2})),
                ],
            ), 0..10),
        ) {
            let mut record = serde_json::Map::new();
            record.insert("id".into(), json!("x1"));
            record.insert("text".into(), json!("Flood on #Main st"));
            record.insert("created_at".into(), json!("2024-03-01T00:00:00Z"));
            for (k, v) in fields {
                record.insert(k.to_string(), v);
            }
            let line = Value::Object(record).to_string();
            let value: Value = serde_json::from_str(&line).expect("valid JSON");
            prop_assert_eq!(
                validate_json(&line, "push", &ValidationConfig::default(), now()),
                check(value)
            );
        }

        #[test]
        fn any_script_in_any_field(
            text in tidings_index::testing::any_text(),
            author in tidings_index::testing::short_text(),
            tag in tidings_index::testing::short_text(),
            lang in tidings_index::testing::short_text(),
            id in tidings_index::testing::short_text(),
            url in tidings_index::testing::short_text(),
        ) {
            let record = json!({
                "id": id, "text": text, "author": author, "hashtags": [tag.clone()],
                "mentions": [author.clone()], "lang": lang, "url": format!("https://x.y/{url}"),
                "links": [url], "labels": {tag: text.clone()},
                "created_at": "2024-03-01T00:00:00Z",
            });
            match check(record.clone()) {
                Ok(p) => {
                    prop_assert!(!p.text.trim().is_empty());
                    prop_assert!(!p.text.chars().any(|c| c.is_control() && c != '\n' && c != '\t'));
                    prop_assert!(p.text.chars().count() <= 10_000);
                }
                Err(e) => prop_assert!(!e.code.as_str().is_empty() && !e.message.is_empty()),
            }
            // The same record as a JSON line, read straight into a record: the same outcome as
            // from the parsed `Value`; and cut at any byte: a rejection, never a panic.
            let line = record.to_string();
            prop_assert_eq!(
                validate_json(&line, "push", &ValidationConfig::default(), now()),
                check(record.clone())
            );
            for cut in [1usize, 7, line.len() / 2] {
                let mut end = cut.min(line.len());
                while !line.is_char_boundary(end) { end -= 1; }
                let _ = validate_json(&line[..end], "push", &ValidationConfig::default(), now());
            }
        }

        #[test]
        fn accepted_posts_respect_limits(text in "\\PC{1,300}") {
            if let Ok(p) = check(json!({"id": "p1", "text": text, "created_at": "2024-03-01T00:00:00Z"})) {
                prop_assert!(!p.text.trim().is_empty());
                prop_assert!(!p.text.chars().any(|c| c.is_control() && c != '\n' && c != '\t'));
            }
        }
    }
}
