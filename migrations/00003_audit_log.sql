-- +goose Up
-- audit_log: append-only record of every state change, written in the transaction of the
-- change. Ids are UUIDv7, so id order is time order.
CREATE TABLE audit_log (
    tenant_id    uuid        NOT NULL REFERENCES tenants (id),
    id           uuid        NOT NULL,
    occurred_at  timestamptz NOT NULL,
    actor_type   text        NOT NULL CHECK (actor_type IN ('api_key', 'cli', 'buyer', 'job', 'provider')),
    actor_id     text        NOT NULL,
    action       text        NOT NULL CHECK (action ~ '^[a-z_]+\.[a-z_]+$'),
    subject_type text        NOT NULL,
    subject_id   text        NOT NULL,
    details      jsonb       NOT NULL DEFAULT '{}',
    request_id   text,
    PRIMARY KEY (tenant_id, id)
);

-- +goose StatementBegin
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- +goose Down
DROP TABLE audit_log;
DROP FUNCTION audit_log_append_only();
