-- Upload records of the object jobs. One file for both stores: placeholders are written
-- %(name)s (psycopg) and turned into :name for SQLite; times are timestamptz there and epoch
-- seconds (REAL) here. Created if missing on first use (see uploads.py for why).

-- name: create_postgres
SELECT pg_advisory_xact_lock(2050318021);  -- two workers' first use must not race the DDL
CREATE TABLE IF NOT EXISTS tailrace_uploads (
    id          text PRIMARY KEY,
    bucket      text NOT NULL,
    prefix      text NOT NULL,
    status      text NOT NULL,
    target      text,
    size        bigint,
    etag        text,
    error       text,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS tailrace_uploads_open
    ON tailrace_uploads (created_at) WHERE status = 'uploading'

-- name: create_sqlite
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
    ON tailrace_uploads (created_at) WHERE status = 'uploading'

-- name: upload_insert
INSERT INTO tailrace_uploads (id, bucket, prefix, status, created_at, updated_at)
VALUES (%(id)s, %(bucket)s, %(prefix)s, 'uploading', %(created_at)s, %(now)s)
ON CONFLICT (id) DO NOTHING

-- name: upload_get
SELECT id, bucket, prefix, status, target, size, etag, error, created_at, updated_at
FROM tailrace_uploads WHERE id = %(id)s

-- name: uploads_abandoned
SELECT id, bucket, prefix, status, target, size, etag, error, created_at, updated_at
FROM tailrace_uploads
WHERE status = 'uploading' AND created_at < %(before)s
  AND (created_at, id) > (%(after_at)s, %(after_id)s)
ORDER BY created_at, id LIMIT %(limit)s

-- name: upload_complete
UPDATE tailrace_uploads
SET status = 'completed', target = %(target)s, size = %(size)s, etag = %(etag)s, error = NULL,
    updated_at = %(now)s
WHERE id = %(id)s

-- name: upload_note_error
UPDATE tailrace_uploads SET error = %(error)s, updated_at = %(now)s
WHERE id = %(id)s AND status = 'uploading'

-- name: upload_fail
UPDATE tailrace_uploads SET status = 'failed', error = %(error)s, updated_at = %(now)s
WHERE id = %(id)s AND status = 'uploading'
