-- +goose Up
-- The catalog: products, their releases (which builds a perpetual licence covers), policies
-- (tiers) and add-ons. Archived rows stay for the licences that reference them.
CREATE TYPE currency AS ENUM ('USD', 'EUR', 'SAT');

CREATE TABLE products (
    tenant_id   uuid        NOT NULL REFERENCES tenants (id),
    id          uuid        NOT NULL,
    slug        text        NOT NULL CHECK (slug ~ '^[a-z0-9][a-z0-9._-]{0,99}$'),
    name        text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    archived_at timestamptz,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT products_slug_key UNIQUE (tenant_id, slug)
);

CREATE TABLE product_releases (
    tenant_id   uuid        NOT NULL,
    id          uuid        NOT NULL,
    product_id  uuid        NOT NULL,
    version     text        NOT NULL CHECK (length(version) BETWEEN 1 AND 100),
    released_at timestamptz NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, product_id) REFERENCES products (tenant_id, id),
    -- LicenseValidate looks a release up by version.
    CONSTRAINT product_releases_version_key UNIQUE (tenant_id, product_id, version)
);

CREATE TABLE policies (
    tenant_id               uuid        NOT NULL,
    id                      uuid        NOT NULL,
    product_id              uuid        NOT NULL,
    slug                    text        NOT NULL CHECK (slug ~ '^[a-z0-9][a-z0-9._-]{0,99}$'),
    name                    text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    tier_rank               integer     NOT NULL DEFAULT 0,
    listed_currency         currency    NOT NULL,
    listed_value            bigint      NOT NULL CHECK (listed_value >= 0),
    is_recurring            boolean     NOT NULL,
    period_days             integer     CHECK (period_days BETWEEN 1 AND 3660),
    grace_period_days       integer     NOT NULL DEFAULT 7 CHECK (grace_period_days BETWEEN 0 AND 365),
    max_machines            integer     CHECK (max_machines >= 0),
    entitlements            text[]      NOT NULL DEFAULT '{}',
    perpetual_after_days    integer     CHECK (perpetual_after_days >= 1),
    qualifies_for_referrals boolean     NOT NULL DEFAULT false,
    created_at              timestamptz NOT NULL,
    updated_at              timestamptz NOT NULL,
    archived_at             timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, product_id) REFERENCES products (tenant_id, id),
    CONSTRAINT policies_slug_key UNIQUE (tenant_id, slug),
    CONSTRAINT policies_period_check CHECK (is_recurring = (period_days IS NOT NULL))
);

-- An add-on's metadata is free JSON, except that a perpetual add-on has the shape
-- {"perpetual": true, "features": [text...], "allowed_ids": [policy slug...]}.
CREATE TABLE addons (
    tenant_id   uuid        NOT NULL REFERENCES tenants (id),
    id          uuid        NOT NULL,
    slug        text        NOT NULL CHECK (slug ~ '^[a-z0-9][a-z0-9._-]{0,99}$'),
    name        text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    metadata    jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    archived_at timestamptz,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT addons_slug_key UNIQUE (tenant_id, slug),
    CONSTRAINT addons_perpetual_shape CHECK (
        NOT metadata ? 'perpetual' OR (
            jsonb_typeof(metadata -> 'perpetual') = 'boolean'
            AND jsonb_typeof(coalesce(metadata -> 'features', '[]')) = 'array'
            AND jsonb_typeof(coalesce(metadata -> 'allowed_ids', '[]')) = 'array'))
);

-- +goose Down
DROP TABLE addons;
DROP TABLE policies;
DROP TABLE product_releases;
DROP TABLE products;
DROP TYPE currency;
