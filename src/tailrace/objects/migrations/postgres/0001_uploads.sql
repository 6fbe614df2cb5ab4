-- Upload records of the object jobs (`tailrace.objects.uploads`). Versions before the
-- migration lines created the table on first use: IF NOT EXISTS adopts it as it stands.
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
-- retention's sweep: uploads still open, oldest first
CREATE INDEX IF NOT EXISTS tailrace_uploads_open
    ON tailrace_uploads (created_at) WHERE status = 'uploading';
