-- name: EventCreate :many
-- EventCreate appends an event to the outbox, in the transaction of the change it reports,
-- and returns the ids of the tenant's enabled endpoints subscribed to its type
-- (webhook_endpoints_enabled_idx), for which the caller creates deliveries
-- (WebhookDeliveryCreateMany): one statement (core.Emit).
WITH event AS (
    INSERT INTO events (tenant_id, id, type, data, occurred_at)
    VALUES (@tenant_id::uuid, @id::uuid, @type::text, @data::jsonb, @now::timestamptz)
)
SELECT id FROM webhook_endpoints
WHERE tenant_id = @tenant_id::uuid AND enabled AND event_types @> ARRAY[@type::text]
ORDER BY id;

-- name: EventCreateAudited :many
-- EventCreateAudited is EventCreate with the audit log entry of the change the event reports
-- (AuditLogAppend), in the same statement (core.Record).
WITH audit AS (
    INSERT INTO audit_log (tenant_id, id, occurred_at, actor_type, actor_id, action, subject_type, subject_id, details, request_id)
    VALUES (@tenant_id::uuid, @audit_id::uuid, @now::timestamptz, @actor_type::text, @actor_id::text, @action::text,
            @subject_type::text, @subject_id::text, @details::jsonb, sqlc.narg(request_id)::text)
), event AS (
    INSERT INTO events (tenant_id, id, type, data, occurred_at)
    VALUES (@tenant_id::uuid, @event_id::uuid, @type::text, @data::jsonb, @now::timestamptz)
)
SELECT id FROM webhook_endpoints
WHERE tenant_id = @tenant_id::uuid AND enabled AND event_types @> ARRAY[@type::text]
ORDER BY id;

-- name: WebhookDeliveryCreateMany :exec
-- WebhookDeliveryCreateMany creates one pending delivery of an event per endpoint, due at
-- once; ids and endpoint_ids are parallel arrays. Its foreign key takes a key-share lock on
-- each endpoint, which waits for a webhook.deliver job deciding whether to run again
-- (WebhookEndpointLockForDeliver).
INSERT INTO webhook_deliveries (tenant_id, id, event_id, endpoint_id, created_at, next_attempt_at)
SELECT @tenant_id::uuid, d.id, @event_id::uuid, e.endpoint_id, @now::timestamptz, @now::timestamptz
FROM unnest(@ids::uuid[]) WITH ORDINALITY AS d (id, n)
JOIN unnest(@endpoint_ids::uuid[]) WITH ORDINALITY AS e (endpoint_id, n) USING (n);

