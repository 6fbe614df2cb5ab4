-- Reprocessing jobs, their files and workers. One file for both stores: placeholders are
-- written %(name)s (psycopg) and turned into :name for SQLite; times and JSON are passed
-- in each store's own form (timestamptz and jsonb there, epoch REAL and text here).

-- name: job_insert
INSERT INTO reprocessing_jobs
    (id, config, status, created_at, total_files, total_workers, total_bytes)
VALUES (%(id)s, %(config)s, 'pending', %(now)s, %(total_files)s, %(total_workers)s,
        %(total_bytes)s)

-- name: file_insert
INSERT INTO reprocessing_files
    (job_id, file_index, url, size, status, updated_at, checkpoint_key)
VALUES (%(job_id)s, %(file_index)s, %(url)s, %(size)s, 'pending', %(now)s, %(checkpoint_key)s)

-- name: job_get
SELECT id, config, status, created_at, started_at, completed_at, k8s_job_name, total_files,
       total_workers, total_bytes, error
FROM reprocessing_jobs WHERE id = %(id)s

-- name: jobs_list
SELECT id, config, status, created_at, started_at, completed_at, k8s_job_name, total_files,
       total_workers, total_bytes, error
FROM reprocessing_jobs ORDER BY created_at DESC, id LIMIT %(limit)s

-- name: jobs_page
SELECT id, config, status, created_at, started_at, completed_at, k8s_job_name, total_files,
       total_workers, total_bytes, error
FROM reprocessing_jobs
WHERE CAST(%(status)s AS text) IS NULL OR status = CAST(%(status)s AS text)
ORDER BY created_at DESC, id LIMIT %(limit)s OFFSET %(offset)s

-- name: jobs_count
SELECT count(*) FROM reprocessing_jobs WHERE CAST(%(status)s AS text) IS NULL OR status = CAST(%(status)s AS text)

-- name: job_totals
SELECT status, count(*), coalesce(sum(lines), 0), coalesce(sum(sent), 0),
       coalesce(sum(filtered), 0), coalesce(sum(skipped), 0), coalesce(sum(deadlettered), 0),
       coalesce(sum(processed_bytes), 0)
FROM reprocessing_files WHERE job_id = %(id)s GROUP BY status

-- name: job_skip_reasons
SELECT skip_reasons FROM reprocessing_files
WHERE job_id = %(id)s AND skip_reasons <> '{}'

-- name: job_start
UPDATE reprocessing_jobs
SET status = 'running', started_at = coalesce(started_at, %(now)s), completed_at = NULL,
    error = NULL
WHERE id = %(id)s

-- name: job_set_status
UPDATE reprocessing_jobs
SET status = %(status)s, error = coalesce(%(error)s, error),
    completed_at = CASE WHEN %(finished)s THEN %(now)s ELSE completed_at END
WHERE id = %(id)s AND status NOT IN ('completed', 'cancelled')

-- name: job_set_workers
UPDATE reprocessing_jobs SET total_workers = %(total_workers)s, k8s_job_name = %(k8s_job_name)s
WHERE id = %(id)s

-- name: files_list
SELECT job_id, file_index, url, size, status, worker_index, attempts, line, "offset", lines,
       sent, filtered, skipped, deadlettered, processed_bytes, skip_reasons, error, started_at,
       completed_at, checkpoint_key
FROM reprocessing_files WHERE job_id = %(job_id)s ORDER BY file_index

-- name: file_get
SELECT job_id, file_index, url, size, status, worker_index, attempts, line, "offset", lines,
       sent, filtered, skipped, deadlettered, processed_bytes, skip_reasons, error, started_at,
       completed_at, checkpoint_key
FROM reprocessing_files WHERE job_id = %(job_id)s AND file_index = %(file_index)s

-- name: file_start
UPDATE reprocessing_files
SET status = 'running', worker_index = %(worker_index)s, attempts = attempts + 1,
    started_at = coalesce(started_at, %(now)s), updated_at = %(now)s, error = NULL
WHERE job_id = %(job_id)s AND file_index = %(file_index)s

-- name: file_checkpoint
UPDATE reprocessing_files
SET line = %(line)s, "offset" = %(offset)s, lines = %(lines)s, sent = %(sent)s,
    filtered = %(filtered)s, skipped = %(skipped)s, deadlettered = %(deadlettered)s,
    processed_bytes = %(processed_bytes)s, skip_reasons = %(skip_reasons)s,
    updated_at = %(now)s
