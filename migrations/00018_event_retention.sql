-- +goose Up
-- Retention of the webhook outbox (EventPurge, the event.retention_sweep job): events by age,
-- and the deliveries of an event (also what deleting an event checks its foreign key with).
CREATE INDEX events_occurred_idx ON events (occurred_at);
CREATE INDEX webhook_deliveries_event_idx ON webhook_deliveries (tenant_id, event_id);

-- +goose Down
DROP INDEX webhook_deliveries_event_idx;
DROP INDEX events_occurred_idx;
