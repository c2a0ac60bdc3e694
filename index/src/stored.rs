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
use std::borrow::Cow;
use std::collections::BTreeMap;

/// The stored-document version this build writes and reads.
pub const VERSION: u32 = 1;

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Version 1 of the stored post. Written from a borrowed post (the writer encodes every post it
/// indexes, so copying each string first was measurable); read back owned.
#[derive(Debug, Serialize, Deserialize)]
struct PostRecord<'a> {
    #[serde(default)]
    v: u32,
    id: Cow<'a, str>,
    source: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    author: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    author_name: Option<Cow<'a, str>>,
    text: Cow<'a, str>,
    created_at: DateTime<Utc>,
    ingested_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lang: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    url: Option<Cow<'a, str>>,
    #[serde(default)]
    refs: RefsRecord<'a>,
    #[serde(default, skip_serializing_if = "<[String]>::is_empty")]
    hashtags: Cow<'a, [String]>,
    #[serde(default, skip_serializing_if = "<[String]>::is_empty")]
    mentions: Cow<'a, [String]>,
    #[serde(default, skip_serializing_if = "<[String]>::is_empty")]
    links: Cow<'a, [String]>,
    #[serde(default)]
    engagement: EngagementRecord,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    labels: Cow<'a, BTreeMap<String, String>>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct RefsRecord<'a> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reply_to: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    quote_of: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    repost_of: Option<Cow<'a, str>>,
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

fn borrow(s: &Option<String>) -> Option<Cow<'_, str>> {
    s.as_deref().map(Cow::Borrowed)
}

fn record(post: &Post) -> PostRecord<'_> {
    PostRecord {
        v: VERSION,
        id: Cow::Borrowed(post.id.as_str()),
        source: Cow::Borrowed(&post.source),
        author: borrow(&post.author),
        author_name: borrow(&post.author_name),
        text: Cow::Borrowed(&post.text),
        created_at: post.created_at,
        ingested_at: post.ingested_at,
        lang: borrow(&post.lang),
        url: borrow(&post.url),
        refs: RefsRecord {
            reply_to: borrow(&post.refs.reply_to),
            quote_of: borrow(&post.refs.quote_of),
            repost_of: borrow(&post.refs.repost_of),
        },
        hashtags: Cow::Borrowed(&post.hashtags),
        mentions: Cow::Borrowed(&post.mentions),
        links: Cow::Borrowed(&post.links),
        engagement: EngagementRecord {
            likes: post.engagement.likes,
            reposts: post.engagement.reposts,
            replies: post.engagement.replies,
            quotes: post.engagement.quotes,
        },
        labels: Cow::Borrowed(&post.labels),
    }
}

/// Reads a stored document back into a post.
pub fn decode(json: &str) -> Result<Post, String> {
    post_of(serde_json::from_str(json).map_err(|e| e.to_string())?)
}

fn post_of(r: PostRecord<'_>) -> Result<Post, String> {
    match r.v {
        0 | VERSION => {}
        newer => {
            return Err(format!(
                "stored post version {newer} is newer than this build reads ({VERSION}); \
                 rebuild the index or run the newer version"
            ))
        }
    }
    let owned = |s: Option<Cow<'_, str>>| s.map(Cow::into_owned);
    Ok(Post {
        id: PostId::parse(&r.id).map_err(|e| format!("stored post id: {e}"))?,
        source: r.source.into_owned(),
        author: owned(r.author),
        author_name: owned(r.author_name),
        text: r.text.into_owned(),
        created_at: r.created_at,
        ingested_at: r.ingested_at,
        lang: owned(r.lang),
        url: owned(r.url),
        refs: PostRefs {
            reply_to: owned(r.refs.reply_to),
            quote_of: owned(r.refs.quote_of),
            repost_of: owned(r.refs.repost_of),
        },
        hashtags: r.hashtags.into_owned(),
        mentions: r.mentions.into_owned(),
        links: r.links.into_owned(),
        engagement: Engagement {
            likes: r.engagement.likes,
            reposts: r.engagement.reposts,
            replies: r.engagement.replies,
            quotes: r.engagement.quotes,
        },
        labels: r.labels.into_owned(),
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

    /// The stored document's exact bytes: what existing indexes hold must not change when the
    /// record is written differently (it is written from borrowed fields since 2026-12-07).
    #[test]
    fn the_stored_document_keeps_its_exact_shape() {
        assert_eq!(
            encode(&post()).unwrap(),
            r#"{"v":1,"id":"bsky:1","source":"bsky","author":"nhk","author_name":"NHK ニュース","text":"山手線は運転を見合わせています 🚃","created_at":"2023-11-14T22:13:20Z","ingested_at":"2023-11-14T22:13:21Z","lang":"ja","refs":{"reply_to":"bsky:0"},"hashtags":["山手線"],"engagement":{"likes":3},"labels":{"topic":"rail"}}"#
        );
        assert_eq!(
            serde_json::to_string(&to_value(&post())).unwrap(),
            encode(&post()).unwrap()
        );
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
