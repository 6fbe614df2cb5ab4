-- What the dashboard and /metrics read. Each query walks an index that holds only the rows
-- it counts (live, dead, finished lately), never every retained job: a scrape or a page
-- costs the same with one or ten million succeeded jobs kept.

-- name: jobs_search_state
-- `after` is always a bound (the largest id for the first page): a bound that may be NULL
-- could not start the index scan, and every page would walk from the newest job again.
SELECT id, task, args, queue, priority, state, attempts, max_attempts, run_at, created_at,
       started_at, finished_at, worker_id, dedup_key, timeout_s, cancel_requested, errors
FROM tailrace_jobs
WHERE state = %(state)s AND id < %(after)s
  AND (%(queue)s::text IS NULL OR queue = %(queue)s)
  AND (%(hidden)s::text IS NULL OR queue NOT LIKE %(hidden)s)
  AND (%(task)s::text IS NULL OR task = %(task)s)
  AND (%(priority)s::smallint IS NULL OR priority = %(priority)s)
  AND (%(text)s::text IS NULL OR id = %(text_id)s OR dedup_key = %(text)s
       OR task ILIKE %(pattern)s OR queue = %(text)s)
ORDER BY id DESC
LIMIT %(limit)s;

-- name: jobs_search_any
SELECT id, task, args, queue, priority, state, attempts, max_attempts, run_at, created_at,
       started_at, finished_at, worker_id, dedup_key, timeout_s, cancel_requested, errors
FROM tailrace_jobs
WHERE id < %(after)s
  AND (%(queue)s::text IS NULL OR queue = %(queue)s)
  AND (%(hidden)s::text IS NULL OR queue NOT LIKE %(hidden)s)
  AND (%(task)s::text IS NULL OR task = %(task)s)
  AND (%(priority)s::smallint IS NULL OR priority = %(priority)s)
  AND (%(text)s::text IS NULL OR id = %(text_id)s OR dedup_key = %(text)s
       OR task ILIKE %(pattern)s OR queue = %(text)s)
ORDER BY id DESC
LIMIT %(limit)s;

-- name: jobs_count_capped
SELECT count(*) FROM (
    SELECT 1 FROM tailrace_jobs
    WHERE (%(state)s::text IS NULL OR state = %(state)s)
      AND (%(queue)s::text IS NULL OR queue = %(queue)s)
      AND (%(hidden)s::text IS NULL OR queue NOT LIKE %(hidden)s)
      AND (%(task)s::text IS NULL OR task = %(task)s)
      AND (%(priority)s::smallint IS NULL OR priority = %(priority)s)
    LIMIT %(cap)s
) AS capped;

-- name: jobs_cancel_where
-- Waiting jobs are cancelled at once; running ones are asked to stop at their worker's next
-- heartbeat (as one job's cancel does).
UPDATE tailrace_jobs
SET state = CASE WHEN state IN ('pending', 'failed') THEN 'cancelled' ELSE state END,
    finished_at = CASE WHEN state IN ('pending', 'failed') THEN now() ELSE finished_at END,
    cancel_requested = (state = 'running') OR cancel_requested
WHERE state IN ('pending', 'failed', 'running')
  AND (%(state)s::text IS NULL OR state = %(state)s)
  AND (%(queue)s::text IS NULL OR queue = %(queue)s)
  AND (%(hidden)s::text IS NULL OR queue NOT LIKE %(hidden)s)
  AND (%(task)s::text IS NULL OR task = %(task)s)
  AND (%(priority)s::smallint IS NULL OR priority = %(priority)s)
  AND (%(ids)s::bigint[] IS NULL OR id = ANY(%(ids)s::bigint[]));

-- name: queue_lines
-- kind, queue, priority (NULL: the queue's total), then per kind: live (due, scheduled, oldest due age),
-- running (count), dead (count, died in the window), recent (succeeded, wait p50, p95).
-- The window is the `window_s` before `until` (NULL: now), `until` excluded: the history's
-- rows, each over the minute before its own, then count every finished job once.
SELECT 'live', queue, priority,
       count(*) FILTER (WHERE run_at <= now())::float8,
       count(*) FILTER (WHERE run_at > now())::float8,
       extract(epoch FROM now() - min(run_at) FILTER (WHERE run_at <= now()))::float8
FROM tailrace_jobs WHERE state IN ('pending', 'failed') GROUP BY GROUPING SETS ((queue, priority), (queue))
UNION ALL
SELECT 'running', queue, priority, count(*)::float8, NULL, NULL
FROM tailrace_jobs WHERE state = 'running' GROUP BY GROUPING SETS ((queue, priority), (queue))
UNION ALL
SELECT 'dead', queue, priority, count(*)::float8,
       count(*) FILTER (
           WHERE finished_at >= coalesce(%(until)s::timestamptz, now())
                                - make_interval(secs => %(window_s)s::float8)
             AND (%(until)s::timestamptz IS NULL OR finished_at < %(until)s::timestamptz)
       )::float8,
       NULL
FROM tailrace_jobs WHERE state = 'dead' GROUP BY GROUPING SETS ((queue, priority), (queue))
UNION ALL
SELECT 'recent', queue, priority,
       count(*) FILTER (WHERE state = 'succeeded')::float8,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - run_at)),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - run_at))
