-- The worker's event time in Jitsu's column name, current_ts (reference 000's document says
-- current_timestamp, a reserved word its real admin does not use), so that their SQL and
-- dashboards read it.
DO $$
DECLARE
    has_old boolean;
    has_new boolean;
BEGIN
    SELECT count(*) > 0 INTO has_old FROM information_schema.columns
    WHERE table_schema = current_schema() AND table_name = 'reprocessing_workers'
      AND column_name = 'current_timestamp';
    SELECT count(*) > 0 INTO has_new FROM information_schema.columns
    WHERE table_schema = current_schema() AND table_name = 'reprocessing_workers'
      AND column_name = 'current_ts';
    IF has_old AND has_new THEN
        UPDATE reprocessing_workers SET current_ts = coalesce(current_ts, "current_timestamp");
        ALTER TABLE reprocessing_workers DROP COLUMN "current_timestamp";
    ELSIF has_old THEN
        ALTER TABLE reprocessing_workers RENAME COLUMN "current_timestamp" TO current_ts;
    ELSIF NOT has_new THEN
        ALTER TABLE reprocessing_workers ADD COLUMN current_ts TEXT;
    END IF;
END
$$;
