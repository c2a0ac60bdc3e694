//! The stored document: how a [`Post`] is kept in the text index's `doc` field. It is its own
//! versioned record, converted by hand, so that changing the `Post` type (a renamed field, a
//! new one) cannot silently change what an existing index means: an index written by another
//! version is read through its own record shape or refused with a reason.
//!
//! Version 1 is written with `"v": 1`; documents from before the version field have exactly the
//! version-1 shape and read as version 1. Conversations keep the posts an answer cited in the
//! same record ([`to_value`], [`from_value`]). A change an older reader cannot ignore bumps
//! [`VERSION`] and keeps a conversion from the older shape here.

use crate::post::{Engagement, Post, PostId, PostRefs};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The stored-document version this build writes and reads.
pub const VERSION: u32 = 1;

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Version 1 of the stored post.
#[derive(Debug, Serialize, Deserialize)]
struct PostRecord {
    #[serde(default)]
    v: u32,
    id: String,
    source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    author_name: Option<String>,
    text: String,
    created_at: DateTime<Utc>,
    ingested_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lang: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(default)]
    refs: RefsRecord,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    hashtags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    mentions: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    links: Vec<String>,
    #[serde(default)]
    engagement: EngagementRecord,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct RefsRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reply_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    quote_of: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    repost_of: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct EngagementRecord {
    #[serde(default, skip_serializing_if = "is_zero")]
    likes: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    reposts: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    replies: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    quotes: u64,
}

/// The stored JSON of `post`, as text.
pub fn encode(post: &Post) -> Result<String, String> {
    serde_json::to_string(&record(post)).map_err(|e| e.to_string())
}

/// The stored JSON of `post` (also what a conversation keeps of the posts an answer cited).
pub fn to_value(post: &Post) -> serde_json::Value {
    serde_json::to_value(record(post)).unwrap_or(serde_json::Value::Null)
}

/// Reads a post from its stored JSON value (see [`to_value`]).
pub fn from_value(value: serde_json::Value) -> Result<Post, String> {
    post_of(serde_json::from_value(value).map_err(|e| e.to_string())?)
}

fn record(post: &Post) -> PostRecord {
    PostRecord {
        v: VERSION,
        id: post.id.to_string(),
        source: post.source.clone(),
        author: post.author.clone(),
        author_name: post.author_name.clone(),
        text: post.text.clone(),
        created_at: post.created_at,
        ingested_at: post.ingested_at,
        lang: post.lang.clone(),
        url: post.url.clone(),
        refs: RefsRecord {
            reply_to: post.refs.reply_to.clone(),
            quote_of: post.refs.quote_of.clone(),
            repost_of: post.refs.repost_of.clone(),
        },
        hashtags: post.hashtags.clone(),
        mentions: post.mentions.clone(),
        links: post.links.clone(),
        engagement: EngagementRecord {
            likes: post.engagement.likes,
            reposts: post.engagement.reposts,
            replies: post.engagement.replies,
            quotes: post.engagement.quotes,
        },
        labels: post.labels.clone(),
    }
}

/// Reads a stored document back into a post.
pub fn decode(json: &str) -> Result<Post, String> {
    post_of(serde_json::from_str(json).map_err(|e| e.to_string())?)
}

fn post_of(r: PostRecord) -> Result<Post, String> {
    match r.v {
        0 | VERSION => {}
        newer => {
            return Err(format!(
                "stored post version {newer} is newer than this build reads ({VERSION}); \
                 rebuild the index or run the newer version"
            ))
        }
    }
    Ok(Post {
        id: PostId::parse(&r.id).map_err(|e| format!("stored post id: {e}"))?,
        source: r.source,
        author: r.author,
        author_name: r.author_name,
        text: r.text,
        created_at: r.created_at,
        ingested_at: r.ingested_at,
        lang: r.lang,
        url: r.url,
        refs: PostRefs {
            reply_to: r.refs.reply_to,
            quote_of: r.refs.quote_of,
            repost_of: r.refs.repost_of,
        },
        hashtags: r.hashtags,
        mentions: r.mentions,
        links: r.links,
        engagement: Engagement {
            likes: r.engagement.likes,
            reposts: r.engagement.reposts,
            replies: r.engagement.replies,
            quotes: r.engagement.quotes,
        },
        labels: r.labels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post() -> Post {
        Post {
            id: PostId::parse("bsky:1").unwrap(),
            source: "bsky".into(),
            author: Some("nhk".into()),
            author_name: Some("NHK ニュース".into()),
            text: "山手線は運転を見合わせています 🚃".into(),
            created_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            ingested_at: DateTime::from_timestamp(1_700_000_001, 0).unwrap(),
            lang: Some("ja".into()),
            url: None,
            refs: PostRefs {
                reply_to: Some("bsky:0".into()),
                ..PostRefs::default()
            },
            hashtags: vec!["山手線".into()],
            mentions: vec![],
            links: vec![],
            engagement: Engagement {
                likes: 3,
                ..Engagement::default()
            },
            labels: BTreeMap::from([("topic".into(), "rail".into())]),
        }
    }

    #[test]
    fn a_post_reads_back_as_written_with_its_version() {
        let json = encode(&post()).unwrap();
        assert!(json.contains("\"v\":1"), "{json}");
        assert_eq!(decode(&json).unwrap(), post());
    }

    #[test]
    fn documents_from_before_versions_read_and_newer_ones_are_refused() {
        let old = r#"{"id":"x:1","source":"x","text":"hi","created_at":"2026-01-01T00:00:00Z",
            "ingested_at":"2026-01-01T00:00:01Z","refs":{},"engagement":{"likes":0,"reposts":0,"replies":0,"quotes":0}}"#;
        assert_eq!(decode(old).unwrap().text, "hi");
        let newer = old.replacen("{\"id\"", "{\"v\":2,\"id\"", 1);
        assert!(decode(&newer).unwrap_err().contains("version 2 is newer"));
    }
}
