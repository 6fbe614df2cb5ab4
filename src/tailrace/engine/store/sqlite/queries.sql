-- name: job_insert
INSERT INTO tailrace_jobs (queue, task, args, priority, run_at, sort_at, created_at,
                           max_attempts, timeout_s, dedup_key)
VALUES (:queue, :task, :args, :priority, :run_at, :sort_at, :now, :max_attempts, :timeout_s, :dedup_key)
RETURNING id;

-- name: dedup_existing
SELECT id FROM tailrace_jobs
WHERE dedup_key = :dedup_key
  AND (state IN ('pending', 'failed', 'running')
       OR (:window_s IS NOT NULL AND created_at > :now - :window_s))
ORDER BY id DESC
LIMIT 1;

-- name: queue_limits
-- the queue's own cap (priority NULL), then its caps per priority
SELECT NULL, capacity FROM tailrace_queues WHERE name = :queue AND capacity IS NOT NULL
UNION ALL
SELECT priority, capacity FROM tailrace_queue_caps WHERE queue = :queue;

-- name: queue_depth_by_priority
SELECT priority, count(*) FROM tailrace_jobs
WHERE queue = :queue AND state IN ('pending', 'failed', 'running')
GROUP BY priority;

-- name: jobs_claim
UPDATE tailrace_jobs
SET state = 'running',
    attempts = attempts + 1,
    started_at = :now,
    lease_expires_at = :now + :lease_s,
    worker_id = :worker_id
WHERE id IN (
    SELECT id FROM tailrace_jobs
    WHERE state IN ('pending', 'failed')
      AND run_at <= :now
      AND priority IN (SELECT value FROM json_each(:priorities))
      AND (:queues IS NULL OR queue IN (SELECT value FROM json_each(:queues)))
      -- a reprocessing job's queue is worked only by the workers that name it
      AND (:queues IS NOT NULL OR queue NOT LIKE 'reprocess:%')
      AND queue NOT IN (SELECT name FROM tailrace_queues WHERE paused)
      -- the claiming worker's pool, when an operator paused it
      AND NOT EXISTS (SELECT 1 FROM tailrace_pools WHERE name = :pool AND paused)
    ORDER BY sort_at, id
    LIMIT :limit
)
RETURNING id, task, args, queue, priority, attempts, max_attempts, timeout_s, run_at;

-- name: jobs_succeed
UPDATE tailrace_jobs
SET state = 'succeeded', finished_at = :now, lease_expires_at = NULL
WHERE id IN (SELECT value FROM json_each(:ids)) AND state = 'running' AND worker_id = :worker_id;

-- name: job_end
UPDATE tailrace_jobs
SET state = :state,
    errors = CASE WHEN :error IS NULL THEN errors ELSE json_insert(errors, '$[#]', json(:error)) END,
    run_at = coalesce(:retry_at, run_at),
    sort_at = coalesce(:sort_at, sort_at),
    max_attempts = coalesce(:max_attempts, max_attempts),
    finished_at = CASE WHEN :state = 'failed' THEN NULL ELSE :now END,
    lease_expires_at = NULL
WHERE id = :id AND state = 'running' AND worker_id = :worker_id;

-- name: lease_renew
UPDATE tailrace_jobs
SET lease_expires_at = :now + :lease_s
WHERE id IN (SELECT value FROM json_each(:ids)) AND state = 'running' AND worker_id = :worker_id
RETURNING id, cancel_requested;

-- name: jobs_release
UPDATE tailrace_jobs
SET state = 'pending', attempts = max(attempts - 1, 0), started_at = NULL, lease_expires_at = NULL
WHERE id IN (SELECT value FROM json_each(:ids)) AND state = 'running' AND worker_id = :worker_id;

-- name: leases_reap
UPDATE tailrace_jobs
SET state = CASE WHEN cancel_requested THEN 'cancelled'
                 WHEN attempts >= max_attempts THEN 'dead'
                 ELSE 'pending' END,
    finished_at = CASE WHEN cancel_requested OR attempts >= max_attempts THEN :now END,
    lease_expires_at = NULL,
    errors = json_insert(errors, '$[#]', json_object(
        'attempt', attempts, 'at', :now_iso, 'worker_id', worker_id,
        'error', 'LeaseLostError: the lease expired: its worker stopped renewing it (killed, hung or cut off)',
        'traceback', NULL))
WHERE id IN (
    SELECT id FROM tailrace_jobs
    WHERE state = 'running' AND lease_expires_at < :now
    ORDER BY lease_expires_at
    LIMIT 1000
)
RETURNING id, state;

-- name: job_get
SELECT id, task, args, queue, priority, state, attempts, max_attempts, run_at, created_at,
       started_at, finished_at, worker_id, dedup_key, timeout_s, cancel_requested, errors
FROM tailrace_jobs WHERE id = :id;

