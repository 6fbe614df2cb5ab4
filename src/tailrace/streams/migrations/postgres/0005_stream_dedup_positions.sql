-- A consumer records a message id when it takes the message, before its handler runs, in
-- the same statement that finds the duplicates (`tailrace.streams.dedup`): one index entry
-- per id, no separate look-up. The row says where the message was read (partition, offset)
-- so that a redelivery of that very message (after a crash, before it was done) is told
-- apart from a resend of its id (another position), and whether a handler's own `claim()`
-- committed its effect (`effected`; rows written before this migration were all done).
ALTER TABLE tailrace_stream_dedup
    ADD COLUMN partition_no INTEGER,
    ADD COLUMN offset_no    BIGINT,
    ADD COLUMN effected     BOOLEAN NOT NULL DEFAULT true;

-- Per consumer group, topic and partition: every message below next_offset is done (handled
-- or dead-lettered), written at each checkpoint before the offsets are committed. A
-- redelivered message below it is a duplicate, at or above it the message runs again.
CREATE TABLE tailrace_stream_dedup_done (
    group_id     TEXT    NOT NULL,
    topic        TEXT    NOT NULL,
    partition_no INTEGER NOT NULL,
    next_offset  BIGINT  NOT NULL,
    PRIMARY KEY (group_id, topic, partition_no)
);
