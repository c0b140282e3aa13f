-- name: JobList :many
-- JobList pages through one tenant's River jobs (those whose metadata names the tenant, see
-- jobargs.TenantJob), newest first, before the cursor id, filtered by kind, state and creation
-- and scheduled time ranges (from inclusive, to exclusive). Served by river_job_tenant_idx
-- (00023), which gives the tenant's jobs in id order.
SELECT id, state, attempt, max_attempts, attempted_at, created_at, finalized_at, scheduled_at, priority, args,
       errors, kind, metadata, queue, tags
FROM river_job
WHERE metadata ->> 'tenant_id' = CAST(@tenant_id::uuid AS text)
  AND id < coalesce(sqlc.narg(after)::bigint, 9223372036854775807) -- an index bound even in a generic plan
  AND (sqlc.narg(kind)::text IS NULL OR kind = sqlc.narg(kind)::text)
  AND (sqlc.narg(state)::river_job_state IS NULL OR state = sqlc.narg(state)::river_job_state)
  AND (sqlc.narg(created_from)::timestamptz IS NULL OR created_at >= sqlc.narg(created_from)::timestamptz)
  AND (sqlc.narg(created_to)::timestamptz IS NULL OR created_at < sqlc.narg(created_to)::timestamptz)
  AND (sqlc.narg(scheduled_from)::timestamptz IS NULL OR scheduled_at >= sqlc.narg(scheduled_from)::timestamptz)
  AND (sqlc.narg(scheduled_to)::timestamptz IS NULL OR scheduled_at < sqlc.narg(scheduled_to)::timestamptz)
ORDER BY id DESC
LIMIT @row_limit::int;

-- name: JobListAllTenants :many
-- JobListAllTenants is JobList across tenants, for the operator (tessera jobs list without
-- --tenant): every job, the sweeps across tenants included. Served by the primary key.
SELECT id, state, attempt, max_attempts, attempted_at, created_at, finalized_at, scheduled_at, priority, args,
       errors, kind, metadata, queue, tags
FROM river_job
WHERE id < coalesce(sqlc.narg(after)::bigint, 9223372036854775807)
  AND (sqlc.narg(kind)::text IS NULL OR kind = sqlc.narg(kind)::text)
  AND (sqlc.narg(state)::river_job_state IS NULL OR state = sqlc.narg(state)::river_job_state)
  AND (sqlc.narg(created_from)::timestamptz IS NULL OR created_at >= sqlc.narg(created_from)::timestamptz)
  AND (sqlc.narg(created_to)::timestamptz IS NULL OR created_at < sqlc.narg(created_to)::timestamptz)
  AND (sqlc.narg(scheduled_from)::timestamptz IS NULL OR scheduled_at >= sqlc.narg(scheduled_from)::timestamptz)
  AND (sqlc.narg(scheduled_to)::timestamptz IS NULL OR scheduled_at < sqlc.narg(scheduled_to)::timestamptz)
ORDER BY id DESC
LIMIT @row_limit::int;

-- name: JobGet :one
-- JobGet reads one job of a tenant; with no tenant (the operator), any job. Another tenant's
-- job, or a job across tenants asked for by a tenant, is no row: the same answer as a missing
-- id. Served by the primary key.
SELECT id, state, attempt, max_attempts, attempted_at, created_at, finalized_at, scheduled_at, priority, args,
       errors, kind, metadata, queue, tags
FROM river_job
WHERE id = @id::bigint
  AND (sqlc.narg(tenant_id)::uuid IS NULL OR metadata ->> 'tenant_id' = CAST(sqlc.narg(tenant_id)::uuid AS text));

-- name: JobLock :one
-- JobLock locks one job of a tenant (any job for the operator, as JobGet) for a retry or a
-- cancel in the same transaction, and says whether the job's state allows each: a retry of
-- any job but a running one (River leaves it untouched) or one already waiting to run
-- (available); a cancel of any job not finished yet (River changes nothing on a completed,
-- cancelled or discarded job). Served by the primary key.
SELECT state,
       state NOT IN ('running', 'available') AS retryable,
       state NOT IN ('completed', 'cancelled', 'discarded') AS cancellable
FROM river_job
WHERE id = @id::bigint
  AND (sqlc.narg(tenant_id)::uuid IS NULL OR metadata ->> 'tenant_id' = CAST(sqlc.narg(tenant_id)::uuid AS text))
FOR UPDATE;

-- name: JobCompletePlanGeneric :exec
-- JobCompletePlanGeneric makes the rest of the transaction run prepared statements on their
-- generic plans (plan_cache_mode, local to the transaction): run just before
-- river.JobCompleteTx, whose query Postgres would otherwise plan anew at every call.
SET LOCAL plan_cache_mode = force_generic_plan;

-- name: JobCountRunnable :one
-- JobCountRunnable counts the jobs of @kind other than job @id that are running or waiting to
-- run now (available): a sweep that runs several at once decides from it how many next runs
-- to enqueue. Served by River's river_job_kind index (the finished jobs River keeps of a kind
-- are a day's).
SELECT count(*)::int FROM river_job
WHERE kind = @kind::text AND state IN ('available', 'running') AND id <> @id::bigint;
