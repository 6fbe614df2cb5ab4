-- What the dashboard reads: the live worker processes, the job list by state in id order
-- (keyset pages), and a per-minute history of every queue that survives a page reload.

CREATE TABLE tailrace_workers (
    id           text        PRIMARY KEY,
    host         text        NOT NULL,
    pid          integer     NOT NULL,
    queues       text[],                -- NULL: every queue
    priorities   smallint[]  NOT NULL,
    concurrency  integer     NOT NULL,
    in_flight    integer     NOT NULL DEFAULT 0,
    processed    bigint      NOT NULL DEFAULT 0,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);

-- The jobs list filtered by state, newest first, one page after another (WHERE id < last):
-- without it a filter on a rare state walks the primary key through every retained job.
-- The included columns let /metrics count dead jobs from the index alone once vacuum has
-- marked their pages all-visible (they change rarely), whatever the number kept.
CREATE INDEX tailrace_jobs_state_id ON tailrace_jobs (state, id) INCLUDE (queue, priority, run_at);

CREATE TABLE tailrace_queue_history (
    at         timestamptz      NOT NULL,   -- the minute this row sums up
    queue      text             NOT NULL,
    pending    integer          NOT NULL,   -- depth at the end of the minute
    scheduled  integer          NOT NULL,
    running    integer          NOT NULL,
    dead       integer          NOT NULL,
    succeeded  integer          NOT NULL,   -- finished during the minute
    failed     integer          NOT NULL,   -- attempts that died during the minute
    wait_p50_s double precision,
    wait_p95_s double precision,
    PRIMARY KEY (at, queue)
);
