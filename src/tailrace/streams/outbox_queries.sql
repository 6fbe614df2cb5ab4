-- The outbox's statements (tables in engine/store/postgres/migrations/0004_outbox.sql).

-- name: add
INSERT INTO tailrace_outbox (topic, key, payload, headers)
VALUES (%(topic)s, %(key)s, %(payload)s, %(headers)s)
RETURNING id

-- name: add_many
INSERT INTO tailrace_outbox (topic, key, payload, headers)
SELECT t, k, p, h
FROM unnest(%(topics)s::text[], %(keys)s::text[], %(payloads)s::bytea[], %(headers)s::jsonb[])
     WITH ORDINALITY AS u(t, k, p, h, n)
ORDER BY n

-- The first step of a claim: the next events by id (a walk of the pending index), leaving
-- out those held behind an earlier event of their key that is dead or backing off: they
-- cannot go before it, and left in they would fill the batch and starve the other keys.
-- name: candidates
-- The held keys are gathered once (dead events by their index; backing-off ones from the
-- pending rows), then each row costs a hash probe whatever plan the walk gets.
WITH held AS MATERIALIZED (
    SELECT key, min(id) AS first FROM (
        SELECT key, id FROM tailrace_outbox WHERE status = 'dead' AND key IS NOT NULL
        UNION ALL
        SELECT key, id FROM tailrace_outbox
        WHERE status = 'pending' AND available_at > now() AND key IS NOT NULL
    ) h
    GROUP BY key
)
SELECT o.id, o.key FROM tailrace_outbox o
WHERE o.status = 'pending' AND o.available_at <= now()
  AND NOT EXISTS (SELECT 1 FROM held WHERE held.key = o.key AND held.first < o.id)
ORDER BY o.id
LIMIT %(limit)s

-- The keys of `keys` that no other relay is claiming; held until this transaction ends.
-- name: lock_keys
SELECT k FROM unnest(%(keys)s::text[]) AS k
WHERE pg_try_advisory_xact_lock(%(lock_class)s, hashtext(k))

-- The second step, in a snapshot taken after the key locks, over the candidates whose key
-- is locked (or who have none): a key gives its candidates only if none of its events
-- before the first of them is still pending, publishing or dead (in another batch, backing
-- off, back from a reconciled one, or moved aside until requeued). The candidates being the first pending events by id,
-- what a key gives is a prefix of its waiting events. The batch row records the owner and
-- the offsets known now.
-- name: claim
WITH candidate AS (
    SELECT * FROM unnest(%(ids)s::bigint[], %(keys)s::text[]) AS c(id, key)
),
open_key AS (
    SELECT f.key FROM (
        SELECT key, min(id) AS first FROM candidate WHERE key IS NOT NULL GROUP BY key
    ) f
    -- Two probes, one per partial index (a single IN over the three statuses scans the table).
    WHERE NOT EXISTS (
        SELECT 1 FROM tailrace_outbox o
        WHERE o.key = f.key AND o.status IN ('pending', 'publishing') AND o.id < f.first
    )
    AND NOT EXISTS (
        SELECT 1 FROM tailrace_outbox o
        WHERE o.key = f.key AND o.status = 'dead' AND o.id < f.first
    )
),
picked AS (
    SELECT o.id FROM tailrace_outbox o
    WHERE o.id = ANY(%(ids)s::bigint[]) AND o.status = 'pending'
      AND (o.key IS NULL OR o.key IN (SELECT key FROM open_key))
      -- A head that failed before goes alone: sent with its key's later events, it could
      -- fail again while they are acknowledged, ahead of it.
      AND NOT (o.key IS NOT NULL AND EXISTS (
          SELECT 1 FROM (SELECT h.id, h.attempts FROM tailrace_outbox h
                         WHERE h.key = o.key AND h.status IN ('pending', 'publishing')
                         ORDER BY h.id LIMIT 1) head
          WHERE head.id < o.id AND head.attempts > 0))
    FOR UPDATE SKIP LOCKED
),
batch AS (
    INSERT INTO tailrace_outbox_batches (owner_pid, owner_started, offsets)
    SELECT pg_backend_pid(), a.backend_start,
           (SELECT coalesce(jsonb_object_agg(topic || ':' || partition, next_offset), '{}')
            FROM tailrace_outbox_offsets)
    FROM pg_stat_activity a
    WHERE a.pid = pg_backend_pid() AND EXISTS (SELECT 1 FROM picked)
    RETURNING id
)
UPDATE tailrace_outbox o
SET status = 'publishing', attempts = o.attempts + 1, batch_id = (SELECT id FROM batch)
FROM picked
WHERE o.id = picked.id
RETURNING o.id, o.topic, o.key, o.payload, o.headers, o.attempts, o.batch_id

-- name: mark_published
UPDATE tailrace_outbox
SET status = 'published', published_at = now(), batch_id = NULL
WHERE id = ANY(%(ids)s::bigint[]) AND batch_id = %(batch)s AND status = 'publishing'

-- Failed events back off (or, at `max_attempts`, are moved aside); `delays` in seconds. A
-- failure of the broker rather than of the event (`transient`: a timeout, no broker up)
-- never kills an event: it backs off however long the outage lasts.
-- name: mark_failed
UPDATE tailrace_outbox o
SET status = CASE WHEN o.attempts >= %(max_attempts)s AND NOT f.transient THEN 'dead'
                  ELSE 'pending' END,
    last_error = f.error,
    available_at = now() + make_interval(secs => f.delay),
    batch_id = NULL
