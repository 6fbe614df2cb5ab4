-- Upload records of the object jobs. One file for both stores: placeholders are written
-- %(name)s (psycopg) and turned into :name for SQLite; times are timestamptz there and epoch
-- seconds (REAL) here. The table is the objects line's migration (migrations/).

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
