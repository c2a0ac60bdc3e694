//! Request bodies of the conversation API and their checks.

use crate::answer::SearchBody;
use crate::invalid;
use crate::store::records::{self, SearchRecord};
use crate::{ApiError, ErrorCode};
use serde::Deserialize;
use serde_json::{Map, Value};

pub(super) const MAX_CONTENT_CHARS: usize = 8_000;
pub(super) const MAX_TITLE_CHARS: usize = 200;

pub(super) fn check_content(field: &str, text: &str) -> Result<(), ApiError> {
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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateBody {
    pub(super) title: Option<String>,
    pub(super) persona: Option<String>,
    pub(super) search: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    pub(super) limit: Option<i64>,
    pub(super) offset: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchBody {
    pub(super) title: Option<String>,
    /// `null` clears the persona.
    #[serde(default, deserialize_with = "present")]
    pub(super) persona: Option<Option<String>>,
    pub(super) search: Option<Value>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
pub(super) fn present<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Options of a generation, shared by ask, regenerate and edit.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GenerateBody {
    /// The question (ask) or the new text (edit).
    pub(super) content: Option<String>,
    /// Ask: the answer this question follows (default: the end of the active path).
    pub(super) parent_id: Option<String>,
    /// This answer only; the conversation's persona otherwise.
    pub(super) persona: Option<String>,
    /// This answer only, laid over the conversation's search settings.
    pub(super) search: Option<Value>,
    /// Default true: Server-Sent Events.
    pub(super) stream: Option<bool>,
    /// Edit of a question: answer the edited question (default true).
    pub(super) answer: Option<bool>,
    pub(super) max_tokens: Option<u32>,
}
