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
