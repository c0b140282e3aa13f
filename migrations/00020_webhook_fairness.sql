-- +goose Up
-- Deliveries are scheduled in SQL, not one River job each: a pending delivery is due at
-- next_attempt_at, and its endpoint's one webhook.deliver job sends the endpoint's due
-- deliveries oldest first (so one tenant's backlog never queues ahead of another tenant's
-- delivery). round_attempts counts the attempts since the delivery was created or last
-- retried by an admin: the retry budget of WebhookRetrySchedule. attempts keeps counting
-- across admin retries.
ALTER TABLE webhook_deliveries
    ADD COLUMN next_attempt_at timestamptz,
    ADD COLUMN round_attempts  integer NOT NULL DEFAULT 0 CHECK (round_attempts >= 0);

-- Deliveries pending under the old design are due at once; their attempts so far count
-- against the budget (at most 12, so each gets at least one more attempt).
UPDATE webhook_deliveries SET next_attempt_at = coalesce(last_attempt_at, created_at), round_attempts = least(attempts, 12)
WHERE state = 'pending';

-- A delivery is due at a time exactly while it is pending.
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_next_attempt_check
    CHECK ((state = 'pending') = (next_attempt_at IS NOT NULL));

-- WebhookDeliveryClaimNextDue, WebhookEndpointHasWork, WebhookEndpointListWorkAllTenants and
-- WebhookDeliveryAbandonPending: an endpoint's pending deliveries by due time.
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (tenant_id, endpoint_id, next_attempt_at, id)
    WHERE state = 'pending';

-- The per-delivery webhook.deliver jobs of the old design (args with a delivery_id) would
-- find no endpoint under the new arguments: drop those not running. The webhook.deliver_sweep
-- enqueues one job per endpoint for the deliveries made due above.
DELETE FROM river_job WHERE kind = 'webhook.deliver' AND args ? 'delivery_id' AND state <> 'running';

-- +goose Down
DROP INDEX webhook_deliveries_due_idx;
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_next_attempt_check;
ALTER TABLE webhook_deliveries DROP COLUMN round_attempts, DROP COLUMN next_attempt_at;
