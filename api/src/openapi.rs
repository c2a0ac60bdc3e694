//! `GET /openapi.json`: an OpenAPI 3.1 description of every endpoint. Written by hand next to the
//! router; an HTTP test (`tests/api/openapi.rs`) calls every described operation and checks
//! that the router serves it.

use axum::Json;
use serde_json::{json, Value};

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
}

fn json_body(schema: &str) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

fn ok_json(description: &str, schema: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

/// The document.
pub(crate) fn document() -> Value {
    let read = json!([{"bearer": []}]);
    let errors = |extra: &[(&str, &str)]| {
        let mut m = serde_json::Map::new();
        m.insert(
            "400".into(),
            error_response("Invalid request (`invalid_request`, `invalid_json`, ...)"),
        );
        m.insert(
            "401".into(),
            error_response("Missing or unknown API key (only when keys exist)"),
        );
        m.insert("403".into(), error_response("The key lacks the scope"));
        m.insert(
            "429".into(),
            error_response("Rate limited; see `Retry-After`"),
        );
        for (code, d) in extra {
            m.insert((*code).into(), error_response(d));
        }
        Value::Object(m)
    };
    let mut search_responses = errors(&[]);
    search_responses["200"] = ok_json("Hits with score breakdown", "SearchResponse");
    let mut chat_responses = errors(&[
        ("404", "Unknown model (`model_not_found`)"),
        ("502", "The upstream model failed (`upstream_error`, `upstream_malformed`, `upstream_unavailable`)"),
        ("503", "The local model's queue is full (`model_busy`, with `Retry-After`) or no model is configured"),
        ("504", "The model timed out (`model_timeout`)"),
    ]);
    chat_responses["200"] = json!({
        "description": "A chat completion; with `stream: true` an SSE stream of `chat.completion.chunk` objects ending in `data: [DONE]`. The last content chunk carries the extension fields.",
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ChatCompletion"}},
            "text/event-stream": {"schema": {"type": "string"}}
        }
    });
    let mut push_responses = errors(&[(
        "413",
        "Body or post count over the limit (`payload_too_large`, `too_many_posts`)",
    )]);
    push_responses["200"] = ok_json(
        "Per-item results; accepted posts are durable and searchable",
        "PushResponse",
    );
    let mut get_post = errors(&[("404", "No such post")]);
    get_post["200"] = ok_json("The post", "Post");
    let mut delete_post = errors(&[("404", "No such post")]);
    delete_post["200"] = json!({"description": "Deleted from both indexes"});
    let mut models = errors(&[]);
    models["200"] = json!({"description": "Models and personas (`tidings`, `tidings-<persona>`, the backend model)"});
    let search_params: Vec<Value> = [
        ("q", "Query text"),
        ("since", "Window ending at as_of: 30m, 2h, 7d"),
        ("from", "RFC 3339 or Unix seconds"),
        ("to", "RFC 3339 or Unix seconds"),
        ("as_of", "\"Now\" for the window and recency decay"),
        ("authors", "Comma-separated handles"),
        ("exclude_authors", "Comma-separated handles"),
        ("sources", "Comma-separated sources"),
        ("langs", "Comma-separated language codes"),
        ("limit", "1..100"),
        ("mode", "hybrid | text | vector"),
        ("half_life", "Recency half-life (1h) or off"),
        ("collapse", "Collapse near-duplicates (default true)"),
    ]
    .iter()
    .map(|(n, d)| json!({"name": n, "in": "query", "required": false, "description": d, "schema": {"type": "string"}}))
    .collect();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Tidings",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Answers about what is happening now, grounded in a live stream of posts. Errors are `{\"error\": {\"code\", \"message\"}}` with stable codes. When API keys exist, send `Authorization: Bearer tdk_...`; scopes: read, ingest, admin."
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {}}}}},
                "Post": {"type": "object", "required": ["id", "text", "created_at"], "properties": {
                    "id": {"type": "string"}, "source": {"type": "string"}, "url": {"type": "string"},
                    "author": {"type": "string"}, "author_name": {"type": "string"}, "text": {"type": "string"},
                    "created_at": {"type": "string", "format": "date-time"}, "lang": {"type": "string"},
                    "hashtags": {"type": "array", "items": {"type": "string"}},
                    "mentions": {"type": "array", "items": {"type": "string"}},
                    "links": {"type": "array", "items": {"type": "string"}},
                    "engagement": {"type": "object"}, "labels": {"type": "object"}}},
                "PushRequest": {"oneOf": [{"type": "array", "items": {"$ref": "#/components/schemas/Post"}}, {"$ref": "#/components/schemas/Post"}], "description": "A JSON array, one post, or NDJSON (Content-Type: application/x-ndjson)"},
                "PushResponse": {"type": "object", "properties": {"accepted": {"type": "integer"}, "duplicates": {"type": "integer"}, "updated": {"type": "integer"}, "rejected": {"type": "integer"}, "durable": {"type": "boolean"}, "results": {"type": "array", "items": {"type": "object"}}}},
                "SearchRequest": {"type": "object", "properties": {
                    "q": {"type": "string"}, "since": {"type": "string"}, "from": {"type": "string"}, "to": {"type": "string"},
                    "as_of": {"type": "string"}, "authors": {"type": "array", "items": {"type": "string"}},
                    "exclude_authors": {"type": "array", "items": {"type": "string"}}, "sources": {"type": "array", "items": {"type": "string"}},
                    "langs": {"type": "array", "items": {"type": "string"}}, "limit": {"type": "integer"},
                    "mode": {"enum": ["hybrid", "text", "vector"]}, "half_life": {"type": "string"}, "collapse": {"type": "boolean"}}},
                "SearchResponse": {"type": "object", "properties": {"query": {"type": "string"}, "hits": {"type": "array", "items": {"type": "object"}}, "took_ms": {"type": "number"}, "degraded": {"type": "string"}}},
                "ChatRequest": {"type": "object", "required": ["messages"], "properties": {
                    "model": {"type": "string", "description": "tidings, tidings-<persona>, or the backend model id"},
                    "messages": {"type": "array", "items": {"type": "object", "required": ["role", "content"], "properties": {"role": {"enum": ["system", "developer", "user", "assistant"]}, "content": {}}}},
                    "stream": {"type": "boolean"},
                    "stream_options": {"type": "object", "properties": {"include_usage": {"type": "boolean"}}},
                    "max_tokens": {"type": "integer"}, "max_completion_tokens": {"type": "integer"},
                    "temperature": {"type": "number"}, "seed": {"type": "integer"},
                    "persona": {"type": "string", "description": "regular, fun, or a custom persona"},
                    "search": {"type": "object", "properties": {
                        "from": {"type": "string"}, "to": {"type": "string"}, "as_of": {"type": "string"},
                        "handles": {"type": "array", "items": {"type": "string"}},
                        "exclude_handles": {"type": "array", "items": {"type": "string"}},
                        "sources": {"type": "array", "items": {"type": "string"}},
                        "langs": {"type": "array", "items": {"type": "string"}},
                        "max_results": {"type": "integer", "minimum": 1, "maximum": 50},
                        "mode": {"enum": ["auto", "on", "off"]}}}}},
                "ChatCompletion": {"type": "object", "properties": {
                    "id": {"type": "string"}, "object": {"const": "chat.completion"}, "model": {"type": "string"},
                    "choices": {"type": "array", "items": {"type": "object"}},
                    "usage": {"type": "object"},
                    "citations": {"type": "array", "items": {"type": "string"}, "description": "URLs of cited posts (the post id where a post has no URL)"},
                    "search_results": {"type": "array", "items": {"$ref": "#/components/schemas/Post"}},
                    "related_questions": {"type": "array", "items": {"type": "string"}},
                    "tidings": {"type": "object", "description": "as_of, window searched, widened_from, no_results, timings"}}}
            }
        },
        "paths": {
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "ok"}}}},
            "/readyz": {"get": {"summary": "Readiness: index writer alive, vector backlog", "responses": {"200": {"description": "ready"}, "503": error_response("not ready")}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text/plain exposition"}}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1"}}}},
            "/v1/search": {
                "get": {"summary": "Hybrid search (query parameters)", "security": read, "parameters": search_params, "responses": search_responses.clone()},
                "post": {"summary": "Hybrid search (JSON body)", "security": read, "requestBody": json_body("SearchRequest"), "responses": search_responses}
            },
            "/v1/posts": {"post": {"summary": "Push posts (JSON array, object or NDJSON); answered after the commit", "security": [{"bearer": []}], "requestBody": json_body("PushRequest"), "responses": push_responses}},
            "/v1/posts/{id}": {
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "get": {"summary": "One post", "security": read, "responses": get_post},
                "delete": {"summary": "Delete a post from both indexes (scope: ingest)", "security": [{"bearer": []}], "responses": delete_post}
            },
            "/v1/chat/completions": {"post": {"summary": "OpenAI-compatible grounded answer with citations", "security": read, "requestBody": json_body("ChatRequest"), "responses": chat_responses}},
            "/v1/models": {"get": {"summary": "Models and personas", "security": read, "responses": models}}
        }
    })
}

pub(crate) async fn spec() -> Json<Value> {
    Json(document())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_has_responses() {
        let doc = document();
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths.len() >= 9);
        for (path, ops) in paths {
            for (method, op) in ops.as_object().unwrap() {
                if method == "parameters" {
                    continue;
                }
                assert!(
                    op["responses"].is_object(),
                    "{method} {path} has no responses"
                );
                assert!(op["summary"].is_string(), "{method} {path} has no summary");
            }
        }
    }
}
