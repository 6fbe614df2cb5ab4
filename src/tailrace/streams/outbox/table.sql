-- The statements of the relay of an outbox table of the application's own (table.py).
-- {placeholders} are the column mapping's SQL, set by the operator; %(params)s are values.

-- The next unpublished events, in order, leaving out the keys held by an event that used
-- up its attempts (its later events wait behind it, as the relay's own outbox does).
-- name: claim
WITH dead AS MATERIALIZED (
    SELECT DISTINCT ({key})::text AS k FROM {table}
    WHERE {published} IS NOT TRUE AND {attempts} - %(base)s >= %(max_attempts)s
)
SELECT {id}, ({topic})::text, ({key})::text, convert_to(({value})::text, 'UTF8'),
       {attempts} - %(base)s
FROM {table}
WHERE {published} IS NOT TRUE AND {attempts} - %(base)s < %(max_attempts)s
  AND (({key}) IS NULL OR ({key})::text NOT IN (SELECT k FROM dead WHERE k IS NOT NULL))
ORDER BY {order}
LIMIT %(limit)s

-- name: published
UPDATE {table} SET {published} = TRUE{published_at} WHERE {id} = ANY(%(ids)s)

-- name: failed
UPDATE {table} SET {attempts} = {attempts} + 1{error} WHERE {id} = %(id)s

-- name: pending
SELECT count(*) FROM {table} WHERE {published} IS NOT TRUE

-- One relay per table at a time (the others wait): a key's events go out in order.
-- name: lock
SELECT pg_try_advisory_lock(hashtext('tailrace.outbox_table:' || current_schema() || ':' || %(table)s))
