//! Time understanding: the time expressions of a question, resolved against the request's
//! `as_of` (default: now) into a search window and a recency half-life.
//!
//! English only. Days are UTC days. What is understood: "now / right now / breaking / latest",
//! "last|past N minutes|hours|days|weeks|months", "N hours ago", "today", "tonight",
//! "this morning", "yesterday", "this|last week", "this|last month", weekday names ("on Monday",
//! "last Friday"), explicit dates ("2013-04-15", "April 15", "15 April 2013", "Apr 15th") and
//! ranges of them ("between April 14 and April 16", "from 2013-04-14 to 2013-04-16",
//! "since April 14").

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use regex::Regex;
use std::sync::LazyLock;

/// Where and how to look in time.
#[derive(Clone, Debug, PartialEq)]
pub struct TimeWindow {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Half-life of the recency decay for this question.
    pub half_life: std::time::Duration,
    /// Words for the answer: "the last 2 hours", "yesterday (2013-04-15)".
    pub label: String,
    /// Whether the asker chose the window (then it is never widened).
    pub explicit: bool,
}

impl TimeWindow {
    pub fn span(&self) -> Duration {
        self.to - self.from
    }

    /// An explicit window from `from` to `to`, with a half-life to match its span.
    pub fn between(from: DateTime<Utc>, to: DateTime<Utc>, label: String) -> TimeWindow {
        TimeWindow {
            from,
            to,
            half_life: half_life_for(to - from),
            label,
            explicit: true,
        }
    }

    /// A window ending at `as_of` and reaching back `span`, with a half-life to match.
    pub fn last(as_of: DateTime<Utc>, span: Duration, label: String, explicit: bool) -> TimeWindow {
        TimeWindow {
            from: as_of - span,
            to: as_of,
            half_life: half_life_for(span),
            label,
            explicit,
        }
    }

    /// The next wider window for a question that found too little, or `None` when the asker
    /// chose this window or there is nothing wider worth trying.
    pub fn widen(&self, as_of: DateTime<Utc>) -> Option<TimeWindow> {
        if self.explicit {
            return None;
        }
        let span = self.span();
        let next = [
            Duration::hours(6),
            Duration::hours(24),
            Duration::days(3),
            Duration::days(7),
            Duration::days(30),
            Duration::days(365),
        ]
        .into_iter()
        .find(|d| *d > span)?;
        Some(TimeWindow::last(as_of, next, describe_span(next), false))
    }
}

/// Recency half-life for a window: a third of its span, at least 15 minutes.
fn half_life_for(span: Duration) -> std::time::Duration {
    let secs = (span.num_seconds() / 3).max(15 * 60);
    std::time::Duration::from_secs(secs as u64)
}

/// "the last 6 hours", "the last 3 days".
pub fn describe_span(span: Duration) -> String {
    let hours = span.num_hours();
    if span.num_minutes() < 120 {
        format!("the last {} minutes", span.num_minutes())
    } else if hours < 48 {
        format!("the last {hours} hours")
    } else {
        format!("the last {} days", span.num_days())
    }
}

/// A recognised time expression: the window and the byte span of the words that said it (so
/// the search query can drop them).
#[derive(Clone, Debug, PartialEq)]
pub struct TimeExpression {
    pub window: TimeWindow,
    pub start: usize,
    pub end: usize,
}

/// The default window when a question names no time: the last 24 hours, widened when thin.
pub fn default_window(as_of: DateTime<Utc>) -> TimeWindow {
    TimeWindow::last(
        as_of,
        Duration::hours(24),
        "the last 24 hours".into(),
        false,
    )
}

const MONTHS: &str = "jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?";

fn date_pattern() -> String {
    format!(
        r"(?:(?P<iso>\d{{4}}-\d{{2}}-\d{{2}})|(?P<md_m>{MONTHS})\.?\s+(?P<md_d>\d{{1,2}})(?:st|nd|rd|th)?(?:,?\s+(?P<md_y>\d{{4}}))?|(?P<dm_d>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<dm_m>{MONTHS})(?:,?\s+(?P<dm_y>\d{{4}}))?)"
    )
}

