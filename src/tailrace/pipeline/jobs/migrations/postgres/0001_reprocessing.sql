-- Reprocessing jobs (the columns of reference 000), their workers, and their files.
--
-- Jitsu's admin (reference 000) may have created reprocessing_jobs and reprocessing_workers
-- already: they are adopted as they stand, rows and all, and given tailrace's columns.

CREATE TABLE IF NOT EXISTS reprocessing_jobs (
    id            VARCHAR(64)  PRIMARY KEY,
    config        JSONB        NOT NULL,
    status        VARCHAR(32)  NOT NULL,
    created_at    TIMESTAMPTZ  NOT NULL,
    started_at    TIMESTAMPTZ,
    completed_at  TIMESTAMPTZ,
    k8s_job_name  VARCHAR(255),
    total_files   INTEGER      NOT NULL DEFAULT 0,
    total_workers INTEGER      NOT NULL DEFAULT 0,
    total_bytes   BIGINT       NOT NULL DEFAULT 0,
    error         TEXT
);

CREATE TABLE IF NOT EXISTS reprocessing_workers (
    job_id            VARCHAR(64) NOT NULL REFERENCES reprocessing_jobs (id) ON DELETE CASCADE,
    worker_index      INTEGER     NOT NULL,
    status            VARCHAR(32) NOT NULL,
    started_at        TIMESTAMPTZ,
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    completed_at      TIMESTAMPTZ,
    current_file      TEXT,
    current_line      BIGINT      NOT NULL DEFAULT 0,
    "current_timestamp" TEXT,
    assigned_files    INTEGER     NOT NULL DEFAULT 0,
    processed_files   INTEGER     NOT NULL DEFAULT 0,
    total_lines       BIGINT      NOT NULL DEFAULT 0,
    success_count     BIGINT      NOT NULL DEFAULT 0,
    error_count       BIGINT      NOT NULL DEFAULT 0,
    skipped_count     BIGINT      NOT NULL DEFAULT 0,
    filtered_count    BIGINT      NOT NULL DEFAULT 0,
    total_bytes       BIGINT      NOT NULL DEFAULT 0,
    processed_bytes   BIGINT      NOT NULL DEFAULT 0,
    process_id        TEXT,
    restarts          INTEGER     NOT NULL DEFAULT 0,
    error             TEXT,
    PRIMARY KEY (job_id, worker_index)
);

-- Adopted tables: the columns Jitsu's lack, and no NULL counters (Jitsu's have DEFAULT 0
-- but allow NULL); a job Jitsu paused is one tailrace can resume.
ALTER TABLE reprocessing_jobs ADD COLUMN IF NOT EXISTS total_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE reprocessing_workers
    ADD COLUMN IF NOT EXISTS filtered_count BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS process_id TEXT,
    ADD COLUMN IF NOT EXISTS restarts INTEGER NOT NULL DEFAULT 0;
UPDATE reprocessing_jobs
SET total_files = coalesce(total_files, 0), total_workers = coalesce(total_workers, 0)
WHERE total_files IS NULL OR total_workers IS NULL;
UPDATE reprocessing_jobs
SET status = 'cancelled', error = coalesce(error, 'paused in Jitsu''s admin; resume it here')
WHERE status = 'paused';
ALTER TABLE reprocessing_jobs
    ALTER COLUMN total_files SET NOT NULL,
    ALTER COLUMN total_workers SET NOT NULL;
UPDATE reprocessing_workers
SET current_line = coalesce(current_line, 0), assigned_files = coalesce(assigned_files, 0),
    processed_files = coalesce(processed_files, 0), total_lines = coalesce(total_lines, 0),
    success_count = coalesce(success_count, 0), error_count = coalesce(error_count, 0),
    skipped_count = coalesce(skipped_count, 0), total_bytes = coalesce(total_bytes, 0),
    processed_bytes = coalesce(processed_bytes, 0)
WHERE current_line IS NULL OR assigned_files IS NULL OR processed_files IS NULL
   OR total_lines IS NULL OR success_count IS NULL OR error_count IS NULL
   OR skipped_count IS NULL OR total_bytes IS NULL OR processed_bytes IS NULL;
ALTER TABLE reprocessing_workers
    ALTER COLUMN current_line SET NOT NULL,
    ALTER COLUMN assigned_files SET NOT NULL,
    ALTER COLUMN processed_files SET NOT NULL,
    ALTER COLUMN total_lines SET NOT NULL,
    ALTER COLUMN success_count SET NOT NULL,
    ALTER COLUMN error_count SET NOT NULL,
    ALTER COLUMN skipped_count SET NOT NULL,
    ALTER COLUMN total_bytes SET NOT NULL,
    ALTER COLUMN processed_bytes SET NOT NULL;

CREATE TABLE reprocessing_files (
    job_id          VARCHAR(64) NOT NULL REFERENCES reprocessing_jobs (id) ON DELETE CASCADE,
    file_index      INTEGER     NOT NULL,
    url             TEXT        NOT NULL,
    size            BIGINT      NOT NULL,
    status          VARCHAR(32) NOT NULL DEFAULT 'pending',
    worker_index    INTEGER,
    attempts        INTEGER     NOT NULL DEFAULT 0,
    line            BIGINT      NOT NULL DEFAULT 0,
    "offset"        BIGINT      NOT NULL DEFAULT 0,
    lines           BIGINT      NOT NULL DEFAULT 0,
    sent            BIGINT      NOT NULL DEFAULT 0,
    filtered        BIGINT      NOT NULL DEFAULT 0,
    skipped         BIGINT      NOT NULL DEFAULT 0,
    deadlettered    BIGINT      NOT NULL DEFAULT 0,
    processed_bytes BIGINT      NOT NULL DEFAULT 0,
    skip_reasons    JSONB       NOT NULL DEFAULT '{}',
    error           TEXT,
    started_at      TIMESTAMPTZ,
    completed_at    TIMESTAMPTZ,
    updated_at      TIMESTAMPTZ,
    checkpoint_key  TEXT,
    PRIMARY KEY (job_id, file_index)
);

-- Files seen by `tailrace ingest`: one row per version of a file (an S3 ETag, else the size).
CREATE TABLE tailrace_processed_files (
    bucket       TEXT        NOT NULL,
    key          TEXT        NOT NULL,
    version      TEXT        NOT NULL,
    size         BIGINT      NOT NULL,
    modified     TIMESTAMPTZ,
    status       VARCHAR(16) NOT NULL DEFAULT 'PENDING'
                 CHECK (status IN ('PENDING', 'PROCESSING', 'COMPLETED', 'FAILED')),
    attempts     INTEGER     NOT NULL DEFAULT 0,
    job_id       VARCHAR(64),
    error        TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    last_attempt TIMESTAMPTZ,
    processed_at TIMESTAMPTZ,
    PRIMARY KEY (bucket, key, version)
);
