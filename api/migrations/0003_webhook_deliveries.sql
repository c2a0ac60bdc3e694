-- Webhook deliveries of digest runs: delivered, or dead (the dead-letter record, with why).
CREATE TABLE webhook_deliveries (
    id          TEXT PRIMARY KEY,
    digest_id   TEXT NOT NULL REFERENCES digests (id) ON DELETE CASCADE,
    run_id      TEXT NOT NULL,
    url         TEXT NOT NULL,
    -- pending | delivered | dead
    status      TEXT NOT NULL,
    attempts    BIGINT NOT NULL,
    last_status BIGINT,
    last_error  TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE INDEX webhook_deliveries_digest ON webhook_deliveries (digest_id, created_at);
