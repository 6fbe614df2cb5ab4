-- The job table, queues and cron ticks. Times are Unix epoch seconds (REAL), UTC.

CREATE TABLE tailrace_jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    queue            TEXT    NOT NULL DEFAULT 'default',
    task             TEXT    NOT NULL,
    args             TEXT    NOT NULL DEFAULT '{}',
    priority         INTEGER NOT NULL DEFAULT 2 CHECK (priority BETWEEN 0 AND 4),
    state            TEXT    NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'dead', 'cancelled')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    run_at           REAL    NOT NULL,
    -- claim order: run_at pushed back by priority * aging interval (see the PostgreSQL schema)
    sort_at          REAL    NOT NULL,
    created_at       REAL    NOT NULL,
    started_at       REAL,
    finished_at      REAL,
    lease_expires_at REAL,
    worker_id        TEXT,
    dedup_key        TEXT,
    timeout_s        REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    errors           TEXT    NOT NULL DEFAULT '[]'
);

CREATE INDEX tailrace_jobs_claim ON tailrace_jobs (sort_at, id)
    WHERE state IN ('pending', 'failed');
CREATE INDEX tailrace_jobs_claim_queue ON tailrace_jobs (queue, sort_at, id)
    WHERE state IN ('pending', 'failed');
CREATE INDEX tailrace_jobs_lease ON tailrace_jobs (lease_expires_at)
    WHERE state = 'running';
CREATE INDEX tailrace_jobs_finished ON tailrace_jobs (finished_at)
    WHERE state IN ('succeeded', 'cancelled');
CREATE INDEX tailrace_jobs_dead ON tailrace_jobs (queue, id)
    WHERE state = 'dead';
CREATE UNIQUE INDEX tailrace_jobs_dedup_live ON tailrace_jobs (dedup_key)
    WHERE dedup_key IS NOT NULL AND state IN ('pending', 'failed', 'running');
CREATE INDEX tailrace_jobs_dedup ON tailrace_jobs (dedup_key, created_at)
    WHERE dedup_key IS NOT NULL;

CREATE TABLE tailrace_queues (
    name       TEXT PRIMARY KEY,
    paused     INTEGER NOT NULL DEFAULT 0,
    capacity   INTEGER CHECK (capacity > 0),
    updated_at REAL
);

CREATE TABLE tailrace_cron_ticks (
    schedule TEXT NOT NULL,
    tick     REAL NOT NULL,
    job_id   INTEGER,
    PRIMARY KEY (schedule, tick)
);