WHERE job_id = %(job_id)s AND file_index = %(file_index)s

-- name: file_set_status
UPDATE reprocessing_files
SET status = %(status)s, error = %(error)s, updated_at = %(now)s,
    completed_at = CASE WHEN %(finished)s THEN %(now)s ELSE NULL END
WHERE job_id = %(job_id)s AND file_index = %(file_index)s

-- name: files_reopen
-- A file whose bytes could not be read to their end ('unreadable:', see pipeline/run.py)
-- would fail the same way again: it stays failed.
UPDATE reprocessing_files SET status = 'pending', error = NULL, updated_at = %(now)s
WHERE job_id = %(job_id)s AND status <> 'completed'
  AND NOT (status = 'failed' AND coalesce(error, '') LIKE %(unreadable)s)
RETURNING file_index, size

-- name: files_cancel_pending
UPDATE reprocessing_files SET status = 'cancelled', updated_at = %(now)s
WHERE job_id = %(job_id)s AND status = 'pending'

-- name: worker_insert
-- A planned worker, before it starts: its share of the files (reference 000's modulo
-- split), so that a started job's workers are listed from the first moment.
INSERT INTO reprocessing_workers (job_id, worker_index, status, updated_at, assigned_files,
                                  total_bytes)
VALUES (%(job_id)s, %(worker_index)s, 'pending', %(now)s, %(assigned_files)s, %(total_bytes)s)
ON CONFLICT (job_id, worker_index) DO NOTHING

-- name: worker_start
INSERT INTO reprocessing_workers (job_id, worker_index, status, started_at, updated_at,
                                  process_id)
VALUES (%(job_id)s, %(worker_index)s, 'running', %(now)s, %(now)s, %(process_id)s)
ON CONFLICT (job_id, worker_index) DO UPDATE
SET status = 'running', updated_at = %(now)s, completed_at = NULL, error = NULL,
    started_at = coalesce(reprocessing_workers.started_at, %(now)s),
    process_id = %(process_id)s,
    restarts = reprocessing_workers.restarts
               + CASE WHEN reprocessing_workers.status = 'running' THEN 1 ELSE 0 END

-- name: worker_progress
-- Never backwards: a restarted worker (or one whose file another took over) reports less
-- than its row says until it is past it again, and at the same line count its sends may
-- trail (acknowledged later than read), so every figure keeps the larger of the two. A line's
-- outcome is the same on every read, so the parts never sum past the lines. The planned share
-- stays the floor of its file counts.
UPDATE reprocessing_workers
SET updated_at = %(now)s, current_file = %(current_file)s, current_line = %(current_line)s,
    current_ts = coalesce(%(current_timestamp)s, current_ts),
    assigned_files = CASE WHEN %(assigned_files)s > assigned_files
                          THEN %(assigned_files)s ELSE assigned_files END,
    processed_files = CASE WHEN %(processed_files)s > processed_files
                           THEN %(processed_files)s ELSE processed_files END,
    total_bytes = CASE WHEN %(total_bytes)s > total_bytes
                       THEN %(total_bytes)s ELSE total_bytes END,
    success_count = CASE WHEN %(sent)s > success_count THEN %(sent)s ELSE success_count END,
    error_count = CASE WHEN %(deadlettered)s > error_count
                       THEN %(deadlettered)s ELSE error_count END,
    skipped_count = CASE WHEN %(skipped)s > skipped_count
                         THEN %(skipped)s ELSE skipped_count END,
    filtered_count = CASE WHEN %(filtered)s > filtered_count
                          THEN %(filtered)s ELSE filtered_count END,
    processed_bytes = CASE WHEN %(processed_bytes)s > processed_bytes
                           THEN %(processed_bytes)s ELSE processed_bytes END,
    total_lines = CASE WHEN %(lines)s > total_lines THEN %(lines)s ELSE total_lines END
WHERE job_id = %(job_id)s AND worker_index = %(worker_index)s

