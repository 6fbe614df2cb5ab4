-- A dead outbox event holds its key's later events until it is requeued (`tailrace outbox
-- requeue`): the claim asks "has this key a dead event before this one?" per candidate.
CREATE INDEX tailrace_outbox_key_dead ON tailrace_outbox (key, id) WHERE status = 'dead';