-- name: WebhookEndpointLockTenant :one
-- WebhookEndpointLockTenant locks the tenant's row so that concurrent creations of its
-- endpoints count one another (WebhookEndpointCreate's cap). No row means no such tenant.
SELECT id FROM tenants WHERE id = @tenant_id::uuid FOR NO KEY UPDATE;

-- name: WebhookEndpointCreate :one
-- WebhookEndpointCreate stores a new endpoint with its sealed secret, unless the tenant
-- already has @max_endpoints endpoints (enabled or not): then no row (the primary key's
-- prefix counts them). Run after WebhookEndpointLockTenant in the same transaction.
INSERT INTO webhook_endpoints (tenant_id, id, url, event_types, enabled, secret_sealed, created_at, updated_at)
SELECT @tenant_id::uuid, @id::uuid, @url::text, @event_types::text[], @enabled::boolean, @secret_sealed::bytea,
       @now::timestamptz, @now::timestamptz
WHERE (SELECT count(*) FROM webhook_endpoints WHERE tenant_id = @tenant_id::uuid) < @max_endpoints::int
RETURNING *;

-- name: WebhookEndpointGet :one
-- WebhookEndpointGet reads one of a tenant's endpoints (primary key).
SELECT * FROM webhook_endpoints WHERE tenant_id = @tenant_id::uuid AND id = @id::uuid;

-- name: WebhookEndpointList :many
-- WebhookEndpointList pages through a tenant's endpoints, oldest first, after the cursor id
-- (primary key order; ids are UUIDv7).
SELECT * FROM webhook_endpoints
WHERE tenant_id = @tenant_id::uuid
  AND (sqlc.narg(after)::uuid IS NULL OR id > sqlc.narg(after)::uuid)
ORDER BY id
LIMIT @row_limit::int;

-- name: WebhookEndpointUpdate :one
-- WebhookEndpointUpdate changes what is given of an endpoint's url, event types and enabled
-- flag (a null argument keeps the current value). No row means no such endpoint.
UPDATE webhook_endpoints SET
    url         = coalesce(sqlc.narg(url)::text, url),
    event_types = coalesce(sqlc.narg(event_types)::text[], event_types),
    enabled     = coalesce(sqlc.narg(enabled)::boolean, enabled),
    updated_at  = @now::timestamptz
WHERE tenant_id = @tenant_id::uuid AND id = @id::uuid
RETURNING *;

-- name: WebhookEndpointRotateSecret :one
-- WebhookEndpointRotateSecret replaces an endpoint's sealed secret; deliveries attempted
-- from now on are signed with the new one. No row means no such endpoint.
UPDATE webhook_endpoints SET secret_sealed = @secret_sealed::bytea, updated_at = @now::timestamptz
WHERE tenant_id = @tenant_id::uuid AND id = @id::uuid
RETURNING *;

-- name: WebhookEndpointDelete :one
-- WebhookEndpointDelete deletes an endpoint and its deliveries (the events stay in the
-- outbox); its webhook.deliver job, if one is queued, finds no endpoint and does nothing. Served by
-- webhook_deliveries_endpoint_idx. No row means no such endpoint.
WITH deliveries AS (
    DELETE FROM webhook_deliveries
    WHERE tenant_id = @tenant_id::uuid AND endpoint_id = @id::uuid
    RETURNING 1
)
DELETE FROM webhook_endpoints
WHERE tenant_id = @tenant_id::uuid AND id = @id::uuid
RETURNING webhook_endpoints.*, (SELECT count(*) FROM deliveries)::bigint AS deliveries_deleted;

-- name: WebhookDeliveryClaimNextDue :one
-- WebhookDeliveryClaimNextDue claims an endpoint's oldest due delivery (pending, due at or
-- before @now; by due time, then id) for one attempt: it moves next_attempt_at to
-- @lease_until, so no other run takes it meanwhile and, should the attempt's outcome never
-- be recorded (a crash), it is due again then. It returns what the attempt needs: the
-- delivery, its event and the endpoint's url and sealed secret. No row means nothing is due.
-- webhook_deliveries_due_idx; rows another run holds are skipped.
WITH next AS (
    SELECT d.tenant_id, d.id FROM webhook_deliveries d
    WHERE d.tenant_id = @tenant_id::uuid AND d.endpoint_id = @endpoint_id::uuid
      AND d.state = 'pending' AND d.next_attempt_at <= @now::timestamptz
    ORDER BY d.next_attempt_at, d.id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE webhook_deliveries d SET next_attempt_at = @lease_until::timestamptz
    FROM next
    WHERE d.tenant_id = next.tenant_id AND d.id = next.id
    RETURNING d.id, d.event_id, d.endpoint_id, d.attempts, d.round_attempts
)
SELECT c.id, c.endpoint_id, c.attempts, c.round_attempts,
       e.id AS event_id, e.type AS event_type, e.data AS event_data, e.occurred_at AS event_occurred_at,
       w.url AS endpoint_url, w.secret_sealed AS endpoint_secret_sealed
FROM claimed c
JOIN events e ON e.tenant_id = @tenant_id::uuid AND e.id = c.event_id
JOIN webhook_endpoints w ON w.tenant_id = @tenant_id::uuid AND w.id = c.endpoint_id;

-- name: WebhookDeliveryRecordAttempt :one
-- WebhookDeliveryRecordAttempt records one attempt of a pending delivery and decides what
-- follows: a success (@succeeded, a 2xx) finishes it; a failure makes it due again at
-- @retry_at (its step of WebhookRetrySchedule), unless it was the round's @max_attempts-th
-- attempt, which makes it dead. A finished delivery gets finished_at and no
-- next_attempt_at. No row means the delivery is no longer pending (or gone): nothing is
-- recorded.
UPDATE webhook_deliveries SET
    state           = CASE WHEN @succeeded::boolean THEN 'succeeded'
                           WHEN round_attempts + 1 >= @max_attempts::int THEN 'dead'
                           ELSE 'pending' END::delivery_state,
    attempts        = attempts + 1,
    round_attempts  = round_attempts + 1,
    last_attempt_at = @attempted_at::timestamptz,
    last_status     = sqlc.narg(last_status)::int,
    last_error      = sqlc.narg(last_error)::text,
    next_attempt_at = CASE WHEN @succeeded::boolean OR round_attempts + 1 >= @max_attempts::int THEN NULL
                           ELSE @retry_at::timestamptz END,
    finished_at     = CASE WHEN @succeeded::boolean OR round_attempts + 1 >= @max_attempts::int THEN @now::timestamptz END
WHERE tenant_id = @tenant_id::uuid AND id = @id::uuid AND state = 'pending'
RETURNING *;

