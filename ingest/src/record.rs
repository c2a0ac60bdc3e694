//! A record as it was sent, read straight from JSON text without building a `serde_json::Value`
//! tree: the known fields by name, every other field kept (it becomes a label), and each string
//! borrowed from the input where it holds no escape sequence. Validation ([`crate::validate`])
//! reads this and nothing else, so a record pushed as a `Value` and one read from a file go
//! through the same checks.
//!
//! Nothing is refused here for its type: a field of the wrong type is kept as it came, and the
//! validator names the field and says what it should be.

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Number, Value};
use std::borrow::Cow;
use std::fmt;

/// A JSON value of any type; strings borrow from the input when they can.
#[derive(Clone, Debug, PartialEq)]
pub enum Loose<'a> {
    Null,
    Bool(bool),
    Number(Number),
    Str(Cow<'a, str>),
    List(Vec<Loose<'a>>),
    Object(Vec<(Cow<'a, str>, Loose<'a>)>),
}

impl<'a> Loose<'a> {
    /// The value of `key` in an object (the last one, as JSON parsers keep it).
    pub fn get(&self, key: &str) -> Option<&Loose<'a>> {
        match self {
            Loose::Object(fields) => fields.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

impl From<Value> for Loose<'static> {
    fn from(value: Value) -> Self {
        match value {
            Value::Null => Loose::Null,
            Value::Bool(b) => Loose::Bool(b),
            Value::Number(n) => Loose::Number(n),
            Value::String(s) => Loose::Str(Cow::Owned(s)),
            Value::Array(items) => Loose::List(items.into_iter().map(Loose::from).collect()),
            Value::Object(map) => Loose::Object(
                map.into_iter()
                    .map(|(k, v)| (Cow::Owned(k), Loose::from(v)))
                    .collect(),
            ),
        }
    }
}

struct LooseVisitor;

impl<'de> Visitor<'de> for LooseVisitor {
    type Value = Loose<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Loose<'de>, E> {
        Ok(Loose::Null)
    }
    fn visit_none<E>(self) -> Result<Loose<'de>, E> {
        Ok(Loose::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Loose<'de>, D::Error> {
        Loose::deserialize(d)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Loose<'de>, E> {
        Ok(Loose::Bool(b))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Loose<'de>, E> {
        Ok(Loose::Number(n.into()))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Loose<'de>, E> {
        Ok(Loose::Number(n.into()))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Loose<'de>, E> {
        // JSON text cannot hold NaN or infinities; a non-JSON deserializer's are kept as null.
        Ok(Number::from_f64(n).map_or(Loose::Null, Loose::Number))
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Loose<'de>, E> {
        Ok(Loose::Str(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Loose<'de>, E> {
        Ok(Loose::Str(Cow::Owned(s.to_owned())))
    }
    fn visit_string<E>(self, s: String) -> Result<Loose<'de>, E> {
        Ok(Loose::Str(Cow::Owned(s)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Loose<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element::<Loose<'de>>()? {
            items.push(item);
        }
        Ok(Loose::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Loose<'de>, A::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
        while let Some(key) = map.next_key::<Key<'de>>()? {
            fields.push((key.0, map.next_value::<Loose<'de>>()?));
        }
        Ok(Loose::Object(fields))
    }
}

impl<'de> Deserialize<'de> for Loose<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LooseVisitor)
    }
}

/// An object key, borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// The fields a post record may have, by name (see `DESIGN.md`, "Post").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Id,
    Text,
    CreatedAt,
    Author,
    AuthorName,
    Lang,
    Url,
    Source,
    ReplyTo,
    QuoteOf,
    RepostOf,
    Hashtags,
    Mentions,
    Links,
    Likes,
    Reposts,
    Replies,
    Quotes,
    Engagement,
    Labels,
    IngestedAt,
}

impl Field {
    pub const ALL: [Field; 21] = [
        Field::Id,
        Field::Text,
        Field::CreatedAt,
        Field::Author,
        Field::AuthorName,
        Field::Lang,
        Field::Url,
        Field::Source,
        Field::ReplyTo,
        Field::QuoteOf,
        Field::RepostOf,
        Field::Hashtags,
        Field::Mentions,
        Field::Links,
        Field::Likes,
        Field::Reposts,
        Field::Replies,
        Field::Quotes,
        Field::Engagement,
        Field::Labels,
        Field::IngestedAt,
    ];

    /// The field's name in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Field::Id => "id",
            Field::Text => "text",
            Field::CreatedAt => "created_at",
            Field::Author => "author",
            Field::AuthorName => "author_name",
            Field::Lang => "lang",
            Field::Url => "url",
            Field::Source => "source",
            Field::ReplyTo => "reply_to",
            Field::QuoteOf => "quote_of",
            Field::RepostOf => "repost_of",
            Field::Hashtags => "hashtags",
            Field::Mentions => "mentions",
            Field::Links => "links",
            Field::Likes => "likes",
            Field::Reposts => "reposts",
            Field::Replies => "replies",
            Field::Quotes => "quotes",
            Field::Engagement => "engagement",
            Field::Labels => "labels",
            Field::IngestedAt => "ingested_at",
        }
    }

    pub fn from_name(name: &str) -> Option<Field> {
        Some(match name {
            "id" => Field::Id,
            "text" => Field::Text,
            "created_at" => Field::CreatedAt,
            "author" => Field::Author,
            "author_name" => Field::AuthorName,
            "lang" => Field::Lang,
            "url" => Field::Url,
            "source" => Field::Source,
            "reply_to" => Field::ReplyTo,
            "quote_of" => Field::QuoteOf,
            "repost_of" => Field::RepostOf,
            "hashtags" => Field::Hashtags,
            "mentions" => Field::Mentions,
            "links" => Field::Links,
            "likes" => Field::Likes,
            "reposts" => Field::Reposts,
            "replies" => Field::Replies,
            "quotes" => Field::Quotes,
            "engagement" => Field::Engagement,
            "labels" => Field::Labels,
            "ingested_at" => Field::IngestedAt,
            _ => return None,
        })
    }
}

