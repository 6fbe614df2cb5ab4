-- Reprocessing jobs (the columns of reference 000), their workers, and their files.
-- Times are Unix epoch seconds (REAL), UTC. config and skip_reasons are JSON text.

CREATE TABLE reprocessing_jobs (
    id            TEXT    PRIMARY KEY,
    config        TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    created_at    REAL    NOT NULL,
    started_at    REAL,
    completed_at  REAL,
    k8s_job_name  TEXT,
    total_files   INTEGER NOT NULL DEFAULT 0,
    total_workers INTEGER NOT NULL DEFAULT 0,
    total_bytes   INTEGER NOT NULL DEFAULT 0,
    error         TEXT
);

CREATE TABLE reprocessing_workers (
    job_id            TEXT    NOT NULL REFERENCES reprocessing_jobs (id) ON DELETE CASCADE,
    worker_index      INTEGER NOT NULL,
    status            TEXT    NOT NULL,
    started_at        REAL,
    updated_at        REAL    NOT NULL,
    completed_at      REAL,
    current_file      TEXT,
    current_line      INTEGER NOT NULL DEFAULT 0,
    "current_timestamp" TEXT,
    assigned_files    INTEGER NOT NULL DEFAULT 0,
    processed_files   INTEGER NOT NULL DEFAULT 0,
    total_lines       INTEGER NOT NULL DEFAULT 0,
    success_count     INTEGER NOT NULL DEFAULT 0,
    error_count       INTEGER NOT NULL DEFAULT 0,
    skipped_count     INTEGER NOT NULL DEFAULT 0,
    filtered_count    INTEGER NOT NULL DEFAULT 0,
    total_bytes       INTEGER NOT NULL DEFAULT 0,
    processed_bytes   INTEGER NOT NULL DEFAULT 0,
    process_id        TEXT,
    restarts          INTEGER NOT NULL DEFAULT 0,
    error             TEXT,
    PRIMARY KEY (job_id, worker_index)
);

CREATE TABLE reprocessing_files (
    job_id          TEXT    NOT NULL REFERENCES reprocessing_jobs (id) ON DELETE CASCADE,
    file_index      INTEGER NOT NULL,
    url             TEXT    NOT NULL,
    size            INTEGER NOT NULL,
    status          TEXT    NOT NULL DEFAULT 'pending',
    worker_index    INTEGER,
    attempts        INTEGER NOT NULL DEFAULT 0,
    line            INTEGER NOT NULL DEFAULT 0,
    "offset"        INTEGER NOT NULL DEFAULT 0,
    lines           INTEGER NOT NULL DEFAULT 0,
    sent            INTEGER NOT NULL DEFAULT 0,
    filtered        INTEGER NOT NULL DEFAULT 0,
    skipped         INTEGER NOT NULL DEFAULT 0,
    deadlettered    INTEGER NOT NULL DEFAULT 0,
    processed_bytes INTEGER NOT NULL DEFAULT 0,
    skip_reasons    TEXT    NOT NULL DEFAULT '{}',
    error           TEXT,
    started_at      REAL,
    completed_at    REAL,
    updated_at      REAL,
    checkpoint_key  TEXT,
    PRIMARY KEY (job_id, file_index)
);

-- Files seen by `tailrace ingest`: one row per version of a file (an S3 ETag, else the size).
CREATE TABLE tailrace_processed_files (
    bucket       TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    version      TEXT    NOT NULL,
    size         INTEGER NOT NULL,
    modified     REAL,
    status       TEXT    NOT NULL DEFAULT 'PENDING'
                 CHECK (status IN ('PENDING', 'PROCESSING', 'COMPLETED', 'FAILED')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    job_id       TEXT,
    error        TEXT,
    created_at   REAL    NOT NULL,
    updated_at   REAL    NOT NULL,
    last_attempt REAL,
    processed_at REAL,
    PRIMARY KEY (bucket, key, version)
);
