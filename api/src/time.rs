//! Parsing of user-supplied times and durations in requests.

use chrono::{DateTime, Utc};
use std::time::Duration;

/// RFC 3339, or a Unix timestamp in seconds.
pub fn parse_time(raw: &str) -> Result<DateTime<Utc>, String> {
    let raw = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(secs) = raw.parse::<i64>() {
        if let Some(t) = DateTime::from_timestamp(secs, 0) {
            return Ok(t);
        }
    }
    Err(format!(
        "`{raw}` is not an RFC 3339 time (2024-03-01T12:00:00Z) or Unix seconds"
    ))
}

/// `90s`, `15m`, `2h`, `3d`, `1w`, or anything `humantime` reads (`1h 30m`).
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    if let Some(weeks) = raw
        .strip_suffix('w')
        .and_then(|n| n.trim().parse::<u64>().ok())
    {
        return Ok(Duration::from_secs(weeks * 7 * 24 * 3600));
    }
    humantime::parse_duration(raw)
        .map_err(|e| format!("`{raw}` is not a duration such as 30m, 2h or 7d ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("1w").unwrap(), Duration::from_secs(604_800));
        assert_eq!(parse_duration("3d").unwrap(), Duration::from_secs(259_200));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn times() {
        assert_eq!(
            parse_time("2024-03-01T00:00:00Z").unwrap().timestamp(),
            1_709_251_200
        );
        assert_eq!(parse_time("1709251200").unwrap().timestamp(), 1_709_251_200);
        assert!(parse_time("yesterday").is_err());
    }
}