FROM tailrace_jobs
WHERE state IN ('succeeded', 'cancelled')
  AND finished_at >= coalesce(%(until)s::timestamptz, now())
                     - make_interval(secs => %(window_s)s::float8)
  AND (%(until)s::timestamptz IS NULL OR finished_at < %(until)s::timestamptz)
  AND started_at IS NOT NULL
GROUP BY GROUPING SETS ((queue, priority), (queue));

-- name: queue_depths
-- For /metrics: live and dead jobs only, by the partial indexes that hold them.
SELECT queue, priority,
       CASE WHEN run_at > now() THEN 'scheduled' ELSE 'pending' END AS bucket,
       count(*)
FROM tailrace_jobs WHERE state IN ('pending', 'failed')
GROUP BY 1, 2, 3
UNION ALL
SELECT queue, priority, 'running', count(*) FROM tailrace_jobs WHERE state = 'running'
GROUP BY 1, 2
UNION ALL
SELECT queue, priority, 'dead', count(*) FROM tailrace_jobs WHERE state = 'dead'
GROUP BY 1, 2;

-- name: queues_remember
-- Every queue that has live or dead jobs gets a row, so it stays known (and exported as
-- zero) after its jobs are gone. A row that is not paused and has no capacity changes
-- nothing for enqueue or claim.
INSERT INTO tailrace_queues (name)
SELECT DISTINCT queue FROM (
    SELECT queue FROM tailrace_jobs WHERE state IN ('pending', 'failed')
    UNION ALL SELECT queue FROM tailrace_jobs WHERE state = 'running'
    UNION ALL SELECT queue FROM tailrace_jobs WHERE state = 'dead'
) AS live
WHERE queue NOT LIKE 'reprocess:%%'
ON CONFLICT (name) DO NOTHING;

-- name: worker_beat
INSERT INTO tailrace_workers
    (id, host, pid, queues, priorities, concurrency, in_flight, processed, pool)
VALUES (%(id)s, %(host)s, %(pid)s, %(queues)s, %(priorities)s, %(concurrency)s,
        %(in_flight)s, %(processed)s, %(pool)s)
ON CONFLICT (id) DO UPDATE
SET in_flight = excluded.in_flight, processed = excluded.processed, heartbeat_at = now();

-- name: worker_gone
DELETE FROM tailrace_workers WHERE id = %(id)s;

-- name: workers_list
SELECT id, host, pid, queues, priorities, concurrency, in_flight, processed, started_at,
       heartbeat_at, extract(epoch FROM now() - heartbeat_at)::float8, pool
FROM tailrace_workers ORDER BY host, pid, id;

-- name: workers_forget
DELETE FROM tailrace_workers
WHERE heartbeat_at < now() - make_interval(secs => %(older_than_s)s::float8);

-- name: history_lock
-- one worker writes each minute's row; the others skip (the primary key would refuse them)
SELECT pg_try_advisory_xact_lock(hashtext('tailrace-history:' || current_schema()));

-- name: history_last
SELECT max(at) FROM tailrace_queue_history;

-- name: history_minute
SELECT date_trunc('minute', now());

-- name: history_insert
INSERT INTO tailrace_queue_history
    (at, queue, pending, scheduled, running, dead, succeeded, failed, wait_p50_s, wait_p95_s)
SELECT %(at)s, q.queue, q.pending, q.scheduled, q.running, q.dead, q.succeeded, q.failed,
       q.p50, q.p95
FROM unnest(%(queues)s::text[], %(pending)s::int[], %(scheduled)s::int[], %(running)s::int[],
            %(dead)s::int[], %(succeeded)s::int[], %(failed)s::int[],
            %(p50)s::float8[], %(p95)s::float8[])
     AS q(queue, pending, scheduled, running, dead, succeeded, failed, p50, p95)
ON CONFLICT DO NOTHING;

-- name: history_prune
DELETE FROM tailrace_queue_history
WHERE at < now() - make_interval(secs => %(older_than_s)s::float8);

-- name: history_read
SELECT at, queue, pending, scheduled, running, dead, succeeded, failed, wait_p50_s, wait_p95_s
FROM tailrace_queue_history
WHERE at > now() - make_interval(secs => %(since_s)s::float8)
  AND (%(queue)s::text IS NULL OR queue = %(queue)s)
ORDER BY at, queue;

-- name: read_settings
-- For this transaction only: the store's connections forbid sorts (for the claim's plan),
-- and a plan that needs one anyway (an ordered aggregate) is then costed so high that
-- PostgreSQL JIT-compiles it: 1-2 s for a query that runs in a millisecond. And every read
-- here must walk an index of the rows it counts: the planner, told that the live rows are
-- a few percent of the table, still chose a parallel scan of all of it (120 ms at 100,000
-- jobs kept, against 18 ms by the index).
SET LOCAL enable_sort = on; SET LOCAL jit = off; SET LOCAL enable_seqscan = off;
SET LOCAL max_parallel_workers_per_gather = 0;
