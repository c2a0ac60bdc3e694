//! The post: the one record every source converts into (DESIGN §3).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Longest id we accept, in bytes.
pub const MAX_ID_LEN: usize = 512;

/// A source-scoped post id (`bsky:<at-uri>`, `x:<id>`, `mastodon:<host>:<id>`, or the id a
/// pusher gives). Built only through [`PostId::parse`], so it is never empty, never longer than
/// [`MAX_ID_LEN`] and never holds whitespace or control characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PostId(String);

impl PostId {
    /// Trims the id and checks it; the error says what is wrong in words a pusher can act on.
    pub fn parse(raw: &str) -> Result<PostId, String> {
        let id = raw.trim();
        if id.is_empty() {
            return Err("id is empty".into());
        }
        if id.len() > MAX_ID_LEN {
            return Err(format!(
                "id is {} bytes, the limit is {MAX_ID_LEN}",
                id.len()
            ));
        }
        if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("id contains whitespace or control characters".into());
        }
        Ok(PostId(id.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Stable 64-bit hash of the id, used as the dedup key and the vector payload link.
    pub fn hash64(&self) -> u64 {
        xxhash_rust::xxh3::xxh3_64(self.0.as_bytes())
    }

    /// The vector point id: UUIDv5 of the post id in a fixed namespace (DESIGN §4).
    pub fn point_uuid(&self) -> uuid::Uuid {
        uuid::Uuid::new_v5(&POINT_NAMESPACE, self.0.as_bytes())
    }
}

/// Namespace for [`PostId::point_uuid`]; never change it, or every vector id moves.
const POINT_NAMESPACE: uuid::Uuid = uuid::Uuid::from_bytes([
    0x7a, 0x1d, 0x4e, 0x52, 0x2b, 0x8c, 0x4f, 0x0e, 0x9b, 0x57, 0x11, 0x3c, 0x6d, 0x20, 0xa4, 0x91,
]);

impl TryFrom<String> for PostId {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        PostId::parse(&value)
    }
}

impl From<PostId> for String {
    fn from(value: PostId) -> Self {
        value.0
    }
}

impl fmt::Display for PostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Links from this post to others.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PostRefs {
    pub reply_to: Option<String>,
    pub quote_of: Option<String>,
    pub repost_of: Option<String>,
}

/// Engagement counts as the source reported them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Engagement {
    pub likes: u64,
    pub reposts: u64,
    pub replies: u64,
    pub quotes: u64,
}

impl Engagement {
    pub fn total(&self) -> u64 {
        self.likes + self.reposts * 2 + self.replies + self.quotes * 2
    }
}

/// A validated post. Built by `ingest` (which validates once, at the edge). It has no serde
/// form of its own: the index stores it as a versioned record ([`crate::stored`]) and the API
/// shows it through its own view.
#[derive(Clone, Debug, PartialEq)]
pub struct Post {
    pub id: PostId,
    /// The source this post came from (`bsky`, `mastodon`, `push`, `CrisisLexT26`, …).
    pub source: String,
    /// Lowercased handle without the leading `@`.
    pub author: Option<String>,
    pub author_name: Option<String>,
    pub text: String,
    pub created_at: DateTime<Utc>,
    pub ingested_at: DateTime<Utc>,
    pub lang: Option<String>,
    pub url: Option<String>,
    pub refs: PostRefs,
    pub hashtags: Vec<String>,
    pub mentions: Vec<String>,
    pub links: Vec<String>,
    pub engagement: Engagement,
    pub labels: BTreeMap<String, String>,
}

impl Post {
    /// Hash of everything a reader sees; an upsert with the same id and the same content hash
    /// is a duplicate, with a different one an edit.
    pub fn content_hash(&self) -> u64 {
        let mut bytes = Vec::with_capacity(self.text.len() + 64);
        bytes.extend_from_slice(self.text.as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(self.author.as_deref().unwrap_or("").as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(&self.created_at.timestamp_millis().to_le_bytes());
        bytes.extend_from_slice(self.lang.as_deref().unwrap_or("").as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(self.url.as_deref().unwrap_or("").as_bytes());
        let e = &self.engagement;
        for n in [e.likes, e.reposts, e.replies, e.quotes] {
            bytes.extend_from_slice(&n.to_le_bytes());
        }
        for (k, v) in &self.labels {
            bytes.extend_from_slice(k.as_bytes());
            bytes.push(1);
            bytes.extend_from_slice(v.as_bytes());
        }
        xxhash_rust::xxh3::xxh3_64(&bytes)
    }

    /// Near-duplicate key: same for a post and its retweets/reposts (see [`crate::dedup`]).
    pub fn dup_key(&self) -> u64 {
        crate::dedup::near_duplicate_key(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_id_rejects_bad_ids() {
        assert!(PostId::parse("").is_err());
        assert!(PostId::parse("   ").is_err());
        assert!(PostId::parse("a b").is_err());
        assert!(PostId::parse("a\u{7}").is_err());
        assert!(PostId::parse(&"x".repeat(MAX_ID_LEN + 1)).is_err());
        assert_eq!(PostId::parse("  x:1 ").unwrap().as_str(), "x:1");
    }

    #[test]
    fn point_uuid_is_stable_v5() {
        let id = PostId::parse("x:1").unwrap();
        assert_eq!(id.point_uuid(), id.point_uuid());
        assert_eq!(id.point_uuid().get_version_num(), 5);
        assert_ne!(id.point_uuid(), PostId::parse("x:2").unwrap().point_uuid());
    }
}
