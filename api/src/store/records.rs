//! Versioned storage records: the JSON that the database keeps for a digest definition and for
//! a conversation's search settings. They are not the API's request bodies: the routes convert
//! between the two by hand (`digests::types`, `answer::SearchBody`), so a field renamed
//! in the API does not silently change what old rows mean, and a row written by another version
//! is refused with a reason instead of being read as something else.
//!
//! Every record is written with `"version": 1`. Rows written before records carried a version
//! have exactly the version-1 shape and read as version 1. A record of a newer version is an
//! error ([`RecordError::Newer`]); a change that an older reader cannot ignore must bump
//! [`VERSION`] and add a conversion from the older shapes here.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The record version this build writes and reads.
pub const VERSION: u64 = 1;

/// Why a stored record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{kind} record version {found} is newer than this build reads ({VERSION})")]
    Newer { kind: &'static str, found: u64 },
    #[error("{kind} record has an invalid version field")]
    BadVersion { kind: &'static str },
    #[error("{kind} record does not parse: {detail}")]
    Shape { kind: &'static str, detail: String },
}

/// A record type: its name in errors.
pub trait Record: Serialize + DeserializeOwned {
    const KIND: &'static str;
}

/// The stored JSON of `record`, with its version.
pub fn write<R: Record>(record: &R) -> Value {
    let mut v = serde_json::to_value(record).unwrap_or_else(|_| Value::Object(Default::default()));
    if let Value::Object(o) = &mut v {
        o.insert("version".into(), Value::from(VERSION));
    }
    v
}

/// Reads a stored record back (one without a version is a version-1 row from before versions).
pub fn read<R: Record>(stored: &Value) -> Result<R, RecordError> {
    let mut v = stored.clone();
    if let Value::Object(o) = &mut v {
        match o.remove("version") {
            None => {}
            Some(n) => match n.as_u64() {
                Some(VERSION) => {}
                Some(found) => {
                    return Err(RecordError::Newer {
                        kind: R::KIND,
                        found,
                    })
                }
                None => return Err(RecordError::BadVersion { kind: R::KIND }),
            },
        }
    }
    serde_json::from_value(v).map_err(|e| RecordError::Shape {
        kind: R::KIND,
        detail: e.to_string(),
    })
}

/// A digest definition (version 1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigestRecord {
    pub name: String,
    #[serde(default)]
    pub scope: DigestScopeRecord,
    /// A duration as written by the user ("24h", "7d").
    pub window: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persona: Option<String>,
    pub max_stories: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleRecord>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<WebhookRecord>,
}

impl Record for DigestRecord {
    const KIND: &'static str = "digest";
}

/// What a digest covers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigestScopeRecord {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub query: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub handles: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hashtags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub langs: Vec<String>,
}

/// When a digest runs by itself.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed: Option<String>,
}

/// A webhook target with its signing secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookRecord {
    pub url: String,
    pub secret: String,
}

/// A conversation's search settings (version 1): what each answer's search starts from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub handles: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_handles: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub langs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_results: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

impl Record for SearchRecord {
    const KIND: &'static str = "search settings";
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_carry_their_version_and_read_back() {
        let r = SearchRecord {
            window: Some("6h".into()),
            langs: vec!["ja".into()],
            ..SearchRecord::default()
        };
        let stored = write(&r);
        assert_eq!(
            stored,
            json!({"version": 1, "window": "6h", "langs": ["ja"]})
        );
        assert_eq!(read::<SearchRecord>(&stored).unwrap(), r);
    }

    #[test]
    fn rows_from_before_versions_read_as_version_one() {
        let d: DigestRecord =
            read(&json!({"name": "Floods", "window": "24h", "max_stories": 5})).unwrap();
        assert_eq!(d.name, "Floods");
        assert_eq!(d.scope, DigestScopeRecord::default());
    }

    #[test]
    fn newer_or_other_shapes_are_refused_with_a_reason() {
        let newer = read::<SearchRecord>(&json!({"version": 2, "window": "6h"})).unwrap_err();
        assert!(newer.to_string().contains("version 2 is newer"), "{newer}");
        let renamed = read::<DigestRecord>(&json!({"name": "F", "windw": "24h", "max_stories": 5}))
            .unwrap_err();
        assert!(matches!(renamed, RecordError::Shape { .. }), "{renamed}");
        let bad = read::<SearchRecord>(&json!({"version": "one"})).unwrap_err();
        assert!(matches!(bad, RecordError::BadVersion { .. }));
    }
}
