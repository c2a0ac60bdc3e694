-- Leases: work a replica is doing right now, so that replicas sharing the database do not do
-- it twice and can tell abandoned work from work in progress. `name` is the work
-- (`conversation:<id>`: a generation; `run:<id>`: a digest run; `vectors:<collection>`: the
-- one vector writer), `holder` the replica, `expires_at` (ms) when it lapses unless renewed.
CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
