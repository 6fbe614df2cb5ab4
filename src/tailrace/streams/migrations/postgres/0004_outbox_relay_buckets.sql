-- The relay claims without writing a row per event (`tailrace.streams.relay`): keys are
-- hashed into buckets that relays own by session advisory lock, a batch is one row listing
-- its events, and an acknowledged event is deleted (counted in tailrace_outbox_totals).
-- Stop the relays of earlier versions before applying it: their batches are converted below.

-- The events a batch sent (or is sending) and the buckets its relay owned when it opened it:
-- a bucket named by the batch of a relay that is gone waits for its reconciling.
ALTER TABLE tailrace_outbox_batches
    ADD COLUMN events  BIGINT[]  NOT NULL DEFAULT '{}',
    ADD COLUMN buckets INTEGER[] NOT NULL DEFAULT '{}';
-- Thousands of ids, written once per batch: compressing them cost more than storing them.
ALTER TABLE tailrace_outbox_batches ALTER COLUMN events SET STORAGE EXTERNAL;

-- A key's bucket (an event without a key has no order to keep: its id spreads them).
CREATE FUNCTION tailrace_outbox_bucket(k TEXT, i BIGINT) RETURNS INTEGER
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
    $$ SELECT CASE WHEN k IS NULL THEN (i % 64)::integer ELSE (hashtext(k) & 2147483647) % 64 END $$;

-- Earlier versions' batches in flight, in the new form (their events back to pending, named
-- by the batch row, as the new relay leaves them).
UPDATE tailrace_outbox_batches b
SET events = coalesce((SELECT array_agg(o.id ORDER BY o.id) FROM tailrace_outbox o
                       WHERE o.batch_id = b.id AND o.status = 'publishing'), '{}'),
    buckets = coalesce((SELECT array_agg(DISTINCT tailrace_outbox_bucket(o.key, o.id))
                        FROM tailrace_outbox o
                        WHERE o.batch_id = b.id AND o.status = 'publishing'), '{}');
UPDATE tailrace_outbox SET status = 'pending', batch_id = NULL WHERE status = 'publishing';
DROP INDEX tailrace_outbox_batch;

-- Events published and deleted since this migration (rows left `published` by earlier
-- versions count too: see the `counts` query).
CREATE TABLE tailrace_outbox_totals (
    one       BOOLEAN PRIMARY KEY DEFAULT true CHECK (one),
    published BIGINT  NOT NULL
);
INSERT INTO tailrace_outbox_totals (published) VALUES (0);

-- Events backing off after a failed attempt (few): the claim's "held keys" read them here
-- rather than walking every pending event.
CREATE INDEX tailrace_outbox_retrying ON tailrace_outbox (key, id)
    WHERE status = 'pending' AND attempts > 0;
