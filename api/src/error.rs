//! API errors: JSON `{"error": {"code", "message"}}` with stable codes and the right status.
//!
//! Every code a client can see is an [`ErrorCode`] variant (its string is the contract; the
//! OpenAPI document lists them all from [`ErrorCode::ALL`]). A 5xx error whose cause is inside
//! the server answers a generic message and logs the detail; 4xx messages and the upstream
//! model's own error (502) say what to change.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use tidings_index::IndexError;

/// Generates [`ErrorCode`] with its stable strings and [`ErrorCode::ALL`].
macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident => $code:literal,)*) => {
        /// A stable error code: the `error.code` string of every error body.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in the order the OpenAPI document lists them.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as clients see it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }
        }
    };
}

error_codes! {
    /// The body is not JSON (or has an unknown field).
    InvalidJson => "invalid_json",
    /// The body is empty.
    EmptyBody => "empty_body",
    /// The body is JSON of the wrong shape, or could not be read.
    InvalidBody => "invalid_body",
    /// A field's value is out of range or inconsistent with another.
    InvalidRequest => "invalid_request",
    /// A `Content-Type` the route does not take.
    InvalidContentType => "invalid_content_type",
    /// A post id that is not usable.
    InvalidId => "invalid_id",
    /// A message's parent is not in its conversation.
    InvalidParent => "invalid_parent",
    /// A persona nobody defined.
    UnknownPersona => "unknown_persona",
    /// A question or edited message longer than the limit.
    MessageTooLong => "message_too_long",
    /// The body is larger than `server.max_body_bytes`.
    PayloadTooLarge => "payload_too_large",
    /// More posts in one request than `server.max_posts_per_request`.
    TooManyPosts => "too_many_posts",
    /// No such route or resource.
    NotFound => "not_found",
    /// The `model` named in a chat request is not served here.
    ModelNotFound => "model_not_found",
    /// No API key where keys are required.
    MissingApiKey => "missing_api_key",
    /// An unknown or revoked API key.
    InvalidApiKey => "invalid_api_key",
    /// The key lacks the route's scope.
    InsufficientScope => "insufficient_scope",
    /// The key's requests per minute are spent (`Retry-After` says when to come back).
    RateLimited => "rate_limited",
    /// The conversation is generating an answer already.
    ConversationBusy => "conversation_busy",
    /// A stored conversation whose messages do not form a tree.
    CorruptTree => "corrupt_tree",
    /// A stored digest that cannot be read back.
    CorruptDigest => "corrupt_digest",
    /// A webhook address that is not allowed (private, loopback, not http(s)).
    WebhookRefused => "webhook_refused",
    /// No chat model is configured.
    ModelUnavailable => "model_unavailable",
    /// The local model's queue is full (`Retry-After`).
    ModelBusy => "model_busy",
    /// The model did not answer in time.
    ModelTimeout => "model_timeout",
    /// The question and posts do not fit the model's window.
    ContextTooLong => "context_too_long",
    /// The model failed inside the server.
    ModelError => "model_error",
    /// The remote model answered with an error (its message is passed on).
    UpstreamError => "upstream_error",
    /// The remote model could not be reached.
    UpstreamUnavailable => "upstream_unavailable",
    /// The remote model's answer could not be read.
    UpstreamMalformed => "upstream_malformed",
    /// The search behind an answer failed.
    SearchFailed => "search_failed",
    /// The app database (conversations, digests) is missing or failing.
    StoreUnavailable => "store_unavailable",
    /// The index is not available right now.
    Unavailable => "unavailable",
    /// The index did not answer in time.
    Timeout => "timeout",
    /// A failure inside the server (logged).
    Internal => "internal",
}

impl ErrorCode {
    /// Whether a 5xx error with this code may show its message to the client: only the remote
    /// model's errors and the model's load, whose messages are the operator's to act on and
    /// hold nothing of the server's insides.
    fn shows_server_detail(self) -> bool {
        matches!(
            self,
            ErrorCode::UpstreamError
                | ErrorCode::UpstreamUnavailable
                | ErrorCode::UpstreamMalformed
                | ErrorCode::ModelBusy
                | ErrorCode::ModelTimeout
                | ErrorCode::ModelUnavailable
        )
    }

    /// The message a client gets for a 5xx error whose detail stays in the log.
    fn generic_message(self) -> &'static str {
        match self {
            ErrorCode::Unavailable => "the index is not available right now; try again shortly",
            ErrorCode::Timeout => "the index did not answer in time; try again",
            ErrorCode::SearchFailed => {
                "the search behind the answer failed (logged); ask again or regenerate"
            }
            ErrorCode::ModelError => "the model failed inside the server (logged); ask again",
            ErrorCode::CorruptDigest => "the stored digest could not be read (logged)",
            ErrorCode::StoreUnavailable => "the app database failed (logged); try again shortly",
            _ => "internal error; see the server log",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// In the OpenAPI document: a string, one of [`ErrorCode::ALL`].
impl utoipa::PartialSchema for ErrorCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(ErrorCode::ALL.iter().map(|c| c.as_str())))
            .description(Some(
                "Stable: clients may branch on it. Messages may change.",
            ))
            .into()
    }
}

impl utoipa::ToSchema for ErrorCode {}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// The body of every error response: `{"error": {"code", "message", "details"?}}`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub(crate) struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorDetail {
    code: ErrorCode,
    message: String,
    /// Where the code has more to say: the field, the limit, the items.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    details: Option<serde_json::Value>,
}

/// An error answered to the client. 5xx messages stay opaque; their cause is logged here, once.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    pub details: Option<serde_json::Value>,
    /// Seconds for a `Retry-After` header (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with `code`; a 5xx `message` reaches only the log unless the code may show it
    /// ([`ErrorCode`]).
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> ApiError {
        let mut message = message.into();
        if status.is_server_error() && !code.shows_server_detail() {
            tracing::error!(code = code.as_str(), detail = %message, "server error");
            message = code.generic_message().to_string();
        }
        ApiError {
            status,
            code,
            message,
            details: None,
            retry_after: None,
        }
    }
    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }
    pub fn with_retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after = Some(seconds);
        self
    }
    pub fn with_details(mut self, details: serde_json::Value) -> ApiError {
        self.details = Some(details);
        self
    }
}

impl From<IndexError> for ApiError {
    fn from(e: IndexError) -> ApiError {
        match e {
            IndexError::InvalidInput(m) => ApiError::bad_request(ErrorCode::InvalidRequest, m),
            IndexError::Unavailable(m) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable, m)
            }
            IndexError::Timeout(m) => {
                ApiError::new(StatusCode::GATEWAY_TIMEOUT, ErrorCode::Timeout, m)
            }
            IndexError::Internal(m) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, m)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                details: self.details,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(secs),
            );
        }
        response
    }
}

/// Maps a body-reading failure (too large, unreadable) to an API error.
pub(crate) fn body_error(e: axum::extract::rejection::BytesRejection, limit: usize) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!("request body is larger than {limit} bytes; split it into smaller requests"),
        )
    } else {
        ApiError::bad_request(
            ErrorCode::InvalidBody,
            format!("could not read the request body: {e}"),
        )
    }
}

/// A 400 `invalid_request` with `message`.
pub(crate) fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(ErrorCode::InvalidRequest, message)
}
