-- The job table, queues, cron ticks, and the wake-up notification.

CREATE TABLE tailrace_jobs (
    id               bigserial PRIMARY KEY,
    queue            text        NOT NULL DEFAULT 'default',
    task             text        NOT NULL,
    args             jsonb       NOT NULL DEFAULT '{}',
    priority         smallint    NOT NULL DEFAULT 2 CHECK (priority BETWEEN 0 AND 4),
    state            text        NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'dead', 'cancelled')),
    attempts         integer     NOT NULL DEFAULT 0,
    max_attempts     integer     NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    run_at           timestamptz NOT NULL DEFAULT now(),
    -- claim order: run_at pushed back by priority * aging interval, so an old BULK job
    -- eventually sorts ahead of fresh CRITICAL ones (no starvation, no maintenance pass)
    sort_at          timestamptz NOT NULL DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    lease_expires_at timestamptz,
    worker_id        text,
    dedup_key        text,
    timeout_s        double precision,
    cancel_requested boolean     NOT NULL DEFAULT false,
    errors           jsonb       NOT NULL DEFAULT '[]'
);

-- Every job is inserted, updated two or three times and deleted: vacuum this table far more
-- eagerly than PostgreSQL's defaults (20% of the table dead) so that dead rows do not pile up.
ALTER TABLE tailrace_jobs SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_insert_scale_factor = 0.01,
    autovacuum_analyze_scale_factor = 0.01,
    autovacuum_vacuum_cost_delay = 0
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
-- at most one live job per dedup key; the enqueue path also takes an advisory lock per key
CREATE UNIQUE INDEX tailrace_jobs_dedup_live ON tailrace_jobs (dedup_key)
    WHERE dedup_key IS NOT NULL AND state IN ('pending', 'failed', 'running');
CREATE INDEX tailrace_jobs_dedup ON tailrace_jobs (dedup_key, created_at)
    WHERE dedup_key IS NOT NULL;

CREATE TABLE tailrace_queues (
    name       text PRIMARY KEY,
    paused     boolean NOT NULL DEFAULT false,
    capacity   integer CHECK (capacity > 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tailrace_cron_ticks (
    schedule text        NOT NULL,
    tick     timestamptz NOT NULL,
    job_id   bigint,
    PRIMARY KEY (schedule, tick)
);

-- One notification per statement (not per row), so bulk inserts and COPY stay cheap.
CREATE FUNCTION tailrace_notify_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tailrace_jobs', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER tailrace_jobs_inserted AFTER INSERT ON tailrace_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION tailrace_notify_jobs();
