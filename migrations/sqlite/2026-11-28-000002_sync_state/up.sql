-- Sync state: cursors, the durable task queue, the fetch log, runs and the relation queue.
-- Timestamps are UTC wall-clock values without a zone.

-- One row per (resource, scope): where the last complete pass ended and where the current one is.
CREATE TABLE cursors (
    resource TEXT NOT NULL,
    scope TEXT NOT NULL,
    watermark TIMESTAMP,
    pass_since TIMESTAMP,
    pass_until TIMESTAMP,
    last_id BIGINT,
    page BIGINT NOT NULL DEFAULT 0,
    "rows" BIGINT NOT NULL DEFAULT 0,
    format_version INTEGER NOT NULL DEFAULT 1,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (resource, scope)
);

CREATE TABLE tasks (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    kind TEXT NOT NULL,
    scope TEXT NOT NULL,
    payload TEXT NOT NULL,
    lane TEXT NOT NULL CHECK (lane IN ('hot', 'backfill')),
    priority INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'error')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_run_at TIMESTAMP NOT NULL,
    lease_owner TEXT,
    lease_expires_at TIMESTAMP,
    fencing_token BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    dedupe_key TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP
);
-- At most one live (pending or running) task per dedupe key; finished tasks keep their key.
CREATE UNIQUE INDEX tasks_live_dedupe_key_idx ON tasks (dedupe_key)
    WHERE dedupe_key IS NOT NULL AND state IN ('pending', 'running');
-- The claim query: runnable pending tasks by priority, then due time, then id.
CREATE INDEX tasks_pending_idx ON tasks (priority DESC, next_run_at, id) WHERE state = 'pending';
-- Expired leases of running tasks are taken over by the claim query.
CREATE INDEX tasks_running_lease_idx ON tasks (lease_expires_at) WHERE state = 'running';
CREATE INDEX tasks_kind_state_idx ON tasks (kind, state);

CREATE TABLE fetch_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    at TIMESTAMP NOT NULL,
    endpoint TEXT NOT NULL,
    scope TEXT NOT NULL,
    page BIGINT,
    status INTEGER NOT NULL,
    items BIGINT NOT NULL,
    retries INTEGER NOT NULL,
    wait_ms BIGINT NOT NULL,
    token_refreshed BOOLEAN NOT NULL,
    task_id BIGINT,
    request_id TEXT
);
CREATE INDEX fetch_log_at_idx ON fetch_log (at);

CREATE TABLE sync_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    kind TEXT NOT NULL,
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    status TEXT NOT NULL,
    params TEXT NOT NULL,
    summary TEXT
);

-- Users whose relations (cursus_users, projects_users, ...) need refreshing. Re-enqueueing a user
-- moves enqueued_at and clears taken_at, so a refresh requested while one runs is not lost.
CREATE TABLE relation_queue (
    user_id BIGINT PRIMARY KEY NOT NULL,
    enqueued_at TIMESTAMP NOT NULL,
    reason TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    taken_at TIMESTAMP
);
CREATE INDEX relation_queue_enqueued_at_idx ON relation_queue (enqueued_at);

CREATE TABLE integrity_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    at TIMESTAMP NOT NULL,
    status TEXT NOT NULL,
    report TEXT NOT NULL
);
