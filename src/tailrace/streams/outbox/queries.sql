-- The outbox's statements (tables in streams/migrations/postgres/0002_outbox.sql,
-- 0003 and 0004).

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

-- A relay's claim, opening its batch: the next events of the buckets it owns, by id, after
-- `after` (the last event of its batch in flight, or 0), leaving out the buckets named by
-- another session's batch (a dead relay's, until reconciled) and the events held behind an
-- earlier event of their key that is dead or backing off: they cannot go before it, and
-- left in they would fill the batch and starve the other keys. No event row is written: the
-- buckets are the relay's alone while its session holds their locks. The batch row (the
-- events, the session, its buckets, the partitions' next offsets known now: whatever the
-- batch produces lies at or after them) commits with the claim, durably, before any send.
-- Each row also carries the buckets the claim could use: a claim after a batch in flight
-- must use those alone (`mine`), for a bucket freed since (a dead relay's batch settled)
-- may hold events before `after`.
-- name: claim
WITH held AS MATERIALIZED (
    SELECT key, min(id) AS first FROM (
        SELECT key, id FROM tailrace_outbox WHERE status = 'dead' AND key IS NOT NULL
        UNION ALL
        SELECT key, id FROM tailrace_outbox
        WHERE status = 'pending' AND attempts > 0 AND available_at > now() AND key IS NOT NULL
    ) h
    GROUP BY key
),
usable AS MATERIALIZED (
    SELECT array_agg(b) AS buckets FROM unnest(%(mine)s::int[]) AS b
    WHERE b NOT IN (SELECT unnest(buckets) FROM tailrace_outbox_batches
                    WHERE NOT (owner_pid = pg_backend_pid() AND owner_started = %(started)s))
),
claimed AS MATERIALIZED (
    SELECT o.id, o.topic, o.key, o.payload, o.headers, o.attempts FROM tailrace_outbox o
    WHERE o.status = 'pending' AND o.id > %(after)s AND o.available_at <= now()
      AND ((SELECT cardinality(buckets) FROM usable) = %(total)s
           OR tailrace_outbox_bucket(o.key, o.id) = ANY((SELECT buckets FROM usable)::int[]))
      AND NOT EXISTS (SELECT 1 FROM held WHERE held.key = o.key AND held.first < o.id)
    ORDER BY o.id
    LIMIT %(limit)s
),
batch AS (
    INSERT INTO tailrace_outbox_batches (owner_pid, owner_started, offsets, events, buckets)
    SELECT pg_backend_pid(), %(started)s,
           (SELECT coalesce(jsonb_object_agg(topic || ':' || partition, next_offset), '{}')
            FROM tailrace_outbox_offsets),
           array_agg(id), %(mine)s::int[]
    FROM claimed
    HAVING count(*) > 0
    RETURNING id
)
SELECT c.*, (SELECT id FROM batch),
       -- once, on the first row (an array on every row cost more to read than the events)
       CASE WHEN c.id = (SELECT min(id) FROM claimed) THEN (SELECT buckets FROM usable) END
FROM claimed c ORDER BY c.id

-- The first step of a mark: a batch already gone was reconciled (its relay's session was
-- lost for longer than the grace): what it found stands, the relay marks nothing.
-- name: close_batch
DELETE FROM tailrace_outbox_batches WHERE id = %(batch)s RETURNING id

-- name: lock_batch
SELECT id FROM tailrace_outbox_batches WHERE id = %(batch)s FOR UPDATE

-- The same for acknowledged events whose ids are every id from `low` to `high` (the usual
-- batch of a relay that owns every bucket): a walk of the range, not a probe per id.
-- name: mark_published_range
WITH gone AS (
    DELETE FROM tailrace_outbox WHERE id BETWEEN %(low)s AND %(high)s AND status = 'pending'
    RETURNING 1
)
UPDATE tailrace_outbox_totals SET published = published + (SELECT count(*) FROM gone)

-- Acknowledged events leave the table, counted in the totals.
-- name: mark_published
WITH gone AS (
    DELETE FROM tailrace_outbox WHERE id = ANY(%(ids)s::bigint[]) AND status = 'pending'
    RETURNING 1
)
UPDATE tailrace_outbox_totals SET published = published + (SELECT count(*) FROM gone)

-- Failed events back off (or, at `max_attempts`, are moved aside); `delays` in seconds. A
-- failure of the broker rather than of the event (`transient`: a timeout, no broker up)
-- never kills an event: it backs off however long the outage lasts.
-- name: mark_failed
UPDATE tailrace_outbox o
SET status = CASE WHEN o.attempts + 1 >= %(max_attempts)s AND NOT f.transient THEN 'dead'
                  ELSE 'pending' END,
    attempts = o.attempts + 1,
    last_error = f.error,
    available_at = now() + make_interval(secs => f.delay)
FROM unnest(%(ids)s::bigint[], %(errors)s::text[], %(delays)s::float8[], %(transient)s::bool[])
     AS f(id, error, delay, transient)
WHERE o.id = f.id AND o.status = 'pending'

-- Sorted by (topic, partition) by the caller, so concurrent relays lock rows in one order.
-- name: advance_offsets
INSERT INTO tailrace_outbox_offsets (topic, partition, next_offset)
SELECT * FROM unnest(%(topics)s::text[], %(partitions)s::int[], %(offsets)s::bigint[])
ON CONFLICT (topic, partition) DO UPDATE
SET next_offset = GREATEST(tailrace_outbox_offsets.next_offset, EXCLUDED.next_offset)

-- Batches whose owning session is gone: their relay died between open and mark.
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

-- The events of a batch not yet settled.
-- name: batch_events
SELECT id, topic FROM tailrace_outbox
WHERE id = ANY((SELECT events FROM tailrace_outbox_batches WHERE id = %(batch)s)::bigint[])
  AND status = 'pending'

-- Events of an orphaned batch found on the topic are published; the others stay pending
-- with one more attempt counted (a relay killed by an event should not retry it forever).
-- name: reconciled
WITH gone AS (
    DELETE FROM tailrace_outbox WHERE id = ANY(%(found)s::bigint[]) AND status = 'pending'
    RETURNING 1
),
counted AS (
    UPDATE tailrace_outbox_totals SET published = published + (SELECT count(*) FROM gone)
)
UPDATE tailrace_outbox
SET status = CASE WHEN %(counts)s AND attempts + 1 >= %(max_attempts)s THEN 'dead'
                  ELSE 'pending' END,
    attempts = attempts + CASE WHEN %(counts)s THEN 1 ELSE 0 END,
    last_error = %(reason)s
WHERE id = ANY((SELECT events FROM tailrace_outbox_batches WHERE id = %(batch)s)::bigint[])
  AND NOT (id = ANY(%(found)s::bigint[])) AND status = 'pending'

-- name: delete_batch
DELETE FROM tailrace_outbox_batches WHERE id = %(batch)s

-- Batches claimed and never sent (the one before failed): their events were not touched.
-- name: drop_batches
DELETE FROM tailrace_outbox_batches WHERE id = ANY(%(batches)s::bigint[])

-- How many relays are up: sessions holding the shared presence lock.
-- name: relays
SELECT count(DISTINCT pid) FROM pg_locks
WHERE locktype = 'advisory' AND granted AND classid::bigint = %(class)s AND objsubid = 2

-- name: present
SELECT pg_advisory_lock_shared(%(class)s, 0)

-- Up to `want` of `buckets` locked for this session (the scan stops at the limit).
-- name: take_buckets
SELECT b FROM unnest(%(buckets)s::int[]) AS b WHERE pg_try_advisory_lock(%(class)s, b)
LIMIT %(want)s

-- name: drop_buckets
SELECT pg_advisory_unlock(%(class)s, b) FROM unnest(%(buckets)s::int[]) AS b

-- In flight (`publishing`): pending events that a batch names. Published: the totals,
-- plus rows an earlier version left `published`.
-- name: counts
SELECT CASE WHEN o.status = 'pending' AND o.id IN (
                 SELECT unnest(events) FROM tailrace_outbox_batches) THEN 'publishing'
            ELSE o.status END,
       count(*)
FROM tailrace_outbox o GROUP BY 1
UNION ALL
SELECT 'published', published FROM tailrace_outbox_totals

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

-- Is there work for a relay: a batch open (a dead relay's, to reconcile), or an event
-- pending and not held behind a dead one?
-- name: unsettled
SELECT EXISTS (SELECT 1 FROM tailrace_outbox_batches)
    OR EXISTS (SELECT 1 FROM tailrace_outbox o WHERE o.status = 'pending'
               AND NOT (o.key IS NOT NULL AND EXISTS (
                   SELECT 1 FROM tailrace_outbox h
                   WHERE h.key = o.key AND h.id < o.id AND h.status = 'dead')))
