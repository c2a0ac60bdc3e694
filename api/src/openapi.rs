//! `GET /openapi.json`: an OpenAPI 3.1 description of every endpoint. Written by hand next to the
//! router; an HTTP test (`tests/api/openapi.rs`) calls every described operation and checks
//! that the router serves it, and a unit test here checks that every routed operation is
//! described.

use crate::ErrorCode;
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
    let error_codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
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
    let path_param = |name: &str| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}});
    let conv_errors = |ok: (&str, Value)| {
        let mut r = errors(&[
            ("404", "No such conversation or message (`not_found`)"),
            (
                "503",
                "No app database or no chat model (`store_unavailable`, `model_unavailable`)",
            ),
        ]);
        r[ok.0] = ok.1;
        r
    };
    let conv_list = conv_errors((
        "200",
        json!({"description": "`{object: list, data: [conversation]}`"}),
    ));
    let conv_created = conv_errors(("201", ok_json("The new conversation", "Conversation")));
    let conv_one = conv_errors((
        "200",
        ok_json("The conversation with its messages", "Conversation"),
    ));
    let mut generation = conv_errors((
        "200",
        json!({
            "description": "Server-Sent Events: `user` (the stored question, when one was added), `retrieved` (numbered posts), `delta` ({content}), then `done` (the stored answer: citations in `search_results`, `as_of`, `related_questions`, `version`) or `error` ({error, message: the stored failed answer}). With `stream: false`: `{user_message, message}` as JSON.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}, "application/json": {"schema": {"type": "object"}}}
        }),
    ));
    generation["409"] = error_response(
        "This conversation is already answering (`conversation_busy`, with `Retry-After`)",
    );
    let digest_errors = |ok: (&str, &str)| {
        let mut r = errors(&[
            ("404", "No such digest or run (`not_found`)"),
            ("503", "No app database (`store_unavailable`)"),
        ]);
        r[ok.0] = json!({"description": ok.1});
        r
    };
    let digest_ok = digest_errors(("200", "The digest, list, run or feed"));
    let digest_created = digest_errors(("201", "The new digest"));
    let digest_created_run = digest_errors(("201", "The stored run"));
    let mut live = errors(&[]);
    live["200"] = json!({"description": "text/event-stream of posts", "content": {"text/event-stream": {"schema": {"type": "string"}}}});
    let mut trending = errors(&[]);
    trending["200"] = json!({"description": "`{as_of, window, posts_seen, topics: [{label, posts, authors, question}]}`"});
    let mut sources = errors(&[]);
    sources["200"] = json!({"description": "`{object: list, data: [{name, kind, state (connecting|connected|backoff|throttled|failed|stopped), connected, endpoint, since, last_error, last_error_at, retry_at, retry_in_secs, position, lag_secs, newest_event, backlog, committed_at, received, inserted, updated, duplicates, deleted, filtered, rejected, ignored, connects, disconnects}]}`"});
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
        ("ranker", "learned (default) | fusion: how hybrid candidates are ordered"),
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
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {"code": {"type": "string", "enum": error_codes, "description": "Stable: clients may branch on it. Messages may change."}, "message": {"type": "string"}, "details": {}}}}},
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
                    "mode": {"enum": ["hybrid", "text", "vector"]}, "ranker": {"enum": ["learned", "fusion"]}, "half_life": {"type": "string"}, "collapse": {"type": "boolean"}}},
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
                "SearchSettings": {"type": "object", "description": "The chat `search` extension plus `window` (a look-back from as_of: 6h, 7d, or auto)", "properties": {
                    "window": {"type": "string"}, "from": {"type": "string"}, "to": {"type": "string"}, "as_of": {"type": "string"},
                    "handles": {"type": "array", "items": {"type": "string"}},
                    "exclude_handles": {"type": "array", "items": {"type": "string"}},
                    "sources": {"type": "array", "items": {"type": "string"}},
                    "langs": {"type": "array", "items": {"type": "string"}},
                    "max_results": {"type": "integer", "minimum": 1, "maximum": 50},
                    "mode": {"enum": ["auto", "on", "off"]}}},
                "ConversationRequest": {"type": "object", "properties": {
                    "title": {"type": "string"}, "persona": {"type": ["string", "null"]},
                    "search": {"$ref": "#/components/schemas/SearchSettings"}}},
                "Conversation": {"type": "object", "properties": {
                    "id": {"type": "string"}, "object": {"const": "conversation"}, "title": {"type": "string"},
                    "persona": {"type": ["string", "null"]}, "search": {"$ref": "#/components/schemas/SearchSettings"},
                    "created_at": {"type": "string"}, "updated_at": {"type": "string"},
                    "messages": {"type": "array", "items": {"$ref": "#/components/schemas/Message"}},
                    "active_path": {"type": "array", "items": {"type": "string"}}}},
                "Message": {"type": "object", "properties": {
                    "id": {"type": "string"}, "parent_id": {"type": ["string", "null"]}, "role": {"enum": ["user", "assistant"]},
                    "content": {"type": "string"}, "origin": {"enum": ["asked", "generated", "regenerated", "edited"]},
                    "edited_from": {"type": ["string", "null"]}, "status": {"enum": ["complete", "error"]},
                    "children": {"type": "array", "items": {"type": "string"}}, "active_child": {"type": ["string", "null"]},
                    "version": {"type": "object", "properties": {"index": {"type": "integer"}, "count": {"type": "integer"}, "siblings": {"type": "array", "items": {"type": "string"}}}},
                    "as_of": {"type": "string"}, "citations": {"type": "array", "items": {"type": "string"}},
                    "search_results": {"type": "array", "items": {"$ref": "#/components/schemas/Post"}},
                    "related_questions": {"type": "array", "items": {"type": "string"}},
                    "tidings": {"type": "object"}, "error": {"type": "object"}}},
                "GenerateRequest": {"type": "object", "properties": {
                    "content": {"type": "string", "description": "The question (ask) or the new text (edit)"},
                    "parent_id": {"type": "string", "description": "Ask: the answer this question follows"},
                    "persona": {"type": "string"}, "search": {"$ref": "#/components/schemas/SearchSettings"},
                    "stream": {"type": "boolean", "default": true}, "answer": {"type": "boolean", "default": true},
                    "max_tokens": {"type": "integer"}}},
                "Digest": {"type": "object", "required": ["name"], "properties": {
                    "name": {"type": "string"},
                    "scope": {"type": "object", "properties": {"query": {"type": "string"}, "handles": {"type": "array", "items": {"type": "string"}}, "hashtags": {"type": "array", "items": {"type": "string"}}, "sources": {"type": "array", "items": {"type": "string"}}, "langs": {"type": "array", "items": {"type": "string"}}}},
                    "window": {"type": "string", "default": "24h"}, "persona": {"type": "string"},
                    "max_stories": {"type": "integer", "minimum": 1, "maximum": 20, "default": 5},
                    "schedule": {"type": "object", "description": "{cron, timezone} or {every}; missed: run_once | skip", "properties": {"cron": {"type": "string"}, "timezone": {"type": "string"}, "every": {"type": "string"}, "missed": {"enum": ["run_once", "skip"]}}},
                    "webhooks": {"type": "array", "maxItems": 5, "items": {"type": "object", "required": ["url", "secret"], "properties": {"url": {"type": "string"}, "secret": {"type": "string", "minLength": 16, "writeOnly": true}}}}}},
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
            "/v1/models": {"get": {"summary": "Models and personas", "security": read, "responses": models}},
            "/v1/conversations": {
                "get": {"summary": "Conversations, most recently active first (`limit` 1..200, `offset`)", "security": read, "responses": conv_list},
                "post": {"summary": "Create a conversation with a persona and search settings", "security": read, "requestBody": json_body("ConversationRequest"), "responses": conv_created}
            },
            "/v1/conversations/{id}": {
                "parameters": [path_param("id")],
                "get": {"summary": "The conversation: every message (a tree) and the active path", "security": read, "responses": conv_one.clone()},
                "patch": {"summary": "Change title, persona (null clears) or search settings; later answers use them", "security": read, "requestBody": json_body("ConversationRequest"), "responses": conv_one.clone()},
                "delete": {"summary": "Delete a conversation and its messages", "security": read, "responses": conv_one.clone()}
            },
            "/v1/conversations/{id}/messages": {
                "parameters": [path_param("id")],
                "post": {"summary": "Ask: stores the question under `parent_id` (default: the end of the active path) and streams the answer", "security": read, "requestBody": json_body("GenerateRequest"), "responses": generation.clone()}
            },
            "/v1/conversations/{id}/messages/{message_id}/regenerate": {
                "parameters": [path_param("id"), path_param("message_id")],
                "post": {"summary": "A new version of an answer (or an answer for a question whose answer failed)", "security": read, "requestBody": json_body("GenerateRequest"), "responses": generation.clone()}
            },
            "/v1/conversations/{id}/messages/{message_id}/edit": {
                "parameters": [path_param("id"), path_param("message_id")],
                "post": {"summary": "An edited version beside the message (the original is kept). An edited question is answered (streamed, unless `answer: false`); an edited answer becomes active and the conversation continues from its text (201 with the message)", "security": read, "requestBody": json_body("GenerateRequest"), "responses": generation}
            },
            "/v1/conversations/{id}/messages/{message_id}/activate": {
                "parameters": [path_param("id"), path_param("message_id")],
                "post": {"summary": "Make this version active; the active path continues below it", "security": read, "responses": conv_one}
            },
            "/v1/digests": {
                "get": {"summary": "Digest definitions", "security": read, "responses": digest_ok.clone()},
                "post": {"summary": "Create a digest: name, scope {query, handles, hashtags, sources, langs}, window, persona, max_stories (scope: admin)", "security": read, "requestBody": json_body("Digest"), "responses": digest_created}
            },
            "/v1/digests/{id}": {
                "parameters": [path_param("id")],
                "get": {"summary": "One digest", "security": read, "responses": digest_ok.clone()},
                "put": {"summary": "Replace a digest's definition (scope: admin)", "security": read, "requestBody": json_body("Digest"), "responses": digest_ok.clone()},
                "delete": {"summary": "Delete a digest and its runs (scope: admin)", "security": read, "responses": digest_ok.clone()}
            },
            "/v1/digests/{id}/run": {
                "parameters": [path_param("id")],
                "post": {"summary": "Run now, or `as_of` a past time; returns the stored run (`succeeded` with stories or an explicit quiet window, or `failed` with the error) (scope: admin)", "security": read, "responses": digest_created_run}
            },
            "/v1/digests/{id}/runs": {
                "parameters": [path_param("id")],
                "get": {"summary": "A digest's runs, newest first (`limit`)", "security": read, "responses": digest_ok.clone()}
            },
            "/v1/digests/{id}/runs/{run_id}": {
                "parameters": [path_param("id"), path_param("run_id")],
                "get": {"summary": "One run: status, output (stories with headline, summary, citations), markdown, error", "security": read, "responses": digest_ok.clone()}
            },
            "/v1/digests/{id}/deliveries": {
                "parameters": [path_param("id")],
                "get": {"summary": "Webhook deliveries, newest first: delivered, or dead (the dead letters) with attempts, last status and error", "security": read, "responses": digest_ok.clone()}
            },
            "/v1/digests/{id}/feed.atom": {
                "parameters": [path_param("id")],
                "get": {"summary": "Atom 1.0 feed of the digest's runs", "security": read, "responses": digest_ok}
            },
            "/v1/posts/stream": {"get": {"summary": "Server-Sent Events: `post` for each newly indexed post (after a `backfill` of recent ones, then a `live` event); `lagged` when the client fell behind. Filters: q (all words), handles, sources, langs (comma-separated)", "security": read, "responses": live}},
            "/v1/trending": {"get": {"summary": "Topics many accounts post about in a window (`window` default 6h, `as_of`, `limit`), each with a starter question", "security": read, "responses": trending}},
            "/v1/sources": {"get": {"summary": "Each live source's state, lag, position, last error, retry time and counters (Bluesky Jetstream, Mastodon, X, NATS)", "security": read, "responses": sources}},
            "/": {"get": {"summary": "The web page (conversations, digests, live sidebar with source status)", "responses": {"200": {"description": "text/html"}}}}
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
        assert!(paths.len() >= 17);
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

    #[test]
    fn the_error_schema_lists_every_code_once() {
        let doc = document();
        let codes =
            &doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"];
        let listed: Vec<&str> = codes["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(listed.len(), ErrorCode::ALL.len());
        let unique: std::collections::HashSet<&str> = listed.iter().copied().collect();
        assert_eq!(unique.len(), listed.len(), "a code string is used twice");
        for code in ErrorCode::ALL {
            assert!(listed.contains(&code.as_str()), "{code} is not documented");
        }
    }

    /// The other direction of `tests/api/openapi.rs` (every documented operation is routed):
    /// every operation the router serves is documented. Reads the router's source, as the
    /// code-map test reads ARCHITECTURE.md, so a new `.route(...)` without a description fails.
    #[test]
    fn every_routed_operation_is_documented() {
        let source = include_str!("lib.rs");
        let body = source
            .split("pub fn router(")
            .nth(1)
            .and_then(|rest| rest.split(".fallback(").next())
            .expect("lib.rs has the router");
        let doc = document();
        let mut routed = 0;
        for call in body.split(".route(").skip(1) {
            let path = call
                .split('"')
                .nth(1)
                .expect("a route starts with its path");
            // The page's static files are not API.
            if path.starts_with("/assets/") {
                continue;
            }
            let handlers = call.split_once('"').map_or("", |(_, rest)| rest);
            let handlers = handlers.split_once('"').map_or("", |(_, rest)| rest);
            for method in ["get", "post", "put", "patch", "delete"] {
                let called = handlers.match_indices(&format!("{method}(")).any(|(i, _)| {
                    i == 0 || !handlers[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_')
                });
                if called {
                    routed += 1;
                    assert!(
                        doc["paths"][path][method].is_object(),
                        "{} {path} is routed but not in the OpenAPI document",
                        method.to_uppercase()
                    );
                }
            }
        }
        assert!(
            routed >= 30,
            "only {routed} routed operations found: the parse broke"
        );
    }
}
