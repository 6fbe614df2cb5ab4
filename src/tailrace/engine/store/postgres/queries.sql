-- name: job_insert
INSERT INTO tailrace_jobs (queue, task, args, priority, run_at, sort_at, max_attempts, timeout_s, dedup_key)
VALUES (%(queue)s, %(task)s, %(args)s::jsonb, %(priority)s, %(run_at)s, %(sort_at)s,
        %(max_attempts)s, %(timeout_s)s, %(dedup_key)s)
RETURNING id;

-- name: job_insert_uncapped
-- One statement, so one round trip in autocommit; inserts nothing when the queue has a
-- capacity, and the caller takes the locked path instead.
INSERT INTO tailrace_jobs (queue, task, args, priority, run_at, sort_at, max_attempts, timeout_s, dedup_key)
SELECT %(queue)s, %(task)s, %(args)s::jsonb, %(priority)s, %(run_at)s, %(sort_at)s,
       %(max_attempts)s, %(timeout_s)s, NULL
WHERE NOT EXISTS (SELECT 1 FROM tailrace_queues WHERE name = %(queue)s AND capacity IS NOT NULL)
  AND NOT EXISTS (SELECT 1 FROM tailrace_queue_caps WHERE queue = %(queue)s)
RETURNING id;

-- name: dedup_lock
SELECT pg_advisory_xact_lock(hashtextextended('tailrace-dedup:' || %(dedup_key)s, 0));

-- name: dedup_existing
SELECT id FROM tailrace_jobs
WHERE dedup_key = %(dedup_key)s
  AND (state IN ('pending', 'failed', 'running')
       OR (%(window_s)s::float8 IS NOT NULL
           AND created_at > now() - make_interval(secs => %(window_s)s::float8)))
ORDER BY id DESC
LIMIT 1;

-- name: queue_limits
-- the queue's own cap (priority NULL), then its caps per priority
SELECT NULL::smallint, capacity FROM tailrace_queues
WHERE name = %(queue)s AND capacity IS NOT NULL
UNION ALL
SELECT priority, capacity FROM tailrace_queue_caps WHERE queue = %(queue)s;

-- name: capacity_lock
-- enqueuers into a capped queue count and insert one at a time
SELECT pg_advisory_xact_lock(hashtextextended('tailrace-capacity:' || current_schema() || ':' || %(queue)s, 0));

-- name: queue_depth_by_priority
SELECT priority, count(*) FROM tailrace_jobs
WHERE queue = %(queue)s AND state IN ('pending', 'failed', 'running')
GROUP BY priority;

-- name: ids_reserve
SELECT array_agg(nextval('tailrace_jobs_id_seq')) FROM generate_series(1, %(n)s);

-- name: ids_present
SELECT count(*) FROM tailrace_jobs WHERE id = ANY(%(ids)s::bigint[]);

-- name: jobs_copy
-- binary: the store encodes each value as the server keeps it (see store._copy)
COPY tailrace_jobs (id, args, queue, task, priority, run_at, sort_at, max_attempts, timeout_s)
FROM STDIN (FORMAT binary);