/// One post record as sent: a slot per known field, and the other fields in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Record<'a> {
    known: [Option<Loose<'a>>; Field::ALL.len()],
    /// Fields no source defines (a data set's `event`, say); they become labels.
    pub extra: Vec<(Cow<'a, str>, Loose<'a>)>,
}

impl<'a> Record<'a> {
    /// Takes the value of a known field out of the record.
    pub fn take(&mut self, field: Field) -> Option<Loose<'a>> {
        self.known[field as usize].take()
    }

    pub fn get(&self, field: Field) -> Option<&Loose<'a>> {
        self.known[field as usize].as_ref()
    }

    /// Sets a field by name: a known one into its slot (a later copy replaces an earlier one,
    /// as JSON parsers do), any other one into `extra`.
    pub fn insert(&mut self, key: Cow<'a, str>, value: Loose<'a>) {
        match Field::from_name(&key) {
            Some(field) => self.known[field as usize] = Some(value),
            None => self.extra.push((key, value)),
        }
    }

    /// The record of a JSON object; `None` for any other value.
    pub fn from_loose(value: Loose<'a>) -> Option<Record<'a>> {
        let Loose::Object(fields) = value else {
            return None;
        };
        let mut record = Record::default();
        for (k, v) in fields {
            record.insert(k, v);
        }
        Some(record)
    }

    /// The record of an already parsed JSON object; `None` for any other value.
    pub fn from_value(value: Value) -> Option<Record<'static>> {
        let Value::Object(map) = value else {
            return None;
        };
        let mut record = Record::default();
        for (k, v) in map {
            record.insert(Cow::Owned(k), Loose::from(v));
        }
        Some(record)
    }

    /// The id of the record, if it has a usable one (for reports about refused records).
    pub fn id(&self) -> Option<String> {
        match self.get(Field::Id)? {
            Loose::Str(s) => Some(s.to_string()),
            Loose::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

/// A top-level JSON value: a record when it is an object.
pub enum TopLevel<'a> {
    Record(Record<'a>),
    /// Valid JSON that is not an object.
    NotAnObject,
}

impl<'de> Deserialize<'de> for TopLevel<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TopVisitor;
        impl<'de> Visitor<'de> for TopVisitor {
            type Value = TopLevel<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopLevel<'de>, A::Error> {
                let mut record = Record::default();
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    let value = map.next_value::<Loose<'de>>()?;
                    record.insert(key.0, value);
                }
                Ok(TopLevel::Record(record))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TopLevel<'de>, A::Error> {
                // Read to the end, so that malformed JSON inside is still reported as such.
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(TopLevel::NotAnObject)
            }
            fn visit_bool<E>(self, _: bool) -> Result<TopLevel<'de>, E> {
                Ok(TopLevel::NotAnObject)
            }
            fn visit_u64<E>(self, _: u64) -> Result<TopLevel<'de>, E> {
                Ok(TopLevel::NotAnObject)
            }
            fn visit_i64<E>(self, _: i64) -> Result<TopLevel<'de>, E> {
                Ok(TopLevel::NotAnObject)
            }
            fn visit_f64<E>(self, _: f64) -> Result<TopLevel<'de>, E> {
                Ok(TopLevel::NotAnObject)
            }
            fn visit_str<E>(self, _: &str) -> Result<TopLevel<'de>, E> {
                Ok(TopLevel::NotAnObject)
            }
            fn visit_unit<E>(self) -> Result<TopLevel<'de>, E> {
                Ok(TopLevel::NotAnObject)
            }
        }
        d.deserialize_any(TopVisitor)
    }
}

