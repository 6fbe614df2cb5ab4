-- The worker's event time in Jitsu's column name, current_ts (see the PostgreSQL store's
-- migration of the same number).
ALTER TABLE reprocessing_workers RENAME COLUMN "current_timestamp" TO current_ts;