-- name: jobs_claim
-- A claim lost in a server crash only means the job is claimed again, so this statement's
-- commit need not wait for the WAL flush (enqueue and completion do). set_config(…, true)
-- lasts for this statement's own transaction; joining `relaxed` makes sure it runs.
WITH relaxed AS (
    SELECT set_config('synchronous_commit', 'off', true)
),
picked AS (
    SELECT id FROM tailrace_jobs
    WHERE state IN ('pending', 'failed')
      AND run_at <= now()
      AND priority = ANY(%(priorities)s::smallint[])
      AND (%(queues)s::text[] IS NULL OR queue = ANY(%(queues)s::text[]))
      -- a reprocessing job's queue is worked only by the workers that name it
      AND (%(queues)s::text[] IS NOT NULL OR queue NOT LIKE 'reprocess:%%')
      AND NOT EXISTS (SELECT 1 FROM tailrace_queues q WHERE q.name = tailrace_jobs.queue AND q.paused)
      -- the claiming worker's pool, when an operator paused it
      AND NOT EXISTS (SELECT 1 FROM tailrace_pools p WHERE p.name = %(pool)s AND p.paused)
    ORDER BY sort_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE tailrace_jobs AS j
SET state = 'running',
    attempts = j.attempts + 1,
    started_at = now(),
    lease_expires_at = now() + make_interval(secs => %(lease_s)s::float8),
    worker_id = %(worker_id)s
FROM picked, relaxed
WHERE j.id = picked.id
RETURNING j.id, j.task, j.args, j.queue, j.priority, j.attempts, j.max_attempts, j.timeout_s, j.run_at;

-- name: jobs_adopt
-- After a lost connection: the jobs a claim gave this worker before its reply was lost.
UPDATE tailrace_jobs
SET lease_expires_at = now() + make_interval(secs => %(lease_s)s::float8)
WHERE state = 'running' AND worker_id = %(worker_id)s AND id <> ALL(%(held)s::bigint[])
RETURNING id, task, args, queue, priority, attempts, max_attempts, timeout_s;

-- name: jobs_succeed
UPDATE tailrace_jobs
SET state = 'succeeded', finished_at = now(), lease_expires_at = NULL
WHERE id = ANY(%(ids)s::bigint[]) AND state = 'running' AND worker_id = %(worker_id)s;

-- name: jobs_end
UPDATE tailrace_jobs AS j
SET state = o.state,
    errors = CASE WHEN o.error IS NULL THEN j.errors ELSE j.errors || jsonb_build_array(o.error::jsonb) END,
    run_at = COALESCE(o.retry_at, j.run_at),
    sort_at = COALESCE(o.sort_at, j.sort_at),
    max_attempts = COALESCE(o.max_attempts, j.max_attempts),
    finished_at = CASE WHEN o.state = 'failed' THEN NULL ELSE now() END,
    lease_expires_at = NULL
FROM unnest(%(ids)s::bigint[], %(states)s::text[], %(errors)s::text[],
            %(retry_ats)s::timestamptz[], %(sort_ats)s::timestamptz[], %(max_attempts)s::int[])
     AS o(id, state, error, retry_at, sort_at, max_attempts)
WHERE j.id = o.id AND j.state = 'running' AND j.worker_id = %(worker_id)s;

-- name: lease_renew
UPDATE tailrace_jobs
SET lease_expires_at = now() + make_interval(secs => %(lease_s)s::float8)
WHERE id = ANY(%(ids)s::bigint[]) AND state = 'running' AND worker_id = %(worker_id)s
RETURNING id, cancel_requested;

-- name: jobs_release
UPDATE tailrace_jobs
SET state = 'pending', attempts = greatest(attempts - 1, 0), started_at = NULL, lease_expires_at = NULL
WHERE id = ANY(%(ids)s::bigint[]) AND state = 'running' AND worker_id = %(worker_id)s;

-- name: leases_reap
-- Not in the first grace_s after the server started: a lease that expired while it was
-- down belongs to a worker that is reconnecting now and will renew it. Nor when the server's
-- clock moved more than gap_s since this reaper's last pass (last_seen): the server was
-- frozen, or we were cut off, and so were the workers. The first row is the server's clock.
WITH expired AS (
    SELECT id FROM tailrace_jobs
    WHERE state = 'running' AND lease_expires_at < now()
      AND pg_postmaster_start_time() < now() - make_interval(secs => %(grace_s)s::float8)
      AND (%(last_seen)s::timestamptz IS NULL
           OR now() < %(last_seen)s::timestamptz + make_interval(secs => %(gap_s)s::float8))
    ORDER BY lease_expires_at
    LIMIT 1000
    FOR UPDATE SKIP LOCKED
),
reaped AS (
UPDATE tailrace_jobs AS j
SET state = CASE WHEN j.cancel_requested THEN 'cancelled'
                 WHEN j.attempts >= j.max_attempts THEN 'dead'
                 ELSE 'pending' END,
    finished_at = CASE WHEN j.cancel_requested OR j.attempts >= j.max_attempts THEN now() END,
    lease_expires_at = NULL,
    errors = j.errors || jsonb_build_array(jsonb_build_object(
        'attempt', j.attempts, 'at', now(), 'worker_id', j.worker_id,
        'error', 'LeaseLostError: the lease expired: its worker stopped renewing it (killed, hung or cut off)',
        'traceback', NULL))
FROM expired
WHERE j.id = expired.id
RETURNING j.id, j.state
)
SELECT now(), NULL::bigint, NULL::text
UNION ALL
SELECT now(), id, state FROM reaped;

-- name: job_get
SELECT id, task, args, queue, priority, state, attempts, max_attempts, run_at, created_at,
       started_at, finished_at, worker_id, dedup_key, timeout_s, cancel_requested, errors
FROM tailrace_jobs WHERE id = %(id)s;

-- name: jobs_list
SELECT id, task, args, queue, priority, state, attempts, max_attempts, run_at, created_at,
       started_at, finished_at, worker_id, dedup_key, timeout_s, cancel_requested, errors
FROM tailrace_jobs
WHERE (%(state)s::text IS NULL OR state = %(state)s)
  AND (%(queue)s::text IS NULL OR queue = %(queue)s)
  AND (%(hidden)s::text IS NULL OR queue NOT LIKE %(hidden)s)
  AND (%(task)s::text IS NULL OR task = %(task)s)
  AND (%(priority)s::smallint IS NULL OR priority = %(priority)s)
  AND (%(ids)s::bigint[] IS NULL OR id = ANY(%(ids)s::bigint[]))
ORDER BY id DESC
LIMIT %(limit)s OFFSET %(offset)s;

-- name: job_cancel
UPDATE tailrace_jobs
SET state = CASE WHEN state IN ('pending', 'failed') THEN 'cancelled' ELSE state END,
    finished_at = CASE WHEN state IN ('pending', 'failed') THEN now() ELSE finished_at END,
    cancel_requested = (state = 'running') OR cancel_requested
WHERE id = %(id)s
RETURNING id, task, args, queue, priority, state, attempts, max_attempts, run_at, created_at,
          started_at, finished_at, worker_id, dedup_key, timeout_s, cancel_requested, errors;

-- name: jobs_replay
WITH replayed AS (
    UPDATE tailrace_jobs
    SET state = 'pending', attempts = 0, run_at = now(),
        sort_at = now() + make_interval(secs => priority * %(aging_s)s::float8),
        finished_at = NULL, started_at = NULL, cancel_requested = false
    WHERE state = %(state)s
      AND (%(queue)s::text IS NULL OR queue = %(queue)s)
      AND (%(hidden)s::text IS NULL OR queue NOT LIKE %(hidden)s)
      AND (%(task)s::text IS NULL OR task = %(task)s)
      AND (%(priority)s::smallint IS NULL OR priority = %(priority)s)
      AND (%(ids)s::bigint[] IS NULL OR id = ANY(%(ids)s::bigint[]))
    RETURNING 1
)
SELECT count(*), pg_notify('tailrace_jobs', '') FROM replayed;

-- name: jobs_discard
DELETE FROM tailrace_jobs
WHERE state = %(state)s
  AND (%(queue)s::text IS NULL OR queue = %(queue)s)
  AND (%(hidden)s::text IS NULL OR queue NOT LIKE %(hidden)s)
  AND (%(task)s::text IS NULL OR task = %(task)s)
  AND (%(priority)s::smallint IS NULL OR priority = %(priority)s)
  AND (%(ids)s::bigint[] IS NULL OR id = ANY(%(ids)s::bigint[]));

-- name: jobs_prune
DELETE FROM tailrace_jobs
WHERE id IN (
    SELECT id FROM tailrace_jobs
    WHERE state = ANY(%(states)s::text[])
      AND finished_at < now() - make_interval(secs => %(older_than_s)s::float8)
    LIMIT 10000
);

-- name: queue_pause
INSERT INTO tailrace_queues (name, paused) VALUES (%(name)s, true)
ON CONFLICT (name) DO UPDATE SET paused = true, updated_at = now();

-- name: queue_resume
INSERT INTO tailrace_queues (name, paused) VALUES (%(name)s, false)
ON CONFLICT (name) DO UPDATE SET paused = false, updated_at = now();

-- name: wake_workers
SELECT pg_notify('tailrace_jobs', '');

-- name: queue_set_capacity
INSERT INTO tailrace_queues (name, capacity) VALUES (%(name)s, %(capacity)s)
ON CONFLICT (name) DO UPDATE SET capacity = excluded.capacity, updated_at = now();

-- name: queues_list
SELECT name, paused, capacity FROM tailrace_queues ORDER BY name;

-- name: queue_caps_list
SELECT queue, priority, capacity FROM tailrace_queue_caps ORDER BY queue, priority;

-- name: queue_cap_set
INSERT INTO tailrace_queue_caps (queue, priority, capacity) VALUES (%(name)s, %(priority)s, %(capacity)s)
ON CONFLICT (queue, priority) DO UPDATE SET capacity = excluded.capacity;

-- name: queue_cap_clear
DELETE FROM tailrace_queue_caps WHERE queue = %(name)s AND priority = %(priority)s;

-- name: pool_set_paused
INSERT INTO tailrace_pools (name, paused) VALUES (%(name)s, %(paused)s)
ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, updated_at = now();

-- name: pool_add
INSERT INTO tailrace_pools (name) VALUES (%(name)s) ON CONFLICT (name) DO NOTHING;

-- name: pools_list
SELECT name, paused FROM tailrace_pools ORDER BY name;

-- name: queues_stats
SELECT queue, priority, state, count(*) FROM tailrace_jobs GROUP BY queue, priority, state
ORDER BY queue, priority, state;

-- name: cron_tick_insert
INSERT INTO tailrace_cron_ticks (schedule, tick) VALUES (%(schedule)s, %(tick)s)
ON CONFLICT DO NOTHING
RETURNING schedule;

-- name: cron_tick_job
UPDATE tailrace_cron_ticks SET job_id = %(job_id)s WHERE schedule = %(schedule)s AND tick = %(tick)s;

-- name: cron_ticks_prune
DELETE FROM tailrace_cron_ticks WHERE tick < now() - make_interval(secs => %(older_than_s)s::float8);

-- name: vacuum_needed
-- PostgreSQL's autovacuum may be off, or slow to visit a table that churns this fast
SELECT coalesce(n_dead_tup > greatest(10000, n_live_tup / 10), false)
FROM pg_stat_user_tables WHERE relid = 'tailrace_jobs'::regclass;

-- name: vacuum_lock
SELECT pg_try_advisory_lock(hashtext('tailrace-vacuum:' || current_schema()));

-- name: vacuum_unlock
SELECT pg_advisory_unlock(hashtext('tailrace-vacuum:' || current_schema()));

-- name: vacuum
VACUUM (ANALYZE) tailrace_jobs;
