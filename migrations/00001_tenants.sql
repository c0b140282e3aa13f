-- +goose Up
-- tenants: the sellers. Every other table belongs to exactly one tenant.
CREATE TABLE tenants (
    id         uuid        NOT NULL PRIMARY KEY,
    slug       text        NOT NULL CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
    name       text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- TenantGetBySlug, and slug uniqueness.
CREATE UNIQUE INDEX tenants_slug_key ON tenants (slug);

-- +goose Down
DROP TABLE tenants;
