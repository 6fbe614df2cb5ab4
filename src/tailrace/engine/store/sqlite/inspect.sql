-- What the dashboard and /metrics read (see the PostgreSQL file). Times are epoch seconds.

-- name: jobs_search
SELECT id, task, args, queue, priority, state, attempts, max_attempts, run_at, created_at,
       started_at, finished_at, worker_id, dedup_key, timeout_s, cancel_requested, errors
FROM tailrace_jobs
WHERE id < :after
  AND (:state IS NULL OR state = :state)
  AND (:queue IS NULL OR queue = :queue)
  AND (:hidden IS NULL OR queue NOT LIKE :hidden)
  AND (:task IS NULL OR task = :task)
  AND (:priority IS NULL OR priority = :priority)
  AND (:text IS NULL OR id = :text_id OR dedup_key = :text
       OR task LIKE :pattern ESCAPE '\' OR queue = :text)
ORDER BY id DESC
LIMIT :limit;

-- name: jobs_count_capped
SELECT count(*) FROM (
    SELECT 1 FROM tailrace_jobs
    WHERE (:state IS NULL OR state = :state)
      AND (:queue IS NULL OR queue = :queue)
      AND (:hidden IS NULL OR queue NOT LIKE :hidden)
      AND (:task IS NULL OR task = :task)
      AND (:priority IS NULL OR priority = :priority)
    LIMIT :cap
);

-- name: jobs_cancel_where
UPDATE tailrace_jobs
SET state = CASE WHEN state IN ('pending', 'failed') THEN 'cancelled' ELSE state END,
    finished_at = CASE WHEN state IN ('pending', 'failed') THEN :now ELSE finished_at END,
    cancel_requested = (state = 'running') OR cancel_requested
WHERE state IN ('pending', 'failed', 'running')
  AND (:state IS NULL OR state = :state)
  AND (:queue IS NULL OR queue = :queue)
  AND (:hidden IS NULL OR queue NOT LIKE :hidden)
  AND (:task IS NULL OR task = :task)
  AND (:priority IS NULL OR priority = :priority)
  AND (:ids IS NULL OR id IN (SELECT value FROM json_each(:ids)));

-- name: live_jobs
SELECT queue, priority, state, run_at, finished_at FROM tailrace_jobs
WHERE state IN ('pending', 'failed')
UNION ALL
SELECT queue, priority, state, run_at, finished_at FROM tailrace_jobs WHERE state = 'running'
UNION ALL
SELECT queue, priority, state, run_at, finished_at FROM tailrace_jobs WHERE state = 'dead';

-- name: recent_jobs
SELECT queue, priority, state, started_at - run_at FROM tailrace_jobs
WHERE state IN ('succeeded', 'cancelled') AND finished_at >= :since AND finished_at < :until
  AND started_at IS NOT NULL;

-- name: queues_remember
INSERT OR IGNORE INTO tailrace_queues (name, updated_at)
SELECT DISTINCT queue, :now FROM tailrace_jobs
WHERE state IN ('pending', 'failed', 'running', 'dead') AND queue NOT LIKE 'reprocess:%';

-- name: worker_beat
INSERT INTO tailrace_workers
    (id, host, pid, queues, priorities, concurrency, in_flight, processed, started_at, heartbeat_at,
     pool)
VALUES (:id, :host, :pid, :queues, :priorities, :concurrency, :in_flight, :processed, :now, :now,
        :pool)
ON CONFLICT (id) DO UPDATE
SET in_flight = excluded.in_flight, processed = excluded.processed, heartbeat_at = :now;

-- name: worker_gone
DELETE FROM tailrace_workers WHERE id = :id;

-- name: workers_list
SELECT id, host, pid, queues, priorities, concurrency, in_flight, processed, started_at,
       heartbeat_at, pool
FROM tailrace_workers ORDER BY host, pid, id;

-- name: workers_forget
DELETE FROM tailrace_workers WHERE heartbeat_at < :now - :older_than_s;

-- name: history_last
SELECT max(at) FROM tailrace_queue_history;

-- name: history_insert
INSERT OR IGNORE INTO tailrace_queue_history
    (at, queue, pending, scheduled, running, dead, succeeded, failed, wait_p50_s, wait_p95_s)
VALUES (:at, :queue, :pending, :scheduled, :running, :dead, :succeeded, :failed, :p50, :p95);

-- name: history_prune
DELETE FROM tailrace_queue_history WHERE at < :now - :older_than_s;

-- name: history_read
SELECT at, queue, pending, scheduled, running, dead, succeeded, failed, wait_p50_s, wait_p95_s
FROM tailrace_queue_history
WHERE at > :now - :since_s AND (:queue IS NULL OR queue = :queue)
ORDER BY at, queue;
