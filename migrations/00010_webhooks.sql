-- +goose Up
-- events: the outbox. Every event a change emits is a row here, written in the change's
-- transaction, with one delivery per subscribed endpoint.
CREATE TABLE events (
    tenant_id   uuid        NOT NULL REFERENCES tenants (id),
    id          uuid        NOT NULL,
    type        text        NOT NULL CHECK (type ~ '^[a-z_]+\.[a-z_]+$'),
    data        jsonb       NOT NULL,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- webhook_endpoints: where a tenant wants events. The secret (whsec_...) is sealed with the
-- server's secret key, because signing needs it back.
CREATE TABLE webhook_endpoints (
    tenant_id     uuid        NOT NULL REFERENCES tenants (id),
    id            uuid        NOT NULL,
    url           text        NOT NULL CHECK (url ~ '^https?://' AND length(url) <= 2000),
    event_types   text[]      NOT NULL CHECK (cardinality(event_types) > 0),
    enabled       boolean     NOT NULL DEFAULT true,
    secret_sealed bytea       NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- EventEmit: a tenant's enabled endpoints subscribed to a type.
CREATE INDEX webhook_endpoints_enabled_idx ON webhook_endpoints USING gin (event_types) WHERE enabled;

CREATE TYPE delivery_state AS ENUM ('pending', 'succeeded', 'dead');

-- webhook_deliveries: one event to one endpoint, worked by a webhook.deliver job.
CREATE TABLE webhook_deliveries (
    tenant_id       uuid           NOT NULL,
    id              uuid           NOT NULL,
    event_id        uuid           NOT NULL,
    endpoint_id     uuid           NOT NULL,
    state           delivery_state NOT NULL DEFAULT 'pending',
    attempts        integer        NOT NULL DEFAULT 0,
    last_attempt_at timestamptz,
    last_status     integer,
    last_error      text,
    created_at      timestamptz    NOT NULL,
    finished_at     timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, event_id) REFERENCES events (tenant_id, id),
    FOREIGN KEY (tenant_id, endpoint_id) REFERENCES webhook_endpoints (tenant_id, id)
);

-- WebhookDeliveryList by endpoint and by state, newest first.
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (tenant_id, endpoint_id, id);
CREATE INDEX webhook_deliveries_state_idx ON webhook_deliveries (tenant_id, state, id);

-- +goose Down
DROP TABLE webhook_deliveries;
DROP TYPE delivery_state;
DROP TABLE webhook_endpoints;
DROP TABLE events;