-- name: WebhookDeliveryAbandonPending :many
-- WebhookDeliveryAbandonPending makes up to @batch pending deliveries of a disabled
-- endpoint dead without attempting them, oldest due first, saying why; an admin may retry
-- them once the endpoint is enabled again. An enabled (or deleted) endpoint's deliveries are
-- left alone. webhook_deliveries_due_idx; rows another run holds are skipped.
UPDATE webhook_deliveries d SET state = 'dead', next_attempt_at = NULL, last_error = @reason::text, finished_at = @now::timestamptz
WHERE (d.tenant_id, d.id) IN (
    SELECT p.tenant_id, p.id FROM webhook_deliveries p
    JOIN webhook_endpoints w ON w.tenant_id = p.tenant_id AND w.id = p.endpoint_id AND NOT w.enabled
    WHERE p.tenant_id = @tenant_id::uuid AND p.endpoint_id = @endpoint_id::uuid AND p.state = 'pending'
    ORDER BY p.next_attempt_at, p.id
    LIMIT @batch::int
    FOR UPDATE OF p SKIP LOCKED
)
RETURNING d.id;

-- name: WebhookEndpointLockForDeliver :one
-- WebhookEndpointLockForDeliver locks an endpoint while its webhook.deliver job decides, in
-- its last transaction, whether to run again: FOR UPDATE waits for transactions creating
-- deliveries to it (their foreign keys hold key-share locks) and holds back new ones until
-- the job has completed, so each new delivery is seen either by WebhookEndpointHasWork
-- (the job runs again) or by its own transaction's unique insert of the job (no live job
-- any more). It returns whether the endpoint is enabled; no row means it is gone.
SELECT enabled FROM webhook_endpoints WHERE tenant_id = @tenant_id::uuid AND id = @id::uuid FOR UPDATE;

-- name: WebhookEndpointHasWork :one
-- WebhookEndpointHasWork reports whether an endpoint's job has work at @now: a pending
-- delivery due, or any pending delivery of a disabled endpoint (to abandon; its due time is
-- then taken as infinitely late). One probe of webhook_deliveries_due_idx (its first entry).
SELECT EXISTS (
    SELECT 1 FROM webhook_endpoints w
    CROSS JOIN LATERAL (
        SELECT 1 FROM webhook_deliveries d
        WHERE d.tenant_id = w.tenant_id AND d.endpoint_id = w.id AND d.state = 'pending'
          AND d.next_attempt_at <= CASE WHEN w.enabled THEN @now::timestamptz ELSE 'infinity' END
        ORDER BY d.next_attempt_at
        LIMIT 1
    ) due
    WHERE w.tenant_id = @tenant_id::uuid AND w.id = @id::uuid
)::boolean AS has_work;

-- name: WebhookEndpointListWorkAllTenants :many
-- WebhookEndpointListWorkAllTenants returns, across tenants, the endpoints whose job has
-- work at @now (as WebhookEndpointHasWork decides): the webhook.deliver_sweep enqueues their
-- jobs, which a unique insert skips where one is live. It finds deliveries whose job was
-- cancelled, deleted or lost, and those whose backoff has passed. One probe of
-- webhook_deliveries_due_idx per endpoint (the lateral ORDER BY ... LIMIT 1 reads the
-- index's first entry), however many deliveries wait.
-- Live tenants only: a sandbox tenant's (clock_at set) run by its own clock, not this sweep's
-- (tenants primary key, probed per candidate row in index order).
SELECT w.tenant_id, w.id FROM webhook_endpoints w
CROSS JOIN LATERAL (
    SELECT 1 FROM webhook_deliveries d
    WHERE d.tenant_id = w.tenant_id AND d.endpoint_id = w.id AND d.state = 'pending'
      AND d.next_attempt_at <= CASE WHEN w.enabled THEN @now::timestamptz ELSE 'infinity' END
    ORDER BY d.next_attempt_at
    LIMIT 1
) due
WHERE NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = w.tenant_id AND t.clock_at IS NOT NULL)
ORDER BY w.tenant_id, w.id;

-- name: WebhookEndpointListWorkForTenant :many
-- WebhookEndpointListWorkForTenant is WebhookEndpointListWorkAllTenants for one sandbox
-- tenant, whose deliveries fall due by its clock: an advance of the clock enqueues the jobs
-- of the endpoints with work at the clock's new time.
SELECT w.id FROM webhook_endpoints w
CROSS JOIN LATERAL (
    SELECT 1 FROM webhook_deliveries d
    WHERE d.tenant_id = w.tenant_id AND d.endpoint_id = w.id AND d.state = 'pending'
      AND d.next_attempt_at <= CASE WHEN w.enabled THEN @now::timestamptz ELSE 'infinity' END
    ORDER BY d.next_attempt_at
    LIMIT 1
) due
WHERE w.tenant_id = @tenant_id::uuid
ORDER BY w.id;