FROM unnest(%(ids)s::bigint[], %(errors)s::text[], %(delays)s::float8[], %(transient)s::bool[])
     AS f(id, error, delay, transient)
WHERE o.id = f.id AND o.batch_id = %(batch)s AND o.status = 'publishing'

-- Events never handed to the broker (a stop, or an earlier event of their key refused):
-- back to pending, the attempt given back.
-- name: release
UPDATE tailrace_outbox
SET status = 'pending', attempts = attempts - 1, batch_id = NULL
WHERE id = ANY(%(ids)s::bigint[]) AND batch_id = %(batch)s AND status = 'publishing'

-- Sorted by (topic, partition) by the caller, so concurrent relays lock rows in one order.
-- name: advance_offsets
INSERT INTO tailrace_outbox_offsets (topic, partition, next_offset)
SELECT * FROM unnest(%(topics)s::text[], %(partitions)s::int[], %(offsets)s::bigint[])
ON CONFLICT (topic, partition) DO UPDATE
SET next_offset = GREATEST(tailrace_outbox_offsets.next_offset, EXCLUDED.next_offset)

-- name: delete_batch
DELETE FROM tailrace_outbox_batches WHERE id = %(batch)s

-- Batches whose owning session is gone: their relay died between claim and mark.
-- name: orphans
SELECT b.id, b.offsets, b.orphan_seen IS NOT NULL AND b.orphan_seen <= now() - make_interval(
           secs => %(grace)s) AS due
FROM tailrace_outbox_batches b
WHERE NOT EXISTS (
    SELECT 1 FROM pg_stat_activity a
    WHERE a.pid = b.owner_pid AND a.backend_start = b.owner_started
)
ORDER BY b.id
FOR UPDATE OF b SKIP LOCKED

-- name: orphan_seen
UPDATE tailrace_outbox_batches SET orphan_seen = now()
WHERE id = ANY(%(batches)s::bigint[]) AND orphan_seen IS NULL

-- name: batch_events
SELECT id, topic FROM tailrace_outbox WHERE batch_id = %(batch)s AND status = 'publishing'

-- Events of an orphaned batch that the topic does not hold go back to pending (their attempt
-- stays counted: a relay killed by an event should not retry it forever).
-- name: reconciled
UPDATE tailrace_outbox
SET status = CASE WHEN id = ANY(%(found)s::bigint[]) THEN 'published'
                  WHEN attempts >= %(max_attempts)s THEN 'dead' ELSE 'pending' END,
    published_at = CASE WHEN id = ANY(%(found)s::bigint[]) THEN now() END,
    last_error = CASE WHEN id = ANY(%(found)s::bigint[]) THEN last_error
                      ELSE 'the relay stopped before the broker acknowledged' END,
    batch_id = NULL
WHERE batch_id = %(batch)s AND status = 'publishing'

-- name: counts
SELECT status, count(*) FROM tailrace_outbox GROUP BY status

-- Dead events back to pending with their attempts reset: by ids, by keys, or all (both
-- arrays null). Their keys' held events follow them in order.
-- name: requeue
UPDATE tailrace_outbox
SET status = 'pending', attempts = 0, available_at = now()
WHERE status = 'dead'
  AND (%(ids)s::bigint[] IS NULL OR id = ANY(%(ids)s::bigint[]))
  AND (%(keys)s::text[] IS NULL OR key = ANY(%(keys)s::text[]))
RETURNING id

-- What waits and why: the keys held by a dead event, the events waiting behind an earlier
-- event of their key that is dead or has failed (retrying), and the age of the oldest
-- unpublished event.
-- name: held
SELECT
  (SELECT count(DISTINCT key) FROM tailrace_outbox WHERE status = 'dead' AND key IS NOT NULL),
  (SELECT count(*) FROM tailrace_outbox o WHERE o.status = 'pending' AND o.key IS NOT NULL
     AND (EXISTS (SELECT 1 FROM tailrace_outbox d
                  WHERE d.key = o.key AND d.status = 'dead' AND d.id < o.id)
          OR EXISTS (SELECT 1 FROM (SELECT h.id, h.last_error FROM tailrace_outbox h
                                    WHERE h.key = o.key AND h.status IN ('pending', 'publishing')
                                    ORDER BY h.id LIMIT 1) head
                     WHERE head.id < o.id AND head.last_error IS NOT NULL))),
  (SELECT extract(epoch FROM now() - min(created_at)) FROM tailrace_outbox
     WHERE status IN ('pending', 'publishing', 'dead'))

-- Is there work for a relay: an event publishing, or pending and not held behind a dead one?
-- name: unsettled
SELECT EXISTS (SELECT 1 FROM tailrace_outbox WHERE status = 'publishing')
    OR EXISTS (SELECT 1 FROM tailrace_outbox o WHERE o.status = 'pending'
               AND NOT (o.key IS NOT NULL AND EXISTS (
                   SELECT 1 FROM tailrace_outbox h
                   WHERE h.key = o.key AND h.id < o.id AND h.status = 'dead')))
