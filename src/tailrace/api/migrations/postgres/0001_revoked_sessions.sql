-- Sessions ended at logout, until they would have expired (`tailrace.api.sessions`);
-- expires_at in epoch seconds. Versions before the migration lines created the table on
-- first use: IF NOT EXISTS adopts it.
CREATE TABLE IF NOT EXISTS tailrace_api_revoked_sessions (
    session_id TEXT PRIMARY KEY,
    expires_at DOUBLE PRECISION NOT NULL
);