-- name: WebhookDeliveryRetry :one
-- WebhookDeliveryRetry makes a dead or pending delivery due at @now with a fresh attempt
-- budget (the whole retry schedule), when its endpoint is enabled; its endpoint's job sends
-- it. Its attempts and last outcome stay until the next attempt. It takes a key-share lock
-- on the endpoint first, as creating a delivery does (see WebhookEndpointLockForDeliver).
-- No row means no such delivery, a succeeded delivery, or a disabled endpoint.
WITH endpoint AS (
    SELECT w.tenant_id, w.id FROM webhook_endpoints w
    JOIN webhook_deliveries d ON d.tenant_id = w.tenant_id AND d.endpoint_id = w.id
    WHERE d.tenant_id = @tenant_id::uuid AND d.id = @id::uuid AND w.enabled
    FOR KEY SHARE OF w
)
UPDATE webhook_deliveries d SET state = 'pending', finished_at = NULL, next_attempt_at = @now::timestamptz, round_attempts = 0
FROM endpoint
WHERE d.tenant_id = endpoint.tenant_id AND d.id = @id::uuid AND d.endpoint_id = endpoint.id AND d.state IN ('dead', 'pending')
RETURNING d.*;

-- name: WebhookDeliveryGet :one
-- WebhookDeliveryGet reads one of a tenant's deliveries with its event's type and its
-- endpoint's enabled flag (primary keys).
SELECT d.*, e.type AS event_type, w.enabled AS endpoint_enabled
FROM webhook_deliveries d
JOIN events e ON e.tenant_id = d.tenant_id AND e.id = d.event_id
JOIN webhook_endpoints w ON w.tenant_id = d.tenant_id AND w.id = d.endpoint_id
WHERE d.tenant_id = @tenant_id::uuid AND d.id = @id::uuid;

-- name: WebhookDeliveryList :many
-- WebhookDeliveryList pages through a tenant's deliveries, newest first, before the cursor
-- id, optionally of one endpoint (webhook_deliveries_endpoint_idx) and in one state
-- (webhook_deliveries_state_idx); unfiltered, the primary key serves it.
SELECT d.*, e.type AS event_type
FROM webhook_deliveries d
JOIN events e ON e.tenant_id = d.tenant_id AND e.id = d.event_id
WHERE d.tenant_id = @tenant_id::uuid
  AND (sqlc.narg(endpoint_id)::uuid IS NULL OR d.endpoint_id = sqlc.narg(endpoint_id)::uuid)
  AND (sqlc.narg(state)::delivery_state IS NULL OR d.state = sqlc.narg(state)::delivery_state)
  AND (sqlc.narg(after)::uuid IS NULL OR d.id < sqlc.narg(after)::uuid)
ORDER BY d.id DESC
LIMIT @row_limit::int;

-- name: EventPurge :one
-- EventPurge deletes, across tenants, up to @batch events that occurred before @cutoff and
-- have no delivery still pending, with their deliveries (succeeded or dead), oldest first:
-- the outbox keeps what is recent or still being delivered. Rows another sweep holds are
-- skipped. A delivery retried (made pending again) while the sweep runs is not deleted: the
-- event's foreign key then fails the sweep, which deletes nothing and skips that event the
-- next time. It returns how many events and deliveries it deleted. events_occurred_idx,
-- and webhook_deliveries_event_idx for each event's deliveries.
-- A sandbox tenant's events are kept for the retention (@now - @cutoff) by its own clock: a
-- sandbox whose clock stands years back keeps what it did (tenants primary key).
WITH doomed AS (
    SELECT e.tenant_id, e.id FROM events e
    WHERE e.occurred_at < sqlc.arg(cutoff)::timestamptz
      AND NOT EXISTS (SELECT 1 FROM tenants t
                      WHERE t.id = e.tenant_id
                        AND e.occurred_at >= t.clock_at - (sqlc.arg(now)::timestamptz - sqlc.arg(cutoff)::timestamptz))
      AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d
                      WHERE d.tenant_id = e.tenant_id AND d.event_id = e.id AND d.state = 'pending')
    ORDER BY e.occurred_at
    LIMIT sqlc.arg(batch)::int
    FOR UPDATE SKIP LOCKED
), deliveries AS (
    DELETE FROM webhook_deliveries d USING doomed
    WHERE d.tenant_id = doomed.tenant_id AND d.event_id = doomed.id AND d.state <> 'pending'
    RETURNING d.id
), events AS (
    DELETE FROM events e USING doomed
    WHERE e.tenant_id = doomed.tenant_id AND e.id = doomed.id
    RETURNING e.id
)
SELECT (SELECT count(*) FROM events)::bigint AS events, (SELECT count(*) FROM deliveries)::bigint AS deliveries;
