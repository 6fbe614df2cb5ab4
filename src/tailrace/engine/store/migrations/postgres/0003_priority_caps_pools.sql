-- Caps per priority within a queue (a BULK flood must not take a CRITICAL job's room), and
-- the worker pools an operator can pause without a redeploy (`tailrace worker --pool NAME`).

CREATE TABLE tailrace_queue_caps (
    queue    text     NOT NULL,
    priority smallint NOT NULL,
    capacity integer  NOT NULL CHECK (capacity > 0),
    PRIMARY KEY (queue, priority)
);

CREATE TABLE tailrace_pools (
    name       text        PRIMARY KEY,
    paused     boolean     NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now()
);
