-- The transactional outbox (`tailrace.streams.outbox`), the batches its relays have in flight,
-- and the PostgreSQL spool of the circuit-broken producer (`tailrace.streams.producer`).

CREATE TABLE tailrace_outbox (
    id           BIGSERIAL   PRIMARY KEY,
    topic        TEXT        NOT NULL,
    key          TEXT,
    payload      BYTEA       NOT NULL,
    headers      JSONB,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- pending: waiting (or backing off until available_at); publishing: claimed by the relay
    -- batch `batch_id`; published: acknowledged by the broker; dead: moved aside after
    -- max attempts, with last_error.
    status       TEXT        NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'publishing', 'published', 'dead')),
    attempts     INTEGER     NOT NULL DEFAULT 0,
    last_error   TEXT,
    available_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    batch_id     BIGINT,
    published_at TIMESTAMPTZ
);

-- The claim walks pending events in id order; the key index answers "is this key busy?".
CREATE INDEX tailrace_outbox_pending ON tailrace_outbox (id) WHERE status = 'pending';
CREATE INDEX tailrace_outbox_key_open ON tailrace_outbox (key, id)
    WHERE status IN ('pending', 'publishing');
CREATE INDEX tailrace_outbox_batch ON tailrace_outbox (batch_id) WHERE status = 'publishing';

-- One row per claimed batch until it is marked published. The owner is the relay's database
-- session (pid and start time): a batch whose session is gone was orphaned by a dead relay
-- and is reconciled against the topic. `offsets` holds the partitions' next offsets known
-- at claim time: whatever the batch produced lies at or after them.
CREATE TABLE tailrace_outbox_batches (
    id            BIGSERIAL   PRIMARY KEY,
    owner_pid     INTEGER     NOT NULL,
    owner_started TIMESTAMPTZ NOT NULL,
    claimed_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    orphan_seen   TIMESTAMPTZ,
    offsets       JSONB       NOT NULL DEFAULT '{}'
);

-- The next offset after the last acknowledged outbox message, per partition.
CREATE TABLE tailrace_outbox_offsets (
    topic       TEXT    NOT NULL,
    partition   INTEGER NOT NULL,
    next_offset BIGINT  NOT NULL,
    PRIMARY KEY (topic, partition)
);

CREATE FUNCTION tailrace_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tailrace_outbox', '');
    RETURN NULL;
END $$;

-- Statement level: one notification per insert statement, delivered at commit.
CREATE TRIGGER tailrace_outbox_inserted AFTER INSERT ON tailrace_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION tailrace_outbox_notify();

-- Messages spooled while the broker is unreachable, drained in `seq` order.
CREATE TABLE tailrace_spool (
    spool   TEXT   NOT NULL,
    seq     BIGINT NOT NULL,
    record  BYTEA  NOT NULL,
    PRIMARY KEY (spool, seq)
);
