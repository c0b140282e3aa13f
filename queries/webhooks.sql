-- name: EventCreate :exec
-- EventCreate appends an event to the outbox, in the transaction of the change it reports.
INSERT INTO events (tenant_id, id, type, data, occurred_at)
VALUES (@tenant_id::uuid, @id::uuid, @type::text, @data::jsonb, @now::timestamptz);

-- name: WebhookEndpointListSubscribed :many
-- WebhookEndpointListSubscribed returns the ids of a tenant's enabled endpoints subscribed
-- to an event type (webhook_endpoints_enabled_idx).
SELECT id FROM webhook_endpoints
WHERE tenant_id = @tenant_id::uuid AND enabled AND event_types @> ARRAY[@type::text]
ORDER BY id;

-- name: WebhookDeliveryCreateMany :exec
-- WebhookDeliveryCreateMany creates one pending delivery of an event per endpoint; ids and
-- endpoint_ids are parallel arrays.
INSERT INTO webhook_deliveries (tenant_id, id, event_id, endpoint_id, created_at)
SELECT @tenant_id::uuid, d.id, @event_id::uuid, e.endpoint_id, @now::timestamptz
FROM unnest(@ids::uuid[]) WITH ORDINALITY AS d (id, n)
JOIN unnest(@endpoint_ids::uuid[]) WITH ORDINALITY AS e (endpoint_id, n) USING (n);

-- name: WebhookEndpointCreate :one
-- WebhookEndpointCreate stores a new endpoint with its sealed secret.
INSERT INTO webhook_endpoints (tenant_id, id, url, event_types, enabled, secret_sealed, created_at, updated_at)
VALUES (@tenant_id::uuid, @id::uuid, @url::text, @event_types::text[], @enabled::boolean, @secret_sealed::bytea,
        @now::timestamptz, @now::timestamptz)
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
-- outbox); delivery jobs still queued find no delivery and do nothing. Served by
-- webhook_deliveries_endpoint_idx. No row means no such endpoint.
WITH deliveries AS (
    DELETE FROM webhook_deliveries
    WHERE tenant_id = @tenant_id::uuid AND endpoint_id = @id::uuid
    RETURNING 1
)
DELETE FROM webhook_endpoints
WHERE tenant_id = @tenant_id::uuid AND id = @id::uuid
RETURNING webhook_endpoints.*, (SELECT count(*) FROM deliveries)::bigint AS deliveries_deleted;

-- name: WebhookDeliveryGetForSend :one
-- WebhookDeliveryGetForSend reads everything one delivery attempt needs — the delivery, its
-- event and its endpoint — by the primary keys. No row means the delivery is gone (its
-- endpoint was deleted).
SELECT d.state, d.attempts,
       e.id AS event_id, e.type AS event_type, e.data AS event_data, e.occurred_at AS event_occurred_at,
       w.id AS endpoint_id, w.url AS endpoint_url, w.enabled AS endpoint_enabled, w.secret_sealed AS endpoint_secret_sealed
FROM webhook_deliveries d
JOIN events e ON e.tenant_id = d.tenant_id AND e.id = d.event_id
JOIN webhook_endpoints w ON w.tenant_id = d.tenant_id AND w.id = d.endpoint_id
WHERE d.tenant_id = @tenant_id::uuid AND d.id = @id::uuid;

-- name: WebhookDeliveryRecordAttempt :one
-- WebhookDeliveryRecordAttempt records one attempt of a pending delivery and moves it to
-- @state: succeeded (a 2xx), pending (failed; River retries it) or dead (failed on the last
-- attempt). A finished delivery gets finished_at. No row means the delivery is no longer
-- pending (or gone): another run already finished it, and nothing is recorded.
UPDATE webhook_deliveries SET
    state           = @state::delivery_state,
    attempts        = attempts + 1,
    last_attempt_at = @attempted_at::timestamptz,
    last_status     = sqlc.narg(last_status)::int,
    last_error      = sqlc.narg(last_error)::text,
    finished_at     = CASE WHEN @state::delivery_state = 'pending' THEN NULL ELSE @now::timestamptz END
WHERE tenant_id = @tenant_id::uuid AND id = @id::uuid AND state = 'pending'
RETURNING *;

-- name: WebhookDeliveryAbandon :one
-- WebhookDeliveryAbandon makes a pending delivery dead without attempting it, saying why
-- (its endpoint was disabled); an admin may retry it once the endpoint is enabled again. No
-- row means the delivery is no longer pending.
UPDATE webhook_deliveries SET state = 'dead', last_error = @reason::text, finished_at = @now::timestamptz
WHERE tenant_id = @tenant_id::uuid AND id = @id::uuid AND state = 'pending'
RETURNING *;

-- name: WebhookDeliveryRetry :one
-- WebhookDeliveryRetry makes a dead delivery pending again, for a new webhook.deliver job,
-- when its endpoint is enabled. Its attempts and last outcome stay until the next attempt.
-- No row means no such delivery, a delivery that is not dead, or a disabled endpoint.
UPDATE webhook_deliveries d SET state = 'pending', finished_at = NULL
FROM webhook_endpoints w
WHERE d.tenant_id = @tenant_id::uuid AND d.id = @id::uuid AND d.state = 'dead'
  AND w.tenant_id = d.tenant_id AND w.id = d.endpoint_id AND w.enabled
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
WITH doomed AS (
    SELECT e.tenant_id, e.id FROM events e
    WHERE e.occurred_at < sqlc.arg(cutoff)::timestamptz
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
