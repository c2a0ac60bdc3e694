//! Request bodies of the conversation API and their checks.

use crate::answer::SearchBody;
use crate::invalid;
use crate::store::records::{self, SearchRecord};
use crate::{ApiError, ErrorCode};
use serde::Deserialize;
use serde_json::{Map, Value};

pub(super) const MAX_CONTENT_CHARS: usize = 8_000;
pub(super) const MAX_TITLE_CHARS: usize = 200;

fn check_content(field: &str, text: &str) -> Result<(), ApiError> {
    if text.trim().is_empty() {
        return Err(invalid(format!("`{field}` is empty")));
    }
    if text.chars().count() > MAX_CONTENT_CHARS {
        return Err(ApiError::bad_request(
            ErrorCode::MessageTooLong,
            format!("`{field}` is longer than {MAX_CONTENT_CHARS} characters"),
        ));
    }
    Ok(())
}

/// The `search` settings a client sent for a conversation, checked, as the record to store.
pub(super) fn search_record(settings: &Value) -> Result<Value, ApiError> {
    let body: SearchBody =
        serde_json::from_value(settings.clone()).map_err(|e| invalid(format!("search: {e}")))?;
    let record = SearchRecord::from(&body);
    body.options()?;
    Ok(records::write(&record))
}

/// A conversation's stored search settings in the API's shape (what `search` shows and what
/// overrides are laid over).
pub(super) fn search_view(stored: &Value) -> Result<Value, ApiError> {
    let internal = |detail: String| {
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            format!("a conversation's stored search settings: {detail}"),
        )
    };
    let record = records::read::<SearchRecord>(stored).map_err(|e| internal(e.to_string()))?;
    let view =
        serde_json::to_value(SearchBody::from(record)).map_err(|e| internal(e.to_string()))?;
    // Keys in one canonical (alphabetical) order, whatever order the client wrote them in.
    let mut fields: Vec<(String, Value)> = match view {
        Value::Object(o) => o.into_iter().collect(),
        _ => Vec::new(),
    };
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Value::Object(fields.into_iter().collect()))
}

/// The conversation's search settings with `overrides` laid over them, field by field.
pub(super) fn merged_search(
    conversation: &Value,
    overrides: Option<&Value>,
) -> Result<SearchBody, ApiError> {
    let mut merged: Map<String, Value> = search_view(conversation)?
        .as_object()
        .cloned()
        .unwrap_or_default();
    if let Some(Value::Object(o)) = overrides {
        for (k, v) in o {
            if v.is_null() {
                merged.remove(k);
            } else {
                merged.insert(k.clone(), v.clone());
            }
        }
    }
    serde_json::from_value(Value::Object(merged)).map_err(|e| invalid(format!("search: {e}")))
}

/// A new conversation.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ConversationRequest)]
pub(crate) struct CreateBody {
    /// Up to 200 characters; default: the first question, shortened.
    pub(super) title: Option<String>,
    /// `regular`, `fun`, or a persona the server defines.
    pub(super) persona: Option<String>,
    /// Search settings every answer starts from.
    #[schema(value_type = Option<SearchBody>)]
    pub(super) search: Option<Value>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// 1..200 (default 50).
    pub(super) limit: Option<i64>,
    pub(super) offset: Option<i64>,
}

/// Changes to a conversation; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ConversationPatch)]
pub(crate) struct PatchBody {
    pub(super) title: Option<String>,
    /// `null` clears the persona.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub(super) persona: Option<Option<String>>,
    /// Replaces the stored search settings.
    #[schema(value_type = Option<SearchBody>)]
    pub(super) search: Option<Value>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
pub(super) fn present<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Options of a generation, shared by ask, regenerate and edit.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = GenerateRequest)]
pub(crate) struct GenerateBody {
    /// The question (ask) or the new text (edit).
    pub(super) content: Option<String>,
    /// Ask: the answer this question follows (default: the end of the active path).
    pub(super) parent_id: Option<String>,
    /// This answer only; the conversation's persona otherwise.
    pub(super) persona: Option<String>,
    /// This answer only, laid over the conversation's search settings field by field (a
    /// field set to `null` is left out).
    #[schema(value_type = Option<SearchBody>)]
    pub(super) search: Option<Value>,
    /// Default true: Server-Sent Events.
    pub(super) stream: Option<bool>,
    /// Edit of a question: answer the edited question (default true).
    pub(super) answer: Option<bool>,
    pub(super) max_tokens: Option<u32>,
}

/// The generation routes; each takes some of a [`GenerateBody`]'s fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Op {
    /// A new question: `content` (and `parent_id`).
    Ask,
    /// Another answer to a question: neither `content` nor `parent_id`.
    Regenerate,
    /// A new version beside a message: `content`, no `parent_id`.
    Edit,
}

impl GenerateBody {
    /// Checks that the body holds what `op` takes; returns the content for ask and edit.
    pub(super) fn check(&self, op: Op) -> Result<Option<String>, ApiError> {
        if op == Op::Regenerate {
            if self.content.is_some() || self.parent_id.is_some() {
                return Err(invalid(
                    "regenerate takes no `content` or `parent_id`; use edit to change a message",
                ));
            }
            return Ok(None);
        }
        let content = self.content.clone().unwrap_or_default();
        check_content("content", &content)?;
        if op == Op::Edit && self.parent_id.is_some() {
            return Err(invalid(
                "edit takes no `parent_id`: the edit sits beside the message",
            ));
        }
        Ok(Some(content))
    }

    /// An edited answer is stored as written, not regenerated: it takes only `content`.
    pub(super) fn check_answer_edit(&self) -> Result<(), ApiError> {
        if self.persona.is_some() || self.search.is_some() || self.answer.is_some() {
            return Err(invalid(
                "an edited answer is not regenerated: send only `content`",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> GenerateBody {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn each_route_takes_its_fields() {
        let ask = body(r#"{"content": "What happened in 東京?", "parent_id": "m1"}"#);
        assert_eq!(
            ask.check(Op::Ask).unwrap().as_deref(),
            Some("What happened in 東京?")
        );
        assert_eq!(
            ask.check(Op::Regenerate).unwrap_err().code,
            "invalid_request"
        );
        assert_eq!(ask.check(Op::Edit).unwrap_err().code, "invalid_request");
        assert_eq!(body("{}").check(Op::Regenerate).unwrap(), None);
        assert!(
            body("{}").check(Op::Ask).is_err(),
            "a question needs content"
        );
        let long = format!(r#"{{"content": "{}"}}"#, "ü".repeat(MAX_CONTENT_CHARS + 1));
        assert_eq!(
            body(&long).check(Op::Edit).unwrap_err().code,
            "message_too_long"
        );
        assert!(body(r#"{"content": "x"}"#).check_answer_edit().is_ok());
        assert!(body(r#"{"content": "x", "answer": false}"#)
            .check_answer_edit()
            .is_err());
    }
}
