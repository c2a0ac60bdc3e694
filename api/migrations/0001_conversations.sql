-- Conversations as trees of messages. Portable SQL: the same file runs on SQLite and
-- PostgreSQL (TEXT ids, BIGINT milliseconds since the Unix epoch, JSON kept as TEXT).
CREATE TABLE conversations (
    id          TEXT PRIMARY KEY,
    title       TEXT NOT NULL,
    persona     TEXT,
    -- JSON: the conversation's search settings (window, handles, as_of, ...).
    settings    TEXT NOT NULL,
    -- The chosen first message (a first question can have edited versions).
    active_root TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE INDEX conversations_updated ON conversations (updated_at);

CREATE TABLE messages (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    parent_id       TEXT REFERENCES messages (id) ON DELETE CASCADE,
    role            TEXT NOT NULL,
    content         TEXT NOT NULL,
    -- asked | generated | regenerated | edited
    origin          TEXT NOT NULL,
    -- The message this one is an edited version of.
    edited_from     TEXT,
    -- complete | error
    status          TEXT NOT NULL,
    -- The chosen child (version) below this message.
    active_child    TEXT,
    -- JSON: citations (with the posts), as_of, window, related questions, persona, model,
    -- timings, error.
    meta            TEXT NOT NULL,
    -- Creation order inside the conversation.
    seq             BIGINT NOT NULL,
    created_at      BIGINT NOT NULL
);

CREATE INDEX messages_conversation ON messages (conversation_id, seq);
