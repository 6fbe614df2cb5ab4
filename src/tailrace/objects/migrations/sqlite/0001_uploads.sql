-- Upload records of the object jobs (see the PostgreSQL migration). Times are epoch seconds.
CREATE TABLE IF NOT EXISTS tailrace_uploads (
    id          TEXT PRIMARY KEY,
    bucket      TEXT NOT NULL,
    prefix      TEXT NOT NULL,
    status      TEXT NOT NULL,
    target      TEXT,
    size        INTEGER,
    etag        TEXT,
    error       TEXT,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS tailrace_uploads_open
    ON tailrace_uploads (created_at) WHERE status = 'uploading';
