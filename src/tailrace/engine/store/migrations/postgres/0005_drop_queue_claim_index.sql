-- The (queue, sort_at, id) index of waiting jobs goes: no statement reads it. The claim walks
-- tailrace_jobs_claim in (sort_at, id) order even when a worker names its queues (an index led
-- by the queue cannot give that order for `queue = ANY(...)`), and the dashboard, /metrics and
-- the capacity check read other indexes; yet every enqueued job paid an entry in it, about a
-- quarter of the server's time in a bulk enqueue (bench/engine/RESULTS.md).
DROP INDEX IF EXISTS tailrace_jobs_claim_queue;
