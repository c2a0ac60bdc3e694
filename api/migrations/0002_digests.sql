-- Digests: standing questions answered on a schedule, and their runs.
CREATE TABLE digests (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    -- JSON: {schedule: {cron, timezone} | {every}, scope: {query, handles, hashtags, sources,
    -- langs}, window, persona, max_stories, webhooks: [...]}
    spec        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE digest_runs (
    id          TEXT PRIMARY KEY,
    digest_id   TEXT NOT NULL REFERENCES digests (id) ON DELETE CASCADE,
    -- running | succeeded | failed
    status      TEXT NOT NULL,
    -- manual | schedule | startup (a missed run)
    reason      TEXT NOT NULL,
    as_of       BIGINT NOT NULL,
    -- The schedule slot this run is for (NULL for manual runs); unique per digest, so
    -- replicas sharing the database run each slot once.
    scheduled_for BIGINT,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT,
    -- JSON output (stories) or NULL
    output      TEXT,
    markdown    TEXT,
    error       TEXT
);

CREATE INDEX digest_runs_digest ON digest_runs (digest_id, started_at);
CREATE UNIQUE INDEX digest_runs_slot ON digest_runs (digest_id, scheduled_for);