static RELATIVE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:in\s+|over\s+|during\s+|within\s+)?(?:the\s+)?(?:last|past)\s+(?P<n>\d+|an?|one|two|three|four|five|six|seven|eight|nine|ten|twelve|few|couple(?:\s+of)?)?\s*(?P<unit>min(?:ute)?s?|h(?:ou)?rs?|hours?|days?|weeks?|months?)\b").expect("a valid built-in regex")
});
static AGO: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?P<n>\d+|an?|one|two|three|four|five|six|seven|eight|nine|ten|few|couple(?:\s+of)?)\s+(?P<unit>min(?:ute)?s?|hours?|hrs?|days?|weeks?)\s+ago\b").expect("a valid built-in regex")
});
static NOW: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:right\s+now|just\s+now|breaking(?:\s+news)?|at\s+the\s+moment|as\s+we\s+speak|currently|latest|live|now)\b").expect("a valid built-in regex")
});
static DAYWORDS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?P<w>today|tonight|this\s+morning|this\s+afternoon|this\s+evening|yesterday|this\s+week|last\s+week|past\s+week|this\s+month|last\s+month)\b").expect("a valid built-in regex")
});
static WEEKDAY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:on\s+|last\s+|this\s+past\s+)?(?P<d>monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b").expect("a valid built-in regex")
});
static RANGE: LazyLock<Regex> = LazyLock::new(|| {
    let d = date_pattern();
    let a = d
        .replace("?P<iso>", "?P<a_iso>")
        .replace("?P<md_m>", "?P<a_md_m>")
        .replace("?P<md_d>", "?P<a_md_d>")
        .replace("?P<md_y>", "?P<a_md_y>")
        .replace("?P<dm_d>", "?P<a_dm_d>")
        .replace("?P<dm_m>", "?P<a_dm_m>")
        .replace("?P<dm_y>", "?P<a_dm_y>");
    Regex::new(&format!(
        r"(?i)\b(?:between|from)\s+{a}\s+(?:and|to|until|till|-)\s+{d}"
    ))
    .expect("a valid built-in regex")
});
static SINCE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"(?i)\bsince\s+{}", date_pattern())).expect("a valid built-in regex")
});
static DATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"(?i)\b(?:on\s+)?{}", date_pattern())).expect("a valid built-in regex")
});

fn number(word: Option<&str>) -> i64 {
    let Some(w) = word else { return 1 };
    let w = w.to_lowercase();
    if let Ok(n) = w.parse::<i64>() {
        return n.clamp(1, 10_000);
    }
    match w.split_whitespace().next().unwrap_or("") {
        "a" | "an" | "one" => 1,
        "two" | "couple" => 2,
        "three" | "few" => 3,
        "four" => 4,
        "five" => 5,
        "six" => 6,
        "seven" => 7,
        "eight" => 8,
        "nine" => 9,
        "ten" => 10,
        "twelve" => 12,
        _ => 1,
    }
}

fn unit(word: &str, n: i64) -> Option<(Duration, &'static str)> {
    let w = word.to_lowercase();
    Some(if w.starts_with("min") {
        (Duration::minutes(n), "minute")
    } else if w.starts_with('h') {
        (Duration::hours(n), "hour")
    } else if w.starts_with('d') {
        (Duration::days(n), "day")
    } else if w.starts_with('w') {
        (Duration::weeks(n), "week")
    } else if w.starts_with("mo") {
        (Duration::days(30 * n), "month")
    } else {
        return None;
    })
}

fn month_number(word: &str) -> Option<u32> {
    let w = word.to_lowercase();
    let names = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    names
        .iter()
        .position(|m| w.starts_with(m))
        .map(|i| i as u32 + 1)
}

/// The date a capture of [`date_pattern`] names (with capture names prefixed by `prefix`).
/// A date without a year is the latest such date not after `as_of`.
fn captured_date(
    caps: &regex::Captures<'_>,
    prefix: &str,
    as_of: DateTime<Utc>,
) -> Option<NaiveDate> {
    let get = |name: &str| caps.name(&format!("{prefix}{name}")).map(|m| m.as_str());
    if let Some(iso) = get("iso") {
        return NaiveDate::parse_from_str(iso, "%Y-%m-%d").ok();
    }
    let (m, d, y) = if let Some(m) = get("md_m") {
        (m, get("md_d")?, get("md_y"))
    } else {
        (get("dm_m")?, get("dm_d")?, get("dm_y"))
    };
    let month = month_number(m)?;
    let day: u32 = d.parse().ok()?;
    match y {
        Some(y) => NaiveDate::from_ymd_opt(y.parse().ok()?, month, day),
        None => {
            let this_year = NaiveDate::from_ymd_opt(as_of.year(), month, day)?;
            if this_year <= as_of.date_naive() {
                Some(this_year)
            } else {
                NaiveDate::from_ymd_opt(as_of.year() - 1, month, day)
            }
        }
    }
}

fn start_of(day: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&day.and_time(NaiveTime::MIN))
}

/// A whole UTC day (cut at `as_of` when the day is today).
fn day_window(day: NaiveDate, as_of: DateTime<Utc>, label: String) -> TimeWindow {
    let from = start_of(day);
    let to = (from + Duration::days(1)).min(as_of.max(from + Duration::minutes(1)));
    TimeWindow::between(from, to, label)
}

