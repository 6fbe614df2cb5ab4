-- What the dashboard reads (see the PostgreSQL migration of the same name). Times are epoch seconds.

CREATE TABLE tailrace_workers (
    id           TEXT    PRIMARY KEY,
    host         TEXT    NOT NULL,
    pid          INTEGER NOT NULL,
    queues       TEXT,               -- JSON array, NULL: every queue
    priorities   TEXT    NOT NULL,   -- JSON array
    concurrency  INTEGER NOT NULL,
    in_flight    INTEGER NOT NULL DEFAULT 0,
    processed    INTEGER NOT NULL DEFAULT 0,
    started_at   REAL    NOT NULL,
    heartbeat_at REAL    NOT NULL
);

CREATE INDEX tailrace_jobs_state_id ON tailrace_jobs (state, id);

CREATE TABLE tailrace_queue_history (
    at         REAL    NOT NULL,
    queue      TEXT    NOT NULL,
    pending    INTEGER NOT NULL,
    scheduled  INTEGER NOT NULL,
    running    INTEGER NOT NULL,
    dead       INTEGER NOT NULL,
    succeeded  INTEGER NOT NULL,
    failed     INTEGER NOT NULL,
    wait_p50_s REAL,
    wait_p95_s REAL,
    PRIMARY KEY (at, queue)
);
