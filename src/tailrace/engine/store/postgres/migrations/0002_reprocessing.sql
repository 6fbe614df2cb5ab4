-- Reprocessing jobs (the columns of reference 000), their workers, and their files.

CREATE TABLE reprocessing_jobs (
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

CREATE TABLE reprocessing_workers (
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