/// Parses one JSON text.
pub fn parse(text: &str) -> Result<TopLevel<'_>, serde_json::Error> {
    serde_json::from_str(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn record(text: &str) -> Record<'_> {
        match parse(text).expect("valid JSON") {
            TopLevel::Record(r) => r,
            TopLevel::NotAnObject => panic!("not an object: {text}"),
        }
    }

    #[test]
    fn plain_strings_borrow_and_escaped_ones_are_decoded() {
        let r = record(r#"{"id":"a1","text":"caf\u00e9 \"x\"","event":"flood"}"#);
        assert!(matches!(
            r.get(Field::Id),
            Some(Loose::Str(Cow::Borrowed("a1")))
        ));
        assert_eq!(
            r.get(Field::Text),
            Some(&Loose::Str(Cow::Owned("café \"x\"".into())))
        );
        assert_eq!(
            r.extra,
            vec![(Cow::Borrowed("event"), Loose::Str(Cow::Borrowed("flood")))]
        );
    }

    #[test]
    fn a_later_copy_of_a_field_wins() {
        let r = record(r#"{"id":"1","id":"2","event":"a","event":"b"}"#);
        assert_eq!(r.id().as_deref(), Some("2"));
        let v = Record::from_value(json!({"id": "2", "event": "b"})).expect("object");
        assert_eq!(v.id().as_deref(), Some("2"));
    }

    #[test]
    fn anything_but_an_object_is_not_a_record() {
        for text in ["[1,2]", "3", "\"x\"", "null", "true", "-2.5"] {
            assert!(matches!(parse(text), Ok(TopLevel::NotAnObject)), "{text}");
        }
        for text in ["[1,", "{\"a\":}", "{\"a\":1}x", ""] {
            assert!(parse(text).is_err(), "{text}");
        }
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            (-1e12f64..1e12).prop_map(|n| json!(n)),
            "\\PC{0,20}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec(("\\PC{0,8}", inner), 0..5)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Reading JSON text straight into a record gives what reading it into a `Value` first
        /// gives, for values of every type and keys and strings in any script.
        #[test]
        fn text_and_value_give_the_same_record(fields in prop::collection::vec(
            (prop_oneof![
                prop::sample::select(Field::ALL.map(Field::name).to_vec()).prop_map(String::from),
                "\\PC{0,12}",
            ], arb_json()),
            0..8,
        )) {
            let text = Value::Object(fields.into_iter().collect()).to_string();
            let from_text = record(&text);
            let value: Value = serde_json::from_str(&text).expect("valid JSON");
            let from_value = Record::from_value(value).expect("object");
            prop_assert_eq!(from_text, from_value);
        }
    }
}
