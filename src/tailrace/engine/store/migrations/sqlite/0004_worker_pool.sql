-- The worker pool a worker process belongs to (`tailrace worker --pool NAME`), for the
-- dashboard's workers page and the live workers of each pool beside its pause button.

ALTER TABLE tailrace_workers ADD COLUMN pool text;
