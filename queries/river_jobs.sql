-- name: RiverJobCountByQueue :many
-- RiverJobCountByQueue counts, across all tenants and queues, the River jobs that are
-- running and those available and due — waiting for a worker: the queue's depth. Only jobs
-- in these two states are read, through River's river_job_prioritized_fetching_index
-- (state, queue, priority, scheduled_at, id), the index River fetches jobs with; finished
-- jobs, however many, are never scanned.
SELECT queue, state::text AS state, count(*) AS jobs
FROM river_job
WHERE state IN ('available', 'running')
  AND scheduled_at <= sqlc.arg(now)::timestamptz
GROUP BY queue, state
ORDER BY queue, state;