-- name: worker_finish
-- The planned share is a guess (files go to whichever worker is free): a worker that ends
-- clean did its whole share, so its totals become what it did and its progress reads complete.
UPDATE reprocessing_workers
SET status = %(status)s, completed_at = %(now)s, updated_at = %(now)s, error = %(error)s,
    current_file = NULL,
    assigned_files = CASE WHEN %(clean)s THEN processed_files ELSE assigned_files END,
    total_bytes = CASE WHEN %(clean)s THEN processed_bytes ELSE total_bytes END
WHERE job_id = %(job_id)s AND worker_index = %(worker_index)s

-- name: workers_running
SELECT count(*) FROM reprocessing_workers WHERE job_id = %(job_id)s AND status = 'running'

-- name: workers_close_pending
-- A completed job's planned workers that never started (the others took every file).
UPDATE reprocessing_workers
SET status = 'completed', completed_at = %(now)s, updated_at = %(now)s,
    assigned_files = processed_files, total_bytes = processed_bytes
WHERE job_id = %(job_id)s AND status = 'pending'

-- name: workers_fail_running
UPDATE reprocessing_workers
SET status = 'failed', completed_at = %(now)s, updated_at = %(now)s, error = %(error)s,
    current_file = NULL
WHERE job_id = %(job_id)s AND status = 'running'

-- name: worker_base
SELECT count(*), coalesce(sum(size), 0), coalesce(sum(lines), 0), coalesce(sum(sent), 0),
       coalesce(sum(filtered), 0), coalesce(sum(skipped), 0), coalesce(sum(deadlettered), 0),
       coalesce(sum(processed_bytes), 0)
FROM reprocessing_files
WHERE job_id = %(job_id)s AND worker_index = %(worker_index)s AND status = 'completed'

-- name: workers_list
SELECT job_id, worker_index, status, started_at, updated_at, completed_at, current_file,
       current_line, current_ts, assigned_files, processed_files, total_lines,
       success_count, filtered_count, skipped_count, error_count, processed_bytes, total_bytes,
       restarts, error
FROM reprocessing_workers WHERE job_id = %(job_id)s ORDER BY worker_index

-- name: job_reset
UPDATE reprocessing_jobs SET status = 'pending', completed_at = NULL, error = NULL
WHERE id = %(id)s AND status IN ('cancelled', 'failed')

-- name: job_status
SELECT status FROM reprocessing_jobs WHERE id = %(id)s

-- name: processed_insert
INSERT INTO tailrace_processed_files
    (bucket, key, version, size, modified, status, created_at, updated_at)
VALUES (%(bucket)s, %(key)s, %(version)s, %(size)s, %(modified)s, 'PENDING', %(now)s, %(now)s)
ON CONFLICT (bucket, key, version) DO NOTHING

-- name: processed_touch
UPDATE tailrace_processed_files SET updated_at = %(now)s
WHERE job_id = %(job_id)s AND status = 'PROCESSING'

-- name: processed_finish
UPDATE tailrace_processed_files
SET status = %(status)s, error = %(error)s, updated_at = %(now)s,
    processed_at = CASE WHEN %(completed)s THEN %(now)s ELSE processed_at END
WHERE bucket = %(bucket)s AND key = %(key)s AND version = %(version)s
  AND job_id = %(job_id)s

-- name: processed_versions
-- The versions recorded under one scope (a bucket and a key prefix; `all` for every file).
SELECT bucket, key, version FROM tailrace_processed_files
WHERE %(unscoped)s OR (bucket = %(bucket)s AND substr(key, 1, %(n)s) = %(prefix)s)