-- name: jobs_list
SELECT id, task, args, queue, priority, state, attempts, max_attempts, run_at, created_at,
       started_at, finished_at, worker_id, dedup_key, timeout_s, cancel_requested, errors
FROM tailrace_jobs
WHERE (:state IS NULL OR state = :state)
  AND (:queue IS NULL OR queue = :queue)
  AND (:hidden IS NULL OR queue NOT LIKE :hidden)
  AND (:task IS NULL OR task = :task)
  AND (:priority IS NULL OR priority = :priority)
  AND (:ids IS NULL OR id IN (SELECT value FROM json_each(:ids)))
ORDER BY id DESC
LIMIT :limit OFFSET :offset;

-- name: job_cancel
UPDATE tailrace_jobs
SET state = CASE WHEN state IN ('pending', 'failed') THEN 'cancelled' ELSE state END,
    finished_at = CASE WHEN state IN ('pending', 'failed') THEN :now ELSE finished_at END,
    cancel_requested = (state = 'running') OR cancel_requested
WHERE id = :id
RETURNING id, task, args, queue, priority, state, attempts, max_attempts, run_at, created_at,
          started_at, finished_at, worker_id, dedup_key, timeout_s, cancel_requested, errors;

-- name: jobs_replay
UPDATE tailrace_jobs
SET state = 'pending', attempts = 0, run_at = :now, sort_at = :now + priority * :aging_s,
    finished_at = NULL, started_at = NULL, cancel_requested = 0
WHERE state = :state
  AND (:queue IS NULL OR queue = :queue)
  AND (:hidden IS NULL OR queue NOT LIKE :hidden)
  AND (:task IS NULL OR task = :task)
  AND (:priority IS NULL OR priority = :priority)
  AND (:ids IS NULL OR id IN (SELECT value FROM json_each(:ids)));

-- name: jobs_discard
DELETE FROM tailrace_jobs
WHERE state = :state
  AND (:queue IS NULL OR queue = :queue)
  AND (:hidden IS NULL OR queue NOT LIKE :hidden)
  AND (:task IS NULL OR task = :task)
  AND (:priority IS NULL OR priority = :priority)
  AND (:ids IS NULL OR id IN (SELECT value FROM json_each(:ids)));

-- name: jobs_prune
DELETE FROM tailrace_jobs
WHERE id IN (
    SELECT id FROM tailrace_jobs
    WHERE state IN (SELECT value FROM json_each(:states)) AND finished_at < :now - :older_than_s
    LIMIT 10000
);

-- name: queue_pause
INSERT INTO tailrace_queues (name, paused, updated_at) VALUES (:name, 1, :now)
ON CONFLICT (name) DO UPDATE SET paused = 1, updated_at = :now;

-- name: queue_resume
INSERT INTO tailrace_queues (name, paused, updated_at) VALUES (:name, 0, :now)
ON CONFLICT (name) DO UPDATE SET paused = 0, updated_at = :now;

-- name: queue_set_capacity
INSERT INTO tailrace_queues (name, capacity, updated_at) VALUES (:name, :capacity, :now)
ON CONFLICT (name) DO UPDATE SET capacity = excluded.capacity, updated_at = :now;

-- name: queues_list
SELECT name, paused, capacity FROM tailrace_queues ORDER BY name;

-- name: queue_caps_list
SELECT queue, priority, capacity FROM tailrace_queue_caps ORDER BY queue, priority;

-- name: queue_cap_set
INSERT INTO tailrace_queue_caps (queue, priority, capacity) VALUES (:name, :priority, :capacity)
ON CONFLICT (queue, priority) DO UPDATE SET capacity = excluded.capacity;

-- name: queue_cap_clear
DELETE FROM tailrace_queue_caps WHERE queue = :name AND priority = :priority;

-- name: pool_set_paused
INSERT INTO tailrace_pools (name, paused, updated_at) VALUES (:name, :paused, :now)
ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, updated_at = :now;

-- name: pool_add
INSERT INTO tailrace_pools (name, updated_at) VALUES (:name, :now) ON CONFLICT (name) DO NOTHING;

-- name: pools_list
SELECT name, paused FROM tailrace_pools ORDER BY name;

-- name: queues_stats
SELECT queue, priority, state, count(*) FROM tailrace_jobs GROUP BY queue, priority, state
ORDER BY queue, priority, state;

-- name: cron_tick_insert
INSERT INTO tailrace_cron_ticks (schedule, tick) VALUES (:schedule, :tick)
ON CONFLICT DO NOTHING
RETURNING schedule;

-- name: cron_tick_job
UPDATE tailrace_cron_ticks SET job_id = :job_id WHERE schedule = :schedule AND tick = :tick;

-- name: cron_ticks_prune
DELETE FROM tailrace_cron_ticks WHERE tick < :now - :older_than_s;