/// Finds the first time expression in `question`, most specific patterns first.
pub fn understand(question: &str, as_of: DateTime<Utc>) -> Option<TimeExpression> {
    let found = |m: regex::Match<'_>, window: TimeWindow| TimeExpression {
        window,
        start: m.start(),
        end: m.end(),
    };
    if let Some(c) = RANGE.captures(question) {
        if let (Some(a), Some(b)) = (captured_date(&c, "a_", as_of), captured_date(&c, "", as_of)) {
            let (a, b) = if a <= b { (a, b) } else { (b, a) };
            let from = start_of(a);
            let to = start_of(b) + Duration::days(1);
            return Some(found(
                c.get(0)?,
                TimeWindow::between(from, to, format!("{a} to {b}")),
            ));
        }
    }
    if let Some(c) = SINCE.captures(question) {
        if let Some(a) = captured_date(&c, "", as_of) {
            let from = start_of(a);
            let to = as_of.max(from + Duration::minutes(1));
            return Some(found(
                c.get(0)?,
                TimeWindow::between(from, to, format!("since {a}")),
            ));
        }
    }
    if let Some(c) = RELATIVE.captures(question) {
        let n = number(c.name("n").map(|m| m.as_str()));
        if let Some((span, name)) = unit(&c["unit"], n) {
            let label = if n == 1 {
                format!("the last {name}")
            } else {
                format!("the last {n} {name}s")
            };
            return Some(found(c.get(0)?, TimeWindow::last(as_of, span, label, true)));
        }
    }
    if let Some(c) = AGO.captures(question) {
        let n = number(c.name("n").map(|m| m.as_str()));
        if let Some((span, name)) = unit(&c["unit"], n) {
            let plural = if n == 1 { "" } else { "s" };
            // "2 hours ago": around that time, up to now.
            let reach = span + span / 2;
            return Some(found(
                c.get(0)?,
                TimeWindow::last(
                    as_of,
                    reach,
                    format!("since about {n} {name}{plural} ago"),
                    true,
                ),
            ));
        }
    }
    if let Some(c) = DAYWORDS.captures(question) {
        let w = c["w"].to_lowercase();
        let w = w.split_whitespace().collect::<Vec<_>>().join(" ");
        let today = as_of.date_naive();
        let window = match w.as_str() {
            "today" => day_window(today, as_of, format!("today ({today})")),
            "tonight" | "this evening" => {
                let from = start_of(today) + Duration::hours(17);
                let from = from.min(as_of - Duration::hours(1));
                TimeWindow::between(from, as_of, format!("this evening ({today})"))
            }
            "this morning" | "this afternoon" => {
                let (h0, h1) = if w == "this morning" {
                    (0, 12)
                } else {
                    (12, 18)
                };
                let from = start_of(today) + Duration::hours(h0);
                let to = (start_of(today) + Duration::hours(h1))
                    .min(as_of)
                    .max(from + Duration::minutes(1));
                TimeWindow::between(from, to, format!("{w} ({today})"))
            }
            "yesterday" => {
                let day = today - Duration::days(1);
                day_window(day, as_of, format!("yesterday ({day})"))
            }
            "this week" | "past week" => {
                TimeWindow::last(as_of, Duration::days(7), "the last 7 days".into(), true)
            }
            "last week" => {
                let monday = today - Duration::days(today.weekday().num_days_from_monday() as i64);
                let from = start_of(monday - Duration::days(7));
                let to = start_of(monday);
                TimeWindow::between(
                    from,
                    to,
                    format!(
                        "last week ({} to {})",
                        monday - Duration::days(7),
                        monday - Duration::days(1)
                    ),
                )
            }
            "this month" => {
                TimeWindow::last(as_of, Duration::days(30), "the last 30 days".into(), true)
            }
            "last month" => {
                let first = NaiveDate::from_ymd_opt(today.year(), today.month(), 1)?;
                let prev = (first - Duration::days(1)).with_day(1)?;
                let from = start_of(prev);
                let to = start_of(first);
                TimeWindow::between(from, to, format!("last month ({})", prev.format("%B %Y")))
            }
            _ => return None,
        };
        return Some(found(c.get(0)?, window));
    }
    if let Some(c) = NOW.captures(question) {
        return Some(found(
            c.get(0)?,
            TimeWindow::last(as_of, Duration::hours(2), "the last 2 hours".into(), false),
        ));
    }
    if let Some(c) = DATE.captures(question) {
        if let Some(day) = captured_date(&c, "", as_of) {
            return Some(found(
                c.get(0)?,
                day_window(day, as_of, day.format("%B %-d, %Y").to_string()),
            ));
        }
    }
    if let Some(c) = WEEKDAY.captures(question) {
        let wanted: Weekday = c["d"].parse().ok()?;
        let today = as_of.date_naive();
        let back = (7 + today.weekday().num_days_from_monday() as i64
            - wanted.num_days_from_monday() as i64)
            % 7;
        let day = today - Duration::days(back);
        return Some(found(
            c.get(0)?,
            day_window(day, as_of, format!("{} ({day})", c["d"].to_lowercase())),
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn as_of() -> DateTime<Utc> {
        // A Wednesday.
        Utc.with_ymd_and_hms(2013, 4, 17, 15, 30, 0).unwrap()
    }

    fn window(q: &str) -> TimeWindow {
        understand(q, as_of())
            .unwrap_or_else(|| panic!("no time in {q:?}"))
            .window
    }

    #[test]
    fn relative_windows_end_at_as_of() {
        let w = window("what happened in the last 2 hours in Boston?");
        assert_eq!(w.to, as_of());
        assert_eq!(w.span(), Duration::hours(2));
        assert!(w.explicit);
        assert_eq!(window("past 30 minutes").span(), Duration::minutes(30));
        assert_eq!(window("over the past few days").span(), Duration::days(3));
        assert_eq!(window("in the last hour").span(), Duration::hours(1));
        assert_eq!(window("last week's news?").span(), Duration::days(7));
    }

    #[test]
    fn now_is_short_and_widens() {
        let e = understand("What's happening in Boston right now?", as_of()).unwrap();
        assert_eq!(e.window.span(), Duration::hours(2));
        assert!(!e.window.explicit);
        assert_eq!(
            &"What's happening in Boston right now?"[e.start..e.end],
            "right now"
        );
        let wider = e.window.widen(as_of()).unwrap();
        assert_eq!(wider.span(), Duration::hours(6));
        assert!(window("breaking news about the flood").span() <= Duration::hours(2));
    }

    #[test]
    fn calendar_words() {
        let y = window("what happened yesterday?");
        assert_eq!(y.from, Utc.with_ymd_and_hms(2013, 4, 16, 0, 0, 0).unwrap());
        assert_eq!(y.to, Utc.with_ymd_and_hms(2013, 4, 17, 0, 0, 0).unwrap());
        let t = window("news today");
        assert_eq!(t.from, Utc.with_ymd_and_hms(2013, 4, 17, 0, 0, 0).unwrap());
        assert_eq!(t.to, as_of());
        let lw = window("last week");
        assert!(lw.to <= as_of() && lw.span() == Duration::days(7));
        assert_eq!(window("this week").span(), Duration::days(7));
    }

    #[test]
    fn weekdays_are_the_latest_such_day() {
        let m = window("what did people say on Monday");
        assert_eq!(m.from, Utc.with_ymd_and_hms(2013, 4, 15, 0, 0, 0).unwrap());
        assert_eq!(m.span(), Duration::days(1));
        let w = window("wednesday");
        assert_eq!(w.from, Utc.with_ymd_and_hms(2013, 4, 17, 0, 0, 0).unwrap());
        assert_eq!(w.to, as_of());
    }

    #[test]
    fn dates_and_ranges() {
        let d = window("explosions on April 15");
        assert_eq!(d.from, Utc.with_ymd_and_hms(2013, 4, 15, 0, 0, 0).unwrap());
        let d = window("what happened 2012-10-29?");
        assert_eq!(d.from, Utc.with_ymd_and_hms(2012, 10, 29, 0, 0, 0).unwrap());
        let d = window("the 15th of April 2012");
        assert_eq!(d.from, Utc.with_ymd_and_hms(2012, 4, 15, 0, 0, 0).unwrap());
        // A month-day later than as_of means last year.
        let d = window("on Dec 24");
        assert_eq!(d.from, Utc.with_ymd_and_hms(2012, 12, 24, 0, 0, 0).unwrap());
        let r = window("between April 14 and April 16");
        assert_eq!(r.from, Utc.with_ymd_and_hms(2013, 4, 14, 0, 0, 0).unwrap());
        assert_eq!(r.to, Utc.with_ymd_and_hms(2013, 4, 17, 0, 0, 0).unwrap());
        let s = window("since 2013-04-10");
        assert_eq!(s.from, Utc.with_ymd_and_hms(2013, 4, 10, 0, 0, 0).unwrap());
        assert_eq!(s.to, as_of());
    }

    #[test]
    fn no_time_means_none_and_the_default_widens_stepwise() {
        assert!(understand("who won the election?", as_of()).is_none());
        let mut w = default_window(as_of());
        let mut spans = vec![w.span()];
        while let Some(next) = w.widen(as_of()) {
            spans.push(next.span());
            w = next;
        }
        assert_eq!(spans.len(), 5);
        assert!(spans.windows(2).all(|p| p[0] < p[1]));
    }

    #[test]
    fn explicit_windows_never_widen() {
        assert!(window("yesterday").widen(as_of()).is_none());
    }

    #[test]
    fn ago() {
        let w = window("the fire 3 hours ago");
        assert_eq!(w.to, as_of());
        assert!(w.span() > Duration::hours(3));
    }
}