-- name: processed_claim_next
-- One file of the scope for `job_id`: the first by `modified` (the time of its first log
-- record, see pipeline/ingest.py) among PENDING, FAILED with attempts left (unless its bytes
-- could not be read) and PROCESSING under a run that stopped touching it. Serialised by the
-- caller (an advisory lock, or SQLite's write lock).
UPDATE tailrace_processed_files
SET status = 'PROCESSING', attempts = attempts + 1, job_id = %(job_id)s,
    last_attempt = %(now)s, updated_at = %(now)s, error = NULL
WHERE (bucket, key, version) = (
    SELECT bucket, key, version FROM tailrace_processed_files
    WHERE bucket = %(bucket)s AND substr(key, 1, %(n)s) = %(prefix)s
      AND (status = 'PENDING'
           OR (status = 'FAILED' AND attempts < %(max_attempts)s
               AND coalesce(error, '') NOT LIKE %(unreadable)s)
           OR (status = 'PROCESSING' AND updated_at < %(stale_before)s))
    ORDER BY modified, key
    LIMIT 1)
RETURNING bucket, key, version, size, attempts

-- name: processed_by_status
SELECT bucket, key, version, size, status, attempts, job_id, error
FROM tailrace_processed_files
WHERE status = %(status)s
  AND (%(unscoped)s OR (bucket = %(bucket)s AND substr(key, 1, %(n)s) = %(prefix)s))
ORDER BY modified, key

-- name: processed_reset
-- FAILED files back to PENDING with their attempts at zero: the next run takes them.
UPDATE tailrace_processed_files
SET status = 'PENDING', attempts = 0, error = NULL, job_id = NULL, updated_at = %(now)s
WHERE status = 'FAILED'
  AND (%(unscoped)s OR (bucket = %(bucket)s AND substr(key, 1, %(n)s) = %(prefix)s))
RETURNING bucket, key, version, size, status, attempts, job_id, error

-- name: processed_job_grow
-- An ingest run's job takes one more file (runs claim files one at a time): it runs again.
UPDATE reprocessing_jobs
SET total_files = total_files + 1, total_bytes = total_bytes + %(size)s, status = 'running',
    completed_at = NULL, error = NULL
WHERE id = %(id)s
RETURNING total_files

-- name: processed_list
SELECT bucket, key, version, size, status, attempts, job_id, error
FROM tailrace_processed_files ORDER BY modified, key

-- name: job_heartbeat
-- The latest sign of life of the job's workers: a worker row written by a running worker
-- (start, status, file end) and the engine leases its file tasks hold.
SELECT (SELECT max(updated_at) FROM reprocessing_workers
        WHERE job_id = %(id)s AND status = 'running'),
       (SELECT count(*) FROM tailrace_jobs
        WHERE queue = %(queue)s AND state = 'running' AND lease_expires_at > %(now)s)

-- name: job_abandon
UPDATE reprocessing_jobs
SET status = 'failed', error = %(error)s, completed_at = %(now)s
WHERE id = %(id)s AND status = 'running'

-- name: metrics_jobs
-- What a /metrics scrape exports, in one round trip: a row per status with its count (id
-- NULL), then a row per unfinished job (the newest `limit` running and pending) with its
-- files' checkpointed sums and its workers' live sums (the live ones are ahead between
-- checkpoints). The retained finished jobs' files and workers are never read.
WITH active AS (
    SELECT id, status, total_bytes FROM (
        SELECT id, status, total_bytes,
               row_number() OVER (PARTITION BY status ORDER BY created_at DESC, id) AS rank
        FROM reprocessing_jobs WHERE status IN ('running', 'pending')
    ) AS newest
    WHERE rank <= %(limit)s
)
SELECT NULL, status, count(*), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
FROM reprocessing_jobs GROUP BY status
UNION ALL
SELECT a.id, a.status, 0, a.total_bytes,
       coalesce(f.lines, 0), coalesce(f.sent, 0), coalesce(f.filtered, 0),
       coalesce(f.skipped, 0), coalesce(f.deadlettered, 0), coalesce(f.processed_bytes, 0),
       coalesce(w.workers, 0), coalesce(w.lines, 0), coalesce(w.sent, 0),
       coalesce(w.filtered, 0), coalesce(w.skipped, 0), coalesce(w.deadlettered, 0),
       coalesce(w.processed_bytes, 0)
FROM active AS a
LEFT JOIN (
    SELECT job_id, sum(lines) AS lines, sum(sent) AS sent, sum(filtered) AS filtered,
           sum(skipped) AS skipped, sum(deadlettered) AS deadlettered,
           sum(processed_bytes) AS processed_bytes
    FROM reprocessing_files WHERE job_id IN (SELECT id FROM active) GROUP BY job_id
) AS f ON f.job_id = a.id
LEFT JOIN (
    SELECT job_id, count(*) AS workers, sum(total_lines) AS lines, sum(success_count) AS sent,
           sum(filtered_count) AS filtered, sum(skipped_count) AS skipped,
           sum(error_count) AS deadlettered, sum(processed_bytes) AS processed_bytes
    FROM reprocessing_workers WHERE job_id IN (SELECT id FROM active) GROUP BY job_id
) AS w ON w.job_id = a.id
