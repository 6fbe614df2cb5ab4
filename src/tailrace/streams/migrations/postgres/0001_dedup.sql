-- Message ids a stream consumer group has handled (or dead-lettered), for `tailrace consume`'s
-- dedup window. Rows older than the window count as unseen and are pruned by the consumers.

CREATE TABLE tailrace_stream_dedup (
    group_id   TEXT        NOT NULL,
    message_id TEXT        NOT NULL,
    seen_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, message_id)
);

CREATE INDEX tailrace_stream_dedup_seen ON tailrace_stream_dedup (group_id, seen_at);
