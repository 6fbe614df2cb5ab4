-- Caps per priority within a queue, and pausable worker pools (see PostgreSQL's 0009).

CREATE TABLE tailrace_queue_caps (
    queue    TEXT    NOT NULL,
    priority INTEGER NOT NULL,
    capacity INTEGER NOT NULL CHECK (capacity > 0),
    PRIMARY KEY (queue, priority)
);

CREATE TABLE tailrace_pools (
    name       TEXT    PRIMARY KEY,
    paused     INTEGER NOT NULL DEFAULT 0,
    updated_at REAL    NOT NULL
);
